//! Merkle roots of volume trees at snapshot generations, and the snapshot verify that
//! re-reads every chunk such a tree references.
//!
//! What a root covers (blake3, every part length-prefixed or fixed-size, so no two trees
//! share a byte stream):
//! - a file (any non-directory): its metadata (kind, permissions, owner, group, link count,
//!   size, mtime, ctime, birth time, device number, symlink target: not atime, which reads
//!   change, nor the inode number, the parent or the stored byte count, which are
//!   bookkeeping), its xattrs by name, and its content as the chunk ids and lengths of each
//!   block row in block order (a patched block: base and patches with their offsets);
//! - a directory: its metadata and xattrs, then its entries sorted by name, each as name,
//!   kind code and the child's hash;
//! - a member: its root directory's hash; a snapshot: the member roots in member order
//!   (names are not covered, so renames never change a root).
//!
//! So a root depends only on what the snapshot's view shows, is the same however often it
//! is computed (and across restarts), and two snapshots of unchanged data have the same
//! root. The chunk ids make it cover the bytes: [`Inner::verify_snapshot`] re-reads and
//! re-hashes every chunk the view references and recomputes the root.
//!
//! Reads only, from one read transaction (one committed state).

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::attr::{FileKind, Inode};
use super::{FsError, Inner};
use crate::store::keys::RowId;
use crate::store::pack::Loc;
use crate::store::rows::{RowValue, View};
use crate::store::snapmeta::RootRecord;
use crate::store::verify::VerifyProgress;
use crate::store::{ReadView, Reader, StoreError};
use crate::types::{ChunkId, Generation, InodeNo, VolumeId};

/// Stands in for a child whose inode row is missing (a damaged view).
const MISSING: [u8; 32] = [0; 32];
/// A batch of chunks read with one call (neighbours in a pack) stops growing past this.
const BATCH_BYTES: u64 = 8 << 20;

/// A directory entry as gathered: name, inode, kind code.
type DirEntry = (Vec<u8>, u64, u8);

/// One member of a snapshot to hash: (volume, generation).
pub type Member = (VolumeId, Generation);

/// A damaged file of one member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamagedPath {
    /// Path in the member (as the snapshot names it), or `<inode N>` when unreachable.
    pub path: String,
    pub problem: String,
}

/// What [`Inner::verify_snapshot`] found: the roots recomputed, per member the damaged
/// files, and how much was re-read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeCheck {
    pub roots: RootRecord,
    /// Per member, in member order.
    pub damaged: Vec<Vec<DamagedPath>>,
    pub chunks: u64,
    pub bytes: u64,
}

/// One member's tree, as read from its rows.
#[derive(Default)]
struct Scanned {
    /// Finished hashes of files (and of inodes with rows but no directory entries).
    files: HashMap<u64, [u8; 32]>,
    /// Directories: their metadata hash so far and their entries (name, ino, kind code).
    dirs: HashMap<u64, (blake3::Hasher, Vec<DirEntry>)>,
    /// Chunks referenced: id -> (stored length, inodes referencing it).
    chunks: HashMap<ChunkId, (u32, Vec<u64>)>,
}

/// The inode being gathered while scanning rows (they come in inode order).
struct Open {
    ino: u64,
    hash: blake3::Hasher,
    dir: bool,
    seen: bool,
    entries: Vec<DirEntry>,
}

impl Open {
    fn new(ino: u64) -> Open {
        let mut hash = blake3::Hasher::new();
        hash.update(b"tandem-inode-v1");
        Open {
            ino,
            hash,
            dir: false,
            seen: false,
            entries: Vec::new(),
        }
    }
}

fn put_bytes(h: &mut blake3::Hasher, b: &[u8]) {
    h.update(&(b.len() as u64).to_le_bytes());
    h.update(b);
}

