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
