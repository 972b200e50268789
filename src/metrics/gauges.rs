//! The gauges read from the pool at each scrape, through the engine's typed API (no store
//! table is opened here): pool space and dedup, per volume space, files, buffered (dirty)
//! bytes and snapshots, snapshots per group, and per schedule how its runs go; with them,
//! labelled with the names read here, the per volume data counters (`super::io`) and the
//! unique bytes of live volumes and snapshots cached by `super::unique`.
//!
//! Invariants: a scrape reads, never writes, flushes or waits for the writer (unlike `tandem
//! df`, which commits first, these figures lag buffered writes by at most the commit
//! interval); the engine is held weakly between scrapes; a read that fails leaves its
//! series out and sets `tandem_scrape_error` to 1 (the reason goes to the log), the rest is
//! still shown. Per volume series carry the volume's name as committed at the scrape. A
//! scrape's cost grows with the number of series (volumes, snapshots, groups, schedules),
//! never with the data: what needs a walk of rows or changes is `super::unique`'s.

use std::collections::BTreeMap;
use std::sync::{Arc, Weak};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

use super::VolumeLabel;
use super::unique::{Cached, Unique};
use crate::fs::Engine;
use crate::store::PoolStats;
use crate::types::VolumeId;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabel {
    group: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScheduleLabel {
    schedule: String,
}

/// The scrape-time gauges of one pool.
#[derive(Debug)]
pub(super) struct PoolGauges {
    pub engine: Weak<Engine>,
    pub unique: Arc<Unique>,
}

#[derive(Default)]
struct VolumeRow {
    logical: u64,
    physical: u64,
    files: u64,
    dirty: u64,
    snapshots: u64,
    /// Bytes only the live volume holds, and bytes each of its snapshots alone holds
    /// summed over them, with their ages (absent until a pass computed them, see
    /// `super::unique`).
    unique: Option<Cached>,
}

struct ScheduleRow {
    enabled: bool,
    /// Seconds since the last attempt.
    last_run_age: Option<f64>,
    /// The last attempt succeeded.
    last_ok: Option<bool>,
    failures: u32,
    /// Seconds until the next run is due (negative: overdue).
    next_in: f64,
    /// Seconds since the newest snapshot the schedule made that still exists.
    last_snapshot_age: Option<f64>,
}

#[derive(Default)]
struct Figures {
    pool: Option<PoolStats>,
    volumes: BTreeMap<String, VolumeRow>,
    /// Each volume's name, by id.
    names: BTreeMap<VolumeId, String>,
    groups: BTreeMap<String, u64>,
    snapshots: Option<u64>,
    schedules: BTreeMap<String, ScheduleRow>,
    /// Some read failed (logged).
    failed: bool,
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn age(now: i64, then_us: i64) -> f64 {
    (now - then_us) as f64 / 1e6
}

impl Figures {
    fn read(e: &Engine, unique: &Arc<Unique>) -> Figures {
        let mut f = Figures::default();
        let failed = |what: &str, err: &dyn std::fmt::Display| {
            tracing::warn!("metrics: cannot read {what}: {err}");
            true
        };
        match e.store().stats() {
            Ok(s) => f.pool = Some(s),
            Err(err) => f.failed |= failed("the pool's space", &err),
        }
        let mut names = BTreeMap::new();
        match e.committed_volumes() {
            Ok(vols) => {
                for v in vols {
                    names.insert(v.id, v.name.clone());
                    f.volumes.insert(
                        v.name,
                        VolumeRow {
                            logical: v.logical_bytes,
                            physical: v.physical_bytes,
                            files: v.files,
                            ..VolumeRow::default()
                        },
                    );
                }
            }
            Err(err) => f.failed |= failed("the volumes", &err),
        }
        for (vol, bytes) in e.dirty_bytes() {
            if let Some(row) = names.get(&vol).and_then(|n| f.volumes.get_mut(n)) {
                row.dirty = bytes;
            }
        }
        let (cached, unique_failed) = unique.scrape(e);
        f.failed |= unique_failed;
        for (vol, figures) in cached {
            if let Some(row) = names.get(&vol).and_then(|n| f.volumes.get_mut(n)) {
                row.unique = Some(figures);
            }
        }
        match e.groups() {
            Ok(groups) => {
                for g in groups {
                    f.groups.insert(g.name, 0);
                }
            }
            Err(err) => f.failed |= failed("the groups", &err),
        }
        match e.snapshots() {
            Ok(snaps) => {
                f.snapshots = Some(snaps.len() as u64);
                for s in &snaps {
                    if let Some(n) = s.group.as_ref().and_then(|g| f.groups.get_mut(g)) {
                        *n += 1;
                    }
                    for m in &s.members {
                        if let Some(row) = names.get(&m.vol).and_then(|n| f.volumes.get_mut(n)) {
                            row.snapshots += 1;
                        }
                    }
                }
            }
            Err(err) => f.failed |= failed("the snapshots", &err),
        }
        let now = now_us();
        match e.schedules() {
            Ok(scheds) => {
                for s in scheds {
                    let run = match e.schedule_run(&s.name) {
                        Ok(r) => r,
                        Err(err) => {
                            f.failed |= failed(&format!("schedule '{}'", s.name), &err);
                            continue;
                        }
                    };
                    let last_snapshot_age = match e.snapshots_made_by(&s.name) {
                        Ok(made) => made.iter().map(|r| r.created_us).max().map(|t| age(now, t)),
                        Err(err) => {
                            f.failed |= failed(&format!("schedule '{}'", s.name), &err);
                            None
                        }
                    };
                    f.schedules.insert(
                        s.name,
                        ScheduleRow {
                            enabled: s.enabled,
                            last_run_age: run.last_run_us.map(|t| age(now, t)),
                            last_ok: run.last_run_us.map(|_| run.last_error.is_none()),
                            failures: run.failures,
                            next_in: -age(now, run.next_us),
                            last_snapshot_age,
                        },
                    );
                }
            }
            Err(err) => f.failed |= failed("the schedules", &err),
        }
        f.names = names;
        f
    }
}

/// One unlabelled gauge.
fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: impl EncodeGaugeValue + std::fmt::Debug,
) -> std::fmt::Result {
    let m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(v).encode(m)
}

/// One gauge per label set.
fn gauges<'a, L: EncodeLabelSet + 'a, N: EncodeGaugeValue + std::fmt::Debug + Copy>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, N)>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (l, v) in rows {
        ConstGauge::new(v).encode(m.encode_family(&l)?)?;
    }
    Ok(())
}

