//! Volume records and the generation primitives the snapshot layer builds on (read through
//! [`super::ReadView`]: `volume`, `volumes`, `volume_id`, `options`,
//! `exclusive_bytes`).
//!
//! Invariants: a volume's `cur` generation is greater than every snapshot generation recorded
//! for it in `snap_gens`; `last_snap` is the greatest of them (0: none). Recording a snapshot
//! ([`Tx::snapshot_generations`]) writes two rows per volume whatever the volume holds, and
//! does it for a whole set of volumes in one transaction.

use redb::{ReadableTable, ReadableTableMetadata};
use serde::{Deserialize, Serialize};

use super::error::StoreError;
use super::keys::{self, RowId};
use super::read::ReadView;
use super::rows::{Gens, RowValue};
use super::tables::meta_keys;
use super::writer::Tx;
use crate::options::{OptionScope, VolumeOptions};
use crate::types::{Generation, InodeNo, Name, VolumeId};

pub const MIN_BLOCK: u32 = 4096;
pub const MAX_BLOCK: u32 = 1 << 20;
/// Default block size: chosen by `examples/engine_bench` (see README: sequential throughput
/// flattens out at 1 MiB blocks while 4 KiB random writes cost a read-modify-write of a
/// whole block; 128 KiB balances the two).
pub const DEFAULT_BLOCK: u32 = 128 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub id: VolumeId,
    pub name: String,
    pub block_size: u32,
    /// Current (live) generation.
    pub cur: Generation,
    /// Newest snapshot generation (0: none).
    pub last_snap: Generation,
    /// The inode number the next new inode gets.
    pub next_ino: InodeNo,
    /// Inodes of any type, the root included.
    pub files: u64,
    /// Sum of the sizes of regular files.
    pub logical_bytes: u64,
    /// Sum of the stored lengths of the live view's extents (before dedup).
    pub stored_bytes: u64,
    /// Creation time, seconds since the epoch.
    pub created: i64,
}

impl VolumeRecord {
    pub fn decode(b: &[u8]) -> Result<VolumeRecord, StoreError> {
        postcard::from_bytes(b).map_err(|e| StoreError::Damaged(format!("volume record: {e}")))
    }

    pub fn encode(&self) -> Result<Vec<u8>, StoreError> {
        postcard::to_stdvec(self).map_err(|e| StoreError::Damaged(format!("volume record: {e}")))
    }

    pub fn gens(&self) -> Gens {
        Gens {
            vol: self.id,
            cur: self.cur,
            last_snap: self.last_snap,
        }
    }
}

pub fn validate_name(name: &str) -> Result<Name, StoreError> {
    Name::try_from(name).map_err(|reason| StoreError::InvalidName {
        name: name.to_string(),
        reason,
    })
}

pub fn validate_block_size(size: u64) -> Result<u32, StoreError> {
    if size.is_power_of_two() && (MIN_BLOCK as u64..=MAX_BLOCK as u64).contains(&size) {
        Ok(size as u32)
    } else {
        Err(StoreError::InvalidBlockSize { size })
    }
}

