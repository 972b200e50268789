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

/// Runs `f` on a thread and returns its answer, failing if it does not come soon: with
/// commits held by the caller, an operation that waits for the writer never answers.
fn unwaited<T: Send + 'static>(
    e: &std::sync::Arc<Engine>,
    f: impl FnOnce(&Engine) -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let e = e.clone();
    std::thread::spawn(move || {
        let _ = tx.send(f(&e));
    });
    match rx.recv_timeout(std::time::Duration::from_secs(10)) {
        Ok(t) => t,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("waited for the writer"),
        Err(e) => panic!("the operations failed (see the panic above): {e}"),
    }
}

#[test]
fn mkdirs_are_seen_before_their_commit_and_so_is_what_is_made_inside() {
    let (_d, e, v) = engine();
    let e = std::sync::Arc::new(e);
    let root_before = e.getattr(v, View::Live, ROOT).unwrap();
    let pause = e.pause_commits().unwrap();
    let (d, sub, g, l) = unwaited(&e, move |e| {
        let d = e.mkdir(v, ROOT, b"d", 0o750, CTX).unwrap();
        assert_eq!((d.kind, d.nlink, d.perm), (FileKind::Dir, 2, 0o750));
        // Made inside the pending directory: pending too, queued behind it.
        let sub = e.mkdir(v, d.ino, b"sub", 0o755, CTX).unwrap();
        let f = e.create(v, d.ino, b"f", 0o644, CTX).unwrap();
        let g = e.create(v, sub.ino, b"g", 0o600, CTX).unwrap();
        let l = e.symlink(v, d.ino, b"l", b"../x", CTX).unwrap();
        for a in [&d, &sub, &f, &g, &l] {
            assert!(
                !committed(e, v, a.ino),
                "inode {} committed while held",
                a.ino
            );
        }
        // The parents' link counts went up at once, their times moved.
        let root = e.getattr(v, View::Live, ROOT).unwrap();
        assert_eq!(root.nlink, root_before.nlink + 1);
        assert!(root.mtime >= d.ctime && root.mtime > root_before.mtime);
        let dir = e.getattr(v, View::Live, d.ino).unwrap();
        assert_eq!((dir.nlink, dir.perm), (3, 0o750));
        assert!(dir.mtime >= l.ctime);
        // Lookup (".." included) and readlink answer from the overlay.
        assert_eq!(e.lookup(v, View::Live, ROOT, b"d").unwrap(), dir);
        let s = e.lookup(v, View::Live, d.ino, b"sub").unwrap();
        assert_eq!((s.ino, s.nlink, s.kind), (sub.ino, 2, FileKind::Dir));
        assert_eq!(e.lookup(v, View::Live, sub.ino, b"g").unwrap(), g);
        assert_eq!(e.lookup(v, View::Live, sub.ino, b"..").unwrap().ino, d.ino);
        assert_eq!(e.lookup(v, View::Live, d.ino, b"..").unwrap(), root);
        assert_eq!(e.lookup(v, View::Live, sub.ino, b".").unwrap().ino, sub.ino);
        assert_eq!(e.readlink(v, View::Live, l.ino).unwrap(), b"../x");
        assert!(matches!(
            e.lookup(v, View::Live, d.ino, b"nope"),
            Err(FsError::NotFound)
        ));
        // Readdir of the pending directories, one entry per page too.
        let sorted = |dot: InodeNo, dotdot: InodeNo, extra: &[(&[u8], InodeNo)]| {
            let mut rest: Vec<(Vec<u8>, InodeNo)> =
                extra.iter().map(|(n, i)| (n.to_vec(), *i)).collect();
            rest.sort_by_key(|(n, _)| crate::store::keys::name_hash(n));
            let mut w = vec![(b".".to_vec(), dot), (b"..".to_vec(), dotdot)];
            w.extend(rest);
            w
        };
        let in_d = sorted(
            d.ino,
            ROOT,
            &[(b"sub", sub.ino), (b"f", f.ino), (b"l", l.ino)],
        );
        let in_sub = sorted(sub.ino, d.ino, &[(b"g", g.ino)]);
        for page in [1, 2, 100] {
            assert_eq!(names(e, v, d.ino, page), in_d, "page {page}");
            assert_eq!(names(e, v, sub.ino, page), in_sub, "page {page}");
        }
        assert!(names(e, v, ROOT, 100).contains(&(b"d".to_vec(), d.ino)));
        // A name is made once; a file is not a directory.
        for made in [
            e.mkdir(v, d.ino, b"sub", 0o755, CTX),
            e.create(v, d.ino, b"sub", 0o644, CTX),
            e.mkdir(v, ROOT, b"d", 0o755, CTX),
        ] {
            assert!(matches!(made, Err(FsError::Exists)), "{made:?}");
        }
        assert!(matches!(
            e.mkdir(v, f.ino, b"x", 0o755, CTX),
            Err(FsError::NotDir)
        ));
        // Unlinked before any commit.
        e.unlink(v, d.ino, b"f").unwrap();
        assert!(matches!(
            e.lookup(v, View::Live, d.ino, b"f"),
            Err(FsError::NotFound)
        ));
        (d, sub, g, l)
    });
    let held = e.getattr(v, View::Live, d.ino).unwrap();
    drop(pause);
    // A snapshot right after (queued behind the mkdirs) holds them and what is inside.
    let snap = e.snapshot_generations(&[v]).unwrap()[0].1;
    let at = |p: InodeNo, n: &[u8]| e.lookup(v, View::At(snap), p, n).unwrap().ino;
    assert_eq!(at(at(at(ROOT, b"d"), b"sub"), b"g"), g.ino);
    e.inner.store().settle().unwrap();
    // Committed as answered.
    for ino in [d.ino, sub.ino, g.ino, l.ino] {
        assert!(committed(&e, v, ino), "inode {ino} not committed");
    }
    assert_eq!(e.getattr(v, View::Live, d.ino).unwrap(), held);
    assert_eq!(e.getattr(v, View::Live, g.ino).unwrap(), g);
    let root = e.getattr(v, View::Live, ROOT).unwrap();
    assert_eq!(root.nlink, root_before.nlink + 1);
    assert_eq!(e.volume_info("v").unwrap().files, 5);
    assert_eq!(names(&e, v, sub.ino, 1).len(), 3);
}

