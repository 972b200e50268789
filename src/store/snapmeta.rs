//! Records kept beside a snapshot, keyed by its id (so a renamed snapshot keeps them): its
//! Merkle root (`snapshot_roots`) and the last restore test run on it (`snapshot_tests`),
//! see [`super::tables`]. Written here through [`Tx`], read through [`Reader`]; both go
//! when the snapshot record goes ([`Tx::remove_snapshot_record`]).
//!
//! Invariant: a root is written once per snapshot, from the snapshot's own generations,
//! and only replaced by the same computation (the root of an immutable view never changes).

use serde::{Deserialize, Serialize};

use super::catalog::decode;
use super::error::StoreError;
use super::read::Reader;
use super::tables::{SNAPSHOT_ROOTS, SNAPSHOT_TESTS};
use super::writer::Tx;
use crate::types::SnapshotId;

/// A snapshot's Merkle root (see `crate::fs::treehash` for what it covers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootRecord {
    /// blake3 over the member roots, in member order.
    pub root: [u8; 32],
    /// Each member's tree root, in member order.
    pub members: Vec<[u8; 32]>,
    /// When it was computed, microseconds since the epoch.
    pub computed_us: i64,
}

/// The outcome of one restore test (`tandem snapshot test`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestRecord {
    /// When the test started, microseconds since the epoch.
    pub started_us: i64,
    pub passed: bool,
    /// The command run.
    pub command: String,
    /// Exit status of the command (None: killed by a signal, or never started).
    pub exit_code: Option<i32>,
    /// How long the command ran, microseconds (the restore time objective).
    pub run_us: u64,
    /// How long cloning and mounting took, microseconds.
    pub setup_us: u64,
    /// The end of the command's output (stdout and stderr).
    pub output_tail: String,
}

fn encode<T: Serialize>(what: &str, v: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(v).map_err(|e| StoreError::Damaged(format!("{what}: {e}")))
}

impl Tx<'_> {
    pub fn put_snapshot_root(&mut self, id: SnapshotId, r: &RootRecord) -> Result<(), StoreError> {
        self.snapshot_roots
            .insert(id.0, encode("snapshot root", r)?.as_slice())?;
        Ok(())
    }

    pub fn put_snapshot_test(&mut self, id: SnapshotId, t: &TestRecord) -> Result<(), StoreError> {
        self.snapshot_tests
            .insert(id.0, encode("snapshot test", t)?.as_slice())?;
        Ok(())
    }

    /// Drops what is kept beside snapshot `id` (its record is being removed).
    pub(super) fn forget_snapshot_meta(&mut self, id: SnapshotId) -> Result<(), StoreError> {
        self.snapshot_roots.remove(id.0)?;
        self.snapshot_tests.remove(id.0)?;
        Ok(())
    }
}

impl Reader<'_> {
    /// The recorded root of snapshot `id` (None: not computed yet).
    pub fn snapshot_root(&self, id: SnapshotId) -> Result<Option<RootRecord>, StoreError> {
        let t = self.txn().open_table(SNAPSHOT_ROOTS)?;
        let v = t.get(id.0)?;
        v.map(|v| decode("snapshot root", v.value())).transpose()
    }

    /// The last restore test of snapshot `id`.
    pub fn snapshot_test(&self, id: SnapshotId) -> Result<Option<TestRecord>, StoreError> {
        let t = self.txn().open_table(SNAPSHOT_TESTS)?;
        let v = t.get(id.0)?;
        v.map(|v| decode("snapshot test", v.value())).transpose()
    }
}
