//! `snapshot diff`: per member volume, what changed between a snapshot and a later one, or
//! the live volume. As `zfs diff`, the first snapshot must be the earlier: the other order
//! is refused, naming the order to type, rather than silently swapped.

use crate::fs::groups::SnapError;
use crate::fs::{Engine, FsError};

/// `snapshot diff`: per member volume, what changed from `snap` to `other` (a later
/// snapshot) or to the live volume. `other` earlier than `snap` is [`SnapError::DiffOrder`].
pub fn diff(
    engine: &Engine,
    snap: &str,
    other: Option<&str>,
    volume: Option<&str>,
) -> Result<Vec<(String, Vec<crate::fs::diff::DiffEntry>)>, SnapError> {
    let rec = engine.snapshot(snap)?;
    let other = other.map(|o| engine.snapshot(o)).transpose()?;
    let mut out = Vec::new();
    for m in &rec.members {
        if volume.is_some_and(|v| v != m.name) {
            continue;
        }
        use crate::store::rows::View;
        let entries = match &other {
            Some(o) => match crate::fs::groups::member_generation(o, m.vol) {
                Some(g) if g < m.generation => {
                    return Err(SnapError::DiffOrder {
                        newer: snap.to_string(),
                        older: o.name.clone(),
                    });
                }
                Some(g) => engine.diff(m.vol, m.generation, View::At(g))?,
                None => continue,
            },
            None => engine.diff(m.vol, m.generation, View::Live)?,
        };
        out.push((m.name.clone(), entries));
    }
    if let Some(v) = volume
        && out.is_empty()
    {
        return Err(SnapError::Fs(FsError::Store(
            crate::store::StoreError::NoSuchVolume {
                name: format!("{v} (in snapshot {snap})"),
            },
        )));
    }
    Ok(out)
}
