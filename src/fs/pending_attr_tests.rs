//! Unit tests of write-behind setattr (pending_attr.rs, setattr.rs): what readers see of a
//! chmod, chown or utimes answered but not committed, and what the commit then holds.

use super::tests::{CTX, ROOT, engine};
use super::*;
use crate::store::rows::View;

/// The inode as the last commit holds it (the rows alone, without the overlay).
fn rows(e: &Engine, v: VolumeId, ino: InodeNo) -> Inode {
    let r = e.inner.store().read().unwrap();
    txops::inode_in(&r, v, View::Live, ino).unwrap()
}

fn at(secs: i64) -> Timestamp {
    Timestamp { secs, nsecs: 7 }
}

fn chmod(mode: u32) -> SetAttr {
    SetAttr {
        mode: Some(mode),
        ..Default::default()
    }
}

/// An access ACL with a named user and a mask (so it is stored, not folded into the mode).
fn access_acl() -> Vec<u8> {
    let mut b = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 7u16, u32::MAX),
        (0x02, 5, 1000),
        (0x04, 0, u32::MAX),
        (0x10, 5, u32::MAX),
        (0x20, 0, u32::MAX),
    ] {
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&perm.to_le_bytes());
        b.extend_from_slice(&id.to_le_bytes());
    }
    b
}

#[test]
fn chmod_chown_utimes_are_seen_before_their_commit_and_committed_as_answered() {
    let (_d, e, v) = engine();
    let f = e.create(v, ROOT, b"f", 0o644, CTX).unwrap();
    e.inner.store().settle().unwrap();
    let pause = e.pause_commits().unwrap();
    let a = e.setattr(v, f.ino, chmod(0o600)).unwrap();
    assert_eq!(a.perm, 0o600);
    let owner = SetAttr {
        uid: Some(7),
        gid: Some(5),
        ..Default::default()
    };
    let b = e.setattr(v, f.ino, owner).unwrap();
    assert_eq!((b.perm, b.uid, b.gid), (0o600, 7, 5));
    let times = SetAttr {
        atime: Some(TimeSet::At(at(1_000))),
        mtime: Some(TimeSet::At(at(2_000))),
        ..Default::default()
    };
    let c = e.setattr(v, f.ino, times).unwrap();
    assert_eq!((c.perm, c.uid, c.gid), (0o600, 7, 5));
    assert_eq!((c.atime, c.mtime), (at(1_000), at(2_000)));
    assert!(c.ctime >= f.ctime);
    // Held: the rows still have the file as created; getattr and lookup see the answer.
    let held = rows(&e, v, f.ino);
    assert_eq!((held.perm, held.uid, held.gid), (0o644, 1000, 1000));
    assert_eq!(e.getattr(v, View::Live, f.ino).unwrap(), c);
    assert_eq!(e.lookup(v, View::Live, ROOT, b"f").unwrap(), c);
    drop(pause);
    e.inner.store().settle().unwrap();
    // Committed as answered, and the overlay is empty again.
    let done = rows(&e, v, f.ino);
    assert_eq!(done.attr(f.ino, 4096), c);
    assert_eq!(e.getattr(v, View::Live, f.ino).unwrap(), c);
    let vs = e.inner.vol_state(v).unwrap();
    assert!(lock(&vs.pending).attrs.is_empty());
}

#[test]
fn a_create_in_a_directory_made_setgid_while_held_inherits_as_after_the_commit() {
    let (_d, e, v) = engine();
    let d = e.mkdir(v, ROOT, b"d", 0o755, CTX).unwrap().ino;
    e.inner.store().settle().unwrap();
    let pause = e.pause_commits().unwrap();
    let own = SetAttr {
        gid: Some(5),
        ..Default::default()
    };
    e.setattr(v, d, own).unwrap();
    e.setattr(v, d, chmod(0o2775)).unwrap();
    // Both behind: the create and the mkdir see the directory's new group and setgid bit.
    let f = e.create(v, d, b"f", 0o644, CTX).unwrap();
    let s = e.mkdir(v, d, b"s", 0o755, CTX).unwrap();
    assert_eq!((f.gid, f.perm), (5, 0o644));
    assert_eq!((s.gid, s.perm), (5, 0o2755));
    assert_eq!(rows(&e, v, d).perm, 0o755);
    drop(pause);
    e.inner.store().settle().unwrap();
    // What the same creates give once everything is committed.
    let f2 = e.create(v, d, b"f2", 0o644, CTX).unwrap();
    let s2 = e.mkdir(v, d, b"s2", 0o755, CTX).unwrap();
    assert_eq!((f2.gid, f2.perm), (f.gid, f.perm));
    assert_eq!((s2.gid, s2.perm), (s.gid, s.perm));
    e.inner.store().settle().unwrap();
    for (ino, want) in [(f.ino, &f), (s.ino, &s)] {
        let got = rows(&e, v, ino);
        assert_eq!((got.gid, got.perm), (want.gid, want.perm));
    }
    let dir = rows(&e, v, d);
    assert_eq!((dir.gid, dir.perm), (5, 0o2775));
}

