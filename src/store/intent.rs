//! The intent log: a ring file of checksummed records that makes an fsync durable with ONE
//! sync, shared by every fsync that arrives meanwhile (the idea of ZFS's ZIL).
//!
//! Owns the log file and its format, not what records mean (`crate::fs::intent` decides
//! that). The redb commit that turns buffered writes into chunks and rows records how far it
//! covers the log (`meta.log_covered`); the bytes below that position may be overwritten.
//!
//! ## Layout
//! The file is a 4 KiB header followed by a ring of `capacity` bytes (a multiple of 4 KiB):
//!
//! | header offset | field |
//! |---|---|
//! | 0  | magic `b"tandem-intent-log"` (17 bytes), zero padded to 24 |
//! | 24 | format version u32 LE (= 1) |
//! | 28 | capacity u64 LE |
//! | 36 | blake3 of bytes 0..36, first 8 bytes |
//!
//! A position in the log (an [`Lsn`]) grows forever; it lives at byte `4096 + lsn % capacity`.
//! Every record starts on an 8-byte boundary with a 48-byte header, all LE:
//!
//! | offset | field |
//! |---|---|
//! | 0  | magic u32 `0x544C_4F47` |
//! | 4  | kind u16 ([`PAD`] or a kind of the caller's, never 0) |
//! | 6  | zero u16 |
//! | 8  | epoch u64: which opening of the pool wrote it |
//! | 16 | lsn u64: its own position |
//! | 24 | payload length u32 |
//! | 28 | zero u32 |
//! | 32 | blake3 over bytes 0..32 and the payload (a pad: bytes 0..32 only), first 16 bytes |
//!
//! One [`IntentLog::append`] writes one batch: its records, then a pad record that fills up
//! to the next 4 KiB boundary, so a later batch never rewrites a page holding an
//! acknowledged record. A batch never wraps: when it does not fit before the end of the
//! ring, a pad fills the ring's end and the batch starts the next lap.
//!
//! ## Invariants
//! - A record is valid only at the position the chain of valid records before it leads to,
//!   with the expected epoch and lsn and a matching checksum: a torn or stale tail (an older
//!   lap, an earlier opening) ends the replay; it can never be taken for a record.
//! - An append never overwrites bytes at or above the covered position: a full log is
//!   reported ([`Appended::Full`]) and the caller makes room by committing.
//! - [`IntentLog::sync_to`] returns once every byte up to the given position is on disk;
//!   concurrent callers share one fdatasync.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};

/// A position in the log: bytes ever appended before it (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

const FILE_MAGIC: &[u8; 17] = b"tandem-intent-log";
const VERSION: u32 = 1;
const HEADER: u64 = 4096;
const REC_MAGIC: u32 = 0x544C_4F47;
const REC_HEADER: usize = 48;
/// Kind of the records that fill a batch up to its 4 KiB boundary (or the ring's end).
pub const PAD: u16 = 0xFFFF;
const PAGE: u64 = 4096;
/// The file is zero-filled ahead of the writer in steps of this size, so that an append
/// overwrites allocated blocks and its fdatasync writes data, not a new file size.
const ZERO_STEP: u64 = 4 << 20;

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Written (not yet durable: see [`IntentLog::sync_to`]); the batch ends before this.
    At(Lsn),
    /// The ring holds no room for the batch until a commit covers more of it.
    Full,
}

struct State {
    /// Where the next batch goes.
    end: Lsn,
    /// Bytes below this position are covered by a durable commit and may be overwritten.
    covered: Lsn,
    /// Ring bytes (from the ring's start) already allocated with zeros or records.
    zeroed: u64,
    epoch: u64,
    /// False until [`IntentLog::start`]: nothing may be appended while replay runs.
    started: bool,
}

struct Durable {
    /// Every byte below this position is on disk.
    upto: Lsn,
    /// A caller is running the fdatasync; others wait for it.
    syncing: bool,
}

