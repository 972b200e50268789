//! fsync through the intent log, the checkpoint that recycles the log, and the replay that
//! brings logged writes back after a crash (the log file itself: `crate::store::intent`).
//!
//! Owns what a record means. One record ([`KIND_WRITE`]) holds the bytes a file was written
//! since its last record: for each buffered block, the span its writes touched (not the
//! whole block), plus the file's size and mtime. The write buffers stay the source of truth;
//! a record is a copy that only replay reads.
//!
//! Invariants:
//! - **The fast path only when every commit is durable or replayable.** An fsync logs its
//!   file's writes only when the writer has nothing in a non-durable commit that replay
//!   could not redo (`Store::all_durable`, checked under the file's buffer lock, which a
//!   flush of that file also holds). A flush is replayable when every file it commits has
//!   its writes in records appended before the commit (`log_before_flush`: files that use
//!   fsync log what their last fsync left, without a sync; a later log sync makes those
//!   records durable with its own). So the state a replay starts from, the last durable
//!   commit plus the records after it, is the state the buffered writes were made on: the
//!   file exists there, its earlier writes are there or in earlier records. Otherwise (a
//!   create, a rename, a truncate, or a flush of a file that never fsynced, not yet
//!   durable) fsync commits durably as before.
//! - **Never replay what the rows already hold.** A flush of a file that has records writes
//!   `log_applied[(volume, inode)] = log end` in its own commit; a restore writes it for the
//!   whole volume (inode 0); a checkpoint records `log_covered`. Replay skips a record below
//!   any of them, so an old record never overwrites newer committed data. A mark holds
//!   only within its epoch: it may lie past what survived a crash (the log's unsynced
//!   tail), so the replay's checkpoint drops every mark with the old epoch.
//! - **An fsync does not wait for a flush of its volume in flight.** Its record, past the
//!   log end the flight read, holds the bytes the flight commits or newer ones; the flight's
//!   mark does not cover it, so the flight leaves that file's buffer in place (empty if need
//!   be, `Inner::settle`) and the file's next flush, which precedes any later change of its
//!   rows, writes the mark. A flight whose commit is not replayable makes `all_durable`
//!   false once queued (slow path); before, its commit holds nothing a replay needs.
//! - **A checkpoint covers only what it flushed**: it reads the log's end, then flushes
//!   every buffer (every record below that end is then in the rows), then commits durably
//!   with `log_covered` = that end, and only then lets the ring reuse the space.
//! - **Each opening writes a new epoch**, committed with the replay's checkpoint before the
//!   first append, so a record left past the end by an earlier opening is never replayed.

use std::collections::BTreeMap;

use crate::store::StoreError;
use crate::store::intent::{Appended, IntentLog, Lsn};
use crate::types::{InodeNo, VolumeId};

use super::Inner;
use super::attr::Timestamp;
use super::error::FsError;

/// A file's writes: (volume, inode, size, mtime, spans).
pub const KIND_WRITE: u16 = 1;

/// Appends one record with the writes of `f` since its last record (without a sync).
fn append_file(
    log: &IntentLog,
    vol: VolumeId,
    ino: InodeNo,
    f: &mut super::data::DirtyFile,
    bs: u64,
) -> Result<Logged, FsError> {
    let mut spans: Vec<(u64, Vec<u8>)> = Vec::with_capacity(f.unlogged.len());
    for (&block, written) in &f.unlogged {
        let buf = f.blocks.get(&block);
        // Bytes the buffer does not hold are zeros (a partial block: not written, and not
        // in a span); past the file's end, nothing.
        let valid = f.size.saturating_sub(block * bs).min(bs) as usize;
        for &(lo, hi) in written {
            let hi = (hi as usize).min(valid);
            let lo = (lo as usize).min(hi);
            if lo == hi {
                continue;
            }
            let bytes = buf.map_or_else(|| vec![0u8; hi - lo], |b| b.range(lo, hi));
            spans.push((block * bs + lo as u64, bytes));
        }
    }
    let payload = encode(vol, ino, f.size, f.mtime, &spans);
    let appended = log
        .append(&[(KIND_WRITE, &payload)])
        .map_err(|e| StoreError::io(log.path().display().to_string(), e))?;
    match appended {
        Appended::At(end) => {
            f.unlogged.clear();
            f.logged = true;
            f.last_lsn = end;
            Ok(Logged::At(end))
        }
        Appended::Full => Ok(Logged::Full),
    }
}

