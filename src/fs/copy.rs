//! copy_file_range(2) as an instant copy: whole blocks are shared, not copied.
//!
//! A block is a chunk (or a patched extent) addressed by its hash, so copying a whole
//! block is adding a reference to the chunks it names and writing the same row in the
//! destination: no byte is read, hashed or written, and the copy holds no new physical
//! space until one side is written. The source may be a live file of any volume of the
//! pool or a file of a snapshot view (restoring a file from a snapshot costs its metadata).
//!
//! A copy is done in three steps, each a prefix of the copy, so a failure part way leaves
//! a shorter copy and a short count, never a hole in the middle: the head (bytes before the
//! first whole block of the destination) as a buffered write, the whole blocks in one
//! writer job, the tail (bytes after the last whole block) as a buffered write. When the
//! two files' offsets are not equally aligned within a block, or the volumes' block sizes
//! differ, nothing can be shared and the bytes are copied through the write buffer.
//!
//! Invariants: the source's buffered writes are seen (its buffer is flushed before its rows
//! are read; the edges are read through the buffer); the destination's rows change only
//! under its volume's buffer lock with its buffer flushed and no flush in flight, as for a
//! truncate, so no buffered block of the destination shadows a shared one; the commit is an
//! ordinary (not replayable) writer job, so an fsync after a copy commits durably (see
//! `intent`). Like a write, a copy by a caller without CAP_FSETID drops the destination's
//! setuid/setgid bits and capabilities.

use crate::store::ReadView;
use crate::store::keys::RowId;
use crate::store::rows::{RowValue, View};
use crate::types::{InodeNo, VolumeId};

use super::Inner;
use super::attr::{FileKind, Timestamp};
use super::error::FsError;
use super::txops::{drop_privs, get_inode, inode_in, put_inode};

/// Bytes one call copies at most by sharing blocks (the caller loops on a short count, as
/// for any copy_file_range): bounds the writer job of one call.
const MAX_SHARED: u64 = 1 << 30;
/// Bytes one call copies at most through the write buffer (unaligned offsets).
const MAX_BYTES: u64 = 8 << 20;
/// Piece of a copy through the write buffer.
const PIECE: u64 = 1 << 20;

/// One side of a copy: a file of a volume as a view sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileAt {
    pub vol: VolumeId,
    pub view: View,
    pub ino: InodeNo,
}

/// What [`Inner::copy_range`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Bytes copied (short: the caller asks again for the rest).
    pub bytes: u64,
    /// Bytes of them shared as whole blocks (no data copied).
    pub shared: u64,
    /// The destination's privileges were dropped (the kernel's cached mode is stale).
    pub killed: bool,
    /// The destination volume's buffer is past its limit: flush it before writing more
    /// (see [`super::Written::over_limit`]).
    pub over_limit: bool,
}

