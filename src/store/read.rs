//! The one typed way to read a pool: [`ReadView`], implemented by a read transaction
//! ([`Reader`], from [`super::Store::read`]) and by the writer's transaction
//! ([`super::Tx`]), so that every getter is written once. Callers ask for inodes, entries,
//! blocks, chunks, volumes, options and catalog records; which table holds them and how
//! keys and values are encoded stays in the store (see [`super::tables`]).
//!
//! Cost: a [`Reader`] opens each table the first time a getter needs it and keeps it for the
//! rest of the transaction, so a lookup that reads a directory, an entry and an inode opens
//! `rows` once. A getter does the same redb lookups as reading the table by hand would.
//!
//! Invariants: a `Reader` sees one committed state for its whole life (one redb read
//! transaction); nothing here writes.

use std::cell::OnceCell;

use redb::{Key, ReadOnlyTable, ReadTransaction, ReadableTable, TableDefinition, Value};

use super::catalog::holds::{self, Hold};
use super::catalog::schedules::{self, ScheduleRecord, ScheduleRun};
use super::catalog::{self, GroupRecord, SnapshotRecord};
use super::chunks::{self, ChunkRow};
use super::error::StoreError;
use super::keys::{self, RowId};
use super::layers;
use super::pack::PackStore;
use super::rows::{self, RowValue, View};
use super::tables::meta_keys;
use super::volumes::{self, VolumeRecord};
use crate::options::{OptionScope, VolumeOptions};
use crate::types::{ChunkId, Generation, InodeNo, SnapshotId, VolumeId};

use sealed::Tables as _;

mod impls;

type Meta = ReadOnlyTable<&'static str, &'static [u8]>;

pub(super) mod sealed {
    use redb::ReadableTable;

    use crate::store::StoreError;

    /// The tables a [`super::ReadView`] reads, as its implementor holds them. Not nameable
    /// outside the store: callers see only the typed getters.
    pub trait Tables {
        type Meta: ReadableTable<&'static str, &'static [u8]>;
        type Volumes: ReadableTable<u64, &'static [u8]>;
        type VolumeNames: ReadableTable<&'static str, u64>;
        type Chunks: ReadableTable<[u8; 32], [u8; 24]>;
        type Rows: ReadableTable<&'static [u8], &'static [u8]>;
        type Changes: ReadableTable<&'static [u8], ()>;
        type SnapGens: ReadableTable<(u64, u64), u64>;
        type VolumeOptions: ReadableTable<(u64, &'static str), &'static str>;
        type Holds: ReadableTable<(u64, &'static str), i64>;
        type Schedules: ReadableTable<&'static str, &'static [u8]>;
        type ScheduleRuns: ReadableTable<&'static str, &'static [u8]>;
        type SnapshotMakers: ReadableTable<u64, &'static str>;
        type CloneOrigins: ReadableTable<u64, u64>;
        type CloneLayers: ReadableTable<u64, (u64, u64)>;
        fn meta_t(&self) -> Result<&Self::Meta, StoreError>;
        fn volumes_t(&self) -> Result<&Self::Volumes, StoreError>;
        fn volume_names_t(&self) -> Result<&Self::VolumeNames, StoreError>;
        fn chunks_t(&self) -> Result<&Self::Chunks, StoreError>;
        fn rows_t(&self) -> Result<&Self::Rows, StoreError>;
        fn changes_t(&self) -> Result<&Self::Changes, StoreError>;
        fn snap_gens_t(&self) -> Result<&Self::SnapGens, StoreError>;
        fn volume_options_t(&self) -> Result<&Self::VolumeOptions, StoreError>;
        fn holds_t(&self) -> Result<&Self::Holds, StoreError>;
        fn schedules_t(&self) -> Result<&Self::Schedules, StoreError>;
        fn schedule_runs_t(&self) -> Result<&Self::ScheduleRuns, StoreError>;
        fn snapshot_makers_t(&self) -> Result<&Self::SnapshotMakers, StoreError>;
        fn clone_origins_t(&self) -> Result<&Self::CloneOrigins, StoreError>;
        fn clone_layers_t(&self) -> Result<&Self::CloneLayers, StoreError>;
    }
}

/// One directory entry as [`ReadView::dirents`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: Vec<u8>,
    /// The name hash: the entry's readdir cookie (see [`keys::name_hash`]).
    pub cookie: u64,
    pub ino: InodeNo,
    /// File kind code, as the entry's creator stored it.
    pub kind: u8,
}

/// A u64 LE `meta` value; 0 when absent or malformed.
pub(super) fn meta_u64<T: ReadableTable<&'static str, &'static [u8]>>(
    t: &T,
    key: &str,
) -> Result<u64, StoreError> {
    Ok(t.get(key)?
        .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0))
}

