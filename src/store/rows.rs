//! Versioned metadata rows (`rows` table) and the change index (`changes` table).
//!
//! A row value is a tag byte and a payload: 0 tombstone; 1 inode (opaque bytes, encoded by
//! `crate::fs`); 2 directory entry (ino u64 LE, kind u8); 3 extent (ChunkId 32 bytes, stored
//! length u32 LE); 4 xattr value (bytes); 5 patched extent (since schema 3): has-base u8
//! (0 or 1), then the base as in 3 if present, then patch count u16 LE and per patch:
//! offset in the block u32 LE, ChunkId 32 bytes, length u32 LE.
//!
//! A block's bytes are its base chunk (trailing zeros trimmed; absent: zeros) with each
//! patch's chunk laid over it at its offset, in order (a later patch wins where two
//! overlap). Patches let a small write into a large block store what it wrote instead of
//! the whole block; the flush folds them back into one chunk past a bound (see
//! `crate::fs::flush`). Every chunk a version names holds one reference, once per mention.
//!
//! Writes happen at a volume's current generation `cur`. Invariants:
//! - a version at generation h is kept only while a view can see it: the live view (it is the
//!   newest) or a snapshot generation s with h <= s < next version's generation. Since every
//!   snapshot generation is < `cur`, a superseded version at h > `last_snap` is dropped at once;
//! - dropping a version releases what it holds (an extent's chunk reference);
//! - deleting a row some snapshot still sees writes a tombstone at `cur`;
//! - every put/delete records `(vol, cur, row)` in the change index, so the rows that differ
//!   between two generations are found in O(changes);
//! - a layered clone's rows lie over its origin's (see [`super::layers`]): its writes see the
//!   lower value as a version at generation 0, and deleting a row only the lower layer shows
//!   writes a tombstone.

use redb::ReadableTable;

use super::error::StoreError;
use super::keys::{self, RowId};
use super::writer::Tx;
use crate::types::{ChunkId, Generation, InodeNo, VolumeId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowValue {
    Tombstone,
    Inode(Vec<u8>),
    Dirent { ino: InodeNo, kind: u8 },
    Extent { chunk: ChunkId, len: u32 },
    Xattr(Vec<u8>),
    Patched(Patched),
}

/// One patch of a [`Patched`] extent: `len` bytes (the chunk's) at `at` in the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patch {
    pub at: u32,
    pub chunk: ChunkId,
    pub len: u32,
}

/// A block stored as a base chunk with small chunks laid over it (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Patched {
    pub base: Option<(ChunkId, u32)>,
    pub patches: Vec<Patch>,
}

impl Patched {
    /// Every chunk it names with its length: the base, then each patch.
    pub fn chunks(&self) -> impl Iterator<Item = (ChunkId, u32)> + '_ {
        self.base
            .into_iter()
            .chain(self.patches.iter().map(|x| (x.chunk, x.len)))
    }

    /// Bytes of the block the base and the patches reach (the rest of the block is zero).
    pub fn reach(&self) -> u32 {
        let b = self.base.map_or(0, |(_, l)| l);
        self.patches
            .iter()
            .map(|p| p.at.saturating_add(p.len))
            .fold(b, u32::max)
    }
}

