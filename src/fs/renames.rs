//! The engine's side of renames (`crate::store::rename`): each one write transaction that
//! finds the object by its old name, refuses a taken new name, and rewrites every record
//! naming it. Live mounts, buffers and open files are keyed by ids, so they carry on.

use crate::store::{ReadView, StoreError};
use crate::types::VolumeId;

use super::Inner;
use super::groups::SnapError;

impl Inner {
    /// Renames volume `old` to `new`; returns its id.
    pub fn rename_volume(&self, old: &str, new: &str) -> Result<VolumeId, SnapError> {
        let (old, new) = (old.to_string(), new.to_string());
        self.store.write(true, move |tx| {
            let id = tx.volume_id(&old)?;
            if old != new {
                tx.rename_volume(id, &new)?;
            }
            Ok::<_, SnapError>(id)
        })
    }

    /// Renames group `old` to `new` (its snapshots record the new name).
    pub fn rename_group(&self, old: &str, new: &str) -> Result<(), SnapError> {
        let (old, new) = (old.to_string(), new.to_string());
        self.store.write(true, move |tx| {
            let g = tx
                .group(&old)?
                .ok_or_else(|| SnapError::NoGroup(old.clone()))?;
            if old == new {
                return Ok(());
            }
            crate::store::volumes::validate_name(&new)?;
            if tx.group(&new)?.is_some() {
                return Err(SnapError::GroupExists(new));
            }
            tx.rename_group(&g, &new)?;
            Ok(())
        })
    }

    /// Renames snapshot `old` to `new` (its root and last test stay with it).
    pub fn rename_snapshot(&self, old: &str, new: &str) -> Result<(), SnapError> {
        let (old, new) = (old.to_string(), new.to_string());
        self.store.write(true, move |tx| {
            let s = tx
                .snapshot(&old)?
                .ok_or_else(|| SnapError::NoSnapshot(old.clone()))?;
            if old == new {
                return Ok(());
            }
            crate::store::volumes::validate_name(&new)?;
            if tx.snapshot(&new)?.is_some() {
                return Err(SnapError::SnapshotExists(new));
            }
            tx.rename_snapshot(&s, &new)
                .map_err(|e: StoreError| e.into())
        })
    }
}
