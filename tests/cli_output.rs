//! What the CLI prints for people, through the real binary: names with control characters
//! escaped in every listing and in `snapshot diff` (JSON keeps the exact string), `diff`
//! refusing the newer snapshot first, `snapshot info`'s exclusive bytes, the scripting mode
//! of listings (-H, -p, -o), columns that fit their content, and the question before a mass
//! delete on a terminal.

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

/// The output lines of the table that starts with the line starting `header`.
fn table_of<'a>(out: &'a str, header: &str) -> Vec<&'a str> {
    out.lines()
        .skip_while(|l| !l.starts_with(header))
        .take_while(|l| !l.starts_with("SNAPSHOT") && !l.starts_with("pool:"))
        .collect()
}

#[test]
fn listings_have_a_scripting_mode_and_fit_their_columns() {
    let p = Pool::new();
    let long = "a-volume-with-a-name-much-longer-than-any-column-was-wide";
    p.ok(&["volume", "create", "v", "--block-size", "64K"]);
    p.ok(&["volume", "create", long, "--block-size", "8KiB"]);
    // -H -p -o: no header, tabs, exact bytes, the columns asked for, in that order (rows
    // by name).
    assert_eq!(
        p.ok(&["volume", "list", "-H", "-p", "-o", "block,name"]),
        format!("8192\t{long}\n65536\tv\n")
    );
    assert_eq!(
        p.ok(&["volume", "list", "-H", "-o", "name,block"]),
        format!("{long}\t8.0 KiB\nv\t64.0 KiB\n")
    );
    let e = p.fails(&["volume", "create", "w", "--block-size", "64Q"], 2);
    assert!(e.contains("64K"), "{e}");
    let e = p.fails(&["volume", "list", "-o", "name,size"], 2);
    assert!(
        e.contains("unknown column 'size'") && e.contains("name, block, logical"),
        "{e}"
    );

    p.ok(&["snapshot", "create", "s1", "v"]);
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let row = p.ok(&[
        "snapshot",
        "list",
        "-Hp",
        "-o",
        "name,created,exclusive,pause",
    ]);
    let cells: Vec<&str> = row.trim_end().split('\t').collect();
    assert_eq!(cells.len(), 4, "{row}");
    assert_eq!(cells[0], "s1");
    let created: u64 = cells[1].parse().expect("unix seconds");
    assert!(created <= before && created + 60 > before, "{row}");
    assert!(
        cells[2].parse::<u64>().is_ok() && cells[3].parse::<u64>().is_ok(),
        "{row}"
    );
    // For people: the creation time in UTC, readable dates in info.
    let list = p.ok(&["snapshot", "list"]);
    assert!(list.starts_with("NAME  GROUP  CREATED"), "{list}");
    assert!(list.lines().nth(1).unwrap().contains(" UTC "), "{list}");
    let info = p.ok(&["snapshot", "info", "s1"]);
    let created_line = info.lines().find(|l| l.starts_with("created:")).unwrap();
    assert!(
        created_line.contains(" UTC (unix ") && created_line.contains("-"),
        "{info}"
    );

    // df: a long name widens its column; every line of the table stays in line.
    let df = p.ok(&["df"]);
    let t = table_of(&df, "VOLUME");
    assert_eq!(t.len(), 3, "{df}");
    assert!(
        t.iter().all(|l| l.len() == t[0].len()),
        "columns in line:\n{df}"
    );
    assert!(df.contains("dedup ratio"), "{df}");
    assert_eq!(
        p.ok(&["df", "-H", "-p", "-o", "name,logical"]),
        format!("{long}\t0\nv\t0\n")
    );
    // Group and schedule lists take the same flags.
    p.ok(&["group", "create", "g", long]);
    assert_eq!(
        p.ok(&["group", "list", "-H", "-o", "name,volumes"]),
        format!("g\t{long}\n")
    );
    p.ok(&["schedule", "add", "h", "v", "--every", "1h"]);
    assert_eq!(
        p.ok(&["schedule", "list", "-H", "-o", "name,state,snapshots"]),
        "h\tenabled\t0\n"
    );
    p.ok(&["snapshot", "hold", "s1", "keep"]);
    assert_eq!(
        p.ok(&["snapshot", "holds", "-H", "-o", "tag,snapshot"]),
        "keep\ts1\n"
    );
}

