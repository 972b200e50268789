//! Pack files: append-only files under `packs/` that hold chunk bodies.
//!
//! Owns the files, not the index: which bytes are live is recorded in redb (`chunks`,
//! `packs`). Invariants: bytes are appended and synced *before* the redb commit that
//! references them (the writer calls [`PackStore::sync`] first); opening never shortens a
//! pack: what the index does not account for is judged (and an unfinished tail set aside)
//! by [`super::open`] before this store is opened. Each open appends to a new pack, so the
//! packs one daemon run appended to are those from the one it opened on. Chunks start on
//! 4 KiB boundaries so that freeing one can punch an exact hole.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// A pack rolls over to the next one past this size.
pub(crate) const PACK_LIMIT: u64 = 1 << 30;
pub const ALIGN: u64 = 4096;
/// Appended bytes after which the current pack's new bytes are handed to writeback (without
/// waiting for it), so that the disk works while chunks are still being hashed and appended
/// and a later sync finds most of the data already written.
const WRITEBACK_EVERY: u64 = 8 << 20;
/// Buffers one `preadv` call takes (Linux's IOV_MAX is 1024).
const MAX_IOVECS: usize = 1024;

/// Where a chunk body lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub pack: u32,
    pub offset: u64,
    pub len: u32,
}

impl Loc {
    /// End of the chunk rounded up to the alignment: the committed length it needs.
    pub fn end(&self) -> u64 {
        (self.offset + self.len as u64).div_ceil(ALIGN) * ALIGN
    }
}

/// Freed chunks as few ranges as possible (for [`PackStore::punch`]): chunks that touch in a
/// pack are merged into one range covering exactly their aligned spans. A file written in
/// order frees runs of neighbouring chunks, so deleting it takes a few punches, not one per
/// block.
pub fn coalesce(mut locs: Vec<Loc>) -> Vec<Loc> {
    locs.sort_unstable_by_key(|l| (l.pack, l.offset));
    let mut out: Vec<Loc> = Vec::with_capacity(locs.len());
    for l in locs {
        if let Some(last) = out.last_mut()
            && last.pack == l.pack
            && l.offset <= last.end()
            && let Ok(len) = u32::try_from(l.end().max(last.end()) - last.offset)
        {
            last.len = len;
            continue;
        }
        out.push(l);
    }
    out
}

/// Where a body of a run goes, with the file it goes to.
type Place = (Loc, Arc<File>);
/// A range of a pack to hand to writeback once written (file, from, to).
type Kick = (Arc<File>, u64, u64);

struct Current {
    id: u32,
    file: Arc<File>,
    len: u64,
    /// Bytes before this offset have been handed to writeback.
    kicked: u64,
}

pub struct PackStore {
    dir: PathBuf,
    current: Mutex<Current>,
    files: RwLock<HashMap<u32, Arc<File>>>,
    unsynced: Mutex<HashSet<u32>>,
    /// Held from taking the unsynced set to the end of its fdatasyncs: a second caller
    /// must not find the set empty and return while the first is still syncing.
    syncing: Mutex<()>,
    /// Tests' fault plan (see `super::fault`).
    pub(crate) faults: Option<Arc<super::fault::Faults>>,
}

pub(crate) fn pack_path(dir: &Path, id: u32) -> PathBuf {
    dir.join(format!("{id:08}.pack"))
}

fn open_pack(dir: &Path, id: u32) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(false)
        .open(pack_path(dir, id))
}

/// Creates pack `id` to append to; an existing file is used only if it is empty (never cut).
fn new_pack(dir: &Path, id: u32) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(pack_path(dir, id))?;
    if file.metadata()?.len() != 0 {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("pack {id:08}.pack already holds bytes the index does not know"),
        ));
    }
    Ok(file)
}

impl PackStore {
    /// Opens every pack in `existing` (ids of files in `dir`, checked by [`super::open`])
    /// and a new, empty pack `next`, which new chunks go to. Never shortens a pack.
    pub fn open(dir: &Path, existing: &[u32], next: u32) -> io::Result<PackStore> {
        std::fs::create_dir_all(dir)?;
        let mut files = HashMap::new();
        for &id in existing {
            if id != next {
                files.insert(id, Arc::new(open_pack(dir, id)?));
            }
        }
        let id = next;
        let file = Arc::new(new_pack(dir, id)?);
        files.insert(id, file.clone());
        Ok(PackStore {
            dir: dir.to_path_buf(),
            current: Mutex::new(Current {
                id,
                file,
                len: 0,
                kicked: 0,
            }),
            files: RwLock::new(files),
            unsynced: Mutex::new(HashSet::new()),
            syncing: Mutex::new(()),
            faults: None,
        })
    }

