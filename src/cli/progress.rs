//! Progress of the long jobs (restore, clone, volume delete, deleting many snapshots,
//! verify) on stderr, through indicatif.
//!
//! Invariants: a bar is drawn only when stdout and stderr are both terminals and the
//! command was not asked for `--json` (scripts and pipes get exactly the output they got
//! before, nothing more); it is cleared when the job ends, so only the command's own lines
//! stay on the screen. Jobs that the daemon runs behind one control request (restore,
//! clone, volume delete) have no progress to report: they get a spinner with the elapsed
//! time. Jobs with steps the CLI sees get a counted bar (snapshots deleted, bytes verified).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// How often a spinner turns (and its elapsed time is redrawn).
const TICK: Duration = Duration::from_millis(100);

/// Whether a bar may be drawn: a person watches (stdout and stderr are terminals) and the
/// output is not `--json`.
pub fn wanted(json: bool) -> bool {
    !json && std::io::stdout().is_terminal() && std::io::stderr().is_terminal()
}

/// A job's progress on stderr, or nothing (see [`wanted`]).
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// Nothing drawn (a job too small for a bar).
    pub fn none() -> Progress {
        Progress(None)
    }

    /// A spinner with `msg` and the elapsed time, turning until the job ends.
    pub fn spinner(json: bool, msg: impl Into<String>) -> Progress {
        if !wanted(json) {
            return Progress(None);
        }
        let bar = ProgressBar::new_spinner().with_message(msg.into());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            bar.set_style(style);
        }
        // Drawn now (a short job is seen too), then turning on its own.
        bar.tick();
        bar.enable_steady_tick(TICK);
        Progress(Some(bar))
    }

    /// A bar of `total` steps (`unit`: what a step is, e.g. "snapshots").
    pub fn steps(json: bool, total: u64, msg: impl Into<String>) -> Progress {
        Progress::counted(json, total, msg, "[{bar:30}] {pos}/{len} {msg} ({elapsed})")
    }

    /// A bar over `total` bytes with the rate.
    pub fn bytes(json: bool, total: u64, msg: impl Into<String>) -> Progress {
        Progress::counted(
            json,
            total,
            msg,
            "[{bar:30}] {bytes}/{total_bytes} {msg} ({bytes_per_sec}, {elapsed})",
        )
    }

    fn counted(json: bool, total: u64, msg: impl Into<String>, template: &str) -> Progress {
        if !wanted(json) {
            return Progress(None);
        }
        let bar = ProgressBar::new(total).with_message(msg.into());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.tick();
        bar.enable_steady_tick(TICK);
        Progress(Some(bar))
    }

    /// Whether this one is drawn.
    pub fn shown(&self) -> bool {
        self.0.is_some()
    }

    pub fn set(&self, pos: u64, total: u64) {
        if let Some(b) = &self.0 {
            b.set_length(total);
            b.set_position(pos);
        }
    }

    pub fn inc(&self) {
        if let Some(b) = &self.0 {
            b.inc(1);
        }
    }

    pub fn set_message(&self, msg: impl Into<String>) {
        if let Some(b) = &self.0 {
            b.set_message(msg.into());
        }
    }

    /// Runs `f` (which prints a line of the command's output) with the bar out of the way.
    pub fn above<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.0 {
            Some(b) => b.suspend(f),
            None => f(),
        }
    }
}

impl Drop for Progress {
    /// The bar goes when the job ends, whether it succeeded or not.
    fn drop(&mut self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}
