//! CLI and daemon tests: run the real `tandem` binary against pools in temporary
//! directories, mount volumes, and check exit codes, messages and data.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod common;
use common::*;

#[test]
fn every_error_names_the_object_and_the_way_out() {
    let mut p = Pool::new();
    let m = p.mnt();
    let ms = m.to_str().unwrap();
    p.ok(&["volume", "create", "data"]);
    let e = p.fails(&["volume", "create", "data"], 1);
    assert!(e.contains("'data' already exists"), "{e}");
    let e = p.fails(&["volume", "create", "a/b"], 1);
    assert!(e.contains("invalid name 'a/b'"), "{e}");
    let e = p.fails(&["volume", "create", "x", "--block-size", "3000"], 1);
    assert!(e.contains("power of two"), "{e}");
    for args in [
        &["volume", "info", "ghost"][..],
        &["volume", "delete", "ghost"],
        &["mount", "ghost", ms],
    ] {
        let e = p.fails(args, 1);
        assert!(
            e.contains("'ghost'") && e.contains("tandem volume list"),
            "{e}"
        );
    }
    let e = p.fails(&["mount", "data", "/nonexistent/dir"], 1);
    assert!(e.contains("does not exist") && e.contains("mkdir"), "{e}");
    let file = p.path().join("plainfile");
    fs::write(&file, b"x").unwrap();
    let e = p.fails(&["mount", "data", file.to_str().unwrap()], 1);
    assert!(e.contains("not a directory"), "{e}");
    let e = p.fails(&["mount", "data", "/proc"], 1);
    assert!(e.contains("already a mount point"), "{e}");
    let e = p.fails(&["mount", "data", ms, "-o", "bogus"], 1);
    assert!(e.contains("unknown mount option 'bogus'"), "{e}");
    p.ok(&["mount", "data", ms]);
    let m2 = p.mnt();
    let e = p.fails(&["mount", "data", m2.to_str().unwrap()], 1);
    assert!(
        e.contains("already mounted at") && e.contains("tandem umount data"),
        "{e}"
    );
    let e = p.fails(&["volume", "delete", "data"], 1);
    assert!(
        e.contains("is mounted at") && e.contains("unmount it first"),
        "{e}"
    );
    let e = p.fails(&["volume", "set", "data", "uss", "maybe"], 1);
    assert!(e.contains("expected on or off"), "{e}");
    let e = p.fails(&["volume", "set", "data", "colour", "blue"], 1);
    assert!(
        e.contains("unknown option 'colour'") && e.contains("known options"),
        "{e}"
    );
    let e = p.fails(&["umount", "nothing-here"], 1);
    assert!(e.contains("tandem status"), "{e}");
    // A second daemon on the same pool.
    let e = p.fails(&["daemon"], 1);
    assert!(
        e.contains("already served by a running tandem daemon"),
        "{e}"
    );
    // Usage errors exit 2.
    p.fails(&["volume", "frobnicate"], 2);
    p.fails(&["mount", "data"], 2);
    // Nothing was half-done: the volume is still there, still mounted, still usable.
    fs::write(m.join("f"), b"still fine").unwrap();
    assert!(p.ok(&["volume", "list"]).contains("data"));
    p.ok(&["umount", ms]);
    p.ok(&["volume", "delete", "data"]);
    assert!(!p.ok(&["volume", "list", "--json"]).contains("\"data\""));
}