fn per_volume<N: EncodeGaugeValue + std::fmt::Debug + Copy>(
    enc: &mut DescriptorEncoder,
    f: &Figures,
    name: &str,
    help: &str,
    v: impl Fn(&VolumeRow) -> Option<N>,
) -> std::fmt::Result {
    let rows = f
        .volumes
        .iter()
        .filter_map(|(n, r)| v(r).map(|v| (VolumeLabel { volume: n.clone() }, v)));
    gauges(enc, name, help, rows)
}

fn per_schedule<N: EncodeGaugeValue + std::fmt::Debug + Copy>(
    enc: &mut DescriptorEncoder,
    f: &Figures,
    name: &str,
    help: &str,
    v: impl Fn(&ScheduleRow) -> Option<N>,
) -> std::fmt::Result {
    let rows = f.schedules.iter().filter_map(|(n, r)| {
        v(r).map(|v| {
            (
                ScheduleLabel {
                    schedule: n.clone(),
                },
                v,
            )
        })
    });
    gauges(enc, name, help, rows)
}

impl Collector for PoolGauges {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        // The engine is held only while it is read.
        let f = match self.engine.upgrade() {
            Some(e) => Figures::read(&e, &self.unique),
            None => return Ok(()),
        };
        let enc = &mut enc;
        super::global().io.encode(enc, &f.names)?;
        gauge(
            enc,
            "scrape_error",
            "1 when a figure of this scrape could not be read (see the daemon's log)",
            u64::from(f.failed),
        )?;
        if let Some(p) = &f.pool {
            gauge(
                enc,
                "pool_logical_bytes",
                "Sum of the sizes of every live file of every volume",
                p.logical_bytes,
            )?;
            gauge(
                enc,
                "pool_referenced_bytes",
                "Bytes referenced by all extents, live and snapshot, each reference counted",
                p.referenced_bytes,
            )?;
            gauge(
                enc,
                "pool_physical_bytes",
                "Bytes of distinct chunks: what the data occupies once deduplicated",
                p.physical_bytes,
            )?;
            gauge(
                enc,
                "pool_disk_bytes",
                "Bytes the pack files occupy on disk",
                p.disk_bytes,
            )?;
            gauge(
                enc,
                "pool_dedup_ratio",
                "Referenced bytes over physical bytes (1 when nothing is shared)",
                p.dedup_ratio(),
            )?;
        }
        if let Some(n) = f.snapshots {
            gauge(enc, "snapshots", "Snapshots in the pool", n)?;
        }
        per_volume(
            enc,
            &f,
            "volume_logical_bytes",
            "Sum of the sizes of the volume's files (committed)",
            |r| Some(r.logical),
        )?;
        per_volume(
            enc,
            &f,
            "volume_physical_bytes",
            "Bytes of chunks the live volume references, before dedup with other volumes",
            |r| Some(r.physical),
        )?;
        per_volume(enc, &f, "volume_files", "Files of the volume", |r| {
            Some(r.files)
        })?;
        per_volume(
            enc,
            &f,
            "volume_dirty_bytes",
            "Bytes written to the volume and buffered, not flushed yet",
            |r| Some(r.dirty),
        )?;
        per_volume(
            enc,
            &f,
            "volume_snapshots",
            "Snapshots that hold the volume",
            |r| Some(r.snapshots),
        )?;
        per_volume(
            enc,
            &f,
            "volume_snapshot_unique_bytes",
            "Sum over the volume's snapshots of the bytes each alone holds: what deleting it alone frees, before dedup (tandem snapshot info's figure; computed in the background, see volume_snapshot_unique_age_seconds)",
            |r| r.unique.and_then(|u| u.snapshots).map(|s| s.bytes),
        )?;
        per_volume(
            enc,
            &f,
            "volume_snapshot_unique_age_seconds",
            "Seconds since the pool was last known to be as volume_snapshot_unique_bytes describes it",
            |r| r.unique.and_then(|u| u.snapshots).map(|s| s.age_seconds),
        )?;
        per_volume(
            enc,
            &f,
            "volume_unique_bytes",
            "Bytes only the live volume references: what deleting it frees, before dedup (tandem df's UNIQUE; computed in the background, see volume_unique_age_seconds)",
            |r| r.unique.and_then(|u| u.live).map(|s| s.bytes),
        )?;
        per_volume(
            enc,
            &f,
            "volume_unique_age_seconds",
            "Seconds since the pool was last known to be as volume_unique_bytes describes it",
            |r| r.unique.and_then(|u| u.live).map(|s| s.age_seconds),
        )?;
        let groups = f
            .groups
            .iter()
            .map(|(g, n)| (GroupLabel { group: g.clone() }, *n));
        gauges(enc, "group_snapshots", "Snapshots of each group", groups)?;
        per_schedule(
            enc,
            &f,
            "schedule_enabled",
            "1 when the schedule runs",
            |r| Some(u64::from(r.enabled)),
        )?;
        per_schedule(
            enc,
            &f,
            "schedule_last_run_age_seconds",
            "Seconds since the schedule's last attempt (absent before its first)",
            |r| r.last_run_age,
        )?;
        per_schedule(
            enc,
            &f,
            "schedule_last_run_ok",
            "1 when the schedule's last attempt made its snapshot, 0 when it failed",
            |r| r.last_ok.map(u64::from),
        )?;
        per_schedule(
            enc,
            &f,
            "schedule_failures",
            "Failed attempts of the schedule in a row",
            |r| Some(u64::from(r.failures)),
        )?;
        per_schedule(
            enc,
            &f,
            "schedule_next_run_seconds",
            "Seconds until the schedule's next run (negative: overdue)",
            |r| Some(r.next_in),
        )?;
        per_schedule(
            enc,
            &f,
            "schedule_last_snapshot_age_seconds",
            "Seconds since the newest snapshot the schedule made that still exists",
            |r| r.last_snapshot_age,
        )
    }
}
