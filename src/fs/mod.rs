//! The POSIX filesystem model over the store: volumes, inodes, directories, file data,
//! xattrs, with plain Rust types in and out (the FUSE adapter is the only caller that sees
//! fuser types; everything here is tested without a mount).
//!
//! The public face is [`Engine`] (`engine/`: its methods grouped by concern); the state and
//! the implementation are the private `Inner`, one file per concern (ns.rs, remove.rs,
//! opens.rs, ghosts.rs, data.rs, flush.rs, intent.rs, setattr.rs, xattr.rs, fallocate.rs,
//! punch.rs, copy.rs, copyfile.rs, seek.rs, groups.rs, restore.rs).
//!
//! Owns: the per-volume write buffer (dirty blocks of files, see [`data`]), open counts
//! (files unlinked while open stay readable until the last close), the kernel's lookup
//! counts of directories (one removed while a working directory answers until the kernel
//! forgets it: ghosts.rs), and the commit ticker
//! that makes buffered writes durable within `commit_interval`.
//!
//! Invariants: a live read sees every write that returned (buffer first, then the store);
//! an inode's size only changes with the volume's buffer lock held; reads of a snapshot
//! view never touch the buffer; nothing here holds a lock while waiting for another volume.

pub mod acl;
pub mod atime;
pub mod attr;
mod blockbuf;
pub mod copy;
mod copyfile;
mod data;
mod engine;
pub mod error;
pub mod fallocate;
mod flush;
mod ghosts;
mod intent;
pub use data::Written;
pub use intent::{FsyncPath, LogStatus};
pub mod groups;
mod holds;
mod make;
mod ns;
mod opens;
pub(crate) mod pace;
mod patch;
mod pending;
#[doc(hidden)]
pub use pending::CommitPause;
mod pending_attr;
mod pending_create;
mod punch;
mod remove;
mod rename_entry;
mod renames;
mod seal;
pub use seal::SealedSnapshot;
pub mod diff;
pub mod restore;
mod schedules;
pub mod seek;
mod setattr;
pub mod snapmeta;
mod space;
pub mod treehash;
mod txops;
mod xattr;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use attr::{
    Attr, Ctx, DirEntry, FileKind, Inode, RenameFlags, SetAttr, StatFs, TimeSet, Timestamp,
    XattrMode,
};
pub use engine::Engine;
pub use error::FsError;

use crate::options::{OptionScope, VolumeOptions};
use crate::store::keys::RowId;
use crate::store::rows as store_view;
use crate::store::volumes::{self, VolumeRecord};
use crate::store::{PoolStats, ReadView, Store};
use crate::types::{Generation, InodeNo, VolumeId};

/// Largest file size tandem accepts (EFBIG beyond): 2^52 bytes, 4 PiB.
pub const MAX_FILE_SIZE: u64 = 1 << 52;

/// Default ring size of the intent log.
pub const DEFAULT_LOG_CAPACITY: u64 = 64 << 20;

#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    /// Buffered writes become durable within this interval without an fsync.
    pub commit_interval: Duration,
    /// Buffered bytes per volume past which a write flushes the volume's buffer.
    pub dirty_limit: usize,
    /// Ring size of the intent log (`<pool>/intent.log`) that fsync appends to; 0 turns the
    /// log off (every fsync then commits durably). An existing log keeps its size.
    pub log_capacity: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            commit_interval: Duration::from_secs(5),
            dirty_limit: 16 << 20,
            log_capacity: DEFAULT_LOG_CAPACITY,
        }
    }
}

/// What `volume info` shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeInfo {
    pub id: VolumeId,
    pub name: String,
    pub block_size: u32,
    /// Sum of regular file sizes.
    pub logical_bytes: u64,
    /// Bytes of chunks the live volume references (before dedup with other volumes).
    pub physical_bytes: u64,
    pub files: u64,
    pub generation: Generation,
    pub created: i64,
}

impl From<&VolumeRecord> for VolumeInfo {
    fn from(r: &VolumeRecord) -> Self {
        VolumeInfo {
            id: r.id,
            name: r.name.clone(),
            block_size: r.block_size,
            logical_bytes: r.logical_bytes,
            physical_bytes: r.stored_bytes,
            files: r.files,
            generation: r.cur,
            created: r.created,
        }
    }
}

