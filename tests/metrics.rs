//! The metrics endpoint and the daemon's log, through the real binary: a daemon started
//! with `--metrics`, writes, reads, an fsync and a snapshot through a real mount, scraped
//! with a plain HTTP GET.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::Duration;

use common::*;

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `tandem --pool P args` that never starts a daemon.
fn tandem(pool: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .env("TANDEM_AUTOSTART", "0")
        .arg("--pool")
        .arg(pool)
        .args(args)
        .output()
        .unwrap()
}

/// The status line and body of `GET path`.
fn get(port: u16, path: &str) -> std::io::Result<(String, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    Ok((
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    ))
}

fn scrape(port: u16) -> String {
    let (status, body) = get(port, "/metrics").unwrap();
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    body
}

/// The value of the sample `series` (name with its labels, as printed).
fn value(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
                .map(|v| v.trim().parse::<f64>().unwrap())
        })
        .unwrap_or_else(|| panic!("no sample {series} in:\n{body}"))
}

/// The value of the sample `series`, if the scrape has it.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .map(|v| v.trim().parse::<f64>().unwrap())
    })
}

/// Scrapes until `tandem_volume_unique_bytes` of `volume` is `want` (a scrape starts the
/// pass that computes it, in the background); returns that scrape.
fn unique_becomes(port: u16, volume: &str, want: u64) -> String {
    let series = format!("tandem_volume_unique_bytes{{volume=\"{volume}\"}}");
    becomes(port, &series, want, |_| true)
}

