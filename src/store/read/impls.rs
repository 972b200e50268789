//! How a [`Reader`] (tables opened on first use) and the writer's [`Tx`] (tables open for
//! the whole transaction) hand their tables to the [`super::ReadView`] getters.

use redb::ReadOnlyTable;

use super::{Meta, Reader, lazy, sealed};
use crate::store::StoreError;
use crate::store::tables;
use crate::store::writer::Tx;

impl sealed::Tables for Reader<'_> {
    type Meta = Meta;
    type Volumes = ReadOnlyTable<u64, &'static [u8]>;
    type VolumeNames = ReadOnlyTable<&'static str, u64>;
    type Chunks = ReadOnlyTable<[u8; 32], [u8; 24]>;
    type Rows = ReadOnlyTable<&'static [u8], &'static [u8]>;
    type Changes = ReadOnlyTable<&'static [u8], ()>;
    type SnapGens = ReadOnlyTable<(u64, u64), u64>;
    type VolumeOptions = ReadOnlyTable<(u64, &'static str), &'static str>;
    type Holds = ReadOnlyTable<(u64, &'static str), i64>;
    type Schedules = ReadOnlyTable<&'static str, &'static [u8]>;
    type ScheduleRuns = ReadOnlyTable<&'static str, &'static [u8]>;
    type SnapshotMakers = ReadOnlyTable<u64, &'static str>;
    type CloneOrigins = ReadOnlyTable<u64, u64>;
    type CloneLayers = ReadOnlyTable<u64, (u64, u64)>;
    fn meta_t(&self) -> Result<&Self::Meta, StoreError> {
        lazy(&self.txn, &self.meta, tables::META)
    }
    fn volumes_t(&self) -> Result<&Self::Volumes, StoreError> {
        lazy(&self.txn, &self.volumes, tables::VOLUMES)
    }
    fn volume_names_t(&self) -> Result<&Self::VolumeNames, StoreError> {
        lazy(&self.txn, &self.volume_names, tables::VOLUME_NAMES)
    }
    fn chunks_t(&self) -> Result<&Self::Chunks, StoreError> {
        lazy(&self.txn, &self.chunks, tables::CHUNKS)
    }
    fn rows_t(&self) -> Result<&Self::Rows, StoreError> {
        lazy(&self.txn, &self.rows, tables::ROWS)
    }
    fn changes_t(&self) -> Result<&Self::Changes, StoreError> {
        lazy(&self.txn, &self.changes, tables::CHANGES)
    }
    fn snap_gens_t(&self) -> Result<&Self::SnapGens, StoreError> {
        lazy(&self.txn, &self.snap_gens, tables::SNAP_GENS)
    }
    fn volume_options_t(&self) -> Result<&Self::VolumeOptions, StoreError> {
        lazy(&self.txn, &self.volume_options, tables::VOLUME_OPTIONS)
    }
    fn holds_t(&self) -> Result<&Self::Holds, StoreError> {
        lazy(&self.txn, &self.holds, tables::SNAPSHOT_HOLDS)
    }
    fn schedules_t(&self) -> Result<&Self::Schedules, StoreError> {
        lazy(&self.txn, &self.schedules, tables::SCHEDULES)
    }
    fn schedule_runs_t(&self) -> Result<&Self::ScheduleRuns, StoreError> {
        lazy(&self.txn, &self.schedule_runs, tables::SCHEDULE_RUNS)
    }
    fn snapshot_makers_t(&self) -> Result<&Self::SnapshotMakers, StoreError> {
        lazy(&self.txn, &self.snapshot_makers, tables::SNAPSHOT_MAKERS)
    }
    fn clone_origins_t(&self) -> Result<&Self::CloneOrigins, StoreError> {
        lazy(&self.txn, &self.clone_origins, tables::CLONE_ORIGINS)
    }
    fn clone_layers_t(&self) -> Result<&Self::CloneLayers, StoreError> {
        lazy(&self.txn, &self.clone_layers, tables::CLONE_LAYERS)
    }
}

impl<'t> sealed::Tables for Tx<'t> {
    type Meta = redb::Table<'t, &'static str, &'static [u8]>;
    type Volumes = redb::Table<'t, u64, &'static [u8]>;
    type VolumeNames = redb::Table<'t, &'static str, u64>;
    type Chunks = redb::Table<'t, [u8; 32], [u8; 24]>;
    type Rows = redb::Table<'t, &'static [u8], &'static [u8]>;
    type Changes = redb::Table<'t, &'static [u8], ()>;
    type SnapGens = redb::Table<'t, (u64, u64), u64>;
    type VolumeOptions = redb::Table<'t, (u64, &'static str), &'static str>;
    type Holds = redb::Table<'t, (u64, &'static str), i64>;
    type Schedules = redb::Table<'t, &'static str, &'static [u8]>;
    type ScheduleRuns = redb::Table<'t, &'static str, &'static [u8]>;
    type SnapshotMakers = redb::Table<'t, u64, &'static str>;
    type CloneOrigins = redb::Table<'t, u64, u64>;
    type CloneLayers = redb::Table<'t, u64, (u64, u64)>;
    fn meta_t(&self) -> Result<&Self::Meta, StoreError> {
        Ok(&self.meta)
    }
    fn volumes_t(&self) -> Result<&Self::Volumes, StoreError> {
        Ok(&self.volumes)
    }
    fn volume_names_t(&self) -> Result<&Self::VolumeNames, StoreError> {
        Ok(&self.volume_names)
    }
    fn chunks_t(&self) -> Result<&Self::Chunks, StoreError> {
        Ok(&self.chunks)
    }
    fn rows_t(&self) -> Result<&Self::Rows, StoreError> {
        Ok(&self.rows)
    }
    fn changes_t(&self) -> Result<&Self::Changes, StoreError> {
        Ok(&self.changes)
    }
    fn snap_gens_t(&self) -> Result<&Self::SnapGens, StoreError> {
        Ok(&self.snap_gens)
    }
    fn volume_options_t(&self) -> Result<&Self::VolumeOptions, StoreError> {
        Ok(&self.volume_options)
    }
    fn holds_t(&self) -> Result<&Self::Holds, StoreError> {
        Ok(&self.holds)
    }
    fn schedules_t(&self) -> Result<&Self::Schedules, StoreError> {
        Ok(&self.schedules)
    }
    fn schedule_runs_t(&self) -> Result<&Self::ScheduleRuns, StoreError> {
        Ok(&self.schedule_runs)
    }
    fn snapshot_makers_t(&self) -> Result<&Self::SnapshotMakers, StoreError> {
        Ok(&self.snapshot_makers)
    }
    fn clone_origins_t(&self) -> Result<&Self::CloneOrigins, StoreError> {
        Ok(&self.clone_origins)
    }
    fn clone_layers_t(&self) -> Result<&Self::CloneLayers, StoreError> {
        Ok(&self.clone_layers)
    }
}
