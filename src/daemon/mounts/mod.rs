//! The daemon's table of mounts: mounting and unmounting volumes and snapshot views, what
//! each mount is shown as, and what the snapshot code asks of the mounts (`MountView`).
//! Mount options are parsed in `options`; the memory of the mounts across restarts
//! (`mounts.json`, and the dead mounts a killed daemon left) is `remember`.
//!
//! Invariants: a mount gets exactly the kernel flags its options say (`nosuid`, `nodev`,
//! `noexec`, `ro`), and a snapshot view is `nosuid,nodev` unless told otherwise; a snapshot
//! view lets other users in only when the live volume's mount does or when asked to; a
//! restart detaches only its own dead mounts (see [`super::mountinfo`]); a mount inside
//! another tandem mount is unmounted before its parent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod options;
mod remember;

use super::ServiceError;
use crate::control::MountInfo;
use crate::fs::Engine;
use crate::fuse::{Mount, MountFlags, MountSpec};
use crate::store::rows::View;
use options::option_list;
pub use options::parse_mount_options;

/// Makes `path` absolute and canonical without touching a dead mount at its end
/// (canonicalizing a dead FUSE mountpoint fails with ENOTCONN).
pub fn canonical(path: &Path) -> PathBuf {
    if let Ok(c) = path.canonicalize() {
        return c;
    }
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => parent
            .canonicalize()
            .map(|p| p.join(name))
            .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

struct Entry {
    info: MountInfo,
    mount: Mount,
}

pub struct MountTable {
    state_file: PathBuf,
    engine: Arc<Engine>,
    mounts: Mutex<BTreeMap<PathBuf, Entry>>,
}

impl MountTable {
    pub fn new(pool: &Path, engine: Arc<Engine>) -> MountTable {
        MountTable {
            state_file: pool.join("mounts.json"),
            engine,
            mounts: Mutex::new(BTreeMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PathBuf, Entry>> {
        self.mounts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After `volume rename`: the mounts of volume `old` (live, and its members' snapshot
    /// views, whose records now name it `new`) carry the new name, in mounts.json too.
    pub fn renamed_volume(&self, old: &str, new: &str) {
        let mut mounts = self.lock();
        for e in mounts.values_mut().filter(|e| e.info.volume == old) {
            e.info.volume = new.to_string();
        }
        self.persist(&mounts);
    }

    /// After `snapshot rename`: the views of snapshot `old` carry the new name (their
    /// mountpoints stay where they are), in mounts.json too.
    pub fn renamed_snapshot(&self, old: &str, new: &str) {
        let mut mounts = self.lock();
        for e in mounts
            .values_mut()
            .filter(|e| e.info.snapshot.as_deref() == Some(old))
        {
            e.info.snapshot = Some(new.to_string());
        }
        self.persist(&mounts);
    }

    pub fn list(&self) -> Vec<MountInfo> {
        self.lock().values().map(|e| e.info.clone()).collect()
    }

    /// The mount holding the absolute, canonical `path` (the innermost, when mounts nest):
    /// its volume's name, id and view, and the path below the mountpoint.
    pub fn locate(&self, path: &Path) -> Option<(String, crate::types::VolumeId, View, PathBuf)> {
        let mounts = self.lock();
        let e = mounts
            .values()
            .filter(|e| path.starts_with(&e.info.mountpoint))
            .max_by_key(|e| e.info.mountpoint.components().count())?;
        let rel = path.strip_prefix(&e.info.mountpoint).ok()?.to_path_buf();
        Some((
            e.info.volume.clone(),
            e.mount.spec.vol,
            e.mount.spec.view,
            rel,
        ))
    }

    pub fn mountpoints_of(&self, volume: &str) -> Vec<PathBuf> {
        self.lock()
            .values()
            .filter(|e| e.info.volume == volume && e.info.snapshot.is_none())
            .map(|e| e.info.mountpoint.clone())
            .collect()
    }

    /// Mounts of a snapshot's members: (volume, mountpoint).
    pub fn snapshot_mounts_of(&self, snapshot: &str) -> Vec<(String, PathBuf)> {
        self.lock()
            .values()
            .filter(|e| e.info.snapshot.as_deref() == Some(snapshot))
            .map(|e| (e.info.volume.clone(), e.info.mountpoint.clone()))
            .collect()
    }

    /// Mounts one member of a snapshot read-only at its recorded generation: `nosuid,nodev`,
    /// open to other users only if the live volume's mount is, and `options` (`-o` of
    /// `snapshot activate`, e.g. `allow_other`, `noexec`) on top.
    pub fn mount_snapshot(
        &self,
        snapshot: &str,
        volume: &str,
        vol: crate::types::VolumeId,
        generation: crate::types::Generation,
        mountpoint: &Path,
        options: &[String],
    ) -> Result<MountInfo, ServiceError> {
        self.snapshot_mount(
            (snapshot, volume),
            vol,
            generation,
            mountpoint,
            options,
            true,
        )
    }

    /// `inherit`: take the live volume's access rules (a new activation); a restart mounts
    /// with exactly the recorded options.
    fn snapshot_mount(
        &self,
        (snapshot, volume): (&str, &str),
        vol: crate::types::VolumeId,
        generation: crate::types::Generation,
        mountpoint: &Path,
        options: &[String],
        inherit: bool,
    ) -> Result<MountInfo, ServiceError> {
        let opts = parse_mount_options(options)?;
        let mut mounts = self.lock();
        self.forget_unmounted(&mut mounts);
        let live_is_open = mounts.values().any(|e| {
            e.info.volume == volume
                && e.info.snapshot.is_none()
                && e.info.options.iter().any(|o| o == "allow_other")
        });
        let allow_other = opts.allow_other || (inherit && live_is_open);
        let flags = opts.flags(MountFlags::SNAPSHOT);
        let spec = MountSpec {
            vol,
            name: format!("{volume}@{snapshot}"),
            view: View::At(generation),
            mountpoint: mountpoint.to_path_buf(),
            read_only: true,
            allow_other,
        };
        self.start(&mut mounts, volume, Some(snapshot), spec, flags)
    }

    /// Mounts `spec` and records it in `mounts` (persisted) with the options it is shown and
    /// remembered with.
    fn start(
        &self,
        mounts: &mut BTreeMap<PathBuf, Entry>,
        volume: &str,
        snapshot: Option<&str>,
        spec: MountSpec,
        flags: MountFlags,
    ) -> Result<MountInfo, ServiceError> {
        // A path keeps the mount it has until that mount goes (after a rename, the view of a
        // renamed snapshot stays at the path its old name gave it): never mount over it.
        if let Some(e) = mounts
            .get(&spec.mountpoint)
            .or_else(|| mounts.get(&canonical(&spec.mountpoint)))
        {
            return Err(ServiceError::MountpointTaken {
                path: e.info.mountpoint.clone(),
                by: match &e.info.snapshot {
                    Some(s) => format!("member '{}' of snapshot '{s}'", e.info.volume),
                    None => format!("volume '{}'", e.info.volume),
                },
                way_out: match &e.info.snapshot {
                    Some(s) => format!("tandem snapshot deactivate {s}"),
                    None => format!("tandem umount {}", e.info.volume),
                },
            });
        }
        let options = option_list(spec.read_only, spec.allow_other, flags, snapshot.is_some());
        let mount = Mount::with_flags(self.engine.clone(), spec, flags)?;
        let info = MountInfo {
            volume: volume.to_string(),
            mountpoint: mount.spec.mountpoint.clone(),
            options,
            snapshot: snapshot.map(str::to_string),
        };
        mounts.insert(
            info.mountpoint.clone(),
            Entry {
                info: info.clone(),
                mount,
            },
        );
        self.persist(mounts);
        Ok(info)
    }

    /// Unmounts every member mount of a snapshot; a busy one is reported and left mounted.
    pub fn unmount_snapshot(&self, snapshot: &str) -> Result<Vec<MountInfo>, ServiceError> {
        let mut mounts = self.lock();
        let keys: Vec<PathBuf> = mounts
            .iter()
            .filter(|(_, e)| e.info.snapshot.as_deref() == Some(snapshot))
            .map(|(k, _)| k.clone())
            .collect();
        let mut done = Vec::new();
        let mut busy = Vec::new();
        for k in keys {
            let Some(mut entry) = mounts.remove(&k) else {
                continue;
            };
            match entry.mount.try_unmount() {
                Ok(()) => done.push(entry.info),
                Err(e) => {
                    busy.push(format!("{} ({e})", k.display()));
                    mounts.insert(k, entry);
                }
            }
        }
        self.persist(&mounts);
        if !busy.is_empty() {
            return Err(ServiceError::SnapshotBusy {
                snapshot: snapshot.into(),
                at: busy.join(", "),
            });
        }
        Ok(done)
    }

    pub fn mount(
        &self,
        volume: &str,
        mountpoint: &Path,
        options: &[String],
    ) -> Result<MountInfo, ServiceError> {
        let opts = parse_mount_options(options)?;
        let vol = self.engine.volume_id(volume)?;
        let mut mounts = self.lock();
        self.forget_unmounted(&mut mounts);
        if let Some(e) = mounts
            .values()
            .find(|e| e.info.volume == volume && e.info.snapshot.is_none())
        {
            return Err(ServiceError::AlreadyMounted {
                volume: volume.into(),
                at: e.info.mountpoint.clone(),
            });
        }
        let spec = MountSpec {
            vol,
            name: volume.to_string(),
            view: View::Live,
            mountpoint: mountpoint.to_path_buf(),
            read_only: opts.read_only,
            allow_other: opts.allow_other,
        };
        let flags = opts.flags(MountFlags::LIVE);
        self.start(&mut mounts, volume, None, spec, flags)
    }

    /// Unmounts by mountpoint (an absolute path: the CLI resolves relative ones in its own
    /// working directory) or by volume name. A mount with another tandem mount inside stays:
    /// the inner one goes first.
    pub fn umount(&self, target: &str) -> Result<MountInfo, ServiceError> {
        let path = Path::new(target);
        let mut mounts = self.lock();
        let key = if path.is_absolute() {
            let canon = canonical(path);
            mounts.contains_key(&canon).then_some(canon)
        } else {
            mounts
                .iter()
                .find(|(_, e)| e.info.volume == target && e.info.snapshot.is_none())
                .map(|(k, _)| k.clone())
        };
        let Some(key) = key else {
            return Err(if path.is_absolute() {
                ServiceError::NotAMountpoint(target.into())
            } else {
                ServiceError::VolumeNotMounted(target.into())
            });
        };
        if let Some(inner) = mounts.keys().find(|k| **k != key && k.starts_with(&key)) {
            return Err(ServiceError::MountInside {
                outer: key.clone(),
                inner: inner.clone(),
            });
        }
        let Some(entry) = mounts.remove(&key) else {
            return Err(ServiceError::NotMounted(target.into()));
        };
        self.persist(&mounts);
        drop(mounts);
        let info = entry.info.clone();
        entry
            .mount
            .unmount()
            .map_err(|source| ServiceError::Unmount {
                path: info.mountpoint.clone(),
                source,
            })?;
        Ok(info)
    }

    /// Forgets mounts the kernel no longer lists (a plain `umount DIR` from outside): a
    /// mount right after one need not wait for the reaper to notice (their sessions end by
    /// themselves; dropping one never unmounts what is mounted there later).
    fn forget_unmounted(&self, mounts: &mut BTreeMap<PathBuf, Entry>) {
        let gone: Vec<PathBuf> = mounts
            .iter()
            .filter(|(_, e)| !e.mount.is_alive() || !e.mount.in_kernel())
            .map(|(k, _)| k.clone())
            .collect();
        if gone.is_empty() {
            return;
        }
        for k in &gone {
            tracing::info!("{} was unmounted from outside tandem", k.display());
            mounts.remove(k);
        }
        self.persist(mounts);
    }

    /// Forgets mounts whose session ended (unmounted from outside).
    pub fn reap(&self) {
        let mut mounts = self.lock();
        let dead: Vec<PathBuf> = mounts
            .iter()
            .filter(|(_, e)| !e.mount.is_alive())
            .map(|(k, _)| k.clone())
            .collect();
        if dead.is_empty() {
            return;
        }
        for k in &dead {
            tracing::info!("{} was unmounted from outside tandem", k.display());
            mounts.remove(k);
        }
        self.persist(&mounts);
    }

    /// Unmounts everything but remembers it (daemon shutdown). Deepest path first, so that a
    /// mount inside another tandem mount goes before its parent (a path sorts after every
    /// path it lies under).
    pub fn unmount_all(&self) {
        let mut mounts = self.lock();
        let all = std::mem::take(&mut *mounts);
        for (k, e) in all.into_iter().rev() {
            if let Err(err) = e.mount.unmount() {
                tracing::warn!("unmounting {}: {err}", k.display());
            }
        }
    }
}

impl crate::snapshot::MountView for MountTable {
    fn gates(&self, vol: crate::types::VolumeId) -> Vec<Arc<crate::fuse::Gate>> {
        self.lock()
            .values()
            .filter(|e| e.mount.spec.vol == vol && e.mount.spec.view == View::Live)
            .map(|e| e.mount.gate())
            .collect()
    }

    fn mountpoints(&self, volume: &str) -> Vec<PathBuf> {
        self.mountpoints_of(volume)
    }

    fn snapshot_mounts(&self, snapshot: &str) -> Vec<(String, PathBuf)> {
        self.snapshot_mounts_of(snapshot)
    }

    fn invalidate(&self, vol: crate::types::VolumeId, rows: &[crate::store::keys::RowId]) {
        for e in self.lock().values() {
            if e.mount.spec.vol == vol && e.mount.spec.view == View::Live {
                e.mount.invalidate(rows);
            }
        }
    }
}
