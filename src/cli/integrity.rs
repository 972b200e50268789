//! `tandem snapshot verify`: the snapshot's chunks re-read and its root recomputed in the
//! daemon, with progress and Ctrl-C as for `pool verify` (see [`super::pool`]).

use std::path::Path;

use anyhow::{Result, bail};

use tandem::control::Request;
use tandem::snapshot::SnapshotVerifyReport;

/// Verifies snapshot `name`; an error (exit 1) when the root differs or files are damaged.
pub(super) fn verify(pool: &Path, name: String, json: bool) -> Result<()> {
    let what = format!("snapshot verify of '{name}'");
    let rep: SnapshotVerifyReport = super::pool::with_progress(
        pool,
        |progress_ms| Request::SnapshotVerify {
            name: name.clone(),
            progress_ms,
        },
        &what,
        "the whole snapshot",
    )?;
    if json {
        super::print_json(&rep)?;
    } else {
        for m in &rep.members {
            for d in &m.damaged {
                println!("damaged: {}:{}: {}", m.volume, d.path, d.problem);
            }
            if m.root != m.computed {
                println!(
                    "member {}: its tree differs from the recorded root (recorded {}, now {})",
                    m.volume, m.root, m.computed
                );
            }
        }
        println!(
            "verified {} chunks ({}) of snapshot '{}' in {:.1} s",
            rep.chunks,
            super::human(rep.bytes),
            rep.snapshot,
            rep.elapsed_ms as f64 / 1000.0
        );
        if rep.recorded_now {
            println!("root {} (recorded now: none was recorded)", rep.root);
        } else if rep.root == rep.computed {
            println!("root {} matches", rep.root);
        } else {
            println!("root recorded {}, computed {}", rep.root, rep.computed);
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
