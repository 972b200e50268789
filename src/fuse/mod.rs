//! FUSE serving: one fuser session per mount, with its volume request queue.
//!
//! Owns the only contact with fuser. A [`Mount`] lives as long as the kernel mount: dropping
//! it (or [`Mount::unmount`]) unmounts; an external `umount` ends the session, which
//! [`Mount::is_alive`] reports so the daemon can forget it.

mod adapter;
mod atime;
mod creds;
mod data;
mod dirs;
mod names;
pub mod queue;
mod reply;
mod request;
mod uss;
mod xattrs;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuser::{BackgroundSession, Config, MountOption, SessionACL};

use crate::fs::Engine;
use crate::fs::atime::Atime;
use crate::store::rows::View;
use crate::types::VolumeId;

pub use adapter::{KERNEL_CAPABILITIES, MAX_WRITE};
pub use queue::{Gate, VolumeQueue};

/// Worker threads per mount that serve requests queued during a freeze.
const QUEUE_WORKERS: usize = 2;
/// fuser session threads per mount (they serve reads directly).
const SESSION_THREADS: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    pub vol: VolumeId,
    /// Volume name (shown as the mount's source).
    pub name: String,
    pub view: View,
    pub mountpoint: PathBuf,
    /// Refuse writes (EROFS); always so for a snapshot view.
    pub read_only: bool,
    pub allow_other: bool,
}

/// Kernel flags of a mount besides read-only: mount(8)'s `suid`, `dev` and `exec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountFlags {
    /// setuid/setgid bits and file capabilities take effect (`suid`; off: `nosuid`).
    pub suid: bool,
    /// Device nodes open their devices (`dev`; off: `nodev`).
    pub dev: bool,
    /// Programs run (`exec`; off: `noexec`).
    pub exec: bool,
    /// When reads update atime (`noatime`, the default; `relatime`; `strictatime`;
    /// `nodiratime`). Kept by the daemon, not the kernel: see `fs::atime`.
    pub atime: Atime,
}

impl MountFlags {
    /// A live volume works as a local disk: setuid programs and device nodes work.
    pub const LIVE: MountFlags = MountFlags {
        suid: true,
        dev: true,
        exec: true,
        atime: Atime::NEVER,
    };
    /// A snapshot view: what a snapshot holds never gains privileges or opens a device.
    pub const SNAPSHOT: MountFlags = MountFlags {
        suid: false,
        dev: false,
        exec: true,
        atime: Atime::NEVER,
    };

    /// The flags a mount of `view` gets unless told otherwise.
    pub fn default_for(view: View) -> MountFlags {
        if view == View::Live {
            MountFlags::LIVE
        } else {
            MountFlags::SNAPSHOT
        }
    }

