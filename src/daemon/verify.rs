//! `pool verify` and `snapshot verify` in the daemon: both send progress when asked, and
//! stop when their client hangs up or the daemon shuts down ([`Watch`]). A pool verify runs
//! one at a time; `TANDEM_TEST_VERIFY_CHUNK_DELAY_MS` (tests only) makes either pause that
//! long per progress call (per chunk for the pool, per batch of chunks for a snapshot).

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::control::server::Peer;
use crate::control::{Envelope, PROTOCOL_VERSION, Reply, Response};
use crate::store::verify::{VerifyProgress, verify_with};

use super::{Daemon, ServiceError};

/// Shortest interval between two progress lines.
const MIN_PROGRESS: Duration = Duration::from_millis(10);
/// How often a running verify looks whether its client hung up.
const HANGUP_POLL: Duration = Duration::from_millis(50);

/// Watches a running verify: sends its progress about every `every`, and breaks it off
/// when the client went away or the daemon is stopping (`why` says which).
struct Watch<'a, 'p> {
    stop: &'a AtomicBool,
    peer: &'a mut Peer<'p>,
    every: Option<Duration>,
    delay: Option<Duration>,
    last_sent: Option<Instant>,
    last_look: Instant,
    seen: VerifyProgress,
    why: &'static str,
}

fn progress_line(p: &VerifyProgress) -> Option<String> {
    serde_json::to_string(&Envelope {
        version: PROTOCOL_VERSION,
        body: Response::Progress(p.clone()),
    })
    .ok()
}

impl<'a, 'p> Watch<'a, 'p> {
    fn new(stop: &'a AtomicBool, peer: &'a mut Peer<'p>, progress_ms: Option<u64>) -> Self {
        Watch {
            stop,
            peer,
            every: progress_ms.map(|ms| Duration::from_millis(ms).max(MIN_PROGRESS)),
            delay: std::env::var("TANDEM_TEST_VERIFY_CHUNK_DELAY_MS")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .map(Duration::from_millis),
            last_sent: None,
            last_look: Instant::now(),
            seen: VerifyProgress::default(),
            why: "",
        }
    }

    fn tick(&mut self, p: &VerifyProgress) -> ControlFlow<()> {
        self.seen = p.clone();
        if let Some(d) = self.delay {
            std::thread::sleep(d);
        }
        if self.stop.load(Ordering::Acquire) {
            self.why = "the daemon is shutting down";
            return ControlFlow::Break(());
        }
        let now = Instant::now();
        if let Some(every) = self.every
            && self
                .last_sent
                .is_none_or(|t| now.duration_since(t) >= every)
        {
            self.last_sent = Some(now);
            if let Some(line) = progress_line(p)
                && self.peer.send(&line).is_err()
            {
                self.why = "its client went away";
                return ControlFlow::Break(());
            }
        }
        if now.duration_since(self.last_look) >= HANGUP_POLL {
            self.last_look = now;
            if self.peer.hung_up() {
                self.why = "its client went away";
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    /// Where it stopped, for a client that still reads (it only withdrew); the message.
    fn interrupted(&mut self, what: &str, again: &str) -> String {
        if self.every.is_some()
            && let Some(line) = progress_line(&self.seen)
        {
            let _ = self.peer.send(&line);
        }
        let s = &self.seen;
        let message = format!(
            "{what} interrupted after {} of {} chunks ({:.0}% of the bytes, {} bad so far): {}; run it again to verify {again}",
            s.chunks,
            s.total_chunks,
            s.percent(),
            s.bad_chunks,
            self.why
        );
        tracing::info!("{message}");
        message
    }
}

impl Daemon {
    /// `pool verify`, sending progress about every `progress_ms` when set; stops when the
    /// client hangs up or the daemon shuts down.
    pub(super) fn verify(
        &self,
        progress_ms: Option<u64>,
        peer: &mut Peer,
    ) -> Result<Reply, ServiceError> {
        if self
            .verifying
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(ServiceError::VerifyRunning(self.pool.clone()));
        }
        /// Clears the flag however the scrub ends.
        struct Running<'a>(&'a AtomicBool);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let _running = Running(&self.verifying);
        tracing::info!("pool verify started");
        let mut watch = Watch::new(&self.stop, peer, progress_ms);
        let outcome = verify_with(self.engine.store(), &mut |p| watch.tick(p));
        match outcome {
            Ok(Some(rep)) => {
                tracing::info!(
                    "pool verify done: {} chunks, {} bad, {} damaged files",
                    rep.chunks,
                    rep.bad_chunks.len(),
                    rep.damaged.len()
                );
                Ok(Reply::Verify(rep))
            }
            Ok(None) => Err(ServiceError::VerifyInterrupted(
                watch.interrupted("pool verify", "the whole pool"),
            )),
            Err(e) => Err(ServiceError::Verify(e)),
        }
    }

    /// `snapshot verify NAME`: as `pool verify`, for the chunks one snapshot references,
    /// and its root recomputed.
    pub(super) fn verify_snapshot(
        &self,
        name: &str,
        progress_ms: Option<u64>,
        peer: &mut Peer,
    ) -> Result<Reply, ServiceError> {
        tracing::info!("snapshot verify of '{name}' started");
        let mut watch = Watch::new(&self.stop, peer, progress_ms);
        match crate::snapshot::verify::verify(&self.engine, name, &mut |p| watch.tick(p))? {
            Some(rep) => {
                tracing::info!(
                    "snapshot verify of '{name}' done: {} chunks, root {}",
                    rep.chunks,
                    if rep.ok() {
                        "matches"
                    } else {
                        "DIFFERS or files damaged"
                    }
                );
                Ok(Reply::SnapshotVerify(Box::new(rep)))
            }
            None => Err(ServiceError::VerifyInterrupted(watch.interrupted(
                &format!("snapshot verify of '{name}'"),
                "the whole snapshot",
            ))),
        }
    }
}
