//! The scheduler: snapshot schedules run by the daemon itself (no cron), and the control-API
//! handlers of `tandem schedule ...`.
//!
//! Invariants:
//! - A run is taken through the daemon's one create path ([`Daemon::create_snapshot`]),
//!   so hooks, limits and activate-on-create apply as to a manual snapshot. Its snapshot
//!   is named `NAME_GMT-<UTC time to the microsecond>` and recorded as the schedule's.
//! - A schedule is due when its next-run time has passed; after a run the next is one
//!   interval later (`--every`) or the expression's next time after the run (`--cron`, in
//!   UTC, `crate::snapshot::cron`). A run missed while the daemon was down is therefore
//!   taken once at start (as anacron does), not once per missed interval or cron time.
//! - A failed run is retried with backoff (`crate::snapshot::schedule::backoff`), never
//!   later than one interval, or than the next cron time; the error, the failures in a row
//!   and the next try show in `schedule info`.
//! - With `--test CMD`, each new snapshot gets a restore test ([`Daemon::restore_test`],
//!   as `tandem snapshot test SNAP --run CMD`) in a thread of its own, so a long test holds
//!   up no schedule's runs. One test per schedule runs at a time: a snapshot taken while
//!   its schedule's previous test still runs is not tested (logged). The result is recorded
//!   beside the snapshot (`snapshot info`); `schedule info` shows the newest one among the
//!   schedule's snapshots. A failure to even start the test is recorded as a failed test
//!   with the reason as its output. When the daemon stops, running tests are called off
//!   (their clones removed) before the mounts go.
//! - After a successful run, the schedule's own snapshots are pruned by its retention
//!   (`crate::snapshot::schedule::prune`); held, activated and clone-origin ones stay.
//! - Runs, state and definitions are in the pool, so all of it survives a restart.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

use crate::control::{Reply, Request, ScheduleInfo, ScheduleTest};
use crate::snapshot::cron::{Cron, CronError};
use crate::snapshot::retention::Keep;
use crate::snapshot::schedule::{backoff, prune};
use crate::snapshot::test::TestRequest;
use crate::snapshot::{CreateRequest, Target};
use crate::store::catalog::schedules::{Every, ScheduleRecord, ScheduleRun, ScheduleTarget};
use crate::store::snapmeta::TestRecord;

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

/// When a schedule runs, parsed from its record.
enum Timing {
    Every(Duration),
    Cron(Cron),
}

impl Timing {
    fn of(every: &Every) -> Result<Timing, CronError> {
        Ok(match every {
            Every::Interval { ms } => Timing::Every(Duration::from_millis(*ms)),
            Every::Cron { expr } => Timing::Cron(Cron::parse(expr)?),
        })
    }

    /// The run after one at `after_us`.
    fn next_after(&self, after_us: i64) -> i64 {
        match self {
            Timing::Every(d) => after_us + d.as_micros() as i64,
            // A parsed expression always fires within its horizon.
            Timing::Cron(c) => c.next_after_us(after_us).unwrap_or(after_us + MAX_RETRY_US),
        }
    }

    /// The longest a retry after a failure at `now_us` may wait: one interval, or until
    /// the next cron time.
    fn retry_cap(&self, now_us: i64) -> Duration {
        match self {
            Timing::Every(d) => *d,
            Timing::Cron(_) => {
                Duration::from_micros((self.next_after(now_us) - now_us).max(0) as u64)
            }
        }
    }
}

/// The retry wait of a schedule whose record cannot be read as a timing (one hour).
const MAX_RETRY_US: i64 = 3_600_000_000;

/// A restore test due on a schedule's new snapshot.
struct DueTest {
    schedule: String,
    snapshot: String,
    command: String,
}

