//! `tandem pool verify`: a scrub of one consistent view of the pool (a read transaction, so
//! it runs while the pool is in use). Every stored chunk is re-read from its pack and checked
//! against its blake3 id; every extent version (live, or kept for a snapshot) must reference
//! a stored chunk. Each damaged file is reported by volume and path, with whether the live
//! file or only older versions kept for snapshots are hit. Reads only; repairs nothing.
//!
//! [`verify_with`] reports its progress to a callback, once per chunk and once per
//! [`ROWS_PER_CALL`] extent versions of the reference pass, and stops early when the callback says so
//! (the daemon stops a scrub whose client hung up, or when it shuts down).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::time::Instant;

use redb::ReadableTable;
use serde::{Deserialize, Serialize};

use super::Store;
use super::chunks::ChunkRow;
use super::error::StoreError;
use super::keys::{RowId, split_version};
use super::rows::RowValue;
use super::tables::{CHUNKS, ROWS, VOLUMES};
use super::volumes::VolumeRecord;
use crate::types::{ChunkId, InodeNo};

/// A chunk whose body cannot be read or no longer hashes to its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadChunk {
    pub id: String,
    pub pack: u32,
    pub offset: u64,
    pub problem: String,
}

/// A file with at least one extent whose chunk is bad or missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamagedFile {
    pub volume: String,
    /// Path in the volume (as its newest directory entry names it), or `<inode N>`.
    pub path: String,
    pub ino: u64,
    /// The live file is damaged (otherwise only versions kept for snapshots are).
    pub live: bool,
    /// Generations of the damaged extent versions.
    pub generations: Vec<u64>,
    pub problem: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub chunks: u64,
    pub bytes: u64,
    pub extents: u64,
    pub bad_chunks: Vec<BadChunk>,
    pub damaged: Vec<DamagedFile>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.bad_chunks.is_empty() && self.damaged.is_empty()
    }
}

/// How far a scrub has got: chunks and bytes re-read of the totals the view holds, then
/// extent versions checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyProgress {
    pub chunks: u64,
    pub total_chunks: u64,
    pub bytes: u64,
    pub total_bytes: u64,
    pub bad_chunks: u64,
    pub extents: u64,
    pub elapsed_ms: u64,
}

impl VerifyProgress {
    /// Percent of the bytes (or, with no bytes, of the chunks) re-read.
    pub fn percent(&self) -> f64 {
        let (done, total) = if self.total_bytes > 0 {
            (self.bytes, self.total_bytes)
        } else {
            (self.chunks, self.total_chunks)
        };
        if total == 0 {
            100.0
        } else {
            done as f64 * 100.0 / total as f64
        }
    }
}

/// The reference pass reports progress (and may be stopped) once per this many extent
/// versions.
pub const ROWS_PER_CALL: u64 = 1024;

