//! The engine's side of consistency groups and their snapshots: creating and changing
//! groups, committing and deleting snapshot records in the store's catalog
//! (`crate::store::catalog`), and what they cost (exclusive bytes of a snapshot, unique and
//! shared bytes of a volume); also the volume and system options the snapshot settings live
//! in. The coordinator in `crate::snapshot` drives these. Each write is one transaction.

use crate::options::OptionScope;
use crate::store::catalog::{GroupRecord, SnapMember, SnapshotRecord};
use crate::store::rows::View;
use crate::store::{ReadView, StoreError, Tx};
use crate::types::{Generation, VolumeId};

use super::{FsError, Inner};

/// Refusals of group and snapshot operations; each names the object and the way out.
#[derive(Debug, thiserror::Error)]
pub enum SnapError {
    #[error("no group named '{0}'; `tandem group list` shows the groups")]
    NoGroup(String),
    #[error("group '{0}' already exists; choose another name")]
    GroupExists(String),
    #[error(
        "volume '{volume}' already belongs to group '{group}'; remove it there first (tandem group remove {group} {volume})"
    )]
    InOtherGroup { volume: String, group: String },
    #[error("volume '{volume}' is not in group '{group}'")]
    NotInGroup { volume: String, group: String },
    #[error(
        "group '{group}' has {count} snapshot(s); delete them first or pass --delete-snapshots (tandem group delete {group} --delete-snapshots)"
    )]
    GroupHasSnapshots { group: String, count: usize },
    #[error("snapshot '{0}' already exists; choose another name or add --timestamp")]
    SnapshotExists(String),
    #[error("no snapshot named '{0}'; `tandem snapshot list` shows the snapshots")]
    NoSnapshot(String),
    #[error("group '{0}' has no volumes; add some first (tandem group add {0} VOLUME...)")]
    EmptyGroup(String),
    #[error(
        "snapshot '{snapshot}' is held ({}); release it first (tandem snapshot release {snapshot} {})",
        .tags.join(", "), .tags.first().map(String::as_str).unwrap_or("TAG")
    )]
    Held { snapshot: String, tags: Vec<String> },
    #[error(
        "snapshot '{snapshot}' has no hold '{tag}' (its holds: {held}); `tandem snapshot holds {snapshot}` lists them"
    )]
    NoHold {
        snapshot: String,
        tag: String,
        held: String,
    },
    #[error("no schedule named '{0}'; `tandem schedule list` shows the schedules")]
    NoSchedule(String),
    #[error(
        "schedule '{0}' already exists; choose another name or remove it first (tandem schedule remove {0})"
    )]
    ScheduleExists(String),
    #[error(
        "snapshot '{newer}' is newer than '{older}': a diff goes from the earlier snapshot to the later one (tandem snapshot diff {older} {newer})"
    )]
    DiffOrder { newer: String, older: String },
    #[error("invalid hold tag '{tag}': {reason}")]
    BadTag {
        tag: String,
        reason: crate::types::NameError,
    },
    #[error(transparent)]
    Fs(#[from] FsError),
}

impl From<StoreError> for SnapError {
    fn from(e: StoreError) -> Self {
        SnapError::Fs(FsError::Store(e))
    }
}

impl crate::store::BatchError for SnapError {
    fn is_storage(&self) -> bool {
        matches!(self, SnapError::Fs(e) if crate::store::BatchError::is_storage(e))
    }
}

fn vol_name(tx: &Tx<'_>, v: VolumeId) -> Result<String, SnapError> {
    Ok(tx.volume(v)?.name)
}

/// The refusals of a snapshot's transaction, checked before it changes anything: the name
/// is free and every member exists. Returns the members' names.
pub(super) fn check_snapshot(
    tx: &Tx<'_>,
    name: &str,
    vols: &[VolumeId],
) -> Result<Vec<String>, SnapError> {
    if tx.snapshot(name)?.is_some() {
        return Err(SnapError::SnapshotExists(name.to_string()));
    }
    vols.iter().map(|&v| vol_name(tx, v)).collect()
}

/// Records every member's current generation (and bumps it) and the snapshot record, in
/// the caller's transaction: O(members). `names` as [`check_snapshot`] gave them.
pub(super) fn put_snapshot(
    tx: &mut Tx<'_>,
    name: String,
    group: Option<String>,
    vols: &[VolumeId],
    names: Vec<String>,
    description: String,
    created_us: i64,
) -> Result<SnapshotRecord, SnapError> {
    let id = tx.next_snapshot_id()?;
    let gens = tx.snapshot_generations(vols)?;
    let members = gens
        .into_iter()
        .zip(names)
        .map(|((vol, generation), name)| SnapMember {
            vol,
            name,
            generation,
        })
        .collect();
    let rec = SnapshotRecord {
        id,
        name,
        group,
        members,
        created_us,
        description,
        pause_us: 0,
        activated: Vec::new(),
    };
    tx.put_snapshot(&rec)?;
    Ok(rec)
}

impl Inner {
    pub fn groups(&self) -> Result<Vec<GroupRecord>, SnapError> {
        Ok(self.store.read()?.groups()?)
    }

