//! The single writer: every redb write transaction of a pool runs under one lock.
//!
//! Callers hand the writer a closure ([`super::Store::write`]) and queue it. Whoever finds
//! no batch running becomes the leader: it takes every queued job (group commit), runs them
//! in one transaction on its own thread, commits once, answers every caller and steps down.
//! Running the batch on the caller's thread saves two thread wake-ups per commit (a hand-off
//! to a dedicated thread cost ~55 us here, a non-durable commit ~12 us); one transaction at
//! a time still holds ("one redb writer"). A job that is refused (e.g. ENOENT) must not have
//! changed anything: operations check before they mutate. A job that fails in the storage
//! itself aborts the whole batch and every caller of the batch gets the error. A batch with
//! any durable job syncs the packs and commits with `Durability::Immediate`; others commit
//! without fsync. Write-behind creates and removes leave their rewrites of the directory's
//! row and the volume record to one flush per run of such jobs (see [`super::deferred`]):
//! the writer flushes before any other job and before the commit.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use redb::{Database, Durability, ReadableTable, Table, WriteTransaction};
use tracing::error;

use super::error::StoreError;
use super::pack::{Loc, PackStore};
use super::reclaim::Reclaim;
use super::tables::*;

/// Counters kept in `meta`, loaded once per batch and written back at its end.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    /// Sum of the stored length of every distinct live chunk.
    pub physical: u64,
    /// Sum over every reference of the referenced chunk's stored length.
    pub referenced: u64,
}

/// One write transaction with the pool's tables open, plus per-batch bookkeeping. Reads go
/// through [`super::ReadView`]; the tables themselves are the store's own.
pub struct Tx<'t> {
    pub(super) meta: Table<'t, &'static str, &'static [u8]>,
    pub(super) volumes: Table<'t, u64, &'static [u8]>,
    pub(super) volume_names: Table<'t, &'static str, u64>,
    pub(super) chunks: Table<'t, [u8; 32], [u8; 24]>,
    pub(super) packs_t: Table<'t, u32, (u64, u64)>,
    pub(super) rows: Table<'t, &'static [u8], &'static [u8]>,
    pub(super) changes: Table<'t, &'static [u8], ()>,
    pub(super) snap_gens: Table<'t, (u64, u64), u64>,
    pub(super) orphans: Table<'t, (u64, u64), ()>,
    pub(super) volume_options: Table<'t, (u64, &'static str), &'static str>,
    pub(super) log_applied: Table<'t, (u64, u64), u64>,
    pub(super) snapshot_roots: Table<'t, u64, &'static [u8]>,
    pub(super) snapshot_tests: Table<'t, u64, &'static [u8]>,
    pub(super) holds: Table<'t, (u64, &'static str), i64>,
    pub(super) schedules: Table<'t, &'static str, &'static [u8]>,
    pub(super) schedule_runs: Table<'t, &'static str, &'static [u8]>,
    pub(super) snapshot_makers: Table<'t, u64, &'static str>,
    pub(super) clone_origins: Table<'t, u64, u64>,
    pub(super) clone_layers: Table<'t, u64, (u64, u64)>,
    pub(super) packs: &'t PackStore,
    pub(super) counters: Counters,
    /// The counters as loaded, to skip writing them back unchanged.
    loaded: Counters,
    /// Highest committed end per pack referenced by chunks this batch added.
    pub(super) pack_ends: HashMap<u32, u64>,
    /// Live bytes added (+) or freed (-) per pack.
    pub(super) pack_live: HashMap<u32, i64>,
    /// Chunks freed by this batch: punched once a durable commit holds the free.
    pub(super) freed: Vec<Loc>,
    /// Rows inserted or removed in `rows`, `changes`, `volumes`, `snap_gens` (for the
    /// O(volumes) snapshot proof).
    pub(super) rows_written: u64,
    /// Rewrites of volume records and directory rows left for the next flush (see
    /// [`super::deferred`]).
    pub(super) deferred: super::deferred::Deferred,
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
            physical: read_u64(&meta, meta_keys::PHYSICAL_BYTES)?,
            referenced: read_u64(&meta, meta_keys::REFERENCED_BYTES)?,
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
            log_applied: txn.open_table(LOG_APPLIED)?,
            snapshot_roots: txn.open_table(SNAPSHOT_ROOTS)?,
            snapshot_tests: txn.open_table(SNAPSHOT_TESTS)?,
            holds: txn.open_table(SNAPSHOT_HOLDS)?,
            schedules: txn.open_table(SCHEDULES)?,
            schedule_runs: txn.open_table(SCHEDULE_RUNS)?,
            snapshot_makers: txn.open_table(SNAPSHOT_MAKERS)?,
            clone_origins: txn.open_table(CLONE_ORIGINS)?,
            clone_layers: txn.open_table(CLONE_LAYERS)?,
            packs,
            counters,
            loaded: counters,
            pack_ends: HashMap::new(),
            pack_live: HashMap::new(),
            freed: Vec::new(),
            rows_written: 0,
            deferred: Default::default(),
        })
    }

    /// Rows inserted or removed so far in `rows`, `changes`, `volumes` and `snap_gens` (the
    /// snapshot cost test counts them).
    pub fn rows_written(&self) -> u64 {
        self.rows_written
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
            self.set_meta_u64(meta_keys::PHYSICAL_BYTES, c.physical)?;
            self.set_meta_u64(meta_keys::REFERENCED_BYTES, c.referenced)?;
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
    /// Replayable: if a crash loses this job's commit, nothing an fsync acknowledged is
    /// lost with it (its changes are in intent-log records that any later log sync makes
    /// durable too, or it changes nothing). See [`Writer::all_durable`].
    pub replayable: bool,
    /// Write-behind: its caller was answered before the commit and readers correct the
    /// rows by what the caller left them (see `ReadView::committed_jobs`).
    pub behind: bool,
    /// May leave rewrites deferred and reads what they touch only through the deferred-aware
    /// readers (see [`super::deferred`]): runs of such jobs share one flush. Every other job
    /// finds the deferred rewrites written before it runs.
    pub defers: bool,
    pub apply: Apply,
}

