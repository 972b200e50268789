//! [`Engine`]'s consistency groups, snapshot records and generations.

use super::Engine;
use crate::fs::diff::DiffEntry;
use crate::fs::groups::SnapError;
use crate::fs::{FsError, SealedSnapshot, VolumeInfo};
use crate::store::catalog::{GroupRecord, SnapshotRecord};
use crate::store::keys::RowId;
use crate::store::rows::View;
use crate::types::{Generation, VolumeId};

/// # Consistency groups and snapshot records
///
/// The catalog the snapshot coordinator (`crate::snapshot`) drives (groups.rs).
impl Engine {
    /// Every consistency group.
    pub fn groups(&self) -> Result<Vec<GroupRecord>, SnapError> {
        self.inner.groups()
    }

    /// The group `name`; [`SnapError::NoGroup`] when there is none.
    pub fn group(&self, name: &str) -> Result<GroupRecord, SnapError> {
        self.inner.group(name)
    }

    /// The group volume `vol` belongs to, if any.
    pub fn group_of(&self, vol: VolumeId) -> Result<Option<String>, SnapError> {
        self.inner.group_of(vol)
    }

    /// Creates a group, optionally with members.
    pub fn group_create(
        &self,
        name: &str,
        volumes: &[String],
        now: i64,
    ) -> Result<GroupRecord, SnapError> {
        self.inner.group_create(name, volumes, now)
    }

    /// Adds volumes to group `name` (a volume is in at most one group).
    pub fn group_add(&self, name: &str, volumes: &[String]) -> Result<GroupRecord, SnapError> {
        self.inner.group_add(name, volumes)
    }

    /// Removes volumes from group `name`.
    pub fn group_remove(&self, name: &str, volumes: &[String]) -> Result<GroupRecord, SnapError> {
        self.inner.group_remove(name, volumes)
    }

    /// Deletes a group; its snapshots only with `delete_snapshots` (they are deleted too).
    pub fn group_delete(
        &self,
        name: &str,
        delete_snapshots: bool,
    ) -> Result<Vec<String>, SnapError> {
        self.inner.group_delete(name, delete_snapshots)
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotRecord>, SnapError> {
        self.inner.snapshots()
    }

    /// The snapshot `name`; [`SnapError::NoSnapshot`] when there is none.
    pub fn snapshot(&self, name: &str) -> Result<SnapshotRecord, SnapError> {
        self.inner.snapshot(name)
    }

    /// Before a group snapshot's freeze: holds the members' background flushes and waits
    /// for those in flight (on), or lets them go again (off). See [`Engine::snapshot_seal`].
    pub fn hold_flushes(&self, vols: &[VolumeId], on: bool) {
        self.inner.hold_flushes(vols, on)
    }

    /// THE group snapshot commit, first half, inside the freeze: takes the members'
    /// buffered writes and queues ONE transaction that will commit them and record every
    /// member's generation and the snapshot record; whatever the thaw lets through commits
    /// after it. The caller thaws, then calls [`SealedSnapshot::finish`] (which hashes what
    /// was taken and waits for the transaction), then makes it durable
    /// (`store().sync()`). Nothing in here waits for a hash, the disk or the writer.
    pub fn snapshot_seal(
        &self,
        name: &str,
        group: Option<String>,
        vols: &[VolumeId],
        description: &str,
        created_us: i64,
    ) -> Result<SealedSnapshot<'_>, SnapError> {
        self.inner
            .snapshot_seal(name, group, vols, description, created_us)
    }

    /// Records the measured pause of a snapshot (after the thaw).
    pub fn snapshot_set_pause(&self, name: &str, pause_us: u64) -> Result<(), SnapError> {
        self.inner.snapshot_set_pause(name, pause_us)
    }

    /// Deletes a snapshot: frees what only it held, in one transaction.
    pub fn snapshot_delete(&self, name: &str) -> Result<SnapshotRecord, SnapError> {
        self.inner.snapshot_delete(name)
    }

    /// Bytes of chunk references only this snapshot holds (what deleting it frees, before
    /// dedup with other volumes). O(changes around the snapshot).
    pub fn snapshot_exclusive_bytes(&self, s: &SnapshotRecord) -> Result<u64, SnapError> {
        self.inner.snapshot_exclusive_bytes(s)
    }
}

/// # Generations: snapshot, restore, clone and diff primitives
///
/// (mod.rs, restore.rs.)
impl Engine {
    /// Makes writers of these volumes flush at [`crate::fs::TIGHT_DIRTY_LIMIT`] (on) or at the
    /// configured limit again (off). Used around a freeze, which then flushes little.
    pub fn set_tight(&self, vols: &[VolumeId], on: bool) {
        self.inner.set_tight(vols, on)
    }

    /// Records the current generation of each volume and bumps it, in ONE transaction, after
    /// flushing their buffered writes. The caller is responsible for quiescing writers
    /// (the freeze); this costs O(number of volumes).
    pub fn snapshot_generations(
        &self,
        vols: &[VolumeId],
    ) -> Result<Vec<(VolumeId, Generation)>, FsError> {
        self.inner.snapshot_generations(vols)
    }

    /// Gives up a snapshot generation: what only it could see is dropped.
    pub fn release_generation(&self, vol: VolumeId, generation: Generation) -> Result<(), FsError> {
        self.inner.release_generation(vol, generation)
    }

    /// The rows changed after generation `after` up to `upto` (inclusive): what a diff or a
    /// restore between the two has to look at. O(changes).
    pub fn changed_rows(
        &self,
        vol: VolumeId,
        after: Generation,
        upto: Generation,
    ) -> Result<Vec<RowId>, FsError> {
        self.inner.changed_rows(vol, after, upto)
    }

    /// Restores the given members to their snapshot generations in ONE transaction, after
    /// flushing their buffered writes. The caller keeps them frozen (or unmounted).
    pub fn restore_generations(
        &self,
        members: &[(VolumeId, Generation)],
    ) -> Result<Vec<(VolumeId, Vec<RowId>)>, FsError> {
        self.inner.restore_generations(members)
    }

    /// Creates a writable volume `name` with the contents `origin` had at `s`, sharing
    /// every chunk (no data copied).
    pub fn clone_generation(
        &self,
        origin: VolumeId,
        s: Generation,
        name: &str,
    ) -> Result<VolumeInfo, FsError> {
        self.inner.clone_generation(origin, s, name)
    }

    /// What changed in `vol` between view `a` and view `b` (`b` may be Live), as paths.
    /// O(changes): only rows in the change index between the two generations are looked at.
    pub fn diff(&self, vol: VolumeId, a: Generation, b: View) -> Result<Vec<DiffEntry>, FsError> {
        self.inner.diff(vol, a, b)
    }
}
