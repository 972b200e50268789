//! How a flushed block becomes its row: patches laid over the committed block, or one
//! whole chunk (see [`crate::store::rows`] for the row values). The flush decides with
//! [`patchable`] and writes with [`put_patched`] or [`put_whole`]; a truncate's new tail
//! block is written with [`put_whole`] too.
//!
//! Invariants: a patched row holds one reference per chunk it names, and patches that new
//! ones cover entirely are dropped (a page rewritten again and again keeps one); a row
//! nobody else sees hands its references over to its new version, one a snapshot still
//! sees keeps them.

use crate::store::StoreError;
use crate::store::chunks::NewChunk;
use crate::store::keys::RowId;
use crate::store::rows::{self, Patch, Patched, RowValue};

use super::error::FsError;

/// A block written in part gets patches (its written spans stored as they are, laid over
/// the committed block) instead of a read, merge and rewrite of the whole block, while the
/// block would then have at most this many patches and they would hold at most a block
/// size of bytes. Past either bound the block is merged and stored whole again: a small
/// write costs what it wrote, plus at most one rewrite of its block per `MAX_PATCHES`
/// flushes, and a read of a block at most `MAX_PATCHES + 1` chunks.
const MAX_PATCHES: usize = 16;

/// Does a patch `at..at+len` lie inside one of `spans`? (It is then dropped: fully
/// overwritten by the new patches.)
pub(super) fn covered(spans: &[(u32, u32)], at: u32, len: u32) -> bool {
    spans
        .iter()
        .any(|&(lo, hi)| lo <= at && at.saturating_add(len) <= hi)
}

/// Should the written `spans` of a block become patches over its committed value `cur`?
pub(super) fn patchable(cur: Option<&RowValue>, spans: &[(u32, u32)], block_size: u64) -> bool {
    let new_bytes: u64 = spans.iter().map(|&(lo, hi)| (hi - lo) as u64).sum();
    let (count, bytes) = match cur {
        // A hole: merging reads nothing, so the whole block is as cheap.
        None => return false,
        Some(RowValue::Extent { .. }) => (0, 0),
        Some(RowValue::Patched(p)) => p
            .patches
            .iter()
            .filter(|x| !covered(spans, x.at, x.len))
            .fold((0usize, 0u64), |(n, b), x| (n + 1, b + x.len as u64)),
        Some(_) => return false,
    };
    count + spans.len() <= MAX_PATCHES && bytes + new_bytes <= block_size
}

/// Lays `patches` over block row `id`, whose newest version is `latest` (as
/// [`crate::store::Tx::latest_row`] found it), and writes the row (patches the new ones
/// cover are dropped); returns the new value. References: when no snapshot sees the
/// replaced version, the new row takes over its references (only the dropped patches are
/// released); otherwise it takes its own.
pub(super) fn put_patched(
    tx: &mut crate::store::Tx<'_>,
    g: &crate::store::rows::Gens,
    id: &RowId,
    mut latest: Option<(crate::types::Generation, RowValue)>,
    patches: Vec<(u32, NewChunk)>,
) -> Result<RowValue, FsError> {
    let inherit = latest.as_ref().is_some_and(|(h, _)| rows::private(g, *h));
    let cur = latest
        .as_mut()
        .map(|(_, v)| std::mem::replace(v, RowValue::Tombstone));
    let mut p = match cur {
        None | Some(RowValue::Tombstone) => Patched::default(),
        Some(RowValue::Extent { chunk, len }) => Patched {
            base: Some((chunk, len)),
            patches: Vec::new(),
        },
        Some(RowValue::Patched(p)) => p,
        Some(_) => return Err(StoreError::Damaged("extent row has the wrong type".into()).into()),
    };
    let spans: Vec<(u32, u32)> = patches
        .iter()
        .map(|(at, c)| (*at, at + c.bytes.len() as u32))
        .collect();
    let (dropped, kept): (Vec<Patch>, Vec<Patch>) =
        p.patches.iter().partition(|x| covered(&spans, x.at, x.len));
    p.patches = kept;
    if inherit {
        for x in dropped {
            tx.chunk_unref(x.chunk)?;
        }
    } else {
        for (chunk, _) in p.chunks() {
            tx.chunk_incref(chunk)?;
        }
    }
    for (at, c) in patches {
        tx.chunk_ref(&c)?;
        p.patches.push(Patch {
            at,
            chunk: c.id,
            len: c.bytes.len() as u32,
        });
    }
    let v = RowValue::Patched(p);
    tx.put_row_over(g, id, &v, latest, inherit)?;
    Ok(v)
}

/// Writes block row `id` as one whole chunk (`None`: a hole, the row goes) and counts what it
/// stores into the inode and the volume (the caller took off what the old value stored).
pub(super) fn put_whole(
    tx: &mut crate::store::Tx<'_>,
    g: &crate::store::rows::Gens,
    id: &RowId,
    chunk: Option<NewChunk>,
    inode: &mut super::attr::Inode,
    rec: &mut crate::store::volumes::VolumeRecord,
) -> Result<(), FsError> {
    match chunk {
        Some(c) => {
            tx.chunk_ref(&c)?;
            let len = c.bytes.len() as u32;
            tx.put_row(g, id, &RowValue::Extent { chunk: c.id, len })?;
            inode.stored += len as u64;
            rec.stored_bytes += len as u64;
        }
        None => tx.delete_row(g, id)?,
    }
    Ok(())
}
