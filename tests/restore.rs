//! Restore, clone, diff and space, end to end through the `tandem` binary and real mounts,
//! and the application restore test (SQLite database + its journal in one group).

use std::fs;
use std::io::Read;
use std::process::Command;

mod common;
use common::*;

fn physical(p: &Pool) -> u64 {
    json(p, &["status", "--json"])["stats"]["physical_bytes"]
        .as_u64()
        .unwrap()
}

#[test]
fn restore_clone_diff_and_space() {
    let mut p = Pool::new();
    let (ma, mb, mc) = (p.mnt(), p.mnt(), p.mnt());
    p.ok(&["volume", "create", "a"]);
    p.ok(&["volume", "create", "b"]);
    p.ok(&["group", "create", "g", "a", "b"]);
    p.ok(&["mount", "a", ma.to_str().unwrap()]);
    p.ok(&["mount", "b", mb.to_str().unwrap()]);
    fs::create_dir(ma.join("d")).unwrap();
    fs::write(ma.join("d/f"), b"one").unwrap();
    fs::write(ma.join("keep"), b"k").unwrap();
    fs::write(mb.join("w"), vec![7u8; 300_000]).unwrap();
    p.ok(&["snapshot", "create", "s1", "--group", "g"]);
    fs::write(ma.join("d/f"), b"two").unwrap();
    fs::write(ma.join("d/new"), b"n").unwrap();
    fs::rename(ma.join("keep"), ma.join("kept")).unwrap();
    fs::remove_file(mb.join("w")).unwrap();
    p.ok(&["snapshot", "create", "s2", "--group", "g"]);
    // Diff against the live volumes and between snapshots, both directions.
    let d = p.ok(&["snapshot", "diff", "s1"]);
    for line in [
        "+\ta:/d/new",
        "M\ta:/d/f",
        "R\ta:/keep -> a:/kept",
        "-\tb:/w",
    ] {
        assert!(d.contains(line), "diff lacks {line:?}:\n{d}");
    }
    assert_eq!(d.lines().count(), 4, "{d}");
    assert_eq!(p.ok(&["snapshot", "diff", "s1", "s2"]), d);
    assert_eq!(
        p.ok(&["snapshot", "diff", "s2"]),
        "",
        "nothing changed since s2"
    );
    let dj = json(&p, &["snapshot", "diff", "s1", "--volume", "b", "--json"]);
    assert_eq!(dj["volumes"].as_array().unwrap().len(), 1);
    // Restore refuses while mounted, then works online and shows in the open mounts.
    let e = p.fails(&["snapshot", "restore", "s1"], 1);
    assert!(e.contains("a at") && e.contains("--online"), "{e}");
    let out = p.ok(&["snapshot", "restore", "s1", "--online"]);
    assert!(out.contains("undo snapshot"), "{out}");
    assert_eq!(fs::read(ma.join("d/f")).unwrap(), b"one");
    assert!(!ma.join("d/new").exists() && ma.join("keep").exists() && !ma.join("kept").exists());
    assert_eq!(
        fs::read(mb.join("w")).unwrap(),
        vec![7u8; 300_000],
        "every member is restored"
    );
    // The snapshot and every later one are kept, plus the undo snapshot.
    let names: Vec<String> = json(&p, &["snapshot", "list", "--json"])["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        names.contains(&"s1".into()) && names.contains(&"s2".into()),
        "{names:?}"
    );
    let undo = names
        .iter()
        .find(|n| n.starts_with("s1-undo"))
        .expect("undo snapshot")
        .clone();
    // Going back with the undo snapshot, offline this time, without a new undo.
    p.ok(&["umount", "a"]);
    p.ok(&["umount", "b"]);
    p.ok(&["snapshot", "restore", &undo, "--no-undo"]);
    p.ok(&["mount", "a", ma.to_str().unwrap()]);
    p.ok(&["mount", "b", mb.to_str().unwrap()]);
    assert_eq!(fs::read(ma.join("d/f")).unwrap(), b"two");
    assert!(!mb.join("w").exists());
    // Clone: a new group of writable volumes sharing the data.
    let before = physical(&p);
    p.ok(&["snapshot", "clone", "c", "s1"]);
    assert_eq!(physical(&p), before, "a clone copies no data");
    let info = json(&p, &["group", "info", "c", "--json"]);
    assert_eq!(info["volumes"], serde_json::json!(["c-a", "c-b"]));
    p.ok(&["mount", "c-a", mc.to_str().unwrap()]);
    assert_eq!(fs::read(mc.join("d/f")).unwrap(), b"one");
    fs::write(mc.join("d/f"), b"clone's own").unwrap();
    fs::write(mc.join("only-in-clone"), b"x").unwrap();
    assert_eq!(
        fs::read(ma.join("d/f")).unwrap(),
        b"two",
        "origin untouched"
    );
    p.ok(&["snapshot", "activate", "s1"]);
    assert_eq!(
        fs::read(p.path().join("run/snaps/s1/a/d/f")).unwrap(),
        b"one",
        "snapshot untouched"
    );
    assert!(!p.path().join("run/snaps/s1/a/only-in-clone").exists());
    // The clone is independent of the snapshot it came from.
    p.ok(&["snapshot", "delete", "s1"]);
    assert_eq!(fs::read(mc.join("d/f")).unwrap(), b"clone's own");
    // Space: deleting what holds the 300 KB file frees it.
    p.ok(&["umount", "c-a"]);
    p.ok(&["group", "delete", "c"]);
    p.ok(&["volume", "delete", "c-a"]);
    p.ok(&["volume", "delete", "c-b"]);
    // Space: a file only a snapshot holds is freed with the snapshot.
    let mut x = 88172645463325252u64;
    let big: Vec<u8> = (0..1_000_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(ma.join("big"), &big).unwrap();
    p.ok(&["snapshot", "create", "sp", "--group", "g"]);
    fs::remove_file(ma.join("big")).unwrap();
    let with = physical(&p);
    assert!(
        with >= 1_000_000,
        "the snapshot still holds the file: {with}"
    );
    let df = json(&p, &["df", "--json"]);
    let holds: Vec<(String, u64)> = df["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let n = s["name"].as_str().unwrap().to_string();
            (n, s["exclusive_bytes"].as_u64().unwrap())
        })
        .collect();
    assert!(
        holds.iter().any(|(n, h)| n == "sp" && *h >= 1_000_000),
        "df shows what sp holds: {holds:?}"
    );
    assert!(p.ok(&["df"]).contains("dedup ratio"));
    p.ok(&["snapshot", "delete", "sp"]);
    let without = physical(&p);
    assert!(
        without + 1_000_000 <= with,
        "physical bytes drop after deleting the snapshot: {with} -> {without}"
    );
}

