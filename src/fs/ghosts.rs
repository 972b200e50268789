//! Directories the kernel holds, and the ghosts of those removed while it held them.
//!
//! The kernel keeps an inode it got in an entry reply (lookup, mkdir, a readdirplus entry)
//! until it forgets it (FORGET, BATCH_FORGET): a process's working directory, or a cached
//! dentry, reaches a directory without a name. Removed (rmdir, or renamed over) while held,
//! such a directory still answers GETATTR, as on ext4 or tmpfs: `stat .` in a removed
//! working directory works (no links), `ls .` lists nothing, `cd ..` works (the kernel
//! checks search permission on the removed directory first, and asks for its attributes).
//!
//! Owns the kernel's lookup count of live directories ([`Held`], counted by the FUSE
//! adapter through [`Engine`](super::Engine)) and the ghost each keeps: the inode's last
//! attributes (no links, ctime of the removal), taken in the removal's transaction
//! ([`super::txops::drop_dir`]). The directory itself is freed in that same transaction, as
//! one nobody holds is: an rmdir costs no second transaction (an orphan row, as an open
//! directory gets, would need one to free it at FORGET, which follows nearly every rmdir).
//!
//! Only directories count: a file is reached without a name only through an open handle,
//! which opens.rs counts already. Inode numbers are never handed out twice while the pool is
//! open, so a ghost never shadows a newer inode; it answers only where the store has
//! nothing (ENOENT): getattr, opendir, an empty listing, no extended attributes (ENODATA:
//! no ACL, its mode rules). Lookups and creates inside find no directory (ENOENT); changes
//! to the ghost itself (chmod, setxattr) are refused with ENOENT (ext4 takes them).
//! Everything here is memory: dropped when the kernel forgets the directory, when the
//! volume's FUSE session ends (or the volume is deleted), and never seen by a reopened pool.
//!
//! Invariant: a ghost exists only for a directory with a nonzero lookup count; the lock is
//! a leaf (nothing else is locked while it is held).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::rows::View;
use crate::types::{InodeNo, VolumeId};

use super::attr::{Attr, FileKind, Inode};
use super::error::FsError;
use super::{Inner, lock};

/// One directory the kernel holds.
struct Hold {
    /// The kernel's lookup count.
    lookups: u64,
    /// Its last attributes, once it lost its last name.
    ghost: Option<Box<Inode>>,
}

/// The kernel's lookup counts of live directories, and their ghosts (see the module docs).
#[derive(Default)]
pub(crate) struct Held(Mutex<HashMap<(VolumeId, InodeNo), Hold>>);

impl Held {
    /// The kernel got `attr` in an entry reply: a directory's count goes up by one.
    pub(crate) fn looked_up(&self, vol: VolumeId, attr: &Attr) {
        if attr.kind != FileKind::Dir {
            return;
        }
        lock(&self.0)
            .entry((vol, attr.ino))
            .or_insert(Hold {
                lookups: 0,
                ghost: None,
            })
            .lookups += 1;
    }

    /// The kernel forgot `n` lookups of `ino`; a directory at zero is dropped, with its
    /// ghost (a file is not counted: nothing to do).
    pub(crate) fn forgot(&self, vol: VolumeId, ino: InodeNo, n: u64) {
        let mut held = lock(&self.0);
        if let Some(h) = held.get_mut(&(vol, ino)) {
            h.lookups = h.lookups.saturating_sub(n);
            if h.lookups == 0 {
                held.remove(&(vol, ino));
            }
        }
    }

    /// The volume's FUSE session ended (or the volume is deleted): the kernel holds nothing.
    pub(crate) fn forget_volume(&self, vol: VolumeId) {
        lock(&self.0).retain(|(v, _), _| *v != vol);
    }

    /// Keeps `last` as the ghost of directory `ino` if the kernel holds it; true if so.
    pub(crate) fn bury(&self, vol: VolumeId, ino: InodeNo, last: Inode) -> bool {
        match lock(&self.0).get_mut(&(vol, ino)) {
            Some(h) => {
                h.ghost = Some(Box::new(last));
                true
            }
            None => false,
        }
    }

    /// The ghost of `ino`, if it is a removed directory the kernel still holds.
    fn ghost(&self, vol: VolumeId, ino: InodeNo) -> Option<Inode> {
        lock(&self.0)
            .get(&(vol, ino))
            .and_then(|h| h.ghost.as_deref().cloned())
    }
}

