//! The on-disk layout of a pool's index (`pool.redb`): every redb table with its key and
//! value encoding, and every key of the `meta` table. This file is the one place it is
//! written down; bump [`SCHEMA_VERSION`] when any of it changes. Only `crate::store` names
//! these tables: everything above it reads through [`super::ReadView`] and writes through
//! [`super::Tx`]. (Pack files are described in [`super::pack`], the intent log file in
//! [`super::intent`].)
//!
//! # Tables
//!
//! Integers in tuple keys are redb's own encoding; "LE"/"BE" mark byte strings we encode.
//!
//! | table            | key                                              | value |
//! |------------------|--------------------------------------------------|-------|
//! | `meta`           | `&str`, see [Meta keys](#meta-keys)              | `&[u8]`, per key |
//! | `volumes`        | `u64` VolumeId                                   | postcard [`super::volumes::VolumeRecord`] |
//! | `volume_names`   | `&str` volume name                               | `u64` VolumeId |
//! | `chunks`         | `[u8; 32]` ChunkId (blake3 of the bytes)         | `[u8; 24]` pack u32, len u32, offset u64, refs u64, all LE ([`super::chunks::ChunkRow`]) |
//! | `packs`          | `u32` pack number                                | `(u64, u64)` committed length, live bytes |
//! | `rows`           | `vol u64 BE, ino u64 BE, kind u8, sub, gen u64 BE` (see [`super::keys`]) | tag byte + payload (see [`super::rows`]); an inode's payload is postcard `crate::fs::Inode` |
//! | `changes`        | `vol u64 BE, gen u64 BE, row key minus vol and gen` | `()`: "this row may have changed at gen" |
//! | `snap_gens`      | `(u64, u64)` (VolumeId, Generation)              | `u64` how many snapshots and layered clones hold it |
//! | `orphans`        | `(u64, u64)` (VolumeId, InodeNo)                 | `()`: unlinked while open; freed on last close or next open |
//! | `volume_options` | `(u64, &str)` (VolumeId, option key); volume 0 holds the system-wide options (`crate::options::OptionScope::System`) | `&str` option value (validated by `crate::options`) |
//! | `log_applied`    | `(u64, u64)` (VolumeId, InodeNo; 0 = the whole volume) | `u64` intent-log position: records of that file (volume) below it are already in the rows (within the epoch: the checkpoint that starts a new one drops them all) |
//! | `snapshot_roots` | `u64` SnapshotId                                 | postcard [`super::snapmeta::RootRecord`]: the snapshot's Merkle root, written after the thaw (see `crate::fs::treehash`) |
//! | `snapshot_tests` | `u64` SnapshotId                                 | postcard [`super::snapmeta::TestRecord`]: the last restore test of the snapshot |
//! | `snapshot_holds` | `(u64, &str)` (SnapshotId, hold tag)             | `i64` when the hold was placed, microseconds since the epoch ([`super::catalog::holds`]); a snapshot with any row here is not deleted |
//! | `schedules`      | `&str` schedule name                             | postcard [`super::catalog::schedules::ScheduleRecord`] (what it snapshots, how often, what it keeps) |
//! | `schedule_runs`  | `&str` schedule name                             | postcard [`super::catalog::schedules::ScheduleRun`] (next run, last run, last error, failures) |
//! | `snapshot_makers`| `u64` SnapshotId                                 | `&str` name of the schedule that made it (only those are pruned) |
//! | `clone_origins`  | `u64` VolumeId of a clone                        | `u64` SnapshotId it was cloned from (a row whose volume is gone is ignored) |
//! | `clone_layers`   | `u64` VolumeId of a layered clone                | `(u64, u64)` (origin VolumeId, Generation): the clone's lower layer, the origin's view at that snapshot generation (see [`super::layers`]); the clone holds that generation in `snap_gens` |
//!
//! # Meta keys
//!
//! | key (`meta_keys::*`)     | value |
//! |--------------------------|-------|
//! | `magic`                  | [`MAGIC`]: the file is a tandem pool |
//! | `schema_version`         | u32 LE, [`SCHEMA_VERSION`] of the layout |
//! | `next_volume_id`         | u64 LE, the id the next volume gets (ids start at 1) |
//! | `physical_bytes`         | u64 LE, stored length of every distinct live chunk |
//! | `referenced_bytes`       | u64 LE, stored length summed over every chunk reference |
//! | `open_pack`              | u64 LE, the first pack the last open appended to (see [`super::open`]) |
//! | `jobs_committed`         | u64 LE, write-behind jobs numbered below it are committed (see [`super::ReadView::committed_jobs`]) |
//! | `log_covered`            | u64 LE, intent-log records below it are in the rows and never replayed |
//! | `log_epoch`              | u64 LE, the epoch the log's records are written in (bumped at each open) |
//! | `next_snapshot_id`       | u64 LE, the id the next snapshot gets (ids start at 1) |
//! | `group/<name>`           | postcard [`super::catalog::GroupRecord`] |
//! | `volume-group/<vol id>`  | UTF-8 name of the group the volume (decimal id) belongs to |
//! | `snapshot/<name>`        | postcard [`super::catalog::SnapshotRecord`] |
//!
//! An absent u64 counter reads as 0.
//!
//! # Postcard values are positional
//!
//! postcard writes a struct's fields in declaration order with no names or tags, and reads
//! them back the same way: a record written with one field list does not decode with
//! another. So adding, removing, reordering or retyping a field of a postcard value
//! (`VolumeRecord`, `GroupRecord`, `SnapshotRecord`, `SnapMember`, `crate::fs::Inode` and
//! what they contain) is a schema change: bump [`SCHEMA_VERSION`] and add the step that
//! rewrites the old records to `schema::upgrade` (`store/schema.rs`). The version is checked on
//! every open: a pool of a newer schema is refused, an older one is upgraded in the open's
//! first write transaction, after which older builds refuse it. The same holds for the
//! fixed byte layouts above (row values, chunk rows, keys).
//!
//! # Schema history
//!
//! 1 = the tables above without `log_applied`; 2 adds `log_applied` and the `log_*` meta
//! keys (a v1 pool is upgraded on open: it has no log to replay); 3 adds the patched extent
//! row value (tag 5, see [`super::rows`]; a v2 pool has none, so it is upgraded on open by
//! writing the new version); 4 adds `snapshot_roots` and `snapshot_tests` (keyed by snapshot
//! id, so a renamed snapshot keeps them; a v3 pool has none: created on open); 5 adds
//! `snapshot_holds`, `schedules`, `schedule_runs`, `snapshot_makers` and `clone_origins`
//! (a v4 pool has none; the tables are created on open); 6 adds the `Cron` variant of a
//! schedule's `Every` (a v5 record is still read as is; the bump makes a v5 build refuse the
//! pool rather than fail on a cron schedule it cannot decode); 7 adds `clone_layers` (a clone
//! is made as a layer over its origin's snapshot generation instead of a copy of its rows; a
//! v6 pool's clones are full copies and stay so, the table is created on open; the bump makes
//! a v6 build refuse the pool rather than show a layered clone as empty). None of these
//! changed an existing value, so no upgrade so far rewrites records.

