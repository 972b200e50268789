//! tandem: a volume manager whose volumes are POSIX filesystems served over FUSE, sharing one
//! content-addressed chunk store per pool, with crash-consistent group snapshots.
//!
//! Layers: [`store`] (pool, redb, packs, versioned rows) → [`fs`] (the POSIX model, plain
//! Rust types, testable without FUSE).
//!
//! The invariants are in docs/DESIGN.md. The `tandem` binary (src/main.rs: the command
//! line and the demo, clients of [`control`]) is built on this library and is the only
//! place that uses anyhow.

pub mod control;
pub mod daemon;
pub mod escape;
pub mod fs;
pub mod fuse;
pub mod metrics;
pub mod options;
pub mod snapshot;
pub mod store;
pub mod types;