/// Every read of a pool's metadata, for a [`Reader`] and for the writer's [`super::Tx`] alike.
/// A `view` picks the live volume or a snapshot generation; absent rows are `None`.
pub trait ReadView: sealed::Tables {
    // ---- rows of a volume ----

    /// Any row of a volume as `view` sees it (see [`super::rows`]; a clone's lower layer
    /// shows through where it has nothing of its own, see [`super::layers`]).
    fn row(&self, vol: VolumeId, id: &RowId, view: View) -> Result<Option<RowValue>, StoreError> {
        let mut body = Vec::with_capacity(48);
        id.encode_body(&mut body);
        layers::get(self, vol, &body, view)
    }

    /// The encoded inode `ino` (its bytes belong to `crate::fs`).
    fn inode(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self.row(vol, &RowId::Inode(ino), view)? {
            Some(RowValue::Inode(b)) => Ok(Some(b)),
            Some(_) => Err(StoreError::Damaged(format!(
                "inode row {ino} has the wrong type"
            ))),
            None => Ok(None),
        }
    }

    /// The entry `name` of directory `dir`: (inode, kind code).
    fn dirent(
        &self,
        vol: VolumeId,
        view: View,
        dir: InodeNo,
        name: &[u8],
    ) -> Result<Option<(InodeNo, u8)>, StoreError> {
        let id = RowId::Dirent(dir, keys::name_hash(name), name.to_vec());
        match self.row(vol, &id, view)? {
            Some(RowValue::Dirent { ino, kind }) => Ok(Some((ino, kind))),
            Some(_) => Err(StoreError::Damaged(
                "directory entry row has the wrong type".into(),
            )),
            None => Ok(None),
        }
    }

    /// Visits the entries of directory `dir` whose cookie is above `after`, in cookie order,
    /// until `visit` returns false.
    fn dirents(
        &self,
        vol: VolumeId,
        view: View,
        dir: InodeNo,
        after: u64,
        mut visit: impl FnMut(Entry) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let prefix = keys::kind_prefix(vol, dir, keys::KIND_DIRENT);
        let mut start = prefix.clone();
        start.extend_from_slice(&after.saturating_add(1).to_be_bytes());
        layers::scan_view(self, vol, &prefix, &start, view, |_, id, v| match (id, v) {
            (RowId::Dirent(_, cookie, name), RowValue::Dirent { ino, kind }) => visit(Entry {
                name,
                cookie,
                ino,
                kind,
            }),
            _ => Err(StoreError::Damaged(
                "directory entry row has the wrong type".into(),
            )),
        })
    }

    /// Does directory `dir` have no entries in the live view?
    fn dir_is_empty(&self, vol: VolumeId, dir: InodeNo) -> Result<bool, StoreError> {
        let mut empty = true;
        self.dirents(vol, View::Live, dir, 0, |_| {
            empty = false;
            Ok(false)
        })?;
        Ok(empty)
    }

    /// The row of block `block` of file `ino`: an extent or a patched extent.
    fn extent(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
        block: u64,
    ) -> Result<Option<RowValue>, StoreError> {
        self.row(vol, &RowId::Extent(ino, block), view)
    }

    /// Visits the block rows of file `ino` from block `first` on, in block order, until
    /// `visit` returns false.
    fn extents_from(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
        first: u64,
        mut visit: impl FnMut(RowId, RowValue) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let prefix = keys::kind_prefix(vol, ino, keys::KIND_EXTENT);
        let mut start = prefix.clone();
        start.extend_from_slice(&first.to_be_bytes());
        layers::scan_view(self, vol, &prefix, &start, view, |_, id, v| visit(id, v))
    }

    /// The value of extended attribute `name` of `ino`.
    fn xattr(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
        name: &[u8],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self.row(vol, &RowId::Xattr(ino, name.to_vec()), view)? {
            Some(RowValue::Xattr(v)) => Ok(Some(v)),
            Some(_) => Err(StoreError::Damaged("xattr row has the wrong type".into())),
            None => Ok(None),
        }
    }

    /// The names of the extended attributes of `ino`, in key order.
    fn xattr_names(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        let prefix = keys::kind_prefix(vol, ino, keys::KIND_XATTR);
        let mut out = Vec::new();
        layers::scan_view(self, vol, &prefix, &prefix, view, |_, id, _| {
            if let RowId::Xattr(_, name) = id {
                out.push(name);
            }
            Ok(true)
        })?;
        Ok(out)
    }

