//! atime through a real mount, one mount per option: `noatime` (the default), `relatime`,
//! `strictatime`, `nodiratime`; through `tandem mount -o` and the mount.tandem helper. The
//! atimes a read notes are committed in a batch: they survive an unmount. Under `relatime`
//! an open keeps the file's cached pages while no read would update its atime (seen with
//! mincore(2)).

mod common;
use common::*;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

/// atime in nanoseconds as stat(2) shows it.
fn atime(p: &Path) -> i128 {
    let m = fs::metadata(p).unwrap();
    m.atime() as i128 * 1_000_000_000 + m.atime_nsec() as i128
}

fn mtime(p: &Path) -> i128 {
    let m = fs::metadata(p).unwrap();
    m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128
}

/// Sets atime (seconds since the epoch), leaving mtime alone.
fn set_atime(p: &Path, secs: i64) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let ts = [
        libc::timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
    ];
    assert_eq!(
        unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), 0) },
        0
    );
}

/// Reads the whole file through a new open (what a user's `cat` does).
fn read(p: &Path) {
    let _ = fs::read(p).unwrap();
}

/// Lists a directory (getdents).
fn list(p: &Path) {
    let _ = fs::read_dir(p).unwrap().count();
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A pool with volume `v` mounted with `opts` (none: the default), a file `f` and a
/// directory `d` holding one entry, both with an atime set an hour ago (after mtime).
fn setup(opts: &[&str]) -> (Pool, std::path::PathBuf) {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "v"]);
    let mut args = vec!["mount", "v", m.to_str().unwrap()];
    args.extend_from_slice(opts);
    p.ok(&args);
    fs::write(m.join("f"), b"hello").unwrap();
    fs::create_dir(m.join("d")).unwrap();
    fs::write(m.join("d/e"), b"x").unwrap();
    (p, m)
}

#[test]
fn noatime_is_the_default_and_reads_leave_atime_alone() {
    for opts in [&[][..], &["-o", "noatime"][..]] {
        let (_p, m) = setup(opts);
        let hour_ago = now_secs() - 3600;
        set_atime(&m.join("f"), hour_ago);
        set_atime(&m.join("d"), hour_ago);
        read(&m.join("f"));
        list(&m.join("d"));
        assert_eq!(
            atime(&m.join("f")),
            hour_ago as i128 * 1_000_000_000,
            "{opts:?}"
        );
        assert_eq!(
            atime(&m.join("d")),
            hour_ago as i128 * 1_000_000_000,
            "{opts:?}"
        );
    }
}

#[test]
fn strictatime_updates_on_every_read_and_listing() {
    let (p, m) = setup(&["-o", "strictatime"]);
    let f = m.join("f");
    read(&f);
    let first = atime(&f);
    assert!(first > mtime(&f), "the read updated atime");
    read(&f);
    let second = atime(&f);
    assert!(
        second > first,
        "every read updates it: {first} then {second}"
    );
    let hour_ago = now_secs() - 3600;
    set_atime(&m.join("d"), hour_ago);
    list(&m.join("d"));
    assert!(
        atime(&m.join("d")) > hour_ago as i128 * 1_000_000_000,
        "listing"
    );
    // Shown and remembered with the mount.
    let status = p.ok(&["status"]);
    assert!(status.contains("strictatime"), "{status}");
    // Committed in a batch: the atime survives an unmount and a new mount.
    p.ok(&["umount", "v"]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    assert_eq!(atime(&f), second, "the noted atime was committed");
}

#[test]
fn relatime_updates_once_after_each_change_or_after_a_day() {
    let (_p, m) = setup(&["-o", "relatime"]);
    let f = m.join("f");
    // A new file's atime equals its mtime: the first read updates it.
    read(&f);
    let first = atime(&f);
    assert!(
        first > mtime(&f),
        "the first read after a write updates atime"
    );
    // Read again: atime is after mtime and ctime, and fresh: unchanged.
    read(&f);
    assert_eq!(atime(&f), first, "relatime: no update while atime is fresh");
    // A write makes the next read update it.
    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::write(&f, b"changed").unwrap();
    read(&f);
    let after_write = atime(&f);
    assert!(
        after_write > first && after_write > mtime(&f),
        "after a write"
    );
    // An atime set back (its ctime is then after it) is updated.
    set_atime(&f, now_secs() - 2 * 86_400);
    read(&f);
    assert!(
        atime(&f) > (now_secs() - 60) as i128 * 1_000_000_000,
        "set back"
    );
    // Directories: a listing after a change updates; the next one does not.
    let d = m.join("d");
    fs::write(d.join("new"), b"y").unwrap();
    list(&d);
    let listed = atime(&d);
    assert!(listed >= mtime(&d), "listing after a change");
    list(&d);
    assert_eq!(atime(&d), listed, "a fresh directory atime stays");
}

#[test]
fn nodiratime_keeps_directory_atimes_and_updates_files() {
    let (_p, m) = setup(&["-o", "strictatime,nodiratime"]);
    let hour_ago = now_secs() - 3600;
    set_atime(&m.join("d"), hour_ago);
    set_atime(&m.join("f"), hour_ago);
    list(&m.join("d"));
    read(&m.join("f"));
    assert_eq!(atime(&m.join("d")), hour_ago as i128 * 1_000_000_000);
    assert!(atime(&m.join("f")) > hour_ago as i128 * 1_000_000_000);
}

#[test]
fn the_mount_helper_passes_atime_options() {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "h"]);
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("mount/mount.tandem");
    let opts = format!("rw,strictatime,pool={}", p.path().display());
    let st = Command::new(&helper)
        .args(["h", m.to_str().unwrap(), "-o", &opts])
        .env("TANDEM_BIN", BIN)
        .status()
        .unwrap();
    assert!(st.success());
    fs::write(m.join("f"), b"x").unwrap();
    let hour_ago = now_secs() - 3600;
    set_atime(&m.join("f"), hour_ago);
    read(&m.join("f"));
    assert!(atime(&m.join("f")) > hour_ago as i128 * 1_000_000_000);
    let status = p.ok(&["status"]);
    assert!(status.contains("strictatime"), "{status}");
}

