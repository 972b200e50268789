//! Unit tests of write-behind operations committed together: a batch of creates and
//! unlinks in one directory rewrites the directory's row and the volume record once
//! (`crate::store` deferred.rs), and must commit what each operation, committed alone,
//! would have: around a snapshot queued between them, and across a reopen.

use super::tests::{CTX, ROOT, engine};
use super::*;
use crate::store::rows::View;

/// Names and inode numbers of `dir` as `view` shows it, sorted by name.
fn listing(e: &Engine, v: VolumeId, view: View, dir: InodeNo) -> Vec<(Vec<u8>, InodeNo)> {
    let mut out: Vec<_> = e
        .readdir(v, view, dir, 0, 10_000)
        .unwrap()
        .into_iter()
        .filter(|d| d.name != b"." && d.name != b"..")
        .map(|d| (d.name, d.ino))
        .collect();
    out.sort();
    out
}

/// What the test compares of a directory: links, times and size.
fn shape(a: &Attr) -> (u32, Timestamp, Timestamp, u64) {
    (a.nlink, a.mtime, a.ctime, a.size)
}

#[test]
fn a_batch_of_removes_and_creates_around_a_snapshot_commits_as_each_one_would() {
    let (d, e, v) = engine();
    let dir = e.mkdir(v, ROOT, b"d", 0o755, CTX).unwrap().ino;
    let name = |p: &str, i: usize| format!("{p}{i}").into_bytes();
    for i in 0..40 {
        let f = e.create(v, dir, &name("f", i), 0o644, CTX).unwrap().ino;
        e.write(v, f, 0, &[1u8; 100]).unwrap();
    }
    e.flush_volume(v).unwrap();
    let start = e.volume_info("v").unwrap();
    assert_eq!((start.files, start.logical_bytes), (42, 4000));

    // Everything below is queued while commits are held, so it commits in ONE batch:
    // removes and creates in `dir` (and one in the root), a snapshot, then more of both.
    let pause = e.pause_commits().unwrap();
    for i in 0..30 {
        e.unlink(v, dir, &name("f", i)).unwrap();
    }
    e.create(v, dir, b"n0", 0o644, CTX).unwrap();
    e.mkdir(v, dir, b"s0", 0o755, CTX).unwrap();
    e.create(v, ROOT, b"r", 0o644, CTX).unwrap();
    let first = (
        shape(&e.getattr(v, View::Live, dir).unwrap()),
        shape(&e.getattr(v, View::Live, ROOT).unwrap()),
        listing(&e, v, View::Live, dir),
    );
    let snap = e
        .inner
        .store()
        .write_queued(false, move |tx| tx.snapshot_generations(&[v]))
        .unwrap();
    for i in 30..35 {
        e.unlink(v, dir, &name("f", i)).unwrap();
    }
    e.mkdir(v, dir, b"s1", 0o755, CTX).unwrap();
    e.create(v, dir, b"n1", 0o644, CTX).unwrap();
    e.unlink(v, dir, b"n0").unwrap();
    let second = (
        shape(&e.getattr(v, View::Live, dir).unwrap()),
        shape(&e.getattr(v, View::Live, ROOT).unwrap()),
        listing(&e, v, View::Live, dir),
    );
    assert_eq!(second.2.len(), 5 + 2 + 1);
    drop(pause);
    let g = snap.wait().unwrap()[0].1;

    let check = |e: &Engine, when: &str| {
        // The snapshot holds the first run, every bit of it, and nothing of the second.
        let at = View::At(g);
        let seen = (
            shape(&e.getattr(v, at, dir).unwrap()),
            shape(&e.getattr(v, at, ROOT).unwrap()),
            listing(e, v, at, dir),
        );
        assert_eq!(seen, first, "{when}: the snapshot");
        // The rows say what the answers said.
        let live = (
            shape(&e.getattr(v, View::Live, dir).unwrap()),
            shape(&e.getattr(v, View::Live, ROOT).unwrap()),
            listing(e, v, View::Live, dir),
        );
        assert_eq!(live, second, "{when}: the live volume");
        // The volume record counts every operation of the batch once: 35 files removed,
        // 3 files and 2 directories made, one of the files removed again.
        let info = e.volume_info("v").unwrap();
        assert_eq!(
            (info.files, info.logical_bytes),
            (42 - 35 + 5 - 1, 500),
            "{when}: the volume's counts"
        );
    };
    check(&e, "committed");
    drop(e);
    let e = Engine::open(d.path()).unwrap();
    check(&e, "reopened");
    // Inode numbers go on past every one the batch handed out.
    let last = second.2.iter().map(|(_, i)| *i).max().unwrap();
    assert!(e.create(v, ROOT, b"z", 0o644, CTX).unwrap().ino > last);
}
