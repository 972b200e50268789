//! `tandem volume ...` and `tandem df`: volumes and the space they take.

use std::path::Path;

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;

use super::json::{self, emit};
use super::{call, esc, human};
use tandem::control::{DfInfo, OptionSet, Request, VolumeDetail};
use tandem::fs::VolumeInfo;

#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// Create a volume.
    Create {
        name: String,
        /// Block size in bytes: a power of two from 4096 to 1048576.
        #[arg(long)]
        block_size: Option<u64>,
    },
    /// List volumes.
    List,
    /// Show one volume: sizes, files, generation, mounts, options.
    Info { name: String },
    /// Delete a volume and reclaim its space (it must not be mounted).
    Delete { name: String },
    /// Rename a volume (mounted or not: its mounts, snapshots and group follow).
    Rename { old: String, new: String },
    /// Set a per-volume option.
    #[command(after_help = format!("Options:\n{}", tandem::options::help()))]
    Set {
        name: String,
        key: String,
        value: String,
    },
}

fn print_volumes(vols: &[VolumeInfo]) {
    println!(
        "{:<24} {:>10} {:>12} {:>12} {:>8} {:>6}",
        "NAME", "BLOCK", "LOGICAL", "PHYSICAL", "FILES", "GEN"
    );
    for v in vols {
        println!(
            "{:<24} {:>10} {:>12} {:>12} {:>8} {:>6}",
            esc(&v.name),
            human(v.block_size as u64),
            human(v.logical_bytes),
            human(v.physical_bytes),
            v.files,
            v.generation.0
        );
    }
}

fn print_info(d: &VolumeDetail) {
    let v = &d.info;
    println!("volume:      {}", esc(&v.name));
    println!("id:          {}", v.id);
    println!("block size:  {}", human(v.block_size as u64));
    println!(
        "logical:     {} ({} bytes)",
        human(v.logical_bytes),
        v.logical_bytes
    );
    println!(
        "physical:    {} ({} bytes)",
        human(v.physical_bytes),
        v.physical_bytes
    );
    println!("files:       {}", v.files);
    println!("generation:  {}", v.generation);
    let mps: Vec<String> = d
        .mountpoints
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    println!(
        "mounted at:  {}",
        if mps.is_empty() {
            "-".to_string()
        } else {
            mps.join(", ")
        }
    );
    println!("options:");
    for (k, val, set) in &d.options {
        println!("  {k:<24} {val}{}", if *set { "" } else { " (default)" });
    }
}

pub(super) fn run_volume(pool: &Path, cmd: VolumeCmd, as_json: bool) -> Result<()> {
    match cmd {
        VolumeCmd::Create { name, block_size } => {
            let v: VolumeInfo = call(pool, Request::VolumeCreate { name, block_size })?;
            if as_json {
                return emit(&json::Volume::from(&v));
            }
            println!(
                "created volume '{}' (block size {})",
                v.name,
                human(v.block_size as u64)
            );
        }
        VolumeCmd::List => {
            let volumes: Vec<VolumeInfo> = call(pool, Request::VolumeList)?;
            if as_json {
                #[derive(Serialize)]
                struct Doc {
                    volumes: Vec<json::Volume>,
                }
                return emit(&Doc {
                    volumes: volumes.iter().map(json::Volume::from).collect(),
                });
            }
            print_volumes(&volumes)
        }
        VolumeCmd::Info { name } => {
            let d: VolumeDetail = call(pool, Request::VolumeInfo { name })?;
            if as_json {
                return emit(&json::VolumeInfoDoc::from(&d));
            }
            print_info(&d)
        }
        VolumeCmd::Delete { name } => {
            call::<()>(pool, Request::VolumeDelete { name: name.clone() })?;
            if as_json {
                return emit(&serde_json::json!({ "deleted": { "volume": name } }));
            }
            println!("deleted volume '{name}'");
        }
        VolumeCmd::Rename { old, new } => {
            call::<()>(
                pool,
                Request::VolumeRename {
                    old: old.clone(),
                    new: new.clone(),
                },
            )?;
            if as_json {
                return emit(&serde_json::json!({ "renamed": { "volume": old, "to": new } }));
            }
            println!("renamed volume '{old}' to '{new}'");
        }
        VolumeCmd::Set { name, key, value } => {
            let OptionSet { volume, key, value } =
                call(pool, Request::VolumeSet { name, key, value })?;
            if as_json {
                return emit(&serde_json::json!({
                    "volume": volume,
                    "key": key,
                    "value": json::typed(&key, &value),
                    "source": "volume",
                }));
            }
            println!("{volume}: {key} = {value}");
        }
    }
    Ok(())
}

/// `tandem df`.
pub(super) fn df(pool: &Path, as_json: bool) -> Result<()> {
    let d: DfInfo = call(pool, Request::Df)?;
    if as_json {
        return emit(&df_doc(&d));
    }
    println!(
        "{:<24} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "VOLUME", "LOGICAL", "PHYSICAL", "UNIQUE", "SHARED", "ORIGIN"
    );
    for (n, l, p, sp) in &d.volumes {
        println!(
            "{:<24} {:>12} {:>12} {:>12} {:>12} {:>12}",
            esc(n),
            human(*l),
            human(*p),
            human(sp.unique),
            human(sp.shared),
            human(sp.origin)
        );
    }
    if !d.snapshots.is_empty() {
        println!("{:<24} {:>12}", "SNAPSHOT", "EXCLUSIVE");
        for (n, h) in &d.snapshots {
            println!("{:<24} {:>12}", esc(n), human(*h));
        }
    }
    println!(
        "pool: logical {}, physical {}, on disk {}, dedup ratio {:.2}",
        human(d.pool.logical_bytes),
        human(d.pool.physical_bytes),
        human(d.pool.disk_bytes),
        d.dedup_ratio
    );
    Ok(())
}

/// `df --json`: volumes and snapshots as objects.
fn df_doc(d: &DfInfo) -> serde_json::Value {
    let volumes: Vec<serde_json::Value> = d
        .volumes
        .iter()
        .map(|(name, logical, physical, space)| {
            serde_json::json!({
                "name": name,
                "logical_bytes": logical,
                "physical_bytes": physical,
                "unique_bytes": space.unique,
                "shared_bytes": space.shared,
                "origin_bytes": space.origin,
            })
        })
        .collect();
    let snapshots: Vec<serde_json::Value> = d
        .snapshots
        .iter()
        .map(|(name, exclusive)| serde_json::json!({"name": name, "exclusive_bytes": exclusive}))
        .collect();
    serde_json::json!({
        "volumes": volumes,
        "snapshots": snapshots,
        "pool": d.pool,
        "dedup_ratio": d.dedup_ratio,
    })
}
