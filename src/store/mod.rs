//! The storage engine: one pool directory, one redb file (`pool.redb`) holding all metadata
//! and the chunk index, and pack files (`packs/`) holding chunk bodies.
//!
//! Owns: the pool lock (one process per pool), schema checks, the judgement of the packs
//! against the index before anything is written ([`open`]), the writer thread (the only
//! code that opens redb write transactions), pack files, the chunk index with reference
//! counts, versioned metadata rows and the per-volume generation/snapshot bookkeeping.
//! It knows nothing of POSIX; `crate::fs` builds the filesystem on top of it, reading
//! through [`ReadView`] (a [`Reader`] from [`Store::read`], or the writer's [`Tx`]) and
//! writing through [`Tx`]. Only the store names a table: the layout is in [`tables`].

pub mod catalog;
pub mod check;
pub mod chunks;
mod deferred;
pub mod error;
pub mod fault;
pub mod intent;
pub mod keys;
mod layers;
pub mod open;
pub mod pack;
mod read;
mod reclaim;
pub mod rename;
pub mod rows;
mod schema;
pub mod snapmeta;
pub mod tables;
pub mod verify;
pub mod volumes;
mod writer;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable};

pub use error::{BatchError, StoreError};
pub use pack::PackStore;
pub use read::{Entry, ReadView, Reader};
pub use writer::{Counters, Tx};

use tables::{META, VOLUMES, meta_keys};
use writer::{Job, Writer};

/// An open pool. Dropping it stops the writer after a final durable commit.
pub struct Store {
    path: PathBuf,
    db: Arc<Database>,
    packs: Arc<PackStore>,
    writer: Arc<Writer>,
    /// Commits write-behind jobs when no caller is leading.
    committer: Option<std::thread::JoinHandle<()>>,
    _lock: File,
}

/// Pool-wide space figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PoolStats {
    /// Sum of the logical sizes of every live file of every volume.
    pub logical_bytes: u64,
    /// Bytes referenced by all extents (live and snapshot), counting each reference.
    pub referenced_bytes: u64,
    /// Bytes of distinct live chunks: what the data occupies once deduplicated.
    pub physical_bytes: u64,
    /// Bytes the pack files occupy on disk.
    pub disk_bytes: u64,
}

impl PoolStats {
    /// referenced / physical (1.0 when nothing is shared).
    pub fn dedup_ratio(&self) -> f64 {
        if self.physical_bytes == 0 {
            1.0
        } else {
            self.referenced_bytes as f64 / self.physical_bytes as f64
        }
    }
}

fn lock_pool(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join("pool.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| StoreError::io(path.display().to_string(), e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(StoreError::PoolInUse {
                path: dir.to_path_buf(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(StoreError::io(path.display().to_string(), e));
        }
    }
    Ok(file)
}

