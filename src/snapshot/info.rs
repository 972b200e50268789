//! A snapshot as the CLI shows it ([`SnapshotInfo`]): its record, its mounts if activated,
//! and the bytes only it holds.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::fs::Engine;
use crate::fs::groups::SnapError;
use crate::store::catalog::SnapshotRecord;
use crate::types::{Generation, SnapshotId};

use super::MountView;

/// A snapshot as the CLI shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub name: String,
    pub id: SnapshotId,
    pub group: Option<String>,
    /// (volume, generation)
    pub members: Vec<(String, Generation)>,
    pub created_us: i64,
    pub description: String,
    pub pause_us: u64,
    pub exclusive_bytes: u64,
    pub state: String,
    pub mountpoints: Vec<(String, PathBuf)>,
    /// The Merkle root (hex; None until computed, just after the snapshot is taken).
    #[serde(default)]
    pub root: Option<String>,
    /// The last restore test (`tandem snapshot test`).
    #[serde(default)]
    pub last_test: Option<Box<crate::store::snapmeta::TestRecord>>,
}

pub fn info(
    engine: &Engine,
    mounts: &dyn MountView,
    s: &SnapshotRecord,
) -> Result<SnapshotInfo, SnapError> {
    let exclusive = engine.snapshot_exclusive_bytes(s)?;
    let mut i = info_with(mounts, s, exclusive);
    i.root = engine
        .recorded_root(s.id)?
        .map(|r| super::verify::hex(&r.root));
    i.last_test = engine.recorded_test(s.id)?.map(Box::new);
    Ok(i)
}

/// [`info`] with the exclusive bytes already known.
pub(super) fn info_with(
    mounts: &dyn MountView,
    s: &SnapshotRecord,
    exclusive_bytes: u64,
) -> SnapshotInfo {
    let mountpoints = mounts.snapshot_mounts(&s.name);
    SnapshotInfo {
        name: s.name.clone(),
        id: s.id,
        group: s.group.clone(),
        members: s
            .members
            .iter()
            .map(|m| (m.name.clone(), m.generation))
            .collect(),
        created_us: s.created_us,
        description: s.description.clone(),
        pause_us: s.pause_us,
        exclusive_bytes,
        state: if mountpoints.is_empty() {
            "created".into()
        } else {
            "activated".into()
        },
        mountpoints,
        root: None,
        last_test: None,
    }
}
