//! The control protocol's errors: a stable [`ErrorCode`] that scripts (and a CSI driver) map,
//! plus the message meant for the user; and THE mapping from every layer's error to a code
//! (the [`Coded`] impls below), as [`crate::fs::FsError::errno`] is the one errno mapping.
//!
//! Invariants: a code is never renamed or reused for another meaning (new codes may be
//! added; a client reads a code it does not know as `internal`); the message is the layer's
//! own text, unchanged, naming the object and the way out.

use serde::{Deserialize, Serialize};

use crate::daemon::ServiceError;
use crate::fs::FsError;
use crate::fs::groups::SnapError;
use crate::fuse::MountError;
use crate::options::OptionError;
use crate::snapshot::hooks::HookError;
use crate::snapshot::{CreateError, RestoreError, VolumeDeleteError};
use crate::store::StoreError;

/// What kind of refusal or failure an error is; serialized as the snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The named volume, group, snapshot or mount does not exist.
    NotFound,
    /// The name is taken.
    Exists,
    /// The object is in use or still referenced (mounted, activated, in a group, has
    /// snapshots, a process holds a file, a verify is running); free it and retry.
    Busy,
    /// The request is wrong as such (a bad name, value, option or state for it).
    Invalid,
    /// A limit was reached (snapshot hard limit, no space left, a size or count cap).
    Limit,
    /// Reading or writing the pool (or a mountpoint) failed.
    Io,
    /// The pool's data or metadata is damaged (a corrupt chunk, an unreadable index).
    Damaged,
    /// Not allowed (the peer's uid, a read-only view, unsafe hook files).
    Permission,
    /// Stopped midway by something outside the request (a hook failed, writes did not
    /// quiesce in time); nothing was changed.
    Aborted,
    /// The client withdrew the request (Ctrl-C) or the daemon is shutting down.
    Interrupted,
    /// A fault of tandem itself, or a code this client does not know.
    #[default]
    #[serde(other)]
    Internal,
}

impl ErrorCode {
    /// Every code, in the order the README documents them.
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::NotFound,
        ErrorCode::Exists,
        ErrorCode::Busy,
        ErrorCode::Invalid,
        ErrorCode::Limit,
        ErrorCode::Io,
        ErrorCode::Damaged,
        ErrorCode::Permission,
        ErrorCode::Aborted,
        ErrorCode::Interrupted,
        ErrorCode::Internal,
    ];

    /// The code as it is on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not_found",
            ErrorCode::Exists => "exists",
            ErrorCode::Busy => "busy",
            ErrorCode::Invalid => "invalid",
            ErrorCode::Limit => "limit",
            ErrorCode::Io => "io",
            ErrorCode::Damaged => "damaged",
            ErrorCode::Permission => "permission",
            ErrorCode::Aborted => "aborted",
            ErrorCode::Interrupted => "interrupted",
            ErrorCode::Internal => "internal",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error as it travels on the wire: `{"code":"not_found","message":"..."}`. A daemon
/// older than the codes sends only the message; it reads as `internal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct WireError {
    #[serde(default)]
    pub code: ErrorCode,
    pub message: String,
}

impl WireError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> WireError {
        WireError {
            code,
            message: message.into(),
        }
    }
}

/// An error that knows its [`ErrorCode`]; its `Display` is the wire message.
pub trait Coded: std::fmt::Display {
    fn code(&self) -> ErrorCode;

    fn to_wire(&self) -> WireError {
        WireError::new(self.code(), self.to_string())
    }
}

/// The code of an OS error: a full disk is a limit, a refused access a permission.
fn io_code(e: &std::io::Error) -> ErrorCode {
    match e.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT) => ErrorCode::Limit,
        Some(libc::EACCES | libc::EPERM | libc::EROFS) => ErrorCode::Permission,
        _ => ErrorCode::Io,
    }
}

impl Coded for StoreError {
    fn code(&self) -> ErrorCode {
        match self {
            StoreError::PoolInUse { .. } => ErrorCode::Busy,
            StoreError::Foreign { .. } | StoreError::NewerSchema { .. } => ErrorCode::Invalid,
            StoreError::IndexMissing { .. }
            | StoreError::IndexDamaged { .. }
            | StoreError::PacksRefused { .. }
            | StoreError::Corrupt { .. }
            | StoreError::Damaged(_) => ErrorCode::Damaged,
            StoreError::Io { source, .. } => io_code(source),
            StoreError::Db(_) | StoreError::BatchAborted => ErrorCode::Io,
            StoreError::WriterGone => ErrorCode::Internal,
            StoreError::VolumeExists { .. } => ErrorCode::Exists,
            StoreError::NoSuchVolume { .. } | StoreError::NoSuchGeneration { .. } => {
                ErrorCode::NotFound
            }
            StoreError::InvalidName { .. } | StoreError::InvalidBlockSize { .. } => {
                ErrorCode::Invalid
            }
            StoreError::Batch(inner) => inner.code(),
        }
    }
}

