//! Open handles: how many each inode has, and the hint that one lost its last name while
//! open. Owns the count (`Inner::opens`, shared with write jobs) and everything that reads
//! or changes it: `open`/`open_created`/`release`, `is_open`, `forget_opens` (a deleted
//! volume), and [`mark_if_open`], which an unlink or rename calls in its transaction.
//!
//! Files and directories both count their handles (open and opendir). A directory the
//! kernel holds without a handle (a working directory) is ghosts.rs's, kept in the same
//! [`Opens`] so that a removal's transaction sees both.
//!
//! Invariant: a file unlinked while open, or a directory removed while open (rmdir, or
//! renamed over), stays (an orphan row, no links) until its last release, which frees it in
//! the writer, behind the removal that made it an orphan.

use std::sync::Mutex;

use crate::store::ReadView;
use crate::store::rows::View;
use crate::types::{InodeNo, VolumeId};

use super::attr::{Attr, FileKind};
use super::error::FsError;
use super::ghosts::Held;
use super::{Inner, lock, txops};

/// Set in an inode's open count when it lost its last name while open: only then does its
/// last release look for an orphan row (a read per close saved otherwise). A hint: the
/// transaction that set it may have failed, and then the release finds no row.
pub(crate) const MAYBE_ORPHAN: u32 = 1 << 31;

/// Open handles per inode (see the module docs), and the directories the kernel holds
/// without a handle (ghosts.rs): what decides, when an inode loses its last name, whether
/// something still reaches it. Shared with the writer's jobs.
#[derive(Default)]
pub(crate) struct Opens {
    handles: Mutex<std::collections::HashMap<(VolumeId, InodeNo), u32>>,
    pub(crate) held: Held,
}

/// Is the inode open? If so it may become an orphan: its last release must look.
pub(super) fn mark_if_open(opens: &Opens, vol: VolumeId, ino: InodeNo) -> bool {
    match lock(&opens.handles).get_mut(&(vol, ino)) {
        Some(n) => {
            *n |= MAYBE_ORPHAN;
            true
        }
        None => false,
    }
}

impl Inner {
    /// Counts an open handle (a file unlinked while open stays until the last release).
    pub fn open(&self, vol: VolumeId, view: View, ino: InodeNo) -> Result<Attr, FsError> {
        if view == View::Live {
            *lock(&self.opens.handles).entry((vol, ino)).or_insert(0) += 1;
        }
        // A removed directory the kernel still holds opens (it lists as empty).
        match self.or_ghost(vol, view, ino, self.getattr(vol, view, ino)) {
            Ok(a) => Ok(a),
            Err(e) => {
                if view == View::Live {
                    self.drop_open(vol, ino);
                }
                Err(e)
            }
        }
    }

    /// Counts the handle a create(2) opens on the file it just made (its attributes are
    /// known, and no one else can reach the name before the create is answered).
    pub fn open_created(&self, vol: VolumeId, ino: InodeNo) {
        *lock(&self.opens.handles).entry((vol, ino)).or_insert(0) += 1;
    }

    /// Drops one handle; true when it was the last one and the inode may be an orphan
    /// (it lost its last name while open: see [`MAYBE_ORPHAN`]).
    fn drop_open(&self, vol: VolumeId, ino: InodeNo) -> bool {
        let mut opens = lock(&self.opens.handles);
        match opens.get_mut(&(vol, ino)) {
            Some(n) if *n & !MAYBE_ORPHAN > 1 => {
                *n -= 1;
                false
            }
            Some(n) => {
                let orphan = *n & MAYBE_ORPHAN != 0;
                opens.remove(&(vol, ino));
                orphan
            }
            None => false,
        }
    }

    /// Does the inode have an open handle?
    pub(super) fn is_open(&self, vol: VolumeId, ino: InodeNo) -> bool {
        lock(&self.opens.handles).contains_key(&(vol, ino))
    }

