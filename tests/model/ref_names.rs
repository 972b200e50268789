//! The reference filesystem's namespace operations (see reference.rs): create, mkdir,
//! mknod, symlink, unlink, rmdir, link, rename and readdir, with Linux's order of checks.

use std::collections::BTreeMap;

use libc::{EEXIST, EINVAL, EISDIR, ENAMETOOLONG, ENOENT, ENOTDIR, ENOTEMPTY, EPERM};
use tandem::fs::FileKind;

use crate::CTX;
use crate::compare::{Out, Stat};
use crate::reference::{Body, Model, Node};

impl Model {
    pub(crate) fn make(
        &mut self,
        parent: u64,
        name: &[u8],
        body: Body,
        mode: u32,
    ) -> Result<Stat, i32> {
        let entries = self.entries(parent)?;
        if entries.contains_key(name) {
            return Err(EEXIST);
        }
        let pn = self.node(parent)?;
        let sgid = pn.perm & 0o2000 != 0;
        let mut perm = (mode & 0o7777) as u16;
        let is_dir = matches!(body, Body::Dir { .. });
        if is_dir && sgid {
            perm |= 0o2000;
        }
        let gid = if sgid { pn.gid } else { CTX.gid };
        let ino = self.next_ino;
        self.next_ino += 1;
        let body = match body {
            Body::Dir { entries, .. } => Body::Dir { entries, parent },
            b => b,
        };
        self.nodes.insert(
            ino,
            Node {
                body,
                nlink: 1,
                perm,
                uid: CTX.uid,
                gid,
                xattrs: BTreeMap::new(),
            },
        );
        self.entries_mut(parent).insert(name.to_vec(), ino);
        self.stat(ino)
    }

    pub(crate) fn symlink(
        &mut self,
        parent: u64,
        name: &[u8],
        target: Vec<u8>,
    ) -> Result<Stat, i32> {
        if target.len() > 4095 {
            return Err(ENAMETOOLONG);
        }
        if target.is_empty() {
            return Err(ENOENT);
        }
        self.make(parent, name, Body::Symlink(target), 0o777)
    }

    /// Drops one link of a non-directory; the last one frees it unless it is open.
    pub(crate) fn drop_link(&mut self, ino: u64) {
        let n = self.nodes.get_mut(&ino).expect("linked node");
        n.nlink -= 1;
        if n.nlink == 0 && !self.opens.contains_key(&ino) {
            self.nodes.remove(&ino);
        }
    }

    /// Drops the name of an empty directory: it is freed unless it is open (then it stays,
    /// with no links, until its last release).
    pub(crate) fn drop_dir(&mut self, ino: u64) {
        if self.opens.contains_key(&ino) {
            self.nodes.get_mut(&ino).expect("linked node").nlink = 0;
        } else {
            self.nodes.remove(&ino);
        }
    }

    pub(crate) fn unlink(&mut self, parent: u64, name: &[u8]) -> Result<(), i32> {
        let ino = self.lookup(parent, name)?;
        if self.is_dir(ino) {
            return Err(EISDIR);
        }
        self.entries_mut(parent).remove(name);
        self.drop_link(ino);
        Ok(())
    }

    pub(crate) fn rmdir(&mut self, parent: u64, name: &[u8]) -> Result<(), i32> {
        let ino = self.lookup(parent, name)?;
        if !self.entries(ino)?.is_empty() {
            return Err(ENOTEMPTY);
        }
        self.entries_mut(parent).remove(name);
        self.drop_dir(ino);
        Ok(())
    }

    /// link(2) with Linux's order of checks: the target directory and name first, then the
    /// source's type and link count.
    pub(crate) fn link(&mut self, ino: u64, parent: u64, name: &[u8]) -> Result<Stat, i32> {
        self.node(ino)?;
        if self.entries(parent)?.contains_key(name) {
            return Err(EEXIST);
        }
        let n = self.node(ino)?;
        if n.kind() == FileKind::Dir {
            return Err(EPERM);
        }
        if n.nlink == 0 {
            return Err(ENOENT);
        }
        self.node_mut(ino)?.nlink += 1;
        self.entries_mut(parent).insert(name.to_vec(), ino);
        self.stat(ino)
    }

    /// renameat2(2) as Linux orders its checks.
    pub(crate) fn rename(
        &mut self,
        sp: u64,
        sn: &[u8],
        dp: u64,
        dn: &[u8],
        flags: u8,
    ) -> Result<(), i32> {
        let (noreplace, exchange) = (flags & 1 != 0, flags & 2 != 0);
        if noreplace && exchange {
            return Err(EINVAL);
        }
        self.entries(sp)?;
        self.entries(dp)?;
        let s = self.lookup(sp, sn)?;
        let d = self.entries(dp)?.get(dn).copied();
        let s_dir = self.is_dir(s);
        if exchange {
            let d = d.ok_or(ENOENT)?;
            if d == s {
                return Ok(());
            }
            let d_dir = self.is_dir(d);
            if (s_dir && self.within(dp, s)) || (d_dir && self.within(sp, d)) {
                return Err(EINVAL);
            }
            self.entries_mut(sp).insert(sn.to_vec(), d);
            self.entries_mut(dp).insert(dn.to_vec(), s);
            self.set_parent(s, dp);
            self.set_parent(d, sp);
            return Ok(());
        }
        if noreplace && d.is_some() {
            return Err(EEXIST);
        }
        // The source must not be an ancestor of the target, nor the target of the source.
        if s_dir && self.within(dp, s) {
            return Err(EINVAL);
        }
        if let Some(d) = d
            && self.is_dir(d)
            && self.within(sp, d)
        {
            return Err(ENOTEMPTY);
        }
        if d == Some(s) {
            return Ok(());
        }
        if let Some(d) = d {
            let d_dir = self.is_dir(d);
            if s_dir && !d_dir {
                return Err(ENOTDIR);
            }
            if !s_dir && d_dir {
                return Err(EISDIR);
            }
            if d_dir {
                if !self.entries(d)?.is_empty() {
                    return Err(ENOTEMPTY);
                }
                self.drop_dir(d);
            } else {
                self.drop_link(d);
            }
        }
        self.entries_mut(sp).remove(sn);
        self.entries_mut(dp).insert(dn.to_vec(), s);
        self.set_parent(s, dp);
        Ok(())
    }

    pub(crate) fn readdir(&self, ino: u64) -> Result<Out, i32> {
        let entries = self.entries(ino)?;
        let list = entries
            .iter()
            .map(|(n, &c)| (n.clone(), c, self.nodes[&c].kind()))
            .collect();
        Ok(Out::Dir {
            dot: ino,
            dotdot: self.parent_of(ino),
            entries: list,
        })
    }
}
