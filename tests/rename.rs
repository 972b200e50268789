//! `tandem volume|group|snapshot rename`: O(1), atomic, and what is mounted keeps working
//! under the new name: I/O on an open file goes on, mounts.json and hooks see the new name,
//! a remount (and a daemon restart) by the new name works, the old name is a clear error.

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};

use common::{Pool, hook, is_mounted, wait_until};

fn mounts_json(p: &Pool) -> String {
    fs::read_to_string(p.path().join("mounts.json")).unwrap()
}

#[test]
fn a_mounted_volume_renamed_keeps_its_io_and_remounts_by_the_new_name() {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "old"]);
    p.ok(&["mount", "old", m.to_str().unwrap()]);
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(m.join("f"))
        .unwrap();
    f.write_all(b"before ").unwrap();
    p.ok(&["snapshot", "create", "s", "old"]);
    let out = p.ok(&["volume", "rename", "old", "new"]);
    assert!(out.contains("renamed volume 'old' to 'new'"), "{out}");

    // The open file and the mount carry on.
    f.write_all(b"after").unwrap();
    f.sync_all().unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    let mut s = String::new();
    f.read_to_string(&mut s).unwrap();
    assert_eq!(s, "before after");
    fs::write(m.join("g"), b"new file").unwrap();
    let status = p.ok(&["status"]);
    assert!(status.contains("new "), "{status}");
    let json = mounts_json(&p);
    assert!(
        json.contains("\"new\"") && !json.contains("\"old\""),
        "{json}"
    );
    let info: serde_json::Value =
        serde_json::from_str(&p.ok(&["snapshot", "info", "s", "--json"])).unwrap();
    assert_eq!(info["members"][0]["volume"], "new", "{info}");

    // The old name is gone, with a clear error; the new name works everywhere.
    let err = p.fails(&["volume", "info", "old"], 1);
    assert!(err.contains("no volume named 'old'"), "{err}");
    let err = p.fails(&["volume", "rename", "old", "x"], 1);
    assert!(err.contains("no volume named 'old'"), "{err}");
    p.ok(&["volume", "create", "other"]);
    let err = p.fails(&["volume", "rename", "new", "other"], 1);
    assert!(err.contains("'other'"), "{err}");
    drop(f);
    p.ok(&["umount", "new"]);
    assert!(!is_mounted(&m));
    let err = p.fails(&["mount", "old", m.to_str().unwrap()], 1);
    assert!(err.contains("no volume named 'old'"), "{err}");
    p.ok(&["mount", "new", m.to_str().unwrap()]);
    assert_eq!(fs::read(m.join("f")).unwrap(), b"before after");
    assert_eq!(fs::read(m.join("g")).unwrap(), b"new file");

    // A restart mounts it again by its new name.
    p.ok(&["shutdown"]);
    p.ok(&["status"]);
    wait_until("the mount to come back", || is_mounted(&m));
    assert_eq!(fs::read(m.join("g")).unwrap(), b"new file");
}

#[test]
fn renamed_groups_and_activated_snapshots_keep_working_and_hooks_see_new_names() {
    let mut p = Pool::new();
    let (d, _w) = p.mounted_pair("g", ("data", "wal"), &[]);
    fs::write(d.join("x"), b"x1").unwrap();
    let env_file = p.path().join("hook-env");
    hook(
        &p,
        "pre",
        "10-env",
        &format!(
            "echo \"$TANDEM_SNAPSHOT $TANDEM_GROUP $TANDEM_VOLUME_0=$TANDEM_MOUNT_0\" >> {}",
            env_file.display()
        ),
    );
    p.ok(&["snapshot", "create", "s1", "--group", "g"]);
    p.ok(&["snapshot", "activate", "s1"]);
    let root = |p: &Pool, s: &str| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&p.ok(&["snapshot", "info", s, "--json"]))
            .unwrap()["root"]
            .clone()
    };
    let r1 = root(&p, "s1");

    p.ok(&["group", "rename", "g", "h"]);
    p.ok(&["volume", "rename", "data", "db"]);
    let out = p.ok(&["snapshot", "rename", "s1", "first"]);
    assert!(out.contains("renamed snapshot 's1' to 'first'"), "{out}");

    let err = p.fails(&["group", "info", "g"], 1);
    assert!(err.contains("no group named 'g'"), "{err}");
    let err = p.fails(&["snapshot", "info", "s1"], 1);
    assert!(err.contains("no snapshot named 's1'"), "{err}");
    let g: serde_json::Value =
        serde_json::from_str(&p.ok(&["group", "info", "h", "--json"])).unwrap();
    assert_eq!(g["volumes"], serde_json::json!(["db", "wal"]), "{g}");
    assert_eq!(g["snapshots"], serde_json::json!(["first"]), "{g}");

    // The activated snapshot keeps serving its files, under its new name.
    let info: serde_json::Value =
        serde_json::from_str(&p.ok(&["snapshot", "info", "first", "--json"])).unwrap();
    assert_eq!(info["state"], "activated", "{info}");
    assert_eq!(info["group"], "h", "{info}");
    assert_eq!(root(&p, "first"), r1, "a rename keeps the root");
    let at = info["mountpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["volume"] == "db")
        .map(|m| std::path::PathBuf::from(m["mountpoint"].as_str().unwrap()))
        .expect("the renamed member's view");
    assert_eq!(fs::read(at.join("x")).unwrap(), b"x1");
    let json = mounts_json(&p);
    assert!(
        json.contains("\"first\"") && !json.contains("\"s1\""),
        "{json}"
    );

    // Snapshots of the renamed group, and their hooks, use the new names.
    p.ok(&["snapshot", "create", "s2", "--group", "h"]);
    let env = fs::read_to_string(&env_file).unwrap();
    assert!(
        env.lines()
            .last()
            .unwrap()
            .starts_with(&format!("s2 h db={}", d.display())),
        "{env}"
    );
    // A restart brings the activated snapshot back by its new name.
    p.ok(&["shutdown"]);
    p.ok(&["status"]);
    wait_until("the snapshot view to come back", || is_mounted(&at));
    assert_eq!(fs::read(at.join("x")).unwrap(), b"x1");
    p.ok(&["snapshot", "deactivate", "first"]);
}