/// Most jobs run in one transaction.
const MAX_BATCH: usize = 512;

/// Queued jobs beyond which a write-behind caller is told to wait for the queue (bounds
/// the memory and the work a crash can lose).
const MAX_BACKLOG: usize = 4096;

#[derive(Default)]
struct State {
    queue: VecDeque<Job>,
    /// Jobs ever queued; a job's number is the count before it.
    queued: u64,
    /// Jobs taken into batches so far (batches take from the front, one batch at a time).
    taken: u64,
    /// Jobs whose batch has finished and answered them: job `n` is done once `answered > n`.
    answered: u64,
    /// Jobs below this number are in durable commits (a crash keeps them).
    durable_upto: u64,
    /// One past the number of the last job queued that is not replayable (0: none).
    unreplayable_upto: u64,
    /// A leader is running a batch.
    leading: bool,
    /// Shut down: no more jobs.
    closed: bool,
}

/// The pool's writer: the job queue and the leader election around it.
pub(crate) struct Writer {
    db: Arc<Database>,
    packs: Arc<PackStore>,
    state: Mutex<State>,
    /// Signalled when a batch finishes (its callers are answered, leadership is free).
    finished: Condvar,
    /// Wakes the committer: write-behind jobs are queued and nobody leads.
    work: Condvar,
    /// Chunks freed by non-durable commits: a crash could bring their rows back, so their
    /// holes are punched only after the next durable commit. Touched only by the leader.
    pending_punch: Mutex<Vec<Loc>>,
    /// Hands chunks freed by a durable commit to the reclaimer thread, which punches their
    /// holes: a punch can wait for a synchronous discard (ext4 mounted `discard`), and the
    /// writer, with every caller queued behind it, must not.
    reclaim: Mutex<Option<crossbeam_channel::Sender<Reclaim>>>,
    reclaimer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Writer {
    /// `first_job`: the number the first job gets (what `meta` says is committed, so job
    /// numbers grow across restarts).
    pub(crate) fn new(db: Arc<Database>, packs: Arc<PackStore>, first_job: u64) -> Writer {
        let (tx, rx) = crossbeam_channel::unbounded();
        let p = packs.clone();
        // Without the thread, freed chunks are punched inline (see `reclaim`).
        let reclaimer = std::thread::Builder::new()
            .name("tandem-reclaim".into())
            .spawn(move || super::reclaim::run(p, rx))
            .map_err(|e| error!("no reclaimer thread, punching inline: {e}"))
            .ok();
        let reclaim = reclaimer.as_ref().map(|_| tx);
        Writer {
            db,
            packs,
            state: Mutex::new(State {
                queued: first_job,
                taken: first_job,
                answered: first_job,
                durable_upto: first_job,
                ..State::default()
            }),
            finished: Condvar::new(),
            work: Condvar::new(),
            pending_punch: Mutex::new(Vec::new()),
            reclaim: Mutex::new(reclaim),
            reclaimer: Mutex::new(reclaimer),
        }
    }

    /// Punches freed chunks (only once a durable commit holds their free) on the reclaimer
    /// thread, or inline when there is none.
    fn reclaim(&self, locs: Vec<Loc>) {
        if locs.is_empty() {
            return;
        }
        let locs = match lock(&self.reclaim).as_ref() {
            Some(tx) => match tx.send(Reclaim::Punch(locs)) {
                Ok(()) => return,
                Err(crossbeam_channel::SendError(Reclaim::Punch(locs))) => locs,
                Err(_) => return,
            },
            None => locs,
        };
        super::reclaim::punch_all(&self.packs, locs);
    }

    /// Queues `job` and returns once a batch holding it has finished; the job's completion
    /// has answered the caller by then. The caller leads a batch itself whenever none is
    /// running, so an uncontended write never changes thread.
    pub(crate) fn submit(&self, job: Job) -> Result<(), StoreError> {
        let (st, n) = self.enqueue(job)?;
        self.wait_answered(st, n);
        Ok(())
    }

    /// Queues a write-behind job and returns its number at once; the committer thread (or
    /// the next caller to lead) commits it, in queue order with every other job. Never
    /// leads itself (its caller may hold what a completion needs). True as the second
    /// value when more than [`MAX_BACKLOG`] jobs wait: the caller should then wait for them
    /// (`Store::settle`) once it holds nothing.
    pub(crate) fn submit_behind(&self, job: Job) -> Result<(u64, bool), StoreError> {
        let (st, n) = self.enqueue(job)?;
        if !st.leading {
            self.work.notify_one();
        }
        Ok((n, st.queue.len() >= MAX_BACKLOG))
    }

    /// Appends `job` to the queue; returns the state, still locked, and the job's number.
    fn enqueue(&self, job: Job) -> Result<(MutexGuard<'_, State>, u64), StoreError> {
        let mut st = lock(&self.state);
        if st.closed {
            return Err(StoreError::WriterGone);
        }
        let n = st.queued;
        st.queued += 1;
        if !job.replayable {
            st.unreplayable_upto = n + 1;
        }
        st.queue.push_back(job);
        Ok((st, n))
    }

    /// Waits until job `n` is answered, leading batches while nobody else does.
    fn wait_answered<'a>(&'a self, mut st: MutexGuard<'a, State>, n: u64) {
        while st.answered <= n {
            if st.leading {
                st = self.finished.wait(st).unwrap_or_else(|p| p.into_inner());
            } else {
                st = self.lead(st);
            }
        }
    }

