//! `tandem cp`: an instant copy between files of tandem mounts of the pool, also across
//! volumes (the kernel answers copy_file_range between two mounts with EXDEV, and `cp`
//! then copies the bytes). The CLI sends absolute, canonical paths; the daemon finds the
//! mount of each (its table), walks the path below the mountpoint in the volume, and lets
//! the engine copy by sharing blocks ([`crate::fs::Engine::copy_file`]). The kernel's
//! cached entry and pages of the destination are dropped afterwards (the copy was made
//! behind it).
//!
//! Invariants: the destination is in a live (writable) mount; nothing is followed below a
//! mountpoint but plain directory entries (the CLI resolved symlinks when it made the
//! paths canonical).

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use super::{Daemon, ServiceError};
use crate::control::CopyOutcome;
use crate::fs::copy::FileAt;
use crate::fs::{Ctx, FsError};
use crate::snapshot::MountView;
use crate::store::keys::{RowId, name_hash};
use crate::store::rows::View;
use crate::types::{InodeNo, VolumeId};

impl Daemon {
    /// Copies the file at `src` to `dst` (see the module docs).
    pub(super) fn copy(
        &self,
        src: &Path,
        dst: &Path,
        ctx: Ctx,
    ) -> Result<CopyOutcome, ServiceError> {
        let (src_volume, svol, sview, srel) = self.on_mount(src)?;
        let (dst_volume, dvol, dview, drel) = self.on_mount(dst)?;
        if dview != View::Live {
            return Err(ServiceError::CopyPath(format!(
                "{} is in a snapshot, which is read-only; copy into a live volume's mount",
                dst.display()
            )));
        }
        let sino = self.walk(svol, sview, &srel, src)?;
        let (Some(parent_rel), Some(name)) = (drel.parent(), drel.file_name()) else {
            return Err(ServiceError::CopyPath(format!(
                "{} is a mountpoint; name a file inside it",
                dst.display()
            )));
        };
        let parent = self.walk(dvol, View::Live, parent_rel, dst)?;
        let from = FileAt {
            vol: svol,
            view: sview,
            ino: sino,
        };
        let name = name.as_bytes();
        let (ino, c) = self.engine.copy_file(from, dvol, parent, name, ctx)?;
        self.mounts.invalidate(
            dvol,
            &[
                RowId::Dirent(parent, name_hash(name), name.to_vec()),
                RowId::Inode(ino),
            ],
        );
        Ok(CopyOutcome {
            src_volume,
            dst_volume,
            dst: dst.to_path_buf(),
            bytes: c.bytes,
            shared: c.shared,
        })
    }

    /// The tandem mount holding `path`: volume name, id, view, path below the mountpoint.
    fn on_mount(
        &self,
        path: &Path,
    ) -> Result<(String, VolumeId, View, std::path::PathBuf), ServiceError> {
        self.mounts.locate(path).ok_or_else(|| {
            ServiceError::CopyPath(format!(
                "{} is not on a tandem mount of this pool; tandem status lists the mounts",
                path.display()
            ))
        })
    }

    /// The inode at `rel` below a volume's root (`whole`: the path, for the error).
    fn walk(
        &self,
        vol: VolumeId,
        view: View,
        rel: &Path,
        whole: &Path,
    ) -> Result<InodeNo, ServiceError> {
        let mut ino = InodeNo::ROOT;
        for c in rel.components() {
            let Component::Normal(name) = c else {
                continue;
            };
            ino = match self.engine.lookup(vol, view, ino, name.as_bytes()) {
                Ok(a) => a.ino,
                Err(FsError::NotFound) => {
                    return Err(ServiceError::CopyPath(format!(
                        "{} does not exist in its volume (a snapshot directory under .snaps is not copied from; activate the snapshot instead)",
                        whole.display()
                    )));
                }
                Err(e) => return Err(e.into()),
            };
        }
        Ok(ino)
    }
}
