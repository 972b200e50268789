//! Renames of volumes, groups and snapshots in the catalog: each in the caller's ONE
//! transaction, O(1) in data (the rows and chunks are keyed by ids, never by names). Every
//! record that names the object by name is rewritten with it: a volume's name index and
//! record and the member names of the snapshots that hold it; a group's record, its
//! members' `volume-group/` entries and its snapshots' group; a snapshot's record. What is
//! kept beside a snapshot (`snapmeta`) is keyed by its id and stays.
//!
//! Invariant: the new name is validated and free before anything is written; the caller
//! checks the old one exists (an error names it).

use redb::ReadableTable;

use super::catalog::{GroupRecord, SnapshotRecord};
use super::error::StoreError;
use super::read::ReadView;
use super::volumes::validate_name;
use super::writer::Tx;
use crate::types::VolumeId;

impl Tx<'_> {
    /// Renames volume `id` to `new`.
    pub fn rename_volume(&mut self, id: VolumeId, new: &str) -> Result<(), StoreError> {
        validate_name(new)?;
        if self.volume_names.get(new)?.is_some() {
            return Err(StoreError::VolumeExists {
                name: new.to_string(),
            });
        }
        let mut rec = self.volume(id)?;
        self.volume_names.remove(rec.name.as_str())?;
        self.volume_names.insert(new, id.0)?;
        rec.name = new.to_string();
        self.put_volume(&rec)?;
        for mut s in self.snapshots()? {
            let mut hit = false;
            for m in s.members.iter_mut().filter(|m| m.vol == id) {
                m.name = new.to_string();
                hit = true;
            }
            if hit {
                self.put_snapshot(&s)?;
            }
        }
        Ok(())
    }

    /// Renames group `g` (its record as read) to `new`; the caller checked `new` is free.
    pub fn rename_group(&mut self, g: &GroupRecord, new: &str) -> Result<(), StoreError> {
        validate_name(new)?;
        self.remove_group(&g.name)?;
        let renamed = GroupRecord {
            name: new.to_string(),
            ..g.clone()
        };
        self.put_group(&renamed)?;
        for m in &g.members {
            self.set_group_of(*m, Some(new))?;
        }
        for mut s in self.snapshots()? {
            if s.group.as_deref() == Some(g.name.as_str()) {
                s.group = Some(new.to_string());
                self.put_snapshot(&s)?;
            }
        }
        Ok(())
    }

    /// Renames snapshot `s` (its record as read) to `new`; the caller checked `new` is free.
    pub fn rename_snapshot(&mut self, s: &SnapshotRecord, new: &str) -> Result<(), StoreError> {
        validate_name(new)?;
        // Not remove_snapshot_record: what is kept beside it stays (keyed by id).
        self.meta
            .remove(super::catalog::snap_key(&s.name).as_str())?;
        let renamed = SnapshotRecord {
            name: new.to_string(),
            ..s.clone()
        };
        self.put_snapshot(&renamed)?;
        Ok(())
    }
}
