//! The daemon's memory of its mounts across restarts (`mounts.json`): written after every
//! change to the table, read back at start, where each remembered mount is made again once
//! the dead mount a killed daemon left there (and only such a one) is detached.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::super::{ServiceError, mountinfo};
use super::{Entry, MountTable};
use crate::control::MountInfo;

impl MountTable {
    pub(super) fn persist(&self, mounts: &BTreeMap<PathBuf, Entry>) {
        let list: Vec<&MountInfo> = mounts.values().map(|e| &e.info).collect();
        let tmp = self.state_file.with_extension("json.tmp");
        let res = serde_json::to_vec_pretty(&list)
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, &self.state_file));
        if let Err(e) = res {
            tracing::error!(
                "could not remember mounts in {}: {e}",
                self.state_file.display()
            );
        }
    }

    /// Mounts again what was mounted when the daemon last stopped.
    pub fn restore(&self) {
        let Ok(bytes) = std::fs::read(&self.state_file) else {
            return;
        };
        let list: Vec<MountInfo> = match serde_json::from_slice(&bytes) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("ignoring unreadable {}: {e}", self.state_file.display());
                return;
            }
        };
        for m in list {
            let res = clear_dead_mount(&m).and_then(|()| {
                match &m.snapshot {
                    Some(snap) => self.restore_snapshot_mount(snap, &m),
                    None => self.mount(&m.volume, &m.mountpoint, &m.options),
                }
                .map_err(|e| e.to_string())
            });
            match res {
                Ok(_) => tracing::info!("mounted {} on {} again", m.volume, m.mountpoint.display()),
                Err(e) => tracing::error!(
                    "could not mount {} on {} again: {e}",
                    m.volume,
                    m.mountpoint.display()
                ),
            }
        }
        let mounts = self.lock();
        self.persist(&mounts);
    }

    fn restore_snapshot_mount(&self, snap: &str, m: &MountInfo) -> Result<MountInfo, ServiceError> {
        let rec = self.engine.snapshot(snap)?;
        let Some(member) = rec.members.iter().find(|x| x.name == m.volume) else {
            return Err(ServiceError::NoMember {
                volume: m.volume.clone(),
                snapshot: snap.into(),
            });
        };
        // Before snapshot views were hardened, every one was recorded as "ro,allow_other"
        // (and mounted so whatever the live volume's rules): such a record gets today's rules.
        let legacy = !m.options.iter().any(|o| o == "suid" || o == "nosuid");
        let options: Vec<String> = if legacy {
            Vec::new()
        } else {
            m.options.clone()
        };
        self.snapshot_mount(
            (snap, &m.volume),
            member.vol,
            member.generation,
            &m.mountpoint,
            &options,
            legacy,
        )
    }
}

/// The source a tandem mount of `m` shows in /proc/mounts.
fn source_of(m: &MountInfo) -> String {
    match &m.snapshot {
        Some(snap) => format!("tandem:{}@{snap}", m.volume),
        None => format!("tandem:{}", m.volume),
    }
}

/// A daemon that died leaves a dead FUSE mount behind ("transport endpoint is not
/// connected"): detaches it, and only it. Whatever else is mounted there now (another
/// filesystem, a tandem mount that is alive) is left alone and named in the error.
fn clear_dead_mount(m: &MountInfo) -> Result<(), String> {
    let dir = &m.mountpoint;
    let want = source_of(m);
    // A daemon killed several times may have left a dead mount on a dead mount.
    for _ in 0..8 {
        let top =
            mountinfo::top_at(dir).map_err(|e| format!("reading /proc/self/mountinfo: {e}"))?;
        let Some(top) = top else {
            return Ok(());
        };
        // A tandem mount is "fuse.tandem" with the source "tandem:VOLUME" (plain "fuse" when
        // an older daemon made it).
        if top.fstype != "fuse" && top.fstype != "fuse.tandem" {
            return Err(format!(
                "{} is now a {} mount of '{}' that tandem did not make; it was left alone (unmount it, then tandem mount {} {})",
                dir.display(),
                top.fstype,
                top.source,
                m.volume,
                dir.display()
            ));
        }
        if top.source != want {
            return Err(format!(
                "{} is now a tandem mount of '{}', not of this volume; it was left alone",
                dir.display(),
                top.source
            ));
        }
        if !mountinfo::is_dead_fuse(dir) {
            return Err(format!(
                "{} is a live tandem mount that another daemon serves; it was left alone",
                dir.display()
            ));
        }
        if let Err(e) = rustix::mount::unmount(dir, rustix::mount::UnmountFlags::DETACH) {
            return Err(format!(
                "detaching the dead mount at {}: {}",
                dir.display(),
                std::io::Error::from(e)
            ));
        }
        tracing::info!("detached the dead tandem mount at {}", dir.display());
    }
    Err(format!(
        "{} still has dead mounts stacked on it; detach them with umount -l {}",
        dir.display(),
        dir.display()
    ))
}
