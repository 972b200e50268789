//! tandem: a volume manager whose volumes are POSIX filesystems served over FUSE, sharing one
//! content-addressed chunk store per pool, with crash-consistent group snapshots.
//!
//! Layers: [`store`] (pool, redb, packs, versioned rows) → [`fs`] (the POSIX model, plain
//! Rust types, testable without FUSE).

pub mod control;
pub mod daemon;
pub mod fs;
pub mod fuse;
pub mod options;
pub mod snapshot;
pub mod store;
pub mod types;
