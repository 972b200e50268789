//! Snapshot schedules run by the daemon, through the `tandem` binary: retention pruning
//! that spares held and manual snapshots, catch-up of a run missed while the daemon was
//! down, and the schedule commands' refusals. Intervals are seconds, so each test takes
//! seconds.

use std::time::Duration;

mod common;
use common::*;

fn made_by(p: &Pool, schedule: &str) -> Vec<String> {
    json(p, &["schedule", "info", schedule, "--json"])["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_schedule_keeps_its_latest_three_and_spares_held_and_manual_snapshots() {
    let p = Pool::new();
    for v in ["a", "b"] {
        p.ok(&["volume", "create", v]);
    }
    p.ok(&["group", "create", "g", "a", "b"]);
    p.ok(&[
        "schedule",
        "add",
        "every2",
        "--group",
        "g",
        "--every",
        "2s",
        "--keep",
        "latest=3",
        "--description",
        "test",
    ]);
    // A manual snapshot named as the schedule names its own: not the schedule's to prune.
    p.ok(&[
        "snapshot",
        "create",
        "every2",
        "--group",
        "g",
        "--timestamp",
    ]);
    let manual = snapshot_names(&p).pop().unwrap();
    assert!(manual.starts_with("every2_GMT-"), "{manual}");
    wait_for("the schedule's first snapshot", 10, || {
        !made_by(&p, "every2").is_empty()
    });
    let first = made_by(&p, "every2")[0].clone();
    p.ok(&["snapshot", "hold", &first, "keep-me"]);
    // Runs 2, 3, 4 and 5: after the fifth, the second is past its retention (latest=3)
    // and pruned, the first is held.
    let log = p.path().join("daemon.log");
    wait_for("a pruning run", 20, || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("schedule 'every2': pruned snapshot 'every2_GMT-")
    });
    p.ok(&["schedule", "disable", "every2"]);
    // The run in progress, if any, has finished: the state is settled now.
    std::thread::sleep(Duration::from_millis(500));
    let info = json(&p, &["schedule", "info", "every2", "--json"]);
    assert_eq!(info["enabled"], false);
    assert_eq!(info["keep"], "latest=3");
    assert!(info["last_error"].is_null(), "{info}");
    let mine = made_by(&p, "every2");
    let unheld: Vec<&String> = mine.iter().filter(|n| **n != first).collect();
    assert_eq!(
        unheld.len(),
        3,
        "exactly three of its own besides the held one: {mine:?}"
    );
    assert!(mine.contains(&first), "the held one stays: {mine:?}");
    let all = snapshot_names(&p);
    assert!(all.contains(&manual), "the manual one stays: {all:?}");
    assert_eq!(all.len(), 5, "{all:?}");
    // The three kept are its newest.
    let mut newest = mine.clone();
    newest.sort();
    assert_eq!(
        &newest[1..],
        &unheld.iter().map(|s| s.to_string()).collect::<Vec<_>>()[..]
    );
    // Each deletion is in the daemon's log, and nothing else was deleted.
    let log = std::fs::read_to_string(&log).unwrap();
    let pruned: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split("schedule 'every2': pruned snapshot '").nth(1))
        .filter_map(|l| l.split('\'').next())
        .collect();
    assert!(!pruned.is_empty());
    for n in &pruned {
        assert!(
            !all.iter().any(|a| a == n) && *n != first && *n != manual,
            "{n}"
        );
    }
    // Removing the schedule keeps its snapshots.
    p.ok(&["schedule", "remove", "every2"]);
    assert_eq!(snapshot_names(&p), all);
    let e = p.fails(&["schedule", "info", "every2"], 1);
    assert!(e.contains("no schedule named 'every2'"), "{e}");
}

