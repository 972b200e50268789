//! `tandem snapshot ...`.

use super::progress::Progress;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Subcommand;

use super::escape::esc_bytes;
use super::json::{self, emit};
use super::snapshow::{emit_activated, emit_snapshots, print_list, print_snapshot};
use super::table::ListFlags;
use super::{call, esc};
use tandem::control::{Activated, Request, SnapConfig, VolumeDiff};
use tandem::snapshot::{
    CloneOutcome, CreateOutcome, CreateRequest, DeleteWhich, RestoreOutcome, SnapshotInfo, Target,
};

#[derive(Subcommand, Debug)]
pub enum SnapCmd {
    /// Snapshot a group (all members at one instant) or one ungrouped volume.
    Create {
        name: String,
        /// The volume to snapshot (not with --group).
        #[arg(required_unless_present = "group", conflicts_with = "group")]
        volume: Option<String>,
        #[arg(long)]
        group: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
        /// Append a UTC time to the name.
        #[arg(long)]
        timestamp: bool,
        /// Do not run the pre/post-snapshot hooks.
        #[arg(long)]
        skip_hooks: bool,
        /// Take the snapshot even if a pre-snapshot hook fails.
        #[arg(long)]
        ignore_hook_errors: bool,
    },
    /// List snapshots (-H, -p, -o as `zfs list`).
    List {
        #[arg(long, conflicts_with = "group")]
        volume: Option<String>,
        #[arg(long)]
        group: Option<String>,
        #[command(flatten)]
        flags: ListFlags,
    },
    /// Show a snapshot: members and generations, creation time, pause, its exclusive bytes.
    Info { name: String },
    /// State of one or all snapshots.
    Status { name: Option<String> },
    /// Delete a snapshot, all, or those of a volume or group.
    Delete {
        #[arg(required_unless_present_any = ["all", "volume", "group"])]
        name: Option<String>,
        #[arg(long, conflicts_with_all = ["name", "volume", "group"])]
        all: bool,
        #[arg(long, conflicts_with_all = ["name", "group"])]
        volume: Option<String>,
        #[arg(long, conflicts_with = "name")]
        group: Option<String>,
        /// Do not ask before deleting several (asked only on a terminal).
        #[arg(short = 'y', long)]
        yes: bool,
    },
    /// Mount every member of a snapshot read-only (one directory per member volume).
    Activate {
        name: String,
        /// Directory under which each member is mounted as DIR/VOLUME (default: under the pool's run directory).
        #[arg(long)]
        mountpoint: Option<PathBuf>,
        /// Comma-separated mount options: allow_other (default: as the live volume's mount), suid, dev, noexec.
        #[arg(short = 'o', value_name = "OPTIONS")]
        options: Vec<String>,
    },
    /// Unmount a snapshot's read-only mounts.
    Deactivate { name: String },
    /// Rename a snapshot (activated or not: its views keep serving, its root stays).
    Rename { old: String, new: String },
    /// Make the live volumes (every member) equal to the snapshot; keeps it and later ones.
    Restore {
        name: String,
        /// Do not take the automatic undo snapshot first.
        #[arg(long)]
        no_undo: bool,
        /// Restore under running mounts (freeze, switch, drop the kernel's caches).
        #[arg(long)]
        online: bool,
    },
    /// Writable volumes from a snapshot, sharing its data (a group NEW with volumes NEW-MEMBER
    /// for a group snapshot).
    Clone { new: String, snapshot: String },
    /// What changed since a snapshot: against a later snapshot, or the live volumes.
    Diff {
        snapshot: String,
        /// The snapshot to compare with (default: the live volumes).
        other: Option<String>,
        /// Compare with the live volumes (the default).
        #[arg(long, conflicts_with = "other")]
        live: bool,
        #[arg(long)]
        volume: Option<String>,
    },
    /// Re-read and re-hash every chunk the snapshot references and recompute its Merkle
    /// root: exit 0 when it matches, 1 with the damaged files per member. Progress on
    /// stderr; Ctrl-C stops it (exit 130).
    Verify { name: String },
    /// Restore test: clone the snapshot into temporary volumes, mount them (allow_other),
    /// run CMD with `sh -c` and the hook environment (TANDEM_VOLUME_<i> = member names,
    /// TANDEM_MOUNT_<i> = the clone's mountpoints), report pass/fail, its time and output,
    /// remove the clone. Exit 1 when the command fails.
    Test {
        name: String,
        /// The check to run (e.g. hooks/pg-check, hooks/sqlite-check).
        #[arg(long, value_name = "CMD")]
        run: String,
        /// Leave the clone mounted (its volumes and mountpoints are printed).
        #[arg(long)]
        keep_clone: bool,
        /// Longest the command may run (default 10m).
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
    },
    /// Hold a snapshot: nothing deletes it (by hand, auto-delete, pruning) until released.
    Hold { name: String, tag: String },
    /// Release a hold of a snapshot.
    Release { name: String, tag: String },
    /// List the holds of one snapshot, or of all (-H, -p, -o as `zfs list`).
    Holds {
        name: Option<String>,
        #[command(flatten)]
        flags: ListFlags,
    },
    /// Show or set snapshot limits, system-wide or for one volume.
    Config {
        volume: Option<String>,
        #[arg(long)]
        snap_max_hard_limit: Option<String>,
        #[arg(long)]
        snap_max_soft_limit: Option<String>,
        #[arg(long)]
        auto_delete: Option<String>,
        #[arg(long)]
        activate_on_create: Option<String>,
        #[arg(long)]
        barrier_timeout: Option<String>,
    },
}

