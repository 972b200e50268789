//! Issue 16's features through the real binary and real mounts, with plain syscalls:
//! copy_file_range shares whole blocks (a copy takes no new space, even of blocks stored as
//! patches, which a copy of the bytes would have to store merged), edges are copied, the
//! source's buffered writes are seen and later changes to the source leave the copy alone;
//! fallocate PUNCH_HOLE and ZERO_RANGE read back zeros and give space back (`tandem df`),
//! COLLAPSE/INSERT are refused with EOPNOTSUPP, a preallocation larger than the pool's disk
//! fails with ENOSPC; SEEK_DATA/SEEK_HOLE find the holes; copies and punches survive a
//! crash once fsynced.

use std::fs::{self, File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

mod common;
use common::*;

/// Block size of a volume created with the defaults.
const BS: u64 = 128 << 10;

fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .unwrap()
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// copy_file_range(2) of `len` bytes, looping on short counts; returns the bytes copied.
fn copy(src: &File, off_in: u64, dst: &File, off_out: u64, len: u64) -> u64 {
    let (mut i, mut o) = (off_in as i64, off_out as i64);
    let mut done = 0;
    while done < len {
        let want = (len - done) as usize;
        // SAFETY: two open descriptors and offsets the call updates.
        let n = unsafe {
            libc::copy_file_range(src.as_raw_fd(), &mut i, dst.as_raw_fd(), &mut o, want, 0)
        };
        assert!(n >= 0, "copy_file_range: errno {}", errno());
        if n == 0 {
            break;
        }
        done += n as u64;
    }
    done
}

fn fallocate(f: &File, mode: i32, off: u64, len: u64) -> Result<(), i32> {
    // SAFETY: an open descriptor.
    match unsafe { libc::fallocate(f.as_raw_fd(), mode, off as i64, len as i64) } {
        0 => Ok(()),
        _ => Err(errno()),
    }
}

fn seek(f: &File, off: u64, whence: i32) -> Result<u64, i32> {
    // SAFETY: an open descriptor.
    match unsafe { libc::lseek(f.as_raw_fd(), off as i64, whence) } {
        n if n >= 0 => Ok(n as u64),
        _ => Err(errno()),
    }
}

fn read_all(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap()
}

#[test]
fn copy_file_range_shares_whole_blocks_and_takes_no_new_space() {
    let (p, mv, mw) = mounted_two();
    let len = 256u64 << 20;
    let data = bytes("source", len as usize);
    write_synced(&mv.join("a"), &data);
    // Small writes over 64 stored blocks: those blocks are stored as patches. A copy of
    // the bytes would store each merged (8 MiB more); a shared copy stores nothing.
    let a = open_rw(&mv.join("a"));
    physical(&p);
    let mut want = data;
    for k in 0..64u64 {
        let at = k * 4 * BS + 1000;
        a.write_all_at(&[k as u8; 4096], at).unwrap();
        want[at as usize..at as usize + 4096].fill(k as u8);
    }
    let before = physical(&p);
    // One more write, only buffered: the copy must see it.
    a.write_all_at(b"buffered", len - 100).unwrap();
    want[(len - 100) as usize..(len - 92) as usize].copy_from_slice(b"buffered");

    let b = open_rw(&mv.join("b"));
    assert_eq!(copy(&a, 0, &b, 0, len), len);
    let grown = physical(&p).saturating_sub(before);
    assert!(
        grown < 1 << 20,
        "a 256 MiB copy within the volume added {grown} physical bytes"
    );
    assert!(
        read_all(&mv.join("b")) == want,
        "the copy reads back different"
    );

    // Edges: unaligned offsets with the same alignment; the rest of the target stays.
    let c = open_rw(&mv.join("c"));
    c.write_all_at(&[7u8; 100], 0).unwrap();
    let n = 5 * BS + 333;
    assert_eq!(copy(&a, 17, &c, BS + 17, n), n);
    let got = read_all(&mv.join("c"));
    assert_eq!(got.len() as u64, BS + 17 + n);
    assert!(got[..100].iter().all(|&x| x == 7));
    assert!(got[100..(BS + 17) as usize].iter().all(|&x| x == 0));
    assert!(got[(BS + 17) as usize..] == want[17..17 + n as usize]);

    // Across volumes (the kernel copies between mounts itself): the same bytes.
    let d = open_rw(&mw.join("d"));
    assert_eq!(copy(&a, 0, &d, 0, 3 * BS), 3 * BS);
    assert!(read_all(&mw.join("d")) == want[..3 * BS as usize]);

    // Changing the source leaves every copy alone.
    a.write_all_at(&[0xAA; 8192], BS - 10).unwrap();
    a.set_len(BS).unwrap();
    drop(a);
    physical(&p);
    assert!(
        read_all(&mv.join("b")) == want,
        "the copy changed with its source"
    );
    assert!(read_all(&mw.join("d")) == want[..3 * BS as usize]);
}

#[test]
fn punch_and_zero_read_back_zeros_and_give_space_back() {
    let (p, mv, _mw) = mounted_two();
    let path = mv.join("f");
    let mut want = bytes("punch", 8 << 20);
    write_synced(&path, &want);
    let f = open_rw(&path);
    let full = physical(&p);

    let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    let (off, n) = ((1 << 20) + 100, 4 << 20);
    fallocate(&f, punch, off, n).unwrap();
    want[off as usize..(off + n) as usize].fill(0);
    assert!(read_all(&path) == want, "punched range does not read zeros");
    assert_eq!(
        f.metadata().unwrap().len(),
        8 << 20,
        "KEEP_SIZE kept the size"
    );
    let punched = physical(&p);
    assert!(
        full - punched >= 3 << 20,
        "punching 4 MiB gave back only {} bytes",
        full - punched
    );

    // The holes are where the whole blocks were.
    let hole = off.div_ceil(BS) * BS;
    assert_eq!(seek(&f, 0, libc::SEEK_DATA), Ok(0));
    assert_eq!(seek(&f, 0, libc::SEEK_HOLE), Ok(hole));
    assert_eq!(seek(&f, hole, libc::SEEK_DATA), Ok((off + n) / BS * BS));
    assert_eq!(seek(&f, hole + 5, libc::SEEK_HOLE), Ok(hole + 5));
    assert_eq!(seek(&f, (7 << 20) + 1, libc::SEEK_HOLE), Ok(8 << 20));
    assert_eq!(seek(&f, 8 << 20, libc::SEEK_DATA), Err(libc::ENXIO));
    assert_eq!(seek(&f, 8 << 20, libc::SEEK_HOLE), Err(libc::ENXIO));

    // ZERO_RANGE with fallocate(1), past the end: the file grows, the range reads zeros.
    let o = std::process::Command::new("fallocate")
        .args([
            "-z",
            "-o",
            &(6 << 20).to_string(),
            "-l",
            &(4 << 20).to_string(),
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    want[6 << 20..].fill(0);
    want.resize(10 << 20, 0);
    assert!(read_all(&path) == want, "zeroed range does not read zeros");
    let zeroed = physical(&p);
    assert!(
        punched - zeroed >= 2 << 20,
        "zeroing 2 MiB of data gave back only {} bytes",
        punched - zeroed
    );
    assert_eq!(seek(&f, 6 << 20, libc::SEEK_DATA), Err(libc::ENXIO));

    for (mode, name) in [
        (libc::FALLOC_FL_COLLAPSE_RANGE, "collapse"),
        (libc::FALLOC_FL_INSERT_RANGE, "insert"),
    ] {
        assert_eq!(
            fallocate(&f, mode, 0, BS),
            Err(libc::EOPNOTSUPP),
            "{name} range"
        );
    }
    assert!(read_all(&path) == want);
}

#[test]
fn a_sparse_file_shows_its_holes_to_seek_data_and_seek_hole() {
    let (_p, mv, _mw) = mounted_two();
    let f = open_rw(&mv.join("sparse"));
    f.write_all_at(b"head", 0).unwrap();
    f.write_all_at(b"middle", 10 * BS + 5).unwrap();
    f.set_len(64 << 20).unwrap();
    // Buffered (nothing committed yet), then committed: the same answers.
    for round in 0..2 {
        assert_eq!(seek(&f, 0, libc::SEEK_HOLE), Ok(BS), "round {round}");
        assert_eq!(seek(&f, BS, libc::SEEK_DATA), Ok(10 * BS), "round {round}");
        assert_eq!(seek(&f, 10 * BS, libc::SEEK_HOLE), Ok(11 * BS));
        assert_eq!(seek(&f, 11 * BS, libc::SEEK_DATA), Err(libc::ENXIO));
        assert_eq!(seek(&f, 20 << 20, libc::SEEK_HOLE), Ok(20 << 20));
        f.sync_all().unwrap();
    }
}

#[test]
fn preallocating_more_than_the_disk_holds_fails_with_enospc() {
    let Some(disk) = SmallDisk::new(64) else {
        eprintln!("SKIPPED: cannot make a loop-mounted ext4 here (needs root and mkfs.ext4)");
        return;
    };
    let mut p = Pool::new();
    let pool = disk.mnt.join("pool");
    let m = p.mnt();
    let run = |args: &[&str]| {
        let o = std::process::Command::new(BIN)
            .env("TANDEM_AUTOSTART", "1")
            .arg("--pool")
            .arg(&pool)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run(&["volume", "create", "v"]);
    run(&["mount", "v", m.to_str().unwrap()]);
    let free = free_bytes(&disk.mnt);
    let f = open_rw(&m.join("big"));
    assert_eq!(fallocate(&f, 0, 0, 2 * free), Err(libc::ENOSPC));
    assert_eq!(
        fallocate(&f, libc::FALLOC_FL_KEEP_SIZE, 0, 2 * free),
        Err(libc::ENOSPC)
    );
    assert_eq!(
        f.metadata().unwrap().len(),
        0,
        "a refused fallocate grew the file"
    );
    // What fits is granted, and can be written.
    fallocate(&f, 0, 0, free / 4).unwrap();
    assert_eq!(f.metadata().unwrap().len(), free / 4);
    f.write_all_at(&bytes("fill", (free / 4) as usize), 0)
        .unwrap();
    f.sync_all().unwrap();
    drop(f);
    run(&["shutdown"]);
    drop(p);
}

/// Kills the pool's daemon `pid` (SIGKILL: what was not made durable is gone) and waits
/// until the restarted daemon has mounted `m` again. (The pid is asked for before the
/// operations under test: `tandem status` itself may commit.)
fn crash(p: &Pool, m: &Path, pid: i32) {
    // SAFETY: the test's own daemon.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_until("the daemon to die", || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    let c = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid path; the dead mount is detached.
    unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
    // The restarted daemon mounts the volume again (mounts.json).
    p.ok(&["status"]);
    wait_until("the volume mounted again", || is_mounted(m));
}

#[test]
fn a_copy_and_a_punch_survive_a_crash_once_fsynced() {
    let (p, mv, _mw) = mounted_two();
    let data = bytes("crash", 4 << 20);
    write_synced(&mv.join("src"), &data);
    write_synced(&mv.join("dst"), b"");
    let pid = p.daemon_pid();
    // Every commit so far durable: only the copy's own fsync can make it so.
    let (src, dst) = (open_rw(&mv.join("src")), open_rw(&mv.join("dst")));
    assert_eq!(copy(&src, 0, &dst, 0, 4 << 20), 4 << 20);
    dst.sync_all().unwrap();
    drop((src, dst));
    crash(&p, &mv, pid);
    assert!(
        read_all(&mv.join("dst")) == data,
        "the fsynced copy was lost"
    );

    let pid = p.daemon_pid();
    let src = open_rw(&mv.join("src"));
    let punch = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    fallocate(&src, punch, 0, 2 << 20).unwrap();
    src.sync_all().unwrap();
    drop(src);
    crash(&p, &mv, pid);
    let mut want = data;
    want[..2 << 20].fill(0);
    assert!(
        read_all(&mv.join("src")) == want,
        "the fsynced punch was lost"
    );
}
