//! Names that are not plain text, end to end through the real binary and a real mount:
//! `snapshot diff` names files whose names are not UTF-8 or hold a newline exactly (one
//! escaped line each for people, the exact bytes in JSON), and the daemon's log writes a
//! name with a newline, ESC or backslash escaped, on the one line of its event.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;

mod common;
use common::*;

/// Sorted lines, for output whose order is not part of what is checked.
fn sorted(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(String::from).collect();
    v.sort();
    v
}

/// A path of a `--json` diff change as exact bytes: `path_bytes` when present, else the
/// `path` text; the key is `path` or `new_path`.
fn exact(change: &serde_json::Value, key: &str) -> Vec<u8> {
    match change.get(format!("{key}_bytes")) {
        Some(b) => b
            .as_array()
            .unwrap()
            .iter()
            .map(|n| u8::try_from(n.as_u64().unwrap()).unwrap())
            .collect(),
        None => change[key].as_str().unwrap().as_bytes().to_vec(),
    }
}

#[test]
fn diff_names_files_exactly_whatever_bytes_their_names_hold() {
    let mut p = Pool::new();
    let m = p.mnt();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["mount", "v", m.to_str().unwrap()]);
    let at = |name: &[u8]| m.join(OsStr::from_bytes(name));
    fs::write(at(b"old\xff"), b"1").unwrap();
    fs::write(at(b"mod\xff"), b"1").unwrap();
    fs::create_dir(at(b"dir\xfe")).unwrap();
    p.ok(&["snapshot", "create", "s0", "v"]);
    fs::write(at(b"raw\xff"), b"x").unwrap();
    fs::write(at(b"two\nlines"), b"x").unwrap();
    fs::write(at(b"dir\xfe/in\x1b"), b"x").unwrap();
    fs::write(at(b"mod\xff"), b"22").unwrap();
    fs::rename(at(b"old\xff"), at(b"new\xfe")).unwrap();
    p.ok(&["snapshot", "create", "s1", "v"]);

    // People: one line per change, every odd byte escaped, no U+FFFD.
    let want = [
        "+\tv:/dir\\xfe/in\\x1b",
        "+\tv:/raw\\xff",
        "+\tv:/two\\nlines",
        "M\tv:/mod\\xff",
        "R\tv:/old\\xff -> v:/new\\xfe",
    ];
    let d = p.ok(&["snapshot", "diff", "s0", "s1"]);
    assert_eq!(sorted(&d), want, "{d}");
    assert!(!d.contains('\u{fffd}'), "{d}");
    let live = p.ok(&["snapshot", "diff", "s0", "--live"]);
    assert_eq!(sorted(&live), want, "{live}");

    // Scripts: the exact bytes of every path come back.
    let dj = json(&p, &["snapshot", "diff", "s0", "s1", "--json"]);
    let changes = dj["volumes"][0]["changes"].as_array().unwrap();
    let got: BTreeSet<(String, Vec<u8>, Option<Vec<u8>>)> = changes
        .iter()
        .map(|c| {
            let to = c.get("new_path").map(|_| exact(c, "new_path"));
            (
                c["change"].as_str().unwrap().to_string(),
                exact(c, "path"),
                to,
            )
        })
        .collect();
    let want: BTreeSet<(String, Vec<u8>, Option<Vec<u8>>)> = [
        ("added", &b"/dir\xfe/in\x1b"[..], None),
        ("added", b"/raw\xff", None),
        ("added", b"/two\nlines", None),
        ("modified", b"/mod\xff", None),
        ("renamed", b"/old\xff", Some(&b"/new\xfe"[..])),
    ]
    .into_iter()
    .map(|(c, p, to)| (c.to_string(), p.to_vec(), to.map(<[u8]>::to_vec)))
    .collect();
    assert_eq!(got, want, "{dj}");
    // `path` stays text (lossy where the name is not UTF-8); `path_bytes` only then.
    for c in changes {
        let path = c["path"].as_str().unwrap();
        assert_eq!(
            c.get("path_bytes").is_some(),
            path.contains('\u{fffd}'),
            "{c}"
        );
    }
    let newline = changes.iter().find(|c| c["path"] == "/two\nlines").unwrap();
    assert!(newline.get("path_bytes").is_none(), "{newline}");
    p.ok(&["umount", "v"]);
}

#[test]
fn the_log_writes_a_name_escaped_on_its_events_line() {
    let p = Pool::new();
    let name = "s\nINFO forged \x1b[31m\\";
    let shown = "s\\nINFO forged \\x1b[31m\\\\";
    p.ok(&["volume", "create", "v"]);
    p.ok(&["snapshot", "create", name, "v"]);
    p.ok(&["snapshot", "hold", name, "keep\nme"]);
    p.ok(&["snapshot", "release", name, "keep\nme"]);
    p.ok(&["snapshot", "rename", name, "plain"]);
    let log = fs::read(p.path().join("daemon.log")).unwrap();
    assert!(!log.contains(&0x1b), "no raw ESC in the log");
    let log = String::from_utf8(log).unwrap();
    for want in [
        format!("INFO tandem::daemon::snapshots: snapshot '{shown}' created of v"),
        format!("snapshot '{shown}': hold 'keep\\nme' placed"),
        format!("snapshot '{shown}': hold 'keep\\nme' released"),
    ] {
        assert_eq!(
            log.lines().filter(|l| l.contains(&want)).count(),
            1,
            "one line with {want:?} in the log:\n{log}"
        );
    }
    assert!(
        !log.lines()
            .any(|l| l.starts_with("INFO forged") || l == "me"),
        "a name forged a line:\n{log}"
    );
}
