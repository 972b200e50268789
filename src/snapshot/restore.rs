//! Restore: making the live volumes equal to a snapshot, after an undo snapshot, under the
//! freeze (`freeze::run`) so that mounted volumes (with --online) change at one instant.
//!
//! Invariants: a restore applies every member in one transaction and keeps every snapshot
//! (the one restored is protected from auto-delete while the undo snapshot is taken); the
//! kernel's caches of the changed rows are dropped while the gates are still closed.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fs::groups::SnapError;
use crate::fs::{Engine, FsError};
use crate::types::VolumeId;

use super::MountView;
use super::create::{CreateError, CreateRequest, Target, create_protecting};
use super::freeze::{self, FreezeError, Frozen};

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
    // No flush hold: the restore flushes the members inside the freeze.
    let frozen = freeze::run(
        engine,
        mounts,
        &vols,
        false,
        || {
            let changed = engine.restore_generations(&members)?;
            for (v, rows) in &changed {
                mounts.invalidate(*v, rows);
            }
            Ok::<_, FsError>(changed)
        },
        Ok,
    );
    let Frozen {
        value: changed,
        pause,
        ..
    } = frozen.map_err(|e| match e {
        FreezeError::Fs(e) | FreezeError::Action(e) => RestoreError::from(e),
        FreezeError::Barrier { volume, timeout } => RestoreError::BarrierTimeout {
            snapshot: name.into(),
            volume: names[volume].clone(),
            timeout,
        },
    })?;
    Ok(RestoreOutcome {
        snapshot: name.into(),
        volumes: names,
        undo,
        rows_changed: changed.iter().map(|(_, r)| r.len()).sum(),
        notes,
        pause_us: pause.as_micros() as u64,
    })
}
