//! The daemon as an operator meets it: who may start it (the autostart rule), readiness and
//! socket activation by the sd_notify / sd_listen_fds protocols, SIGHUP, unmount by name,
//! the mount helper, completions and man pages. Real binary, real mounts.

mod common;
use common::*;

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `tandem --pool P args` with `TANDEM_AUTOSTART` as given (None: unset).
fn tandem_with(p: &Pool, autostart: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.env_remove("TANDEM_AUTOSTART");
    if let Some(v) = autostart {
        c.env("TANDEM_AUTOSTART", v);
    }
    c.arg("--pool").arg(p.path()).args(args).output().unwrap()
}

#[test]
fn no_daemon_is_started_unless_the_rule_allows() {
    let p = Pool::new();
    let sock = p.path().join("tandem.sock");
    let o = tandem_with(&p, Some("0"), &["status"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("systemctl start tandem.socket") && err.contains("--autostart"),
        "{err}"
    );
    assert!(
        !sock.exists(),
        "status started a daemon with TANDEM_AUTOSTART=0"
    );
    let o = tandem_with(&p, Some("maybe"), &["status"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("TANDEM_AUTOSTART=maybe"));
    // The flag wins over the variable.
    let o = tandem_with(&p, Some("0"), &["--autostart", "status"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(sock.exists());
    // A running daemon is used whatever the rule.
    let o = tandem_with(&p, Some("0"), &["status"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Without systemd (this test's machine unless /run/systemd/system exists) the default
    // starts one.
    if !Path::new("/run/systemd/system").exists() {
        p.ok(&["shutdown"]);
        assert!(!sock.exists());
        let o = tandem_with(&p, None, &["status"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

/// Receives sd_notify datagrams until one holds `want` (each as its text); all seen so far.
fn recv_until(sock: &UnixDatagram, want: &str, seen: &mut Vec<String>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no {want} from the daemon ({e}); got {seen:?}"));
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let done = msg.lines().any(|l| l == want);
        seen.push(msg);
        if done {
            return;
        }
    }
}

#[test]
fn the_daemon_tells_the_service_manager_ready_reloading_and_stopping() {
    let mut p = Pool::new();
    let m = p.mnt();
    let notify = p.path().join("notify.sock");
    let sock = UnixDatagram::bind(&notify).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let log = fs::File::create(p.path().join("foreground.log")).unwrap();
    let mut daemon = Command::new(BIN)
        .arg("--pool")
        .arg(p.path())
        .arg("daemon")
        .env("NOTIFY_SOCKET", &notify)
        .stderr(log)
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    recv_until(&sock, "READY=1", &mut seen);
    assert!(
        seen.concat().contains("STATUS=serving pool"),
        "no STATUS= with READY=1: {seen:?}"
    );
    // Ready means served: a command that may not start a daemon finds this one.
    let o = tandem_with(&p, Some("0"), &["status", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["pid"].as_u64(), Some(daemon.id() as u64));
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    // SIGHUP: RELOADING=1, then READY=1 again; the daemon and its mount stay.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGHUP) };
    seen.clear();
    recv_until(&sock, "RELOADING=1", &mut seen);
    recv_until(&sock, "READY=1", &mut seen);
    assert!(seen.concat().contains("(1 mount)"), "{seen:?}");
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "SIGHUP stopped the daemon"
    );
    // SIGTERM: STOPPING=1, and a clean exit.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    seen.clear();
    recv_until(&sock, "STOPPING=1", &mut seen);
    let st = daemon.wait().unwrap();
    assert!(st.success(), "{st}");
    assert!(!is_mounted(&m));
}

#[test]
fn sigterm_stops_a_daemon_whose_pool_directory_was_deleted() {
    let mut p = Pool::new();
    let m = p.mnt();
    let outside = tempfile::tempdir().unwrap();
    let pool = outside.path().join("pool");
    let log = fs::File::create(p.path().join("gone.log")).unwrap();
    let mut daemon = Command::new(BIN)
        .arg("--pool")
        .arg(&pool)
        .arg("daemon")
        .stderr(log)
        .spawn()
        .unwrap();
    let cli = |args: &[&str]| {
        let o = Command::new(BIN)
            .env("TANDEM_AUTOSTART", "0")
            .arg("--pool")
            .arg(&pool)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    wait_until("the daemon's socket", || pool.join("tandem.sock").exists());
    cli(&["volume", "create", "v"]);
    cli(&["mount", "v", m.to_str().unwrap()]);
    write_synced(&m.join("f"), b"data");
    fs::remove_dir_all(&pool).unwrap();
    // SAFETY: plain syscall to our own child.
    unsafe { libc::kill(daemon.id() as i32, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = daemon.try_wait().unwrap() {
            break Some(st);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if status.is_none() {
        let _ = daemon.kill();
        let _ = daemon.wait();
    }
    let log = fs::read_to_string(p.path().join("gone.log")).unwrap_or_default();
    assert!(
        status.is_some(),
        "SIGTERM did not stop the daemon within 20 s; log:\n{log}"
    );
    assert!(!is_mounted(&m), "the mount was left behind; log:\n{log}");
}

#[test]
fn sighup_reloads_and_leaves_mounts_working() {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    write_synced(&m.join("before"), b"kept");
    let pid = p.daemon_pid();
    let mut open = fs::File::open(m.join("before")).unwrap();
    unsafe { libc::kill(pid, libc::SIGHUP) };
    wait_until("the reload in the log", || {
        fs::read_to_string(p.path().join("daemon.log")).is_ok_and(|l| l.contains("reloaded:"))
    });
    assert_eq!(p.daemon_pid(), pid, "SIGHUP restarted the daemon");
    assert!(is_mounted(&m), "SIGHUP unmounted the volume");
    let mut back = String::new();
    open.read_to_string(&mut back).unwrap();
    assert_eq!(back, "kept", "a file open across the reload");
    write_synced(&m.join("after"), b"new");
    assert_eq!(fs::read(m.join("after")).unwrap(), b"new");
    assert!(p.ok(&["status"]).contains(m.to_str().unwrap()));
}

#[test]
fn socket_activation_serves_the_socket_it_is_given() {
    if Command::new("systemd-socket-activate")
        .arg("--help")
        .output()
        .is_err()
    {
        eprintln!("skipped: systemd-socket-activate is not installed");
        return;
    }
    let mut p = Pool::new();
    let m = p.mnt();
    let sock = p.path().join("tandem.sock");
    let log = fs::File::create(p.path().join("activated.log")).unwrap();
    let mut activator = Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&sock)
        .arg(BIN)
        .arg("--pool")
        .arg(p.path())
        .arg("daemon")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_until("the activator's socket", || sock.exists());
    let inode = fs::metadata(&sock).unwrap().ino();
    // No daemon runs yet; the first connection starts it, and it answers on that socket.
    let o = tandem_with(&p, Some("0"), &["status", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["pid"].as_u64(),
        Some(activator.id() as u64),
        "the daemon is not the activated process"
    );
    assert_eq!(
        fs::metadata(&sock).unwrap().ino(),
        inode,
        "the daemon bound a socket of its own"
    );
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    write_synced(&m.join("f"), b"through the passed socket");
    p.ok(&["shutdown"]);
    let st = activator.wait().unwrap();
    assert!(st.success(), "{st}");
    assert!(!is_mounted(&m));
    // The socket stays where the manager made it; the next start replaces the stale one.
    assert!(sock.exists(), "the daemon removed the manager's socket");
    p.ok(&["status"]);
    wait_until("the remembered mount", || is_mounted(&m));
    assert_eq!(fs::read(m.join("f")).unwrap(), b"through the passed socket");
}

#[test]
fn umount_by_name_ignores_the_current_directory() {
    let mut p = Pool::new();
    let (cwd, m) = (p.mnt(), p.mnt());
    // ./wal exists where the CLI runs, and is even a tandem mount.
    let wal_dir = cwd.join("wal");
    fs::create_dir(&wal_dir).unwrap();
    p.ok(&["volume", "create", "wal"]);
    p.ok(&["volume", "create", "other"]);
    p.ok(&["mount", "wal", m.to_str().unwrap()]);
    p.ok(&["mount", "other", wal_dir.to_str().unwrap()]);
    let in_cwd = |args: &[&str]| {
        Command::new(BIN)
            .env("TANDEM_AUTOSTART", "1")
            .arg("--pool")
            .arg(p.path())
            .args(args)
            .current_dir(&cwd)
            .output()
            .unwrap()
    };
    let o = in_cwd(&["umount", "wal"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!is_mounted(&m), "the volume wal stayed mounted");
    assert!(
        is_mounted(&wal_dir),
        "./wal was unmounted instead of the volume"
    );
    // Not mounted any more: the error says how to mean the directory.
    let o = in_cwd(&["umount", "wal"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("tandem umount ./wal"), "{err}");
    assert!(is_mounted(&wal_dir));
    let o = in_cwd(&["umount", "./wal"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!is_mounted(&wal_dir));
}

#[test]
fn the_mount_helper_is_silent_on_success() {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "h"]);
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("mount/mount.tandem");
    let pool_opt = format!(
        "rw,pool={},x-systemd.requires=tandem.service",
        p.path().display()
    );
    let o = Command::new(&helper)
        .args(["h", m.to_str().unwrap(), "-o", &pool_opt])
        .env("TANDEM_BIN", BIN)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(is_mounted(&m));
    assert_eq!(
        (o.stdout.as_slice(), o.stderr.as_slice()),
        (&b""[..], &b""[..]),
        "the helper printed on success"
    );
    p.ok(&["umount", "h"]);
    // -v says what it did; an error still reaches stderr.
    let o = Command::new(&helper)
        .args(["h", m.to_str().unwrap(), "-v", "-o", &pool_opt])
        .env("TANDEM_BIN", BIN)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("mounted 'h'"));
    p.ok(&["umount", "h"]);
    let o = Command::new(&helper)
        .args(["nope", m.to_str().unwrap(), "-o", &pool_opt])
        .env("TANDEM_BIN", BIN)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope"));
}

/// `tandem ARGS` without a pool (completions, man pages).
fn tandem_plain(args: &[&str]) -> std::process::Output {
    let o = Command::new(BIN).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "tandem {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

#[test]
fn completions_are_generated_for_each_shell() {
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef tandem"),
        ("fish", "complete -c tandem"),
    ] {
        let out = String::from_utf8(tandem_plain(&["completions", shell]).stdout).unwrap();
        assert!(out.contains(marker), "{shell}: no {marker:?}");
        for sub in ["snapshot", "umount", "schedule"] {
            assert!(out.contains(sub), "{shell}: {sub} missing");
        }
    }
}

#[test]
fn man_pages_are_generated_and_the_units_verify() {
    let page = String::from_utf8(tandem_plain(&["man"]).stdout).unwrap();
    assert!(page.contains(".TH tandem 8"), "{page}");
    assert!(page.contains("TANDEM_AUTOSTART") && page.contains("SIGHUP"));
    let tmp = tempfile::tempdir().unwrap();
    let man8 = tmp.path().join("man8");
    tandem_plain(&["man", "--dir", man8.to_str().unwrap()]);
    for name in [
        "tandem.8",
        "tandem-volume-create.8",
        "tandem-snapshot-restore.8",
        "tandem-daemon.8",
    ] {
        let text = fs::read_to_string(man8.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(text.contains(".TH"), "{name} is no man page");
    }
    // The shipped units, pointed at this binary, as systemd-analyze sees them; the man page
    // their Documentation= names is found in the pages just written.
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped the unit check: systemd-analyze is not installed");
        return;
    }
    let units = tmp.path().join("units");
    fs::create_dir(&units).unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("mount");
    for unit in ["tandem.service", "tandem.socket"] {
        let text = fs::read_to_string(src.join(unit)).unwrap();
        fs::write(units.join(unit), text.replace("/usr/local/bin/tandem", BIN)).unwrap();
    }
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(units.join("tandem.socket"))
        .arg(units.join("tandem.service"))
        .env("MANPATH", tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.trim().is_empty(),
        "systemd-analyze verify: {err}"
    );
}

#[test]
fn findmnt_finds_tandem_mounts_and_remount_flips_read_only() {
    let mut p = Pool::new();
    let m = p.mnt();
    let ms = m.to_str().unwrap();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", ms]);
    let o = Command::new("findmnt")
        .args([
            "-t",
            "fuse.tandem",
            "-n",
            "-o",
            "TARGET,SOURCE",
            "--mountpoint",
            ms,
        ])
        .output()
        .unwrap();
    let found = String::from_utf8_lossy(&o.stdout);
    assert!(
        found.contains(ms) && found.contains("tandem:v"),
        "findmnt -t fuse.tandem: {found:?}"
    );
    // mount -o remount,ro|rw goes through mount.fuse.tandem when it can be installed
    // (root, as in CI).
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("mount/mount.tandem");
    if unsafe { libc::geteuid() } != 0 || fs::copy(&helper, "/sbin/mount.fuse.tandem").is_err() {
        eprintln!("skipped the remount: cannot install /sbin/mount.fuse.tandem");
        return;
    }
    let remount = |mode: &str| {
        let o = Command::new("mount")
            .args(["-o", &format!("remount,{mode}"), ms])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "remount,{mode}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(
            o.stdout.is_empty() && o.stderr.is_empty(),
            "remount printed"
        );
    };
    remount("ro");
    let e = fs::write(m.join("f"), b"x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    remount("rw");
    write_synced(&m.join("f"), b"x");
    assert_eq!(fs::read(m.join("f")).unwrap(), b"x");
}

#[test]
fn the_log_has_one_info_line_per_volume_and_mount_change() {
    let mut p = Pool::new();
    let m = p.mnt();
    let ms = m.to_str().unwrap();
    p.ok(&["volume", "create", "v\nx", "--block-size", "64K"]);
    p.ok(&["mount", "v\nx", ms, "-o", "ro"]);
    p.ok(&["umount", ms]);
    p.ok(&["volume", "rename", "v\nx", "w"]);
    p.ok(&["volume", "delete", "w"]);
    let log = fs::read_to_string(p.path().join("daemon.log")).unwrap();
    for want in [
        "INFO tandem::daemon: volume 'v\\nx' created (id 1, block size 65536)",
        &format!("INFO tandem::daemon: mounted 'v\\nx' on {ms} (ro)"),
        &format!("INFO tandem::daemon: unmounted 'v\\nx' from {ms}"),
        "INFO tandem::daemon: volume 'v\\nx' renamed to 'w'",
        "INFO tandem::daemon: volume 'w' deleted",
    ] {
        assert_eq!(
            log.lines().filter(|l| l.ends_with(want)).count(),
            1,
            "one line ending {want:?} in the log:\n{log}"
        );
    }
}
