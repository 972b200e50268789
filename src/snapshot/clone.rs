//! Clones: writable volumes made from a snapshot, sharing its chunks (a volume for a volume
//! snapshot, a group of volumes for a group snapshot). Each volume is a layer over its
//! member's snapshot generation (`crate::store::layers`): made in O(1) rows whatever it
//! holds; the snapshot may be deleted afterwards (the clone holds the generation), and
//! deleting the origin volume hands the rows the clone reads over to it.
//!
//! Invariant: a clone is all or nothing; the volumes made before a failure are deleted.

use serde::{Deserialize, Serialize};

use crate::fs::groups::SnapError;
use crate::fs::{Engine, FsError};

use super::clock::now_secs;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloneOutcome {
    pub group: Option<String>,
    pub volumes: Vec<String>,
}

/// Writable volumes from a snapshot, sharing its chunks: a volume NEW for a volume
/// snapshot; a group NEW with volumes NEW-MEMBER for a group snapshot. All or nothing.
pub fn clone(engine: &Engine, new: &str, snap: &str) -> Result<CloneOutcome, SnapError> {
    let rec = engine.snapshot(snap)?;
    crate::store::volumes::validate_name(new)?;
    let grouped = rec.group.is_some();
    let names: Vec<String> = if grouped {
        rec.members
            .iter()
            .map(|m| format!("{new}-{}", m.name))
            .collect()
    } else {
        vec![new.to_string()]
    };
    for n in &names {
        crate::store::volumes::validate_name(n)?;
        if engine.volume_id(n).is_ok() {
            return Err(SnapError::Fs(FsError::Store(
                crate::store::StoreError::VolumeExists { name: n.clone() },
            )));
        }
    }
    if grouped && engine.group(new).is_ok() {
        return Err(SnapError::GroupExists(new.to_string()));
    }
    let mut made = Vec::new();
    for (m, n) in rec.members.iter().zip(&names) {
        match engine.clone_generation(m.vol, m.generation, n) {
            Ok(_) => made.push(n.clone()),
            Err(e) => {
                for done in &made {
                    let _ = engine.delete_volume(done);
                }
                return Err(e.into());
            }
        }
    }
    // Pruning spares a snapshot clones were made from.
    let ids: Vec<_> = made
        .iter()
        .map(|n| engine.volume_id(n))
        .collect::<Result<_, _>>()?;
    engine.snapshot_set_clone_origin(&ids, rec.id)?;
    let group = if grouped {
        engine.group_create(new, &made, now_secs())?;
        Some(new.to_string())
    } else {
        None
    };
    Ok(CloneOutcome {
        group,
        volumes: made,
    })
}
