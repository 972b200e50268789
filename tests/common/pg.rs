//! A real PostgreSQL 15 for the tests that boot one: whether it is there, and its programs
//! run as the `postgres` user.

use std::path::Path;
use std::process::{Command, Output};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// Whether PostgreSQL 15 and the `postgres` user are there; without them a test is
/// skipped, unless CI is set (then it fails: .ci/run installs them).
pub fn available() -> bool {
    let ok = Path::new(PG_BIN).join("postgres").exists()
        && Command::new("id")
            .arg("postgres")
            .output()
            .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "PostgreSQL 15 and the postgres user are required in CI (.ci/run installs them)"
        );
        eprintln!("skipped: PostgreSQL 15 or the postgres user is missing");
    }
    ok
}

/// Runs a PostgreSQL program as the `postgres` user.
pub fn pg(prog: &str, args: &[&str]) -> Output {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(Path::new(PG_BIN).join(prog))
        .args(args)
        .output()
        .unwrap()
}

/// [`pg`], which must succeed; its stdout.
pub fn pg_ok(prog: &str, args: &[&str]) -> String {
    let o = pg(prog, args);
    assert!(
        o.status.success(),
        "{prog} {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}
