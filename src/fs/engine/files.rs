//! [`Engine`]'s file operations: namespace, open handles, file data, attributes and
//! extended attributes.

use super::Engine;
use crate::fs::acl::{AclKind, Caller};
use crate::fs::copy::{Copied, FileAt};
use crate::fs::fallocate::Allocate;
use crate::fs::seek::Seek;
use crate::fs::{Attr, Ctx, DirEntry, FsError, RenameFlags, SetAttr, StatFs, Written, XattrMode};
use crate::store::rows::View;
use crate::types::{InodeNo, VolumeId};

/// # Namespace
///
/// Names, directories and links (ns.rs, remove.rs). Each change is one writer job that
/// checks before it mutates; unlink, create, mknod, symlink and mkdir are answered before
/// their commit (see pending.rs and make.rs).
impl Engine {
    /// The attributes of `ino` as `view` sees it (live: with buffered writes).
    /// A removed directory the kernel still holds answers with no links (ghosts.rs).
    pub fn getattr(&self, vol: VolumeId, view: View, ino: InodeNo) -> Result<Attr, FsError> {
        let found = self.inner.getattr(vol, view, ino);
        self.inner.or_ghost(vol, view, ino, found)
    }

    /// The attributes of entry `name` of directory `parent` (ENOENT, ENOTDIR).
    pub fn lookup(
        &self,
        vol: VolumeId,
        view: View,
        parent: InodeNo,
        name: &[u8],
    ) -> Result<Attr, FsError> {
        self.inner.lookup(vol, view, parent, name)
    }

    /// mknod(2): regular files (mode type 0 or S_IFREG), fifos, sockets, devices.
    pub fn mknod(
        &self,
        vol: VolumeId,
        parent: InodeNo,
        name: &[u8],
        mode: u32,
        rdev: u32,
        ctx: Ctx,
    ) -> Result<Attr, FsError> {
        self.inner.mknod(vol, parent, name, mode, rdev, ctx)
    }

    /// Creates a regular file.
    pub fn create(
        &self,
        vol: VolumeId,
        parent: InodeNo,
        name: &[u8],
        mode: u32,
        ctx: Ctx,
    ) -> Result<Attr, FsError> {
        self.inner.create(vol, parent, name, mode, ctx)
    }

    /// Creates a directory.
    pub fn mkdir(
        &self,
        vol: VolumeId,
        parent: InodeNo,
        name: &[u8],
        mode: u32,
        ctx: Ctx,
    ) -> Result<Attr, FsError> {
        self.inner.mkdir(vol, parent, name, mode, ctx)
    }

    /// Creates a symbolic link to `target`.
    pub fn symlink(
        &self,
        vol: VolumeId,
        parent: InodeNo,
        name: &[u8],
        target: &[u8],
        ctx: Ctx,
    ) -> Result<Attr, FsError> {
        self.inner.symlink(vol, parent, name, target, ctx)
    }

    /// The target of a symbolic link.
    pub fn readlink(&self, vol: VolumeId, view: View, ino: InodeNo) -> Result<Vec<u8>, FsError> {
        self.inner.readlink(vol, view, ino)
    }

    /// Adds the name `newname` in `newparent` for the non-directory `ino`.
    pub fn link(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        newparent: InodeNo,
        newname: &[u8],
    ) -> Result<Attr, FsError> {
        self.inner.link(vol, ino, newparent, newname)
    }

    /// rename(2) and renameat2(2) with `flags` (noreplace, exchange).
    pub fn rename(
        &self,
        vol: VolumeId,
        parent: InodeNo,
        name: &[u8],
        newparent: InodeNo,
        newname: &[u8],
        flags: RenameFlags,
    ) -> Result<(), FsError> {
        self.inner
            .rename(vol, parent, name, newparent, newname, flags)
    }

    /// Removes a name that is not a directory. Checked against the rows and the pending
    /// unlinks, answered at once and committed by the writer's next batch (write-behind, see
    /// pending.rs): its effect is visible to every later read and mutation meanwhile.
    pub fn unlink(&self, vol: VolumeId, parent: InodeNo, name: &[u8]) -> Result<(), FsError> {
        self.inner.unlink(vol, parent, name)
    }

