//! What the daemon's services refuse, typed: the errors of the layers they call and their
//! own refusals (mounts, snapshot activation, verify). The codes they travel with are set in
//! one place, `crate::control::error`; the dispatcher only converts.

use std::path::PathBuf;

use crate::fs::FsError;
use crate::fs::groups::SnapError;
use crate::fuse::MountError;
use crate::snapshot::{CreateError, RestoreError, VolumeDeleteError};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Snap(#[from] SnapError),
    #[error(transparent)]
    Create(#[from] CreateError),
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error(transparent)]
    VolumeDelete(#[from] VolumeDeleteError),
    #[error(transparent)]
    Mount(#[from] MountError),
    #[error(
        "unknown mount option '{0}'; tandem accepts ro, rw, allow_other, nosuid, suid, nodev, dev, noexec, exec, noatime, relatime, strictatime, nodiratime (and fstab's defaults, auto, noauto, nofail, _netdev)"
    )]
    UnknownMountOption(String),
    #[error(
        "volume '{volume}' is already mounted at {}; unmount it first (tandem umount {volume})",
        .at.display()
    )]
    AlreadyMounted { volume: String, at: PathBuf },
    /// A path that already has a tandem mount (`way_out` ends that mount).
    #[error(
        "{} already has the tandem mount of {by}; end it first ({way_out}) or choose another mountpoint",
        .path.display()
    )]
    MountpointTaken {
        path: PathBuf,
        by: String,
        way_out: String,
    },
    /// `at`: each busy mountpoint with why it could not be unmounted.
    #[error(
        "snapshot '{snapshot}' is busy at {at}: a process has a file or its working directory there; close it and retry"
    )]
    SnapshotBusy { snapshot: String, at: String },
    #[error("{0} is not a tandem mountpoint; tandem status lists the mounts")]
    NotAMountpoint(String),
    #[error("volume '{0}' is not mounted; tandem status lists the mounts")]
    VolumeNotMounted(String),
    #[error(
        "{} has the tandem mount {} inside; unmount that first (tandem umount {})",
        .outer.display(), .inner.display(), .inner.display()
    )]
    MountInside { outer: PathBuf, inner: PathBuf },
    #[error("'{0}' is not mounted")]
    NotMounted(String),
    /// A remembered snapshot view whose volume the snapshot does not hold.
    #[error("{volume} is no member of {snapshot}")]
    NoMember { volume: String, snapshot: String },
    #[error("unmounting {}: {source}", .path.display())]
    Unmount {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("creating mountpoint {}: {source}", .path.display())]
    CreateMountpoint {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("snapshot '{0}' is already activated; `tandem snapshot status {0}` shows where")]
    Activated(String),
    #[error("snapshot '{0}' is not activated; `tandem snapshot status {0}` shows its state")]
    NotActivated(String),
    #[error("no snapshot matched; `tandem snapshot list` shows the snapshots")]
    NoSnapshotMatched,
    #[error("'{key}' is not a snapshot setting; use one of {known}")]
    NotASnapSetting { key: String, known: String },
    #[error(
        "a pool verify is already running on pool {}; wait for it to finish, or interrupt it (Ctrl-C where it runs) and start again",
        .0.display()
    )]
    VerifyRunning(PathBuf),
    /// The whole message: how far the scrub got and why it stopped.
    #[error("{0}")]
    VerifyInterrupted(String),
    #[error("pool verify: {0}")]
    Verify(StoreError),
    /// The whole message: which restore test stopped, why, and what became of its clone.
    #[error("{0}")]
    TestInterrupted(String),
    /// A schedule that cannot be added as asked (the message names the way out).
    #[error("{0}")]
    BadSchedule(String),
    /// A `tandem cp` path the daemon cannot use (the message names the path and the way out).
    #[error("{0}")]
    CopyPath(String),
    #[error("the daemon does not handle {0}")]
    Unhandled(String),
}
