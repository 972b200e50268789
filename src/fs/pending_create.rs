//! Creates that were answered but are not committed yet (write-behind create, mknod,
//! symlink and mkdir), and hard links (a new name of an existing inode): the second half of
//! the overlay in pending.rs, whose module doc gives the rules (job numbers,
//! `ReadView::committed_jobs`, the FIFO writer queue).
//!
//! Until the commit, the live views read the committed rows corrected by this overlay:
//! - the new name shows in lookup and readdir (unless a later pending unlink hides it);
//! - a linked inode shows one link more per pending link, with the new ctime;
//! - the new inode has the attributes it was created with (plus its buffered writes), and
//!   the ACLs its commit writes (so a create inside a pending directory inherits that
//!   directory's default ACL);
//! - the directory shows the new mtime and ctime, and one link more per new subdirectory.
//!
//! A directory whose mkdir is pending is a parent like any other: creates inside it are
//! pending too, queued behind its job, so they commit in the same or a later batch (the
//! writer's queue is FIFO and a batch is one transaction): no commit, durable or not, ever
//! holds a file whose directory is missing. Its readdir lists only overlay names (the rows
//! have none).
//!
//! Invariants:
//! - A pending create's inode number is allocated in memory (`VolState::next_ino`, seeded
//!   from the committed volume record) and is at or above the committed `next_ino` until
//!   its commit raises it past: a reader that misses an inode below the committed
//!   `next_ino` knows it is gone, one above it may wait for the writer (`Inner::settle`).
//! - A name has at most one pending create whose job is not followed by a pending unlink
//!   of it: creates check the name against the rows and this overlay under the overlay lock.

use std::collections::{BTreeMap, HashMap};

use super::acl::Inherited;
use super::attr::{Attr, FileKind, Inode, Timestamp};
use super::pending::{later, take_job};
use super::pending_attr::Since;
use crate::types::InodeNo;

/// One pending create of a name: (job, inode, kind).
pub(crate) type Made = (u64, InodeNo, FileKind);

/// The pending creates of one volume.
#[derive(Default)]
pub(crate) struct Creates {
    /// (directory, name) -> its pending creates, oldest first. Ordered so that readdir
    /// can take one directory's names.
    names: BTreeMap<(InodeNo, Vec<u8>), Vec<Made>>,
    /// inode -> its pending create.
    inodes: HashMap<InodeNo, Created>,
    /// directory -> pending creates and links in it, with the mtime/ctime.
    dirs: HashMap<InodeNo, std::collections::VecDeque<(u64, Timestamp)>>,
    /// directory -> pending mkdirs in it (each one link more for the directory): apart,
    /// so that counting them does not walk every pending create of a large directory.
    mkdirs: HashMap<InodeNo, std::collections::VecDeque<u64>>,
    /// inode -> pending hard links to it (each adds a link), with the ctime.
    links: HashMap<InodeNo, std::collections::VecDeque<(u64, Timestamp)>>,
}

/// One pending create: its job, the inode as created and the ACLs its commit writes.
struct Created {
    job: u64,
    inode: Inode,
    acls: Inherited,
}

impl Creates {
    /// Every pending create and link has a name here.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The latest pending create of `name` in `dir` that a reader holding the jobs below
    /// `committed` does not show yet.
    pub fn entry(&self, dir: InodeNo, name: &[u8], committed: u64) -> Option<Made> {
        if self.names.is_empty() {
            return None;
        }
        self.names
            .get(&(dir, name.to_vec()))?
            .iter()
            .filter(|m| m.0 >= committed)
            .max_by_key(|m| m.0)
            .copied()
    }

    /// Every name of `dir` with a pending create the reader does not show yet: (name,
    /// latest such create).
    pub fn in_dir(&self, dir: InodeNo, committed: u64) -> Vec<(Vec<u8>, Made)> {
        if self.names.is_empty() {
            return Vec::new();
        }
        let from = (dir, Vec::new());
        self.names
            .range(from..)
            .take_while(|((d, _), _)| *d == dir)
            .filter_map(|((_, name), made)| {
                let m = made
                    .iter()
                    .filter(|m| m.0 >= committed)
                    .max_by_key(|m| m.0)?;
                Some((name.clone(), *m))
            })
            .collect()
    }

