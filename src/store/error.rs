//! The storage layer's error type.

use std::path::PathBuf;
use std::sync::Arc;

use crate::types::{ChunkId, Generation, NameError, VolumeId};

use super::tables::SCHEMA_VERSION;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("pool {path} is in use by another process; stop the tandem daemon that owns it first")]
    PoolInUse { path: PathBuf },
    #[error(
        "{path} is not a tandem pool ({reason}); point --pool at a tandem pool or an empty directory"
    )]
    Foreign { path: PathBuf, reason: String },
    #[error(
        "pool {path} was written by a newer tandem (schema {found}, this build reads up to {SCHEMA_VERSION}); upgrade tandem"
    )]
    NewerSchema { path: PathBuf, found: u32 },
    #[error(
        "pool {path}: pool.redb is missing or empty but {packs} pack files hold {bytes} bytes; no file was changed: restore pool.redb from a backup (`tandem pool check` reports what is there)"
    )]
    IndexMissing {
        path: PathBuf,
        packs: usize,
        bytes: u64,
    },
    #[error(
        "pool {path}: pool.redb cannot be read ({reason}); the pack files were not touched: restore pool.redb from a backup (`tandem pool check` reports what is there)"
    )]
    IndexDamaged { path: PathBuf, reason: String },
    /// `detail` names the first problem (and how many more `tandem pool check` lists).
    #[error("pool {path}: {detail}; no pack was changed")]
    PacksRefused { path: PathBuf, detail: String },
    #[error("I/O error on {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("pool database error: {0}")]
    Db(#[from] redb::Error),
    #[error(
        "chunk {id} is corrupt: its bytes no longer hash to its id; restore the file from a snapshot or backup"
    )]
    Corrupt { id: ChunkId },
    #[error("pool metadata is damaged ({0}); restore the pool from a backup")]
    Damaged(String),
    #[error("the pool's writer thread has stopped; restart the daemon")]
    WriterGone,
    #[error("volume '{name}' already exists; choose another name or delete it first")]
    VolumeExists { name: String },
    #[error("no volume named '{name}'; `tandem volume list` shows the volumes")]
    NoSuchVolume { name: String },
    #[error("invalid name '{name}': {reason}")]
    InvalidName { name: String, reason: NameError },
    #[error("invalid block size {size}: use a power of two from 4096 to 1048576 bytes")]
    InvalidBlockSize { size: u64 },
    #[error("no snapshot of volume {vol} at generation {generation}")]
    NoSuchGeneration {
        vol: VolumeId,
        generation: Generation,
    },
    /// Another operation committed in the same batch failed in the storage (a full disk,
    /// an I/O error): this one was not stored, nothing is damaged.
    #[error(
        "not stored: another operation of the same commit failed in the storage (see the daemon log); nothing was changed, try again"
    )]
    BatchAborted,
    /// A failure shared by every operation of one commit batch.
    #[error(transparent)]
    Batch(Arc<StoreError>),
}

impl StoreError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io {
            what: what.into(),
            source,
        }
    }

    /// True for failures of the storage itself (as opposed to a refused request): such an
    /// error in the middle of a write batch aborts the whole batch.
    pub fn is_storage(&self) -> bool {
        !matches!(
            self,
            StoreError::VolumeExists { .. }
                | StoreError::NoSuchVolume { .. }
                | StoreError::InvalidName { .. }
                | StoreError::InvalidBlockSize { .. }
                | StoreError::NoSuchGeneration { .. }
        )
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Errors of layers above the store say whether they poison a write batch.
pub trait BatchError: From<StoreError> + Send + 'static {
    fn is_storage(&self) -> bool;
}

impl BatchError for StoreError {
    fn is_storage(&self) -> bool {
        StoreError::is_storage(self)
    }
}
