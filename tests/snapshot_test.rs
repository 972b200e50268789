//! `tandem snapshot test`: restore tests on clones of a snapshot, with the ready checks of
//! hooks/ (check-sqlite with the real sqlite3, check-postgresql with a real PostgreSQL 15):
//! they pass on good snapshots and fail on broken ones (a corrupted database; a group whose
//! WAL volume comes from an earlier snapshot than its data volume). The command gets the
//! hook variables keyed by the snapshot's member names, the clone goes unless
//! --keep-clone, and the last result shows in `snapshot info`.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::pg::pg_ok;
use common::{Pool, clones};

fn hook(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("hooks")
        .join(name)
        .display()
        .to_string()
}

fn sqlite(db: &Path, sql: &str) -> String {
    let o = Command::new("sqlite3").arg(db).arg(sql).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn sqlite_check_passes_on_a_good_snapshot_and_fails_on_a_corrupted_one() {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "app"]);
    p.ok(&["mount", "app", m.to_str().unwrap()]);
    fs::create_dir(m.join("db")).unwrap();
    let db = m.join("db/app.db");
    sqlite(
        &db,
        "create table t(a integer primary key, b text);\
         insert into t(b) select hex(randomblob(200)) from generate_series(1,2000);",
    );
    p.ok(&["snapshot", "create", "good", "app"]);

    let out = p.ok(&["snapshot", "test", "good", "--run", &hook("check-sqlite")]);
    assert!(out.contains("/app/db/app.db: ok"), "{out}");
    assert!(out.contains("restore test of 'good': passed"), "{out}");
    assert!(clones(&p).is_empty(), "the clone is removed");
    let info: serde_json::Value =
        serde_json::from_str(&p.ok(&["snapshot", "info", "good", "--json"])).unwrap();
    assert_eq!(info["last_test"]["passed"], true, "{info}");
    assert!(
        p.ok(&["snapshot", "info", "good"])
            .contains("last test:    passed")
    );

    // A page of the live database is overwritten; the next snapshot holds the damage.
    let mut bytes = fs::read(&db).unwrap();
    bytes[3 * 4096 + 100..3 * 4096 + 3100].fill(0xff);
    fs::write(&db, &bytes).unwrap();
    p.ok(&["snapshot", "create", "bad", "app"]);
    let o = p.run(&[
        "snapshot",
        "test",
        "bad",
        "--run",
        &hook("check-sqlite"),
        "--json",
    ]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["passed"], false, "{json}");
    assert!(
        json["output_tail"]
            .as_str()
            .unwrap()
            .contains("1 of 1 databases failed"),
        "{json}"
    );
    assert!(
        clones(&p).is_empty(),
        "the clone of a failed test is removed too"
    );
    let info: serde_json::Value =
        serde_json::from_str(&p.ok(&["snapshot", "info", "bad", "--json"])).unwrap();
    assert_eq!(info["last_test"]["passed"], false, "{info}");
}

#[test]
fn the_command_gets_the_members_by_name_and_keep_clone_keeps_it() {
    let mut p = Pool::new();
    let (d, w) = p.mounted_pair("g", ("data", "wal"), &[]);
    fs::write(d.join("in-data"), b"d").unwrap();
    fs::write(w.join("in-wal"), b"w").unwrap();
    p.ok(&["snapshot", "create", "s", "--group", "g"]);
    let script = r#"echo "phase=$TANDEM_PHASE snap=$TANDEM_SNAPSHOT group=$TANDEM_GROUP n=$TANDEM_VOLUME_COUNT"
i=0; while [ $i -lt $TANDEM_VOLUME_COUNT ]; do eval "echo vol=\$TANDEM_VOLUME_$i; ls \$TANDEM_MOUNT_$i"; i=$((i+1)); done
touch "$TANDEM_MOUNT_0/written-by-test""#;
    let out = p.ok(&[
        "snapshot",
        "test",
        "s",
        "--run",
        script,
        "--keep-clone",
        "--json",
    ]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tail = json["output_tail"].as_str().unwrap();
    assert!(tail.contains("phase=test snap=s group=g n=2"), "{tail}");
    assert!(
        tail.contains("vol=data\nin-data\nvol=wal\nin-wal"),
        "{tail}"
    );
    // Kept: mounted (allow_other), writable, and the live volume untouched.
    let kept = json["kept"]["volumes"].as_array().unwrap();
    assert_eq!(kept.len(), 2, "{json}");
    let m0 = Path::new(kept[0]["mountpoint"].as_str().unwrap());
    assert!(m0.join("written-by-test").exists());
    assert!(!d.join("written-by-test").exists());
    let mode = fs::metadata(m0.parent().unwrap())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o755,
        0o755,
        "others may enter the clone's directory"
    );
    assert_eq!(clones(&p).len(), 2);
    // A failing command fails the test (exit 1, one line) and its clone goes.
    let err = p.fails(&["snapshot", "test", "s", "--run", "echo nope; exit 3"], 1);
    assert!(err.contains("the command exited with 3"), "{err}");
    assert_eq!(clones(&p).len(), 2, "only the kept clone is left");
    let err = p.fails(&["snapshot", "test", "nosuch", "--run", "true"], 1);
    assert!(err.contains("no snapshot named 'nosuch'"), "{err}");
    // The kept clone is the user's to remove: here, its mounts and their directory.
    for k in kept {
        p.ok(&["umount", k["volume"].as_str().unwrap()]);
    }
    fs::remove_dir_all(m0.parent().unwrap()).unwrap();
}

