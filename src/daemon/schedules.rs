//! The scheduler: snapshot schedules run by the daemon itself (no cron), and the control-API
//! handlers of `tandem schedule ...`.
//!
//! Invariants:
//! - A run is taken through the daemon's one create path ([`Daemon::create_snapshot`]),
//!   so hooks, limits and activate-on-create apply as to a manual snapshot. Its snapshot
//!   is named `NAME_GMT-<UTC time to the microsecond>` and recorded as the schedule's.
//! - A schedule is due when its next-run time has passed; after a run the next is one
//!   interval later. A run missed while the daemon was down is therefore taken once at
//!   start (as anacron does), not once per missed interval.
//! - A failed run is retried with backoff (`crate::snapshot::schedule::backoff`); the
//!   error, the failures in a row and the next try show in `schedule info`.
//! - After a successful run, the schedule's own snapshots are pruned by its retention
//!   (`crate::snapshot::schedule::prune`); held, activated and clone-origin ones stay.
//! - Runs, state and definitions are in the pool, so all of it survives a restart.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::control::{Reply, Request, ScheduleInfo};
use crate::snapshot::retention::Keep;
use crate::snapshot::schedule::{backoff, prune};
use crate::snapshot::{CreateRequest, Target};
use crate::store::catalog::schedules::{Every, ScheduleRecord, ScheduleRun, ScheduleTarget};

use super::{Daemon, ServiceError};

/// The longest the scheduler sleeps without looking (a schedule added or enabled wakes it
/// at once).
const IDLE: Duration = Duration::from_secs(30);
/// The shortest interval a schedule may have.
const MIN_EVERY_MS: u64 = 1000;

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

fn interval(every: Every) -> Duration {
    match every {
        Every::Interval { ms } => Duration::from_millis(ms),
    }
}

