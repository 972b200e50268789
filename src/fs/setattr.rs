//! setattr: mode, owner, size (truncate both ways) and times of one inode, in one writer
//! job ([`setattr_in_tx`]). The file's buffered writes are committed first (except for a
//! chmod or chown alone, see [`keeps_buffer`]), under its volume's buffer lock, which is held until the setattr is answered (the size of a file
//! changes only under that lock, see data.rs); a shrinking truncate rewrites the new tail
//! block, so bytes past the end of a file are always zero.
//!
//! A chmod, chown or utimes is write-behind (see pending_attr.rs): checked against the rows
//! plus the overlay, answered, and committed by the writer in a later batch, after the
//! flush of the file's buffer when it needs one (the writer's queue is FIFO). It commits before it answers
//! instead when it changes the size or drops privileges, when a chmod meets an access ACL
//! (which it rewrites), when the inode is not found or has no link left as readers see it
//! (the synchronous path then answers as it always did), while a namespace or ACL change
//! that commits first is in flight, or when the disk is nearly full.

use crate::store::keys::RowId;
use crate::store::rows::View;
use crate::store::{ReadView, Reader, Tx};
use crate::types::{InodeNo, VolumeId};

use super::attr::*;
use super::error::FsError;
use super::flush::BlockUpdate;
use super::pending::{Pending, Seen, inode_seen};
use super::pending_attr::Change;
use super::txops::{self, get_inode, put_inode};
use super::{Inner, lock};

impl Inner {
    pub fn setattr(&self, vol: VolumeId, ino: InodeNo, set: SetAttr) -> Result<Attr, FsError> {
        let vs = self.vol_state(vol)?;
        // The size of a file changes only under its volume's buffer lock (see data.rs).
        let mut dirty = vs.dirty.lock();
        let now = Timestamp::now();
        // A chmod or chown alone leaves the file's buffered writes where they are: their
        // flush reads the inode in its own job and writes only size, mtime and a ctime no
        // earlier than the one it finds, and a replay of the file's intent records writes
        // only data, size and mtime (see `keeps_buffer`).
        let unflushed = keeps_buffer(&set);
        if unflushed && let Some(mut attr) = self.setattr_behind(&vs, vol, ino, &set, now)? {
            // A later write by a caller without CAP_FSETID must drop what this grants.
            if without_privs(attr.perm) != attr.perm
                && let Some(f) = dirty.files.get_mut(&ino)
            {
                f.privs = true;
            }
            Self::overlay_attr(&dirty, &mut attr);
            return Ok(attr);
        }
        self.flush_locked(vol, &vs, &mut dirty, Some(ino))?;
        if set.atime.is_some() {
            // An explicit atime wins over one a read noted before (see fs::atime).
            Self::forget_atime(&mut dirty, ino);
        }
        // The buffer's overlay comes after the setattr's changes: a buffer present now was
        // written after them (the flush above emptied this file's). A chmod or chown alone
        // was tried above, and commits here (an ACL, an unlinked inode, a full disk or a
        // queued namespace change kept it from going behind): not checked twice.
        if !unflushed && let Some(mut attr) = self.setattr_behind(&vs, vol, ino, &set, now)? {
            Self::overlay_attr(&dirty, &mut attr);
            return Ok(attr);
        }
        let tail = match set.size {
            Some(size) => self.prepare_truncate(vol, vs.block_size, ino, size)?,
            None => None,
        };
        let bs = vs.block_size as u64;
        let inode = self.write_op(move |tx| setattr_in_tx(tx, vol, ino, &set, tail, bs, now))?;
        let mut attr = inode.attr(ino, vs.block_size);
        Self::overlay_attr(&dirty, &mut attr);
        drop(dirty);
        Ok(attr)
    }

    /// The write-behind setattr: the attributes as its job will write them (without the
    /// write buffer's overlay), or None when it must commit before it answers.
    fn setattr_behind(
        &self,
        vs: &std::sync::Arc<super::VolState>,
        vol: VolumeId,
        ino: InodeNo,
        set: &SetAttr,
        now: Timestamp,
    ) -> Result<Option<Attr>, FsError> {
        if set.size.is_some() || set.kill_priv {
            return Ok(None);
        }
        // Locked from the checks to the new entry, as for a create (see make.rs).
        let pending = lock(&vs.pending);
        let r = self.store.read()?;
        let Some((mut inode, seen)) = self.behind_inode(&pending, &r, vol, ino, set)? else {
            return Ok(None);
        };
        drop(r);
        let change = Change::of(set, now);
        change.apply(&mut inode);
        let mut attr = inode.attr(ino, vs.block_size);
        if let Some(s) = seen {
            // Links and times of the jobs before this one, as its commit will find them.
            s.apply_since(&mut attr, s.since(ino).then(&change));
        }
        let bs = vs.block_size as u64;
        let job_set = *set;
        self.queue_behind(
            vs,
            pending,
            move |tx| setattr_in_tx(tx, vol, ino, &job_set, None, bs, now).map(|_| ()),
            move |e| {
                tracing::error!(
                    "setattr of inode {ino} of volume {vol} failed after it was answered, its \
                     mode, owner and times are back as they were: {e}"
                )
            },
            |p, n| p.attrs.add(n, ino, change),
            move |p, n| p.attrs.remove(n, ino),
        )?;
        Ok(Some(attr))
    }

