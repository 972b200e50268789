//! Restore, clone and diff of snapshots: making live volumes equal to a snapshot (under a
//! freeze when they are mounted, after an undo snapshot), writable clones that share the
//! snapshot's chunks, and what changed between two states.
//!
//! Invariants: a restore applies every member in one transaction and keeps every snapshot
//! (the one restored is protected from auto-delete while the undo snapshot is taken); a
//! clone is all or nothing.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::fs::snap::SnapError;
use crate::fs::{Engine, FsError};
use crate::types::VolumeId;

use super::{
    CreateError, CreateRequest, Freeze, MountView, Target, Tight, create_protecting, limits,
    pre_flush,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreOutcome {
    pub snapshot: String,
    pub volumes: Vec<String>,
    /// The snapshot of the state before the restore (None with --no-undo).
    pub undo: Option<String>,
    pub rows_changed: usize,
    pub notes: Vec<String>,
    pub pause_us: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Snap(#[from] SnapError),
    #[error(transparent)]
    Create(#[from] CreateError),
    #[error("cannot restore '{snapshot}': member volume '{volume}' was deleted")]
    MemberGone { snapshot: String, volume: String },
    #[error(
        "cannot restore '{snapshot}' while its volumes are mounted ({mounts}); unmount them first, or pass --online to restore under the running mounts"
    )]
    Mounted { snapshot: String, mounts: String },
    #[error(
        "restore of '{snapshot}' aborted: volume '{volume}' did not quiesce within {timeout:?}; nothing changed"
    )]
    BarrierTimeout {
        snapshot: String,
        volume: String,
        timeout: Duration,
    },
}

impl From<FsError> for RestoreError {
    fn from(e: FsError) -> Self {
        RestoreError::Snap(SnapError::Fs(e))
    }
}