impl Coded for FsError {
    fn code(&self) -> ErrorCode {
        match self {
            FsError::NotFound | FsError::NoData => ErrorCode::NotFound,
            FsError::Exists => ErrorCode::Exists,
            FsError::NotEmpty => ErrorCode::Busy,
            FsError::NotDir
            | FsError::IsDir
            | FsError::NameTooLong
            | FsError::Invalid(_)
            | FsError::Range
            | FsError::TooBig
            | FsError::Option(_)
            | FsError::NotSupported(_)
            | FsError::NoOffset => ErrorCode::Invalid,
            FsError::NotPermitted(_) | FsError::ReadOnly => ErrorCode::Permission,
            FsError::FileTooBig | FsError::TooManyLinks | FsError::NoSpace => ErrorCode::Limit,
            FsError::Store(e) => e.code(),
        }
    }
}

impl Coded for SnapError {
    fn code(&self) -> ErrorCode {
        match self {
            SnapError::NoGroup(_) | SnapError::NoSnapshot(_) => ErrorCode::NotFound,
            SnapError::GroupExists(_) | SnapError::SnapshotExists(_) => ErrorCode::Exists,
            SnapError::InOtherGroup { .. }
            | SnapError::GroupHasSnapshots { .. }
            | SnapError::Held { .. } => ErrorCode::Busy,
            SnapError::NotInGroup { .. }
            | SnapError::EmptyGroup(_)
            | SnapError::BadTag { .. }
            | SnapError::DiffOrder { .. } => ErrorCode::Invalid,
            SnapError::NoHold { .. } | SnapError::NoSchedule(_) => ErrorCode::NotFound,
            SnapError::ScheduleExists(_) => ErrorCode::Exists,
            SnapError::Fs(e) => e.code(),
        }
    }
}

impl Coded for HookError {
    fn code(&self) -> ErrorCode {
        match self {
            HookError::Failed { .. } | HookError::Timeout { .. } | HookError::Spawn { .. } => {
                ErrorCode::Aborted
            }
            HookError::Unsafe { .. } => ErrorCode::Permission,
        }
    }
}

impl Coded for CreateError {
    fn code(&self) -> ErrorCode {
        match self {
            CreateError::Snap(e) => e.code(),
            CreateError::BadName { .. } | CreateError::Grouped { .. } => ErrorCode::Invalid,
            CreateError::HardLimit { .. } | CreateError::NoRoom { .. } => ErrorCode::Limit,
            CreateError::Hook { source, .. } | CreateError::UntrustedHooks { source, .. } => {
                source.code()
            }
            CreateError::BarrierTimeout { .. } => ErrorCode::Aborted,
        }
    }
}

impl Coded for RestoreError {
    fn code(&self) -> ErrorCode {
        match self {
            RestoreError::Snap(e) => e.code(),
            RestoreError::Create(e) => e.code(),
            RestoreError::MemberGone { .. } => ErrorCode::NotFound,
            RestoreError::Mounted { .. } => ErrorCode::Busy,
            RestoreError::BarrierTimeout { .. } => ErrorCode::Aborted,
        }
    }
}

impl Coded for VolumeDeleteError {
    fn code(&self) -> ErrorCode {
        match self {
            VolumeDeleteError::InGroup { .. }
            | VolumeDeleteError::HasSnapshots { .. }
            | VolumeDeleteError::Mounted { .. } => ErrorCode::Busy,
            VolumeDeleteError::Snap(e) => e.code(),
        }
    }
}

impl Coded for MountError {
    fn code(&self) -> ErrorCode {
        match self {
            MountError::Missing(_) => ErrorCode::NotFound,
            MountError::NotDir(_) => ErrorCode::Invalid,
            MountError::AlreadyMounted(_) => ErrorCode::Busy,
            MountError::Io { source, .. } => io_code(source),
        }
    }
}