#[test]
fn a_run_missed_while_the_daemon_was_down_is_taken_once_at_start() {
    let p = Pool::new();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["schedule", "add", "nightly", "v", "--every", "4s"]);
    let info = json(&p, &["schedule", "info", "nightly", "--json"]);
    assert!(info["last_run"].is_null(), "{info}");
    p.ok(&["shutdown"]);
    // Down for more than two intervals: two runs missed.
    std::thread::sleep(Duration::from_secs(9));
    p.ok(&["status"]);
    // Taken at start, well before an interval has passed since.
    wait_for("the catch-up run", 2, || !made_by(&p, "nightly").is_empty());
    // One run, not one per missed interval (the next is due 4 s after it).
    let made = made_by(&p, "nightly");
    assert_eq!(made.len(), 1, "{made:?}");
    let info = json(&p, &["schedule", "info", "nightly", "--json"]);
    let last = info["last_run"]["unix_us"].as_i64().unwrap();
    let next = info["next_run"]["unix_us"].as_i64().unwrap();
    assert!(next > last && next - last <= 4_100_000, "{info}");
    assert_eq!(info["last_snapshot"].as_str(), Some(made[0].as_str()));
}

#[test]
fn schedule_commands_refuse_with_the_way_out() {
    let p = Pool::new();
    for v in ["a", "b"] {
        p.ok(&["volume", "create", v]);
    }
    p.ok(&["group", "create", "g", "a"]);
    let e = p.fails(&["schedule", "add", "s", "a", "--every", "1h"], 1);
    assert!(
        e.contains("belongs to group 'g'") && e.contains("--group g"),
        "{e}"
    );
    let e = p.fails(
        &["schedule", "add", "s", "--group", "nope", "--every", "1h"],
        1,
    );
    assert!(e.contains("no group named 'nope'"), "{e}");
    let e = p.fails(&["schedule", "add", "s", "b", "--every", "soon"], 1);
    assert!(e.contains("invalid --every 'soon'"), "{e}");
    let e = p.fails(
        &[
            "schedule", "add", "s", "b", "--every", "1h", "--keep", "daily",
        ],
        1,
    );
    assert!(e.contains("invalid retention"), "{e}");
    p.ok(&[
        "schedule",
        "add",
        "s",
        "b",
        "--every",
        "1h",
        "--keep",
        "daily=7,hourly=24",
    ]);
    let e = p.fails(&["schedule", "add", "s", "b", "--every", "1h"], 1);
    assert!(e.contains("schedule 's' already exists"), "{e}");
    let list = json(&p, &["schedule", "list", "--json"]);
    assert_eq!(list["schedules"][0]["keep"], "hourly=24,daily=7");
    assert_eq!(list["schedules"][0]["every_ms"], 3_600_000);
    let out = p.ok(&["schedule", "info", "s"]);
    assert!(
        out.contains("last run:       never") && out.contains("next run:"),
        "{out}"
    );
    let e = p.fails(&["schedule", "enable", "nope"], 1);
    assert!(e.contains("no schedule named 'nope'"), "{e}");
    // Survives a restart.
    p.ok(&["shutdown"]);
    assert_eq!(json(&p, &["schedule", "list", "--json"]), list);
}

#[test]
fn a_failing_run_is_retried_with_backoff_and_shows_its_error() {
    use std::os::unix::fs::PermissionsExt;
    let p = Pool::new();
    p.ok(&["volume", "create", "v"]);
    // A pre-snapshot hook that fails until a flag file exists.
    let dir = p.path().join("hooks/pre-snapshot.d");
    std::fs::create_dir_all(&dir).unwrap();
    for d in [dir.parent().unwrap(), dir.as_path()] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let flag = p.path().join("hook-ok");
    let hook = dir.join("gate");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\ntest -e {} || exit 3\n", flag.display()),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.ok(&["schedule", "add", "h", "v", "--every", "1s"]);
    wait_for("two failed attempts", 10, || {
        json(&p, &["schedule", "info", "h", "--json"])["failures"]
            .as_u64()
            .unwrap()
            >= 2
    });
    let info = json(&p, &["schedule", "info", "h", "--json"]);
    let err = info["last_error"].as_str().unwrap();
    assert!(err.contains("hook") && err.contains("gate"), "{info}");
    assert!(info["snapshots"].as_array().unwrap().is_empty(), "{info}");
    let out = p.ok(&["schedule", "info", "h"]);
    assert!(
        out.contains("last error:") && out.contains("failure(s) in a row"),
        "{out}"
    );
    // Retries back off: 1 s, 2 s, 4 s, ... (capped by the 1 s interval here), so the
    // next attempt is due after the last one.
    assert!(
        info["next_run"]["unix_us"].as_i64() > info["last_run"]["unix_us"].as_i64(),
        "{info}"
    );
    std::fs::write(&flag, b"").unwrap();
    wait_for("a successful run", 10, || {
        !json(&p, &["schedule", "info", "h", "--json"])["snapshots"]
            .as_array()
            .unwrap()
            .is_empty()
    });
    p.ok(&["schedule", "disable", "h"]);
    let info = json(&p, &["schedule", "info", "h", "--json"]);
    assert!(info["last_error"].is_null(), "{info}");
    assert_eq!(info["failures"], 0, "{info}");
}

