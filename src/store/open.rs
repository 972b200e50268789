//! Opening a pool without destroying what it cannot account for: the pack files are judged
//! against the index (`pool.redb`) before anything is written, at every open and by
//! `tandem pool check`.
//!
//! Invariants (DESIGN: "opening a pool never destroys bytes it can't account for"):
//! - Pack bytes with no index (`pool.redb` missing or empty) or an unreadable one are
//!   refused; a fresh index is only ever created beside packs that hold no bytes.
//! - A pack the index needs (live bytes, chunks pointing into it) that is missing or shorter
//!   than recorded is refused, by name. A new pack never takes the id of one the index knows.
//! - Bytes past a pack's committed length are the unfinished tail of the last run only when
//!   that run appended to the pack. Every open records in `meta.open_pack` (durably, before
//!   the first append) the new pack it appends to; a run appends only there and to the packs
//!   it rolls over to. So tails are expected from `open_pack` up to the newest pack the
//!   index records, and in the one after that when that one was full. Bytes anywhere else
//!   mean the index is older than the packs (a restored or reverted `pool.redb`): refused.
//!   A pool from before `open_pack` was recorded gets the benefit of the doubt once: tails
//!   in its newest recorded pack and above are set aside (every older open cut the rest).
//! - All of this is judged before the first write to the index, so a refused pool is left
//!   exactly as it was.
//! - A tail is set aside, not cut: copied to `packs/NNNNNNNN.pack.tail-<unix time>`,
//!   synced, and only then cut from the pack (a tail of zeros carries nothing and is cut).
//!   Cutting is not provably safe: an index copied while the daemon ran looks exactly like
//!   a crash (same pack, bytes past its end), and no bound on one batch's appends holds
//!   (chunks are appended before their batch is queued). tandem never deletes those files.
//! - The way out of a refusal for unaccounted bytes is explicit: `tandem pool check
//!   --set-aside` moves them aside the same way (a pack the index does not know at all is
//!   renamed `NNNNNNNN.pack.unindexed-<unix time>`) and the pool then opens at what its
//!   index records. A missing index or pack can only come back from a backup.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use redb::{ReadTransaction, ReadableTable};

use super::chunks::ChunkRow;
use super::error::StoreError;
use super::pack::{ALIGN, PACK_LIMIT, pack_path};
use super::tables::{CHUNKS, MAGIC, META, PACKS};
use super::volumes::MAX_BLOCK;

use super::tables::meta_keys::{self, OPEN_PACK};

/// What the index says about the packs.
#[derive(Debug, Default)]
pub struct IndexView {
    /// Pack id -> (committed length, live bytes).
    pub packs: BTreeMap<u32, (u64, u64)>,
    /// `meta.open_pack`; None for a pool written before it was recorded.
    pub open_pack: Option<u32>,
}

pub fn read_index(r: &ReadTransaction) -> Result<IndexView, StoreError> {
    let mut view = IndexView::default();
    for e in r.open_table(PACKS)?.iter()? {
        let (k, v) = e?;
        view.packs.insert(k.value(), v.value());
    }
    let meta = r.open_table(META)?;
    view.open_pack = meta
        .get(OPEN_PACK)?
        .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
        .and_then(|b| u32::try_from(u64::from_le_bytes(b)).ok());
    Ok(view)
}

/// Judges the packs (`files`) against the index `r` holds, writing nothing. An index
/// without the pool's magic is fine only beside packs that hold no bytes (a new pool; a
/// foreign file is refused by the schema check).
pub fn judge(
    dir: &Path,
    r: &ReadTransaction,
    files: &BTreeMap<u32, u64>,
) -> Result<Plan, StoreError> {
    let magic = match r.open_table(META) {
        Ok(t) => t.get(meta_keys::MAGIC)?.map(|v| v.value() == MAGIC),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(e.into()),
    };
    match magic {
        Some(true) => {
            let index = read_index(r)?;
            plan(files, &index, |ids| count_chunks(r, ids))
        }
        None if files.values().any(|&len| len > 0) => Err(StoreError::IndexDamaged {
            path: dir.to_path_buf(),
            reason: "it records no pool, yet the packs hold bytes".into(),
        }),
        _ => plan(files, &IndexView::default(), |_| Ok(HashMap::new())),
    }
}

