//! What one schedule run does besides taking the snapshot: naming it, pruning what the
//! schedule made by its retention, and when to run next (after a success, or after a
//! failure with backoff). The daemon's scheduler (`crate::daemon`) drives these and takes
//! the snapshot through its own create path, hooks included.
//!
//! Invariants of pruning: only snapshots this schedule made (`snapshot_makers`) are ever
//! considered; a held, activated or clone-origin one is never deleted (sparing it changes
//! nothing about which others are kept); every deletion is logged with the schedule's and
//! the snapshot's names.

use std::time::Duration;

use crate::fs::Engine;
use crate::fs::groups::SnapError;
use crate::store::catalog::schedules::ScheduleRecord;

use super::MountView;
use super::retention::select;

/// The longest wait between two retries of a failing schedule.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// The first retry's wait.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// How long to wait before retrying after `failures` failed attempts in a row: 1 s,
/// doubling, but never longer than the schedule's interval or an hour.
pub fn backoff(failures: u32, every: Duration) -> Duration {
    let exp = FIRST_BACKOFF.saturating_mul(1u32 << failures.saturating_sub(1).min(20));
    exp.min(every)
        .min(MAX_BACKOFF)
        .max(Duration::from_millis(100))
}

/// Deletes what the schedule's retention no longer keeps among the snapshots it made,
/// sparing held, activated and clone-origin ones. Returns the names deleted; a delete that
/// fails is logged and skipped.
pub fn prune(
    engine: &Engine,
    mounts: &dyn MountView,
    schedule: &ScheduleRecord,
) -> Result<Vec<String>, SnapError> {
    let Some(keep) = schedule.keep else {
        return Ok(Vec::new());
    };
    let made = engine.snapshots_made_by(&schedule.name)?;
    let times: Vec<i64> = made.iter().map(|s| s.created_us).collect();
    let kept = select(&times, &keep);
    let held: Vec<String> = engine
        .snapshot_holds(None)?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let origins = engine.clone_origins()?;
    let mut deleted = Vec::new();
    for (i, s) in made.iter().enumerate() {
        if kept.contains(&i) {
            continue;
        }
        let spared = if held.contains(&s.name) {
            Some("it is held")
        } else if !mounts.snapshot_mounts(&s.name).is_empty() {
            Some("it is activated")
        } else if origins.contains(&s.id) {
            Some("a clone was made from it")
        } else {
            None
        };
        if let Some(why) = spared {
            tracing::debug!(
                "schedule '{}': kept snapshot '{}' past its retention: {why}",
                schedule.name,
                s.name
            );
            continue;
        }
        match engine.snapshot_delete(&s.name) {
            Ok(_) => {
                tracing::info!(
                    "schedule '{}': pruned snapshot '{}' (retention {keep})",
                    schedule.name,
                    s.name
                );
                deleted.push(s.name.clone());
            }
            Err(e) => tracing::warn!(
                "schedule '{}': could not prune snapshot '{}': {e}",
                schedule.name,
                s.name
            ),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_interval_and_an_hour() {
        let day = Duration::from_secs(86_400);
        assert_eq!(backoff(1, day), Duration::from_secs(1));
        assert_eq!(backoff(2, day), Duration::from_secs(2));
        assert_eq!(backoff(5, day), Duration::from_secs(16));
        assert_eq!(backoff(40, day), Duration::from_secs(3600));
        assert_eq!(backoff(5, Duration::from_secs(3)), Duration::from_secs(3));
    }
}