/// `tandem ARGS` on a terminal (a pty made by script(1)) answering `answer`.
fn on_a_terminal(p: &Pool, args: &[&str], answer: &str) -> std::process::Output {
    use std::io::Write;
    let cmd = std::iter::once(BIN.to_string())
        .chain(["--pool".to_string(), p.path().display().to_string()])
        .chain(args.iter().map(|a| a.to_string()))
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("TANDEM_AUTOSTART", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("script(1) runs");
    // Let the question be asked before answering (a pty echoes input at once).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn mass_deletes_ask_on_a_terminal_only() {
    let p = Pool::new();
    p.ok(&["volume", "create", "v"]);
    for s in ["s1", "s2", "s3"] {
        p.ok(&["snapshot", "create", s, "v"]);
    }
    // Not a terminal (a script, a pipe): no question, and nothing waits for an answer.
    let o = p.run(&["snapshot", "delete", "--volume", "v"]);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("[y/N]"), "{err}");
    assert!(snapshot_names(&p).is_empty());
    for s in ["s1", "s2"] {
        p.ok(&["snapshot", "create", s, "v"]);
    }
    // --yes on a terminal: no question either.
    let o = on_a_terminal(&p, &["snapshot", "delete", "--all", "--yes"], "");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && !out.contains("[y/N]"), "{out}");
    assert!(snapshot_names(&p).is_empty(), "{out}");
    // On a terminal: asked; no keeps everything.
    p.ok(&["group", "create", "g", "v"]);
    for s in ["s1", "s2"] {
        p.ok(&["snapshot", "create", s, "--group", "g"]);
    }
    let o = on_a_terminal(&p, &["snapshot", "delete", "--group", "g"], "n\n");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("delete 2 snapshot(s) (s1, s2)? [y/N]") && out.contains("not confirmed"),
        "{out}"
    );
    assert!(!o.status.success());
    assert_eq!(snapshot_names(&p), ["s1", "s2"]);
    let o = on_a_terminal(&p, &["group", "delete", "g", "--delete-snapshots"], "y\n");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains("[y/N]"), "{out}");
    assert!(snapshot_names(&p).is_empty(), "{out}");
}

/// `tandem --pool P args` with stdout sent to `out`.
fn run_into(p: &Pool, args: &[&str], out: impl Into<std::process::Stdio>) -> std::process::Output {
    std::process::Command::new(BIN)
        .env("TANDEM_AUTOSTART", "1")
        .arg("--pool")
        .arg(p.path())
        .args(args)
        .stdout(out)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn output_a_reader_left_or_a_full_disk_refused_is_no_panic() {
    let p = Pool::new();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["snapshot", "create", "s1", "v"]);
    let cases: &[&[&str]] = &[
        &["snapshot", "list"],
        &["volume", "list", "--json"],
        &["volume", "info", "v"],
        &["completions", "bash"],
    ];
    for args in cases {
        // `tandem ... | head -1` once head has gone: quiet, as SIGPIPE stops other tools.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = run_into(&p, args, writer);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(141),
            "tandem {args:?} into a closed pipe: {err}"
        );
        assert!(err.is_empty(), "tandem {args:?} into a closed pipe: {err}");
        // `tandem ... > /dev/full`: one line naming stdout, exit 1.
        let full = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap();
        let o = run_into(&p, args, full);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(1),
            "tandem {args:?} > /dev/full: {err}"
        );
        assert!(
            err.starts_with("tandem: cannot write the output to stdout:")
                && err.lines().count() == 1,
            "tandem {args:?} > /dev/full: {err}"
        );
    }
}

