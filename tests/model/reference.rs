//! The reference filesystem: a small in-memory tree of inodes (directories, files as byte
//! vectors, symlinks, fifos, extended attributes, open counts) with the POSIX semantics the
//! engine promises, errno and Linux's order of checks included.
//!
//! This file has the tree itself (its nodes, lookups, stat and open handles); its
//! operations are spread by concern:
//! - `ref_names.rs`: the namespace (create, mkdir, symlink, unlink, rmdir, link, rename,
//!   readdir);
//! - `ref_contents.rs`: what inodes hold (file bytes: write, truncate, punch, copy, read;
//!   extended attributes);
//! - `ref_select.rs`: resolving the path selectors of generated operations against the
//!   current tree.
//!
//! Knows nothing of the engine: every answer is computed from the tree alone.

use std::collections::BTreeMap;

use libc::{ENOENT, ENOTDIR};
use tandem::fs::FileKind;

use crate::compare::Stat;
use crate::{P, ROOT};

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
}
