//! Reads of committed data (whole stored blocks are gathered and read together by
//! `chunks::read_into`, the rest block by block) and of the write buffers over it: both
//! must return what was written, and a buffer holds only what was written.

use super::*;
use crate::store::rows::View;

const BS: usize = 4096;
const CTX: Ctx = Ctx {
    uid: 1000,
    gid: 1000,
    umask: 0,
};

/// A 64-block file whose stored chunks have every kind of neighbour: short chunks (trailing
/// zeros trimmed, so the pack has alignment gaps between them), holes, a block stored twice
/// (one chunk for both), a part-written block stored as patches, and full blocks.
fn written(e: &Engine, v: VolumeId) -> (InodeNo, Vec<u8>) {
    let f = e.create(v, InodeNo::ROOT, b"f", 0o644, CTX).unwrap().ino;
    let mut want = vec![0u8; 64 * BS];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for (b, block) in want.chunks_mut(BS).enumerate() {
        let len = match b % 5 {
            0 => 0,
            1 => 1 + b * 37,
            _ => BS,
        };
        for byte in &mut block[..len] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *byte = x as u8 | 1;
        }
    }
    let copy = want[2 * BS..3 * BS].to_vec();
    want[40 * BS..41 * BS].copy_from_slice(&copy);
    e.write(v, f, 0, &want).unwrap();
    e.commit_all().unwrap();
    // A small write into a stored block: committed as a patch over it.
    want[7 * BS + 100..7 * BS + 110].copy_from_slice(b"0123456789");
    e.write(v, f, (7 * BS + 100) as u64, b"0123456789").unwrap();
    e.commit_all().unwrap();
    (f, want)
}

#[test]
fn reads_of_any_span_return_what_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path()).unwrap();
    let v = e.create_volume("v", Some(BS as u64), CTX).unwrap().id;
    let (f, want) = written(&e, v);
    let len = want.len() as u64;
    for (off, size) in [
        (0, len),
        (0, 1 << 20),
        (BS as u64, 8 * BS as u64),
        (100, 10 * BS as u64),
        (3 * BS as u64 - 1, 2),
        (len - 5, 100),
        (5 * BS as u64 + 1, 30 * BS as u64),
    ] {
        let got = e.read(v, View::Live, f, off, size as u32).unwrap();
        let end = (off + size).min(len) as usize;
        assert_eq!(
            got.len(),
            end - off as usize,
            "length of read at {off}+{size}"
        );
        assert!(
            got == want[off as usize..end],
            "bytes of read at {off}+{size} differ from what was written"
        );
    }
}

#[test]
fn a_damaged_chunk_fails_a_gathered_read() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path()).unwrap();
    let v = e.create_volume("v", Some(BS as u64), CTX).unwrap().id;
    let (f, _) = written(&e, v);
    drop(e);
    // Flip one byte of the third block's body: the packs hold the blocks in file order.
    let pack = std::fs::read_dir(dir.path().join("packs"))
        .unwrap()
        .map(|d| d.unwrap().path())
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    let at = 2 * BS + 10;
    bytes[at] ^= 0xff;
    std::fs::write(&pack, &bytes).unwrap();
    let e = Engine::open(dir.path()).unwrap();
    let err = e.read(v, View::Live, f, 0, 16 * BS as u32).unwrap_err();
    assert_eq!(err.errno(), libc::EIO, "{err}");
}

#[test]
fn small_writes_into_large_blocks_hold_only_what_they_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path()).unwrap();
    let bs = 128 << 10;
    let v = e.create_volume("v", Some(bs as u64), CTX).unwrap().id;
    let f = e.create(v, InodeNo::ROOT, b"f", 0o644, CTX).unwrap().ino;
    let mut want = vec![0u8; 8 * bs];
    for (i, x) in want.iter_mut().enumerate() {
        *x = (i % 251) as u8 + 1;
    }
    e.write(v, f, 0, &want).unwrap();
    e.commit_all().unwrap();
    for k in 0..8 {
        let at = k * bs + bs / 2 + 100;
        want[at..at + 4096].fill(0xab);
        e.write(v, f, at as u64, &[0xab; 4096]).unwrap();
    }
    let held = e.inner.vol_state(v).unwrap().dirty.lock().bytes;
    assert_eq!(
        held,
        8 * 4096,
        "eight 4 KiB writes hold 32 KiB, not the blocks up to them"
    );
    assert!(e.read(v, View::Live, f, 0, want.len() as u32).unwrap() == want);
    e.commit_all().unwrap();
    assert!(e.read(v, View::Live, f, 0, want.len() as u32).unwrap() == want);
}

