//! Unit tests of the write-behind overlay (pending.rs, pending_create.rs): what readers see
//! of creates and unlinks answered but not committed, and what the commit then holds.

use super::tests::{CTX, ROOT, engine};
use super::*;
use crate::store::rows::View;

/// Does the last commit hold inode `ino`? (The rows alone, without the overlay.)
fn committed(e: &Engine, v: VolumeId, ino: InodeNo) -> bool {
    let r = e.inner.store().read().unwrap();
    txops::inode_in(&r, v, View::Live, ino).is_ok()
}

fn names(e: &Engine, v: VolumeId, dir: InodeNo, page: usize) -> Vec<(Vec<u8>, InodeNo)> {
    let mut out = Vec::new();
    let mut off = 0;
    loop {
        let got = e.readdir(v, View::Live, dir, off, page).unwrap();
        let Some(last) = got.last() else {
            return out;
        };
        off = last.offset;
        out.extend(got.into_iter().map(|d| (d.name, d.ino)));
    }
}

#[test]
fn creates_are_seen_before_their_commit_and_committed_as_answered() {
    let (_d, e, v) = engine();
    let sub = e.mkdir(v, ROOT, b"sub", 0o755, CTX).unwrap().ino;
    let before = e.getattr(v, View::Live, sub).unwrap();
    let pause = e.pause_commits().unwrap();
    let a = e.create(v, sub, b"a", 0o640, CTX).unwrap();
    let fifo = e
        .mknod(v, sub, b"p", libc::S_IFIFO | 0o600, 0, CTX)
        .unwrap();
    let link = e.symlink(v, sub, b"l", b"target", CTX).unwrap();
    for ino in [a.ino, fifo.ino, link.ino] {
        assert!(!committed(&e, v, ino), "inode {ino} committed while held");
    }
    assert!(a.ino != fifo.ino && fifo.ino != link.ino && a.ino != link.ino);
    // Lookup, getattr and readdir (one entry per page too) see them.
    assert_eq!(e.lookup(v, View::Live, sub, b"a").unwrap(), a);
    assert_eq!(e.getattr(v, View::Live, a.ino).unwrap().perm, 0o640);
    assert_eq!(e.lookup(v, View::Live, sub, b"l").unwrap().size, 6);
    let want = |extra: &[(&[u8], InodeNo)]| {
        let mut w: Vec<(Vec<u8>, InodeNo)> = vec![(b".".to_vec(), sub), (b"..".to_vec(), ROOT)];
        let mut rest: Vec<(Vec<u8>, InodeNo)> =
            extra.iter().map(|(n, i)| (n.to_vec(), *i)).collect();
        rest.sort_by_key(|(n, _)| crate::store::keys::name_hash(n));
        w.extend(rest);
        w
    };
    let all = want(&[(b"a", a.ino), (b"p", fifo.ino), (b"l", link.ino)]);
    for page in [1, 2, 100] {
        assert_eq!(names(&e, v, sub, page), all, "page {page}");
    }
    // The directory's times moved; its link count did not.
    let dir = e.getattr(v, View::Live, sub).unwrap();
    assert!(dir.mtime >= a.ctime && dir.mtime > before.mtime);
    assert_eq!(dir.nlink, before.nlink);
    // A name is made once; a missing directory is ENOENT; a file is not a directory.
    assert!(matches!(
        e.create(v, sub, b"a", 0o644, CTX),
        Err(FsError::Exists)
    ));
    assert!(matches!(
        e.symlink(v, sub, b"p", b"x", CTX),
        Err(FsError::Exists)
    ));
    assert!(matches!(
        e.create(v, a.ino, b"x", 0o644, CTX),
        Err(FsError::NotDir)
    ));
    // Data goes to the buffer of the new file.
    e.write(v, a.ino, 0, &[7u8; 100]).unwrap();
    assert_eq!(
        e.read(v, View::Live, a.ino, 0, 4096).unwrap(),
        vec![7u8; 100]
    );
    assert_eq!(e.getattr(v, View::Live, a.ino).unwrap().size, 100);
    // Unlinked and made again before any commit: the newest wins everywhere.
    e.unlink(v, sub, b"a").unwrap();
    assert!(matches!(
        e.lookup(v, View::Live, sub, b"a"),
        Err(FsError::NotFound)
    ));
    assert!(matches!(e.unlink(v, sub, b"a"), Err(FsError::NotFound)));
    let a2 = e.create(v, sub, b"a", 0o600, CTX).unwrap();
    assert!(a2.ino != a.ino);
    assert_eq!(e.lookup(v, View::Live, sub, b"a").unwrap().ino, a2.ino);
    let all = want(&[(b"a", a2.ino), (b"p", fifo.ino), (b"l", link.ino)]);
    for page in [1, 3, 100] {
        assert_eq!(names(&e, v, sub, page), all, "page {page}");
    }
    assert!(!committed(&e, v, a2.ino));
    drop(pause);
    // Committed as answered.
    e.inner.store().settle().unwrap();
    for ino in [a2.ino, fifo.ino, link.ino] {
        assert!(committed(&e, v, ino), "inode {ino} not committed");
    }
    assert!(!committed(&e, v, a.ino));
    assert_eq!(names(&e, v, sub, 2), all);
    assert_eq!(e.readlink(v, View::Live, link.ino).unwrap(), b"target");
    assert_eq!(e.getattr(v, View::Live, fifo.ino).unwrap(), fifo);
    assert_eq!(e.volume_info("v").unwrap().files, 5);
}

