//! Namespace and attribute operations: lookup, getattr, create/mknod/mkdir/symlink, link,
//! rename, readdir, readlink, statfs (setattr: setattr.rs; unlink and rmdir: remove.rs;
//! xattrs: xattr.rs; fallocate: fallocate.rs; fsync: intent.rs).
//!
//! Each mutating operation is one closure run by the store's writer: it checks everything,
//! then mutates; a refused operation changes nothing.

use std::collections::BTreeMap;

use crate::store::rows::{Gens, View};
use crate::store::{ReadView, StoreError, Tx};
use crate::types::{InodeNo, VolumeId};

use super::acl;
use super::attr::*;
use super::error::FsError;
use super::opens::mark_if_open;
use super::txops::{self, dirent_in, entry_name, get_dir, get_inode, inode_in, lookup, put_inode};
use super::{Inner, lock};

/// Longest symlink target (PATH_MAX - 1).
const MAX_TARGET: usize = 4095;
const MAX_LINKS: u32 = 65_000;

impl Inner {
    /// The inode as a view sees it (live: as last committed, without the write buffer).
    pub(crate) fn committed_inode(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
    ) -> Result<Inode, FsError> {
        let r = self.store.read()?;
        inode_in(&r, vol, view, ino)
    }

    pub fn getattr(&self, vol: VolumeId, view: View, ino: InodeNo) -> Result<Attr, FsError> {
        let vs = self.vol_state(vol)?;
        // Live: the buffer lock is held across the committed read and the overlay, so a flush
        // (it commits and drops the buffer under this lock) cannot fall in between; the
        // pending unlinks are locked before the read transaction begins (see pending.rs).
        let live = if view == View::Live {
            Some((vs.dirty.lock(), lock(&vs.unlinks)))
        } else {
            None
        };
        let r = self.store.read()?;
        let inode = inode_in(&r, vol, view, ino)?;
        let mut attr = inode.attr(ino, vs.block_size);
        if let Some((d, unlinks)) = &live {
            Self::overlay_attr(d, &mut attr);
            if let Some(c) = unlinks.committed_in(&r)? {
                unlinks.apply(&mut attr, c);
            }
        }
        Ok(attr)
    }

    pub fn lookup(
        &self,
        vol: VolumeId,
        view: View,
        parent: InodeNo,
        name: &[u8],
    ) -> Result<Attr, FsError> {
        // The kernel asks for "." (any inode) and ".." (a directory) to decode a file handle
        // whose inode it does not hold, and to reconnect a directory's path.
        match name {
            b"." => {
                let a = self.getattr(vol, view, parent)?;
                // Unlinked (maybe not committed yet) and not open: gone.
                if view == View::Live && a.nlink == 0 && !self.is_open(vol, parent) {
                    return Err(FsError::NotFound);
                }
                return Ok(a);
            }
            b".." => {
                let dir = self.committed_inode(vol, view, parent)?;
                if dir.kind != FileKind::Dir {
                    return Err(FsError::NotDir);
                }
                return self.getattr(vol, view, dir.parent.max(InodeNo::ROOT));
            }
            _ => {}
        }
        let name = entry_name(name)?;
        let vs = self.vol_state(vol)?;
        // As in getattr: both overlays are locked across the read. One read transaction
        // serves the directory, the entry and the inode.
        let live = if view == View::Live {
            Some((vs.dirty.lock(), lock(&vs.unlinks)))
        } else {
            None
        };
        let r = self.store.read()?;
        let committed = match &live {
            Some((_, u)) => u.committed_in(&r)?,
            None => None,
        };
        if let (Some((_, u)), Some(c)) = (&live, committed)
            && u.hides(parent, name.as_bytes(), c)
        {
            return Err(FsError::NotFound);
        }
        let (ino, _) = dirent_in(&r, vol, view, parent, &name)?;
        let inode = inode_in(&r, vol, view, ino)?;
        let mut attr = inode.attr(ino, vs.block_size);
        if let Some((d, u)) = &live {
            Self::overlay_attr(d, &mut attr);
            if let Some(c) = committed {
                u.apply(&mut attr, c);
            }
        }
        Ok(attr)
    }