    pub fn group(&self, name: &str) -> Result<GroupRecord, SnapError> {
        self.store
            .read()?
            .group(name)?
            .ok_or_else(|| SnapError::NoGroup(name.to_string()))
    }

    pub fn group_of(&self, vol: VolumeId) -> Result<Option<String>, SnapError> {
        Ok(self.store.read()?.group_of(vol)?)
    }

    pub fn snapshots(&self) -> Result<Vec<SnapshotRecord>, SnapError> {
        Ok(self.store.read()?.snapshots()?)
    }

    pub fn snapshot(&self, name: &str) -> Result<SnapshotRecord, SnapError> {
        self.store
            .read()?
            .snapshot(name)?
            .ok_or_else(|| SnapError::NoSnapshot(name.to_string()))
    }

    /// Creates a group, optionally with members.
    pub fn group_create(
        &self,
        name: &str,
        volumes: &[String],
        now: i64,
    ) -> Result<GroupRecord, SnapError> {
        crate::store::volumes::validate_name(name)?;
        let (name, volumes) = (name.to_string(), volumes.to_vec());
        self.store.write(true, move |tx| {
            if tx.group(&name)?.is_some() {
                return Err(SnapError::GroupExists(name));
            }
            let mut g = GroupRecord {
                name: name.clone(),
                members: Vec::new(),
                created: now,
            };
            add_members(tx, &mut g, &volumes)?;
            tx.put_group(&g)?;
            Ok(g)
        })
    }

    pub fn group_add(&self, name: &str, volumes: &[String]) -> Result<GroupRecord, SnapError> {
        let (name, volumes) = (name.to_string(), volumes.to_vec());
        self.store.write(true, move |tx| {
            let mut g = tx
                .group(&name)?
                .ok_or_else(|| SnapError::NoGroup(name.clone()))?;
            add_members(tx, &mut g, &volumes)?;
            tx.put_group(&g)?;
            Ok(g)
        })
    }

    pub fn group_remove(&self, name: &str, volumes: &[String]) -> Result<GroupRecord, SnapError> {
        let (name, volumes) = (name.to_string(), volumes.to_vec());
        self.store.write(true, move |tx| {
            let mut g = tx
                .group(&name)?
                .ok_or_else(|| SnapError::NoGroup(name.clone()))?;
            let mut ids = Vec::new();
            for v in &volumes {
                let id = tx.volume_id(v)?;
                if !g.members.contains(&id) {
                    return Err(SnapError::NotInGroup {
                        volume: v.clone(),
                        group: name.clone(),
                    });
                }
                ids.push(id);
            }
            for id in ids {
                g.members.retain(|m| *m != id);
                tx.set_group_of(id, None)?;
            }
            tx.put_group(&g)?;
            Ok(g)
        })
    }

    /// Deletes a group; its snapshots only with `delete_snapshots` (they are deleted too).
    pub fn group_delete(
        &self,
        name: &str,
        delete_snapshots: bool,
    ) -> Result<Vec<String>, SnapError> {
        let name = name.to_string();
        self.store.write(true, move |tx| {
            let g = tx
                .group(&name)?
                .ok_or_else(|| SnapError::NoGroup(name.clone()))?;
            let snaps: Vec<SnapshotRecord> = tx
                .snapshots()?
                .into_iter()
                .filter(|s| s.group.as_deref() == Some(name.as_str()))
                .collect();
            if !snaps.is_empty() && !delete_snapshots {
                return Err(SnapError::GroupHasSnapshots {
                    group: name,
                    count: snaps.len(),
                });
            }
            // All or nothing: a held snapshot stops the whole delete before any change.
            for s in &snaps {
                super::holds::refuse_held(tx, &s.name, s.id)?;
                tx.remove_snapshot_maker(s.id)?;
            }
            let mut deleted = Vec::new();
            for s in snaps {
                delete_record(tx, &s)?;
                deleted.push(s.name);
            }
            for m in &g.members {
                tx.set_group_of(*m, None)?;
            }
            tx.remove_group(&name)?;
            Ok(deleted)
        })
    }

    /// Records the measured pause of a snapshot (after the thaw).
    pub fn snapshot_set_pause(&self, name: &str, pause_us: u64) -> Result<(), SnapError> {
        let name = name.to_string();
        self.store.write(false, move |tx| {
            if let Some(mut s) = tx.snapshot(&name)? {
                s.pause_us = pause_us;
                tx.put_snapshot(&s)?;
            }
            Ok(())
        })
    }

    /// Deletes a snapshot: frees what only it held, in one transaction.
    pub fn snapshot_delete(&self, name: &str) -> Result<SnapshotRecord, SnapError> {
        let name = name.to_string();
        self.store.write(true, move |tx| {
            let s = tx
                .snapshot(&name)?
                .ok_or_else(|| SnapError::NoSnapshot(name.clone()))?;
            delete_record(tx, &s)?;
            Ok(s)
        })
    }

