//! Which snapshots `snapshot delete` removes (one by name, all, all of a volume, all of a
//! group), and removing them. Auto-delete is in `limits`.
//!
//! Invariant: a held snapshot is never deleted (the engine's delete refuses it), and a
//! delete of several that include a held one is refused before any is deleted.

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

/// Refuses (naming the first held snapshot, its tags and the release that lifts them) if
/// any of `names` is held.
pub fn refuse_held(engine: &Engine, names: &[String]) -> Result<(), SnapError> {
    let holds = engine.snapshot_holds(None)?;
    for n in names {
        let tags: Vec<String> = holds
            .iter()
            .filter(|(s, _)| s == n)
            .map(|(_, h)| h.tag.clone())
            .collect();
        if !tags.is_empty() {
            return Err(SnapError::Held {
                snapshot: n.clone(),
                tags,
            });
        }
    }
    Ok(())
}

/// Deletes snapshots; returns the names deleted. All or nothing with respect to holds: a
/// held one among them stops the delete before any is deleted.
pub fn delete(engine: &Engine, which: &DeleteWhich) -> Result<Vec<String>, SnapError> {
    let names = delete_list(engine, which)?;
    refuse_held(engine, &names)?;
    let mut done = Vec::new();
    for n in names {
        engine.snapshot_delete(&n)?;
        done.push(n);
    }
    Ok(done)
}
