//! Directories the kernel holds, and the ghosts of those removed while it held them.
//!
//! The kernel keeps an inode it got in an entry reply (lookup, mkdir, a readdirplus entry)
//! until it forgets it (FORGET, BATCH_FORGET): a process's working directory, or a cached
//! dentry, reaches a directory without a name. Removed (rmdir, or renamed over) while held,
//! such a directory still answers, as on ext4 or tmpfs: `stat .` in a removed working
//! directory works (no links), `ls .` lists nothing, `cd ..` works (the kernel checks
//! search permission on the removed directory first, and asks for its attributes).
//!
//! Owns the kernel's lookup count of live directories ([`Held`], counted by the FUSE
//! adapter through [`Engine`](super::Engine)) and the ghost each keeps: the inode's last
//! attributes (no links, ctime of the removal) and its extended attributes (ACLs included),
//! taken in the removal's transaction ([`super::txops::drop_dir`]). The directory itself is
//! freed in that same transaction, as one nobody holds is: an rmdir costs no second
//! transaction (an orphan row, as an open directory gets, would need one to free it at
//! FORGET, which follows nearly every rmdir).
//!
//! Only directories count: a file is reached without a name only through an open handle,
//! which opens.rs counts already. Inode numbers are never handed out twice while the pool is
//! open, so a ghost never shadows a newer inode; it answers only where the store has
//! nothing (ENOENT): getattr, opendir, an empty listing, and, as tmpfs does, changes to
//! the ghost itself: setattr (mode, owner, times; the kernel has checked the caller's
//! rights with default_permissions), and setting, reading, listing and removing extended
//! attributes, POSIX ACLs with their mode rules as acl.rs has them. Each change sets the
//! ghost's ctime and lives only in the ghost: nothing is committed. Lookups and creates
//! inside find no directory (ENOENT). Everything here is memory: dropped when the kernel
//! forgets the directory, when the volume's FUSE session ends (or the volume is deleted),
//! and never seen by a reopened pool.
//!
//! Invariant: a ghost exists only for a directory with a nonzero lookup count; the lock is
//! a leaf (nothing else is locked while it is held).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::store::ReadView;
use crate::store::rows::View;
use crate::types::{InodeNo, VolumeId};

use super::acl::{Acl, AclKind, Caller};
use super::attr::{Attr, FileKind, Inode, SetAttr, TimeSet, Timestamp, XattrMode};
use super::error::FsError;
use super::{Inner, lock};

/// One directory the kernel holds.
struct Hold {
    /// The kernel's lookup count.
    lookups: u64,
    /// What it keeps once it lost its last name.
    ghost: Option<Box<Ghost>>,
}

/// A removed directory the kernel holds: its attributes and extended attributes, changed
/// in memory only.
struct Ghost {
    inode: Inode,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
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

    /// Keeps a copy of `last` as the ghost of directory `ino` if the kernel holds it, with
    /// the extended attributes `r` (the removal's transaction, before it deletes them)
    /// shows; true if so. A directory nobody holds costs one map lookup.
    pub(crate) fn bury(
        &self,
        r: &impl ReadView,
        vol: VolumeId,
        ino: InodeNo,
        last: &Inode,
    ) -> Result<bool, FsError> {
        if !lock(&self.0).contains_key(&(vol, ino)) {
            return Ok(false);
        }
        let mut xattrs = BTreeMap::new();
        for name in r.xattr_names(vol, View::Live, ino)? {
            if let Some(value) = r.xattr(vol, View::Live, ino, &name)? {
                xattrs.insert(name, value);
            }
        }
        Ok(match lock(&self.0).get_mut(&(vol, ino)) {
            Some(h) => {
                h.ghost = Some(Box::new(Ghost {
                    inode: last.clone(),
                    xattrs,
                }));
                true
            }
            None => false,
        })
    }

