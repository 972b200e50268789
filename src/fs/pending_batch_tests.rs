//! Unit tests of write-behind operations committed together: a batch of creates and
//! unlinks in one directory rewrites the directory's row and the volume record once
//! (`crate::store` deferred.rs), and must commit what each operation, committed alone,
//! would have: around a snapshot queued between them, and across a reopen. And hard
//! links, write-behind too: seen before their commit, committed as answered.

use super::tests::{CTX, ROOT, engine, listing};
use super::*;
use crate::store::rows::View;

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

#[test]
fn hard_links_are_seen_before_their_commit_and_committed_as_answered() {
    let (d, e, v) = engine();
    let sub = e.mkdir(v, ROOT, b"sub", 0o755, CTX).unwrap().ino;
    let a = e.create(v, ROOT, b"a", 0o644, CTX).unwrap().ino;
    e.write(v, a, 0, b"data").unwrap();
    e.flush_volume(v).unwrap();
    let in_rows = |e: &Engine, dir: InodeNo, n: &[u8]| {
        let r = e.inner.store().read().unwrap();
        r.dirent(v, View::Live, dir, n).unwrap().is_some()
    };
    let pause = e.pause_commits().unwrap();
    // A link of a committed file, and one of a file whose own create is pending.
    let l = e.link(v, a, sub, b"l").unwrap();
    assert_eq!((l.ino, l.nlink, l.size), (a, 2, 4));
    let b = e.create(v, sub, b"b", 0o600, CTX).unwrap().ino;
    assert_eq!(e.link(v, b, ROOT, b"lb").unwrap().nlink, 2);
    assert!(!in_rows(&e, sub, b"l") && !in_rows(&e, ROOT, b"lb"));
    // Readers see them.
    assert_eq!(e.lookup(v, View::Live, sub, b"l").unwrap(), l);
    assert_eq!(e.getattr(v, View::Live, a).unwrap(), l);
    assert_eq!(e.lookup(v, View::Live, ROOT, b"lb").unwrap().ino, b);
    let names = listing(&e, v, View::Live, sub);
    assert_eq!(names, vec![(b"b".to_vec(), b), (b"l".to_vec(), a)]);
    // Linked and unlinked again, all pending: the count never stops at zero on the way.
    for _ in 0..3 {
        e.link(v, a, ROOT, b"x").unwrap();
        e.unlink(v, ROOT, b"x").unwrap();
        assert_eq!(e.getattr(v, View::Live, a).unwrap().nlink, 2);
    }
    // Refused as the committing path refuses.
    let refused = |r: Result<Attr, FsError>| r.expect_err("refused").errno();
    assert_eq!(refused(e.link(v, a, sub, b"b")), libc::EEXIST);
    assert_eq!(refused(e.link(v, sub, ROOT, b"x")), libc::EPERM);
    assert_eq!(refused(e.link(v, a, a, b"x")), libc::ENOTDIR);
    assert_eq!(refused(e.link(v, InodeNo(999), ROOT, b"x")), libc::ENOENT);
    assert_eq!(refused(e.link(v, a, InodeNo(999), b"x")), libc::ENOENT);
    // Unlinks count the pending links: a keeps its other name and its bytes; b loses both
    // names and cannot be linked again.
    e.unlink(v, ROOT, b"a").unwrap();
    assert_eq!(e.getattr(v, View::Live, a).unwrap().nlink, 1);
    assert_eq!(e.read(v, View::Live, a, 0, 100).unwrap(), b"data");
    e.unlink(v, sub, b"b").unwrap();
    e.unlink(v, ROOT, b"lb").unwrap();
    assert_eq!(refused(e.link(v, b, ROOT, b"again")), libc::ENOENT);
    let answered = (
        e.getattr(v, View::Live, a).unwrap(),
        shape(&e.getattr(v, View::Live, sub).unwrap()),
        shape(&e.getattr(v, View::Live, ROOT).unwrap()),
    );
    drop(pause);
    // The rows are read without the overlay: wait for the commit.
    e.inner.store().settle().unwrap();
    let check = |e: &Engine, when: &str| {
        assert!(in_rows(e, sub, b"l"), "{when}");
        let now = (
            e.getattr(v, View::Live, a).unwrap(),
            shape(&e.getattr(v, View::Live, sub).unwrap()),
            shape(&e.getattr(v, View::Live, ROOT).unwrap()),
        );
        assert_eq!(now, answered, "{when}");
        assert_eq!(listing(e, v, View::Live, sub), vec![(b"l".to_vec(), a)]);
        assert_eq!(e.volume_info("v").unwrap().files, 3, "{when}");
    };
    check(&e, "committed");
    drop(e);
    let e = Engine::open(d.path()).unwrap();
    check(&e, "reopened");
    assert_eq!(e.read(v, View::Live, a, 0, 100).unwrap(), b"data");
}
