//! The answers of the control API: [`Reply`] (tagged by `kind`) and the types it carries,
//! and [`FromReply`], which turns a reply into the one type a request expects, so that a
//! client handles a mismatched reply in one place ([`super::Client::call_as`]).
//!
//! Which request gets which reply (the `kind` on the wire, and the Rust type):
//! - `ping` → `pong` ([`Pong`]); `status` → `status` ([`StatusInfo`]); `df` → `df` ([`DfInfo`])
//! - `volume-create` → `volume` ([`VolumeInfo`]); `volume-list` → `volumes`
//!   (`Vec<VolumeInfo>`); `volume-info` → `volume-detail` ([`VolumeDetail`]);
//!   `volume-set` → `option-set` ([`OptionSet`]); `volume-get`, `volume-inherit` →
//!   `volume-options` ([`VolumeOptionsInfo`]); `volume-delete`, `shutdown`,
//!   `volume-rename`, `group-rename`, `snapshot-rename` → `done` (`()`)
//! - `mount` → `mounted` ([`MountInfo`]); `umount` → `unmounted` ([`Unmounted`])
//! - `pool-verify` → `verify` ([`VerifyReport`])
//! - `group-create|add|remove|info` → `group` ([`GroupInfo`]); `group-list` → `groups`
//!   (`Vec<GroupInfo>`); `group-delete`, `snapshot-delete` → `deleted` (`Vec<String>`)
//! - `snapshot-create` → `snapshot-created` ([`CreateOutcome`]); `snapshot-info` →
//!   `snapshot` ([`SnapshotInfo`]); `snapshot-list|status` → `snapshots`
//!   (`Vec<SnapshotInfo>`); `snapshot-activate|deactivate` → `activated` ([`Activated`]);
//!   `snapshot-restore` → `restored` ([`RestoreOutcome`]); `snapshot-clone` → `cloned`
//!   ([`CloneOutcome`]); `snapshot-diff` → `diff` ([`VolumeDiff`] list);
//!   `snapshot-config` → `snap-config` ([`SnapConfig`]); `snapshot-verify` →
//!   `snapshot-verify` ([`SnapshotVerifyReport`]); `snapshot-test` → `snapshot-tested`
//!   (`crate::snapshot::test::TestOutcome`)
//!   `snapshot-hold|release|holds` → `holds` ([`HoldInfo`] list: after a hold or release,
//!   the snapshot's holds)
//! - `schedule-add|info|enable` → `schedule` ([`ScheduleInfo`]); `schedule-list` →
//!   `schedules` (`Vec<ScheduleInfo>`); `schedule-remove` → `done` (`()`)

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::fs::VolumeInfo;
use crate::fs::diff::DiffEntry;
use crate::snapshot::{
    CloneOutcome, CreateOutcome, RestoreOutcome, SnapshotInfo, SnapshotVerifyReport,
};
use crate::store::PoolStats;
use crate::store::verify::VerifyReport;

/// The daemon's answer to `ping`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pong {
    pub pid: u32,
    pub pool: PathBuf,
}

/// A volume option as set (the value normalised).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptionSet {
    pub volume: String,
    pub key: String,
    pub value: String,
}

/// Where an option's value in force comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OptionSource {
    /// Nothing sets it.
    Default,
    /// The system-wide setting (`snapshot config` without a volume).
    Pool,
    /// Set on the volume (`volume set`).
    Volume,
}

impl OptionSource {
    pub fn as_str(self) -> &'static str {
        match self {
            OptionSource::Default => "default",
            OptionSource::Pool => "pool",
            OptionSource::Volume => "volume",
        }
    }
}

/// One option of a volume as in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptionInForce {
    pub key: String,
    pub value: String,
    pub source: OptionSource,
}

/// Every option of a volume as in force (`volume get`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeOptionsInfo {
    pub volume: String,
    pub options: Vec<OptionInForce>,
}

/// A snapshot's read-only mounts, after activating (or deactivating) it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activated {
    pub name: String,
    pub mounts: Vec<MountInfo>,
}

/// The mount `umount` ended (the reply to `mount` is the [`MountInfo`] itself).
#[derive(Debug, Clone, PartialEq)]
pub struct Unmounted(pub MountInfo);

/// What changed in one volume: (volume, entries). Paths are exact bytes
/// ([`crate::fs::diff::PathBytes`]: a string on the wire when UTF-8, else an array of bytes).
pub type VolumeDiff = (String, Vec<DiffEntry>);

