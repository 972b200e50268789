//! Shared helpers of the tests: those that run the `tandem` binary, a small loop-mounted
//! disk to fill (disk.rs), and a small deterministic PRNG for the crash tests' workloads.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod disk;
pub mod pg;
mod snap;
#[allow(unused_imports)]
pub use disk::*;
#[allow(unused_imports)]
pub use snap::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_tandem");

/// A pool in a temp dir whose daemon is stopped (and its mounts detached) on drop.
pub struct Pool {
    pub dir: tempfile::TempDir,
    pub mnts: Vec<tempfile::TempDir>,
}

impl Pool {
    pub fn new() -> Pool {
        Pool {
            dir: tempfile::tempdir().unwrap(),
            mnts: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn mnt(&mut self) -> PathBuf {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().to_path_buf();
        self.mnts.push(d);
        p
    }

    /// Creates the volumes `data` and `wal` (named as given), groups them as `group` and
    /// mounts each on a new directory with `opts` (e.g. `["-o", "allow_other"]`, which a
    /// server run as another user needs); returns the two mountpoints.
    pub fn mounted_pair(
        &mut self,
        group: &str,
        (data, wal): (&str, &str),
        opts: &[&str],
    ) -> (PathBuf, PathBuf) {
        let (d, w) = (self.mnt(), self.mnt());
        self.ok(&["volume", "create", data]);
        self.ok(&["volume", "create", wal]);
        self.ok(&["group", "create", group, data, wal]);
        for (vol, m) in [(data, &d), (wal, &w)] {
            let mut args = vec!["mount", vol, m.to_str().unwrap()];
            args.extend_from_slice(opts);
            self.ok(&args);
        }
        (d, w)
    }

    /// `tandem --pool P args`, allowed to start the pool's daemon (`TANDEM_AUTOSTART=1`:
    /// a test runs its own daemon whether or not systemd runs the machine).
    pub fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .env("TANDEM_AUTOSTART", "1")
            .arg("--pool")
            .arg(self.path())
            .args(args)
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "tandem {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Runs a command that must fail with `code`; returns its one-line error.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let o = self.run(args);
        assert_eq!(
            o.status.code(),
            Some(code),
            "tandem {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        if code == 1 {
            assert_eq!(
                err.trim_end().lines().count(),
                1,
                "one-line error, got: {err}"
            );
            assert!(err.starts_with("tandem: "), "{err}");
        }
        err
    }

    pub fn daemon_pid(&self) -> i32 {
        let out = self.ok(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["pid"].as_i64().unwrap() as i32
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = Command::new(BIN)
            .arg("--pool")
            .arg(self.path())
            .arg("shutdown")
            .output();
        for m in &self.mnts {
            let c = std::ffi::CString::new(m.path().as_os_str().as_encoded_bytes()).unwrap();
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

pub fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn is_mounted(dir: &Path) -> bool {
    let canon = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(canon.to_str().unwrap()))
}

/// Deterministic bytes that do not deduplicate.
pub fn bytes(seed: &str, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new()
        .update(seed.as_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// Writes `data` to a new file at `path` and fsyncs it.
pub fn write_synced(path: &Path, data: &[u8]) {
    use std::io::Write;
    let mut f = fs::File::create(path).unwrap();
    f.write_all(data).unwrap();
    f.sync_all().unwrap();
}

/// SplitMix64: a deterministic PRNG for test workloads (the same seed, the same run).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}
