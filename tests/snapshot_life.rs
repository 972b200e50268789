//! A snapshot's life beyond create and delete, through the `tandem` binary: timestamped
//! names that never collide, and holds that no delete path gets past.

use std::collections::HashSet;

mod common;
use common::*;

/// `daily_GMT-YYYY.MM.DD-HH.MM.SS.uuuuuu` without the microseconds (which it must have).
fn second_of(name: &str) -> &str {
    let (second, micros) = name.rsplit_once('.').unwrap();
    assert!(
        micros.len() == 6 && micros.bytes().all(|b| b.is_ascii_digit()),
        "no microseconds in {name}"
    );
    assert_eq!(
        second.len(),
        "daily_GMT-YYYY.MM.DD-HH.MM.SS".len(),
        "{name}"
    );
    second
}

#[test]
fn timestamped_creates_in_one_second_both_succeed() {
    let p = Pool::new();
    p.ok(&["volume", "create", "v"]);
    let mut names = Vec::new();
    // Create until two land in the same second (a create takes well under a second).
    for _ in 0..20 {
        let out = json(
            &p,
            &["snapshot", "create", "daily", "v", "--timestamp", "--json"],
        );
        let name = out["snapshot"]["name"].as_str().unwrap().to_string();
        assert!(name.starts_with("daily_GMT-"), "{name}");
        names.push(name);
        let n = names.len();
        if n >= 2 && second_of(&names[n - 1]) == second_of(&names[n - 2]) {
            break;
        }
    }
    let n = names.len();
    assert!(
        n >= 2 && second_of(&names[n - 1]) == second_of(&names[n - 2]),
        "no two creates in one second: {names:?}"
    );
    assert_eq!(names.iter().collect::<HashSet<_>>().len(), n, "{names:?}");
    let list = json(&p, &["snapshot", "list", "--json"]);
    assert_eq!(list["snapshots"].as_array().unwrap().len(), n);
}

fn names(p: &Pool) -> Vec<String> {
    json(p, &["snapshot", "list", "--json"])["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

fn assert_held_refusal(e: &str, snap: &str, tag: &str) {
    assert!(
        e.contains(&format!("snapshot '{snap}' is held"))
            && e.contains(tag)
            && e.contains(&format!("tandem snapshot release {snap} ")),
        "{e}"
    );
}

#[test]
fn a_held_snapshot_survives_every_delete_path_and_a_restart() {
    let p = Pool::new();
    for v in ["a", "b", "solo"] {
        p.ok(&["volume", "create", v]);
    }
    p.ok(&["group", "create", "g", "a", "b"]);
    p.ok(&["snapshot", "create", "free1", "--group", "g"]);
    p.ok(&["snapshot", "create", "kept", "--group", "g"]);
    p.ok(&["snapshot", "create", "free2", "--group", "g"]);
    p.ok(&["snapshot", "create", "solo-kept", "solo"]);
    p.ok(&["snapshot", "hold", "kept", "legal"]);
    p.ok(&["snapshot", "hold", "kept", "backup"]);
    p.ok(&["snapshot", "hold", "solo-kept", "legal"]);
    let e = p.fails(&["snapshot", "hold", "nope", "x"], 1);
    assert!(e.contains("no snapshot named 'nope'"), "{e}");

    let holds = json(&p, &["snapshot", "holds", "kept", "--json"]);
    let tags: Vec<&str> = holds["holds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["backup", "legal"], "{holds}");
    assert_eq!(
        json(&p, &["snapshot", "holds", "--json"])["holds"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let all = names(&p);

    // By hand, one by name.
    let e = p.fails(&["snapshot", "delete", "kept"], 1);
    assert_held_refusal(&e, "kept", "legal");
    assert!(e.contains("backup"), "{e}");
    // Several at once: refused before any is deleted.
    for args in [
        &["snapshot", "delete", "--all"][..],
        &["snapshot", "delete", "--group", "g"],
        &["snapshot", "delete", "--volume", "a"],
        &["snapshot", "delete", "--volume", "solo"],
    ] {
        let e = p.fails(args, 1);
        assert!(e.contains("is held"), "{args:?}: {e}");
        assert_eq!(names(&p), all, "{args:?} deleted something");
    }
    // With the group.
    let e = p.fails(&["group", "delete", "g", "--delete-snapshots"], 1);
    assert_held_refusal(&e, "kept", "legal");
    assert_eq!(names(&p), all);
    p.ok(&["group", "info", "g"]);
    // With its volume.
    let e = p.fails(&["volume", "delete", "solo"], 1);
    assert_held_refusal(&e, "solo-kept", "legal");
    assert_eq!(names(&p), all);

    // Holds are in the pool: they survive the daemon.
    p.ok(&["shutdown"]);
    wait_until("the daemon to stop", || {
        !p.path().join("tandem.sock").exists()
            || std::os::unix::net::UnixStream::connect(p.path().join("tandem.sock")).is_err()
    });
    let e = p.fails(&["snapshot", "delete", "kept"], 1);
    assert_held_refusal(&e, "kept", "backup");

    // Releasing: an unknown tag is named, the last release lets the delete through.
    let e = p.fails(&["snapshot", "release", "kept", "nope"], 1);
    assert!(
        e.contains("no hold 'nope'") && e.contains("backup, legal"),
        "{e}"
    );
    p.ok(&["snapshot", "release", "kept", "legal"]);
    let e = p.fails(&["snapshot", "delete", "kept"], 1);
    assert_held_refusal(&e, "kept", "backup");
    p.ok(&["snapshot", "release", "kept", "backup"]);
    p.ok(&["snapshot", "delete", "kept"]);
    p.ok(&["snapshot", "release", "solo-kept", "legal"]);
    p.ok(&["group", "delete", "g", "--delete-snapshots"]);
    p.ok(&["snapshot", "delete", "--volume", "solo"]);
    p.ok(&["volume", "delete", "solo"]);
    assert!(names(&p).is_empty());
}

#[test]
fn auto_delete_passes_over_held_snapshots() {
    let p = Pool::new();
    p.ok(&["volume", "create", "v"]);
    p.ok(&[
        "snapshot",
        "config",
        "v",
        "--snap-max-hard-limit",
        "2",
        "--snap-max-soft-limit",
        "100",
        "--auto-delete",
        "on",
    ]);
    p.ok(&["snapshot", "create", "s1", "v"]);
    p.ok(&["snapshot", "hold", "s1", "keep"]);
    // At the soft limit: the only candidate is held, so nothing goes.
    p.ok(&["snapshot", "create", "s2", "v"]);
    assert_eq!(names(&p), ["s1", "s2"]);
    // At the hard limit: the oldest, s1, is held, so s2 goes.
    let out = p.ok(&["snapshot", "create", "s3", "v"]);
    assert!(out.contains("auto-deleted snapshot 's2'"), "{out}");
    assert_eq!(names(&p), ["s1", "s3"]);
    // With every candidate held, the create is refused and nothing is deleted.
    p.ok(&["snapshot", "hold", "s3", "keep"]);
    let e = p.fails(&["snapshot", "create", "s4", "v"], 1);
    assert!(
        e.contains("held") && e.contains("s1") && e.contains("s3"),
        "{e}"
    );
    assert_eq!(names(&p), ["s1", "s3"]);
}
