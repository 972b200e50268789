//! Holds on snapshots (as ZFS `zfs hold`): a snapshot with at least one hold tag is not
//! deleted by anything (by hand, auto-delete, pruning, a group delete). Kept in the
//! `snapshot_holds` table (see [`crate::store::tables`]), keyed by the snapshot's id, so a hold
//! follows the snapshot and not its name. Read through [`crate::store::ReadView`]
//! (`holds_of`, `all_holds`); written here.
//!
//! Invariant: a snapshot's holds are removed only by releasing them; the snapshot-delete
//! transaction refuses while any is left (`crate::fs::groups`), so no hold outlives its
//! snapshot.

use redb::ReadableTable;

use crate::store::error::StoreError;
use crate::store::writer::Tx;
use crate::types::SnapshotId;

/// One hold: the tag and when it was placed (microseconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Hold {
    pub tag: String,
    pub since_us: i64,
}

/// The holds of snapshot `id`, by tag.
pub(in crate::store) fn of<T: ReadableTable<(u64, &'static str), i64>>(
    t: &T,
    id: SnapshotId,
) -> Result<Vec<Hold>, StoreError> {
    let mut out = Vec::new();
    for e in t.range((id.0, "")..(id.0 + 1, ""))? {
        let (k, v) = e?;
        out.push(Hold {
            tag: k.value().1.to_string(),
            since_us: v.value(),
        });
    }
    Ok(out)
}

/// Every hold of the pool: (snapshot id, hold), by id then tag.
pub(in crate::store) fn all<T: ReadableTable<(u64, &'static str), i64>>(
    t: &T,
) -> Result<Vec<(SnapshotId, Hold)>, StoreError> {
    let mut out = Vec::new();
    for e in t.iter()? {
        let (k, v) = e?;
        let (id, tag) = k.value();
        out.push((
            SnapshotId(id),
            Hold {
                tag: tag.to_string(),
                since_us: v.value(),
            },
        ));
    }
    Ok(out)
}

impl Tx<'_> {
    /// Places hold `tag` on snapshot `id`; false if it was already there (kept as it was).
    pub fn put_hold(
        &mut self,
        id: SnapshotId,
        tag: &str,
        since_us: i64,
    ) -> Result<bool, StoreError> {
        if self.holds.get((id.0, tag))?.is_some() {
            return Ok(false);
        }
        self.holds.insert((id.0, tag), since_us)?;
        Ok(true)
    }

    /// Removes hold `tag` from snapshot `id`; false if there was none.
    pub fn remove_hold(&mut self, id: SnapshotId, tag: &str) -> Result<bool, StoreError> {
        Ok(self.holds.remove((id.0, tag))?.is_some())
    }
}
