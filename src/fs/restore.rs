//! Restore and clone of snapshot generations, each in one write transaction (diff, which
//! only reads: `super::diff`).
//!
//! Restore walks the change index from the snapshot's generation to now: only rows written
//! since the snapshot can differ, so it costs O(changes), whatever the volume holds. Clone
//! makes a new volume layered over the snapshot generation (`crate::store::layers`): O(1)
//! rows written, nothing copied; the clone's writes copy up one row at a time.

use crate::store::keys::RowId;
use crate::store::rows::{RowValue, View};
use crate::store::{ReadView, Tx};
use crate::types::{Generation, VolumeId};

use super::attr::{FileKind, Inode};
use super::{FsError, Inner, Timestamp};

fn inode_of(v: &Option<RowValue>) -> Result<Option<Inode>, FsError> {
    match v {
        Some(RowValue::Inode(b)) => Ok(Some(Inode::decode(b)?)),
        _ => Ok(None),
    }
}

/// Makes the live rows of `vol` equal to its view at `s`, adjusting the volume's counters.
/// Returns the rows that changed (for kernel cache invalidation).
pub(crate) fn restore_in_tx(
    tx: &mut Tx<'_>,
    vol: VolumeId,
    s: Generation,
) -> Result<Vec<RowId>, FsError> {
    let mut rec = tx.volume(vol)?;
    let g = rec.gens();
    let changed = tx.changed(vol, s, rec.cur)?;
    let mut done = Vec::new();
    for id in changed {
        let then = tx.row(vol, &id, View::At(s))?;
        let now = tx.row(vol, &id, View::Live)?;
        if then == now {
            continue;
        }
        if let RowId::Inode(_) = id {
            let (old, new) = (inode_of(&now)?, inode_of(&then)?);
            if let Some(o) = &old {
                rec.files = rec.files.saturating_sub(1);
                rec.stored_bytes = rec.stored_bytes.saturating_sub(o.stored);
                if o.kind == FileKind::File {
                    rec.logical_bytes = rec.logical_bytes.saturating_sub(o.size);
                }
            }
            if let Some(n) = &new {
                rec.files += 1;
                rec.stored_bytes += n.stored;
                if n.kind == FileKind::File {
                    rec.logical_bytes += n.size;
                }
            }
        }
        match then {
            Some(v) => {
                for (chunk, _) in v.chunks() {
                    tx.chunk_incref(chunk)?;
                }
                tx.put_row(&g, &id, &v)?;
            }
            None => tx.delete_row(&g, &id)?,
        }
        done.push(id);
    }
    tx.put_volume(&rec)?;
    Ok(done)
}

impl Inner {
    /// Restores the given members to their snapshot generations in ONE transaction, after
    /// flushing their buffered writes. The caller keeps them frozen (or unmounted).
    pub fn restore_generations(
        &self,
        members: &[(VolumeId, Generation)],
    ) -> Result<Vec<(VolumeId, Vec<RowId>)>, FsError> {
        for (v, _) in members {
            self.flush_volume(*v)?;
        }
        let members = members.to_vec();
        // Logged writes of these volumes predate the restore: replay must never apply them.
        let log_end = self.log.as_ref().map(|l| l.end());
        // Durable once the caller has reopened the gates (`store().sync()`).
        self.store.write(false, move |tx| {
            let mut out = Vec::new();
            for (v, s) in members {
                out.push((v, restore_in_tx(tx, v, s)?));
                if let Some(end) = log_end {
                    tx.log_applied(v, 0, end)?;
                }
            }
            Ok(out)
        })
    }

    /// Creates a writable volume `name` with the contents `origin` had at `s`: a layer over
    /// that snapshot generation (see `crate::store::layers`), which it holds. Writes O(1)
    /// rows and copies nothing; reads O(changes of the origin since `s`) to find the
    /// counters the origin had at `s`.
    pub fn clone_generation(
        &self,
        origin: VolumeId,
        s: Generation,
        name: &str,
    ) -> Result<super::VolumeInfo, FsError> {
        let name = name.to_string();
        let now = Timestamp::now();
        self.store.write(true, move |tx| {
            let src = tx.volume(origin)?;
            let mut rec = tx.create_volume(&name, src.block_size as u64, now.secs)?;
            // The origin's counters at `s`: its live ones, less what changed since.
            rec.files = src.files;
            rec.logical_bytes = src.logical_bytes;
            rec.stored_bytes = src.stored_bytes;
            for id in tx.changed(origin, s, src.cur)? {
                let RowId::Inode(_) = id else {
                    continue;
                };
                let live = tx.row(origin, &id, View::Live)?;
                let then = tx.row(origin, &id, View::At(s))?;
                if live == then {
                    continue;
                }
                if let Some(i) = inode_of(&live)? {
                    rec.files = rec.files.saturating_sub(1);
                    rec.stored_bytes = rec.stored_bytes.saturating_sub(i.stored);
                    if i.kind == FileKind::File {
                        rec.logical_bytes = rec.logical_bytes.saturating_sub(i.size);
                    }
                }
                if let Some(i) = inode_of(&then)? {
                    rec.files += 1;
                    rec.stored_bytes += i.stored;
                    if i.kind == FileKind::File {
                        rec.logical_bytes += i.size;
                    }
                }
            }
            rec.next_ino = src.next_ino;
            tx.put_volume(&rec)?;
            tx.add_clone_layer(rec.id, origin, s)?;
            Ok(super::VolumeInfo::from(&rec))
        })
    }

    /// The origin volume and generation a layered clone reads through to.
    pub fn clone_layer(&self, vol: VolumeId) -> Result<Option<(VolumeId, Generation)>, FsError> {
        Ok(self.store.read()?.clone_layer(vol)?)
    }
}