    /// Runs `f` on the ghost of `ino` under the lock; ENOENT if it has none.
    fn with<T>(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        f: impl FnOnce(&mut Ghost) -> Result<T, FsError>,
    ) -> Result<T, FsError> {
        match lock(&self.0)
            .get_mut(&(vol, ino))
            .and_then(|h| h.ghost.as_deref_mut())
        {
            Some(g) => f(g),
            None => Err(FsError::NotFound),
        }
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
            Err(FsError::NotFound) if view == View::Live => {
                let bs = self.vol_state(vol)?.block_size;
                self.held().with(vol, ino, |g| Ok(g.inode.attr(ino, bs)))
            }
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

    /// setattr of a ghost (see the module docs): mode, owner and times, in memory.
    /// ENOENT when `ino` has no ghost; a size is refused (a directory has none to set).
    pub(crate) fn ghost_setattr(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        set: &SetAttr,
    ) -> Result<Attr, FsError> {
        let bs = self.vol_state(vol)?.block_size;
        let now = Timestamp::now();
        self.held().with(vol, ino, |g| {
            if set.size.is_some() {
                return Err(FsError::IsDir);
            }
            let mut inode = g.inode.clone();
            if let Some(mode) = set.mode {
                inode.perm = (mode & 0o7777) as u16;
                // A stored access ACL follows the mode (acl.rs's `on_chmod`).
                if let Some(bytes) = g.xattrs.get_mut(super::acl::ACCESS)
                    && let Some(mut acl) = Acl::parse(bytes)?
                {
                    acl.chmod(inode.perm);
                    *bytes = acl.encode();
                }
            }
            if let Some(uid) = set.uid {
                inode.uid = uid;
            }
            if let Some(gid) = set.gid {
                inode.gid = gid;
            }
            // A directory keeps setuid/setgid on chown (`kill_priv` is for files), as on
            // ext4 and tmpfs.
            let at = |t: TimeSet| match t {
                TimeSet::Now => now,
                TimeSet::At(t) => t,
            };
            if let Some(t) = set.atime {
                inode.atime = at(t);
            }
            if let Some(t) = set.mtime {
                inode.mtime = at(t);
            }
            inode.ctime = set.ctime.unwrap_or(now);
            g.inode = inode;
            Ok(g.inode.attr(ino, bs))
        })
    }

    /// The value of a ghost's extended attribute `name` (ENODATA when absent); ENOENT when
    /// `ino` has no ghost.
    pub(crate) fn ghost_xattr(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
        name: &[u8],
    ) -> Result<Vec<u8>, FsError> {
        if view != View::Live {
            return Err(FsError::NotFound);
        }
        self.held().with(vol, ino, |g| {
            g.xattrs.get(name).cloned().ok_or(FsError::NoData)
        })
    }

    /// The names of a ghost's extended attributes; ENOENT when `ino` has no ghost.
    pub(crate) fn ghost_xattr_names(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
    ) -> Result<Vec<Vec<u8>>, FsError> {
        if view != View::Live {
            return Err(FsError::NotFound);
        }
        self.held()
            .with(vol, ino, |g| Ok(g.xattrs.keys().cloned().collect()))
    }

    /// Sets (`Some`) or removes (`None`) a ghost's extended attribute `name` with
    /// setxattr's `mode` rules (removing an absent one is ENODATA); not an ACL name (see
    /// [`Inner::ghost_set_acl`]). The caller has validated name and value.
    pub(crate) fn ghost_change_xattr(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        name: &[u8],
        value: Option<&[u8]>,
        mode: XattrMode,
    ) -> Result<(), FsError> {
        let now = Timestamp::now();
        self.held().with(vol, ino, |g| {
            let exists = g.xattrs.contains_key(name);
            match (value, mode) {
                (Some(_), XattrMode::Create) if exists => return Err(FsError::Exists),
                (_, XattrMode::Replace) | (None, _) if !exists => return Err(FsError::NoData),
                (Some(v), _) => {
                    g.xattrs.insert(name.to_vec(), v.to_vec());
                }
                (None, _) => {
                    g.xattrs.remove(name);
                }
            }
            g.inode.ctime = now;
            Ok(())
        })
    }

    /// [`Inner::set_acl`] on a ghost: the mode follows an access ACL and loses setgid
    /// unless `caller` may keep it; removing an absent ACL succeeds. `value` has been
    /// validated.
    pub(crate) fn ghost_set_acl(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        kind: AclKind,
        value: Option<&[u8]>,
        caller: &Caller,
    ) -> Result<(), FsError> {
        let acl = match value {
            Some(v) => Acl::parse(v)?,
            None => None,
        };
        let now = Timestamp::now();
        self.held().with(vol, ino, |g| {
            let (name, keep) = match (kind, acl) {
                (AclKind::Access, Some(acl)) => {
                    let (perm, not_equiv) = acl.equiv_mode(g.inode.perm);
                    g.inode.perm = perm;
                    if !caller.keeps_sgid(g.inode.gid) {
                        g.inode.perm &= !(libc::S_ISGID as u16);
                    }
                    (super::acl::ACCESS, not_equiv.then_some(acl))
                }
                (AclKind::Access, None) => (super::acl::ACCESS, None),
                (AclKind::Default, acl) => (super::acl::DEFAULT, acl),
            };
            match keep {
                Some(acl) => g.xattrs.insert(name.to_vec(), acl.encode()),
                None => g.xattrs.remove(name),
            };
            g.inode.ctime = now;
            Ok(())
        })
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

    #[test]
    fn a_ghost_takes_setattr_and_xattrs_in_memory() {
        use crate::fs::attr::{TimeSet, Timestamp, XattrMode};
        use crate::fs::{SetAttr, acl::AclKind};
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let v = e.create_volume("v", Some(4096), Ctx::default()).unwrap().id;
        let q = e
            .mkdir(v, InodeNo::ROOT, b"q", 0o755, Ctx::default())
            .unwrap();
        e.setxattr(v, q.ino, b"user.pre", b"1", XattrMode::Any)
            .unwrap();
        e.kernel_looked_up(v, &q);
        e.rmdir(v, InodeNo::ROOT, b"q").unwrap();
        let removed = e.getattr(v, View::Live, q.ino).unwrap();
        // Kept from before the removal.
        assert_eq!(e.getxattr(v, View::Live, q.ino, b"user.pre").unwrap(), b"1");
        let set = SetAttr {
            mode: Some(0o2700),
            uid: Some(7),
            gid: Some(8),
            atime: Some(TimeSet::At(Timestamp { secs: 1, nsecs: 0 })),
            mtime: Some(TimeSet::At(Timestamp { secs: 2, nsecs: 0 })),
            ..Default::default()
        };
        let a = e.setattr(v, q.ino, set).unwrap();
        assert_eq!((a.perm, a.uid, a.gid, a.nlink), (0o2700, 7, 8, 0));
        assert_eq!((a.atime.secs, a.mtime.secs), (1, 2));
        assert!(a.ctime >= removed.ctime);
        assert_eq!(e.getattr(v, View::Live, q.ino).unwrap(), a);
        let truncate = SetAttr {
            size: Some(0),
            ..Default::default()
        };
        assert!(matches!(e.setattr(v, q.ino, truncate), Err(FsError::IsDir)));
        // Extended attributes, with setxattr's flags.
        e.setxattr(v, q.ino, b"user.x", b"v", XattrMode::Create)
            .unwrap();
        assert!(matches!(
            e.setxattr(v, q.ino, b"user.x", b"w", XattrMode::Create),
            Err(FsError::Exists)
        ));
        assert!(matches!(
            e.setxattr(v, q.ino, b"user.y", b"w", XattrMode::Replace),
            Err(FsError::NoData)
        ));
        assert_eq!(
            e.listxattr(v, View::Live, q.ino).unwrap(),
            [b"user.pre".to_vec(), b"user.x".to_vec()]
        );
        e.removexattr(v, q.ino, b"user.x").unwrap();
        assert!(matches!(
            e.removexattr(v, q.ino, b"user.x"),
            Err(FsError::NoData)
        ));
        assert!(matches!(
            e.getxattr(v, View::Live, q.ino, b"user.x"),
            Err(FsError::NoData)
        ));
        // An access ACL with a mask: stored, and the mode's group bits are the mask's.
        let acl = |entries: &[(u16, u16, u32)]| {
            let mut b = 2u32.to_le_bytes().to_vec();
            for (tag, perm, id) in entries {
                b.extend_from_slice(&tag.to_le_bytes());
                b.extend_from_slice(&perm.to_le_bytes());
                b.extend_from_slice(&id.to_le_bytes());
            }
            b
        };
        let value = acl(&[
            (0x01, 7, u32::MAX),
            (0x02, 5, 1000),
            (0x04, 0, u32::MAX),
            (0x10, 5, u32::MAX),
            (0x20, 0, u32::MAX),
        ]);
        let caller = crate::fs::acl::Caller {
            groups: vec![8],
            fsetid: false,
        };
        e.set_acl(v, q.ino, AclKind::Access, Some(&value), &caller)
            .unwrap();
        assert_eq!(e.getattr(v, View::Live, q.ino).unwrap().perm, 0o2750);
        // chmod moves the mask.
        let chmod = SetAttr {
            mode: Some(0o700),
            ..Default::default()
        };
        e.setattr(v, q.ino, chmod).unwrap();
        let stored = e
            .getxattr(v, View::Live, q.ino, crate::fs::acl::ACCESS)
            .unwrap();
        assert_eq!(
            &stored[4 + 3 * 8..4 + 4 * 8],
            &acl(&[(0x10, 0, u32::MAX)])[4..]
        );
        // Nothing of it reaches the store, and the kernel forgetting it drops it.
        e.commit_all().unwrap();
        e.kernel_forgot(v, q.ino, 1);
        assert!(matches!(e.setattr(v, q.ino, chmod), Err(FsError::NotFound)));
        assert!(matches!(
            e.setxattr(v, q.ino, b"user.x", b"v", XattrMode::Any),
            Err(FsError::NotFound)
        ));
    }
}
