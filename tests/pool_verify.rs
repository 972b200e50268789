//! `tandem pool verify` re-reads every chunk and names each damaged file by volume and path,
//! telling the live file from versions only snapshots keep; it exits 1 when anything is wrong.
//! It shows progress on stderr, and Ctrl-C, a killed CLI or a shutdown stop the scrub.

mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{BIN, Pool, bytes, damage, wait_until, write_synced};

#[test]
fn damaged_files_are_named_by_volume_and_path() {
    let mut p = Pool::new();
    let mnt = p.mnt();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", mnt.to_str().unwrap()]);
    fs::create_dir(mnt.join("dir")).unwrap();
    let a = bytes("a", 300_000);
    let old_b = bytes("old b", 200_000);
    write_synced(&mnt.join("a"), &a);
    write_synced(&mnt.join("dir/b"), &old_b);
    write_synced(&mnt.join("c"), &bytes("c", 100_000));
    p.ok(&["snapshot", "create", "s1", "v"]);
    write_synced(&mnt.join("dir/b"), &bytes("new b", 200_000));
    p.ok(&["snapshot", "create", "s2", "v"]);

    let out = p.ok(&["pool", "verify"]);
    assert!(out.contains("verified"), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&p.ok(&["pool", "verify", "--json"])).unwrap();
    assert!(json["damaged"].as_array().unwrap().is_empty(), "{json}");
    assert!(json["chunks"].as_u64().unwrap() > 0);

    damage(&p, &a);
    damage(&p, &old_b);
    let o = p.run(&["pool", "verify"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("2 damaged files"), "{err}");
    assert!(out.contains("damaged: v:/a (the live file)"), "{out}");
    assert!(
        out.contains("damaged: v:/dir/b (only versions kept for snapshots"),
        "{out}"
    );
    assert!(!out.contains("v:/c"), "{out}");
    let o = p.run(&["pool", "verify", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(json["damaged"].as_array().unwrap().len(), 2, "{json}");
    assert_eq!(json["bad_chunks"].as_array().unwrap().len(), 2, "{json}");
}

/// `tandem --pool P args` with `env` set.
fn tandem(p: &Pool, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.env("TANDEM_AUTOSTART", "1")
        .arg("--pool")
        .arg(p.path())
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// A pool whose daemon pauses `delay_ms` per chunk while verifying, with `chunks` chunks
/// (4 KiB blocks of one file that does not deduplicate).
fn slow_pool(delay_ms: &str, chunks: usize) -> Pool {
    let mut p = Pool::new();
    let mnt = p.mnt();
    let env = [("TANDEM_TEST_VERIFY_CHUNK_DELAY_MS", delay_ms)];
    let o = tandem(&p, &env, &["volume", "create", "v", "--block-size", "4096"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    p.ok(&["mount", "v", mnt.to_str().unwrap()]);
    write_synced(&mnt.join("f"), &bytes("f", chunks * 4096));
    p.ok(&["umount", "v"]);
    p
}

/// A `tandem pool verify` running in the background, its stderr read line by line.
struct Verify {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Vec<String>,
}

impl Verify {
    fn start(p: &Pool, progress_ms: &str) -> Verify {
        let mut child = tandem(
            p,
            &[("TANDEM_VERIFY_PROGRESS_MS", progress_ms)],
            &["pool", "verify"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let (tx, lines) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines() {
                let Ok(l) = l else { return };
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Verify {
            child,
            lines,
            stderr: Vec::new(),
        }
    }

    /// Waits for a progress line (the scrub runs).
    fn running(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(l) = self.lines.recv_timeout(Duration::from_millis(50)) {
                let progress = l.starts_with("verifying: ");
                self.stderr.push(l);
                if progress {
                    return;
                }
            }
        }
        panic!("no progress from pool verify: {:?}", self.stderr);
    }

    fn signal(&self, sig: i32) {
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// Waits (at most 10 s) for the CLI to exit; its status and all of its stderr.
    fn end(mut self) -> (ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "pool verify did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.stderr.push(l);
        }
        (status, self.stderr.join("\n"))
    }
}

/// How many times the daemon logged that a verify stopped because its client went away.
fn abandoned(p: &Pool) -> usize {
    fs::read_to_string(p.path().join("daemon.log"))
        .unwrap()
        .matches("its client went away")
        .count()
}

#[test]
fn progress_goes_to_stderr_and_json_stays_one_document() {
    let p = slow_pool("2", 256);
    let o = tandem(
        &p,
        &[("TANDEM_VERIFY_PROGRESS_MS", "50")],
        &["pool", "verify", "--json"],
    )
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let chunks = json["chunks"].as_u64().unwrap();
    assert!(chunks >= 256, "{json}");
    let progress: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("verifying: "))
        .collect();
    assert!(progress.len() >= 2, "{err}");
    for l in &progress {
        assert!(l.contains(&format!(" of {chunks} chunks, ")), "{l}");
        assert!(l.contains("%)"), "{l}");
        assert!(l.ends_with("/s") || l.contains("extents checked"), "{l}");
    }
    // A short scrub off a terminal at the default interval says nothing on stderr.
    let o = p.run(&["pool", "verify"]);
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stderr), "");
}

#[test]
fn ctrl_c_or_a_killed_cli_stops_the_scrub_in_the_daemon() {
    // 50 ms per chunk: a whole scrub takes over 12 s.
    let p = slow_pool("50", 256);
    let mut a = Verify::start(&p, "50");
    a.running();
    let err = p.fails(&["pool", "verify"], 1);
    assert!(err.contains("a pool verify is already running"), "{err}");

    a.signal(libc::SIGINT);
    let (status, err) = a.end();
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(err.contains("pool verify interrupted after "), "{err}");
    assert!(err.contains(" of 256 chunks"), "{err}");
    assert!(err.contains("the daemon stopped it"), "{err}");
    assert_eq!(abandoned(&p), 1);

    // The scrub stopped: the next one is not refused; killing its CLI stops it promptly.
    let mut b = Verify::start(&p, "50");
    b.running();
    b.signal(libc::SIGKILL);
    let killed = Instant::now();
    let _ = b.end();
    wait_until("the daemon to stop the scrub", || abandoned(&p) == 2);
    assert!(killed.elapsed() < Duration::from_secs(3));
    let mut c = Verify::start(&p, "50");
    c.running();
    c.signal(libc::SIGINT);
    assert_eq!(c.end().0.code(), Some(130));
}

#[test]
fn shutdown_stops_a_running_scrub() {
    let p = slow_pool("50", 256);
    let pid = p.daemon_pid();
    let mut a = Verify::start(&p, "50");
    a.running();
    let asked = Instant::now();
    p.ok(&["shutdown"]);
    wait_until("the daemon to exit", || unsafe { libc::kill(pid, 0) } != 0);
    assert!(asked.elapsed() < Duration::from_secs(8));
    let (status, err) = a.end();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("pool verify interrupted after ")
            && err.contains("the daemon is shutting down"),
        "{err}"
    );
    // The scrub let go of the pool, so the daemon closed it cleanly.
    let log = fs::read_to_string(p.path().join("daemon.log")).unwrap();
    assert!(!log.contains("still in use at exit"), "{log}");
}
