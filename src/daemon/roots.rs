//! The root worker: records the Merkle root of every snapshot that has none, off the
//! snapshot's critical path. It is woken after each snapshot the daemon takes (the create
//! has answered by then: the round trip does not include it), once at start (a daemon that
//! stopped before recording a root catches up), and every [`SWEEP`] (snapshots taken by
//! any other path). It holds the engine only while it works, so shutdown never waits for
//! an idle worker; it stops between two snapshots when the daemon stops.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::fs::Engine;

/// How often the worker looks for snapshots without a root unasked.
const SWEEP: Duration = Duration::from_secs(30);

/// Starts the worker; dropping the returned sender stops it.
pub(super) fn start(
    engine: &Arc<Engine>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(Sender<()>, std::thread::JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::bounded::<()>(1);
    let weak = Arc::downgrade(engine);
    let _ = tx.try_send(());
    let handle = std::thread::Builder::new()
        .name("tandem-roots".into())
        .spawn(move || run(weak, rx, stop))?;
    Ok((tx, handle))
}

fn run(engine: Weak<Engine>, wake: Receiver<()>, stop: Arc<AtomicBool>) {
    loop {
        match wake.recv_timeout(SWEEP) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if stop.load(Ordering::Acquire) {
            return;
        }
        let Some(e) = engine.upgrade() else { return };
        match crate::snapshot::record_missing_roots(&e, &|| stop.load(Ordering::Acquire)) {
            Ok(0) => {}
            Ok(n) => tracing::debug!("recorded the root of {n} snapshot(s)"),
            Err(err) => tracing::warn!("recording snapshot roots: {err}"),
        }
    }
}