impl Inner {
    /// The kernel's lookup counts (see the module docs).
    pub(crate) fn held(&self) -> &Held {
        &self.opens.held
    }

    /// `found`, or where the live store has no `ino`, the attributes of its ghost.
    pub(crate) fn or_ghost(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
        found: Result<Attr, FsError>,
    ) -> Result<Attr, FsError> {
        match found {
            Err(FsError::NotFound) if view == View::Live => match self.held().ghost(vol, ino) {
                Some(last) => Ok(last.attr(ino, self.vol_state(vol)?.block_size)),
                None => Err(FsError::NotFound),
            },
            other => other,
        }
    }

    /// Is `ino` a removed directory the kernel still holds (it lists as empty)?
    pub(crate) fn is_ghost(&self, vol: VolumeId, view: View, ino: InodeNo) -> bool {
        view == View::Live
            && lock(&self.held().0)
                .get(&(vol, ino))
                .is_some_and(|h| h.ghost.is_some())
    }
}

#[cfg(test)]
mod tests {
    use crate::fs::attr::FileKind;
    use crate::fs::{Ctx, Engine, FsError, RenameFlags};
    use crate::store::rows::View;
    use crate::types::InodeNo;

    #[test]
    fn a_removed_directory_the_kernel_holds_answers_until_it_is_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let v = e.create_volume("v", Some(4096), Ctx::default()).unwrap().id;
        let root = InodeNo::ROOT;
        let files = |e: &Engine| e.record(v).unwrap().files;
        let gone =
            |e: &Engine, ino| matches!(e.getattr(v, View::Live, ino), Err(FsError::NotFound));
        let before = files(&e);
        // Looked up twice (its mkdir, and a lookup), then removed: freed at once.
        let q = e.mkdir(v, root, b"q", 0o750, Ctx::default()).unwrap();
        e.kernel_looked_up(v, &q);
        e.kernel_looked_up(v, &q);
        e.rmdir(v, root, b"q").unwrap();
        assert_eq!(files(&e), before);
        let a = e.getattr(v, View::Live, q.ino).unwrap();
        assert_eq!((a.kind, a.perm, a.nlink), (FileKind::Dir, 0o750, 0));
        assert!(a.ctime >= q.ctime);
        assert!(e.readdir(v, View::Live, q.ino, 0, 10).unwrap().is_empty());
        e.open_file(v, View::Live, q.ino).unwrap();
        e.release(v, View::Live, q.ino).unwrap();
        assert!(matches!(
            e.mkdir(v, q.ino, b"x", 0o755, Ctx::default()),
            Err(FsError::NotFound)
        ));
        assert!(matches!(
            e.lookup(v, View::Live, q.ino, b"x"),
            Err(FsError::NotFound)
        ));
        // The kernel forgets one lookup, then the other: gone.
        e.kernel_forgot(v, q.ino, 1);
        assert!(!gone(&e, q.ino));
        e.kernel_forgot(v, q.ino, 1);
        assert!(gone(&e, q.ino));
        // Renamed over while held: the same.
        let a = e.mkdir(v, root, b"a", 0o755, Ctx::default()).unwrap();
        let b = e.mkdir(v, root, b"b", 0o755, Ctx::default()).unwrap();
        e.kernel_looked_up(v, &b);
        e.rename(v, root, b"a", root, b"b", RenameFlags::default())
            .unwrap();
        assert_eq!(e.getattr(v, View::Live, b.ino).unwrap().nlink, 0);
        assert_eq!(e.lookup(v, View::Live, root, b"b").unwrap().ino, a.ino);
        // Not held (or a file, never counted): no ghost.
        let d = e.mkdir(v, root, b"d", 0o755, Ctx::default()).unwrap();
        e.rmdir(v, root, b"d").unwrap();
        assert!(gone(&e, d.ino));
        let f = e.create(v, root, b"f", 0o644, Ctx::default()).unwrap();
        e.kernel_looked_up(v, &f);
        e.unlink(v, root, b"f").unwrap();
        e.commit_all().unwrap();
        assert!(gone(&e, f.ino));
        // The session ends: every ghost of the volume goes.
        e.kernel_let_go(v);
        assert!(gone(&e, b.ino));
        assert_eq!(files(&e), before + 1);
    }
}
