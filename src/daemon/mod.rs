//! The daemon: owns one pool (the store's lock guarantees one daemon per pool), serves every
//! FUSE mount of it, and answers the control API on `<pool>/tandem.sock`.
//!
//! Invariants: the socket is owner-only; a stale socket (no daemon behind it) is replaced,
//! unless the service manager passed it (socket activation, `systemd`): then it is used as
//! is and left in place at exit; the set of mounts is remembered in `<pool>/mounts.json` so
//! that a restart mounts them again, and a mount the kernel dropped (external `umount`) is
//! forgotten. SIGTERM/SIGINT unmount everything, commit and exit; SIGHUP reloads (`reload`)
//! and never unmounts. Signals are caught by handlers (signal-hook), never blocked, so
//! children inherit no mask; the stop wakes the accept loop without the socket's path, so a
//! daemon whose pool directory was deleted still stops. The service manager hears READY=1 once the mounts are back and the
//! control socket is served, RELOADING=1/READY=1 around a reload, STOPPING=1 at the stop.
//!
//! `pool verify` runs one at a time (a second is refused while one runs); it and `snapshot
//! verify` send progress when asked and stop when their client hangs up or the daemon shuts
//! down (`verify`). Snapshot roots are recorded by a worker after the thaw (`roots`).
//! With `--metrics ADDR` it serves Prometheus metrics there (`crate::metrics`); a taken
//! address fails the start. Every snapshot create, delete, restore and clone it runs is
//! logged at info with its figures (`snapshots`).

mod copy;
mod error;
mod lifecycle;
mod mountinfo;
mod mounts;
mod options;
mod restoretest;
mod roots;
mod schedules;
mod snapshots;
mod systemd;
mod verify;

use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::control::server::Peer;
use crate::control::{
    Coded, Envelope, ErrorCode, OptionSet, PROTOCOL_VERSION, Pong, Reply, Request, Response,
    StatusInfo, VolumeDetail, WireError, socket_path,
};
use crate::fs::{Ctx, Engine, FsError};
use crate::options::OptionScope;
use crate::store::StoreError;

pub use error::ServiceError;
pub use mounts::{MountTable, canonical, parse_mount_options};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(
        "pool {0} is already served by a running tandem daemon; use it, or stop it first (tandem status shows it)"
    )]
    AlreadyRunning(PathBuf),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("control socket {path}: {source}")]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("signal handling: {0}")]
    Signals(std::io::Error),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
}

/// How the daemon runs, besides its pool.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Serve Prometheus metrics on this address (`--metrics`); off when `None`.
    pub metrics: Option<std::net::SocketAddr>,
}

/// Signals the daemon handles itself (see the module doc).
const HANDLED_SIGNALS: [i32; 3] = [
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGHUP,
];

pub struct Daemon {
    pool: PathBuf,
    engine: Arc<Engine>,
    mounts: MountTable,
    stop: AtomicBool,
    stop_tx: crossbeam_channel::Sender<()>,
    /// A `pool verify` is running.
    verifying: AtomicBool,
    /// Wakes the root worker (see `roots`).
    roots: crossbeam_channel::Sender<()>,
    /// Wakes the scheduler (a schedule was added or enabled, or the daemon stops).
    schedule_wake: crossbeam_channel::Sender<()>,
}