/// One hold on a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldInfo {
    pub snapshot: String,
    pub tag: String,
    /// When it was placed, microseconds since the epoch.
    pub since_us: i64,
}

/// A snapshot schedule and how its runs went. Times in microseconds since the epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleInfo {
    pub name: String,
    pub group: Option<String>,
    pub volume: Option<String>,
    /// The interval (0 for a cron schedule).
    pub every_ms: u64,
    /// The cron expression (UTC) of a calendar schedule.
    #[serde(default)]
    pub cron: Option<String>,
    /// Retention as given (None: nothing is pruned).
    pub keep: Option<String>,
    pub description: String,
    pub enabled: bool,
    pub created_us: i64,
    pub next_run_us: i64,
    pub last_run_us: Option<i64>,
    pub last_snapshot: Option<String>,
    /// Why the last attempt failed (None after a success).
    pub last_error: Option<String>,
    /// Failed attempts in a row.
    pub failures: u32,
    /// The snapshots it made that still exist, oldest first.
    pub snapshots: Vec<String>,
    /// The restore-test command run on each new snapshot.
    #[serde(default)]
    pub test: Option<String>,
    /// The newest restore test recorded on one of its snapshots.
    #[serde(default)]
    pub last_test: Option<ScheduleTest>,
}

/// A restore test of a schedule's snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleTest {
    pub snapshot: String,
    pub result: crate::store::snapmeta::TestRecord,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub name: String,
    pub volumes: Vec<String>,
    pub snapshots: Vec<String>,
    pub created: i64,
}

/// Effective snapshot settings: system-wide, then per volume (key, value, set explicitly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapConfig {
    pub system: Vec<(String, String)>,
    pub volumes: Vec<(String, Vec<OptionValue>)>,
}

/// (key, effective value, set explicitly)
pub type OptionValue = (String, String, bool);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MountInfo {
    pub volume: String,
    pub mountpoint: PathBuf,
    pub options: Vec<String>,
    /// Set for the read-only mount of a snapshot's member.
    #[serde(default)]
    pub snapshot: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeDetail {
    #[serde(flatten)]
    pub info: VolumeInfo,
    pub mountpoints: Vec<PathBuf>,
    /// (key, effective value, set explicitly)
    pub options: Vec<(String, String, bool)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusInfo {
    pub pid: u32,
    pub pool: PathBuf,
    pub stats: PoolStats,
    pub dedup_ratio: f64,
    pub volumes: usize,
    pub mounts: Vec<MountInfo>,
    /// The intent log (absent when turned off).
    #[serde(default)]
    pub intent_log: Option<crate::fs::LogStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reply {
    Pong(Pong),
    Volume(VolumeInfo),
    Volumes { volumes: Vec<VolumeInfo> },
    VolumeDetail(VolumeDetail),
    OptionSet(OptionSet),
    Mounted(MountInfo),
    Unmounted(MountInfo),
    Status(StatusInfo),
    Done,
    Group(GroupInfo),
    Groups { groups: Vec<GroupInfo> },
    SnapshotCreated(Box<CreateOutcome>),
    Snapshot(SnapshotInfo),
    Snapshots { snapshots: Vec<SnapshotInfo> },
    Deleted { names: Vec<String> },
    SnapConfig(SnapConfig),
    Verify(VerifyReport),
    Activated(Activated),
    Restored(RestoreOutcome),
    Df(DfInfo),
    Cloned(CloneOutcome),
    Diff { volumes: Vec<VolumeDiff> },
    SnapshotVerify(Box<SnapshotVerifyReport>),
    SnapshotTested(Box<crate::snapshot::test::TestOutcome>),
    Holds { holds: Vec<HoldInfo> },
    Schedule(Box<ScheduleInfo>),
    Schedules { schedules: Vec<ScheduleInfo> },
    VolumeOptions(VolumeOptionsInfo),
    Copied(CopyOutcome),
}

/// `tandem cp`: what was copied where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyOutcome {
    pub src_volume: String,
    pub dst_volume: String,
    pub dst: PathBuf,
    /// Bytes copied (the file's size).
    pub bytes: u64,
    /// Bytes of them shared as whole blocks (no data copied, no new space).
    pub shared: u64,
}

/// `tandem df`: space per volume and per snapshot, and the pool's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DfInfo {
    /// (volume, logical bytes, physical bytes referenced, unique/shared split)
    pub volumes: Vec<(String, u64, u64, crate::fs::groups::VolumeSpace)>,
    /// (snapshot, bytes only it holds)
    pub snapshots: Vec<(String, u64)>,
    pub pool: PoolStats,
    pub dedup_ratio: f64,
}

impl Reply {
    /// The reply's `kind` on the wire.
    pub fn kind(&self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str().map(String::from)))
            .unwrap_or_else(|| "?".into())
    }
}

