//! The flush: buffered blocks become chunks and rows. Merges the committed bytes into blocks
//! written in part, trims and hashes each block, appends the chunks the pool lacks to a pack
//! (on two threads when there is enough), and commits extents, sizes, times and the
//! intent-log marks in one writer job, with the volume's buffer lock held throughout (see
//! [`super::data`] for the buffer itself). Also prepares the tail block of a shrinking
//! truncate.
//!
//! Invariants: a flush that fails puts every buffer it took back (nothing that returned
//! success is dropped); the space a flushed block was charged is released only once its
//! commit succeeded.

use crate::store::StoreError;
use crate::store::chunks::{self, NewChunk};
use crate::store::keys::RowId;
use crate::store::rows::{RowValue, View};
use crate::store::tables::CHUNKS;
use crate::types::{ChunkId, InodeNo, VolumeId};

use super::attr::{FileKind, Timestamp};
use super::data::{Dirty, DirtyFile, merge};
use super::error::FsError;
use super::txops::{get_inode, put_inode};
use super::{Inner, VolState, lock};

/// A block's bytes as stored: trailing zeros trimmed (empty: a hole).
fn trimmed_len(b: &[u8]) -> usize {
    b.iter().rposition(|&x| x != 0).map_or(0, |p| p + 1)
}

/// What a flush commits for one block: a chunk to reference, or a hole.
type BlockUpdate = (u64, Option<NewChunk>);

impl Inner {
    /// Hashes a block image and appends it to a pack unless the pool has it already.
    fn prepare_chunk(
        &self,
        chunks_t: &redb::ReadOnlyTable<[u8; 32], [u8; 24]>,
        mut bytes: Vec<u8>,
    ) -> Result<Option<NewChunk>, FsError> {
        bytes.truncate(trimmed_len(&bytes));
        if bytes.is_empty() {
            return Ok(None);
        }
        let id = ChunkId::of(&bytes);
        let appended = if chunks::contains(chunks_t, id)? {
            None
        } else {
            Some(
                self.store
                    .packs()
                    .append(&bytes)
                    .map_err(|e| StoreError::io("pack append", e))?,
            )
        };
        Ok(Some(NewChunk {
            id,
            bytes,
            appended,
        }))
    }

