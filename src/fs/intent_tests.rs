//! Unit tests of the intent log beside flushes in flight: an fsync does not wait for a
//! flush of its volume, and what it logs meanwhile is never replayed over newer data.

use super::tests::{CTX, ROOT};
use super::*;
use crate::store::fault::{FaultOp, Faults};
use crate::store::rows::View;

/// Plays a flush of the whole volume by its steps, with `during` run while it is in flight
/// (the buffer lock let go, as `Inner::flush_locked` does while it hashes and commits).
fn flush_with(e: &Engine, vol: VolumeId, during: impl FnOnce()) {
    let inner = &e.inner;
    let vs = inner.vol_state(vol).unwrap();
    let bs = vs.block_size as u64;
    let mut d = vs.dirty.lock();
    let t = inner
        .take(vol, &vs, &mut d, None, true)
        .expect("something to flush");
    d.in_flight = true;
    drop(d);
    during();
    let commit = inner
        .prepare_commit(vol, bs, t.work, t.jobs, t.log_end, t.applied)
        .unwrap();
    if t.replayable {
        inner.write_op_replayable(commit).unwrap();
    } else {
        inner.write_op(commit).unwrap();
    }
    let mut d = vs.dirty.lock();
    d.in_flight = false;
    inner.settle(&mut d, t.taken, bs, t.log_end);
    vs.flushed.notify_all();
}

/// Reopens the pool as after a power cut: the clean shutdown's checkpoint fails, and the
/// log loses every byte past what a sync made durable (zeroed, as a cut disk leaves them).
fn crash(dir: &std::path::Path, e: Engine, faults: &Faults) -> Engine {
    use std::os::unix::fs::FileExt;
    let (log, at, len) = e.inner.intent_log_tail().expect("a pool with a log");
    for op in [FaultOp::Write, FaultOp::Sync] {
        faults.arm(op, 1, libc::EIO, true);
    }
    drop(e);
    faults.disarm();
    let file = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    file.write_all_at(&vec![0u8; len as usize], at).unwrap();
    Engine::open(dir).unwrap()
}

/// A pool whose commits wait for a flush (no periodic commit), with fault plans armed at
/// the crash, one volume of 4 KiB blocks and a file `f` in its root.
fn pool_with_file() -> (
    tempfile::TempDir,
    std::sync::Arc<Faults>,
    Engine,
    VolumeId,
    InodeNo,
) {
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let cfg = EngineConfig {
        commit_interval: std::time::Duration::from_secs(600),
        ..EngineConfig::default()
    };
    let e = Engine::open_with_faults(dir.path(), cfg, Some(faults.clone())).unwrap();
    let v = e.create_volume("v", Some(4096), Ctx::default()).unwrap().id;
    let f = e.create(v, ROOT, b"f", 0o644, CTX).unwrap().ino;
    (dir, faults, e, v, f)
}

#[test]
fn a_record_logged_during_a_flush_is_never_replayed_over_newer_durable_data() {
    let (dir, faults, e, v, f) = pool_with_file();
    // The create is durable; `f` has never fsynced, so the flush below takes its block
    // without a record (it is not replayable, and marks nothing applied for `f`).
    e.fsync(v, ROOT).unwrap();
    e.write(v, f, 0, b"old!").unwrap();
    let logged = e.inner.fsync_counts().0;
    flush_with(&e, v, || {
        // The flush has not queued its commit yet: every commit is durable, so this
        // fsync appends a record of "old!" past the log end the flush read, and answers
        // without waiting for the flush.
        e.fsync(v, f).unwrap();
    });
    assert_eq!(e.inner.fsync_counts().0, logged + 1, "fsync took the log");
    // Newer bytes, made durable by a commit, not by a record of their own.
    e.write(v, f, 0, b"new!").unwrap();
    e.flush_volume(v).unwrap();
    e.inner.store().sync().unwrap();
    let e = crash(dir.path(), e, &faults);
    assert_eq!(
        e.read(v, View::Live, f, 0, 16).unwrap(),
        b"new!",
        "the record logged during the flush was replayed over the newer durable bytes"
    );
}

#[test]
fn an_fsync_during_a_flush_survives_a_crash() {
    let (dir, faults, e, v, f) = pool_with_file();
    e.fsync(v, f).unwrap();
    e.write(v, f, 0, &[1u8; 8192]).unwrap();
    flush_with(&e, v, || {
        // Written after the flush took the buffers, fsynced before its commit.
        e.write(v, f, 4096, &[2u8; 4096]).unwrap();
        e.write(v, f, 8192, &[3u8; 100]).unwrap();
        e.fsync(v, f).unwrap();
    });
    let e = crash(dir.path(), e, &faults);
    let got = e.read(v, View::Live, f, 0, 16384).unwrap();
    let mut want = vec![1u8; 4096];
    want.extend_from_slice(&[2u8; 4096]);
    want.extend_from_slice(&[3u8; 100]);
    assert_eq!(got.len(), want.len());
    assert!(got == want, "fsynced bytes lost across the crash");
}

#[test]
fn a_chmod_left_beside_buffered_writes_and_an_explicit_mtime_both_survive_a_replay() {
    let (dir, faults, e, v, f) = pool_with_file();
    let g = e.create(v, ROOT, b"g", 0o644, CTX).unwrap().ino;
    for ino in [f, g] {
        e.fsync(v, ino).unwrap();
        e.write(v, ino, 0, b"data").unwrap();
        // A record of the write: replayed after the crash unless marked applied.
        e.fsync(v, ino).unwrap();
    }
    let mode = |m: u32| SetAttr {
        mode: Some(m),
        ..Default::default()
    };
    // The chmod does not flush `f`'s buffer: its record stays unapplied.
    e.setattr(v, f, mode(0o600)).unwrap();
    // Explicit times flush `g` first, which marks its record applied.
    let t = Timestamp {
        secs: 1_000,
        nsecs: 0,
    };
    let utimes = SetAttr {
        mtime: Some(TimeSet::At(t)),
        ..Default::default()
    };
    e.setattr(v, g, utimes).unwrap();
    // Both setattrs durable (a directory's fsync commits durably), the buffers not.
    e.fsync(v, ROOT).unwrap();
    let e = crash(dir.path(), e, &faults);
    let a = e.getattr(v, View::Live, f).unwrap();
    assert_eq!((a.perm, a.size), (0o600, 4), "the replay kept the chmod");
    assert_eq!(e.read(v, View::Live, f, 0, 16).unwrap(), b"data");
    let a = e.getattr(v, View::Live, g).unwrap();
    assert_eq!(
        a.mtime, t,
        "the replay wrote an older mtime over the explicit one"
    );
    assert_eq!(e.read(v, View::Live, g, 0, 16).unwrap(), b"data");
}