/// The type a request's reply carries; `Err` gives back a reply of another kind.
pub trait FromReply: Sized {
    /// The `kind` expected, for the error about a mismatch.
    const KIND: &'static str;
    fn from_reply(reply: Reply) -> Result<Self, Box<Reply>>;
}

macro_rules! from_reply {
    ($($t:ty => $kind:literal, $pat:pat => $val:expr;)*) => {$(
        impl FromReply for $t {
            const KIND: &'static str = $kind;
            fn from_reply(reply: Reply) -> Result<Self, Box<Reply>> {
                match reply {
                    $pat => Ok($val),
                    other => Err(Box::new(other)),
                }
            }
        }
    )*};
}

from_reply! {
    Pong => "pong", Reply::Pong(p) => p;
    VolumeInfo => "volume", Reply::Volume(v) => v;
    Vec<VolumeInfo> => "volumes", Reply::Volumes { volumes } => volumes;
    VolumeDetail => "volume-detail", Reply::VolumeDetail(d) => d;
    OptionSet => "option-set", Reply::OptionSet(o) => o;
    MountInfo => "mounted", Reply::Mounted(m) => m;
    Unmounted => "unmounted", Reply::Unmounted(m) => Unmounted(m);
    StatusInfo => "status", Reply::Status(s) => s;
    () => "done", Reply::Done => ();
    GroupInfo => "group", Reply::Group(g) => g;
    Vec<GroupInfo> => "groups", Reply::Groups { groups } => groups;
    CreateOutcome => "snapshot-created", Reply::SnapshotCreated(o) => *o;
    SnapshotInfo => "snapshot", Reply::Snapshot(s) => s;
    Vec<SnapshotInfo> => "snapshots", Reply::Snapshots { snapshots } => snapshots;
    Vec<String> => "deleted", Reply::Deleted { names } => names;
    SnapConfig => "snap-config", Reply::SnapConfig(c) => c;
    VerifyReport => "verify", Reply::Verify(r) => r;
    Activated => "activated", Reply::Activated(a) => a;
    RestoreOutcome => "restored", Reply::Restored(o) => o;
    DfInfo => "df", Reply::Df(d) => d;
    CloneOutcome => "cloned", Reply::Cloned(o) => o;
    Vec<VolumeDiff> => "diff", Reply::Diff { volumes } => volumes;
    SnapshotVerifyReport => "snapshot-verify", Reply::SnapshotVerify(r) => *r;
    crate::snapshot::test::TestOutcome => "snapshot-tested", Reply::SnapshotTested(o) => *o;
    Vec<HoldInfo> => "holds", Reply::Holds { holds } => holds;
    ScheduleInfo => "schedule", Reply::Schedule(s) => *s;
    Vec<ScheduleInfo> => "schedules", Reply::Schedules { schedules } => schedules;
    VolumeOptionsInfo => "volume-options", Reply::VolumeOptions(o) => o;
    CopyOutcome => "copied", Reply::Copied(o) => o;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_of_the_expected_kind_is_taken_and_another_given_back() {
        let pong = Reply::Pong(Pong {
            pid: 7,
            pool: "/p".into(),
        });
        assert_eq!(pong.kind(), "pong");
        assert_eq!(Pong::from_reply(pong.clone()).map(|p| p.pid), Ok(7));
        assert_eq!(<()>::from_reply(pong.clone()), Err(Box::new(pong)));
        assert_eq!(Reply::Done.kind(), <()>::KIND);
    }

    #[test]
    fn newtype_replies_keep_their_wire_form() {
        let line = serde_json::to_string(&Reply::OptionSet(OptionSet {
            volume: "v".into(),
            key: "k".into(),
            value: "x".into(),
        }))
        .unwrap();
        assert_eq!(
            line,
            r#"{"kind":"option-set","volume":"v","key":"k","value":"x"}"#
        );
    }
}
