//! [`Engine`]'s renames of volumes, groups and snapshots (renames.rs): one transaction
//! each, O(1) in data.

use super::Engine;
use crate::fs::groups::SnapError;
use crate::types::VolumeId;

/// # Renames
impl Engine {
    /// Renames volume `old` to `new` (snapshots holding it name their member `new`).
    pub fn rename_volume(&self, old: &str, new: &str) -> Result<VolumeId, SnapError> {
        self.inner.rename_volume(old, new)
    }

    /// Renames group `old` to `new` (its snapshots record the new name).
    pub fn rename_group(&self, old: &str, new: &str) -> Result<(), SnapError> {
        self.inner.rename_group(old, new)
    }

    /// Renames snapshot `old` to `new`.
    pub fn rename_snapshot(&self, old: &str, new: &str) -> Result<(), SnapError> {
        self.inner.rename_snapshot(old, new)
    }
}
