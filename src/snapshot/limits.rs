//! Snapshot limits (snap-max-hard-limit, snap-max-soft-limit, auto-delete, ...) and the
//! auto-delete that makes room for a new snapshot.
//!
//! Invariants:
//! - Everything is decided before the snapshot is attempted ([`plan`]): a create that the
//!   hard limit forbids fails before any hook runs, and a create that fails deletes nothing.
//! - Auto-delete runs only after the new snapshot is committed ([`Room::make`]): the volume
//!   holds one snapshot over its hard limit for that moment, never one under what the user
//!   had when the create fails.
//! - An activated snapshot (mounted read-only) or a held one (`tandem snapshot hold`) is
//!   never auto-deleted: the next oldest goes instead, and if none can go the create is
//!   refused before anything happens. Snapshots the caller protects (e.g. the one a restore
//!   is restoring) are never auto-deleted either.
//! - Every automatic delete is logged with the snapshot's and the volume's names.

use std::time::Duration;

use crate::fs::groups::SnapError;
use crate::fs::{Engine, FsError};
use crate::options::OptionScope;
use crate::store::catalog::SnapshotRecord;
use crate::types::VolumeId;

use super::{CreateError, MountView};

/// The snapshot settings in force for one volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub hard: u64,
    pub soft_percent: u64,
    pub auto_delete: bool,
    pub activate_on_create: bool,
    pub barrier_timeout: Duration,
}

impl Limits {
    pub fn soft(&self) -> u64 {
        (self.hard * self.soft_percent / 100).max(1)
    }
}

/// Effective limits of a volume: the lower hard limit of system and volume; other settings
/// from the volume when set there, else system-wide.
pub fn limits(engine: &Engine, vol: VolumeId) -> Result<Limits, FsError> {
    let sys = engine.options(OptionScope::System)?;
    let own = engine.options(OptionScope::Volume(vol))?;
    let hard = match own.snap_max_hard_limit {
        Some(h) => sys.hard_limit().min(h),
        None => sys.hard_limit(),
    };
    let eff = own.over(&sys);
    Ok(Limits {
        hard,
        soft_percent: eff.soft_limit_percent(),
        auto_delete: eff.auto_delete(),
        activate_on_create: eff.activate_on_create(),
        barrier_timeout: eff.barrier_timeout(),
    })
}

/// Snapshots that include a volume, oldest first.
pub(super) fn snapshots_of(
    engine: &Engine,
    vol: VolumeId,
) -> Result<Vec<SnapshotRecord>, SnapError> {
    Ok(engine
        .snapshots()?
        .into_iter()
        .filter(|s| s.members.iter().any(|m| m.vol == vol))
        .collect())
}

/// One snapshot auto-delete will remove once the new snapshot is committed.
#[derive(Debug, Clone)]
struct Doomed {
    snapshot: String,
    volume: String,
    /// Shown to the user after the delete (a soft-limit delete), if any.
    note: Option<String>,
}

/// What a create must do about the limits: warnings to show, snapshots to delete after
/// the commit.
#[derive(Debug, Default)]
pub(super) struct Room {
    pub warnings: Vec<String>,
    doomed: Vec<Doomed>,
}

