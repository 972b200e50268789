//! Namespace operations that were answered but are not committed yet (write-behind): the
//! overlay of one volume ([`Pending`]). This file has the unlinks; pending_create.rs the
//! creates, mknods, symlinks, mkdirs and hard links; pending_attr.rs the setattr calls
//! (chmod, chown, utimes). A rename of a non-directory is one job's link of the new name
//! plus unlinks of the old name and of a replaced target (rename_entry.rs).
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
//!   is FIFO), so it sees the unlink (or create) committed: only reads need the overlay. An
//!   rmdir, rename or link of a directory whose mkdir is pending finds it in its rows. Snapshots,
//!   fsync and restore are writer jobs too, so they include every pending unlink.
//! - A name resolves to the latest pending operation on it that the reader does not hold
//!   (a create, or an unlink; a create and an unlink in one job, a rename over the name,
//!   resolve to the create), else to the rows ([`Seen::name`]).
//! - A namespace operation that still commits before it answers (rmdir, a directory's
//!   rename, ...) is queued under the overlay lock and counted in [`Pending::sync_ns`]
//!   until it is answered: a write-behind operation that sees the count above zero commits
//!   before it answers too, so it never checks the rows while a queued change to them
//!   could still refuse its job (see `Inner::ns_write_op`).
//! - Locked after the volume's buffer lock (getattr holds both); never held while waiting
//!   for the writer.

use std::collections::HashMap;

use super::attr::{Attr, FileKind, Inode, Timestamp};
use super::error::FsError;
use super::pending_attr::{Attrs, Since};
use super::pending_create::Creates;
use super::txops::inode_in;
use crate::store::rows::View;
use crate::store::{ReadView, Reader, StoreError};
use crate::types::{InodeNo, Name, VolumeId};

/// The overlay of one volume: every write-behind operation not committed yet.
#[derive(Default)]
pub(crate) struct Pending {
    pub unlinks: Unlinks,
    pub creates: Creates,
    pub attrs: Attrs,
    /// Namespace operations (and ACL changes, see pending_attr.rs) queued to commit before
    /// they answer, not answered yet.
    pub sync_ns: usize,
}

/// The overlay as one reader applies it: the pending jobs its transaction does not hold.
#[derive(Clone, Copy)]
pub(crate) struct Seen<'a> {
    pending: &'a Pending,
    committed: u64,
}

impl Pending {
    /// What a reader whose transaction is `r` must correct, or None when nothing is
    /// pending (see [`ReadView::committed_jobs`]).
    pub fn seen(&self, r: &Reader<'_>) -> Result<Option<Seen<'_>>, StoreError> {
        if self.unlinks.names.is_empty() && self.creates.is_empty() && self.attrs.is_empty() {
            return Ok(None);
        }
        Ok(Some(Seen {
            pending: self,
            committed: r.committed_jobs()?,
        }))
    }
}

impl<'a> Seen<'a> {
    /// What pending operations say of `name` in `dir`: None when the rows decide,
    /// `Some(None)` when it is gone, `Some(Some(..))` when it names a new inode.
    pub fn name(&self, dir: InodeNo, name: &[u8]) -> Option<Option<(InodeNo, FileKind)>> {
        let c = self.committed;
        let unlinked = self.pending.unlinks.latest(dir, name, c);
        let made = self.pending.creates.entry(dir, name, c);
        match (unlinked, made) {
            (None, None) => None,
            // A rename over an existing name unlinks and links it in one job: the link wins.
            (Some(u), Some(m)) if m.0 >= u => Some(Some((m.1, m.2))),
            (None, Some(m)) => Some(Some((m.1, m.2))),
            (Some(_), _) => Some(None),
        }
    }

    /// Names of directory `dir` with a pending create the reader does not show yet (each
    /// with its latest create; a later pending unlink may still hide it: see [`Seen::name`]).
    pub fn pending_in(&self, dir: InodeNo) -> Vec<(Vec<u8>, super::pending_create::Made)> {
        self.pending.creates.in_dir(dir, self.committed)
    }

