//! The single writer: every redb write transaction of a pool runs on one thread.
//!
//! Callers hand the writer a closure ([`super::Store::write`]); the writer takes whatever
//! jobs are queued (group commit), runs them in one transaction, commits once and then
//! answers every caller. A job that is refused (e.g. ENOENT) must not have changed anything:
//! operations check before they mutate. A job that fails in the storage itself aborts the
//! whole batch and every caller of the batch gets the error. A batch with any durable job
//! syncs the packs and commits with `Durability::Immediate`; others commit without fsync.

use std::collections::HashMap;
use std::sync::Arc;

use crossbeam_channel::Receiver;
use redb::{Database, Durability, ReadableTable, Table, WriteTransaction};
use tracing::error;

use super::error::StoreError;
use super::pack::{Loc, PackStore};
use super::tables::*;

/// Counters kept in `meta`, loaded once per batch and written back at its end.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    /// Sum of the stored length of every distinct live chunk.
    pub physical: u64,
    /// Sum over every reference of the referenced chunk's stored length.
    pub referenced: u64,
}

/// One write transaction with the pool's tables open, plus per-batch bookkeeping.
pub struct Tx<'t> {
    pub(crate) meta: Table<'t, &'static str, &'static [u8]>,
    pub(crate) volumes: Table<'t, u64, &'static [u8]>,
    pub(crate) volume_names: Table<'t, &'static str, u64>,
    pub(crate) chunks: Table<'t, [u8; 32], [u8; 24]>,
    pub(crate) packs_t: Table<'t, u32, (u64, u64)>,
    pub(crate) rows: Table<'t, &'static [u8], &'static [u8]>,
    pub(crate) changes: Table<'t, &'static [u8], ()>,
    pub(crate) snap_gens: Table<'t, (u64, u64), u64>,
    pub(crate) orphans: Table<'t, (u64, u64), ()>,
    pub(crate) volume_options: Table<'t, (u64, &'static str), &'static str>,
    pub(crate) packs: &'t PackStore,
    pub(crate) counters: Counters,
    /// The counters as loaded, to skip writing them back unchanged.
    loaded: Counters,
    /// Highest committed end per pack referenced by chunks this batch added.
    pub(crate) pack_ends: HashMap<u32, u64>,
    /// Live bytes added (+) or freed (-) per pack.
    pub(crate) pack_live: HashMap<u32, i64>,
    /// Chunks freed by this batch: punched once a durable commit holds the free.
    pub(crate) freed: Vec<Loc>,
    /// Rows inserted or removed in `rows`, `changes`, `volumes`, `snap_gens` (for the
    /// O(volumes) snapshot proof).
    pub rows_written: u64,
}

fn read_u64(meta: &Table<'_, &'static str, &'static [u8]>, key: &str) -> Result<u64, StoreError> {
    match meta.get(key)? {
        Some(v) => {
            let b: [u8; 8] = v
                .value()
                .try_into()
                .map_err(|_| StoreError::Damaged(format!("meta.{key}")))?;
            Ok(u64::from_le_bytes(b))
        }
        None => Ok(0),
    }
}