/// A POSIX ACL in the xattr format: version 2, then (tag, perm, id) entries.
fn acl_bytes(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut out = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    out
}

/// What a tree made under `parent` (mkdir `name`, a directory and a file inside it, a
/// file inside that) looks like: each inode's perm, gid, links and ACLs.
type Made = Vec<(u16, u32, u32, Option<Vec<u8>>, Option<Vec<u8>>)>;

fn make_tree(e: &Engine, v: VolumeId, parent: InodeNo, name: &[u8], ctx: Ctx) -> Made {
    let d = e.mkdir(v, parent, name, 0o777, ctx).unwrap().ino;
    let inner = e.mkdir(v, d, b"inner", 0o770, ctx).unwrap().ino;
    let f = e.create(v, d, b"f", 0o666, ctx).unwrap().ino;
    let g = e.create(v, inner, b"g", 0o640, ctx).unwrap().ino;
    describe(e, v, [d, inner, f, g])
}

/// Each inode's perm, gid, links and ACLs (see [`Made`]).
fn describe(e: &Engine, v: VolumeId, inos: [InodeNo; 4]) -> Made {
    inos.into_iter()
        .map(|ino| {
            let a = e.getattr(v, View::Live, ino).unwrap();
            let acl = |name: &[u8]| e.getxattr(v, View::Live, ino, name).ok();
            (
                a.perm,
                a.gid,
                a.nlink,
                acl(b"system.posix_acl_access"),
                acl(b"system.posix_acl_default"),
            )
        })
        .collect()
}

#[test]
fn a_pending_mkdir_hands_down_acls_umask_and_setgid_as_a_committed_one() {
    let (_d, e, v) = engine();
    let e = std::sync::Arc::new(e);
    // One parent with a default ACL (named user, mask) and setgid, one with neither.
    let acl = e.mkdir(v, ROOT, b"acl", 0o2775, CTX).unwrap().ino;
    e.setattr(
        v,
        acl,
        SetAttr {
            gid: Some(5),
            ..Default::default()
        },
    )
    .unwrap();
    let default = acl_bytes(&[
        (1, 7, u32::MAX),
        (2, 5, 4321),
        (4, 5, u32::MAX),
        (0x10, 7, u32::MAX),
        (0x20, 1, u32::MAX),
    ]);
    e.setxattr(
        v,
        acl,
        b"system.posix_acl_default",
        &default,
        XattrMode::Any,
    )
    .unwrap();
    let plain = e.mkdir(v, ROOT, b"plain", 0o755, CTX).unwrap().ino;
    let ctx = Ctx {
        umask: 0o027,
        ..CTX
    };
    // The synchronous path (as while a namespace change is in flight) sets the standard.
    let vs = e.inner.vol_state(v).unwrap();
    lock(&vs.pending).sync_ns += 1;
    let want: Vec<Made> = [acl, plain]
        .iter()
        .map(|&p| make_tree(&e, v, p, b"sync", ctx))
        .collect();
    lock(&vs.pending).sync_ns -= 1;
    assert!(want[0][2].3.is_some(), "the file inherits an access ACL");
    assert_eq!(want[0][1].4.as_ref(), Some(&default));
    assert_eq!(
        want[1][0].0, 0o750,
        "the umask applies without a default ACL"
    );
    // Write-behind: answered (and its ACLs read) before any commit, all the same.
    let pause = e.pause_commits().unwrap();
    let got: Vec<Made> = unwaited(&e, move |e| {
        [acl, plain]
            .iter()
            .map(|&p| {
                let t = make_tree(e, v, p, b"behind", ctx);
                assert!(!committed(
                    e,
                    v,
                    e.lookup(v, View::Live, p, b"behind").unwrap().ino
                ));
                t
            })
            .collect()
    });
    assert_eq!(got, want);
    drop(pause);
    e.inner.store().settle().unwrap();
    let committed_trees: Vec<Made> = [acl, plain]
        .iter()
        .map(|&p| {
            let d = e.lookup(v, View::Live, p, b"behind").unwrap().ino;
            let inner = e.lookup(v, View::Live, d, b"inner").unwrap().ino;
            let f = e.lookup(v, View::Live, d, b"f").unwrap().ino;
            let g = e.lookup(v, View::Live, inner, b"g").unwrap().ino;
            describe(&e, v, [d, inner, f, g])
        })
        .collect();
    assert_eq!(committed_trees, want);
}