impl Tx<'_> {
    pub fn put_volume(&mut self, rec: &VolumeRecord) -> Result<(), StoreError> {
        self.forget_deferred_volume(rec.id);
        self.volumes.insert(rec.id.0, rec.encode()?.as_slice())?;
        self.rows_written += 1;
        Ok(())
    }

    /// Creates the record of a new, empty volume (the caller adds the root inode).
    pub fn create_volume(
        &mut self,
        name: &str,
        block_size: u64,
        now: i64,
    ) -> Result<VolumeRecord, StoreError> {
        validate_name(name)?;
        let block_size = validate_block_size(block_size)?;
        if self.volume_names.get(name)?.is_some() {
            return Err(StoreError::VolumeExists {
                name: name.to_string(),
            });
        }
        let id = VolumeId(self.meta_u64(meta_keys::NEXT_VOLUME_ID)?.max(1));
        self.set_meta_u64(meta_keys::NEXT_VOLUME_ID, id.0 + 1)?;
        let rec = VolumeRecord {
            id,
            name: name.to_string(),
            block_size,
            cur: Generation(1),
            last_snap: Generation(0),
            next_ino: InodeNo(InodeNo::ROOT.0 + 1),
            files: 0,
            logical_bytes: 0,
            stored_bytes: 0,
            created: now,
        };
        self.volume_names.insert(name, id.0)?;
        self.put_volume(&rec)?;
        Ok(rec)
    }

    /// Deletes a volume with every row, snapshot generation and chunk reference it holds.
    /// O(rows of the volume). Clones layered over it first get their own copy of what they read of it (O(rows)
    /// each, see [`super::layers`]); a layered clone gives up its hold on its origin's
    /// generation.
    pub fn delete_volume(&mut self, id: VolumeId) -> Result<(), StoreError> {
        let rec = self.volume(id)?;
        self.detach_layers_before_delete(id)?;
        let lo = id.0.to_be_bytes();
        let hi = keys::prefix_end(&lo);
        let mut dropped = Vec::new();
        for e in self
            .rows
            .extract_from_if::<&[u8], _>(&lo[..]..hi.as_slice(), |_, _| true)?
        {
            let (_, v) = e?;
            dropped.push(RowValue::decode(v.value())?);
        }
        for v in &dropped {
            self.drop_value(v)?;
        }
        for e in self
            .changes
            .extract_from_if::<&[u8], _>(&lo[..]..hi.as_slice(), |_, _| true)?
        {
            e?;
        }
        for e in self
            .snap_gens
            .extract_from_if((id.0, 0)..=(id.0, u64::MAX), |_, _| true)?
        {
            e?;
        }
        for e in self
            .orphans
            .extract_from_if((id.0, 0)..=(id.0, u64::MAX), |_, _| true)?
        {
            e?;
        }
        for e in self
            .volume_options
            .extract_from_if((id.0, "")..(id.0 + 1, ""), |_, _| true)?
        {
            e?;
        }
        self.volume_names.remove(rec.name.as_str())?;
        self.volumes.remove(id.0)?;
        self.drop_layer_after_delete(id)
    }

    /// THE snapshot primitive: records the current generation of every volume in `vols` and
    /// bumps it, in this one transaction. Writes two rows per volume, whatever it holds.
    pub fn snapshot_generations(
        &mut self,
        vols: &[VolumeId],
    ) -> Result<Vec<(VolumeId, Generation)>, StoreError> {
        let mut recs = Vec::with_capacity(vols.len());
        for &v in vols {
            recs.push(self.volume(v)?);
        }
        let mut out = Vec::with_capacity(vols.len());
        for mut rec in recs {
            let g = rec.cur;
            let holders = self
                .snap_gens
                .get((rec.id.0, g.0))?
                .map(|v| v.value())
                .unwrap_or(0);
            self.snap_gens.insert((rec.id.0, g.0), holders + 1)?;
            self.rows_written += 1;
            rec.last_snap = g;
            rec.cur = g.next();
            self.put_volume(&rec)?;
            out.push((rec.id, g));
        }
        Ok(out)
    }

    /// Gives up one hold on a snapshot generation. When no snapshot holds it any more, every
    /// version only it could see is dropped (releasing chunks) and its change records move to
    /// the next retained generation. O(changes recorded since the previous snapshot).
    pub fn release_generation(&mut self, vol: VolumeId, s: Generation) -> Result<(), StoreError> {
        let mut rec = self.volume(vol)?;
        let holders = self
            .snap_gens
            .get((vol.0, s.0))?
            .map(|v| v.value())
            .ok_or(StoreError::NoSuchGeneration { vol, generation: s })?;
        if holders > 1 {
            self.snap_gens.insert((vol.0, s.0), holders - 1)?;
            return Ok(());
        }
        self.snap_gens.remove((vol.0, s.0))?;
        self.rows_written += 1;
        let (prev, next) = neighbours(&self.snap_gens, vol, s, rec.cur.0)?;
        let bodies = changed_bodies(&self.changes, vol, prev, s)?;
        // The change records of (prev, s] move to the next retained generation, so that a
        // diff or restore across the released one still sees those rows.
        let lo = keys::change_gen_prefix(vol, Generation(prev + 1));
        let hi = keys::change_gen_prefix(vol, Generation(s.0 + 1));
        self.changes
            .retain_in::<&[u8], _>(lo.as_slice()..hi.as_slice(), |_, _| false)?;
        for body in &bodies {
            let id = RowId::decode_body(body)
                .ok_or_else(|| StoreError::Damaged("malformed change key".into()))?;
            let prefix = id.prefix(vol);
            for (h, v, _) in unseen_versions(&self.rows, &prefix, prev, s, next)? {
                self.remove_version(&prefix, h)?;
                self.drop_value(&v)?;
            }
            self.changes
                .insert(keys::change_key(vol, Generation(next), body).as_slice(), ())?;
        }
        if rec.last_snap == s {
            rec.last_snap = Generation(prev);
            self.put_volume(&rec)?;
        }
        Ok(())
    }

    /// Number of rows in the `rows` table (for tests and diagnostics).
    pub fn row_count(&self) -> Result<u64, StoreError> {
        Ok(self.rows.len()?)
    }
}

