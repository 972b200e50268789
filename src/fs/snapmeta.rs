//! The engine's side of what is kept beside a snapshot (`crate::store::snapmeta`): its
//! recorded root and its last restore test. A record is written only while the snapshot it
//! belongs to exists (same id), in one transaction with that check, so a snapshot deleted
//! meanwhile leaves nothing behind.

use crate::store::ReadView;
use crate::store::snapmeta::{RootRecord, TestRecord};
use crate::types::SnapshotId;

use super::Inner;
use super::groups::SnapError;

impl Inner {
    pub fn recorded_root(&self, id: SnapshotId) -> Result<Option<RootRecord>, SnapError> {
        Ok(self.store.read()?.snapshot_root(id)?)
    }

    pub fn recorded_test(&self, id: SnapshotId) -> Result<Option<TestRecord>, SnapError> {
        Ok(self.store.read()?.snapshot_test(id)?)
    }

    /// Records the root of snapshot `name` (id `id`); false when it is gone.
    pub fn record_root(
        &self,
        name: &str,
        id: SnapshotId,
        root: RootRecord,
    ) -> Result<bool, SnapError> {
        let name = name.to_string();
        self.store.write(false, move |tx| {
            if tx.snapshot(&name)?.is_none_or(|s| s.id != id) {
                return Ok(false);
            }
            tx.put_snapshot_root(id, &root)?;
            Ok(true)
        })
    }

    /// Records the last restore test of snapshot `name` (id `id`); false when it is gone.
    pub fn record_test(
        &self,
        name: &str,
        id: SnapshotId,
        test: TestRecord,
    ) -> Result<bool, SnapError> {
        let name = name.to_string();
        self.store.write(true, move |tx| {
            if tx.snapshot(&name)?.is_none_or(|s| s.id != id) {
                return Ok(false);
            }
            tx.put_snapshot_test(id, &test)?;
            Ok(true)
        })
    }
}
