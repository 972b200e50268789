//! The freeze: the one sequence that holds the member volumes of a snapshot create or an
//! online restore still while an action runs, so that the action sees (or replaces) every
//! member at one instant.
//!
//! [`run`] does, in this order: compute the barrier timeout (the lowest of the members'
//! `barrier-timeout`, 10 s if none is readable) → writers flush early ([`Tight`]) → flush
//! the members' write buffers, one thread per member (outside the freeze, so the freeze has
//! little left to copy or flush) → with `hold`, hold the members' background flushes and
//! wait for those in flight (`Engine::hold_flushes`: the action then never waits for one)
//! → close the request gate of every member mount at once → wait until no mutating request
//! is executing (on timeout: reopen and fail, the action never runs) → the action → reopen
//! the gates (the pause is measured from closing to reopening) → complete the action with
//! the writers running again (a create: hash what the pause copied, wait for its queued
//! transaction) → sync the store, only if both succeeded.
//!
//! Invariant: no path leaves a gate closed. The gates are held by [`Freeze`], whose drop
//! reopens them, so an error, a barrier timeout or a panic in the action reopens them too.
//! Freezes may overlap (two creates, a create and an online restore): each holds its own
//! closer guard on every gate, and a gate opens when its last closer lets go.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fs::{Engine, FsError};
use crate::fuse::Gate;
use crate::types::VolumeId;

use super::{MountView, limits};

/// What the action returned, and how long the gates were closed.
#[derive(Debug)]
pub(super) struct Frozen<T> {
    pub value: T,
    pub pause: Duration,
    /// How long each step took (see [`Steps`]).
    pub steps: Steps,
}

/// The freeze's steps, timed by the freeze itself, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Steps {
    /// Flushing the members' write buffers in parallel, before the freeze.
    pub pre_flush_us: u64,
    /// Closing every member's gate and waiting until no mutating request executes.
    pub drain_us: u64,
    /// Inside the freeze: the action (for a create: copying what came in since the
    /// pre-flush and queueing the one transaction).
    pub commit_us: u64,
    /// After the thaw: completing the action (for a create: hashing what the pause copied
    /// and waiting for its transaction). Absent from older daemons: zero.
    #[serde(default)]
    pub finish_us: u64,
    /// Gates closed to reopened.
    pub pause_us: u64,
    /// Making the action durable, after the thaw.
    pub sync_us: u64,
}

/// Why a freeze did not complete; the gates are open again in every case.
#[derive(Debug)]
pub(super) enum FreezeError<E> {
    /// The flush before the freeze, or the sync after it, failed.
    Fs(FsError),
    /// The member at this index in the caller's list did not quiesce within `timeout`;
    /// the action did not run.
    Barrier { volume: usize, timeout: Duration },
    /// The action failed (the gates were reopened, nothing was synced).
    Action(E),
}

/// The barrier timeout of a freeze of `vols`: the lowest of their settings.
pub(super) fn barrier_timeout(engine: &Engine, vols: &[VolumeId]) -> Duration {
    vols.iter()
        .filter_map(|v| limits(engine, *v).ok())
        .map(|l| l.barrier_timeout)
        .min()
        .unwrap_or(Duration::from_secs(10))
}

/// Runs `action` with every mount of `vols` frozen, then `complete` with its value once
/// they are thawed (see the module doc for the sequence; `hold` holds background flushes
/// of the members from before the freeze until the action lets go of them or the freeze
/// ends).
pub(super) fn run<T, U, E>(
    engine: &Engine,
    mounts: &dyn MountView,
    vols: &[VolumeId],
    hold: bool,
    action: impl FnOnce() -> Result<T, E>,
    complete: impl FnOnce(T) -> Result<U, E>,
) -> Result<Frozen<U>, FreezeError<E>> {
    let us = |t: Instant| t.elapsed().as_micros() as u64;
    let mut steps = Steps::default();
    let barrier = barrier_timeout(engine, vols);
    let _tight = Tight::on(engine, vols);
    let t = Instant::now();
    engine.flush_volumes(vols).map_err(FreezeError::Fs)?;
    steps.pre_flush_us = us(t);
    let _hold = hold.then(|| Hold::on(engine, vols));
    let freeze = Freeze::close(mounts, vols);
    let drained = freeze.drain(barrier);
    steps.drain_us = us(freeze.at);
    drained.map_err(|volume| FreezeError::Barrier {
        volume,
        timeout: barrier,
    })?;
    let t = Instant::now();
    let result = action();
    steps.commit_us = us(t);
    let pause = freeze.thaw();
    steps.pause_us = pause.as_micros() as u64;
    let t = Instant::now();
    let value = result.and_then(complete).map_err(FreezeError::Action)?;
    steps.finish_us = us(t);
    // Durable before the command returns, but after the writers resumed.
    let t = Instant::now();
    engine
        .store()
        .sync()
        .map_err(|e| FreezeError::Fs(FsError::from(e)))?;
    steps.sync_us = us(t);
    Ok(Frozen {
        value,
        pause,
        steps,
    })
}

/// The members' background flushes held while this lives (the action may let go of them
/// earlier: a create's seal does).
struct Hold<'a> {
    engine: &'a Engine,
    vols: Vec<VolumeId>,
}

impl<'a> Hold<'a> {
    fn on(engine: &'a Engine, vols: &[VolumeId]) -> Hold<'a> {
        engine.hold_flushes(vols, true);
        Hold {
            engine,
            vols: vols.to_vec(),
        }
    }
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.engine.hold_flushes(&self.vols, false);
    }
}

