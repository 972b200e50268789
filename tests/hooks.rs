//! Snapshot hooks under hostile or careless conditions, through the `tandem` binary: untrusted
//! files are refused, background processes and timeouts do not hold a snapshot, and hooks
//! see only the documented environment.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;
use common::*;

/// Starts the pool's daemon with a short hook timeout and a variable hooks must not see.
fn start_daemon(p: &Pool, hook_timeout: &str) {
    let o = Command::new(BIN)
        .env("TANDEM_AUTOSTART", "1")
        .env("TANDEM_HOOK_TIMEOUT", hook_timeout)
        .env("TANDEM_TEST_DAEMON_ONLY", "secret")
        .arg("--pool")
        .arg(p.path())
        .arg("status")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(p: &Path, uid: u32) {
    std::os::unix::fs::chown(p, Some(uid), None).unwrap();
}

/// True once the process is gone (or a zombie nobody has reaped yet).
fn gone(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn read_pid(f: &Path) -> i32 {
    wait_until("the hook to record its background pid", || {
        fs::read_to_string(f).is_ok_and(|s| s.trim().parse::<i32>().is_ok())
    });
    fs::read_to_string(f).unwrap().trim().parse().unwrap()
}

#[test]
fn untrusted_hooks_are_refused_by_path() {
    let p = Pool::new();
    start_daemon(&p, "5s");
    p.ok(&["volume", "create", "v"]);
    let marker = p.path().join("ran");
    let h = hook(&p, "pre", "10-mark", &format!("touch {}", marker.display()));
    let dir = h.parent().unwrap().to_path_buf();
    let mut n = 0;
    let mut refused = |p: &Pool, path: &Path, fix: &str, extra: &[&str]| {
        n += 1;
        let name = format!("bad{n}");
        let mut args = vec!["snapshot", "create", name.as_str(), "v"];
        args.extend_from_slice(extra);
        let e = p.fails(&args, 1);
        assert!(
            e.contains("refusing to run pre-snapshot hooks")
                && e.contains(&format!("{} ", path.display()))
                && e.contains(fix)
                && e.contains("nothing was recorded"),
            "{e}"
        );
        assert!(!marker.exists(), "an untrusted hook never runs");
        p.fails(&["snapshot", "info", &name], 1);
    };
    // A hook anyone may rewrite, even with --ignore-hook-errors.
    chmod(&h, 0o777);
    refused(&p, &h, &format!("chmod go-w {}", h.display()), &[]);
    refused(&p, &h, "chmod go-w", &["--ignore-hook-errors"]);
    chmod(&h, 0o775);
    refused(&p, &h, "chmod go-w", &[]);
    chmod(&h, 0o755);
    // A hooks directory anyone may add to.
    chmod(&dir, 0o777);
    refused(&p, &dir, &format!("chmod go-w {}", dir.display()), &[]);
    chmod(&dir, 0o755);
    chmod(&p.path().join("hooks"), 0o757);
    refused(&p, &p.path().join("hooks"), "chmod go-w", &[]);
    chmod(&p.path().join("hooks"), 0o755);
    // A hook owned by another user.
    chown(&h, 65534);
    refused(&p, &h, "owned by uid 65534", &[]);
    chown(&h, 0);
    // A symlink to a hook kept in a directory anyone may write.
    let open_dir = tempfile::tempdir().unwrap();
    chmod(open_dir.path(), 0o777);
    let target = open_dir.path().join("hook");
    fs::write(&target, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
    chmod(&target, 0o755);
    let link = dir.join("20-link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    refused(&p, open_dir.path(), "chmod go-w", &[]);
    fs::remove_file(&link).unwrap();
    let log = fs::read_to_string(p.path().join("daemon.log")).unwrap();
    assert!(
        log.contains("refusing to run pre-snapshot hooks") && log.contains("chmod go-w"),
        "the refusal is logged: {log}"
    );
    // Fixed: the hook runs.
    p.ok(&["snapshot", "create", "good", "v"]);
    assert!(marker.exists());
}

#[test]
fn a_hook_background_process_does_not_hold_the_snapshot() {
    let p = Pool::new();
    start_daemon(&p, "3s");
    p.ok(&["volume", "create", "v"]);
    let pidfile = p.path().join("bg.pid");
    hook(
        &p,
        "pre",
        "10-bg",
        &format!(
            "sleep 30 &\necho $! > {}\necho 'started a helper'",
            pidfile.display()
        ),
    );
    let t = Instant::now();
    p.ok(&["snapshot", "create", "s1", "v"]);
    let took = t.elapsed();
    let pid = read_pid(&pidfile);
    // SAFETY: plain syscall; the helper is ours to stop.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(
        took < Duration::from_millis(1500),
        "create returned when the hook exited, not when its helper closed stdout: {took:?}"
    );
}

#[test]
fn a_timed_out_hook_is_killed_with_its_process_group() {
    let p = Pool::new();
    start_daemon(&p, "1s");
    p.ok(&["volume", "create", "v"]);
    let pidfile = p.path().join("bg.pid");
    hook(
        &p,
        "pre",
        "10-stuck",
        &format!("sleep 30 &\necho $! > {}\nsleep 30", pidfile.display()),
    );
    let t = Instant::now();
    let e = p.fails(&["snapshot", "create", "s1", "v"], 1);
    let took = t.elapsed();
    assert!(
        e.contains("10-stuck") && e.contains("did not finish within"),
        "{e}"
    );
    assert!(took < Duration::from_secs(5), "the timeout holds: {took:?}");
    let pid = read_pid(&pidfile);
    let deadline = Instant::now() + Duration::from_secs(3);
    while !gone(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let alive = !gone(pid);
    if alive {
        // SAFETY: plain syscall; do not leave the helper behind.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert!(!alive, "the hook's background process was killed with it");
}

#[test]
fn hooks_get_a_minimal_environment_with_indexed_volumes() {
    let mut p = Pool::new();
    start_daemon(&p, "5s");
    let (m0, m2) = (p.mnt(), p.mnt());
    for v in ["a-b", "a_b", "my vol"] {
        p.ok(&["volume", "create", v]);
    }
    p.ok(&["group", "create", "g", "a-b", "a_b", "my vol"]);
    p.ok(&["mount", "a-b", m0.to_str().unwrap()]);
    p.ok(&["mount", "my vol", m2.to_str().unwrap()]);
    let dump = |phase: &str| p.path().join(format!("{phase}.env"));
    for phase in ["pre", "post"] {
        hook(
            &p,
            phase,
            "10-env",
            &format!("cat /proc/$$/environ > '{}'", dump(phase).display()),
        );
    }
    p.ok(&["snapshot", "create", "s1", "--group", "g"]);
    let env = |phase: &str| -> BTreeMap<String, String> {
        fs::read(dump(phase))
            .unwrap()
            .split(|&b| b == 0)
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let kv = String::from_utf8_lossy(kv);
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect()
    };
    let home = std::env::var("HOME").unwrap_or_else(|_| "/".into());
    let mut want: BTreeMap<String, String> = [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("HOME", home.as_str()),
        ("LANG", "C.UTF-8"),
        ("TANDEM_POOL", p.path().to_str().unwrap()),
        ("TANDEM_PHASE", "pre"),
        ("TANDEM_SNAPSHOT", "s1"),
        ("TANDEM_GROUP", "g"),
        ("TANDEM_VOLUME_COUNT", "3"),
        ("TANDEM_VOLUMES", "a-b\na_b\nmy vol"),
        (
            "TANDEM_MOUNTPOINTS",
            &format!("{}\n{}", m0.display(), m2.display()),
        ),
        ("TANDEM_VOLUME_0", "a-b"),
        ("TANDEM_VOLUME_1", "a_b"),
        ("TANDEM_VOLUME_2", "my vol"),
        ("TANDEM_MOUNT_0", m0.to_str().unwrap()),
        ("TANDEM_MOUNT_1", ""),
        ("TANDEM_MOUNT_2", m2.to_str().unwrap()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(env("pre"), want, "pre hook environment");
    want.insert("TANDEM_PHASE".into(), "post".into());
    want.insert("TANDEM_STATUS".into(), "ok".into());
    assert_eq!(env("post"), want, "post hook environment");
}

#[test]
fn hooks_start_with_no_signal_blocked_or_ignored() {
    let p = Pool::new();
    start_daemon(&p, "5s");
    p.ok(&["volume", "create", "v"]);
    let dump = p.path().join("sig.txt");
    hook(
        &p,
        "pre",
        "10-sig",
        // exec: the hook's own process reads its own mask (a shell blocks signals while
        // it waits for a child).
        &format!(
            "exec grep -E '^Sig(Blk|Ign)' /proc/self/status > '{}'",
            dump.display()
        ),
    );
    p.ok(&["snapshot", "create", "s1", "v"]);
    let status = fs::read_to_string(&dump).unwrap();
    let mask = |field: &str| -> u64 {
        let line = status
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("no {field} in {status}"));
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    // SIGHUP (1), SIGINT (2) and SIGTERM (15): the daemon's own signals reach a hook.
    let daemons = (1u64 << 0) | (1 << 1) | (1 << 14);
    assert_eq!(
        mask("SigBlk:"),
        0,
        "a hook starts with no signal blocked: {status}"
    );
    assert_eq!(
        mask("SigIgn:") & daemons,
        0,
        "a hook does not ignore SIGHUP/SIGINT/SIGTERM: {status}"
    );
}

/// Wake-ups (voluntary context switches) of the daemon's connection threads so far.
fn conn_thread_wakeups(pid: i32) -> u64 {
    let mut n = 0;
    for t in fs::read_dir(format!("/proc/{pid}/task")).unwrap().flatten() {
        let comm = fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() != "tandem-conn" {
            continue;
        }
        let status = fs::read_to_string(t.path().join("status")).unwrap_or_default();
        n += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    n
}

#[test]
fn a_running_hook_is_waited_for_without_polling() {
    let p = Pool::new();
    start_daemon(&p, "10s");
    p.ok(&["volume", "create", "v"]);
    let pid = p.daemon_pid();
    let started = p.path().join("started");
    // Quiet for two seconds, then more output than a pipe holds: the runner must keep
    // reading while the hook writes, and keep the tail.
    hook(
        &p,
        "pre",
        "10-slow",
        &format!(
            "touch '{}'\nsleep 2\nhead -c 300000 /dev/zero | tr '\\0' x\necho; echo last-line",
            started.display()
        ),
    );
    let create = {
        let path = p.path().to_path_buf();
        std::thread::spawn(move || {
            Command::new(BIN)
                .env("TANDEM_AUTOSTART", "0")
                .arg("--pool")
                .arg(path)
                .args(["snapshot", "create", "s1", "v"])
                .output()
                .unwrap()
        })
    };
    wait_until("the hook to start", || started.exists());
    std::thread::sleep(Duration::from_millis(300));
    let before = conn_thread_wakeups(pid);
    std::thread::sleep(Duration::from_millis(1000));
    let during = conn_thread_wakeups(pid) - before;
    let o = create.join().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A 10 ms loop wakes about 100 times in that second; a wait on events, not at all.
    assert!(
        during < 10,
        "the daemon woke {during} times in one second while a hook slept"
    );
    let log = fs::read_to_string(p.path().join("daemon.log")).unwrap();
    assert!(log.contains("last-line"), "the hook's output tail is kept");
}