/// The scheduler thread's loop: runs what is due, then sleeps until the next run is due,
/// a wake-up, or the daemon stops.
pub(super) fn run_scheduler(d: Arc<Daemon>, wake: Receiver<()>) {
    loop {
        if d.stop.load(Ordering::Acquire) {
            return;
        }
        let next = d.run_due();
        let wait = match next {
            Some(us) => Duration::from_micros((us - now_us()).max(0) as u64).min(IDLE),
            None => IDLE,
        };
        match wake.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl Daemon {
    /// Runs every enabled schedule that is due; returns when the next one is due.
    fn run_due(&self) -> Option<i64> {
        let schedules = match self.engine.schedules() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("scheduler: cannot read the schedules: {e}");
                return Some(now_us() + IDLE.as_micros() as i64);
            }
        };
        let mut next: Option<i64> = None;
        for s in schedules.into_iter().filter(|s| s.enabled) {
            if self.stop.load(Ordering::Acquire) {
                return None;
            }
            let mut run = match self.engine.schedule_run(&s.name) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("schedule '{}': cannot read its state: {e}", s.name);
                    continue;
                }
            };
            if run.next_us <= now_us() {
                self.run_one(&s, &mut run);
                if let Err(e) = self.engine.schedule_put_run(&s.name, run.clone()) {
                    tracing::error!("schedule '{}': cannot record its run: {e}", s.name);
                }
            }
            next = Some(next.map_or(run.next_us, |n| n.min(run.next_us)));
        }
        next
    }

    /// One run of a schedule: the snapshot, then pruning; updates `run`.
    fn run_one(&self, s: &ScheduleRecord, run: &mut ScheduleRun) {
        let started = now_us();
        let every = interval(s.every);
        let req = CreateRequest {
            name: s.name.clone(),
            target: match &s.target {
                ScheduleTarget::Group(g) => Target::Group(g.clone()),
                ScheduleTarget::Volume(v) => Target::Volume(v.clone()),
            },
            description: s.description.clone(),
            timestamp: true,
            skip_hooks: false,
            ignore_hook_errors: false,
        };
        run.last_run_us = Some(started);
        match self.create_snapshot(&req) {
            Ok(out) => {
                let name = out.snapshot.name.clone();
                if let Err(e) = self.engine.snapshot_set_maker(out.snapshot.id, &s.name) {
                    tracing::error!(
                        "schedule '{}': cannot record '{name}' as its own: {e}",
                        s.name
                    );
                }
                for w in &out.warnings {
                    tracing::warn!("schedule '{}': {w}", s.name);
                }
                tracing::info!("schedule '{}': created snapshot '{name}'", s.name);
                run.last_snapshot = Some(name);
                run.last_error = None;
                run.failures = 0;
                run.next_us = started + every.as_micros() as i64;
                if let Err(e) = prune(&self.engine, &self.mounts, s) {
                    tracing::warn!("schedule '{}': pruning failed: {e}", s.name);
                }
            }
            Err(e) => {
                run.failures = run.failures.saturating_add(1);
                let wait = backoff(run.failures, every);
                tracing::warn!(
                    "schedule '{}': run failed ({} in a row), retrying in {wait:?}: {e}",
                    s.name,
                    run.failures
                );
                run.last_error = Some(e.to_string());
                run.next_us = now_us() + wait.as_micros() as i64;
            }
        }
    }

    fn schedule_info(&self, s: ScheduleRecord) -> Result<ScheduleInfo, ServiceError> {
        let run = self.engine.schedule_run(&s.name)?;
        let snapshots = self
            .engine
            .snapshots_made_by(&s.name)?
            .into_iter()
            .map(|r| r.name)
            .collect();
        let (group, volume) = match s.target {
            ScheduleTarget::Group(g) => (Some(g), None),
            ScheduleTarget::Volume(v) => (None, Some(v)),
        };
        Ok(ScheduleInfo {
            name: s.name,
            group,
            volume,
            every_ms: interval(s.every).as_millis() as u64,
            keep: s.keep.map(|k| k.to_string()),
            description: s.description,
            enabled: s.enabled,
            created_us: s.created_us,
            next_run_us: run.next_us,
            last_run_us: run.last_run_us,
            last_snapshot: run.last_snapshot,
            last_error: run.last_error,
            failures: run.failures,
            snapshots,
        })
    }

    /// Checks what a new schedule snapshots, as a create would.
    fn schedule_target(
        &self,
        group: Option<String>,
        volume: Option<String>,
    ) -> Result<ScheduleTarget, ServiceError> {
        let e = &self.engine;
        match (group, volume) {
            (Some(g), None) => {
                e.group(&g)?;
                Ok(ScheduleTarget::Group(g))
            }
            (None, Some(v)) => {
                let id = e.volume_id(&v)?;
                if let Some(g) = e.group_of(id)? {
                    return Err(ServiceError::BadSchedule(format!(
                        "volume '{v}' belongs to group '{g}': schedule the group (tandem schedule add NAME --group {g} --every DURATION)"
                    )));
                }
                Ok(ScheduleTarget::Volume(v))
            }
            _ => Err(ServiceError::BadSchedule(
                "a schedule snapshots a group (--group G) or one volume, not both and not neither"
                    .into(),
            )),
        }
    }

    pub(super) fn handle_schedules(&self, req: Request) -> Result<Reply, ServiceError> {
        let e = &self.engine;
        match req {
            Request::ScheduleAdd {
                name,
                group,
                volume,
                every_ms,
                keep,
                description,
            } => {
                if every_ms < MIN_EVERY_MS {
                    return Err(ServiceError::BadSchedule(format!(
                        "schedule '{name}': --every must be at least 1s (got {every_ms} ms)"
                    )));
                }
                let keep = keep
                    .as_deref()
                    .map(Keep::parse)
                    .transpose()
                    .map_err(|k| ServiceError::BadSchedule(k.to_string()))?;
                let target = self.schedule_target(group, volume)?;
                let now = now_us();
                let rec = ScheduleRecord {
                    name: name.clone(),
                    target,
                    every: Every::Interval { ms: every_ms },
                    keep,
                    description,
                    enabled: true,
                    test: None,
                    created_us: now,
                };
                let run = ScheduleRun {
                    next_us: now + every_ms as i64 * 1000,
                    ..ScheduleRun::default()
                };
                e.schedule_add(rec, run)?;
                tracing::info!("schedule '{name}' added");
                self.wake_scheduler();
                Ok(Reply::Schedule(self.schedule_info(e.schedule(&name)?)?))
            }
            Request::ScheduleList => {
                let schedules = e
                    .schedules()?
                    .into_iter()
                    .map(|s| self.schedule_info(s))
                    .collect::<Result<_, _>>()?;
                Ok(Reply::Schedules { schedules })
            }
            Request::ScheduleInfo { name } => {
                Ok(Reply::Schedule(self.schedule_info(e.schedule(&name)?)?))
            }
            Request::ScheduleRemove { name } => {
                e.schedule_remove(&name)?;
                tracing::info!("schedule '{name}' removed (its snapshots stay)");
                Ok(Reply::Done)
            }
            Request::ScheduleEnable { name, enabled } => {
                let rec = e.schedule_set_enabled(&name, enabled)?;
                tracing::info!(
                    "schedule '{name}' {}",
                    if enabled { "enabled" } else { "disabled" }
                );
                self.wake_scheduler();
                Ok(Reply::Schedule(self.schedule_info(rec)?))
            }
            other => Err(ServiceError::Unhandled(format!("{other:?}"))),
        }
    }

    /// Makes the scheduler look at the schedules now.
    pub(super) fn wake_scheduler(&self) {
        let _ = self.schedule_wake.try_send(());
    }
}