    /// Appends one chunk body; returns where it went. Not durable until [`PackStore::sync`].
    pub fn append(&self, bytes: &[u8]) -> io::Result<Loc> {
        self.append_run(&[bytes]).map(|mut locs| locs.remove(0))
    }

    /// Appends several chunk bodies as one run, in the order given: each right after the
    /// one before (in the next pack when this one is full), under one take of the pack
    /// lock. Returns each body's place; not durable until [`PackStore::sync`].
    pub fn append_run(&self, bodies: &[&[u8]]) -> io::Result<Vec<Loc>> {
        let (places, kicks) = self.reserve(bodies)?;
        for (bytes, (loc, file)) in bodies.iter().zip(&places) {
            super::fault::check(&self.faults, super::fault::FaultOp::Write)?;
            file.write_all_at(bytes, loc.offset)?;
        }
        for (file, from, to) in kicks {
            // Start writeback of what was appended so far. Advisory: bytes other threads are
            // still writing in this range, or an error, are left to the next sync.
            // SAFETY: plain syscall on an open descriptor; no memory is passed.
            unsafe {
                libc::sync_file_range(
                    file.as_raw_fd(),
                    from as libc::off64_t,
                    (to - from) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                )
            };
        }
        let mut unsynced = self
            .unsynced
            .lock()
            .map_err(|_| io::Error::other("pack lock poisoned"))?;
        unsynced.extend(places.iter().map(|(loc, _)| loc.pack));
        Ok(places.into_iter().map(|(loc, _)| loc).collect())
    }

    /// Places `bodies` one after the other at the end of the current pack (rolling over to
    /// a new pack past [`PACK_LIMIT`]); returns each place with its file, and the ranges
    /// to hand to writeback once written.
    fn reserve(&self, bodies: &[&[u8]]) -> io::Result<(Vec<Place>, Vec<Kick>)> {
        let mut places = Vec::with_capacity(bodies.len());
        let mut kicks = Vec::new();
        let mut cur = self
            .current
            .lock()
            .map_err(|_| io::Error::other("pack lock poisoned"))?;
        for bytes in bodies {
            let len = u32::try_from(bytes.len())
                .map_err(|_| io::Error::other("chunk larger than 4 GiB"))?;
            if cur.len + bytes.len() as u64 > PACK_LIMIT && cur.len > 0 {
                let id = cur.id + 1;
                let file = Arc::new(new_pack(&self.dir, id)?);
                self.files
                    .write()
                    .map_err(|_| io::Error::other("pack lock poisoned"))?
                    .insert(id, file.clone());
                *cur = Current {
                    id,
                    file,
                    len: 0,
                    kicked: 0,
                };
            }
            let offset = cur.len;
            cur.len = (offset + bytes.len() as u64).div_ceil(ALIGN) * ALIGN;
            if cur.len - cur.kicked >= WRITEBACK_EVERY {
                kicks.push((cur.file.clone(), cur.kicked, cur.len));
                cur.kicked = cur.len;
            }
            let loc = Loc {
                pack: cur.id,
                offset,
                len,
            };
            places.push((loc, cur.file.clone()));
        }
        Ok((places, kicks))
    }

    /// The pack new chunks are appended to (None if its lock is poisoned).
    pub fn current_pack(&self) -> Option<u32> {
        self.current.lock().ok().map(|c| c.id)
    }

