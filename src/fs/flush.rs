//! The flush: buffered blocks become chunks and rows. A block written in part over a
//! stored block becomes patches (its written spans, stored as they are, laid over the
//! stored block: see [`crate::store::rows`]) while the block stays within the bounds of
//! `patch.rs` (which writes the rows); past them, and for every other block, the committed
//! bytes are merged in and the block is trimmed, hashed and stored whole.
//! Under the buffer lock the flush only clones the buffers it stores (their bytes are
//! shared, copy on write: see [`BlockBuf`]); building the images, deciding patch or merge,
//! reading the committed block and hashing happen with the lock let go (a flush of the
//! whole volume) so writers wait for a reference count, never for a copy, a read or a
//! hash.
//! Chunks the pool lacks are appended to a pack as each is hashed (on two threads when
//! there is enough, so the two halves of a large flush interleave in the pack), then extents, sizes, times and the intent-log marks are committed in one writer job
//! (see [`super::data`] for the buffer itself). The flush takes what it stores and leaves
//! the buffers in place until the commit; a flush of the whole volume lets go of the buffer
//! lock while it hashes and commits (one such flush per volume at a time, `in_flight`), and
//! afterwards drops only the blocks nobody wrote meanwhile. A flush of one file (setattr,
//! fsync) keeps the lock: its caller relies on the file having no buffer afterwards.
//! Before committing, files that use fsync put their last writes in the intent log, so the
//! commit is replayable and fsync keeps its fast path (see [`super::intent`]). Also
//! prepares the tail block of a shrinking truncate.
//!
//! Invariants: a flush that fails leaves every buffer as it was (nothing that returned
//! success is dropped); the space a flushed block was charged is released only once its
//! commit succeeded.

use crate::store::chunks::{ChunkBytes, NewChunk};
use crate::store::intent::Lsn;
use crate::store::keys::RowId;
use crate::store::rows::{RowValue, View};
use crate::store::{ReadView, Reader, StoreError};
use crate::types::{ChunkId, InodeNo, VolumeId};

use super::attr::{FileKind, Timestamp};
use super::blockbuf::BlockBuf;
use super::data::Dirty;
use super::error::FsError;
use super::patch::{patchable, put_patched, put_whole};
use super::txops::{get_inode, put_inode};
use super::{Inner, VolState};

/// A block's bytes as stored: trailing zeros trimmed (empty: a hole).
fn trimmed_len(b: &[u8]) -> usize {
    b.iter().rposition(|&x| x != 0).map_or(0, |p| p + 1)
}

/// What a truncate commits for its new tail block: a chunk to reference, or a hole.
pub(crate) type BlockUpdate = (u64, Option<NewChunk>);

/// What a flush does with one buffered block: a clone of its buffer (shared bytes, see
/// [`BlockBuf`]) and what to store of it, made into bytes with the buffer lock let go.
pub(super) enum Work {
    /// Store the block image whole, its first `valid` bytes (trailing zeros trimmed; empty:
    /// a hole).
    Whole { buf: BlockBuf, valid: usize },
    /// The written spans (from, to) of a block of `ino` written in part: stored as patches
    /// over the committed block, or merged into it and stored whole (decided with the
    /// buffer lock let go, see [`patchable`]); `valid` is how much of the block lies
    /// inside the file.
    Partial {
        ino: InodeNo,
        buf: BlockBuf,
        spans: Vec<(u32, u32)>,
        valid: usize,
    },
}

/// What a flush commits for one file: inode, size, mtime, and its blocks' updates.
pub(super) type FileJob = (InodeNo, u64, Timestamp, Vec<(u64, Update)>);

/// What [`Inner::take`] copied out of the buffers for one flush of a volume.
pub(super) struct Taken {
    /// The block images and written spans to store (index into `jobs`, block, what).
    pub work: Vec<(usize, u64, Work)>,
    /// Per file: inode, size, mtime (the updates are added once prepared).
    pub jobs: Vec<FileJob>,
    /// Per file: the buffer's id and the blocks taken (for [`Inner::settle`]).
    pub taken: Vec<(InodeNo, u64, Vec<u64>)>,
    /// Every write taken is in intent-log records: the commit may be replayable.
    pub replayable: bool,
    /// The log's end when taken: the commit marks these files' records before it applied.
    pub log_end: Option<Lsn>,
    /// Files with records in the log.
    pub applied: Vec<InodeNo>,
    /// Buffered bytes taken (what the flush frees when it settles).
    pub bytes: usize,
}

