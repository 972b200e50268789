//! Conformance and integrity runs against a mounted volume: pjdfstest (POSIX semantics),
//! fsx (100,000 random operations checked against a model), fio (concurrent random writes
//! verified with crc32c). `.ci/run` installs the tools; in CI (or with TANDEM_CONFORMANCE=1)
//! a missing tool fails the test, elsewhere it is skipped with a note.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use tandem::fs::{Ctx, Engine};
use tandem::fuse::{Mount, MountSpec};
use tandem::store::rows::View;

fn tool(name: &str) -> Option<PathBuf> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let candidates = [
        home.join(".cargo/bin").join(name),
        PathBuf::from("/usr/bin").join(name),
        PathBuf::from("/usr/local/bin").join(name),
    ];
    if let Some(p) = candidates.into_iter().find(|p| p.exists()) {
        return Some(p);
    }
    let required =
        std::env::var_os("CI").is_some() || std::env::var_os("TANDEM_CONFORMANCE").is_some();
    assert!(
        !required,
        "{name} is not installed; .ci/run installs it (cargo install pjdfstest fsx; apt-get install fio)"
    );
    eprintln!("SKIPPED: {name} is not installed (set TANDEM_CONFORMANCE=1 to make this an error)");
    None
}

struct Mounted {
    _pool: tempfile::TempDir,
    dir: tempfile::TempDir,
    mount: Option<Mount>,
}

impl Mounted {
    fn new() -> Mounted {
        let pool = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(Engine::open(pool.path()).unwrap());
        let vol = engine
            .create_volume("conf", None, Ctx::default())
            .unwrap()
            .id;
        // World-writable root, as a test directory: pjdfstest switches to other users.
        let spec = MountSpec {
            vol,
            name: "conf".into(),
            view: View::Live,
            mountpoint: dir.path().to_path_buf(),
            read_only: false,
            allow_other: true,
        };
        let mount = Mount::new(engine, spec).unwrap();
        Mounted {
            _pool: pool,
            dir,
            mount: Some(mount),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(m) = self.mount.take() {
            let _ = m.unmount();
        }
    }
}

#[test]
fn pjdfstest_passes() {
    let Some(pjd) = tool("pjdfstest") else { return };
    let m = Mounted::new();
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/pjdfstest.toml");
    // A directory on another filesystem, for the EXDEV cases.
    let other = tempfile::tempdir().unwrap();
    let out = Command::new(pjd)
        .arg("-c")
        .arg(&config)
        .arg("-p")
        .arg(m.path())
        .arg("-s")
        .arg(other.path())
        .current_dir(m.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("Summary:"))
        .unwrap_or("no summary")
        .to_string();
    eprintln!("pjdfstest: {summary}");
    let failed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_end().ends_with("FAILED") || l.contains("failed:"))
        .collect();
    assert!(
        out.status.success() && summary.contains(" 0 failed"),
        "pjdfstest failures:\n{}\n{summary}\n{}",
        failed.join("\n"),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn fsx_100k_operations_without_a_mismatch() {
    let Some(fsx) = tool("fsx") else { return };
    let m = Mounted::new();
    let artifacts = tempfile::tempdir().unwrap();
    let ops = std::env::var("TANDEM_FSX_OPS").unwrap_or_else(|_| "100000".into());
    let out = Command::new(fsx)
        .args(["-N", &ops, "-S", "20261122", "-P"])
        .arg(artifacts.path())
        .arg(m.path().join("fsx.file"))
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "fsx failed:\n{}",
        all.lines().rev().take(40).collect::<Vec<_>>().join("\n")
    );
    eprintln!(
        "fsx: {ops} operations: {}",
        all.lines().last().unwrap_or("")
    );
}

#[test]
fn fio_concurrent_random_writes_verify() {
    let Some(fio) = tool("fio") else { return };
    let m = Mounted::new();
    let out = Command::new(fio)
        .args([
            "--name=tandem-verify",
            "--rw=randwrite",
            "--bs=4k",
            "--size=32M",
            "--numjobs=4",
            "--ioengine=psync",
            "--verify=crc32c",
            "--verify_fatal=1",
            "--do_verify=1",
            "--group_reporting",
            "--verify_state_save=0",
        ])
        .arg(format!("--directory={}", m.path().display()))
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "fio verify failed:\n{all}");
    assert!(!all.contains("verify: bad"), "{all}");
    eprintln!("fio: 4 jobs x 32 MiB random 4 KiB writes verified with crc32c");
}
