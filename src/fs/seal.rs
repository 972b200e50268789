//! The group snapshot's commit, split around the thaw so that nothing inside the pause
//! waits for a hash, the disk or the writer.
//!
//! Inside the freeze, [`Inner::snapshot_seal`] takes every member's buffered writes (by
//! reference, the buffers' bytes are copy on write: the first step of a flush,
//! [`Inner::take`]), marks each member's flush in
//! flight, and queues the snapshot's one transaction at the writer, still empty. Every
//! change the thaw lets through is queued after it and so commits after it: its place in
//! the queue is the snapshot's instant (readers meanwhile find the buffers, which stay in
//! place). After the thaw, [`SealedSnapshot::finish`] hashes and appends what was taken
//! (one thread per member), hands the chunks to the queued transaction, which commits the
//! members' buffered writes at their current generation, then records every member's
//! generation (bumping it) and the snapshot record, and waits for it; the members' buffers
//! then let go of what was committed, as after a flush.
//!
//! Before the freeze, [`Inner::hold_flushes`] keeps the members' background flushes (the
//! flusher thread, a writer's flush after its answer, a checkpoint) from starting and waits
//! for those in flight, so the take does not wait for one (flushes inside requests, which
//! the freeze drains, are not held).
//!
//! Like a flush, the take first puts the last writes of files that use fsync in the intent
//! log (no sync), and the transaction is replayable when every write it commits is in the
//! log: fsyncs of the members then keep the log's fast path while it is pending (losing
//! it in a crash loses only the snapshot, whose create had not returned).
//!
//! Invariants: the transaction refuses, changing nothing, unless it got every member's
//! chunks (its batch is not failed by that refusal); a member's flush is in flight from the
//! take until the transaction's outcome is known, so no other flush of it starts (flushes of
//! one volume never overlap); a failed or abandoned seal leaves every buffer as it was.

use std::sync::Arc;

use crate::store::catalog::SnapshotRecord;
use crate::store::{BatchError, Queued, StoreError, Tx};
use crate::types::{InodeNo, VolumeId};

use super::error::FsError;
use super::flush::Taken;
use super::groups::{SnapError, check_snapshot, put_snapshot};
use super::{Inner, VolState};

/// One member's prepared commit of its buffered writes.
type Commit = Box<dyn FnOnce(&mut Tx<'_>) -> Result<(), FsError> + Send>;

/// What the queued transaction waits for: every member's commit, or why there is none.
type Handover = Result<Vec<Commit>, FsError>;

/// The queued transaction's errors: a refusal changed nothing; a failure after the first
/// change fails the batch (it cannot be half applied).
#[derive(Debug)]
enum SealError {
    Refused(SnapError),
    Failed(SnapError),
}

impl From<StoreError> for SealError {
    fn from(e: StoreError) -> Self {
        SealError::Failed(SnapError::from(e))
    }
}

impl BatchError for SealError {
    fn is_storage(&self) -> bool {
        matches!(self, SealError::Failed(_))
    }
}

impl SealError {
    fn into_snap(self) -> SnapError {
        match self {
            SealError::Refused(e) | SealError::Failed(e) => e,
        }
    }
}

/// One member: its buffer and what was taken of it.
struct Member {
    vol: VolumeId,
    vs: Arc<VolState>,
    /// What was taken, until [`SealedSnapshot::finish`] prepares it.
    taken: Option<Taken>,
    /// The blocks taken (for [`Inner::settle`] once committed).
    blocks: Vec<(InodeNo, u64, Vec<u64>)>,
    /// The log's end when taken (for [`Inner::settle`]).
    log_end: Option<crate::store::intent::Lsn>,
}

/// A snapshot sealed inside the freeze, its transaction queued: [`SealedSnapshot::finish`]
/// completes it after the thaw. Dropped unfinished, its transaction refuses and the
/// buffers stay as they were.
pub struct SealedSnapshot<'a> {
    inner: &'a Inner,
    members: Vec<Member>,
    handover: Option<crossbeam_channel::Sender<Handover>>,
    queued: Option<Queued<SnapshotRecord, SealError>>,
}

impl Inner {
    /// Holds (on) or lets go (off) the background flushes of `vols`; on, also waits for the
    /// flushes in flight to end (see the module docs).
    pub fn hold_flushes(&self, vols: &[VolumeId], on: bool) {
        for &v in vols {
            let Ok(vs) = self.vol_state(v) else { continue };
            let mut d = vs.dirty.lock();
            d.held = on;
            if on {
                vs.wait_flushed(&mut d);
            } else {
                vs.flushed.notify_all();
            }
        }
    }

