//! Snapshot schedules, kept in the pool: what each schedule does (`schedules`), how its
//! runs went (`schedule_runs`), which snapshots a schedule made (`snapshot_makers`) and
//! which snapshot each clone was made from (`clone_origins`). See [`crate::store::tables`] for the
//! encodings. Read through [`crate::store::ReadView`]; written here.
//!
//! Invariants: a schedule's definition and its run state are separate records, so a run
//! rewrites only the small state; a snapshot's maker row is removed with the snapshot
//! (`crate::fs::groups`); clone origin rows are never removed (volume ids are never reused,
//! so a row whose clone volume is gone is simply ignored).

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::decode;
use crate::store::error::StoreError;
use crate::store::writer::Tx;
use crate::types::{SnapshotId, VolumeId};

/// What a schedule snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScheduleTarget {
    Group(String),
    Volume(String),
}

/// When a schedule runs. Postcard encodes the variant's index, so adding a variant keeps
/// existing records readable (a build that does not know the variant refuses the pool by its
/// schema version instead: `Cron` came with schema 6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Every {
    /// A fixed interval, in milliseconds.
    Interval { ms: u64 },
    /// A five-field cron expression in UTC, as given (parsed by `crate::snapshot::cron`).
    Cron { expr: String },
}

/// Retention in sanoid's terms: the newest snapshot of each of the last `hourly` hours,
/// `daily` days, `weekly` ISO weeks, `monthly` months and `yearly` years (UTC) that have
/// one, plus the `latest` newest.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keep {
    pub latest: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
}

/// A schedule's definition (key: its name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRecord {
    pub name: String,
    pub target: ScheduleTarget,
    pub every: Every,
    /// None: nothing is pruned (only the snapshot limits apply).
    pub keep: Option<Keep>,
    pub description: String,
    pub enabled: bool,
    /// A restore-test command run on each new snapshot (`schedule add --test CMD`).
    pub test: Option<String>,
    pub created_us: i64,
}

/// How a schedule's runs went (key: its name). Times in microseconds since the epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleRun {
    /// When the next run is due.
    pub next_us: i64,
    /// The last attempt, successful or not.
    pub last_run_us: Option<i64>,
    /// The last snapshot it made.
    pub last_snapshot: Option<String>,
    /// Why the last attempt failed (None after a success).
    pub last_error: Option<String>,
    /// Failed attempts in a row (the retry backoff grows with it).
    pub failures: u32,
}

fn encode<T: Serialize>(what: &str, v: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(v).map_err(|e| StoreError::Damaged(format!("{what}: {e}")))
}

pub(in crate::store) fn schedule<T: ReadableTable<&'static str, &'static [u8]>>(
    t: &T,
    name: &str,
) -> Result<Option<ScheduleRecord>, StoreError> {
    t.get(name)?
        .map(|v| decode("schedule", v.value()))
        .transpose()
}

pub(in crate::store) fn all<
    R: for<'a> Deserialize<'a>,
    T: ReadableTable<&'static str, &'static [u8]>,
>(
    t: &T,
    what: &str,
) -> Result<Vec<R>, StoreError> {
    let mut out = Vec::new();
    for e in t.iter()? {
        let (_, v) = e?;
        out.push(decode(what, v.value())?);
    }
    Ok(out)
}

pub(in crate::store) fn run<T: ReadableTable<&'static str, &'static [u8]>>(
    t: &T,
    name: &str,
) -> Result<Option<ScheduleRun>, StoreError> {
    t.get(name)?
        .map(|v| decode("schedule run", v.value()))
        .transpose()
}

/// Every (snapshot, the schedule that made it).
pub(in crate::store) fn makers<T: ReadableTable<u64, &'static str>>(
    t: &T,
) -> Result<Vec<(SnapshotId, String)>, StoreError> {
    let mut out = Vec::new();
    for e in t.iter()? {
        let (k, v) = e?;
        out.push((SnapshotId(k.value()), v.value().to_string()));
    }
    Ok(out)
}

/// Every (clone volume, the snapshot it was made from).
pub(in crate::store) fn clone_origins<T: ReadableTable<u64, u64>>(
    t: &T,
) -> Result<Vec<(VolumeId, SnapshotId)>, StoreError> {
    let mut out = Vec::new();
    for e in t.iter()? {
        let (k, v) = e?;
        out.push((VolumeId(k.value()), SnapshotId(v.value())));
    }
    Ok(out)
}

impl Tx<'_> {
    pub fn put_schedule(&mut self, s: &ScheduleRecord) -> Result<(), StoreError> {
        self.schedules
            .insert(s.name.as_str(), encode("schedule", s)?.as_slice())?;
        Ok(())
    }

    /// Removes a schedule and its run state; the snapshots it made stay, as ordinary ones.
    pub fn remove_schedule(&mut self, name: &str) -> Result<(), StoreError> {
        self.schedules.remove(name)?;
        self.schedule_runs.remove(name)?;
        let made: Vec<u64> = makers(&self.snapshot_makers)?
            .into_iter()
            .filter(|(_, s)| s == name)
            .map(|(id, _)| id.0)
            .collect();
        for id in made {
            self.snapshot_makers.remove(id)?;
        }
        Ok(())
    }

    pub fn put_schedule_run(&mut self, name: &str, r: &ScheduleRun) -> Result<(), StoreError> {
        self.schedule_runs
            .insert(name, encode("schedule run", r)?.as_slice())?;
        Ok(())
    }

    /// Records that schedule `schedule` made snapshot `id`.
    pub fn put_snapshot_maker(&mut self, id: SnapshotId, schedule: &str) -> Result<(), StoreError> {
        self.snapshot_makers.insert(id.0, schedule)?;
        Ok(())
    }

    pub fn remove_snapshot_maker(&mut self, id: SnapshotId) -> Result<(), StoreError> {
        self.snapshot_makers.remove(id.0)?;
        Ok(())
    }

    /// Records that volume `clone` was cloned from snapshot `origin`.
    pub fn put_clone_origin(
        &mut self,
        clone: VolumeId,
        origin: SnapshotId,
    ) -> Result<(), StoreError> {
        self.clone_origins.insert(clone.0, origin.0)?;
        Ok(())
    }
}
