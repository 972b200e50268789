//! A directory removed (rmdir, or renamed over) while it is a process's working directory
//! stays usable as on ext4 or tmpfs (issue 16): `stat .` answers with no links, `ls .`
//! lists nothing, nothing can be made inside (ENOENT), and `cd ..` works; chmod, chown,
//! utimensat and extended attributes change it (in memory) as on tmpfs. Through the real
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
    mounted_with(&[])
}

/// As [`mounted`], with mount options `opts` (`-o ...`).
fn mounted_with(opts: &[&str]) -> (Pool, PathBuf) {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "v"]);
    let mut args = vec!["mount", "v", m.to_str().unwrap()];
    args.extend_from_slice(opts);
    p.ok(&args);
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

/// A syscall's result: Ok, or the errno it failed with.
fn errno(ret: libc::c_long) -> Result<(), i32> {
    match ret {
        -1 => Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)),
        _ => Ok(()),
    }
}

fn chmod(mode: libc::mode_t) -> Result<(), i32> {
    // SAFETY: plain syscall on a NUL-terminated path.
    errno(unsafe { libc::chmod(c".".as_ptr(), mode) }.into())
}

fn chown(uid: libc::uid_t, gid: libc::gid_t) -> Result<(), i32> {
    // SAFETY: as above.
    errno(unsafe { libc::chown(c".".as_ptr(), uid, gid) }.into())
}

/// utimensat on "."; `None` sets both times to now.
fn utimes(times: Option<(i64, i64)>) -> Result<(), i32> {
    let ts = times.map(|(a, m)| {
        [a, m].map(|secs| libc::timespec {
            tv_sec: secs,
            tv_nsec: 0,
        })
    });
    let ptr = ts.as_ref().map_or(std::ptr::null(), |t| t.as_ptr());
    // SAFETY: plain syscall; `ts` (two timespecs) outlives it, or NULL for "now".
    errno(unsafe { libc::utimensat(libc::AT_FDCWD, c".".as_ptr(), ptr, 0) }.into())
}