/// The error that refuses to open the pool in `dir`, if `plan` found problems.
pub fn refuse(dir: &Path, plan: &Plan) -> Result<(), StoreError> {
    let Some(first) = plan.problems.first() else {
        return Ok(());
    };
    let more = plan.problems.len() - 1;
    Err(StoreError::PacksRefused {
        path: dir.to_path_buf(),
        detail: if more > 0 {
            format!("{first} (and {more} more problems: `tandem pool check` lists them)")
        } else {
            first.to_string()
        },
    })
}

/// How many chunks the index places in each of `packs`.
pub fn count_chunks(r: &ReadTransaction, packs: &[u32]) -> Result<HashMap<u32, u64>, StoreError> {
    let mut n: HashMap<u32, u64> = HashMap::new();
    for e in r.open_table(CHUNKS)?.iter()? {
        let (_, v) = e?;
        let pack = ChunkRow::decode(v.value()).loc.pack;
        if packs.contains(&pack) {
            *n.entry(pack).or_insert(0) += 1;
        }
    }
    Ok(n)
}

/// The pack files in `dir` (id -> length); a missing directory has none.
pub fn scan_packs(dir: &Path) -> Result<BTreeMap<u32, u64>, StoreError> {
    let io_err = |e| StoreError::io(dir.display().to_string(), e);
    let mut out = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err)?;
        let name = entry.file_name();
        let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".pack"))
            .filter(|n| n.len() == 8)
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        out.insert(id, entry.metadata().map_err(io_err)?.len());
    }
    Ok(out)
}

/// Something that makes opening the pool unsafe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The index places chunks in a pack that is not there.
    Missing { pack: u32, chunks: u64 },
    /// The pack is shorter than the chunks the index places in it.
    Short { pack: u32, len: u64, committed: u64 },
    /// Bytes past what the index records, in a pack the last run did not append to
    /// (`committed` 0: a pack the index does not know at all).
    Unaccounted { pack: u32, len: u64, committed: u64 },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Problem::Missing { pack, chunks } => write!(
                f,
                "pack {pack:08}.pack is missing: referenced by {chunks} chunks; restore it from a backup"
            ),
            Problem::Short {
                pack,
                len,
                committed,
            } => write!(
                f,
                "pack {pack:08}.pack is {len} bytes but the index places chunks up to {committed}; restore it from a backup"
            ),
            Problem::Unaccounted {
                pack,
                len,
                committed: 0,
            } => write!(
                f,
                "pack {pack:08}.pack holds {len} bytes the index does not know: pool.redb is older than the packs; restore the newest pool.redb, or `tandem pool check --set-aside` to move the pack aside"
            ),
            Problem::Unaccounted {
                pack,
                len,
                committed,
            } => write!(
                f,
                "pack {pack:08}.pack holds {} bytes past the {committed} the index records: pool.redb is older than the packs; restore the newest pool.redb, or `tandem pool check --set-aside` to move those bytes aside",
                len - committed
            ),
        }
    }
}

/// Bytes of pack `pack` from `from` to its end: the unfinished tail of the last run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tail {
    pub pack: u32,
    pub from: u64,
    pub len: u64,
}

/// What opening will do: tails to set aside, or problems that refuse the open.
#[derive(Debug, Default)]
pub struct Plan {
    pub tails: Vec<Tail>,
    pub problems: Vec<Problem>,
    /// The id of the new pack the next run appends to.
    pub next: u32,
}