use redb::TableDefinition;

/// Version of the layout above. A pool written by a newer tandem is refused on open.
pub const SCHEMA_VERSION: u32 = 7;
/// Written into `meta` so that a redb file made by another program is recognised as foreign.
pub const MAGIC: &[u8] = b"tandem-pool";

pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(super) const VOLUMES: TableDefinition<u64, &[u8]> = TableDefinition::new("volumes");
pub(super) const VOLUME_NAMES: TableDefinition<&str, u64> = TableDefinition::new("volume_names");
pub(super) const CHUNKS: TableDefinition<[u8; 32], [u8; 24]> = TableDefinition::new("chunks");
pub(super) const PACKS: TableDefinition<u32, (u64, u64)> = TableDefinition::new("packs");
pub(super) const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rows");
pub(super) const CHANGES: TableDefinition<&[u8], ()> = TableDefinition::new("changes");
pub(super) const SNAP_GENS: TableDefinition<(u64, u64), u64> = TableDefinition::new("snap_gens");
pub(super) const ORPHANS: TableDefinition<(u64, u64), ()> = TableDefinition::new("orphans");
pub(super) const VOLUME_OPTIONS: TableDefinition<(u64, &str), &str> =
    TableDefinition::new("volume_options");
pub(super) const LOG_APPLIED: TableDefinition<(u64, u64), u64> =
    TableDefinition::new("log_applied");
