//! File data: the per-volume write buffer, read and write (the flush: [`super::flush`]).
//!
//! A write first has its space admitted (see `space`: a block size per new buffered block),
//! then copies into block buffers of the volume's [`Dirty`] set and returns: no hashing or
//! I/O on the write path. A block buffer holds the range of its block that was written, not
//! the block (see [`BlockBuf`]), and that is what the dirty limit counts. A write into part
//! of a block keeps only what it wrote, with the spans noted (`DirtyFile::partial`); the
//! committed block is merged in at flush (with the buffer lock let go), and by reads
//! meanwhile (while a snapshot is pending, the old block is loaded at once instead, so
//! the freeze's flush has nothing to read). A flush (buffer over `dirty_limit`, a fsync
//! that cannot use the intent log, setattr, the commit ticker, a snapshot) stores each
//! buffered block (whole, or a part-written one as patches over the stored block: see
//! [`super::flush`]), appends the chunks the pool does not have yet to a pack, and commits
//! the extents, sizes and times in one writer job. The buffers stay in place until that
//! commit (a flush of the whole volume lets go of the buffer lock meanwhile, so writers and
//! readers carry on; blocks written meanwhile stay buffered), so a reader never sees a block
//! that is neither buffered nor committed. Past half of `dirty_limit` a writer hands the
//! flush to the flusher thread and goes on, paced (see `fs::pace`: through FUSE each write
//! waits a little, in proportion to the buffer's fill, so writers slow down to what the
//! flushes store); past the whole limit the writer flushes it itself
//! ([`Inner::flush_over_limit`]; through FUSE after its write was answered, outside the
//! gate).
//!
//! Stored chunks are a block's bytes with trailing zeros trimmed (a patch: the bytes written,
//! zeros too); an all-zero block is a hole and stores nothing. Bytes of a block past the end of the file are always zero (truncate
//! rewrites the tail block), so growing a file never exposes old data.

use std::collections::{BTreeMap, HashMap};

use crate::store::intent::Lsn;
use crate::store::keys::RowId;
use crate::store::rows::{RowValue, View};
use crate::store::{ReadView, Reader, StoreError};
use crate::types::{ChunkId, InodeNo, VolumeId};

use super::attr::{Attr, CAPS_XATTR, FileKind, Timestamp, without_privs};
pub(crate) use super::blockbuf::BlockBuf;
use super::error::FsError;
use super::{Inner, MAX_FILE_SIZE, VolState};

/// What [`Inner::write_buffered`] did.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    /// Bytes written.
    pub written: u32,
    /// The file's privileges were dropped (the kernel's cached mode is stale).
    pub killed: bool,
    /// The volume's buffer is past its limit: the writer must call
    /// [`Inner::flush_over_limit`] before it writes again (after answering is fine).
    pub over_limit: bool,
}

pub(crate) struct DirtyFile {
    /// Tells this buffer from a later one of the same file (a flush that let go of the
    /// lock finds the buffer it copied, or leaves a new one alone).
    pub(crate) id: u64,
    /// Blocks written since the last flush copied this buffer: they stay buffered when
    /// that flush commits.
    pub(crate) touched: std::collections::BTreeSet<u64>,
    /// The file's size including buffered writes.
    pub(crate) size: u64,
    /// Time of the last buffered write (mtime and ctime at flush).
    pub(crate) mtime: Timestamp,
    /// The buffered blocks by index: what was written to each (see [`BlockBuf`]).
    pub(crate) blocks: BTreeMap<u64, BlockBuf>,
    /// The file may hold privileges a write by a caller without CAP_FSETID drops (checked
    /// when the buffer is made; a chmod that grants setuid or setgid and setting the caps
    /// xattr mark it).
    pub(crate) privs: bool,
    /// Blocks whose committed bytes were not loaded: only these spans of the buffer were
    /// written; the rest of the block is the committed block's (merged at flush and read).
    pub(crate) partial: BTreeMap<u64, Vec<super::intent::Span>>,
    /// Per block, the span written since the file's last intent-log record.
    pub(crate) unlogged: BTreeMap<u64, Vec<super::intent::Span>>,
    /// Some of this buffer is in the intent log: its flush marks those records applied.
    pub(crate) logged: bool,
    /// Where the file's last record ends (what a later fsync with nothing new waits for).
    pub(crate) last_lsn: Lsn,
}

