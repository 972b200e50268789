//! The engine's side of snapshot holds: placing and releasing them, listing them, and the
//! refusal every snapshot delete goes through ([`refuse_held`]). A held snapshot is not
//! deleted by hand, by auto-delete, by pruning or with its group; the refusal names the
//! tags and the `tandem snapshot release` that lifts each.

use crate::store::catalog::holds::Hold;
use crate::store::{ReadView, Tx};

use super::Inner;
use super::groups::SnapError;

/// Refuses to delete snapshot `name` (id `id`) while it has holds. Called in the delete's
/// transaction before anything is changed.
pub(super) fn refuse_held(
    tx: &Tx<'_>,
    name: &str,
    id: crate::types::SnapshotId,
) -> Result<(), SnapError> {
    let holds = tx.holds_of(id)?;
    if holds.is_empty() {
        return Ok(());
    }
    Err(SnapError::Held {
        snapshot: name.to_string(),
        tags: holds.into_iter().map(|h| h.tag).collect(),
    })
}

impl Inner {
    /// Places hold `tag` on snapshot `name`; false if that tag was already there.
    pub fn snapshot_hold(&self, name: &str, tag: &str, now_us: i64) -> Result<bool, SnapError> {
        crate::types::Name::try_from(tag).map_err(|reason| SnapError::BadTag {
            tag: tag.to_string(),
            reason,
        })?;
        let (name, tag) = (name.to_string(), tag.to_string());
        self.store.write(true, move |tx| {
            let s = tx
                .snapshot(&name)?
                .ok_or_else(|| SnapError::NoSnapshot(name.clone()))?;
            Ok(tx.put_hold(s.id, &tag, now_us)?)
        })
    }

    /// Releases hold `tag` of snapshot `name`; refused when it has no such hold.
    pub fn snapshot_release(&self, name: &str, tag: &str) -> Result<(), SnapError> {
        let (name, tag) = (name.to_string(), tag.to_string());
        self.store.write(true, move |tx| {
            let s = tx
                .snapshot(&name)?
                .ok_or_else(|| SnapError::NoSnapshot(name.clone()))?;
            if tx.holds_of(s.id)?.iter().any(|h| h.tag == tag) {
                tx.remove_hold(s.id, &tag)?;
                return Ok(());
            }
            let held: Vec<String> = tx.holds_of(s.id)?.into_iter().map(|h| h.tag).collect();
            Err(SnapError::NoHold {
                snapshot: name,
                tag,
                held: if held.is_empty() {
                    "none".into()
                } else {
                    held.join(", ")
                },
            })
        })
    }

    /// The holds of snapshot `name`, or of every snapshot: (snapshot name, hold), oldest
    /// snapshot first, then by tag.
    pub fn snapshot_holds(&self, name: Option<&str>) -> Result<Vec<(String, Hold)>, SnapError> {
        let r = self.store.read()?;
        let snaps = match name {
            Some(n) => vec![
                r.snapshot(n)?
                    .ok_or_else(|| SnapError::NoSnapshot(n.to_string()))?,
            ],
            None => r.snapshots()?,
        };
        let mut out = Vec::new();
        for s in snaps {
            for h in r.holds_of(s.id)? {
                out.push((s.name.clone(), h));
            }
        }
        Ok(out)
    }
}
