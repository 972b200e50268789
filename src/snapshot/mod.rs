//! Group snapshots: the coordinator between the engine's snapshot records and the mounts.
//! Each responsibility has its own module:
//!
//! - `create`: taking a snapshot of a group (all members at one instant) or of one
//!   ungrouped volume: naming, limits, hooks, the commit under a freeze.
//! - `freeze`: the one freeze sequence (tight → flush → close the gates → drain → action →
//!   thaw → sync) that create and online restore share.
//! - `restore`, `clone`, `diff`: making live volumes equal to a snapshot, writable volumes
//!   from a snapshot, what changed between two states.
//! - `delete`: which snapshots a `snapshot delete` removes, and removing them.
//! - `info`: a snapshot as the CLI shows it.
//! - `verify`: the snapshot's Merkle root (recorded after the thaw) and `snapshot verify`.
//! - `test`: what a restore test (`snapshot test`) is asked and reports; the daemon runs it.
//! - `retention`, `schedule`: which snapshots a schedule keeps (sanoid's `--keep` buckets,
//!   a pure function), pruning the rest, and the retry backoff of a failing schedule.
//! - `limits`: the snapshot settings and the auto-delete that makes room; `hooks`: the pre-
//!   and post-snapshot hooks; `volume`: when a volume may be deleted; `clock`: times and the
//!   `--timestamp` name suffix.
//!
//! Why a freeze gives a consistent cut: a write that returned to an application before the
//! gates closed is in the daemon (buffered or committed) and the commit includes it; a write
//! held at a gate has not returned, so nothing the application did after it can be in the
//! snapshot either. Reads are never held.

mod child;
mod clock;
pub use clock::{rfc3339, utc_time};
mod clone;
mod create;
pub mod cron;
mod delete;
mod diff;
mod freeze;
pub mod hooks;
mod info;
mod limits;
mod restore;
pub mod retention;
pub mod schedule;
pub mod test;
pub mod verify;
mod volume;

use std::path::PathBuf;
use std::sync::Arc;

pub use clone::{CloneOutcome, clone};
pub use create::{CreateError, CreateOutcome, CreateRequest, CreateSteps, Target, create};
pub use delete::{DeleteWhich, delete, delete_list, refuse_held};
pub use diff::diff;
pub use info::{SnapshotInfo, info};
pub use limits::{Limits, limits};
pub use restore::{RestoreError, RestoreOutcome, restore};
pub use verify::{SnapshotVerifyReport, record_missing_roots};
pub use volume::{VolumeDeleteError, delete_volume};

use crate::fuse::Gate;
use crate::types::VolumeId;

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