pub(super) fn run_snapshot(pool: &Path, cmd: SnapCmd, as_json: bool) -> Result<()> {
    match cmd {
        SnapCmd::Create {
            name,
            volume,
            group,
            description,
            timestamp,
            skip_hooks,
            ignore_hook_errors,
        } => {
            let target = match (group, volume) {
                (Some(g), _) => Target::Group(g),
                (None, Some(v)) => Target::Volume(v),
                (None, None) => bail!("name a volume or --group GROUP"),
            };
            let req = CreateRequest {
                name,
                target,
                description,
                timestamp,
                skip_hooks,
                ignore_hook_errors,
            };
            let started = Instant::now();
            let o: CreateOutcome = call(pool, Request::SnapshotCreate(req))?;
            if as_json {
                emit(&serde_json::json!({
                    "snapshot": json::Snapshot::from(&o.snapshot),
                    "warnings": o.warnings,
                    "auto_deleted": o.auto_deleted,
                    "steps": o.steps,
                }))?
            } else {
                for w in &o.warnings {
                    eprintln!("warning: {w}");
                }
                for d in &o.auto_deleted {
                    outln!("auto-deleted snapshot '{}'", esc(d));
                }
                outln!(
                    "created snapshot '{}' of {} ({} volume(s)); writes paused {:.3} ms; command took {:.1} ms",
                    esc(&o.snapshot.name),
                    o.snapshot
                        .group
                        .as_ref()
                        .map(|g| format!("group {}", esc(g)))
                        .unwrap_or_else(|| format!("volume {}", esc(&o.snapshot.members[0].0))),
                    o.snapshot.members.len(),
                    o.snapshot.pause_us as f64 / 1000.0,
                    started.elapsed().as_secs_f64() * 1000.0
                );
            }
        }
        SnapCmd::List {
            volume,
            group,
            flags,
        } => {
            let snapshots: Vec<SnapshotInfo> = call(pool, Request::SnapshotList { volume, group })?;
            if as_json {
                emit_snapshots(&snapshots)?
            } else {
                print_list(&snapshots, &flags)?
            }
        }
        SnapCmd::Info { name } => {
            let s: SnapshotInfo = call(pool, Request::SnapshotInfo { name })?;
            if as_json {
                emit(&json::Snapshot::from(&s))?
            } else {
                print_snapshot(&s)
            }
        }
        SnapCmd::Status { name } => {
            let snapshots: Vec<SnapshotInfo> = call(pool, Request::SnapshotStatus { name })?;
            if as_json {
                emit_snapshots(&snapshots)?
            } else {
                for s in snapshots {
                    outln!(
                        "{}: {} ({} member(s))",
                        esc(&s.name),
                        s.state,
                        s.members.len()
                    );
                    for (v, m) in &s.mountpoints {
                        outln!("  {} at {}", esc(v), m.display());
                    }
                }
            }
        }
        SnapCmd::Delete {
            name,
            all,
            volume,
            group,
            yes,
        } => {
            let which = match (name, all, volume, group) {
                (Some(n), ..) => DeleteWhich::Name(n),
                (None, true, ..) => DeleteWhich::All,
                (None, false, Some(v), _) => DeleteWhich::Volume(v),
                (None, false, None, Some(g)) => DeleteWhich::Group(g),
                _ => bail!("name a snapshot, or --all, --volume V or --group G"),
            };
            // Several snapshots are deleted one by one, each in its own transaction, with
            // progress: interrupting between two leaves every snapshot whole or gone.
            let names = match &which {
                DeleteWhich::Name(n) => vec![n.clone()],
                other => {
                    let (volume, group) = match other {
                        DeleteWhich::Volume(v) => (Some(v.clone()), None),
                        DeleteWhich::Group(g) => (None, Some(g.clone())),
                        _ => (None, None),
                    };
                    let snapshots: Vec<SnapshotInfo> =
                        call(pool, Request::SnapshotList { volume, group })?;
                    snapshots.into_iter().map(|s| s.name).collect()
                }
            };
            if names.is_empty() && !as_json {
                outln!("no snapshots to delete");
            }
            // A held one stops the delete before any is deleted.
            super::life::refuse_held(pool, &names)?;
            if !matches!(which, DeleteWhich::Name(_)) {
                super::confirm::confirm("delete", "snapshot(s)", &names, yes)?;
            }
            let total = names.len();
            let mut deleted = Vec::new();
            let bar = if total > 1 {
                Progress::steps(as_json, total as u64, "snapshots deleted")
            } else {
                Progress::none()
            };
            for (k, n) in names.into_iter().enumerate() {
                let started = Instant::now();
                let names: Vec<String> = call(pool, Request::SnapshotDelete(DeleteWhich::Name(n)))?;
                bar.inc();
                for d in names {
                    if as_json {
                        deleted.push(d);
                    } else if total > 1 {
                        bar.above(|| {
                            outln!(
                                "[{}/{total}] deleted snapshot '{}' ({:.0} ms)",
                                k + 1,
                                esc(&d),
                                started.elapsed().as_secs_f64() * 1000.0
                            )
                        });
                    } else {
                        outln!("deleted snapshot '{}'", esc(&d));
                    }
                }
            }
            if as_json {
                emit(&serde_json::json!({ "deleted": { "snapshots": deleted } }))?;
            }
        }
        SnapCmd::Activate {
            name,
            mountpoint,
            options,
        } => {
            let mountpoint = mountpoint.map(|m| {
                if m.is_absolute() {
                    m
                } else {
                    std::env::current_dir().unwrap_or_default().join(m)
                }
            });
            let req = Request::SnapshotActivate {
                name,
                mountpoint,
                options,
            };
            let a: Activated = call(pool, req)?;
            if as_json {
                return emit_activated(&a);
            }
            let Activated { name, mounts } = a;
            outln!("activated snapshot '{}' (read-only):", esc(&name));
            for m in mounts {
                outln!("  {} at {}", esc(&m.volume), m.mountpoint.display());
            }
        }
        SnapCmd::Restore {
            name,
            no_undo,
            online,
        } => {
            let o: RestoreOutcome = {
                let _shown =
                    Progress::spinner(as_json, format!("restoring snapshot '{}'", esc(&name)));
                call(
                    pool,
                    Request::SnapshotRestore {
                        name,
                        no_undo,
                        online,
                    },
                )?
            };
            if as_json {
                emit(&o)?
            } else {
                for n in &o.notes {
                    eprintln!("note: {n}");
                }
                if let Some(u) = &o.undo {
                    outln!("undo snapshot: '{}' (restore it to go back)", esc(u));
                }
                outln!(
                    "restored {} from snapshot '{}' ({} rows changed, writes paused {:.3} ms)",
                    o.volumes
                        .iter()
                        .map(|v| esc(v))
                        .collect::<Vec<_>>()
                        .join(" "),
                    esc(&o.snapshot),
                    o.rows_changed,
                    o.pause_us as f64 / 1000.0
                );
            }
        }
        SnapCmd::Clone { new, snapshot } => {
            let o: CloneOutcome = {
                let _shown =
                    Progress::spinner(as_json, format!("cloning snapshot '{}'", esc(&snapshot)));
                call(
                    pool,
                    Request::SnapshotClone {
                        new,
                        snapshot: snapshot.clone(),
                    },
                )?
            };
            if as_json {
                return emit(&serde_json::json!({
                    "snapshot": snapshot,
                    "group": o.group,
                    "volumes": o.volumes,
                }));
            }
            let volumes: Vec<String> = o.volumes.iter().map(|v| esc(v)).collect();
            match o.group {
                Some(g) => outln!(
                    "cloned '{}' into group '{}' with volumes {}",
                    esc(&snapshot),
                    esc(&g),
                    volumes.join(" ")
                ),
                None => outln!(
                    "cloned '{}' into volume '{}'",
                    esc(&snapshot),
                    volumes.join(" ")
                ),
            }
        }
        SnapCmd::Diff {
            snapshot,
            other,
            live: _,
            volume,
        } => {
            let volumes: Vec<VolumeDiff> = call(
                pool,
                Request::SnapshotDiff {
                    snapshot,
                    other,
                    volume,
                },
            )?;
            if as_json {
                emit(&json::diff_doc(&volumes))?
            } else {
                use tandem::fs::diff::DiffEntry;
                for (v, entries) in volumes {
                    let v = esc(&v);
                    for e in entries {
                        match e {
                            DiffEntry::Added(p) => outln!("+\t{v}:{}", esc_bytes(&p.0)),
                            DiffEntry::Removed(p) => outln!("-\t{v}:{}", esc_bytes(&p.0)),
                            DiffEntry::Modified(p) => outln!("M\t{v}:{}", esc_bytes(&p.0)),
                            DiffEntry::Renamed { from, to } => {
                                outln!("R\t{v}:{} -> {v}:{}", esc_bytes(&from.0), esc_bytes(&to.0))
                            }
                        }
                    }
                }
            }
        }
        SnapCmd::Verify { name } => super::integrity::verify(pool, name, as_json)?,
        SnapCmd::Test {
            name,
            run,
            keep_clone,
            timeout,
        } => super::integrity::test(pool, name, run, keep_clone, timeout, as_json)?,
        SnapCmd::Rename { old, new } => {
            call::<()>(
                pool,
                Request::SnapshotRename {
                    old: old.clone(),
                    new: new.clone(),
                },
            )?;
            if as_json {
                return emit(&serde_json::json!({ "renamed": { "snapshot": old, "to": new } }));
            }
            outln!("renamed snapshot '{}' to '{}'", esc(&old), esc(&new));
        }
        SnapCmd::Hold { name, tag } => super::life::hold(pool, name, tag, as_json)?,
        SnapCmd::Release { name, tag } => super::life::release(pool, name, tag, as_json)?,
        SnapCmd::Holds { name, flags } => super::life::list(pool, name, as_json, &flags)?,
        SnapCmd::Deactivate { name } => {
            let a: Activated = call(pool, Request::SnapshotDeactivate { name })?;
            if as_json {
                return emit_activated(&a);
            }
            outln!(
                "deactivated snapshot '{}' ({} mount(s))",
                esc(&a.name),
                a.mounts.len()
            );
        }
        SnapCmd::Config {
            volume,
            snap_max_hard_limit,
            snap_max_soft_limit,
            auto_delete,
            activate_on_create,
            barrier_timeout,
        } => {
            let hard_set = snap_max_hard_limit.is_some();
            let set: Vec<(String, String)> = [
                ("snap-max-hard-limit", snap_max_hard_limit),
                ("snap-max-soft-limit", snap_max_soft_limit),
                ("auto-delete", auto_delete),
                ("activate-on-create", activate_on_create),
                ("barrier-timeout", barrier_timeout),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
            .collect();
            let c: SnapConfig = call(pool, Request::SnapshotConfig { volume, set })?;
            if hard_set {
                for (v, _) in &c.volumes {
                    super::volume::warn_over_limit(pool, v)?;
                }
            }
            if as_json {
                let mut in_force = Vec::new();
                for (v, _) in &c.volumes {
                    in_force.push(call(pool, Request::VolumeGet { name: v.clone() })?);
                }
                emit(&json::config_doc(&c, &in_force))?
            } else {
                outln!("system-wide:");
                for (k, v) in &c.system {
                    outln!("  {k:<22} {v}");
                }
                for (vol, opts) in &c.volumes {
                    outln!("volume {} (effective):", esc(vol));
                    for (k, v, set) in opts {
                        outln!(
                            "  {k:<22} {v}{}",
                            if *set { " (set on the volume)" } else { "" }
                        );
                    }
                }
            }
        }
    }
    Ok(())
}