#[test]
fn while_a_snapshot_is_prepared_writes_past_the_tight_limit_are_paced_not_flushed_by_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let e = Engine::open(dir.path()).unwrap();
    let v = e.create_volume("v", Some(128 << 10), CTX).unwrap().id;
    let f = e.create(v, InodeNo::ROOT, b"f", 0o644, CTX).unwrap().ino;
    e.set_tight(&[v], true);
    // As in a freeze: no background flush changes the buffer under the test (let go
    // also when an assertion fails, or closing the engine would wait for it forever).
    struct Held<'a>(&'a Engine, VolumeId);
    impl Drop for Held<'_> {
        fn drop(&mut self) {
            self.0.hold_flushes(&[self.1], false);
        }
    }
    e.hold_flushes(&[v], true);
    let held = Held(&e, v);
    let chunk = vec![0x5au8; 64 << 10];
    let mut paced = 0;
    for k in 0..64u64 {
        let before = e.inner.vol_state(v).unwrap().dirty.lock().bytes;
        let pause = e.write_pause(v, chunk.len());
        // Up to 3/4 of the tight limit a write goes in at once; past it, it waits a little.
        assert_eq!(
            pause.is_some(),
            before > TIGHT_DIRTY_LIMIT / 4 * 3,
            "write {k}"
        );
        assert!(pause.is_none_or(|p| p <= crate::fs::pace::MAX_PAUSE));
        paced += usize::from(pause.is_some());
        let w = e
            .write_buffered(v, f, k * chunk.len() as u64, &chunk, false)
            .unwrap();
        // A writer that flushed itself would wait for the snapshot's pre-flush: below the
        // volume's own limit it never has to.
        assert!(!w.over_limit, "write {k}");
    }
    assert!(paced > 48);
    e.set_tight(&[v], false);
    drop(held);
    // Outside a snapshot the volume's own limit applies: 4 MiB are not paced.
    assert_eq!(e.write_pause(v, chunk.len()), None);
}

#[test]
fn what_a_flush_in_flight_took_does_not_count_toward_the_writers_limit() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = crate::fs::EngineConfig {
        dirty_limit: 1 << 20,
        ..Default::default()
    };
    let e = Engine::open_with(dir.path(), cfg).unwrap();
    let v = e.create_volume("v", Some(128 << 10), CTX).unwrap().id;
    let f = e.create(v, InodeNo::ROOT, b"f", 0o644, CTX).unwrap().ino;
    let chunk = vec![0x5au8; 64 << 10];
    let vs = e.inner.vol_state(v).unwrap();
    // As a snapshot's pre-flush does: the buffer taken, its commit under way (undone also
    // when an assertion fails, or closing the engine would wait for it forever).
    struct InFlight<'a>(&'a Engine, &'a VolState, VolumeId);
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            let mut d = self.1.dirty.lock();
            d.in_flight = false;
            d.in_flight_bytes = 0;
            self.1.flushed.notify_all();
            drop(d);
            self.0.hold_flushes(&[self.2], false);
        }
    }
    e.hold_flushes(&[v], true);
    let _in_flight = InFlight(&e, &vs, v);
    for k in 0..16u64 {
        e.write_buffered(v, f, k * chunk.len() as u64, &chunk, false)
            .unwrap();
    }
    {
        let mut d = vs.dirty.lock();
        d.in_flight = true;
        d.in_flight_bytes = d.bytes;
    }
    // A writer past the limit would wait for that flush: only what came after counts.
    for k in 16..32u64 {
        let w = e
            .write_buffered(v, f, k * chunk.len() as u64, &chunk, false)
            .unwrap();
        assert!(!w.over_limit, "write {k}");
    }
    let w = e.write_buffered(v, f, 32 * chunk.len() as u64, &chunk, false);
    assert!(w.unwrap().over_limit);
}