/// A [`Work`] item hashed and appended.
pub(super) enum Update {
    Whole(Option<NewChunk>),
    Patch(Vec<(u32, NewChunk)>),
}

impl Update {
    fn chunks_mut(&mut self) -> Vec<&mut NewChunk> {
        match self {
            Update::Whole(c) => c.iter_mut().collect(),
            Update::Patch(p) => p.iter_mut().map(|(_, c)| c).collect(),
        }
    }
}

/// The committed block `base` (trailing zeros trimmed) with written `spans` (offset,
/// bytes) laid over it.
fn overlay(base: Option<Vec<u8>>, spans: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = base.unwrap_or_default();
    for (at, bytes) in spans {
        let (lo, hi) = (*at as usize, *at as usize + bytes.len());
        if out.len() < hi {
            out.resize(hi, 0);
        }
        out[lo..hi].copy_from_slice(bytes);
    }
    out
}

impl Inner {
    /// Trims and hashes a block image (`None`: all zeros, a hole); [`Inner::append_missing`]
    /// stores it.
    pub(super) fn prepare_chunk(&self, mut bytes: ChunkBytes) -> Option<NewChunk> {
        bytes.truncate(trimmed_len(&bytes));
        if bytes.is_empty() {
            return None;
        }
        Some(self.prepare_bytes(bytes))
    }

    /// Hashes bytes as they are (a patch: zeros too); [`Inner::append_missing`] stores them.
    fn prepare_bytes(&self, bytes: ChunkBytes) -> NewChunk {
        NewChunk {
            id: ChunkId::of(&bytes),
            bytes,
            appended: None,
        }
    }