impl RowValue {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            RowValue::Tombstone => vec![0],
            RowValue::Inode(b) => [&[1u8][..], b].concat(),
            RowValue::Dirent { ino, kind } => {
                let mut v = vec![2];
                v.extend_from_slice(&ino.0.to_le_bytes());
                v.push(*kind);
                v
            }
            RowValue::Extent { chunk, len } => {
                let mut v = vec![3];
                v.extend_from_slice(&chunk.0);
                v.extend_from_slice(&len.to_le_bytes());
                v
            }
            RowValue::Xattr(b) => [&[4u8][..], b].concat(),
            RowValue::Patched(p) => {
                let mut v = Vec::with_capacity(40 + 40 * p.patches.len());
                v.push(5);
                match p.base {
                    Some((chunk, len)) => {
                        v.push(1);
                        v.extend_from_slice(&chunk.0);
                        v.extend_from_slice(&len.to_le_bytes());
                    }
                    None => v.push(0),
                }
                v.extend_from_slice(&(p.patches.len() as u16).to_le_bytes());
                for x in &p.patches {
                    v.extend_from_slice(&x.at.to_le_bytes());
                    v.extend_from_slice(&x.chunk.0);
                    v.extend_from_slice(&x.len.to_le_bytes());
                }
                v
            }
        }
    }

    /// Every chunk this value references with its stored length, once per mention (an
    /// extent's chunk; a patched extent's base and patches; nothing for other rows).
    pub fn chunks(&self) -> Vec<(ChunkId, u32)> {
        match self {
            RowValue::Extent { chunk, len } => vec![(*chunk, *len)],
            RowValue::Patched(p) => p.chunks().collect(),
            _ => Vec::new(),
        }
    }

    /// Is this a file block (an extent, patched or not)?
    pub fn is_extent(&self) -> bool {
        matches!(self, RowValue::Extent { .. } | RowValue::Patched(_))
    }

    /// Bytes of chunks this value references (what `stored` counts for a block).
    pub fn stored_len(&self) -> u64 {
        self.chunks().iter().map(|&(_, l)| l as u64).sum()
    }

    pub fn decode(b: &[u8]) -> Result<RowValue, StoreError> {
        let bad = || StoreError::Damaged("malformed metadata row".into());
        let (&tag, rest) = b.split_first().ok_or_else(bad)?;
        Ok(match tag {
            0 => RowValue::Tombstone,
            1 => RowValue::Inode(rest.to_vec()),
            2 if rest.len() == 9 => RowValue::Dirent {
                ino: InodeNo(u64::from_le_bytes(rest[..8].try_into().map_err(|_| bad())?)),
                kind: rest[8],
            },
            3 if rest.len() == 36 => RowValue::Extent {
                chunk: ChunkId(rest[..32].try_into().map_err(|_| bad())?),
                len: u32::from_le_bytes(rest[32..].try_into().map_err(|_| bad())?),
            },
            4 => RowValue::Xattr(rest.to_vec()),
            5 => RowValue::Patched(decode_patched(rest).ok_or_else(bad)?),
            _ => return Err(bad()),
        })
    }
}

fn decode_patched(b: &[u8]) -> Option<Patched> {
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
    };
    let id_at =
        |at: usize| -> Option<ChunkId> { Some(ChunkId(b.get(at..at + 32)?.try_into().ok()?)) };
    let (base, mut at) = match *b.first()? {
        0 => (None, 1),
        1 => (Some((id_at(1)?, u32_at(33)?)), 37),
        _ => return None,
    };
    let n = u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize;
    at += 2;
    if b.len() != at + n * 40 {
        return None;
    }
    let mut patches = Vec::with_capacity(n);
    for _ in 0..n {
        patches.push(Patch {
            at: u32_at(at)?,
            chunk: id_at(at + 4)?,
            len: u32_at(at + 36)?,
        });
        at += 40;
    }
    Some(Patched { base, patches })
}

/// Does [`Tx::put_row`] drop a row's newest version written at `h` (no snapshot sees it)?
pub fn private(g: &Gens, h: Generation) -> bool {
    h == g.cur || h > g.last_snap
}

/// Which generation a read looks at: the live volume or a recorded snapshot generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    Live,
    At(Generation),
}

/// Generation bookkeeping of one volume, as the row code needs it.
#[derive(Debug, Clone, Copy)]
pub struct Gens {
    pub vol: VolumeId,
    pub cur: Generation,
    /// Newest snapshot generation of the volume (0: none).
    pub last_snap: Generation,
}

fn upper(prefix: &[u8], view: View) -> Vec<u8> {
    match view {
        View::Live => keys::prefix_end(prefix),
        View::At(g) => keys::versioned(prefix, Generation(g.0.saturating_add(1))),
    }
}