/// Per-volume state kept in memory.
pub(crate) struct VolState {
    pub block_size: u32,
    /// The write buffer. A parking_lot mutex: a flush lets go of it while its chunks are
    /// hashed and committed (`MutexGuard::unlocked`), and waits for another flush on
    /// [`VolState::flushed`] without giving up its guard.
    pub dirty: parking_lot::Mutex<data::Dirty>,
    /// Signalled when a flush of this volume ends (see `Dirty::in_flight`).
    pub flushed: parking_lot::Condvar,
    /// A background flush of this volume is queued (see `Inner::want_flush`).
    pub flush_wanted: AtomicBool,
    /// Set while a snapshot of the volume is being prepared: writers flush their own
    /// buffers past [`TIGHT_DIRTY_LIMIT`], so the freeze finds little left to flush.
    pub tight: std::sync::atomic::AtomicBool,
    /// Namespace operations answered before their commit (see pending.rs).
    pub pending: Mutex<pending::Pending>,
    /// The next inode number to hand out: seeded from the committed volume record, raised
    /// by every create (which raises the record's in its commit). See pending_create.rs.
    pub next_ino: std::sync::atomic::AtomicU64,
}

impl VolState {
    /// A fresh inode number (never committed, never handed out since the pool opened).
    pub(crate) fn alloc_ino(&self) -> InodeNo {
        InodeNo(self.next_ino.fetch_add(1, Ordering::AcqRel))
    }
}

impl VolState {
    /// Waits (the buffer lock let go meanwhile) until no flush of the volume is in flight.
    pub(crate) fn wait_flushed(&self, d: &mut parking_lot::MutexGuard<'_, data::Dirty>) {
        while d.in_flight {
            self.flushed.wait(d);
        }
    }

    /// As [`VolState::wait_flushed`], and also while a snapshot holds the volume's
    /// background flushes (see `Dirty::held`): what a flush outside a request waits for.
    pub(crate) fn wait_quiet(&self, d: &mut parking_lot::MutexGuard<'_, data::Dirty>) {
        while d.in_flight || d.held {
            self.flushed.wait(d);
        }
    }
}

/// Buffered bytes per volume while a snapshot is pending (see [`VolState::tight`]).
pub const TIGHT_DIRTY_LIMIT: usize = 1 << 20;

/// The engine's state and the implementation of its operations, spread over this module's
/// files by concern. Private to `fs`: callers use [`Engine`], whose methods call these.
/// Shared (`Arc`) with the commit and flush threads.
struct Inner {
    store: Store,
    cfg: EngineConfig,
    vols: RwLock<HashMap<VolumeId, Arc<VolState>>>,
    /// Open handles per inode; shared with write jobs (they decide orphan vs free, and
    /// mark [`opens::MAYBE_ORPHAN`]). See opens.rs.
    opens: Arc<opens::Opens>,
    /// Something was committed without fsync since the last durable commit.
    unsynced: AtomicBool,
    /// The intent log fsync appends to (see [`intent`]); `None` when turned off.
    log: Option<crate::store::intent::IntentLog>,
    /// fsyncs answered by a log record, and by a durable commit.
    fsyncs: [std::sync::atomic::AtomicU64; 2],
    /// Intent-log records the opening of the pool applied (see [`Inner::log_replayed`]).
    replayed: std::sync::atomic::AtomicU64,
    /// What the write buffers may need on disk (see [`space`]).
    space: space::Space,
    /// Volumes whose buffers passed half their limit, for the flusher thread (see
    /// [`Inner::want_flush`]).
    flusher: crossbeam_channel::Sender<VolumeId>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding an engine lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> EngineConfig {
        self.cfg
    }

    /// Flushes every buffered write and makes all commits durable (a checkpoint of the
    /// intent log: see [`Inner::checkpoint`]).
    pub fn commit_all(&self) -> Result<(), FsError> {
        self.checkpoint()
    }

