//! `tandem pool ...`: `check` works on the pool's files without the daemon; `verify` asks
//! the daemon for a scrub of the pool it serves.
//!
//! `verify` (and `snapshot verify`, through [`with_progress`]) shows progress on stderr (never stdout, which carries the report or `--json`):
//! on a terminal an indicatif bar over the bytes (`super::progress`; one line refreshed
//! about every second when only stderr is a terminal, nothing on a terminal with `--json`), otherwise a plain line about every
//! 5 s once the scrub has run that long; `TANDEM_VERIFY_PROGRESS_MS` sets the interval.
//! Ctrl-C withdraws the request: the daemon stops the scrub and says how far it got, and the
//! command exits 130 (a second Ctrl-C exits at once).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Subcommand;

use super::esc;
use tandem::control::{ClientError, Request, expect};
use tandem::store::verify::VerifyProgress;

#[derive(Subcommand, Debug)]
pub enum PoolCmd {
    /// Check the pool's index against its pack files without the daemon (stop it first):
    /// what opening would find, and why it would refuse.
    Check {
        /// Move bytes the index does not account for aside (packs/*.tail-*, *.unindexed-*;
        /// never deleted) so that the pool opens at what its index records.
        #[arg(long)]
        set_aside: bool,
    },
    /// Scrub: re-read every stored chunk and check its blake3 id, check that every extent
    /// (live or kept for a snapshot) references a stored chunk; report each damaged file by
    /// volume and path. Exits 1 if anything is wrong. Shows progress on stderr; Ctrl-C stops
    /// the scrub (exit 130).
    Verify,
}

pub fn run_pool(pool: &Path, cmd: PoolCmd, as_json: bool) -> Result<()> {
    match cmd {
        PoolCmd::Check { set_aside } => {
            let rep = tandem::store::check::check(pool, set_aside)?;
            if as_json {
                super::json::emit(&serde_json::json!({
                    "pool": pool,
                    "opens": rep.problems.is_empty(),
                    "lines": rep.lines,
                    "problems": rep.problems,
                }))?;
            }
            for l in rep.lines.iter().filter(|_| !as_json) {
                outln!("{l}");
            }
            for p in rep.problems.iter().filter(|_| !as_json) {
                outln!("problem: {p}");
            }
            if !rep.problems.is_empty() {
                bail!(
                    "pool {} would be refused: {} problems (listed above)",
                    pool.display(),
                    rep.problems.len()
                );
            }
            if !as_json {
                outln!("pool {} opens", pool.display());
            }
        }
        PoolCmd::Verify => {
            let rep = verify(pool, as_json)?;
            if as_json {
                super::json::emit(&rep)?;
            } else {
                for b in &rep.bad_chunks {
                    outln!(
                        "bad chunk {} (pack {:08}.pack at {}): {}",
                        b.id,
                        b.pack,
                        b.offset,
                        b.problem
                    );
                }
                for d in &rep.damaged {
                    let which = if d.live {
                        "the live file".to_string()
                    } else {
                        format!(
                            "only versions kept for snapshots (generations {:?})",
                            d.generations
                        )
                    };
                    outln!(
                        "damaged: {}:{} ({which}): {}",
                        esc(&d.volume),
                        esc(&d.path),
                        d.problem
                    );
                }
                outln!(
                    "verified {} chunks ({} bytes) and {} extents",
                    rep.chunks,
                    rep.bytes,
                    rep.extents
                );
            }
            if !rep.ok() {
                bail!(
                    "pool {} is damaged: {} bad chunks, {} damaged files (listed above); restore them from a snapshot or backup",
                    pool.display(),
                    rep.bad_chunks.len(),
                    rep.damaged.len()
                );
            }
        }
    }
    Ok(())
}

/// Set by the first SIGINT.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Catches SIGINT into [`INTERRUPTED`]; a second SIGINT exits at once with 130.
fn catch_sigint() -> Result<()> {
    use signal_hook::consts::SIGINT;
    // The conditional exit first: it sees the flag as the first Ctrl-C left it.
    signal_hook::flag::register_conditional_shutdown(SIGINT, 130, &INTERRUPTED)
        .and_then(|_| signal_hook::flag::register(SIGINT, &INTERRUPTED))
        .map_err(|e| anyhow::anyhow!("cannot catch Ctrl-C for verify: {e}"))?;
    Ok(())
}

