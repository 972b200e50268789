//! `tandem volume ...` and `tandem df`: volumes and the space they take.

use super::progress::Progress;
use std::path::Path;

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;

use super::json::{self, emit};
use super::table::{Cell, Col, ListFlags, Table, col};
use super::{call, esc, human};
use tandem::control::{
    DfInfo, OptionInForce, OptionSet, OptionSource, Request, VolumeDetail, VolumeOptionsInfo,
};
use tandem::fs::VolumeInfo;

#[derive(Subcommand, Debug)]
pub enum VolumeCmd {
    /// Create a volume.
    Create {
        name: String,
        /// Block size: a power of two from 4K to 1M, in bytes or with a binary suffix
        /// (64K, 64KiB, 1M).
        #[arg(long, value_name = "SIZE", value_parser = parse_size)]
        block_size: Option<u64>,
    },
    /// List volumes (-H, -p, -o as `zfs list`).
    List(ListFlags),
    /// Show one volume: sizes, files, generation, mounts, options.
    Info { name: String },
    /// Delete a volume and reclaim its space (it must not be mounted).
    Delete { name: String },
    /// Rename a volume (mounted or not: its mounts, snapshots and group follow).
    Rename { old: String, new: String },
    /// Set a per-volume option; the value `default` drops the volume's own value (as
    /// `volume inherit`).
    #[command(after_help = format!("Options:\n{}", tandem::options::help()))]
    Set {
        name: String,
        key: String,
        value: String,
    },
    /// Show a volume's options: the value in force and its source (default, pool, volume),
    /// as `zfs get` (-H, -p, -o as `zfs list`).
    Get {
        name: String,
        /// Only these options (default: all).
        keys: Vec<String>,
        #[command(flatten)]
        flags: ListFlags,
    },
    /// Drop a volume's own value of an option: it falls back to the system-wide value
    /// (`snapshot config`) or the default.
    Inherit { name: String, key: String },
}

/// A size as people write it: bytes, or a number with a binary suffix as zfs reads them
/// (`64K` = `64KiB` = `64KB` = 65536; K, M, G, T; case-insensitive; `1.5M` too).
/// Written here, not with bytesize: its parser reads `64K` and `64KB` as 64,000 (decimal
/// units), which is not a power of two, while zfs and its users mean 65,536.
pub(super) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "'{s}' is not a size; write e.g. 65536, 64K or 64KiB"
            ));
        }
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size; write e.g. 65536, 64K or 64KiB"))?;
    let bytes = n * (1u64 << shift) as f64;
    if !(bytes.is_finite() && bytes >= 0.0 && bytes.fract() == 0.0 && bytes < u64::MAX as f64) {
        return Err(format!("'{s}' is not a whole number of bytes"));
    }
    Ok(bytes as u64)
}

const VOLUME_COLS: &[Col] = &[
    col("name", "NAME"),
    col("block", "BLOCK"),
    col("logical", "LOGICAL"),
    col("physical", "PHYSICAL"),
    col("files", "FILES"),
    col("generation", "GEN"),
    col("created", "CREATED"),
];

fn print_volumes(vols: &[VolumeInfo], flags: &ListFlags) -> Result<()> {
    let mut t = Table::new("volume list", VOLUME_COLS);
    for v in vols {
        t.row(vec![
            Cell::Text(esc(&v.name)),
            Cell::Bytes(v.block_size as u64),
            Cell::Bytes(v.logical_bytes),
            Cell::Bytes(v.physical_bytes),
            Cell::Num(v.files),
            Cell::Num(v.generation.0),
            Cell::Time(v.created.saturating_mul(1_000_000)),
        ]);
    }
    t.print(flags)
}

fn print_info(d: &VolumeDetail, o: &VolumeOptionsInfo) {
    let v = &d.info;
    outln!("volume:      {}", esc(&v.name));
    outln!("id:          {}", v.id);
    outln!("block size:  {}", human(v.block_size as u64));
    outln!(
        "logical:     {} ({} bytes)",
        human(v.logical_bytes),
        v.logical_bytes
    );
    outln!(
        "physical:    {} ({} bytes)",
        human(v.physical_bytes),
        v.physical_bytes
    );
    outln!("files:       {}", v.files);
    outln!("generation:  {}", v.generation);
    outln!(
        "created:     {}",
        super::snapshow::when(v.created.saturating_mul(1_000_000))
    );
    let mps: Vec<String> = d
        .mountpoints
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    outln!(
        "mounted at:  {}",
        if mps.is_empty() {
            "-".to_string()
        } else {
            mps.join(", ")
        }
    );
    outln!("options:");
    for x in &o.options {
        outln!("  {:<24} {} ({})", x.key, esc(&x.value), x.source.as_str());
    }
}