#[test]
fn a_snapshot_and_an_fsync_right_after_a_create_hold_it() {
    let (d, e, v) = engine();
    let pause = e.pause_commits().unwrap();
    let a = e.create(v, ROOT, b"a", 0o644, CTX).unwrap().ino;
    e.write(v, a, 0, b"hello").unwrap();
    drop(pause);
    // Queued behind the create: the snapshot holds it.
    let g = e.snapshot_generations(&[v]).unwrap()[0].1;
    assert_eq!(e.lookup(v, View::At(g), ROOT, b"a").unwrap().ino, a);
    let pause = e.pause_commits().unwrap();
    let b = e.create(v, ROOT, b"b", 0o644, CTX).unwrap().ino;
    drop(pause);
    e.fsync(v, b).unwrap();
    drop(e);
    // Reopened, numbers go on past every one handed out.
    let e = Engine::open(d.path()).unwrap();
    assert_eq!(e.lookup(v, View::Live, ROOT, b"b").unwrap().ino, b);
    let c = e.create(v, ROOT, b"c", 0o644, CTX).unwrap().ino;
    assert!(c > b && b > a, "{a} {b} {c}");
}

#[test]
fn readers_never_miss_a_create_racing_its_commit() {
    // The committer runs while each name is made, looked up and removed: whether the
    // create is still in the overlay or already in the rows, it shows exactly once.
    let (_d, e, v) = engine();
    let mut last = InodeNo(0);
    for i in 0..3000u32 {
        let name = format!("f{}", i % 7);
        let a = e.create(v, ROOT, name.as_bytes(), 0o644, CTX).unwrap();
        assert!(a.ino > last, "inode numbers grow");
        last = a.ino;
        assert_eq!(
            e.lookup(v, View::Live, ROOT, name.as_bytes()).unwrap().ino,
            a.ino
        );
        assert_eq!(e.getattr(v, View::Live, a.ino).unwrap().nlink, 1);
        let listed = e.readdir(v, View::Live, ROOT, 0, 100).unwrap();
        assert_eq!(listed.iter().filter(|d| d.ino == a.ino).count(), 1);
        e.unlink(v, ROOT, name.as_bytes()).unwrap();
        assert!(matches!(
            e.lookup(v, View::Live, ROOT, name.as_bytes()),
            Err(FsError::NotFound)
        ));
    }
    assert_eq!(e.volume_info("v").unwrap().files, 1);
}

#[test]
fn a_create_checked_while_a_namespace_change_is_queued_commits_first() {
    // A change that commits before it answers (here: one pretended in flight) could still
    // take the name: the create must not answer before its own commit.
    let (_d, e, v) = engine();
    let vs = e.inner.vol_state(v).unwrap();
    lock(&vs.pending).sync_ns += 1;
    let a = e.create(v, ROOT, b"a", 0o644, CTX).unwrap().ino;
    assert!(committed(&e, v, a));
    e.unlink(v, ROOT, b"a").unwrap();
    assert!(!committed(&e, v, a));
    lock(&vs.pending).sync_ns -= 1;
    let pause = e.pause_commits().unwrap();
    let b = e.create(v, ROOT, b"b", 0o644, CTX).unwrap().ino;
    assert!(!committed(&e, v, b));
    drop(pause);
}

#[test]
fn a_new_file_answers_the_kernels_capability_question_without_waiting_for_its_commit() {
    let (_d, e, v) = engine();
    let e = std::sync::Arc::new(e);
    let pause = e.pause_commits().unwrap();
    let a = e.create(v, ROOT, b"a", 0o644, CTX).unwrap();
    assert!(!committed(&e, v, a.ino));
    // Asked on a thread: a getxattr that waited for the writer would wait for the pause.
    let (tx, rx) = std::sync::mpsc::channel();
    let asker = e.clone();
    std::thread::spawn(move || {
        let _ = tx.send(asker.getxattr(v, View::Live, a.ino, b"security.capability"));
    });
    let got = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("getxattr of a new file waited for its commit");
    assert!(matches!(got, Err(FsError::NoData)), "{got:?}");
    drop(pause);
    // Once committed, the rows answer (and say the same).
    e.setxattr(v, a.ino, b"user.k", b"v", XattrMode::Any)
        .unwrap();
    assert_eq!(e.getxattr(v, View::Live, a.ino, b"user.k").unwrap(), b"v");
    assert!(matches!(
        e.getxattr(v, View::Live, a.ino, b"security.capability"),
        Err(FsError::NoData)
    ));
}
