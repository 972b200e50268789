//! `tandem snapshot verify` (the snapshot's chunks re-read and its root recomputed in the
//! daemon, with progress and Ctrl-C as for `pool verify`, see [`super::pool`]) and
//! `tandem snapshot test` (a restore test run by the daemon).

use std::path::Path;

use anyhow::{Result, bail};

use super::esc;
use tandem::control::Request;
use tandem::snapshot::SnapshotVerifyReport;
use tandem::snapshot::test::{TestOutcome, TestRequest};

/// Verifies snapshot `name`; an error (exit 1) when the root differs or files are damaged.
pub(super) fn verify(pool: &Path, name: String, json: bool) -> Result<()> {
    let what = format!("snapshot verify of '{}'", esc(&name));
    let rep: SnapshotVerifyReport = super::pool::with_progress(
        pool,
        json,
        |progress_ms| Request::SnapshotVerify {
            name: name.clone(),
            progress_ms,
        },
        &what,
        "the whole snapshot",
    )?;
    if json {
        super::json::emit(&rep)?;
    } else {
        for m in &rep.members {
            for d in &m.damaged {
                outln!(
                    "damaged: {}:{}: {}",
                    esc(&m.volume),
                    esc(&d.path),
                    d.problem
                );
            }
            if m.root != m.computed {
                outln!(
                    "member {}: its tree differs from the recorded root (recorded {}, now {})",
                    esc(&m.volume),
                    m.root,
                    m.computed
                );
            }
        }
        outln!(
            "verified {} chunks ({}) of snapshot '{}' in {:.1} s",
            rep.chunks,
            super::human(rep.bytes),
            esc(&rep.snapshot),
            rep.elapsed_ms as f64 / 1000.0
        );
        if rep.recorded_now {
            outln!("root {} (recorded now: none was recorded)", rep.root);
        } else if rep.root == rep.computed {
            outln!("root {} matches", rep.root);
        } else {
            outln!("root recorded {}, computed {}", rep.root, rep.computed);
        }
    }
    if !rep.ok() {
        let files: usize = rep.members.iter().map(|m| m.damaged.len()).sum();
        bail!(
            "snapshot '{}' is damaged: {} damaged file(s){} (listed above); restore them from another snapshot or a backup",
            rep.snapshot,
            files,
            if rep.root != rep.computed {
                ", and its root differs from the recorded one"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// Runs a restore test of snapshot `snapshot`; an error (exit 1) when it failed.
pub(super) fn test(
    pool: &Path,
    snapshot: String,
    run: String,
    keep_clone: bool,
    timeout: Option<String>,
    json: bool,
) -> Result<()> {
    let timeout_s = match timeout {
        Some(t) => Some(
            tandem::options::parse_duration(&t)
                .ok_or_else(|| {
                    anyhow::anyhow!("--timeout {t}: not a duration; use e.g. 90s, 10m or 1h")
                })?
                .as_secs()
                .max(1),
        ),
        None => None,
    };
    let o: TestOutcome = super::call(
        pool,
        Request::SnapshotTest(TestRequest {
            snapshot,
            run,
            keep_clone,
            timeout_s,
        }),
    )?;
    if json {
        super::json::emit(&serde_json::json!({
            "snapshot": o.snapshot,
            "passed": o.passed,
            "command": o.command,
            "exit_code": o.exit_code,
            "timed_out": o.timed_out,
            "run_ms": o.run_ms,
            "setup_ms": o.setup_ms,
            "snapshot_age_s": o.snapshot_age_s,
            "output_tail": o.output_tail,
            "kept": o.kept.as_ref().map(|k| serde_json::json!({
                "group": k.group,
                "volumes": super::json::member_mounts(&k.volumes),
            })),
            "cleanup": o.cleanup,
        }))?;
    } else {
        if !o.output_tail.is_empty() {
            outln!("--- output of {:?} (tail) ---", o.command);
            outln!("{}", o.output_tail);
            outln!("---");
        }
        for c in &o.cleanup {
            eprintln!("warning: {c}");
        }
        if let Some(k) = &o.kept {
            outln!("clone kept (delete it when done):");
            if let Some(g) = &k.group {
                outln!("  group {}", esc(g));
            }
            for (v, m) in &k.volumes {
                outln!("  {} at {}", esc(v), m.display());
            }
        }
        outln!(
            "restore test of '{}': {} (command ran {:.3} s; clone and mount {:.3} s; snapshot age {} s)",
            esc(&o.snapshot),
            if o.passed { "passed" } else { "FAILED" },
            o.run_ms as f64 / 1000.0,
            o.setup_ms as f64 / 1000.0,
            o.snapshot_age_s
        );
    }
    if !o.passed {
        bail!(
            "restore test of snapshot '{}' failed: {} (output above)",
            o.snapshot,
            if o.timed_out {
                "the command was killed at its timeout".to_string()
            } else {
                match o.exit_code {
                    Some(c) => format!("the command exited with {c}"),
                    None => "the command was killed by a signal".to_string(),
                }
            }
        );
    }
    Ok(())
}
