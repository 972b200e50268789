//! Control-API handlers for groups and snapshots: each calls the engine or the snapshot
//! coordinator and returns its typed error; snapshot views (activate, deactivate) and the
//! snapshot settings are decided here. Each create, delete, restore and clone that succeeds
//! is logged at info with its figures, and a create's pause and round trip go to the
//! metrics.

use crate::control::{Activated, GroupInfo, Reply, Request, SnapConfig};
use crate::options::OptionScope;
use crate::snapshot::{self, DeleteWhich};

use super::{Daemon, ServiceError};

pub(super) const SNAP_KEYS: &[&str] = &[
    "snap-max-hard-limit",
    "snap-max-soft-limit",
    "auto-delete",
    "activate-on-create",
    "barrier-timeout",
];

impl Daemon {
    /// Mounts every member of a snapshot read-only: at `<pool>/run/snaps/<snapshot>/<volume>`,
    /// or `<mountpoint>/<volume>`. All or nothing.
    fn activate(
        &self,
        name: &str,
        mountpoint: Option<std::path::PathBuf>,
        options: &[String],
    ) -> Result<Vec<crate::control::MountInfo>, ServiceError> {
        let rec = self.engine.snapshot(name)?;
        if !self.mounts.snapshot_mounts_of(name).is_empty() {
            return Err(ServiceError::Activated(name.into()));
        }
        let base = mountpoint.unwrap_or_else(|| self.pool.join("run/snaps").join(name));
        let mut done = Vec::new();
        for m in &rec.members {
            let dir = base.join(&m.name);
            let res = std::fs::create_dir_all(&dir)
                .map_err(|source| ServiceError::CreateMountpoint {
                    path: dir.clone(),
                    source,
                })
                .and_then(|()| {
                    self.mounts
                        .mount_snapshot(name, &m.name, m.vol, m.generation, &dir, options)
                });
            match res {
                Ok(info) => done.push(info),
                Err(err) => {
                    let _ = self.mounts.unmount_snapshot(name);
                    return Err(err);
                }
            }
        }
        Ok(done)
    }

    /// The daemon's one snapshot-create path (a manual create and a schedule's run): hooks,
    /// limits and the freeze, then activate-on-create.
    pub(super) fn create_snapshot(
        &self,
        req: &snapshot::CreateRequest,
    ) -> Result<snapshot::CreateOutcome, ServiceError> {
        let e = &self.engine;
        let started = std::time::Instant::now();
        let mut out = snapshot::create(e, &self.pool, &self.mounts, req)?;
        let round_trip = started.elapsed();
        let pause = std::time::Duration::from_micros(out.steps.pause_us);
        crate::metrics::global().snapshot_created(pause, round_trip);
        let members: Vec<&str> = out
            .snapshot
            .members
            .iter()
            .map(|(v, _)| v.as_str())
            .collect();
        tracing::info!(
            "snapshot '{}' created of {} ({}): pause {:.3} ms, round trip {:.3} ms (pre-flush {:.3} ms, drain {:.3} ms, sync {:.3} ms){}",
            out.snapshot.name,
            members.join(", "),
            out.snapshot
                .group
                .as_deref()
                .map_or("no group".to_string(), |g| format!("group '{g}'")),
            pause.as_secs_f64() * 1e3,
            round_trip.as_secs_f64() * 1e3,
            out.steps.pre_flush_us as f64 / 1e3,
            out.steps.drain_us as f64 / 1e3,
            out.steps.sync_us as f64 / 1e3,
            if out.auto_deleted.is_empty() {
                String::new()
            } else {
                format!("; auto-deleted {}", out.auto_deleted.join(", "))
            }
        );
        let first = e.snapshot(&out.snapshot.name)?.members[0].vol;
        if snapshot::limits(e, first)?.activate_on_create {
            match self.activate(&out.snapshot.name, None, &[]) {
                Ok(_) => {
                    let rec = e.snapshot(&out.snapshot.name)?;
                    out.snapshot = snapshot::info(e, &self.mounts, &rec)?;
                }
                Err(err) => out.warnings.push(format!("activate-on-create: {err}")),
            }
        }
        // Its root is recorded by the worker, after this answer (see `roots`).
        let _ = self.roots.try_send(());
        Ok(out)
    }

    fn group_info(&self, name: &str) -> Result<GroupInfo, ServiceError> {
        let e = &self.engine;
        let g = e.group(name)?;
        let volumes = g
            .members
            .iter()
            .map(|v| e.record(*v).map(|r| r.name))
            .collect::<Result<Vec<_>, _>>()?;
        let snapshots = e
            .snapshots()?
            .into_iter()
            .filter(|s| s.group.as_deref() == Some(name))
            .map(|s| s.name)
            .collect();
        Ok(GroupInfo {
            name: g.name,
            volumes,
            snapshots,
            created: g.created,
        })
    }