#[test]
fn rmdir_and_rename_of_pending_directories_find_them_committed() {
    let (_d, e, v) = engine();
    let e = std::sync::Arc::new(e);
    let pause = e.pause_commits().unwrap();
    let (a, b, c, x) = unwaited(&e, move |e| {
        let a = e.mkdir(v, ROOT, b"a", 0o755, CTX).unwrap().ino;
        let b = e.mkdir(v, ROOT, b"b", 0o755, CTX).unwrap().ino;
        e.create(v, b, b"f", 0o644, CTX).unwrap();
        let c = e.mkdir(v, ROOT, b"c", 0o755, CTX).unwrap().ino;
        let x = e.create(v, ROOT, b"x", 0o644, CTX).unwrap().ino;
        (a, b, c, x)
    });
    assert!(!committed(&e, v, a));
    // Each commits before it answers: queued behind the mkdirs, they wait for the writer.
    let run = |f: fn(&Engine, VolumeId) -> Result<(), FsError>| {
        let e = e.clone();
        std::thread::spawn(move || f(&e, v))
    };
    let ops = [
        run(|e, v| e.rmdir(v, ROOT, b"a")),
        run(|e, v| e.rmdir(v, ROOT, b"b")),
        run(|e, v| e.rename(v, ROOT, b"c", ROOT, b"c2", Default::default())),
        run(|e, v| e.rename(v, ROOT, b"x", ROOT, b"b2", Default::default())),
    ];
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(
        ops.iter().all(|t| !t.is_finished()),
        "answered before the mkdirs committed"
    );
    drop(pause);
    let got: Vec<Result<(), FsError>> = ops.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        got[0].is_ok() && got[2].is_ok() && got[3].is_ok(),
        "{got:?}"
    );
    assert!(matches!(got[1], Err(FsError::NotEmpty)), "{got:?}");
    // Into a directory made while commits were held again.
    let pause = e.pause_commits().unwrap();
    let d = unwaited(&e, move |e| e.mkdir(v, c, b"d", 0o755, CTX).unwrap().ino);
    let mv = run(|e, v| {
        let b = e.lookup(v, View::Live, ROOT, b"b")?.ino;
        let c = e.lookup(v, View::Live, ROOT, b"c2")?.ino;
        let d = e.lookup(v, View::Live, c, b"d")?.ino;
        e.rename(v, ROOT, b"b", d, b"b", Default::default())?;
        e.rename(v, ROOT, b"b2", b, b"x", Default::default())
    });
    drop(pause);
    mv.join().unwrap().unwrap();
    let look = |p: InodeNo, n: &[u8]| e.lookup(v, View::Live, p, n).map(|a| a.ino);
    assert!(matches!(look(ROOT, b"a"), Err(FsError::NotFound)));
    assert!(!committed(&e, v, a));
    assert_eq!(look(ROOT, b"c2").unwrap(), c);
    assert_eq!(look(c, b"d").unwrap(), d);
    assert_eq!(look(d, b"b").unwrap(), b);
    assert_eq!(look(b, b"x").unwrap(), x);
    assert_eq!(e.lookup(v, View::Live, b, b"..").unwrap().ino, d);
    assert_eq!(e.getattr(v, View::Live, ROOT).unwrap().nlink, 3);
    assert_eq!(e.getattr(v, View::Live, c).unwrap().nlink, 3);
    assert_eq!(e.getattr(v, View::Live, d).unwrap().nlink, 3);
    assert_eq!(e.volume_info("v").unwrap().files, 6);
}

