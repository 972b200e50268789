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
//! - Each entry carries its writer job's number. A reader locks the overlay, begins its
//!   read transaction and asks it which jobs it holds (`ReadView::committed_jobs`), and
//!   applies only the entries of jobs it does not hold: a commit is counted once, whether
//!   its entry is still here or not.
//! - An entry is added under the lock before the caller is answered, and removed under the
//!   lock by the job's completion, after its commit (or failure): a reader that finds no
//!   entry began its transaction after the removal, so after the commit.
//! - Every later mutation of the volume runs in the same or a later batch (the writer's queue
//!   is FIFO), so it sees the unlink committed: only reads need the overlay. Snapshots,
//!   fsync and restore are writer jobs too, so they include every pending unlink.
//! - Locked after the volume's buffer lock (getattr holds both); never held while waiting
//!   for the writer.

use std::collections::HashMap;

use super::attr::{Attr, Timestamp};
use crate::store::{ReadView, Reader, StoreError};
use crate::types::InodeNo;

/// Job numbers with the time each one carries.
type Jobs = Vec<(u64, Timestamp)>;

/// The overlay of one volume.
#[derive(Default)]
pub(crate) struct Unlinks {
    /// (directory, name) -> pending removals of that entry.
    names: HashMap<(InodeNo, Vec<u8>), Vec<u64>>,
    /// inode -> pending unlinks of one of its names (each drops a link), with the ctime.
    inodes: HashMap<InodeNo, Jobs>,
    /// directory -> pending unlinks in it, with the mtime/ctime.
    dirs: HashMap<InodeNo, Jobs>,
}

fn later(a: Timestamp, b: Timestamp) -> Timestamp {
    if (b.secs, b.nsecs) > (a.secs, a.nsecs) {
        b
    } else {
        a
    }
}

impl Unlinks {
    /// The jobs a reader's transaction holds (see [`ReadView::committed_jobs`]), or None
    /// when nothing is pending and there is nothing to correct.
    pub fn committed_in(&self, r: &Reader<'_>) -> Result<Option<u64>, StoreError> {
        if self.names.is_empty() {
            return Ok(None);
        }
        r.committed_jobs().map(Some)
    }

    /// Is `name` in `dir` removed by a pending unlink that the reader's transaction (which
    /// holds the jobs below `committed`) does not show yet?
    pub fn hides(&self, dir: InodeNo, name: &[u8], committed: u64) -> bool {
        !self.names.is_empty()
            && self
                .names
                .get(&(dir, name.to_vec()))
                .is_some_and(|jobs| jobs.iter().any(|&n| n >= committed))
    }

    /// Links of `ino` that pending unlinks drop, beyond what the reader's rows show.
    pub fn dropped_links(&self, ino: InodeNo, committed: u64) -> u32 {
        self.inodes.get(&ino).map_or(0, |jobs| {
            jobs.iter().filter(|(n, _)| *n >= committed).count() as u32
        })
    }

    /// Corrects attributes read from a transaction holding the jobs below `committed`.
    pub fn apply(&self, attr: &mut Attr, committed: u64) {
        if self.names.is_empty() {
            return;
        }
        for (n, ctime) in self.inodes.get(&attr.ino).into_iter().flatten() {
            if *n >= committed {
                attr.nlink = attr.nlink.saturating_sub(1);
                attr.ctime = later(attr.ctime, *ctime);
            }
        }
        for (n, t) in self.dirs.get(&attr.ino).into_iter().flatten() {
            if *n >= committed {
                attr.mtime = later(attr.mtime, *t);
                attr.ctime = later(attr.ctime, *t);
            }
        }
    }

    /// Records unlink job `job` of `name` in `dir`, which pointed to `ino`.
    pub fn add(&mut self, job: u64, dir: InodeNo, name: &[u8], ino: InodeNo, now: Timestamp) {
        self.names
            .entry((dir, name.to_vec()))
            .or_default()
            .push(job);
        self.inodes.entry(ino).or_default().push((job, now));
        self.dirs.entry(dir).or_default().push((job, now));
    }

    /// Job `job` is committed (or failed): the rows now say what its entry said.
    pub fn remove(&mut self, job: u64, dir: InodeNo, name: &[u8], ino: InodeNo) {
        let key = (dir, name.to_vec());
        if let Some(jobs) = self.names.get_mut(&key) {
            jobs.retain(|&n| n != job);
            if jobs.is_empty() {
                self.names.remove(&key);
            }
        }
        for (map, k) in [(&mut self.inodes, ino), (&mut self.dirs, dir)] {
            if let Some(jobs) = map.get_mut(&k) {
                jobs.retain(|(n, _)| *n != job);
                if jobs.is_empty() {
                    map.remove(&k);
                }
            }
        }
    }
}