impl Store {
    /// Opens the pool in `dir`, creating it (and the directory) when it does not exist.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Self::open_with_faults(dir, None)
    }

    /// As [`Store::open`], with the pack and index I/O behind a fault plan (tests).
    pub fn open_with_faults(
        dir: &Path,
        faults: Option<Arc<fault::Faults>>,
    ) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir.display().to_string(), e))?;
        // Pool files are private to the daemon's user, also in pools made before this rule.
        let private = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o700);
        std::fs::set_permissions(dir, private)
            .map_err(|e| StoreError::io(dir.display().to_string(), e))?;
        let lock = lock_pool(dir)?;
        let db_path = dir.join("pool.redb");
        let packs_dir = dir.join("packs");
        // Judge the packs against the index before anything is written (see [`open`]).
        let files = open::scan_packs(&packs_dir)?;
        let held: u64 = files.values().sum();
        if held > 0 && open::file_len(&db_path)?.unwrap_or(0) == 0 {
            return Err(StoreError::IndexMissing {
                path: dir.to_path_buf(),
                packs: files.values().filter(|&&len| len > 0).count(),
                bytes: held,
            });
        }
        let damaged = |e: StoreError| match e {
            StoreError::Db(e) => StoreError::IndexDamaged {
                path: dir.to_path_buf(),
                reason: e.to_string(),
            },
            other => other,
        };
        // Judged before anything writes to the index (redb's read-write open does) when the
        // index was closed cleanly; one that needs redb's repair is judged once repaired.
        let judged = match redb::ReadOnlyDatabase::open(&db_path) {
            Ok(ro) => Some((|| open::judge(dir, &ro.begin_read()?, &files))().map_err(damaged)?),
            Err(_) => None,
        };
        if let Some(plan) = &judged {
            open::refuse(dir, plan)?;
        }
        let created = match &faults {
            None => Database::create(&db_path),
            Some(f) => OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&db_path)
                .map_err(|e| redb::DatabaseError::Storage(redb::StorageError::Io(e)))
                .and_then(|file| fault::FaultyBackend::new(file, f.clone()))
                .and_then(|b| redb::Builder::new().create_with_backend(b)),
        };
        let db = match created {
            Ok(db) => db,
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(StoreError::PoolInUse {
                    path: dir.to_path_buf(),
                });
            }
            Err(redb::DatabaseError::Storage(redb::StorageError::Io(e)))
                if e.kind() != std::io::ErrorKind::InvalidData =>
            {
                return Err(StoreError::io(db_path.display().to_string(), e));
            }
            Err(e) if held > 0 => {
                return Err(StoreError::IndexDamaged {
                    path: dir.to_path_buf(),
                    reason: e.to_string(),
                });
            }
            Err(e) => {
                return Err(StoreError::Foreign {
                    path: dir.to_path_buf(),
                    reason: format!("pool.redb: {e}"),
                });
            }
        };
        let plan = match judged {
            Some(plan) => plan,
            None => (|| open::judge(dir, &db.begin_read()?, &files))().map_err(damaged)?,
        };
        open::refuse(dir, &plan)?;
        schema::check(dir, &db, held > 0).map_err(damaged)?;
        for tail in &plan.tails {
            match open::set_aside_tail(&packs_dir, *tail)? {
                Some(aside) => tracing::warn!(
                    "pack {:08}.pack: {} bytes past the last commit (the unfinished tail of the last run) set aside in {}",
                    tail.pack,
                    tail.len,
                    aside.display()
                ),
                None => tracing::info!(
                    "pack {:08}.pack: cut {} zero bytes past the last commit",
                    tail.pack,
                    tail.len
                ),
            }
        }
        let existing: Vec<u32> = files.keys().copied().collect();
        let mut packs = PackStore::open(&packs_dir, &existing, plan.next)
            .map_err(|e| StoreError::io(packs_dir.display().to_string(), e))?;
        packs.faults = faults;
        let packs = Arc::new(packs);
        // Durable before the first append: the next open knows which packs this run wrote.
        let txn = db.begin_write()?;
        txn.open_table(META)?.insert(
            meta_keys::OPEN_PACK,
            &u64::from(plan.next).to_le_bytes()[..],
        )?;
        txn.commit()?;
        let db = Arc::new(db);
        let first_job = {
            let r = db.begin_read()?;
            read::meta_u64(&r.open_table(META)?, meta_keys::JOBS_COMMITTED)?
        };
        let writer = Arc::new(Writer::new(db.clone(), packs.clone(), first_job));
        let committer = {
            let w = writer.clone();
            std::thread::Builder::new()
                .name("tandem-commit".into())
                .spawn(move || w.run_committer())
                .map_err(|e| StoreError::io("committer thread", e))?
        };
        Ok(Store {
            path: dir.to_path_buf(),
            db,
            packs,
            writer,
            committer: Some(committer),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn packs(&self) -> &PackStore {
        &self.packs
    }

    /// A consistent read-only view of the last commit: the typed getters of [`ReadView`].
    pub fn read(&self) -> Result<Reader<'_>, StoreError> {
        Ok(Reader::new(self.db.begin_read()?, &self.packs))
    }

    /// The raw redb read transaction, for the store's own modules (checks, the log marks).
    fn read_txn(&self) -> Result<ReadTransaction, StoreError> {
        Ok(self.db.begin_read()?)
    }

    /// Runs `f` in the writer's next batch and waits until that batch is committed (durably
    /// when `durable`). `f` must not change anything before it decides to refuse.
    pub fn write<R, E>(
        &self,
        durable: bool,
        f: impl FnOnce(&mut Tx<'_>) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E>
    where
        R: Send + 'static,
        E: BatchError,
    {
        self.write_job(durable, false, f)
    }

    /// As [`Store::write`] (not durable) for a job whose changes a crash may lose without
    /// losing anything an fsync acknowledged: they are in intent-log records appended
    /// before it (see [`Store::all_durable`]).
    pub fn write_replayable<R, E>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E>
    where
        R: Send + 'static,
        E: BatchError,
    {
        self.write_job(false, true, f)
    }

    fn write_job<R, E>(
        &self,
        durable: bool,
        replayable: bool,
        f: impl FnOnce(&mut Tx<'_>) -> Result<R, E> + Send + 'static,
    ) -> Result<R, E>
    where
        R: Send + 'static,
        E: BatchError,
    {
        if durable {
            // Most of a durable commit's time is the pack fdatasync: do it before queueing,
            // so the batch (which holds the writer, and every freeze waiting on it) only
            // syncs what was appended meanwhile.
            self.packs
                .sync()
                .map_err(|e| E::from(StoreError::io("pack files", e)))?;
        }
        let slot = Arc::new(std::sync::Mutex::new(None::<Result<R, E>>));
        let reply = slot.clone();
        let job = answered_job(durable, replayable, false, f, move |out| {
            *reply.lock().unwrap_or_else(|p| p.into_inner()) = Some(out);
        });
        self.writer.submit(job)?;
        // The batch answered every job it ran before `submit` returned.
        let out = slot.lock().unwrap_or_else(|p| p.into_inner()).take();
        out.unwrap_or(Err(E::from(StoreError::WriterGone)))
    }

    /// Queues `f` now, in order with every other job, and returns at once with a handle
    /// to wait for its outcome (as [`Store::write`] gives it, not durable; `replayable` as
    /// for [`Store::write_replayable`]). Whatever is queued after it commits after it. `f` may wait for something the caller provides
    /// later (the group snapshot hands it the chunks it hashed after the thaw): this call
    /// never leads a batch, and the caller must not do anything that waits for the
    /// writer before it has provided it.
    pub fn write_queued<R, E>(
        &self,
        replayable: bool,
        f: impl FnOnce(&mut Tx<'_>) -> Result<R, E> + Send + 'static,
    ) -> Result<Queued<R, E>, StoreError>
    where
        R: Send + 'static,
        E: BatchError,
    {
        let (reply, rx) = crossbeam_channel::bounded(1);
        // The waiter may be gone (it gave up): nothing else needs the answer.
        let job = answered_job(false, replayable, true, f, move |out| {
            let _ = reply.send(out);
        });
        self.writer.submit_behind(job)?;
        Ok(Queued { rx })
    }

    /// Queues `f` for the writer's next batch and returns at once (write-behind) with the
    /// job's number (see [`ReadView::committed_jobs`]) and whether the queue is long enough that the
    /// caller should [`Store::settle`] once it holds no lock: `done` gets the outcome once
    /// the batch has committed or failed. `f` must check before it
    /// mutates, as for [`Store::write`]; the caller keeps what readers must see meanwhile.
    /// With `defers`, `f` may defer rewrites and must read records and inodes through the
    /// deferred-aware readers (see `deferred.rs`); without, the writer writes out every held
    /// rewrite before `f` runs, so `f` may read and write the tables as a synchronous job
    /// does. `done` runs on whichever thread commits: it must not wait.
    pub fn write_behind<E>(
        &self,
        defers: bool,
        f: impl FnOnce(&mut Tx<'_>) -> Result<(), E> + Send + 'static,
        done: impl FnOnce(Result<(), String>) + Send + 'static,
    ) -> Result<(u64, bool), StoreError>
    where
        E: BatchError + std::fmt::Display,
    {
        let job = Job {
            durable: false,
            replayable: false,
            behind: true,
            defers,
            apply: Box::new(move |tx: &mut Tx<'_>| {
                let res = f(tx);
                let poison = matches!(&res, Err(e) if e.is_storage());
                let complete = Box::new(move |commit: Result<(), Arc<StoreError>>| {
                    done(
                        outcome(commit, res, OnBatchFailure::OwnError).map_err(|f| match f {
                            Failure::Own(e) => e.to_string(),
                            Failure::Batch(batch) => batch.to_string(),
                        }),
                    )
                });
                (
                    complete as Box<dyn FnOnce(Result<(), Arc<StoreError>>) + Send>,
                    poison,
                )
            }),
        };
        self.writer.submit_behind(job)
    }

    /// Returns once every job queued so far (write-behind ones too) is committed.
    pub fn settle(&self) -> Result<(), StoreError> {
        // Changes nothing itself: replayable.
        self.write_replayable(|_| Ok::<_, StoreError>(()))
    }

    /// Returns once the space of every chunk freed by a durable commit so far is back on
    /// the disk (the reclaimer thread punched it).
    pub fn reclaim_wait(&self) {
        self.writer.reclaim_wait()
    }

    /// How many write jobs the writer has finished (committed or failed) so far: a read
    /// transaction begun after this returned sees every commit it counts, so an unchanged
    /// count means an unchanged pool. Cheap (one lock, no store read).
    pub fn jobs_done(&self) -> u64 {
        self.writer.answered()
    }

    /// True when every write queued so far is in a durable commit or replayable (see the
    /// intent log: an fsync may then make its file durable with a log record instead of a
    /// commit).
    pub fn all_durable(&self) -> bool {
        self.writer.all_durable()
    }

    /// Makes every commit so far durable (packs synced, redb fsynced).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.write(true, |_| Ok::<_, StoreError>(()))
    }

    /// Pool-wide space figures.
    pub fn stats(&self) -> Result<PoolStats, StoreError> {
        let r = self.read_txn()?;
        let meta = r.open_table(META)?;
        let get = |k: &str| read::meta_u64(&meta, k);
        let vols = r.open_table(VOLUMES)?;
        let mut logical = 0;
        for e in vols.iter()? {
            let (_, v) = e?;
            logical += volumes::VolumeRecord::decode(v.value())?.logical_bytes;
        }
        Ok(PoolStats {
            logical_bytes: logical,
            referenced_bytes: get(meta_keys::REFERENCED_BYTES)?,
            physical_bytes: get(meta_keys::PHYSICAL_BYTES)?,
            disk_bytes: self
                .packs
                .disk_bytes()
                .map_err(|e| StoreError::io("pack files", e))?,
        })
    }
}

/// A writer job running `f` whose outcome (merged with its batch's as for
/// [`Store::write`]) goes to `answer` once the batch has committed or failed.
fn answered_job<R, E>(
    durable: bool,
    replayable: bool,
    behind: bool,
    f: impl FnOnce(&mut Tx<'_>) -> Result<R, E> + Send + 'static,
    answer: impl FnOnce(Result<R, E>) + Send + 'static,
) -> Job
where
    R: Send + 'static,
    E: BatchError,
{
    Job {
        durable,
        replayable,
        behind,
        defers: false,
        apply: Box::new(move |tx: &mut Tx<'_>| {
            let res = f(tx);
            let poison = matches!(&res, Err(e) if e.is_storage());
            let done = Box::new(move |commit: Result<(), Arc<StoreError>>| {
                answer(
                    outcome(commit, res, OnBatchFailure::OwnStorageError)
                        .map_err(|f| f.into_error(|batch| E::from(StoreError::Batch(batch)))),
                )
            });
            (
                done as Box<dyn FnOnce(Result<(), Arc<StoreError>>) + Send>,
                poison,
            )
        }),
    }
}

/// A job [`Store::write_queued`] queued: [`Queued::wait`] gives its outcome.
pub struct Queued<R, E> {
    rx: crossbeam_channel::Receiver<Result<R, E>>,
}

impl<R, E: BatchError> Queued<R, E> {
    /// Waits until the job's batch has committed (or failed) and returns the outcome.
    pub fn wait(self) -> Result<R, E> {
        self.rx
            .recv()
            .unwrap_or_else(|_| Err(E::from(StoreError::WriterGone)))
    }
}

/// Whose error a job reports when its batch failed to commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnBatchFailure {
    /// [`Store::write`]: the job's own error only if it is a storage failure (the job may be
    /// what failed the batch); a refusal is replaced by the batch's failure, so a caller
    /// waiting on its write always learns that the batch did not commit.
    OwnStorageError,
    /// [`Store::write_behind`]: the job's own error of any kind, a refusal included (the
    /// caller returned long ago; the refusal says best what went wrong with its job).
    OwnError,
}

/// Why a job failed: its own error, or its batch's.
enum Failure<E> {
    Own(E),
    Batch(Arc<StoreError>),
}

impl<E> Failure<E> {
    fn into_error(self, batch: impl FnOnce(Arc<StoreError>) -> E) -> E {
        match self {
            Failure::Own(e) => e,
            Failure::Batch(b) => batch(b),
        }
    }
}

/// THE merge of a job's own result with its batch's commit outcome: a committed batch
/// gives the job's result; a failed one gives the batch's error, or the job's own as
/// `rule` says.
fn outcome<R, E: BatchError>(
    commit: Result<(), Arc<StoreError>>,
    own: Result<R, E>,
    rule: OnBatchFailure,
) -> Result<R, Failure<E>> {
    match (commit, own) {
        (Ok(()), own) => own.map_err(Failure::Own),
        (Err(_), Err(e)) if e.is_storage() || rule == OnBatchFailure::OwnError => {
            Err(Failure::Own(e))
        }
        (Err(batch), _) => Err(Failure::Batch(batch)),
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.writer.close();
        if let Some(c) = self.committer.take() {
            let _ = c.join();
        }
    }
}
