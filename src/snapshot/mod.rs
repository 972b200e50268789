//! Group snapshots: create and delete, and the freeze coordinator. Limits and auto-delete
//! are in `limits`, restore, clone and diff in `restore`, the hooks in `hooks`; when a
//! volume may be deleted (not grouped, snapshotted or mounted) in `volume`.
//!
//! Create: run pre-snapshot hooks → flush the members' write buffers (outside the freeze, so
//! the freeze has little left to flush) → close the request-queue gate of every member mount
//! at once → wait until no mutating request is executing (barrier timeout: abort and
//! reopen) → one transaction records every member's generation and the snapshot → reopen the
//! gates → measure the pause → run post-snapshot hooks (always, even after a failure).
//!
//! Why this is a consistent cut: a write that returned to an application before the gates
//! closed is in the daemon (buffered or committed) and the commit includes it; a write held
//! at a gate has not returned, so nothing the application did after it can be in the
//! snapshot either. Reads are never held.
//!
//! Freezes may overlap (two creates, a create and an online restore): each holds its own
//! closer guard on every gate, and a gate opens when its last closer lets go.

pub mod hooks;
mod limits;
mod restore;
mod volume;

pub use limits::{Limits, limits};
pub use restore::{CloneOutcome, RestoreError, RestoreOutcome, clone, diff, restore};
pub use volume::{VolumeDeleteError, delete_volume};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::fs::snap::SnapError;
use crate::fs::{Engine, FsError};
use crate::fuse::Gate;
use crate::store::snaps::SnapshotRecord;
use crate::types::VolumeId;

/// What to snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Target {
    Group(String),
    Volume(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateRequest {
    pub name: String,
    pub target: Target,
    pub description: String,
    /// Append a UTC time to the name (as Gluster does by default).
    pub timestamp: bool,
    pub skip_hooks: bool,
    pub ignore_hook_errors: bool,
}

/// A snapshot as the CLI shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub name: String,
    pub id: u64,
    pub group: Option<String>,
    /// (volume, generation)
    pub members: Vec<(String, u64)>,
    pub created_us: i64,
    pub description: String,
    pub pause_us: u64,
    pub exclusive_bytes: u64,
    pub state: String,
    pub mountpoints: Vec<(String, PathBuf)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateOutcome {
    pub snapshot: SnapshotInfo,
    pub warnings: Vec<String>,
    pub auto_deleted: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error(transparent)]
    Snap(#[from] SnapError),
    #[error("invalid snapshot name '{name}': {reason}")]
    BadName {
        name: String,
        reason: crate::types::NameError,
    },
    #[error(
        "volume '{volume}' belongs to group '{group}': snapshot the group (tandem snapshot create NAME --group {group})"
    )]
    Grouped { volume: String, group: String },
    #[error(
        "volume '{volume}' has {count} snapshots, its hard limit (snap-max-hard-limit {limit}); delete some (tandem snapshot delete NAME) or raise the limit (tandem snapshot config {volume} --snap-max-hard-limit N)"
    )]
    HardLimit {
        volume: String,
        count: usize,
        limit: u64,
    },
    #[error(
        "snapshot '{snapshot}' aborted: {source}; nothing was recorded (--ignore-hook-errors goes on despite hook failures)"
    )]
    Hook {
        snapshot: String,
        #[source]
        source: Box<hooks::HookError>,
    },
    #[error(
        "volume '{volume}' is at its hard limit (snap-max-hard-limit {limit}) and auto-delete may not make room: the snapshots it could delete are activated or being restored ({held}); deactivate one (tandem snapshot deactivate NAME), delete one, or raise the limit"
    )]
    NoRoom {
        volume: String,
        limit: u64,
        held: String,
    },
    #[error("snapshot '{snapshot}' aborted: {source}; nothing was recorded")]
    UntrustedHooks {
        snapshot: String,
        #[source]
        source: Box<hooks::HookError>,
    },
    #[error(
        "snapshot '{snapshot}' aborted: volume '{volume}' did not quiesce within the barrier timeout of {timeout:?}; no volume is frozen and nothing was recorded (raise it with tandem snapshot config --barrier-timeout)"
    )]
    BarrierTimeout {
        snapshot: String,
        volume: String,
        timeout: Duration,
    },
}

