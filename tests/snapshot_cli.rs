//! Groups, snapshots, limits, hooks and activation, end to end through the `tandem` binary
//! and real mounts.

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

mod common;
use common::*;

#[test]
fn groups_snapshots_activation_and_delete() {
    let mut p = Pool::new();
    let (ma, mb) = (p.mnt(), p.mnt());
    for v in ["a", "b", "c"] {
        p.ok(&["volume", "create", v]);
    }
    p.ok(&["group", "create", "g", "a"]);
    p.ok(&["group", "add", "g", "b"]);
    let e = p.fails(&["group", "create", "g2", "a"], 1);
    assert!(e.contains("already belongs to group 'g'"), "{e}");
    let e = p.fails(&["snapshot", "create", "s0", "a"], 1);
    assert!(
        e.contains("belongs to group 'g'") && e.contains("--group g"),
        "{e}"
    );
    let e = p.fails(&["snapshot", "create", "s0", "--group", "nope"], 1);
    assert!(e.contains("no group named 'nope'"), "{e}");
    p.ok(&["mount", "a", ma.to_str().unwrap()]);
    p.ok(&["mount", "b", mb.to_str().unwrap()]);
    fs::write(ma.join("data"), b"version 1").unwrap();
    fs::write(mb.join("wal"), b"wal 1").unwrap();
    let out = p.ok(&[
        "snapshot",
        "create",
        "s1",
        "--group",
        "g",
        "--description",
        "before upgrade",
    ]);
    assert!(
        out.contains("writes paused") && out.contains("group g"),
        "{out}"
    );
    let e = p.fails(&["snapshot", "create", "s1", "--group", "g"], 1);
    assert!(e.contains("'s1' already exists"), "{e}");
    // An ungrouped volume on its own, and a timestamped name.
    p.ok(&["snapshot", "create", "solo", "c"]);
    let ts = json(
        &p,
        &[
            "snapshot",
            "create",
            "daily",
            "--group",
            "g",
            "--timestamp",
            "--json",
        ],
    );
    assert!(
        ts["snapshot"]["name"]
            .as_str()
            .unwrap()
            .starts_with("daily_GMT-"),
        "{ts}"
    );
    p.ok(&[
        "snapshot",
        "delete",
        ts["snapshot"]["name"].as_str().unwrap(),
    ]);
    // Later changes do not touch the snapshot.
    fs::write(ma.join("data"), b"version 2").unwrap();
    fs::remove_file(mb.join("wal")).unwrap();
    let info = json(&p, &["snapshot", "info", "s1", "--json"]);
    assert_eq!(info["group"], "g");
    assert_eq!(info["members"].as_array().unwrap().len(), 2);
    assert_eq!(info["description"], "before upgrade");
    assert!(info["pause_us"].as_u64().unwrap() > 0);
    assert!(
        info["exclusive_bytes"].as_u64().unwrap() > 0,
        "s1 alone holds 'version 1': {info}"
    );
    let list = json(&p, &["snapshot", "list", "--group", "g", "--json"]);
    assert_eq!(list["snapshots"].as_array().unwrap().len(), 1);
    let list = json(&p, &["snapshot", "list", "--volume", "c", "--json"]);
    assert_eq!(list["snapshots"].as_array().unwrap().len(), 1);
    // Activate: every member read-only, old contents, writes refused.
    let out = p.ok(&["snapshot", "activate", "s1"]);
    let snap_a = p.path().join("run/snaps/s1/a");
    let snap_b = p.path().join("run/snaps/s1/b");
    assert!(out.contains(snap_a.to_str().unwrap()), "{out}");
    assert_eq!(fs::read(snap_a.join("data")).unwrap(), b"version 1");
    assert_eq!(fs::read(snap_b.join("wal")).unwrap(), b"wal 1");
    let w = fs::write(snap_a.join("data"), b"x");
    assert_eq!(w.unwrap_err().raw_os_error(), Some(libc::EROFS));
    assert_eq!(
        fs::create_dir(snap_a.join("d")).unwrap_err().raw_os_error(),
        Some(libc::EROFS)
    );
    assert!(p.ok(&["snapshot", "status", "s1"]).contains("activated"));
    // A busy snapshot is reported, not yanked away.
    let mut held = fs::File::open(snap_a.join("data")).unwrap();
    let e = p.fails(&["snapshot", "deactivate", "s1"], 1);
    assert!(
        e.contains("busy") && e.contains("close it and retry"),
        "{e}"
    );
    let mut s = String::new();
    held.read_to_string(&mut s).unwrap();
    drop(held);
    p.ok(&["snapshot", "deactivate", "s1"]);
    assert!(!is_mounted(&snap_a));
    // Activation survives a daemon restart.
    p.ok(&["snapshot", "activate", "s1"]);
    p.ok(&["shutdown"]);
    p.ok(&["status"]);
    wait_until("the snapshot mount to come back", || is_mounted(&snap_a));
    assert_eq!(fs::read(snap_a.join("data")).unwrap(), b"version 1");
    // Group delete refuses while snapshots exist; delete of an activated snapshot deactivates it.
    let e = p.fails(&["group", "delete", "g"], 1);
    assert!(e.contains("--delete-snapshots"), "{e}");
    let out = p.ok(&["snapshot", "delete", "s1"]);
    assert!(out.contains("deleted snapshot 's1'"), "{out}");
    assert!(!is_mounted(&snap_a));
    let out = p.ok(&["group", "delete", "g", "--delete-snapshots"]);
    assert!(out.contains("deleted group 'g'"), "{out}");
    let e = p.fails(&["volume", "delete", "c"], 1);
    assert!(e.contains("snapshot") && e.contains("--volume c"), "{e}");
    p.ok(&["snapshot", "delete", "--volume", "c"]);
    p.ok(&["volume", "delete", "c"]);
    assert_eq!(
        json(&p, &["snapshot", "list", "--json"])["snapshots"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let _ = &mb;
}

#[test]
fn limits_and_config() {
    let p = Pool::new();
    p.ok(&["volume", "create", "v"]);
    let cfg = json(&p, &["snapshot", "config", "--json"]);
    let sys = &cfg["system"];
    assert_eq!(sys["snap-max-hard-limit"], 256, "{sys}");
    p.ok(&["snapshot", "config", "--snap-max-hard-limit", "10"]);
    p.ok(&[
        "snapshot",
        "config",
        "v",
        "--snap-max-hard-limit",
        "3",
        "--snap-max-soft-limit",
        "50",
    ]);
    let hard = |p: &Pool| -> String {
        let c = json(p, &["snapshot", "config", "v", "--json"]);
        c["volumes"][0]["options"]["snap-max-hard-limit"]["value"].to_string()
    };
    assert_eq!(hard(&p), "3");
    let e = p.fails(
        &["snapshot", "config", "v", "--auto-delete", "sometimes"],
        1,
    );
    assert!(e.contains("on or off"), "{e}");
    p.ok(&["snapshot", "create", "s1", "v"]);
    let o = p.run(&["snapshot", "create", "s2", "v"]);
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("soft limit"),
        "soft limit warns"
    );
    p.ok(&["snapshot", "create", "s3", "v"]);
    let e = p.fails(&["snapshot", "create", "s4", "v"], 1);
    assert!(
        e.contains("hard limit (snap-max-hard-limit 3)") && e.contains("tandem snapshot delete"),
        "{e}"
    );
    // The effective limit is the lower of system and volume.
    p.ok(&["snapshot", "config", "--snap-max-hard-limit", "2"]);
    assert_eq!(hard(&p), "2");
    p.ok(&["snapshot", "config", "--snap-max-hard-limit", "10"]);
    // With auto-delete the oldest goes to make room.
    p.ok(&["snapshot", "config", "v", "--auto-delete", "on"]);
    let out = p.ok(&["snapshot", "create", "s4", "v"]);
    assert!(out.contains("auto-deleted snapshot 's1'"), "{out}");
    let names: Vec<String> = json(&p, &["snapshot", "list", "--json"])["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !names.contains(&"s1".to_string()) && names.contains(&"s4".to_string()),
        "{names:?}"
    );
    assert!(names.len() <= 3);
}

#[test]
fn auto_delete_runs_after_the_commit_and_spares_activated_snapshots() {
    let p = Pool::new();
    p.ok(&["volume", "create", "v"]);
    p.ok(&[
        "snapshot",
        "config",
        "v",
        "--snap-max-hard-limit",
        "3",
        "--snap-max-soft-limit",
        "100",
    ]);
    for s in ["s1", "s2", "s3"] {
        p.ok(&["snapshot", "create", s, "v"]);
    }
    p.ok(&["snapshot", "config", "v", "--auto-delete", "on"]);
    // A failed create deletes nothing.
    hook(&p, "pre", "10-fails", "echo 'not now' >&2; exit 1");
    let e = p.fails(&["snapshot", "create", "s4", "v"], 1);
    assert!(e.contains("nothing was recorded"), "{e}");
    assert_eq!(
        snapshot_names(&p),
        ["s1", "s2", "s3"],
        "nothing was deleted"
    );
    fs::remove_file(p.path().join("hooks/pre-snapshot.d/10-fails")).unwrap();
    // The oldest is activated: it stays, the next oldest go.
    p.ok(&["snapshot", "activate", "s1"]);
    let out = json(&p, &["snapshot", "create", "s4", "v", "--json"]);
    let deleted: Vec<String> = serde_json::from_value(out["auto_deleted"].clone()).unwrap();
    assert!(
        !deleted.contains(&"s1".to_string()) && deleted.contains(&"s2".to_string()),
        "{out}"
    );
    let names = snapshot_names(&p);
    assert!(
        names.contains(&"s1".to_string()) && names.contains(&"s4".to_string()) && names.len() <= 3,
        "{names:?}"
    );
    assert!(p.ok(&["snapshot", "status", "s1"]).contains("activated"));
    assert!(is_mounted(&p.path().join("run/snaps/s1/v")));
    let log = fs::read_to_string(p.path().join("daemon.log")).unwrap();
    assert!(
        log.contains("auto-delete: deleted snapshot 's2' of volume 'v'"),
        "every automatic delete is logged: {log}"
    );
    // Nothing may go: refused before anything happens.
    for s in names.iter().filter(|s| *s != "s1") {
        p.ok(&["snapshot", "activate", s]);
    }
    p.ok(&["snapshot", "config", "v", "--snap-max-hard-limit", "2"]);
    let before = snapshot_names(&p);
    let e = p.fails(&["snapshot", "create", "s5", "v"], 1);
    assert!(
        e.contains("hard limit") && e.contains("activated") && e.contains("s1"),
        "{e}"
    );
    assert_eq!(snapshot_names(&p), before);
    p.ok(&["snapshot", "deactivate", "s1"]);
    p.ok(&["snapshot", "create", "s5", "v"]);
    assert!(!snapshot_names(&p).contains(&"s1".to_string()));
}

#[test]
fn hooks_run_in_order_and_a_failing_pre_hook_aborts() {
    let p = Pool::new();
    p.ok(&["volume", "create", "x"]);
    p.ok(&["volume", "create", "y"]);
    p.ok(&["group", "create", "g", "x", "y"]);
    let log = p.path().join("hook.log");
    let l = log.display();
    hook(
        &p,
        "pre",
        "10-first",
        &format!(
            "echo \"pre1 $TANDEM_SNAPSHOT $TANDEM_GROUP $TANDEM_VOLUME_COUNT $TANDEM_VOLUME_0 $TANDEM_VOLUME_1\" >> {l}"
        ),
    );
    hook(&p, "pre", "20-second", &format!("echo pre2 >> {l}"));
    hook(
        &p,
        "post",
        "10-post",
        &format!("echo \"post $TANDEM_STATUS\" >> {l}"),
    );
    p.ok(&["snapshot", "create", "ok1", "--group", "g"]);
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "pre1 ok1 g 2 x y\npre2\npost ok\n"
    );
    fs::remove_file(&log).unwrap();
    hook(
        &p,
        "pre",
        "15-fails",
        "echo 'database not ready' >&2; exit 3",
    );
    let e = p.fails(&["snapshot", "create", "bad", "--group", "g"], 1);
    assert!(
        e.contains("15-fails")
            && e.contains("database not ready")
            && e.contains("--ignore-hook-errors"),
        "{e}"
    );
    let ran = fs::read_to_string(&log).unwrap();
    assert!(
        ran.starts_with("pre1 bad") && !ran.contains("pre2") && ran.contains("post failed"),
        "{ran}"
    );
    assert!(
        p.fails(&["snapshot", "info", "bad"], 1)
            .contains("no snapshot named 'bad'"),
        "nothing recorded"
    );
    p.ok(&[
        "snapshot",
        "create",
        "forced",
        "--group",
        "g",
        "--ignore-hook-errors",
    ]);
    fs::remove_file(&log).unwrap();
    p.ok(&[
        "snapshot",
        "create",
        "quiet",
        "--group",
        "g",
        "--skip-hooks",
    ]);
    assert!(!log.exists(), "--skip-hooks runs no hook");
}

