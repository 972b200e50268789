//! A directory removed (rmdir, or renamed over) while it is a process's working directory
//! stays usable as on ext4 or tmpfs (issue 16): `stat .` answers with no links, `ls .`
//! lists nothing, nothing can be made inside (ENOENT), and `cd ..` works. Through the real
//! binary and a real mount, with plain syscalls; each case runs in a thread with a working
//! directory of its own (unshare(CLONE_FS)), so the test process's stays where it is.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

mod common;
use common::*;

/// A pool with volume `v` mounted on a fresh directory (its canonical path).
fn mounted() -> (Pool, PathBuf) {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    let m = m.canonicalize().unwrap();
    (p, m)
}

/// Runs `f` on a thread whose working directory is its own.
fn with_own_cwd<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: plain syscall; CLONE_FS unshares this thread's cwd, root and umask.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_FS) }, 0);
            f()
        })
        .join()
        .unwrap()
    })
}

/// What a removed working directory must answer (the cwd is that directory).
fn check_removed_cwd(what: &str, parent: &Path) {
    let st = fs::metadata(".").unwrap_or_else(|e| panic!("{what}: stat .: {e}"));
    assert!(st.is_dir(), "{what}: still a directory");
    assert_eq!(st.nlink(), 0, "{what}: no links");
    let listed: Vec<_> = fs::read_dir(".")
        .unwrap_or_else(|e| panic!("{what}: opendir .: {e}"))
        .collect();
    assert!(listed.is_empty(), "{what}: lists {listed:?}");
    // No extended attributes (and no ACL: its mode rules).
    let mut buf = [0u8; 64];
    for name in [c"system.posix_acl_access", c"user.x"] {
        // SAFETY: plain syscall on NUL-terminated strings and a buffer of the given size.
        let n =
            unsafe { libc::getxattr(c".".as_ptr(), name.as_ptr(), buf.as_mut_ptr().cast(), 64) };
        let err = std::io::Error::last_os_error().raw_os_error();
        assert_eq!(
            (n, err),
            (-1, Some(libc::ENODATA)),
            "{what}: getxattr {name:?}"
        );
    }
    // SAFETY: as above.
    let n = unsafe { libc::listxattr(c".".as_ptr(), buf.as_mut_ptr().cast(), 64) };
    assert_eq!(n, 0, "{what}: listxattr");
    for made in [
        fs::File::create("f").map(drop),
        fs::create_dir("d"),
        std::os::unix::fs::symlink("t", "l"),
    ] {
        assert_eq!(
            made.map_err(|e| e.kind()),
            Err(ErrorKind::NotFound),
            "{what}: made inside"
        );
    }
    std::env::set_current_dir("..").unwrap_or_else(|e| panic!("{what}: cd ..: {e}"));
    assert_eq!(
        std::env::current_dir().unwrap(),
        parent,
        "{what}: cd .. lands"
    );
}

#[test]
fn a_removed_working_directory_answers_with_no_links_and_cd_dotdot_works() {
    let (_p, m) = mounted();
    with_own_cwd(|| {
        let q = m.join("q");
        fs::create_dir(&q).unwrap();
        std::env::set_current_dir(&q).unwrap();
        fs::remove_dir("../q").unwrap();
        check_removed_cwd("rmdir", &m);
        assert!(!q.exists());
    });
}

#[test]
fn a_working_directory_renamed_over_answers_with_no_links_and_cd_dotdot_works() {
    let (_p, m) = mounted();
    with_own_cwd(|| {
        let (a, b) = (m.join("a"), m.join("b"));
        fs::create_dir(&a).unwrap();
        fs::write(a.join("kept"), b"x").unwrap();
        fs::create_dir(&b).unwrap();
        std::env::set_current_dir(&b).unwrap();
        let old = fs::metadata(".").unwrap().ino();
        fs::rename(&a, &b).unwrap();
        check_removed_cwd("rename over", &m);
        // The name now is the other directory, with what it held.
        assert_ne!(fs::metadata(&b).unwrap().ino(), old);
        assert_eq!(fs::read(b.join("kept")).unwrap(), b"x");
    });
}

#[test]
fn a_removed_working_directory_held_open_answers_after_its_last_close() {
    let (_p, m) = mounted();
    with_own_cwd(|| {
        let q = m.join("q");
        fs::create_dir(&q).unwrap();
        std::env::set_current_dir(&q).unwrap();
        // Open (an orphan until the last close), then closed: the cwd still holds it.
        let open = fs::File::open(".").unwrap();
        fs::remove_dir(&q).unwrap();
        assert_eq!(open.metadata().unwrap().nlink(), 0);
        drop(open);
        check_removed_cwd("rmdir while open", &m);
    });
}

#[test]
fn a_removed_working_directory_the_kernel_knew_from_a_listing_answers() {
    let (_p, m) = mounted();
    let q = m.join("q");
    fs::create_dir(&q).unwrap();
    // The kernel forgets q (its mkdir reply), then meets it again in a listing only
    // (readdirplus): entering and removing it reuse that entry, with no lookup.
    fs::write("/proc/sys/vm/drop_caches", "2").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let names: Vec<_> = fs::read_dir(&m)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["q"]);
    with_own_cwd(|| {
        std::env::set_current_dir(&q).unwrap();
        fs::remove_dir(&q).unwrap();
        check_removed_cwd("rmdir of a listed directory", &m);
    });
}

/// Several threads, each in a directory of its own, make, enter, rename over and remove
/// directories and climb out of the removed ones: no `cd ..` ever fails.
#[test]
fn cd_dotdot_out_of_removed_directories_never_fails_under_churn() {
    const THREADS: usize = 5;
    const ROUNDS: usize = 1000;
    let (_p, m) = mounted();
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let own = m.join(format!("t{t}"));
            fs::create_dir(&own).unwrap();
            s.spawn(move || {
                with_own_cwd(|| {
                    std::env::set_current_dir(&own).unwrap();
                    for round in 0..ROUNDS {
                        let at = |what: &str, r: std::io::Result<()>| {
                            r.unwrap_or_else(|e| panic!("thread {t} round {round}: {what}: {e}"))
                        };
                        // Removed from inside.
                        at("mkdir x", fs::create_dir("x"));
                        at("cd x", std::env::set_current_dir("x"));
                        at("rmdir ../x", fs::remove_dir("../x"));
                        at("stat .", fs::metadata(".").map(drop));
                        at("cd .. out of x", std::env::set_current_dir(".."));
                        // Renamed over from inside.
                        at("mkdir y", fs::create_dir("y"));
                        at("mkdir z", fs::create_dir("z"));
                        at("cd y", std::env::set_current_dir("y"));
                        at("rename ../z ../y", fs::rename("../z", "../y"));
                        at("cd .. out of y", std::env::set_current_dir(".."));
                        // Renamed (kept), then removed from outside.
                        at("rename y w", fs::rename("y", "w"));
                        at("rmdir w", fs::remove_dir("w"));
                    }
                    assert_eq!(fs::read_dir(".").unwrap().count(), 0, "thread {t}");
                })
            });
        }
    });
    eprintln!("{} rounds in {:?}", THREADS * ROUNDS, started.elapsed());
}
