//! lseek(2) SEEK_DATA and SEEK_HOLE, answered from a file's block map: so `cp --sparse`,
//! tar and backup tools skip holes without reading them.
//!
//! Granularity is the volume's block: a block is data when it has a committed extent row
//! (a chunk, patched or not) or, in the live view, a buffered block; every other block is a
//! hole (an all-zero block stores nothing, see `data`). The end of the file is a hole.
//!
//! Invariant: the answer is taken under the volume's buffer lock (live view), so the
//! buffered blocks and the committed rows it looks at are one state: a flush commits a
//! block's row before it drops the block from the buffer, and a block moves from one to the
//! other only under that lock (see `flush::settle`).

use std::collections::BTreeSet;

use crate::store::ReadView;
use crate::store::keys::RowId;
use crate::store::rows::View;
use crate::types::{InodeNo, VolumeId};

use super::Inner;
use super::attr::FileKind;
use super::error::FsError;

/// What lseek(2) looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seek {
    /// SEEK_DATA: the first byte of data at or after the offset.
    Data,
    /// SEEK_HOLE: the first byte of a hole at or after the offset (the end of the file at
    /// the latest).
    Hole,
}

impl Seek {
    /// From lseek's `whence`; `None` for the kinds the kernel answers itself.
    pub fn from_whence(whence: i32) -> Option<Seek> {
        match whence {
            libc::SEEK_DATA => Some(Seek::Data),
            libc::SEEK_HOLE => Some(Seek::Hole),
            _ => None,
        }
    }
}

impl Inner {
    /// SEEK_DATA / SEEK_HOLE from `offset` in file `ino` as `view` sees it (live: with its
    /// buffered writes). ENXIO when `offset` is at or past the end of the file, or (data)
    /// when no data follows it.
    pub fn seek(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
        offset: u64,
        what: Seek,
    ) -> Result<u64, FsError> {
        let vs = self.vol_state(vol)?;
        let bs = vs.block_size as u64;
        // The live view looks at the buffer and the rows under the buffer lock (see the
        // module docs); a snapshot view has no buffer.
        let dirty = (view == View::Live).then(|| vs.dirty.lock());
        let buffered = dirty.as_ref().and_then(|d| d.files.get(&ino));
        let (r, inode) = self.read_inode(vol, view, ino)?;
        match inode.kind {
            FileKind::File => {}
            FileKind::Dir => return Err(FsError::IsDir),
            _ => return Err(FsError::Invalid("seek in a special file")),
        }
        let size = buffered.map_or(inode.size, |f| f.size);
        if offset >= size {
            return Err(FsError::NoOffset);
        }
        let first = offset / bs;
        let held: BTreeSet<u64> = buffered
            .map(|f| f.blocks.range(first..).map(|(&b, _)| b).collect())
            .unwrap_or_default();
        let block = match what {
            Seek::Data => {
                let mut stored = None;
                r.extents_from(vol, view, ino, first, |id, _| {
                    if let RowId::Extent(_, b) = id {
                        stored = Some(b);
                    }
                    Ok(false)
                })?;
                match (stored, held.first().copied()) {
                    (Some(a), Some(b)) => a.min(b),
                    (Some(a), None) | (None, Some(a)) => a,
                    (None, None) => return Err(FsError::NoOffset),
                }
            }
            Seek::Hole => {
                // Walk the data blocks from `first` in order until one is missing.
                let mut next = first;
                r.extents_from(vol, view, ino, first, |id, _| {
                    let RowId::Extent(_, b) = id else {
                        return Ok(false);
                    };
                    while next < b && held.contains(&next) {
                        next += 1;
                    }
                    if next < b || next.saturating_mul(bs) >= size {
                        return Ok(false);
                    }
                    next = b + 1;
                    Ok(true)
                })?;
                while held.contains(&next) {
                    next += 1;
                }
                next
            }
        };
        let at = block.saturating_mul(bs).max(offset);
        match what {
            Seek::Data if at >= size => Err(FsError::NoOffset),
            Seek::Data => Ok(at),
            Seek::Hole => Ok(at.min(size)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::Engine;

    #[test]
    fn data_and_holes_come_from_the_block_map_and_the_buffer() {
        let (_dir, e, v, f) = crate::fs::tests::engine_with_file(0o644);
        let seek = |off, what| e.seek(v, View::Live, f, off, what);
        let nxio = |r: Result<u64, FsError>| r.expect_err("ENXIO").errno() == libc::ENXIO;
        assert!(nxio(seek(0, Seek::Data)), "an empty file has no data");
        // Blocks 1 and 2 committed, block 5 buffered, size 6 blocks + 100.
        e.write(v, f, 4096, &[1; 8192]).unwrap();
        e.commit_all().unwrap();
        e.write(v, f, 5 * 4096 + 10, b"x").unwrap();
        e.write(v, f, 6 * 4096 + 99, b"\0").unwrap();
        let size = 6 * 4096 + 100;
        assert_eq!(e.getattr(v, View::Live, f).unwrap().size, size);
        let check = |e: &Engine, buffered: bool| {
            let seek = |off, what| e.seek(v, View::Live, f, off, what);
            assert_eq!(seek(0, Seek::Data).unwrap(), 4096);
            assert_eq!(seek(0, Seek::Hole).unwrap(), 0);
            assert_eq!(seek(5000, Seek::Data).unwrap(), 5000);
            assert_eq!(seek(5000, Seek::Hole).unwrap(), 3 * 4096);
            assert_eq!(seek(3 * 4096, Seek::Data).unwrap(), 5 * 4096);
            // Block 6 holds only a zero: a hole, and data ends there.
            if buffered {
                // Buffered, it is data until the flush finds it all zero.
                assert_eq!(seek(6 * 4096, Seek::Data).unwrap(), 6 * 4096);
                assert_eq!(seek(5 * 4096, Seek::Hole).unwrap(), size);
            } else {
                assert!(
                    nxio(seek(6 * 4096, Seek::Data)),
                    "a zero block stores nothing"
                );
                assert_eq!(seek(size - 1, Seek::Hole).unwrap(), size - 1);
            }
            assert!(nxio(seek(size, Seek::Data)));
            assert!(nxio(seek(size, Seek::Hole)));
        };
        check(&e, true);
        e.commit_all().unwrap();
        check(&e, false);
        assert_eq!(seek(5 * 4096, Seek::Hole).unwrap(), 6 * 4096);
        assert_eq!(
            e.seek(v, View::Live, InodeNo::ROOT, 0, Seek::Data)
                .unwrap_err()
                .errno(),
            libc::EISDIR
        );
    }
}