/// The version of one row a view sees, a tombstone included (`None`: the row has no version
/// at or below the view's generation).
pub(super) fn version<T: ReadableTable<&'static [u8], &'static [u8]>>(
    t: &T,
    prefix: &[u8],
    view: View,
) -> Result<Option<RowValue>, StoreError> {
    let lo = keys::versioned(prefix, Generation(0));
    let hi = upper(prefix, view);
    let mut range = t.range::<&[u8]>(lo.as_slice()..hi.as_slice())?;
    match range.next_back() {
        Some(e) => {
            let (_, v) = e?;
            Ok(Some(RowValue::decode(v.value())?))
        }
        None => Ok(None),
    }
}

/// Visits, in key order, every row under `prefix` whose key is >= `start` (both without
/// generation), as the view sees it; tombstoned rows are skipped. `visit` returns false to stop.
pub(super) fn scan<T: ReadableTable<&'static [u8], &'static [u8]>>(
    t: &T,
    prefix: &[u8],
    start: &[u8],
    view: View,
    mut visit: impl FnMut(RowId, RowValue) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    let end = keys::prefix_end(prefix);
    let start = if start < prefix { prefix } else { start };
    let mut cur: Option<(Vec<u8>, Option<RowValue>)> = None;
    let emit = |row: (Vec<u8>, Option<RowValue>),
                visit: &mut dyn FnMut(RowId, RowValue) -> Result<bool, StoreError>|
     -> Result<bool, StoreError> {
        match row.1 {
            Some(RowValue::Tombstone) | None => Ok(true),
            Some(v) => {
                let id = RowId::decode_body(&row.0[8..])
                    .ok_or_else(|| StoreError::Damaged("malformed row key".into()))?;
                visit(id, v)
            }
        }
    };
    for e in t.range::<&[u8]>(start..end.as_slice())? {
        let (k, v) = e?;
        let (p, g) = keys::split_version(k.value())
            .ok_or_else(|| StoreError::Damaged("short row key".into()))?;
        if cur.as_ref().is_some_and(|(cp, _)| cp.as_slice() != p)
            && let Some(done) = cur.take()
            && !emit(done, &mut visit)?
        {
            return Ok(());
        }
        let entry = cur.get_or_insert_with(|| (p.to_vec(), None));
        if view == View::Live || matches!(view, View::At(s) if g <= s) {
            entry.1 = Some(RowValue::decode(v.value())?);
        }
    }
    if let Some(done) = cur.take() {
        emit(done, &mut visit)?;
    }
    Ok(())
}

