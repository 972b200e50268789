//! One buffered block: the bytes written to one block of a file since its last flush.
//!
//! A buffer holds one range of its block, `start..end`, and nothing outside it: what lies
//! outside is the block's background, zeros for a block buffered whole, the committed
//! block for a block buffered in part (`DirtyFile::partial`, whose spans also say which
//! bytes inside the range were written). So a 4 KiB write in the middle of a large block
//! holds 4 KiB, not the block's first bytes up to it: the dirty limit counts what was
//! written, and no zeros are allocated, filled and copied on the write path.
//!
//! The bytes are shared on clone (copy on write): a flush takes a clone of every buffer it
//! stores, which costs a reference count under the buffer lock, and builds the images from
//! it with the lock let go; a writer that writes to the block meanwhile copies it first.
//!
//! Invariant: `bytes` is empty or lies entirely inside the block (`end` <= block size).

use std::sync::Arc;

use crate::store::chunks::ChunkBytes;

/// See the module docs.
#[derive(Debug, Default, Clone)]
pub(crate) struct BlockBuf {
    start: u32,
    bytes: Arc<Vec<u8>>,
}

impl BlockBuf {
    /// A buffer holding `bytes` from the start of the block.
    pub fn whole(bytes: Vec<u8>) -> BlockBuf {
        BlockBuf {
            start: 0,
            bytes: Arc::new(bytes),
        }
    }

    /// Bytes held: what the buffer costs, and what the dirty limit counts.
    pub fn held(&self) -> usize {
        self.bytes.len()
    }

    /// Where the held range ends in the block (0 when nothing is held).
    pub fn end(&self) -> usize {
        if self.bytes.is_empty() {
            0
        } else {
            self.start as usize + self.bytes.len()
        }
    }

    /// Writes `src` at offset `at` of the block; returns how many more bytes it holds.
    pub fn write(&mut self, at: usize, src: &[u8]) -> usize {
        let before = self.bytes.len();
        let hi = at + src.len();
        if self.bytes.is_empty() {
            self.start = at as u32;
            self.bytes = Arc::new(src.to_vec());
            return src.len();
        }
        let (start, end) = (self.start as usize, self.end());
        let bytes = Arc::make_mut(&mut self.bytes);
        if at < start {
            // Grows downwards (rare: a block written back to front): one new range.
            let mut v = vec![0u8; end.max(hi) - at];
            v[start - at..end - at].copy_from_slice(bytes);
            v[..src.len()].copy_from_slice(src);
            self.start = at as u32;
            *bytes = v;
        } else if at >= end {
            // Appends, possibly past a gap of zeros: a sequential writer copies once.
            bytes.resize(at - start, 0);
            bytes.extend_from_slice(src);
        } else {
            if hi > end {
                bytes.resize(hi - start, 0);
            }
            bytes[at - start..hi - start].copy_from_slice(src);
        }
        self.bytes.len() - before
    }

    /// Copies what the buffer holds of the block's bytes `at..at + dst.len()` into `dst`
    /// (`dst[i]` is byte `at + i`); bytes of `dst` outside the held range are left alone.
    pub fn copy_out(&self, at: usize, dst: &mut [u8]) {
        let start = self.start as usize;
        let lo = at.max(start);
        let hi = (at + dst.len()).min(self.end());
        if lo < hi {
            dst[lo - at..hi - at].copy_from_slice(&self.bytes[lo - start..hi - start]);
        }
    }

    /// The block's bytes `lo..hi` as the buffer has them (zeros where it holds nothing).
    pub fn range(&self, lo: usize, hi: usize) -> Vec<u8> {
        let mut out = vec![0u8; hi.saturating_sub(lo)];
        self.copy_out(lo, &mut out);
        out
    }

    /// The block's first `valid` bytes with the background taken as zeros, cut where the
    /// held range ends (the rest is zero): what a block buffered whole stores.
    pub fn image(&self, valid: usize) -> ChunkBytes {
        let end = self.end().min(valid);
        if self.start == 0 {
            // The buffer itself, shared: a flush hashes and appends it without a copy.
            return ChunkBytes::shared(self.bytes.clone(), end);
        }
        self.range(0, end).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes laid over a zeroed image, the way a buffer must read them back.
    fn check(writes: &[(usize, &[u8])]) {
        let mut b = BlockBuf::default();
        let mut image = vec![0u8; 64];
        let mut held = 0;
        for &(at, src) in writes {
            held += b.write(at, src);
            image[at..at + src.len()].copy_from_slice(src);
        }
        assert_eq!(held, b.held(), "{writes:?}: growth adds up to what is held");
        assert_eq!(b.range(0, 64), image, "{writes:?}");
        assert_eq!(*b.image(64), image[..b.end()], "{writes:?}");
        assert_eq!(b.range(3, 40), image[3..40], "{writes:?}");
        let mut dst = vec![7u8; 10];
        b.copy_out(20, &mut dst);
        for (i, &x) in dst.iter().enumerate() {
            let want = if (b.end() - b.held()..b.end()).contains(&(20 + i)) {
                image[20 + i]
            } else {
                7
            };
            assert_eq!(x, want, "{writes:?}: byte {} of copy_out", 20 + i);
        }
    }

    #[test]
    fn a_buffer_holds_only_the_range_written_and_reads_back_the_block() {
        check(&[(10, b"abcd")]);
        check(&[(0, b"abcd"), (4, b"efgh"), (8, b"ij")]);
        check(&[(30, b"xyz"), (10, b"abc")]);
        check(&[(30, b"xyz"), (28, b"abcdefgh")]);
        check(&[(20, b"0123456789"), (22, b"ab"), (25, b"cdefghijklmn")]);
        check(&[(50, b"late"), (5, b"early"), (40, b"mid")]);
        let mut b = BlockBuf::default();
        b.write(4000, &[1; 96]);
        assert_eq!(
            (b.held(), b.end()),
            (96, 4096),
            "a write at the end holds its bytes only"
        );
    }
}
