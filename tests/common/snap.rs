//! Helpers shared by the snapshot tests: JSON answers of the CLI, hooks, waiting with a
//! deadline, restore-test clones, and damaging a pack on purpose.

use std::fs;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::Pool;

/// `tandem ARGS` (with `--json` among them), parsed.
pub fn json(p: &Pool, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&p.ok(args)).unwrap()
}

/// Every snapshot's name, oldest first.
pub fn snapshot_names(p: &Pool) -> Vec<String> {
    json(p, &["snapshot", "list", "--json"])["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

/// Writes an executable hook `<pool>/hooks/<phase>-snapshot.d/<name>` running `body`.
pub fn hook(p: &Pool, phase: &str, name: &str, body: &str) -> PathBuf {
    let dir = p.path().join("hooks").join(format!("{phase}-snapshot.d"));
    fs::create_dir_all(&dir).unwrap();
    // Hooks run only from directories no one else may write, whatever the umask.
    for d in [dir.parent().unwrap(), dir.as_path()] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let f = dir.join(name);
    fs::write(&f, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o755)).unwrap();
    f
}

/// Waits (up to `secs`) until `f` holds.
pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Volumes whose name starts with tandem-test- (a restore test's clone).
pub fn clones(p: &Pool) -> Vec<String> {
    json(p, &["volume", "list", "--json"])["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v["name"].as_str())
        .filter(|n| n.starts_with("tandem-test-"))
        .map(String::from)
        .collect()
}

/// Flips one byte of the stored copy of `data`'s first block in the pool's packs.
pub fn damage(pool: &Pool, data: &[u8]) {
    let needle = &data[..64];
    for e in fs::read_dir(pool.path().join("packs")).unwrap() {
        let path = e.unwrap().path();
        if !path.to_string_lossy().ends_with(".pack") {
            continue;
        }
        let pack = fs::read(&path).unwrap();
        if let Some(at) = pack.windows(64).position(|w| w == needle) {
            let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.write_all_at(&[pack[at + 10] ^ 0xff], (at + 10) as u64)
                .unwrap();
            f.sync_all().unwrap();
            return;
        }
    }
    panic!("the data is not in any pack");
}

/// A pool with volumes `v` and `w` each mounted on a fresh directory.
pub fn mounted_two() -> (Pool, PathBuf, PathBuf) {
    let mut p = Pool::new();
    let (mv, mw) = (p.mnt(), p.mnt());
    for (vol, m) in [("v", &mv), ("w", &mw)] {
        p.ok(&["volume", "create", vol]);
        p.ok(&["mount", vol, m.to_str().unwrap()]);
    }
    (p, mv, mw)
}

/// The pool's physical bytes (distinct chunks) as `tandem df` reports them.
pub fn physical(p: &Pool) -> u64 {
    json(p, &["df", "--json"])["pool"]["physical_bytes"]
        .as_u64()
        .unwrap()
}
