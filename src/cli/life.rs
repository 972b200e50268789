//! `tandem snapshot hold|release|holds`: a snapshot's holds (as ZFS `zfs hold`).

use std::path::Path;

use anyhow::Result;

use super::json::{self, emit};
use super::table::{Cell, Col, ListFlags, Table, col};
use super::{call, esc};
use tandem::control::{HoldInfo, Request};
use tandem::fs::groups::SnapError;

/// Microseconds since the epoch as a UTC time for people (`2026-11-30 19:47:30 UTC`).
pub(super) fn utc(us: i64) -> String {
    tandem::snapshot::utc_time(us)
}

const HOLD_COLS: &[Col] = &[
    col("snapshot", "SNAPSHOT"),
    col("tag", "TAG"),
    col("since", "SINCE"),
];

fn print_holds(holds: &[HoldInfo], flags: &ListFlags) -> Result<()> {
    if holds.is_empty() && !flags.scripted {
        outln!("no holds");
        return Ok(());
    }
    let mut t = Table::new("snapshot holds", HOLD_COLS);
    for h in holds {
        t.row(vec![
            Cell::Text(esc(&h.snapshot)),
            Cell::Text(esc(&h.tag)),
            Cell::Time(h.since_us),
        ]);
    }
    t.print(flags)
}

/// `{"holds": [...]}`.
fn emit_holds(holds: &[HoldInfo]) -> Result<()> {
    emit(&serde_json::json!({ "holds": json::holds(holds) }))
}

/// `snapshot hold SNAP TAG`.
pub(super) fn hold(pool: &Path, name: String, tag: String, as_json: bool) -> Result<()> {
    let holds: Vec<HoldInfo> = call(pool, Request::SnapshotHold { name, tag })?;
    if as_json {
        return emit_holds(&holds);
    }
    print_holds(&holds, &ListFlags::default())
}

/// `snapshot release SNAP TAG`.
pub(super) fn release(pool: &Path, name: String, tag: String, as_json: bool) -> Result<()> {
    let holds: Vec<HoldInfo> = call(
        pool,
        Request::SnapshotRelease {
            name: name.clone(),
            tag: tag.clone(),
        },
    )?;
    if as_json {
        return emit_holds(&holds);
    }
    outln!("released hold '{}' of snapshot '{}'", esc(&tag), esc(&name));
    if !holds.is_empty() {
        print_holds(&holds, &ListFlags::default())?;
    }
    Ok(())
}

/// `snapshot holds [SNAP] [--json] [-H] [-p] [-o COLS]`.
pub(super) fn list(pool: &Path, name: Option<String>, json: bool, flags: &ListFlags) -> Result<()> {
    let holds: Vec<HoldInfo> = call(pool, Request::SnapshotHolds { name })?;
    if json {
        return emit_holds(&holds);
    }
    print_holds(&holds, flags)
}

/// Refuses, before anything is deleted, a delete of several snapshots that includes a held
/// one (with the daemon's own wording).
pub(super) fn refuse_held(pool: &Path, names: &[String]) -> Result<()> {
    let holds: Vec<HoldInfo> = call(pool, Request::SnapshotHolds { name: None })?;
    for n in names {
        let tags: Vec<String> = holds
            .iter()
            .filter(|h| &h.snapshot == n)
            .map(|h| h.tag.clone())
            .collect();
        if !tags.is_empty() {
            return Err(SnapError::Held {
                snapshot: n.clone(),
                tags,
            }
            .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_times() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::utc(1_700_000_000_500_000), "2023-11-14 22:13:20 UTC");
    }
}