/// Scrubs the pool's last commit, telling `progress` how far it got; `None` when `progress`
/// broke off the scrub.
pub fn verify_with(
    store: &Store,
    progress: &mut dyn FnMut(&VerifyProgress) -> ControlFlow<()>,
) -> Result<Option<VerifyReport>, StoreError> {
    let started = Instant::now();
    let r = store.read_txn()?;
    let mut rep = VerifyReport::default();
    let mut bad: HashMap<[u8; 32], String> = HashMap::new();
    let chunks = r.open_table(CHUNKS)?;
    let mut at = VerifyProgress::default();
    for e in chunks.iter()? {
        let (_, v) = e?;
        at.total_chunks += 1;
        at.total_bytes += u64::from(ChunkRow::decode(v.value()).loc.len);
    }
    let mut tell = |at: &mut VerifyProgress| {
        at.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        progress(at).is_continue()
    };
    if !tell(&mut at) {
        return Ok(None);
    }
    for e in chunks.iter()? {
        let (k, v) = e?;
        let id = ChunkId(k.value());
        let row = ChunkRow::decode(v.value());
        rep.chunks += 1;
        rep.bytes += u64::from(row.loc.len);
        let mut buf = vec![0u8; row.loc.len as usize];
        let problem = match store.packs().read(row.loc, &mut buf) {
            Err(e) => Some(format!("unreadable: {e}")),
            Ok(()) if ChunkId::of(&buf) != id => Some("its bytes no longer hash to its id".into()),
            Ok(()) => None,
        };
        if let Some(problem) = problem {
            rep.bad_chunks.push(BadChunk {
                id: id.to_string(),
                pack: row.loc.pack,
                offset: row.loc.offset,
                problem: problem.clone(),
            });
            bad.insert(id.0, format!("chunk {id} {problem}"));
        }
        at.chunks = rep.chunks;
        at.bytes = rep.bytes;
        at.bad_chunks = rep.bad_chunks.len() as u64;
        if !tell(&mut at) {
            return Ok(None);
        }
    }

    let mut names: HashMap<u64, String> = HashMap::new();
    for e in r.open_table(VOLUMES)?.iter()? {
        let (k, v) = e?;
        names.insert(k.value(), VolumeRecord::decode(v.value())?.name);
    }
    // (vol, child) -> (parent, name), from the newest entry naming it; and the damage.
    let mut parents: HashMap<(u64, u64), (u64, Vec<u8>)> = HashMap::new();
    let mut hits: HashMap<(u64, u64), DamagedFile> = HashMap::new();
    let rows = r.open_table(ROWS)?;
    let mut iter = rows.iter()?.peekable();
    while let Some(e) = iter.next() {
        let (k, v) = e?;
        let key = k.value();
        let malformed = || StoreError::Damaged("malformed row key".into());
        let (prefix, generation) = split_version(key).ok_or_else(malformed)?;
        let vol = u64::from_be_bytes(
            prefix
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(malformed)?,
        );
        // Versions of one row are consecutive, oldest first: the last one is the live one.
        let live = match iter.peek() {
            Some(Ok((next, _))) => split_version(next.value()).map(|(p, _)| p) != Some(prefix),
            _ => true,
        };
        match (
            RowId::decode_body(&prefix[8..]),
            RowValue::decode(v.value())?,
        ) {
            (Some(RowId::Dirent(parent, _, name)), RowValue::Dirent { ino, .. }) => {
                parents.insert((vol, ino.0), (parent.0, name));
            }
            (Some(RowId::Extent(ino, _)), v) if v.is_extent() => {
                rep.extents += 1;
                if rep.extents % ROWS_PER_CALL == 0 {
                    at.extents = rep.extents;
                    if !tell(&mut at) {
                        return Ok(None);
                    }
                }
                let mut problem = None;
                for (chunk, _) in v.chunks() {
                    problem = match bad.get(&chunk.0) {
                        Some(p) => Some(p.clone()),
                        None if chunks.get(chunk.0)?.is_none() => {
                            Some(format!("chunk {chunk} is referenced but not stored"))
                        }
                        None => continue,
                    };
                    break;
                }
                let Some(problem) = problem else { continue };
                let hit = hits.entry((vol, ino.0)).or_insert_with(|| DamagedFile {
                    volume: names
                        .get(&vol)
                        .cloned()
                        .unwrap_or_else(|| format!("#{vol}")),
                    path: String::new(),
                    ino: ino.0,
                    live: false,
                    generations: Vec::new(),
                    problem,
                });
                hit.live |= live;
                hit.generations.push(generation.0);
            }
            _ => {}
        }
    }
    for ((vol, ino), mut hit) in hits {
        hit.path = path_of(&parents, vol, ino);
        hit.generations.sort_unstable();
        hit.generations.dedup();
        rep.damaged.push(hit);
    }
    rep.damaged
        .sort_by(|a, b| (&a.volume, &a.path).cmp(&(&b.volume, &b.path)));
    at.extents = rep.extents;
    let _ = tell(&mut at);
    Ok(Some(rep))
}

/// The path of `ino` in volume `vol` by the entries in `parents`, else `<inode N>`.
fn path_of(parents: &HashMap<(u64, u64), (u64, Vec<u8>)>, vol: u64, ino: u64) -> String {
    let mut parts = Vec::new();
    let mut at = ino;
    while at != InodeNo::ROOT.0 {
        match parents.get(&(vol, at)) {
            Some((parent, name)) if parts.len() < 4096 => {
                parts.push(String::from_utf8_lossy(name).into_owned());
                at = *parent;
            }
            _ => return format!("<inode {ino}>"),
        }
    }
    parts.reverse();
    format!("/{}", parts.join("/"))
}
