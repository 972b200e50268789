//! The figures that need a walk of a volume's rows or changes, computed in the background
//! and cached: the bytes unique to each live volume (`tandem_volume_unique_bytes`: what only
//! the live volume references, the figure `tandem df` shows as UNIQUE, chunks whose one
//! reference is the volume's live data; see `crate::fs::groups::VolumeSpace`), and, summed
//! per volume, the bytes each of its snapshots alone holds
//! (`tandem_volume_snapshot_unique_bytes`: what deleting that snapshot frees, as `tandem
//! snapshot info` shows it).
//!
//! Why in the background: the store keeps a reference count per chunk, not who holds it,
//! so whether a chunk is unique to a volume changes when *another* volume, a clone, a copy
//! or a snapshot delete takes or drops a reference; the commit path cannot keep a per
//! volume figure without an owner index it does not have. The live figure is a walk of the
//! volume's live rows with one chunk lookup each: O(rows); a snapshot's is a walk of the
//! changes around it: O(changes), for every snapshot. Both are too much for every scrape of
//! a large pool. So a scrape only reads the figures cached here (and their ages) and, when
//! they are due, starts a pass on a thread of its own that computes them again.
//!
//! When a pass is due: something committed since the last complete pass started (the
//! store's writer counts the jobs it finished, snapshot creates and deletes included;
//! nothing finished: the figures are still exact and their ages restart), and the last pass
//! ended at least [`GAP_FACTOR`] times its own length ago, and at least [`MIN_GAP`]. A pass
//! therefore takes at most about 1/20 of one core however large the pool, and a small
//! pool's figures follow its writes within a second or two of a scrape.
//!
//! Invariants: a pass only reads (each volume, and each snapshot member, in its own read
//! transaction: no flush, no commit, nothing the FUSE data path waits for); one pass at a
//! time; a pass holds the engine only while it reads one volume or one snapshot member, and
//! stops within one row or one snapshot member when the endpoint goes ([`Unique::stop`],
//! before the daemon closes the pool). A figure is shown with the age of what it describes
//! (`tandem_volume_unique_age_seconds`, `tandem_volume_snapshot_unique_age_seconds`); a
//! volume created since the last pass has none yet, and a figure that could not be read
//! keeps its older value and age.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::fs::Engine;
use crate::store::catalog::SnapshotRecord;
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

/// One volume's figures (each absent until a pass computed it).
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    /// Bytes only the live volume references.
    live: Option<Figure>,
    /// Bytes each of the volume's snapshots alone holds, summed over them.
    snapshots: Option<Figure>,
}

#[derive(Debug)]
struct State {
    figures: HashMap<VolumeId, Figures>,
    running: bool,
    /// No pass starts before this.
    not_before: Instant,
    /// The writer's finished jobs when the last pass that read every figure started
    /// (`None`: no such pass yet, or the last one failed or stopped).
    exact_at: Option<u64>,
    /// The last pass could not read a figure (logged).
    failed: bool,
    worker: Option<std::thread::JoinHandle<()>>,
}

/// The background figures of the pool's live volumes, as the last pass found them.
#[derive(Debug)]
pub(super) struct Unique {
    engine: Weak<Engine>,
    state: Mutex<State>,
    stop: AtomicBool,
}

/// One figure at a scrape.
#[derive(Debug, Clone, Copy)]
pub(super) struct Shown {
    pub bytes: u64,
    pub age_seconds: f64,
}

/// One volume's figures at a scrape.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cached {
    /// `tandem_volume_unique_bytes`.
    pub live: Option<Shown>,
    /// `tandem_volume_snapshot_unique_bytes`.
    pub snapshots: Option<Shown>,
}