    #[allow(clippy::too_many_arguments)]
    fn make_node(
        &self,
        vol: VolumeId,
        parent: InodeNo,
        name: &[u8],
        kind: FileKind,
        mode: u32,
        rdev: u32,
        target: Vec<u8>,
        ctx: Ctx,
    ) -> Result<Attr, FsError> {
        let name = entry_name(name)?;
        let vs = self.vol_state(vol)?;
        let now = Timestamp::now();
        let inode = self.write_op(move |tx| {
            let mut rec = tx.volume(vol)?;
            let g = rec.gens();
            let mut dir = get_dir(tx, vol, parent)?;
            if dir.nlink == 0 {
                return Err(FsError::NotFound);
            }
            if lookup(tx, vol, parent, &name)?.is_some() {
                return Err(FsError::Exists);
            }
            if kind == FileKind::Dir && dir.nlink >= MAX_LINKS {
                return Err(FsError::TooManyLinks);
            }
            let ino = txops::alloc_ino(&mut rec);
            let sgid = dir.perm as u32 & libc::S_ISGID != 0;
            let (mut perm, acls) = acl::on_create(tx, vol, parent, kind, mode, ctx.umask)?;
            if kind == FileKind::Dir && sgid {
                perm |= libc::S_ISGID as u16;
            }
            let inode = Inode {
                kind,
                perm,
                uid: ctx.uid,
                gid: if sgid { dir.gid } else { ctx.gid },
                nlink: if kind == FileKind::Dir { 2 } else { 1 },
                size: if kind == FileKind::Symlink {
                    target.len() as u64
                } else {
                    0
                },
                atime: now,
                mtime: now,
                ctime: now,
                crtime: now,
                rdev,
                // Every inode remembers the directory it was created or last renamed in (for
                // paths in diffs); for directories it is also "..".
                parent,
                stored: 0,
                target,
            };
            put_inode(tx, &g, ino, &inode)?;
            acls.put(tx, &g, ino)?;
            txops::add_dirent(tx, &g, parent, &name, ino, kind)?;
            if kind == FileKind::Dir {
                dir.nlink += 1;
            }
            dir.mtime = now;
            dir.ctime = now;
            put_inode(tx, &g, parent, &dir)?;
            tx.put_volume(&rec)?;
            Ok((ino, inode))
        })?;
        Ok(inode.1.attr(inode.0, vs.block_size))
    }

    /// mknod(2): regular files (mode type 0 or S_IFREG), fifos, sockets, devices.
    pub fn mknod(
        &self,
        vol: VolumeId,
        parent: InodeNo,
        name: &[u8],
        mode: u32,
        rdev: u32,
        ctx: Ctx,
    ) -> Result<Attr, FsError> {
        let kind = FileKind::from_mode(mode).ok_or(FsError::Invalid("unknown file type"))?;
        if matches!(kind, FileKind::Dir | FileKind::Symlink) {
            return Err(FsError::Invalid(
                "mknod cannot make directories or symlinks",
            ));
        }
        self.make_node(vol, parent, name, kind, mode, rdev, Vec::new(), ctx)
    }

    /// Creates a regular file.
    pub fn create(
        &self,
        vol: VolumeId,
        parent: InodeNo,
        name: &[u8],
        mode: u32,
        ctx: Ctx,
    ) -> Result<Attr, FsError> {
        self.make_node(vol, parent, name, FileKind::File, mode, 0, Vec::new(), ctx)
    }

    pub fn mkdir(
        &self,
        vol: VolumeId,
        parent: InodeNo,
        name: &[u8],
        mode: u32,
        ctx: Ctx,
    ) -> Result<Attr, FsError> {
        self.make_node(vol, parent, name, FileKind::Dir, mode, 0, Vec::new(), ctx)
    }

