//! The per-volume request queue: mutating FUSE requests of one mount go through a
//! crossbeam channel to worker threads, past a [`Gate`] that a group freeze closes.
//!
//! While the gate is open a request runs at once on the session thread that received it
//! (every thread hop costs latency the kernel round trip already pays for); while it is
//! closed, requests go into the queue and wait there, in order, for the gate to open.
//!
//! Invariants:
//! - The gate counts its closers: it is closed while at least one [`Closed`] guard lives, so
//!   freezes may overlap (two snapshot commands, a snapshot and an online restore) and the
//!   first to thaw never reopens a gate the other still holds.
//! - A closed gate lets no new mutating request start; `inflight` counts the requests
//!   executing now, so a freeze knows when the volume is quiet. A request's passage is a
//!   [`Passage`] guard, and every job runs under `catch_unwind`: a panicking job is logged,
//!   its request answered EIO (fuser answers a dropped reply with EIO) and the count comes
//!   back down, so later freezes of the volume still drain.
//! - Reads never enter the queue (the adapter serves them on the session threads), so they
//!   never wait behind a freeze.
//! - Work a request leaves for after its answer ([`After`]: a write's flush of a buffer past
//!   its limit) runs on the same thread once the request has left the gate: the writer
//!   still waits for it, a freeze does not.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

#[derive(Default)]
struct GateState {
    /// Freezes holding the gate closed right now.
    closers: usize,
    /// The mount is going away: the gate stays open whatever the closers.
    released: bool,
    inflight: usize,
    /// Requests received while closed and waiting for the gate to open.
    held: usize,
}

impl GateState {
    fn closed(&self) -> bool {
        self.closers > 0 && !self.released
    }
}

/// Lets mutating requests through; closed while any freeze holds it.
#[derive(Default)]
pub struct Gate {
    state: Mutex<GateState>,
    cv: Condvar,
}

/// One request passing the gate: counted in flight until dropped (also on a panic).
#[must_use = "the request counts as in flight only while its passage lives"]
pub struct Passage<'a> {
    gate: &'a Gate,
}

impl Drop for Passage<'_> {
    fn drop(&mut self) {
        let mut s = self.gate.lock();
        s.inflight = s.inflight.saturating_sub(1);
        if s.inflight == 0 {
            self.gate.cv.notify_all();
        }
    }
}

/// One freeze's hold on a gate: the gate stays closed until every such guard is dropped.
#[must_use = "the gate reopens when this guard is dropped"]
pub struct Closed {
    gate: Arc<Gate>,
}

impl Drop for Closed {
    fn drop(&mut self) {
        let mut s = self.gate.lock();
        s.closers = s.closers.saturating_sub(1);
        if !s.closed() {
            self.gate.cv.notify_all();
        }
    }
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits while the gate is closed, then counts the caller as in flight.
    pub fn enter(&self) -> Passage<'_> {
        let mut s = self.lock();
        if s.closed() {
            s.held += 1;
            while s.closed() {
                s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            s.held -= 1;
        }
        s.inflight += 1;
        Passage { gate: self }
    }

    /// Counts the caller as in flight if the gate is open; None (and nothing counted) if
    /// it is closed, in which case the request must go to the queue and wait there.
    pub fn try_enter(&self) -> Option<Passage<'_>> {
        let mut s = self.lock();
        if s.closed() {
            return None;
        }
        s.inflight += 1;
        Some(Passage { gate: self })
    }

    /// Stops new mutating requests from starting (they wait at the gate) until the
    /// returned guard, and every other closer's, is dropped.
    pub fn close(self: &Arc<Self>) -> Closed {
        self.lock().closers += 1;
        Closed { gate: self.clone() }
    }

    /// Waits until no mutating request is executing; false if `deadline` passed first.
    pub fn wait_drained(&self, deadline: Instant) -> bool {
        let mut s = self.lock();
        while s.inflight > 0 {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            s = self
                .cv
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// The mount is going away: lets waiting and new requests through for good, whatever
    /// freezes still hold the gate (their guards then change nothing).
    pub fn release(&self) {
        self.lock().released = true;
        self.cv.notify_all();
    }

    /// True while at least one freeze holds the gate.
    pub fn is_closed(&self) -> bool {
        self.lock().closed()
    }

    /// Requests held at the closed gate right now.
    pub fn held(&self) -> usize {
        self.lock().held
    }
}

/// Work a request leaves for after it answered and left the gate (a freeze does not wait
/// for it): a write's flush of a buffer past its limit.
pub type After = Box<dyn FnOnce() + Send>;
type Job = Box<dyn FnOnce() -> Option<After> + Send>;

/// Runs one job; a panic is logged and contained (the job's reply, dropped unanswered
/// while unwinding, answers the kernel EIO).
fn run_job(volume: &str, job: impl FnOnce() -> Option<After>) -> Option<After> {
    match catch_unwind(AssertUnwindSafe(job)) {
        Ok(after) => after,
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            tracing::error!(
                "volume '{volume}': a request panicked ({what}); answered EIO, the volume keeps serving"
            );
            None
        }
    }
}