#[test]
fn a_snapshot_mount_rejects_every_kind_of_write() {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    fs::create_dir(m.join("dir")).unwrap();
    fs::write(m.join("f"), b"data").unwrap();
    p.ok(&["snapshot", "create", "s", "v"]);
    p.ok(&["snapshot", "activate", "s"]);
    let r = p.path().join("run/snaps/s/v");
    let erofs = |what: &str, res: std::io::Result<()>| {
        assert_eq!(
            res.err().and_then(|e| e.raw_os_error()),
            Some(libc::EROFS),
            "{what}"
        );
    };
    erofs(
        "write",
        fs::OpenOptions::new()
            .write(true)
            .open(r.join("f"))
            .map(|_| ()),
    );
    erofs("create", fs::write(r.join("new"), b"x"));
    erofs("mkdir", fs::create_dir(r.join("d2")));
    erofs("unlink", fs::remove_file(r.join("f")));
    erofs("rmdir", fs::remove_dir(r.join("dir")));
    erofs("rename", fs::rename(r.join("f"), r.join("g")));
    erofs("link", fs::hard_link(r.join("f"), r.join("h")));
    erofs("symlink", std::os::unix::fs::symlink("f", r.join("l")));
    erofs(
        "chmod",
        fs::set_permissions(
            r.join("f"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        ),
    );
    let c = std::ffi::CString::new(r.join("f").as_os_str().as_encoded_bytes()).unwrap();
    let rc = unsafe { libc::truncate(c.as_ptr(), 0) };
    assert_eq!(
        (rc, std::io::Error::last_os_error().raw_os_error()),
        (-1, Some(libc::EROFS)),
        "truncate"
    );
    let n = std::ffi::CString::new("user.x").unwrap();
    let rc = unsafe { libc::setxattr(c.as_ptr(), n.as_ptr(), b"1".as_ptr().cast(), 1, 0) };
    assert_eq!(
        (rc, std::io::Error::last_os_error().raw_os_error()),
        (-1, Some(libc::EROFS)),
        "setxattr"
    );
    assert_eq!(fs::read(r.join("f")).unwrap(), b"data", "reads work");
}

#[test]
fn restored_application_group_boots_cleanly() {
    let mut p = Pool::new();
    let (mdb, mj) = p.mounted_pair("app", ("appdb", "appjournal"), &[]);
    let (db, journal, stop) = (
        mdb.join("app.db"),
        mj.join("journal.log"),
        p.path().join("stop"),
    );
    // The application: journal entry first (append, write returns), then the database row.
    let script = format!(
        r#"
import sqlite3, os
c = sqlite3.connect("{db}", timeout=30, isolation_level=None)
c.execute("PRAGMA journal_mode=WAL")
c.execute("CREATE TABLE IF NOT EXISTS orders(id INTEGER PRIMARY KEY, payload TEXT)")
j = open("{journal}", "a", buffering=1)
i = 0
while not os.path.exists("{stop}"):
    j.write(f"{{i}}\n")
    c.execute("BEGIN IMMEDIATE")
    c.execute("INSERT INTO orders(id, payload) VALUES (?, ?)", (i, "p" * 100))
    c.execute("COMMIT")
    i += 1
print(i)
"#,
        db = db.display(),
        journal = journal.display(),
        stop = stop.display()
    );
    let mut work = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the application to start", || {
        journal.exists() && db.exists()
    });
    for i in 0..5 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        p.ok(&["snapshot", "create", &format!("app{i}"), "--group", "app"]);
    }
    fs::write(&stop, b"").unwrap();
    let mut out = String::new();
    work.stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(work.wait().unwrap().success());
    let total: u64 = out.trim().parse().unwrap();
    // Restore the third snapshot (offline), then "boot" the application on it.
    p.ok(&["umount", "appdb"]);
    p.ok(&["umount", "appjournal"]);
    p.ok(&["snapshot", "restore", "app2"]);
    p.ok(&["mount", "appdb", mdb.to_str().unwrap()]);
    p.ok(&["mount", "appjournal", mj.to_str().unwrap()]);
    let check = Command::new("python3")
        .arg("-c")
        .arg(format!(
            r#"
import sqlite3
c = sqlite3.connect("{db}")
print(c.execute("PRAGMA integrity_check").fetchone()[0])
ids = [r[0] for r in c.execute("SELECT id FROM orders ORDER BY id")]
lines = open("{journal}").read().split("\n")
complete = [int(l) for l in lines[:-1]]
assert complete == list(range(len(complete))), "journal is a prefix"
assert ids == list(range(len(ids))), "database rows are a prefix"
missing = set(ids) - set(complete)
print(len(ids), len(complete), len(missing))
"#,
            db = db.display(),
            journal = journal.display()
        ))
        .output()
        .unwrap();
    let res = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(
        check.status.success(),
        "{res}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut lines = res.lines();
    assert_eq!(lines.next(), Some("ok"), "PRAGMA integrity_check");
    let nums: Vec<u64> = lines
        .next()
        .unwrap()
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect();
    let (rows, journaled, missing) = (nums[0], nums[1], nums[2]);
    assert_eq!(missing, 0, "every database row is in the journal's prefix");
    assert!(
        rows > 0 && rows < total && journaled >= rows,
        "restored a mid-run state: {rows} rows, {journaled} journaled, {total} total"
    );
    // The restored snapshot and the later ones are still there.
    let n = json(&p, &["snapshot", "list", "--group", "app", "--json"])["snapshots"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(n, 6, "5 snapshots and the undo snapshot");
}

#[test]
fn snaps_directory_serves_snapshots_inside_the_live_mount() {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    fs::create_dir(m.join("dir")).unwrap();
    fs::write(m.join("dir/f"), b"old").unwrap();
    p.ok(&["snapshot", "create", "monday", "v"]);
    fs::write(m.join("dir/f"), b"new").unwrap();
    assert!(!m.join(".snaps").exists(), "uss is off by default");
    p.ok(&["volume", "set", "v", "uss", "on"]);
    let names = |d: &std::path::Path| -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(&m.join(".snaps")), vec!["monday"]);
    assert_eq!(fs::read(m.join(".snaps/monday/dir/f")).unwrap(), b"old");
    assert_eq!(fs::read(m.join("dir/f")).unwrap(), b"new");
    assert!(
        !names(&m).contains(&".snaps".to_string()),
        "hidden from the root listing"
    );
    let w = fs::write(m.join(".snaps/monday/dir/f"), b"x");
    assert_eq!(w.unwrap_err().raw_os_error(), Some(libc::EROFS));
    assert_eq!(
        fs::create_dir(m.join(".snaps/monday/d"))
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EROFS)
    );
    assert_eq!(names(&m.join(".snaps/monday/dir")), vec!["f"]);
    p.ok(&["volume", "set", "v", "show-snapshot-directory", "on"]);
    p.ok(&["volume", "set", "v", "snapshot-directory", ".history"]);
    assert!(
        names(&m).contains(&".history".to_string()),
        "{:?}",
        names(&m)
    );
    assert_eq!(fs::read(m.join(".history/monday/dir/f")).unwrap(), b"old");
}
