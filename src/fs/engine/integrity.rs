//! [`Engine`]'s snapshot integrity: Merkle roots, the snapshot verify, and the records kept
//! beside a snapshot (its root, its last restore test).

use std::ops::ControlFlow;

use super::Engine;
use crate::fs::FsError;
use crate::fs::groups::SnapError;
use crate::fs::treehash::{Member, TreeCheck};
use crate::store::snapmeta::{RootRecord, TestRecord};
use crate::store::verify::VerifyProgress;
use crate::types::SnapshotId;

/// # Snapshot integrity
///
/// (treehash.rs, snapmeta.rs.)
impl Engine {
    /// Computes the Merkle root of a snapshot's members from their rows (no chunk read).
    pub fn compute_snapshot_root(&self, members: &[Member]) -> Result<RootRecord, FsError> {
        self.inner.snapshot_root(members)
    }

    /// Re-reads and re-hashes every chunk the members reference and recomputes the root;
    /// `None` when `progress` broke it off.
    pub fn verify_snapshot(
        &self,
        members: &[Member],
        progress: &mut dyn FnMut(&VerifyProgress) -> ControlFlow<()>,
    ) -> Result<Option<TreeCheck>, FsError> {
        self.inner.verify_snapshot(members, progress)
    }

    /// The root recorded for snapshot `id`, if computed yet.
    pub fn recorded_root(&self, id: SnapshotId) -> Result<Option<RootRecord>, SnapError> {
        self.inner.recorded_root(id)
    }

    /// Records the root of snapshot `name` (`id`); false when the snapshot is gone.
    pub fn record_root(
        &self,
        name: &str,
        id: SnapshotId,
        root: RootRecord,
    ) -> Result<bool, SnapError> {
        self.inner.record_root(name, id, root)
    }

    /// The last restore test of snapshot `id`.
    pub fn recorded_test(&self, id: SnapshotId) -> Result<Option<TestRecord>, SnapError> {
        self.inner.recorded_test(id)
    }

    /// Records the last restore test of snapshot `name` (`id`); false when it is gone.
    pub fn record_test(
        &self,
        name: &str,
        id: SnapshotId,
        test: TestRecord,
    ) -> Result<bool, SnapError> {
        self.inner.record_test(name, id, test)
    }
}
