//! Hole punching and zeroing (fallocate PUNCH_HOLE and ZERO_RANGE, see `fallocate`): the
//! blocks wholly inside the range lose their rows (and so their chunk references: space
//! goes back to the pool once no snapshot or other file shares the chunk), and a block the
//! range covers in part is rewritten with that part zeroed (trimmed and stored as any
//! block; all zeros: a hole).
//!
//! Invariants: like a truncate, one writer job under the volume's buffer lock, with the
//! file's buffered writes committed first and no flush of the volume in flight, so the
//! committed blocks it reads and rewrites cannot change meanwhile (see `flush`); the
//! partial blocks' new chunks are admitted by `space` before they are appended (ENOSPC
//! before anything changes); bytes past the end of the file stay zero. An ordinary (not
//! replayable) commit: an fsync afterwards commits durably (see `intent`).

use crate::store::ReadView;
use crate::store::chunks::NewChunk;
use crate::store::keys::RowId;
use crate::store::rows::View;
use crate::types::{InodeNo, VolumeId};

use super::Inner;
use super::attr::{FileKind, Timestamp};
use super::error::FsError;
use super::patch::put_whole;
use super::txops::{drop_privs, get_inode, put_inode};

impl Inner {
    /// Zeroes `[offset, end)` of file `ino`: whole blocks become holes, partial ones are
    /// rewritten. With `grow` (ZERO_RANGE without KEEP_SIZE) the file grows to `end`. With
    /// `kill_priv` the file's privileges are dropped; returns whether it had any.
    pub(super) fn punch(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        offset: u64,
        end: u64,
        grow: bool,
        kill_priv: bool,
    ) -> Result<bool, FsError> {
        if grow && end > super::MAX_FILE_SIZE {
            return Err(FsError::FileTooBig);
        }
        let vs = self.vol_state(vol)?;
        let bs = vs.block_size as u64;
        let mut dirty = vs.dirty.lock();
        self.flush_locked(vol, &vs, &mut dirty, Some(ino))?;
        let (r, inode) = self.read_inode(vol, View::Live, ino)?;
        match inode.kind {
            FileKind::File => {}
            FileKind::Dir => return Err(FsError::IsDir),
            _ => return Err(FsError::Invalid("fallocate of a special file")),
        }
        // Only blocks inside the file hold anything (past its end, bytes are zero).
        let stop = end.min(inode.size);
        let (mut whole, mut parts) = (None, Vec::new());
        if offset < stop {
            let (lo, hi) = (offset / bs, (stop - 1) / bs);
            // A block the range covers up to the file's end needs no rewrite.
            let covered = |b: u64| b * bs >= offset && ((b + 1) * bs).min(inode.size) <= end;
            let (a, z) = (
                if covered(lo) { lo } else { lo + 1 },
                if covered(hi) {
                    Some(hi)
                } else {
                    hi.checked_sub(1)
                },
            );
            parts = [lo, hi]
                .into_iter()
                .filter(|&b| !covered(b))
                .collect::<std::collections::BTreeSet<u64>>()
                .into_iter()
                .collect();
            whole = z.filter(|&z| a <= z).map(|z| (a, z));
        }
        // The rewritten blocks' chunks are appended before the commit: admitted first.
        let charged = parts.len() as u64 * bs;
        if !self.space.admit(charged) {
            return Err(FsError::NoSpace);
        }
        let edges = parts
            .into_iter()
            .map(|b| Ok((b, self.zeroed(&r, vol, ino, b, bs, offset, end)?)))
            .collect::<Result<Vec<_>, FsError>>();
        drop(r);
        let edges = match edges {
            Ok(e) => e,
            Err(e) => {
                self.space.release(charged);
                return Err(e);
            }
        };
        let now = Timestamp::now();
        let res = self.write_op(move |tx| {
            let mut rec = tx.volume(vol)?;
            let g = rec.gens();
            let mut inode = get_inode(tx, vol, ino)?;
            let killed = kill_priv && drop_privs(tx, &g, ino, &mut inode)?;
            if let Some((a, z)) = whole {
                let mut cut = Vec::new();
                tx.extents_from(vol, View::Live, ino, a, |id, v| match id {
                    RowId::Extent(_, b) if b <= z => {
                        cut.push((id, v.stored_len()));
                        Ok(true)
                    }
                    _ => Ok(false),
                })?;
                for (id, len) in cut {
                    inode.stored = inode.stored.saturating_sub(len);
                    rec.stored_bytes = rec.stored_bytes.saturating_sub(len);
                    tx.delete_row(&g, &id)?;
                }
            }
            for (b, chunk) in edges {
                let id = RowId::Extent(ino, b);
                if let Some(v) = tx.row(vol, &id, View::Live)? {
                    inode.stored = inode.stored.saturating_sub(v.stored_len());
                    rec.stored_bytes = rec.stored_bytes.saturating_sub(v.stored_len());
                }
                put_whole(tx, &g, &id, chunk, &mut inode, &mut rec)?;
            }
            if grow && end > inode.size {
                inode.resizable(end)?;
                rec.logical_bytes = (rec.logical_bytes + end).saturating_sub(inode.size);
                inode.size = end;
            }
            inode.mtime = now;
            inode.ctime = now;
            put_inode(tx, &g, ino, &inode)?;
            tx.put_volume(&rec)?;
            Ok(killed)
        });
        self.space.release(charged);
        drop(dirty);
        res
    }

