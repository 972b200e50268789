//! Fault injection for the store's file I/O, for tests: fail the Nth write or sync of the
//! pack files and of the index (`pool.redb`, through a redb storage backend that wraps the
//! file backend, the way redb's own crash tests plug in a failing backend).
//!
//! Owns nothing of a pool: a [`Faults`] plan is handed to `Store::open_with_faults`; without
//! one the store runs on the plain files and pays nothing.

use std::fs::File;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

/// Which I/O a plan fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// A write of chunk bytes to a pack or of pages to the index.
    Write,
    /// An fdatasync of a pack or of the index.
    Sync,
}

/// A plan: from when it is armed, the Nth matching operation fails with `errno` (and, when
/// sticky, every later one while armed: a disk that stays full or broken). Counts every
/// operation seen, armed or not.
#[derive(Debug, Default)]
pub struct Faults {
    /// 0: off; else fail the Nth write after arming.
    write_at: AtomicU64,
    sync_at: AtomicU64,
    errno: AtomicI32,
    sticky: std::sync::atomic::AtomicBool,
    writes: AtomicU64,
    syncs: AtomicU64,
}

impl Faults {
    pub fn new() -> Arc<Faults> {
        Arc::new(Faults::default())
    }

    /// Fails the `nth` (1-based) next operation of kind `op` with `errno`; with `sticky`,
    /// every one after it too, until [`Faults::disarm`].
    pub fn arm(&self, op: FaultOp, nth: u64, errno: i32, sticky: bool) {
        self.errno.store(errno, Ordering::SeqCst);
        self.sticky.store(sticky, Ordering::SeqCst);
        match op {
            FaultOp::Write => self
                .write_at
                .store(self.writes.load(Ordering::SeqCst) + nth, Ordering::SeqCst),
            FaultOp::Sync => self
                .sync_at
                .store(self.syncs.load(Ordering::SeqCst) + nth, Ordering::SeqCst),
        }
    }

    pub fn disarm(&self) {
        self.write_at.store(0, Ordering::SeqCst);
        self.sync_at.store(0, Ordering::SeqCst);
    }

    /// How many operations of `op` were seen so far.
    pub fn seen(&self, op: FaultOp) -> u64 {
        match op {
            FaultOp::Write => self.writes.load(Ordering::SeqCst),
            FaultOp::Sync => self.syncs.load(Ordering::SeqCst),
        }
    }

    /// Called before each operation: the error it must fail with, if any.
    pub(crate) fn check(&self, op: FaultOp) -> io::Result<()> {
        let (count, at) = match op {
            FaultOp::Write => (&self.writes, &self.write_at),
            FaultOp::Sync => (&self.syncs, &self.sync_at),
        };
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        let at = at.load(Ordering::SeqCst);
        if at != 0 && (n == at || (n > at && self.sticky.load(Ordering::SeqCst))) {
            return Err(io::Error::from_raw_os_error(
                self.errno.load(Ordering::SeqCst),
            ));
        }
        Ok(())
    }
}

/// `check` on an optional plan.
pub(crate) fn check(faults: &Option<Arc<Faults>>, op: FaultOp) -> io::Result<()> {
    match faults {
        Some(f) => f.check(op),
        None => Ok(()),
    }
}

/// The index's file behind a plan.
#[derive(Debug)]
pub(crate) struct FaultyBackend {
    inner: redb::backends::FileBackend,
    faults: Arc<Faults>,
}

impl FaultyBackend {
    pub(crate) fn new(file: File, faults: Arc<Faults>) -> Result<Self, redb::DatabaseError> {
        Ok(FaultyBackend {
            inner: redb::backends::FileBackend::new(file)?,
            faults,
        })
    }
}

impl redb::StorageBackend for FaultyBackend {
    fn len(&self) -> Result<u64, io::Error> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.faults.check(FaultOp::Write)?;
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.faults.check(FaultOp::Sync)?;
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.faults.check(FaultOp::Write)?;
        self.inner.write(offset, data)
    }

    fn close(&self) -> Result<(), io::Error> {
        self.inner.close()
    }
}