/// The scheduler thread's loop: runs what is due (starting the restore tests of new
/// snapshots in threads of their own), then sleeps until the next run is due, a wake-up,
/// or the daemon stops; then waits for the tests, which the stop calls off.
pub(super) fn run_scheduler(d: Arc<Daemon>, wake: Receiver<()>) {
    let mut tests: HashMap<String, JoinHandle<()>> = HashMap::new();
    loop {
        if d.stop.load(Ordering::Acquire) {
            break;
        }
        let (next, due) = d.run_due();
        tests.retain(|_, t| !t.is_finished());
        for t in due {
            if tests.contains_key(&t.schedule) {
                tracing::warn!(
                    "schedule '{}': the restore test of its previous snapshot still runs, so '{}' is not tested",
                    t.schedule,
                    t.snapshot
                );
                continue;
            }
            let schedule = t.schedule.clone();
            let dt = d.clone();
            match std::thread::Builder::new()
                .name("tandem-sched-test".into())
                .spawn(move || dt.scheduled_test(t))
            {
                Ok(h) => {
                    tests.insert(schedule, h);
                }
                Err(e) => {
                    tracing::error!("schedule '{schedule}': cannot start its restore test: {e}")
                }
            }
        }
        let wait = match next {
            Some(us) => Duration::from_micros((us - now_us()).max(0) as u64).min(IDLE),
            None => IDLE,
        };
        match wake.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    for (name, t) in tests {
        if t.join().is_err() {
            tracing::error!("schedule '{name}': its restore test thread panicked");
        }
    }
}

impl Daemon {
    /// Runs every enabled schedule that is due; returns when the next one is due and the
    /// restore tests to start.
    fn run_due(&self) -> (Option<i64>, Vec<DueTest>) {
        let schedules = match self.engine.schedules() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("scheduler: cannot read the schedules: {e}");
                return (Some(now_us() + IDLE.as_micros() as i64), Vec::new());
            }
        };
        let mut next: Option<i64> = None;
        let mut tests = Vec::new();
        for s in schedules.into_iter().filter(|s| s.enabled) {
            if self.stop.load(Ordering::Acquire) {
                return (None, tests);
            }
            let mut run = match self.engine.schedule_run(&s.name) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!("schedule '{}': cannot read its state: {e}", s.name);
                    continue;
                }
            };
            if run.next_us <= now_us() {
                if let Some(snapshot) = self.run_one(&s, &mut run)
                    && let Some(command) = &s.test
                {
                    tests.push(DueTest {
                        schedule: s.name.clone(),
                        snapshot,
                        command: command.clone(),
                    });
                }
                if let Err(e) = self.engine.schedule_put_run(&s.name, run.clone()) {
                    tracing::error!("schedule '{}': cannot record its run: {e}", s.name);
                }
            }
            next = Some(next.map_or(run.next_us, |n| n.min(run.next_us)));
        }
        (next, tests)
    }

    /// One run of a schedule: the snapshot, then pruning; updates `run`. Returns the new
    /// snapshot's name.
    fn run_one(&self, s: &ScheduleRecord, run: &mut ScheduleRun) -> Option<String> {
        let started = now_us();
        run.last_run_us = Some(started);
        let timing = match Timing::of(&s.every) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!("schedule '{}': {e}", s.name);
                run.failures = run.failures.saturating_add(1);
                run.last_error = Some(format!(
                    "{e}; remove the schedule and add it again with a valid one"
                ));
                run.next_us = started + MAX_RETRY_US;
                return None;
            }
        };
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
                crate::metrics::global().schedule_run(&s.name, true);
                run.last_snapshot = Some(name.clone());
                run.last_error = None;
                run.failures = 0;
                run.next_us = timing.next_after(started);
                if let Err(e) = prune(&self.engine, &self.mounts, s) {
                    tracing::warn!("schedule '{}': pruning failed: {e}", s.name);
                }
                Some(name)
            }
            Err(e) => {
                run.failures = run.failures.saturating_add(1);
                let wait = backoff(run.failures, timing.retry_cap(now_us()));
                tracing::warn!(
                    "schedule '{}': run failed ({} in a row), retrying in {wait:?}: {e}",
                    s.name,
                    run.failures
                );
                crate::metrics::global().schedule_run(&s.name, false);
                run.last_error = Some(e.to_string());
                run.next_us = now_us() + wait.as_micros() as i64;
                None
            }
        }
    }

    /// The restore test of a schedule's new snapshot, run in its own thread; the result is
    /// recorded beside the snapshot. Called off only when the daemon stops.
    fn scheduled_test(&self, t: DueTest) {
        let req = TestRequest {
            snapshot: t.snapshot.clone(),
            run: t.command.clone(),
            keep_clone: false,
            timeout_s: None,
        };
        let stopping = || {
            self.stop
                .load(Ordering::Acquire)
                .then_some("the daemon is stopping")
        };
        match self.restore_test(req, &stopping) {
            Ok(o) if o.passed => tracing::info!(
                "schedule '{}': restore test of '{}' passed ({:.3} s)",
                t.schedule,
                t.snapshot,
                o.run_ms as f64 / 1000.0
            ),
            Ok(o) => tracing::warn!(
                "schedule '{}': restore test of '{}' FAILED (exit {:?}): {}",
                t.schedule,
                t.snapshot,
                o.exit_code,
                o.output_tail.lines().last().unwrap_or("no output")
            ),
            Err(e @ super::ServiceError::TestInterrupted(_)) => {
                tracing::warn!("schedule '{}': {e}", t.schedule)
            }
            Err(e) => {
                tracing::warn!(
                    "schedule '{}': restore test of '{}' could not run: {e}",
                    t.schedule,
                    t.snapshot
                );
                let rec = match self.engine.snapshot(&t.snapshot) {
                    Ok(r) => r,
                    Err(_) => return,
                };
                let failed = TestRecord {
                    started_us: now_us(),
                    passed: false,
                    command: t.command,
                    exit_code: None,
                    run_us: 0,
                    setup_us: 0,
                    output_tail: format!("the test could not run: {e}"),
                };
                if let Err(e) = self.engine.record_test(&rec.name, rec.id, failed) {
                    tracing::error!(
                        "schedule '{}': cannot record the failed test of '{}': {e}",
                        t.schedule,
                        rec.name
                    );
                }
            }
        }
    }

    /// The newest restore test recorded on one of the schedule's snapshots.
    fn schedule_last_test(&self, name: &str) -> Result<Option<ScheduleTest>, ServiceError> {
        let made = self.engine.snapshots_made_by(name)?;
        let mut last: Option<ScheduleTest> = None;
        for s in made {
            if let Some(result) = self.engine.recorded_test(s.id)?
                && last
                    .as_ref()
                    .is_none_or(|l| l.result.started_us <= result.started_us)
            {
                last = Some(ScheduleTest {
                    snapshot: s.name,
                    result,
                });
            }
        }
        Ok(last)
    }

    fn schedule_info(&self, s: ScheduleRecord) -> Result<ScheduleInfo, ServiceError> {
        let run = self.engine.schedule_run(&s.name)?;
        let last_test = self.schedule_last_test(&s.name)?;
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
            every_ms: match &s.every {
                Every::Interval { ms } => *ms,
                Every::Cron { .. } => 0,
            },
            cron: match s.every {
                Every::Interval { .. } => None,
                Every::Cron { expr } => Some(expr),
            },
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
            test: s.test,
            last_test,
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
                cron,
                keep,
                description,
                test,
            } => {
                let every = match cron {
                    Some(_) if every_ms != 0 => {
                        return Err(ServiceError::BadSchedule(format!(
                            "schedule '{name}': give --every or --cron, not both"
                        )));
                    }
                    Some(expr) => {
                        Cron::parse(&expr).map_err(|e| {
                            ServiceError::BadSchedule(format!("schedule '{name}': {e}"))
                        })?;
                        Every::Cron {
                            expr: expr.trim().to_string(),
                        }
                    }
                    None if every_ms < MIN_EVERY_MS => {
                        return Err(ServiceError::BadSchedule(format!(
                            "schedule '{name}': --every must be at least 1s (got {every_ms} ms)"
                        )));
                    }
                    None => Every::Interval { ms: every_ms },
                };
                let test = match test {
                    Some(t) if t.trim().is_empty() => {
                        return Err(ServiceError::BadSchedule(format!(
                            "schedule '{name}': --test needs a command (for example --test hooks/check-sqlite)"
                        )));
                    }
                    other => other,
                };
                let first = match Timing::of(&every) {
                    Ok(t) => t.next_after(now_us()),
                    Err(e) => return Err(ServiceError::BadSchedule(e.to_string())),
                };
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
                    every,
                    keep,
                    description,
                    enabled: true,
                    test,
                    created_us: now,
                };
                let run = ScheduleRun {
                    next_us: first,
                    ..ScheduleRun::default()
                };
                e.schedule_add(rec, run)?;
                tracing::info!("schedule '{name}' added");
                self.wake_scheduler();
                Ok(Reply::Schedule(Box::new(
                    self.schedule_info(e.schedule(&name)?)?,
                )))
            }
            Request::ScheduleList => {
                let schedules = e
                    .schedules()?
                    .into_iter()
                    .map(|s| self.schedule_info(s))
                    .collect::<Result<_, _>>()?;
                Ok(Reply::Schedules { schedules })
            }
            Request::ScheduleInfo { name } => Ok(Reply::Schedule(Box::new(
                self.schedule_info(e.schedule(&name)?)?,
            ))),
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
                Ok(Reply::Schedule(Box::new(self.schedule_info(rec)?)))
            }
            other => Err(ServiceError::Unhandled(format!("{other:?}"))),
        }
    }

    /// Makes the scheduler look at the schedules now.
    pub(super) fn wake_scheduler(&self) {
        let _ = self.schedule_wake.try_send(());
    }
}