/// How long an interrupted verify waits for the daemon to say it stopped.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs the scrub in the daemon, showing progress on stderr, until it ends or Ctrl-C.
fn verify(pool: &Path, json: bool) -> Result<tandem::store::verify::VerifyReport> {
    with_progress(
        pool,
        json,
        |progress_ms| Request::PoolVerify { progress_ms },
        "pool verify",
        "the whole pool",
    )
}

/// Sends a request that reports progress (`pool verify`, `snapshot verify`), showing it on
/// stderr, until it ends or Ctrl-C (then an [`super::Interrupted`] error saying how far
/// `what` got; `again` is what a new run would cover).
pub(super) fn with_progress<R: tandem::control::FromReply>(
    pool: &Path,
    json: bool,
    req: impl FnOnce(Option<u64>) -> Request,
    what: &str,
    again: &str,
) -> Result<R> {
    let tty = std::io::stderr().is_terminal();
    let bar = super::progress::Progress::bytes(json, 0, "verified");
    let every = std::env::var("TANDEM_VERIFY_PROGRESS_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(if tty { 1000 } else { 5000 });
    let mut c = super::connect_or_start(pool)?;
    catch_sigint()?;
    let mut last: Option<VerifyProgress> = None;
    let mut shown = false;
    let answer = c.call_with_progress(
        req(Some(every)),
        &mut |p| {
            last = Some(p.clone());
            if bar.shown() {
                bar.set(p.bytes, p.total_bytes);
                bar.set_message(format!(
                    "verified ({} of {} chunks, {} bad)",
                    p.chunks, p.total_chunks, p.bad_chunks
                ));
                return;
            }
            let mut err = std::io::stderr().lock();
            if tty && !json {
                let _ = write!(err, "\r\x1b[K{}", progress_line(p));
                shown = true;
            } else if p.elapsed_ms >= every {
                let _ = writeln!(err, "{}", progress_line(p));
            }
            let _ = err.flush();
        },
        &|| INTERRUPTED.load(Ordering::SeqCst),
        STOP_GRACE,
    );
    drop(bar);
    if shown {
        eprint!("\r\x1b[K");
    }
    let answer = answer.and_then(expect::<R>);
    // A verify that finished before the daemon saw the Ctrl-C still reports.
    if INTERRUPTED.load(Ordering::SeqCst) && answer.is_err() {
        let far = last.map_or("before any progress".into(), |p| {
            format!(
                "after {} of {} chunks ({:.0}% of the bytes, {} bad so far)",
                p.chunks,
                p.total_chunks,
                p.percent(),
                p.bad_chunks
            )
        });
        let stopped = match &answer {
            Err(ClientError::NoAnswer { .. }) => {
                "the daemon did not confirm that it stopped (see its daemon.log)"
            }
            _ => "the daemon stopped it",
        };
        return Err(super::Interrupted(format!(
            "{what} interrupted {far}; {stopped}; run it again to verify {again}"
        ))
        .into());
    }
    answer.map_err(super::client_error)
}

/// One line of progress: how much was re-read, and how fast.
fn progress_line(p: &VerifyProgress) -> String {
    let secs = p.elapsed_ms as f64 / 1000.0;
    let rate = if secs > 0.0 {
        format!(", {}/s", super::human((p.bytes as f64 / secs) as u64))
    } else {
        String::new()
    };
    let refs = if p.chunks == p.total_chunks && p.extents > 0 {
        format!("; {} extents checked", p.extents)
    } else {
        String::new()
    };
    format!(
        "verifying: {} of {} chunks, {} of {} ({:.0}%){rate}{refs}",
        p.chunks,
        p.total_chunks,
        super::human(p.bytes),
        super::human(p.total_bytes),
        p.percent()
    )
}
