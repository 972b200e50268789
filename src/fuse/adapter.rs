//! The fuser `Filesystem` implementation: a shim per kernel request that hands the
//! arguments it needs, as plain types, to the `on_*` function of its concern, which runs one
//! `fs` operation inside a tracing span of its own and answers through [`reply::Answer`](
//! super::reply::Answer). Namespace requests and the kernel's lookup counts: names.rs;
//! file data: data.rs; directories: dirs.rs; extended attributes: xattrs.rs (how a request
//! runs: request.rs; replies and the errno mapping: reply.rs; routing into the `.snaps`
//! tree and its refusals: uss.rs).
//!
//! Reads (lookup, getattr, read, readdir, readlink, xattr reads, statfs, open) run on the
//! session threads; every mutating request goes through the volume's
//! [`VolumeQueue`](super::queue::VolumeQueue). Every entry reply that can be a directory
//! (lookup, mkdir, readdirplus) counts as a kernel lookup, FORGET takes it back and the end
//! of the session drops them all (see `fs::ghosts`).

use std::ffi::OsStr;
use std::time::SystemTime;

use fuser::{
    CopyFileRangeFlags, Errno, FileHandle, Filesystem, INodeNo, InitFlags, KernelConfig, LockOwner,
    OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty,
    ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};

use super::request::{TandemFs, time};
use crate::fs::SetAttr;

/// Largest write the kernel sends (its cap), and the readahead asked for.
pub const MAX_WRITE: u32 = 1 << 20;

/// What tandem asks the kernel for at INIT: each changes how many requests the kernel sends,
/// or how large. Writeback caching stays off: every write(2) is a WRITE request. Public so
/// that the benchmarks' FUSE passthrough mounts exactly the same way.
pub const KERNEL_CAPABILITIES: [InitFlags; 11] = [
    InitFlags::FUSE_DO_READDIRPLUS,
    InitFlags::FUSE_READDIRPLUS_AUTO,
    InitFlags::FUSE_PARALLEL_DIROPS,
    InitFlags::FUSE_ASYNC_READ,
    InitFlags::FUSE_BIG_WRITES,
    InitFlags::FUSE_MAX_PAGES,
    InitFlags::FUSE_CACHE_SYMLINKS,
    InitFlags::FUSE_EXPORT_SUPPORT,
    // We drop setuid/setgid/caps on write, truncate and chown ourselves, so the kernel
    // marks inodes S_NOSEC and stops asking GETXATTR(security.capability) before every
    // write (one round trip per write saved).
    InitFlags::FUSE_HANDLE_KILLPRIV_V2,
    // The kernel enforces and caches POSIX ACLs (stored as xattrs, see fs/acl.rs); it then
    // sends the umask unapplied (DONT_MASK makes that explicit), for the volume to apply or
    // to replace by the directory's default ACL.
    InitFlags::FUSE_POSIX_ACL,
    InitFlags::FUSE_DONT_MASK,
];

impl Filesystem for TandemFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let _ = config.set_max_write(MAX_WRITE);
        let _ = config.set_max_readahead(MAX_WRITE);
        for cap in KERNEL_CAPABILITIES {
            let _ = config.add_capabilities(cap);
        }
        Ok(())
    }

    fn destroy(&mut self) {
        self.kernel_let_go();
    }

    // ---- namespace (names.rs) ----

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.on_lookup(parent, name, reply)
    }

    // BATCH_FORGET: fuser's default hands each of its inodes to `forget`.
    fn forget(&self, _req: &Request, i: INodeNo, nlookup: u64) {
        self.kernel_forgot(i, nlookup);
    }

    fn getattr(&self, _req: &Request, i: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.on_getattr(i, reply)
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
        self.on_setattr(i, set, reply)
    }

    fn readlink(&self, _req: &Request, i: INodeNo, reply: ReplyData) {
        self.on_readlink(i, reply)
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
        self.on_mknod(req, (parent, name), (mode, umask, rdev), reply)
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
        self.on_mkdir(req, (parent, name), (mode, umask), reply)
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.on_unlink(parent, name, reply)
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.on_rmdir(parent, name, reply)
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        self.on_symlink(req, (parent, link_name), target, reply)
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
        self.on_rename((parent, name), (newparent, newname), flags, reply)
    }

    fn link(
        &self,
        _req: &Request,
        i: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        self.on_link(i, (newparent, newname), reply)
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
        self.on_create(req, (parent, name), (mode, umask), reply)
    }

    fn statfs(&self, _req: &Request, i: INodeNo, reply: ReplyStatfs) {
        self.on_statfs(i, reply)
    }

    fn access(&self, _req: &Request, _i: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // default_permissions: the kernel checks modes itself.
        reply.ok();
    }

    // ---- file data (data.rs) ----

    fn open(&self, _req: &Request, i: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.on_open(i, flags.0, reply)
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
        self.on_read(i, offset, size, reply)
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
        // Set by the kernel (HANDLE_KILLPRIV_V2) when the writer lacks CAP_FSETID.
        let kill = write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID);
        self.on_write(i, offset, data, kill, reply)
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
        self.on_fallocate(req, i, (offset, length), mode, reply)
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
        self.on_copy_file_range(req, (ino_in, offset_in), (ino_out, offset_out), len, reply)
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
        self.on_lseek(i, offset, whence, reply)
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
        self.on_release(i, reply)
    }

    fn fsync(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.on_fsync(i, reply)
    }

    // ---- directories (dirs.rs) ----

    fn opendir(&self, _req: &Request, i: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        self.on_opendir(i, flags.0, reply)
    }

    fn releasedir(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.on_releasedir(i, reply)
    }

    fn readdir(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        self.on_readdir(i, offset, reply)
    }

    fn readdirplus(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        self.on_readdirplus(i, offset, reply)
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        i: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.on_fsyncdir(i, reply)
    }

    // ---- extended attributes (xattrs.rs) ----

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
        self.on_setxattr(req, (i, name), value, flags, reply)
    }

    fn getxattr(&self, _req: &Request, i: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        self.on_getxattr(i, name, size, reply)
    }

    fn listxattr(&self, _req: &Request, i: INodeNo, size: u32, reply: ReplyXattr) {
        self.on_listxattr(i, size, reply)
    }

    fn removexattr(&self, _req: &Request, i: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.on_removexattr(i, name, reply)
    }
}
