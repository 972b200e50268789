//! Layered clones end to end, through the `tandem` binary and real mounts: a clone made
//! from a snapshot shows the snapshot, copies no data, and from then on the clone and its
//! origin each keep their own state (writes, unlinks, renames on either side); deleting
//! the origin's snapshot, and then the origin volume, leaves the clone as it was; remounts
//! and daemon restarts keep all of it. Also: a snapshot of a clone diffs and restores over
//! the clone's own changes only, and a clone of that snapshot reads through both layers.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;

mod common;
use common::*;

fn physical(p: &Pool) -> u64 {
    json(p, &["status", "--json"])["stats"]["physical_bytes"]
        .as_u64()
        .unwrap()
}

/// The df entry of volume `name`: (unique, shared, origin).
fn space(p: &Pool, name: &str) -> (u64, u64, u64) {
    let df = json(p, &["df", "--json"]);
    let v = df["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no df entry for {name}: {df}"))
        .clone();
    (
        v["unique_bytes"].as_u64().unwrap(),
        v["shared_bytes"].as_u64().unwrap(),
        v["origin_bytes"].as_u64().unwrap(),
    )
}

struct State {
    big: Vec<u8>,
}

/// What the origin shows after its own changes.
fn check_origin(m: &Path) {
    assert_eq!(
        fs::read(m.join("d/a")).unwrap(),
        b"ALPHA",
        "origin's own write"
    );
    assert_eq!(fs::read(m.join("d/b")).unwrap(), b"beta");
    assert!(m.join("x").is_dir(), "origin's own mkdir");
    assert!(!m.join("big").exists(), "origin's own unlink");
    assert!(!m.join("only-in-clone").exists());
}

/// What the clone shows after its own changes.
fn check_clone(m: &Path, s: &State) {
    assert!(!m.join("d/a").exists(), "clone's own unlink");
    assert!(!m.join("d/b").exists() && !m.join("x").exists());
    assert_eq!(
        fs::read(m.join("d/b2")).unwrap(),
        b"beta",
        "clone's own rename"
    );
    assert_eq!(fs::read(m.join("only-in-clone")).unwrap(), b"mine");
    assert_eq!(fs::read(m.join("big")).unwrap(), s.big, "clone's own write");
    assert_eq!(fs::read_link(m.join("ln")).unwrap(), Path::new("d/b"));
}

#[test]
fn a_layered_clone_and_its_origin_each_keep_their_own_state() {
    let mut p = Pool::new();
    let (mo, mc) = (p.mnt(), p.mnt());
    let (o, c) = (mo.to_str().unwrap(), mc.to_str().unwrap());
    p.ok(&["volume", "create", "o"]);
    p.ok(&["mount", "o", o]);
    fs::create_dir(mo.join("d")).unwrap();
    fs::write(mo.join("d/a"), b"alpha").unwrap();
    fs::write(mo.join("d/b"), b"beta").unwrap();
    let big = bytes("big", 3_000_000);
    write_synced(&mo.join("big"), &big);
    std::os::unix::fs::symlink("d/b", mo.join("ln")).unwrap();
    p.ok(&["snapshot", "create", "s", "o"]);

    let before = physical(&p);
    p.ok(&["snapshot", "clone", "c", "s"]);
    assert_eq!(physical(&p), before, "a clone copies no data");
    let (unique, shared, origin) = space(&p, "c");
    assert_eq!(unique, 0, "nothing of its own yet");
    assert!(
        origin >= 3_000_000 && shared >= origin,
        "df: {shared} {origin}"
    );
    p.ok(&["mount", "c", c]);
    assert_eq!(fs::read(mc.join("big")).unwrap(), big);
    assert_eq!(fs::read(mc.join("d/a")).unwrap(), b"alpha");

    // Each side changes on its own.
    let mut cbig = big.clone();
    let page = bytes("page", 4096);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(mc.join("big"))
        .unwrap();
    f.write_all_at(&page, 1_000_000).unwrap();
    f.sync_all().unwrap();
    drop(f);
    cbig[1_000_000..1_004_096].copy_from_slice(&page);
    fs::remove_file(mc.join("d/a")).unwrap();
    fs::rename(mc.join("d/b"), mc.join("d/b2")).unwrap();
    fs::write(mc.join("only-in-clone"), b"mine").unwrap();
    fs::write(mo.join("d/a"), b"ALPHA").unwrap();
    fs::remove_file(mo.join("big")).unwrap();
    fs::create_dir(mo.join("x")).unwrap();
    let s = State { big: cbig };
    check_origin(&mo);
    check_clone(&mc, &s);
    p.ok(&["snapshot", "activate", "s"]);
    let view = p.path().join("run/snaps/s/o");
    assert_eq!(
        fs::read(view.join("big")).unwrap(),
        big,
        "snapshot untouched"
    );
    assert_eq!(fs::read(view.join("d/a")).unwrap(), b"alpha");
    p.ok(&["snapshot", "deactivate", "s"]);

    // The origin's snapshot goes; the clone holds what it reads of it.
    p.ok(&["snapshot", "delete", "s"]);
    check_clone(&mc, &s);
    assert!(
        physical(&p) >= 3_000_000,
        "the clone still holds the origin's big file"
    );

    // Remount, then a daemon restart: both come back as they were.
    p.ok(&["umount", "c"]);
    p.ok(&["mount", "c", c]);
    check_clone(&mc, &s);
    let pid = p.daemon_pid();
    p.ok(&["shutdown"]);
    assert_ne!(p.daemon_pid(), pid, "a new daemon");
    wait_until("the remounts", || is_mounted(&mo) && is_mounted(&mc));
    check_origin(&mo);
    check_clone(&mc, &s);

    // The origin volume goes: the clone gets its own copy of what it read of it.
    p.ok(&["umount", "o"]);
    p.ok(&["volume", "delete", "o"]);
    check_clone(&mc, &s);
    assert_eq!(space(&p, "c").2, 0, "no origin left to share with");
    p.ok(&["shutdown"]);
    p.ok(&["status"]);
    wait_until("the remount", || is_mounted(&mc));
    check_clone(&mc, &s);
    p.ok(&["umount", "c"]);
    p.ok(&["volume", "delete", "c"]);
    assert_eq!(physical(&p), 0, "nothing left once both are gone");
}

