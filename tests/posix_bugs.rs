//! POSIX behaviours a general filesystem test suite found wrong (issue 16's bugs), each
//! through the real binary and a real mount (allow_other), with plain syscalls: privileges
//! dropped by every data change of an unprivileged writer, an open directory renamed over,
//! file handles across dropped caches, umount then mount at once, and the ctime a link or
//! rename gives a file with buffered writes.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::*;

/// A pool with volume `v` mounted allow_other on a fresh directory.
fn mounted() -> (Pool, PathBuf) {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", m.to_str().unwrap(), "-o", "allow_other"]);
    (p, m)
}

/// Runs a python3 program as `nobody` (no capabilities) in `dir`; panics with its stderr
/// if it fails.
fn python_as_nobody(dir: &Path, prog: &str) {
    let o = Command::new("runuser")
        .args(["-u", "nobody", "--", "/usr/bin/python3", "-c", prog])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{prog}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn every_data_change_by_an_unprivileged_writer_drops_setuid_and_setgid() {
    let (_p, m) = mounted();
    let ops = [
        ("fallocate", "os.posix_fallocate(fd, 0, 20000)"),
        ("fallocate_inside", "os.posix_fallocate(fd, 0, 2)"),
        ("keep_size", "fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 20000)"),
        ("write", "os.pwrite(fd, b'x', 0)"),
        ("ftruncate", "os.ftruncate(fd, 2)"),
        ("copy_file_range", "os.copy_file_range(src, fd, 4, 0, 0)"),
    ];
    fs::write(m.join("src"), b"data").unwrap();
    for (name, _) in ops {
        let f = m.join(name);
        fs::write(&f, b"data\n").unwrap();
        // World-writable, setuid and group-executable setgid: nobody may write it, and
        // must not keep root's privileges on what it wrote.
        fs::set_permissions(&f, fs::Permissions::from_mode(0o6777)).unwrap();
        assert_eq!(mode(&f), 0o6777);
    }
    let mut prog = String::from(
        r#"import os, ctypes
FALLOC_FL_KEEP_SIZE = 1
libc = ctypes.CDLL(None, use_errno=True)
def fallocate(fd, mode, off, length):
    if libc.fallocate(fd, mode, ctypes.c_long(off), ctypes.c_long(length)) != 0:
        raise OSError(ctypes.get_errno(), "fallocate")
src = os.open("src", os.O_RDONLY)
"#,
    );
    for (name, op) in ops {
        prog += &format!("fd = os.open('{name}', os.O_RDWR)\n{op}\nos.close(fd)\n");
    }
    python_as_nobody(&m, &prog);
    for (name, _) in ops {
        assert_eq!(mode(&m.join(name)), 0o777, "{name} kept setuid/setgid");
    }
    assert_eq!(fs::metadata(m.join("fallocate")).unwrap().len(), 20000);
    assert_eq!(fs::metadata(m.join("keep_size")).unwrap().len(), 5);
    // Also as the daemon stores it, not only as the kernel caches it.
    let _ = fs::write("/proc/sys/vm/drop_caches", "3");
    assert_eq!(mode(&m.join("keep_size")), 0o777);
    // Root (CAP_FSETID) keeps them on fallocate.
    let f = m.join("fallocate");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o6777)).unwrap();
    let file = fs::OpenOptions::new().write(true).open(&f).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: a valid open descriptor.
    assert_eq!(unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, 40000) }, 0);
    drop(file);
    assert_eq!(fs::metadata(&f).unwrap().len(), 40000);
    assert_eq!(mode(&f), 0o6777);
}

