//! Versioned metadata rows (`rows` table) and the change index (`changes` table).
//!
//! A row value is a tag byte and a payload: 0 tombstone; 1 inode (opaque bytes, encoded by
//! `crate::fs`); 2 directory entry (ino u64 LE, kind u8); 3 extent (ChunkId 32 bytes, stored
//! length u32 LE); 4 xattr value (bytes).
//!
//! Writes happen at a volume's current generation `cur`. Invariants:
//! - a version at generation h is kept only while a view can see it: the live view (it is the
//!   newest) or a snapshot generation s with h <= s < next version's generation. Since every
//!   snapshot generation is < `cur`, a superseded version at h > `last_snap` is dropped at once;
//! - dropping a version releases what it holds (an extent's chunk reference);
//! - deleting a row some snapshot still sees writes a tombstone at `cur`;
//! - every put/delete records `(vol, cur, row)` in the change index, so the rows that differ
//!   between two generations are found in O(changes).

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
        }
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
            _ => return Err(bad()),
        })
    }
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

/// The version of one row a view sees (`None`: absent or deleted).
pub fn get<T: ReadableTable<&'static [u8], &'static [u8]>>(
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
            match RowValue::decode(v.value())? {
                RowValue::Tombstone => Ok(None),
                other => Ok(Some(other)),
            }
        }
        None => Ok(None),
    }
}

/// Visits, in key order, every row under `prefix` whose key is >= `start` (both without
/// generation), as the view sees it; tombstoned rows are skipped. `visit` returns false to stop.
pub fn scan<T: ReadableTable<&'static [u8], &'static [u8]>>(
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
pub fn changed<T: ReadableTable<&'static [u8], ()>>(
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

    /// Releases what a dropped version held.
    pub(crate) fn drop_value(&mut self, v: &RowValue) -> Result<(), StoreError> {
        if let RowValue::Extent { chunk, .. } = v {
            self.chunk_unref(*chunk)?;
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

    /// Drops the newest version if no snapshot can see it; returns true if it did.
    fn drop_if_private(&mut self, g: &Gens, prefix: &[u8]) -> Result<bool, StoreError> {
        if let Some((h, old)) = self.latest_version(prefix)?
            && (h == g.cur || h > g.last_snap)
        {
            self.remove_version(prefix, h)?;
            self.drop_value(&old)?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Sets a row's live value. The caller has already taken any chunk reference `value` holds.
    pub fn put_row(&mut self, g: &Gens, id: &RowId, value: &RowValue) -> Result<(), StoreError> {
        let prefix = id.prefix(g.vol);
        if let Some((h, old)) = self.latest_version(&prefix)?
            && h == g.cur
        {
            // Rewritten in the same generation (a directory's inode on every create in it):
            // overwrite the version in place; its change is recorded already.
            self.rows.insert(
                keys::versioned(&prefix, g.cur).as_slice(),
                value.encode().as_slice(),
            )?;
            self.rows_written += 1;
            return self.drop_value(&old);
        }
        self.drop_if_private(g, &prefix)?;
        self.rows.insert(
            keys::versioned(&prefix, g.cur).as_slice(),
            value.encode().as_slice(),
        )?;
        self.rows_written += 1;
        self.record_change(g, id)
    }

    /// Inserts a row the volume cannot have yet (a fresh clone): no lookup of an older
    /// version, otherwise as [`Tx::put_row`].
    pub fn put_new_row(
        &mut self,
        g: &Gens,
        id: &RowId,
        value: &RowValue,
    ) -> Result<(), StoreError> {
        let prefix = id.prefix(g.vol);
        self.rows.insert(
            keys::versioned(&prefix, g.cur).as_slice(),
            value.encode().as_slice(),
        )?;
        self.rows_written += 1;
        self.record_change(g, id)
    }

    /// Deletes a row from the live view (no-op if absent).
    pub fn delete_row(&mut self, g: &Gens, id: &RowId) -> Result<(), StoreError> {
        let prefix = id.prefix(g.vol);
        match self.latest_version(&prefix)? {
            None | Some((_, RowValue::Tombstone)) => return Ok(()),
            Some(_) => {}
        }
        self.drop_if_private(g, &prefix)?;
        match self.latest_version(&prefix)? {
            // An older version some snapshot sees: hide it from the live view.
            Some((_, v)) if v != RowValue::Tombstone => {
                self.rows.insert(
                    keys::versioned(&prefix, g.cur).as_slice(),
                    RowValue::Tombstone.encode().as_slice(),
                )?;
                self.rows_written += 1;
                self.record_change(g, id)
            }
            Some(_) => self.record_change(g, id),
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

    /// Live value of one row.
    pub fn get_row(&self, vol: VolumeId, id: &RowId) -> Result<Option<RowValue>, StoreError> {
        get(&self.rows, &id.prefix(vol), View::Live)
    }

    /// Live rows under a prefix, from `start` (see [`scan`]).
    pub fn scan_rows(
        &self,
        prefix: &[u8],
        start: &[u8],
        view: View,
    ) -> Result<Vec<(RowId, RowValue)>, StoreError> {
        let mut out = Vec::new();
        scan(&self.rows, prefix, start, view, |id, v| {
            out.push((id, v));
            Ok(true)
        })?;
        Ok(out)
    }
}

impl<'t> Tx<'t> {
    /// The `rows` table, for read helpers such as [`scan`].
    pub fn rows_table(&self) -> &redb::Table<'t, &'static [u8], &'static [u8]> {
        &self.rows
    }
}