/// Runs the daemon for `pool` in the foreground until a signal or a shutdown request.
/// Call it once per process: it takes the sockets systemd passed.
pub fn run(pool: &Path, opts: &Options) -> Result<(), DaemonError> {
    let passed = systemd::passed_listener().map_err(|e| DaemonError::Socket {
        path: socket_path(pool),
        source: e,
    })?;
    // Caught from here on (a signal before the signal thread runs waits for it). Handlers,
    // not a blocked mask: children such as hooks start with default dispositions and an
    // empty mask, and there is nothing for them to undo.
    let mut signals =
        signal_hook::iterator::Signals::new(HANDLED_SIGNALS).map_err(DaemonError::Signals)?;
    let signals_handle = signals.handle();
    std::fs::create_dir_all(pool)
        .map_err(|e| FsError::from(StoreError::io(pool.display().to_string(), e)))?;
    let pool = pool
        .canonicalize()
        .map_err(|e| FsError::from(StoreError::io(pool.display().to_string(), e)))?;
    let engine = match Engine::open(&pool) {
        Ok(e) => Arc::new(e),
        Err(FsError::Store(StoreError::PoolInUse { path })) => {
            return Err(DaemonError::AlreadyRunning(path));
        }
        Err(e) => return Err(e.into()),
    };
    // Metrics before anything is mounted: a taken port fails the start, not a later scrape.
    let metrics = opts
        .metrics
        .map(|addr| crate::metrics::Endpoint::start(addr, Arc::downgrade(&engine)))
        .transpose()?;
    let sock = socket_path(&pool);
    let activated = passed.is_some();
    let listener = match passed {
        Some(l) => {
            systemd::check_passed(&l, &sock);
            l
        }
        None => {
            // The pool lock is ours, so whatever socket is there was left by a dead daemon.
            let _ = std::fs::remove_file(&sock);
            crate::control::server::bind(&sock).map_err(|e| DaemonError::Socket {
                path: sock.clone(),
                source: e,
            })?
        }
    };
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(4);
    let roots_stop = Arc::new(AtomicBool::new(false));
    let (roots, roots_worker) =
        roots::start(&engine, roots_stop.clone()).map_err(DaemonError::Signals)?;
    let (schedule_wake, wake_rx) = crossbeam_channel::bounded::<()>(1);
    let daemon = Arc::new(Daemon {
        mounts: MountTable::new(&pool, engine.clone()),
        pool: pool.clone(),
        engine,
        stop: AtomicBool::new(false),
        stop_tx,
        verifying: AtomicBool::new(false),
        roots,
        schedule_wake,
    });
    daemon.mounts.restore();
    tracing::info!(
        "tandem daemon serving pool {} (pid {})",
        pool.display(),
        std::process::id()
    );

    // Signals: one thread takes them: SIGHUP reloads, SIGTERM/SIGINT ask the main thread
    // to stop.
    let signal_thread = {
        let d = daemon.clone();
        std::thread::Builder::new()
            .name("tandem-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    let stopping = d.stop.load(Ordering::Acquire);
                    if sig == signal_hook::consts::SIGHUP {
                        if !stopping {
                            d.reload();
                        }
                        continue;
                    }
                    if !stopping {
                        tracing::info!("signal {sig}: shutting down");
                    }
                    d.request_stop();
                }
            })
            .map_err(DaemonError::Signals)?
    };
    // Reaper: forget mounts the kernel dropped.
    // Dropping the sender stops it at once (no sleep to wait out at shutdown).
    let (reaper_stop, reaper_stopped) = crossbeam_channel::bounded::<()>(0);
    let reaper = {
        let d = daemon.clone();
        std::thread::Builder::new()
            .name("tandem-reaper".into())
            .spawn(move || {
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                    reaper_stopped.recv_timeout(Duration::from_millis(300))
                {
                    if !d.stop.load(Ordering::Acquire) {
                        d.mounts.reap();
                    }
                }
            })
            .map_err(DaemonError::Signals)?
    };
    // Control socket. Dropping `accept_stop` ends the accept loop: a wake that needs no
    // path (connecting to the socket fails once the pool directory is gone).
    let (accept_stop, accept_stopped) = UnixStream::pair().map_err(DaemonError::Signals)?;
    let control = {
        let d = daemon.clone();
        std::thread::Builder::new()
            .name("tandem-control".into())
            .spawn(move || {
                let h = d.clone();
                let stop = move || d.stop.load(Ordering::Acquire);
                crate::control::server::accept(
                    listener,
                    accept_stopped,
                    stop,
                    Arc::new(move |l, peer| h.answer(l, peer)),
                );
            })
            .map_err(DaemonError::Signals)?
    };
    // Scheduler: snapshot schedules (a run missed while the daemon was down runs now).
    let scheduler = {
        let d = daemon.clone();
        std::thread::Builder::new()
            .name("tandem-scheduler".into())
            .spawn(move || schedules::run_scheduler(d, wake_rx))
            .map_err(DaemonError::Signals)?
    };
    systemd::notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&daemon.status_line()),
    ]);
    let _ = stop_rx.recv();
    daemon.stop.store(true, Ordering::Release);
    systemd::notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("stopping: unmounting and committing"),
    ]);
    // A run in progress finishes before the mounts go.
    daemon.wake_scheduler();
    if scheduler.join().is_err() {
        tracing::error!("the scheduler thread panicked");
    }
    daemon.mounts.unmount_all();
    drop(metrics);
    // Nothing is accepted from here on (a client that connects meanwhile waits in the
    // backlog; with socket activation systemd starts the daemon again for it).
    drop(accept_stop);
    if !activated {
        let _ = std::fs::remove_file(&sock);
    }
    if let Err(e) = daemon.engine.commit_all() {
        tracing::error!("final commit: {e}");
    }
    // Close the pool for real: every thread lets go of the daemon, so the engine is dropped
    // and redb records a clean close (otherwise the next start repairs the whole file).
    signals_handle.close();
    drop(reaper_stop);
    roots_stop.store(true, Ordering::Release);
    let _ = daemon.roots.try_send(());
    for (name, t) in [
        ("signals", signal_thread),
        ("reaper", reaper),
        ("control", control),
        ("roots", roots_worker),
    ] {
        if t.join().is_err() {
            tracing::error!("the {name} thread panicked");
        }
    }
    // Connection threads may still be answering their last line; then the daemon's last
    // owner is this thread, and dropping the engine commits, stops the writer and closes the
    // index cleanly.
    let closed = sole_owner(daemon)
        .and_then(|d| {
            let Daemon { engine, mounts, .. } = d;
            drop(mounts);
            sole_owner(engine)
        })
        .is_some();
    if !closed {
        tracing::warn!("the pool was still in use at exit: the next start checks its index");
    }
    tracing::info!("tandem daemon stopped");
    Ok(())
}