    /// Visits every row of inode `ino` (its inode row, extents, xattrs, entries if a
    /// directory), in key order, until `visit` returns false.
    fn inode_rows(
        &self,
        vol: VolumeId,
        view: View,
        ino: InodeNo,
        mut visit: impl FnMut(RowId, RowValue) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let prefix = keys::inode_prefix(vol, ino);
        layers::scan_view(self, vol, &prefix, &prefix, view, |_, id, v| visit(id, v))
    }

    /// Visits every row of a volume, in key order, until `visit` returns false. O(rows).
    fn volume_rows(
        &self,
        vol: VolumeId,
        view: View,
        mut visit: impl FnMut(RowId, RowValue) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let prefix = vol.0.to_be_bytes();
        layers::scan_view(self, vol, &prefix, &prefix, view, |_, id, v| visit(id, v))
    }

    /// As [`ReadView::volume_rows`], with whether each row comes from a clone's lower layer
    /// (its origin's snapshot generation) rather than from the volume itself.
    fn volume_rows_layered(
        &self,
        vol: VolumeId,
        view: View,
        mut visit: impl FnMut(RowId, RowValue, bool) -> Result<bool, StoreError>,
    ) -> Result<(), StoreError> {
        let prefix = vol.0.to_be_bytes();
        layers::scan_view(self, vol, &prefix, &prefix, view, |layer, id, v| {
            visit(id, v, layer > 0)
        })
    }

    /// The lower layer of a layered clone: its origin volume and the snapshot generation
    /// it was cloned from (`None`: not a layered clone). See [`super::layers`].
    fn clone_layer(&self, vol: VolumeId) -> Result<Option<(VolumeId, Generation)>, StoreError> {
        layers::layer_of(self, vol)
    }

    /// The rows of `vol` changed after generation `after` up to `upto` (inclusive), each
    /// once: what a diff or a restore between the two looks at. O(changes).
    fn changed(
        &self,
        vol: VolumeId,
        after: Generation,
        upto: Generation,
    ) -> Result<Vec<RowId>, StoreError> {
        rows::changed(self.changes_t()?, vol, after, upto)
    }

    // ---- chunks ----

    /// Where chunk `id` is stored and how many references it has.
    fn chunk(&self, id: ChunkId) -> Result<Option<ChunkRow>, StoreError> {
        Ok(self
            .chunks_t()?
            .get(id.0)?
            .map(|v| ChunkRow::decode(v.value())))
    }

    /// Is chunk `id` stored? (Lets a writer skip appending bytes the pool already has.)
    fn chunk_stored(&self, id: ChunkId) -> Result<bool, StoreError> {
        Ok(self.chunks_t()?.get(id.0)?.is_some())
    }

    // ---- volumes ----

    /// The record of volume `id`; [`StoreError::NoSuchVolume`] when there is none.
    fn volume(&self, id: VolumeId) -> Result<VolumeRecord, StoreError> {
        let rec = self
            .volumes_t()?
            .get(id.0)?
            .map(|v| VolumeRecord::decode(v.value()))
            .transpose()?;
        rec.ok_or_else(|| StoreError::NoSuchVolume {
            name: format!("#{id}"),
        })
    }

    /// Every volume record, in id order.
    fn volumes(&self) -> Result<Vec<VolumeRecord>, StoreError> {
        let mut out = Vec::new();
        for e in self.volumes_t()?.iter()? {
            let (_, v) = e?;
            out.push(VolumeRecord::decode(v.value())?);
        }
        Ok(out)
    }

    /// The id of the volume named `name`; [`StoreError::NoSuchVolume`] when there is none.
    fn volume_id(&self, name: &str) -> Result<VolumeId, StoreError> {
        self.volume_names_t()?
            .get(name)?
            .map(|v| VolumeId(v.value()))
            .ok_or_else(|| StoreError::NoSuchVolume {
                name: name.to_string(),
            })
    }

    /// The options stored for one scope (a volume, or system-wide), parsed (see
    /// [`crate::options`]).
    fn options(&self, scope: OptionScope) -> Result<VolumeOptions, StoreError> {
        volumes::stored_options(self.volume_options_t()?, scope)
    }

    /// How many snapshots hold generation `g` of `vol` (`None`: it is not a snapshot
    /// generation).
    fn generation_holders(&self, vol: VolumeId, g: Generation) -> Result<Option<u64>, StoreError> {
        Ok(self.snap_gens_t()?.get((vol.0, g.0))?.map(|v| v.value()))
    }