/// The rows of `vol` recorded as changed at generations in `(after, upto]`.
pub(super) fn changed<T: ReadableTable<&'static [u8], ()>>(
    t: &T,
    vol: VolumeId,
    after: Generation,
    upto: Generation,
) -> Result<Vec<RowId>, StoreError> {
    let lo = keys::change_gen_prefix(vol, Generation(after.0 + 1));
    let hi = keys::change_gen_prefix(vol, Generation(upto.0.saturating_add(1)));
    let mut out = Vec::new();
    for e in t.range::<&[u8]>(lo.as_slice()..hi.as_slice())? {
        let (k, _) = e?;
        let id = RowId::decode_body(&k.value()[16..])
            .ok_or_else(|| StoreError::Damaged("malformed change key".into()))?;
        out.push(id);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

impl Tx<'_> {
    /// Newest version of a row: (generation, value).
    pub(crate) fn latest_version(
        &self,
        prefix: &[u8],
    ) -> Result<Option<(Generation, RowValue)>, StoreError> {
        let lo = keys::versioned(prefix, Generation(0));
        let hi = keys::prefix_end(prefix);
        let mut range = self.rows.range::<&[u8]>(lo.as_slice()..hi.as_slice())?;
        match range.next_back() {
            Some(e) => {
                let (k, v) = e?;
                let (_, g) = keys::split_version(k.value())
                    .ok_or_else(|| StoreError::Damaged("short row key".into()))?;
                Ok(Some((g, RowValue::decode(v.value())?)))
            }
            None => Ok(None),
        }
    }

    /// The two newest versions of a row, newest first, in one range scan (what
    /// [`Tx::delete_row`] needs: the version it drops and the one that then shows).
    fn latest_two(&self, prefix: &[u8]) -> Result<[Option<(Generation, RowValue)>; 2], StoreError> {
        let lo = keys::versioned(prefix, Generation(0));
        let hi = keys::prefix_end(prefix);
        let mut range = self.rows.range::<&[u8]>(lo.as_slice()..hi.as_slice())?;
        let mut out = [None, None];
        for slot in &mut out {
            let Some(e) = range.next_back() else {
                break;
            };
            let (k, v) = e?;
            let (_, g) = keys::split_version(k.value())
                .ok_or_else(|| StoreError::Damaged("short row key".into()))?;
            *slot = Some((g, RowValue::decode(v.value())?));
        }
        Ok(out)
    }

    /// Releases what a dropped version held.
    pub(crate) fn drop_value(&mut self, v: &RowValue) -> Result<(), StoreError> {
        for (chunk, _) in v.chunks() {
            self.chunk_unref(chunk)?;
        }
        Ok(())
    }

    pub(crate) fn remove_version(
        &mut self,
        prefix: &[u8],
        g: Generation,
    ) -> Result<(), StoreError> {
        self.rows.remove(keys::versioned(prefix, g).as_slice())?;
        self.rows_written += 1;
        Ok(())
    }

    fn record_change(&mut self, g: &Gens, id: &RowId) -> Result<(), StoreError> {
        let mut body = Vec::with_capacity(48);
        id.encode_body(&mut body);
        self.changes
            .insert(keys::change_key(g.vol, g.cur, &body).as_slice(), ())?;
        self.rows_written += 1;
        Ok(())
    }

    /// Drops the newest version (`latest`, as just read) if no snapshot can see it;
    /// returns true if it did.
    fn drop_if_private(
        &mut self,
        g: &Gens,
        prefix: &[u8],
        (h, old): (Generation, &RowValue),
    ) -> Result<bool, StoreError> {
        if h == g.cur || h > g.last_snap {
            self.remove_version(prefix, h)?;
            self.drop_value(old)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Sets a row's live value. The caller has already taken any chunk reference `value` holds.
    pub fn put_row(&mut self, g: &Gens, id: &RowId, value: &RowValue) -> Result<(), StoreError> {
        if let RowId::Inode(ino) = id {
            self.forget_deferred_inode(g.vol, *ino);
        }
        let prefix = id.prefix(g.vol);
        let latest = self.latest_version(&prefix)?;
        self.put_row_with(g, id, &prefix, value, latest, true)
    }

    /// The newest version of a row (a tombstone too), for a caller that writes the row next
    /// with [`Tx::put_row_over`] (one lookup for both).
    ///
    /// A clone that has no version of its own gets its lower layer's value (see
    /// [`super::layers`]) at generation 0: older than every version of its own and seen by
    /// all of its views, so never private (the writer takes its own references on what it
    /// keeps of it, and nothing of the lower layer is dropped).
    pub fn latest_row(
        &self,
        g: &Gens,
        id: &RowId,
    ) -> Result<Option<(Generation, RowValue)>, StoreError> {
        match self.latest_version(&id.prefix(g.vol))? {
            Some(v) => Ok(Some(v)),
            None => Ok(self.lower_row(g.vol, id)?.map(|v| (Generation(0), v))),
        }
    }

    /// As [`Tx::put_row`], given what [`Tx::latest_row`] returned in this transaction. With
    /// `inherit`, the references of a version this drops (one no snapshot sees: see
    /// [`private`]) pass to `value` instead of being released; the caller took only what
    /// `value` holds beyond them.
    pub fn put_row_over(
        &mut self,
        g: &Gens,
        id: &RowId,
        value: &RowValue,
        latest: Option<(Generation, RowValue)>,
        inherit: bool,
    ) -> Result<(), StoreError> {
        let prefix = id.prefix(g.vol);
        self.put_row_with(g, id, &prefix, value, latest, !inherit)
    }

    fn put_row_with(
        &mut self,
        g: &Gens,
        id: &RowId,
        prefix: &[u8],
        value: &RowValue,
        latest: Option<(Generation, RowValue)>,
        release: bool,
    ) -> Result<(), StoreError> {
        if let Some((h, old)) = &latest
            && *h == g.cur
        {
            // Rewritten in the same generation (a directory's inode on every create in it):
            // overwrite the version in place; its change is recorded already.
            self.rows.insert(
                keys::versioned(prefix, g.cur).as_slice(),
                value.encode().as_slice(),
            )?;
            self.rows_written += 1;
            return if release {
                self.drop_value(old)
            } else {
                Ok(())
            };
        }
        if let Some((h, old)) = latest
            && h > g.last_snap
        {
            // No snapshot sees the live version: it goes (as in `drop_if_private`).
            self.remove_version(prefix, h)?;
            if release {
                self.drop_value(&old)?;
            }
        }
        self.rows.insert(
            keys::versioned(prefix, g.cur).as_slice(),
            value.encode().as_slice(),
        )?;
        self.rows_written += 1;
        self.record_change(g, id)
    }

    /// Deletes a row from the live view (no-op if absent). In a clone, a row only its lower
    /// layer shows is hidden by a tombstone.
    pub fn delete_row(&mut self, g: &Gens, id: &RowId) -> Result<(), StoreError> {
        if let RowId::Inode(ino) = id {
            self.forget_deferred_inode(g.vol, *ino);
        }
        let prefix = id.prefix(g.vol);
        let [latest, older] = self.latest_two(&prefix)?;
        let (h, live) = match latest {
            Some((_, RowValue::Tombstone)) => return Ok(()),
            Some(latest) => latest,
            None if self.lower_row(g.vol, id)?.is_some() => {
                return self.put_tombstone(g, id, &prefix);
            }
            None => return Ok(()),
        };
        if !self.drop_if_private(g, &prefix, (h, &live))? {
            // A snapshot sees the live version: hide it from the live view (the newest
            // version is unchanged, no need to read it again).
            return self.put_tombstone(g, id, &prefix);
        }
        // The newest version is gone: the older one (if any) is the newest now.
        match older {
            // An older version some snapshot sees: hide it from the live view.
            Some((_, v)) if v != RowValue::Tombstone => self.put_tombstone(g, id, &prefix),
            Some(_) => self.record_change(g, id),
            // A clone's lower layer shows it: hide it.
            None if self.lower_row(g.vol, id)?.is_some() => self.put_tombstone(g, id, &prefix),
            None => {
                // No view ever saw this row: it needs no change record at this generation.
                let mut body = Vec::new();
                id.encode_body(&mut body);
                if self
                    .changes
                    .remove(keys::change_key(g.vol, g.cur, &body).as_slice())?
                    .is_some()
                {
                    self.rows_written += 1;
                }
                Ok(())
            }
        }
    }

    fn put_tombstone(&mut self, g: &Gens, id: &RowId, prefix: &[u8]) -> Result<(), StoreError> {
        self.rows.insert(
            keys::versioned(prefix, g.cur).as_slice(),
            RowValue::Tombstone.encode().as_slice(),
        )?;
        self.rows_written += 1;
        self.record_change(g, id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patched_values_round_trip_and_reject_bad_lengths() {
        let id = |b: u8| ChunkId([b; 32]);
        for v in [
            RowValue::Patched(Patched::default()),
            RowValue::Patched(Patched {
                base: Some((id(1), 4096)),
                patches: vec![
                    Patch {
                        at: 0,
                        chunk: id(2),
                        len: 10,
                    },
                    Patch {
                        at: 4000,
                        chunk: id(3),
                        len: 96,
                    },
                ],
            }),
            RowValue::Patched(Patched {
                base: None,
                patches: vec![Patch {
                    at: 7,
                    chunk: id(4),
                    len: 1,
                }],
            }),
        ] {
            let b = v.encode();
            assert_eq!(RowValue::decode(&b).unwrap(), v);
            assert!(RowValue::decode(&b[..b.len() - 1]).is_err());
            let mut long = b.clone();
            long.push(0);
            assert!(RowValue::decode(&long).is_err());
        }
        let v = RowValue::Patched(Patched {
            base: Some((id(1), 100)),
            patches: vec![Patch {
                at: 50,
                chunk: id(1),
                len: 100,
            }],
        });
        assert_eq!(v.stored_len(), 200);
        assert_eq!(v.chunks().len(), 2);
        if let RowValue::Patched(p) = v {
            assert_eq!(p.reach(), 150);
        }
    }
}