/// Waits (up to 2 s) until `arc` is the only reference to its value, then takes it.
fn sole_owner<T>(arc: Arc<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while Arc::strong_count(&arc) > 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    Arc::try_unwrap(arc).ok()
}

impl Daemon {
    fn request_stop(&self) {
        let _ = self.stop_tx.try_send(());
    }

    /// The response line to one request line.
    fn answer(&self, line: &str, peer: &mut Peer) -> String {
        let response = match serde_json::from_str::<Envelope<Request>>(line) {
            Ok(env) if env.version != PROTOCOL_VERSION => Response::Err(WireError::new(
                ErrorCode::Invalid,
                format!(
                    "the CLI speaks control protocol {} but this daemon speaks {PROTOCOL_VERSION}; restart the daemon with the same tandem version",
                    env.version
                ),
            )),
            Ok(env) => match self.handle(env.body, peer) {
                Ok(r) => Response::Ok(r),
                Err(e) => Response::Err(e.to_wire()),
            },
            Err(e) => Response::Err(WireError::new(
                ErrorCode::Invalid,
                format!("malformed request: {e}"),
            )),
        };
        serde_json::to_string(&Envelope {
            version: PROTOCOL_VERSION,
            body: response,
        })
        .unwrap_or_else(|_| {
            format!(r#"{{"version":{PROTOCOL_VERSION},"body":{{"err":{{"code":"internal","message":"cannot encode the response"}}}}}}"#)
        })
    }

    /// The dispatcher: each request to the service that does it; what is refused, and why,
    /// is decided there.
    fn handle(&self, req: Request, peer: &mut Peer) -> Result<Reply, ServiceError> {
        let e = &self.engine;
        match req {
            Request::Ping => Ok(Reply::Pong(Pong {
                pid: std::process::id(),
                pool: self.pool.clone(),
            })),
            Request::VolumeCreate { name, block_size } => {
                // The root directory belongs to whoever runs the daemon.
                let owner = Ctx {
                    uid: rustix::process::getuid().as_raw(),
                    gid: rustix::process::getgid().as_raw(),
                    umask: 0,
                };
                let v = e.create_volume(&name, block_size, owner)?;
                tracing::info!(
                    "volume '{name}' created (id {}, block size {})",
                    v.id,
                    v.block_size
                );
                Ok(Reply::Volume(v))
            }
            Request::VolumeList => Ok(Reply::Volumes {
                volumes: e.list_volumes()?,
            }),
            Request::VolumeInfo { name } => {
                let info = e.volume_info(&name)?;
                let options = e.options(OptionScope::Volume(info.id))?.listing();
                let mountpoints = self.mounts.mountpoints_of(&name);
                Ok(Reply::VolumeDetail(VolumeDetail {
                    info,
                    mountpoints,
                    options,
                }))
            }
            Request::VolumeDelete { name } => {
                crate::snapshot::delete_volume(e, &self.mounts, &name)?;
                tracing::info!("volume '{name}' deleted");
                Ok(Reply::Done)
            }
            Request::VolumeSet { name, key, value } => {
                let vol = e.volume_id(&name)?;
                let set = e.set_options(vol, &[(key.clone(), value)])?;
                let value = set.into_iter().map(|(_, v)| v).next().unwrap_or_default();
                Ok(Reply::OptionSet(OptionSet {
                    volume: name,
                    key,
                    value,
                }))
            }
            Request::VolumeRename { old, new } => {
                e.rename_volume(&old, &new)?;
                self.mounts.renamed_volume(&old, &new);
                tracing::info!("volume '{old}' renamed to '{new}'");
                Ok(Reply::Done)
            }
            Request::Mount {
                volume,
                mountpoint,
                options,
            } => {
                let m = self.mounts.mount(&volume, &mountpoint, &options)?;
                tracing::info!(
                    "mounted '{}' on {} ({})",
                    m.volume,
                    m.mountpoint.display(),
                    if m.options.is_empty() {
                        "rw".to_string()
                    } else {
                        m.options.join(",")
                    }
                );
                Ok(Reply::Mounted(m))
            }
            Request::Umount { target } => {
                let m = self.mounts.umount(&target)?;
                tracing::info!("unmounted '{}' from {}", m.volume, m.mountpoint.display());
                Ok(Reply::Unmounted(m))
            }
            Request::Status => {
                let stats = e.pool_stats()?;
                Ok(Reply::Status(StatusInfo {
                    pid: std::process::id(),
                    pool: self.pool.clone(),
                    dedup_ratio: stats.dedup_ratio(),
                    stats,
                    volumes: e.list_volumes()?.len(),
                    mounts: self.mounts.list(),
                    intent_log: e.log_status(),
                }))
            }
            Request::Shutdown => {
                self.request_stop();
                Ok(Reply::Done)
            }
            Request::PoolVerify { progress_ms } => self.verify(progress_ms, peer),
            Request::SnapshotVerify { name, progress_ms } => {
                self.verify_snapshot(&name, progress_ms, peer)
            }
            Request::SnapshotTest(req) => self
                .restore_test(req, &|| self.test_called_off(peer))
                .map(|o| Reply::SnapshotTested(Box::new(o))),
            Request::Copy {
                src,
                dst,
                uid,
                gid,
                umask,
            } => self
                .copy(&src, &dst, Ctx { uid, gid, umask })
                .map(Reply::Copied),
            other => self.handle_snapshots(other),
        }
    }
}