    /// The inode as created, when its create is pending for the reader.
    pub fn created(&self, ino: InodeNo) -> Option<&'a Inode> {
        self.pending.creates.inode(ino, self.committed)
    }

    /// The ACLs a pending create's commit writes, when it is pending for the reader.
    pub fn created_acls(&self, ino: InodeNo) -> Option<&'a super::acl::Inherited> {
        self.pending.creates.acls(ino, self.committed)
    }

    /// Links directory `dir` gains from pending mkdirs in it, beyond what the reader's rows
    /// (or its own pending create) show.
    pub fn subdirs_made(&self, dir: InodeNo) -> u32 {
        self.pending.creates.subdirs(dir, self.committed)
    }

    /// Corrects attributes read from the reader's rows (or a pending create), with its
    /// pending setattr calls applied (see [`inode_seen`]).
    pub fn apply(&self, attr: &mut Attr) {
        self.apply_since(attr, self.since(attr.ino));
    }

    /// As [`Seen::apply`], the times left alone by the pending jobs up to `since`.
    pub fn apply_since(&self, attr: &mut Attr, since: Since) {
        // Links added first: the unlinks' saturating subtraction must not stop at 0 on the
        // way (a file linked and unlinked again, both pending, keeps its count).
        self.pending.creates.apply(attr, self.committed, since);
        self.pending.unlinks.apply(attr, self.committed, since);
    }

    /// The latest pending setattr jobs of `ino` per time (see pending_attr.rs).
    pub fn since(&self, ino: InodeNo) -> Since {
        self.pending.attrs.since(ino, self.committed)
    }

    /// Applies the pending setattr calls of `ino` to `inode` (see pending_attr.rs).
    pub fn patch(&self, ino: InodeNo, inode: &mut Inode) {
        self.pending.attrs.apply(ino, inode, self.committed);
    }

    /// Links of `ino` that pending unlinks drop, beyond what the reader's rows show.
    pub fn dropped_links(&self, ino: InodeNo) -> u32 {
        self.pending.unlinks.dropped_links(ino, self.committed)
    }

    /// Links of `ino` that pending hard links add, beyond what the reader's rows show.
    pub fn added_links(&self, ino: InodeNo) -> u32 {
        self.pending.creates.added_links(ino, self.committed)
    }

    /// The link count of `inode` (number `ino`, as read from the rows or a pending create)
    /// with the pending unlinks and links applied.
    pub fn nlink(&self, ino: InodeNo, inode: &Inode) -> u32 {
        (inode.nlink + self.added_links(ino)).saturating_sub(self.dropped_links(ino))
    }
}

/// Holds the writer (tests): commits wait until [`CommitPause`] is dropped, so every
/// write-behind operation meanwhile stays in the overlay. An operation that commits before
/// it answers would wait for the drop: only write-behind operations and reads may run.
#[doc(hidden)]
pub struct CommitPause {
    go: Option<crossbeam_channel::Sender<()>>,
    held: Option<crate::store::Queued<(), StoreError>>,
}

impl CommitPause {
    pub(crate) fn start(store: &crate::store::Store) -> Result<CommitPause, FsError> {
        let (go, wait) = crossbeam_channel::bounded::<()>(1);
        let held = store.write_queued(true, move |_| {
            let _ = wait.recv();
            Ok::<_, StoreError>(())
        })?;
        Ok(CommitPause {
            go: Some(go),
            held: Some(held),
        })
    }
}

impl Drop for CommitPause {
    fn drop(&mut self) {
        // Dropping the sender wakes the held job too.
        if let Some(go) = self.go.take() {
            let _ = go.send(());
        }
        if let Some(h) = self.held.take() {
            let _ = h.wait();
        }
    }
}