/// A new open of a file, mapped (nothing read through it).
struct Mapped {
    at: *mut libc::c_void,
    len: usize,
    _file: fs::File,
}

impl Mapped {
    fn open(p: &Path) -> Mapped {
        use std::os::fd::AsRawFd;
        let file = fs::File::open(p).unwrap();
        let len = file.metadata().unwrap().len() as usize;
        // SAFETY: plain syscall: a shared read-only mapping of `len` bytes of an open file.
        let at = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(at, libc::MAP_FAILED, "mmap {p:?}");
        Mapped {
            at,
            len,
            _file: file,
        }
    }

    /// How many of the file's pages are in the page cache (mincore(2)), of how many.
    fn cached(&self) -> (usize, usize) {
        let mut vec = vec![0u8; self.len.div_ceil(4096)];
        // SAFETY: plain syscall on the mapping, `vec` has one byte per page of it.
        assert_eq!(
            unsafe { libc::mincore(self.at, self.len, vec.as_mut_ptr()) },
            0,
            "mincore"
        );
        (vec.iter().filter(|b| *b & 1 != 0).count(), vec.len())
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, dropped before its file closes.
        unsafe { libc::munmap(self.at, self.len) };
    }
}

/// How many of the file's pages are in the page cache once it is opened again (before
/// anything is read through the new open), and how many it has.
fn cached_after_open(p: &Path) -> (usize, usize) {
    Mapped::open(p).cached()
}

#[test]
fn relatime_keeps_the_page_cache_while_no_update_is_due() {
    let (_p, m) = setup(&["-o", "relatime"]);
    let f = m.join("big");
    fs::write(&f, bytes("relatime", 256 << 10)).unwrap();
    // The first read is due (a new file's atime equals its mtime): it reaches the daemon.
    read(&f);
    let first = atime(&f);
    assert!(first > mtime(&f), "the first read updated atime");
    // Read since its last change, within the day: an open keeps the pages the read
    // cached, and the next read is served from them, leaving atime alone (as due).
    let (cached, pages) = cached_after_open(&f);
    assert_eq!(
        cached, pages,
        "an open with no atime update due kept the page cache"
    );
    read(&f);
    assert_eq!(atime(&f), first, "no update due");
    // An atime set back two days (its ctime is now after it) drops no page, but an
    // update is due: the next open drops them, and its read reaches the daemon.
    let open = Mapped::open(&f);
    set_atime(&f, now_secs() - 2 * 86_400);
    assert_eq!(open.cached(), (pages, pages), "setting atime dropped pages");
    drop(open);
    assert_eq!(
        cached_after_open(&f).0,
        0,
        "an open with an update due dropped the page cache"
    );
    read(&f);
    let again = atime(&f);
    assert!(again > first, "the read after the set-back updated atime");
    assert_eq!(cached_after_open(&f), (pages, pages), "kept again");
    read(&f);
    assert_eq!(atime(&f), again);
}