/// The metadata an inode contributes (see the module docs for what is left out).
fn meta_bytes(i: &Inode) -> Vec<u8> {
    let covered = (
        i.kind.code(),
        i.perm,
        i.uid,
        i.gid,
        i.nlink,
        i.size,
        (i.mtime.secs, i.mtime.nsecs),
        (i.ctime.secs, i.ctime.nsecs),
        (i.crtime.secs, i.crtime.nsecs),
        i.rdev,
        &i.target,
    );
    postcard::to_stdvec(&covered).unwrap_or_default()
}

impl Scanned {
    fn close(&mut self, o: Open) {
        if !o.seen {
            // Rows without an inode row: not part of any tree.
            return;
        }
        if o.dir {
            self.dirs.insert(o.ino, (o.hash, o.entries));
        } else {
            self.files.insert(o.ino, *o.hash.finalize().as_bytes());
        }
    }

    /// Reads every row `vol` shows at `g`, hashing files and gathering directories (and,
    /// with `chunks`, which inodes reference which chunks).
    fn read(
        r: &Reader<'_>,
        vol: VolumeId,
        g: Generation,
        chunks: bool,
    ) -> Result<Scanned, FsError> {
        let mut s = Scanned::default();
        let mut open: Option<Open> = None;
        let mut bad: Option<FsError> = None;
        r.volume_rows(vol, View::At(g), |id, v| {
            let ino = id.ino().0;
            if open.as_ref().is_none_or(|o| o.ino != ino)
                && let Some(done) = open.replace(Open::new(ino))
            {
                s.close(done);
            }
            let Some(o) = open.as_mut() else {
                return Ok(false);
            };
            match (id, v) {
                (RowId::Inode(_), RowValue::Inode(b)) => match Inode::decode(&b) {
                    Ok(i) => {
                        o.seen = true;
                        o.dir = i.kind == FileKind::Dir;
                        o.hash.update(b"M");
                        put_bytes(&mut o.hash, &meta_bytes(&i));
                    }
                    Err(e) => {
                        bad = Some(e);
                        return Ok(false);
                    }
                },
                (RowId::Xattr(_, name), RowValue::Xattr(value)) => {
                    o.hash.update(b"X");
                    put_bytes(&mut o.hash, &name);
                    put_bytes(&mut o.hash, &value);
                }
                (RowId::Dirent(_, _, name), RowValue::Dirent { ino: child, kind }) => {
                    o.entries.push((name, child.0, kind));
                }
                (RowId::Extent(_, block), v @ (RowValue::Extent { .. } | RowValue::Patched(_))) => {
                    o.hash.update(b"B");
                    o.hash.update(&block.to_le_bytes());
                    match &v {
                        RowValue::Patched(p) => {
                            o.hash.update(b"P");
                            if let Some((c, l)) = p.base {
                                o.hash.update(b"b");
                                o.hash.update(&c.0);
                                o.hash.update(&l.to_le_bytes());
                            }
                            o.hash.update(&(p.patches.len() as u64).to_le_bytes());
                            for x in &p.patches {
                                o.hash.update(&x.at.to_le_bytes());
                                o.hash.update(&x.chunk.0);
                                o.hash.update(&x.len.to_le_bytes());
                            }
                        }
                        _ => {
                            o.hash.update(b"C");
                            for (c, l) in v.chunks() {
                                o.hash.update(&c.0);
                                o.hash.update(&l.to_le_bytes());
                            }
                        }
                    }
                    if chunks {
                        for (c, l) in v.chunks() {
                            let e = s.chunks.entry(c).or_insert_with(|| (l, Vec::new()));
                            if e.1.last() != Some(&ino) {
                                e.1.push(ino);
                            }
                        }
                    }
                }
                _ => {
                    bad = Some(FsError::Store(StoreError::Damaged(format!(
                        "a row of inode {ino} of volume {vol} has the wrong type"
                    ))));
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        if let Some(e) = bad {
            return Err(e);
        }
        if let Some(done) = open.take() {
            s.close(done);
        }
        Ok(s)
    }

    /// The root directory's hash: directories bottom up over their entries sorted by name.
    fn root(&self) -> Result<[u8; 32], FsError> {
        let mut done: HashMap<u64, [u8; 32]> = HashMap::new();
        let mut busy: HashSet<u64> = HashSet::new();
        let mut stack = vec![(InodeNo::ROOT.0, false)];
        while let Some((ino, expanded)) = stack.pop() {
            if done.contains_key(&ino) {
                continue;
            }
            let Some((hash, entries)) = self.dirs.get(&ino) else {
                continue;
            };
            if !expanded {
                if !busy.insert(ino) {
                    return Err(FsError::Store(StoreError::Damaged(format!(
                        "directory inode {ino} is inside itself"
                    ))));
                }
                stack.push((ino, true));
                for (_, child, _) in entries {
                    if self.dirs.contains_key(child) && !done.contains_key(child) {
                        stack.push((*child, false));
                    }
                }
                continue;
            }
            let mut sorted: Vec<&DirEntry> = entries.iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            let mut h = hash.clone();
            h.update(b"D");
            h.update(&(sorted.len() as u64).to_le_bytes());
            for (name, child, kind) in sorted {
                put_bytes(&mut h, name);
                h.update(&[*kind]);
                let c = done
                    .get(child)
                    .or_else(|| self.files.get(child))
                    .unwrap_or(&MISSING);
                h.update(c);
            }
            busy.remove(&ino);
            done.insert(ino, *h.finalize().as_bytes());
        }
        done.get(&InodeNo::ROOT.0).copied().ok_or_else(|| {
            FsError::Store(StoreError::Damaged(
                "the snapshot's view has no root directory".into(),
            ))
        })
    }

    /// The path of `ino` by the entries of the view, else `<inode N>`.
    fn path_of(&self, parents: &HashMap<u64, (u64, &[u8])>, ino: u64) -> String {
        let mut parts = Vec::new();
        let mut at = ino;
        while at != InodeNo::ROOT.0 {
            match parents.get(&at) {
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

    fn parents(&self) -> HashMap<u64, (u64, &[u8])> {
        let mut out = HashMap::new();
        for (dir, (_, entries)) in &self.dirs {
            for (name, child, _) in entries {
                out.insert(*child, (*dir, name.as_slice()));
            }
        }
        out
    }
}

/// The snapshot root over its member roots.
fn combine(members: Vec<[u8; 32]>) -> RootRecord {
    let mut h = blake3::Hasher::new();
    h.update(b"tandem-snapshot-v1");
    h.update(&(members.len() as u64).to_le_bytes());
    for m in &members {
        h.update(m);
    }
    RootRecord {
        root: *h.finalize().as_bytes(),
        members,
        computed_us: crate::fs::attr::Timestamp::now()
            .secs
            .saturating_mul(1_000_000),
    }
}

impl Inner {
    /// The Merkle root of a snapshot's members (metadata only: no chunk is read).
    /// O(rows the members' volumes hold).
    pub fn snapshot_root(&self, members: &[Member]) -> Result<RootRecord, FsError> {
        let r = self.store.read()?;
        let mut roots = Vec::with_capacity(members.len());
        for &(vol, g) in members {
            roots.push(Scanned::read(&r, vol, g, false)?.root()?);
        }
        Ok(combine(roots))
    }

    /// Re-reads every chunk the members' views reference, re-hashing each, and recomputes
    /// the root, telling `progress` how far it got after each batch of chunks; `None` when
    /// `progress` broke it off.
    pub fn verify_snapshot(
        &self,
        members: &[Member],
        progress: &mut dyn FnMut(&VerifyProgress) -> ControlFlow<()>,
    ) -> Result<Option<TreeCheck>, FsError> {
        let started = Instant::now();
        let r = self.store.read()?;
        let mut scans = Vec::with_capacity(members.len());
        let mut roots = Vec::with_capacity(members.len());
        for &(vol, g) in members {
            let s = Scanned::read(&r, vol, g, true)?;
            roots.push(s.root()?);
            scans.push(s);
        }
        // Every distinct chunk once, in pack order.
        let mut wanted: Vec<(u32, u64, ChunkId, u32)> = Vec::new();
        let mut seen: HashSet<ChunkId> = HashSet::new();
        let mut problems: HashMap<ChunkId, String> = HashMap::new();
        let mut at = VerifyProgress::default();
        for s in &scans {
            for (&id, &(len, _)) in &s.chunks {
                if !seen.insert(id) {
                    continue;
                }
                match r.chunk(id)? {
                    Some(row) => {
                        wanted.push((row.loc.pack, row.loc.offset, id, row.loc.len));
                        at.total_bytes += u64::from(row.loc.len);
                    }
                    None => {
                        problems.insert(id, format!("chunk {id} ({len} bytes) is not stored"));
                    }
                }
                at.total_chunks += 1;
            }
        }
        wanted.sort_unstable();
        let mut tell = |at: &mut VerifyProgress| {
            at.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            progress(at).is_continue()
        };
        at.chunks = problems.len() as u64;
        at.bad_chunks = problems.len() as u64;
        if !tell(&mut at) {
            return Ok(None);
        }
        // Batches of about BATCH_BYTES; the disk reads the next while this one is hashed.
        let mut batches: Vec<&[(u32, u64, ChunkId, u32)]> = Vec::new();
        let mut rest = wanted.as_slice();
        while !rest.is_empty() {
            let mut n = 0;
            let mut size = 0u64;
            while let Some(&(_, _, _, len)) = rest.get(n)
                && (n == 0 || size + u64::from(len) <= BATCH_BYTES)
            {
                size += u64::from(len);
                n += 1;
            }
            let (batch, after) = rest.split_at(n);
            batches.push(batch);
            rest = after;
        }
        let prefetch = |batch: Option<&&[(u32, u64, ChunkId, u32)]>| {
            if let Some(b) = batch {
                let locs: Vec<Loc> = b
                    .iter()
                    .map(|&(pack, offset, _, len)| Loc { pack, offset, len })
                    .collect();
                r.prefetch(&locs);
            }
        };
        prefetch(batches.first());
        for (k, batch) in batches.iter().enumerate() {
            prefetch(batches.get(k + 1));
            let size: u64 = batch.iter().map(|&(.., len)| u64::from(len)).sum();
            let mut buf = vec![0u8; size as usize];
            let mut slices = Vec::with_capacity(batch.len());
            let mut tail = buf.as_mut_slice();
            for &(_, _, id, len) in batch.iter() {
                let (head, t) = tail.split_at_mut(len as usize);
                slices.push((id, head));
                tail = t;
            }
            if r.read_chunks_into(slices).is_err() {
                // Find which: each on its own.
                for &(pack, offset, id, _) in batch.iter() {
                    if let Err(e) = r.read_chunk(id) {
                        let problem = match e {
                            StoreError::Corrupt { .. } => format!(
                                "chunk {id} (pack {pack:08}.pack at {offset}) no longer hashes to its id"
                            ),
                            other => format!("chunk {id} is unreadable: {other}"),
                        };
                        problems.insert(id, problem);
                    }
                }
            }
            at.chunks += batch.len() as u64;
            at.bytes += size;
            at.bad_chunks = problems.len() as u64;
            if !tell(&mut at) {
                return Ok(None);
            }
        }
        let mut damaged = Vec::with_capacity(scans.len());
        for s in &scans {
            let parents = s.parents();
            let mut hit: HashMap<u64, String> = HashMap::new();
            for (id, (_, inos)) in &s.chunks {
                if let Some(p) = problems.get(id) {
                    for ino in inos {
                        hit.entry(*ino).or_insert_with(|| p.clone());
                    }
                }
            }
            let mut list: Vec<DamagedPath> = hit
                .into_iter()
                .map(|(ino, problem)| DamagedPath {
                    path: s.path_of(&parents, ino),
                    problem,
                })
                .collect();
            list.sort_by(|a, b| a.path.cmp(&b.path));
            damaged.push(list);
        }
        Ok(Some(TreeCheck {
            roots: combine(roots),
            damaged,
            chunks: at.chunks,
            bytes: at.bytes,
        }))
    }
}