    /// Bytes of chunk references only this snapshot holds (what deleting it frees, before
    /// dedup with other volumes). O(changes around the snapshot).
    pub fn snapshot_exclusive_bytes(&self, s: &SnapshotRecord) -> Result<u64, SnapError> {
        let r = self.store.read()?;
        let mut total = 0;
        for m in &s.members {
            total += r.exclusive_bytes(m.vol, m.generation)?;
        }
        Ok(total)
    }

    /// Sets options of a volume or system-wide: every value is validated first, then all
    /// are written in one transaction, so a bad one leaves all as they were. Returns the
    /// values as stored (normalised).
    pub fn set_options(
        &self,
        scope: impl Into<OptionScope>,
        set: &[(String, String)],
    ) -> Result<Vec<(String, String)>, FsError> {
        let scope = scope.into();
        let set = crate::options::validate_all(set).map_err(|e| FsError::Option(e.to_string()))?;
        if set.is_empty() {
            return Ok(set);
        }
        let rows = set.clone();
        self.store.write(true, move |tx| {
            for (k, v) in &rows {
                tx.set_option(scope, k, v)?;
            }
            Ok::<_, FsError>(())
        })?;
        Ok(set)
    }

    /// Drops options of a volume or system-wide, so they fall back (one transaction; an
    /// unknown key is refused before anything is written). Returns whether each was set.
    pub fn unset_options(
        &self,
        scope: impl Into<OptionScope>,
        keys: &[String],
    ) -> Result<Vec<bool>, FsError> {
        let scope = scope.into();
        for k in keys {
            crate::options::known_key(k).map_err(|e| FsError::Option(e.to_string()))?;
        }
        let keys = keys.to_vec();
        self.store.write(true, move |tx| {
            let mut was = Vec::new();
            for k in &keys {
                if let OptionScope::Volume(v) = scope {
                    tx.volume(v)?;
                }
                was.push(tx.unset_option(scope, k)?);
            }
            Ok::<_, FsError>(was)
        })
    }
}

fn add_members(tx: &mut Tx<'_>, g: &mut GroupRecord, volumes: &[String]) -> Result<(), SnapError> {
    let mut ids = Vec::new();
    for v in volumes {
        let id = tx.volume_id(v)?;
        match tx.group_of(id)? {
            Some(other) if other != g.name => {
                return Err(SnapError::InOtherGroup {
                    volume: v.clone(),
                    group: other,
                });
            }
            _ => {}
        }
        ids.push(id);
    }
    for id in ids {
        if !g.members.contains(&id) {
            g.members.push(id);
            tx.set_group_of(id, Some(&g.name))?;
        }
    }
    Ok(())
}

fn delete_record(tx: &mut Tx<'_>, s: &SnapshotRecord) -> Result<(), SnapError> {
    super::holds::refuse_held(tx, &s.name, s.id)?;
    for m in &s.members {
        // A member volume deleted since took its generations with it.
        if tx.volume(m.vol).is_ok() {
            tx.release_generation(m.vol, m.generation)?;
        }
    }
    tx.remove_snapshot_record(&s.name)?;
    Ok(())
}

/// Generation of a member in a snapshot (for views).
pub fn member_generation(s: &SnapshotRecord, vol: VolumeId) -> Option<Generation> {
    s.members
        .iter()
        .find(|m| m.vol == vol)
        .map(|m| m.generation)
}

/// How a volume's live data is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct VolumeSpace {
    /// Stored bytes only the live volume references (freed if it were deleted).
    pub unique: u64,
    /// Stored bytes it shares with snapshots, clones, other files or volumes.
    pub shared: u64,
    /// Of `shared`, the bytes a layered clone reads through to its origin's snapshot
    /// generation (its lower layer, see `crate::store::layers`); 0 for any other volume.
    #[serde(default)]
    pub origin: u64,
}

impl Inner {
    /// Unique and shared bytes of a volume's live data, its buffered writes flushed first.
    /// O(rows of the volume).
    pub fn volume_space(&self, vol: VolumeId) -> Result<VolumeSpace, FsError> {
        self.flush_volume(vol)?;
        Ok(self
            .committed_volume_space(vol, &mut || true)?
            .unwrap_or_default())
    }

    /// [`Inner::volume_space`] of what is committed: read only (no flush, one read
    /// transaction). `go_on` is asked before each row; `None` when it said stop.
    pub fn committed_volume_space(
        &self,
        vol: VolumeId,
        go_on: &mut dyn FnMut() -> bool,
    ) -> Result<Option<VolumeSpace>, FsError> {
        let r = self.store.read()?;
        let mut space = VolumeSpace::default();
        let mut stopped = false;
        r.volume_rows_layered(vol, View::Live, |_, v, lower| {
            if !go_on() {
                stopped = true;
                return Ok(false);
            }
            for (chunk, len) in v.chunks() {
                if lower {
                    // The origin's reference: shared with it whatever the count says.
                    space.shared += len as u64;
                    space.origin += len as u64;
                    continue;
                }
                match r.chunk(chunk)? {
                    Some(row) if row.refs <= 1 => space.unique += len as u64,
                    _ => space.shared += len as u64,
                }
            }
            Ok(true)
        })?;
        Ok((!stopped).then_some(space))
    }
}
