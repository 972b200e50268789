//! Creating a snapshot of a group (all members at one instant) or of one ungrouped volume.
//!
//! Create: check the name and target → plan the limits (a create the hard limit forbids
//! fails here, before anything runs) → run pre-snapshot hooks → the freeze (`freeze::run`)
//! with, as its action, the seal (`Engine::snapshot_seal`: take the members' buffered
//! writes, queue the one transaction that records every member's generation and the
//! snapshot), completed after the thaw (`SealedSnapshot::finish`) → record the measured pause → run post-snapshot hooks (always, even after a
//! failure) → auto-delete what the plan doomed (only once the snapshot is committed).

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fs::groups::SnapError;
use crate::fs::{Engine, FsError};
use crate::store::catalog::SnapshotRecord;
use crate::types::VolumeId;

use super::clock::{next_timestamp, now_us, timestamp_suffix};
use super::freeze::{self, FreezeError, Frozen};
use super::info::{SnapshotInfo, info_with};
use super::{MountView, hooks, limits};

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateOutcome {
    pub snapshot: SnapshotInfo,
    pub warnings: Vec<String>,
    pub auto_deleted: Vec<String>,
    /// How long each step of the freeze took (absent from older daemons: zeros).
    #[serde(default)]
    pub steps: CreateSteps,
}

/// The coordinator's steps, timed by the freeze, in microseconds (`snapshot_bench` shows
/// them).
pub type CreateSteps = freeze::Steps;

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
        "volume '{volume}' is at its hard limit (snap-max-hard-limit {limit}) and auto-delete may not make room: the snapshots it could delete are activated, held or being restored ({held}); deactivate one (tandem snapshot deactivate NAME), release one (tandem snapshot release NAME TAG), delete one, or raise the limit"
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
    let mut name = req.name.clone();
    if req.timestamp {
        // Microseconds, strictly increasing in this daemon; a name left from before a
        // clock step back is skipped.
        name = format!("{}{}", req.name, timestamp_suffix(next_timestamp()));
        while engine.snapshot(&name).is_ok() {
            name = format!("{}{}", req.name, timestamp_suffix(next_timestamp()));
        }
    }
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

    let env = hooks::HookEnv {
        snapshot: name.clone(),
        group: group.clone(),
        volumes: names
            .iter()
            .map(|n| (n.clone(), mounts.mountpoints(n)))
            .collect(),
        status: String::new(),
    };
    let result = pre_hooks(pool, req, &name, &env)
        .and_then(|()| commit_frozen(engine, mounts, req, &name, group, &vols, &names));
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
    let (rec, steps) = result?;
    let auto_deleted = room.make(engine, mounts, &name);
    // The newest snapshot holds nothing on its own yet: none of what it sees is superseded.
    let snapshot = info_with(mounts, &rec, 0);
    let mut all = room.warnings;
    all.extend(warnings);
    Ok(CreateOutcome {
        snapshot,
        warnings: all,
        auto_deleted,
        steps,
    })
}

/// Runs the pre-snapshot hooks unless skipped; a failure aborts the create (untrusted hooks
/// always do, failing ones unless `--ignore-hook-errors`).
fn pre_hooks(
    pool: &Path,
    req: &CreateRequest,
    name: &str,
    env: &hooks::HookEnv,
) -> Result<(), CreateError> {
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
    Ok(())
}

/// Records the snapshot of `vols` in one transaction under the freeze, then the measured
/// pause.
fn commit_frozen(
    engine: &Engine,
    mounts: &dyn MountView,
    req: &CreateRequest,
    name: &str,
    group: Option<String>,
    vols: &[VolumeId],
    names: &[String],
) -> Result<(SnapshotRecord, CreateSteps), CreateError> {
    // Inside the pause only a copy and a place in the writer's queue; the hashing and the
    // transaction follow the thaw.
    let frozen = freeze::run(
        engine,
        mounts,
        vols,
        true,
        || engine.snapshot_seal(name, group, vols, &req.description, now_us()),
        |sealed| sealed.finish(),
    );
    let Frozen {
        value: rec,
        pause,
        steps,
    } = frozen.map_err(|e| match e {
        FreezeError::Fs(e) => CreateError::from(e),
        FreezeError::Barrier { volume, timeout } => CreateError::BarrierTimeout {
            snapshot: name.to_string(),
            volume: names[volume].clone(),
            timeout,
        },
        FreezeError::Action(e) => CreateError::Snap(e),
    })?;
    engine.snapshot_set_pause(name, pause.as_micros() as u64)?;
    Ok((
        SnapshotRecord {
            pause_us: pause.as_micros() as u64,
            ..rec
        },
        steps,
    ))
}
