//! `tandem snapshot verify` and the snapshot's Merkle root: a good snapshot verifies, a
//! flipped byte in a pack names the damaged file per member and exits 1, the root is the
//! same across daemon restarts and for two snapshots of unchanged data, and Ctrl-C stops a
//! verify (exit 130).

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Pool, bytes, damage, write_synced};

fn info(p: &Pool, snap: &str) -> serde_json::Value {
    serde_json::from_str(&p.ok(&["snapshot", "info", snap, "--json"])).unwrap()
}

fn root(p: &Pool, snap: &str) -> String {
    let r = info(p, snap)["root"].as_str().unwrap().to_string();
    assert_eq!(r.len(), 64, "{r}");
    r
}

/// A group `g` of volumes `data` and `wal`, mounted, with files in both.
fn group_pool() -> (Pool, std::path::PathBuf, std::path::PathBuf) {
    let mut p = Pool::new();
    let (d, w) = p.mounted_pair("g", ("data", "wal"), &[]);
    fs::create_dir(d.join("dir")).unwrap();
    write_synced(&d.join("dir/table"), &bytes("table", 300_000));
    write_synced(&d.join("small"), b"small");
    write_synced(&w.join("log"), &bytes("log", 200_000));
    (p, d, w)
}

#[test]
fn a_good_snapshot_verifies_and_a_flipped_byte_names_the_file() {
    let (p, d, _w) = group_pool();
    p.ok(&["snapshot", "create", "s1", "--group", "g"]);
    let r1 = root(&p, "s1");
    let out = p.ok(&["snapshot", "verify", "s1"]);
    assert!(out.contains(&format!("root {r1} matches")), "{out}");
    assert!(out.contains("verified "), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&p.ok(&["snapshot", "verify", "s1", "--json"])).unwrap();
    assert_eq!(json["root"], json["computed"], "{json}");
    assert_eq!(json["members"].as_array().unwrap().len(), 2, "{json}");
    assert!(json["chunks"].as_u64().unwrap() >= 5, "{json}");
    let text = p.ok(&["snapshot", "info", "s1"]);
    assert!(text.contains(&format!("root:         {r1}")), "{text}");

    // The live file changes after the snapshot; the snapshot's copy is damaged in its pack.
    let old = fs::read(d.join("dir/table")).unwrap();
    write_synced(&d.join("dir/table"), &bytes("new table", 300_000));
    damage(&p, &old);
    let o = p.run(&["snapshot", "verify", "s1"]);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(out.contains("damaged: data:/dir/table: chunk "), "{out}");
    assert!(!out.contains("small") && !out.contains("wal:"), "{out}");
    assert!(
        err.contains("snapshot 's1' is damaged: 1 damaged file(s)"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let o = p.run(&["snapshot", "verify", "s1", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["members"][0]["volume"], "data");
    assert_eq!(
        json["members"][0]["damaged"][0]["path"], "/dir/table",
        "{json}"
    );
    assert!(json["members"][1]["damaged"].as_array().unwrap().is_empty());
    // The metadata is intact: the root itself still matches.
    assert_eq!(json["root"], json["computed"], "{json}");
}

#[test]
fn the_root_is_stable_across_restarts_and_equal_for_unchanged_data() {
    let (p, d, _w) = group_pool();
    p.ok(&["snapshot", "create", "a", "--group", "g"]);
    p.ok(&["snapshot", "create", "b", "--group", "g"]);
    let (ra, rb) = (root(&p, "a"), root(&p, "b"));
    assert_eq!(ra, rb, "two snapshots of unchanged data");
    write_synced(&d.join("small"), b"SMALL");
    p.ok(&["snapshot", "create", "c", "--group", "g"]);
    let rc = root(&p, "c");
    assert_ne!(rc, ra, "a changed file changes the root");
    // A change of metadata only changes it too.
    fs::set_permissions(
        d.join("small"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    p.ok(&["snapshot", "create", "e", "--group", "g"]);
    assert_ne!(root(&p, "e"), rc, "a chmod changes the root");

    p.ok(&["shutdown"]);
    assert_eq!(root(&p, "a"), ra, "after a restart");
    assert_eq!(root(&p, "c"), rc);
    let out = p.ok(&["snapshot", "verify", "a"]);
    assert!(out.contains(&format!("root {ra} matches")), "{out}");
}

#[test]
fn ctrl_c_stops_a_snapshot_verify() {
    let mut p = Pool::new();
    let m = p.mnt();
    // 1 s per batch of chunks (8 MiB each): the verify of 20 MiB runs for 4 s or more.
    let o = Command::new(BIN)
        .env("TANDEM_AUTOSTART", "1")
        .arg("--pool")
        .arg(p.path())
        .args(["volume", "create", "v"])
        .env("TANDEM_TEST_VERIFY_CHUNK_DELAY_MS", "1000")
        .output()
        .unwrap();
    assert!(o.status.success());
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    write_synced(&m.join("f"), &bytes("f", 20 << 20));
    p.ok(&["snapshot", "create", "s", "v"]);
    let mut child = Command::new(BIN)
        .arg("--pool")
        .arg(p.path())
        .args(["snapshot", "verify", "s"])
        .env("TANDEM_VERIFY_PROGRESS_MS", "10")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.starts_with("verifying: "), "{first}");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let asked = Instant::now();
    let status = child.wait().unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let err = rest.join("\n");
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(
        err.contains("snapshot verify of 's' interrupted after "),
        "{err}"
    );
    assert!(asked.elapsed() < Duration::from_secs(4));
}