#[derive(Default)]
pub(crate) struct Dirty {
    pub(crate) files: HashMap<InodeNo, DirtyFile>,
    /// Bytes the buffers hold.
    pub(super) bytes: usize,
    /// A flush of this volume has let go of the lock to hash and commit (see
    /// `Inner::flush_locked`): another one waits on `VolState::flushed`.
    pub(crate) in_flight: bool,
    /// Bytes of the buffer that the flush in flight took (see `fs::pace`).
    pub(crate) in_flight_bytes: usize,
    /// A snapshot is about to copy the buffers (`Inner::hold_flushes`): background flushes
    /// wait (or skip) until it has.
    pub(crate) held: bool,
    /// The id the next new buffer gets (see [`DirtyFile::id`]).
    pub(crate) next_id: u64,
    /// Files whose writes an fsync put in the intent log (a hint that outlives their
    /// buffers: a flush logs such a file's last writes first, see `log_before_flush`).
    pub(crate) fsyncers: std::collections::HashSet<InodeNo>,
    /// Access times noted by reads and not committed yet (see `fs::atime`).
    pub(crate) atimes: HashMap<InodeNo, Timestamp>,
}

impl Dirty {
    /// What the buffered blocks were charged by the space admission (a block size each).
    pub(crate) fn charged(&self, block_size: u32) -> u64 {
        self.files
            .values()
            .map(|f| f.blocks.len() as u64)
            .sum::<u64>()
            * block_size as u64
    }
}

/// Adds `[lo, hi)` to a sorted list of disjoint spans, merging what touches.
pub(crate) fn add_span(spans: &mut Vec<super::intent::Span>, lo: u32, hi: u32) {
    let (mut lo, mut hi) = (lo, hi);
    spans.retain(|&(a, b)| {
        if b < lo || a > hi {
            true
        } else {
            lo = lo.min(a);
            hi = hi.max(b);
            false
        }
    });
    let at = spans.partition_point(|&(a, _)| a < lo);
    spans.insert(at, (lo, hi));
}

/// The committed block `base` (trailing zeros trimmed) with the written `spans` of `buf`
/// laid over it: the block's current first bytes.
pub(super) fn merge(
    base: Option<Vec<u8>>,
    buf: &BlockBuf,
    spans: &[super::intent::Span],
) -> Vec<u8> {
    let mut out = base.unwrap_or_default();
    for &(lo, hi) in spans {
        let (lo, hi) = (lo as usize, (hi as usize).min(buf.end()));
        if lo >= hi {
            continue;
        }
        if out.len() < hi {
            out.resize(hi, 0);
        }
        buf.copy_out(lo, &mut out[lo..hi]);
    }
    out
}

impl Inner {
    /// Reads one committed block of a file as a view sees it; `None` for a hole.
    pub(super) fn read_block(
        &self,
        r: &Reader<'_>,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
        block: u64,
    ) -> Result<Option<Vec<u8>>, FsError> {
        match r.extent(vol, view, ino, block)? {
            None => Ok(None),
            row => self.compose_block(r, row, ino, block),
        }
    }