    /// Bytes of extent versions only the snapshot generation `s` of `vol` sees: what
    /// releasing it frees (before dedup). Same rule as [`Tx::release_generation`],
    /// read-only; 0 for a volume that no longer exists, and 0 while something else holds
    /// the generation too (a layered clone made from it: releasing one hold frees nothing).
    fn exclusive_bytes(&self, vol: VolumeId, s: Generation) -> Result<u64, StoreError> {
        let cur = match self.volume(vol) {
            Ok(rec) => rec.cur.0,
            Err(StoreError::NoSuchVolume { .. }) => return Ok(0),
            Err(e) => return Err(e),
        };
        if self.generation_holders(vol, s)?.is_some_and(|n| n > 1) {
            return Ok(0);
        }
        let rows = self.rows_t()?;
        let (prev, next) = volumes::neighbours(self.snap_gens_t()?, vol, s, cur)?;
        let mut total = 0u64;
        for body in volumes::changed_bodies(self.changes_t()?, vol, prev, s)? {
            let Some(id @ RowId::Extent(..)) = RowId::decode_body(&body) else {
                continue;
            };
            for (_, v, successor) in volumes::unseen_versions(rows, &id.prefix(vol), prev, s, next)?
            {
                // A patched successor still holds the chunks it shares with this version.
                let kept = successor.map(|n| n.chunks()).unwrap_or_default();
                total += v
                    .chunks()
                    .iter()
                    .filter(|c| !kept.contains(c))
                    .map(|&(_, l)| l as u64)
                    .sum::<u64>();
            }
        }
        Ok(total)
    }

    // ---- the snapshot catalog (see [`super::catalog`]) ----

    fn group(&self, name: &str) -> Result<Option<GroupRecord>, StoreError> {
        self.meta_t()?
            .get(catalog::group_key(name).as_str())?
            .map(|v| catalog::decode("group", v.value()))
            .transpose()
    }

    /// Every group, by name.
    fn groups(&self) -> Result<Vec<GroupRecord>, StoreError> {
        let mut out = Vec::new();
        for e in self.meta_t()?.range(meta_keys::GROUP_RANGE)? {
            let (_, v) = e?;
            out.push(catalog::decode("group", v.value())?);
        }
        Ok(out)
    }

