//! `tandem group ...`: consistency groups.

use std::path::Path;

use anyhow::Result;
use clap::Subcommand;

use serde::Serialize;

use super::json::{self, emit};
use super::table::{Cell, Col, ListFlags, Table, col};
use super::{call, esc};
use tandem::control::{GroupInfo, Request};

#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// Create a group, optionally with volumes.
    Create { name: String, volumes: Vec<String> },
    /// Add volumes to a group (a volume belongs to at most one group).
    Add {
        name: String,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove volumes from a group.
    Remove {
        name: String,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Delete a group (its snapshots only with --delete-snapshots).
    Delete {
        name: String,
        #[arg(long)]
        delete_snapshots: bool,
        /// Do not ask before deleting its snapshots (asked only on a terminal).
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Rename a group (its snapshots follow).
    Rename { old: String, new: String },
    /// List groups (-H, -p, -o as `zfs list`).
    List(ListFlags),
    /// Show a group: members and snapshots.
    Info { name: String },
}

const LIST_COLS: &[Col] = &[
    col("name", "NAME"),
    col("created", "CREATED"),
    col("snapshots", "SNAPSHOTS"),
    col("volumes", "VOLUMES"),
];

/// Names as a space-separated list, each escaped.
fn names(v: &[String]) -> String {
    v.iter().map(|n| esc(n)).collect::<Vec<_>>().join(" ")
}

fn print_group(g: &GroupInfo) {
    outln!("group:      {}", esc(&g.name));
    outln!(
        "created:    {}",
        super::snapshow::when(g.created.saturating_mul(1_000_000))
    );
    outln!(
        "volumes:    {}",
        if g.volumes.is_empty() {
            "-".into()
        } else {
            names(&g.volumes)
        }
    );
    outln!(
        "snapshots:  {}",
        if g.snapshots.is_empty() {
            "-".into()
        } else {
            names(&g.snapshots)
        }
    );
}

pub(super) fn run_group(pool: &Path, cmd: GroupCmd, as_json: bool) -> Result<()> {
    let group: GroupInfo = match cmd {
        GroupCmd::Create { name, volumes } => call(pool, Request::GroupCreate { name, volumes })?,
        GroupCmd::Add { name, volumes } => call(pool, Request::GroupAdd { name, volumes })?,
        GroupCmd::Remove { name, volumes } => call(pool, Request::GroupRemove { name, volumes })?,
        GroupCmd::Delete {
            name,
            delete_snapshots,
            yes,
        } => {
            if delete_snapshots {
                let g: GroupInfo = call(pool, Request::GroupInfo { name: name.clone() })?;
                let verb = format!("delete group '{}' and its", esc(&name));
                super::confirm::confirm(&verb, "snapshot(s)", &g.snapshots, yes)?;
            }
            let names: Vec<String> = call(
                pool,
                Request::GroupDelete {
                    name: name.clone(),
                    delete_snapshots,
                },
            )?;
            if as_json {
                return emit(&serde_json::json!({
                    "deleted": { "group": name, "snapshots": names }
                }));
            }
            for n in names {
                outln!("deleted snapshot '{}'", esc(&n));
            }
            outln!("deleted group '{}'", esc(&name));
            return Ok(());
        }
        GroupCmd::Rename { old, new } => {
            call::<()>(
                pool,
                Request::GroupRename {
                    old: old.clone(),
                    new: new.clone(),
                },
            )?;
            if as_json {
                return emit(&serde_json::json!({ "renamed": { "group": old, "to": new } }));
            }
            outln!("renamed group '{}' to '{}'", esc(&old), esc(&new));
            return Ok(());
        }
        GroupCmd::List(flags) => {
            let groups: Vec<GroupInfo> = call(pool, Request::GroupList)?;
            if as_json {
                #[derive(Serialize)]
                struct Doc {
                    groups: Vec<json::Group>,
                }
                return emit(&Doc {
                    groups: groups.iter().map(json::Group::from).collect(),
                });
            }
            let mut t = Table::new("group list", LIST_COLS);
            for g in groups {
                t.row(vec![
                    Cell::Text(esc(&g.name)),
                    Cell::Time(g.created.saturating_mul(1_000_000)),
                    Cell::Num(g.snapshots.len() as u64),
                    Cell::Text(names(&g.volumes)),
                ]);
            }
            return t.print(&flags);
        }
        GroupCmd::Info { name } => call(pool, Request::GroupInfo { name })?,
    };
    if as_json {
        return emit(&json::Group::from(&group));
    }
    print_group(&group);
    Ok(())
}
