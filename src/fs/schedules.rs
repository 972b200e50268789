//! The engine's side of snapshot schedules: their definitions and run state, which
//! snapshots each made, and which snapshots clones were made from (kept in the store, see
//! `crate::store::catalog::schedules`). The daemon's scheduler and `crate::snapshot::schedule`
//! drive these; each write is one transaction.

use crate::store::ReadView;
use crate::store::catalog::SnapshotRecord;
use crate::store::catalog::schedules::{ScheduleRecord, ScheduleRun};
use crate::types::{SnapshotId, VolumeId};

use super::Inner;
use super::groups::SnapError;

impl Inner {
    /// Every schedule, by name.
    pub fn schedules(&self) -> Result<Vec<ScheduleRecord>, SnapError> {
        Ok(self.store.read()?.schedules()?)
    }

    /// The schedule `name`; [`SnapError::NoSchedule`] when there is none.
    pub fn schedule(&self, name: &str) -> Result<ScheduleRecord, SnapError> {
        self.store
            .read()?
            .schedule(name)?
            .ok_or_else(|| SnapError::NoSchedule(name.to_string()))
    }

    /// How the schedule's runs went (the default before its first run is recorded).
    pub fn schedule_run(&self, name: &str) -> Result<ScheduleRun, SnapError> {
        Ok(self.store.read()?.schedule_run(name)?.unwrap_or_default())
    }

    /// Adds a schedule with its first run state; refused if the name is taken.
    pub fn schedule_add(&self, rec: ScheduleRecord, run: ScheduleRun) -> Result<(), SnapError> {
        crate::store::volumes::validate_name(&rec.name)?;
        self.store.write(true, move |tx| {
            if tx.schedule(&rec.name)?.is_some() {
                return Err(SnapError::ScheduleExists(rec.name));
            }
            tx.put_schedule(&rec)?;
            tx.put_schedule_run(&rec.name, &run)?;
            Ok(())
        })
    }

    /// Removes a schedule; the snapshots it made stay as ordinary snapshots.
    pub fn schedule_remove(&self, name: &str) -> Result<(), SnapError> {
        let name = name.to_string();
        self.store.write(true, move |tx| {
            if tx.schedule(&name)?.is_none() {
                return Err(SnapError::NoSchedule(name));
            }
            tx.remove_schedule(&name)?;
            Ok(())
        })
    }

    /// Turns a schedule on or off; returns it as stored.
    pub fn schedule_set_enabled(
        &self,
        name: &str,
        enabled: bool,
    ) -> Result<ScheduleRecord, SnapError> {
        let name = name.to_string();
        self.store.write(true, move |tx| {
            let mut rec = tx
                .schedule(&name)?
                .ok_or_else(|| SnapError::NoSchedule(name.clone()))?;
            rec.enabled = enabled;
            tx.put_schedule(&rec)?;
            Ok(rec)
        })
    }

    /// Records how a run went (kept only while the schedule exists).
    pub fn schedule_put_run(&self, name: &str, run: ScheduleRun) -> Result<(), SnapError> {
        let name = name.to_string();
        self.store.write(true, move |tx| {
            if tx.schedule(&name)?.is_some() {
                tx.put_schedule_run(&name, &run)?;
            }
            Ok(())
        })
    }

    /// Records that schedule `schedule` made snapshot `id`.
    pub fn snapshot_set_maker(&self, id: SnapshotId, schedule: &str) -> Result<(), SnapError> {
        let schedule = schedule.to_string();
        self.store.write(true, move |tx| {
            tx.put_snapshot_maker(id, &schedule)?;
            Ok(())
        })
    }

    /// The snapshots schedule `name` made that still exist, oldest first.
    pub fn snapshots_made_by(&self, name: &str) -> Result<Vec<SnapshotRecord>, SnapError> {
        let r = self.store.read()?;
        let made: Vec<SnapshotId> = r
            .snapshot_makers()?
            .into_iter()
            .filter(|(_, s)| s == name)
            .map(|(id, _)| id)
            .collect();
        Ok(r.snapshots()?
            .into_iter()
            .filter(|s| made.contains(&s.id))
            .collect())
    }

    /// Records that volumes `clones` were cloned from snapshot `origin`.
    pub fn snapshot_set_clone_origin(
        &self,
        clones: &[VolumeId],
        origin: SnapshotId,
    ) -> Result<(), SnapError> {
        let clones = clones.to_vec();
        self.store.write(true, move |tx| {
            for c in &clones {
                tx.put_clone_origin(*c, origin)?;
            }
            Ok(())
        })
    }

    /// The snapshots a volume that still exists was cloned from.
    pub fn clone_origins(&self) -> Result<Vec<SnapshotId>, SnapError> {
        let r = self.store.read()?;
        let mut out = Vec::new();
        for (vol, snap) in r.clone_origins()? {
            if r.volume(vol).is_ok() && !out.contains(&snap) {
                out.push(snap);
            }
        }
        Ok(out)
    }
}
