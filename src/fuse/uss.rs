//! User-serviceable snapshots: the `.snaps` directory at the root of a live mount (volume
//! options `uss`, `snapshot-directory`, `show-snapshot-directory`).
//!
//! Owns the routing of requests between the mount's own view and the snapshot trees: which
//! view and inode a read is for ([`TandemFs::target`]), lookups, attributes and listings that
//! cross into `.snaps`, and the refusals that keep the snapshot trees read-only and the
//! snapshot directory's name free.
//!
//! Inode numbers of the snapshot trees are encoded as `1<<63 | snapshot id << 40 | inode`
//! (snapshot id 0 is the snapshot directory itself), so the kernel sees one inode space and
//! every request says which snapshot view it is for. Volume inode numbers stay below 2^40.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fuser::{Errno, INodeNo};

use super::request::TandemFs;
use crate::fs::{Attr, DirEntry, Engine, FileKind, Timestamp};
use crate::options::OptionScope;
use crate::store::rows::View;
use crate::types::{Generation, InodeNo, SnapshotId, VolumeId};

const SNAP_BIT: u64 = 1 << 63;
const SID_SHIFT: u32 = 40;
const INO_MASK: u64 = (1 << SID_SHIFT) - 1;
/// The snapshot directory's own inode number.
pub const SNAPDIR: u64 = SNAP_BIT | 1;
/// Offset of the snapshot directory's entry in the root listing (after every real entry).
const SNAPDIR_OFFSET: u64 = u64::MAX - 1;

pub fn is_virtual(ino: u64) -> bool {
    ino & SNAP_BIT != 0
}

/// The inode number the kernel sees for `ino`: itself outside a snapshot, else one that
/// carries the snapshot's id (snapshot ids start at 1).
pub fn encode(sid: Option<SnapshotId>, ino: InodeNo) -> u64 {
    match sid {
        None => ino.0,
        Some(s) => SNAP_BIT | (s.0 << SID_SHIFT) | (ino.0 & INO_MASK),
    }
}

/// Where a request goes.
enum Route {
    /// The mount's own view.
    Plain(InodeNo),
    /// The snapshot directory.
    SnapDir,
    /// Inside snapshot `sid`, seen at `view`.
    Snap {
        sid: SnapshotId,
        view: View,
        ino: InodeNo,
    },
}

struct Settings {
    enabled: bool,
    name: Vec<u8>,
    show: bool,
}

/// Snapshot id → generation of this volume, re-read at most once a second.
#[derive(Default)]
pub struct Uss {
    cache: Mutex<(HashMap<SnapshotId, Generation>, Option<Instant>)>,
}

impl Uss {
    fn settings(engine: &Engine, vol: VolumeId) -> Settings {
        let opts = engine.options(OptionScope::Volume(vol)).unwrap_or_default();
        Settings {
            enabled: opts.uss(),
            name: opts.snapshot_directory().as_bytes().to_vec(),
            show: opts.show_snapshot_directory(),
        }
    }

    /// (name, snapshot id, generation) of every snapshot that includes the volume.
    fn snapshots(engine: &Engine, vol: VolumeId) -> Vec<(String, SnapshotId, Generation)> {
        engine
            .snapshots()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| {
                s.members
                    .iter()
                    .find(|m| m.vol == vol)
                    .map(|m| (s.name.clone(), s.id, m.generation))
            })
            .collect()
    }

    fn generation(&self, engine: &Engine, vol: VolumeId, sid: SnapshotId) -> Option<Generation> {
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

    fn route(&self, engine: &Engine, vol: VolumeId, ino: u64) -> Option<Route> {
        if !is_virtual(ino) {
            return Some(Route::Plain(InodeNo(ino)));
        }
        if ino == SNAPDIR {
            return Some(Route::SnapDir);
        }
        let sid = SnapshotId((ino & !SNAP_BIT) >> SID_SHIFT);
        let g = self.generation(engine, vol, sid)?;
        Some(Route::Snap {
            sid,
            view: View::At(g),
            ino: InodeNo(ino & INO_MASK),
        })
    }
}

impl Settings {
    /// Is the snapshot directory on and called `name`?
    fn enabled_as(&self, name: &[u8]) -> bool {
        self.enabled && self.name == name
    }
}