pub(super) fn run_volume(pool: &Path, cmd: VolumeCmd, as_json: bool) -> Result<()> {
    match cmd {
        VolumeCmd::Create { name, block_size } => {
            let v: VolumeInfo = call(pool, Request::VolumeCreate { name, block_size })?;
            if as_json {
                return emit(&json::Volume::from(&v));
            }
            outln!(
                "created volume '{}' (block size {})",
                esc(&v.name),
                human(v.block_size as u64)
            );
        }
        VolumeCmd::List(flags) => {
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
            print_volumes(&volumes, &flags)?
        }
        VolumeCmd::Info { name } => {
            let d: VolumeDetail = call(pool, Request::VolumeInfo { name })?;
            // The options as in force, with their source.
            let o: VolumeOptionsInfo = call(
                pool,
                Request::VolumeGet {
                    name: d.info.name.clone(),
                },
            )?;
            if as_json {
                return emit(&json::VolumeInfoDoc::new(&d, &o));
            }
            print_info(&d, &o)
        }
        VolumeCmd::Delete { name } => {
            {
                let _shown =
                    Progress::spinner(as_json, format!("deleting volume '{}'", esc(&name)));
                call::<()>(pool, Request::VolumeDelete { name: name.clone() })?;
            }
            if as_json {
                return emit(&serde_json::json!({ "deleted": { "volume": name } }));
            }
            outln!("deleted volume '{}'", esc(&name));
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
            outln!("renamed volume '{}' to '{}'", esc(&old), esc(&new));
        }
        VolumeCmd::Set { name, key, value } if value == "default" => {
            inherit(pool, name, key, as_json)?
        }
        VolumeCmd::Inherit { name, key } => inherit(pool, name, key, as_json)?,
        VolumeCmd::Get { name, keys, flags } => {
            let o: VolumeOptionsInfo = call(pool, Request::VolumeGet { name })?;
            let shown: Vec<&OptionInForce> = o
                .options
                .iter()
                .filter(|x| keys.is_empty() || keys.contains(&x.key))
                .collect();
            if let Some(k) = keys
                .iter()
                .find(|k| !o.options.iter().any(|x| &x.key == *k))
            {
                let known: Vec<&str> = o.options.iter().map(|x| x.key.as_str()).collect();
                anyhow::bail!("unknown option '{k}'; known options: {}", known.join(", "));
            }
            if as_json {
                return emit(&options_doc(&o.volume, &shown));
            }
            let mut t = Table::new("volume get", GET_COLS);
            for x in shown {
                t.row(vec![
                    Cell::Text(esc(&o.volume)),
                    Cell::Text(x.key.clone()),
                    Cell::Text(if x.value.is_empty() {
                        "-".into()
                    } else {
                        esc(&x.value)
                    }),
                    Cell::Text(x.source.as_str().into()),
                ]);
            }
            t.print(&flags)?
        }
        VolumeCmd::Set { name, key, value } => set(pool, name, key, value, as_json)?,
    }
    Ok(())
}

const DF_COLS: &[Col] = &[
    col("name", "VOLUME"),
    col("logical", "LOGICAL"),
    col("physical", "PHYSICAL"),
    col("unique", "UNIQUE"),
    col("shared", "SHARED"),
    col("origin", "ORIGIN"),
];

const DF_SNAPSHOT_COLS: &[Col] = &[col("name", "SNAPSHOT"), col("exclusive", "EXCLUSIVE")];

const GET_COLS: &[Col] = &[
    col("name", "NAME"),
    col("property", "PROPERTY"),
    col("value", "VALUE"),
    col("source", "SOURCE"),
];

/// `{"volume": V, "options": {KEY: {value, source}}}`.
fn options_doc(volume: &str, shown: &[&OptionInForce]) -> serde_json::Value {
    let options: serde_json::Map<String, serde_json::Value> = shown
        .iter()
        .map(|x| {
            let v = json::OptionValue {
                value: json::typed(&x.key, &x.value),
                source: x.source.as_str(),
            };
            (x.key.clone(), serde_json::json!(v))
        })
        .collect();
    serde_json::json!({ "volume": volume, "options": options })
}

