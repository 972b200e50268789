//! Namespace requests of the passthrough filesystem: lookups and the kernel's lookup counts,
//! attributes, entries made (owned by the caller), removed, renamed and linked, symlink
//! targets, statfs. Each is one or two `*at` calls on the backing directory; the adapter
//! (fs.rs) answers the kernel with what these return.
//!
//! Invariant: every entry these return was counted as one kernel lookup of its node
//! ([`Nodes::remember`]), as the kernel counts each entry reply.

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::SystemTime;

use fuser::{Errno, FileAttr, INodeNo, RenameFlags, Request, TimeOrNow};
use rustix::fs::{AtFlags, Gid, Mode, OFlags, Timespec, Timestamps, Uid};

use crate::fs::Passthrough;
use crate::nodes::{ROOT, attr, ex, open_path, proc_path};

/// What a setattr request changes.
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<TimeOrNow>,
    pub mtime: Option<TimeOrNow>,
    /// The open file the kernel named (ftruncate), if any.
    pub fh: Option<u64>,
}

fn timespec(t: Option<TimeOrNow>) -> Timespec {
    let (tv_sec, tv_nsec) = match t {
        None => (0, rustix::fs::UTIME_OMIT),
        Some(TimeOrNow::Now) => (0, rustix::fs::UTIME_NOW),
        Some(TimeOrNow::SpecificTime(t)) => match t.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => (
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                i64::from(d.subsec_nanos()),
            ),
            Err(before) => {
                let d = before.duration();
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                match d.subsec_nanos() {
                    0 => (-secs, 0),
                    n => (-secs - 1, 1_000_000_000 - i64::from(n)),
                }
            }
        },
    };
    Timespec { tv_sec, tv_nsec }
}

impl Passthrough {
    /// Counts one kernel lookup of `file` and returns its attributes.
    pub(crate) fn entry_of(&self, file: File) -> Result<FileAttr, Errno> {
        let m = file.metadata()?;
        let id = self.nodes.remember(file, &m)?;
        Ok(attr(id, &m))
    }

    pub(crate) fn lookup_in(&self, parent: INodeNo, name: &OsStr) -> Result<FileAttr, Errno> {
        // Only an NFS export asks for "..": the root's stays inside the backing directory.
        if parent.0 == ROOT && name == ".." {
            return self.attr_of(INodeNo(ROOT));
        }
        let p = self.nodes.get(parent)?;
        self.entry_of(open_path(&p.file, name)?)
    }

    pub(crate) fn attr_of(&self, i: INodeNo) -> Result<FileAttr, Errno> {
        let n = self.nodes.get(i)?;
        Ok(attr(i.0, &n.file.metadata()?))
    }

    /// Gives a new entry `name` of `parent` to the caller: its uid, and its gid unless the
    /// directory is setgid (then the backing filesystem gave the directory's, as to any
    /// creator). The daemon runs as root, so the backing entry starts as root's.
    fn give(&self, req: &Request, parent: &File, name: &OsStr) -> Result<(), Errno> {
        let (uid, gid) = self.owner(req, parent)?;
        rustix::fs::chownat(parent, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW).map_err(ex)
    }

    /// The owner a file made by `req` in `parent` gets (see [`Passthrough::give`]).
    pub(crate) fn owner(
        &self,
        req: &Request,
        parent: &File,
    ) -> Result<(Option<Uid>, Option<Gid>), Errno> {
        let setgid = parent.metadata()?.mode() & libc::S_ISGID != 0;
        let gid = (!setgid).then(|| Gid::from_raw(req.gid()));
        Ok((Some(Uid::from_raw(req.uid())), gid))
    }

    /// mkdir, mknod and symlink: `make` creates `name` in the backing directory.
    pub(crate) fn make(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        make: impl FnOnce(&File) -> rustix::io::Result<()>,
    ) -> Result<FileAttr, Errno> {
        let p = self.nodes.get(parent)?;
        make(&p.file).map_err(ex)?;
        self.give(req, &p.file, name)?;
        self.entry_of(open_path(&p.file, name)?)
    }

    pub(crate) fn mkdir_in(
        &self,
        req: &Request,
        (parent, name): (INodeNo, &OsStr),
        mode: u32,
    ) -> Result<FileAttr, Errno> {
        let mode = Mode::from_raw_mode(mode & 0o7777);
        self.make(req, parent, name, |p| rustix::fs::mkdirat(p, name, mode))
    }

