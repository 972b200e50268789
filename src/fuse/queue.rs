//! The per-volume request queue: mutating FUSE requests of one mount go through a
//! crossbeam channel to worker threads, past a [`Gate`] that a group freeze closes.
//!
//! While the gate is open a request runs at once on the session thread that received it
//! (every thread hop costs latency the kernel round trip already pays for); while it is
//! closed, requests go into the queue and wait there, in order, for the gate to open.
//!
//! Invariants: a closed gate lets no new mutating request start; `inflight` counts the
//! requests executing now, so a freeze knows when the volume is quiet. Reads never enter the
//! queue (the adapter serves them on the session threads), so they never wait behind a freeze.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

#[derive(Default)]
struct GateState {
    closed: bool,
    inflight: usize,
    /// Requests received while closed and waiting for the gate to open.
    held: usize,
}

/// Lets mutating requests through one at a time per worker; closed during a freeze.
#[derive(Default)]
pub struct Gate {
    state: Mutex<GateState>,
    cv: Condvar,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits while the gate is closed, then counts the caller as in flight.
    pub fn enter(&self) {
        let mut s = self.lock();
        if s.closed {
            s.held += 1;
            while s.closed {
                s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
            }
            s.held -= 1;
        }
        s.inflight += 1;
    }

    /// Counts the caller as in flight if the gate is open; false (and nothing counted) if
    /// it is closed, in which case the request must go to the queue and wait there.
    pub fn try_enter(&self) -> bool {
        let mut s = self.lock();
        if s.closed {
            return false;
        }
        s.inflight += 1;
        true
    }

    pub fn leave(&self) {
        let mut s = self.lock();
        s.inflight = s.inflight.saturating_sub(1);
        if s.inflight == 0 {
            self.cv.notify_all();
        }
    }

    /// Stops new mutating requests from starting (they wait at the gate).
    pub fn close(&self) {
        self.lock().closed = true;
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

    /// Lets waiting and new requests through again.
    pub fn open(&self) {
        self.lock().closed = false;
        self.cv.notify_all();
    }

    /// Requests held at the closed gate right now.
    pub fn held(&self) -> usize {
        self.lock().held
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The queue is shut down (the mount is going away); the request was dropped.
#[derive(Debug, thiserror::Error)]
#[error("the volume's request queue is shut down")]
pub struct QueueClosed;

/// One mount's queue of mutating requests and the workers that serve it.
pub struct VolumeQueue {
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
            let (rx, gate) = (rx.clone(), gate.clone());
            handles.push(
                std::thread::Builder::new()
                    .name(format!("tandem-q-{name}-{i}"))
                    .spawn(move || {
                        while let Ok(job) = rx.recv() {
                            gate.enter();
                            job();
                            gate.leave();
                        }
                    })?,
            );
        }
        Ok(VolumeQueue {
            tx: Some(tx),
            gate,
            workers: handles,
        })
    }

    /// Runs a mutating request: at once on the calling thread while the gate is open (no
    /// thread hop on the hot path), else queued to wait for the gate with the others.
    pub fn submit(&self, job: impl FnOnce() + Send + 'static) -> Result<(), QueueClosed> {
        if self.gate.try_enter() {
            job();
            self.gate.leave();
            return Ok(());
        }
        self.enqueue(job)
    }

    /// Queues a mutating request for the workers. Fails only if the queue is shut down.
    pub fn enqueue(&self, job: impl FnOnce() + Send + 'static) -> Result<(), QueueClosed> {
        match &self.tx {
            Some(tx) => tx.send(Box::new(job)).map_err(|_| QueueClosed),
            None => Err(QueueClosed),
        }
    }

    /// Stops taking requests and joins the workers after they finish what is queued.
    pub fn shutdown(&mut self) {
        self.gate.open();
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

    #[test]
    fn closed_gate_holds_requests_until_opened() {
        let q = VolumeQueue::new("t", 2).unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        q.gate.close();
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
        q.gate.open();
        let deadline = Instant::now() + Duration::from_secs(5);
        while done.load(Ordering::SeqCst) < 4 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(done.load(Ordering::SeqCst), 4);
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
        q.gate.close();
        assert!(
            !q.gate
                .wait_drained(Instant::now() + Duration::from_millis(50))
        );
        q.gate.open();
        drop(tx);
    }
}
