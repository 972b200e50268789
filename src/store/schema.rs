//! The pool's identity and schema version in `meta`: checked on every open, written in a
//! new pool, and the upgrade steps from each older schema (see `tables.rs` for what a
//! schema bump means).
//!
//! Invariant: runs in the open's first write transaction, before anything else writes the
//! index: a pool of a newer schema or of another program is refused untouched.

use std::path::Path;

use redb::{Database, ReadableTable, ReadableTableMetadata};

use super::StoreError;
use super::tables::{self, MAGIC, META, SCHEMA_VERSION, meta_keys};

/// Checks (or, in a new pool, writes) the magic and schema version. `held`: the packs
/// hold bytes, so this must be an existing pool.
pub(super) fn check(dir: &Path, db: &Database, held: bool) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        let magic = meta.get(meta_keys::MAGIC)?.map(|v| v.value().to_vec());
        match magic {
            Some(m) if m == MAGIC => {
                let v = meta
                    .get(meta_keys::SCHEMA_VERSION)?
                    .map(|v| v.value().to_vec())
                    .unwrap_or_default();
                let v: [u8; 4] = v.as_slice().try_into().map_err(|_| StoreError::Foreign {
                    path: dir.to_path_buf(),
                    reason: "no schema version recorded".into(),
                })?;
                let found = u32::from_le_bytes(v);
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema {
                        path: dir.to_path_buf(),
                        found,
                    });
                }
                if found < SCHEMA_VERSION {
                    upgrade(found)?;
                    meta.insert(meta_keys::SCHEMA_VERSION, &SCHEMA_VERSION.to_le_bytes()[..])?;
                }
            }
            Some(_) => {
                return Err(StoreError::Foreign {
                    path: dir.to_path_buf(),
                    reason: "unknown magic".into(),
                });
            }
            None => {
                if meta.len()? > 0 || txn.list_tables()?.count() > 1 {
                    return Err(StoreError::Foreign {
                        path: dir.to_path_buf(),
                        reason: "pool.redb belongs to another program".into(),
                    });
                }
                if held {
                    return Err(StoreError::IndexDamaged {
                        path: dir.to_path_buf(),
                        reason: "it records no pool, yet the packs hold bytes".into(),
                    });
                }
                meta.insert(meta_keys::MAGIC, MAGIC)?;
                meta.insert(meta_keys::SCHEMA_VERSION, &SCHEMA_VERSION.to_le_bytes()[..])?;
            }
        }
    }
    // Create every table now so read transactions never meet a missing one.
    tables::create_all(&txn)?;
    txn.commit()?;
    Ok(())
}

/// Brings the records of a pool of schema `from` to [`SCHEMA_VERSION`], in the schema
/// check's transaction (see `tables.rs`: a changed postcard value needs a step here that
/// rewrites the old records). Tables new since `from` are created by the check itself.
fn upgrade(from: u32) -> Result<(), StoreError> {
    for version in from..SCHEMA_VERSION {
        match version {
            // 1 -> 2: `log_applied` and the `log_*` meta keys are new (a v1 pool has no
            // log to replay). 2 -> 3: patched extent rows (tag 5) are new. Nothing
            // existing is rewritten.
            1 | 2 => {}
            // 3 -> 4: the `snapshot_roots` and `snapshot_tests` tables are new (created
            // by the check). Nothing existing is rewritten.
            3 => {}
            // 4 -> 5: `snapshot_holds`, `schedules`, `schedule_runs`, `snapshot_makers`
            // and `clone_origins` are new (created by the check). 5 -> 6: a schedule's
            // `Every` gained the `Cron` variant; v5 records decode unchanged. Nothing
            // existing is rewritten.
            4 | 5 => {}
            // 6 -> 7: `clone_layers` is new (created by the check): clones made before
            // are full copies of their snapshot's rows and stay so. Nothing existing is
            // rewritten.
            6 => {}
            // 0: no pool was ever written with it.
            _ => {}
        }
    }
    Ok(())
}
