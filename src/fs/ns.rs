//! Namespace and attribute operations: lookup, getattr, link, readdir, readlink,
//! statfs (create/mknod/mkdir/symlink: make.rs; setattr: setattr.rs; unlink and rmdir: remove.rs;
//! rename: rename_entry.rs;
//! xattrs: xattr.rs; fallocate: fallocate.rs; fsync: intent.rs).
//!
//! Each mutating operation is one closure run by the store's writer: it checks everything,
//! then mutates; a refused operation changes nothing.

use crate::store::rows::View;
use crate::store::{ReadView, StoreError, Tx};
use crate::types::{InodeNo, Name, VolumeId};

use super::attr::*;
use super::error::FsError;
use super::pending::{dirent_seen, entry_seen, inode_seen};
use super::txops::{self, entry_name, get_dir, get_inode, lookup, put_inode};
use super::{Inner, lock};

/// Most links of one inode (and subdirectories of one directory).
pub(super) const MAX_LINKS: u32 = 65_000;

impl Inner {
    /// The inode as a view sees it (live: as last committed, without the write buffer; a
    /// create answered but not committed yet is waited for).
    pub(crate) fn committed_inode(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
    ) -> Result<Inode, FsError> {
        Ok(self.read_inode(vol, view, ino)?.1)
    }

    /// The inode as a view sees it, a create answered but not committed yet included (from
    /// the overlay: no wait for the writer). Without the write buffer's size and times.
    fn seen_inode(&self, vol: VolumeId, view: View, ino: InodeNo) -> Result<Inode, FsError> {
        if view != View::Live {
            return self.committed_inode(vol, view, ino);
        }
        let vs = self.vol_state(vol)?;
        let pending = lock(&vs.pending);
        let r = self.store.read()?;
        inode_seen(&r, pending.seen(&r)?, vol, view, ino)
    }

    pub fn getattr(&self, vol: VolumeId, view: View, ino: InodeNo) -> Result<Attr, FsError> {
        let vs = self.vol_state(vol)?;
        // Live: the buffer lock is held across the committed read and the overlay, so a flush
        // (it commits and drops the buffer under this lock) cannot fall in between; the
        // pending operations are locked before the read transaction begins (see pending.rs).
        let live = if view == View::Live {
            Some((vs.dirty.lock(), lock(&vs.pending)))
        } else {
            None
        };
        let r = self.store.read()?;
        let seen = match &live {
            Some((_, p)) => p.seen(&r)?,
            None => None,
        };
        let inode = inode_seen(&r, seen, vol, view, ino)?;
        let mut attr = inode.attr(ino, vs.block_size);
        if let Some((d, _)) = &live {
            Self::overlay_attr(d, &mut attr);
            if let Some(s) = seen {
                s.apply(&mut attr);
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
                let dir = self.seen_inode(vol, view, parent)?;
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
            Some((vs.dirty.lock(), lock(&vs.pending)))
        } else {
            None
        };
        let r = self.store.read()?;
        let seen = match &live {
            Some((_, p)) => p.seen(&r)?,
            None => None,
        };
        let (ino, _) = dirent_seen(&r, seen, vol, view, parent, &name)?;
        let inode = inode_seen(&r, seen, vol, view, ino)?;
        let mut attr = inode.attr(ino, vs.block_size);
        if let Some((d, _)) = &live {
            Self::overlay_attr(d, &mut attr);
            if let Some(s) = seen {
                s.apply(&mut attr);
            }
        }
        Ok(attr)
    }

    pub fn readlink(&self, vol: VolumeId, view: View, ino: InodeNo) -> Result<Vec<u8>, FsError> {
        let inode = self.seen_inode(vol, view, ino)?;
        if inode.kind != FileKind::Symlink {
            return Err(FsError::Invalid("not a symlink"));
        }
        Ok(inode.target)
    }

    /// link(2): a new name for an existing inode. Write-behind, as a create (see
    /// pending_create.rs): checked against the rows plus the overlay, answered, committed
    /// in a later batch. It commits before it answers instead while a namespace operation
    /// that commits first is in flight, or when the disk is nearly full.
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
        let inode = match self.link_behind(&vs, vol, ino, (newparent, &name), now)? {
            Some(inode) => inode,
            None => self.ns_write_op(&vs, move |tx| {
                link_in_tx(tx, vol, ino, newparent, &name, now)
            })?,
        };
        let mut attr = inode.attr(ino, vs.block_size);
        Self::overlay_attr(&dirty, &mut attr);
        Ok(attr)
    }