/// Makes the live volumes (every recorded member) equal to the snapshot, in one transaction,
/// after taking an undo snapshot. Keeps the snapshot and every later one.
pub fn restore(
    engine: &Engine,
    pool: &Path,
    mounts: &dyn MountView,
    name: &str,
    no_undo: bool,
    online: bool,
) -> Result<RestoreOutcome, RestoreError> {
    let rec = engine.snapshot(name)?;
    let mut notes = Vec::new();
    let mut members = Vec::new();
    for m in &rec.members {
        if engine.record(m.vol).is_err() {
            return Err(RestoreError::MemberGone {
                snapshot: name.into(),
                volume: m.name.clone(),
            });
        }
        members.push((m.vol, m.generation));
    }
    let names: Vec<String> = rec.members.iter().map(|m| m.name.clone()).collect();
    if let Some(g) = &rec.group {
        let now: Vec<String> = match engine.group(g) {
            Ok(gr) => gr
                .members
                .iter()
                .filter_map(|v| engine.record(*v).ok().map(|r| r.name))
                .collect(),
            Err(_) => Vec::new(),
        };
        let (mut a, mut b) = (now.clone(), names.clone());
        a.sort();
        b.sort();
        if a != b {
            notes.push(format!(
                "group '{g}' now has [{}] but the snapshot recorded [{}]: restoring the recorded members",
                now.join(" "),
                names.join(" ")
            ));
        }
    }
    let mounted: Vec<String> = names
        .iter()
        .flat_map(|n| {
            mounts
                .mountpoints(n)
                .into_iter()
                .map(move |m| format!("{n} at {}", m.display()))
        })
        .collect();
    if !mounted.is_empty() && !online {
        return Err(RestoreError::Mounted {
            snapshot: name.into(),
            mounts: mounted.join(", "),
        });
    }
    let undo_target = match &rec.group {
        Some(g) if engine.group(g).is_ok() => Some(Target::Group(g.clone())),
        None if engine.group_of(rec.members[0].vol)?.is_none() => {
            Some(Target::Volume(names[0].clone()))
        }
        _ => None,
    };
    let undo = match (no_undo, undo_target) {
        (true, _) => None,
        (false, None) => {
            notes.push("no undo snapshot: the snapshot's group no longer exists or its volume is now grouped".into());
            None
        }
        (false, Some(target)) => {
            let req = CreateRequest {
                name: format!("{name}-undo"),
                target,
                description: format!("state before restoring {name}"),
                timestamp: true,
                skip_hooks: true,
                ignore_hook_errors: false,
            };
            Some(
                create_protecting(engine, pool, mounts, &req, &[name])?
                    .snapshot
                    .name,
            )
        }
    };
    let vols: Vec<VolumeId> = members.iter().map(|(v, _)| *v).collect();
    let _tight = Tight::on(engine, &vols);
    pre_flush(engine, &vols)?;
    let barrier = vols
        .iter()
        .filter_map(|v| limits(engine, *v).ok())
        .map(|l| l.barrier_timeout)
        .min()
        .unwrap_or(Duration::from_secs(10));
    let freeze = Freeze::close(mounts, &vols);
    if let Err(i) = freeze.drain(barrier) {
        return Err(RestoreError::BarrierTimeout {
            snapshot: name.into(),
            volume: names[i].clone(),
            timeout: barrier,
        });
    }
    let result = engine.restore_generations(&members);
    if let Ok(changed) = &result {
        for (v, rows) in changed {
            mounts.invalidate(*v, rows);
        }
    }
    let pause = freeze.thaw();
    let changed = result?;
    engine.store().sync().map_err(FsError::from)?;
    Ok(RestoreOutcome {
        snapshot: name.into(),
        volumes: names,
        undo,
        rows_changed: changed.iter().map(|(_, r)| r.len()).sum(),
        notes,
        pause_us: pause.as_micros() as u64,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloneOutcome {
    pub group: Option<String>,
    pub volumes: Vec<String>,
}

/// Writable volumes from a snapshot, sharing its chunks: a volume NEW for a volume
/// snapshot; a group NEW with volumes NEW-MEMBER for a group snapshot. All or nothing.
pub fn clone(engine: &Engine, new: &str, snap: &str) -> Result<CloneOutcome, SnapError> {
    let rec = engine.snapshot(snap)?;
    crate::store::volumes::validate_name(new)?;
    let grouped = rec.group.is_some();
    let names: Vec<String> = if grouped {
        rec.members
            .iter()
            .map(|m| format!("{new}-{}", m.name))
            .collect()
    } else {
        vec![new.to_string()]
    };
    for n in &names {
        crate::store::volumes::validate_name(n)?;
        if engine.volume_id(n).is_ok() {
            return Err(SnapError::Fs(FsError::Store(
                crate::store::StoreError::VolumeExists { name: n.clone() },
            )));
        }
    }
    if grouped && engine.group(new).is_ok() {
        return Err(SnapError::GroupExists(new.to_string()));
    }
    let mut made = Vec::new();
    for (m, n) in rec.members.iter().zip(&names) {
        match engine.clone_generation(m.vol, m.generation, n) {
            Ok(_) => made.push(n.clone()),
            Err(e) => {
                for done in &made {
                    let _ = engine.delete_volume(done);
                }
                return Err(e.into());
            }
        }
    }
    let group = if grouped {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        engine.group_create(new, &made, now)?;
        Some(new.to_string())
    } else {
        None
    };
    Ok(CloneOutcome {
        group,
        volumes: made,
    })
}

/// `snapshot diff`: per member volume, what changed from `snap` to `other` (a later or
/// earlier snapshot) or to the live volume.
pub fn diff(
    engine: &Engine,
    snap: &str,
    other: Option<&str>,
    volume: Option<&str>,
) -> Result<Vec<(String, Vec<crate::fs::restore::DiffEntry>)>, SnapError> {
    let rec = engine.snapshot(snap)?;
    let other = other.map(|o| engine.snapshot(o)).transpose()?;
    let mut out = Vec::new();
    for m in &rec.members {
        if volume.is_some_and(|v| v != m.name) {
            continue;
        }
        use crate::store::rows::View;
        let entries = match &other {
            Some(o) => match crate::fs::snap::member_generation(o, m.vol) {
                // Always from the older generation to the newer one.
                Some(g) if g < m.generation => engine.diff(m.vol, g, View::At(m.generation))?,
                Some(g) => engine.diff(m.vol, m.generation, View::At(g))?,
                None => continue,
            },
            None => engine.diff(m.vol, m.generation, View::Live)?,
        };
        out.push((m.name.clone(), entries));
    }
    if let Some(v) = volume
        && out.is_empty()
    {
        return Err(SnapError::Fs(FsError::Store(
            crate::store::StoreError::NoSuchVolume {
                name: format!("{v} (in snapshot {snap})"),
            },
        )));
    }
    Ok(out)
}