/// Judges the pack files (`files`, id -> length) against the index. `count` gives, for
/// packs the index needs but that are missing, how many chunks point into each.
pub fn plan(
    files: &BTreeMap<u32, u64>,
    index: &IndexView,
    count: impl FnOnce(&[u32]) -> Result<HashMap<u32, u64>, StoreError>,
) -> Result<Plan, StoreError> {
    let newest_row = index.packs.keys().next_back().copied().unwrap_or(0);
    let newest = newest_row.max(index.open_pack.unwrap_or(0));
    let newest_full = files.get(&newest).copied().unwrap_or(0) + MAX_BLOCK as u64 > PACK_LIMIT;
    let last_run = |id: u32| match index.open_pack {
        Some(first) => (first..=newest).contains(&id) || (id == newest + 1 && newest_full),
        // A pool from before `open_pack`: every open cut all packs, and its last run appended
        // to packs newer than any other (the newest recorded one, or ones it never committed).
        None => id >= newest_row,
    };
    let mut plan = Plan {
        next: files
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(newest)
            .saturating_add(1),
        ..Plan::default()
    };
    // The empty pack a run opened and never wrote to is reused, not left behind.
    if let Some((&id, &0)) = files.iter().next_back()
        && id >= newest
        && !index.packs.contains_key(&id)
    {
        plan.next = id;
    }
    let mut missing = Vec::new();
    for (&pack, &(committed, live)) in &index.packs {
        match files.get(&pack) {
            None if live > 0 => missing.push(pack),
            Some(&len) if live > 0 && len + ALIGN <= committed => {
                plan.problems.push(Problem::Short {
                    pack,
                    len,
                    committed,
                })
            }
            _ => {}
        }
    }
    if !missing.is_empty() {
        let counts = count(&missing)?;
        for pack in missing {
            let chunks = counts.get(&pack).copied().unwrap_or(0);
            if chunks > 0 {
                plan.problems.push(Problem::Missing { pack, chunks });
            }
        }
    }
    for (&pack, &len) in files {
        let committed = index.packs.get(&pack).map(|v| v.0).unwrap_or(0);
        if len <= committed {
            continue;
        }
        if last_run(pack) {
            plan.tails.push(Tail {
                pack,
                from: committed,
                len: len - committed,
            });
        } else {
            plan.problems.push(Problem::Unaccounted {
                pack,
                len,
                committed,
            });
        }
    }
    Ok(plan)
}

fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A new file `dir/base-<time>[-n]`, owner-only.
fn create_aside(dir: &Path, base: &str) -> io::Result<(PathBuf, File)> {
    let stem = format!("{base}-{}", unix_time());
    for n in 0..1000 {
        let name = if n == 0 {
            stem.clone()
        } else {
            format!("{stem}-{n}")
        };
        let path = dir.join(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!("too many files named {stem}-*")))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Copies a tail to `NNNNNNNN.pack.tail-<time>`, syncs it, then cuts it from the pack.
/// Returns the file it went to (None for a tail of zeros, which is just cut).
pub fn set_aside_tail(dir: &Path, tail: Tail) -> Result<Option<PathBuf>, StoreError> {
    let path = pack_path(dir, tail.pack);
    let name = format!("{:08}.pack", tail.pack);
    let err = |what: &Path, e| StoreError::io(what.display().to_string(), e);
    let pack = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| err(&path, e))?;
    let (aside, mut out) = create_aside(dir, &format!("{name}.tail")).map_err(|e| err(dir, e))?;
    let copied = (|| {
        let mut zeros = true;
        let mut buf = vec![0u8; 1 << 20];
        let mut at = tail.from;
        let end = tail.from + tail.len;
        while at < end {
            let n = ((end - at) as usize).min(buf.len());
            pack.read_exact_at(&mut buf[..n], at)?;
            zeros &= buf[..n].iter().all(|&b| b == 0);
            out.write_all(&buf[..n])?;
            at += n as u64;
        }
        if !zeros {
            out.sync_all()?;
            sync_dir(dir)?;
        }
        Ok(zeros)
    })();
    let kept = match copied {
        Ok(false) => Some(aside),
        Ok(true) => {
            drop(out);
            std::fs::remove_file(&aside).map_err(|e| err(&aside, e))?;
            None
        }
        Err(e) => {
            // The tail is still in the pack: drop the partial copy, keep the pool as it was.
            let _ = std::fs::remove_file(&aside);
            return Err(StoreError::io(
                format!(
                    "setting aside the {}-byte unfinished tail of {name} (free that much space, then start again)",
                    tail.len
                ),
                e,
            ));
        }
    };
    pack.set_len(tail.from).map_err(|e| err(&path, e))?;
    pack.sync_all().map_err(|e| err(&path, e))?;
    Ok(kept)
}

