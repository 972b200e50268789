//! The bytes unique to each live volume (`tandem_volume_unique_bytes`): what only the live
//! volume references, the figure `tandem df` shows as UNIQUE (chunks whose one reference
//! is the volume's live data; see `crate::fs::groups::VolumeSpace`).
//!
//! Why in the background: the store keeps a reference count per chunk, not who holds it,
//! so whether a chunk is unique to a volume changes when *another* volume, a clone, a copy
//! or a snapshot delete takes or drops a reference; the commit path cannot keep a per
//! volume figure without an owner index it does not have. The figure is a walk of the
//! volume's live rows with one chunk lookup each: O(rows), too much for every scrape of a
//! large pool. So a scrape only reads the figures cached here (and their age) and, when
//! they are due, starts a pass on a thread of its own that computes them again.
//!
//! When a pass is due: something committed since the last complete pass started (the
//! store's writer counts the jobs it finished; nothing finished: the figures are still
//! exact and their age restarts), and the last pass ended at least [`GAP_FACTOR`] times its own
//! length ago, and at least [`MIN_GAP`]. A pass therefore takes at most about 1/20 of one
//! core however large the pool, and a small pool's figures follow its writes within a
//! second or two of a scrape.
//!
//! Invariants: a pass only reads (each volume in its own read transaction: no flush, no
//! commit, nothing the FUSE data path waits for); one pass at a time; a pass holds the
//! engine only while it reads one volume, and stops within one row when the endpoint goes
//! ([`Unique::stop`], before the daemon closes the pool). A figure is shown with the age
//! of what it describes (`tandem_volume_unique_age_seconds`); a volume created since the
//! last pass has none yet.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::fs::Engine;
use crate::types::VolumeId;

/// The shortest time between the end of a pass and the start of the next.
const MIN_GAP: Duration = Duration::from_secs(1);
/// A pass that took `t` is followed by at least `GAP_FACTOR * t` without one.
const GAP_FACTOR: u32 = 20;

#[derive(Debug, Clone, Copy)]
struct Figure {
    bytes: u64,
    /// When the pool was last known to be as the figure describes it.
    at: Instant,
}

#[derive(Debug)]
struct State {
    figures: HashMap<VolumeId, Figure>,
    running: bool,
    /// No pass starts before this.
    not_before: Instant,
    /// The writer's finished jobs when the last pass that read every volume started
    /// (`None`: no such pass yet, or the last one failed or stopped).
    exact_at: Option<u64>,
    /// The last pass could not read a volume (logged).
    failed: bool,
    worker: Option<std::thread::JoinHandle<()>>,
}

/// The unique bytes of the pool's live volumes, as the last pass found them.
#[derive(Debug)]
pub(super) struct Unique {
    engine: Weak<Engine>,
    state: Mutex<State>,
    stop: AtomicBool,
}

/// The figure of one volume at a scrape.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shown {
    pub bytes: u64,
    pub age_seconds: f64,
}

impl Unique {
    pub(super) fn new(engine: Weak<Engine>) -> Arc<Unique> {
        Arc::new(Unique {
            engine,
            state: Mutex::new(State {
                figures: HashMap::new(),
                running: false,
                not_before: Instant::now(),
                exact_at: None,
                failed: false,
                worker: None,
            }),
            stop: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The figures now (by volume id), and whether the last pass failed somewhere; starts
    /// a pass when one is due (it runs after this returns: the scrape does not wait).
    pub(super) fn scrape(self: &Arc<Self>, e: &Engine) -> (HashMap<VolumeId, Shown>, bool) {
        let now = Instant::now();
        let done = e.store().jobs_done();
        let mut st = self.lock();
        if !st.running {
            if st.exact_at == Some(done) {
                // Nothing committed since the last full pass started: still exact.
                for f in st.figures.values_mut() {
                    f.at = now;
                }
            } else if now >= st.not_before && !self.stop.load(Ordering::Acquire) {
                self.start(&mut st);
            }
        }
        let shown = st
            .figures
            .iter()
            .map(|(&id, f)| {
                let age_seconds = now.saturating_duration_since(f.at).as_secs_f64();
                (
                    id,
                    Shown {
                        bytes: f.bytes,
                        age_seconds,
                    },
                )
            })
            .collect();
        (shown, st.failed)
    }

    fn start(self: &Arc<Self>, st: &mut State) {
        if let Some(done) = st.worker.take() {
            // It ended (not running): this only reaps it.
            let _ = done.join();
        }
        let me = self.clone();
        match std::thread::Builder::new()
            .name("tandem-unique".into())
            .spawn(move || me.pass())
        {
            Ok(t) => {
                st.running = true;
                st.worker = Some(t);
            }
            Err(e) => {
                tracing::warn!("metrics: cannot start the unique bytes pass: {e}");
                st.not_before = Instant::now() + MIN_GAP;
            }
        }
    }

    /// Computes every live volume's figure again.
    fn pass(&self) {
        let started = Instant::now();
        let mut marker = 0;
        let mut fresh = HashMap::new();
        let mut failed = false;
        let mut complete = false;
        // The marker before any read: a commit that finishes later changes it.
        let vols = self.engine.upgrade().map(|e| {
            marker = e.store().jobs_done();
            e.committed_volumes()
        });
        match vols {
            None => {}
            Some(Err(err)) => {
                tracing::warn!("metrics: cannot list the volumes for their unique bytes: {err}");
                failed = true;
            }
            Some(Ok(vols)) => {
                complete = true;
                for v in vols {
                    let Some(e) = self.engine.upgrade() else {
                        complete = false;
                        break;
                    };
                    if self.stop.load(Ordering::Acquire) {
                        complete = false;
                        break;
                    }
                    let at = Instant::now();
                    let mut go_on = || !self.stop.load(Ordering::Acquire);
                    match e.committed_volume_space(v.id, &mut go_on) {
                        Ok(Some(space)) => {
                            fresh.insert(
                                v.id,
                                Figure {
                                    bytes: space.unique,
                                    at,
                                },
                            );
                        }
                        Ok(None) => {
                            complete = false;
                            break;
                        }
                        Err(err) => {
                            tracing::warn!(
                                "metrics: cannot read the unique bytes of volume '{}': {err}",
                                v.name
                            );
                            failed = true;
                            // It keeps its older figure (and that figure's age).
                            if let Some(f) = self.lock().figures.get(&v.id).copied() {
                                fresh.insert(v.id, f);
                            }
                        }
                    }
                }
            }
        }
        let took = started.elapsed();
        let mut st = self.lock();
        if complete {
            // Every volume that exists now, and only those.
            st.figures = fresh;
        } else {
            st.figures.extend(fresh);
        }
        st.exact_at = (complete && !failed).then_some(marker);
        st.failed = failed;
        st.not_before = Instant::now() + MIN_GAP.max(took * GAP_FACTOR);
        st.running = false;
        tracing::debug!(
            "metrics: unique bytes pass took {:.3} ms",
            took.as_secs_f64() * 1e3
        );
    }

    /// Stops a pass under way and waits for it (the endpoint is going).
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let worker = self.lock().worker.take();
        if let Some(t) = worker
            && t.join().is_err()
        {
            tracing::error!("the unique bytes thread panicked");
        }
    }
}