#[test]
fn messages_about_one_object_escape_its_name_too() {
    let mut p = Pool::new();
    let m = p.mnt();
    let ms = m.to_str().unwrap();
    // Every line below names a volume or snapshot with a newline: each stays one line.
    let one_line = |out: String, has: &str| {
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(out.contains(has), "{has:?} in {out}");
    };
    one_line(p.ok(&["volume", "create", "v\nw"]), "'v\\nw'");
    one_line(p.ok(&["mount", "v\nw", ms]), "'v\\nw'");
    one_line(
        p.ok(&["snapshot", "create", "s\n1", "v\nw"]),
        "'s\\n1' of volume v\\nw",
    );
    one_line(
        p.ok(&["snapshot", "rename", "s\n1", "s\n2"]),
        "'s\\n1' to 's\\n2'",
    );
    p.ok(&["snapshot", "create", "s\n3", "v\nw"]);
    let out = p.ok(&["snapshot", "delete", "--volume", "v\nw"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("'s\\n2'") && out.contains("'s\\n3'"), "{out}");
    p.ok(&["snapshot", "create", "s\n4", "v\nw"]);
    one_line(p.ok(&["snapshot", "delete", "s\n4"]), "'s\\n4'");
    one_line(p.ok(&["umount", ms]), "'v\\nw'");
    one_line(
        p.ok(&["volume", "set", "v\nw", "auto-delete", "on"]),
        "v\\nw: auto-delete",
    );
    one_line(
        p.ok(&["volume", "rename", "v\nw", "x\ny"]),
        "'v\\nw' to 'x\\ny'",
    );
    one_line(p.ok(&["volume", "delete", "x\ny"]), "'x\\ny'");
}

#[test]
fn info_pages_say_when_the_object_was_made() {
    let p = Pool::new();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["group", "create", "g", "v"]);
    for (args, json_args) in [
        (["volume", "info", "v"], ["volume", "info", "v", "--json"]),
        (["group", "info", "g"], ["group", "info", "g", "--json"]),
    ] {
        let created = json(&p, &json_args)["created"].clone();
        let want = format!(
            "{} UTC (unix {})",
            created["rfc3339"]
                .as_str()
                .unwrap()
                .replace('T', " ")
                .trim_end_matches('Z'),
            created["unix"]
        );
        let page = p.ok(&args);
        assert!(
            page.lines()
                .any(|l| l.starts_with("created:") && l.ends_with(&want)),
            "{args:?} says {want:?}:\n{page}"
        );
    }
}

#[test]
fn snapshot_config_writes_durations_as_they_are_typed() {
    let p = Pool::new();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["volume", "create", "w"]);
    p.ok(&["snapshot", "config", "--barrier-timeout", "1h 30m"]);
    p.ok(&["volume", "set", "w", "barrier-timeout", "2d"]);
    let out = p.ok(&["snapshot", "config"]);
    let timeouts: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("barrier-timeout"))
        .map(|l| l.trim_start()["barrier-timeout".len()..].trim())
        .collect();
    // System-wide, then v (the pool's), then w (its own).
    assert_eq!(
        timeouts,
        ["1h 30m", "1h 30m", "2days (set on the volume)"],
        "{out}"
    );
}

/// An unknown `-o` column is a usage error on every listing: exit 2 (as clap's own usage
/// errors and `zfs list -o bogus`), one line naming the valid columns, nothing on stdout.
#[test]
fn an_unknown_column_is_a_usage_error() {
    let p = Pool::new();
    p.ok(&["volume", "create", "v"]);
    p.ok(&["snapshot", "create", "s1", "v"]);
    for (args, valid) in [
        (&["volume", "list", "-o", "bogus"][..], "name, block"),
        (
            &["snapshot", "list", "-H", "-o", "name,bogus"][..],
            "name, group",
        ),
        (&["group", "list", "-o", "bogus"][..], "name"),
        (&["schedule", "list", "-o", "bogus"][..], "name, of"),
        (&["df", "-o", "bogus"][..], "name, logical"),
        (
            &["volume", "get", "v", "-o", "bogus"][..],
            "property, value, source",
        ),
    ] {
        let o = p.run(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "tandem {args:?}: {err}");
        assert!(
            err.contains("unknown column 'bogus'") && err.contains(valid),
            "tandem {args:?}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(o.stdout.is_empty(), "tandem {args:?} printed a table");
    }
}