/// Files a volume remembers as fsync users at most (past it the hint starts over).
const MAX_FSYNCERS: usize = 1 << 16;

/// Where the log lives in the pool directory (a symlink to a file on a faster device works).
pub const LOG_FILE: &str = "intent.log";

/// The bytes of one block a file's writes touched since its last record: `[lo, hi)` within
/// the block.
pub(crate) type Span = (u32, u32);

/// Adds `[lo, hi)` of `block` to the spans written since the file's last record. Exact
/// spans, not their hull: a block written in part holds zeros, not the file's bytes, between
/// them (see `DirtyFile::partial`).
pub(crate) fn note_span(unlogged: &mut BTreeMap<u64, Vec<Span>>, block: u64, lo: u32, hi: u32) {
    super::data::add_span(unlogged.entry(block).or_default(), lo, hi);
}

/// A decoded [`KIND_WRITE`] record.
struct WriteRecord {
    vol: VolumeId,
    ino: InodeNo,
    size: u64,
    mtime: Timestamp,
    spans: Vec<(u64, Vec<u8>)>,
}

/// The intent log as `tandem status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogStatus {
    pub path: std::path::PathBuf,
    /// Bytes of the ring.
    pub capacity: u64,
    /// Bytes of the ring holding records no checkpoint covers yet.
    pub used: u64,
    /// fsyncs since the daemon started answered by a log record (one shared sync).
    pub fsyncs_logged: u64,
    /// fsyncs answered by a durable commit (a create, rename or flush was not durable yet,
    /// or the record did not fit the ring).
    pub fsyncs_committed: u64,
}

/// How an fsync was answered (the two counts of [`LogStatus`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPath {
    /// By a record in the intent log.
    Log,
    /// By a flush of the file and a durable commit.
    Commit,
}

/// What the fast path of fsync did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logged {
    /// The file's writes are in the log up to here (sync to it).
    At(Lsn),
    /// A commit is not durable yet: the file needs a durable commit.
    NotDurable,
    /// The ring has no room (or the record is too large for it).
    Full,
}

fn encode(
    vol: VolumeId,
    ino: InodeNo,
    size: u64,
    mtime: Timestamp,
    spans: &[(u64, Vec<u8>)],
) -> Vec<u8> {
    let total: usize = spans.iter().map(|(_, b)| 12 + b.len()).sum();
    let mut out = Vec::with_capacity(40 + total);
    out.extend_from_slice(&vol.0.to_le_bytes());
    out.extend_from_slice(&ino.0.to_le_bytes());
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(&mtime.secs.to_le_bytes());
    out.extend_from_slice(&mtime.nsecs.to_le_bytes());
    out.extend_from_slice(&(spans.len() as u32).to_le_bytes());
    for (off, bytes) in spans {
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

fn decode(p: &[u8]) -> Option<WriteRecord> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = p.get(at..at + n)?;
        at += n;
        Some(s)
    };
    let u64_ = |b: &[u8]| u64::from_le_bytes(b.try_into().unwrap_or_default());
    let vol = VolumeId(u64_(take(8)?));
    let ino = InodeNo(u64_(take(8)?));
    let size = u64_(take(8)?);
    let secs = u64_(take(8)?) as i64;
    let nsecs = u32::from_le_bytes(take(4)?.try_into().ok()?);
    let n = u32::from_le_bytes(take(4)?.try_into().ok()?);
    let mut spans = Vec::new();
    for _ in 0..n {
        let off = u64_(take(8)?);
        let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        spans.push((off, take(len)?.to_vec()));
    }
    Some(WriteRecord {
        vol,
        ino,
        size,
        mtime: Timestamp { secs, nsecs },
        spans,
    })
}