    /// The inode as readers see it, and the overlay as `r` sees it (`pending` locked, `r`
    /// begun after), when a setattr of it with `set` may go behind; None when it must
    /// commit before it answers (see the module docs).
    fn behind_inode<'p>(
        &self,
        pending: &'p Pending,
        r: &Reader<'_>,
        vol: VolumeId,
        ino: InodeNo,
        set: &SetAttr,
    ) -> Result<Option<(Inode, Option<Seen<'p>>)>, FsError> {
        if set.size.is_some() || set.kill_priv || pending.sync_ns > 0 || !self.space.roomy() {
            return Ok(None);
        }
        let seen = pending.seen(r)?;
        let inode = match inode_seen(r, seen, vol, View::Live, ino) {
            Ok(i) => i,
            // A removed directory the kernel still holds, say: as it always was.
            Err(FsError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        // Its last link goes with a pending unlink: the job could find it freed.
        if seen.map_or(inode.nlink, |s| s.nlink(ino, &inode)) == 0 {
            return Ok(None);
        }
        if set.mode.is_some() {
            let acl = super::acl::ACCESS;
            let pending_acl = seen
                .and_then(|s| s.created_acls(ino))
                .is_some_and(|a| a.xattr(super::acl::AclKind::Access).is_some());
            if pending_acl
                || r.row(vol, &RowId::Xattr(ino, acl.to_vec()), View::Live)?
                    .is_some()
            {
                return Ok(None);
            }
        }
        Ok(Some((inode, seen)))
    }

    /// Would a setattr of `ino` with `set` commit before it answers (a buffer to flush
    /// first, or not write-behind)? For tests that hold commits.
    pub(crate) fn setattr_commits_first(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        set: &SetAttr,
    ) -> Result<bool, FsError> {
        let vs = self.vol_state(vol)?;
        let dirty = vs.dirty.lock();
        if !keeps_buffer(set) && (dirty.in_flight || dirty.files.contains_key(&ino)) {
            return Ok(true);
        }
        let pending = lock(&vs.pending);
        let r = self.store.read()?;
        Ok(self.behind_inode(&pending, &r, vol, ino, set)?.is_none())
    }
}

/// Can a setattr with `set` leave the file's buffered writes unflushed? Only a mode or
/// owner change without a privilege drop: the buffer's flush and an intent-log replay
/// write size, mtime (and a ctime no earlier than the row's) over what such a change
/// committed before them, never the mode or owner. A size change must commit the buffer
/// first (sizes change only under the buffer lock), and so must explicit times: the
/// flush would write the buffer's mtime over them, and a replay the mtime of a record
/// older than them (the flush that precedes them marks those records applied).
fn keeps_buffer(set: &SetAttr) -> bool {
    set.size.is_none()
        && !set.kill_priv
        && set.atime.is_none()
        && set.mtime.is_none()
        && set.ctime.is_none()
}

/// setattr inside the writer, for both paths (a write-behind one has no size and no
/// privilege drop): checks, then changes inode `ino` of `vol` as `set` says at time `now`
/// (`tail`: the new last block of a shrinking truncate, see `prepare_truncate`; `bs`: the
/// block size). Returns the inode as written.
fn setattr_in_tx(
    tx: &mut Tx<'_>,
    vol: VolumeId,
    ino: InodeNo,
    set: &SetAttr,
    tail: Option<BlockUpdate>,
    bs: u64,
    now: Timestamp,
) -> Result<Inode, FsError> {
    // The newest record in this transaction (a write-behind job runs among deferred ones).
    let mut rec = tx.volume_deferred(vol)?;
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
    let change = Change::of(set, now);
    change.apply(&mut inode);
    if let Some(perm) = change.perm {
        super::acl::on_chmod(tx, &g, ino, perm)?;
    }
    if set.kill_priv && inode.kind != FileKind::Dir {
        txops::drop_privs(tx, &g, ino, &mut inode)?;
    }
    put_inode(tx, &g, ino, &inode)?;
    if set.size.is_some() {
        // Only a size change changes the record.
        tx.put_volume(&rec)?;
    }
    Ok(inode)
}
