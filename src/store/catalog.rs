//! The snapshot catalog: consistency groups and snapshot records, kept in the `meta` table
//! under the `group/`, `volume-group/`, `snapshot/` and `next_snapshot_id` keys (see
//! [`super::tables`]); holds on snapshots ([`holds`]) and snapshot schedules
//! ([`schedules`]) in tables of their own. Read through [`super::ReadView`] (`group`, `groups`, `group_of`,
//! `snapshot`, `snapshots`); written here.
//!
//! Invariants: a volume is in at most one group (`volume-group/` is the index that says so);
//! a snapshot record is written in the same transaction as the generations it records, so a
//! snapshot exists with all its members or not at all.

pub mod holds;
pub mod schedules;

use serde::{Deserialize, Serialize};

use super::error::StoreError;
use super::tables::meta_keys;
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

pub(super) fn decode<T: for<'a> Deserialize<'a>>(what: &str, b: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(b).map_err(|e| StoreError::Damaged(format!("{what}: {e}")))
}

fn encode<T: Serialize>(what: &str, v: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(v).map_err(|e| StoreError::Damaged(format!("{what}: {e}")))
}

pub(super) fn group_key(name: &str) -> String {
    format!("{}{name}", meta_keys::GROUP)
}

pub(crate) fn snap_key(name: &str) -> String {
    format!("{}{name}", meta_keys::SNAPSHOT)
}

pub(super) fn vg_key(vol: VolumeId) -> String {
    format!("{}{}", meta_keys::VOLUME_GROUP, vol.0)
}

impl Tx<'_> {
    pub fn put_group(&mut self, g: &GroupRecord) -> Result<(), StoreError> {
        self.meta
            .insert(group_key(&g.name).as_str(), encode("group", g)?.as_slice())?;
        Ok(())
    }

    pub fn remove_group(&mut self, name: &str) -> Result<(), StoreError> {
        self.meta.remove(group_key(name).as_str())?;
        Ok(())
    }

    pub fn set_group_of(&mut self, vol: VolumeId, group: Option<&str>) -> Result<(), StoreError> {
        match group {
            Some(g) => self.meta.insert(vg_key(vol).as_str(), g.as_bytes())?,
            None => self.meta.remove(vg_key(vol).as_str())?,
        };
        Ok(())
    }

    pub fn put_snapshot(&mut self, s: &SnapshotRecord) -> Result<(), StoreError> {
        self.meta.insert(
            snap_key(&s.name).as_str(),
            encode("snapshot", s)?.as_slice(),
        )?;
        Ok(())
    }

    /// Removes snapshot `name`'s record and what is kept beside it (its root, its last
    /// test: see [`super::snapmeta`]).
    pub fn remove_snapshot_record(&mut self, name: &str) -> Result<(), StoreError> {
        let old = self.meta.remove(snap_key(name).as_str())?;
        let id = old
            .map(|v| decode::<SnapshotRecord>("snapshot", v.value()))
            .transpose()?
            .map(|r| r.id);
        if let Some(id) = id {
            self.forget_snapshot_meta(id)?;
        }
        Ok(())
    }

    pub fn next_snapshot_id(&mut self) -> Result<SnapshotId, StoreError> {
        let id = self.meta_u64(meta_keys::NEXT_SNAPSHOT_ID)?.max(1);
        self.set_meta_u64(meta_keys::NEXT_SNAPSHOT_ID, id + 1)?;
        Ok(SnapshotId(id))
    }
}
