//! `tandem pool check`: what opening the pool would find, told without the daemon and
//! without changing anything, unless asked to set unaccounted bytes aside (see
//! [`super::open`] for the rules). Takes the pool lock, so it refuses while a daemon runs.

use std::path::Path;

use redb::{Database, ReadableDatabase};

use super::error::StoreError;
use super::open::{
    Problem, Tail, file_len, plan, read_index, scan_packs, set_aside_files, set_aside_pack,
    set_aside_tail,
};
use super::tables::{MAGIC, META};

/// What `check` found: lines to show, and the problems that refuse an open.
#[derive(Debug, Default)]
pub struct CheckReport {
    pub lines: Vec<String>,
    pub problems: Vec<String>,
}

/// Checks the pool in `dir`; with `set_aside`, moves bytes the index does not account for
/// aside (never deletes them) so that the pool opens at what its index records.
pub fn check(dir: &Path, set_aside: bool) -> Result<CheckReport, StoreError> {
    let _lock = super::lock_pool(dir)?;
    let packs_dir = dir.join("packs");
    let files = scan_packs(&packs_dir)?;
    let held: u64 = files.values().sum();
    let mut rep = CheckReport::default();
    rep.lines
        .push(format!("{} pack files hold {held} bytes", files.len()));
    for (name, len) in set_aside_files(&packs_dir) {
        rep.lines.push(format!(
            "set aside earlier: packs/{name} ({len} bytes; tandem never deletes it)"
        ));
    }
    let db_path = dir.join("pool.redb");
    if file_len(&db_path)?.unwrap_or(0) == 0 {
        if held > 0 {
            rep.problems.push(format!(
                "pool.redb is missing or empty but the packs hold {held} bytes: restore pool.redb from a backup"
            ));
        } else {
            rep.lines
                .push("no index and no pack bytes: an empty pool".into());
        }
        return Ok(rep);
    }
    let unreadable = |e: &dyn std::fmt::Display| {
        format!("pool.redb cannot be read ({e}): restore it from a backup")
    };
    let db = match Database::open(&db_path) {
        Ok(db) => db,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            return Err(StoreError::PoolInUse {
                path: dir.to_path_buf(),
            });
        }
        Err(e) => {
            rep.problems.push(unreadable(&e));
            return Ok(rep);
        }
    };
    let judged = (|| {
        let r = db.begin_read()?;
        let magic = r
            .open_table(META)?
            .get(super::tables::meta_keys::MAGIC)?
            .map(|v| v.value() == MAGIC);
        let index = read_index(&r)?;
        let plan = plan(&files, &index, |ids| super::open::count_chunks(&r, ids))?;
        Ok::<_, StoreError>((magic, index, plan))
    })();
    let (magic, index, plan) = match judged {
        Ok(j) => j,
        Err(StoreError::Db(e)) => {
            rep.problems.push(unreadable(&e));
            return Ok(rep);
        }
        Err(e) => return Err(e),
    };
    if magic != Some(true) {
        rep.problems
            .push("pool.redb records no tandem pool: restore it from a backup".into());
        return Ok(rep);
    }
    for (&pack, &len) in &files {
        let recorded = index.packs.get(&pack).map(|v| v.0).unwrap_or(0);
        rep.lines.push(format!(
            "pack {pack:08}.pack: {len} bytes, the index records {recorded}"
        ));
    }
    for t in &plan.tails {
        rep.lines.push(format!(
            "pack {:08}.pack: {} bytes past the last commit, the unfinished tail of the last run: set aside when the pool opens",
            t.pack, t.len
        ));
    }
    for p in plan.problems {
        match p {
            Problem::Unaccounted {
                pack,
                len,
                committed,
            } if set_aside => {
                let to = if committed == 0 {
                    Some(set_aside_pack(&packs_dir, pack)?)
                } else {
                    set_aside_tail(
                        &packs_dir,
                        Tail {
                            pack,
                            from: committed,
                            len: len - committed,
                        },
                    )?
                };
                rep.lines.push(match to {
                    Some(to) => format!(
                        "pack {pack:08}.pack: {} unaccounted bytes moved to {}",
                        len - committed,
                        to.display()
                    ),
                    None => format!(
                        "pack {pack:08}.pack: {} unaccounted zero bytes cut",
                        len - committed
                    ),
                });
            }
            p => rep.problems.push(p.to_string()),
        }
    }
    Ok(rep)
}
