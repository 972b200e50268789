//! The fuser `Filesystem` implementation: translates kernel requests to `fs` operations.
//! The only code in tandem that sees fuser types.
//!
//! Reads (lookup, getattr, read, readdir, readlink, xattr reads, statfs, open) run on the
//! session threads; every mutating request goes through the volume's [`VolumeQueue`].

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
    Request, TimeOrNow, WriteFlags,
};

use super::queue::VolumeQueue;
use super::uss::{self, Route, Uss};
use crate::fs::{Attr, Ctx, Engine, FileKind, FsError, RenameFlags, SetAttr, TimeSet, XattrMode};
use crate::store::rows::View;
use crate::types::{InodeNo, VolumeId};

/// Attribute and entry cache lifetime of real inodes. Only the daemon changes a volume, all
/// through this mount (the kernel sees every change and drops what it changes), and it tells
/// the kernel when it changes a tree behind its back (online restore): so the kernel may keep
/// entries long, and a stat, an open or an unlink of a known name costs no LOOKUP.
const TTL: Duration = Duration::from_secs(3600);
/// For the `.snaps` tree: snapshots come and go without the kernel seeing it.
const SNAPS_TTL: Duration = Duration::from_secs(1);

/// How long the kernel may cache what it learns of inode `i`.
fn ttl(i: u64) -> &'static Duration {
    if super::uss::is_virtual(i) {
        &SNAPS_TTL
    } else {
        &TTL
    }
}
/// Largest write the kernel sends (its cap).
const MAX_WRITE: u32 = 1 << 20;

pub struct TandemFs {
    pub engine: Arc<Engine>,
    pub vol: VolumeId,
    pub view: View,
    pub read_only: bool,
    pub uss: super::uss::Uss,
    pub queue: Arc<VolumeQueue>,
    /// The session's notifier, once the session exists (see `write`).
    pub notifier: Arc<std::sync::OnceLock<fuser::Notifier>>,
}

fn errno(e: &FsError) -> Errno {
    if let FsError::Store(s) = e {
        tracing::error!("storage error: {s}");
    }
    Errno::from_i32(e.errno())
}

fn kind(k: FileKind) -> FileType {
    match k {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
        FileKind::Fifo => FileType::NamedPipe,
        FileKind::Socket => FileType::Socket,
        FileKind::CharDev => FileType::CharDevice,
        FileKind::BlockDev => FileType::BlockDevice,
    }
}

fn fattr(a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino.0),
        size: a.size,
        blocks: a.blocks,
        atime: a.atime.into(),
        mtime: a.mtime.into(),
        ctime: a.ctime.into(),
        crtime: a.crtime.into(),
        kind: kind(a.kind),
        perm: a.perm,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: a.blksize,
        flags: 0,
    }
}

fn ino(i: INodeNo) -> InodeNo {
    InodeNo(i.0)
}

fn ctx(req: &Request) -> Ctx {
    Ctx {
        uid: req.uid(),
        gid: req.gid(),
    }
}

fn time(t: TimeOrNow) -> TimeSet {
    match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(s) => TimeSet::At(s.into()),
    }
}

/// Snapshot trees under `.snaps` are read-only.
macro_rules! not_virtual {
    ($reply:ident, $($i:expr),+) => {
        if false $(|| super::uss::is_virtual($i.0))+ {
            $reply.error(Errno::EROFS);
            return;
        }
    };
}

/// No real entry takes the snapshot directory's name, and it is neither removed nor renamed
/// (see [`uss::is_snapdir_name`]).
macro_rules! not_snapdir {
    ($self:ident, $reply:ident, $err:expr, $($p:expr, $n:expr),+) => {
        if false $(|| uss::is_snapdir_name(&$self.engine, $self.vol, $self.view, $p.0, $n.as_bytes()))+ {
            $reply.error($err);
            return;
        }
    };
}