    pub(crate) fn mknod_in(
        &self,
        req: &Request,
        (parent, name): (INodeNo, &OsStr),
        mode: u32,
        rdev: u32,
    ) -> Result<FileAttr, Errno> {
        let kind = rustix::fs::FileType::from_raw_mode(mode);
        let perm = Mode::from_raw_mode(mode & 0o7777);
        self.make(req, parent, name, |p| {
            rustix::fs::mknodat(p, name, kind, perm, u64::from(rdev))
        })
    }

    pub(crate) fn symlink_in(
        &self,
        req: &Request,
        (parent, name): (INodeNo, &OsStr),
        target: &Path,
    ) -> Result<FileAttr, Errno> {
        self.make(req, parent, name, |p| {
            rustix::fs::symlinkat(target, p, name)
        })
    }

    pub(crate) fn remove(&self, parent: INodeNo, name: &OsStr, dir: bool) -> Result<(), Errno> {
        let p = self.nodes.get(parent)?;
        let flags = if dir {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        rustix::fs::unlinkat(&p.file, name, flags).map_err(ex)
    }

    pub(crate) fn rename_in(
        &self,
        (parent, name): (INodeNo, &OsStr),
        (newparent, newname): (INodeNo, &OsStr),
        flags: RenameFlags,
    ) -> Result<(), Errno> {
        let p = self.nodes.get(parent)?;
        let np = self.nodes.get(newparent)?;
        let flags = rustix::fs::RenameFlags::from_bits_retain(flags.bits());
        rustix::fs::renameat_with(&p.file, name, &np.file, newname, flags).map_err(ex)
    }

    pub(crate) fn link_in(
        &self,
        i: INodeNo,
        (newparent, newname): (INodeNo, &OsStr),
    ) -> Result<FileAttr, Errno> {
        let n = self.nodes.get(i)?;
        let np = self.nodes.get(newparent)?;
        // AT_EMPTY_PATH links the inode itself (root has CAP_DAC_READ_SEARCH).
        rustix::fs::linkat(&n.file, "", &np.file, newname, AtFlags::EMPTY_PATH).map_err(ex)?;
        self.entry_of(open_path(&np.file, newname)?)
    }

    pub(crate) fn readlink_of(&self, i: INodeNo) -> Result<Vec<u8>, Errno> {
        let n = self.nodes.get(i)?;
        let target = rustix::fs::readlinkat(&n.file, "", Vec::new()).map_err(ex)?;
        Ok(target.into_bytes())
    }

    pub(crate) fn setattr_of(&self, i: INodeNo, set: SetAttr) -> Result<FileAttr, Errno> {
        let n = self.nodes.get(i)?;
        if let Some(mode) = set.mode {
            // chmod follows the descriptor's magic link to the inode; a symlink has no mode.
            if !n.symlink {
                let mode = Mode::from_raw_mode(mode & 0o7777);
                rustix::fs::chmod(proc_path(&n.file), mode).map_err(ex)?;
            }
        }
        if set.uid.is_some() || set.gid.is_some() {
            let flags = AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW;
            let (uid, gid) = (set.uid.map(Uid::from_raw), set.gid.map(Gid::from_raw));
            rustix::fs::chownat(&n.file, "", uid, gid, flags).map_err(ex)?;
        }
        if let Some(size) = set.size {
            match set.fh.map(|fh| self.files.get(fh)) {
                Some(Ok(f)) => f.set_len(size)?,
                _ => {
                    let flags = OFlags::WRONLY | OFlags::CLOEXEC;
                    let f = rustix::fs::open(proc_path(&n.file), flags, Mode::empty());
                    rustix::fs::ftruncate(f.map_err(ex)?, size).map_err(ex)?;
                }
            }
        }
        if set.atime.is_some() || set.mtime.is_some() {
            let times = Timestamps {
                last_access: timespec(set.atime),
                last_modification: timespec(set.mtime),
            };
            if n.symlink {
                let flags = AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW;
                rustix::fs::utimensat(&n.file, "", &times, flags).map_err(ex)?;
            } else {
                let cwd = rustix::fs::CWD;
                rustix::fs::utimensat(cwd, proc_path(&n.file), &times, AtFlags::empty())
                    .map_err(ex)?;
            }
        }
        Ok(attr(i.0, &n.file.metadata()?))
    }

    pub(crate) fn statfs_of(&self) -> Result<rustix::fs::StatVfs, Errno> {
        rustix::fs::fstatvfs(self.nodes.root()).map_err(ex)
    }
}