#[test]
fn a_crash_keeps_a_pending_directory_with_what_was_fsynced_inside_it() {
    use crate::store::fault::{FaultOp, Faults};
    let dir = tempfile::tempdir().unwrap();
    let faults = Faults::new();
    let cfg = EngineConfig {
        commit_interval: std::time::Duration::from_secs(600),
        ..EngineConfig::default()
    };
    let e = Engine::open_with_faults(dir.path(), cfg, Some(faults.clone())).unwrap();
    let v = e.create_volume("v", Some(4096), Ctx::default()).unwrap().id;
    e.fsync(v, ROOT).unwrap();
    let pause = e.pause_commits().unwrap();
    let d = e.mkdir(v, ROOT, b"d", 0o755, CTX).unwrap().ino;
    let sub = e.mkdir(v, d, b"sub", 0o755, CTX).unwrap().ino;
    let f = e.create(v, sub, b"f", 0o644, CTX).unwrap().ino;
    e.write(v, f, 0, b"kept").unwrap();
    drop(pause);
    // fsync of the file makes the directories it lives in durable too.
    e.fsync(v, f).unwrap();
    // Never fsynced: may be lost, but never in part.
    let pause = e.pause_commits().unwrap();
    let g = e.mkdir(v, ROOT, b"g", 0o755, CTX).unwrap().ino;
    let h = e.create(v, g, b"h", 0o644, CTX).unwrap().ino;
    drop(pause);
    for op in [FaultOp::Write, FaultOp::Sync] {
        faults.arm(op, 1, libc::EIO, true);
    }
    drop(e);
    faults.disarm();
    let e = Engine::open(dir.path()).unwrap();
    let look = |p: InodeNo, n: &[u8]| e.lookup(v, View::Live, p, n).map(|a| a.ino);
    assert_eq!(look(ROOT, b"d").unwrap(), d);
    assert_eq!(look(d, b"sub").unwrap(), sub);
    assert_eq!(look(sub, b"f").unwrap(), f);
    assert_eq!(e.read(v, View::Live, f, 0, 100).unwrap(), b"kept");
    match look(ROOT, b"g") {
        Ok(got) => assert_eq!((got, look(g, b"h").unwrap()), (g, h)),
        Err(FsError::NotFound) => assert!(!committed(&e, v, h), "h kept without g"),
        Err(err) => panic!("{err}"),
    }
    assert_eq!(
        e.getattr(v, View::Live, ROOT).unwrap().nlink,
        2 + look(ROOT, b"g").is_ok() as u32 + 1
    );
}

/// Does volume `v` buffer writes of `ino`?
fn buffered(e: &Engine, v: VolumeId, ino: InodeNo) -> bool {
    let vs = e.inner.vol_state(v).unwrap();
    vs.dirty.lock().files.contains_key(&ino)
}

#[test]
fn the_last_unlink_of_a_closed_file_drops_its_buffered_writes_and_no_other_does() {
    let (_d, e, v) = engine();
    let f = e.create(v, ROOT, b"f", 0o644, CTX).unwrap().ino;
    e.write(v, f, 0, &[1u8; 100]).unwrap();
    e.link(v, f, ROOT, b"g").unwrap();
    // One link left: the buffer stays and still reads back.
    e.unlink(v, ROOT, b"f").unwrap();
    assert!(
        buffered(&e, v, f),
        "unlink of one of two links dropped the buffer"
    );
    assert_eq!(e.read(v, View::Live, f, 0, 100).unwrap(), vec![1u8; 100]);
    // The last link, the file closed: the buffer goes.
    e.unlink(v, ROOT, b"g").unwrap();
    assert!(!buffered(&e, v, f), "the last unlink kept the buffer");
    // Open: the buffer stays until the last close.
    let o = e.create(v, ROOT, b"o", 0o644, CTX).unwrap().ino;
    e.open_created(v, o);
    e.write(v, o, 0, &[2u8; 100]).unwrap();
    e.unlink(v, ROOT, b"o").unwrap();
    assert!(
        buffered(&e, v, o),
        "the unlink of an open file dropped its buffer"
    );
    assert_eq!(e.read(v, View::Live, o, 0, 100).unwrap(), vec![2u8; 100]);
    e.release(v, View::Live, o).unwrap();
    // Create, write and unlink all uncommitted: the overlay's link count decides.
    let pause = e.pause_commits().unwrap();
    let p = e.create(v, ROOT, b"p", 0o644, CTX).unwrap().ino;
    e.write(v, p, 0, &[3u8; 100]).unwrap();
    e.unlink(v, ROOT, b"p").unwrap();
    assert!(
        !buffered(&e, v, p),
        "the last unlink, pending, kept the buffer"
    );
    drop(pause);
    assert!(matches!(
        e.getattr(v, View::Live, p),
        Err(FsError::NotFound)
    ));
}
