//! The snapshot catalog: consistency groups and snapshot records, kept in the `meta` table
//! under these keys:
//!
//! | key                     | value                                        |
//! |-------------------------|----------------------------------------------|
//! | `group/<name>`          | postcard [`GroupRecord`]                     |
//! | `volume-group/<vol id>` | the group name (UTF-8) of a grouped volume   |
//! | `snapshot/<name>`       | postcard [`SnapshotRecord`]                  |
//! | `next_snapshot_id`      | u64 LE                                       |
//!
//! Invariants: a volume is in at most one group (`volume-group/` is the index that says so);
//! a snapshot record is written in the same transaction as the generations it records, so a
//! snapshot exists with all its members or not at all.

use redb::{ReadOnlyTable, ReadableTable};
use serde::{Deserialize, Serialize};

use super::error::StoreError;
use super::writer::Tx;
use crate::types::{Generation, SnapshotId, VolumeId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub name: String,
    pub members: Vec<VolumeId>,
    pub created: i64,
}

/// One member of a snapshot: the volume, its name when the snapshot was taken, and the
/// generation recorded for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapMember {
    pub vol: VolumeId,
    pub name: String,
    pub generation: Generation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub id: SnapshotId,
    pub name: String,
    /// The group it was taken of (None: a single ungrouped volume).
    pub group: Option<String>,
    pub members: Vec<SnapMember>,
    /// Creation time, microseconds since the epoch.
    pub created_us: i64,
    pub description: String,
    /// How long mutating requests were held, microseconds (0 until measured).
    pub pause_us: u64,
    /// Mountpoints while activated (read-only mounts of each member).
    pub activated: Vec<(String, std::path::PathBuf)>,
}

fn decode<T: for<'a> Deserialize<'a>>(what: &str, b: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(b).map_err(|e| StoreError::Damaged(format!("{what}: {e}")))
}

fn encode<T: Serialize>(what: &str, v: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(v).map_err(|e| StoreError::Damaged(format!("{what}: {e}")))
}

fn group_key(name: &str) -> String {
    format!("group/{name}")
}

fn snap_key(name: &str) -> String {
    format!("snapshot/{name}")
}

fn vg_key(vol: VolumeId) -> String {
    format!("volume-group/{}", vol.0)
}

/// Reads from a read transaction's `meta` table.
pub struct MetaView<'a>(pub &'a ReadOnlyTable<&'static str, &'static [u8]>);

impl MetaView<'_> {
    pub fn group(&self, name: &str) -> Result<Option<GroupRecord>, StoreError> {
        self.0
            .get(group_key(name).as_str())?
            .map(|v| decode("group", v.value()))
            .transpose()
    }

    pub fn groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        let mut out = Vec::new();
        for e in self.0.range("group/".."group0")? {
            let (_, v) = e?;
            out.push(decode("group", v.value())?);
        }
        Ok(out)
    }

    pub fn group_of(&self, vol: VolumeId) -> Result<Option<String>, StoreError> {
        Ok(self
            .0
            .get(vg_key(vol).as_str())?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }

    pub fn snapshot(&self, name: &str) -> Result<Option<SnapshotRecord>, StoreError> {
        self.0
            .get(snap_key(name).as_str())?
            .map(|v| decode("snapshot", v.value()))
            .transpose()
    }

    /// All snapshots, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotRecord>, StoreError> {
        let mut out: Vec<SnapshotRecord> = Vec::new();
        for e in self.0.range("snapshot/".."snapshot0")? {
            let (_, v) = e?;
            out.push(decode("snapshot", v.value())?);
        }
        out.sort_by_key(|s| (s.created_us, s.id));
        Ok(out)
    }
}

impl Tx<'_> {
    pub fn group(&self, name: &str) -> Result<Option<GroupRecord>, StoreError> {
        self.meta
            .get(group_key(name).as_str())?
            .map(|v| decode("group", v.value()))
            .transpose()
    }

    pub fn put_group(&mut self, g: &GroupRecord) -> Result<(), StoreError> {
        self.meta
            .insert(group_key(&g.name).as_str(), encode("group", g)?.as_slice())?;
        Ok(())
    }

    pub fn remove_group(&mut self, name: &str) -> Result<(), StoreError> {
        self.meta.remove(group_key(name).as_str())?;
        Ok(())
    }

    pub fn group_of(&self, vol: VolumeId) -> Result<Option<String>, StoreError> {
        Ok(self
            .meta
            .get(vg_key(vol).as_str())?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }

    pub fn set_group_of(&mut self, vol: VolumeId, group: Option<&str>) -> Result<(), StoreError> {
        match group {
            Some(g) => self.meta.insert(vg_key(vol).as_str(), g.as_bytes())?,
            None => self.meta.remove(vg_key(vol).as_str())?,
        };
        Ok(())
    }

    pub fn snapshot(&self, name: &str) -> Result<Option<SnapshotRecord>, StoreError> {
        self.meta
            .get(snap_key(name).as_str())?
            .map(|v| decode("snapshot", v.value()))
            .transpose()
    }

    pub fn put_snapshot(&mut self, s: &SnapshotRecord) -> Result<(), StoreError> {
        self.meta.insert(
            snap_key(&s.name).as_str(),
            encode("snapshot", s)?.as_slice(),
        )?;
        Ok(())
    }

    pub fn remove_snapshot_record(&mut self, name: &str) -> Result<(), StoreError> {
        self.meta.remove(snap_key(name).as_str())?;
        Ok(())
    }

    /// All snapshots, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotRecord>, StoreError> {
        let mut out: Vec<SnapshotRecord> = Vec::new();
        for e in self.meta.range("snapshot/".."snapshot0")? {
            let (_, v) = e?;
            out.push(decode("snapshot", v.value())?);
        }
        out.sort_by_key(|s| (s.created_us, s.id));
        Ok(out)
    }

    pub fn next_snapshot_id(&mut self) -> Result<SnapshotId, StoreError> {
        let id = self.meta_u64("next_snapshot_id")?.max(1);
        self.set_meta_u64("next_snapshot_id", id + 1)?;
        Ok(SnapshotId(id))
    }
}
