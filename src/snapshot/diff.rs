//! `snapshot diff`: per member volume, what changed between a snapshot and a later or
//! earlier one, or the live volume.

use crate::fs::groups::SnapError;
use crate::fs::{Engine, FsError};

/// `snapshot diff`: per member volume, what changed from `snap` to `other` (a later or
/// earlier snapshot) or to the live volume.
pub fn diff(
    engine: &Engine,
    snap: &str,
    other: Option<&str>,
    volume: Option<&str>,
) -> Result<Vec<(String, Vec<crate::fs::restore::DiffEntry>)>, SnapError> {
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
                // Always from the older generation to the newer one.
                Some(g) if g < m.generation => engine.diff(m.vol, g, View::At(m.generation))?,
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