    fn options(self) -> [MountOption; 4] {
        [
            // The kernel shows the mount as relatime unless noatime; the atimes themselves
            // are the daemon's.
            if self.atime.on() {
                MountOption::Atime
            } else {
                MountOption::NoAtime
            },
            if self.suid {
                MountOption::Suid
            } else {
                MountOption::NoSuid
            },
            if self.dev {
                MountOption::Dev
            } else {
                MountOption::NoDev
            },
            if self.exec {
                MountOption::Exec
            } else {
                MountOption::NoExec
            },
        ]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mountpoint {0} does not exist; create it with mkdir -p first")]
    Missing(PathBuf),
    #[error("mountpoint {0} is not a directory; choose a directory")]
    NotDir(PathBuf),
    #[error("{0} is already a mount point; unmount it first or choose another directory")]
    AlreadyMounted(PathBuf),
    #[error("could not mount on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Is `dir` the root of a mount? (Its device differs from its parent's, or it is "/".)
pub fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(dir) else {
        return false;
    };
    let Some(parent) = dir.parent() else {
        return true;
    };
    match std::fs::metadata(parent) {
        Ok(p) => p.dev() != meta.dev() || p.ino() == meta.ino(),
        Err(_) => false,
    }
}

/// Checks a mountpoint the way a user needs to hear about it.
pub fn check_mountpoint(dir: &Path) -> Result<PathBuf, MountError> {
    let meta = std::fs::metadata(dir).map_err(|_| MountError::Missing(dir.to_path_buf()))?;
    if !meta.is_dir() {
        return Err(MountError::NotDir(dir.to_path_buf()));
    }
    let dir = dir.canonicalize().map_err(|e| MountError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    if is_mount_point(&dir) {
        return Err(MountError::AlreadyMounted(dir));
    }
    Ok(dir)
}

pub struct Mount {
    pub spec: MountSpec,
    pub flags: MountFlags,
    session: Option<BackgroundSession>,
    queue: Arc<VolumeQueue>,
    /// The mount's device ("major:minor" as /proc/self/mountinfo writes it), read once
    /// mounted: how [`Mount::in_kernel`] tells this mount from one made later on the same
    /// directory.
    dev: Option<String>,
}

impl Mount {
    /// Mounts with the default flags of its view ([`MountFlags::default_for`]).
    pub fn new(engine: Arc<Engine>, spec: MountSpec) -> Result<Mount, MountError> {
        let flags = MountFlags::default_for(spec.view);
        Mount::with_flags(engine, spec, flags)
    }

    pub fn with_flags(
        engine: Arc<Engine>,
        spec: MountSpec,
        flags: MountFlags,
    ) -> Result<Mount, MountError> {
        let mountpoint = check_mountpoint(&spec.mountpoint)?;
        let spec = MountSpec { mountpoint, ..spec };
        let queue =
            Arc::new(
                VolumeQueue::new(&spec.name, QUEUE_WORKERS).map_err(|e| MountError::Io {
                    path: spec.mountpoint.clone(),
                    source: e,
                })?,
            );
        let read_only = spec.read_only || spec.view != View::Live;
        let notifier = Arc::new(std::sync::OnceLock::new());
        let engine_pool = engine.store().path().to_path_buf();
        let engine_pool = engine_pool.as_path();
        // By id: a snapshot view counts toward its volume, and the series is labelled with
        // the volume's name at each scrape (it follows a rename).
        let io = crate::metrics::global().volume_io(spec.vol);
        let fs = request::TandemFs {
            engine,
            vol: spec.vol,
            view: spec.view,
            read_only,
            uss: uss::Uss::default(),
            queue: queue.clone(),
            notifier: notifier.clone(),
            io,
            atime: if read_only { Atime::NEVER } else { flags.atime },
        };
        let mut options = vec![
            MountOption::FSName(format!("tandem:{}", spec.name)),
            // The subtype as a kernel option: fuser hands `Subtype` to fusermount only, so a
            // mount made by root (mount(2) itself) would show as plain "fuse"; the kernel
            // takes `subtype=` and shows "fuse.tandem" (`findmnt -t fuse.tandem`), and
            // fusermount passes it on as its own.
            MountOption::CUSTOM("subtype=tandem".into()),
            MountOption::DefaultPermissions,
        ];
        if read_only {
            options.push(MountOption::RO);
        }
        options.extend(flags.options());
        let mut config = Config::default();
        config.mount_options = options;
        config.acl = if spec.allow_other {
            SessionACL::All
        } else {
            SessionACL::Owner
        };
        config.n_threads = Some(SESSION_THREADS);
        config.clone_fd = true;
        let session =
            fuser::spawn_mount(fs, &spec.mountpoint, &config).map_err(|e| MountError::Io {
                path: spec.mountpoint.clone(),
                source: e,
            })?;
        let _ = notifier.set(session.notifier());
        tune_readahead(&spec.mountpoint, engine_pool);
        let dev = std::fs::metadata(&spec.mountpoint).ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            format!("{}:{}", libc::major(m.dev()), libc::minor(m.dev()))
        });
        Ok(Mount {
            spec,
            flags,
            session: Some(session),
            queue,
            dev,
        })
    }

    /// The gate of this mount's request queue (the freeze coordinator closes it).
    pub fn gate(&self) -> Arc<Gate> {
        self.queue.gate.clone()
    }