#[test]
fn a_directory_mtime_set_after_pending_creates_in_it_wins_over_them() {
    let (_d, e, v) = engine();
    let d = e.mkdir(v, ROOT, b"d", 0o755, CTX).unwrap().ino;
    e.inner.store().settle().unwrap();
    let pause = e.pause_commits().unwrap();
    // As tar does: the files first, then the directory's times put back.
    e.create(v, d, b"a", 0o644, CTX).unwrap();
    let times = SetAttr {
        mtime: Some(TimeSet::At(at(1_000))),
        ..Default::default()
    };
    let answered = e.setattr(v, d, times).unwrap();
    assert_eq!(answered.mtime, at(1_000));
    assert_eq!(answered.nlink, 2);
    let seen = e.getattr(v, View::Live, d).unwrap();
    assert_eq!(seen, answered);
    // A create after it moves the time on again.
    let b = e.create(v, d, b"b", 0o644, CTX).unwrap();
    let after = e.getattr(v, View::Live, d).unwrap();
    assert!(after.mtime >= b.ctime && after.ctime >= b.ctime);
    e.setattr(v, d, times).unwrap();
    let last = e.getattr(v, View::Live, d).unwrap();
    drop(pause);
    e.inner.store().settle().unwrap();
    assert_eq!(last.mtime, at(1_000));
    assert_eq!(e.getattr(v, View::Live, d).unwrap(), last);
}

#[test]
fn a_snapshot_right_after_a_pending_setattr_holds_it() {
    let (_d, e, v) = engine();
    let f = e.create(v, ROOT, b"f", 0o644, CTX).unwrap().ino;
    let pause = e.pause_commits().unwrap();
    e.setattr(v, f, chmod(0o640)).unwrap();
    let times = SetAttr {
        mtime: Some(TimeSet::At(at(3_000))),
        ..Default::default()
    };
    let answered = e.setattr(v, f, times).unwrap();
    drop(pause);
    // Queued behind the setattr calls: the snapshot holds them.
    let g = e.snapshot_generations(&[v]).unwrap()[0].1;
    let snap = e.getattr(v, View::At(g), f).unwrap();
    assert_eq!(
        (snap.perm, snap.mtime, snap.ctime),
        (0o640, at(3_000), answered.ctime)
    );
}

#[test]
fn a_truncate_queued_behind_a_pending_chmod_finds_it() {
    let (_d, e, v) = engine();
    let f = e.create(v, ROOT, b"f", 0o644, CTX).unwrap().ino;
    e.write(v, f, 0, &[7u8; 10_000]).unwrap();
    let pause = e.pause_commits().unwrap();
    // The write is flushed first (a commit): the chmod waits for the writer, so it runs on
    // its own thread; the truncate (it commits before it answers) on another.
    std::thread::scope(|s| {
        let chmodded = s.spawn(|| e.setattr(v, f, chmod(0o4755)).unwrap());
        drop(pause);
        let a = chmodded.join().unwrap();
        assert_eq!((a.perm, a.size), (0o4755, 10_000));
    });
    e.inner.store().settle().unwrap();
    let pause = e.pause_commits().unwrap();
    e.setattr(v, f, chmod(0o6755)).unwrap();
    assert_eq!(e.getattr(v, View::Live, f).unwrap().perm, 0o6755);
    std::thread::scope(|s| {
        let cut = SetAttr {
            size: Some(100),
            kill_priv: true,
            ..Default::default()
        };
        let e = &e;
        let truncated = s.spawn(move || e.setattr(v, f, cut).unwrap());
        // The truncate waits for the writer (holding the buffer lock, so no getattr
        // here); the chmod is still only in the overlay.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(rows(e, v, f).perm, 0o4755);
        drop(pause);
        let a = truncated.join().unwrap();
        // It found the chmod committed: setuid and (group-executable) setgid dropped.
        assert_eq!((a.perm, a.size), (0o755, 100));
    });
    let done = rows(&e, v, f);
    assert_eq!((done.perm, done.size), (0o755, 100));
}

