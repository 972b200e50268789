//! Every redb table of a pool, with its key/value layout. This file is the one place the
//! on-disk layout is defined; bump [`SCHEMA_VERSION`] when any of it changes.
//!
//! | table          | key                                   | value                                   |
//! |----------------|---------------------------------------|-----------------------------------------|
//! | `meta`         | `&str` setting name                   | `&[u8]`; `schema_version` = u32 LE,     |
//! |                |                                       | `next_volume_id` = u64 LE, `physical_bytes` = u64 LE, `referenced_bytes` = u64 LE, `open_pack` = u64 LE (first pack the last open appended to, see `super::open`) |
//! | `volumes`      | `u64` VolumeId                        | postcard [`super::volumes::VolumeRecord`] |
//! | `volume_names` | `&str` volume name                    | `u64` VolumeId                          |
//! | `chunks`       | `[u8; 32]` ChunkId (blake3)           | `[u8; 24]` pack u32, len u32, offset u64, refs u64 (all LE) |
//! | `packs`        | `u32` pack number                     | `(u64, u64)` committed length, live bytes |
//! | `rows`         | versioned metadata key, see [`super::keys`] | tag byte + payload, see [`super::rows`] |
//! | `changes`      | vol u64 BE, gen u64 BE, row key minus vol | `()`: "this row may have changed at gen" |
//! | `snap_gens`    | `(u64, u64)` (VolumeId, Generation)    | `u64` how many snapshots hold it        |
//! | `orphans`      | `(u64, u64)` (VolumeId, InodeNo)       | `()`: unlinked while open; purged on open |
//! | `volume_options` | `(u64, &str)` (VolumeId, 0 = system-wide; see `crate::options::OptionScope`), option key | `&str` option value (validated by `crate::options`) |
//! | `log_applied`  | `(u64, u64)` (VolumeId, InodeNo; 0 = the whole volume) | `u64` intent-log position: records of that file (volume) below it are already in the rows |
//!
//! `meta` also holds `log_covered` (u64 LE: intent-log records below it are in the rows and
//! are never replayed) and `log_epoch` (u64 LE: the epoch the log's records are written in;
//! bumped at each opening, so records of an earlier opening are stale). See
//! [`super::intent`] for the log file itself.
//!
//! Schema history: 1 = the tables above without `log_applied`; 2 adds `log_applied` and the
//! `log_*` meta keys (a v1 pool is upgraded on open: it has no log to replay); 3 adds the
//! patched extent row value (tag 5, see [`super::rows`]; a v2 pool has none, so it is
//! upgraded on open by writing the new version, after which older builds refuse it).

use redb::TableDefinition;

/// Version of the layout above. A pool written by a newer tandem is refused on open.
pub const SCHEMA_VERSION: u32 = 3;
/// Written into `meta` so that a redb file made by another program is recognised as foreign.
pub const MAGIC: &[u8] = b"tandem-pool";

pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub const VOLUMES: TableDefinition<u64, &[u8]> = TableDefinition::new("volumes");
pub const VOLUME_NAMES: TableDefinition<&str, u64> = TableDefinition::new("volume_names");
pub const CHUNKS: TableDefinition<[u8; 32], [u8; 24]> = TableDefinition::new("chunks");
pub const PACKS: TableDefinition<u32, (u64, u64)> = TableDefinition::new("packs");
pub const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rows");
pub const CHANGES: TableDefinition<&[u8], ()> = TableDefinition::new("changes");
pub const SNAP_GENS: TableDefinition<(u64, u64), u64> = TableDefinition::new("snap_gens");
pub const ORPHANS: TableDefinition<(u64, u64), ()> = TableDefinition::new("orphans");
pub const VOLUME_OPTIONS: TableDefinition<(u64, &str), &str> =
    TableDefinition::new("volume_options");
pub const LOG_APPLIED: TableDefinition<(u64, u64), u64> = TableDefinition::new("log_applied");