impl super::Inner {
    /// Queues a write-behind job of volume state `vs` and records it in the overlay, whose
    /// lock the caller holds from its checks to here (`pending`): `add` puts the job's entry
    /// (with its number) before the lock is let go, so before the caller answers; the job's
    /// completion takes it out again with `remove`, under the lock, after the commit or its
    /// failure (which `failed` logs: the answer has gone out already).
    /// `apply` may defer its rewrites of the volume record and directory rows (see
    /// `store::deferred`).
    pub(crate) fn queue_behind(
        &self,
        vs: &std::sync::Arc<super::VolState>,
        pending: std::sync::MutexGuard<'_, Pending>,
        apply: impl FnOnce(&mut crate::store::Tx<'_>) -> Result<(), FsError> + Send + 'static,
        failed: impl FnOnce(String) + Send + 'static,
        add: impl FnOnce(&mut Pending, u64),
        remove: impl FnOnce(&mut Pending, u64) + Send + 'static,
    ) -> Result<(), FsError> {
        self.queue_behind_as(vs, pending, true, apply, failed, add, remove)
    }

    /// As [`Inner::queue_behind`]; without `defers`, the writer writes out every held
    /// rewrite before `apply` runs, so `apply` may be a synchronous operation's closure.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn queue_behind_as(
        &self,
        vs: &std::sync::Arc<super::VolState>,
        mut pending: std::sync::MutexGuard<'_, Pending>,
        defers: bool,
        apply: impl FnOnce(&mut crate::store::Tx<'_>) -> Result<(), FsError> + Send + 'static,
        failed: impl FnOnce(String) + Send + 'static,
        add: impl FnOnce(&mut Pending, u64),
        remove: impl FnOnce(&mut Pending, u64) + Send + 'static,
    ) -> Result<(), FsError> {
        let done_vs = vs.clone();
        // The completion needs the job's number, known once queued; it reads it under the
        // overlay lock, which is held here until the number is set.
        let job_no = std::sync::Arc::new(std::sync::OnceLock::new());
        let done_no = job_no.clone();
        let (n, backlog) = self.store.write_behind(defers, apply, move |res| {
            if let Err(e) = res {
                failed(e);
            }
            let mut pending = super::lock(&done_vs.pending);
            if let Some(&n) = done_no.get() {
                remove(&mut pending, n);
            }
        })?;
        let _ = job_no.set(n);
        add(&mut pending, n);
        drop(pending);
        if backlog {
            self.store.settle()?;
        }
        self.unsynced
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }
}

/// The live inode as a reader sees it with the overlay: a pending create, else the rows,
/// patched by its pending setattr calls.
pub(crate) fn inode_seen(
    r: &impl ReadView,
    seen: Option<Seen<'_>>,
    vol: VolumeId,
    view: View,
    ino: InodeNo,
) -> Result<Inode, FsError> {
    let mut inode = match seen.and_then(|s| s.created(ino)) {
        Some(i) => i.clone(),
        None => inode_in(r, vol, view, ino)?,
    };
    if let Some(s) = seen {
        s.patch(ino, &mut inode);
    }
    Ok(inode)
}

/// The entry `name` of `parent` as a reader sees it with the overlay (as `dirent_in`:
/// ENOTDIR when `parent` is not a directory, ENOENT when the name is absent). Only
/// directories have entries (rows or pending creates), so the parent's own row is read only
/// when the name is not found, to tell the two errors apart: a found name costs one row read.
pub(crate) fn dirent_seen(
    r: &impl ReadView,
    seen: Option<Seen<'_>>,
    vol: VolumeId,
    view: View,
    parent: InodeNo,
    name: &Name,
) -> Result<(InodeNo, FileKind), FsError> {
    match entry_seen(r, seen, vol, view, parent, name)? {
        Some(e) => Ok(e),
        None if inode_seen(r, seen, vol, view, parent)?.kind != FileKind::Dir => {
            Err(FsError::NotDir)
        }
        None => Err(FsError::NotFound),
    }
}

/// The entry `name` of `parent` as a reader sees it with the overlay, or None, without
/// reading the parent: for a caller that has checked it is a directory (a parent that
/// does not exist has no entries either).
pub(crate) fn entry_seen(
    r: &impl ReadView,
    seen: Option<Seen<'_>>,
    vol: VolumeId,
    view: View,
    parent: InodeNo,
    name: &Name,
) -> Result<Option<(InodeNo, FileKind)>, FsError> {
    Ok(match seen.and_then(|s| s.name(parent, name.as_bytes())) {
        Some(pending) => pending,
        None => match r.dirent(vol, view, parent, name.as_bytes())? {
            Some((ino, kind)) => Some((ino, FileKind::from_code(kind)?)),
            None => None,
        },
    })
}

/// Job numbers with the time each one carries, oldest first.
type Jobs = std::collections::VecDeque<(u64, Timestamp)>;

/// Takes job `job` out of the jobs `map` holds for `key` (oldest first), and the key with
/// its last job. Jobs of one volume are added in job order (under the overlay lock) and
/// their completions run in job order, so the job taken is the oldest: O(1) however many
/// are pending in one directory.
pub(crate) fn take_job<T>(
    map: &mut HashMap<InodeNo, std::collections::VecDeque<T>>,
    key: InodeNo,
    job: u64,
    no: impl Fn(&T) -> u64,
) {
    let Some(jobs) = map.get_mut(&key) else {
        return;
    };
    if jobs.front().is_some_and(|j| no(j) == job) {
        jobs.pop_front();
    } else {
        jobs.retain(|j| no(j) != job);
    }
    if jobs.is_empty() {
        map.remove(&key);
    }
}

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

pub(crate) fn later(a: Timestamp, b: Timestamp) -> Timestamp {
    if (b.secs, b.nsecs) > (a.secs, a.nsecs) {
        b
    } else {
        a
    }
}

impl Unlinks {
    /// The latest pending unlink of `name` in `dir` that the reader's transaction (which
    /// holds the jobs below `committed`) does not show yet.
    pub fn latest(&self, dir: InodeNo, name: &[u8], committed: u64) -> Option<u64> {
        if self.names.is_empty() {
            return None;
        }
        self.names
            .get(&(dir, name.to_vec()))?
            .iter()
            .copied()
            .filter(|&n| n >= committed)
            .max()
    }