impl From<FsError> for CreateError {
    fn from(e: FsError) -> Self {
        CreateError::Snap(SnapError::Fs(e))
    }
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Gluster-style timestamp suffix: NAME_GMT-YYYY.MM.DD-HH.MM.SS.
fn timestamp_suffix() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    format!(
        "_GMT-{y:04}.{m:02}.{d:02}-{:02}.{:02}.{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Where the coordinator finds the mounts of a volume.
pub trait MountView {
    /// Gates of every live mount of the volume.
    fn gates(&self, vol: VolumeId) -> Vec<Arc<Gate>>;
    /// Mountpoints of the volume (for hooks).
    fn mountpoints(&self, volume: &str) -> Vec<PathBuf>;
    /// Read-only mounts of a snapshot, if activated.
    fn snapshot_mounts(&self, _snapshot: &str) -> Vec<(String, PathBuf)> {
        Vec::new()
    }
    /// Drops the kernel's caches of these rows on every live mount of the volume.
    fn invalidate(&self, _vol: VolumeId, _rows: &[crate::store::keys::RowId]) {}
}

pub fn info(
    engine: &Engine,
    mounts: &dyn MountView,
    s: &SnapshotRecord,
) -> Result<SnapshotInfo, SnapError> {
    let exclusive = engine.snapshot_exclusive_bytes(s)?;
    Ok(info_with(mounts, s, exclusive))
}

fn info_with(mounts: &dyn MountView, s: &SnapshotRecord, exclusive_bytes: u64) -> SnapshotInfo {
    let mountpoints = mounts.snapshot_mounts(&s.name);
    SnapshotInfo {
        name: s.name.clone(),
        id: s.id.0,
        group: s.group.clone(),
        members: s
            .members
            .iter()
            .map(|m| (m.name.clone(), m.generation.0))
            .collect(),
        created_us: s.created_us,
        description: s.description.clone(),
        pause_us: s.pause_us,
        exclusive_bytes,
        state: if mountpoints.is_empty() {
            "created".into()
        } else {
            "activated".into()
        },
        mountpoints,
    }
}

/// Creates a snapshot of a group (all members at one instant) or of one ungrouped volume.
pub fn create(
    engine: &Engine,
    pool: &Path,
    mounts: &dyn MountView,
    req: &CreateRequest,
) -> Result<CreateOutcome, CreateError> {
    create_protecting(engine, pool, mounts, req, &[])
}

/// [`create`], with snapshots that auto-delete must not remove (a restore protects the
/// snapshot it restores while it takes the undo snapshot).
pub(super) fn create_protecting(
    engine: &Engine,
    pool: &Path,
    mounts: &dyn MountView,
    req: &CreateRequest,
    protect: &[&str],
) -> Result<CreateOutcome, CreateError> {
    let name = if req.timestamp {
        format!("{}{}", req.name, timestamp_suffix())
    } else {
        req.name.clone()
    };
    crate::types::Name::try_from(name.as_str()).map_err(|reason| CreateError::BadName {
        name: name.clone(),
        reason,
    })?;
    if engine.snapshot(&name).is_ok() {
        return Err(SnapError::SnapshotExists(name).into());
    }
    let (group, vols): (Option<String>, Vec<VolumeId>) = match &req.target {
        Target::Group(g) => {
            let rec = engine.group(g)?;
            if rec.members.is_empty() {
                return Err(SnapError::EmptyGroup(g.clone()).into());
            }
            (Some(g.clone()), rec.members)
        }
        Target::Volume(v) => {
            let id = engine.volume_id(v)?;
            if let Some(g) = engine.group_of(id)? {
                return Err(CreateError::Grouped {
                    volume: v.clone(),
                    group: g,
                });
            }
            (None, vec![id])
        }
    };
    let names: Vec<String> = vols
        .iter()
        .map(|v| engine.record(*v).map(|r| r.name))
        .collect::<Result<_, _>>()?;

    // Limits, per member: decided now, applied only once the snapshot is committed.
    let mut room = limits::plan(engine, mounts, &vols, &names, protect)?;
    let barrier = room.barrier.unwrap_or(Duration::from_secs(10));

    let env = hooks::HookEnv {
        snapshot: name.clone(),
        group: group.clone(),
        volumes: names
            .iter()
            .map(|n| (n.clone(), mounts.mountpoints(n)))
            .collect(),
        status: String::new(),
    };
    let result = freeze_and_commit(
        engine, pool, mounts, req, &name, group, &vols, &names, barrier, &env,
    );
    let mut warnings = Vec::new();
    if !req.skip_hooks {
        let mut env = env;
        env.status = match &result {
            Ok(_) => "ok".into(),
            Err(e) => format!("failed: {e}"),
        };
        if let Err(e) = hooks::run(pool, hooks::Phase::Post, &env) {
            warnings.push(format!("post-snapshot hook: {e}"));
        }
    }
    let rec = result?;
    let auto_deleted = room.make(engine, mounts, &name);
    // The newest snapshot holds nothing on its own yet: none of what it sees is superseded.
    let snapshot = info_with(mounts, &rec, 0);
    let mut all = room.warnings;
    all.extend(warnings);
    Ok(CreateOutcome {
        snapshot,
        warnings: all,
        auto_deleted,
    })
}

#[allow(clippy::too_many_arguments)]
fn freeze_and_commit(
    engine: &Engine,
    pool: &Path,
    mounts: &dyn MountView,
    req: &CreateRequest,
    name: &str,
    group: Option<String>,
    vols: &[VolumeId],
    names: &[String],
    barrier: Duration,
    env: &hooks::HookEnv,
) -> Result<SnapshotRecord, CreateError> {
    if !req.skip_hooks
        && let Err(e) = hooks::run(pool, hooks::Phase::Pre, env)
    {
        if e.is_unsafe() {
            return Err(CreateError::UntrustedHooks {
                snapshot: name.to_string(),
                source: Box::new(e),
            });
        }
        if !req.ignore_hook_errors {
            return Err(CreateError::Hook {
                snapshot: name.to_string(),
                source: Box::new(e),
            });
        }
    }
    // Flush outside the freeze so that the freeze itself has little to flush: writers
    // flush their own buffers early until the snapshot is taken, and the members' buffers
    // are flushed in parallel now.
    let _tight = Tight::on(engine, vols);
    pre_flush(engine, vols)?;
    let freeze = Freeze::close(mounts, vols);
    if let Err(i) = freeze.drain(barrier) {
        return Err(CreateError::BarrierTimeout {
            snapshot: name.to_string(),
            volume: names[i].clone(),
            timeout: barrier,
        });
    }
    let committed = engine.snapshot_commit(name, group, vols, &req.description, now_us());
    let pause = freeze.thaw();
    let rec = committed?;
    // Durable before the command returns, but after the writers resumed.
    engine.store().sync().map_err(FsError::from)?;
    engine.snapshot_set_pause(name, pause.as_micros() as u64)?;
    Ok(SnapshotRecord {
        pause_us: pause.as_micros() as u64,
        ..rec
    })
}

/// Writers of the members flush early while this lives (see `fs::VolState::tight`).
pub(super) struct Tight<'a> {
    engine: &'a Engine,
    vols: Vec<VolumeId>,
}

impl<'a> Tight<'a> {
    pub(super) fn on(engine: &'a Engine, vols: &[VolumeId]) -> Tight<'a> {
        engine.set_tight(vols, true);
        Tight {
            engine,
            vols: vols.to_vec(),
        }
    }
}

impl Drop for Tight<'_> {
    fn drop(&mut self) {
        self.engine.set_tight(&self.vols, false);
    }
}

/// Flushes the members' write buffers, one thread per member.
pub(super) fn pre_flush(engine: &Engine, vols: &[VolumeId]) -> Result<(), FsError> {
    std::thread::scope(|s| {
        let handles: Vec<_> = vols
            .iter()
            .map(|&v| s.spawn(move || engine.flush_volume(v)))
            .collect();
        for h in handles {
            h.join().map_err(|_| {
                FsError::Store(crate::store::StoreError::Damaged(
                    "a flush thread panicked".into(),
                ))
            })??;
        }
        Ok(())
    })
}

/// The closed request gates of a set of volumes' mounts: one closer's hold on each (other
/// freezes of the same volumes may hold them too). Released by [`Freeze::thaw`] or,
/// whatever happens, on drop: no path leaves a volume frozen.
pub(super) struct Freeze {
    /// (index of the volume in the caller's list, this freeze's hold on the gate)
    gates: Vec<(usize, Arc<Gate>, crate::fuse::queue::Closed)>,
    at: Instant,
}

impl Freeze {
    /// Closes every gate at once; from here on mutating requests wait in their queues.
    pub(super) fn close(mounts: &dyn MountView, vols: &[VolumeId]) -> Freeze {
        let gates: Vec<(usize, Arc<Gate>)> = vols
            .iter()
            .enumerate()
            .flat_map(|(i, &v)| mounts.gates(v).into_iter().map(move |g| (i, g)))
            .collect();
        let at = Instant::now();
        let gates = gates
            .into_iter()
            .map(|(i, g)| {
                let closed = g.close();
                (i, g, closed)
            })
            .collect();
        Freeze { gates, at }
    }