/// The pool's intent log file.
pub struct IntentLog {
    path: PathBuf,
    file: File,
    capacity: u64,
    state: Mutex<State>,
    durable: Mutex<Durable>,
    synced: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn bad(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

fn header_bytes(capacity: u64) -> [u8; 44] {
    let mut h = [0u8; 44];
    h[..17].copy_from_slice(FILE_MAGIC);
    h[24..28].copy_from_slice(&VERSION.to_le_bytes());
    h[28..36].copy_from_slice(&capacity.to_le_bytes());
    let sum = blake3::hash(&h[..36]);
    h[36..44].copy_from_slice(&sum.as_bytes()[..8]);
    h
}

fn record_sum(head: &[u8], payload: &[u8]) -> [u8; 16] {
    let mut h = blake3::Hasher::new();
    h.update(&head[..32]);
    h.update(payload);
    let mut out = [0u8; 16];
    out.copy_from_slice(&h.finalize().as_bytes()[..16]);
    out
}

fn record_head(kind: u16, epoch: u64, lsn: Lsn, len: u32) -> [u8; REC_HEADER] {
    let mut h = [0u8; REC_HEADER];
    h[0..4].copy_from_slice(&REC_MAGIC.to_le_bytes());
    h[4..6].copy_from_slice(&kind.to_le_bytes());
    h[8..16].copy_from_slice(&epoch.to_le_bytes());
    h[16..24].copy_from_slice(&lsn.0.to_le_bytes());
    h[24..28].copy_from_slice(&len.to_le_bytes());
    h
}

/// Bytes a record with `len` payload bytes takes (8-byte aligned).
fn record_size(len: usize) -> u64 {
    (REC_HEADER as u64 + len as u64).div_ceil(8) * 8
}

/// Largest batch [`IntentLog::append`] accepts for a ring of `capacity` bytes: larger
/// ones are for the caller to commit directly.
pub fn max_batch(capacity: u64) -> u64 {
    capacity / 4
}

impl IntentLog {
    /// Opens the log at `path`, creating it with `capacity` bytes of ring when it does not
    /// exist (an existing log keeps its own capacity). Nothing can be appended until
    /// [`IntentLog::start`]; [`IntentLog::replay`] reads what a crash left.
    pub fn open(path: &Path, capacity: u64) -> io::Result<IntentLog> {
        let capacity = capacity.div_ceil(PAGE).max(16) * PAGE;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        let len = file.metadata()?.len();
        let capacity = if len == 0 {
            file.write_all_at(&header_bytes(capacity), 0)?;
            file.set_len(HEADER)?;
            // Allocate the ring now: an fsync must never meet a full disk in the log.
            match rustix::fs::fallocate(
                &file,
                rustix::fs::FallocateFlags::KEEP_SIZE,
                HEADER,
                capacity,
            ) {
                Ok(()) | Err(rustix::io::Errno::OPNOTSUPP) => {}
                Err(e) => return Err(e.into()),
            }
            file.sync_all()?;
            // The log may be a symlink to another device: sync the directory it is really in.
            let real = std::fs::canonicalize(path)?;
            if let Some(dir) = real.parent() {
                File::open(dir)?.sync_all()?;
            }
            capacity
        } else {
            let mut h = [0u8; 44];
            file.read_exact_at(&mut h, 0)
                .map_err(|_| bad(path, "the intent log's header is cut short"))?;
            let cap = u64::from_le_bytes(h[28..36].try_into().unwrap_or_default());
            if h[..17] != FILE_MAGIC[..] || header_bytes(cap) != h {
                return Err(bad(
                    path,
                    "not a tandem intent log, or its header is damaged; move it aside only if \
                     the pool was shut down cleanly (it may hold fsynced writes)",
                ));
            }
            cap
        };
        let zeroed = len.saturating_sub(HEADER).min(capacity);
        Ok(IntentLog {
            path: path.to_path_buf(),
            file,
            capacity,
            state: Mutex::new(State {
                end: Lsn(0),
                covered: Lsn(0),
                zeroed,
                epoch: 0,
                started: false,
            }),
            durable: Mutex::new(Durable {
                upto: Lsn(0),
                syncing: false,
            }),
            synced: Condvar::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    fn phys(&self, lsn: Lsn) -> u64 {
        HEADER + lsn.0 % self.capacity
    }

    /// Calls `f(lsn, kind, payload)` for each record written at `epoch` from `from` on, in
    /// order, up to the first position that holds no such record; returns that position.
    /// Pads are skipped. Reading stops (never fails) at a torn, stale or foreign tail.
    pub fn replay(
        &self,
        from: Lsn,
        epoch: u64,
        mut f: impl FnMut(Lsn, u16, &[u8]),
    ) -> io::Result<Lsn> {
        let mut at = from;
        let mut head = [0u8; REC_HEADER];
        loop {
            // A batch never crosses the ring's end; the lap's next batch starts at its start.
            if self.capacity - at.0 % self.capacity < REC_HEADER as u64 {
                break;
            }
            if self.file.read_exact_at(&mut head, self.phys(at)).is_err() {
                break;
            }
            let field = |r: std::ops::Range<usize>| -> u64 {
                let mut b = [0u8; 8];
                b[..r.len()].copy_from_slice(&head[r]);
                u64::from_le_bytes(b)
            };
            if field(0..4) != REC_MAGIC as u64
                || field(8..16) != epoch
                || field(16..24) != at.0
                || field(6..8) != 0
                || field(28..32) != 0
            {
                break;
            }
            let kind = field(4..6) as u16;
            let len = field(24..28) as usize;
            let size = record_size(len);
            if kind == 0 || size > self.capacity - at.0 % self.capacity {
                break;
            }
            if kind == PAD {
                if record_sum(&head, &[]) != head[32..48] {
                    break;
                }
            } else {
                let mut payload = vec![0u8; len];
                if self
                    .file
                    .read_exact_at(&mut payload, self.phys(at) + REC_HEADER as u64)
                    .is_err()
                    || record_sum(&head, &payload) != head[32..48]
                {
                    break;
                }
                f(at, kind, &payload);
            }
            at = Lsn(at.0 + size);
        }
        Ok(at)
    }

    /// Where appends start after a replay that stopped at `replayed`: the next page.
    pub fn start_point(replayed: Lsn) -> Lsn {
        Lsn(replayed.0.div_ceil(PAGE) * PAGE)
    }

    /// Lets appends start at `end` (a [`IntentLog::start_point`]) with records of `epoch`.
    /// Call once a durable commit records `epoch` and `covered` = `end`, so a stale record
    /// past `end` can never be replayed.
    pub fn start(&self, end: Lsn, epoch: u64) {
        debug_assert_eq!(end, Self::start_point(end));
        let mut st = lock(&self.state);
        st.end = end;
        st.covered = end;
        st.epoch = epoch;
        st.started = true;
        lock(&self.durable).upto = end;
    }

    /// Where the next batch goes: every record appended so far lies below it.
    pub fn end(&self) -> Lsn {
        lock(&self.state).end
    }

    /// A durable commit covers everything below `lsn`: that part of the ring may be reused.
    pub fn set_covered(&self, lsn: Lsn) {
        let mut st = lock(&self.state);
        if lsn > st.covered && lsn <= st.end {
            st.covered = lsn;
        }
    }

    /// Records below this position are covered by a durable commit.
    pub fn covered(&self) -> Lsn {
        lock(&self.state).covered
    }

    /// Bytes of the ring in use (appended and not yet covered by a durable commit).
    pub fn used(&self) -> u64 {
        let st = lock(&self.state);
        st.end.0 - st.covered.0
    }

    /// Appends one batch of `(kind, payload)` records (kinds other than 0 and [`PAD`]) and
    /// returns where the batch ends; not durable until [`IntentLog::sync_to`] that position.
    pub fn append(&self, records: &[(u16, &[u8])]) -> io::Result<Appended> {
        let body: u64 = records.iter().map(|(_, p)| record_size(p.len())).sum();
        // Room for the closing pad.
        let size = (body + REC_HEADER as u64).div_ceil(PAGE) * PAGE;
        if size > max_batch(self.capacity) {
            return Ok(Appended::Full);
        }
        let mut st = lock(&self.state);
        if !st.started {
            return Err(io::Error::other("the intent log is not started"));
        }
        let mut at = st.end;
        let room = self.capacity - at.0 % self.capacity;
        let wrap = size > room;
        let start = if wrap { Lsn(at.0 + room) } else { at };
        if start.0 + size - st.covered.0 > self.capacity {
            return Ok(Appended::Full);
        }
        let epoch = st.epoch;
        if wrap {
            // Pad the ring's end so replay walks on to the next lap.
            let mut h = record_head(PAD, epoch, at, (room - REC_HEADER as u64) as u32);
            let sum = record_sum(&h, &[]);
            h[32..48].copy_from_slice(&sum);
            self.file.write_all_at(&h, self.phys(at))?;
            at = start;
        }
        let mut buf = Vec::with_capacity(size as usize);
        for (kind, payload) in records {
            debug_assert!(*kind != 0 && *kind != PAD);
            let lsn = Lsn(at.0 + buf.len() as u64);
            let len = u32::try_from(payload.len())
                .map_err(|_| io::Error::other("intent record larger than 4 GiB"))?;
            let mut h = record_head(*kind, epoch, lsn, len);
            let sum = record_sum(&h, payload);
            h[32..48].copy_from_slice(&sum);
            buf.extend_from_slice(&h);
            buf.extend_from_slice(payload);
            buf.resize(buf.len().div_ceil(8) * 8, 0);
        }
        let pad_at = Lsn(at.0 + buf.len() as u64);
        let pad_len = size - buf.len() as u64 - REC_HEADER as u64;
        let mut h = record_head(PAD, epoch, pad_at, pad_len as u32);
        let sum = record_sum(&h, &[]);
        h[32..48].copy_from_slice(&sum);
        buf.extend_from_slice(&h);
        let ring_off = at.0 % self.capacity;
        let need = ring_off + size;
        if need > st.zeroed {
            // Allocate ahead with zeros: the appends' fdatasyncs then write data only.
            let to = (need.div_ceil(ZERO_STEP) * ZERO_STEP).min(self.capacity);
            let zeros = vec![0u8; (to - st.zeroed) as usize];
            self.file.write_all_at(&zeros, HEADER + st.zeroed)?;
            st.zeroed = to;
        }
        self.file.write_all_at(&buf, self.phys(at))?;
        st.end = Lsn(at.0 + size);
        Ok(Appended::At(st.end))
    }

    /// Returns once every batch ending at or before `lsn` is on disk. Callers arriving while
    /// a sync runs wait for it and, if it did not cover them, share the next one.
    pub fn sync_to(&self, lsn: Lsn) -> io::Result<()> {
        let mut d = lock(&self.durable);
        loop {
            if d.upto >= lsn {
                return Ok(());
            }
            if d.syncing {
                d = self.synced.wait(d).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            d.syncing = true;
            drop(d);
            let target = self.end();
            let res = self.file.sync_data();
            d = lock(&self.durable);
            d.syncing = false;
            if res.is_ok() && target > d.upto {
                d.upto = target;
            }
            self.synced.notify_all();
            res?;
        }
    }

    /// Every byte up to here is on disk (for tests that cut the log's unsynced tail).
    pub fn durable_end(&self) -> Lsn {
        lock(&self.durable).upto
    }

    /// The file offset where the byte at `lsn` lives (for tests that damage the log).
    pub fn file_offset(&self, lsn: Lsn) -> u64 {
        self.phys(lsn)
    }
}

// ---- what redb records about the log (see `tables.rs`: `log_applied`, `meta.log_*`) ----

use super::tables::meta_keys::{LOG_COVERED, LOG_EPOCH};

/// What the last commit says about the log: where replay starts, in which epoch, and the
/// positions below which a file's (or, for inode 0, a volume's) records are already in the
/// rows.
#[derive(Debug, Default, Clone)]
pub struct LogMarks {
    pub covered: Lsn,
    pub epoch: u64,
    pub applied: std::collections::HashMap<(crate::types::VolumeId, u64), Lsn>,
}

impl LogMarks {
    /// True when a record of `(vol, ino)` at `lsn` is already in the rows.
    pub fn applied(&self, vol: crate::types::VolumeId, ino: u64, lsn: Lsn) -> bool {
        lsn < self.covered
            || self.applied.get(&(vol, ino)).is_some_and(|&a| lsn < a)
            || self.applied.get(&(vol, 0)).is_some_and(|&a| lsn < a)
    }
}

impl super::Store {
    /// What the last commit says about the intent log.
    pub fn log_marks(&self) -> Result<LogMarks, super::StoreError> {
        use redb::ReadableTable;
        let r = self.read_txn()?;
        let meta = r.open_table(super::tables::META)?;
        let get = |k: &str| super::read::meta_u64(&meta, k);
        let mut marks = LogMarks {
            covered: Lsn(get(LOG_COVERED)?),
            epoch: get(LOG_EPOCH)?,
            applied: Default::default(),
        };
        let t = r.open_table(super::tables::LOG_APPLIED)?;
        for e in t.iter()? {
            let (k, v) = e?;
            let (vol, ino) = k.value();
            marks
                .applied
                .insert((crate::types::VolumeId(vol), ino), Lsn(v.value()));
        }
        Ok(marks)
    }
}

impl super::Tx<'_> {
    /// Records that every intent-log record of `(vol, ino)` below `lsn` is in this
    /// transaction's rows (inode 0: every record of the volume, e.g. after a restore).
    pub fn log_applied(
        &mut self,
        vol: crate::types::VolumeId,
        ino: u64,
        lsn: Lsn,
    ) -> Result<(), super::StoreError> {
        self.log_applied.insert((vol.0, ino), lsn.0)?;
        Ok(())
    }

    /// Records that every record below `covered` is in the rows (replay starts there) and,
    /// when given, the epoch new records are written in; drops the per-file marks that
    /// `covered` makes useless. Only meaningful in a durable commit.
    ///
    /// A new epoch (the checkpoint that ends a replay) drops EVERY mark: a mark is the log's
    /// end when a flush took its buffers, which may lie past what survived a crash (records
    /// appended after the last log sync are lost, the flush's commit was made durable by a
    /// later one). The new epoch appends from where the replay stopped, below such a mark,
    /// and a kept mark would make the next replay skip those new records as already applied.
    pub fn log_checkpoint(
        &mut self,
        covered: Lsn,
        epoch: Option<u64>,
    ) -> Result<(), super::StoreError> {
        use redb::ReadableTable;
        if covered.0 > self.meta_u64(LOG_COVERED)? {
            self.set_meta_u64(LOG_COVERED, covered.0)?;
        }
        if let Some(e) = epoch {
            self.set_meta_u64(LOG_EPOCH, e)?;
        }
        let mut stale = Vec::new();
        for e in self.log_applied.iter()? {
            let (k, v) = e?;
            if epoch.is_some() || v.value() <= covered.0 {
                stale.push(k.value());
            }
        }
        for k in stale {
            self.log_applied.remove(k)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "intent_tests.rs"]
mod tests;