    /// The bytes of a block whose extent row is `row` (`None` for a hole): its chunk, or its
    /// base with the patches laid over it.
    pub(super) fn compose_block(
        &self,
        r: &Reader<'_>,
        row: Option<RowValue>,
        ino: InodeNo,
        block: u64,
    ) -> Result<Option<Vec<u8>>, FsError> {
        match row {
            Some(RowValue::Extent { chunk, .. }) => Ok(Some(r.read_chunk(chunk)?)),
            Some(RowValue::Patched(p)) => {
                let mut out = match p.base {
                    Some((chunk, _)) => r.read_chunk(chunk)?,
                    None => Vec::new(),
                };
                out.resize(out.len().max(p.reach() as usize), 0);
                for x in &p.patches {
                    let bytes = r.read_chunk(x.chunk)?;
                    let at = x.at as usize;
                    match out.get_mut(at..at + bytes.len()) {
                        Some(dst) if bytes.len() == x.len as usize => dst.copy_from_slice(&bytes),
                        _ => {
                            return Err(StoreError::Damaged(format!(
                                "patch {} of block {block} of inode {ino} does not fit",
                                x.chunk
                            ))
                            .into());
                        }
                    }
                }
                Ok(Some(out))
            }
            Some(_) => Err(StoreError::Damaged("extent row has the wrong type".into()).into()),
            None => Ok(None),
        }
    }

    /// Applies a file's buffered size and times (and a noted atime) to attributes read from its committed inode.
    /// The caller holds the buffer lock from before that read: a flush in between would
    /// commit and drop the buffer, and the stale committed values would be returned.
    pub(crate) fn overlay_attr(d: &Dirty, attr: &mut Attr) {
        if let Some(&t) = d.atimes.get(&attr.ino) {
            attr.atime = t;
        }
        if let Some(f) = d.files.get(&attr.ino) {
            attr.size = f.size;
            attr.mtime = f.mtime;
            // Not before a change committed since the write (a link, a rename).
            attr.ctime = attr.ctime.max(f.mtime);
        }
    }

    /// Writes `data` at `offset`; returns the bytes written. Buffered: see the module docs.
    pub fn write(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        offset: u64,
        data: &[u8],
    ) -> Result<u32, FsError> {
        self.write_as(vol, ino, offset, data, false).map(|(n, _)| n)
    }

    /// As [`Inner::write`]; with `kill_priv` (a caller without CAP_FSETID) the file's
    /// privileges are dropped first, as Linux does on write. Returns the bytes written and
    /// whether privileges were dropped (the kernel's cached mode is then stale).
    pub fn write_as(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        offset: u64,
        data: &[u8],
        kill_priv: bool,
    ) -> Result<(u32, bool), FsError> {
        let w = self.write_buffered(vol, ino, offset, data, kill_priv)?;
        if w.over_limit {
            self.flush_over_limit(vol)?;
        }
        Ok((w.written, w.killed))
    }

    /// Flushes a volume whose buffer is past its limit (after waiting for a flush in
    /// flight, which may have brought it below): what a writer that took it there must do
    /// before writing more (see [`Written::over_limit`]).
    pub fn flush_over_limit(&self, vol: VolumeId) -> Result<(), FsError> {
        let vs = self.vol_state(vol)?;
        let mut dirty = vs.dirty.lock();
        vs.wait_quiet(&mut dirty);
        if dirty.bytes > self.cfg.dirty_limit {
            self.flush_locked(vol, &vs, &mut dirty, None)?;
        }
        Ok(())
    }

    /// Twice the buffered bytes past which the flusher thread flushes the volume (a writer
    /// flushes it itself past `cfg.dirty_limit`, tight or not).
    fn dirty_limit(&self, tight: bool) -> usize {
        if tight {
            super::TIGHT_DIRTY_LIMIT
        } else {
            self.cfg.dirty_limit
        }
    }

