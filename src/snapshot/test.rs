//! Restore tests (`tandem snapshot test`): what is asked and what is reported. The daemon
//! runs one (`crate::daemon`): it clones the snapshot into temporary volumes, mounts them
//! (allow_other) under a fresh directory, runs the command with the hook environment keyed
//! by the snapshot's member names (so one check script serves live volumes and snapshots),
//! records the result beside the snapshot and removes the clone unless asked to keep it.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Longest a restore test's command may run unless the request says otherwise.
pub const DEFAULT_TEST_TIMEOUT: Duration = Duration::from_secs(600);

/// Most bytes of the command's output kept in the result.
pub const OUTPUT_TAIL: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestRequest {
    pub snapshot: String,
    /// Run with `sh -c`.
    pub run: String,
    /// Leave the clone mounted (its volumes and mountpoints are reported).
    #[serde(default)]
    pub keep_clone: bool,
    /// Longest the command may run, seconds (default [`DEFAULT_TEST_TIMEOUT`]).
    #[serde(default)]
    pub timeout_s: Option<u64>,
}

/// A clone kept by `--keep-clone`: delete it with `tandem group delete` and
/// `tandem volume delete` (or `tandem umount` first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptClone {
    pub group: Option<String>,
    /// (volume, mountpoint), in member order.
    pub volumes: Vec<(String, PathBuf)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestOutcome {
    pub snapshot: String,
    pub passed: bool,
    pub command: String,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// How long the command ran, milliseconds: the restore time objective it shows.
    pub run_ms: u64,
    /// Cloning and mounting, milliseconds.
    pub setup_ms: u64,
    /// The snapshot's age when the test started, seconds: the recovery point.
    pub snapshot_age_s: u64,
    /// The end of the command's output (stdout, then stderr).
    pub output_tail: String,
    pub kept: Option<KeptClone>,
    /// What could not be cleaned up (a busy mount, say), with the way out.
    pub cleanup: Vec<String>,
}

/// The last `OUTPUT_TAIL` bytes of `s` (on a character boundary).
pub fn tail(s: &str) -> String {
    let s = s.trim_end();
    if s.len() <= OUTPUT_TAIL {
        return s.to_string();
    }
    let mut at = s.len() - OUTPUT_TAIL;
    while !s.is_char_boundary(at) {
        at += 1;
    }
    format!("...{}", &s[at..])
}
