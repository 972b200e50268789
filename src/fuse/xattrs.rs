//! Extended attribute requests; POSIX ACLs (set as xattrs) go to `fs::acl`.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use fuser::{Errno, INodeNo, ReplyEmpty, ReplyXattr, Request};

use super::creds;
use super::reply::Xattr;
use super::request::{TandemFs, bytes, ino, op, xattr_mode};
use super::uss::{self, writable};
use crate::fs::acl::AclKind;

impl TandemFs {
    pub(super) fn on_setxattr(
        &self,
        req: &Request,
        (i, name): (INodeNo, &OsStr),
        value: &[u8],
        flags: i32,
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

    pub(super) fn on_getxattr(&self, i: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        Self::serve(op!("getxattr", i, size), reply, || {
            if i.0 == uss::SNAPDIR {
                return Err(Errno::ENODATA);
            }
            let (view, i) = self.target(i)?;
            let bytes = self.engine.getxattr(self.vol, view, i, name.as_bytes())?;
            Ok(Xattr { bytes, room: size })
        })
    }

    pub(super) fn on_listxattr(&self, i: INodeNo, size: u32, reply: ReplyXattr) {
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

    pub(super) fn on_removexattr(&self, i: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let span = op!("removexattr", i);
        let (vol, name) = (self.vol, bytes(name));
        self.mutate(span, reply, writable(&[i]), move |e, ()| {
            e.removexattr(vol, ino(i), &name)
        })
    }
}