/// How reading one figure went.
enum Read {
    Got(u64),
    /// The endpoint is going, or the engine is gone: the pass ends.
    Stopped,
    /// The reason (logged by the caller, with what it was reading).
    Failed(String),
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

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// The figures now (by volume id), and whether the last pass failed somewhere; starts
    /// a pass when one is due (it runs after this returns: the scrape does not wait).
    /// O(volumes): nothing here reads the pool but the writer's job count.
    pub(super) fn scrape(self: &Arc<Self>, e: &Engine) -> (HashMap<VolumeId, Cached>, bool) {
        let now = Instant::now();
        let done = e.store().jobs_done();
        let mut st = self.lock();
        if !st.running {
            if st.exact_at == Some(done) {
                // Nothing committed since the last full pass started: still exact.
                for f in st.figures.values_mut() {
                    for fig in [&mut f.live, &mut f.snapshots].into_iter().flatten() {
                        fig.at = now;
                    }
                }
            } else if now >= st.not_before && !self.stopping() {
                self.start(&mut st);
            }
        }
        let show = |f: Option<Figure>| {
            f.map(|f| Shown {
                bytes: f.bytes,
                age_seconds: now.saturating_duration_since(f.at).as_secs_f64(),
            })
        };
        let shown = st
            .figures
            .iter()
            .map(|(&id, f)| {
                let cached = Cached {
                    live: show(f.live),
                    snapshots: show(f.snapshots),
                };
                (id, cached)
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

    /// Computes every live volume's figures again.
    fn pass(&self) {
        let started = Instant::now();
        let mut marker = 0;
        let mut fresh = HashMap::new();
        let mut failed = false;
        let mut complete = false;
        // The marker before any read: a commit that finishes later changes it.
        let listed = self.engine.upgrade().map(|e| {
            marker = e.store().jobs_done();
            let snaps_at = Instant::now();
            (e.committed_volumes(), e.snapshots(), snaps_at)
        });
        match listed {
            None => {}
            Some((Err(err), _, _)) => {
                tracing::warn!("metrics: cannot list the volumes for their unique bytes: {err}");
                failed = true;
            }
            Some((Ok(vols), snaps, snaps_at)) => {
                let members = match snaps {
                    Ok(snaps) => Some(members_by_volume(snaps)),
                    Err(err) => {
                        tracing::warn!(
                            "metrics: cannot list the snapshots for their unique bytes: {err}"
                        );
                        failed = true;
                        None
                    }
                };
                complete = true;
                for v in vols {
                    // A figure that cannot be read keeps its older value (and that age).
                    let old = self.lock().figures.get(&v.id).copied().unwrap_or_default();
                    let at = Instant::now();
                    let live = match self.live(v.id) {
                        Read::Got(bytes) => Some(Figure { bytes, at }),
                        Read::Stopped => {
                            complete = false;
                            break;
                        }
                        Read::Failed(err) => {
                            tracing::warn!(
                                "metrics: cannot read the unique bytes of volume '{}': {err}",
                                v.name
                            );
                            failed = true;
                            old.live
                        }
                    };
                    let snapshots = match &members {
                        None => old.snapshots,
                        Some(members) => {
                            let of_v = members.get(&v.id).map(Vec::as_slice).unwrap_or_default();
                            match self.snapshots(of_v) {
                                Read::Got(bytes) => Some(Figure {
                                    bytes,
                                    at: snaps_at,
                                }),
                                Read::Stopped => {
                                    complete = false;
                                    break;
                                }
                                Read::Failed(err) => {
                                    tracing::warn!(
                                        "metrics: cannot read the unique bytes of a snapshot of volume '{}': {err}",
                                        v.name
                                    );
                                    failed = true;
                                    old.snapshots
                                }
                            }
                        }
                    };
                    fresh.insert(v.id, Figures { live, snapshots });
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

    /// The bytes only the live volume `vol` references (its own read transaction).
    fn live(&self, vol: VolumeId) -> Read {
        let Some(e) = self.engine.upgrade() else {
            return Read::Stopped;
        };
        if self.stopping() {
            return Read::Stopped;
        }
        let mut go_on = || !self.stopping();
        match e.committed_volume_space(vol, &mut go_on) {
            Ok(Some(space)) => Read::Got(space.unique),
            Ok(None) => Read::Stopped,
            Err(err) => Read::Failed(err.to_string()),
        }
    }

    /// The bytes each of `members` (one-member snapshot records of one volume) alone holds,
    /// summed (a read transaction each).
    fn snapshots(&self, members: &[SnapshotRecord]) -> Read {
        let mut total = 0;
        for one in members {
            let Some(e) = self.engine.upgrade() else {
                return Read::Stopped;
            };
            if self.stopping() {
                return Read::Stopped;
            }
            match e.snapshot_exclusive_bytes(one) {
                Ok(b) => total += b,
                Err(err) => return Read::Failed(format!("'{}': {err}", one.name)),
            }
        }
        Read::Got(total)
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

/// Each snapshot member as a snapshot of its own (what `Engine::snapshot_exclusive_bytes`
/// reads), by volume.
fn members_by_volume(snaps: Vec<SnapshotRecord>) -> HashMap<VolumeId, Vec<SnapshotRecord>> {
    let mut out: HashMap<VolumeId, Vec<SnapshotRecord>> = HashMap::new();
    for mut s in snaps {
        let members = std::mem::take(&mut s.members);
        for m in members {
            let vol = m.vol;
            let one = SnapshotRecord {
                members: vec![m],
                ..s.clone()
            };
            out.entry(vol).or_default().push(one);
        }
    }
    out
}