impl Inner {
    /// Makes a file's writes durable: a record in the intent log when every commit is
    /// durable (one log sync, shared with concurrent fsyncs), else a flush and a durable
    /// commit. Says which of the two answered.
    pub fn fsync(&self, vol: VolumeId, ino: InodeNo) -> Result<FsyncPath, FsError> {
        if let Some(log) = &self.log {
            let mut logged = self.log_file(log, vol, ino)?;
            if logged == Logged::Full {
                // The ring is full: a checkpoint makes room (and commits this file too).
                self.checkpoint()?;
                logged = self.log_file(log, vol, ino)?;
            }
            match logged {
                Logged::At(end) => {
                    self.fsyncs[0].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return log
                        .sync_to(end)
                        .map(|()| FsyncPath::Log)
                        .map_err(|e| StoreError::io(log.path().display().to_string(), e).into());
                }
                Logged::NotDurable | Logged::Full => {}
            }
        }
        self.fsyncs[1].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.flush_inode(vol, ino)?;
        self.store.sync()?;
        Ok(FsyncPath::Commit)
    }

    /// Where the intent log is, how full, and how fsyncs were answered (`tandem status`).
    pub fn log_status(&self) -> Option<LogStatus> {
        let log = self.log.as_ref()?;
        let (logged, committed) = self.fsync_counts();
        Some(LogStatus {
            path: log.path().to_path_buf(),
            capacity: log.capacity(),
            used: log.used(),
            fsyncs_logged: logged,
            fsyncs_committed: committed,
        })
    }