impl Coded for OptionError {
    fn code(&self) -> ErrorCode {
        ErrorCode::Invalid
    }
}

impl Coded for ServiceError {
    fn code(&self) -> ErrorCode {
        use ServiceError as S;
        match self {
            S::Fs(e) => e.code(),
            S::Snap(e) => e.code(),
            S::Create(e) => e.code(),
            S::Restore(e) => e.code(),
            S::VolumeDelete(e) => e.code(),
            S::Mount(e) => e.code(),
            S::Verify(e) => e.code(),
            S::NotAMountpoint(_)
            | S::VolumeNotMounted(_)
            | S::NotMounted(_)
            | S::NoMember { .. }
            | S::NoSnapshotMatched => ErrorCode::NotFound,
            S::AlreadyMounted { .. }
            | S::MountInside { .. }
            | S::SnapshotBusy { .. }
            | S::MountpointTaken { .. }
            | S::Activated(_)
            | S::VerifyRunning(_) => ErrorCode::Busy,
            S::UnknownMountOption(_)
            | S::NotASnapSetting { .. }
            | S::NotActivated(_)
            | S::BadSchedule(_)
            | S::CopyPath(_) => ErrorCode::Invalid,
            S::Unmount { source, .. } => match source.raw_os_error() {
                Some(libc::EBUSY) => ErrorCode::Busy,
                _ => io_code(source),
            },
            S::CreateMountpoint { source, .. } => io_code(source),
            S::VerifyInterrupted(_) | S::TestInterrupted(_) => ErrorCode::Interrupted,
            S::Unhandled(_) => ErrorCode::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_sent_as_its_documented_name() {
        let documented = [
            "not_found",
            "exists",
            "busy",
            "invalid",
            "limit",
            "io",
            "damaged",
            "permission",
            "aborted",
            "interrupted",
            "internal",
        ];
        for (code, name) in ErrorCode::ALL.iter().zip(documented) {
            assert_eq!(serde_json::to_string(code).unwrap(), format!("\"{name}\""));
            assert_eq!(code.as_str(), name);
            let back: ErrorCode = serde_json::from_str(&format!("\"{name}\"")).unwrap();
            assert_eq!(back, *code);
        }
    }

    #[test]
    fn an_unknown_or_missing_code_reads_as_internal() {
        let e: WireError =
            serde_json::from_str(r#"{"code":"from_the_future","message":"m"}"#).unwrap();
        assert_eq!(e.code, ErrorCode::Internal);
        let e: WireError = serde_json::from_str(r#"{"message":"old daemon"}"#).unwrap();
        assert_eq!(e, WireError::new(ErrorCode::Internal, "old daemon"));
    }

    #[test]
    fn layer_errors_map_to_their_codes_with_their_messages() {
        let missing = FsError::Store(StoreError::NoSuchVolume { name: "v".into() });
        assert_eq!(missing.code(), ErrorCode::NotFound);
        assert_eq!(missing.to_wire().message, missing.to_string());
        let taken = StoreError::VolumeExists { name: "v".into() };
        assert_eq!(taken.code(), ErrorCode::Exists);
        let batched = StoreError::Batch(std::sync::Arc::new(StoreError::Corrupt {
            id: crate::types::ChunkId([0; 32]),
        }));
        assert_eq!(batched.code(), ErrorCode::Damaged);
        let full = StoreError::io("pack", std::io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(FsError::Store(full).code(), ErrorCode::Limit);
        assert_eq!(FsError::NoSpace.code(), ErrorCode::Limit);
        assert_eq!(
            SnapError::NoSnapshot("s".into()).code(),
            ErrorCode::NotFound
        );
        assert_eq!(
            SnapError::GroupHasSnapshots {
                group: "g".into(),
                count: 1
            }
            .code(),
            ErrorCode::Busy
        );
        let limit = CreateError::HardLimit {
            volume: "v".into(),
            count: 3,
            limit: 3,
        };
        assert_eq!(limit.code(), ErrorCode::Limit);
        let deleting = VolumeDeleteError::Mounted {
            volume: "v".into(),
            at: "/mnt".into(),
        };
        assert_eq!(deleting.code(), ErrorCode::Busy);
        let wire = ServiceError::from(SnapError::GroupExists("g".into())).to_wire();
        assert_eq!(wire.code, ErrorCode::Exists);
        assert_eq!(
            wire.message,
            "group 'g' already exists; choose another name"
        );
    }
}