    /// Flushes every buffered write of every volume, and the noted atimes (commits without
    /// fsync).
    pub(crate) fn flush_all(&self) -> Result<(), FsError> {
        let vols: Vec<VolumeId> = self
            .vols
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect();
        // One volume that cannot flush must not keep the others from being committed.
        let mut first_err = None;
        for v in vols {
            if let Err(e) = self.flush_volume(v).and_then(|()| self.commit_atimes(v)) {
                tracing::error!("flushing volume {v} failed: {e}");
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Runs a mutating operation in the writer's next batch (no fsync) and notes that the
    /// commit ticker has something to make durable. Marked after the commit, so a durable
    /// commit that clears the mark always covers what was marked.
    pub(crate) fn write_op<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::store::Tx<'_>) -> Result<R, FsError> + Send + 'static,
    ) -> Result<R, FsError> {
        let out = self.store.write(false, f);
        self.unsynced.store(true, Ordering::Release);
        out
    }

    /// As [`Inner::write_op`] for a namespace operation that commits before it answers:
    /// queued under the volume's overlay lock and counted there until answered, so that a
    /// write-behind operation checked meanwhile commits first too (see pending.rs).
    pub(crate) fn ns_write_op<R: Send + 'static>(
        &self,
        vs: &VolState,
        f: impl FnOnce(&mut crate::store::Tx<'_>) -> Result<R, FsError> + Send + 'static,
    ) -> Result<R, FsError> {
        let queued = {
            let mut p = lock(&vs.pending);
            let q = self.store.write_queued(false, f);
            if q.is_ok() {
                p.sync_ns += 1;
            }
            q
        };
        let out = queued.map_err(FsError::from).and_then(|q| q.wait());
        let mut p = lock(&vs.pending);
        p.sync_ns = p.sync_ns.saturating_sub(1);
        drop(p);
        self.unsynced.store(true, Ordering::Release);
        out
    }

    /// A read transaction that holds inode `ino` if it exists in the live view: when the
    /// rows lack it but its number is not committed yet (a create answered before its
    /// commit, see pending_create.rs), waits for the writer first. For the readers that do
    /// not apply the overlay themselves.
    pub(crate) fn read_inode(
        &self,
        vol: VolumeId,
        view: store_view::View,
        ino: InodeNo,
    ) -> Result<(crate::store::Reader<'_>, Inode), FsError> {
        let r = self.store.read()?;
        match txops::inode_in(&r, vol, view, ino) {
            Err(FsError::NotFound)
                if view == store_view::View::Live && ino >= r.volume(vol)?.next_ino =>
            {
                drop(r);
                self.store.settle()?;
                let r = self.store.read()?;
                let inode = txops::inode_in(&r, vol, view, ino)?;
                Ok((r, inode))
            }
            other => other.map(|inode| (r, inode)),
        }
    }

    /// As [`Inner::write_op`] for a commit the intent log can replay (a flush whose
    /// writes are all in records: see `intent::log_before_flush`).
    pub(crate) fn write_op_replayable<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::store::Tx<'_>) -> Result<R, FsError> + Send + 'static,
    ) -> Result<R, FsError> {
        let out = self.store.write_replayable(f);
        self.unsynced.store(true, Ordering::Release);
        out
    }

    fn purge_orphans(&self) -> Result<(), FsError> {
        self.store.write(true, |tx| {
            for (vol, ino) in tx.orphans_list()? {
                let mut rec = tx.volume(vol)?;
                match txops::free_inode(tx, &mut rec, ino) {
                    Ok(()) | Err(FsError::NotFound) => {}
                    Err(e) => return Err(e),
                }
                tx.orphans_remove(vol, ino)?;
                tx.put_volume(&rec)?;
            }
            Ok::<_, FsError>(())
        })
    }

    pub(crate) fn vol_state(&self, vol: VolumeId) -> Result<Arc<VolState>, FsError> {
        if let Some(v) = self
            .vols
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&vol)
        {
            return Ok(v.clone());
        }
        let rec = self.record(vol)?;
        let mut vols = self.vols.write().unwrap_or_else(|p| p.into_inner());
        Ok(vols
            .entry(vol)
            .or_insert_with(|| {
                Arc::new(VolState {
                    block_size: rec.block_size,
                    dirty: parking_lot::Mutex::new(data::Dirty::default()),
                    flushed: parking_lot::Condvar::new(),
                    flush_wanted: AtomicBool::new(false),
                    tight: std::sync::atomic::AtomicBool::new(false),
                    pending: Mutex::new(pending::Pending::default()),
                    next_ino: std::sync::atomic::AtomicU64::new(rec.next_ino.0),
                })
            })
            .clone())
    }

    /// The committed record of a volume.
    pub fn record(&self, vol: VolumeId) -> Result<VolumeRecord, FsError> {
        Ok(self.store.read()?.volume(vol)?)
    }

    // ---- volumes ----

    /// Creates a volume with an empty root directory (mode 0755, owned by `owner`).
    pub fn create_volume(
        &self,
        name: &str,
        block_size: Option<u64>,
        owner: Ctx,
    ) -> Result<VolumeInfo, FsError> {
        let name = name.to_string();
        let bs = block_size.unwrap_or(volumes::DEFAULT_BLOCK as u64);
        let now = Timestamp::now();
        self.store.write(true, move |tx| {
            let mut rec = tx.create_volume(&name, bs, now.secs)?;
            rec.files = 1;
            let root = Inode {
                kind: FileKind::Dir,
                perm: 0o755,
                uid: owner.uid,
                gid: owner.gid,
                nlink: 2,
                size: 0,
                atime: now,
                mtime: now,
                ctime: now,
                crtime: now,
                rdev: 0,
                parent: InodeNo::ROOT,
                stored: 0,
                target: Vec::new(),
            };
            txops::put_inode(tx, &rec.gens(), InodeNo::ROOT, &root)?;
            tx.put_volume(&rec)?;
            Ok::<_, FsError>(VolumeInfo::from(&rec))
        })
    }