    /// Tells the kernel to forget what it cached of these rows (the daemon changed them
    /// behind its back, e.g. an online restore): attributes and pages of inodes, entries
    /// of directories. Unknown inodes are fine (nothing cached).
    pub fn invalidate(&self, rows: &[crate::store::keys::RowId]) {
        use crate::store::keys::RowId;
        use std::os::unix::ffi::OsStrExt;
        let Some(session) = self.session.as_ref() else {
            return;
        };
        let notifier = session.notifier();
        let mut inodes = std::collections::BTreeSet::new();
        for r in rows {
            match r {
                RowId::Dirent(dir, _, name) => {
                    let _ = notifier
                        .inval_entry(fuser::INodeNo(dir.0), std::ffi::OsStr::from_bytes(name));
                    inodes.insert(dir.0);
                }
                other => {
                    inodes.insert(other.ino().0);
                }
            }
        }
        for ino in inodes {
            let _ = notifier.inval_inode(fuser::INodeNo(ino), 0, 0);
        }
    }

    /// False once the kernel mount is gone (e.g. `umount DIR` from outside).
    pub fn is_alive(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| !s.guard.is_finished())
    }

    /// Does the kernel still list this mount (/proc/self/mountinfo)? False at once after a
    /// plain `umount DIR` from outside, before the session notices that it ended (see
    /// [`Mount::is_alive`]). True when the mount's device is unknown, or the table unreadable.
    pub fn in_kernel(&self) -> bool {
        let (Some(dev), Ok(table)) = (
            self.dev.as_deref(),
            std::fs::read_to_string("/proc/self/mountinfo"),
        ) else {
            return true;
        };
        table.lines().any(|l| l.split(' ').nth(2) == Some(dev))
    }

    /// Unmounts and waits for the session to end.
    pub fn unmount(mut self) -> std::io::Result<()> {
        self.stop()
    }

    /// Unmounts unless the mount is busy (a process has a file open or its working
    /// directory there): then `EBUSY` comes back and the mount stays as it was.
    pub fn try_unmount(&mut self) -> std::io::Result<()> {
        if self
            .session
            .as_ref()
            .is_some_and(|s| !s.guard.is_finished())
        {
            let unmounted =
                rustix::mount::unmount(&self.spec.mountpoint, rustix::mount::UnmountFlags::empty());
            if let Err(err) = unmounted {
                let err = std::io::Error::from(err);
                if err.raw_os_error() == Some(libc::EBUSY) {
                    return Err(err);
                }
            } else if let Some(session) = self.session.take() {
                // Unmounted: the session ends by itself; unmounting again would fail.
                self.queue.gate.release();
                return session.join();
            }
        }
        self.stop()
    }

    fn stop(&mut self) -> std::io::Result<()> {
        self.queue.gate.release();
        let Some(session) = self.session.take() else {
            return Ok(());
        };
        if session.guard.is_finished() {
            return session.join();
        }
        session.umount_and_join()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!("unmounting {}: {e}", self.spec.mountpoint.display());
        }
    }
}

/// Readahead of a mount when the pool's disk tells nothing (KiB).
const DEFAULT_READAHEAD_KB: u64 = 4096;

/// Gives the mount the readahead of the disk the pool is on. The kernel gives a FUSE mount
/// 128 KiB whatever the disk does (8 MiB for virtio disks here), and a cold sequential read
/// then runs at about half the speed it reaches with the disk's window. Needs root; without
/// it the mount keeps the kernel's default (the benchmarks' FUSE passthrough uses it too).
pub fn tune_readahead(mountpoint: &std::path::Path, pool: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    let dev_of = |p: &std::path::Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (libc::major(m.dev()), libc::minor(m.dev())))
    };
    let (Some((fmaj, fmin)), Some((pmaj, pmin))) = (dev_of(mountpoint), dev_of(pool)) else {
        return;
    };
    // The pool's block device, or the disk holding its partition.
    let disk = |rel: &str| {
        std::fs::read_to_string(format!("/sys/dev/block/{pmaj}:{pmin}/{rel}read_ahead_kb"))
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let want = disk("queue/")
        .or_else(|| disk("../queue/"))
        .unwrap_or(DEFAULT_READAHEAD_KB)
        .max(128);
    let knob = format!("/sys/class/bdi/{fmaj}:{fmin}/read_ahead_kb");
    if let Err(e) = std::fs::write(&knob, want.to_string()) {
        tracing::debug!(
            "readahead of {} stays the kernel's: {knob}: {e}",
            mountpoint.display()
        );
    }
}