impl Inner {
    /// copy_file_range(2): copies up to `len` bytes of `src` at `off_in` to the live file
    /// `dst` at `off_out`; see the module docs. Returns a short count past the end of the
    /// source, past one call's bound, or when a later step failed after an earlier one
    /// succeeded. EINVAL for overlapping ranges of one file, EISDIR/EINVAL for a directory or
    /// a special file, EFBIG past the largest file size, EROFS for a snapshot destination.
    #[allow(clippy::too_many_arguments)]
    pub fn copy_range(
        &self,
        src: FileAt,
        off_in: u64,
        dst_vol: VolumeId,
        dst: InodeNo,
        off_out: u64,
        len: u64,
        kill_priv: bool,
    ) -> Result<Copied, FsError> {
        if src.view == View::Live {
            self.flush_inode(src.vol, src.ino)?;
        }
        let size = self.file_size(src)?;
        let dst_attr = self.getattr(dst_vol, View::Live, dst)?;
        match dst_attr.kind {
            FileKind::File => {}
            FileKind::Dir => return Err(FsError::IsDir),
            _ => return Err(FsError::Invalid("copy into a special file")),
        }
        let len = len.min(size.saturating_sub(off_in));
        if len == 0 {
            return Ok(Copied::default());
        }
        if off_out
            .checked_add(len)
            .is_none_or(|end| end > super::MAX_FILE_SIZE)
        {
            return Err(FsError::FileTooBig);
        }
        let same_file = src.vol == dst_vol && src.ino == dst && src.view == View::Live;
        if same_file && off_in < off_out + len && off_out < off_in + len {
            return Err(FsError::Invalid(
                "copy between overlapping ranges of one file",
            ));
        }
        let bs = self.vol_state(dst_vol)?.block_size as u64;
        let head = (bs - off_out % bs) % bs;
        let aligned =
            self.vol_state(src.vol)?.block_size as u64 == bs && off_in % bs == off_out % bs;
        if !aligned || len < head + bs {
            return self.copy_bytes(
                src,
                off_in,
                dst_vol,
                dst,
                off_out,
                len.min(MAX_BYTES),
                kill_priv,
            );
        }
        let blocks = ((len - head) / bs).min(MAX_SHARED / bs);
        let tail = if blocks == MAX_SHARED / bs {
            0
        } else {
            len - head - blocks * bs
        };
        // Head, whole blocks, tail: each step a prefix of the copy (see the module docs).
        let steps = [
            (0, head, false),
            (head, blocks * bs, true),
            (head + blocks * bs, tail, false),
        ];
        let mut out = Copied::default();
        for (at, n, share) in steps {
            if n == 0 {
                continue;
            }
            let (i, o) = (off_in + at, off_out + at);
            let r = if share {
                self.share_blocks(src, i, dst_vol, dst, o, n / bs, kill_priv)
            } else {
                self.copy_bytes(src, i, dst_vol, dst, o, n, kill_priv)
            };
            match r {
                Ok(c) => {
                    out.bytes += c.bytes;
                    out.shared += c.shared;
                    out.killed |= c.killed;
                    out.over_limit |= c.over_limit;
                    if c.bytes < n {
                        break;
                    }
                }
                Err(e) if out.bytes == 0 => return Err(e),
                // A later step that fails leaves a shorter copy: report what was done.
                Err(e) => {
                    tracing::debug!("copy stopped short after {} bytes: {e}", out.bytes);
                    break;
                }
            }
        }
        Ok(out)
    }

    /// The size of a regular file as `at` sees it (live: with buffered writes); EISDIR for a
    /// directory, EINVAL for a special file.
    fn file_size(&self, at: FileAt) -> Result<u64, FsError> {
        let a = self.getattr(at.vol, at.view, at.ino)?;
        match a.kind {
            FileKind::File => Ok(a.size),
            FileKind::Dir => Err(FsError::IsDir),
            _ => Err(FsError::Invalid("copy from a special file")),
        }
    }

    /// Copies `len` bytes through the write buffer (read, then buffered writes), in pieces.
    #[allow(clippy::too_many_arguments)]
    fn copy_bytes(
        &self,
        src: FileAt,
        off_in: u64,
        dst_vol: VolumeId,
        dst: InodeNo,
        off_out: u64,
        len: u64,
        kill_priv: bool,
    ) -> Result<Copied, FsError> {
        let mut out = Copied::default();
        while out.bytes < len {
            let n = (len - out.bytes).min(PIECE) as u32;
            let data = self.read(src.vol, src.view, src.ino, off_in + out.bytes, n)?;
            if data.is_empty() {
                break;
            }
            let w = match self.write_buffered(dst_vol, dst, off_out + out.bytes, &data, kill_priv) {
                Ok(w) => w,
                Err(e) if out.bytes == 0 => return Err(e),
                Err(_) => break,
            };
            out.bytes += w.written as u64;
            out.killed |= w.killed;
            out.over_limit |= w.over_limit;
            if w.over_limit && out.bytes < len {
                // Never more than the limit buffered by one call.
                self.flush_over_limit(dst_vol)?;
                out.over_limit = false;
            }
            if (w.written as usize) < data.len() {
                break;
            }
        }
        Ok(out)
    }