    /// Removes an empty directory (committed before it returns).
    pub fn rmdir(&self, vol: VolumeId, parent: InodeNo, name: &[u8]) -> Result<(), FsError> {
        self.inner.rmdir(vol, parent, name)
    }

    /// Directory entries after cookie `offset` (0: from the start, with "." and ".."), at
    /// most `max`. Cookies are name hashes, so they stay valid while the directory changes.
    pub fn readdir(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
        offset: u64,
        max: usize,
    ) -> Result<Vec<DirEntry>, FsError> {
        match self.inner.readdir(vol, view, ino, offset, max) {
            // A removed directory the kernel still holds: empty (as the kernel shows it).
            Err(FsError::NotFound) if self.inner.is_ghost(vol, view, ino) => Ok(Vec::new()),
            other => other,
        }
    }

    /// Notes a read of `ino` (a listing when `dir`) by a mount with atime `policy`: the new
    /// atime is kept in memory and committed with the next batch (see `fs::atime`).
    pub fn accessed(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        policy: crate::fs::atime::Atime,
        dir: bool,
    ) -> Result<(), FsError> {
        self.inner.accessed(vol, ino, policy, dir)
    }

    /// Would a read of `ino` now update its atime under `policy` (see `fs::atime`)?
    pub fn atime_due(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        policy: crate::fs::atime::Atime,
    ) -> Result<bool, FsError> {
        self.inner.atime_due(vol, ino, policy)
    }

    /// statfs: the pool filesystem's real space; file counts of the volume.
    pub fn statfs(&self, vol: VolumeId) -> Result<StatFs, FsError> {
        self.inner.statfs(vol)
    }
}

/// # Open handles
///
/// A file unlinked while open stays readable until its last release (opens.rs); a
/// directory removed while the kernel holds it answers until the kernel forgets it
/// (ghosts.rs).
impl Engine {
    /// The kernel got `attr` of a live inode in an entry reply (lookup, mkdir, a
    /// readdirplus entry): a directory's lookup count goes up by one.
    pub fn kernel_looked_up(&self, vol: VolumeId, attr: &Attr) {
        self.inner.held().looked_up(vol, attr)
    }

    /// The kernel forgot `n` lookups of live inode `ino` (FORGET, BATCH_FORGET).
    pub fn kernel_forgot(&self, vol: VolumeId, ino: InodeNo, n: u64) {
        self.inner.held().forgot(vol, ino, n)
    }

    /// The volume's FUSE session ended: the kernel holds none of its inodes any more.
    pub fn kernel_let_go(&self, vol: VolumeId) {
        self.inner.held().forget_volume(vol)
    }

    /// Counts an open handle of a file or directory (one removed while open stays until
    /// the last release). (`open_file`, not `open`: [`Engine::open`] opens the pool.)
    pub fn open_file(&self, vol: VolumeId, view: View, ino: InodeNo) -> Result<Attr, FsError> {
        self.inner.open(vol, view, ino)
    }

    /// Counts the handle a create(2) opens on the file it just made (its attributes are
    /// known, and no one else can reach the name before the create is answered).
    pub fn open_created(&self, vol: VolumeId, ino: InodeNo) {
        self.inner.open_created(vol, ino)
    }

    /// Holds every commit until the returned guard is dropped (tests: write-behind
    /// operations then stay in the overlay; one that commits before it answers would wait).
    #[doc(hidden)]
    pub fn pause_commits(&self) -> Result<super::super::CommitPause, FsError> {
        super::super::CommitPause::start(self.inner.store())
    }

    /// Would [`Engine::setattr`] of `ino` with `set` commit before it answers (a buffer to
    /// flush, or a change that is not write-behind)? Tests that hold commits ask first.
    #[doc(hidden)]
    pub fn setattr_commits_first(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        set: &SetAttr,
    ) -> Result<bool, FsError> {
        self.inner.setattr_commits_first(vol, ino, set)
    }