    /// Flushes every buffered write of a volume.
    pub fn flush_volume(&self, vol: VolumeId) -> Result<(), FsError> {
        let vs = match self
            .vols
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&vol)
        {
            Some(v) => v.clone(),
            None => return Ok(()),
        };
        let mut d = lock(&vs.dirty);
        self.flush_locked(vol, &vs, &mut d, None)
    }

    /// Flushes the buffered writes of one file.
    pub fn flush_inode(&self, vol: VolumeId, ino: InodeNo) -> Result<(), FsError> {
        let vs = self.vol_state(vol)?;
        let mut d = lock(&vs.dirty);
        self.flush_locked(vol, &vs, &mut d, Some(ino))
    }

    /// Commits buffered writes (of `only`, or all) with the buffer lock held by the caller.
    pub(crate) fn flush_locked(
        &self,
        vol: VolumeId,
        vs: &VolState,
        d: &mut Dirty,
        only: Option<InodeNo>,
    ) -> Result<(), FsError> {
        let inos: Vec<InodeNo> = match only {
            Some(i) if d.files.contains_key(&i) => vec![i],
            Some(_) => return Ok(()),
            None => d.files.keys().copied().collect(),
        };
        if inos.is_empty() {
            return Ok(());
        }
        let bs = vs.block_size as u64;
        // Blocks written in part get their committed bytes now (each merged block replaces
        // its buffer, so a failure half way leaves every buffer valid).
        let mut reader: Option<redb::ReadTransaction> = None;
        for ino in &inos {
            let Some(f) = d.files.get_mut(ino) else {
                continue;
            };
            let mut grown = 0usize;
            while let Some((block, spans)) = f.partial.pop_first() {
                if reader.is_none() {
                    reader = Some(self.store.read()?);
                }
                let Some(r) = reader.as_ref() else { continue };
                let base = match self.read_block(r, vol, View::Live, *ino, block) {
                    Ok(b) => b,
                    Err(e) => {
                        f.partial.insert(block, spans);
                        d.bytes += grown;
                        return Err(e);
                    }
                };
                if let Some(buf) = f.blocks.get_mut(&block) {
                    let merged = merge(base, buf, &spans);
                    grown += merged.len().saturating_sub(buf.len());
                    *buf = merged;
                }
            }
            d.bytes += grown;
        }
        drop(reader);
        // Take the buffers out (readers wait on the lock the caller holds, so nobody sees
        // them missing); they go back if the flush fails.
        let taken: Vec<(InodeNo, DirtyFile)> = inos
            .iter()
            .filter_map(|i| d.files.remove(i).map(|f| (*i, f)))
            .collect();
        let restore = |d: &mut Dirty, taken: Vec<(InodeNo, DirtyFile)>| {
            for (i, f) in taken {
                d.files.insert(i, f);
            }
        };
        let mut work: Vec<(usize, u64, Vec<u8>)> = Vec::new();
        let mut heads = Vec::with_capacity(taken.len());
        for (n, (ino, f)) in taken.iter().enumerate() {
            heads.push((*ino, f.size, f.mtime));
            for (&block, buf) in &f.blocks {
                // Bytes past the end of the file are never stored.
                let valid = (f.size.saturating_sub(block * bs).min(bs) as usize).min(buf.len());
                work.push((n, block, buf[..valid].to_vec()));
            }
        }
        let prepared = match self.prepare_chunks(work) {
            Ok(p) => p,
            Err(e) => {
                restore(d, taken);
                return Err(e);
            }
        };
        // Records of these files are in this commit's rows: replay must skip them. Every
        // record of a buffer is appended under the buffer lock the caller holds, so all of
        // them end before the log's end read now.
        let log_end = self.log.as_ref().map(|l| l.end());
        let applied: Vec<InodeNo> = taken
            .iter()
            .filter(|(_, f)| f.logged)
            .map(|(i, _)| *i)
            .collect();
        let mut jobs: Vec<(InodeNo, u64, Timestamp, Vec<BlockUpdate>)> = heads
            .into_iter()
            .map(|(i, size, mtime)| (i, size, mtime, Vec::new()))
            .collect();
        for (n, block, chunk) in prepared {
            jobs[n].3.push((block, chunk));
        }
        let committed = self.write_op(move |tx| {
            let mut rec = tx.volume(vol)?;
            let g = rec.gens();
            for (ino, size, mtime, updates) in jobs {
                let mut inode = match get_inode(tx, vol, ino) {
                    Ok(i) => i,
                    // Deleted meanwhile: its buffered data goes with it.
                    Err(FsError::NotFound) => continue,
                    Err(e) => return Err(e),
                };
                for (block, chunk) in updates {
                    let id = RowId::Extent(ino, block);
                    let old = match tx.get_row(vol, &id)? {
                        Some(RowValue::Extent { chunk, len }) => Some((chunk, len)),
                        _ => None,
                    };
                    if let Some((_, len)) = old {
                        inode.stored = inode.stored.saturating_sub(len as u64);
                        rec.stored_bytes = rec.stored_bytes.saturating_sub(len as u64);
                    }
                    match chunk {
                        Some(c) if old.is_some_and(|(o, _)| o == c.id) => {
                            // Unchanged block: keep the row (and the snapshot's version).
                            inode.stored += c.bytes.len() as u64;
                            rec.stored_bytes += c.bytes.len() as u64;
                        }
                        Some(c) => {
                            tx.chunk_ref(&c)?;
                            let len = c.bytes.len() as u32;
                            tx.put_row(&g, &id, &RowValue::Extent { chunk: c.id, len })?;
                            inode.stored += len as u64;
                            rec.stored_bytes += len as u64;
                        }
                        None => tx.delete_row(&g, &id)?,
                    }
                }
                rec.logical_bytes = (rec.logical_bytes + size).saturating_sub(inode.size);
                inode.size = size;
                inode.mtime = mtime;
                inode.ctime = mtime;
                put_inode(tx, &g, ino, &inode)?;
            }
            tx.put_volume(&rec)?;
            if let Some(end) = log_end {
                for ino in applied {
                    tx.log_applied(vol, ino.0, end)?;
                }
            }
            Ok(())
        });
        match committed {
            Ok(()) => {
                let freed: usize = taken
                    .iter()
                    .flat_map(|(_, f)| f.blocks.values().map(Vec::len))
                    .sum();
                d.bytes = d.bytes.saturating_sub(freed);
                let blocks: usize = taken.iter().map(|(_, f)| f.blocks.len()).sum();
                self.space.release(blocks as u64 * bs);
                Ok(())
            }
            Err(e) => {
                restore(d, taken);
                Err(e)
            }
        }
    }

    /// Trims, hashes and (for chunks the pool lacks) appends block images, on two threads
    /// when there is enough to share: blake3 and the pack writes keep both cores busy.
    fn prepare_chunks(
        &self,
        work: Vec<(usize, u64, Vec<u8>)>,
    ) -> Result<Vec<(usize, u64, Option<NewChunk>)>, FsError> {
        let total: usize = work.iter().map(|w| w.2.len()).sum();
        let run = |part: Vec<(usize, u64, Vec<u8>)>| -> Result<Vec<(usize, u64, Option<NewChunk>)>, FsError> {
            let r = self.store.read()?;
            let chunks_t = r.open_table(CHUNKS).map_err(StoreError::from)?;
            part.into_iter().map(|(n, b, bytes)| Ok((n, b, self.prepare_chunk(&chunks_t, bytes)?))).collect()
        };
        if total < (4 << 20) || work.len() < 2 {
            return run(work);
        }
        let mut work = work;
        let second = work.split_off(work.len() / 2);
        let (a, b) = std::thread::scope(|s| {
            let h = s.spawn(|| run(second));
            let a = run(work);
            (a, h.join())
        });
        let mut out = a?;
        out.extend(b.map_err(|_| StoreError::Damaged("a hashing thread panicked".into()))??);
        Ok(out)
    }

    /// For a shrinking truncate: the new content of the block that becomes the last one
    /// (cut at the new size), as `(block, chunk or hole)`; `None` when no block is cut.
    pub(crate) fn prepare_truncate(
        &self,
        vol: VolumeId,
        block_size: u32,
        ino: InodeNo,
        size: u64,
    ) -> Result<Option<BlockUpdate>, FsError> {
        let bs = block_size as u64;
        let inode = self.committed_inode(vol, View::Live, ino)?;
        if inode.kind != FileKind::File || size >= inode.size || size.is_multiple_of(bs) {
            return Ok(None);
        }
        let block = size / bs;
        let r = self.store.read()?;
        let Some(mut old) = self.read_block(&r, vol, View::Live, ino, block)? else {
            return Ok(None);
        };
        let keep = (size % bs) as usize;
        if old.len() <= keep {
            return Ok(None);
        }
        old.truncate(keep);
        let chunks_t = r.open_table(CHUNKS).map_err(StoreError::from)?;
        Ok(Some((block, self.prepare_chunk(&chunks_t, old)?)))
    }
}