fn setxattr(name: &std::ffi::CStr, value: &[u8], flags: i32) -> Result<(), i32> {
    // SAFETY: plain syscall on NUL-terminated strings and a buffer of the given size.
    errno(unsafe {
        libc::setxattr(
            c".".as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    } as libc::c_long)
}

fn getxattr(name: &std::ffi::CStr) -> Result<Vec<u8>, i32> {
    let mut buf = [0u8; 256];
    // SAFETY: as above.
    let n = unsafe {
        libc::getxattr(
            c".".as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    errno(n as libc::c_long)?;
    Ok(buf[..n as usize].to_vec())
}

fn removexattr(name: &std::ffi::CStr) -> Result<(), i32> {
    // SAFETY: as above.
    errno(unsafe { libc::removexattr(c".".as_ptr(), name.as_ptr()) }.into())
}

fn listxattr() -> Vec<String> {
    let mut buf = [0u8; 256];
    // SAFETY: as above.
    let n = unsafe { libc::listxattr(c".".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    errno(n as libc::c_long).expect("listxattr");
    let mut names: Vec<String> = buf[..n as usize]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    names.sort();
    names
}

/// Runs `f` as user `uid`, group `gid` (no supplementary groups) on this thread only
/// (raw syscalls: the C library's would change every thread), then back to root.
fn as_user<T>(uid: u32, gid: u32, f: impl FnOnce() -> T) -> T {
    let keep = u32::MAX as libc::c_long;
    let set = |groups: &[libc::gid_t], g: libc::c_long, u: libc::c_long| {
        // SAFETY: plain syscalls on this thread's credentials; `groups` outlives them.
        unsafe {
            if u == 0 {
                assert_eq!(libc::syscall(libc::SYS_setresuid, keep, 0, keep), 0);
            }
            assert_eq!(
                libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()),
                0
            );
            assert_eq!(libc::syscall(libc::SYS_setresgid, keep, g, keep), 0);
            if u != 0 {
                assert_eq!(libc::syscall(libc::SYS_setresuid, keep, u, keep), 0);
            }
        }
    };
    set(&[], gid.into(), uid.into());
    let out = f();
    set(&[0], 0, 0);
    out
}

/// Nanoseconds since the epoch of a stat time.
fn ns(secs: i64, nsecs: i64) -> i128 {
    secs as i128 * 1_000_000_000 + nsecs as i128
}

#[test]
fn a_removed_working_directory_takes_chmod_chown_times_and_xattrs_as_on_tmpfs() {
    // allow_other: other users reach the mount (they come in below, to be refused or not
    // as the mode says).
    let (_p, m) = mounted_with(&["-o", "allow_other"]);
    with_own_cwd(|| {
        let q = m.join("q");
        fs::create_dir(&q).unwrap();
        std::env::set_current_dir(&q).unwrap();
        setxattr(c"user.pre", b"1", 0).unwrap();
        fs::remove_dir("../q").unwrap();
        let removed = fs::metadata(".").unwrap();
        let ctime = |st: &fs::Metadata| ns(st.ctime(), st.ctime_nsec());
        let pause = || std::thread::sleep(std::time::Duration::from_millis(20));

        // chmod: the mode changes, and so does ctime (others may search it, no more).
        pause();
        assert_eq!(chmod(0o711), Ok(()), "chmod");
        let st = fs::metadata(".").unwrap();
        assert_eq!((st.mode(), st.nlink()), (0o40711, 0));
        assert!(ctime(&st) > ctime(&removed), "chmod sets ctime");
        // utimensat, given times and now.
        pause();
        assert_eq!(utimes(Some((1, 2))), Ok(()), "utimensat");
        let st2 = fs::metadata(".").unwrap();
        assert_eq!((st2.atime(), st2.mtime()), (1, 2));
        assert!(ctime(&st2) > ctime(&st), "utimensat sets ctime");
        pause();
        assert_eq!(utimes(None), Ok(()), "utimensat now");
        let st3 = fs::metadata(".").unwrap();
        let mtime = ns(st3.mtime(), st3.mtime_nsec());
        assert!(mtime > ctime(&st2), "now is after the last change");
        assert_eq!(mtime, ns(st3.atime(), st3.atime_nsec()));
        // chown by root.
        assert_eq!(chown(1000, 1000), Ok(()), "chown");
        let st4 = fs::metadata(".").unwrap();
        assert_eq!((st4.uid(), st4.gid(), st4.mode()), (1000, 1000, 0o40711));

        // Extended attributes: what it had before the removal stays, with setxattr's flags.
        assert_eq!(getxattr(c"user.pre"), Ok(b"1".to_vec()), "kept");
        assert_eq!(setxattr(c"user.x", b"v", 0), Ok(()), "setxattr");
        assert_eq!(getxattr(c"user.x"), Ok(b"v".to_vec()));
        assert_eq!(listxattr(), ["user.pre", "user.x"]);
        let create = libc::XATTR_CREATE;
        assert_eq!(setxattr(c"user.x", b"w", create), Err(libc::EEXIST));
        let replace = libc::XATTR_REPLACE;
        assert_eq!(setxattr(c"user.y", b"w", replace), Err(libc::ENODATA));
        assert_eq!(removexattr(c"user.x"), Ok(()), "removexattr");
        assert_eq!(removexattr(c"user.x"), Err(libc::ENODATA));
        assert_eq!(getxattr(c"user.x"), Err(libc::ENODATA));
        assert_eq!(listxattr(), ["user.pre"]);
        // A POSIX ACL (user 1000 r-x, mask r-x): the mode's group bits are its mask, and
        // chmod moves the mask (tmpfs's answers).
        let acl = |mask: u16| {
            let mut b = 2u32.to_le_bytes().to_vec();
            let none = u32::MAX;
            for (tag, perm, id) in [(1u16, 7u16, none), (2, 5, 1000), (4, 1, none)]
                .into_iter()
                .chain([(0x10, mask, none), (0x20, 1, none)])
            {
                b.extend_from_slice(&tag.to_le_bytes());
                b.extend_from_slice(&perm.to_le_bytes());
                b.extend_from_slice(&id.to_le_bytes());
            }
            b
        };
        let access = c"system.posix_acl_access";
        assert_eq!(setxattr(access, &acl(5), 0), Ok(()), "setfacl");
        assert_eq!(fs::metadata(".").unwrap().mode(), 0o40751);
        assert_eq!(getxattr(access), Ok(acl(5)));
        assert_eq!(chmod(0o711), Ok(()));
        assert_eq!(getxattr(access), Ok(acl(1)), "chmod moved the mask");
        assert_eq!(removexattr(access), Ok(()), "setfacl -b");
        assert_eq!(getxattr(access), Err(libc::ENODATA));
        assert_eq!(fs::metadata(".").unwrap().mode(), 0o40711);
        // Still nothing can be made inside.
        assert_eq!(
            fs::create_dir("d").map_err(|e| e.kind()),
            Err(ErrorKind::NotFound)
        );

        // Its owner and other users, as the mode and owner say (tmpfs's answers, for the
        // same calls in the same order).
        as_user(2000, 2000, || {
            assert_eq!(chmod(0o777), Err(libc::EPERM), "chmod by another user");
            assert_eq!(chown(2000, 2000), Err(libc::EPERM), "chown by another user");
            assert_eq!(utimes(Some((3, 4))), Err(libc::EPERM), "utimes by another");
            assert_eq!(
                utimes(None),
                Err(libc::EACCES),
                "touch without write access"
            );
            assert_eq!(setxattr(c"user.z", b"v", 0), Err(libc::EACCES));
        });
        as_user(1000, 1000, || {
            assert_eq!(chown(u32::MAX, 2000), Err(libc::EPERM), "to another group");
            assert_eq!(chmod(0o2777), Ok(()), "chmod by the owner");
            assert_eq!(utimes(None), Ok(()), "touch by the owner");
            assert_eq!(
                setxattr(c"user.z", b"v", 0),
                Ok(()),
                "setxattr by the owner"
            );
        });
        let st5 = fs::metadata(".").unwrap();
        assert_eq!((st5.uid(), st5.gid(), st5.mode()), (1000, 1000, 0o42777));
        as_user(2000, 2000, || {
            assert_eq!(utimes(None), Ok(()), "touch with write access");
        });
        // root changes the group; a directory keeps setgid.
        assert_eq!(chown(u32::MAX, 3000), Ok(()));
        let st6 = fs::metadata(".").unwrap();
        assert_eq!((st6.gid(), st6.mode()), (3000, 0o42777));
        std::env::set_current_dir("..").unwrap();
    });
    // Nothing of it reached the volume.
    assert!(!m.join("q").exists());
    assert_eq!(fs::read_dir(&m).unwrap().count(), 0);
}
