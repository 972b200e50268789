//! setattr: mode, owner, size (truncate both ways) and times of one inode, in one writer
//! job. The file's buffered writes are committed first, under its volume's buffer lock,
//! which is held until the new size is committed (the size of a file changes only under
//! that lock, see data.rs); a shrinking truncate rewrites the new tail block, so bytes past
//! the end of a file are always zero.

use crate::store::ReadView;
use crate::store::keys::RowId;
use crate::store::rows::View;
use crate::types::{InodeNo, VolumeId};

use super::Inner;
use super::attr::*;
use super::error::FsError;
use super::txops::{self, get_inode, put_inode};

impl Inner {
    pub fn setattr(&self, vol: VolumeId, ino: InodeNo, set: SetAttr) -> Result<Attr, FsError> {
        let vs = self.vol_state(vol)?;
        // The size of a file changes only under its volume's buffer lock (see data.rs).
        let mut dirty = vs.dirty.lock();
        self.flush_locked(vol, &vs, &mut dirty, Some(ino))?;
        if set.atime.is_some() {
            // An explicit atime wins over one a read noted before (see fs::atime).
            Self::forget_atime(&mut dirty, ino);
        }
        let tail = match set.size {
            Some(size) => self.prepare_truncate(vol, vs.block_size, ino, size)?,
            None => None,
        };
        let bs = vs.block_size as u64;
        let now = Timestamp::now();
        let inode = self.write_op(move |tx| {
            let mut rec = tx.volume(vol)?;
            let g = rec.gens();
            let mut inode = get_inode(tx, vol, ino)?;
            if let Some(size) = set.size {
                inode.resizable(size)?;
                if size < inode.size {
                    let mut cut = Vec::new();
                    tx.extents_from(vol, View::Live, ino, size.div_ceil(bs), |id, v| {
                        cut.push((id, v));
                        Ok(true)
                    })?;
                    for (id, v) in cut {
                        let len = v.stored_len();
                        inode.stored = inode.stored.saturating_sub(len);
                        rec.stored_bytes = rec.stored_bytes.saturating_sub(len);
                        tx.delete_row(&g, &id)?;
                    }
                    if let Some((block, chunk)) = tail {
                        let id = RowId::Extent(ino, block);
                        if let Some(v) = tx.row(vol, &id, View::Live)? {
                            let len = v.stored_len();
                            inode.stored = inode.stored.saturating_sub(len);
                            rec.stored_bytes = rec.stored_bytes.saturating_sub(len);
                        }
                        super::patch::put_whole(tx, &g, &id, chunk, &mut inode, &mut rec)?;
                    }
                }
                rec.logical_bytes = (rec.logical_bytes + size).saturating_sub(inode.size);
                if size != inode.size {
                    inode.mtime = now;
                }
                inode.size = size;
            }
            if let Some(mode) = set.mode {
                inode.perm = (mode & 0o7777) as u16;
                super::acl::on_chmod(tx, &g, ino, inode.perm)?;
            }
            if let Some(uid) = set.uid {
                inode.uid = uid;
            }
            if let Some(gid) = set.gid {
                inode.gid = gid;
            }
            if set.kill_priv && inode.kind != FileKind::Dir {
                txops::drop_privs(tx, &g, ino, &mut inode)?;
            }
            match set.atime {
                Some(TimeSet::Now) => inode.atime = now,
                Some(TimeSet::At(t)) => inode.atime = t,
                None => {}
            }
            match set.mtime {
                Some(TimeSet::Now) => inode.mtime = now,
                Some(TimeSet::At(t)) => inode.mtime = t,
                None => {}
            }
            inode.ctime = set.ctime.unwrap_or(now);
            put_inode(tx, &g, ino, &inode)?;
            tx.put_volume(&rec)?;
            Ok(inode)
        })?;
        let mut attr = inode.attr(ino, vs.block_size);
        Self::overlay_attr(&dirty, &mut attr);
        drop(dirty);
        Ok(attr)
    }
}