    /// Releases a handle; the last release of an unlinked file (or removed directory) frees
    /// it.
    pub fn release(&self, vol: VolumeId, view: View, ino: InodeNo) -> Result<(), FsError> {
        self.inner.release(vol, view, ino)
    }
}

/// # File data
///
/// Buffered writes, reads that see them, fallocate and hole punching, instant copies and
/// SEEK_DATA/SEEK_HOLE (data.rs, fallocate.rs, punch.rs, copy.rs, seek.rs).
impl Engine {
    /// Writes `data` at `offset`; returns the bytes written. Buffered: see the module docs.
    pub fn write(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        offset: u64,
        data: &[u8],
    ) -> Result<u32, FsError> {
        self.inner.write(vol, ino, offset, data)
    }

    /// As [`Engine::write`]; with `kill_priv` (a caller without CAP_FSETID) the file's
    /// privileges are dropped first, as Linux does on write. Returns the bytes written and
    /// whether privileges were dropped (the kernel's cached mode is then stale).
    pub fn write_as(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        offset: u64,
        data: &[u8],
        kill_priv: bool,
    ) -> Result<(u32, bool), FsError> {
        self.inner.write_as(vol, ino, offset, data, kill_priv)
    }

    /// The buffering part of [`Engine::write_as`]: the flush a buffer past its limit needs
    /// is left to the caller ([`Written::over_limit`]), who may answer the writer first.
    pub fn write_buffered(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        offset: u64,
        data: &[u8],
        kill_priv: bool,
    ) -> Result<Written, FsError> {
        self.inner.write_buffered(vol, ino, offset, data, kill_priv)
    }

    /// Flushes a volume whose buffer is past its limit (after waiting for a flush in
    /// flight, which may have brought it below): what a writer that took it there must do
    /// before writing more (see [`Written::over_limit`]).
    pub fn flush_over_limit(&self, vol: VolumeId) -> Result<(), FsError> {
        self.inner.flush_over_limit(vol)
    }

    /// How long a write of `len` bytes should wait before it is let in, so writers slow
    /// down smoothly to what the flushes store (see `fs::pace`); `None`: at once.
    pub fn write_pause(&self, vol: VolumeId, len: usize) -> Option<std::time::Duration> {
        self.inner.write_pause(vol, len)
    }

    /// Reads up to `size` bytes at `offset` (short at end of file).
    pub fn read(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
        offset: u64,
        size: u32,
    ) -> Result<Vec<u8>, FsError> {
        self.inner.read(vol, view, ino, offset, size)
    }

    /// fallocate(2) on a live file: grows it to `offset + length` when it is shorter (new
    /// mtime and ctime, as a truncate up); a file already that long is left untouched.
    /// With `kill_priv` (a caller without CAP_FSETID) the file's setuid/setgid bits and
    /// capabilities are dropped, as Linux does on every data change; returns whether it had
    /// any (the kernel's cached mode is then stale).
    /// EFBIG when the range ends past [`crate::fs::MAX_FILE_SIZE`] (or overflows), EISDIR for a
    /// directory and EINVAL for a special file that would have to grow.
    pub fn fallocate(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        offset: u64,
        length: u64,
        how: Allocate,
        kill_priv: bool,
    ) -> Result<bool, FsError> {
        self.inner
            .fallocate(vol, ino, offset, length, how, kill_priv)
    }

    /// copy_file_range(2): copies up to `len` bytes of `src` (a live file of any volume of
    /// the pool, or a snapshot view's) at `off_in` to the live file `dst` of `dst_vol` at
    /// `off_out`, sharing whole blocks (no data copied, no new space) where both offsets
    /// are equally aligned. A short count past the source's end or one call's bound; with
    /// `kill_priv` the destination's privileges are dropped, as by a write.
    #[allow(clippy::too_many_arguments)]
    pub fn copy_range(
        &self,
        src: FileAt,
        off_in: u64,
        dst_vol: VolumeId,
        dst: InodeNo,
        off_out: u64,
        len: u64,
        kill_priv: bool,
    ) -> Result<Copied, FsError> {
        self.inner
            .copy_range(src, off_in, dst_vol, dst, off_out, len, kill_priv)
    }