impl Tx<'_> {
    /// Records an inode that was unlinked while open (freed on last close or next open).
    pub fn orphans_add(
        &mut self,
        vol: VolumeId,
        ino: crate::types::InodeNo,
    ) -> Result<(), StoreError> {
        self.orphans.insert((vol.0, ino.0), ())?;
        Ok(())
    }

    pub fn orphans_remove(
        &mut self,
        vol: VolumeId,
        ino: crate::types::InodeNo,
    ) -> Result<(), StoreError> {
        self.orphans.remove((vol.0, ino.0))?;
        Ok(())
    }

    /// Every orphan of the pool.
    pub fn orphans_list(&self) -> Result<Vec<(VolumeId, crate::types::InodeNo)>, StoreError> {
        let mut out = Vec::new();
        for e in self.orphans.iter()? {
            let (k, _) = e?;
            let (v, i) = k.value();
            out.push((VolumeId(v), crate::types::InodeNo(i)));
        }
        Ok(out)
    }
}

/// The `volume_options` key of a scope: system-wide options are stored as volume 0's
/// (volume ids start at 1).
pub(super) fn scope_key(scope: OptionScope) -> u64 {
    match scope {
        OptionScope::System => 0,
        OptionScope::Volume(v) => v.0,
    }
}

/// The options stored for one scope, parsed (read through [`ReadView::options`]).
pub(super) fn stored_options(
    t: &impl ReadableTable<(u64, &'static str), &'static str>,
    scope: OptionScope,
) -> Result<VolumeOptions, StoreError> {
    let k = scope_key(scope);
    let mut out = Vec::new();
    for e in t.range((k, "")..(k + 1, ""))? {
        let (k, v) = e?;
        out.push((k.value().1.to_string(), v.value().to_string()));
    }
    Ok(VolumeOptions::from_stored(out))
}

impl Tx<'_> {
    /// Sets one option of a scope (validated by the caller, see [`crate::options`]); a
    /// volume's must exist.
    pub fn set_option(
        &mut self,
        scope: OptionScope,
        key: &str,
        value: &str,
    ) -> Result<(), StoreError> {
        if let OptionScope::Volume(vol) = scope {
            self.volume(vol)?;
        }
        self.volume_options.insert((scope_key(scope), key), value)?;
        Ok(())
    }

    /// Drops one option of a scope, which then falls back (a volume's to the system-wide
    /// value or the default, the system's to the default); true if the scope set it.
    pub fn unset_option(&mut self, scope: OptionScope, key: &str) -> Result<bool, StoreError> {
        Ok(self
            .volume_options
            .remove((scope_key(scope), key))?
            .is_some())
    }
}