    /// Waits until no mutating request is running on any member; on timeout returns the
    /// index of a volume that did not quiesce (dropping the freeze reopens the gates).
    pub(super) fn drain(&self, barrier: Duration) -> Result<(), usize> {
        let deadline = self.at + barrier;
        for (i, g, _) in &self.gates {
            if !g.wait_drained(deadline) {
                return Err(*i);
            }
        }
        Ok(())
    }

    /// Releases this freeze's hold on the gates; returns how long they were closed.
    pub(super) fn thaw(self) -> Duration {
        let at = self.at;
        drop(self);
        at.elapsed()
    }
}

/// Which snapshots `snapshot delete` removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeleteWhich {
    Name(String),
    All,
    Volume(String),
    Group(String),
}

/// The snapshots `which` names, oldest first.
pub fn delete_list(engine: &Engine, which: &DeleteWhich) -> Result<Vec<String>, SnapError> {
    let all = engine.snapshots()?;
    let targets: Vec<String> = match which {
        DeleteWhich::Name(n) => vec![engine.snapshot(n)?.name],
        DeleteWhich::All => all.into_iter().map(|s| s.name).collect(),
        DeleteWhich::Volume(v) => {
            let id = engine.volume_id(v)?;
            all.into_iter()
                .filter(|s| s.members.iter().any(|m| m.vol == id))
                .map(|s| s.name)
                .collect()
        }
        DeleteWhich::Group(g) => {
            engine.group(g)?;
            all.into_iter()
                .filter(|s| s.group.as_deref() == Some(g.as_str()))
                .map(|s| s.name)
                .collect()
        }
    };
    Ok(targets)
}

/// Deletes snapshots; returns the names deleted.
pub fn delete(engine: &Engine, which: &DeleteWhich) -> Result<Vec<String>, SnapError> {
    let mut done = Vec::new();
    for n in delete_list(engine, which)? {
        engine.snapshot_delete(&n)?;
        done.push(n);
    }
    Ok(done)
}