    pub(super) fn handle_snapshots(&self, req: Request) -> Result<Reply, ServiceError> {
        let e = &self.engine;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        match req {
            Request::GroupCreate { name, volumes } => {
                e.group_create(&name, &volumes, now)?;
                self.group_info(&name).map(Reply::Group)
            }
            Request::GroupAdd { name, volumes } => {
                e.group_add(&name, &volumes)?;
                self.group_info(&name).map(Reply::Group)
            }
            Request::GroupRemove { name, volumes } => {
                e.group_remove(&name, &volumes)?;
                self.group_info(&name).map(Reply::Group)
            }
            Request::GroupDelete {
                name,
                delete_snapshots,
            } => {
                let names = e.group_delete(&name, delete_snapshots)?;
                if !names.is_empty() {
                    tracing::info!(
                        "group '{name}' deleted with {} snapshot(s): {}",
                        names.len(),
                        names.join(", ")
                    );
                }
                Ok(Reply::Deleted { names })
            }
            Request::GroupList => {
                let groups = e.groups()?;
                let groups = groups
                    .iter()
                    .map(|g| self.group_info(&g.name))
                    .collect::<Result<_, _>>()?;
                Ok(Reply::Groups { groups })
            }
            Request::GroupInfo { name } => self.group_info(&name).map(Reply::Group),
            Request::GroupRename { old, new } => {
                e.rename_group(&old, &new)?;
                Ok(Reply::Done)
            }
            Request::SnapshotRename { old, new } => {
                e.rename_snapshot(&old, &new)?;
                self.mounts.renamed_snapshot(&old, &new);
                Ok(Reply::Done)
            }
            Request::SnapshotCreate(req) => Ok(Reply::SnapshotCreated(Box::new(
                self.create_snapshot(&req)?,
            ))),
            Request::SnapshotRestore {
                name,
                no_undo,
                online,
            } => {
                let started = std::time::Instant::now();
                let out = snapshot::restore(e, &self.pool, &self.mounts, &name, no_undo, online)?;
                tracing::info!(
                    "snapshot '{}' restored onto {}{}: {} rows changed, pause {:.3} ms, {:.3} ms in all; undo snapshot: {}",
                    out.snapshot,
                    out.volumes.join(", "),
                    if online { " (online)" } else { "" },
                    out.rows_changed,
                    out.pause_us as f64 / 1e3,
                    started.elapsed().as_secs_f64() * 1e3,
                    out.undo.as_deref().unwrap_or("none")
                );
                Ok(Reply::Restored(out))
            }
            Request::Df => {
                let mut volumes = Vec::new();
                for v in e.list_volumes()? {
                    let space = e.volume_space(v.id)?;
                    volumes.push((v.name, v.logical_bytes, v.physical_bytes, space));
                }
                let mut snapshots = Vec::new();
                for rec in e.snapshots()? {
                    snapshots.push((rec.name.clone(), e.snapshot_exclusive_bytes(&rec)?));
                }
                let pool = e.pool_stats()?;
                Ok(Reply::Df(crate::control::DfInfo {
                    volumes,
                    snapshots,
                    dedup_ratio: pool.dedup_ratio(),
                    pool,
                }))
            }
            Request::SnapshotClone {
                new,
                snapshot: snap,
            } => {
                let started = std::time::Instant::now();
                let out = snapshot::clone(e, &new, &snap)?;
                tracing::info!(
                    "snapshot '{snap}' cloned to {}{} in {:.3} ms",
                    out.volumes.join(", "),
                    out.group
                        .as_deref()
                        .map_or(String::new(), |g| format!(" (group '{g}')")),
                    started.elapsed().as_secs_f64() * 1e3
                );
                Ok(Reply::Cloned(out))
            }
            Request::SnapshotDiff {
                snapshot: snap,
                other,
                volume,
            } => {
                let volumes = snapshot::diff(e, &snap, other.as_deref(), volume.as_deref())?;
                Ok(Reply::Diff { volumes })
            }
            Request::SnapshotActivate {
                name,
                mountpoint,
                options,
            } => {
                let mounts = self.activate(&name, mountpoint, &options)?;
                Ok(Reply::Activated(Activated { name, mounts }))
            }
            Request::SnapshotDeactivate { name } => {
                e.snapshot(&name)?;
                let mounts = self.mounts.unmount_snapshot(&name)?;
                if mounts.is_empty() {
                    return Err(ServiceError::NotActivated(name));
                }
                Ok(Reply::Activated(Activated { name, mounts }))
            }
            Request::SnapshotList { volume, group } => {
                let vol = volume.as_deref().map(|v| e.volume_id(v)).transpose()?;
                if let Some(g) = &group {
                    e.group(g)?;
                }
                let mut out = Vec::new();
                for rec in e.snapshots()? {
                    if vol.is_some_and(|v| !rec.members.iter().any(|m| m.vol == v)) {
                        continue;
                    }
                    if group
                        .as_ref()
                        .is_some_and(|g| rec.group.as_ref() != Some(g))
                    {
                        continue;
                    }
                    out.push(snapshot::info(e, &self.mounts, &rec)?);
                }
                Ok(Reply::Snapshots { snapshots: out })
            }
            Request::SnapshotInfo { name } => {
                let rec = e.snapshot(&name)?;
                // Recorded now if the worker has not got to it yet.
                snapshot::verify::root(e, &rec)?;
                Ok(Reply::Snapshot(snapshot::info(e, &self.mounts, &rec)?))
            }
            Request::SnapshotStatus { name } => {
                let recs = match name {
                    Some(n) => vec![e.snapshot(&n)?],
                    None => e.snapshots()?,
                };
                let snapshots = recs
                    .iter()
                    .map(|r| snapshot::info(e, &self.mounts, r))
                    .collect::<Result<_, _>>()?;
                Ok(Reply::Snapshots { snapshots })
            }
            Request::SnapshotDelete(which) => {
                // A held one stops the whole delete before anything is deactivated; an
                // activated snapshot is deactivated first (a busy one stops the delete).
                snapshot::refuse_held(e, &snapshot::delete_list(e, &which)?)?;
                for n in snapshot::delete_list(e, &which)? {
                    if !self.mounts.snapshot_mounts_of(&n).is_empty() {
                        self.mounts.unmount_snapshot(&n)?;
                    }
                }
                let started = std::time::Instant::now();
                let names = snapshot::delete(e, &which)?;
                if names.is_empty() && !matches!(which, DeleteWhich::All) {
                    return Err(ServiceError::NoSnapshotMatched);
                }
                if !names.is_empty() {
                    tracing::info!(
                        "deleted {} snapshot(s) in {:.3} ms: {}",
                        names.len(),
                        started.elapsed().as_secs_f64() * 1e3,
                        names.join(", ")
                    );
                }
                Ok(Reply::Deleted { names })
            }
            Request::SnapshotConfig { volume, set } => {
                let target = match &volume {
                    Some(v) => OptionScope::Volume(e.volume_id(v)?),
                    None => OptionScope::System,
                };
                if let Some((k, _)) = set.iter().find(|(k, _)| !SNAP_KEYS.contains(&k.as_str())) {
                    return Err(ServiceError::NotASnapSetting {
                        key: k.clone(),
                        known: SNAP_KEYS.join(", "),
                    });
                }
                // All or nothing: every value is validated before any is written.
                e.set_options(target, &set)?;
                let system = e
                    .options(OptionScope::System)?
                    .listing()
                    .into_iter()
                    .filter(|(k, _, _)| SNAP_KEYS.contains(&k.as_str()))
                    .map(|(k, v, _)| (k, v))
                    .collect();
                let vols = match &volume {
                    Some(v) => vec![v.clone()],
                    None => e.list_volumes()?.into_iter().map(|v| v.name).collect(),
                };
                let mut volumes = Vec::new();
                for v in vols {
                    let id = e.volume_id(&v)?;
                    let lim = snapshot::limits(e, id)?;
                    let own = e.options(OptionScope::Volume(id))?;
                    let eff = vec![
                        (
                            "snap-max-hard-limit".to_string(),
                            lim.hard.to_string(),
                            own.is_set("snap-max-hard-limit"),
                        ),
                        (
                            "snap-max-soft-limit".to_string(),
                            format!("{}", lim.soft_percent),
                            own.is_set("snap-max-soft-limit"),
                        ),
                        (
                            "auto-delete".to_string(),
                            if lim.auto_delete { "on" } else { "off" }.to_string(),
                            own.is_set("auto-delete"),
                        ),
                        (
                            "activate-on-create".to_string(),
                            if lim.activate_on_create { "on" } else { "off" }.to_string(),
                            own.is_set("activate-on-create"),
                        ),
                        (
                            "barrier-timeout".to_string(),
                            humantime::format_duration(lim.barrier_timeout).to_string(),
                            own.is_set("barrier-timeout"),
                        ),
                    ];
                    volumes.push((v, eff));
                }
                Ok(Reply::SnapConfig(SnapConfig { system, volumes }))
            }
            other => self.handle_options(other),
        }
    }
}