#[test]
fn data_survives_unmount_and_daemon_restart_and_mounts_are_remembered() {
    let mut p = Pool::new();
    let (a, b) = (p.mnt(), p.mnt());
    p.ok(&["volume", "create", "one"]);
    p.ok(&["volume", "create", "two", "--block-size", "65536"]);
    p.ok(&["mount", "one", a.to_str().unwrap()]);
    p.ok(&["mount", "two", b.to_str().unwrap(), "-o", "allow_other"]);
    // Two volumes at once, independent.
    let big: Vec<u8> = (0..5_000_000u32).map(|i| (i % 249) as u8).collect();
    fs::write(a.join("big"), &big).unwrap();
    fs::create_dir_all(b.join("x/y")).unwrap();
    fs::write(b.join("x/y/z"), b"deep").unwrap();
    assert!(!a.join("x").exists());
    let st = p.ok(&["status"]);
    assert!(st.contains("one") && st.contains("two"), "{st}");
    // Unmount one, stop the daemon (the other stays remembered), start again.
    p.ok(&["umount", "one"]);
    assert!(!is_mounted(&a));
    let pid = p.daemon_pid();
    p.ok(&["shutdown"]);
    assert!(!is_mounted(&b), "shutdown unmounts everything");
    let st = p.ok(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&st).unwrap();
    assert_ne!(
        v["pid"].as_i64().unwrap() as i32,
        pid,
        "a new daemon was started"
    );
    let mounts = v["mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 1, "{st}");
    assert_eq!(mounts[0]["volume"], "two");
    assert!(is_mounted(&b));
    assert_eq!(fs::read(b.join("x/y/z")).unwrap(), b"deep");
    p.ok(&["mount", "one", a.to_str().unwrap()]);
    assert_eq!(fs::read(a.join("big")).unwrap(), big);
    // A plain umount from outside is noticed and forgotten.
    assert!(Command::new("umount").arg(&b).status().unwrap().success());
    wait_until("the daemon to forget the unmounted volume", || {
        !p.ok(&["status"]).contains("two")
    });
}

#[test]
fn kill_9_of_the_daemon_keeps_fsynced_data() {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    let pid = p.daemon_pid();
    let dir = m.clone();
    // A writer that fsyncs every other file, and keeps writing until the daemon dies.
    let writer = std::thread::spawn(move || {
        let mut synced = Vec::new();
        for i in 0u32.. {
            let path = dir.join(format!("f{i}"));
            let data = vec![(i % 251) as u8; 100_000 + i as usize];
            let res = (|| -> std::io::Result<()> {
                let mut f = fs::OpenOptions::new()
                    .create(true)
                    .truncate(true)
                    .write(true)
                    .mode(0o644)
                    .open(&path)?;
                f.write_all(&data)?;
                if i % 2 == 0 {
                    f.sync_all()?;
                }
                Ok(())
            })();
            match res {
                Ok(()) if i % 2 == 0 => synced.push((i, data)),
                Ok(()) => {}
                Err(_) => break,
            }
        }
        synced
    });
    std::thread::sleep(Duration::from_millis(700));
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let synced = writer.join().unwrap();
    assert!(
        synced.len() > 5,
        "the writer fsynced only {} files",
        synced.len()
    );
    // The next command finds a stale socket and a dead mount, starts a new daemon, which
    // mounts the volume again.
    let pid2 = p.daemon_pid();
    assert_ne!(pid, pid2);
    wait_until("the remount", || is_mounted(&m));
    for (i, data) in &synced {
        let back =
            fs::read(m.join(format!("f{i}"))).unwrap_or_else(|e| panic!("fsynced f{i} lost: {e}"));
        assert_eq!(&back, data, "fsynced f{i} differs");
    }
}

#[test]
fn mount_helper_and_plain_umount() {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "h"]);
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("mount/mount.tandem");
    let pool_opt = format!("rw,allow_other,pool={}", p.path().display());
    let st = Command::new(&helper)
        .args(["h", m.to_str().unwrap(), "-o", &pool_opt])
        .env("TANDEM_BIN", BIN)
        .status()
        .unwrap();
    assert!(st.success());
    assert!(is_mounted(&m));
    fs::write(m.join("via-helper"), b"ok").unwrap();
    assert!(Command::new("umount").arg(&m).status().unwrap().success());
    wait_until("the daemon to forget the mount", || {
        !p.ok(&["status"]).contains(m.to_str().unwrap())
    });
    // Through mount(8) itself when the helper can be installed (root, as in CI).
    if unsafe { libc::geteuid() } == 0 && fs::copy(&helper, "/sbin/mount.tandem").is_ok() {
        let path = format!(
            "{}:{}",
            Path::new(BIN).parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let st = Command::new("mount")
            .args(["-t", "tandem", "-o", &pool_opt, "h", m.to_str().unwrap()])
            .env("PATH", path)
            .env("TANDEM_BIN", BIN)
            .status()
            .unwrap();
        assert!(st.success());
        assert_eq!(fs::read(m.join("via-helper")).unwrap(), b"ok");
        assert!(Command::new("umount").arg(&m).status().unwrap().success());
    }
}

#[test]
fn shutdown_closes_the_pool_cleanly() {
    // A daemon that exits with the pool still open leaves redb to repair the whole index on
    // the next start; `tandem shutdown` must let go of every connection and close it.
    let mut pool = Pool::new();
    let m = pool.mnt();
    pool.ok(&["volume", "create", "v"]);
    pool.ok(&["mount", "v", m.to_str().unwrap()]);
    std::fs::write(m.join("f"), b"x").unwrap();
    pool.ok(&["shutdown"]);
    let log = std::fs::read_to_string(pool.path().join("daemon.log")).unwrap();
    assert!(
        !log.contains("still in use at exit"),
        "the daemon exited with the pool open:\n{log}"
    );
    assert!(
        log.contains("fsyncs:"),
        "the engine was never dropped (no final report):\n{log}"
    );
}
