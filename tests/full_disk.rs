//! A pool on a full disk (a 64 MiB ext4 on a loop device), through the real binary and a
//! real mount: ENOSPC reaches the write that cannot be stored and nothing that returned
//! success is lost; mkdir, a small file and deletes keep working on the full disk; the
//! space deletes free is usable again without a restart; a restart keeps all of it.

mod common;

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, SmallDisk, free_bytes};

fn tandem(pool: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .env("TANDEM_AUTOSTART", "1")
        .arg("--pool")
        .arg(pool)
        .args(args)
        .output()
        .expect("run tandem")
}

fn ok(pool: &Path, args: &[&str]) {
    let o = tandem(pool, args);
    assert!(
        o.status.success(),
        "tandem {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Deterministic incompressible bytes, different for every `seed`.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Which call of writing `data` and fsyncing it failed, if any.
#[derive(Debug, PartialEq)]
enum Outcome {
    Stored,
    WriteFailed(i32),
    FsyncFailed(i32),
}

fn store(path: &Path, data: &[u8]) -> Outcome {
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .expect("create");
    for piece in data.chunks(1 << 20) {
        if let Err(e) = f.write_all(piece) {
            return Outcome::WriteFailed(e.raw_os_error().unwrap_or(0));
        }
    }
    match f.sync_all() {
        Ok(()) => Outcome::Stored,
        Err(e) => Outcome::FsyncFailed(e.raw_os_error().unwrap_or(0)),
    }
}

#[test]
fn a_full_disk_refuses_the_write_and_loses_nothing() {
    let Some(disk) = SmallDisk::new(64) else {
        eprintln!("SKIPPED: cannot make a loop-mounted ext4 here (needs root and mkfs.ext4)");
        return;
    };
    let pool = disk.mnt.join("pool");
    let mnt_dir = tempfile::tempdir().expect("mountpoint");
    let mnt = mnt_dir.path();
    ok(&pool, &["volume", "create", "v"]);
    ok(&pool, &["mount", "v", mnt.to_str().expect("path")]);

    // Fill the disk with fsynced 8 MiB files.
    let mut stored = Vec::new();
    let outcome = loop {
        let i = stored.len() as u64;
        assert!(i < 20, "a 64 MiB disk held 20 files of 8 MiB");
        let path = mnt.join(format!("f{i}"));
        match store(&path, &bytes(i, 8 << 20)) {
            Outcome::Stored => stored.push(i),
            other => break other,
        }
    };
    assert_eq!(
        outcome,
        Outcome::WriteFailed(libc::ENOSPC),
        "ENOSPC must reach the write that cannot be stored, never a later fsync"
    );
    assert!(stored.len() >= 3, "only {} files fitted", stored.len());

    // Metadata keeps working on the full disk, and so does a small file.
    fs::create_dir(mnt.join("dir")).expect("mkdir on a full disk");
    fs::write(mnt.join("dir/small"), b"hello").expect("a small file on a full disk");
    ok(&pool, &["status"]);

    // Deleting three files frees their space without a restart.
    let before = free_bytes(&disk.mnt);
    for i in &stored[..3] {
        fs::remove_file(mnt.join(format!("f{i}"))).expect("rm");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let again = mnt.join("again");
    loop {
        match store(&again, &bytes(99, 8 << 20)) {
            Outcome::Stored => break,
            other => {
                assert!(
                    Instant::now() < deadline,
                    "8 MiB still do not fit 15 s after deleting 24 MiB ({other:?}; free {} -> {})",
                    before,
                    free_bytes(&disk.mnt)
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    assert!(free_bytes(&disk.mnt) > before, "deletes gave no space back");
    let o = Command::new("sync").output().expect("sync");
    assert!(o.status.success(), "sync on a full pool");

    // A restart keeps everything that returned success, and nothing deleted comes back.
    ok(&pool, &["shutdown"]);
    ok(&pool, &["status"]);
    common::wait_until("the volume mounted again", || common::is_mounted(mnt));
    for i in &stored[3..] {
        let got = fs::read(mnt.join(format!("f{i}"))).expect("a stored file");
        assert!(got == bytes(*i, 8 << 20), "file f{i} changed");
    }
    for i in &stored[..3] {
        assert!(
            !mnt.join(format!("f{i}")).exists(),
            "deleted f{i} came back"
        );
    }
    assert_eq!(fs::read(mnt.join("dir/small")).expect("small"), b"hello");
    assert!(fs::read(&again).expect("again") == bytes(99, 8 << 20));
    ok(&pool, &["shutdown"]);
}
