//! What the CLI prints for people, through the real binary: names with control characters
//! escaped in every listing and in `snapshot diff` (JSON keeps the exact string), `diff`
//! refusing the newer snapshot first, and `snapshot info`'s exclusive bytes.

use std::fs;

mod common;
use common::*;

/// Sorted lines, for output whose order is not part of what is checked.
fn sorted(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(String::from).collect();
    v.sort();
    v
}

#[test]
fn names_with_control_characters_print_escaped() {
    let mut p = Pool::new();
    let m = p.mnt();
    // A volume named with a newline is one row of `volume list`, escaped; JSON is exact.
    p.ok(&["volume", "create", "two\nlines"]);
    p.ok(&["volume", "create", "data"]);
    let list = p.ok(&["volume", "list"]);
    assert_eq!(list.lines().count(), 3, "header and two rows:\n{list}");
    assert!(
        list.lines().any(|l| l.starts_with("two\\nlines ")),
        "{list}"
    );
    let vj = json(&p, &["volume", "list", "--json"]);
    assert!(
        vj["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "two\nlines"),
        "{vj}"
    );
    let info = p.ok(&["volume", "info", "two\nlines"]);
    assert!(info.starts_with("volume:      two\\nlines\n"), "{info}");
    let df = p.ok(&["df"]);
    assert!(df.lines().any(|l| l.starts_with("two\\nlines ")), "{df}");

    // Snapshots named with a tab, a backslash, a newline: one row each.
    p.ok(&["mount", "data", m.to_str().unwrap()]);
    p.ok(&["snapshot", "create", "before\ttab\\x", "data"]);
    p.ok(&["snapshot", "create", "snap\none", "two\nlines"]);
    let list = p.ok(&["snapshot", "list"]);
    assert_eq!(list.lines().count(), 3, "header and two rows:\n{list}");
    assert!(
        list.lines().any(|l| l.starts_with("before\\ttab\\\\x ")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("snap\\none ") && l.ends_with(" two\\nlines")),
        "{list}"
    );
    assert!(
        snapshot_names(&p).contains(&"snap\none".to_string()),
        "JSON keeps the exact name"
    );
    let info = p.ok(&["snapshot", "info", "snap\none"]);
    assert!(info.contains("snapshot:     snap\\none\n"), "{info}");
    assert!(info.contains("members:      two\\nlines@"), "{info}");
    let status = p.ok(&["snapshot", "status"]);
    assert_eq!(status.lines().count(), 2, "{status}");
    let df = p.ok(&["df"]);
    assert!(df.lines().any(|l| l.starts_with("snap\\none ")), "{df}");
    p.ok(&["snapshot", "hold", "snap\none", "keep"]);
    let holds = p.ok(&["snapshot", "holds"]);
    assert_eq!(holds.lines().count(), 2, "{holds}");
    assert!(holds.contains("snap\\none "), "{holds}");
    p.ok(&["group", "create", "g\x07", "two\nlines"]);
    let groups = p.ok(&["group", "list"]);
    assert_eq!(groups.lines().count(), 2, "{groups}");
    assert!(
        groups
            .lines()
            .any(|l| l.starts_with("g\\x07 ") && l.ends_with(" two\\nlines")),
        "{groups}"
    );

    // Files named with a newline and a control byte: one diff line each, escaped.
    fs::write(m.join("new\nfile"), b"x").unwrap();
    fs::write(m.join("bell\x07"), b"y").unwrap();
    p.ok(&["snapshot", "create", "after", "data"]);
    let d = p.ok(&["snapshot", "diff", "before\ttab\\x", "after"]);
    assert_eq!(
        sorted(&d),
        ["+\tdata:/bell\\x07", "+\tdata:/new\\nfile"],
        "{d}"
    );
    let live = p.ok(&["snapshot", "diff", "before\ttab\\x"]);
    assert_eq!(sorted(&live), sorted(&d), "{live}");
    let dj = json(
        &p,
        &["snapshot", "diff", "before\ttab\\x", "after", "--json"],
    );
    assert!(
        dj.to_string()
            .contains(r#"{"change":"added","path":"/new\nfile"}"#),
        "JSON keeps the exact path: {dj}"
    );
    p.ok(&["umount", "data"]);
}

#[test]
fn diff_refuses_the_newer_snapshot_first() {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    p.ok(&["snapshot", "create", "s1", "v"]);
    fs::write(m.join("f"), b"x").unwrap();
    p.ok(&["snapshot", "create", "s2", "v"]);
    assert_eq!(p.ok(&["snapshot", "diff", "s1", "s2"]), "+\tv:/f\n");
    let e = p.fails(&["snapshot", "diff", "s2", "s1"], 1);
    assert!(
        e.contains("'s2' is newer than 's1'") && e.contains("tandem snapshot diff s1 s2"),
        "{e}"
    );
    let e = p.fails(&["snapshot", "diff", "s2", "s1", "--json"], 1);
    assert!(e.contains("newer"), "{e}");
    // The same snapshot twice is no order problem: nothing changed.
    assert_eq!(p.ok(&["snapshot", "diff", "s2", "s2"]), "");
    p.ok(&["umount", "v"]);
}

#[test]
fn snapshot_info_names_exclusive_bytes_not_holds() {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    fs::write(m.join("f"), vec![3u8; 200_000]).unwrap();
    p.ok(&["snapshot", "create", "s", "v"]);
    fs::remove_file(m.join("f")).unwrap();
    p.ok(&["snapshot", "hold", "s", "keep"]);
    let info = p.ok(&["snapshot", "info", "s"]);
    let line = info
        .lines()
        .find(|l| l.starts_with("exclusive:"))
        .unwrap_or_else(|| panic!("no exclusive line:\n{info}"));
    assert!(!line.contains(" 0 B"), "s alone holds f: {line}");
    assert!(
        !info.lines().any(|l| l.starts_with("holds")),
        "no line that reads like its holds:\n{info}"
    );
    let df = p.ok(&["df"]);
    assert!(df.contains("SNAPSHOT") && df.contains("EXCLUSIVE"), "{df}");
    assert!(!df.contains("HOLDS"), "{df}");
    let j = json(&p, &["snapshot", "info", "s", "--json"]);
    assert!(j["exclusive_bytes"].as_u64().unwrap() > 0, "{j}");
    p.ok(&["umount", "v"]);
}
