//! The filesystem layer's error type and THE errno mapping (the FUSE adapter and every other
//! caller use [`FsError::errno`]; nothing else maps errors to errno values).

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("name too long")]
    NameTooLong,
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    #[error("operation not permitted: {0}")]
    NotPermitted(&'static str),
    #[error("operation not supported: {0}")]
    NotSupported(&'static str),
    #[error("no such attribute")]
    NoData,
    #[error("attribute name or value out of range")]
    Range,
    #[error("attribute value too large")]
    TooBig,
    #[error("file too large")]
    FileTooBig,
    /// SEEK_DATA/SEEK_HOLE at or past the end of the file, or no data after the offset.
    #[error("no data or hole at or after this offset (it is at or past the end of the file)")]
    NoOffset,
    #[error("read-only snapshot view")]
    ReadOnly,
    #[error("too many links")]
    TooManyLinks,
    /// A refused volume option (the message says which values are accepted).
    #[error("{0}")]
    Option(String),
    #[error(
        "no space left on the pool's disk for this write (what is buffered and the metadata headroom are kept); delete files or snapshots, or grow the disk"
    )]
    NoSpace,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FsError {
    /// The POSIX errno a user expects for this error.
    pub fn errno(&self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::Exists => libc::EEXIST,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::NotEmpty => libc::ENOTEMPTY,
            FsError::NameTooLong => libc::ENAMETOOLONG,
            FsError::Invalid(_) => libc::EINVAL,
            FsError::NotPermitted(_) => libc::EPERM,
            FsError::NotSupported(_) => libc::EOPNOTSUPP,
            FsError::NoData => libc::ENODATA,
            FsError::Range => libc::ERANGE,
            FsError::TooBig => libc::E2BIG,
            FsError::FileTooBig => libc::EFBIG,
            FsError::NoOffset => libc::ENXIO,
            FsError::ReadOnly => libc::EROFS,
            FsError::TooManyLinks => libc::EMLINK,
            FsError::Option(_) => libc::EINVAL,
            FsError::NoSpace => libc::ENOSPC,
            FsError::Store(StoreError::Io { source, .. })
                if source.raw_os_error() == Some(libc::ENOSPC) =>
            {
                libc::ENOSPC
            }
            FsError::Store(_) => libc::EIO,
        }
    }
}

impl crate::store::BatchError for FsError {
    fn is_storage(&self) -> bool {
        matches!(self, FsError::Store(e) if e.is_storage())
    }
}