#[test]
fn pruning_spares_an_activated_snapshot_and_one_a_clone_was_made_from() {
    let p = Pool::new();
    p.ok(&["volume", "create", "v"]);
    p.ok(&[
        "schedule", "add", "s", "v", "--every", "1s", "--keep", "latest=1",
    ]);
    let log = p.path().join("daemon.log");
    wait_for("a pruned run", 10, || {
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("schedule 's': pruned snapshot")
    });
    p.ok(&["schedule", "disable", "s"]);
    std::thread::sleep(Duration::from_millis(300));
    let made = made_by(&p, "s");
    // latest=1 leaves one; the runs were pruned as they went.
    assert_eq!(made.len(), 1, "{made:?}");
    let origin = made[0].clone();
    p.ok(&["snapshot", "clone", "c", &origin]);
    p.ok(&["schedule", "enable", "s"]);
    wait_for("two more runs", 10, || {
        json(&p, &["schedule", "info", "s", "--json"])["last_snapshot"]
            .as_str()
            .is_some_and(|n| n > origin.as_str())
            && made_by(&p, "s").len() >= 2
    });
    let activated = json(&p, &["schedule", "info", "s", "--json"])["last_snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    p.ok(&["snapshot", "activate", &activated]);
    wait_for("a later run", 10, || {
        json(&p, &["schedule", "info", "s", "--json"])["last_snapshot"]
            .as_str()
            .is_some_and(|n| n > activated.as_str())
    });
    p.ok(&["schedule", "disable", "s"]);
    std::thread::sleep(Duration::from_millis(300));
    let made = made_by(&p, "s");
    assert!(made.contains(&origin), "the clone's origin stays: {made:?}");
    assert!(
        made.contains(&activated),
        "the activated one stays: {made:?}"
    );
    assert_eq!(made.len(), 3, "{made:?}");
    // Once the clone is gone and the view deactivated, the next run prunes both.
    p.ok(&["volume", "delete", "c"]);
    p.ok(&["snapshot", "deactivate", &activated]);
    p.ok(&["schedule", "enable", "s"]);
    wait_for("the two to be pruned", 10, || {
        let m = made_by(&p, "s");
        !m.contains(&origin) && !m.contains(&activated)
    });
    p.ok(&["schedule", "disable", "s"]);
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

#[test]
fn a_cron_schedule_shows_its_expression_and_next_run_and_runs_at_that_time() {
    let p = Pool::new();
    p.ok(&["volume", "create", "v"]);
    let e = p.fails(&["schedule", "add", "c", "v", "--cron", "0 0 31 2 *"], 1);
    assert!(
        e.contains("'0 0 31 2 *'") && e.contains("never fires"),
        "{e}"
    );
    let e = p.fails(&["schedule", "add", "c", "v", "--cron", "61 * * * *"], 1);
    assert!(e.contains("minute"), "{e}");
    // --every and --cron exclude each other; one of them is needed.
    let o = p.run(&[
        "schedule",
        "add",
        "c",
        "v",
        "--cron",
        "* * * * *",
        "--every",
        "1m",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = p.run(&["schedule", "add", "c", "v"]);
    assert_eq!(o.status.code(), Some(2));

    let before = now_us();
    p.ok(&["schedule", "add", "c", "v", "--cron", "* * * * *"]);
    let info = json(&p, &["schedule", "info", "c", "--json"]);
    assert_eq!(info["cron"], "* * * * *", "{info}");
    assert_eq!(info["every_ms"], 0, "{info}");
    let next = info["next_run"]["unix_us"].as_i64().unwrap();
    assert_eq!(next % 60_000_000, 0, "at a whole minute: {info}");
    assert!(
        next > before && next <= before + 60_000_000,
        "the next minute: {info}"
    );
    let out = p.ok(&["schedule", "info", "c"]);
    assert!(out.contains("cron:           * * * * * (UTC)"), "{out}");
    assert!(out.contains("next run:       20"), "{out}");
    let out = p.ok(&["schedule", "list"]);
    assert!(out.contains("cron * * * * *"), "{out}");

    // It runs at that minute (up to a minute from now), and the next run is the minute after.
    wait_for("the run at the minute", 75, || !made_by(&p, "c").is_empty());
    p.ok(&["schedule", "disable", "c"]);
    let info = json(&p, &["schedule", "info", "c", "--json"]);
    assert!(
        info["last_run"]["unix_us"].as_i64().unwrap() >= next,
        "{info}"
    );
    assert_eq!(
        info["next_run"]["unix_us"].as_i64(),
        Some(next + 60_000_000),
        "{info}"
    );
    assert!(info["last_error"].is_null(), "{info}");
    // Survives a restart.
    p.ok(&["shutdown"]);
    assert_eq!(json(&p, &["schedule", "info", "c", "--json"]), info);
}

/// Waits for a tested snapshot of `schedule`, disables it and returns its info once the
/// test in progress, if any, has ended (no clone left).
fn tested(p: &Pool, schedule: &str) -> serde_json::Value {
    wait_for("a tested snapshot", 30, || {
        json(p, &["schedule", "info", schedule, "--json"])["last_test"].is_object()
    });
    p.ok(&["schedule", "disable", schedule]);
    wait_for("the clones to go", 10, || clones(p).is_empty());
    json(p, &["schedule", "info", schedule, "--json"])
}

#[test]
fn a_schedule_with_a_test_tests_each_new_snapshot_and_shows_the_result() {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    write_synced(&m.join("marker"), b"x");

    // The command sees the clone of the new snapshot: the marker is there.
    let pass = "test -f \"$TANDEM_MOUNT_0/marker\" && test \"$TANDEM_VOLUME_0\" = v";
    p.ok(&[
        "schedule", "add", "good", "v", "--every", "1s", "--test", pass,
    ]);
    let info = tested(&p, "good");
    assert_eq!(info["test"], pass, "{info}");
    let t = &info["last_test"];
    assert_eq!(t["result"]["passed"], true, "{info}");
    assert_eq!(t["result"]["command"], pass, "{info}");
    let snap = t["snapshot"].as_str().unwrap();
    assert!(
        info["snapshots"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == snap),
        "{info}"
    );
    let out = p.ok(&["schedule", "info", "good"]);
    assert!(
        out.contains(&format!("restore test:   {pass}"))
            && out.contains("last test:      passed at ")
            && out.contains(&format!(" on {snap} (command ran")),
        "{out}"
    );
    let out = p.ok(&["snapshot", "info", snap]);
    assert!(out.contains("last test:    passed"), "{out}");
    let out = p.ok(&["schedule", "list"]);
    assert!(out.contains("passed"), "{out}");

    // A command that fails: the schedule still snapshots, the failure shows.
    p.ok(&[
        "schedule",
        "add",
        "bad",
        "v",
        "--every",
        "1s",
        "--test",
        "echo broken; exit 3",
    ]);
    let info = tested(&p, "bad");
    let t = &info["last_test"];
    assert_eq!(t["result"]["passed"], false, "{info}");
    assert_eq!(t["result"]["exit_code"], 3, "{info}");
    assert!(
        t["result"]["output_tail"]
            .as_str()
            .unwrap()
            .contains("broken"),
        "{info}"
    );
    assert!(
        info["last_error"].is_null(),
        "the snapshot itself succeeded: {info}"
    );
    let snap = t["snapshot"].as_str().unwrap();
    let out = p.ok(&["schedule", "info", "bad"]);
    assert!(
        out.contains("last test:      FAILED at ") && out.contains("exit 3"),
        "{out}"
    );
    let out = p.ok(&["snapshot", "info", snap]);
    assert!(out.contains("last test:    FAILED"), "{out}");
    // The live volume is untouched and every clone is gone.
    assert!(m.join("marker").exists());
    assert!(clones(&p).is_empty());
}