/// Runs a job, then (outside the gate) what it left for after.
fn run_passing(passage: Passage<'_>, volume: &str, job: impl FnOnce() -> Option<After>) {
    let after = run_job(volume, job);
    drop(passage);
    if let Some(after) = after {
        run_job(volume, move || {
            after();
            None
        });
    }
}

/// The queue is shut down (the mount is going away); the request was dropped.
#[derive(Debug, thiserror::Error)]
#[error("the volume's request queue is shut down")]
pub struct QueueClosed;

/// One mount's queue of mutating requests and the workers that serve it.
pub struct VolumeQueue {
    name: String,
    tx: Option<Sender<Job>>,
    pub gate: Arc<Gate>,
    workers: Vec<JoinHandle<()>>,
}

impl VolumeQueue {
    pub fn new(name: &str, workers: usize) -> std::io::Result<VolumeQueue> {
        let (tx, rx): (Sender<Job>, Receiver<Job>) = crossbeam_channel::unbounded();
        let gate = Arc::new(Gate::default());
        let mut handles = Vec::with_capacity(workers);
        for i in 0..workers.max(1) {
            let (rx, gate, vol) = (rx.clone(), gate.clone(), name.to_string());
            handles.push(
                std::thread::Builder::new()
                    .name(format!("tandem-q-{name}-{i}"))
                    .spawn(move || {
                        while let Ok(job) = rx.recv() {
                            run_passing(gate.enter(), &vol, job);
                        }
                    })?,
            );
        }
        Ok(VolumeQueue {
            name: name.to_string(),
            tx: Some(tx),
            gate,
            workers: handles,
        })
    }

