//! The engine's public face: [`Engine`], an open pool with its filesystem operations. Its
//! methods are grouped by concern (namespace, open handles, file data, attributes and
//! xattrs in `files.rs`; volumes and options in `volumes.rs`; groups, snapshot records and
//! generations in `snapshots.rs`; holds and schedules in `lifecycle.rs`; flush, fsync and durability in `durability.rs`), each
//! calling the implementation in the `fs` file of the same concern. This file opens and
//! closes the engine: the store, the intent log (replayed), orphans purged, and the commit
//! and flush threads.
//!
//! Invariant: the threads hold the engine's state weakly; dropping the `Engine` stops them,
//! then flushes and commits everything durably.

mod durability;
mod files;
mod integrity;
mod lifecycle;
mod renames;
mod snapshots;
mod volumes;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};

use super::{EngineConfig, FsError, Inner, intent, space};
use crate::store::{Store, StoreError};
use crate::types::VolumeId;

/// An open pool with its filesystem operations. Dropping it flushes buffered writes and
/// makes everything durable.
pub struct Engine {
    /// The state and the implementation (`fs` unit tests reach it for internals).
    pub(super) inner: Arc<Inner>,
    ticker: Option<(crossbeam_channel::Sender<()>, std::thread::JoinHandle<()>)>,
    flusher: Option<(crossbeam_channel::Sender<()>, std::thread::JoinHandle<()>)>,
}

/// # Opening a pool
impl Engine {
    /// Opens (or creates) the pool in `dir` with the default configuration: replays the
    /// intent log, frees orphans, and starts the commit and flush threads.
    pub fn open(dir: &Path) -> Result<Engine, FsError> {
        Self::open_with(dir, EngineConfig::default())
    }

    /// As [`Engine::open`] with a configuration.
    pub fn open_with(dir: &Path, cfg: EngineConfig) -> Result<Engine, FsError> {
        Self::open_with_faults(dir, cfg, None)
    }

    /// As [`Engine::open_with`], with the store's file I/O behind a fault plan (tests).
    pub fn open_with_faults(
        dir: &Path,
        cfg: EngineConfig,
        faults: Option<Arc<crate::store::fault::Faults>>,
    ) -> Result<Engine, FsError> {
        let store = Store::open_with_faults(dir, faults)?;
        let log = if cfg.log_capacity > 0 {
            let path = dir.join(intent::LOG_FILE);
            // A new log takes at most 1/16 of a small disk (an existing one keeps its size).
            let fs = space::fs_size(dir);
            let cap = if fs > 0 {
                cfg.log_capacity.min((fs / 16).max(1 << 20))
            } else {
                cfg.log_capacity
            };
            Some(
                crate::store::intent::IntentLog::open(&path, cap)
                    .map_err(|e| StoreError::io(path.display().to_string(), e))?,
            )
        } else {
            None
        };
        let (flusher, flush_requests) = crossbeam_channel::unbounded::<VolumeId>();
        let inner = Arc::new(Inner {
            store,
            cfg,
            vols: RwLock::new(HashMap::new()),
            opens: Default::default(),
            unsynced: AtomicBool::new(false),
            log,
            fsyncs: Default::default(),
            replayed: Default::default(),
            space: space::Space::new(dir),
            flusher,
        });
        inner.purge_orphans()?;
        if let Some(log) = &inner.log {
            let applied = inner.replay_log(log)?;
            inner.replayed.store(applied as u64, Ordering::Relaxed);
        }
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        let interval = cfg.commit_interval;
        let handle = std::thread::Builder::new()
            .name("tandem-commit".into())
            .spawn(move || {
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(interval)
                {
                    let Some(inner) = weak.upgrade() else { break };
                    if let Err(e) = inner.commit_all() {
                        tracing::error!("periodic commit failed: {e}");
                    }
                }
            })
            .map_err(|e| StoreError::io("commit thread", e))?;
        // Flushes a volume whose buffers passed half their limit while its writers go on
        // (they flush themselves only past the whole limit).
        let (stop_flusher, flusher_stopped) = crossbeam_channel::bounded::<()>(1);
        let weak: Weak<Inner> = Arc::downgrade(&inner);
        let flusher = std::thread::Builder::new()
            .name("tandem-flush".into())
            .spawn(move || {
                loop {
                    crossbeam_channel::select! {
                        recv(flusher_stopped) -> _ => break,
                        recv(flush_requests) -> vol => {
                            let Ok(vol) = vol else { break };
                            let Some(inner) = weak.upgrade() else { break };
                            inner.background_flush(vol);
                        }
                    }
                }
            })
            .map_err(|e| StoreError::io("flush thread", e))?;
        Ok(Engine {
            inner,
            ticker: Some((stop, handle)),
            flusher: Some((stop_flusher, flusher)),
        })
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        for (stop, handle) in [self.flusher.take(), self.ticker.take()]
            .into_iter()
            .flatten()
        {
            let _ = stop.send(());
            let _ = handle.join();
        }
        if let Err(e) = self.inner.commit_all() {
            tracing::error!("final commit failed: {e}");
        }
        let (logged, committed) = self.inner.fsync_counts();
        tracing::info!("fsyncs: {logged} through the intent log, {committed} by a durable commit");
    }
}