impl<'t> Tx<'t> {
    pub(crate) fn open(
        txn: &'t WriteTransaction,
        packs: &'t PackStore,
    ) -> Result<Tx<'t>, StoreError> {
        let meta = txn.open_table(META)?;
        let counters = Counters {
            physical: read_u64(&meta, "physical_bytes")?,
            referenced: read_u64(&meta, "referenced_bytes")?,
        };
        Ok(Tx {
            meta,
            volumes: txn.open_table(VOLUMES)?,
            volume_names: txn.open_table(VOLUME_NAMES)?,
            chunks: txn.open_table(CHUNKS)?,
            packs_t: txn.open_table(PACKS)?,
            rows: txn.open_table(ROWS)?,
            changes: txn.open_table(CHANGES)?,
            snap_gens: txn.open_table(SNAP_GENS)?,
            orphans: txn.open_table(ORPHANS)?,
            volume_options: txn.open_table(VOLUME_OPTIONS)?,
            packs,
            counters,
            loaded: counters,
            pack_ends: HashMap::new(),
            pack_live: HashMap::new(),
            freed: Vec::new(),
            rows_written: 0,
        })
    }

    pub(crate) fn meta_u64(&self, key: &str) -> Result<u64, StoreError> {
        read_u64(&self.meta, key)
    }

    pub(crate) fn set_meta_u64(&mut self, key: &str, v: u64) -> Result<(), StoreError> {
        self.meta.insert(key, &v.to_le_bytes()[..])?;
        Ok(())
    }

    /// Writes back counters and pack lengths; returns the chunks freed by the batch.
    fn finish(mut self) -> Result<Vec<Loc>, StoreError> {
        let c = self.counters;
        if (c.physical, c.referenced) != (self.loaded.physical, self.loaded.referenced) {
            self.set_meta_u64("physical_bytes", c.physical)?;
            self.set_meta_u64("referenced_bytes", c.referenced)?;
        }
        let mut ids: Vec<u32> = self
            .pack_ends
            .keys()
            .chain(self.pack_live.keys())
            .copied()
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for id in ids {
            let (len, live) = self.packs_t.get(id)?.map(|v| v.value()).unwrap_or((0, 0));
            let len = len.max(self.pack_ends.get(&id).copied().unwrap_or(0));
            let live = (live as i64 + self.pack_live.get(&id).copied().unwrap_or(0)).max(0) as u64;
            self.packs_t.insert(id, (len, live))?;
        }
        Ok(std::mem::take(&mut self.freed))
    }
}

type Completion = Box<dyn FnOnce(Result<(), Arc<StoreError>>) + Send>;

pub(crate) type Apply = Box<dyn FnOnce(&mut Tx<'_>) -> (Completion, bool) + Send>;

/// A queued write: runs inside the batch's transaction and returns how to answer its caller
/// once the commit is known, and whether it failed in the storage (poisoning the batch).
pub(crate) struct Job {
    pub durable: bool,
    pub apply: Apply,
}

/// Most jobs run in one transaction.
const MAX_BATCH: usize = 512;

pub(crate) fn run(db: Arc<Database>, packs: Arc<PackStore>, jobs: Receiver<Job>) {
    // Chunks freed by non-durable commits: a crash could bring their rows back, so their
    // holes are punched only after the next durable commit.
    let mut pending_punch: Vec<Loc> = Vec::new();
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let durable = batch.iter().any(|j| j.durable);
        let mut completions = Vec::with_capacity(batch.len());
        let result = (|| -> Result<Vec<Loc>, StoreError> {
            let mut txn = db.begin_write()?;
            if !durable {
                txn.set_durability(Durability::None)
                    .map_err(|e| StoreError::Damaged(e.to_string()))?;
            }
            let mut poisoned = false;
            let freed = {
                let mut tx = Tx::open(&txn, &packs)?;
                for job in batch.drain(..) {
                    let (done, poison) = (job.apply)(&mut tx);
                    completions.push(done);
                    poisoned |= poison;
                }
                if poisoned {
                    drop(tx);
                    txn.abort()?;
                    return Err(StoreError::Damaged(
                        "a write failed in the storage; batch aborted".into(),
                    ));
                }
                tx.finish()?
            };
            if durable {
                // Pack bytes must be durable before the rows that reference them.
                packs.sync().map_err(|e| StoreError::io("pack files", e))?;
            }
            txn.commit()?;
            Ok(freed)
        })();
        match result {
            Ok(freed) => {
                pending_punch.extend(freed);
                if durable {
                    for loc in super::pack::coalesce(std::mem::take(&mut pending_punch)) {
                        if let Err(e) = packs.punch(loc) {
                            error!(
                                "could not punch a freed chunk out of pack {}: {e}",
                                loc.pack
                            );
                        }
                    }
                }
                for done in completions {
                    done(Ok(()));
                }
            }
            Err(e) => {
                error!("write batch failed: {e}");
                let e = Arc::new(e);
                for done in completions {
                    done(Err(e.clone()));
                }
            }
        }
    }
    // Channel closed: the store is shutting down. Make everything durable.
    let last = (|| -> Result<(), StoreError> {
        packs.sync().map_err(|e| StoreError::io("pack files", e))?;
        let txn = db.begin_write()?;
        txn.commit()?;
        for loc in super::pack::coalesce(std::mem::take(&mut pending_punch)) {
            let _ = packs.punch(loc);
        }
        Ok(())
    })();
    if let Err(e) = last {
        error!("final commit failed: {e}");
    }
}