    /// Runs a mutating request: at once on the calling thread while the gate is open (no
    /// thread hop on the hot path), else queued to wait for the gate with the others.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) -> Result<(), QueueClosed> {
        self.submit_then(move || {
            job();
            None
        })
    }

    /// As [`VolumeQueue::submit`] for a job that may leave work for after it answered:
    /// that runs on the same thread once the request has left the gate.
    pub fn submit_then(
        &self,
        job: impl FnOnce() -> Option<After> + Send + 'static,
    ) -> Result<(), QueueClosed> {
        if let Some(passage) = self.gate.try_enter() {
            run_passing(passage, &self.name, job);
            return Ok(());
        }
        self.send(Box::new(job))
    }

    /// Queues a mutating request for the workers. Fails only if the queue is shut down.
    pub fn enqueue(&self, job: impl FnOnce() + Send + 'static) -> Result<(), QueueClosed> {
        self.send(Box::new(move || {
            job();
            None
        }))
    }

    fn send(&self, job: Job) -> Result<(), QueueClosed> {
        match &self.tx {
            Some(tx) => tx.send(job).map_err(|_| QueueClosed),
            None => Err(QueueClosed),
        }
    }

    /// Stops taking requests and joins the workers after they finish what is queued.
    pub fn shutdown(&mut self) {
        self.gate.release();
        self.tx.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for VolumeQueue {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// How long a freeze may wait for in-flight requests by default.
pub const DEFAULT_BARRIER_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn wait_for(done: &AtomicUsize, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while done.load(Ordering::SeqCst) < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn closed_gate_holds_requests_until_opened() {
        let q = VolumeQueue::new("t", 2).unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let closed = q.gate.close();
        // A request submitted while the gate is closed waits in the queue too.
        let d = done.clone();
        q.submit(move || {
            d.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        for _ in 0..3 {
            let d = done.clone();
            q.enqueue(move || {
                d.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            done.load(Ordering::SeqCst),
            0,
            "nothing runs while the gate is closed"
        );
        assert!(q.gate.wait_drained(Instant::now() + Duration::from_secs(1)));
        drop(closed);
        wait_for(&done, 4);
        assert_eq!(done.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn work_left_for_after_the_answer_runs_outside_the_gate() {
        let q = Arc::new(VolumeQueue::new("t", 1).unwrap());
        let (started_tx, started) = crossbeam_channel::bounded::<()>(1);
        let (release, released) = crossbeam_channel::bounded::<()>(0);
        let answered = Arc::new(AtomicUsize::new(0));
        let (qq, a) = (q.clone(), answered.clone());
        let submitter = std::thread::spawn(move || {
            qq.submit_then(move || {
                a.fetch_add(1, Ordering::SeqCst);
                let after: After = Box::new(move || {
                    let _ = started_tx.send(());
                    let _ = released.recv();
                });
                Some(after)
            })
            .unwrap();
        });
        started.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(
            answered.load(Ordering::SeqCst),
            1,
            "the job ran before its after-work"
        );
        // The after-work is still running: a freeze finds the volume quiet at once.
        let closed = q.gate.close();
        assert!(
            q.gate
                .wait_drained(Instant::now() + Duration::from_millis(200)),
            "a freeze must not wait for work left for after the answer"
        );
        drop(closed);
        drop(release);
        submitter.join().unwrap();
    }

    #[test]
    fn drain_times_out_on_a_stuck_request() {
        let q = VolumeQueue::new("t", 1).unwrap();
        let (tx, rx) = crossbeam_channel::bounded::<()>(0);
        q.enqueue(move || {
            let _ = rx.recv();
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let closed = q.gate.close();
        assert!(
            !q.gate
                .wait_drained(Instant::now() + Duration::from_millis(50))
        );
        drop(closed);
        drop(tx);
    }

    /// Two freezes overlap on one volume: A closes, B closes, A thaws. B still holds the
    /// gate: nothing mutating may start until B thaws too.
    #[test]
    fn overlapping_freezes_keep_the_gate_closed_until_the_last_thaws() {
        let q = VolumeQueue::new("t", 1).unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let a = q.gate.close();
        let b = q.gate.close();
        assert!(q.gate.wait_drained(Instant::now() + Duration::from_secs(1)));
        let d = done.clone();
        q.submit(move || {
            d.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        drop(a);
        assert!(q.gate.is_closed(), "freeze B still holds the gate");
        assert!(
            q.gate.try_enter().is_none(),
            "no mutating request starts while B holds the gate"
        );
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            done.load(Ordering::SeqCst),
            0,
            "the held request waits for B"
        );
        assert_eq!(q.gate.held(), 1);
        drop(b);
        assert!(!q.gate.is_closed());
        wait_for(&done, 1);
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }

    /// A panicking job, run inline or by a worker, is answered and forgotten: the volume
    /// drains for the next freeze and the worker keeps serving.
    #[test]
    fn a_panicking_job_neither_wedges_the_gate_nor_kills_the_worker() {
        let q = VolumeQueue::new("t", 1).unwrap();
        q.submit(|| panic!("inline job fails")).unwrap();
        {
            let _hold = q.gate.close();
            q.submit(|| panic!("queued job fails")).unwrap();
        }
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        q.enqueue(move || {
            d.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        wait_for(&done, 1);
        assert_eq!(
            done.load(Ordering::SeqCst),
            1,
            "the worker survived the panic"
        );
        let _freeze = q.gate.close();
        assert!(
            q.gate
                .wait_drained(Instant::now() + Duration::from_millis(500)),
            "a later freeze drains"
        );
    }
}