/// (member, mountpoint) of an activated snapshot, from `snapshot status --json`.
fn views(p: &Pool, snap: &str) -> Vec<(String, std::path::PathBuf)> {
    let v: serde_json::Value =
        serde_json::from_str(&p.ok(&["snapshot", "status", snap, "--json"])).unwrap();
    v["snapshots"][0]["mountpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["volume"].as_str().unwrap().to_string(),
                m["mountpoint"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn an_activated_view_stays_at_its_path_under_the_new_names_and_that_path_is_not_mounted_over() {
    let p = Pool::new();
    p.ok(&["volume", "create", "data"]);
    p.ok(&["volume", "create", "wal"]);
    p.ok(&["group", "create", "g", "data", "wal"]);
    p.ok(&["snapshot", "create", "s1", "--group", "g"]);
    p.ok(&["snapshot", "activate", "s1"]);
    let snaps = p.path().canonicalize().unwrap().join("run/snaps");
    assert_eq!(
        views(&p, "s1"),
        vec![
            ("data".to_string(), snaps.join("s1/data")),
            ("wal".to_string(), snaps.join("s1/wal"))
        ]
    );
    p.ok(&["snapshot", "rename", "s1", "first"]);
    p.ok(&["volume", "rename", "data", "db"]);

    // The views stay mounted where they were; status, info and mounts.json give the new
    // names with those paths.
    let at = vec![
        ("db".to_string(), snaps.join("s1/data")),
        ("wal".to_string(), snaps.join("s1/wal")),
    ];
    assert_eq!(views(&p, "first"), at);
    for (_, m) in &at {
        assert!(is_mounted(m), "{}", m.display());
    }
    let json: serde_json::Value = serde_json::from_str(&mounts_json(&p)).unwrap();
    let recorded: Vec<(String, String, String)> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["volume"].as_str().unwrap().to_string(),
                m["snapshot"].as_str().unwrap().to_string(),
                m["mountpoint"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        recorded,
        at.iter()
            .map(|(v, m)| (v.clone(), "first".to_string(), m.display().to_string()))
            .collect::<Vec<_>>()
    );

    // A new snapshot with the old name would be activated at the same place: refused (all
    // or nothing), naming the view that is there and the way out.
    p.ok(&["snapshot", "create", "s1", "--group", "g"]);
    let err = p.fails(&["snapshot", "activate", "s1"], 1);
    assert!(
        err.contains(&format!("{}", snaps.join("s1/wal").display()))
            && err.contains("member 'wal' of snapshot 'first'")
            && err.contains("tandem snapshot deactivate first"),
        "{err}"
    );
    assert!(views(&p, "s1").is_empty(), "nothing of s1 stays mounted");
    assert_eq!(views(&p, "first"), at, "the renamed views are untouched");

    // Deactivated and activated again, the renamed snapshot gets the path of its new names.
    p.ok(&["snapshot", "deactivate", "first"]);
    p.ok(&["snapshot", "activate", "first"]);
    assert_eq!(
        views(&p, "first"),
        vec![
            ("db".to_string(), snaps.join("first/db")),
            ("wal".to_string(), snaps.join("first/wal"))
        ]
    );
    p.ok(&["snapshot", "activate", "s1"]);
    p.ok(&["snapshot", "deactivate", "s1"]);
    p.ok(&["snapshot", "deactivate", "first"]);
}