    /// Links of `ino` that pending unlinks drop, beyond what the reader's rows show.
    pub fn dropped_links(&self, ino: InodeNo, committed: u64) -> u32 {
        self.inodes.get(&ino).map_or(0, |jobs| {
            jobs.iter().filter(|(n, _)| *n >= committed).count() as u32
        })
    }

    /// Corrects attributes read from a transaction holding the jobs below `committed`
    /// (times only by the jobs after `since`).
    pub fn apply(&self, attr: &mut Attr, committed: u64, since: Since) {
        if self.names.is_empty() {
            return;
        }
        for (n, ctime) in self.inodes.get(&attr.ino).into_iter().flatten() {
            if *n >= committed {
                attr.nlink = attr.nlink.saturating_sub(1);
                if since.ctime_after(*n) {
                    attr.ctime = later(attr.ctime, *ctime);
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
    }

    /// Records unlink job `job` of `name` in `dir`, which pointed to `ino`.
    pub fn add(&mut self, job: u64, dir: InodeNo, name: &[u8], ino: InodeNo, now: Timestamp) {
        self.names
            .entry((dir, name.to_vec()))
            .or_default()
            .push(job);
        self.inodes.entry(ino).or_default().push_back((job, now));
        self.dirs.entry(dir).or_default().push_back((job, now));
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
        take_job(&mut self.inodes, ino, job, |(n, _)| *n);
        take_job(&mut self.dirs, dir, job, |(n, _)| *n);
    }
}