    pub fn volume_id(&self, name: &str) -> Result<VolumeId, FsError> {
        Ok(self.store.read()?.volume_id(name)?)
    }

    pub fn list_volumes(&self) -> Result<Vec<VolumeInfo>, FsError> {
        // Counts include the unlinks answered but not committed yet.
        self.store.settle()?;
        self.committed_volumes()
    }

    pub fn committed_volumes(&self) -> Result<Vec<VolumeInfo>, FsError> {
        let mut out: Vec<VolumeInfo> = (self.store.read()?.volumes()?.iter())
            .map(VolumeInfo::from)
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Volume info with buffered writes counted.
    pub fn volume_info(&self, name: &str) -> Result<VolumeInfo, FsError> {
        // Counts include the unlinks answered but not committed yet.
        self.store.settle()?;
        let id = self.volume_id(name)?;
        self.flush_volume(id)?;
        Ok(VolumeInfo::from(&self.record(id)?))
    }

    /// Deletes a volume and reclaims its space (chunks only it referenced are freed).
    pub fn delete_volume(&self, name: &str) -> Result<(), FsError> {
        let id = self.volume_id(name)?;
        // Buffered writes of a deleted volume are discarded, not flushed.
        if let Some(vs) = self
            .vols
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
        {
            let mut d = vs.dirty.lock();
            vs.wait_flushed(&mut d);
            self.space.release(d.charged(vs.block_size));
            *d = data::Dirty::default();
        }
        self.forget_opens(id);
        self.store
            .write(true, move |tx| tx.delete_volume(id).map_err(FsError::from))
    }

    pub fn pool_stats(&self) -> Result<PoolStats, FsError> {
        // Its durable commit also takes the unlinks answered but not committed yet.
        self.commit_all()?;
        Ok(self.store.stats()?)
    }

    /// Bytes each volume's write buffer holds (whole blocks), not yet flushed. Takes each
    /// buffer's lock in turn, briefly: for the metrics, not for a request.
    pub fn dirty_bytes(&self) -> Vec<(VolumeId, u64)> {
        let vols: Vec<(VolumeId, Arc<VolState>)> = self
            .vols
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(v, s)| (*v, s.clone()))
            .collect();
        vols.into_iter()
            .map(|(v, s)| (v, s.dirty.lock().charged(s.block_size)))
            .collect()
    }

    // ---- generations (the snapshot layer's primitives) ----

    /// Makes writers of these volumes flush at [`TIGHT_DIRTY_LIMIT`] (on) or at the
    /// configured limit again (off). Used around a freeze, which then flushes little.
    pub fn set_tight(&self, vols: &[VolumeId], on: bool) {
        for &v in vols {
            if let Ok(vs) = self.vol_state(v) {
                vs.tight.store(on, Ordering::Release);
            }
        }
    }

    /// Records the current generation of each volume and bumps it, in ONE transaction, after
    /// flushing their buffered writes. The caller is responsible for quiescing writers
    /// (the freeze); this costs O(number of volumes).
    pub fn snapshot_generations(
        &self,
        vols: &[VolumeId],
    ) -> Result<Vec<(VolumeId, Generation)>, FsError> {
        for &v in vols {
            self.flush_volume(v)?;
        }
        let vols = vols.to_vec();
        let out = self.store.write(true, move |tx| {
            tx.snapshot_generations(&vols).map_err(FsError::from)
        })?;
        Ok(out)
    }

    /// Gives up a snapshot generation: what only it could see is dropped.
    pub fn release_generation(&self, vol: VolumeId, generation: Generation) -> Result<(), FsError> {
        self.store.write(true, move |tx| {
            tx.release_generation(vol, generation)
                .map_err(FsError::from)
        })
    }

    /// The rows changed after generation `after` up to `upto` (inclusive): what a diff or a
    /// restore between the two has to look at. O(changes).
    pub fn changed_rows(
        &self,
        vol: VolumeId,
        after: Generation,
        upto: Generation,
    ) -> Result<Vec<RowId>, FsError> {
        self.flush_volume(vol)?;
        Ok(self.store.read()?.changed(vol, after, upto)?)
    }
}

#[cfg(test)]
mod clone_tests;
#[cfg(test)]
mod intent_tests;
#[cfg(test)]
mod pending_attr_tests;
#[cfg(test)]
mod pending_batch_tests;
#[cfg(test)]
mod pending_rename_tests;
#[cfg(test)]
mod pending_tests;
#[cfg(test)]
mod read_tests;
#[cfg(test)]
mod tests;

impl Inner {
    /// The options stored for one scope, parsed (see [`crate::options`]).
    pub fn options(&self, scope: OptionScope) -> Result<VolumeOptions, FsError> {
        Ok(self.store.read()?.options(scope)?)
    }
}