#[test]
fn sqlite_hook_gives_checkpointed_snapshots_under_load() {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "db"]);
    p.ok(&["mount", "db", m.to_str().unwrap()]);
    let db = m.join("app.db");
    let hook_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks/sqlite");
    for (phase, name) in [("pre", "10-sqlite"), ("post", "90-sqlite")] {
        let dir = p.path().join("hooks").join(format!("{phase}-snapshot.d"));
        fs::create_dir_all(&dir).unwrap();
        for d in [dir.parent().unwrap(), dir.as_path()] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::os::unix::fs::symlink(&hook_src, dir.join(name)).unwrap();
    }
    fs::write(
        p.path().join("hooks/hooks.conf"),
        format!("SQLITE_DBS=\"{}\"\n", db.display()),
    )
    .unwrap();
    // A workload: WAL mode, a transaction per row, until told to stop.
    let stop = p.path().join("stop");
    let script = format!(
        r#"
import sqlite3, os, time
c = sqlite3.connect("{db}", timeout=30, isolation_level=None)
c.execute("PRAGMA journal_mode=WAL")
c.execute("CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, v TEXT)")
n = 0
while not os.path.exists("{stop}"):
    c.execute("BEGIN IMMEDIATE"); c.execute("INSERT INTO t(v) VALUES (?)", ("x" * 200,)); c.execute("COMMIT"); n += 1
print(n)
"#,
        db = db.display(),
        stop = stop.display()
    );
    let mut work = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the workload to start", || db.exists());
    std::thread::sleep(std::time::Duration::from_millis(300));
    for i in 0..3 {
        p.ok(&["snapshot", "create", &format!("s{i}"), "db"]);
        std::thread::sleep(std::time::Duration::from_millis(150));
    }
    fs::write(&stop, b"").unwrap();
    let mut out = String::new();
    work.stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(work.wait().unwrap().success());
    let rows: u64 = out.trim().parse().unwrap();
    assert!(
        rows > 10,
        "the workload made progress after the snapshots (lock released): {rows}"
    );
    for i in 0..3 {
        let name = format!("s{i}");
        p.ok(&["snapshot", "activate", &name]);
        let snap_db = p.path().join("run/snaps").join(&name).join("db/app.db");
        let wal = snap_db.with_extension("db-wal");
        // Check copies (the snapshot is read-only): the database file alone, and with its WAL.
        let count = |with_wal: bool| -> String {
            let dir = tempfile::tempdir().unwrap();
            let copy = dir.path().join("c.db");
            fs::copy(&snap_db, &copy).unwrap();
            if with_wal && wal.exists() {
                fs::copy(&wal, copy.with_extension("db-wal")).unwrap();
            }
            let check = Command::new("python3")
                .arg("-c")
                .arg(format!(
                    "import sqlite3; c=sqlite3.connect('{}'); print(c.execute('PRAGMA integrity_check').fetchone()[0], c.execute('SELECT count(*) FROM t').fetchone()[0])",
                    copy.display()
                ))
                .output()
                .unwrap();
            format!(
                "{} {}",
                String::from_utf8_lossy(&check.stdout).trim(),
                String::from_utf8_lossy(&check.stderr).trim()
            )
        };
        let alone = count(false);
        assert!(alone.starts_with("ok "), "integrity of {name}: {alone}");
        assert_eq!(
            alone,
            count(true),
            "{name}: the hook checkpointed every committed row into the database file"
        );
        p.ok(&["snapshot", "deactivate", &name]);
    }
}
