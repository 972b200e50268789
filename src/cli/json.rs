//! THE `--json` output of the CLI (schema [`SCHEMA`]): one JSON document per command on
//! stdout, an object whose `schema` key says which version of this layout it follows.
//! README.md ("JSON output") documents every command's object; this module is its only
//! writer, so the layout is changed here and there together (and [`SCHEMA`] bumped when a
//! key is removed or changes meaning; a new key is no bump).
//!
//! Rules every object follows: named keys (never positional arrays or tuples); sizes in
//! bytes as numbers (`*_bytes`); instants as [`Time`] (`{"rfc3339": ..., "unix": ...}`,
//! UTC); durations as whole numbers with their unit in the key (`pause_us`, `elapsed_ms`);
//! option values typed (booleans, numbers, durations in seconds) with their source; names
//! exact, never escaped (a file path that is not UTF-8 also as its bytes, [`Change`]). The daemon's wire types (`tandem::control`) are converted here, so
//! the protocol and this schema change independently.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use tandem::control::{
    GroupInfo, HoldInfo, MountInfo, ScheduleInfo, SnapConfig, VolumeDetail, VolumeDiff,
    VolumeOptionsInfo,
};
use tandem::fs::VolumeInfo;
use tandem::fs::diff::{DiffEntry, PathBytes};
use tandem::options::Typed;
use tandem::snapshot::SnapshotInfo;
use tandem::store::snapmeta::TestRecord;

/// The version of the layout below.
pub const SCHEMA: u32 = 1;

/// Prints `body` (an object) as the command's document: `{"schema": 1, ...body}`.
pub fn emit<T: Serialize>(body: &T) -> anyhow::Result<()> {
    #[derive(Serialize)]
    struct Doc<'a, T> {
        schema: u32,
        #[serde(flatten)]
        body: &'a T,
    }
    outln!(
        "{}",
        serde_json::to_string_pretty(&Doc {
            schema: SCHEMA,
            body
        })?
    );
    Ok(())
}

/// An instant: RFC 3339 in UTC (to the second), unix seconds, and unix microseconds (the
/// exact value, for ordering events within a second).
#[derive(Debug, Clone, Serialize)]
pub struct Time {
    pub rfc3339: String,
    pub unix: i64,
    pub unix_us: i64,
}

impl Time {
    pub fn from_us(us: i64) -> Time {
        Time {
            rfc3339: tandem::snapshot::rfc3339(us),
            unix: us.div_euclid(1_000_000),
            unix_us: us,
        }
    }

    pub fn from_secs(secs: i64) -> Time {
        Time::from_us(secs.saturating_mul(1_000_000))
    }
}

#[derive(Debug, Serialize)]
pub struct Volume {
    pub name: String,
    pub id: u64,
    pub block_size: u64,
    pub logical_bytes: u64,
    pub physical_bytes: u64,
    pub files: u64,
    pub generation: u64,
    pub created: Time,
}

impl From<&VolumeInfo> for Volume {
    fn from(v: &VolumeInfo) -> Volume {
        Volume {
            name: v.name.clone(),
            id: v.id.0,
            block_size: v.block_size as u64,
            logical_bytes: v.logical_bytes,
            physical_bytes: v.physical_bytes,
            files: v.files,
            generation: v.generation.0,
            created: Time::from_secs(v.created),
        }
    }
}

/// An option's value typed by its kind, and where it comes from: `default` (nothing sets
/// it), `pool` (the system-wide setting of `snapshot config`) or `volume` (set on it).
#[derive(Debug, Serialize)]
pub struct OptionValue {
    pub value: serde_json::Value,
    pub source: &'static str,
}

/// A typed option value as JSON.
pub fn typed(key: &str, text: &str) -> serde_json::Value {
    match tandem::options::typed(key, text) {
        Typed::Text(s) => s.into(),
        Typed::Bool(b) => b.into(),
        Typed::Number(n) => n.into(),
        Typed::Seconds(s) => s.into(),
    }
}

#[derive(Debug, Serialize)]
pub struct VolumeInfoDoc {
    #[serde(flatten)]
    pub volume: Volume,
    pub mountpoints: Vec<PathBuf>,
    pub options: BTreeMap<String, OptionValue>,
}