    /// Inside the freeze: takes every member's buffered writes and queues the snapshot's
    /// transaction (see the module docs); lets go of the members' flush hold.
    pub fn snapshot_seal(
        &self,
        name: &str,
        group: Option<String>,
        vols: &[VolumeId],
        description: &str,
        created_us: i64,
    ) -> Result<SealedSnapshot<'_>, SnapError> {
        let states = vols
            .iter()
            .map(|&v| self.vol_state(v).map(|vs| (v, vs)))
            .collect::<Result<Vec<_>, FsError>>()?;
        let mut sealed = SealedSnapshot {
            inner: self,
            members: Vec::with_capacity(states.len()),
            handover: None,
            queued: None,
        };
        let mut replayable = true;
        for (vol, vs) in states {
            let mut d = vs.dirty.lock();
            // Only a flush inside a request, which the drain waited for, or one the hold
            // came too late for, can be in flight here.
            vs.wait_flushed(&mut d);
            d.in_flight = true;
            d.held = false;
            let mut taken = self.take(vol, &vs, &mut d, None, true);
            d.in_flight_bytes = taken.as_ref().map_or(0, |t| t.bytes);
            replayable &= taken.as_ref().is_none_or(|t| t.replayable);
            drop(d);
            let blocks = taken
                .as_mut()
                .map(|t| std::mem::take(&mut t.taken))
                .unwrap_or_default();
            let log_end = taken.as_ref().and_then(|t| t.log_end);
            sealed.members.push(Member {
                vol,
                vs,
                taken,
                blocks,
                log_end,
            });
        }
        let (handover, commits) = crossbeam_channel::bounded::<Handover>(1);
        let (name, vols, description) = (name.to_string(), vols.to_vec(), description.to_string());
        let queued = self.store.write_queued(replayable, move |tx| {
            let commits = match commits.recv() {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Err(SealError::Refused(SnapError::Fs(e))),
                Err(_) => {
                    return Err(SealError::Refused(SnapError::Fs(FsError::Invalid(
                        "the snapshot was abandoned before its data was ready",
                    ))));
                }
            };
            let names = check_snapshot(tx, &name, &vols).map_err(SealError::Refused)?;
            for commit in commits {
                commit(tx).map_err(|e| SealError::Failed(SnapError::Fs(e)))?;
            }
            put_snapshot(tx, name, group, &vols, names, description, created_us)
                .map_err(SealError::Failed)
        })?;
        self.unsynced
            .store(true, std::sync::atomic::Ordering::Release);
        sealed.handover = Some(handover);
        sealed.queued = Some(queued);
        Ok(sealed)
    }
}

impl SealedSnapshot<'_> {
    /// After the thaw: hashes and appends what was taken, hands it to the queued
    /// transaction and waits for its outcome; then the members' buffers let go of what
    /// was committed. Not durable yet (the caller syncs the store).
    pub fn finish(mut self) -> Result<SnapshotRecord, SnapError> {
        let inner = self.inner;
        let prepared: Handover = std::thread::scope(|s| {
            let threads: Vec<_> = self
                .members
                .iter_mut()
                .filter_map(|m| m.taken.take().map(|t| (m.vol, m.vs.block_size as u64, t)))
                .map(|(vol, bs, t)| {
                    s.spawn(move || -> Result<Commit, FsError> {
                        let c =
                            inner.prepare_commit(vol, bs, t.work, t.jobs, t.log_end, t.applied)?;
                        Ok(Box::new(c))
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(FsError::Store(StoreError::Damaged(
                            "a hashing thread panicked".into(),
                        )))
                    })
                })
                .collect()
        });
        if let Some(h) = self.handover.take() {
            // The transaction is gone only if the writer is (the wait below says so).
            let _ = h.send(prepared);
        }
        let out = match self.queued.take() {
            Some(q) => q.wait().map_err(SealError::into_snap),
            None => Err(SnapError::Fs(FsError::Store(StoreError::WriterGone))),
        };
        self.release(out.is_ok());
        out
    }

    /// Ends every member's flush: with `committed`, what was taken leaves the buffers.
    fn release(&mut self, committed: bool) {
        for m in self.members.drain(..) {
            let mut d = m.vs.dirty.lock();
            if committed {
                self.inner
                    .settle(&mut d, m.blocks, m.vs.block_size as u64, m.log_end);
            }
            d.in_flight = false;
            d.in_flight_bytes = 0;
            m.vs.flushed.notify_all();
        }
    }
}