    /// The committer thread: leads a batch whenever jobs wait and nobody else leads.
    pub(crate) fn run_committer(&self) {
        let mut st = lock(&self.state);
        loop {
            if st.closed {
                return;
            }
            if st.leading || st.queue.is_empty() {
                st = self.work.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st = self.lead(st);
        }
    }

    /// Runs one batch from the front of the queue with the state unlocked meanwhile.
    fn lead<'a>(&'a self, mut st: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        st.leading = true;
        let n = st.queue.len().min(MAX_BATCH);
        let batch: Vec<Job> = st.queue.drain(..n).collect();
        st.taken += n as u64;
        let upto = st.taken;
        drop(st);
        // Steps down even if a job panics: the batch's callers then find no answer
        // (WriterGone) instead of waiting forever.
        struct StepDown<'w>(&'w Writer, u64, bool);
        impl Drop for StepDown<'_> {
            fn drop(&mut self) {
                let mut st = lock(&self.0.state);
                st.leading = false;
                st.answered = self.1;
                if self.2 {
                    st.durable_upto = self.1;
                }
                self.0.finished.notify_all();
                if !st.queue.is_empty() {
                    // Waiting callers lead the rest themselves; write-behind jobs need
                    // the committer.
                    self.0.work.notify_one();
                }
            }
        }
        let mut step_down = StepDown(self, upto, false);
        step_down.2 = self.run_batch(batch, upto);
        drop(step_down);
        lock(&self.state)
    }

    /// Returns once every chunk freed by a durable commit so far is punched (its space is
    /// back on the disk).
    pub(crate) fn reclaim_wait(&self) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let sent = lock(&self.reclaim)
            .as_ref()
            .is_some_and(|r| r.send(Reclaim::Barrier(tx)).is_ok());
        if sent {
            let _ = rx.recv();
        }
    }

    /// True when every job queued so far is in a durable commit or replayable: nothing a
    /// crash could lose has reached redb that the intent log cannot bring back (what is
    /// still to come is in callers' buffers).
    /// Jobs whose batch has finished (committed or failed) so far.
    pub(crate) fn answered(&self) -> u64 {
        lock(&self.state).answered
    }

    pub(crate) fn all_durable(&self) -> bool {
        let st = lock(&self.state);
        st.durable_upto >= st.unreplayable_upto
    }

    /// Runs `batch`, whose last job has number `upto - 1`; true when it committed durably
    /// (and so did every batch before it).
    fn run_batch(&self, mut batch: Vec<Job>, upto: u64) -> bool {
        let durable = batch.iter().any(|j| j.durable);
        let behind = batch.iter().any(|j| j.behind);
        crate::metrics::global()
            .commit_batch
            .observe(batch.len() as u64);
        let mut completions = Vec::with_capacity(batch.len());
        let result = (|| -> Result<Vec<Loc>, StoreError> {
            let mut txn = self.db.begin_write()?;
            if !durable {
                txn.set_durability(Durability::None)
                    .map_err(|e| StoreError::Damaged(e.to_string()))?;
            }
            let mut poisoned = false;
            let freed = {
                let mut tx = Tx::open(&txn, &self.packs)?;
                let mut flush_failed = None;
                for job in batch.drain(..) {
                    if !job.defers
                        && let Err(e) = tx.flush_deferred()
                    {
                        // The batch is aborted; its jobs still run, to be answered.
                        flush_failed.get_or_insert(e);
                        poisoned = true;
                    }
                    let (done, poison) = (job.apply)(&mut tx);
                    completions.push(done);
                    poisoned |= poison;
                }
                if !poisoned && let Err(e) = tx.flush_deferred() {
                    flush_failed = Some(e);
                    poisoned = true;
                }
                if poisoned {
                    drop(tx);
                    txn.abort()?;
                    return Err(flush_failed.unwrap_or(StoreError::BatchAborted));
                }
                if behind {
                    // Readers learn from their own transaction which write-behind jobs
                    // it holds (see `ReadView::committed_jobs`).
                    tx.set_meta_u64(meta_keys::JOBS_COMMITTED, upto)?;
                }
                tx.finish()?
            };
            if durable {
                // Pack bytes must be durable before the rows that reference them.
                self.packs
                    .sync()
                    .map_err(|e| StoreError::io("pack files", e))?;
            }
            txn.commit()?;
            Ok(freed)
        })();
        match result {
            Ok(freed) => {
                let mut pending = lock(&self.pending_punch);
                pending.extend(freed);
                let ready = if durable {
                    std::mem::take(&mut *pending)
                } else {
                    Vec::new()
                };
                drop(pending);
                self.reclaim(ready);
                for done in completions {
                    done(Ok(()));
                }
                durable
            }
            Err(e) => {
                error!("write batch failed: {e}");
                let e = Arc::new(e);
                for done in completions {
                    done(Err(e.clone()));
                }
                false
            }
        }
    }

    /// Refuses further jobs, runs what is queued and makes everything durable.
    pub(crate) fn close(&self) {
        let mut st = lock(&self.state);
        st.closed = true;
        self.work.notify_all();
        while st.leading || !st.queue.is_empty() {
            if st.leading {
                st = self.finished.wait(st).unwrap_or_else(|p| p.into_inner());
            } else {
                st = self.lead(st);
            }
        }
        st.leading = true;
        drop(st);
        let last = (|| -> Result<(), StoreError> {
            self.packs
                .sync()
                .map_err(|e| StoreError::io("pack files", e))?;
            let txn = self.db.begin_write()?;
            txn.commit()?;
            self.reclaim(std::mem::take(&mut *lock(&self.pending_punch)));
            Ok(())
        })();
        if let Err(e) = last {
            error!("final commit failed: {e}");
        }
        // Let the reclaimer finish what it was given, then stop it.
        drop(lock(&self.reclaim).take());
        if let Some(h) = lock(&self.reclaimer).take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Heard = crossbeam_channel::Receiver<Result<(), Arc<StoreError>>>;

    /// A job that fails in the storage (`poison`) or succeeds; returns what its caller hears.
    fn job(poison: bool) -> (Job, Heard) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let apply: Apply = Box::new(move |_tx: &mut Tx<'_>| {
            let done: Completion = Box::new(move |r| {
                let _ = tx.send(r);
            });
            (done, poison)
        });
        let job = Job {
            durable: false,
            replayable: false,
            behind: false,
            defers: false,
            apply,
        };
        (job, rx)
    }

    #[test]
    fn a_batch_aborted_by_another_jobs_storage_failure_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(Database::create(dir.path().join("pool.redb")).unwrap());
        let packs = Arc::new(PackStore::open(&dir.path().join("packs"), &[], 1).unwrap());
        let w = Writer::new(db, packs, 0);
        // Both jobs in ONE batch: nobody leads until both are queued (no committer here).
        let (failing, failing_hears) = job(true);
        let (innocent, innocent_hears) = job(false);
        drop(w.enqueue(failing).unwrap().0);
        let (st, _) = w.enqueue(innocent).unwrap();
        drop(w.lead(st));
        assert!(failing_hears.recv().unwrap().is_err());
        let err = innocent_hears
            .recv()
            .unwrap()
            .expect_err("the whole batch is aborted")
            .to_string();
        assert!(
            err.contains("another operation of the same commit failed") && !err.contains("damaged"),
            "an innocent job of an aborted batch must not hear that the pool is damaged: {err}"
        );
        w.close();
    }
}
