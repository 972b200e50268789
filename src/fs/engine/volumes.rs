//! [`Engine`]'s volumes and their options.

use super::Engine;
use crate::fs::groups::VolumeSpace;
use crate::fs::{Ctx, FsError, VolumeInfo};
use crate::options::{OptionScope, VolumeOptions};
use crate::store::volumes::VolumeRecord;
use crate::types::{Generation, VolumeId};

/// # Volumes and their options
///
/// (mod.rs, groups.rs.)
impl Engine {
    /// Creates a volume with an empty root directory (mode 0755, owned by `owner`).
    pub fn create_volume(
        &self,
        name: &str,
        block_size: Option<u64>,
        owner: Ctx,
    ) -> Result<VolumeInfo, FsError> {
        self.inner.create_volume(name, block_size, owner)
    }

    /// The id of the volume named `name`.
    pub fn volume_id(&self, name: &str) -> Result<VolumeId, FsError> {
        self.inner.volume_id(name)
    }

    /// The committed record of a volume.
    pub fn record(&self, vol: VolumeId) -> Result<VolumeRecord, FsError> {
        self.inner.record(vol)
    }

    /// Every volume, by name (counts include unlinks answered but not committed yet).
    pub fn list_volumes(&self) -> Result<Vec<VolumeInfo>, FsError> {
        self.inner.list_volumes()
    }

    /// Volume info with buffered writes counted.
    pub fn volume_info(&self, name: &str) -> Result<VolumeInfo, FsError> {
        self.inner.volume_info(name)
    }

    /// Deletes a volume and reclaims its space (chunks only it referenced are freed).
    /// Clones layered over it get their own copy of what they read of it first.
    pub fn delete_volume(&self, name: &str) -> Result<(), FsError> {
        self.inner.delete_volume(name)
    }

    /// The origin volume and snapshot generation a layered clone reads through to
    /// (`None`: not a layered clone; see `crate::store::layers`).
    pub fn clone_layer(&self, vol: VolumeId) -> Result<Option<(VolumeId, Generation)>, FsError> {
        self.inner.clone_layer(vol)
    }

    /// Unique and shared bytes of a volume's live data. O(rows of the volume).
    pub fn volume_space(&self, vol: VolumeId) -> Result<VolumeSpace, FsError> {
        self.inner.volume_space(vol)
    }

    /// [`Engine::volume_space`] of what is committed, read only: no flush, one read
    /// transaction, nothing waits for it. `go_on` is asked before each row; `None` when it
    /// said stop. O(rows of the volume).
    pub fn committed_volume_space(
        &self,
        vol: VolumeId,
        go_on: &mut dyn FnMut() -> bool,
    ) -> Result<Option<VolumeSpace>, FsError> {
        self.inner.committed_volume_space(vol, go_on)
    }

    /// Every volume as committed, by name, read only: unlike [`Engine::list_volumes`] it
    /// does not wait for the writer's queue (unlinks answered but not committed yet are
    /// not counted).
    pub fn committed_volumes(&self) -> Result<Vec<VolumeInfo>, FsError> {
        self.inner.committed_volumes()
    }

    /// Bytes each volume's write buffer holds, not yet flushed (a volume never written
    /// since the pool opened may be absent). Cheap: no store read, no flush.
    pub fn dirty_bytes(&self) -> Vec<(VolumeId, u64)> {
        self.inner.dirty_bytes()
    }

    /// The options stored for one scope, parsed (see [`crate::options`]).
    pub fn options(&self, scope: OptionScope) -> Result<VolumeOptions, FsError> {
        self.inner.options(scope)
    }

    /// Sets options of a volume or system-wide: every value is validated first, then all
    /// are written in one transaction, so a bad one leaves all as they were. Returns the
    /// values as stored (normalised).
    pub fn set_options(
        &self,
        scope: impl Into<OptionScope>,
        set: &[(String, String)],
    ) -> Result<Vec<(String, String)>, FsError> {
        self.inner.set_options(scope, set)
    }

    /// Drops options of a volume or system-wide, so they fall back to the system-wide value
    /// or the default; returns whether each was set.
    pub fn unset_options(
        &self,
        scope: impl Into<OptionScope>,
        keys: &[String],
    ) -> Result<Vec<bool>, FsError> {
        self.inner.unset_options(scope, keys)
    }
}