/// The retained neighbours of snapshot generation `s`: the previous retained snapshot
/// generation (0: none) and the next one (the live generation if none). `s` itself is not
/// looked at, so this works before and after it is removed from `snap_gens`.
pub(super) fn neighbours<T: ReadableTable<(u64, u64), u64>>(
    snap_gens: &T,
    vol: VolumeId,
    s: Generation,
    cur: u64,
) -> Result<(u64, u64), StoreError> {
    let prev = snap_gens
        .range((vol.0, 0)..(vol.0, s.0))?
        .next_back()
        .transpose()?
        .map(|(k, _)| k.value().1)
        .unwrap_or(0);
    let next = snap_gens
        .range((vol.0, s.0 + 1)..=(vol.0, u64::MAX))?
        .next()
        .transpose()?
        .map(|(k, _)| k.value().1)
        .unwrap_or(cur);
    Ok((prev, next))
}

/// The row bodies recorded as changed in `(prev, s]`, each once.
pub(super) fn changed_bodies<T: ReadableTable<&'static [u8], ()>>(
    changes: &T,
    vol: VolumeId,
    prev: u64,
    s: Generation,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let lo = keys::change_gen_prefix(vol, Generation(prev + 1));
    let hi = keys::change_gen_prefix(vol, Generation(s.0 + 1));
    let mut out = Vec::new();
    for e in changes.range::<&[u8]>(lo.as_slice()..hi.as_slice())? {
        let (k, _) = e?;
        out.push(k.value()[16..].to_vec());
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// THE release rule: the versions of one row that only snapshot generation `s` sees —
/// written in `(prev, s]` and superseded no later than `next` (the next retained view).
/// Each comes with the version that superseded it.
pub(super) type Unseen = (Generation, RowValue, Option<RowValue>);
pub(super) fn unseen_versions<T: ReadableTable<&'static [u8], &'static [u8]>>(
    rows: &T,
    prefix: &[u8],
    prev: u64,
    s: Generation,
    next: u64,
) -> Result<Vec<Unseen>, StoreError> {
    let vlo = keys::versioned(prefix, Generation(prev + 1));
    let vend = keys::prefix_end(prefix);
    let mut versions = Vec::new();
    for e in rows.range::<&[u8]>(vlo.as_slice()..vend.as_slice())? {
        let (k, v) = e?;
        let (_, g) = keys::split_version(k.value())
            .ok_or_else(|| StoreError::Damaged("short row key".into()))?;
        versions.push((g, RowValue::decode(v.value())?));
    }
    let mut out = Vec::new();
    for i in 0..versions.len() {
        let successor = versions.get(i + 1).map(|(g, _)| g.0);
        if versions[i].0.0 <= s.0 && successor.is_some_and(|nx| nx <= next) {
            let (g, v) = versions[i].clone();
            out.push((g, v, versions.get(i + 1).map(|(_, n)| n.clone())));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The record as it was written before its identities were typed (all plain integers).
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct PlainRecord {
        id: u64,
        name: String,
        block_size: u32,
        cur: u64,
        last_snap: u64,
        next_ino: u64,
        files: u64,
        logical_bytes: u64,
        stored_bytes: u64,
        created: i64,
    }

    #[test]
    fn typed_identities_keep_the_record_encoding() {
        let rec = VolumeRecord {
            id: VolumeId(7),
            name: "db".into(),
            block_size: DEFAULT_BLOCK,
            cur: Generation(300),
            last_snap: Generation(299),
            next_ino: InodeNo(1 << 40),
            files: 3,
            logical_bytes: 1 << 33,
            stored_bytes: 12,
            created: -5,
        };
        let plain = PlainRecord {
            id: 7,
            name: "db".into(),
            block_size: DEFAULT_BLOCK,
            cur: 300,
            last_snap: 299,
            next_ino: 1 << 40,
            files: 3,
            logical_bytes: 1 << 33,
            stored_bytes: 12,
            created: -5,
        };
        let old = postcard::to_stdvec(&plain).expect("encode");
        assert_eq!(rec.encode().expect("encode"), old);
        assert_eq!(VolumeRecord::decode(&old).expect("decode"), rec);
    }
}
