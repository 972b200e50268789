//! A real PostgreSQL server on a group of two volumes (data directory on one, WAL on the
//! other), under pgbench, snapshotted with the PostgreSQL hook, restored, booted again.
//!
//! What must hold: the restored group boots (crash recovery from a crash-consistent cut of
//! data and WAL together), and pgbench's ledger agrees with itself: every transaction adds
//! the same delta to one account, its teller and its branch and logs it in the history, so
//! the four sums are equal in any consistent state. The hook's CHECKPOINT must have run.
//!
//! Needs PostgreSQL 15 (/usr/lib/postgresql/15/bin) and the `postgres` user; without them the
//! test is skipped, unless CI is set (then it fails: .ci/run installs them).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::Pool;
use common::pg::{PG_BIN, available, pg, pg_ok};

struct Server {
    data: PathBuf,
    sock: PathBuf,
    port: String,
    /// The postmaster, a child of the test (so it is reaped: a stale lock file naming a
    /// zombie would look like a running server).
    child: Option<std::process::Child>,
}

fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let o = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

impl Server {
    fn start(&mut self) {
        use std::os::unix::process::CommandExt;
        let (uid, gid) = postgres_ids();
        let log = fs::File::create(self.sock.join("server.log")).unwrap();
        let child = Command::new(Path::new(PG_BIN).join("postgres"))
            .args(["-D", self.data.to_str().unwrap()])
            .args(["-k", self.sock.to_str().unwrap(), "-p", &self.port])
            .args(["-c", "listen_addresses=", "-c", "fsync=on"])
            .uid(uid)
            .gid(gid)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ready = pg(
                "pg_isready",
                &["-h", self.sock.to_str().unwrap(), "-p", &self.port],
            );
            if ready.status.success() {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "postgres did not start ({exited:?}):\n{}",
                fs::read_to_string(self.sock.join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server with `signal` (SIGINT: fast shutdown) and reaps it.
    fn signal_stop(&mut self, signal: i32) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(child.id() as i32, signal) };
        child.wait().ok()
    }

    fn stop(&mut self) {
        let st = self.signal_stop(libc::SIGINT).expect("server was running");
        assert!(
            st.success(),
            "postgres exited with {st}:\n{}",
            fs::read_to_string(self.sock.join("server.log")).unwrap_or_default()
        );
    }

    fn sql(&self, q: &str) -> String {
        pg_ok(
            "psql",
            &[
                "-h",
                self.sock.to_str().unwrap(),
                "-p",
                &self.port,
                "-d",
                "postgres",
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                q,
            ],
        )
        .trim()
        .to_string()
    }

    /// The four pgbench sums: accounts, tellers, branches, history.
    fn ledger(&self) -> Vec<i64> {
        let row = self.sql(
            "select (select sum(abalance) from pgbench_accounts), \
             (select sum(tbalance) from pgbench_tellers), \
             (select sum(bbalance) from pgbench_branches), \
             (select coalesce(sum(delta), 0) from pgbench_history)",
        );
        row.split('|').map(|v| v.parse().unwrap()).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Immediate shutdown.
        self.signal_stop(libc::SIGQUIT);
    }
}

#[test]
fn restored_group_boots_postgresql_with_a_consistent_ledger() {
    if !available() {
        return;
    }
    let mut p = Pool::new();
    // The server runs as `postgres`: the mounts let other users in (permissions still apply).
    let (md, mw) = p.mounted_pair("pg", ("pgdata", "pgwal"), &["-o", "allow_other"]);
    let run_dir = tempfile::tempdir().unwrap();
    fs::set_permissions(run_dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let sock = run_dir.path().to_path_buf();
    for d in [&md, &mw] {
        let o = Command::new("chown")
            .args(["postgres:postgres", d.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let data = md.join("pg");
    pg_ok(
        "initdb",
        &[
            "-D",
            data.to_str().unwrap(),
            "--waldir",
            mw.join("wal").to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ],
    );
    let port = (20000 + std::process::id() % 20000).to_string();
    let mut server = Server {
        data: data.clone(),
        sock: sock.clone(),
        port: port.clone(),
        child: None,
    };
    server.start();
    // The hook, as a user installs it.
    let hook_src = Path::new(env!("CARGO_MANIFEST_DIR")).join("hooks/postgresql");
    for (phase, name) in [("pre", "20-postgresql"), ("post", "80-postgresql")] {
        let dir = p.path().join("hooks").join(format!("{phase}-snapshot.d"));
        fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(&hook_src, dir.join(name)).unwrap();
    }
    fs::write(
        p.path().join("hooks/hooks.conf"),
        format!("PG_HOST={}\nPG_PORT={port}\n", sock.display()),
    )
    .unwrap();
    let conn = ["-h", sock.to_str().unwrap(), "-p", port.as_str()];
    let mut init = conn.to_vec();
    init.extend(["-i", "-s", "2", "-q", "postgres"]);
    pg_ok("pgbench", &init);
    let checkpoints = || -> i64 {
        server
            .sql("select checkpoints_req from pg_stat_bgwriter")
            .parse()
            .unwrap()
    };
    let before = checkpoints();
    // pgbench runs while three group snapshots are taken.
    let mut bench_args: Vec<String> = conn.iter().map(|s| s.to_string()).collect();
    bench_args.extend(
        ["-c", "4", "-j", "2", "-T", "12", "-n", "postgres"]
            .iter()
            .map(|s| s.to_string()),
    );
    let bench = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(Path::new(PG_BIN).join("pgbench"))
        .args(&bench_args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    for (i, name) in ["s1", "s2", "s3"].iter().enumerate() {
        std::thread::sleep(Duration::from_secs(3));
        let out = p.ok(&["snapshot", "create", name, "--group", "pg"]);
        assert!(out.contains(name), "{out}");
        assert!(
            checkpoints() > before + i as i64,
            "the pre-snapshot hook ran CHECKPOINT"
        );
    }
    let bench = bench.wait_with_output().unwrap();
    assert!(
        bench.status.success(),
        "pgbench: {}",
        String::from_utf8_lossy(&bench.stderr)
    );
    assert!(t.elapsed() >= Duration::from_secs(9));
    let live = server.ledger();
    assert!(
        live.windows(2).all(|w| w[0] == w[1]),
        "live ledger {live:?}"
    );
    let txns_live: i64 = server
        .sql("select count(*) from pgbench_history")
        .parse()
        .unwrap();
    assert!(txns_live > 0, "pgbench committed transactions");
    server.stop();
    // Restore the middle snapshot with the server stopped, then boot it.
    p.ok(&["umount", "pgdata"]);
    p.ok(&["umount", "pgwal"]);
    p.ok(&["snapshot", "restore", "s2", "--no-undo"]);
    p.ok(&["mount", "pgdata", md.to_str().unwrap(), "-o", "allow_other"]);
    p.ok(&["mount", "pgwal", mw.to_str().unwrap(), "-o", "allow_other"]);
    server.start();
    let restored = server.ledger();
    assert!(
        restored.windows(2).all(|w| w[0] == w[1]),
        "restored ledger {restored:?}"
    );
    let txns: i64 = server
        .sql("select count(*) from pgbench_history")
        .parse()
        .unwrap();
    assert!(
        txns > 0 && txns < txns_live,
        "the snapshot holds a point in the run: {txns} of {txns_live} transactions"
    );
    assert_eq!(
        server.sql("select count(*) from pgbench_accounts"),
        "200000",
        "every account row is there"
    );
    // The restored server takes writes again.
    let mut more = conn.to_vec();
    more.extend(["-c", "2", "-t", "200", "-n", "postgres"]);
    pg_ok("pgbench", &more);
    let after = server.ledger();
    assert!(after.windows(2).all(|w| w[0] == w[1]), "ledger {after:?}");
    let o = pg(
        "pg_amcheck",
        &[
            "-h",
            sock.to_str().unwrap(),
            "-p",
            &port,
            "-d",
            "postgres",
            "--heapallindexed",
            "--install-missing",
        ],
    );
    assert!(
        o.status.success(),
        "pg_amcheck: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    server.stop();
}