    /// Copies the file `src` (any volume of the pool, or a snapshot view) to entry `name` of
    /// the live directory `parent` of `dst_vol`, sharing whole blocks: creates it with the
    /// source's permission bits, owned by `ctx`, or truncates the regular file there.
    pub fn copy_file(
        &self,
        src: FileAt,
        dst_vol: VolumeId,
        parent: InodeNo,
        name: &[u8],
        ctx: Ctx,
    ) -> Result<(InodeNo, Copied), FsError> {
        self.inner.copy_file(src, dst_vol, parent, name, ctx)
    }

    /// lseek(2) SEEK_DATA / SEEK_HOLE from `offset`, from the file's block map (live: with
    /// its buffered blocks). ENXIO at or past the end, or when no data follows.
    pub fn seek(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
        offset: u64,
        what: Seek,
    ) -> Result<u64, FsError> {
        self.inner.seek(vol, view, ino, offset, what)
    }
}

/// # Attributes and extended attributes
///
/// (setattr.rs, xattr.rs.)
impl Engine {
    /// Changes mode, owner, size (truncate both ways) and times of `ino`, in one commit
    /// (the file's buffered writes are committed first).
    pub fn setattr(&self, vol: VolumeId, ino: InodeNo, set: SetAttr) -> Result<Attr, FsError> {
        match self.inner.setattr(vol, ino, set) {
            // A removed directory the kernel still holds changes in memory (ghosts.rs).
            Err(FsError::NotFound) => self.inner.ghost_setattr(vol, ino, &set),
            other => other,
        }
    }

    /// Sets extended attribute `name` (`mode`: create only, replace only, or either).
    pub fn setxattr(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        name: &[u8],
        value: &[u8],
        mode: XattrMode,
    ) -> Result<(), FsError> {
        match self.inner.setxattr(vol, ino, name, value, mode) {
            Err(FsError::NotFound) => match AclKind::of(name) {
                Some(kind) => {
                    self.inner
                        .ghost_set_acl(vol, ino, kind, Some(value), &Caller::privileged())
                }
                None => self
                    .inner
                    .ghost_change_xattr(vol, ino, name, Some(value), mode),
            },
            other => other,
        }
    }

    /// Sets (`Some`) or removes (`None`) a POSIX ACL of `ino` (the xattr format); the mode
    /// follows an access ACL and loses setgid unless `caller` may keep it (see acl.rs).
    pub fn set_acl(
        &self,
        vol: VolumeId,
        ino: InodeNo,
        kind: AclKind,
        value: Option<&[u8]>,
        caller: &Caller,
    ) -> Result<(), FsError> {
        match self.inner.set_acl(vol, ino, kind, value, caller) {
            Err(FsError::NotFound) => self.inner.ghost_set_acl(vol, ino, kind, value, caller),
            other => other,
        }
    }

    /// The value of extended attribute `name` (ENODATA when absent).
    pub fn getxattr(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
        name: &[u8],
    ) -> Result<Vec<u8>, FsError> {
        match self.inner.getxattr(vol, view, ino, name) {
            // A removed directory the kernel still holds keeps them in memory (ghosts.rs).
            Err(FsError::NotFound) => self.inner.ghost_xattr(vol, view, ino, name),
            other => other,
        }
    }

    /// The names of the extended attributes of `ino`.
    pub fn listxattr(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
    ) -> Result<Vec<Vec<u8>>, FsError> {
        match self.inner.listxattr(vol, view, ino) {
            Err(FsError::NotFound) => self.inner.ghost_xattr_names(vol, view, ino),
            other => other,
        }
    }

    /// Removes extended attribute `name` (ENODATA when absent).
    pub fn removexattr(&self, vol: VolumeId, ino: InodeNo, name: &[u8]) -> Result<(), FsError> {
        match self.inner.removexattr(vol, ino, name) {
            Err(FsError::NotFound) => match AclKind::of(name) {
                Some(kind) => self
                    .inner
                    .ghost_set_acl(vol, ino, kind, None, &Caller::privileged()),
                None => self
                    .inner
                    .ghost_change_xattr(vol, ino, name, None, XattrMode::Any),
            },
            other => other,
        }
    }
}