    pub fn symlink(
        &self,
        vol: VolumeId,
        parent: InodeNo,
        name: &[u8],
        target: &[u8],
        ctx: Ctx,
    ) -> Result<Attr, FsError> {
        if target.len() > MAX_TARGET {
            return Err(FsError::NameTooLong);
        }
        if target.is_empty() {
            return Err(FsError::NotFound);
        }
        self.make_node(
            vol,
            parent,
            name,
            FileKind::Symlink,
            0o777,
            0,
            target.to_vec(),
            ctx,
        )
    }

    pub fn readlink(&self, vol: VolumeId, view: View, ino: InodeNo) -> Result<Vec<u8>, FsError> {
        let inode = self.committed_inode(vol, view, ino)?;
        if inode.kind != FileKind::Symlink {
            return Err(FsError::Invalid("not a symlink"));
        }
        Ok(inode.target)
    }

    pub fn link(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        newparent: InodeNo,
        newname: &[u8],
    ) -> Result<Attr, FsError> {
        let name = entry_name(newname)?;
        let vs = self.vol_state(vol)?;
        let now = Timestamp::now();
        // Held until the overlay, as in getattr: the committed inode and the buffer must agree.
        let dirty = vs.dirty.lock();
        let inode = self.write_op(move |tx| {
            let rec = tx.volume(vol)?;
            let g = rec.gens();
            let mut inode = get_inode(tx, vol, ino)?;
            // Linux checks the new name (ENOTDIR, EEXIST) before the source (EPERM, ...).
            let mut dir = get_dir(tx, vol, newparent)?;
            if lookup(tx, vol, newparent, &name)?.is_some() {
                return Err(FsError::Exists);
            }
            if inode.kind == FileKind::Dir {
                return Err(FsError::NotPermitted(
                    "hard links to directories are not allowed",
                ));
            }
            if inode.nlink == 0 {
                return Err(FsError::NotFound);
            }
            if inode.nlink >= MAX_LINKS {
                return Err(FsError::TooManyLinks);
            }
            inode.nlink += 1;
            inode.ctime = now;
            put_inode(tx, &g, ino, &inode)?;
            txops::add_dirent(tx, &g, newparent, &name, ino, inode.kind)?;
            dir.mtime = now;
            dir.ctime = now;
            put_inode(tx, &g, newparent, &dir)?;
            Ok(inode)
        })?;
        let mut attr = inode.attr(ino, vs.block_size);
        Self::overlay_attr(&dirty, &mut attr);
        Ok(attr)
    }