#[test]
fn a_chmod_commits_first_when_the_inode_has_an_access_acl() {
    let (_d, e, v) = engine();
    let f = e.create(v, ROOT, b"f", 0o640, CTX).unwrap().ino;
    let d = e.mkdir(v, ROOT, b"d", 0o755, CTX).unwrap().ino;
    let own = SetAttr {
        uid: Some(7),
        ..Default::default()
    };
    assert!(!e.setattr_commits_first(v, f, &chmod(0o600)).unwrap());
    e.setxattr(v, f, acl::ACCESS, &access_acl(), XattrMode::Any)
        .unwrap();
    assert!(e.setattr_commits_first(v, f, &chmod(0o600)).unwrap());
    assert!(!e.setattr_commits_first(v, f, &own).unwrap());
    // The ACL follows the chmod (the synchronous path rewrites it).
    e.setattr(v, f, chmod(0o700)).unwrap();
    let stored = e.getxattr(v, View::Live, f, acl::ACCESS).unwrap();
    // The mask (the fourth entry) follows the group bits.
    assert_eq!(&stored[4 + 3 * 8 + 2..4 + 3 * 8 + 4], &0u16.to_le_bytes());
    // A file whose create is pending with an access ACL from its directory's default one.
    e.setxattr(v, d, acl::DEFAULT, &access_acl(), XattrMode::Any)
        .unwrap();
    let pause = e.pause_commits().unwrap();
    let g = e.create(v, d, b"g", 0o640, CTX).unwrap().ino;
    let commits_first = e.setattr_commits_first(v, g, &chmod(0o600)).unwrap();
    let owner_behind = !e.setattr_commits_first(v, g, &own).unwrap();
    drop(pause);
    assert!(commits_first);
    assert!(owner_behind);
}

#[test]
fn a_chmod_checked_while_an_acl_change_is_queued_commits_first() {
    let (_d, e, v) = engine();
    let f = e.create(v, ROOT, b"f", 0o640, CTX).unwrap().ino;
    e.inner.store().settle().unwrap();
    let vs = e.inner.vol_state(v).unwrap();
    let pause = e.pause_commits().unwrap();
    std::thread::scope(|s| {
        let e = &e;
        let acl_set = s.spawn(move || {
            e.setxattr(v, f, acl::ACCESS, &access_acl(), XattrMode::Any)
                .unwrap()
        });
        // Queued (held by the pause): counted until answered.
        let queued = (0..2000).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(1));
            lock(&vs.pending).sync_ns > 0
        });
        let commits_first = e.setattr_commits_first(v, f, &chmod(0o600)).unwrap();
        drop(pause);
        acl_set.join().unwrap();
        assert!(queued, "the ACL change was never counted");
        assert!(commits_first);
    });
    // Answered: a chown may go behind again, a chmod meets the ACL now.
    let own = SetAttr {
        uid: Some(7),
        ..Default::default()
    };
    assert!(!e.setattr_commits_first(v, f, &own).unwrap());
    assert!(e.setattr_commits_first(v, f, &chmod(0o600)).unwrap());
}

#[test]
fn a_chmod_of_a_file_with_buffered_writes_answers_without_flushing_them() {
    let (_d, e, v) = engine();
    let f = e.create(v, ROOT, b"f", 0o644, CTX).unwrap().ino;
    e.inner.store().settle().unwrap();
    e.write(v, f, 0, b"buffered").unwrap();
    let e = std::sync::Arc::new(e);
    let pause = e.pause_commits().unwrap();
    // Answered while commits are held: a flush first would wait for them.
    let (tx, rx) = crossbeam_channel::bounded(1);
    let e2 = e.clone();
    std::thread::spawn(move || {
        let _ = tx.send(e2.setattr(v, f, chmod(0o600)));
    });
    let a = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the chmod waited for the writer")
        .unwrap();
    assert_eq!((a.perm, a.size), (0o600, 8));
    let seen = e.getattr(v, View::Live, f).unwrap();
    assert_eq!((seen.perm, seen.size), (0o600, 8));
    assert_eq!(e.read(v, View::Live, f, 0, 16).unwrap(), b"buffered");
    let r = rows(&e, v, f);
    assert_eq!((r.perm, r.size), (0o644, 0), "nothing committed yet");
    drop(pause);
    e.flush_volume(v).unwrap();
    let r = rows(&e, v, f);
    assert_eq!((r.perm, r.size), (0o600, 8));
    let after = e.getattr(v, View::Live, f).unwrap();
    let shown = |a: &Attr| (a.perm, a.size, a.mtime, a.ctime);
    assert_eq!(shown(&after), shown(&seen));
}
