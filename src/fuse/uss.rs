//! User-serviceable snapshots: the `.snaps` directory at the root of a live mount (volume
//! options `uss`, `snapshot-directory`, `show-snapshot-directory`).
//!
//! Inode numbers of the snapshot trees are encoded as `1<<63 | snapshot id << 40 | inode`
//! (snapshot id 0 is the snapshot directory itself), so the kernel sees one inode space and
//! every request says which snapshot view it is for. Volume inode numbers stay below 2^40.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::fs::{Attr, Engine, FileKind, Timestamp};
use crate::store::rows::View;
use crate::types::{Generation, InodeNo, VolumeId};

const SNAP_BIT: u64 = 1 << 63;
const SID_SHIFT: u32 = 40;
const INO_MASK: u64 = (1 << SID_SHIFT) - 1;
/// The snapshot directory's own inode number.
pub const SNAPDIR: u64 = SNAP_BIT | 1;

pub fn is_virtual(ino: u64) -> bool {
    ino & SNAP_BIT != 0
}

pub fn encode(sid: u64, ino: InodeNo) -> u64 {
    if sid == 0 {
        ino.0
    } else {
        SNAP_BIT | (sid << SID_SHIFT) | (ino.0 & INO_MASK)
    }
}

/// Where a request goes.
pub enum Route {
    /// The mount's own view.
    Plain(InodeNo),
    /// The snapshot directory.
    SnapDir,
    /// Inside snapshot `sid`, seen at `view`.
    Snap { sid: u64, view: View, ino: InodeNo },
}

pub struct Settings {
    pub enabled: bool,
    pub name: Vec<u8>,
    pub show: bool,
}

/// Snapshot id → generation of this volume, re-read at most once a second.
#[derive(Default)]
pub struct Uss {
    cache: Mutex<(HashMap<u64, Generation>, Option<Instant>)>,
}

impl Uss {
    pub fn settings(engine: &Engine, vol: VolumeId) -> Settings {
        let opts = engine.volume_options(vol).unwrap_or_default();
        let get = |k: &str| {
            opts.iter()
                .find(|o| o.0 == k)
                .map(|o| o.1.clone())
                .unwrap_or_default()
        };
        Settings {
            enabled: get("uss") == "on",
            name: get("snapshot-directory").into_bytes(),
            show: get("show-snapshot-directory") == "on",
        }
    }

    /// (name, snapshot id, generation) of every snapshot that includes the volume.
    pub fn snapshots(engine: &Engine, vol: VolumeId) -> Vec<(String, u64, Generation)> {
        engine
            .snapshots()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| {
                s.members
                    .iter()
                    .find(|m| m.vol == vol)
                    .map(|m| (s.name.clone(), s.id.0, m.generation))
            })
            .collect()
    }

    fn generation(&self, engine: &Engine, vol: VolumeId, sid: u64) -> Option<Generation> {
        let mut c = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let stale = c.1.is_none_or(|t| t.elapsed() > Duration::from_secs(1));
        if stale || !c.0.contains_key(&sid) {
            c.0 = Self::snapshots(engine, vol)
                .into_iter()
                .map(|(_, id, g)| (id, g))
                .collect();
            c.1 = Some(Instant::now());
        }
        c.0.get(&sid).copied()
    }

    pub fn route(&self, engine: &Engine, vol: VolumeId, ino: u64) -> Option<Route> {
        if !is_virtual(ino) {
            return Some(Route::Plain(InodeNo(ino)));
        }
        if ino == SNAPDIR {
            return Some(Route::SnapDir);
        }
        let sid = (ino & !SNAP_BIT) >> SID_SHIFT;
        let g = self.generation(engine, vol, sid)?;
        Some(Route::Snap {
            sid,
            view: View::At(g),
            ino: InodeNo(ino & INO_MASK),
        })
    }
}

/// Is `name` in directory `parent` of this view the snapshot directory (a live view with `uss`
/// on, in its root)? No real entry may take that name (create, mkdir, mknod, symlink, link:
/// EEXIST; a rename onto it: EPERM), and the snapshot directory itself is neither removed
/// (EBUSY, as a mount point) nor renamed (EPERM).
pub fn is_snapdir_name(
    engine: &Engine,
    vol: VolumeId,
    view: View,
    parent: u64,
    name: &[u8],
) -> bool {
    view == View::Live && parent == InodeNo::ROOT.0 && Uss::settings(engine, vol).enabled_as(name)
}

impl Settings {
    /// Is the snapshot directory on and called `name`?
    pub fn enabled_as(&self, name: &[u8]) -> bool {
        self.enabled && self.name == name
    }
}

/// Attributes of the snapshot directory (read-only, owned by root).
pub fn snapdir_attr(root: &Attr) -> Attr {
    Attr {
        ino: InodeNo(SNAPDIR),
        kind: FileKind::Dir,
        perm: 0o555,
        uid: 0,
        gid: 0,
        nlink: 2,
        size: 0,
        blocks: 0,
        atime: root.atime,
        mtime: Timestamp::now(),
        ctime: root.ctime,
        crtime: root.crtime,
        rdev: 0,
        blksize: root.blksize,
    }
}
