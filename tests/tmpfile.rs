//! What tandem refuses of Linux's file creation, and how: O_TMPFILE fails with EOPNOTSUPP
//! (the kernel's FUSE_TMPFILE request is one fuser does not decode; the kernel hears ENOSYS
//! and answers EOPNOTSUPP from then on, so programs fall back to a named temporary file),
//! and renameat2 RENAME_WHITEOUT fails with EINVAL; neither leaves anything behind, and the
//! mount keeps working.

use std::ffi::CString;
use std::fs;
use std::path::Path;

mod common;
use common::*;

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_encoded_bytes()).unwrap()
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

#[test]
fn o_tmpfile_is_eopnotsupp_and_rename_whiteout_is_einval() {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    fs::create_dir(m.join("d")).unwrap();
    // Twice: the first asks the daemon, the second the kernel's memory of its answer.
    for _ in 0..2 {
        let fd = unsafe {
            libc::open(
                c(&m.join("d")).as_ptr(),
                libc::O_TMPFILE | libc::O_RDWR,
                0o600,
            )
        };
        let err = errno();
        if fd >= 0 {
            unsafe { libc::close(fd) };
        }
        assert_eq!((fd, err), (-1, libc::EOPNOTSUPP), "O_TMPFILE");
    }
    assert_eq!(
        fs::read_dir(m.join("d")).unwrap().count(),
        0,
        "nothing left"
    );

    fs::write(m.join("a"), b"a").unwrap();
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            c(&m.join("a")).as_ptr(),
            libc::AT_FDCWD,
            c(&m.join("b")).as_ptr(),
            libc::RENAME_WHITEOUT,
        )
    };
    assert_eq!((r, errno()), (-1, libc::EINVAL), "RENAME_WHITEOUT");
    assert_eq!(fs::read(m.join("a")).unwrap(), b"a");
    assert!(!m.join("b").exists());
    // The mount goes on.
    fs::write(m.join("d/f"), b"after").unwrap();
    assert_eq!(fs::read(m.join("d/f")).unwrap(), b"after");
}