/// Attributes of the snapshot directory (read-only, owned by root).
fn snapdir_attr(root: &Attr) -> Attr {
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

fn in_snapshot(sid: SnapshotId, mut a: Attr) -> Attr {
    a.ino = InodeNo(encode(Some(sid), a.ino));
    a
}

/// EROFS for an inode of the snapshot trees: they are read-only.
pub(super) fn writable(inos: &[INodeNo]) -> Result<(), Errno> {
    if inos.iter().any(|i| is_virtual(i.0)) {
        return Err(Errno::EROFS);
    }
    Ok(())
}

impl TandemFs {
    fn route(&self, i: INodeNo) -> Result<Route, Errno> {
        if self.view != View::Live {
            return Ok(Route::Plain(InodeNo(i.0)));
        }
        // A snapshot deleted under an open handle.
        self.uss
            .route(&self.engine, self.vol, i.0)
            .ok_or(Errno::ESTALE)
    }

    /// The view and inode a plain (non-directory-listing) request is for.
    pub(super) fn target(&self, i: INodeNo) -> Result<(View, InodeNo), Errno> {
        match self.route(i)? {
            Route::Plain(i) => Ok((self.view, i)),
            Route::Snap { view, ino, .. } => Ok((view, ino)),
            Route::SnapDir => Err(Errno::EISDIR),
        }
    }

    /// The refusals of a request that changes `inos` and takes or drops `names` (parent,
    /// name): EROFS inside the snapshot trees, then `err` for the snapshot directory's own
    /// name (a live view with `uss` on, in its root). No real entry may take that name
    /// (create, mkdir, mknod, symlink, link: EEXIST; a rename onto it: EPERM), and the
    /// snapshot directory itself is neither removed (EBUSY, as a mount point) nor renamed
    /// (EPERM).
    pub(super) fn changeable(
        &self,
        inos: &[INodeNo],
        names: &[(INodeNo, &OsStr)],
        err: Errno,
    ) -> Result<(), Errno> {
        writable(inos)?;
        let snapdir = |(p, n): &(INodeNo, &OsStr)| {
            self.view == View::Live
                && p.0 == InodeNo::ROOT.0
                && Uss::settings(&self.engine, self.vol).enabled_as(n.as_bytes())
        };
        if names.iter().any(snapdir) {
            return Err(err);
        }
        Ok(())
    }

    fn root_attr(&self) -> Result<Attr, Errno> {
        Ok(self.engine.getattr(self.vol, View::Live, InodeNo::ROOT)?)
    }

    pub(super) fn attr_of(&self, i: INodeNo) -> Result<Attr, Errno> {
        match self.route(i)? {
            Route::Plain(i) => Ok(self.engine.getattr(self.vol, self.view, i)?),
            Route::SnapDir => Ok(snapdir_attr(&self.root_attr()?)),
            Route::Snap { sid, view, ino } => {
                Ok(in_snapshot(sid, self.engine.getattr(self.vol, view, ino)?))
            }
        }
    }

    /// An entry of a directory; also "." of any inode and ".." of a directory, which the
    /// kernel asks for to decode file handles (in the snapshot trees, ".." of a snapshot's
    /// root is the snapshot directory, whose ".." is the volume's root).
    pub(super) fn lookup_in(&self, parent: INodeNo, name: &[u8]) -> Result<Attr, Errno> {
        if name == b"." {
            return self.attr_of(parent);
        }
        match self.route(parent)? {
            Route::SnapDir if name == b".." => self.root_attr(),
            Route::Snap { ino, .. } if name == b".." && ino == InodeNo::ROOT => {
                Ok(snapdir_attr(&self.root_attr()?))
            }
            Route::Plain(p) => {
                if self.view == View::Live
                    && p == InodeNo::ROOT
                    && Uss::settings(&self.engine, self.vol).enabled_as(name)
                {
                    return Ok(snapdir_attr(&self.root_attr()?));
                }
                Ok(self.engine.lookup(self.vol, self.view, p, name)?)
            }
            Route::SnapDir => {
                let snaps = Uss::snapshots(&self.engine, self.vol);
                let (_, sid, g) = snaps
                    .into_iter()
                    .find(|(n, _, _)| n.as_bytes() == name)
                    .ok_or(Errno::ENOENT)?;
                let a = self.engine.getattr(self.vol, View::At(g), InodeNo::ROOT)?;
                Ok(in_snapshot(sid, a))
            }
            Route::Snap { sid, view, ino } => Ok(in_snapshot(
                sid,
                self.engine.lookup(self.vol, view, ino, name)?,
            )),
        }
    }

    /// Directory entries after `offset`, at most `max` (inode numbers as the kernel sees
    /// them).
    pub(super) fn entries(
        &self,
        i: INodeNo,
        offset: u64,
        max: usize,
    ) -> Result<Vec<DirEntry>, Errno> {
        let map = |entries: Vec<DirEntry>, sid: Option<SnapshotId>, root: bool| -> Vec<DirEntry> {
            entries
                .into_iter()
                .map(|mut d| {
                    d.ino = if sid.is_some() && root && d.name == b".." {
                        InodeNo(SNAPDIR)
                    } else {
                        InodeNo(encode(sid, d.ino))
                    };
                    d
                })
                .collect()
        };
        let dir = |ino: u64, offset: u64, name: Vec<u8>| DirEntry {
            ino: InodeNo(ino),
            offset,
            kind: FileKind::Dir,
            name,
        };
        match self.route(i)? {
            Route::Plain(p) => {
                let list = self.engine.readdir(self.vol, self.view, p, offset, max)?;
                let end = list.len() < max;
                let mut out = map(list, None, false);
                if self.view == View::Live && p == InodeNo::ROOT {
                    // A real entry of that name (made before uss was on) is hidden by it.
                    let st = Uss::settings(&self.engine, self.vol);
                    out.retain(|e| !st.enabled_as(&e.name));
                    if end && offset < SNAPDIR_OFFSET && st.enabled && st.show {
                        out.push(dir(SNAPDIR, SNAPDIR_OFFSET, st.name));
                    }
                }
                Ok(out)
            }
            Route::SnapDir => {
                let mut all = vec![
                    dir(SNAPDIR, 1, b".".to_vec()),
                    dir(InodeNo::ROOT.0, 2, b"..".to_vec()),
                ];
                for (k, (name, sid, _)) in Uss::snapshots(&self.engine, self.vol)
                    .into_iter()
                    .enumerate()
                {
                    let root = encode(Some(sid), InodeNo::ROOT);
                    all.push(dir(root, 3 + k as u64, name.into_bytes()));
                }
                Ok(all
                    .into_iter()
                    .filter(|e| e.offset > offset)
                    .take(max)
                    .collect())
            }
            Route::Snap { sid, view, ino } => {
                let list = self.engine.readdir(self.vol, view, ino, offset, max)?;
                Ok(map(list, Some(sid), ino == InodeNo::ROOT))
            }
        }
    }
}