#[test]
fn snapshots_and_clones_of_a_clone_see_its_own_changes_only() {
    let mut p = Pool::new();
    let (mo, mc, m2) = (p.mnt(), p.mnt(), p.mnt());
    p.ok(&["volume", "create", "o"]);
    p.ok(&["mount", "o", mo.to_str().unwrap()]);
    for i in 0..50 {
        fs::write(mo.join(format!("f{i}")), format!("file {i}")).unwrap();
    }
    p.ok(&["snapshot", "create", "s", "o"]);
    p.ok(&["snapshot", "clone", "c", "s"]);
    p.ok(&["mount", "c", mc.to_str().unwrap()]);
    fs::write(mc.join("f1"), b"changed in c").unwrap();
    p.ok(&["snapshot", "create", "sc", "c"]);
    fs::write(mc.join("new"), b"n").unwrap();
    fs::remove_file(mc.join("f2")).unwrap();
    // The diff lists the clone's changes since its snapshot, not what it shares.
    let diff = p.ok(&["snapshot", "diff", "sc", "--live"]);
    let lines: Vec<&str> = diff.lines().collect();
    assert_eq!(lines.len(), 2, "{diff}");
    assert!(
        diff.contains("+\tc:/new") && diff.contains("-\tc:/f2"),
        "{diff}"
    );
    // A clone of the clone's snapshot reads through both layers.
    p.ok(&["snapshot", "clone", "c2", "sc"]);
    p.ok(&["mount", "c2", m2.to_str().unwrap()]);
    assert_eq!(fs::read(m2.join("f1")).unwrap(), b"changed in c");
    assert_eq!(fs::read(m2.join("f2")).unwrap(), b"file 2");
    assert_eq!(fs::read(m2.join("f49")).unwrap(), b"file 49");
    assert!(!m2.join("new").exists());
    // Restore of the clone to its snapshot undoes its later changes only.
    p.ok(&["snapshot", "restore", "sc", "--online", "--no-undo"]);
    assert_eq!(fs::read(mc.join("f2")).unwrap(), b"file 2");
    assert!(!mc.join("new").exists());
    assert_eq!(fs::read(mc.join("f1")).unwrap(), b"changed in c");
    assert_eq!(
        fs::read(mo.join("f1")).unwrap(),
        b"file 1",
        "origin untouched"
    );
    // The middle clone goes (its snapshot first): the last one keeps what it showed.
    p.ok(&["umount", "c"]);
    p.ok(&["snapshot", "delete", "sc"]);
    p.ok(&["volume", "delete", "c"]);
    assert_eq!(fs::read(m2.join("f1")).unwrap(), b"changed in c");
    assert_eq!(fs::read(m2.join("f3")).unwrap(), b"file 3");
}
