//! unlink and rmdir. unlink is write-behind: checked against the committed rows plus the
//! overlay (pending.rs), answered, and committed by the writer in a later batch (or
//! before it answers, while a namespace operation that commits first is in flight);
//! rmdir commits before it answers. Both end in [`remove_in_tx`] inside the writer. A
//! file or a directory removed while open stays, with no links, until its last release
//! (see opens.rs); a directory removed while the kernel holds it (a working directory) is
//! freed, and its ghost answers until the kernel forgets it (see ghosts.rs).

use super::opens::{Opens, mark_if_open};

use crate::store::ReadView;
use crate::store::rows::View;
use crate::types::{InodeNo, Name, VolumeId};

use super::attr::*;
use super::error::FsError;
use super::pending::{dirent_seen, inode_seen};
use super::txops::{self, entry_name, get_dir, lookup};
use super::{Inner, lock};

impl Inner {
    /// Removes a name that is not a directory. Checked against the rows and the pending
    /// unlinks, answered at once and committed by the writer's next batch (write-behind, see
    /// pending.rs): its effect is visible to every later read and mutation meanwhile.
    pub fn unlink(&self, vol: VolumeId, parent: InodeNo, name: &[u8]) -> Result<(), FsError> {
        let name = entry_name(name)?;
        let vs = self.vol_state(vol)?;
        let now = Timestamp::now();
        // The overlay stays locked from the check to its new entry: one name is unlinked
        // once, and readers never see the unlink neither answered nor committed.
        let pending = lock(&vs.pending);
        if pending.sync_ns > 0 {
            // A namespace change queued before this one could still move the name: commit
            // behind it before answering (see pending.rs).
            drop(pending);
            let opens = self.opens.clone();
            let freed =
                self.write_op(move |tx| remove_in_tx(tx, vol, parent, &name, false, &opens, now))?;
            self.forget_if_gone(vol, freed);
            return Ok(());
        }
        let r = self.store.read()?;
        let seen = pending.seen(&r)?;
        let (ino, kind) = dirent_seen(&r, seen, vol, View::Live, parent, &name)?;
        if kind == FileKind::Dir {
            return Err(FsError::IsDir);
        }
        // Its link count matters only when it has buffered writes the last unlink drops:
        // a file without any is not read. The buffer lock is taken before the overlay's
        // elsewhere, so here it is only tried (taken: assume buffered writes).
        let buffered = vs
            .dirty
            .try_lock()
            .is_none_or(|d| d.files.contains_key(&ino));
        let last_link = buffered && {
            let inode = inode_seen(&r, seen, vol, View::Live, ino)?;
            seen.map_or(inode.nlink, |s| s.nlink(ino, &inode)) <= 1
        };
        drop(r);
        let opens = self.opens.clone();
        let job_name = name.clone();
        let done_name = name.clone();
        let rm_name = name.clone();
        self.queue_behind(
            &vs,
            pending,
            move |tx| remove_in_tx(tx, vol, parent, &job_name, false, &opens, now).map(|_| ()),
            move |e| {
                tracing::error!(
                    "unlink of {:?} in directory {parent} of volume {vol} failed after it \
                     was answered, the name is back: {e}",
                    String::from_utf8_lossy(done_name.as_bytes())
                )
            },
            |p, n| p.unlinks.add(n, parent, name.as_bytes(), ino, now),
            move |p, n| p.unlinks.remove(n, parent, rm_name.as_bytes(), ino),
        )?;
        // The last link of a file nobody has open: its buffered writes go with it (a file
        // still open keeps them until its last close; a file without a handle gets no new
        // writes).
        if last_link && !self.is_open(vol, ino) {
            self.discard_dirty(vol, ino);
        }
        Ok(())
    }

    pub fn rmdir(&self, vol: VolumeId, parent: InodeNo, name: &[u8]) -> Result<(), FsError> {
        let name = entry_name(name)?;
        let now = Timestamp::now();
        let opens = self.opens.clone();
        let vs = self.vol_state(vol)?;
        let freed = self.ns_write_op(&vs, move |tx| {
            remove_in_tx(tx, vol, parent, &name, true, &opens, now)
        })?;
        self.forget_if_gone(vol, freed);
        Ok(())
    }

    /// Drops buffered writes of an inode that no longer exists.
    pub(super) fn forget_if_gone(&self, vol: VolumeId, ino: InodeNo) {
        if matches!(
            self.committed_inode(vol, View::Live, ino),
            Err(FsError::NotFound)
        ) {
            self.discard_dirty(vol, ino);
        }
    }
}

/// unlink/rmdir inside the writer's transaction; returns the inode the name pointed to.
fn remove_in_tx(
    tx: &mut crate::store::Tx<'_>,
    vol: VolumeId,
    parent: InodeNo,
    name: &Name,
    dir_wanted: bool,
    opens: &Opens,
    now: Timestamp,
) -> Result<InodeNo, FsError> {
    let mut rec = tx.volume_deferred(vol)?;
    let g = rec.gens();
    let mut dir = get_dir(tx, vol, parent)?;
    let (ino, kind) = lookup(tx, vol, parent, name)?.ok_or(FsError::NotFound)?;
    if dir_wanted {
        if kind != FileKind::Dir {
            return Err(FsError::NotDir);
        }
        if !tx.dir_is_empty(vol, ino)? {
            return Err(FsError::NotEmpty);
        }
    } else if kind == FileKind::Dir {
        return Err(FsError::IsDir);
    }
    txops::remove_dirent(tx, &g, parent, name)?;
    let open = mark_if_open(opens, vol, ino);
    if dir_wanted {
        txops::drop_dir(tx, &mut rec, ino, open, &opens.held, now)?;
        dir.nlink = dir.nlink.saturating_sub(1);
    } else {
        txops::drop_link(tx, &mut rec, ino, open, now)?;
    }
    dir.mtime = now;
    dir.ctime = now;
    // Once per batch for a run of removes and creates (see `crate::store` deferred.rs).
    txops::put_dir_deferred(tx, &g, parent, &dir)?;
    tx.put_volume_deferred(rec);
    Ok(ino)
}