impl VolumeInfoDoc {
    /// A volume's detail with its options as in force (`o`, its `volume get`).
    pub fn new(d: &VolumeDetail, o: &VolumeOptionsInfo) -> Self {
        VolumeInfoDoc {
            volume: Volume::from(&d.info),
            mountpoints: d.mountpoints.clone(),
            options: o
                .options
                .iter()
                .map(|x| {
                    let v = OptionValue {
                        value: typed(&x.key, &x.value),
                        source: x.source.as_str(),
                    };
                    (x.key.clone(), v)
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Mount {
    pub volume: String,
    pub mountpoint: PathBuf,
    pub options: Vec<String>,
    /// The snapshot a read-only view serves (null for a live volume's mount).
    pub snapshot: Option<String>,
}

impl From<&MountInfo> for Mount {
    fn from(m: &MountInfo) -> Mount {
        Mount {
            volume: m.volume.clone(),
            mountpoint: m.mountpoint.clone(),
            options: m.options.clone(),
            snapshot: m.snapshot.clone(),
        }
    }
}

/// A member volume of a snapshot at its generation.
#[derive(Debug, Serialize)]
pub struct Member {
    pub volume: String,
    pub generation: u64,
}

/// Where a member of an activated snapshot (or a kept clone) is mounted.
#[derive(Debug, Serialize)]
pub struct MemberMount {
    pub volume: String,
    pub mountpoint: PathBuf,
}

/// `(volume, mountpoint)` pairs as objects.
pub fn member_mounts(v: &[(String, PathBuf)]) -> Vec<MemberMount> {
    v.iter()
        .map(|(volume, mountpoint)| MemberMount {
            volume: volume.clone(),
            mountpoint: mountpoint.clone(),
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct Test {
    pub started: Time,
    pub passed: bool,
    pub command: String,
    pub exit_code: Option<i32>,
    pub run_us: u64,
    pub setup_us: u64,
    pub output_tail: String,
}

impl From<&TestRecord> for Test {
    fn from(t: &TestRecord) -> Test {
        Test {
            started: Time::from_us(t.started_us),
            passed: t.passed,
            command: t.command.clone(),
            exit_code: t.exit_code,
            run_us: t.run_us,
            setup_us: t.setup_us,
            output_tail: t.output_tail.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub name: String,
    pub id: u64,
    pub group: Option<String>,
    pub members: Vec<Member>,
    pub created: Time,
    pub description: String,
    pub pause_us: u64,
    pub exclusive_bytes: u64,
    pub state: String,
    /// The read-only views of an activated snapshot.
    pub mountpoints: Vec<MemberMount>,
    /// The Merkle root (hex; null until computed).
    pub root: Option<String>,
    pub last_test: Option<Test>,
}

impl From<&SnapshotInfo> for Snapshot {
    fn from(s: &SnapshotInfo) -> Snapshot {
        Snapshot {
            name: s.name.clone(),
            id: s.id.0,
            group: s.group.clone(),
            members: s
                .members
                .iter()
                .map(|(v, g)| Member {
                    volume: v.clone(),
                    generation: g.0,
                })
                .collect(),
            created: Time::from_us(s.created_us),
            description: s.description.clone(),
            pause_us: s.pause_us,
            exclusive_bytes: s.exclusive_bytes,
            state: s.state.clone(),
            mountpoints: member_mounts(&s.mountpoints),
            root: s.root.clone(),
            last_test: s.last_test.as_deref().map(Test::from),
        }
    }
}

/// Snapshots as objects.
pub fn snapshots(v: &[SnapshotInfo]) -> Vec<Snapshot> {
    v.iter().map(Snapshot::from).collect()
}

#[derive(Debug, Serialize)]
pub struct Group {
    pub name: String,
    pub volumes: Vec<String>,
    pub snapshots: Vec<String>,
    pub created: Time,
}

impl From<&GroupInfo> for Group {
    fn from(g: &GroupInfo) -> Group {
        Group {
            name: g.name.clone(),
            volumes: g.volumes.clone(),
            snapshots: g.snapshots.clone(),
            created: Time::from_secs(g.created),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Hold {
    pub snapshot: String,
    pub tag: String,
    pub since: Time,
}

/// Holds as objects.
pub fn holds(v: &[HoldInfo]) -> Vec<Hold> {
    v.iter()
        .map(|h| Hold {
            snapshot: h.snapshot.clone(),
            tag: h.tag.clone(),
            since: Time::from_us(h.since_us),
        })
        .collect()
}

/// One change of `snapshot diff`: `change` is added, removed, modified or renamed (then
/// `path` is the old path and `new_path` the new one). A path is text; when the file name is
/// not valid UTF-8, that text has U+FFFD for the invalid bytes (to show, not to use) and
/// `path_bytes` (`new_path_bytes`) carries the exact bytes as numbers, absent otherwise.
#[derive(Debug, Serialize)]
pub struct Change {
    pub change: &'static str,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_bytes: Option<Vec<u8>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_path_bytes: Option<Vec<u8>>,
}

/// A diff path as `path` and, when it is not UTF-8, `path_bytes` (see [`Change`]).
fn path_fields(p: &PathBytes) -> (String, Option<Vec<u8>>) {
    match p.to_str() {
        Some(t) => (t.to_string(), None),
        None => (p.to_string_lossy(), Some(p.as_bytes().to_vec())),
    }
}

impl From<&DiffEntry> for Change {
    fn from(e: &DiffEntry) -> Change {
        let (change, path, new_path) = match e {
            DiffEntry::Added(p) => ("added", p, None),
            DiffEntry::Removed(p) => ("removed", p, None),
            DiffEntry::Modified(p) => ("modified", p, None),
            DiffEntry::Renamed { from, to } => ("renamed", from, Some(to)),
        };
        let (path, path_bytes) = path_fields(path);
        let (new_path, new_path_bytes) = new_path.map(path_fields).unzip();
        Change {
            change,
            path,
            path_bytes,
            new_path,
            new_path_bytes: new_path_bytes.flatten(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ScheduleTestDoc {
    pub snapshot: String,
    pub result: Test,
}

#[derive(Debug, Serialize)]
pub struct Schedule {
    pub name: String,
    pub group: Option<String>,
    pub volume: Option<String>,
    /// The interval (0 for a cron schedule).
    pub every_ms: u64,
    pub cron: Option<String>,
    pub keep: Option<String>,
    pub description: String,
    pub enabled: bool,
    pub created: Time,
    pub next_run: Time,
    pub last_run: Option<Time>,
    pub last_snapshot: Option<String>,
    pub last_error: Option<String>,
    pub failures: u32,
    pub snapshots: Vec<String>,
    pub test: Option<String>,
    pub last_test: Option<ScheduleTestDoc>,
}

impl From<&ScheduleInfo> for Schedule {
    fn from(s: &ScheduleInfo) -> Schedule {
        Schedule {
            name: s.name.clone(),
            group: s.group.clone(),
            volume: s.volume.clone(),
            every_ms: s.every_ms,
            cron: s.cron.clone(),
            keep: s.keep.clone(),
            description: s.description.clone(),
            enabled: s.enabled,
            created: Time::from_us(s.created_us),
            next_run: Time::from_us(s.next_run_us),
            last_run: s.last_run_us.map(Time::from_us),
            last_snapshot: s.last_snapshot.clone(),
            last_error: s.last_error.clone(),
            failures: s.failures,
            snapshots: s.snapshots.clone(),
            test: s.test.clone(),
            last_test: s.last_test.as_ref().map(|t| ScheduleTestDoc {
                snapshot: t.snapshot.clone(),
                result: Test::from(&t.result),
            }),
        }
    }
}

/// `snapshot config --json`: the system-wide values, and for each volume the snapshot
/// settings in force (`in_force`: its `volume get`) with their source.
pub fn config_doc(c: &SnapConfig, in_force: &[VolumeOptionsInfo]) -> serde_json::Value {
    let system: serde_json::Map<String, serde_json::Value> = c
        .system
        .iter()
        .map(|(k, v)| (k.clone(), typed(k, v)))
        .collect();
    let volumes: Vec<serde_json::Value> = c
        .volumes
        .iter()
        .zip(in_force)
        .map(|((volume, opts), got)| {
            let options: serde_json::Map<String, serde_json::Value> = got
                .options
                .iter()
                .filter(|x| opts.iter().any(|(k, _, _)| *k == x.key))
                .map(|x| {
                    let o = OptionValue {
                        value: typed(&x.key, &x.value),
                        source: x.source.as_str(),
                    };
                    (x.key.clone(), serde_json::json!(o))
                })
                .collect();
            serde_json::json!({ "volume": volume, "options": options })
        })
        .collect();
    serde_json::json!({ "system": system, "volumes": volumes })
}

/// `snapshot diff --json`: per volume, its changes.
pub fn diff_doc(volumes: &[VolumeDiff]) -> serde_json::Value {
    let volumes: Vec<serde_json::Value> = volumes
        .iter()
        .map(|(v, entries)| {
            serde_json::json!({
                "volume": v,
                "changes": entries.iter().map(Change::from).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({ "volumes": volumes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_carry_rfc3339_and_unix_seconds() {
        let t = serde_json::to_value(Time::from_us(1_700_000_000_500_000)).unwrap();
        assert_eq!(
            t,
            serde_json::json!({
                "rfc3339": "2023-11-14T22:13:20Z",
                "unix": 1_700_000_000,
                "unix_us": 1_700_000_000_500_000_i64
            })
        );
        assert_eq!(Time::from_secs(-1).rfc3339, "1969-12-31T23:59:59Z");
    }

    #[test]
    fn diff_entries_are_objects() {
        let r = DiffEntry::Renamed {
            from: "/a".into(),
            to: "/b".into(),
        };
        assert_eq!(
            serde_json::to_value(Change::from(&r)).unwrap(),
            serde_json::json!({"change": "renamed", "path": "/a", "new_path": "/b"})
        );
        assert_eq!(
            serde_json::to_value(Change::from(&DiffEntry::Added("/n".into()))).unwrap(),
            serde_json::json!({"change": "added", "path": "/n"})
        );
        let raw = DiffEntry::Renamed {
            from: PathBytes(b"/a\xff".to_vec()),
            to: PathBytes(b"/\xfeb".to_vec()),
        };
        assert_eq!(
            serde_json::to_value(Change::from(&raw)).unwrap(),
            serde_json::json!({"change": "renamed", "path": "/a\u{fffd}", "path_bytes": [47, 97, 255],
                "new_path": "/\u{fffd}b", "new_path_bytes": [47, 254, 98]})
        );
    }
}
