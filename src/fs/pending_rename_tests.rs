//! Unit tests of the write-behind rename (rename_entry.rs): renames answered while commits
//! are held are seen by every reader, a snapshot queued after them holds them, and the
//! rows say what the answers said once the writer goes on, and after a reopen.

use super::tests::{CTX, ROOT, engine, listing};
use super::*;
use crate::store::rows::View;

fn errno<T: std::fmt::Debug>(r: Result<T, FsError>) -> i32 {
    r.unwrap_err().errno()
}

#[test]
fn renames_are_seen_before_their_commit_and_committed_as_answered() {
    let (d, e, v) = engine();
    let plain = RenameFlags::default();
    let a = e.mkdir(v, ROOT, b"a", 0o755, CTX).unwrap().ino;
    let b = e.mkdir(v, ROOT, b"b", 0o755, CTX).unwrap().ino;
    let x = e.create(v, a, b"x", 0o644, CTX).unwrap().ino;
    e.write(v, x, 0, b"xx").unwrap();
    let y = e.create(v, a, b"y", 0o644, CTX).unwrap().ino;
    let t = e.create(v, b, b"t", 0o644, CTX).unwrap().ino;
    e.link(v, t, a, b"t2").unwrap();
    let u = e.create(v, b, b"u", 0o644, CTX).unwrap().ino;
    e.flush_volume(v).unwrap();
    let in_rows = |e: &Engine, dir: InodeNo, n: &[u8]| {
        let r = e.inner.store().read().unwrap();
        r.dirent(v, View::Live, dir, n).unwrap().map(|(i, _)| i)
    };
    let b_before = e.getattr(v, View::Live, b).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2));

    let pause = e.pause_commits().unwrap();
    // To a free name in another directory.
    e.rename(v, a, b"x", b, b"new", plain).unwrap();
    // Over a file that keeps another name.
    e.rename(v, a, b"y", b, b"t", plain).unwrap();
    // Twice in a row, and a file whose own create is pending.
    e.rename(v, b, b"u", b, b"u2", plain).unwrap();
    e.rename(v, b, b"u2", b, b"u3", plain).unwrap();
    let p = e.create(v, a, b"p", 0o644, CTX).unwrap().ino;
    e.rename(v, a, b"p", a, b"q", plain).unwrap();
    // Nothing of it is in the rows yet: the answers came first.
    assert_eq!(in_rows(&e, b, b"new"), None);
    assert_eq!(in_rows(&e, a, b"x"), Some(x));

    let seen = |e: &Engine, view: View, when: &str| {
        assert_eq!(
            listing(e, v, view, a),
            vec![(b"q".to_vec(), p), (b"t2".to_vec(), t)],
            "{when}: a"
        );
        assert_eq!(
            listing(e, v, view, b),
            vec![
                (b"new".to_vec(), x),
                (b"t".to_vec(), y),
                (b"u3".to_vec(), u)
            ],
            "{when}: b"
        );
        for (dir, name, ino) in [
            (b, &b"new"[..], x),
            (b, b"t", y),
            (b, b"u3", u),
            (a, b"q", p),
        ] {
            assert_eq!(e.lookup(v, view, dir, name).unwrap().ino, ino, "{when}");
        }
        for (dir, name) in [(a, &b"x"[..]), (a, b"y"), (b, b"u"), (b, b"u2"), (a, b"p")] {
            assert_eq!(errno(e.lookup(v, view, dir, name)), libc::ENOENT, "{when}");
        }
        // Moved inodes keep their links; the replaced one lost one.
        for (ino, links) in [(x, 1), (y, 1), (u, 1), (p, 1), (t, 1)] {
            assert_eq!(e.getattr(v, view, ino).unwrap().nlink, links, "{when}");
        }
        assert_eq!(e.read(v, view, x, 0, 10).unwrap(), b"xx", "{when}");
    };
    seen(&e, View::Live, "answered");
    let b_after = e.getattr(v, View::Live, b).unwrap();
    assert!(b_after.mtime > b_before.mtime && b_after.ctime > b_before.ctime);
    assert!(e.getattr(v, View::Live, x).unwrap().ctime > b_before.ctime);
    let snap = e
        .inner
        .store()
        .write_queued(false, move |tx| tx.snapshot_generations(&[v]))
        .unwrap();
    drop(pause);
    let g = snap.wait().unwrap()[0].1;
    seen(&e, View::At(g), "the snapshot");
    seen(&e, View::Live, "committed");
    assert_eq!(in_rows(&e, b, b"new"), Some(x));
    assert_eq!(e.getattr(v, View::Live, b).unwrap(), b_after);
    drop(e);
    let e = Engine::open(d.path()).unwrap();
    seen(&e, View::Live, "reopened");
}

/// A rename (from, name, to, new name, flags) and the errno it gets.
type Refused = (
    InodeNo,
    &'static [u8],
    InodeNo,
    &'static [u8],
    RenameFlags,
    i32,
);

#[test]
fn a_rename_the_overlay_does_not_model_commits_first_and_refusals_match() {
    let (_d, e, v) = engine();
    let plain = RenameFlags::default();
    let f = e.create(v, ROOT, b"f", 0o644, CTX).unwrap().ino;
    let dir = e.mkdir(v, ROOT, b"d", 0o755, CTX).unwrap().ino;
    e.create(v, dir, b"in", 0o644, CTX).unwrap();
    // A directory moves, and a file over a directory: refused or committed before the
    // answer, with the errors of the committing path.
    assert_eq!(
        errno(e.rename(v, ROOT, b"f", ROOT, b"d", plain)),
        libc::EISDIR
    );
    let noreplace = RenameFlags {
        noreplace: true,
        ..Default::default()
    };
    e.create(v, ROOT, b"g", 0o644, CTX).unwrap();
    let refused: [Refused; 4] = [
        (ROOT, b"f", ROOT, b"g", noreplace, libc::EEXIST),
        (ROOT, b"none", ROOT, b"h", plain, libc::ENOENT),
        (f, b"x", ROOT, b"h", plain, libc::ENOTDIR),
        (ROOT, b"f", f, b"x", plain, libc::ENOTDIR),
    ];
    for (from, name, to, new, flags, want) in refused {
        assert_eq!(errno(e.rename(v, from, name, to, new, flags)), want);
    }
    e.rename(v, ROOT, b"d", ROOT, b"d2", plain).unwrap();
    assert_eq!(e.lookup(v, View::Live, ROOT, b"d2").unwrap().ino, dir);
    // The same inode under both names: nothing happens.
    e.link(v, f, ROOT, b"f2").unwrap();
    e.rename(v, ROOT, b"f", ROOT, b"f2", plain).unwrap();
    assert_eq!(e.lookup(v, View::Live, ROOT, b"f").unwrap().nlink, 2);
}