/// Scrapes until `series` is `want` and `also` holds of the scrape; returns that scrape.
fn becomes(port: u16, series: &str, want: u64, also: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let body = scrape(port);
        let got = sample(&body, series);
        if got == Some(want as f64) && also(&body) {
            return body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{series} stayed {got:?}, not {want} (or the rest of the check failed):\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `tandem df`'s unique bytes of `volume` (the figure the metric follows).
fn df_unique(p: &Pool, volume: &str) -> u64 {
    let df: serde_json::Value = serde_json::from_str(&p.ok(&["df", "--json"])).unwrap();
    df["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == volume)
        .unwrap_or_else(|| panic!("no df entry for {volume}: {df}"))["unique_bytes"]
        .as_u64()
        .unwrap()
}

struct Daemon {
    child: Child,
}

impl Daemon {
    fn start(pool: &Path, args: &[&str]) -> Daemon {
        let log = fs::File::create(pool.join("foreground.log")).unwrap();
        let child = Command::new(BIN)
            .arg("--pool")
            .arg(pool)
            .arg("daemon")
            .args(args)
            .env_remove("TANDEM_LOG")
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("TANDEM_METRICS")
            .stderr(log)
            .spawn()
            .unwrap();
        wait_until("the daemon to answer", || {
            tandem(pool, &["status"]).status.success()
        });
        Daemon { child }
    }

    fn stop(mut self, pool: &Path) {
        let o = tandem(pool, &["shutdown"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let st = self.child.wait().unwrap();
        assert!(st.success(), "{st}");
    }
}

#[test]
fn metrics_endpoint_shows_io_latency_snapshots_and_space() {
    let mut p = Pool::new();
    let m = p.mnt();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let d = Daemon::start(p.path(), &["--metrics", &addr]);

    let before = scrape(port);
    for name in [
        "# TYPE tandem_fuse_request_duration_seconds histogram",
        "# TYPE tandem_fsync_duration_seconds histogram",
        "# TYPE tandem_commit_batch_jobs histogram",
        "# TYPE tandem_snapshot_pause_seconds histogram",
        "# TYPE tandem_snapshot_round_trip_seconds histogram",
        "# TYPE tandem_pool_dedup_ratio gauge",
    ] {
        assert!(before.contains(name), "no {name} in:\n{before}");
    }
    assert_eq!(value(&before, "tandem_scrape_error"), 0.0);
    assert_eq!(value(&before, "tandem_snapshots"), 0.0);
    assert_eq!(value(&before, "tandem_snapshot_pause_seconds_count"), 0.0);

    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    let data = bytes("metrics", 1 << 20);
    write_synced(&m.join("f"), &data);
    p.ok(&["snapshot", "create", "s1", "v"]);
    p.ok(&["schedule", "add", "hourly", "v", "--every", "1h"]);
    // A fresh mount: the read reaches the daemon, not the kernel's page cache.
    p.ok(&["umount", m.to_str().unwrap()]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    assert_eq!(fs::read(m.join("f")).unwrap(), data);

    let after = scrape(port);
    let v = "{volume=\"v\"}";
    assert!(value(&after, &format!("tandem_volume_write_bytes_total{v}")) >= (1 << 20) as f64);
    assert!(value(&after, &format!("tandem_volume_writes_total{v}")) >= 1.0);
    assert!(value(&after, &format!("tandem_volume_read_bytes_total{v}")) >= (1 << 20) as f64);
    assert!(value(&after, &format!("tandem_volume_reads_total{v}")) >= 1.0);
    for op in ["read", "write", "lookup", "modify"] {
        let n = value(
            &after,
            &format!("tandem_fuse_request_duration_seconds_count{{op=\"{op}\"}}"),
        );
        assert!(n >= 1.0, "no {op} request timed:\n{after}");
    }
    assert!(value(&after, &format!("tandem_fsync_duration_seconds_count{v}")) >= 1.0);
    assert!(value(&after, "tandem_commit_batch_jobs_count") >= 1.0);
    assert_eq!(value(&after, "tandem_snapshot_pause_seconds_count"), 1.0);
    assert_eq!(
        value(&after, "tandem_snapshot_round_trip_seconds_count"),
        1.0
    );
    assert!(value(&after, "tandem_snapshot_round_trip_seconds_sum") > 0.0);
    assert_eq!(value(&after, "tandem_snapshots"), 1.0);
    assert_eq!(value(&after, &format!("tandem_volume_snapshots{v}")), 1.0);
    assert_eq!(
        value(&after, &format!("tandem_volume_logical_bytes{v}")),
        (1 << 20) as f64
    );
    assert!(value(&after, "tandem_pool_physical_bytes") > 0.0);
    assert!(value(&after, "tandem_pool_dedup_ratio") >= 1.0);
    assert_eq!(
        value(&after, "tandem_schedule_enabled{schedule=\"hourly\"}"),
        1.0
    );
    assert!(
        value(
            &after,
            "tandem_schedule_next_run_seconds{schedule=\"hourly\"}"
        ) > 0.0
    );
    assert_eq!(value(&after, "tandem_scrape_error"), 0.0);

    let (status, _) = get(port, "/nothing").unwrap();
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    p.ok(&["umount", m.to_str().unwrap()]);
    d.stop(p.path());
    // The log: plain text (stderr is a file, not a terminal), one line for the create.
    let log = fs::read(p.path().join("foreground.log")).unwrap();
    assert!(
        !log.contains(&0x1b),
        "ANSI escapes in the log:\n{}",
        String::from_utf8_lossy(&log)
    );
    let log = String::from_utf8_lossy(&log);
    let line = log
        .lines()
        .find(|l| l.contains("snapshot 's1' created"))
        .unwrap_or_else(|| panic!("no info line for the create:\n{log}"));
    assert!(line.contains("INFO") && line.contains("pause"), "{line}");
    assert!(
        log.contains(&format!("serving metrics on http://{addr}/metrics")),
        "{log}"
    );
}

#[test]
fn metrics_are_off_by_default_and_a_taken_port_fails_the_start() {
    let p = Pool::new();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let o = Command::new(BIN)
        .arg("--pool")
        .arg(p.path())
        .arg("daemon")
        .arg("--metrics")
        .arg(format!("127.0.0.1:{port}"))
        .env_remove("TANDEM_METRICS")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("cannot serve metrics on 127.0.0.1:{port}"))
            && err.contains("choose a free address"),
        "{err}"
    );
    drop(taken);
    // Without --metrics nor TANDEM_METRICS, nothing listens.
    let d = Daemon::start(p.path(), &[]);
    assert!(
        !fs::read_to_string(p.path().join("foreground.log"))
            .unwrap()
            .contains("serving metrics")
    );
    d.stop(p.path());
}

#[test]
fn under_systemd_the_log_has_no_timestamps_and_no_colours() {
    use std::os::unix::fs::MetadataExt;
    // stderr is "the journal stream" (JOURNAL_STREAM names it); with no journald socket on
    // this machine the daemon says so and writes plain lines for the journal to stamp.
    let p = Pool::new();
    let path = p.path().join("journal.log");
    let log = fs::File::create(&path).unwrap();
    let meta = log.metadata().unwrap();
    let mut child = Command::new(BIN)
        .arg("--pool")
        .arg(p.path())
        .arg("daemon")
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .env_remove("TANDEM_LOG")
        .env_remove("RUST_LOG")
        .env_remove("TANDEM_METRICS")
        .stderr(log)
        .spawn()
        .unwrap();
    wait_until("the daemon to answer", || {
        tandem(p.path(), &["status"]).status.success()
    });
    assert!(tandem(p.path(), &["shutdown"]).status.success());
    assert!(child.wait().unwrap().success());
    let text = fs::read_to_string(&path).unwrap();
    if std::path::Path::new("/run/systemd/journal/socket").exists() {
        // The events went to journald itself.
        return;
    }
    assert!(!text.contains('\u{1b}'), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("tandem daemon serving pool"))
        .unwrap_or_else(|| panic!("no start line:\n{text}"));
    assert!(
        line.trim_start().starts_with("INFO"),
        "a timestamp before the level: {line}"
    );
}

#[test]
fn unique_bytes_follow_writes_snapshots_and_copies_and_a_rename_moves_the_series() {
    const MIB: u64 = 1 << 20;
    let mut p = Pool::new();
    let (m, mw) = (p.mnt(), p.mnt());
    let port = free_port();
    let d = Daemon::start(p.path(), &["--metrics", &format!("127.0.0.1:{port}")]);
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);

    // Data only v holds: all of it unique.
    write_synced(&m.join("a"), &bytes("unique a", MIB as usize));
    write_synced(&m.join("b"), &bytes("unique b", MIB as usize));
    let body = unique_becomes(port, "v", 2 * MIB);
    assert_eq!(df_unique(&p, "v"), 2 * MIB, "the figure of tandem df");
    let age = value(&body, "tandem_volume_unique_age_seconds{volume=\"v\"}");
    assert!((0.0..10.0).contains(&age), "age {age}:\n{body}");

    // Snapshot, then delete a and overwrite b: what the snapshot keeps is not the live
    // volume's own any more; the new content is.
    p.ok(&["snapshot", "create", "s1", "v"]);
    fs::remove_file(m.join("a")).unwrap();
    write_synced(&m.join("b"), &bytes("unique c", MIB as usize));
    unique_becomes(port, "v", MIB);
    assert_eq!(df_unique(&p, "v"), MIB);

    // A copy into another volume shares the chunks: unique to neither.
    p.ok(&["volume", "create", "w"]);
    p.ok(&["mount", "w", mw.to_str().unwrap()]);
    fs::copy(m.join("b"), mw.join("b")).unwrap();
    fs::File::open(mw.join("b")).unwrap().sync_all().unwrap();
    unique_becomes(port, "v", 0);
    unique_becomes(port, "w", 0);
    // A clone of the snapshot reads through to it: nothing of its own.
    p.ok(&["snapshot", "clone", "k", "s1"]);
    unique_becomes(port, "k", 0);

    // A rename: the series carry the new name from then on, with the counts so far, and
    // what is written after it counts under the new name only.
    let before = scrape(port);
    let written = value(&before, "tandem_volume_write_bytes_total{volume=\"v\"}");
    assert!(written >= (3 * MIB) as f64, "{before}");
    p.ok(&["volume", "rename", "v", "v2"]);
    write_synced(&m.join("after"), &bytes("after rename", 4096));
    let after = unique_becomes(port, "v2", 4096);
    assert!(
        !after.contains("{volume=\"v\"}"),
        "a series still named v:\n{after}"
    );
    assert_eq!(
        value(&after, "tandem_volume_write_bytes_total{volume=\"v2\"}"),
        written + 4096.0,
        "{after}"
    );
    assert!(value(&after, "tandem_volume_writes_total{volume=\"v2\"}") >= 3.0);
    assert_eq!(value(&after, "tandem_scrape_error"), 0.0);

    p.ok(&["umount", m.to_str().unwrap()]);
    p.ok(&["umount", mw.to_str().unwrap()]);
    d.stop(p.path());
}

/// The fsync series of `volume`: how many were timed, answered by a log record, and by a
/// commit.
fn fsyncs(body: &str, volume: &str) -> (f64, f64, f64) {
    let l = format!("volume=\"{volume}\"");
    (
        value(body, &format!("tandem_fsync_duration_seconds_count{{{l}}}")),
        value(
            body,
            &format!("tandem_volume_fsyncs_total{{{l},path=\"log\"}}"),
        ),
        value(
            body,
            &format!("tandem_volume_fsyncs_total{{{l},path=\"commit\"}}"),
        ),
    )
}

#[test]
fn fsync_latency_and_paths_are_per_volume_and_follow_a_rename() {
    let mut p = Pool::new();
    let (m, mw) = (p.mnt(), p.mnt());
    let port = free_port();
    let d = Daemon::start(p.path(), &["--metrics", &format!("127.0.0.1:{port}")]);
    p.ok(&["volume", "create", "v"]);
    p.ok(&["volume", "create", "w"]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    p.ok(&["mount", "w", mw.to_str().unwrap()]);
    let body = scrape(port);
    assert_eq!(fsyncs(&body, "v"), (0.0, 0.0, 0.0), "{body}");

    // Three fsyncs on v, two on w (one each per write_synced).
    for i in 0..3 {
        write_synced(&m.join(format!("f{i}")), &bytes("fsync v", 8192));
    }
    // A file fsynced again once its create is durable: the log can answer the second.
    write_synced(&mw.join("g"), &bytes("fsync w", 8192));
    let mut g = fs::OpenOptions::new()
        .append(true)
        .open(mw.join("g"))
        .unwrap();
    g.write_all(b"more").unwrap();
    g.sync_all().unwrap();
    drop(g);

    let body = scrape(port);
    let (vn, vlog, vcommit) = fsyncs(&body, "v");
    let (wn, wlog, wcommit) = fsyncs(&body, "w");
    assert_eq!((vn, wn), (3.0, 2.0), "fsyncs timed per volume:\n{body}");
    assert_eq!(vlog + vcommit, 3.0, "{body}");
    assert_eq!(wlog + wcommit, 2.0, "{body}");
    // The split is the engine's own count (tandem status), volume by volume.
    let status: serde_json::Value = serde_json::from_str(&p.ok(&["status", "--json"])).unwrap();
    let log = &status["intent_log"];
    assert_eq!(
        (vlog + wlog, vcommit + wcommit),
        (
            log["fsyncs_logged"].as_f64().unwrap(),
            log["fsyncs_committed"].as_f64().unwrap()
        ),
        "{status}\n{body}"
    );
    assert!(
        value(
            &body,
            "tandem_fsync_duration_seconds_bucket{volume=\"w\",le=\"+Inf\"}"
        ) == 2.0,
        "{body}"
    );

    // A rename moves the series, counts and all; the next fsync counts under the new name.
    p.ok(&["volume", "rename", "v", "v2"]);
    write_synced(&m.join("after"), &bytes("after rename", 4096));
    let body = scrape(port);
    let (n, log, commit) = fsyncs(&body, "v2");
    assert_eq!((n, log + commit), (4.0, 4.0), "{body}");
    assert!(
        !body.contains("{volume=\"v\""),
        "a series still named v:\n{body}"
    );
    assert_eq!(fsyncs(&body, "w").0, 2.0);

    p.ok(&["umount", m.to_str().unwrap()]);
    p.ok(&["umount", mw.to_str().unwrap()]);
    d.stop(p.path());
}

/// The bytes only snapshot `name` holds, as `tandem snapshot info` says.
fn exclusive(p: &Pool, name: &str) -> u64 {
    let j: serde_json::Value =
        serde_json::from_str(&p.ok(&["snapshot", "info", name, "--json"])).unwrap();
    j["exclusive_bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("no exclusive_bytes: {j}"))
}

#[test]
fn snapshot_unique_bytes_come_from_the_background_pass_not_the_scrape() {
    const MIB: u64 = 1 << 20;
    let mut p = Pool::new();
    let m = p.mnt();
    let port = free_port();
    let d = Daemon::start(p.path(), &["--metrics", &format!("127.0.0.1:{port}")]);
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    let series = "tandem_volume_snapshot_unique_bytes{volume=\"v\"}";
    let age = "tandem_volume_snapshot_unique_age_seconds{volume=\"v\"}";
    // Settled: the figure is `want`, no pass runs and nothing committed since the last
    // (the age restarts at 0 at each such scrape).
    let settled = |want: u64| becomes(port, series, want, |b| sample(b, age) == Some(0.0));

    // No snapshot: nothing only snapshots hold.
    settled(0);
    // s1 alone holds the first content, s2 alone the second; the live volume the third.
    write_synced(&m.join("a"), &bytes("first", MIB as usize));
    p.ok(&["snapshot", "create", "s1", "v"]);
    write_synced(&m.join("a"), &bytes("second", MIB as usize));
    p.ok(&["snapshot", "create", "s2", "v"]);
    write_synced(&m.join("a"), &bytes("third", MIB as usize));
    settled(2 * MIB);
    assert_eq!(exclusive(&p, "s1") + exclusive(&p, "s2"), 2 * MIB);

    // The scrape right after a delete shows the cached figure (a scrape computes nothing
    // that grows with the data) beside the fresh count, and starts the pass that brings
    // the new figure.
    p.ok(&["snapshot", "delete", "s1"]);
    let body = scrape(port);
    assert_eq!(value(&body, "tandem_volume_snapshots{volume=\"v\"}"), 1.0);
    assert_eq!(value(&body, series), (2 * MIB) as f64, "{body}");
    let body = settled(MIB);
    assert_eq!(exclusive(&p, "s2"), MIB);
    let ages = value(&body, "tandem_volume_unique_age_seconds{volume=\"v\"}");
    assert!((0.0..10.0).contains(&ages), "{body}");
    assert_eq!(value(&body, "tandem_scrape_error"), 0.0);

    p.ok(&["umount", m.to_str().unwrap()]);
    d.stop(p.path());
}