    pub fn rename(
        &self,
        vol: VolumeId,
        parent: InodeNo,
        name: &[u8],
        newparent: InodeNo,
        newname: &[u8],
        flags: RenameFlags,
    ) -> Result<(), FsError> {
        let name = entry_name(name)?;
        let newname = entry_name(newname)?;
        if flags.exchange && flags.noreplace {
            return Err(FsError::Invalid(
                "RENAME_EXCHANGE and RENAME_NOREPLACE together",
            ));
        }
        let now = Timestamp::now();
        let opens = self.opens.clone();
        let victim = self.write_op(move |tx| {
            let mut rec = tx.volume(vol)?;
            let g = rec.gens();
            let mut dirs = BTreeMap::new();
            dirs.insert(parent, get_dir(tx, vol, parent)?);
            if newparent != parent {
                dirs.insert(newparent, get_dir(tx, vol, newparent)?);
            }
            let (sino, skind) = lookup(tx, vol, parent, &name)?.ok_or(FsError::NotFound)?;
            let dst = lookup(tx, vol, newparent, &newname)?;
            let mut victim = None;
            if flags.exchange {
                let (dino, dkind) = dst.ok_or(FsError::NotFound)?;
                if dino == sino {
                    return Ok(None);
                }
                if parent != newparent
                    && ((skind == FileKind::Dir && txops::is_within(tx, vol, newparent, sino)?)
                        || (dkind == FileKind::Dir && txops::is_within(tx, vol, parent, dino)?))
                {
                    return Err(FsError::Invalid("cannot move a directory into itself"));
                }
                txops::add_dirent(tx, &g, parent, &name, dino, dkind)?;
                txops::add_dirent(tx, &g, newparent, &newname, sino, skind)?;
                for (ino, kind, from, to) in [
                    (sino, skind, parent, newparent),
                    (dino, dkind, newparent, parent),
                ] {
                    moved(tx, &g, &mut dirs, (ino, kind), from, to, now)?;
                }
            } else {
                if flags.noreplace && dst.is_some() {
                    return Err(FsError::Exists);
                }
                if dst.is_some_and(|(d, _)| d == sino) {
                    return Ok(None);
                }
                if skind == FileKind::Dir && txops::is_within(tx, vol, newparent, sino)? {
                    return Err(FsError::Invalid("cannot move a directory into itself"));
                }
                // The target is an ancestor of the source (so not empty), whatever the source is.
                if let Some((dino, FileKind::Dir)) = dst
                    && txops::is_within(tx, vol, parent, dino)?
                {
                    return Err(FsError::NotEmpty);
                }
                if let Some((dino, dkind)) = dst {
                    if skind == FileKind::Dir && dkind != FileKind::Dir {
                        return Err(FsError::NotDir);
                    }
                    if skind != FileKind::Dir && dkind == FileKind::Dir {
                        return Err(FsError::IsDir);
                    }
                    if dkind == FileKind::Dir && !tx.dir_is_empty(vol, dino)? {
                        return Err(FsError::NotEmpty);
                    }
                    // Open, the victim stays (with no links) until its last release.
                    let open = mark_if_open(&opens, vol, dino);
                    if dkind == FileKind::Dir {
                        txops::drop_dir(tx, &mut rec, dino, open, now)?;
                        if let Some(d) = dirs.get_mut(&newparent) {
                            d.nlink = d.nlink.saturating_sub(1);
                        }
                    } else {
                        txops::drop_link(tx, &mut rec, dino, open, now)?;
                    }
                    victim = Some(dino);
                }
                txops::remove_dirent(tx, &g, parent, &name)?;
                txops::add_dirent(tx, &g, newparent, &newname, sino, skind)?;
                moved(tx, &g, &mut dirs, (sino, skind), parent, newparent, now)?;
            }
            for (ino, mut d) in dirs {
                d.mtime = now;
                d.ctime = now;
                put_inode(tx, &g, ino, &d)?;
            }
            tx.put_volume(&rec)?;
            Ok(victim)
        })?;
        if let Some(v) = victim {
            self.forget_if_gone(vol, v);
        }
        Ok(())
    }

    /// Directory entries after cookie `offset` (0: from the start, with "." and ".."), at
    /// most `max`. Cookies are name hashes, so they stay valid while the directory changes.
    pub fn readdir(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
        offset: u64,
        max: usize,
    ) -> Result<Vec<DirEntry>, FsError> {
        let vs = self.vol_state(vol)?;
        let unlinks = (view == View::Live).then(|| lock(&vs.unlinks));
        let r = self.store.read()?;
        let committed = match &unlinks {
            Some(u) => u.committed_in(&r)?,
            None => None,
        };
        let hidden = |name: &[u8]| match (&unlinks, committed) {
            (Some(u), Some(c)) => u.hides(ino, name, c),
            _ => false,
        };
        let dir = inode_in(&r, vol, view, ino)?;
        if dir.kind != FileKind::Dir {
            return Err(FsError::NotDir);
        }
        let mut out = Vec::new();
        if offset < 1 && out.len() < max {
            out.push(DirEntry {
                ino,
                offset: 1,
                kind: FileKind::Dir,
                name: b".".to_vec(),
            });
        }
        if offset < 2 && out.len() < max {
            out.push(DirEntry {
                ino: dir.parent.max(InodeNo::ROOT),
                offset: 2,
                kind: FileKind::Dir,
                name: b"..".to_vec(),
            });
        }
        if out.len() >= max {
            return Ok(out);
        }
        r.dirents(vol, view, ino, offset, |e| {
            if !hidden(&e.name) {
                out.push(DirEntry {
                    ino: e.ino,
                    offset: e.cookie,
                    kind: FileKind::from_code(e.kind)?,
                    name: e.name,
                });
            }
            Ok(out.len() < max)
        })?;
        Ok(out)
    }