/// Runs a python3 program (as root) in `dir`; panics with its stderr if it fails.
fn python(dir: &Path, prog: &str) -> String {
    let o = Command::new("/usr/bin/python3")
        .args(["-c", prog])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{prog}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Inodes the volume mounted at `m` holds (what `df -i` shows as used).
fn used_inodes(m: &Path) -> u64 {
    let c = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: statvfs writes into the zeroed struct; the path is NUL-terminated.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    st.f_files - st.f_ffree
}

#[test]
fn an_open_directory_renamed_over_or_removed_stays_until_closed() {
    let (_p, m) = mounted();
    let before = used_inodes(&m);
    // Both directories stay while open: fstat answers with no links, and they list empty.
    let out = python(
        &m,
        r#"import os
os.mkdir("a"); os.mkdir("b"); os.mkdir("c")
fb = os.open("b", os.O_RDONLY | os.O_DIRECTORY)
fc = os.open("c", os.O_RDONLY | os.O_DIRECTORY)
ino_b = os.fstat(fb).st_ino
os.rename("a", "b")
os.rmdir("c")
for fd in (fb, fc):
    st = os.fstat(fd)
    assert st.st_nlink == 0, st
    assert os.listdir(fd) == [], os.listdir(fd)
assert os.stat("b").st_ino != ino_b
assert os.stat("b").st_nlink == 2
s = os.statvfs(".")
print(s.f_files - s.f_ffree)
os.close(fb); os.close(fc)
"#,
    );
    // Open, they still count; closed, they are freed.
    assert_eq!(out.trim(), (before + 3).to_string());
    wait_until("the removed directories to be freed", || {
        used_inodes(&m) == before + 1
    });
    assert!(!m.join("c").exists());
}

#[test]
fn a_plain_umount_then_mount_at_once_succeeds() {
    let (p, m) = mounted();
    let ms = m.to_str().unwrap();
    fs::write(m.join("f"), b"kept").unwrap();
    for i in 0..20 {
        let st = Command::new("umount").arg(&m).status().unwrap();
        assert!(st.success(), "umount {ms} (round {i})");
        assert!(!is_mounted(&m));
        p.ok(&["mount", "v", ms, "-o", "allow_other"]);
        assert!(is_mounted(&m), "round {i}");
        assert_eq!(fs::read(m.join("f")).unwrap(), b"kept");
    }
    // The daemon lists the one mount it has.
    let status = p.ok(&["status"]);
    assert_eq!(status.matches(ms).count(), 1, "{status}");
}

/// python3 helpers for file handles (python has no wrapper): `handle(path)` gives a handle
/// as hex, `by_handle(mount_fd, hex, flags)` opens it.
const HANDLES_PY: &str = r#"import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class FH(ctypes.Structure):
    _fields_ = [("handle_bytes", ctypes.c_uint), ("handle_type", ctypes.c_int),
                ("f_handle", ctypes.c_ubyte * 128)]
def handle(path):
    h = FH(); h.handle_bytes = 128; mid = ctypes.c_int()
    if libc.name_to_handle_at(-100, path.encode(), ctypes.byref(h), ctypes.byref(mid), 0):
        raise OSError(ctypes.get_errno(), "name_to_handle_at " + path)
    return bytes(h).hex()
def by_handle(mfd, hexed, flags):
    h = FH.from_buffer_copy(bytes.fromhex(hexed))
    fd = libc.open_by_handle_at(mfd, ctypes.byref(h), flags)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "open_by_handle_at")
    return fd
"#;

