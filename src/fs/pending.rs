//! Unlinks that were answered but are not committed yet (write-behind unlink).
//!
//! An unlink is checked against the committed rows plus this overlay, answered at once and
//! committed by the store's writer in a later batch: a commit costs a transaction per
//! unlink, which made `rm -rf` run at a few percent of native speed. Until the commit, the
//! live views read the committed rows corrected by this overlay:
//! - the removed name is hidden from lookup and readdir;
//! - the inode shows one link less per pending unlink, with the new ctime;
//! - the directory shows the new mtime and ctime.
//!
//! Invariants:
//! - An entry is added before the job is queued and removed by the job's completion, after
//!   its commit (or its failure), under the write lock. A reader takes the read lock before
//!   it begins its read transaction and holds it until it has applied the overlay, so it
//!   either sees the entry or a transaction that already holds the commit: never neither.
//! - Every later mutation of the volume runs in the same or a later batch (the writer's queue
//!   is FIFO), so it sees the unlink committed: only reads need the overlay. Snapshots,
//!   fsync and restore are writer jobs too, so they include every pending unlink.
//! - Taken after the volume's buffer lock (getattr holds both), never while waiting for
//!   the writer.

use std::collections::HashMap;

use super::attr::{Attr, Timestamp};
use crate::types::InodeNo;

/// The overlay of one volume.
#[derive(Default)]
pub(crate) struct Unlinks {
    /// (directory, name) -> pending removals of that entry.
    names: HashMap<(InodeNo, Vec<u8>), u32>,
    /// inode -> (links dropped by pending unlinks, latest ctime).
    inodes: HashMap<InodeNo, (u32, Timestamp)>,
    /// directory -> (pending unlinks in it, latest mtime/ctime).
    dirs: HashMap<InodeNo, (u32, Timestamp)>,
}

fn later(a: Timestamp, b: Timestamp) -> Timestamp {
    if (b.secs, b.nsecs) > (a.secs, a.nsecs) {
        b
    } else {
        a
    }
}

impl Unlinks {
    /// Is `name` in `dir` removed by a pending unlink?
    pub fn hides(&self, dir: InodeNo, name: &[u8]) -> bool {
        !self.names.is_empty() && self.names.contains_key(&(dir, name.to_vec()))
    }

    /// Links of `ino` that pending unlinks drop.
    pub fn dropped_links(&self, ino: InodeNo) -> u32 {
        self.inodes.get(&ino).map_or(0, |e| e.0)
    }

    /// Corrects committed attributes by the pending unlinks.
    pub fn apply(&self, attr: &mut Attr) {
        if self.names.is_empty() {
            return;
        }
        if let Some(&(n, ctime)) = self.inodes.get(&attr.ino) {
            attr.nlink = attr.nlink.saturating_sub(n);
            attr.ctime = later(attr.ctime, ctime);
        }
        if let Some(&(_, t)) = self.dirs.get(&attr.ino) {
            attr.mtime = later(attr.mtime, t);
            attr.ctime = later(attr.ctime, t);
        }
    }

    pub fn add(&mut self, dir: InodeNo, name: &[u8], ino: InodeNo, now: Timestamp) {
        *self.names.entry((dir, name.to_vec())).or_default() += 1;
        let e = self.inodes.entry(ino).or_insert((0, now));
        e.0 += 1;
        e.1 = later(e.1, now);
        let d = self.dirs.entry(dir).or_insert((0, now));
        d.0 += 1;
        d.1 = later(d.1, now);
    }

    /// The unlink is committed (or failed): the rows now say what the overlay said.
    pub fn remove(&mut self, dir: InodeNo, name: &[u8], ino: InodeNo) {
        let key = (dir, name.to_vec());
        if let Some(n) = self.names.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.names.remove(&key);
            }
        }
        for (map, k) in [(&mut self.inodes, ino), (&mut self.dirs, dir)] {
            if let Some(e) = map.get_mut(&k) {
                e.0 -= 1;
                if e.0 == 0 {
                    map.remove(&k);
                }
            }
        }
    }
}