    /// statfs: the pool filesystem's real space; file counts of the volume.
    pub fn statfs(&self, vol: VolumeId) -> Result<StatFs, FsError> {
        let rec = self.record(vol)?;
        let path = std::ffi::CString::new(self.store.path().as_os_str().as_encoded_bytes())
            .map_err(|_| FsError::Invalid("pool path contains NUL"))?;
        // SAFETY: statvfs writes into the zeroed struct we pass; the path is NUL-terminated.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
            return Err(
                StoreError::io("statvfs of the pool", std::io::Error::last_os_error()).into(),
            );
        }
        let frsize = st.f_frsize as u64;
        let ffree = (st.f_bavail as u64 * frsize) / 512;
        Ok(StatFs {
            blocks: st.f_blocks as u64,
            bfree: st.f_bfree as u64,
            bavail: st.f_bavail as u64,
            files: rec.files + ffree,
            ffree,
            bsize: rec.block_size,
            namelen: crate::types::NAME_MAX as u32,
            frsize: frsize as u32,
        })
    }
}

/// Records in a rename that `ino` (of `kind`) moved from directory `from` to `to`: its
/// ctime and parent link; a directory that changes parent also moves its ".." link from
/// `from`'s link count to `to`'s (in `dirs`, which the caller writes).
fn moved(
    tx: &mut Tx<'_>,
    g: &Gens,
    dirs: &mut BTreeMap<InodeNo, Inode>,
    (ino, kind): (InodeNo, FileKind),
    from: InodeNo,
    to: InodeNo,
    now: Timestamp,
) -> Result<(), FsError> {
    let mut inode = get_inode(tx, g.vol, ino)?;
    inode.ctime = now;
    if kind != FileKind::Dir {
        inode.parent = to;
    }
    if kind == FileKind::Dir && from != to {
        inode.parent = to;
        if let Some(d) = dirs.get_mut(&from) {
            d.nlink = d.nlink.saturating_sub(1);
        }
        if let Some(d) = dirs.get_mut(&to) {
            d.nlink += 1;
        }
    }
    put_inode(tx, g, ino, &inode)
}

#[cfg(test)]
mod tests {
    use crate::fs::{Ctx, Engine, FsError};
    use crate::store::rows::View;
    use crate::types::InodeNo;

    #[test]
    fn lookup_of_dot_and_dotdot_answers_for_file_handles() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let v = e.create_volume("v", Some(4096), Ctx::default()).unwrap().id;
        let root = InodeNo::ROOT;
        let d = e.mkdir(v, root, b"d", 0o755, Ctx::default()).unwrap();
        let sub = e.mkdir(v, d.ino, b"s", 0o755, Ctx::default()).unwrap();
        let f = e.create(v, sub.ino, b"f", 0o644, Ctx::default()).unwrap();
        let look = |p: InodeNo, n: &[u8]| e.lookup(v, View::Live, p, n);
        assert_eq!(look(f.ino, b".").unwrap().ino, f.ino);
        assert_eq!(look(sub.ino, b".").unwrap().ino, sub.ino);
        assert_eq!(look(sub.ino, b"..").unwrap().ino, d.ino);
        assert_eq!(look(d.ino, b"..").unwrap().ino, root);
        assert_eq!(look(root, b"..").unwrap().ino, root);
        assert!(matches!(look(f.ino, b".."), Err(FsError::NotDir)));
        // ".." follows a rename into another directory.
        e.rename(v, d.ino, b"s", root, b"t", Default::default())
            .unwrap();
        assert_eq!(look(sub.ino, b"..").unwrap().ino, root);
        // Gone is gone (the kernel answers ESTALE).
        e.unlink(v, sub.ino, b"f").unwrap();
        assert!(matches!(look(f.ino, b"."), Err(FsError::NotFound)));
        // Generations: the same for every answer about an inode, 0 for the root.
        let g = look(sub.ino, b".").unwrap().generation();
        assert_eq!(e.getattr(v, View::Live, sub.ino).unwrap().generation(), g);
        assert_eq!(look(sub.ino, b"..").unwrap().generation(), 0);
        assert!(g <= u32::MAX as u64);
    }
}
