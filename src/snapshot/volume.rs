//! Deleting a volume, and when it is refused: a volume that belongs to a group, that
//! snapshots still hold, or that is mounted stays (the engine itself deletes whatever it is
//! told to). The control API's dispatcher only calls this and reports its typed error.

use std::path::PathBuf;

use super::{DeleteWhich, MountView, delete_list, refuse_held};
use crate::fs::groups::SnapError;
use crate::fs::{Engine, FsError};

/// Why a volume was not deleted; each names the volume and the way out.
#[derive(Debug, thiserror::Error)]
pub enum VolumeDeleteError {
    #[error(
        "volume '{volume}' belongs to group '{group}'; remove it first (tandem group remove {group} {volume})"
    )]
    InGroup { volume: String, group: String },
    #[error(
        "volume '{volume}' has {count} snapshot(s); delete them first (tandem snapshot delete --volume {volume})"
    )]
    HasSnapshots { volume: String, count: usize },
    #[error(
        "volume '{volume}' is mounted at {}; unmount it first (tandem umount {volume})",
        .at.display()
    )]
    Mounted { volume: String, at: PathBuf },
    #[error(transparent)]
    Snap(#[from] SnapError),
}

impl From<FsError> for VolumeDeleteError {
    fn from(e: FsError) -> Self {
        VolumeDeleteError::Snap(SnapError::Fs(e))
    }
}

/// Deletes volume `name` and reclaims its space, unless it is in a group, has snapshots or
/// is mounted (checked in that order).
pub fn delete_volume(
    engine: &Engine,
    mounts: &dyn MountView,
    name: &str,
) -> Result<(), VolumeDeleteError> {
    let id = engine.volume_id(name)?;
    if let Some(group) = engine.group_of(id)? {
        return Err(VolumeDeleteError::InGroup {
            volume: name.into(),
            group,
        });
    }
    let snaps = delete_list(engine, &DeleteWhich::Volume(name.into()))?;
    // A held one is named first: deleting the others would not be enough.
    refuse_held(engine, &snaps)?;
    if !snaps.is_empty() {
        return Err(VolumeDeleteError::HasSnapshots {
            volume: name.into(),
            count: snaps.len(),
        });
    }
    if let Some(at) = mounts.mountpoints(name).into_iter().next() {
        return Err(VolumeDeleteError::Mounted {
            volume: name.into(),
            at,
        });
    }
    Ok(engine.delete_volume(name)?)
}
