//! `tandem group ...`: consistency groups.

use std::path::Path;

use anyhow::Result;
use clap::Subcommand;

use serde::Serialize;

use super::json::{self, emit};
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
    },
    /// Rename a group (its snapshots follow).
    Rename { old: String, new: String },
    /// List groups.
    List,
    /// Show a group: members and snapshots.
    Info { name: String },
}

/// Names as a space-separated list, each escaped.
fn names(v: &[String]) -> String {
    v.iter().map(|n| esc(n)).collect::<Vec<_>>().join(" ")
}

fn print_group(g: &GroupInfo) {
    println!("group:      {}", esc(&g.name));
    println!(
        "volumes:    {}",
        if g.volumes.is_empty() {
            "-".into()
        } else {
            names(&g.volumes)
        }
    );
    println!(
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
        } => {
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
                println!("deleted snapshot '{n}'");
            }
            println!("deleted group '{name}'");
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
            println!("renamed group '{old}' to '{new}'");
            return Ok(());
        }
        GroupCmd::List => {
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
            println!("{:<24} {:>9} VOLUMES", "NAME", "SNAPSHOTS");
            for g in groups {
                println!(
                    "{:<24} {:>9} {}",
                    esc(&g.name),
                    g.snapshots.len(),
                    names(&g.volumes)
                );
            }
            return Ok(());
        }
        GroupCmd::Info { name } => call(pool, Request::GroupInfo { name })?,
    };
    if as_json {
        return emit(&json::Group::from(&group));
    }
    print_group(&group);
    Ok(())
}
