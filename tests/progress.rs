//! Progress of the long jobs as people and scripts meet it: drawn (and cleared) on a
//! terminal, never in a pipe, never with `--json`. The terminal is a real pseudo-terminal
//! (script(1)).

mod common;
use common::*;

use std::process::Command;

/// Runs `tandem --pool P args` with stdout and stderr on a pseudo-terminal; all it wrote.
fn on_terminal(p: &Pool, args: &[&str]) -> String {
    let mut line = format!("{BIN} --pool '{}'", p.path().display());
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let o = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env("TANDEM_AUTOSTART", "1")
        .env("TERM", "xterm")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "tandem {args:?} on a terminal: {text}");
    text
}

/// Runs `tandem --pool P args` with stdout and stderr piped; (stdout, stderr).
fn piped(p: &Pool, args: &[&str]) -> (String, String) {
    let o = p.run(args);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "tandem {args:?}: {err}");
    (out, err)
}

#[test]
fn long_jobs_show_progress_on_a_terminal_only() {
    let p = Pool::new();
    p.ok(&["volume", "create", "v"]);
    for s in ["s1", "s2", "s3"] {
        p.ok(&["snapshot", "create", s, "v"]);
    }
    // Piped: the command's own lines, nothing on stderr.
    let (out, err) = piped(&p, &["snapshot", "clone", "c1", "s1"]);
    assert_eq!(out, "cloned 's1' into volume 'c1'\n");
    assert_eq!(err, "", "nothing extra on stderr when it is not a terminal");
    let (out, err) = piped(&p, &["volume", "delete", "c1"]);
    assert_eq!(out, "deleted volume 'c1'\n");
    assert_eq!(err, "");
    let (out, err) = piped(&p, &["snapshot", "restore", "s1", "--no-undo"]);
    assert!(out.starts_with("restored v from snapshot 's1'"), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert_eq!(err, "");

    // On a terminal: a spinner names the job while the daemon works, and is cleared.
    let t = on_terminal(&p, &["snapshot", "clone", "c2", "s1"]);
    assert!(t.contains("cloning snapshot 's1'"), "no spinner: {t:?}");
    assert!(t.contains("cloned 's1' into volume 'c2'"), "{t:?}");
    let t = on_terminal(&p, &["snapshot", "restore", "s2", "--no-undo"]);
    assert!(t.contains("restoring snapshot 's2'"), "no spinner: {t:?}");
    let t = on_terminal(&p, &["volume", "delete", "c2"]);
    assert!(t.contains("deleting volume 'c2'"), "no spinner: {t:?}");

    // --json on a terminal: the document alone.
    let t = on_terminal(&p, &["snapshot", "clone", "c3", "s1", "--json"]);
    assert!(!t.contains("cloning"), "a spinner with --json: {t:?}");
    let v: serde_json::Value =
        serde_json::from_str(t.trim()).unwrap_or_else(|e| panic!("not JSON alone ({e}): {t:?}"));
    assert_eq!(v["volumes"][0], "c3");

    p.ok(&["volume", "delete", "c3"]);
    // Deleting many: a counted bar on a terminal, the same lines as in a pipe.
    let t = on_terminal(&p, &["snapshot", "delete", "--volume", "v", "--yes"]);
    assert!(t.contains("snapshots deleted"), "no bar: {t:?}");
    assert!(t.contains("[3/3] deleted snapshot 's3'"), "{t:?}");
}