macro_rules! mutate {
    ($self:ident, $reply:ident, |$e:ident| $body:block) => {{
        if $self.read_only {
            $reply.error(Errno::EROFS);
            return;
        }
        let $e = $self.engine.clone();
        if $self.queue.submit(move || $body).is_err() {
            // The queue shuts down only while unmounting.
        }
    }};
}

/// Offset of the snapshot directory's entry in the root listing (after every real entry).
const SNAPDIR_OFFSET: u64 = u64::MAX - 1;

type Entry = (u64, u64, FileKind, Vec<u8>, Option<Attr>);

impl TandemFs {
    fn route(&self, i: INodeNo) -> Result<Route, Errno> {
        if self.view != View::Live {
            return Ok(Route::Plain(ino(i)));
        }
        // A snapshot deleted under an open handle.
        self.uss
            .route(&self.engine, self.vol, i.0)
            .ok_or(Errno::ESTALE)
    }

    /// The view and inode a plain (non-directory-listing) request is for.
    fn target(&self, i: INodeNo) -> Result<(View, InodeNo), Errno> {
        match self.route(i)? {
            Route::Plain(i) => Ok((self.view, i)),
            Route::Snap { view, ino, .. } => Ok((view, ino)),
            Route::SnapDir => Err(Errno::EISDIR),
        }
    }

    fn in_snapshot(sid: u64, mut a: Attr) -> Attr {
        a.ino = InodeNo(uss::encode(sid, a.ino));
        a
    }

    fn root_attr(&self) -> Result<Attr, Errno> {
        self.engine
            .getattr(self.vol, View::Live, InodeNo::ROOT)
            .map_err(|e| errno(&e))
    }

    fn do_getattr(&self, i: INodeNo) -> Result<Attr, Errno> {
        match self.route(i)? {
            Route::Plain(i) => self
                .engine
                .getattr(self.vol, self.view, i)
                .map_err(|e| errno(&e)),
            Route::SnapDir => Ok(uss::snapdir_attr(&self.root_attr()?)),
            Route::Snap { sid, view, ino } => self
                .engine
                .getattr(self.vol, view, ino)
                .map(|a| Self::in_snapshot(sid, a))
                .map_err(|e| errno(&e)),
        }
    }

    fn do_lookup(&self, parent: INodeNo, name: &[u8]) -> Result<Attr, Errno> {
        match self.route(parent)? {
            Route::Plain(p) => {
                if self.view == View::Live && p == InodeNo::ROOT {
                    let st = Uss::settings(&self.engine, self.vol);
                    if st.enabled && st.name == name {
                        return Ok(uss::snapdir_attr(&self.root_attr()?));
                    }
                }
                self.engine
                    .lookup(self.vol, self.view, p, name)
                    .map_err(|e| errno(&e))
            }
            Route::SnapDir => {
                let snaps = Uss::snapshots(&self.engine, self.vol);
                let (_, sid, g) = snaps
                    .into_iter()
                    .find(|(n, _, _)| n.as_bytes() == name)
                    .ok_or(Errno::ENOENT)?;
                let a = self
                    .engine
                    .getattr(self.vol, View::At(g), InodeNo::ROOT)
                    .map_err(|e| errno(&e))?;
                Ok(Self::in_snapshot(sid, a))
            }
            Route::Snap { sid, view, ino } => self
                .engine
                .lookup(self.vol, view, ino, name)
                .map(|a| Self::in_snapshot(sid, a))
                .map_err(|e| errno(&e)),
        }
    }

