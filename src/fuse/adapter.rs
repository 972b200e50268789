//! The fuser `Filesystem` implementation: one short function per kernel request that turns
//! its arguments into plain types, runs one `fs` operation inside a tracing span of its own
//! and answers through [`reply::Answer`] (how a request runs: request.rs; replies and the
//! errno mapping: reply.rs; routing into the `.snaps` tree and its refusals: uss.rs).
//!
//! Reads (lookup, getattr, read, readdir, readlink, xattr reads, statfs, open) run on the
//! session threads; every mutating request goes through the volume's
//! [`VolumeQueue`](super::queue::VolumeQueue).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::SystemTime;

use fuser::{
    CopyFileRangeFlags, Errno, FileHandle, Filesystem, INodeNo, InitFlags, KernelConfig, LockOwner,
    OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};

use super::creds;
use super::reply::{self, Xattr};
use super::request::{TandemFs, bytes, ino, op, rename_flags, time, xattr_mode};
use super::uss::{self, writable};
use crate::fs::acl::AclKind;
use crate::fs::copy::FileAt;
use crate::fs::fallocate::Allocate;
use crate::fs::seek::Seek;
use crate::fs::{Ctx, SetAttr};
use crate::store::rows::View;

/// Largest write the kernel sends (its cap).
const MAX_WRITE: u32 = 1 << 20;

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
            // The kernel enforces and caches POSIX ACLs (stored as xattrs, see fs/acl.rs);
            // it then sends the umask unapplied (DONT_MASK makes that explicit), for the
            // volume to apply or to replace by the directory's default ACL.
            InitFlags::FUSE_POSIX_ACL,
            InitFlags::FUSE_DONT_MASK,
        ] {
            let _ = config.add_capabilities(cap);
        }
        Ok(())
    }

    fn destroy(&mut self) {
        self.kernel_let_go();
    }

    // ---- namespace ----

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let span = op!("lookup", parent);
        Self::serve(span, reply, || {
            self.lookup_in(parent, name.as_bytes())
                .inspect(|a| self.kernel_holds(a))
        })
    }

    // BATCH_FORGET: fuser's default hands each of its inodes to `forget`.
    fn forget(&self, _req: &Request, i: INodeNo, nlookup: u64) {
        self.kernel_forgot(i, nlookup);
    }

    fn getattr(&self, _req: &Request, i: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        Self::serve(op!("getattr", i), reply, || self.attr_of(i))
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
        let span = op!("setattr", i, ?set);
        let vol = self.vol;
        self.mutate(span, reply, writable(&[i]), move |e, ()| {
            e.setattr(vol, ino(i), set)
        })
    }

    fn readlink(&self, _req: &Request, i: INodeNo, reply: ReplyData) {
        Self::serve(op!("readlink", i), reply, || {
            let (view, i) = self.target(i)?;
            Ok(self.engine.readlink(self.vol, view, i)?)
        })
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let span = op!("mknod", parent, mode, rdev);
        self.make_entry(span, req, (parent, name), reply, move |e, vol, p, n, c| {
            e.mknod(vol, p, n, mode, rdev, Ctx { umask, ..c })
        })
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let span = op!("mkdir", parent, mode);
        self.make_entry(span, req, (parent, name), reply, move |e, vol, p, n, c| {
            e.mkdir(vol, p, n, mode, Ctx { umask, ..c })
                .inspect(|a| e.kernel_looked_up(vol, a))
        })
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let span = op!("unlink", parent);
        let check = self.changeable(&[parent], &[(parent, name)], Errno::EPERM);
        let (vol, name) = (self.vol, bytes(name));
        self.mutate(span, reply, check, move |e, ()| {
            e.unlink(vol, ino(parent), &name)
        })
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let span = op!("rmdir", parent);
        let check = self.changeable(&[parent], &[(parent, name)], Errno::EBUSY);
        let (vol, name) = (self.vol, bytes(name));
        self.mutate(span, reply, check, move |e, ()| {
            e.rmdir(vol, ino(parent), &name)
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
        let span = op!("symlink", parent);
        let target = bytes(target.as_os_str());
        self.make_entry(
            span,
            req,
            (parent, link_name),
            reply,
            move |e, vol, p, n, c| e.symlink(vol, p, n, &target, c),
        )
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
        let span = op!(
            "rename",
            parent,
            newparent = newparent.0,
            flags = flags.bits()
        );
        let names = [(parent, name), (newparent, newname)];
        let check = self
            .changeable(&[parent, newparent], &names, Errno::EPERM)
            .and_then(|()| rename_flags(flags));
        let (vol, name, newname) = (self.vol, bytes(name), bytes(newname));
        self.mutate(span, reply, check, move |e, f| {
            e.rename(vol, ino(parent), &name, ino(newparent), &newname, f)
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
        let span = op!("link", i, newparent = newparent.0);
        let check = self.changeable(&[i, newparent], &[(newparent, newname)], Errno::EEXIST);
        let (vol, name) = (self.vol, bytes(newname));
        self.mutate(span, reply, check, move |e, ()| {
            e.link(vol, ino(i), ino(newparent), &name)
        })
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let span = op!("create", parent, mode);
        self.make_entry(span, req, (parent, name), reply, move |e, vol, p, n, c| {
            e.create(vol, p, n, mode, Ctx { umask, ..c })
                .inspect(|a| e.open_created(vol, a.ino))
        })
    }

    fn statfs(&self, _req: &Request, i: INodeNo, reply: ReplyStatfs) {
        Self::serve(op!("statfs", i), reply, || {
            Ok(self.engine.statfs(self.vol)?)
        })
    }

    fn access(&self, _req: &Request, _i: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // default_permissions: the kernel checks modes itself.
        reply.ok();
    }

    // ---- file data ----

    fn open(&self, _req: &Request, i: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        Self::serve(op!("open", i, flags = flags.0), reply, || {
            let writing =
                flags.0 & libc::O_ACCMODE != libc::O_RDONLY || flags.0 & libc::O_TRUNC != 0;
            if writing && (self.read_only || uss::is_virtual(i.0)) {
                return Err(Errno::EROFS);
            }
            let (view, i) = self.target(i)?;
            self.engine.open_file(self.vol, view, i)?;
            Ok(self.keep_cache())
        })
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
        Self::serve(op!("read", i, offset, size), reply, || {
            let (view, t) = self.target(i)?;
            let data = self.engine.read(self.vol, view, t, offset, size)?;
            self.io.read(data.len());
            self.note_access(i, false);
            Ok(data)
        })
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
        let span = op!("write", i, offset, len = data.len());
        self.pace_write(data.len());
        // Set by the kernel (HANDLE_KILLPRIV_V2) when the writer lacks CAP_FSETID.
        let kill = write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID);
        let (vol, data, notifier) = (self.vol, data.to_vec(), self.notifier.clone());
        let io = self.io.clone();
        self.mutate_write(span, reply, writable(&[i]), move |e| {
            let w = e.write_buffered(vol, ino(i), offset, &data, kill)?;
            io.wrote(w.written);
            if w.killed
                && let Some(n) = notifier.get()
            {
                // Not every kernel drops its cached mode after a write: make it ask again
                // (attributes only, no page cache: safe in a request).
                let _ = n.inval_inode(i, -1, 0);
            }
            Ok((w.written, w.over_limit))
        })
    }

    fn fallocate(
        &self,
        req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let span = op!("fallocate", i, offset, length, mode);
        let check = writable(&[i]).and_then(|()| Allocate::from_mode(mode).map_err(Errno::from));
        // The request carries no KILL_SUIDGID flag (as a write does) and the kernel leaves
        // this to us (HANDLE_KILLPRIV_V2): a caller other than root (which stands for
        // CAP_FSETID, as for a truncate) drops the file's privileges, whatever the mode.
        let kill = req.uid() != 0;
        let (vol, notifier) = (self.vol, self.notifier.clone());
        self.mutate(span, reply, check, move |e, how| {
            if e.fallocate(vol, ino(i), offset, length, how, kill)?
                && let Some(n) = notifier.get()
            {
                // The kernel may keep its cached mode: make it ask again (as after a write).
                let _ = n.inval_inode(i, -1, 0);
            }
            Ok(())
        })
    }

    fn copy_file_range(
        &self,
        req: &Request,
        ino_in: INodeNo,
        _fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        _fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let span = op!(
            "copy_file_range",
            ino_out,
            ino_in = ino_in.0,
            offset_in,
            offset_out,
            len
        );
        // The source may be a snapshot view's file (the `.snaps` tree of this mount).
        let (view, src) = match self.target(ino_in) {
            Ok(t) => t,
            Err(e) => return reply.error(e),
        };
        let src = FileAt {
            vol: self.vol,
            view,
            ino: src,
        };
        // The answer counts in 32 bits: a longer copy is answered short (the caller loops).
        let len = len.min(u64::from(u32::MAX) & !0xfff);
        // No KILL_SUIDGID flag here: as for fallocate, a caller other than root drops the
        // destination's privileges.
        let kill = req.uid() != 0;
        let (vol, notifier) = (self.vol, self.notifier.clone());
        self.mutate_write(span, reply, writable(&[ino_out]), move |e| {
            let c = e.copy_range(src, offset_in, vol, ino(ino_out), offset_out, len, kill)?;
            if c.killed
                && let Some(n) = notifier.get()
            {
                let _ = n.inval_inode(ino_out, -1, 0);
            }
            // At most `len`, which fits.
            Ok((u32::try_from(c.bytes).unwrap_or(u32::MAX), c.over_limit))
        })
    }

    fn lseek(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        Self::serve(op!("lseek", i, offset, whence), reply, || {
            // The kernel answers SEEK_SET/CUR/END itself; only DATA and HOLE come here.
            let what = Seek::from_whence(whence).ok_or(Errno::EINVAL)?;
            let offset = u64::try_from(offset).map_err(|_| Errno::ENXIO)?;
            let (view, i) = self.target(i)?;
            let at = self.engine.seek(self.vol, view, i, offset, what)?;
            i64::try_from(at).map_err(|_| Errno::EOVERFLOW)
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
        // Only live inodes count their open handles.
        if uss::is_virtual(i.0) || self.view != View::Live {
            return reply.ok();
        }
        let (vol, view) = (self.vol, self.view);
        self.mutate(op!("release", i), reply, Ok(()), move |e, ()| {
            e.release(vol, view, ino(i))
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
        // Nothing of a snapshot view is ever buffered.
        if uss::is_virtual(i.0) || self.view != View::Live {
            return reply.ok();
        }
        let vol = self.vol;
        self.mutate(op!("fsync", i), reply, Ok(()), move |e, ()| {
            crate::metrics::timed(&crate::metrics::global().fsync, || e.fsync(vol, ino(i)))
        })
    }

    // ---- directories ----

    fn opendir(&self, _req: &Request, i: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        Self::serve(op!("opendir", i, flags = flags.0), reply, || {
            // Counted as a file's handle is: a directory removed while open stays until
            // its last release (fstat on it answers, with no links).
            if uss::is_virtual(i.0) {
                return Ok(true);
            }
            let (view, i) = self.target(i)?;
            self.engine.open_file(self.vol, view, i)?;
            Ok(true)
        })
    }

    fn releasedir(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        if uss::is_virtual(i.0) || self.view != View::Live {
            return reply.ok();
        }
        let (vol, view) = (self.vol, self.view);
        self.mutate(op!("releasedir", i), reply, Ok(()), move |e, ()| {
            e.release(vol, view, ino(i))
        })
    }

    fn readdir(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        Self::serve(op!("readdir", i, offset), reply, || {
            let list = self.entries(i, offset, 256)?;
            self.note_access(i, true);
            Ok(list)
        })
    }

    fn readdirplus(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let span = op!("readdirplus", i, offset);
        let _in = span.enter();
        match self.entries(i, offset, 128) {
            Ok(list) => {
                self.note_access(i, true);
                reply::listing_plus(
                    reply,
                    list,
                    |d| self.attr_of(INodeNo(d.ino.0)).ok(),
                    |a| self.kernel_holds(a),
                )
            }
            Err(e) => reply.error(e),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        if self.view != View::Live {
            return reply.ok();
        }
        self.mutate(op!("fsyncdir", i), reply, Ok(()), |e, ()| {
            Ok(e.store().sync()?)
        })
    }

    // ---- extended attributes ----

    fn setxattr(
        &self,
        req: &Request,
        i: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let span = op!("setxattr", i, flags, len = value.len());
        let check = writable(&[i]).and_then(|()| xattr_mode(flags));
        let (vol, name, value) = (self.vol, bytes(name), value.to_vec());
        if let Some(kind) = AclKind::of(&name) {
            // The kernel checked ownership and the format; whether setgid stays depends
            // on the caller's groups and capabilities.
            let caller = creds::caller(req);
            return self.mutate(span, reply, check, move |e, _| {
                e.set_acl(vol, ino(i), kind, Some(&value), &caller)
            });
        }
        self.mutate(span, reply, check, move |e, mode| {
            e.setxattr(vol, ino(i), &name, &value, mode)
        })
    }

    fn getxattr(&self, _req: &Request, i: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        Self::serve(op!("getxattr", i, size), reply, || {
            if i.0 == uss::SNAPDIR {
                return Err(Errno::ENODATA);
            }
            let (view, i) = self.target(i)?;
            let bytes = self.engine.getxattr(self.vol, view, i, name.as_bytes())?;
            Ok(Xattr { bytes, room: size })
        })
    }

    fn listxattr(&self, _req: &Request, i: INodeNo, size: u32, reply: ReplyXattr) {
        Self::serve(op!("listxattr", i, size), reply, || {
            let names = match self.target(i) {
                Ok((view, i)) => self.engine.listxattr(self.vol, view, i)?,
                Err(_) if i.0 == uss::SNAPDIR => Vec::new(),
                Err(e) => return Err(e),
            };
            let mut bytes = Vec::new();
            for n in names {
                bytes.extend_from_slice(&n);
                bytes.push(0);
            }
            Ok(Xattr { bytes, room: size })
        })
    }

    fn removexattr(&self, _req: &Request, i: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let span = op!("removexattr", i);
        let (vol, name) = (self.vol, bytes(name));
        self.mutate(span, reply, writable(&[i]), move |e, ()| {
            e.removexattr(vol, ino(i), &name)
        })
    }
}