/// Opens every handle of `handles` (name, hex) in the volume mounted at `m`: the files read
/// back `content`, the directories are the same inodes, connected again to their paths, and
/// "gone" is ESTALE. Python runs outside the mount (isolated, so it lists no directory of
/// it) and opens every handle before it looks at a path: the kernel must decode each one
/// from the handle alone, deepest directory first.
fn open_handles(m: &Path, handles: &str, content: &str) {
    let root = m.to_str().unwrap();
    let prog = format!(
        r#"{HANDLES_PY}
mfd = os.open("{root}", os.O_RDONLY | os.O_DIRECTORY)
opened = []
for line in reversed("""{handles}""".split()):
    name, hexed = line.split("=")
    if name == "gone":
        try:
            by_handle(mfd, hexed, os.O_RDONLY)
            sys.exit("a removed file opened by its handle")
        except OSError as e:
            assert e.errno == 116, e  # ESTALE
        continue
    flags = os.O_RDONLY if name in ("f", "g") else os.O_RDONLY | os.O_DIRECTORY
    opened.append((name, by_handle(mfd, hexed, flags)))
for name, fd in opened:
    path = "{root}/" + name.replace(":", "/")
    if name in ("f", "g"):
        assert os.read(fd, 100) == b"{content}", name
    else:
        assert os.readlink("/proc/self/fd/%d" % fd) == path, os.readlink("/proc/self/fd/%d" % fd)
        assert sorted(os.listdir(fd)) == sorted(os.listdir(path)), name
    assert os.fstat(fd).st_ino == os.stat(path).st_ino, name
    os.close(fd)
"#
    );
    let o = Command::new("/usr/bin/python3")
        .args(["-I", "-c", &prog])
        .current_dir("/")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Lets the kernel forget the volume's inodes (dentries and inodes not in use).
fn drop_caches() {
    fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
}

#[test]
fn file_handles_open_after_dropped_caches_and_a_remount() {
    let (p, m) = mounted();
    let ms = m.to_str().unwrap();
    fs::write(m.join("f"), b"handled").unwrap();
    fs::hard_link(m.join("f"), m.join("g")).unwrap();
    fs::create_dir_all(m.join("d/e/h")).unwrap();
    fs::write(m.join("d/e/x"), b"x").unwrap();
    fs::write(m.join("gone"), b"x").unwrap();
    let handles = python(
        &m,
        &format!(
            "{HANDLES_PY}\nfor n in ['f', 'g', 'd', 'd/e', 'd/e/h', 'gone']:\n    \
             print(n.replace('/', ':') + '=' + handle(n))\n"
        ),
    );
    fs::remove_file(m.join("gone")).unwrap();
    // Cached inodes: nothing to decode.
    open_handles(&m, &handles, "handled");
    // Forgotten inodes: the kernel asks for "." of each (and ".." of directories).
    drop_caches();
    open_handles(&m, &handles, "handled");
    // A new mount (and the same generations: handles outlive a remount).
    p.ok(&["umount", ms]);
    p.ok(&["mount", "v", ms, "-o", "allow_other"]);
    open_handles(&m, &handles, "handled");
    // And a restarted daemon.
    p.ok(&["shutdown"]);
    wait_until("the daemon to stop", || !is_mounted(&m));
    p.ok(&["status"]);
    wait_until("the mount to come back", || is_mounted(&m));
    drop_caches();
    open_handles(&m, &handles, "handled");
}

/// (ctime, mtime) of `p` in nanoseconds.
fn times(p: &Path) -> (i128, i128) {
    let m = fs::metadata(p).unwrap();
    let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
    (ns(m.ctime(), m.ctime_nsec()), ns(m.mtime(), m.mtime_nsec()))
}

#[test]
fn a_link_or_rename_after_buffered_writes_keeps_its_ctime() {
    let (p, m) = mounted();
    let ms = m.to_str().unwrap();
    let write = |name: &str| {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(m.join(name))
            .unwrap();
        f.write_at(b"buffered", 0).unwrap();
    };
    let pause = || std::thread::sleep(std::time::Duration::from_millis(1100));
    write("linked");
    write("renamed");
    let (c0, m0) = times(&m.join("linked"));
    let m0r = times(&m.join("renamed")).1;
    pause();
    fs::hard_link(m.join("linked"), m.join("link")).unwrap();
    fs::rename(m.join("renamed"), m.join("moved")).unwrap();
    let (c1, m1) = times(&m.join("linked"));
    let (c2, m2) = times(&m.join("moved"));
    assert!(c1 >= c0 + 1_000_000_000, "link left ctime at the write's");
    assert!(c2 >= c0 + 1_000_000_000, "rename left ctime at the write's");
    // Neither changes mtime.
    assert_eq!((m1, m2), (m0, m0r));
    // The buffered writes are committed (at unmount) without bringing the old ctime back.
    p.ok(&["umount", ms]);
    p.ok(&["mount", "v", ms, "-o", "allow_other"]);
    assert_eq!(times(&m.join("linked")), (c1, m1));
    assert_eq!(times(&m.join("link")), (c1, m1));
    assert_eq!(times(&m.join("moved")), (c2, m2));
    // A write after the link gives both times again.
    pause();
    write("linked");
    let (c3, m3) = times(&m.join("linked"));
    assert!(
        m3 > c1 && c3 >= m3,
        "ctime {c3}, mtime {m3}, link's ctime {c1}"
    );
}