    /// Shares `blocks` whole blocks of `src` from `off_in` (block aligned) as the blocks of
    /// `dst` from `off_out`, in one writer job under the destination volume's buffer lock;
    /// the destination grows to cover them.
    #[allow(clippy::too_many_arguments)]
    fn share_blocks(
        &self,
        src: FileAt,
        off_in: u64,
        dst_vol: VolumeId,
        dst: InodeNo,
        off_out: u64,
        blocks: u64,
        kill_priv: bool,
    ) -> Result<Copied, FsError> {
        let vs = self.vol_state(dst_vol)?;
        let bs = vs.block_size as u64;
        let mut dirty = vs.dirty.lock();
        if src.view == View::Live && src.vol == dst_vol {
            // Writes since the first flush: under the lock now, none can follow.
            self.flush_locked(dst_vol, &vs, &mut dirty, Some(src.ino))?;
        }
        self.flush_locked(dst_vol, &vs, &mut dirty, Some(dst))?;
        let (first_in, first_out) = (off_in / bs, off_out / bs);
        let end_out = off_out + blocks * bs;
        let now = Timestamp::now();
        let killed = self.write_op(move |tx| {
            // The source's blocks first (one file may be both sides, its ranges apart).
            if inode_in(tx, src.vol, src.view, src.ino)?.kind != FileKind::File {
                return Err(FsError::Invalid("copy from a special file"));
            }
            let mut rows: Vec<(u64, RowValue)> = Vec::new();
            tx.extents_from(src.vol, src.view, src.ino, first_in, |id, v| match id {
                RowId::Extent(_, b) if b < first_in + blocks => {
                    rows.push((b - first_in, v));
                    Ok(true)
                }
                _ => Ok(false),
            })?;
            let mut rec = tx.volume(dst_vol)?;
            let g = rec.gens();
            let mut inode = get_inode(tx, dst_vol, dst)?;
            if inode.kind != FileKind::File {
                return Err(FsError::Invalid("copy into a special file"));
            }
            inode.resizable(end_out.max(inode.size))?;
            let mut old: Vec<(u64, u64)> = Vec::new();
            tx.extents_from(dst_vol, View::Live, dst, first_out, |id, v| match id {
                RowId::Extent(_, b) if b < first_out + blocks => {
                    old.push((b - first_out, v.stored_len()));
                    Ok(true)
                }
                _ => Ok(false),
            })?;
            for &(k, len) in &old {
                inode.stored = inode.stored.saturating_sub(len);
                rec.stored_bytes = rec.stored_bytes.saturating_sub(len);
                if rows.binary_search_by_key(&k, |(b, _)| *b).is_err() {
                    tx.delete_row(&g, &RowId::Extent(dst, first_out + k))?;
                }
            }
            for (k, v) in rows {
                for (chunk, _) in v.chunks() {
                    tx.chunk_incref(chunk)?;
                }
                tx.put_row(&g, &RowId::Extent(dst, first_out + k), &v)?;
                inode.stored += v.stored_len();
                rec.stored_bytes += v.stored_len();
            }
            let killed = kill_priv && drop_privs(tx, &g, dst, &mut inode)?;
            if end_out > inode.size {
                rec.logical_bytes = (rec.logical_bytes + end_out).saturating_sub(inode.size);
                inode.size = end_out;
            }
            inode.mtime = now;
            inode.ctime = now;
            put_inode(tx, &g, dst, &inode)?;
            tx.put_volume(&rec)?;
            Ok(killed)
        })?;
        drop(dirty);
        Ok(Copied {
            bytes: blocks * bs,
            shared: blocks * bs,
            killed,
            over_limit: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::{Ctx, Engine, SetAttr};

    /// Pseudo-random bytes (no two blocks alike), none zero (nothing trims).
    fn pattern(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8 | 1
            })
            .collect()
    }

    fn file(e: &Engine, v: VolumeId, name: &[u8]) -> InodeNo {
        e.create(v, InodeNo::ROOT, name, 0o644, Ctx::default())
            .unwrap()
            .ino
    }

    fn live(vol: VolumeId, ino: InodeNo) -> FileAt {
        FileAt {
            vol,
            view: View::Live,
            ino,
        }
    }

    #[test]
    fn whole_blocks_are_shared_and_edges_copied_within_and_across_volumes() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let v = e.create_volume("v", Some(4096), Ctx::default()).unwrap().id;
        let w = e.create_volume("w", Some(4096), Ctx::default()).unwrap().id;
        let src = file(&e, v, b"src");
        let data = pattern(7, 5 * 4096 + 100);
        e.write(v, src, 0, &data[..3 * 4096]).unwrap();
        e.commit_all().unwrap();
        let before = e.pool_stats().unwrap().physical_bytes;
        // The rest only buffered: the copy must see it.
        e.write(v, src, 3 * 4096, &data[3 * 4096..]).unwrap();
        let read = |vol, ino, len| e.read(vol, View::Live, ino, 0, len).unwrap();
        // Across volumes first: nothing else has flushed the source yet.
        for (vol, name) in [(w, &b"in_w"[..]), (v, &b"in_v"[..])] {
            let dst = file(&e, vol, name);
            let c = e
                .copy_range(live(v, src), 0, vol, dst, 0, 1 << 40, false)
                .unwrap();
            assert_eq!(c.bytes, data.len() as u64, "copied up to the source's end");
            assert_eq!(c.shared, 5 * 4096, "whole blocks shared");
            assert_eq!(read(vol, dst, 1 << 20), data);
        }
        e.commit_all().unwrap();
        assert_eq!(
            e.pool_stats().unwrap().physical_bytes,
            before + 2 * 4096 + 100,
            "the source's last writes are stored once, the copies take no new space"
        );
        // Changing the source leaves the copies alone.
        e.write(v, src, 4096, &[0xEE; 5000]).unwrap();
        e.commit_all().unwrap();
        let in_w = e.lookup(w, View::Live, InodeNo::ROOT, b"in_w").unwrap().ino;
        assert_eq!(read(w, in_w, 1 << 20), data);

        // Unaligned edges (same alignment): head and tail copied, the middle shared.
        let dst = file(&e, v, b"edges");
        e.write(v, dst, 0, &[9; 3]).unwrap();
        let cur = read(v, src, 1 << 20);
        let c = e
            .copy_range(live(v, src), 10, v, dst, 4096 + 10, 3 * 4096, false)
            .unwrap();
        assert_eq!((c.bytes, c.shared), (3 * 4096, 2 * 4096));
        let mut want = vec![0u8; 4 * 4096 + 10];
        want[..3].fill(9);
        want[4096 + 10..].copy_from_slice(&cur[10..10 + 3 * 4096]);
        assert_eq!(read(v, dst, 1 << 20), want);

        // Different alignment: nothing shared, the bytes copied.
        let c = e
            .copy_range(live(v, src), 0, v, dst, 1, 2 * 4096, false)
            .unwrap();
        assert_eq!((c.bytes, c.shared), (2 * 4096, 0));
        assert_eq!(read(v, dst, 1 << 20)[1..1 + 2 * 4096], cur[..2 * 4096]);

        // Past the source's end: nothing; overlapping ranges of one file: EINVAL.
        let c = e.copy_range(live(v, src), 1 << 20, v, dst, 0, 10, false);
        assert_eq!(c.unwrap().bytes, 0);
        let c = e.copy_range(live(v, src), 0, v, src, 4096, 8192, false);
        assert_eq!(c.unwrap_err().errno(), libc::EINVAL);
        // One file, ranges apart: fine.
        let c = e.copy_range(live(v, src), 0, v, src, 8 * 4096, 8192, false);
        assert_eq!(c.unwrap().shared, 8192);
        assert_eq!(read(v, src, 1 << 20)[8 * 4096..], cur[..8192]);
    }

    #[test]
    fn a_copy_by_an_unprivileged_caller_drops_privileges() {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let v = e.create_volume("v", Some(4096), Ctx::default()).unwrap().id;
        let src = file(&e, v, b"src");
        e.write(v, src, 0, &pattern(1, 3 * 4096)).unwrap();
        let dst = file(&e, v, b"dst");
        let set = SetAttr {
            mode: Some(0o6777),
            ..Default::default()
        };
        e.setattr(v, dst, set).unwrap();
        let c = e
            .copy_range(live(v, src), 0, v, dst, 0, 3 * 4096, true)
            .unwrap();
        assert!(c.killed);
        assert_eq!(e.getattr(v, View::Live, dst).unwrap().perm, 0o777);
    }
}
