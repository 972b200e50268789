//! Which snapshots `snapshot delete` removes (one by name, all, all of a volume, all of a
//! group), and removing them. Auto-delete is in `limits`.

use serde::{Deserialize, Serialize};

use crate::fs::Engine;
use crate::fs::groups::SnapError;

/// Which snapshots `snapshot delete` removes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeleteWhich {
    Name(String),
    All,
    Volume(String),
    Group(String),
}

/// The snapshots `which` names, oldest first.
pub fn delete_list(engine: &Engine, which: &DeleteWhich) -> Result<Vec<String>, SnapError> {
    let all = engine.snapshots()?;
    let targets: Vec<String> = match which {
        DeleteWhich::Name(n) => vec![engine.snapshot(n)?.name],
        DeleteWhich::All => all.into_iter().map(|s| s.name).collect(),
        DeleteWhich::Volume(v) => {
            let id = engine.volume_id(v)?;
            all.into_iter()
                .filter(|s| s.members.iter().any(|m| m.vol == id))
                .map(|s| s.name)
                .collect()
        }
        DeleteWhich::Group(g) => {
            engine.group(g)?;
            all.into_iter()
                .filter(|s| s.group.as_deref() == Some(g.as_str()))
                .map(|s| s.name)
                .collect()
        }
    };
    Ok(targets)
}

/// Deletes snapshots; returns the names deleted.
pub fn delete(engine: &Engine, which: &DeleteWhich) -> Result<Vec<String>, SnapError> {
    let mut done = Vec::new();
    for n in delete_list(engine, which)? {
        engine.snapshot_delete(&n)?;
        done.push(n);
    }
    Ok(done)
}