    /// Directory entries after `offset`: (ino, offset, kind, name, attr if known).
    fn entries(&self, i: INodeNo, offset: u64, max: usize) -> Result<Vec<Entry>, Errno> {
        let map = |entries: Vec<crate::fs::DirEntry>, sid: u64, root: bool| -> Vec<Entry> {
            entries
                .into_iter()
                .map(|d| {
                    let ino = if sid != 0 && root && d.name == b".." {
                        uss::SNAPDIR
                    } else {
                        uss::encode(sid, d.ino)
                    };
                    (ino, d.offset, d.kind, d.name, None)
                })
                .collect()
        };
        match self.route(i)? {
            Route::Plain(p) => {
                let list = self
                    .engine
                    .readdir(self.vol, self.view, p, offset, max)
                    .map_err(|e| errno(&e))?;
                let end = list.len() < max;
                let mut out = map(list, 0, false);
                if self.view == View::Live && p == InodeNo::ROOT {
                    // A real entry of that name (made before uss was on) is hidden by it.
                    let st = Uss::settings(&self.engine, self.vol);
                    out.retain(|e| !st.enabled_as(&e.3));
                    if end && offset < SNAPDIR_OFFSET && st.enabled && st.show {
                        out.push((uss::SNAPDIR, SNAPDIR_OFFSET, FileKind::Dir, st.name, None));
                    }
                }
                Ok(out)
            }
            Route::SnapDir => {
                let mut all: Vec<Entry> = vec![
                    (uss::SNAPDIR, 1, FileKind::Dir, b".".to_vec(), None),
                    (InodeNo::ROOT.0, 2, FileKind::Dir, b"..".to_vec(), None),
                ];
                for (k, (name, sid, _)) in Uss::snapshots(&self.engine, self.vol)
                    .into_iter()
                    .enumerate()
                {
                    all.push((
                        uss::encode(sid, InodeNo::ROOT),
                        3 + k as u64,
                        FileKind::Dir,
                        name.into_bytes(),
                        None,
                    ));
                }
                Ok(all.into_iter().filter(|e| e.1 > offset).take(max).collect())
            }
            Route::Snap { sid, view, ino } => {
                let list = self
                    .engine
                    .readdir(self.vol, view, ino, offset, max)
                    .map_err(|e| errno(&e))?;
                Ok(map(list, sid, ino == InodeNo::ROOT))
            }
        }
    }
}