    /// Appends the bodies of the chunks the pool lacks (each once, however often it occurs)
    /// as one run, in the order given: a file flushed in order lies in order in its pack.
    pub(super) fn append_missing<'c>(
        &self,
        r: &Reader<'_>,
        chunks: impl IntoIterator<Item = &'c mut NewChunk>,
    ) -> Result<(), FsError> {
        let mut seen = std::collections::HashSet::new();
        let mut missing = Vec::new();
        for c in chunks {
            if seen.insert(c.id) && !r.chunk_stored(c.id)? {
                missing.push(c);
            }
        }
        let bodies: Vec<&[u8]> = missing.iter().map(|c| &*c.bytes).collect();
        let locs = self
            .store
            .packs()
            .append_run(&bodies)
            .map_err(|e| StoreError::io("pack append", e))?;
        drop(bodies);
        for (c, loc) in missing.into_iter().zip(locs) {
            c.appended = Some(loc);
        }
        Ok(())
    }

    /// Flushes every buffered write of a volume (after a snapshot's hold, see seal.rs).
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
        let mut d = vs.dirty.lock();
        vs.wait_quiet(&mut d);
        self.flush_locked(vol, &vs, &mut d, None)
    }

    /// Flushes several volumes at once, one thread per volume that has buffered writes
    /// (their commits then share writer batches); the first error is returned after every
    /// flush has ended.
    pub fn flush_volumes(&self, vols: &[VolumeId]) -> Result<(), FsError> {
        let busy: Vec<VolumeId> = vols
            .iter()
            .copied()
            .filter(|&v| {
                self.vol_state(v)
                    .is_ok_and(|vs| !vs.dirty.lock().files.is_empty())
            })
            .collect();
        match busy.as_slice() {
            [] => Ok(()),
            [one] => self.flush_volume(*one),
            _ => std::thread::scope(|s| {
                let flushes: Vec<_> = busy
                    .iter()
                    .map(|&v| s.spawn(move || self.flush_volume(v)))
                    .collect();
                let mut first_err = None;
                for f in flushes {
                    let r = f.join().unwrap_or_else(|_| {
                        Err(FsError::Store(StoreError::Damaged(
                            "a flush thread panicked".into(),
                        )))
                    });
                    if let Err(e) = r {
                        first_err.get_or_insert(e);
                    }
                }
                first_err.map_or(Ok(()), Err)
            }),
        }
    }

    /// Asks the flusher thread to flush a volume (once until it starts).
    pub(crate) fn want_flush(&self, vol: VolumeId, vs: &VolState) {
        use std::sync::atomic::Ordering;
        if !vs.flush_wanted.swap(true, Ordering::AcqRel) && self.flusher.send(vol).is_err() {
            vs.flush_wanted.store(false, Ordering::Release);
        }
    }

    /// The flusher thread's work: flushes a volume a writer asked for.
    pub(crate) fn background_flush(&self, vol: VolumeId) {
        let Ok(vs) = self.vol_state(vol) else { return };
        vs.flush_wanted
            .store(false, std::sync::atomic::Ordering::Release);
        if vs.dirty.lock().held {
            // A snapshot is about to take the buffers; the flusher serves the others.
            return;
        }
        if let Err(e) = self.flush_volume(vol) {
            // The writers flush themselves at the limit, and hear the error then.
            tracing::debug!("background flush of volume {vol} failed: {e}");
        }
    }

    /// Flushes the buffered writes of one file.
    pub fn flush_inode(&self, vol: VolumeId, ino: InodeNo) -> Result<(), FsError> {
        let vs = self.vol_state(vol)?;
        let mut d = vs.dirty.lock();
        self.flush_locked(vol, &vs, &mut d, Some(ino))
    }

    /// Commits buffered writes (of `only`, or all); the caller holds the buffer lock, which
    /// is let go while the chunks are hashed and committed (the buffers stay, so readers
    /// and writers carry on meanwhile) and held again when this returns. One flush of a
    /// volume at a time: a second one waits for the first.
    pub(crate) fn flush_locked(
        &self,
        vol: VolumeId,
        vs: &VolState,
        d: &mut parking_lot::MutexGuard<'_, Dirty>,
        only: Option<InodeNo>,
    ) -> Result<(), FsError> {
        vs.wait_flushed(d);
        let Some(t) = self.take(vol, vs, d, only, true) else {
            return Ok(());
        };
        let Taken {
            work,
            jobs,
            taken,
            replayable,
            log_end,
            applied,
            bytes,
        } = t;
        let bs = vs.block_size as u64;
        // A flush of one file (setattr, fsync) keeps the lock: its caller relies on the
        // file having no buffer afterwards. A flush of the volume lets writers go on.
        let store = || {
            let commit = self.prepare_commit(vol, bs, work, jobs, log_end, applied)?;
            if replayable {
                self.write_op_replayable(commit)
            } else {
                self.write_op(commit)
            }
        };
        if only.is_some() {
            store()?;
        } else {
            d.in_flight = true;
            d.in_flight_bytes = bytes;
            let committed = parking_lot::MutexGuard::unlocked(d, store);
            d.in_flight = false;
            d.in_flight_bytes = 0;
            vs.flushed.notify_all();
            committed?;
        }
        self.settle(d, taken, bs, log_end);
        Ok(())
    }

    /// A flush's first step, under the buffer lock: copies what it stores (of `only`, or
    /// every file) and notes, per file, the blocks written from now on (those stay
    /// buffered after the commit). With `log`, files that use fsync put their last writes
    /// in the intent log first, so that the commit is replayable. `None`: nothing to
    /// flush. The caller makes sure no other flush of the volume is in flight.
    pub(super) fn take(
        &self,
        vol: VolumeId,
        vs: &VolState,
        d: &mut parking_lot::MutexGuard<'_, Dirty>,
        only: Option<InodeNo>,
        log: bool,
    ) -> Option<Taken> {
        let inos: Vec<InodeNo> = match only {
            Some(i) if d.files.contains_key(&i) => vec![i],
            Some(_) => return None,
            None => d.files.keys().copied().collect(),
        };
        if inos.is_empty() {
            return None;
        }
        let bs = vs.block_size as u64;
        // Copy what the flush stores; the buffers stay where readers find them, and each
        // file notes the blocks written from now on (those stay buffered after the commit).
        let mut work: Vec<(usize, u64, Work)> = Vec::new();
        let mut heads = Vec::with_capacity(inos.len());
        let mut taken: Vec<(InodeNo, u64, Vec<u64>)> = Vec::with_capacity(inos.len());
        let mut bytes = 0usize;
        for ino in &inos {
            let Some(f) = d.files.get_mut(ino) else {
                continue;
            };
            let n = heads.len();
            heads.push((*ino, f.size, f.mtime));
            f.touched.clear();
            taken.push((*ino, f.id, f.blocks.keys().copied().collect()));
            for (&block, buf) in &f.blocks {
                bytes += buf.held();
                // Bytes past the end of the file are never stored.
                let valid = (f.size.saturating_sub(block * bs).min(bs) as usize).min(buf.end());
                let item = match f.partial.get(&block) {
                    Some(spans) => Work::Partial {
                        ino: *ino,
                        buf: buf.clone(),
                        spans: spans
                            .iter()
                            .map(|&(lo, hi)| (lo, (hi as usize).min(valid) as u32))
                            .filter(|(lo, hi)| lo < hi)
                            .collect(),
                        valid: f.size.saturating_sub(block * bs).min(bs) as usize,
                    },
                    None => Work::Whole {
                        buf: buf.clone(),
                        valid,
                    },
                };
                work.push((n, block, item));
            }
        }
        // Files that use fsync put their last writes in the log first: the commit is then
        // replayable and does not send other files' fsyncs to the slow path.
        let replayable = log && self.log_before_flush(vol, vs.block_size, d, &inos);
        // Records of these files are in this commit's rows: replay must skip them. Every
        // record of a buffer is appended under the buffer lock, so all of them end before
        // the log's end read now (later ones are past it, and are replayed).
        let log_end = self.log.as_ref().map(|l| l.end());
        let applied: Vec<InodeNo> = inos
            .iter()
            .filter(|i| d.files.get(i).is_some_and(|f| f.logged))
            .copied()
            .collect();
        let jobs: Vec<FileJob> = heads
            .into_iter()
            .map(|(i, size, mtime)| (i, size, mtime, Vec::new()))
            .collect();
        Some(Taken {
            work,
            jobs,
            taken,
            replayable,
            log_end,
            applied,
            bytes,
        })
    }

    /// A flush's second step, with the buffer lock let go: hashes and appends what
    /// [`Inner::take`] copied, and returns the commit (one writer job) of its extents,
    /// sizes, times and intent-log marks.
    pub(super) fn prepare_commit(
        &self,
        vol: VolumeId,
        bs: u64,
        work: Vec<(usize, u64, Work)>,
        mut jobs: Vec<FileJob>,
        log_end: Option<Lsn>,
        applied: Vec<InodeNo>,
    ) -> Result<
        impl FnOnce(&mut crate::store::Tx<'_>) -> Result<(), FsError> + Send + 'static,
        FsError,
    > {
        let prepared = self.prepare_chunks(vol, bs, work)?;
        for (n, block, chunk) in prepared {
            jobs[n].3.push((block, chunk));
        }
        Ok(move |tx: &mut crate::store::Tx<'_>| {
            let mut rec = tx.volume(vol)?;
            let g = rec.gens();
            for (ino, size, mtime, updates) in jobs {
                let mut inode = match get_inode(tx, vol, ino) {
                    Ok(i) => i,
                    // Deleted meanwhile: its buffered data goes with it.
                    Err(FsError::NotFound) => continue,
                    Err(e) => return Err(e),
                };
                for (block, update) in updates {
                    let id = RowId::Extent(ino, block);
                    let latest = tx.latest_row(&g, &id)?;
                    let was = latest.as_ref().map_or(0, |(_, v)| v.stored_len());
                    inode.stored = inode.stored.saturating_sub(was);
                    rec.stored_bytes = rec.stored_bytes.saturating_sub(was);
                    let chunk = match update {
                        Update::Whole(chunk) => chunk,
                        Update::Patch(patches) => {
                            let v = put_patched(tx, &g, &id, latest, patches)?;
                            inode.stored += v.stored_len();
                            rec.stored_bytes += v.stored_len();
                            continue;
                        }
                    };
                    let old = match latest {
                        Some((_, RowValue::Extent { chunk, .. })) => Some(chunk),
                        _ => None,
                    };
                    match chunk {
                        Some(c) if old == Some(c.id) => {
                            // Unchanged block: keep the row (and the snapshot's version).
                            inode.stored += c.bytes.len() as u64;
                            rec.stored_bytes += c.bytes.len() as u64;
                        }
                        other => put_whole(tx, &g, &id, other, &mut inode, &mut rec)?,
                    }
                }
                rec.logical_bytes = (rec.logical_bytes + size).saturating_sub(inode.size);
                inode.size = size;
                inode.mtime = mtime;
                // A link, rename or xattr change after the write set a later ctime: keep it.
                inode.ctime = inode.ctime.max(mtime);
                put_inode(tx, &g, ino, &inode)?;
            }
            tx.put_volume(&rec)?;
            if let Some(end) = log_end {
                for ino in applied {
                    tx.log_applied(vol, ino.0, end)?;
                }
            }
            Ok(())
        })
    }

    /// A flush's last step, once its commit succeeded, under the buffer lock again: what
    /// was not written meanwhile leaves the buffer (a file whose buffer was dropped and made
    /// again meanwhile has another id and is left alone), and its space is released.
    ///
    /// `log_end` is the log's end when the flush took the buffers (the applied mark its
    /// commit wrote). A file an fsync logged while the flush was in flight has a record past
    /// it that no mark covers yet: its buffer stays, even with no block left, so that the
    /// file's next flush (which every later change of its rows is preceded by) writes the
    /// mark. Dropped, nothing would: a replay could then put that record's bytes over newer
    /// committed ones.
    pub(super) fn settle(
        &self,
        d: &mut Dirty,
        taken: Vec<(InodeNo, u64, Vec<u64>)>,
        bs: u64,
        log_end: Option<Lsn>,
    ) {
        let (mut freed, mut released) = (0usize, 0u64);
        for (ino, id, blocks) in taken {
            let Some(f) = d.files.get_mut(&ino) else {
                continue;
            };
            if f.id != id {
                continue;
            }
            for block in blocks {
                if f.touched.contains(&block) {
                    continue;
                }
                if let Some(buf) = f.blocks.remove(&block) {
                    freed += buf.held();
                    released += 1;
                }
                f.partial.remove(&block);
                f.unlogged.remove(&block);
            }
            let unmarked = f.logged && log_end.is_some_and(|end| f.last_lsn > end);
            if f.blocks.is_empty() && !unmarked {
                d.files.remove(&ino);
            }
        }
        d.bytes = d.bytes.saturating_sub(freed);
        self.space.release(released * bs);
    }

    /// Trims, hashes and (for chunks the pool lacks) appends block images, on two threads
    /// when there is enough to share: blake3 and the pack writes keep both cores busy. A
    /// block written in part becomes patches, or is merged into its committed bytes here
    /// (the reads this takes happen with the buffer lock let go). The committed blocks
    /// cannot change meanwhile: every commit of extents is a flush, one at a time.
    fn prepare_chunks(
        &self,
        vol: VolumeId,
        bs: u64,
        work: Vec<(usize, u64, Work)>,
    ) -> Result<Vec<(usize, u64, Update)>, FsError> {
        let total: usize = work
            .iter()
            .map(|w| match &w.2 {
                Work::Whole { valid, .. } => *valid,
                Work::Partial { spans, .. } => {
                    spans.iter().map(|&(lo, hi)| (hi - lo) as usize).sum()
                }
            })
            .sum();
        let run = |part: Vec<(usize, u64, Work)>| -> Result<Vec<(usize, u64, Update)>, FsError> {
            let r = self.store.read()?;
            part.into_iter()
                .map(|(n, block, w)| {
                    let u = match w {
                        Work::Whole { buf, valid } => {
                            Update::Whole(self.prepare_chunk(buf.image(valid)))
                        }
                        Work::Partial {
                            ino,
                            buf,
                            spans,
                            valid,
                        } => {
                            let spans: Vec<(u32, Vec<u8>)> = spans
                                .into_iter()
                                .map(|(lo, hi)| (lo, buf.range(lo as usize, hi as usize)))
                                .collect();
                            let cur = r.extent(vol, View::Live, ino, block)?;
                            let bounds: Vec<(u32, u32)> = spans
                                .iter()
                                .map(|(at, b)| (*at, at + b.len() as u32))
                                .collect();
                            if patchable(cur.as_ref(), &bounds, bs) {
                                Update::Patch(
                                    spans
                                        .into_iter()
                                        .map(|(at, bytes)| (at, self.prepare_bytes(bytes.into())))
                                        .collect(),
                                )
                            } else {
                                let base = self.compose_block(&r, cur, ino, block)?;
                                let mut image = overlay(base, &spans);
                                image.truncate(valid);
                                Update::Whole(self.prepare_chunk(image.into()))
                            }
                        }
                    };
                    let mut u = u;
                    // Appended as soon as hashed: the pack writes overlap the other
                    // thread's hashing (a separate, ordered append phase lengthened a
                    // snapshot's pre-flush, and writers' stalls with it).
                    self.append_missing(&r, u.chunks_mut())?;
                    Ok((n, block, u))
                })
                .collect()
        };
        let out = if total < (4 << 20) || work.len() < 2 {
            run(work)?
        } else {
            let mut work = work;
            let second = work.split_off(work.len() / 2);
            let (a, b) = std::thread::scope(|s| {
                let h = s.spawn(|| run(second));
                let a = run(work);
                (a, h.join())
            });
            let mut out = a?;
            out.extend(b.map_err(|_| StoreError::Damaged("a hashing thread panicked".into()))??);
            out
        };
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
        let mut chunk = self.prepare_chunk(old.into());
        self.append_missing(&r, chunk.as_mut())?;
        Ok(Some((block, chunk)))
    }
}