    /// Committed block `b` with its bytes inside `[offset, end)` zeroed, hashed and
    /// appended as the block's new chunk (`None`: it is a hole now, or was one).
    #[allow(clippy::too_many_arguments)]
    fn zeroed(
        &self,
        r: &crate::store::Reader<'_>,
        vol: VolumeId,
        ino: InodeNo,
        b: u64,
        bs: u64,
        offset: u64,
        end: u64,
    ) -> Result<Option<NewChunk>, FsError> {
        let Some(mut bytes) = self.read_block(r, vol, View::Live, ino, b)? else {
            return Ok(None);
        };
        let lo = (offset.max(b * bs) - b * bs) as usize;
        let hi = (end.min((b + 1) * bs) - b * bs) as usize;
        let hi = hi.min(bytes.len());
        if lo < hi {
            bytes[lo..hi].fill(0);
        }
        let mut chunk = self.prepare_chunk(bytes.into());
        self.append_missing(r, chunk.as_mut())?;
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use crate::fs::Engine;
    use crate::fs::fallocate::Allocate;
    use crate::fs::seek::Seek;
    use crate::store::rows::View;

    #[test]
    fn punched_and_zeroed_ranges_read_zeros_and_return_space() {
        let (_dir, e, v, f) = crate::fs::tests::engine_with_file(0o644);
        let mut model: Vec<u8> = (0..6 * 4096).map(|i| (i % 251) as u8 | 1).collect();
        e.write(v, f, 0, &model).unwrap();
        e.commit_all().unwrap();
        let stored = |e: &Engine| e.volume_info("v").unwrap().physical_bytes;
        let before = stored(&e);
        let punch = Allocate::from_mode(libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE);
        // Partly buffered: the punch sees the write.
        e.write(v, f, 2 * 4096, &[5; 10]).unwrap();
        e.fallocate(v, f, 100, 3 * 4096 + 50 - 100, punch.unwrap(), false)
            .unwrap();
        model[100..3 * 4096 + 50].fill(0);
        assert_eq!(e.read(v, View::Live, f, 0, 1 << 20).unwrap(), model);
        assert_eq!(e.getattr(v, View::Live, f).unwrap().size, 6 * 4096);
        assert!(stored(&e) <= before - 2 * 4096, "two whole blocks dropped");
        assert_eq!(e.seek(v, View::Live, f, 0, Seek::Hole).unwrap(), 4096);
        assert_eq!(
            e.seek(v, View::Live, f, 4096, Seek::Data).unwrap(),
            3 * 4096
        );

        // Zeroing past the end grows the file (not with KEEP_SIZE).
        let zero = Allocate::from_mode(libc::FALLOC_FL_ZERO_RANGE).unwrap();
        e.fallocate(v, f, 5 * 4096 + 7, 4096, zero, false).unwrap();
        model[5 * 4096 + 7..].fill(0);
        model.resize(6 * 4096 + 7, 0);
        assert_eq!(e.read(v, View::Live, f, 0, 1 << 20).unwrap(), model);
        let keep = Allocate::from_mode(libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE);
        e.fallocate(v, f, 0, 1 << 20, keep.unwrap(), false).unwrap();
        assert_eq!(
            e.read(v, View::Live, f, 0, 1 << 20).unwrap(),
            vec![0; model.len()]
        );
        assert_eq!(stored(&e), 0, "every block a hole");
        for mode in [
            libc::FALLOC_FL_COLLAPSE_RANGE,
            libc::FALLOC_FL_INSERT_RANGE,
            libc::FALLOC_FL_PUNCH_HOLE,
        ] {
            let err = Allocate::from_mode(mode).unwrap_err();
            assert_eq!(err.errno(), libc::EOPNOTSUPP, "mode {mode:#x}");
        }
    }
}
