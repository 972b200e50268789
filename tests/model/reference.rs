//! The reference filesystem: a small in-memory tree of inodes (directories, files as byte
//! vectors, symlinks, fifos, extended attributes, open counts) with the POSIX semantics the
//! engine promises, errno and Linux's order of checks included. It also resolves the path
//! selectors of generated operations against its current tree.
//!
//! Knows nothing of the engine: every answer is computed from the tree alone.

use std::collections::BTreeMap;

use libc::{
    E2BIG, EEXIST, EFBIG, EINVAL, EISDIR, ENAMETOOLONG, ENODATA, ENOENT, ENOTDIR, ENOTEMPTY, EPERM,
    ERANGE,
};
use tandem::fs::{FileKind, MAX_FILE_SIZE, XattrMode};

use crate::compare::{Out, Stat};
use crate::{CTX, NAMES, P, ROOT};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    Dir {
        entries: BTreeMap<Vec<u8>, u64>,
        parent: u64,
    },
    File(Vec<u8>),
    Symlink(Vec<u8>),
    Fifo,
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) body: Body,
    /// Links of a non-directory. A directory has 1 while it has its name (it shows 2 +
    /// subdirectories, computed) and 0 once removed while open (it stays until released).
    pub(crate) nlink: u32,
    pub(crate) perm: u16,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Node {
    pub(crate) fn kind(&self) -> FileKind {
        match self.body {
            Body::Dir { .. } => FileKind::Dir,
            Body::File(_) => FileKind::File,
            Body::Symlink(_) => FileKind::Symlink,
            Body::Fifo => FileKind::Fifo,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Model {
    pub(crate) nodes: BTreeMap<u64, Node>,
    pub(crate) next_ino: u64,
    /// Open handles per inode.
    pub(crate) opens: BTreeMap<u64, u32>,
}

impl Model {
    pub(crate) fn new() -> Model {
        let root = Node {
            body: Body::Dir {
                entries: BTreeMap::new(),
                parent: ROOT,
            },
            nlink: 1,
            perm: 0o755,
            uid: 0,
            gid: 0,
            xattrs: BTreeMap::new(),
        };
        Model {
            nodes: BTreeMap::from([(ROOT, root)]),
            next_ino: 2,
            opens: BTreeMap::new(),
        }
    }

    pub(crate) fn node(&self, ino: u64) -> Result<&Node, i32> {
        self.nodes.get(&ino).ok_or(ENOENT)
    }

    pub(crate) fn node_mut(&mut self, ino: u64) -> Result<&mut Node, i32> {
        self.nodes.get_mut(&ino).ok_or(ENOENT)
    }

    pub(crate) fn entries(&self, ino: u64) -> Result<&BTreeMap<Vec<u8>, u64>, i32> {
        match &self.node(ino)?.body {
            Body::Dir { entries, .. } => Ok(entries),
            _ => Err(ENOTDIR),
        }
    }

    pub(crate) fn entries_mut(&mut self, ino: u64) -> &mut BTreeMap<Vec<u8>, u64> {
        match &mut self.nodes.get_mut(&ino).expect("checked directory").body {
            Body::Dir { entries, .. } => entries,
            _ => panic!("checked directory is not one"),
        }
    }

    pub(crate) fn is_dir(&self, ino: u64) -> bool {
        matches!(
            self.nodes.get(&ino).map(|n| &n.body),
            Some(Body::Dir { .. })
        )
    }

    pub(crate) fn parent_of(&self, dir: u64) -> u64 {
        match self.nodes[&dir].body {
            Body::Dir { parent, .. } => parent,
            _ => panic!("parent of a non-directory"),
        }
    }

    pub(crate) fn set_parent(&mut self, dir: u64, to: u64) {
        if let Some(Node {
            body: Body::Dir { parent, .. },
            ..
        }) = self.nodes.get_mut(&dir)
        {
            *parent = to;
        }
    }

    /// Is directory `ino` the directory `anc` or below it?
    pub(crate) fn within(&self, mut ino: u64, anc: u64) -> bool {
        loop {
            if ino == anc {
                return true;
            }
            if ino == ROOT {
                return false;
            }
            ino = self.parent_of(ino);
        }
    }

    pub(crate) fn lookup(&self, dir: u64, name: &[u8]) -> Result<u64, i32> {
        self.entries(dir)?.get(name).copied().ok_or(ENOENT)
    }

    /// The directory a path's last component is looked up in (not checked to be one) and
    /// the last component, as the test harness resolves it on the engine side.
    pub(crate) fn parent(&self, p: &P) -> Result<(u64, &'static [u8]), i32> {
        let mut cur = ROOT;
        for name in p.dirs() {
            cur = self.lookup(cur, name)?;
        }
        Ok((cur, p.last()))
    }

    pub(crate) fn resolve(&self, p: &P) -> Result<u64, i32> {
        let (d, n) = self.parent(p)?;
        self.lookup(d, n)
    }

    pub(crate) fn stat(&self, ino: u64) -> Result<Stat, i32> {
        let n = self.node(ino)?;
        let (nlink, size) = match &n.body {
            Body::Dir { .. } if n.nlink == 0 => (0, 0),
            Body::Dir { entries, .. } => (
                2 + entries.values().filter(|&&c| self.is_dir(c)).count() as u32,
                0,
            ),
            Body::File(d) => (n.nlink, d.len() as u64),
            Body::Symlink(t) => (n.nlink, t.len() as u64),
            Body::Fifo => (n.nlink, 0),
        };
        Ok(Stat {
            ino,
            kind: n.kind(),
            nlink,
            size,
            perm: n.perm,
            uid: n.uid,
            gid: n.gid,
        })
    }

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

    pub(crate) fn file_mut(&mut self, ino: u64) -> Result<&mut Vec<u8>, i32> {
        match &mut self.node_mut(ino)?.body {
            Body::File(d) => Ok(d),
            Body::Dir { .. } => Err(EISDIR),
            _ => Err(EINVAL),
        }
    }

    pub(crate) fn write(&mut self, ino: u64, off: u64, data: &[u8]) -> Result<u32, i32> {
        let end = off + data.len() as u64;
        if end > MAX_FILE_SIZE {
            return Err(EFBIG);
        }
        let f = self.file_mut(ino)?;
        let end = end as usize;
        if f.len() < end {
            f.resize(end, 0);
        }
        f[off as usize..end].copy_from_slice(data);
        Ok(data.len() as u32)
    }

    pub(crate) fn truncate(&mut self, ino: u64, size: u64) -> Result<Stat, i32> {
        let f = self.file_mut(ino)?;
        if size > MAX_FILE_SIZE {
            return Err(EFBIG);
        }
        f.resize(size as usize, 0);
        self.stat(ino)
    }

    /// fallocate PUNCH_HOLE or ZERO_RANGE: the range inside the file reads zeros; with
    /// `grow` (ZERO_RANGE without KEEP_SIZE) the file grows to cover it.
    pub(crate) fn punch(&mut self, ino: u64, off: u64, len: u64, grow: bool) -> Result<(), i32> {
        let end = off.checked_add(len).ok_or(EFBIG)?;
        if grow && end > MAX_FILE_SIZE {
            return Err(EFBIG);
        }
        let f = self.file_mut(ino)?;
        let stop = (end as usize).min(f.len());
        if (off as usize) < stop {
            f[off as usize..stop].fill(0);
        }
        if grow && end as usize > f.len() {
            f.resize(end as usize, 0);
        }
        Ok(())
    }

    /// copy_file_range: up to `len` bytes (short at the source's end); EINVAL for
    /// overlapping ranges of one file.
    pub(crate) fn copy(
        &mut self,
        src: u64,
        off_in: u64,
        dst: u64,
        off_out: u64,
        len: u64,
    ) -> Result<u64, i32> {
        let size = self.file_mut(src)?.len() as u64;
        self.file_mut(dst)?;
        let len = len.min(size.saturating_sub(off_in));
        if len == 0 {
            return Ok(0);
        }
        if off_out.checked_add(len).is_none_or(|e| e > MAX_FILE_SIZE) {
            return Err(EFBIG);
        }
        if src == dst && off_in < off_out + len && off_out < off_in + len {
            return Err(EINVAL);
        }
        let bytes = self.file_mut(src)?[off_in as usize..(off_in + len) as usize].to_vec();
        self.write(dst, off_out, &bytes)?;
        Ok(len)
    }

    pub(crate) fn read(&self, ino: u64, off: u64, len: u32) -> Result<Vec<u8>, i32> {
        match &self.node(ino)?.body {
            Body::File(d) => {
                let start = (off as usize).min(d.len());
                let end = (off as usize + len as usize).min(d.len());
                Ok(d[start..end].to_vec())
            }
            Body::Dir { .. } => Err(EISDIR),
            _ => Err(EINVAL),
        }
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

    pub(crate) fn setxattr(
        &mut self,
        ino: u64,
        name: &[u8],
        value: Vec<u8>,
        mode: XattrMode,
    ) -> Result<(), i32> {
        if name.is_empty() {
            return Err(ERANGE);
        }
        if value.len() > 64 * 1024 {
            return Err(E2BIG);
        }
        let n = self.node_mut(ino)?;
        let exists = n.xattrs.contains_key(name);
        match mode {
            XattrMode::Create if exists => return Err(EEXIST),
            XattrMode::Replace if !exists => return Err(ENODATA),
            _ => {}
        }
        n.xattrs.insert(name.to_vec(), value);
        Ok(())
    }

    pub(crate) fn getxattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>, i32> {
        if name.is_empty() {
            return Err(ERANGE);
        }
        self.node(ino)?.xattrs.get(name).cloned().ok_or(ENODATA)
    }

    pub(crate) fn removexattr(&mut self, ino: u64, name: &[u8]) -> Result<(), i32> {
        if name.is_empty() {
            return Err(ERANGE);
        }
        self.node_mut(ino)?
            .xattrs
            .remove(name)
            .map(|_| ())
            .ok_or(ENODATA)
    }

    pub(crate) fn open(&mut self, ino: u64) -> Result<Stat, i32> {
        let st = self.stat(ino)?;
        *self.opens.entry(ino).or_insert(0) += 1;
        Ok(st)
    }

    pub(crate) fn release(&mut self, ino: u64) {
        let n = self.opens.get_mut(&ino).expect("open handle");
        *n -= 1;
        if *n == 0 {
            self.opens.remove(&ino);
            if self.nodes.get(&ino).is_some_and(|n| n.nlink == 0) {
                self.nodes.remove(&ino);
            }
        }
    }

    /// What a reopen leaves: no handles, unlinked open files (and removed open
    /// directories) freed.
    pub(crate) fn reopened(&mut self) {
        self.opens.clear();
        self.nodes.retain(|_, n| n.nlink > 0);
    }

    /// Every path of the tree (as NAMES indices) with its inode, depth-first in name order.
    pub(crate) fn paths(&self) -> Vec<(Vec<u8>, u64)> {
        let mut out = Vec::new();
        let mut stack = vec![(Vec::new(), ROOT)];
        while let Some((path, ino)) = stack.pop() {
            if let Body::Dir { entries, .. } = &self.nodes[&ino].body {
                for (name, &child) in entries.iter().rev() {
                    let mut p = path.clone();
                    let i = NAMES.iter().position(|n| *n == name.as_slice());
                    p.push(i.expect("model names come from NAMES") as u8);
                    stack.push((p, child));
                }
            }
            if ino != ROOT {
                out.push((path, ino));
            }
        }
        out
    }

    /// The i-th path (modulo their number) whose inode satisfies `pred`.
    pub(crate) fn nth_path(&self, i: u16, pred: impl Fn(u64, &Node) -> bool) -> Option<Vec<u8>> {
        let found: Vec<Vec<u8>> = self
            .paths()
            .into_iter()
            .filter(|(_, ino)| pred(*ino, &self.nodes[ino]))
            .map(|(p, _)| p)
            .collect();
        (!found.is_empty()).then(|| found[i as usize % found.len()].clone())
    }

    /// Resolves a path selector against the current tree.
    pub(crate) fn pick(&self, p: &P) -> P {
        let or_pick = |found: Option<Vec<u8>>, fallback: P| {
            found.map(P::Path).unwrap_or_else(|| self.pick(&fallback))
        };
        match *p {
            P::Path(_) => p.clone(),
            P::Existing(i) => P::Path(
                self.nth_path(i, |_, _| true)
                    .unwrap_or_else(|| vec![(i % 4) as u8]),
            ),
            P::File(i) => or_pick(
                self.nth_path(i, |_, n| n.kind() == FileKind::File),
                P::Existing(i),
            ),
            P::Dir(i) => or_pick(
                self.nth_path(i, |_, n| n.kind() == FileKind::Dir),
                P::Existing(i),
            ),
            P::Opened(i) => or_pick(
                self.nth_path(i, |ino, _| self.opens.contains_key(&ino)),
                P::File(i),
            ),
            P::Xattred(i) => or_pick(
                self.nth_path(i, |_, n| !n.xattrs.is_empty()),
                P::Existing(i),
            ),
            // Only the world knows which files were written since their last fsync.
            P::Written(i) => self.pick(&P::File(i)),
            P::Under(i, n) => {
                let mut dirs = vec![Vec::new()];
                dirs.extend(
                    self.paths()
                        .into_iter()
                        .filter(|(p, ino)| p.len() <= 2 && self.nodes[ino].kind() == FileKind::Dir)
                        .map(|(p, _)| p),
                );
                let mut d = dirs[i as usize % dirs.len()].clone();
                d.push(n % 4);
                P::Path(d)
            }
        }
    }

    pub(crate) fn logical_bytes(&self) -> u64 {
        self.nodes
            .values()
            .map(|n| {
                if let Body::File(d) = &n.body {
                    d.len() as u64
                } else {
                    0
                }
            })
            .sum()
    }
}
