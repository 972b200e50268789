//! [`Engine`]'s snapshot lifecycle: holds (holds.rs) and schedules (schedules.rs).

use super::Engine;
use crate::fs::groups::SnapError;
use crate::store::catalog::SnapshotRecord;
use crate::store::catalog::holds::Hold;
use crate::store::catalog::schedules::{ScheduleRecord, ScheduleRun};
use crate::types::{SnapshotId, VolumeId};

/// # Holds
///
/// A held snapshot is deleted by nothing until every hold is released.
impl Engine {
    /// Places hold `tag` on snapshot `name` (`now_us`: when); false if the tag was already
    /// there.
    pub fn snapshot_hold(&self, name: &str, tag: &str, now_us: i64) -> Result<bool, SnapError> {
        self.inner.snapshot_hold(name, tag, now_us)
    }

    /// Releases hold `tag` of snapshot `name`; refused (naming the holds it has) when it
    /// has no such hold.
    pub fn snapshot_release(&self, name: &str, tag: &str) -> Result<(), SnapError> {
        self.inner.snapshot_release(name, tag)
    }

    /// The holds of snapshot `name`, or of every snapshot: (snapshot, hold).
    pub fn snapshot_holds(&self, name: Option<&str>) -> Result<Vec<(String, Hold)>, SnapError> {
        self.inner.snapshot_holds(name)
    }
}

/// # Schedules
///
/// Definitions and run state of snapshot schedules, the snapshots each made, and the
/// snapshots clones were made from (what pruning must spare).
impl Engine {
    /// Every schedule, by name.
    pub fn schedules(&self) -> Result<Vec<ScheduleRecord>, SnapError> {
        self.inner.schedules()
    }

    /// The schedule `name`; [`SnapError::NoSchedule`] when there is none.
    pub fn schedule(&self, name: &str) -> Result<ScheduleRecord, SnapError> {
        self.inner.schedule(name)
    }

    /// How the schedule's runs went.
    pub fn schedule_run(&self, name: &str) -> Result<ScheduleRun, SnapError> {
        self.inner.schedule_run(name)
    }

    /// Adds a schedule with its first run state; refused if the name is taken.
    pub fn schedule_add(&self, rec: ScheduleRecord, run: ScheduleRun) -> Result<(), SnapError> {
        self.inner.schedule_add(rec, run)
    }

    /// Removes a schedule; the snapshots it made stay as ordinary snapshots.
    pub fn schedule_remove(&self, name: &str) -> Result<(), SnapError> {
        self.inner.schedule_remove(name)
    }

    /// Turns a schedule on or off.
    pub fn schedule_set_enabled(
        &self,
        name: &str,
        enabled: bool,
    ) -> Result<ScheduleRecord, SnapError> {
        self.inner.schedule_set_enabled(name, enabled)
    }

    /// Records how a run went.
    pub fn schedule_put_run(&self, name: &str, run: ScheduleRun) -> Result<(), SnapError> {
        self.inner.schedule_put_run(name, run)
    }

    /// Records that schedule `schedule` made snapshot `id`.
    pub fn snapshot_set_maker(&self, id: SnapshotId, schedule: &str) -> Result<(), SnapError> {
        self.inner.snapshot_set_maker(id, schedule)
    }

    /// The snapshots schedule `name` made that still exist, oldest first.
    pub fn snapshots_made_by(&self, name: &str) -> Result<Vec<SnapshotRecord>, SnapError> {
        self.inner.snapshots_made_by(name)
    }

    /// Records that volumes `clones` were cloned from snapshot `origin`.
    pub fn snapshot_set_clone_origin(
        &self,
        clones: &[VolumeId],
        origin: SnapshotId,
    ) -> Result<(), SnapError> {
        self.inner.snapshot_set_clone_origin(clones, origin)
    }

    /// The snapshots a volume that still exists was cloned from.
    pub fn clone_origins(&self) -> Result<Vec<SnapshotId>, SnapError> {
        self.inner.clone_origins()
    }
}