/// Writers of the members flush early while this lives (see `fs::VolState::tight`).
struct Tight<'a> {
    engine: &'a Engine,
    vols: Vec<VolumeId>,
}

impl<'a> Tight<'a> {
    fn on(engine: &'a Engine, vols: &[VolumeId]) -> Tight<'a> {
        engine.set_tight(vols, true);
        Tight {
            engine,
            vols: vols.to_vec(),
        }
    }
}

impl Drop for Tight<'_> {
    fn drop(&mut self) {
        self.engine.set_tight(&self.vols, false);
    }
}

/// The closed request gates of a set of volumes' mounts: one closer's hold on each (other
/// freezes of the same volumes may hold them too). Released by [`Freeze::thaw`] or,
/// whatever happens, on drop.
struct Freeze {
    /// (index of the volume in the caller's list, this freeze's hold on the gate)
    gates: Vec<(usize, Arc<Gate>, crate::fuse::queue::Closed)>,
    at: Instant,
}

impl Freeze {
    /// Closes every gate at once; from here on mutating requests wait in their queues.
    fn close(mounts: &dyn MountView, vols: &[VolumeId]) -> Freeze {
        let gates: Vec<(usize, Arc<Gate>)> = vols
            .iter()
            .enumerate()
            .flat_map(|(i, &v)| mounts.gates(v).into_iter().map(move |g| (i, g)))
            .collect();
        let at = Instant::now();
        let gates = gates
            .into_iter()
            .map(|(i, g)| {
                let closed = g.close();
                (i, g, closed)
            })
            .collect();
        Freeze { gates, at }
    }

    /// Waits until no mutating request is running on any member; on timeout returns the
    /// index of a volume that did not quiesce (dropping the freeze reopens the gates).
    fn drain(&self, barrier: Duration) -> Result<(), usize> {
        let deadline = self.at + barrier;
        for (i, g, _) in &self.gates {
            if !g.wait_drained(deadline) {
                return Err(*i);
            }
        }
        Ok(())
    }

    /// Releases this freeze's hold on the gates; returns how long they were closed.
    fn thaw(self) -> Duration {
        let at = self.at;
        drop(self);
        at.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::fs::Ctx;

    /// Two volumes, one mount (one gate) each.
    struct Mounts(Vec<(VolumeId, Arc<Gate>)>);

    impl MountView for Mounts {
        fn gates(&self, vol: VolumeId) -> Vec<Arc<Gate>> {
            self.0
                .iter()
                .filter(|(v, _)| *v == vol)
                .map(|(_, g)| g.clone())
                .collect()
        }
        fn mountpoints(&self, _volume: &str) -> Vec<PathBuf> {
            Vec::new()
        }
    }

    impl Mounts {
        fn all_open(&self) -> bool {
            self.0.iter().all(|(_, g)| !g.is_closed())
        }
        fn all_closed(&self) -> bool {
            self.0.iter().all(|(_, g)| g.is_closed())
        }
    }

    fn setup() -> (tempfile::TempDir, Engine, Vec<VolumeId>, Mounts) {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = Engine::open(dir.path()).expect("open");
        let vols: Vec<VolumeId> = ["a", "b"]
            .iter()
            .map(|n| e.create_volume(n, None, Ctx::default()).expect("volume").id)
            .collect();
        let mounts = Mounts(
            vols.iter()
                .map(|&v| (v, Arc::new(Gate::default())))
                .collect(),
        );
        (dir, e, vols, mounts)
    }

    #[test]
    fn the_action_runs_with_every_gate_closed_and_they_reopen_after() {
        let (_dir, e, vols, mounts) = setup();
        let frozen = run(
            &e,
            &mounts,
            &vols,
            true,
            || Ok::<_, ()>(mounts.all_closed()),
            Ok,
        )
        .expect("freeze");
        assert!(frozen.value, "a gate was open while the action ran");
        assert!(mounts.all_open());
    }

    #[test]
    fn the_gates_reopen_when_the_action_fails() {
        let (_dir, e, vols, mounts) = setup();
        let r = run(&e, &mounts, &vols, true, || Err::<(), _>("refused"), Ok);
        assert!(matches!(r, Err(FreezeError::Action("refused"))));
        assert!(mounts.all_open());
    }

    #[test]
    fn the_gates_reopen_when_the_action_panics() {
        let (_dir, e, vols, mounts) = setup();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(
                &e,
                &mounts,
                &vols,
                true,
                || -> Result<(), ()> { panic!("the action panicked") },
                Ok,
            )
        }));
        assert!(r.is_err());
        assert!(mounts.all_open());
    }

    #[test]
    fn a_member_that_does_not_quiesce_times_out_without_running_the_action() {
        let (_dir, e, vols, mounts) = setup();
        // The lowest barrier timeout of the members applies.
        e.set_options(vols[1], &[("barrier-timeout".into(), "20ms".into())])
            .expect("option");
        assert_eq!(barrier_timeout(&e, &vols), Duration::from_millis(20));
        let busy = mounts.0[1].1.clone();
        let _in_flight = busy.enter();
        let ran = AtomicBool::new(false);
        let r = run(
            &e,
            &mounts,
            &vols,
            true,
            || {
                ran.store(true, Ordering::SeqCst);
                Ok::<_, ()>(())
            },
            Ok,
        );
        match r {
            Err(FreezeError::Barrier { volume, timeout }) => {
                assert_eq!(volume, 1);
                assert_eq!(timeout, Duration::from_millis(20));
            }
            other => panic!("expected a barrier timeout, got {other:?}"),
        }
        assert!(!ran.load(Ordering::SeqCst));
        assert!(mounts.all_open());
    }
}