    /// Forgets every handle of a volume, and what the kernel held of it (it is being
    /// deleted).
    pub(super) fn forget_opens(&self, vol: VolumeId) {
        lock(&self.opens.handles).retain(|(v, _), _| *v != vol);
        self.opens.held.forget_volume(vol);
    }

    /// Releases a handle; the last release of an unlinked file (or removed directory) frees
    /// it.
    pub fn release(&self, vol: VolumeId, view: View, ino: InodeNo) -> Result<(), FsError> {
        if view != View::Live || !self.drop_open(vol, ino) {
            return Ok(());
        }
        // Decided in the writer, behind the unlink that made it an orphan (an unlink is
        // write-behind: its orphan row may not be committed yet).
        let opens = self.opens.clone();
        let freed = self.write_op(move |tx| {
            if lock(&opens.handles).contains_key(&(vol, ino)) {
                return Ok(false);
            }
            let mut rec = tx.volume(vol)?;
            match txops::get_inode(tx, vol, ino) {
                Ok(i) if i.nlink == 0 => {
                    if i.kind == FileKind::Dir {
                        // Still somebody's working directory: it goes on answering.
                        opens.held.bury(tx, vol, ino, &i)?;
                    }
                    txops::free_inode(tx, &mut rec, ino)?;
                    tx.put_volume(&rec)?;
                    Ok(true)
                }
                _ => Ok::<_, FsError>(false),
            }
        })?;
        if freed {
            self.discard_dirty(vol, ino);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::fs::{Ctx, Engine, FsError, RenameFlags};
    use crate::store::rows::View;
    use crate::types::InodeNo;

    #[test]
    fn a_directory_removed_while_open_stays_until_its_last_release() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let v = e.create_volume("v", Some(4096), Ctx::default()).unwrap().id;
        let root = InodeNo::ROOT;
        // As committed: mkdirs answered before their commit are counted once settled.
        let files = |e: &Engine| {
            e.inner.store().settle().unwrap();
            e.record(v).unwrap().files
        };
        let a = e.mkdir(v, root, b"a", 0o755, Ctx::default()).unwrap().ino;
        let b = e.mkdir(v, root, b"b", 0o755, Ctx::default()).unwrap().ino;
        let c = e.mkdir(v, root, b"c", 0o755, Ctx::default()).unwrap().ino;
        let before = files(&e);
        // Renamed over while open (twice: two handles), and removed while open.
        e.open_file(v, View::Live, b).unwrap();
        e.open_file(v, View::Live, b).unwrap();
        e.open_file(v, View::Live, c).unwrap();
        e.rename(v, root, b"a", root, b"b", RenameFlags::default())
            .unwrap();
        e.rmdir(v, root, b"c").unwrap();
        for ino in [b, c] {
            let attr = e.getattr(v, View::Live, ino).unwrap();
            assert_eq!(attr.nlink, 0, "directory {ino}");
        }
        assert_eq!(e.getattr(v, View::Live, a).unwrap().nlink, 2);
        assert_eq!(e.getattr(v, View::Live, root).unwrap().nlink, 3);
        assert_eq!(files(&e), before);
        // The last release frees each one.
        e.release(v, View::Live, b).unwrap();
        e.release(v, View::Live, c).unwrap();
        assert!(e.getattr(v, View::Live, b).is_ok());
        assert!(matches!(
            e.getattr(v, View::Live, c),
            Err(FsError::NotFound)
        ));
        e.release(v, View::Live, b).unwrap();
        assert!(matches!(
            e.getattr(v, View::Live, b),
            Err(FsError::NotFound)
        ));
        assert_eq!(files(&e), before - 2);
        // Not open: freed at once.
        e.mkdir(v, root, b"d", 0o755, Ctx::default()).unwrap();
        e.rmdir(v, root, b"d").unwrap();
        assert_eq!(files(&e), before - 2);
    }
}