    /// fsyncs answered so far by an intent-log record, and by a durable commit.
    pub fn fsync_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.fsyncs[0].load(Relaxed), self.fsyncs[1].load(Relaxed))
    }

    /// How many intent-log records the opening of this pool applied (records a clean
    /// shutdown had already committed, or the rows already held, are not counted).
    pub fn log_replayed(&self) -> u64 {
        self.replayed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The fast path of [`Inner::fsync`]: appends the file's unlogged writes.
    fn log_file(&self, log: &IntentLog, vol: VolumeId, ino: InodeNo) -> Result<Logged, FsError> {
        let vs = self.vol_state(vol)?;
        let bs = vs.block_size as u64;
        let mut d = vs.dirty.lock();
        // No wait for a flush of the volume in flight: it commits what the buffers held when
        // it took them, and this record (past the log end it read) holds the same bytes or
        // newer ones. Its commit marks applied only the records before that end; the buffer
        // of a file logged meanwhile stays until a later flush marks this record too (see
        // `Inner::settle`). An unreplayable flight makes `all_durable` false: slow path.
        if d.fsyncers.len() >= MAX_FSYNCERS {
            d.fsyncers.clear();
        }
        d.fsyncers.insert(ino);
        if !self.store.all_durable() {
            return Ok(Logged::NotDurable);
        }
        let Some(f) = d.files.get_mut(&ino) else {
            // Nothing buffered and every commit durable or replayable: what a replayable
            // flush of this file committed is in records appended before it.
            return Ok(Logged::At(log.end()));
        };
        if f.unlogged.is_empty() {
            // Logged by an earlier fsync whose sync may still be running.
            return Ok(Logged::At(f.last_lsn));
        }
        append_file(log, vol, ino, f, bs)
    }

    /// Before a flush commits `files`: appends the unlogged writes of those that use fsync
    /// (`fsyncers`, or their buffer has a record already), without a sync. True when every
    /// file's writes are then in the log, so the flush's commit is replayable (see
    /// `Store::all_durable`): fsyncs of other files keep the fast path while it is not
    /// durable yet. Only when every earlier commit is durable or replayable itself, so that
    /// a replay never brings back writes made after a change it cannot redo (commits stay
    /// durable in order).
    pub(super) fn log_before_flush(
        &self,
        vol: VolumeId,
        block_size: u32,
        d: &mut super::data::Dirty,
        files: &[InodeNo],
    ) -> bool {
        let Some(log) = &self.log else {
            return false;
        };
        // After a commit replay cannot redo (a rename, say) these records must not be
        // replayed without it: the flush then waits for a durable commit like any other.
        if !self.store.all_durable() {
            return false;
        }
        let mut all = true;
        for ino in files {
            let fsyncer = d.fsyncers.contains(ino);
            let Some(f) = d.files.get_mut(ino) else {
                continue;
            };
            if f.unlogged.is_empty() {
                continue;
            }
            all &= (f.logged || fsyncer)
                && matches!(
                    append_file(log, vol, *ino, f, block_size as u64),
                    Ok(Logged::At(_))
                );
        }
        all
    }

    /// Flushes every buffered write and commits durably; with the intent log, the commit
    /// records how much of the log it covers, and the ring reuses that space afterwards.
    pub fn checkpoint(&self) -> Result<(), FsError> {
        use std::sync::atomic::Ordering;
        let end = self.log.as_ref().map(|l| l.end());
        // A volume that cannot flush (its disk is full) keeps its records in the log, but
        // what the others flushed, and every metadata change, still becomes durable.
        let flushed = self.flush_all();
        let end = if flushed.is_err() {
            self.log.as_ref().map(|l| l.covered())
        } else {
            end
        };
        let unsynced = self.unsynced.swap(false, Ordering::AcqRel);
        let res = match (&self.log, end) {
            (Some(log), Some(end)) if unsynced || end > log.covered() => self
                .store
                .write(true, move |tx| tx.log_checkpoint(end, None))
                .map(|()| log.set_covered(end)),
            (None, _) if unsynced => self.store.sync(),
            _ => Ok(()),
        };
        if res.is_err() && unsynced {
            self.unsynced.store(true, Ordering::Release);
        }
        res?;
        flushed
    }

    /// For crash tests that play power loss: the log file, the file offset where its durable
    /// part ends, and how many bytes from there (up to the ring's end) hold no record an
    /// fsync has acknowledged, so a test may cut or garble them. `None` without a log.
    pub fn intent_log_tail(&self) -> Option<(std::path::PathBuf, u64, u64)> {
        let log = self.log.as_ref()?;
        let durable = log.durable_end();
        let cap = log.capacity();
        let free = (log.covered().0 + cap).saturating_sub(durable.0);
        let to_ring_end = cap - durable.0 % cap;
        Some((
            log.path().to_path_buf(),
            log.file_offset(durable),
            free.min(to_ring_end),
        ))
    }

    /// After a crash: applies the records past the last checkpoint that the rows do not
    /// hold yet, commits them durably with a new epoch, and starts the log. Returns how
    /// many records were applied.
    pub(crate) fn replay_log(&self, log: &IntentLog) -> Result<usize, FsError> {
        let marks = self.store.log_marks()?;
        let mut records = Vec::new();
        let end = log
            .replay(marks.covered, marks.epoch, |lsn, kind, payload| {
                if kind == KIND_WRITE {
                    records.push((lsn, payload.to_vec()));
                } else {
                    tracing::warn!(
                        "intent log: record of unknown kind {kind} at {} skipped",
                        lsn.0
                    );
                }
            })
            .map_err(|e| StoreError::io(log.path().display().to_string(), e))?;
        let mut applied = 0;
        for (lsn, payload) in records {
            let Some(rec) = decode(&payload) else {
                tracing::warn!("intent log: record at {} does not decode; skipped", lsn.0);
                continue;
            };
            if marks.applied(rec.vol, rec.ino.0, lsn) {
                continue;
            }
            match self.replay_write(&rec) {
                Ok(()) => applied += 1,
                // The file or its volume is gone in the durable state (its unlink or the
                // volume's deletion was durable): nothing to bring back.
                Err(FsError::NotFound) | Err(FsError::Store(StoreError::NoSuchVolume { .. })) => {}
                Err(e) if !matches!(e, FsError::Store(_)) => {
                    tracing::warn!(
                        "intent log: record at {} for inode {} of volume {} not applied: {e}",
                        lsn.0,
                        rec.ino.0,
                        rec.vol.0
                    );
                }
                Err(e) => return Err(e),
            }
        }
        if applied > 0 {
            tracing::info!(
                "intent log: replayed {applied} fsynced write record(s) from {}",
                log.path().display()
            );
        }
        self.flush_all()?;
        let epoch = marks.epoch + 1;
        let start = IntentLog::start_point(end);
        self.store
            .write(true, move |tx| tx.log_checkpoint(start, Some(epoch)))?;
        log.start(start, epoch);
        Ok(applied)
    }

    fn replay_write(&self, rec: &WriteRecord) -> Result<(), FsError> {
        for (off, bytes) in &rec.spans {
            self.write(rec.vol, rec.ino, *off, bytes)?;
        }
        let vs = self.vol_state(rec.vol)?;
        let mut d = vs.dirty.lock();
        if let Some(f) = d.files.get_mut(&rec.ino) {
            f.mtime = rec.mtime;
            if rec.size > f.size {
                f.size = rec.size;
            }
        }
        Ok(())
    }
}