/// Decides, before anything happens, what the limits require of a new snapshot of `vols`.
/// Fails if a member is at its hard limit and auto-delete is off, or if it cannot make
/// room because the snapshots it could delete are activated or protected.
pub(super) fn plan(
    engine: &Engine,
    mounts: &dyn MountView,
    vols: &[VolumeId],
    names: &[String],
    protect: &[&str],
) -> Result<Room, CreateError> {
    let mut room = Room::default();
    let holds: Vec<String> = engine
        .snapshot_holds(None)?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    for (i, &v) in vols.iter().enumerate() {
        let lim = limits(engine, v)?;
        // Snapshots of this volume that will still be there (others' plans count).
        let existing: Vec<SnapshotRecord> = snapshots_of(engine, v)?
            .into_iter()
            .filter(|s| !room.doomed.iter().any(|d| d.snapshot == s.name))
            .collect();
        let held = |s: &SnapshotRecord| {
            protect.contains(&s.name.as_str())
                || holds.contains(&s.name)
                || !mounts.snapshot_mounts(&s.name).is_empty()
        };
        let mut deletable = existing.iter().filter(|s| !held(s));
        let count = existing.len() as u64;
        let mut need = 0;
        if count >= lim.hard {
            if !lim.auto_delete {
                return Err(CreateError::HardLimit {
                    volume: names[i].clone(),
                    count: existing.len(),
                    limit: lim.hard,
                });
            }
            need = count + 1 - lim.hard;
            for _ in 0..need {
                let Some(s) = deletable.next() else {
                    let held: Vec<&str> = existing
                        .iter()
                        .filter(|s| held(s))
                        .map(|s| s.name.as_str())
                        .collect();
                    return Err(CreateError::NoRoom {
                        volume: names[i].clone(),
                        limit: lim.hard,
                        held: held.join(", "),
                    });
                };
                room.doomed.push(Doomed {
                    snapshot: s.name.clone(),
                    volume: names[i].clone(),
                    note: None,
                });
            }
        }
        let after = count + 1 - need;
        if after < lim.soft() {
            continue;
        }
        if !lim.auto_delete {
            room.warnings.push(format!(
                "volume '{}' has {after} snapshots, at or past its soft limit {} (hard limit {}); delete old ones or turn auto-delete on",
                names[i],
                lim.soft(),
                lim.hard
            ));
        } else if let Some(s) = deletable.next() {
            room.doomed.push(Doomed {
                snapshot: s.name.clone(),
                volume: names[i].clone(),
                note: Some(format!(
                    "volume '{}' reached its soft limit ({} of hard limit {}): deleted the oldest snapshot '{}' that is not activated (auto-delete on)",
                    names[i],
                    lim.soft(),
                    lim.hard,
                    s.name
                )),
            });
        } else if count > 0 {
            room.warnings.push(format!(
                "volume '{}' has {after} snapshots, at or past its soft limit {} (hard limit {}), and auto-delete found none it may delete (activated and held ones are kept); deactivate, release or delete old ones",
                names[i],
                lim.soft(),
                lim.hard
            ));
        }
    }
    Ok(room)
}

impl Room {
    /// Deletes what the plan doomed; called only once the new snapshot is committed.
    /// Returns the names deleted. A delete that fails is logged and reported as a warning.
    pub fn make(&mut self, engine: &Engine, mounts: &dyn MountView, new: &str) -> Vec<String> {
        let mut deleted = Vec::new();
        for d in std::mem::take(&mut self.doomed) {
            // Activated since the plan was made: keep it.
            if !mounts.snapshot_mounts(&d.snapshot).is_empty() {
                let msg = format!(
                    "auto-delete kept snapshot '{}' of volume '{}': it was activated meanwhile",
                    d.snapshot, d.volume
                );
                tracing::warn!("{msg}");
                self.warnings.push(msg);
                continue;
            }
            match engine.snapshot_delete(&d.snapshot) {
                Ok(_) => {
                    tracing::info!(
                        "auto-delete: deleted snapshot '{}' of volume '{}' to make room for '{new}'",
                        d.snapshot,
                        d.volume
                    );
                    self.warnings.extend(d.note);
                    deleted.push(d.snapshot);
                }
                Err(e) => {
                    let msg = format!(
                        "auto-delete could not delete snapshot '{}' of volume '{}': {e}; delete it by hand (tandem snapshot delete {})",
                        d.snapshot, d.volume, d.snapshot
                    );
                    tracing::warn!("{msg}");
                    self.warnings.push(msg);
                }
            }
        }
        deleted
    }
}
