//! Fault injection: the Nth write or sync of the pack files or the index fails with ENOSPC
//! or EIO, once or from then on (a plan handed to the store, like redb's own failing test
//! backends). Whatever
//! fails, the caller gets an error (never a panic, never "success" for what was not stored),
//! the pool opens again afterwards, and every fsync that returned success kept its bytes.

use std::time::Duration;

use tandem::fs::{Ctx, Engine, EngineConfig, FsError};
use tandem::store::fault::{FaultOp, Faults};
use tandem::store::rows::View;
use tandem::types::{InodeNo, VolumeId};

const ROOT: InodeNo = InodeNo::ROOT;
const CTX: Ctx = Ctx {
    uid: 0,
    gid: 0,
    umask: 0,
};

fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

fn cfg() -> EngineConfig {
    EngineConfig {
        // Only the workload commits: every failure point is one of its own.
        commit_interval: Duration::from_secs(3600),
        dirty_limit: 256 << 10,
        ..EngineConfig::default()
    }
}

fn read_all(e: &Engine, vol: VolumeId, name: &str) -> Option<Vec<u8>> {
    let a = e.lookup(vol, View::Live, ROOT, name.as_bytes()).ok()?;
    e.read(vol, View::Live, a.ino, 0, a.size as u32).ok()
}

/// Writes `data` to a new file and fsyncs it; Ok only if both returned success.
fn store(e: &Engine, vol: VolumeId, name: &str, data: &[u8]) -> Result<(), FsError> {
    let ino = write_file(e, vol, name, data)?;
    e.fsync(vol, ino)
}

/// Writes `data` to a new file (no fsync); Ok only if every write returned success.
fn write_file(e: &Engine, vol: VolumeId, name: &str, data: &[u8]) -> Result<InodeNo, FsError> {
    let a = e.create(vol, ROOT, name.as_bytes(), 0o644, CTX)?;
    for (k, piece) in data.chunks(64 << 10).enumerate() {
        e.write(vol, a.ino, (k as u64) * (64 << 10), piece)?;
    }
    Ok(a.ino)
}

#[test]
fn a_failing_write_or_sync_loses_nothing_that_succeeded() {
    let mut failures = 0;
    for (op, sticky) in [
        (FaultOp::Write, false),
        (FaultOp::Write, true),
        (FaultOp::Sync, false),
        (FaultOp::Sync, true),
    ] {
        for errno in [libc::ENOSPC, libc::EIO] {
            for nth in 1..=12u64 {
                let dir = tempfile::tempdir().unwrap();
                let faults = Faults::new();
                let e = Engine::open_with_faults(dir.path(), cfg(), Some(faults.clone()))
                    .expect("open");
                let vol = e.create_volume("v", Some(16384), CTX).expect("volume").id;
                store(&e, vol, "base", &bytes(0, 300_000)).expect("baseline");
                faults.arm(op, nth, errno, sticky);
                // Every file written first (a write may flush the whole volume), then each
                // fsynced: a file stored is one whose writes and fsync all succeeded.
                let mut check = |err: FsError| {
                    failures += 1;
                    let code = err.errno();
                    assert!(
                        code == errno || code == libc::EIO,
                        "{op:?} #{nth} failing with {errno}: got {err} (errno {code})"
                    );
                };
                let mut written = Vec::new();
                for i in 1..=4u64 {
                    match write_file(
                        &e,
                        vol,
                        &format!("f{i}"),
                        &bytes(i, 200_000 + i as usize * 999),
                    ) {
                        Ok(ino) => written.push((i, ino)),
                        Err(err) => check(err),
                    }
                }
                let mut stored = Vec::new();
                for (i, ino) in written {
                    match e.fsync(vol, ino) {
                        Ok(()) => stored.push(i),
                        Err(err) => check(err),
                    }
                }
                faults.disarm();
                drop(e);
                let e = Engine::open_with_faults(dir.path(), cfg(), None).unwrap_or_else(|err| {
                    panic!("{op:?} #{nth} failing with {errno}: the pool does not open: {err}")
                });
                let vol = e.volume_id("v").expect("volume");
                assert!(
                    read_all(&e, vol, "base") == Some(bytes(0, 300_000)),
                    "{op:?} #{nth} failing with {errno}: the baseline file changed"
                );
                for i in stored {
                    assert!(
                        read_all(&e, vol, &format!("f{i}"))
                            == Some(bytes(i, 200_000 + i as usize * 999)),
                        "{op:?} #{nth} failing with {errno}: f{i}'s fsync succeeded, its bytes are gone"
                    );
                }
            }
        }
    }
    // The plan really hit the workload.
    assert!(failures >= 20, "only {failures} operations failed");
}