/// `volume set VOL KEY VALUE`: sets the volume's own value, then prints the value now in
/// force and its source, as `volume get` would (the pool's lower hard limit still wins over
/// a higher one set on the volume, and then the line says so).
fn set(pool: &Path, name: String, key: String, value: String, as_json: bool) -> Result<()> {
    let OptionSet { volume, key, value } = call(pool, Request::VolumeSet { name, key, value })?;
    let o: VolumeOptionsInfo = call(
        pool,
        Request::VolumeGet {
            name: volume.clone(),
        },
    )?;
    let Some(now) = o.options.iter().find(|x| x.key == key) else {
        anyhow::bail!(
            "option '{key}' of volume '{}' was set, but the daemon does not list it; see `tandem volume get {}`",
            esc(&volume),
            esc(&volume)
        );
    };
    if as_json {
        return emit(&serde_json::json!({
            "volume": volume,
            "key": key,
            "value": json::typed(&key, &now.value),
            "source": now.source.as_str(),
            "volume_value": json::typed(&key, &value),
        }));
    }
    let source = now.source.as_str();
    if now.source == OptionSource::Volume {
        outln!("{}: {key} = {} ({source})", esc(&volume), esc(&now.value));
    } else {
        outln!(
            "{}: {key} = {} ({source}; the volume's own value {} is not in force)",
            esc(&volume),
            esc(&now.value),
            esc(&value)
        );
    }
    if key == "snap-max-hard-limit" {
        warn_over_limit(pool, &volume)?;
    }
    Ok(())
}

/// `volume inherit VOL KEY` (and `volume set VOL KEY default`): prints the value now in
/// force and its source.
fn inherit(pool: &Path, name: String, key: String, as_json: bool) -> Result<()> {
    let o: VolumeOptionsInfo = call(
        pool,
        Request::VolumeInherit {
            name,
            key: key.clone(),
        },
    )?;
    let now: Vec<&OptionInForce> = o.options.iter().filter(|x| x.key == key).collect();
    if as_json {
        return emit(&options_doc(&o.volume, &now));
    }
    for x in now {
        outln!(
            "{}: {} = {} ({})",
            esc(&o.volume),
            x.key,
            x.value,
            x.source.as_str()
        );
    }
    if key == "snap-max-hard-limit" {
        warn_over_limit(pool, &o.volume)?;
    }
    Ok(())
}

/// Warns (stderr) when `volume` has more snapshots than its hard limit now in force: no
/// snapshot of it can be taken until enough are deleted.
pub(super) fn warn_over_limit(pool: &Path, volume: &str) -> Result<()> {
    let o: VolumeOptionsInfo = call(
        pool,
        Request::VolumeGet {
            name: volume.to_string(),
        },
    )?;
    let Some(limit) = o
        .options
        .iter()
        .find(|x| x.key == "snap-max-hard-limit")
        .and_then(|x| x.value.parse::<usize>().ok())
    else {
        return Ok(());
    };
    let snaps: Vec<tandem::snapshot::SnapshotInfo> = call(
        pool,
        Request::SnapshotList {
            volume: Some(volume.to_string()),
            group: None,
        },
    )?;
    if snaps.len() > limit {
        eprintln!(
            "warning: volume '{}' has {} snapshots, more than its hard limit {limit}: new snapshots of it are refused until {} are deleted (tandem snapshot delete NAME)",
            esc(volume),
            snaps.len(),
            snaps.len() - limit + 1
        );
    }
    Ok(())
}

/// `tandem df`: a table of the volumes (the one `-H`, `-p`, `-o` apply to), then for
/// people the snapshots' exclusive bytes and the pool's figures.
pub(super) fn df(pool: &Path, as_json: bool, flags: &ListFlags) -> Result<()> {
    let d: DfInfo = call(pool, Request::Df)?;
    if as_json {
        return emit(&df_doc(&d));
    }
    let mut t = Table::new("df", DF_COLS);
    for (n, l, p, sp) in &d.volumes {
        t.row(vec![
            Cell::Text(esc(n)),
            Cell::Bytes(*l),
            Cell::Bytes(*p),
            Cell::Bytes(sp.unique),
            Cell::Bytes(sp.shared),
            Cell::Bytes(sp.origin),
        ]);
    }
    t.print(flags)?;
    // The snapshots and the pool's figures are for people; scripts read `snapshot list -o
    // name,exclusive` and `status --json`.
    if flags.scripted || !flags.columns.is_empty() {
        return Ok(());
    }
    if !d.snapshots.is_empty() {
        let mut t = Table::new("df", DF_SNAPSHOT_COLS);
        for (n, h) in &d.snapshots {
            t.row(vec![Cell::Text(esc(n)), Cell::Bytes(*h)]);
        }
        t.print(flags)?;
    }
    outln!(
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

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_are_read_with_binary_suffixes() {
        for (text, bytes) in [
            ("65536", 65536),
            ("64K", 65536),
            ("64KiB", 65536),
            ("64kb", 65536),
            ("1M", 1 << 20),
            ("1.5M", 3 << 19),
            ("4 KiB", 4096),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        assert!(parse_size("64Q").is_err());
        assert!(parse_size("0.3K").is_err());
        assert!(parse_size("K").is_err());
    }
}