impl Drop for SealedSnapshot<'_> {
    fn drop(&mut self) {
        if self.members.is_empty() {
            return;
        }
        // Unfinished: the transaction refuses once it finds no handover; wait for that
        // (if it got one, for its outcome) before another flush may start.
        drop(self.handover.take());
        let committed = self.queued.take().is_some_and(|q| q.wait().is_ok());
        self.release(committed);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Ctx, Engine};
    use crate::store::rows::View;
    use crate::types::{Generation, InodeNo};

    const CTX: Ctx = Ctx {
        uid: 0,
        gid: 0,
        umask: 0,
    };

    fn setup() -> (tempfile::TempDir, Engine, crate::types::VolumeId, InodeNo) {
        let dir = tempfile::tempdir().unwrap();
        let e = Engine::open(dir.path()).unwrap();
        let v = e.create_volume("v", Some(4096), CTX).unwrap().id;
        let f = e.create(v, InodeNo::ROOT, b"f", 0o644, CTX).unwrap().ino;
        (dir, e, v, f)
    }

    fn generation(e: &Engine, name: &str) -> Generation {
        e.snapshot(name).unwrap().members[0].generation
    }

    #[test]
    fn the_snapshot_holds_what_was_buffered_at_the_seal_and_nothing_after() {
        let (_dir, e, v, f) = setup();
        e.write(v, f, 0, b"before the seal").unwrap();
        e.hold_flushes(&[v], true);
        let sealed = e.snapshot_seal("s", None, &[v], "", 0).unwrap();
        // After the thaw, before the transaction: a write to the same block and a create
        // (queued behind the snapshot's transaction, so it waits for it on its thread).
        e.write(v, f, 0, b"AFTER").unwrap();
        std::thread::scope(|s| {
            let later = s.spawn(|| e.create(v, InodeNo::ROOT, b"later", 0o644, CTX));
            sealed.finish().unwrap();
            later.join().unwrap().unwrap();
        });
        let g = View::At(generation(&e, "s"));
        assert_eq!(e.read(v, g, f, 0, 64).unwrap(), b"before the seal");
        assert!(e.lookup(v, g, InodeNo::ROOT, b"later").is_err());
        assert_eq!(e.read(v, View::Live, f, 0, 64).unwrap(), b"AFTERe the seal");
        e.lookup(v, View::Live, InodeNo::ROOT, b"later").unwrap();
        // What was taken left the buffer; the write after it stayed and commits at the new
        // generation.
        e.commit_all().unwrap();
        assert_eq!(e.read(v, g, f, 0, 64).unwrap(), b"before the seal");
        assert_eq!(e.read(v, View::Live, f, 0, 64).unwrap(), b"AFTERe the seal");
    }

    #[test]
    fn an_abandoned_seal_records_nothing_and_keeps_the_buffers() {
        let (_dir, e, v, f) = setup();
        e.write(v, f, 0, b"kept").unwrap();
        e.hold_flushes(&[v], true);
        drop(e.snapshot_seal("s", None, &[v], "", 0).unwrap());
        assert!(e.snapshot("s").is_err());
        // Flushes are possible again and find the write.
        e.flush_volume(v).unwrap();
        assert_eq!(e.read(v, View::Live, f, 0, 64).unwrap(), b"kept");
        // The name is free for the next attempt.
        e.hold_flushes(&[v], true);
        e.snapshot_seal("s", None, &[v], "", 0)
            .unwrap()
            .finish()
            .unwrap();
        let g = View::At(generation(&e, "s"));
        assert_eq!(e.read(v, g, f, 0, 64).unwrap(), b"kept");
    }

    #[test]
    fn a_taken_name_is_refused_without_failing_other_writes() {
        let (_dir, e, v, f) = setup();
        e.hold_flushes(&[v], true);
        e.snapshot_seal("s", None, &[v], "", 0)
            .unwrap()
            .finish()
            .unwrap();
        e.write(v, f, 0, b"second").unwrap();
        e.hold_flushes(&[v], true);
        let again = e.snapshot_seal("s", None, &[v], "", 0).unwrap().finish();
        assert!(matches!(again, Err(super::SnapError::SnapshotExists(_))));
        // The refused transaction changed nothing; the buffer is still there and commits.
        e.commit_all().unwrap();
        assert_eq!(e.read(v, View::Live, f, 0, 64).unwrap(), b"second");
    }

    #[test]
    fn while_a_snapshot_is_pending_other_volumes_fsync_through_the_log() {
        let (_dir, e, v, f) = setup();
        let w = e.create_volume("w", Some(4096), CTX).unwrap().id;
        let g = e.create(w, InodeNo::ROOT, b"g", 0o644, CTX).unwrap().ino;
        // Both files use fsync: a flush (and the seal) logs their writes first.
        for (vol, ino) in [(v, f), (w, g)] {
            e.write(vol, ino, 0, b"first").unwrap();
            e.fsync(vol, ino).unwrap();
        }
        e.commit_all().unwrap();
        e.write(v, f, 0, b"member").unwrap();
        e.write(w, g, 0, b"second").unwrap();
        e.hold_flushes(&[v], true);
        let sealed = e.snapshot_seal("s", None, &[v], "", 0).unwrap();
        let (logged, committed) = e.fsync_counts();
        std::thread::scope(|s| {
            // A commit would wait behind the snapshot's transaction (on its thread).
            let fsync = s.spawn(|| e.fsync(w, g));
            sealed.finish().unwrap();
            fsync.join().unwrap().unwrap();
        });
        assert_eq!(
            e.fsync_counts(),
            (logged + 1, committed),
            "the fsync was answered by a commit, not by the log"
        );
    }
}