    /// The write-behind link: the inode as linked, or None when it must commit before it
    /// answers. The checks are [`link_in_tx`]'s, on what readers see.
    fn link_behind(
        &self,
        vs: &std::sync::Arc<super::VolState>,
        vol: VolumeId,
        ino: InodeNo,
        (newparent, name): (InodeNo, &Name),
        now: Timestamp,
    ) -> Result<Option<Inode>, FsError> {
        if !self.space.roomy() {
            return Ok(None);
        }
        // Locked from the checks to the new entry, as for a create (see make.rs).
        let pending = lock(&vs.pending);
        if pending.sync_ns > 0 {
            return Ok(None);
        }
        let r = self.store.read()?;
        let seen = pending.seen(&r)?;
        let mut inode = inode_seen(&r, seen, vol, View::Live, ino)?;
        inode.nlink = seen.map_or(inode.nlink, |s| s.nlink(ino, &inode));
        if inode_seen(&r, seen, vol, View::Live, newparent)?.kind != FileKind::Dir {
            return Err(FsError::NotDir);
        }
        // The parent is a directory (above): an absent entry is a free name.
        if entry_seen(&r, seen, vol, View::Live, newparent, name)?.is_some() {
            return Err(FsError::Exists);
        }
        check_link(&inode)?;
        drop(r);
        inode.nlink += 1;
        inode.ctime = now;
        let kind = inode.kind;
        let (job_name, done_name, rm_name) = (name.clone(), name.clone(), name.clone());
        self.queue_behind(
            vs,
            pending,
            move |tx| link_in_tx(tx, vol, ino, newparent, &job_name, now).map(|_| ()),
            move |e| {
                tracing::error!(
                    "link of inode {ino} as {:?} in directory {newparent} of volume {vol} \
                     failed after it was answered, the name is gone: {e}",
                    String::from_utf8_lossy(done_name.as_bytes())
                )
            },
            |p, n| {
                p.creates
                    .add_link(n, (newparent, name.as_bytes()), ino, kind, now)
            },
            move |p, n| p.creates.remove_link(n, newparent, rm_name.as_bytes(), ino),
        )?;
        Ok(Some(inode))
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
        let pending = (view == View::Live).then(|| lock(&vs.pending));
        let r = self.store.read()?;
        let seen = match &pending {
            Some(p) => p.seen(&r)?,
            None => None,
        };
        let dir = inode_seen(&r, seen, vol, view, ino)?;
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
        // Names created but not committed yet, merged into the rows in cookie order.
        let mut made: Vec<DirEntry> = match seen {
            Some(s) => (s.pending_in(ino).into_iter())
                .map(|(name, (_, e_ino, kind))| DirEntry {
                    ino: e_ino,
                    offset: crate::store::keys::name_hash(&name),
                    kind,
                    name,
                })
                .filter(|e| e.offset > offset && s.name(ino, &e.name).is_some_and(|n| n.is_some()))
                .collect(),
            None => Vec::new(),
        };
        made.sort_by(|a, b| (a.offset, &a.name).cmp(&(b.offset, &b.name)));
        let mut made = made.into_iter().peekable();
        let mut full = false;
        r.dirents(vol, view, ino, offset, |e| {
            while out.len() < max
                && made
                    .peek()
                    .is_some_and(|m| (m.offset, &m.name) < (e.cookie, &e.name))
            {
                out.extend(made.next());
            }
            if out.len() >= max {
                full = true;
                return Ok(false);
            }
            match seen.and_then(|s| s.name(ino, &e.name)) {
                // Unlinked, or unlinked and made again (the new one comes from `made`).
                Some(_) => {}
                None => out.push(DirEntry {
                    ino: e.ino,
                    offset: e.cookie,
                    kind: FileKind::from_code(e.kind)?,
                    name: e.name,
                }),
            }
            full = out.len() >= max;
            Ok(!full)
        })?;
        if !full {
            out.extend(made.take(max.saturating_sub(out.len())));
        }
        Ok(out)
    }

    /// statfs: the pool filesystem's real space; file counts of the volume.
    pub fn statfs(&self, vol: VolumeId) -> Result<StatFs, FsError> {
        let rec = self.record(vol)?;
        let st = rustix::fs::statvfs(self.store.path())
            .map_err(|e| StoreError::io("statvfs of the pool", e.into()))?;
        let frsize = st.f_frsize as u64;
        let ffree = (st.f_bavail * frsize) / 512;
        Ok(StatFs {
            blocks: st.f_blocks,
            bfree: st.f_bfree,
            bavail: st.f_bavail,
            files: rec.files + ffree,
            ffree,
            bsize: rec.block_size,
            namelen: crate::types::NAME_MAX as u32,
            frsize: frsize as u32,
        })
    }
}

/// Can `inode` get one more name? Linux checks the new name (ENOTDIR, EEXIST) first.
fn check_link(inode: &Inode) -> Result<(), FsError> {
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
    Ok(())
}

/// link inside the writer: names inode `ino` `name` in `newparent`; returns the inode.
fn link_in_tx(
    tx: &mut Tx<'_>,
    vol: VolumeId,
    ino: InodeNo,
    newparent: InodeNo,
    name: &Name,
    now: Timestamp,
) -> Result<Inode, FsError> {
    let g = tx.volume_deferred(vol)?.gens();
    let mut inode = get_inode(tx, vol, ino)?;
    let mut dir = get_dir(tx, vol, newparent)?;
    if lookup(tx, vol, newparent, name)?.is_some() {
        return Err(FsError::Exists);
    }
    check_link(&inode)?;
    inode.nlink += 1;
    inode.ctime = now;
    put_inode(tx, &g, ino, &inode)?;
    txops::add_dirent(tx, &g, newparent, name, ino, inode.kind)?;
    dir.mtime = now;
    dir.ctime = now;
    // Once per batch for a run of links, creates and removes (see `crate::store` deferred.rs).
    txops::put_dir_deferred(tx, &g, newparent, &dir)?;
    Ok(inode)
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
