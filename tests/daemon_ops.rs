//! The daemon as an operator meets it: who may start it (the autostart rule), readiness and
//! socket activation by the sd_notify / sd_listen_fds protocols, SIGHUP, unmount by name,
//! the mount helper, completions and man pages. Real binary, real mounts.

mod common;
use common::*;

use std::path::Path;
use std::process::Command;

/// `tandem --pool P args` with `TANDEM_AUTOSTART` as given (None: unset).
fn tandem_with(p: &Pool, autostart: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.env_remove("TANDEM_AUTOSTART");
    if let Some(v) = autostart {
        c.env("TANDEM_AUTOSTART", v);
    }
    c.arg("--pool").arg(p.path()).args(args).output().unwrap()
}

#[test]
fn no_daemon_is_started_unless_the_rule_allows() {
    let p = Pool::new();
    let sock = p.path().join("tandem.sock");
    let o = tandem_with(&p, Some("0"), &["status"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("systemctl start tandem.socket") && err.contains("--autostart"),
        "{err}"
    );
    assert!(
        !sock.exists(),
        "status started a daemon with TANDEM_AUTOSTART=0"
    );
    let o = tandem_with(&p, Some("maybe"), &["status"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("TANDEM_AUTOSTART=maybe"));
    // The flag wins over the variable.
    let o = tandem_with(&p, Some("0"), &["--autostart", "status"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(sock.exists());
    // A running daemon is used whatever the rule.
    let o = tandem_with(&p, Some("0"), &["status"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Without systemd (this test's machine unless /run/systemd/system exists) the default
    // starts one.
    if !Path::new("/run/systemd/system").exists() {
        p.ok(&["shutdown"]);
        assert!(!sock.exists());
        let o = tandem_with(&p, None, &["status"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}