// ---- PostgreSQL ----

/// Whether a process runs `sleep <secs>` (the test's own command, by its unique argument).
fn sleeping(secs: &str) -> bool {
    fs::read_dir("/proc").unwrap().flatten().any(|e| {
        fs::read(e.path().join("cmdline")).is_ok_and(|c| c == format!("sleep\0{secs}\0").as_bytes())
    })
}

#[test]
fn an_interrupted_test_still_removes_its_clone() {
    let p = Pool::new();
    p.ok(&["volume", "create", "app"]);
    p.ok(&["snapshot", "create", "s", "app"]);
    for (signal, secs) in [(libc::SIGINT, "987"), (libc::SIGTERM, "986")] {
        let mut cli = Command::new(common::BIN)
            .arg("--pool")
            .arg(p.path())
            .args(["snapshot", "test", "s", "--run", &format!("sleep {secs}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        common::wait_until("the test's command to run", || sleeping(secs));
        assert_eq!(clones(&p).len(), 1, "the clone exists while the test runs");
        // Ctrl-C (or a kill) of the CLI: the daemon calls the test off and cleans up.
        unsafe { libc::kill(cli.id() as i32, signal) };
        let _ = cli.wait();
        common::wait_until("the clone to go", || clones(&p).is_empty());
        common::wait_until("the command to be killed", || !sleeping(secs));
        let st: serde_json::Value = serde_json::from_str(&p.ok(&["status", "--json"])).unwrap();
        let mounts = st["mounts"].to_string();
        assert!(!mounts.contains("tandem-test-"), "{mounts}");
    }
    // Nothing was recorded: the test did not run to its end.
    let info: serde_json::Value =
        serde_json::from_str(&p.ok(&["snapshot", "info", "s", "--json"])).unwrap();
    assert!(info["last_test"].is_null(), "{info}");
    let log = fs::read_to_string(p.path().join("daemon.log")).unwrap();
    assert!(
        log.contains("snapshot test of 's' interrupted") && log.contains("its client went away"),
        "{log}"
    );
}

#[test]
fn postgresql_check_boots_a_group_snapshot_and_refuses_mixed_data_and_wal() {
    if !common::pg::available() {
        return;
    }
    let mut p = Pool::new();
    let (md, mw) = p.mounted_pair("pg", ("pgdata", "pgwal"), &["-o", "allow_other"]);
    for d in [&md, &mw] {
        let o = Command::new("chown")
            .args(["postgres:postgres", d.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success());
    }
    let sock = tempfile::tempdir().unwrap();
    fs::set_permissions(sock.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let s = sock.path().to_str().unwrap();
    let data = md.join("pg");
    let d = data.to_str().unwrap();
    let wal = mw.join("wal");
    pg_ok(
        "initdb",
        &[
            "-D",
            d,
            "--waldir",
            wal.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ],
    );
    let port = (20000 + (std::process::id() + 7) % 20000).to_string();
    let opts = format!("-c listen_addresses= -k {s} -p {port}");
    let log = sock.path().join("server.log");
    pg_ok(
        "pg_ctl",
        &[
            "-D",
            d,
            "-w",
            "-l",
            log.to_str().unwrap(),
            "-o",
            &opts,
            "start",
        ],
    );
    let conn = ["-h", s, "-p", port.as_str(), "-d", "postgres", "-X", "-q"];
    let sql = |q: &str| {
        let mut a = conn.to_vec();
        a.extend(["-v", "ON_ERROR_STOP=1", "-c", q]);
        pg_ok("psql", &a)
    };
    pg_ok(
        "pgbench",
        &["-h", s, "-p", &port, "-i", "-s", "1", "-q", "postgres"],
    );
    // s1 while the server runs (crash-consistent), then more work and a checkpoint, s2.
    p.ok(&["snapshot", "create", "s1", "--group", "pg"]);
    pg_ok(
        "pgbench",
        &["-h", s, "-p", &port, "-t", "300", "-n", "postgres"],
    );
    sql("CHECKPOINT");
    pg_ok(
        "pgbench",
        &["-h", s, "-p", &port, "-t", "100", "-n", "postgres"],
    );
    p.ok(&["snapshot", "create", "s2", "--group", "pg"]);

    let check = hook("check-postgresql");
    let o = p.run(&["snapshot", "test", "s2", "--run", &check]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("restore test of 's2': passed"), "{out}");
    assert!(out.contains("pg_amcheck --heapallindexed: clean"), "{out}");
    println!("{}", out.lines().last().unwrap_or(""));
    assert!(clones(&p).is_empty(), "the clone is removed");
    // The live server never noticed.
    sql("select 1");

    // Data of s2 with the WAL of s1: a group snapshot no real instant ever had.
    p.ok(&["snapshot", "clone", "c1", "s1"]);
    p.ok(&["snapshot", "clone", "c2", "s2"]);
    p.ok(&["group", "remove", "c2", "c2-pgdata"]);
    p.ok(&["group", "remove", "c1", "c1-pgwal"]);
    p.ok(&["group", "create", "mixed", "c2-pgdata", "c1-pgwal"]);
    p.ok(&["snapshot", "create", "mixed-snap", "--group", "mixed"]);
    let o = p.run(&["snapshot", "test", "mixed-snap", "--run", &check]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("the server did not start"), "{out}");
    assert!(out.contains("checkpoint record"), "{out}");
    pg_ok("pg_ctl", &["-D", d, "-m", "fast", "-w", "stop"]);
}
