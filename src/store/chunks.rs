//! The chunk index: ChunkId -> where the body lives and how many rows reference it.
//!
//! Invariants: a chunk row exists iff its refcount is > 0; every extent row version (live
//! or snapshot) holds exactly one reference; the bytes at the recorded location hash to the
//! id (checked on every read: a mismatch is [`StoreError::Corrupt`], never silent data).

use std::io::IoSliceMut;

use redb::ReadableTable;

use super::error::StoreError;
use super::pack::{Loc, PackStore};
use super::writer::Tx;
use crate::types::ChunkId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRow {
    pub loc: Loc,
    pub refs: u64,
}

impl ChunkRow {
    pub fn encode(&self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[0..4].copy_from_slice(&self.loc.pack.to_le_bytes());
        b[4..8].copy_from_slice(&self.loc.len.to_le_bytes());
        b[8..16].copy_from_slice(&self.loc.offset.to_le_bytes());
        b[16..24].copy_from_slice(&self.refs.to_le_bytes());
        b
    }

    pub fn decode(b: [u8; 24]) -> ChunkRow {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        ChunkRow {
            loc: Loc {
                pack: u32_at(0),
                len: u32_at(4),
                offset: u64_at(8),
            },
            refs: u64_at(16),
        }
    }
}

/// A chunk body ready to be referenced: its id, its bytes, and where they were already
/// appended (None when the caller found the chunk already stored and wrote nothing).
pub struct NewChunk {
    pub id: ChunkId,
    pub bytes: ChunkBytes,
    pub appended: Option<Loc>,
}

/// A chunk's bytes: the first `len` bytes of a buffer that may be shared (a write buffer's
/// block, which a flush stores without copying it; the writer copies on write).
#[derive(Clone)]
pub struct ChunkBytes {
    buf: std::sync::Arc<Vec<u8>>,
    len: usize,
}

impl ChunkBytes {
    /// The first `len` bytes of a shared buffer (all of it when shorter).
    pub fn shared(buf: std::sync::Arc<Vec<u8>>, len: usize) -> ChunkBytes {
        let len = len.min(buf.len());
        ChunkBytes { buf, len }
    }

    /// Cuts the bytes to their first `len`.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

impl From<Vec<u8>> for ChunkBytes {
    fn from(v: Vec<u8>) -> ChunkBytes {
        let len = v.len();
        ChunkBytes {
            buf: std::sync::Arc::new(v),
            len,
        }
    }
}

impl std::ops::Deref for ChunkBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Tx<'_> {
    /// Adds one reference to `chunk`, storing its body if the pool does not have it yet.
    pub fn chunk_ref(&mut self, chunk: &NewChunk) -> Result<(), StoreError> {
        let existing = self
            .chunks
            .get(chunk.id.0)?
            .map(|v| ChunkRow::decode(v.value()));
        let len = chunk.bytes.len() as u64;
        match existing {
            Some(mut row) => {
                row.refs += 1;
                self.chunks.insert(chunk.id.0, row.encode())?;
            }
            None => {
                let loc = match chunk.appended {
                    Some(loc) => loc,
                    // Found stored when the caller looked, freed since: store it now.
                    None => self
                        .packs
                        .append(&chunk.bytes)
                        .map_err(|e| StoreError::io("pack append", e))?,
                };
                self.chunks
                    .insert(chunk.id.0, ChunkRow { loc, refs: 1 }.encode())?;
                let end = self.pack_ends.entry(loc.pack).or_insert(0);
                *end = (*end).max(loc.end());
                *self.pack_live.entry(loc.pack).or_insert(0) += len as i64;
                self.counters.physical += len;
            }
        }
        self.counters.referenced += len;
        Ok(())
    }

    /// Adds one reference to a chunk the pool already holds (e.g. a row copied to a clone).
    pub fn chunk_incref(&mut self, id: ChunkId) -> Result<(), StoreError> {
        let mut row = referenced_row(&self.chunks, id)?;
        row.refs += 1;
        self.chunks.insert(id.0, row.encode())?;
        self.counters.referenced += row.loc.len as u64;
        Ok(())
    }