pub(super) const SNAPSHOT_ROOTS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("snapshot_roots");
pub(super) const SNAPSHOT_TESTS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("snapshot_tests");
pub(super) const SNAPSHOT_HOLDS: TableDefinition<(u64, &str), i64> =
    TableDefinition::new("snapshot_holds");
pub(super) const SCHEDULES: TableDefinition<&str, &[u8]> = TableDefinition::new("schedules");
pub(super) const SCHEDULE_RUNS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("schedule_runs");
pub(super) const SNAPSHOT_MAKERS: TableDefinition<u64, &str> =
    TableDefinition::new("snapshot_makers");
pub(super) const CLONE_ORIGINS: TableDefinition<u64, u64> = TableDefinition::new("clone_origins");
pub(super) const CLONE_LAYERS: TableDefinition<u64, (u64, u64)> =
    TableDefinition::new("clone_layers");

/// Every table, for creating them all when a pool is opened (a read then never meets a
/// missing one). `meta` is created first, by the schema check.
pub(super) fn create_all(txn: &redb::WriteTransaction) -> Result<(), redb::TableError> {
    txn.open_table(VOLUMES)?;
    txn.open_table(VOLUME_NAMES)?;
    txn.open_table(CHUNKS)?;
    txn.open_table(PACKS)?;
    txn.open_table(ROWS)?;
    txn.open_table(CHANGES)?;
    txn.open_table(SNAP_GENS)?;
    txn.open_table(ORPHANS)?;
    txn.open_table(VOLUME_OPTIONS)?;
    txn.open_table(LOG_APPLIED)?;
    txn.open_table(SNAPSHOT_ROOTS)?;
    txn.open_table(SNAPSHOT_TESTS)?;
    txn.open_table(SNAPSHOT_HOLDS)?;
    txn.open_table(SCHEDULES)?;
    txn.open_table(SCHEDULE_RUNS)?;
    txn.open_table(SNAPSHOT_MAKERS)?;
    txn.open_table(CLONE_ORIGINS)?;
    txn.open_table(CLONE_LAYERS)?;
    Ok(())
}

/// The keys of the `meta` table (see the [table](self#meta-keys) above).
pub(super) mod meta_keys {
    pub const MAGIC: &str = "magic";
    pub const SCHEMA_VERSION: &str = "schema_version";
    pub const NEXT_VOLUME_ID: &str = "next_volume_id";
    pub const PHYSICAL_BYTES: &str = "physical_bytes";
    pub const REFERENCED_BYTES: &str = "referenced_bytes";
    pub const OPEN_PACK: &str = "open_pack";
    pub const JOBS_COMMITTED: &str = "jobs_committed";
    pub const LOG_COVERED: &str = "log_covered";
    pub const LOG_EPOCH: &str = "log_epoch";
    pub const NEXT_SNAPSHOT_ID: &str = "next_snapshot_id";
    /// Prefix of a group's record: `group/<name>`.
    pub const GROUP: &str = "group/";
    /// Prefix of a grouped volume's group name: `volume-group/<vol id>`.
    pub const VOLUME_GROUP: &str = "volume-group/";
    /// Prefix of a snapshot's record: `snapshot/<name>`.
    pub const SNAPSHOT: &str = "snapshot/";
    /// Every `group/` key ('0' follows '/').
    pub const GROUP_RANGE: std::ops::Range<&str> = "group/".."group0";
    /// Every `snapshot/` key.
    pub const SNAPSHOT_RANGE: std::ops::Range<&str> = "snapshot/".."snapshot0";
}