    /// The inode as created, when its create is pending for the reader.
    pub fn inode(&self, ino: InodeNo, committed: u64) -> Option<&Inode> {
        self.created(ino, committed).map(|c| &c.inode)
    }

    /// The ACLs a pending create's commit writes, when it is pending for the reader.
    pub fn acls(&self, ino: InodeNo, committed: u64) -> Option<&Inherited> {
        self.created(ino, committed).map(|c| &c.acls)
    }

    fn created(&self, ino: InodeNo, committed: u64) -> Option<&Created> {
        self.inodes.get(&ino).filter(|c| c.job >= committed)
    }

    /// Subdirectories of `dir` whose mkdir is pending for the reader (links it gains).
    pub fn subdirs(&self, dir: InodeNo, committed: u64) -> u32 {
        (self.mkdirs.get(&dir).into_iter().flatten())
            .filter(|n| **n >= committed)
            .count() as u32
    }

    /// Links pending hard links add to `ino`, beyond what the reader's rows show.
    pub fn added_links(&self, ino: InodeNo, committed: u64) -> u32 {
        (self.links.get(&ino).into_iter().flatten())
            .filter(|(n, _)| *n >= committed)
            .count() as u32
    }

    /// Corrects attributes by the creates in a directory and the hard links to an inode
    /// that the reader does not show (times only by the jobs after `since`).
    pub fn apply(&self, attr: &mut Attr, committed: u64, since: Since) {
        for (n, t) in self.links.get(&attr.ino).into_iter().flatten() {
            if *n >= committed {
                attr.nlink += 1;
                if since.ctime_after(*n) {
                    attr.ctime = later(attr.ctime, *t);
                }
            }
        }
        for (n, t) in self.dirs.get(&attr.ino).into_iter().flatten() {
            if *n >= committed {
                if since.mtime_after(*n) {
                    attr.mtime = later(attr.mtime, *t);
                }
                if since.ctime_after(*n) {
                    attr.ctime = later(attr.ctime, *t);
                }
            }
        }
        attr.nlink += self.subdirs(attr.ino, committed);
    }

    /// Records create job `job` of `name` in `dir`: the new inode `ino`, with the ACLs
    /// its commit writes.
    pub fn add(
        &mut self,
        job: u64,
        dir: InodeNo,
        name: &[u8],
        ino: InodeNo,
        inode: Inode,
        acls: Inherited,
    ) {
        let now = inode.ctime;
        if inode.kind == FileKind::Dir {
            self.mkdirs.entry(dir).or_default().push_back(job);
        }
        self.names
            .entry((dir, name.to_vec()))
            .or_default()
            .push((job, ino, inode.kind));
        self.inodes.insert(ino, Created { job, inode, acls });
        self.dirs.entry(dir).or_default().push_back((job, now));
    }

    /// Records hard link job `job`: `name` in `dir` names the existing inode `ino`.
    pub fn add_link(
        &mut self,
        job: u64,
        (dir, name): (InodeNo, &[u8]),
        ino: InodeNo,
        kind: FileKind,
        now: Timestamp,
    ) {
        self.names
            .entry((dir, name.to_vec()))
            .or_default()
            .push((job, ino, kind));
        self.dirs.entry(dir).or_default().push_back((job, now));
        self.links.entry(ino).or_default().push_back((job, now));
    }

    /// Hard link job `job` is committed (or failed).
    pub fn remove_link(&mut self, job: u64, dir: InodeNo, name: &[u8], ino: InodeNo) {
        self.remove(job, dir, name, ino);
        take_job(&mut self.links, ino, job, |(n, _)| *n);
    }

    /// Job `job` is committed (or failed): the rows now say what its entry said.
    pub fn remove(&mut self, job: u64, dir: InodeNo, name: &[u8], ino: InodeNo) {
        let key = (dir, name.to_vec());
        if let Some(made) = self.names.get_mut(&key) {
            made.retain(|m| m.0 != job);
            if made.is_empty() {
                self.names.remove(&key);
            }
        }
        if let Some(c) = self.inodes.get(&ino).filter(|c| c.job == job) {
            if c.inode.kind == FileKind::Dir {
                take_job(&mut self.mkdirs, dir, job, |n| *n);
            }
            self.inodes.remove(&ino);
        }
        take_job(&mut self.dirs, dir, job, |(n, _)| *n);
    }
}
