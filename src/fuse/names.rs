//! Namespace requests: lookups and the kernel's lookup counts, attributes, entries made,
//! removed, renamed and linked, symlink targets, statfs. Each runs one `fs` operation (reads
//! on the session thread, changes through the volume's queue); the adapter calls these.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use fuser::{
    Errno, INodeNo, ReplyAttr, ReplyCreate, ReplyData, ReplyEmpty, ReplyEntry, ReplyStatfs, Request,
};

use super::request::{TandemFs, bytes, ino, op, rename_flags};
use super::uss::writable;
use crate::fs::{Ctx, SetAttr};

impl TandemFs {
    /// An entry's attributes; a directory's answer counts as a kernel lookup.
    pub(super) fn on_lookup(&self, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let span = op!("lookup", parent);
        Self::serve(span, reply, || {
            self.lookup_in(parent, name.as_bytes())
                .inspect(|a| self.kernel_holds(a))
        })
    }

    pub(super) fn on_getattr(&self, i: INodeNo, reply: ReplyAttr) {
        Self::serve(op!("getattr", i), reply, || self.attr_of(i))
    }

    pub(super) fn on_setattr(&self, i: INodeNo, set: SetAttr, reply: ReplyAttr) {
        let span = op!("setattr", i, ?set);
        let vol = self.vol;
        self.mutate(span, reply, writable(&[i]), move |e, ()| {
            e.setattr(vol, ino(i), set)
        })
    }

    pub(super) fn on_readlink(&self, i: INodeNo, reply: ReplyData) {
        Self::serve(op!("readlink", i), reply, || {
            let (view, i) = self.target(i)?;
            Ok(self.engine.readlink(self.vol, view, i)?)
        })
    }

    pub(super) fn on_mknod(
        &self,
        req: &Request,
        (parent, name): (INodeNo, &OsStr),
        (mode, umask, rdev): (u32, u32, u32),
        reply: ReplyEntry,
    ) {
        let span = op!("mknod", parent, mode, rdev);
        self.make_entry(span, req, (parent, name), reply, move |e, vol, p, n, c| {
            e.mknod(vol, p, n, mode, rdev, Ctx { umask, ..c })
        })
    }

    /// A new directory; its answer counts as a kernel lookup.
    pub(super) fn on_mkdir(
        &self,
        req: &Request,
        (parent, name): (INodeNo, &OsStr),
        (mode, umask): (u32, u32),
        reply: ReplyEntry,
    ) {
        let span = op!("mkdir", parent, mode);
        self.make_entry(span, req, (parent, name), reply, move |e, vol, p, n, c| {
            e.mkdir(vol, p, n, mode, Ctx { umask, ..c })
                .inspect(|a| e.kernel_looked_up(vol, a))
        })
    }

    pub(super) fn on_unlink(&self, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let span = op!("unlink", parent);
        let check = self.changeable(&[parent], &[(parent, name)], Errno::EPERM);
        let (vol, name) = (self.vol, bytes(name));
        self.mutate(span, reply, check, move |e, ()| {
            e.unlink(vol, ino(parent), &name)
        })
    }

    pub(super) fn on_rmdir(&self, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let span = op!("rmdir", parent);
        let check = self.changeable(&[parent], &[(parent, name)], Errno::EBUSY);
        let (vol, name) = (self.vol, bytes(name));
        self.mutate(span, reply, check, move |e, ()| {
            e.rmdir(vol, ino(parent), &name)
        })
    }

    pub(super) fn on_symlink(
        &self,
        req: &Request,
        (parent, name): (INodeNo, &OsStr),
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let span = op!("symlink", parent);
        let target = bytes(target.as_os_str());
        self.make_entry(span, req, (parent, name), reply, move |e, vol, p, n, c| {
            e.symlink(vol, p, n, &target, c)
        })
    }

    pub(super) fn on_rename(
        &self,
        (parent, name): (INodeNo, &OsStr),
        (newparent, newname): (INodeNo, &OsStr),
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

    pub(super) fn on_link(
        &self,
        i: INodeNo,
        (newparent, newname): (INodeNo, &OsStr),
        reply: ReplyEntry,
    ) {
        let span = op!("link", i, newparent = newparent.0);
        let check = self.changeable(&[i, newparent], &[(newparent, newname)], Errno::EEXIST);
        let (vol, name) = (self.vol, bytes(newname));
        self.mutate(span, reply, check, move |e, ()| {
            e.link(vol, ino(i), ino(newparent), &name)
        })
    }

    /// A new regular file, opened (its handle counted).
    pub(super) fn on_create(
        &self,
        req: &Request,
        (parent, name): (INodeNo, &OsStr),
        (mode, umask): (u32, u32),
        reply: ReplyCreate,
    ) {
        let span = op!("create", parent, mode);
        self.make_entry(span, req, (parent, name), reply, move |e, vol, p, n, c| {
            e.create(vol, p, n, mode, Ctx { umask, ..c })
                .inspect(|a| e.open_created(vol, a.ino))
        })
    }

    pub(super) fn on_statfs(&self, i: INodeNo, reply: ReplyStatfs) {
        Self::serve(op!("statfs", i), reply, || {
            Ok(self.engine.statfs(self.vol)?)
        })
    }
}
