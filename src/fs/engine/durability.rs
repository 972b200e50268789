//! [`Engine`]'s flush, fsync and durability.

use super::Engine;
use crate::fs::{EngineConfig, FsError, FsyncPath, LogStatus};
use crate::store::{PoolStats, Store};
use crate::types::{InodeNo, VolumeId};

/// # Flush, fsync and durability
///
/// Buffered writes become durable within `commit_interval`, on fsync (through the intent
/// log when it can), or at a checkpoint (flush.rs, intent.rs).
impl Engine {
    /// The pool underneath (for tools and tests: reads go through
    /// [`crate::store::ReadView`]).
    pub fn store(&self) -> &Store {
        self.inner.store()
    }

    /// The configuration the engine was opened with.
    pub fn config(&self) -> EngineConfig {
        self.inner.config()
    }

    /// Flushes every buffered write of a volume.
    pub fn flush_volume(&self, vol: VolumeId) -> Result<(), FsError> {
        self.inner.flush_volume(vol)
    }

    /// Flushes several volumes at once, one thread per volume that has buffered writes
    /// (their commits then share writer batches); the first error is returned after every
    /// flush has ended.
    pub fn flush_volumes(&self, vols: &[VolumeId]) -> Result<(), FsError> {
        self.inner.flush_volumes(vols)
    }

    /// Flushes the buffered writes of one file.
    pub fn flush_inode(&self, vol: VolumeId, ino: InodeNo) -> Result<(), FsError> {
        self.inner.flush_inode(vol, ino)
    }

    /// Makes a file's writes durable: a record in the intent log when every commit is
    /// durable (one log sync, shared with concurrent fsyncs), else a flush and a durable
    /// commit.
    pub fn fsync(&self, vol: VolumeId, ino: InodeNo) -> Result<(), FsError> {
        self.inner.fsync(vol, ino).map(drop)
    }

    /// As [`Engine::fsync`], and says how it was answered (for the per volume metrics).
    pub fn fsync_answered(&self, vol: VolumeId, ino: InodeNo) -> Result<FsyncPath, FsError> {
        self.inner.fsync(vol, ino)
    }

    /// Flushes every buffered write and makes all commits durable (a checkpoint of the
    /// intent log: see [`Engine::checkpoint`]).
    pub fn commit_all(&self) -> Result<(), FsError> {
        self.inner.commit_all()
    }

    /// Flushes every buffered write and commits durably; with the intent log, the commit
    /// records how much of the log it covers, and the ring reuses that space afterwards.
    pub fn checkpoint(&self) -> Result<(), FsError> {
        self.inner.checkpoint()
    }

    /// Pool-wide space figures, after a durable commit of everything buffered.
    pub fn pool_stats(&self) -> Result<PoolStats, FsError> {
        self.inner.pool_stats()
    }

    /// Where the intent log is, how full, and how fsyncs were answered (`tandem status`).
    pub fn log_status(&self) -> Option<LogStatus> {
        self.inner.log_status()
    }

    /// fsyncs answered so far by an intent-log record, and by a durable commit.
    pub fn fsync_counts(&self) -> (u64, u64) {
        self.inner.fsync_counts()
    }

    /// How many intent-log records the opening of this pool applied (records a clean
    /// shutdown had already committed, or the rows already held, are not counted).
    pub fn log_replayed(&self) -> u64 {
        self.inner.log_replayed()
    }

    /// For crash tests that play power loss: the log file, the file offset where its durable
    /// part ends, and how many bytes from there (up to the ring's end) hold no record an
    /// fsync has acknowledged, so a test may cut or garble them. `None` without a log.
    pub fn intent_log_tail(&self) -> Option<(std::path::PathBuf, u64, u64)> {
        self.inner.intent_log_tail()
    }
}