impl Filesystem for TandemFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(MAX_WRITE);
        let _ = config.set_max_readahead(MAX_WRITE);
        for cap in [
            InitFlags::FUSE_DO_READDIRPLUS,
            InitFlags::FUSE_READDIRPLUS_AUTO,
            InitFlags::FUSE_PARALLEL_DIROPS,
            InitFlags::FUSE_ASYNC_READ,
            InitFlags::FUSE_BIG_WRITES,
            InitFlags::FUSE_MAX_PAGES,
            InitFlags::FUSE_CACHE_SYMLINKS,
            InitFlags::FUSE_EXPORT_SUPPORT,
            // We drop setuid/setgid/caps on write, truncate and chown ourselves, so the
            // kernel marks inodes S_NOSEC and stops asking GETXATTR(security.capability)
            // before every write (one round trip per write saved).
            InitFlags::FUSE_HANDLE_KILLPRIV_V2,
        ] {
            let _ = config.add_capabilities(cap);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.do_lookup(parent, name.as_bytes()) {
            Ok(a) => reply.entry(ttl(a.ino.0), &fattr(&a), Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, i: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.do_getattr(i) {
            Ok(a) => reply.attr(ttl(a.ino.0), &fattr(&a)),
            Err(e) => reply.error(e),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        i: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        not_virtual!(reply, i);
        let (vol, i) = (self.vol, ino(i));
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time),
            mtime: mtime.map(time),
            ctime: ctime.map(Into::into),
            // With HANDLE_KILLPRIV_V2 the kernel leaves this to us: chown drops privileges,
            // and so does a truncate by a caller without CAP_FSETID (root stands for it).
            kill_priv: uid.is_some() || gid.is_some() || (size.is_some() && req.uid() != 0),
        };
        mutate!(self, reply, |e| {
            match e.setattr(vol, i, set) {
                Ok(a) => reply.attr(ttl(a.ino.0), &fattr(&a)),
                Err(err) => reply.error(errno(&err)),
            }
        })
    }

    fn readlink(&self, _req: &Request, i: INodeNo, reply: ReplyData) {
        let res = self.target(i).and_then(|(view, i)| {
            self.engine
                .readlink(self.vol, view, i)
                .map_err(|e| errno(&e))
        });
        match res {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(e),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        not_virtual!(reply, parent);
        not_snapdir!(self, reply, Errno::EEXIST, parent, name);
        let (vol, p, name, c) = (self.vol, ino(parent), name.as_bytes().to_vec(), ctx(req));
        mutate!(self, reply, |e| {
            match e.mknod(vol, p, &name, mode, rdev, c) {
                Ok(a) => reply.entry(ttl(a.ino.0), &fattr(&a), Generation(0)),
                Err(err) => reply.error(errno(&err)),
            }
        })
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        not_virtual!(reply, parent);
        not_snapdir!(self, reply, Errno::EEXIST, parent, name);
        let (vol, p, name, c) = (self.vol, ino(parent), name.as_bytes().to_vec(), ctx(req));
        mutate!(self, reply, |e| {
            match e.mkdir(vol, p, &name, mode, c) {
                Ok(a) => reply.entry(ttl(a.ino.0), &fattr(&a), Generation(0)),
                Err(err) => reply.error(errno(&err)),
            }
        })
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        not_virtual!(reply, parent);
        not_snapdir!(self, reply, Errno::EPERM, parent, name);
        let (vol, p, name) = (self.vol, ino(parent), name.as_bytes().to_vec());
        mutate!(self, reply, |e| {
            match e.unlink(vol, p, &name) {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno(&err)),
            }
        })
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        not_virtual!(reply, parent);
        not_snapdir!(self, reply, Errno::EBUSY, parent, name);
        let (vol, p, name) = (self.vol, ino(parent), name.as_bytes().to_vec());
        mutate!(self, reply, |e| {
            match e.rmdir(vol, p, &name) {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno(&err)),
            }
        })
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        not_virtual!(reply, parent);
        not_snapdir!(self, reply, Errno::EEXIST, parent, link_name);
        let (vol, p, c) = (self.vol, ino(parent), ctx(req));
        let (name, target) = (
            link_name.as_bytes().to_vec(),
            target.as_os_str().as_bytes().to_vec(),
        );
        mutate!(self, reply, |e| {
            match e.symlink(vol, p, &name, &target, c) {
                Ok(a) => reply.entry(ttl(a.ino.0), &fattr(&a), Generation(0)),
                Err(err) => reply.error(errno(&err)),
            }
        })
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        not_virtual!(reply, parent, newparent);
        not_snapdir!(self, reply, Errno::EPERM, parent, name, newparent, newname);
        let bits = flags.bits();
        if bits & !(libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE) != 0 {
            reply.error(Errno::EINVAL);
            return;
        }
        let f = RenameFlags {
            noreplace: bits & libc::RENAME_NOREPLACE != 0,
            exchange: bits & libc::RENAME_EXCHANGE != 0,
        };
        let (vol, p, np) = (self.vol, ino(parent), ino(newparent));
        let (name, newname) = (name.as_bytes().to_vec(), newname.as_bytes().to_vec());
        mutate!(self, reply, |e| {
            match e.rename(vol, p, &name, np, &newname, f) {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno(&err)),
            }
        })
    }

    fn link(
        &self,
        _req: &Request,
        i: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        not_virtual!(reply, i, newparent);
        not_snapdir!(self, reply, Errno::EEXIST, newparent, newname);
        let (vol, i, np, name) = (
            self.vol,
            ino(i),
            ino(newparent),
            newname.as_bytes().to_vec(),
        );
        mutate!(self, reply, |e| {
            match e.link(vol, i, np, &name) {
                Ok(a) => reply.entry(ttl(a.ino.0), &fattr(&a), Generation(0)),
                Err(err) => reply.error(errno(&err)),
            }
        })
    }

    fn open(&self, _req: &Request, i: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let writing = flags.0 & libc::O_ACCMODE != libc::O_RDONLY || flags.0 & libc::O_TRUNC != 0;
        if writing && (self.read_only || super::uss::is_virtual(i.0)) {
            reply.error(Errno::EROFS);
            return;
        }
        let res = self
            .target(i)
            .and_then(|(view, i)| self.engine.open(self.vol, view, i).map_err(|e| errno(&e)));
        match res {
            // Only the daemon changes a volume, so the page cache stays valid across opens.
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let res = self.target(i).and_then(|(view, i)| {
            self.engine
                .read(self.vol, view, i, offset, size)
                .map_err(|e| errno(&e))
        });
        match res {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        not_virtual!(reply, i);
        let (vol, i, data) = (self.vol, ino(i), data.to_vec());
        // Set by the kernel (HANDLE_KILLPRIV_V2) when the writer lacks CAP_FSETID.
        let kill = write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID);
        let notifier = self.notifier.clone();
        mutate!(self, reply, |e| {
            match e.write_as(vol, i, offset, &data, kill) {
                Ok((n, killed)) => {
                    if killed && let Some(n) = notifier.get() {
                        // Not every kernel drops its cached mode after a write: make it
                        // ask again (attributes only, no page cache: safe in a request).
                        let _ = n.inval_inode(INodeNo(i.0), -1, 0);
                    }
                    reply.written(n)
                }
                Err(err) => reply.error(errno(&err)),
            }
        })
    }

    fn flush(
        &self,
        _req: &Request,
        _i: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // Every write already reached the daemon; nothing to flush. ENOSYS makes the kernel
        // stop sending FLUSH on every close (one round trip saved per close).
        reply.error(Errno::ENOSYS);
    }

    fn release(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if super::uss::is_virtual(i.0) {
            reply.ok();
            return;
        }
        if self.view != View::Live {
            reply.ok();
            return;
        }
        let (vol, view, i) = (self.vol, self.view, ino(i));
        mutate!(self, reply, |e| {
            match e.release(vol, view, i) {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno(&err)),
            }
        })
    }

    fn fsync(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        if super::uss::is_virtual(i.0) {
            reply.ok();
            return;
        }
        if self.view != View::Live {
            reply.ok();
            return;
        }
        let (vol, i) = (self.vol, ino(i));
        mutate!(self, reply, |e| {
            match e.fsync(vol, i) {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno(&err)),
            }
        })
    }

    fn readdir(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.entries(i, offset, 256) {
            Ok(entries) => {
                for (ino, off, k, name, _) in entries {
                    if reply.add(INodeNo(ino), off, kind(k), OsStr::from_bytes(&name)) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        match self.entries(i, offset, 128) {
            Ok(entries) => {
                for (ino, off, _, name, attr) in entries {
                    let attr = match attr {
                        Some(a) => a,
                        None => match self.do_getattr(INodeNo(ino)) {
                            Ok(a) => a,
                            Err(_) => continue,
                        },
                    };
                    if reply.add(
                        INodeNo(ino),
                        off,
                        OsStr::from_bytes(&name),
                        ttl(attr.ino.0),
                        &fattr(&attr),
                        Generation(0),
                    ) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _i: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        if self.view != View::Live {
            reply.ok();
            return;
        }
        mutate!(self, reply, |e| {
            match e.store().sync() {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno(&FsError::Store(err))),
            }
        })
    }

    fn statfs(&self, _req: &Request, _i: INodeNo, reply: ReplyStatfs) {
        match self.engine.statfs(self.vol) {
            Ok(s) => reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.frsize,
            ),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        i: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        not_virtual!(reply, i);
        let mode = match flags {
            0 => XattrMode::Any,
            libc::XATTR_CREATE => XattrMode::Create,
            libc::XATTR_REPLACE => XattrMode::Replace,
            _ => {
                reply.error(Errno::EINVAL);
                return;
            }
        };
        let (vol, i, name, value) = (self.vol, ino(i), name.as_bytes().to_vec(), value.to_vec());
        mutate!(self, reply, |e| {
            match e.setxattr(vol, i, &name, &value, mode) {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno(&err)),
            }
        })
    }

    fn getxattr(&self, _req: &Request, i: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if i.0 == uss::SNAPDIR {
            reply.error(Errno::ENODATA);
            return;
        }
        let res = self.target(i).and_then(|(view, i)| {
            self.engine
                .getxattr(self.vol, view, i, name.as_bytes())
                .map_err(|e| errno(&e))
        });
        match res {
            Ok(v) if size == 0 => reply.size(v.len() as u32),
            Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
            Ok(v) => reply.data(&v),
            Err(e) => reply.error(e),
        }
    }

    fn listxattr(&self, _req: &Request, i: INodeNo, size: u32, reply: ReplyXattr) {
        let names = match self.target(i) {
            Ok((view, i)) => self
                .engine
                .listxattr(self.vol, view, i)
                .map_err(|e| errno(&e)),
            Err(_) if i.0 == super::uss::SNAPDIR => Ok(Vec::new()),
            Err(e) => Err(e),
        };
        match names {
            Ok(names) => {
                let mut buf = Vec::new();
                for n in names {
                    buf.extend_from_slice(&n);
                    buf.push(0);
                }
                if size == 0 {
                    reply.size(buf.len() as u32);
                } else if buf.len() > size as usize {
                    reply.error(Errno::ERANGE);
                } else {
                    reply.data(&buf);
                }
            }
            Err(e) => reply.error(e),
        }
    }

    fn removexattr(&self, _req: &Request, i: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        not_virtual!(reply, i);
        let (vol, i, name) = (self.vol, ino(i), name.as_bytes().to_vec());
        mutate!(self, reply, |e| {
            match e.removexattr(vol, i, &name) {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno(&err)),
            }
        })
    }

    fn access(&self, _req: &Request, _i: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // default_permissions: the kernel checks modes itself.
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        not_virtual!(reply, parent);
        not_snapdir!(self, reply, Errno::EEXIST, parent, name);
        let (vol, p, name, c) = (self.vol, ino(parent), name.as_bytes().to_vec(), ctx(req));
        mutate!(self, reply, |e| {
            let created = e
                .create(vol, p, &name, mode, c)
                .inspect(|a| e.open_created(vol, a.ino));
            match created {
                Ok(a) => reply.created(
                    ttl(a.ino.0),
                    &fattr(&a),
                    Generation(0),
                    FileHandle(0),
                    FopenFlags::FOPEN_KEEP_CACHE,
                ),
                Err(err) => reply.error(errno(&err)),
            }
        })
    }

    fn fallocate(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        not_virtual!(reply, i);
        // Space is never reserved in a copy-on-write store: plain allocation only grows the
        // size (mode 0) or does nothing (KEEP_SIZE); other modes are not supported.
        if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
            reply.error(Errno::EOPNOTSUPP);
            return;
        }
        let (vol, i) = (self.vol, ino(i));
        mutate!(self, reply, |e| {
            let res = (|| {
                if mode & libc::FALLOC_FL_KEEP_SIZE != 0 {
                    return Ok(());
                }
                let end = offset.checked_add(length).ok_or(FsError::FileTooBig)?;
                let a = e.getattr(vol, View::Live, i)?;
                if end > a.size {
                    e.setattr(
                        vol,
                        i,
                        SetAttr {
                            size: Some(end),
                            ..Default::default()
                        },
                    )?;
                }
                Ok(())
            })();
            match res {
                Ok(()) => reply.ok(),
                Err(err) => reply.error(errno(&err)),
            }
        })
    }
}