    /// The group volume `vol` belongs to.
    fn group_of(&self, vol: VolumeId) -> Result<Option<String>, StoreError> {
        Ok(self
            .meta_t()?
            .get(catalog::vg_key(vol).as_str())?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }

    fn snapshot(&self, name: &str) -> Result<Option<SnapshotRecord>, StoreError> {
        self.meta_t()?
            .get(catalog::snap_key(name).as_str())?
            .map(|v| catalog::decode("snapshot", v.value()))
            .transpose()
    }

    /// All snapshots, oldest first.
    fn snapshots(&self) -> Result<Vec<SnapshotRecord>, StoreError> {
        let mut out: Vec<SnapshotRecord> = Vec::new();
        for e in self.meta_t()?.range(meta_keys::SNAPSHOT_RANGE)? {
            let (_, v) = e?;
            out.push(catalog::decode("snapshot", v.value())?);
        }
        out.sort_by_key(|s| (s.created_us, s.id));
        Ok(out)
    }

    /// The holds of snapshot `id` (see [`super::catalog::holds`]), by tag.
    fn holds_of(&self, id: SnapshotId) -> Result<Vec<Hold>, StoreError> {
        holds::of(self.holds_t()?, id)
    }

    /// Every hold of the pool, by snapshot id then tag.
    fn all_holds(&self) -> Result<Vec<(SnapshotId, Hold)>, StoreError> {
        holds::all(self.holds_t()?)
    }

    // ---- schedules (see [`super::catalog::schedules`]) ----

    fn schedule(&self, name: &str) -> Result<Option<ScheduleRecord>, StoreError> {
        schedules::schedule(self.schedules_t()?, name)
    }

    /// Every schedule, by name.
    fn schedules(&self) -> Result<Vec<ScheduleRecord>, StoreError> {
        schedules::all(self.schedules_t()?, "schedule")
    }

    fn schedule_run(&self, name: &str) -> Result<Option<ScheduleRun>, StoreError> {
        schedules::run(self.schedule_runs_t()?, name)
    }

    /// Every (snapshot, the schedule that made it).
    fn snapshot_makers(&self) -> Result<Vec<(SnapshotId, String)>, StoreError> {
        schedules::makers(self.snapshot_makers_t()?)
    }

    /// Every (clone volume, the snapshot it was made from), the volume gone or not.
    fn clone_origins(&self) -> Result<Vec<(VolumeId, SnapshotId)>, StoreError> {
        schedules::clone_origins(self.clone_origins_t()?)
    }

    // ---- write-behind bookkeeping ----

    /// Which write-behind jobs this state holds: those numbered below the result. A reader
    /// corrects what it reads only by jobs at or above it, so a commit landing between an
    /// answer and the removal of what its caller left for readers is never counted twice.
    fn committed_jobs(&self) -> Result<u64, StoreError> {
        meta_u64(self.meta_t()?, meta_keys::JOBS_COMMITTED)
    }
}

impl<T: sealed::Tables> ReadView for T {}

/// A consistent read-only view of the last commit (one redb read transaction). Tables are
/// opened on first use and kept (see the module docs).
pub struct Reader<'s> {
    packs: &'s PackStore,
    meta: OnceCell<Meta>,
    volumes: OnceCell<ReadOnlyTable<u64, &'static [u8]>>,
    volume_names: OnceCell<ReadOnlyTable<&'static str, u64>>,
    chunks: OnceCell<ReadOnlyTable<[u8; 32], [u8; 24]>>,
    rows: OnceCell<ReadOnlyTable<&'static [u8], &'static [u8]>>,
    changes: OnceCell<ReadOnlyTable<&'static [u8], ()>>,
    snap_gens: OnceCell<ReadOnlyTable<(u64, u64), u64>>,
    volume_options: OnceCell<ReadOnlyTable<(u64, &'static str), &'static str>>,
    holds: OnceCell<ReadOnlyTable<(u64, &'static str), i64>>,
    schedules: OnceCell<ReadOnlyTable<&'static str, &'static [u8]>>,
    schedule_runs: OnceCell<ReadOnlyTable<&'static str, &'static [u8]>>,
    snapshot_makers: OnceCell<ReadOnlyTable<u64, &'static str>>,
    clone_origins: OnceCell<ReadOnlyTable<u64, u64>>,
    clone_layers: OnceCell<ReadOnlyTable<u64, (u64, u64)>>,
    txn: ReadTransaction,
}

/// The table in `cell`, opened from `txn` the first time.
fn lazy<'c, K: Key + 'static, V: Value + 'static>(
    txn: &ReadTransaction,
    cell: &'c OnceCell<ReadOnlyTable<K, V>>,
    def: TableDefinition<K, V>,
) -> Result<&'c ReadOnlyTable<K, V>, StoreError> {
    if let Some(t) = cell.get() {
        return Ok(t);
    }
    let t = txn.open_table(def)?;
    Ok(cell.get_or_init(|| t))
}

impl<'s> Reader<'s> {
    pub(super) fn new(txn: ReadTransaction, packs: &'s PackStore) -> Reader<'s> {
        Reader {
            packs,
            meta: OnceCell::new(),
            volumes: OnceCell::new(),
            volume_names: OnceCell::new(),
            chunks: OnceCell::new(),
            rows: OnceCell::new(),
            changes: OnceCell::new(),
            snap_gens: OnceCell::new(),
            volume_options: OnceCell::new(),
            holds: OnceCell::new(),
            schedules: OnceCell::new(),
            schedule_runs: OnceCell::new(),
            snapshot_makers: OnceCell::new(),
            clone_origins: OnceCell::new(),
            clone_layers: OnceCell::new(),
            txn,
        }
    }

    /// The read transaction, for the store's own modules that read tables no getter of
    /// [`ReadView`] covers (see `snapmeta`).
    pub(super) fn txn(&self) -> &ReadTransaction {
        &self.txn
    }

    /// The bytes of chunk `id`, read from its pack and checked against its hash.
    pub fn read_chunk(&self, id: ChunkId) -> Result<Vec<u8>, StoreError> {
        chunks::read(self.chunks_t()?, self.packs, id)
    }

    /// Starts reading these chunks' bytes in the background (see `PackStore::will_need`):
    /// one hint per run of neighbours in a pack.
    pub fn prefetch(&self, locs: &[super::pack::Loc]) {
        for run in super::pack::coalesce(locs.to_vec()) {
            self.packs
                .will_need(run.pack, run.offset, u64::from(run.len));
        }
    }

    /// Reads and checks several chunks, each into the start of its own buffer, with one
    /// vectored read per run of neighbours in a pack (see `chunks::read_into`).
    pub fn read_chunks_into(&self, wanted: Vec<(ChunkId, &mut [u8])>) -> Result<(), StoreError> {
        chunks::read_into(self.chunks_t()?, self.packs, wanted)
    }
}