    /// The buffering part of [`Inner::write_as`]: the flush a buffer past its limit needs
    /// is left to the caller (`Written::over_limit`), who may answer the writer first.
    pub fn write_buffered(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        offset: u64,
        data: &[u8],
        kill_priv: bool,
    ) -> Result<Written, FsError> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or(FsError::FileTooBig)?;
        if end > MAX_FILE_SIZE {
            return Err(FsError::FileTooBig);
        }
        let len =
            u32::try_from(data.len()).map_err(|_| FsError::Invalid("write larger than 4 GiB"))?;
        if data.is_empty() {
            return Ok(Written {
                written: 0,
                killed: false,
                over_limit: false,
            });
        }
        let vs = self.vol_state(vol)?;
        let bs = vs.block_size as u64;
        let mut dirty = vs.dirty.lock();
        // Space first: a write the disk could not hold is refused now, never after success.
        let new_blocks = |d: &Dirty| -> u64 {
            let f = d.files.get(&ino);
            (offset / bs..=(end - 1) / bs)
                .filter(|b| !f.is_some_and(|f| f.blocks.contains_key(b)))
                .count() as u64
        };
        let mut charged = new_blocks(&dirty) * bs;
        let mut tried = 0;
        while !self.space.admit(charged) {
            match tried {
                // Flushing turns worst cases into what the chunks really take.
                0 => self.flush_locked(vol, &vs, &mut dirty, None)?,
                // Deletes answered but not durable yet free space once committed.
                1 => {
                    drop(dirty);
                    self.store.sync()?;
                    self.store.reclaim_wait();
                    dirty = vs.dirty.lock();
                }
                _ => return Err(FsError::NoSpace),
            }
            tried += 1;
            charged = new_blocks(&dirty) * bs;
        }
        let res = self.write_admitted(vol, ino, offset, data, kill_priv, &vs, &mut dirty);
        // Blocks another writer buffered meanwhile, or a write that failed: give back what
        // the buffer did not take.
        let taken = res
            .as_ref()
            .map_or(0, |(_, added_blocks)| added_blocks * bs);
        self.space.release(charged.saturating_sub(taken));
        let (killed, _) = res?;
        let limit = self.dirty_limit(vs.tight.load(std::sync::atomic::Ordering::Acquire));
        if dirty.bytes > limit / 2 && !dirty.in_flight && !dirty.held {
            // Half full: the flusher thread stores it while this writer goes on.
            self.want_flush(vol, &vs);
        }
        // Past the limit the caller flushes, after answering (`Written::over_limit`): never
        // inside the request, which a freeze's drain would wait for. What a flush in
        // flight took is on its way out and does not count: a writer that flushed then
        // would first wait for that flush (a snapshot's pre-flush, say), while pacing
        // (`fs::pace`) already slows it down.
        Ok(Written {
            written: len,
            killed,
            over_limit: dirty.bytes.saturating_sub(dirty.in_flight_bytes) > self.cfg.dirty_limit,
        })
    }

    /// The buffer part of [`Inner::write_as`], once space is admitted: returns whether
    /// privileges were dropped and how many blocks entered the buffer.
    #[allow(clippy::too_many_arguments)]
    fn write_admitted(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        offset: u64,
        data: &[u8],
        kill_priv: bool,
        vs: &VolState,
        dirty: &mut Dirty,
    ) -> Result<(bool, u64), FsError> {
        let bs = vs.block_size as u64;
        let end = offset + data.len() as u64;
        let mut added_blocks = 0u64;
        let id = dirty.next_id;
        if let std::collections::hash_map::Entry::Vacant(slot) = dirty.files.entry(ino) {
            // A file whose create is not committed yet is in the overlay (see pending.rs).
            let pending = super::lock(&vs.pending);
            let r = self.store.read()?;
            let seen = pending.seen(&r)?;
            let inode = super::pending::inode_seen(&r, seen, vol, View::Live, ino)?;
            drop(pending);
            match inode.kind {
                FileKind::File => {}
                FileKind::Dir => return Err(FsError::IsDir),
                _ => return Err(FsError::Invalid("write to a special file")),
            }
            let caps = RowId::Xattr(ino, CAPS_XATTR.to_vec());
            let privs =
                without_privs(inode.perm) != inode.perm || r.row(vol, &caps, View::Live)?.is_some();
            slot.insert(DirtyFile {
                id,
                touched: Default::default(),
                size: inode.size,
                mtime: inode.mtime,
                blocks: BTreeMap::new(),
                privs,
                partial: BTreeMap::new(),
                unlogged: BTreeMap::new(),
                logged: false,
                last_lsn: Lsn(0),
            });
            dirty.next_id += 1;
        }
        let mut killed = false;
        if kill_priv && dirty.files.get(&ino).is_some_and(|f| f.privs) {
            // Rare (a setuid file written by its owner, say): a commit before the write.
            killed = self.kill_privs(vol, ino)?;
            if let Some(f) = dirty.files.get_mut(&ino) {
                f.privs = false;
            }
        }
        let mut added = 0usize;
        let mut pos = offset;
        let tight = vs.tight.load(std::sync::atomic::Ordering::Acquire);
        let mut reader: Option<Reader<'_>> = None;
        while pos < end {
            let block = pos / bs;
            let in_block = (pos % bs) as usize;
            let n = ((bs - pos % bs).min(end - pos)) as usize;
            let src = &data[(pos - offset) as usize..(pos - offset) as usize + n];
            let file = dirty.files.get_mut(&ino).ok_or(FsError::NotFound)?;
            file.touched.insert(block);
            if !file.blocks.contains_key(&block) {
                // A partial write over existing data keeps only what it wrote; the rest of
                // the block is merged from the committed block at flush or read, off the
                // write path (a small write costs what it writes). While a snapshot is
                // pending the old block is loaded now instead: the freeze's flush, inside
                // the pause, then has nothing to read.
                let mut buf = BlockBuf::default();
                if n < bs as usize && block * bs < file.size {
                    if tight {
                        if reader.is_none() {
                            reader = Some(self.store.read()?);
                        }
                        if let Some(r) = reader.as_ref()
                            && let Some(old) = self.read_block(r, vol, View::Live, ino, block)?
                        {
                            added += old.len();
                            buf = BlockBuf::whole(old);
                        }
                    } else {
                        file.partial.insert(block, Vec::new());
                    }
                }
                file.blocks.insert(block, buf);
                added_blocks += 1;
            }
            if n == bs as usize {
                file.partial.remove(&block);
            } else if let Some(spans) = file.partial.get_mut(&block) {
                add_span(spans, in_block as u32, (in_block + n) as u32);
            }
            if let Some(buf) = file.blocks.get_mut(&block) {
                // A buffer holds what was written, not the whole block: a small write
                // costs what it writes.
                added += buf.write(in_block, src);
            }
            if self.log.is_some() {
                super::intent::note_span(
                    &mut file.unlogged,
                    block,
                    in_block as u32,
                    (in_block + n) as u32,
                );
            }
            pos += n as u64;
        }
        let file = dirty.files.get_mut(&ino).ok_or(FsError::NotFound)?;
        file.size = file.size.max(end);
        file.mtime = Timestamp::now();
        dirty.bytes += added;
        Ok((killed, added_blocks))
    }

    /// A privilege was just added to the file (the caps xattr): buffered writes must check
    /// again.
    pub(crate) fn mark_privs(&self, vol: VolumeId, ino: InodeNo) {
        if let Ok(vs) = self.vol_state(vol)
            && let Some(f) = vs.dirty.lock().files.get_mut(&ino)
        {
            f.privs = true;
        }
    }

    /// Reads up to `size` bytes at `offset` (short at end of file).
    pub fn read(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
        offset: u64,
        size: u32,
    ) -> Result<Vec<u8>, FsError> {
        let vs = self.vol_state(vol)?;
        let bs = vs.block_size as u64;
        let dirty_guard = if view == View::Live {
            Some(vs.dirty.lock())
        } else {
            None
        };
        let buffered = dirty_guard.as_ref().and_then(|d| d.files.get(&ino));
        // A file whose create is not committed yet is in the overlay (see pending.rs).
        let pending = dirty_guard.as_ref().map(|_| super::lock(&vs.pending));
        let r = self.store.read()?;
        let seen = match &pending {
            Some(p) => p.seen(&r)?,
            None => None,
        };
        let file_size = match buffered {
            Some(f) => f.size,
            None => {
                let inode = super::pending::inode_seen(&r, seen, vol, view, ino)?;
                match inode.kind {
                    FileKind::File => {}
                    FileKind::Dir => return Err(FsError::IsDir),
                    _ => return Err(FsError::Invalid("read of a special file")),
                }
                inode.size
            }
        };
        drop(pending);
        // Not buffered: the committed state is authoritative, no need to hold the lock.
        let dirty_guard = if buffered.is_none() {
            drop(dirty_guard);
            None
        } else {
            dirty_guard
        };
        if offset >= file_size {
            return Ok(Vec::new());
        }
        let end = file_size.min(offset + size as u64);
        let mut out = vec![0u8; (end - offset) as usize];
        // Whole stored blocks (chunk, where in `out`, room there), read together at the end.
        let mut whole: Vec<(ChunkId, usize, usize)> = Vec::new();
        let mut pos = offset;
        while pos < end {
            let block = pos / bs;
            let in_block = (pos % bs) as usize;
            let n = ((bs - pos % bs).min(end - pos)) as usize;
            let dst = &mut out[(pos - offset) as usize..(pos - offset) as usize + n];
            let file = dirty_guard.as_ref().and_then(|d| d.files.get(&ino));
            let from_buffer = file.and_then(|f| f.blocks.get(&block));
            let merged = match (file.and_then(|f| f.partial.get(&block)), from_buffer) {
                (Some(spans), Some(buf)) => Some(merge(
                    self.read_block(&r, vol, view, ino, block)?,
                    buf,
                    spans,
                )),
                _ => None,
            };
            match (merged, from_buffer) {
                (Some(block), _) => {
                    if in_block < block.len() {
                        let k = (block.len() - in_block).min(n);
                        dst[..k].copy_from_slice(&block[in_block..in_block + k]);
                    }
                }
                (None, Some(buf)) => buf.copy_out(in_block, dst),
                (None, None) => match r.extent(vol, view, ino, block)? {
                    Some(RowValue::Extent { chunk, len }) if in_block == 0 && len as usize <= n => {
                        whole.push((chunk, (pos - offset) as usize, n));
                    }
                    row => {
                        if let Some(chunk) = self.compose_block(&r, row, ino, block)?
                            && in_block < chunk.len()
                        {
                            let k = (chunk.len() - in_block).min(n);
                            dst[..k].copy_from_slice(&chunk[in_block..in_block + k]);
                        }
                    }
                },
            }
            pos += n as u64;
        }
        if !whole.is_empty() {
            // Hand each chunk its own part of `out` (the parts are disjoint and in order).
            let mut wanted = Vec::with_capacity(whole.len());
            let (mut rest, mut at) = (out.as_mut_slice(), 0);
            for (chunk, off, n) in whole {
                let (dst, tail) = std::mem::take(&mut rest)[off - at..].split_at_mut(n);
                wanted.push((chunk, dst));
                (rest, at) = (tail, off + n);
            }
            r.read_chunks_into(wanted)?;
        }
        Ok(out)
    }

    pub(crate) fn discard_dirty(&self, vol: VolumeId, ino: InodeNo) {
        if let Some(vs) = self
            .vols
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&vol)
        {
            let mut d = vs.dirty.lock();
            if let Some(f) = d.files.remove(&ino) {
                d.bytes = d
                    .bytes
                    .saturating_sub(f.blocks.values().map(BlockBuf::held).sum());
                self.space
                    .release(f.blocks.len() as u64 * vs.block_size as u64);
            }
        }
    }
}
