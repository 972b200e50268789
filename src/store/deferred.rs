//! Rewrites a batch defers: the volume records and directory inode rows that every create
//! and unlink rewrites, written once per run of jobs instead of once per job.
//!
//! A create or an unlink in a directory rewrites the directory's inode row (size, mtime,
//! ctime, nlink) and the volume record (file count, bytes, next inode number). A batch of
//! N of them in one directory wrote both N times, each write a B-tree lookup and insert;
//! only the last one survives the commit. Jobs that opt in ([`super::writer::Job::defers`])
//! leave those two rewrites here instead, and the writer writes them to the tables once,
//! before the next job that did not opt in and before the commit.
//!
//! Invariants:
//! - What a deferred entry holds is the newest value of its row or record in this
//!   transaction: [`Tx::volume_deferred`] and [`Tx::inode_deferred`] read it first, and a
//!   direct write of the same row or record (`put_volume`, `put_row`, `delete_row`) drops
//!   the entry, so the direct write wins as it would have.
//! - Only jobs that read those rows through the two readers above run while entries are
//!   held: the writer flushes ([`Tx::flush_deferred`]) before every other job (which may
//!   scan rows, bump a generation or read a record through `ReadView`) and before the
//!   commit, so everything else, readers included, sees the tables as if each job had
//!   written its rows itself. A refused job defers nothing (it checks before it mutates).
//! - An entry keeps the generations it was deferred at; a rewrite at other generations
//!   writes the older entry first (it cannot happen between two flushes, since only a
//!   job that does not defer changes a volume's generations).

use std::collections::BTreeMap;

use super::error::StoreError;
use super::keys::RowId;
use super::read::ReadView;
use super::rows::{Gens, RowValue};
use super::volumes::VolumeRecord;
use super::writer::Tx;
use crate::types::{InodeNo, VolumeId};

/// The deferred rewrites of one transaction. Ordered maps: a flush writes in key order,
/// whatever order the jobs came in.
#[derive(Default)]
pub(crate) struct Deferred {
    volumes: BTreeMap<u64, VolumeRecord>,
    inodes: BTreeMap<(u64, u64), (Gens, Vec<u8>)>,
}

impl Deferred {
    pub(crate) fn is_empty(&self) -> bool {
        self.volumes.is_empty() && self.inodes.is_empty()
    }
}

impl Tx<'_> {
    /// The volume record as this transaction holds it: a deferred rewrite, else the table's.
    pub fn volume_deferred(&self, vol: VolumeId) -> Result<VolumeRecord, StoreError> {
        match self.deferred.volumes.get(&vol.0) {
            Some(rec) => Ok(rec.clone()),
            None => self.volume(vol),
        }
    }

    /// Defers writing `rec` until the next flush (see the module docs).
    pub fn put_volume_deferred(&mut self, rec: VolumeRecord) {
        self.deferred.volumes.insert(rec.id.0, rec);
    }

    /// The encoded live inode `ino` of `vol` when a rewrite of it is deferred (the tables'
    /// row is then stale).
    pub fn inode_deferred(&self, vol: VolumeId, ino: InodeNo) -> Option<&[u8]> {
        if self.deferred.inodes.is_empty() {
            return None;
        }
        self.deferred
            .inodes
            .get(&(vol.0, ino.0))
            .map(|(_, b)| b.as_slice())
    }

    /// Defers writing the live inode row `ino` (encoded as `bytes`) at the generations
    /// `g` until the next flush.
    pub fn put_inode_deferred(
        &mut self,
        g: &Gens,
        ino: InodeNo,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        let key = (g.vol.0, ino.0);
        if let Some((old, b)) = self.deferred.inodes.remove(&key)
            && (old.cur, old.last_snap) != (g.cur, g.last_snap)
        {
            self.put_row(&old, &RowId::Inode(ino), &RowValue::Inode(b))?;
        }
        self.deferred.inodes.insert(key, (*g, bytes));
        Ok(())
    }

    /// A direct write of inode row `ino` of `vol` supersedes a deferred one.
    pub(super) fn forget_deferred_inode(&mut self, vol: VolumeId, ino: InodeNo) {
        if !self.deferred.inodes.is_empty() {
            self.deferred.inodes.remove(&(vol.0, ino.0));
        }
    }

    /// A direct write of the record of `vol` supersedes a deferred one.
    pub(super) fn forget_deferred_volume(&mut self, vol: VolumeId) {
        if !self.deferred.volumes.is_empty() {
            self.deferred.volumes.remove(&vol.0);
        }
    }

    /// Writes every deferred rewrite to the tables, as the jobs would have written it.
    pub(crate) fn flush_deferred(&mut self) -> Result<(), StoreError> {
        if self.deferred.is_empty() {
            return Ok(());
        }
        let d = std::mem::take(&mut self.deferred);
        for ((_, ino), (g, bytes)) in d.inodes {
            self.put_row(&g, &RowId::Inode(InodeNo(ino)), &RowValue::Inode(bytes))?;
        }
        for rec in d.volumes.into_values() {
            self.put_volume(&rec)?;
        }
        Ok(())
    }
}
