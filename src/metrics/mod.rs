//! Metrics: what the daemon counts and times, and the Prometheus endpoint that shows them
//! (`tandem daemon --metrics ADDR`, off by default).
//!
//! Owns: the process's counters and histograms ([`global`]): per volume read and write
//! bytes and requests, fsync latency and how fsyncs were answered ([`VolumeIo`], kept by
//! volume id and labelled with the volume's current name at scrape time, see `io`), FUSE
//! request latency per class ([`ReqClass`]), commit batch sizes, snapshot pause and round
//! trip, schedule run results; the gauges read from the pool at scrape time (`gauges`:
//! space, dedup, snapshot counts, dirty bytes, schedule ages, through the engine's typed
//! API); the bytes unique to each live volume and to each snapshot, computed in the
//! background and cached (`unique`); the HTTP listener (`http`).
//!
//! Invariants: recording is a few relaxed atomic adds: no lock and no allocation per
//! request (a mount takes its volume's counters once, at mount time); recording never
//! fails, whether or not an endpoint runs. A scrape holds the engine only while it reads it
//! (weakly otherwise), so it never keeps a stopping daemon's pool open; it only reads (no
//! flush, no commit, no wait for the writer), and what grows with a volume's size is
//! computed off the scrape, in the background (`unique`).

mod gauges;
mod histogram;
mod http;
mod io;
mod unique;

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::types::VolumeId;

pub use histogram::Histogram;
pub use http::{Endpoint, MetricsError};
pub use io::VolumeIo;

/// What a FUSE request is, for its latency histogram: decided by how it is served (on the
/// session thread, or through the volume's queue) and by its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqClass {
    /// File data read (READ; READLINK too: both answer data).
    Read,
    /// File data written (WRITE).
    Write,
    /// Other requests answered on the session thread: LOOKUP, GETATTR, READDIR, OPEN, ...
    Lookup,
    /// Other mutations (through the queue): CREATE, SETATTR, UNLINK, RENAME, FSYNC, ...
    Modify,
}

impl ReqClass {
    const ALL: [ReqClass; 4] = [
        ReqClass::Read,
        ReqClass::Write,
        ReqClass::Lookup,
        ReqClass::Modify,
    ];

    fn label(self) -> &'static str {
        match self {
            ReqClass::Read => "read",
            ReqClass::Write => "write",
            ReqClass::Lookup => "lookup",
            ReqClass::Modify => "modify",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VolumeLabel {
    volume: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScheduleResult {
    schedule: String,
    result: &'static str,
}

/// The process's counters and histograms.
pub struct Metrics {
    fuse: [Histogram; 4],
    fuse_family: Family<OpLabel, Histogram>,
    /// Write jobs per commit batch of the store's writer.
    pub commit_batch: Histogram,
    /// How long a snapshot create held the members' writers (the freeze).
    pub snapshot_pause: Histogram,
    /// A snapshot create from request to answer (hooks, flush, freeze, sync).
    pub snapshot_round_trip: Histogram,
    /// Per volume data counters (shown by the pool's collector, which knows the names).
    io: io::IoTable,
    schedule_runs: Family<ScheduleResult, Counter>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let fuse_family = Family::<OpLabel, Histogram>::default();
    let fuse = ReqClass::ALL.map(|c| fuse_family.get_or_create_owned(&OpLabel { op: c.label() }));
    Metrics {
        fuse,
        fuse_family,
        commit_batch: Histogram::sizes(),
        snapshot_pause: Histogram::seconds(),
        snapshot_round_trip: Histogram::seconds(),
        io: io::IoTable::default(),
        schedule_runs: Family::default(),
    }
});

/// The process's metrics.
pub fn global() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// The latency histogram of a class of FUSE requests.
    pub fn fuse(&self, class: ReqClass) -> &Histogram {
        &self.fuse[class as usize]
    }

    /// The data counters of volume `vol` (taken once per mount: this looks them up).
    pub fn volume_io(&self, vol: VolumeId) -> VolumeIo {
        self.io.get(vol)
    }

    /// A snapshot create ended: its freeze held writers `pause`, the request took
    /// `round_trip`.
    pub fn snapshot_created(&self, pause: Duration, round_trip: Duration) {
        self.snapshot_pause.observe_duration(pause);
        self.snapshot_round_trip.observe_duration(round_trip);
    }

    /// A scheduled run of `schedule` ended.
    pub fn schedule_run(&self, schedule: &str, ok: bool) {
        self.schedule_runs
            .get_or_create(&ScheduleResult {
                schedule: schedule.to_string(),
                result: if ok { "ok" } else { "failed" },
            })
            .inc();
    }

    /// Registers everything recorded here in `reg` (names get the registry's prefix).
    fn register(&self, reg: &mut Registry) {
        reg.register(
            "fuse_request_duration_seconds",
            "FUSE requests from arrival to answer, by class (read, write, lookup, modify)",
            self.fuse_family.clone(),
        );
        reg.register(
            "commit_batch_jobs",
            "Write jobs per commit batch of the store's writer",
            self.commit_batch.clone(),
        );
        reg.register(
            "snapshot_pause_seconds",
            "How long a snapshot create held the members' writers",
            self.snapshot_pause.clone(),
        );
        reg.register(
            "snapshot_round_trip_seconds",
            "Snapshot creates from request to answer (hooks, flush, freeze, sync)",
            self.snapshot_round_trip.clone(),
        );
        reg.register(
            "schedule_runs",
            "Scheduled snapshot runs, per schedule and result (ok, failed)",
            self.schedule_runs.clone(),
        );
    }
}