    /// Drops one reference; the last one frees the chunk (its hole is punched after the
    /// next durable commit).
    pub fn chunk_unref(&mut self, id: ChunkId) -> Result<(), StoreError> {
        let mut row = referenced_row(&self.chunks, id)?;
        let len = row.loc.len as u64;
        self.counters.referenced = self.counters.referenced.saturating_sub(len);
        if row.refs <= 1 {
            self.chunks.remove(id.0)?;
            self.counters.physical = self.counters.physical.saturating_sub(len);
            *self.pack_live.entry(row.loc.pack).or_insert(0) -= len as i64;
            self.freed.push(row.loc);
        } else {
            row.refs -= 1;
            self.chunks.insert(id.0, row.encode())?;
        }
        Ok(())
    }
}

/// The row of a chunk something references: a missing one is damage.
fn referenced_row(
    table: &impl ReadableTable<[u8; 32], [u8; 24]>,
    id: ChunkId,
) -> Result<ChunkRow, StoreError> {
    table
        .get(id.0)?
        .map(|v| ChunkRow::decode(v.value()))
        .ok_or_else(|| StoreError::Damaged(format!("chunk {id} is referenced but not stored")))
}

/// Reads and verifies a chunk body.
pub(super) fn read<T: ReadableTable<[u8; 32], [u8; 24]>>(
    table: &T,
    packs: &PackStore,
    id: ChunkId,
) -> Result<Vec<u8>, StoreError> {
    let loc = referenced_row(table, id)?.loc;
    let mut buf = vec![0u8; loc.len as usize];
    packs
        .read(loc, &mut buf)
        .map_err(|e| StoreError::io(format!("pack {:08} (chunk {id})", loc.pack), e))?;
    verify(id, loc, &buf)?;
    Ok(buf)
}

/// A run of neighbouring chunks read with one call stops growing past this many bytes.
const MAX_RUN: u64 = 8 << 20;

/// Reads and verifies several chunk bodies, each into the start of its own buffer (which
/// must be at least the chunk's length; bytes past it are left as they are). Chunks that lie
/// next to each other in a pack are read with one vectored call, so reading a file that was
/// written in order costs a few large reads, not one small read per block.
pub(super) fn read_into<T: ReadableTable<[u8; 32], [u8; 24]>>(
    table: &T,
    packs: &PackStore,
    wanted: Vec<(ChunkId, &mut [u8])>,
) -> Result<(), StoreError> {
    let mut located = Vec::with_capacity(wanted.len());
    for (id, buf) in wanted {
        let loc = referenced_row(table, id)?.loc;
        let Some(body) = buf.get_mut(..loc.len as usize) else {
            return Err(StoreError::Damaged(format!(
                "chunk {id} ({} bytes) is longer than the block that references it",
                loc.len
            )));
        };
        located.push((loc, id, body));
    }
    located.sort_unstable_by_key(|(loc, ..)| (loc.pack, loc.offset));
    let mut rest = located.as_mut_slice();
    while let Some((first, _, _)) = rest.first() {
        let (pack, start) = (first.pack, first.offset);
        let mut n = 1;
        while let Some((next, ..)) = rest.get(n)
            && next.pack == pack
            && next.offset == rest[n - 1].0.end()
            && next.end() - start <= MAX_RUN
        {
            n += 1;
        }
        let (run, after) = rest.split_at_mut(n);
        // The alignment padding between neighbours is read into scratch buffers.
        let mut gaps: Vec<Vec<u8>> = run
            .iter()
            .take(n - 1)
            .map(|(loc, ..)| vec![0u8; (loc.end() - loc.offset - loc.len as u64) as usize])
            .collect();
        let mut gaps = gaps.iter_mut();
        let mut iov = Vec::with_capacity(2 * n);
        for (_, _, body) in run.iter_mut() {
            iov.push(IoSliceMut::new(body));
            if let Some(gap) = gaps.next()
                && !gap.is_empty()
            {
                iov.push(IoSliceMut::new(gap));
            }
        }
        packs
            .read_vectored(pack, start, &mut iov)
            .map_err(|e| StoreError::io(format!("pack {pack:08} at {start}"), e))?;
        drop(iov);
        for (loc, id, body) in run.iter() {
            verify(*id, *loc, body)?;
        }
        rest = after;
    }
    Ok(())
}

/// Checks that bytes read from `loc` hash to `id`.
fn verify(id: ChunkId, loc: Loc, bytes: &[u8]) -> Result<(), StoreError> {
    if ChunkId::of(bytes) != id {
        tracing::error!(
            "chunk {id} in pack {:08} at {} fails its hash check",
            loc.pack,
            loc.offset
        );
        return Err(StoreError::Corrupt { id });
    }
    Ok(())
}
