//! Per volume data counters (READ and WRITE requests and their bytes) and fsync figures
//! (latency, and how each fsync was answered), kept by volume id and labelled with the
//! volume's current name at scrape time.
//!
//! Why by id: prometheus-client's `Family` keys a series by its label set, fixed when the
//! mount takes its counters; after `tandem volume rename` the mount would go on counting
//! under the old name, and a new volume given a deleted one's name would continue its
//! counts. Here the name is read from the pool at each scrape, so a renamed volume's series
//! carries the new name from the next scrape on (the counts go with it: same volume), and
//! a recreated name starts from zero (a new id).
//!
//! Invariants: recording is relaxed atomic adds on counters a mount took once, at mount
//! time (no lock per request); a volume's counters are shown under the name its committed
//! record has, and not at all while no volume has its id (a volume created after the
//! scrape read the list waits for the next scrape; a deleted one's counters are dropped
//! once no mount holds them).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

use super::{Histogram, VolumeLabel};
use crate::fs::FsyncPath;
use crate::types::VolumeId;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabel {
    volume: String,
    path: &'static str,
}

#[derive(Debug, Default)]
struct Counts {
    read_bytes: AtomicU64,
    reads: AtomicU64,
    write_bytes: AtomicU64,
    writes: AtomicU64,
    /// fsync requests from the engine call to its end, answered or failed.
    fsync: Histogram,
    /// fsyncs answered by an intent-log record, and by a durable commit.
    fsyncs: [AtomicU64; 2],
}

/// How an fsync was answered, with its label: the index of its counter in `Counts::fsyncs`.
const PATHS: [(FsyncPath, &str); 2] = [(FsyncPath::Log, "log"), (FsyncPath::Commit, "commit")];

fn slot(how: FsyncPath) -> usize {
    match how {
        FsyncPath::Log => 0,
        FsyncPath::Commit => 1,
    }
}

/// One volume's data counters, as a mount holds them (every mount of the volume, its
/// snapshot views too, shares them).
#[derive(Debug, Clone)]
pub struct VolumeIo(Arc<Counts>);

impl VolumeIo {
    /// One READ answered with `n` bytes.
    pub fn read(&self, n: usize) {
        self.0.reads.fetch_add(1, Ordering::Relaxed);
        self.0.read_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// One WRITE that took `n` bytes.
    pub fn wrote(&self, n: u32) {
        self.0.writes.fetch_add(1, Ordering::Relaxed);
        self.0
            .write_bytes
            .fetch_add(u64::from(n), Ordering::Relaxed);
    }

    /// One fsync that took `took`, answered the way `answered` says (`None`: it failed).
    pub fn fsynced(&self, took: Duration, answered: Option<FsyncPath>) {
        self.0.fsync.observe_duration(took);
        if let Some(how) = answered {
            self.0.fsyncs[slot(how)].fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Every volume's counters, by id.
#[derive(Debug, Default)]
pub(super) struct IoTable {
    vols: Mutex<HashMap<VolumeId, Arc<Counts>>>,
}

impl IoTable {
    /// The counters of volume `vol` (created at zero the first time).
    pub(super) fn get(&self, vol: VolumeId) -> VolumeIo {
        let mut vols = self.vols.lock().unwrap_or_else(|p| p.into_inner());
        VolumeIo(vols.entry(vol).or_default().clone())
    }

    /// The counters of the volumes in `names`, each with its name; drops those of volumes
    /// that no longer exist and that no mount holds.
    fn rows(&self, names: &BTreeMap<VolumeId, String>) -> Vec<(String, Arc<Counts>)> {
        let mut vols = self.vols.lock().unwrap_or_else(|p| p.into_inner());
        vols.retain(|id, c| names.contains_key(id) || Arc::strong_count(c) > 1);
        let mut out: Vec<(String, Arc<Counts>)> = vols
            .iter()
            .filter_map(|(id, c)| names.get(id).map(|n| (n.clone(), c.clone())))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Encodes the counter and fsync families, labelled with the names in `names` (volume id to
    /// current name).
    pub(super) fn encode(
        &self,
        enc: &mut DescriptorEncoder,
        names: &BTreeMap<VolumeId, String>,
    ) -> std::fmt::Result {
        let rows = self.rows(names);
        type Pick = fn(&Counts) -> &AtomicU64;
        let families: [(&str, &str, Pick); 4] = [
            (
                "volume_read_bytes",
                "Bytes answered to READ requests, per volume",
                |c| &c.read_bytes,
            ),
            ("volume_reads", "READ requests answered, per volume", |c| {
                &c.reads
            }),
            (
                "volume_write_bytes",
                "Bytes taken by WRITE requests, per volume",
                |c| &c.write_bytes,
            ),
            (
                "volume_writes",
                "WRITE requests that succeeded, per volume",
                |c| &c.writes,
            ),
        ];
        for (name, help, pick) in families {
            let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (volume, c) in &rows {
                let l = VolumeLabel {
                    volume: volume.clone(),
                };
                ConstCounter::new(pick(c).load(Ordering::Relaxed)).encode(m.encode_family(&l)?)?;
            }
        }
        let mut m = enc.encode_descriptor(
            "fsync_duration_seconds",
            "fsync requests from the engine call to its end (failed ones too), per volume",
            None,
            MetricType::Histogram,
        )?;
        for (volume, c) in &rows {
            let l = VolumeLabel {
                volume: volume.clone(),
            };
            c.fsync.encode(m.encode_family(&l)?)?;
        }
        let mut m = enc.encode_descriptor(
            "volume_fsyncs",
            "fsyncs answered, per volume and path: log (an intent-log record) or commit (a flush and a durable commit)",
            None,
            MetricType::Counter,
        )?;
        for (volume, c) in &rows {
            for (how, path) in PATHS {
                let l = PathLabel {
                    volume: volume.clone(),
                    path,
                };
                let n = c.fsyncs[slot(how)].load(Ordering::Relaxed);
                ConstCounter::new(n).encode(m.encode_family(&l)?)?;
            }
        }
        Ok(())
    }
}