/// Renames a pack the index does not know to `NNNNNNNN.pack.unindexed-<time>`.
pub fn set_aside_pack(dir: &Path, pack: u32) -> Result<PathBuf, StoreError> {
    let path = pack_path(dir, pack);
    let (aside, _) = create_aside(dir, &format!("{pack:08}.pack.unindexed"))
        .map_err(|e| StoreError::io(dir.display().to_string(), e))?;
    std::fs::rename(&path, &aside).map_err(|e| StoreError::io(path.display().to_string(), e))?;
    sync_dir(dir).map_err(|e| StoreError::io(dir.display().to_string(), e))?;
    Ok(aside)
}

/// Files set aside so far in `dir` (name, length).
pub fn set_aside_files(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(".pack.tail-") || name.contains(".pack.unindexed-") {
                out.push((name, e.metadata().map(|m| m.len()).unwrap_or(0)));
            }
        }
    }
    out.sort();
    out
}

/// The length of the file at `path`, None when there is none.
pub fn file_len(path: &Path) -> Result<Option<u64>, StoreError> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StoreError::io(path.display().to_string(), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(rows: &[(u32, u64, u64)], open_pack: Option<u32>) -> IndexView {
        IndexView {
            packs: rows.iter().map(|&(p, c, l)| (p, (c, l))).collect(),
            open_pack,
        }
    }

    #[test]
    fn tails_only_in_packs_the_last_run_appended_to() {
        let files = BTreeMap::from([(1, 8192), (2, 12288), (3, 4096)]);
        // The last run opened on pack 2: its tail is expected, pack 1's bytes are not.
        let idx = view(&[(1, 4096, 4096), (2, 8192, 8192)], Some(2));
        let p = plan(&files, &idx, |_| Ok(HashMap::new())).unwrap();
        assert_eq!(
            p.problems,
            vec![
                Problem::Unaccounted {
                    pack: 1,
                    len: 8192,
                    committed: 4096
                },
                Problem::Unaccounted {
                    pack: 3,
                    len: 4096,
                    committed: 0
                }
            ]
        );
        assert_eq!(
            p.tails,
            vec![Tail {
                pack: 2,
                from: 8192,
                len: 4096
            }]
        );
        assert_eq!(p.next, 4);
    }

    #[test]
    fn a_pool_from_before_open_pack_has_tails_from_its_newest_recorded_pack_on() {
        let files = BTreeMap::from([(1, 8192), (2, 8192), (4, 4096)]);
        let idx = view(&[(1, 8192, 8192), (2, 4096, 4096)], None);
        let p = plan(&files, &idx, |_| Ok(HashMap::new())).unwrap();
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.tails.iter().map(|t| t.pack).collect::<Vec<_>>(), [2, 4]);
    }

    #[test]
    fn missing_and_short_packs_are_named() {
        let files = BTreeMap::from([(2, 100)]);
        let idx = view(&[(1, 4096, 10), (2, 8192, 10), (3, 4096, 0)], Some(4));
        let p = plan(&files, &idx, |ids| {
            assert_eq!(ids, &[1]);
            Ok(HashMap::from([(1, 7)]))
        })
        .unwrap();
        assert_eq!(
            p.problems,
            vec![
                Problem::Short {
                    pack: 2,
                    len: 100,
                    committed: 8192
                },
                Problem::Missing { pack: 1, chunks: 7 }
            ]
        );
        assert_eq!(p.next, 5, "a new pack never reuses a recorded id");
    }

    #[test]
    fn set_aside_keeps_the_tail_and_cuts_the_pack() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(pack_path(dir.path(), 1), b"committed-tail").unwrap();
        let tail = Tail {
            pack: 1,
            from: 9,
            len: 5,
        };
        let aside = set_aside_tail(dir.path(), tail).unwrap().unwrap();
        assert_eq!(std::fs::read(&aside).unwrap(), b"-tail");
        assert_eq!(
            std::fs::read(pack_path(dir.path(), 1)).unwrap(),
            b"committed"
        );
        assert_eq!(set_aside_files(dir.path()).len(), 1);
    }
}