    fn file(&self, id: u32) -> io::Result<Arc<File>> {
        if let Some(f) = self
            .files
            .read()
            .map_err(|_| io::Error::other("pack lock poisoned"))?
            .get(&id)
        {
            return Ok(f.clone());
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("pack {id:08} is missing"),
        ))
    }

    /// Asks the kernel to start reading `len` bytes of `pack` from `offset` in the
    /// background (a hint: nothing fails if it cannot), so that a reader that hashes one
    /// run of chunks does not wait for the disk on the next.
    pub fn will_need(&self, pack: u32, offset: u64, len: u64) {
        if let Ok(f) = self.file(pack) {
            let _ = rustix::fs::fadvise(
                &*f,
                offset,
                std::num::NonZeroU64::new(len),
                rustix::fs::Advice::WillNeed,
            );
        }
    }

    /// Reads a chunk body into `buf` (which must be `loc.len` long).
    pub fn read(&self, loc: Loc, buf: &mut [u8]) -> io::Result<()> {
        self.file(loc.pack)?.read_exact_at(buf, loc.offset)
    }

    /// Reads `pack` from `offset` into `bufs` in order, filling each completely: one
    /// `preadv` for a run of neighbouring chunks (the caller puts scratch buffers where the
    /// run has alignment gaps), repeated only for a short read.
    pub fn read_vectored(
        &self,
        pack: u32,
        offset: u64,
        mut bufs: &mut [io::IoSliceMut<'_>],
    ) -> io::Result<()> {
        let file = self.file(pack)?;
        let mut at = offset;
        while !bufs.is_empty() {
            let n = bufs.len().min(MAX_IOVECS);
            let got = match rustix::io::preadv(&*file, &mut bufs[..n], at) {
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("pack {pack:08} ends before offset {at}"),
                    ));
                }
                Ok(got) => got,
            };
            at += got as u64;
            io::IoSliceMut::advance_slices(&mut bufs, got);
        }
        Ok(())
    }

    /// Makes every appended byte durable (fdatasync of each pack written since last time).
    pub fn sync(&self) -> io::Result<()> {
        let _one_at_a_time = self
            .syncing
            .lock()
            .map_err(|_| io::Error::other("pack lock poisoned"))?;
        let ids: Vec<u32> = self
            .unsynced
            .lock()
            .map_err(|_| io::Error::other("pack lock poisoned"))?
            .drain()
            .collect();
        for (k, &id) in ids.iter().enumerate() {
            let synced = super::fault::check(&self.faults, super::fault::FaultOp::Sync)
                .and_then(|()| self.file(id)?.sync_data());
            if let Err(e) = synced {
                // Not durable: the next sync must try these packs again.
                let mut unsynced = self
                    .unsynced
                    .lock()
                    .map_err(|_| io::Error::other("pack lock poisoned"))?;
                unsynced.extend(&ids[k..]);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Returns the space of a freed chunk to the filesystem. Only call once the commit that
    /// freed it is durable: a crash must never expose a punched hole to a committed row.
    pub fn punch(&self, loc: Loc) -> io::Result<()> {
        use rustix::fs::FallocateFlags;
        let file = self.file(loc.pack)?;
        let len = loc.end() - loc.offset;
        let flags = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        match rustix::fs::fallocate(&*file, flags, loc.offset, len) {
            // A filesystem without hole punching keeps the bytes.
            Ok(()) | Err(rustix::io::Errno::OPNOTSUPP) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Bytes the pack files occupy on disk (allocated blocks, so punched holes do not count).
    pub fn disk_bytes(&self) -> io::Result<u64> {
        use std::os::unix::fs::MetadataExt;
        let files = self
            .files
            .read()
            .map_err(|_| io::Error::other("pack lock poisoned"))?;
        let mut total = 0;
        for f in files.values() {
            total += f.metadata()?.blocks() * 512;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_read_and_reopen_without_cutting() {
        let dir = tempfile::tempdir().unwrap();
        let packs = PackStore::open(dir.path(), &[], 1).unwrap();
        let a = packs.append(b"hello").unwrap();
        let b = packs.append(b"world!").unwrap();
        assert_eq!(a.offset, 0);
        assert_eq!(b.offset, ALIGN, "chunks are aligned");
        let mut buf = vec![0; 6];
        packs.read(b, &mut buf).unwrap();
        assert_eq!(&buf, b"world!");
        packs.sync().unwrap();
        drop(packs);
        // Reopening keeps every byte and appends to the next pack.
        let packs = PackStore::open(dir.path(), &[1], 2).unwrap();
        let mut buf = vec![0; 6];
        packs.read(b, &mut buf).unwrap();
        assert_eq!(&buf, b"world!");
        assert_eq!(packs.append(b"x").unwrap().pack, 2);
    }

    #[test]
    fn a_run_lies_in_the_order_given() {
        let dir = tempfile::tempdir().unwrap();
        let packs = PackStore::open(dir.path(), &[], 1).unwrap();
        packs.append(b"first").unwrap();
        // 24 bodies of 256 KiB + 5 bytes, each with an alignment gap.
        let bodies: Vec<Vec<u8>> = (0..24u8).map(|k| vec![k; (256 << 10) + 5]).collect();
        let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_slice()).collect();
        let locs = packs.append_run(&refs).unwrap();
        assert_eq!(locs[0].offset, ALIGN);
        for (k, pair) in locs.windows(2).enumerate() {
            assert_eq!(pair[1].offset, pair[0].end(), "body {}", k + 1);
        }
        for (loc, body) in locs.iter().zip(&bodies) {
            let mut buf = vec![0; body.len()];
            packs.read(*loc, &mut buf).unwrap();
            assert_eq!(&buf, body);
        }
        assert_eq!(packs.append(b"x").unwrap().offset, locs[23].end());
    }

    #[test]
    fn coalesce_merges_touching_chunks_only() {
        let l = |pack, offset, len| Loc { pack, offset, len };
        let merged = coalesce(vec![
            l(1, 8192, 100),
            l(1, 0, 4096),
            l(1, 4096, 4000),
            l(1, 16384, 10),
            l(2, 12288, 1),
        ]);
        assert_eq!(
            merged,
            vec![l(1, 0, 12288), l(1, 16384, 10), l(2, 12288, 1)]
        );
        assert_eq!(merged[0].end(), 12288);
    }
}
