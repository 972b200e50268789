//! setattr calls that were answered but are not committed yet (write-behind chmod, chown
//! and utimes): the third part of the overlay in pending.rs, whose module doc gives the
//! rules (job numbers, `ReadView::committed_jobs`, the FIFO writer queue).
//!
//! A setattr that changes neither the size nor the privileges, and whose chmod has no
//! access ACL to rewrite, is checked against the rows plus the overlay, answered at once
//! and committed by the writer in a later batch (see setattr.rs for when it commits first).
//! Until the commit, the live inode reads the committed rows (or its pending create)
//! patched by each pending setattr of it, in job order: mode, owner, group, atime, mtime
//! and ctime as the job writes them ([`Change`] holds resolved times, the job and the
//! patch use the same ones).
//!
//! Where the patches apply:
//! - in `pending::inode_seen`, on the inode itself: every reader of the live inode through
//!   the overlay sees them (getattr, lookup, readdir's "..", readlink, link, create's parent
//!   with its setgid bit and group, the write path's privilege check, relatime), and before
//!   the write buffer's overlay: a setattr with times flushes the file's buffer first,
//!   under the buffer lock, so a buffer present afterwards was written after it was
//!   answered; a chmod or chown alone may leave an older buffer, whose overlay sets only
//!   the size and mtime, which it does not change, and raises the ctime, never lowers it;
//! - pending creates, links and unlinks only raise times (`pending::later`): one that is
//!   older than the inode's latest pending setattr (a smaller job number) must not undo it,
//!   so they touch mtime and ctime only when their job comes after the patch's
//!   ([`Since`]; `tar` sets a directory's mtime back after creating its files).
//!
//! Readers that do not go through the overlay read only what a patch never changes: the
//! kind and size (seek, fallocate, punch, truncate's tail), or xattrs (getxattr, listxattr:
//! a pending chmod never has an access ACL to rewrite, see below). Every mutation is a
//! writer job after the setattr's, so it finds it committed.
//!
//! Invariants:
//! - An inode's patches are kept oldest first (jobs of one volume are added in job order
//!   under the overlay lock, and complete in job order): removal is O(1) (`take_job`).
//! - A chmod goes behind only when neither the rows nor a pending create give the inode an
//!   access ACL; a set or removal of an ACL commits before it answers and is counted in
//!   `Pending::sync_ns` while queued, so no ACL can appear between the check and the job.
//!   The job still runs the same code as a synchronous setattr (`setattr_in_tx`), which
//!   rewrites an ACL if there is one.

use std::collections::{HashMap, VecDeque};

use super::attr::{Inode, SetAttr, TimeSet, Timestamp};
use super::pending::take_job;
use crate::types::InodeNo;

/// What one setattr sets, with its times resolved (`TimeSet::Now` is the call's time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Change {
    pub perm: Option<u16>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub atime: Option<Timestamp>,
    pub mtime: Option<Timestamp>,
    pub ctime: Timestamp,
}

impl Change {
    /// The attribute changes of `set` (its size and privilege drop aside) at time `now`.
    pub fn of(set: &SetAttr, now: Timestamp) -> Change {
        let time = |t: Option<TimeSet>| {
            t.map(|t| match t {
                TimeSet::Now => now,
                TimeSet::At(t) => t,
            })
        };
        Change {
            perm: set.mode.map(|m| (m & 0o7777) as u16),
            uid: set.uid,
            gid: set.gid,
            atime: time(set.atime),
            mtime: time(set.mtime),
            ctime: set.ctime.unwrap_or(now),
        }
    }

    /// Writes the changes into `inode` (the setattr job does this, and so does a reader
    /// that applies a pending one).
    pub fn apply(&self, inode: &mut Inode) {
        if let Some(p) = self.perm {
            inode.perm = p;
        }
        if let Some(u) = self.uid {
            inode.uid = u;
        }
        if let Some(g) = self.gid {
            inode.gid = g;
        }
        if let Some(t) = self.atime {
            inode.atime = t;
        }
        if let Some(t) = self.mtime {
            inode.mtime = t;
        }
        inode.ctime = self.ctime;
    }
}

/// The latest pending setattr jobs of one inode that set its mtime and its ctime (every
/// setattr sets ctime): other pending operations with an older job leave those alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Since {
    pub mtime: Option<u64>,
    pub ctime: Option<u64>,
}

impl Since {
    /// As seen by a setattr's answer: `change` comes after every pending job.
    pub fn then(self, change: &Change) -> Since {
        Since {
            mtime: change.mtime.map(|_| u64::MAX).or(self.mtime),
            ctime: Some(u64::MAX),
        }
    }

    /// Does pending job `job` change the mtime the reader sees?
    pub fn mtime_after(&self, job: u64) -> bool {
        self.mtime.is_none_or(|s| job > s)
    }

    /// Does pending job `job` change the ctime the reader sees?
    pub fn ctime_after(&self, job: u64) -> bool {
        self.ctime.is_none_or(|s| job > s)
    }
}

/// The pending setattr calls of one volume.
#[derive(Default)]
pub(crate) struct Attrs {
    /// inode -> its pending setattr calls, oldest first.
    inodes: HashMap<InodeNo, VecDeque<(u64, Change)>>,
}

impl Attrs {
    pub fn is_empty(&self) -> bool {
        self.inodes.is_empty()
    }

    /// Patches `inode` (number `ino`, as a reader holding the jobs below `committed` read
    /// it) with the pending setattr calls it does not hold, in job order.
    pub fn apply(&self, ino: InodeNo, inode: &mut Inode, committed: u64) {
        if self.inodes.is_empty() {
            return;
        }
        for (n, c) in self.inodes.get(&ino).into_iter().flatten() {
            if *n >= committed {
                c.apply(inode);
            }
        }
    }

    /// The latest setattr jobs of `ino` the reader does not hold, per time (see [`Since`]).
    pub fn since(&self, ino: InodeNo, committed: u64) -> Since {
        let mut s = Since::default();
        if self.inodes.is_empty() {
            return s;
        }
        for (n, c) in self.inodes.get(&ino).into_iter().flatten() {
            if *n >= committed {
                s.ctime = Some(*n);
                if c.mtime.is_some() {
                    s.mtime = Some(*n);
                }
            }
        }
        s
    }

    /// Records setattr job `job` of `ino`.
    pub fn add(&mut self, job: u64, ino: InodeNo, change: Change) {
        self.inodes.entry(ino).or_default().push_back((job, change));
    }

    /// Job `job` is committed (or failed): the rows now say what its entry said.
    pub fn remove(&mut self, job: u64, ino: InodeNo) {
        take_job(&mut self.inodes, ino, job, |(n, _)| *n);
    }
}
