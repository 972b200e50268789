//! How snapshots are shown: the `snapshot list` table, the `snapshot info` page, and the
//! JSON documents of snapshot lists and activations (see [`super::json`]).

use anyhow::Result;
use serde::Serialize;

use super::json::{self, emit};
use super::table::{Cell, Col, ListFlags, Table, col};
use super::{esc, human};
use tandem::control::Activated;
use tandem::snapshot::SnapshotInfo;

/// An instant for people: UTC, and the unix seconds for reference.
pub(super) fn when(us: i64) -> String {
    format!(
        "{} (unix {})",
        tandem::snapshot::utc_time(us),
        us.div_euclid(1_000_000)
    )
}

const LIST_COLS: &[Col] = &[
    col("name", "NAME"),
    col("group", "GROUP"),
    col("created", "CREATED"),
    col("pause", "PAUSE"),
    col("state", "STATE"),
    col("exclusive", "EXCLUSIVE"),
    col("members", "MEMBERS"),
];

pub(super) fn print_list(snapshots: &[SnapshotInfo], flags: &ListFlags) -> Result<()> {
    let mut t = Table::new("snapshot list", LIST_COLS);
    for s in snapshots {
        t.row(vec![
            Cell::Text(esc(&s.name)),
            s.group
                .as_deref()
                .map_or(Cell::None, |g| Cell::Text(esc(g))),
            Cell::Time(s.created_us),
            Cell::Micros(s.pause_us),
            Cell::Text(s.state.clone()),
            Cell::Bytes(s.exclusive_bytes),
            Cell::Text(
                s.members
                    .iter()
                    .map(|(v, _)| esc(v))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
        ]);
    }
    t.print(flags)
}

pub(super) fn print_snapshot(s: &SnapshotInfo) {
    outln!("snapshot:     {}", esc(&s.name));
    outln!(
        "group:        {}",
        s.group.as_deref().map(esc).unwrap_or_else(|| "-".into())
    );
    outln!(
        "members:      {}",
        s.members
            .iter()
            .map(|(v, g)| format!("{}@{g}", esc(v)))
            .collect::<Vec<_>>()
            .join(" ")
    );
    outln!("created:      {}", when(s.created_us));
    outln!(
        "description:  {}",
        if s.description.is_empty() {
            "-"
        } else {
            &s.description
        }
    );
    outln!("pause:        {:.3} ms", s.pause_us as f64 / 1000.0);
    outln!(
        "exclusive:    {} (only this snapshot holds it: freed by deleting it)",
        human(s.exclusive_bytes)
    );
    outln!("state:        {}", s.state);
    for (v, m) in &s.mountpoints {
        outln!("  {} at {}", esc(v), m.display());
    }
    outln!(
        "root:         {}",
        s.root.as_deref().unwrap_or("(not computed yet)")
    );
    if let Some(t) = &s.last_test {
        outln!(
            "last test:    {} at {} (command ran {:.3} s): {}",
            if t.passed { "passed" } else { "FAILED" },
            when(t.started_us),
            t.run_us as f64 / 1e6,
            t.command
        );
    }
}

/// `{"snapshots": [...]}`.
pub(super) fn emit_snapshots(snapshots: &[SnapshotInfo]) -> Result<()> {
    #[derive(Serialize)]
    struct Doc {
        snapshots: Vec<json::Snapshot>,
    }
    emit(&Doc {
        snapshots: json::snapshots(snapshots),
    })
}

/// A snapshot's read-only mounts after activate or deactivate.
pub(super) fn emit_activated(a: &Activated) -> Result<()> {
    emit(&serde_json::json!({
        "snapshot": a.name,
        "mounts": a.mounts.iter().map(json::Mount::from).collect::<Vec<_>>(),
    }))
}
