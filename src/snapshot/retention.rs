//! Retention in sanoid's terms: which of a schedule's snapshots to keep. `--keep
//! hourly=24,daily=7,weekly=4,monthly=12,yearly=0,latest=3` keeps, for each period, the
//! newest snapshot of each of the last N buckets (UTC hours, days, ISO weeks starting on
//! Monday, calendar months, years) that have a snapshot, plus the `latest` newest; a
//! snapshot any rule keeps is kept. [`select`] is a pure function of the snapshots' times.

use std::collections::BTreeSet;

pub use crate::store::catalog::schedules::Keep;

use super::clock::civil;

/// Why a `--keep` spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeepError {
    #[error(
        "invalid retention '{spec}': {reason} (for example --keep hourly=24,daily=7,weekly=4,monthly=12,yearly=0,latest=3)"
    )]
    Invalid { spec: String, reason: String },
}

impl Keep {
    /// Parses `hourly=24,daily=7,...`; periods not named keep 0. A spec that keeps nothing
    /// is refused (it would prune everything the schedule made).
    pub fn parse(spec: &str) -> Result<Keep, KeepError> {
        let bad = |reason: String| KeepError::Invalid {
            spec: spec.to_string(),
            reason,
        };
        let mut k = Keep::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("'{part}' is not PERIOD=COUNT")))?;
            let n: u32 = value
                .trim()
                .parse()
                .map_err(|_| bad(format!("'{value}' is not a count")))?;
            let slot = match key.trim() {
                "latest" => &mut k.latest,
                "hourly" => &mut k.hourly,
                "daily" => &mut k.daily,
                "weekly" => &mut k.weekly,
                "monthly" => &mut k.monthly,
                "yearly" => &mut k.yearly,
                other => {
                    return Err(bad(format!(
                        "unknown period '{other}' (latest, hourly, daily, weekly, monthly, yearly)"
                    )));
                }
            };
            *slot = n;
        }
        if k == Keep::default() {
            return Err(bad("it keeps nothing".into()));
        }
        Ok(k)
    }
}

impl std::fmt::Display for Keep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = [
            ("latest", self.latest),
            ("hourly", self.hourly),
            ("daily", self.daily),
            ("weekly", self.weekly),
            ("monthly", self.monthly),
            ("yearly", self.yearly),
        ]
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k}={n}"))
        .collect();
        write!(f, "{}", parts.join(","))
    }
}

/// The bucket of a time (microseconds since the epoch) for one period, as a number that
/// grows with time.
fn bucket(us: i64, period: Period) -> i64 {
    let secs = us.div_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    match period {
        Period::Hour => secs.div_euclid(3600),
        Period::Day => days,
        // 1970-01-01 was a Thursday: day 4 of its ISO week (Monday = 1).
        Period::Week => (days + 3).div_euclid(7),
        Period::Month => {
            let (y, m, _) = civil(days);
            y * 12 + (m as i64 - 1)
        }
        Period::Year => civil(days).0,
    }
}

#[derive(Debug, Clone, Copy)]
enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

/// Which snapshots `keep` keeps, given their creation times (microseconds since the
/// epoch, in any order): the indices into `times`.
pub fn select(times: &[i64], keep: &Keep) -> BTreeSet<usize> {
    // Newest first; equal times by index, so the choice is deterministic.
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(times[i]), i));
    let mut kept: BTreeSet<usize> = order.iter().take(keep.latest as usize).copied().collect();
    for (period, count) in [
        (Period::Hour, keep.hourly),
        (Period::Day, keep.daily),
        (Period::Week, keep.weekly),
        (Period::Month, keep.monthly),
        (Period::Year, keep.yearly),
    ] {
        let mut last = None;
        let mut taken = 0;
        for &i in &order {
            if taken >= count {
                break;
            }
            let b = bucket(times[i], period);
            if last != Some(b) {
                // The newest snapshot of a bucket not seen yet.
                kept.insert(i);
                last = Some(b);
                taken += 1;
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Microseconds of a UTC civil time.
    fn at(y: i64, m: u32, d: u32, hh: i64, mm: i64, ss: i64) -> i64 {
        let days = super::super::clock::days_from_civil(y, m, d);
        (days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000
    }

    fn kept(times: &[i64], spec: &str) -> Vec<usize> {
        select(times, &Keep::parse(spec).unwrap())
            .into_iter()
            .collect()
    }

    #[test]
    fn the_helper_agrees_with_the_calendar() {
        assert_eq!(at(1970, 1, 1, 0, 0, 0), 0);
        assert_eq!(at(2000, 2, 29, 0, 0, 0), 951_782_400_000_000);
        assert_eq!(
            civil(at(2024, 12, 31, 0, 0, 0) / 86_400_000_000),
            (2024, 12, 31)
        );
    }

    #[test]
    fn latest_keeps_the_newest_whatever_the_order() {
        let t = [50, 10, 40, 20, 30];
        assert_eq!(kept(&t, "latest=3"), [0, 2, 4]);
        assert_eq!(kept(&t, "latest=9"), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn hourly_keeps_the_newest_of_each_of_the_last_hours_that_have_one() {
        let t = [
            at(2026, 3, 1, 10, 0, 0),
            at(2026, 3, 1, 10, 59, 59),
            at(2026, 3, 1, 11, 0, 0),
            at(2026, 3, 1, 13, 30, 0), // no snapshot at 12h: the bucket is skipped
            at(2026, 3, 1, 13, 45, 0),
        ];
        assert_eq!(kept(&t, "hourly=2"), [2, 4]);
        assert_eq!(kept(&t, "hourly=3"), [1, 2, 4]);
        assert_eq!(kept(&t, "hourly=3,latest=2"), [1, 2, 3, 4]);
    }

    #[test]
    fn days_turn_at_utc_midnight() {
        let t = [
            at(2026, 3, 1, 23, 59, 59),
            at(2026, 3, 2, 0, 0, 0),
            at(2026, 3, 2, 12, 0, 0),
        ];
        assert_eq!(kept(&t, "daily=2"), [0, 2]);
        assert_eq!(kept(&t, "daily=1"), [2]);
    }

    #[test]
    fn weeks_are_iso_weeks_starting_on_monday() {
        // 2026-03-01 is a Sunday, 2026-03-02 a Monday.
        let t = [
            at(2026, 2, 23, 0, 0, 0),   // Monday of the week before
            at(2026, 3, 1, 23, 59, 59), // its Sunday
            at(2026, 3, 2, 0, 0, 0),    // the next Monday
        ];
        assert_eq!(kept(&t, "weekly=2"), [1, 2]);
        assert_eq!(kept(&t, "weekly=3"), [1, 2]);
        // Across a year end: 2020-12-31 (Thursday) and 2021-01-03 (Sunday) share a week.
        let t = [at(2020, 12, 31, 0, 0, 0), at(2021, 1, 3, 0, 0, 0)];
        assert_eq!(kept(&t, "weekly=5"), [1]);
    }

    #[test]
    fn months_and_years_follow_the_calendar() {
        let t = [
            at(2024, 1, 31, 23, 59, 59),
            at(2024, 2, 1, 0, 0, 0),
            at(2024, 2, 29, 12, 0, 0), // leap day
            at(2024, 3, 1, 0, 0, 0),
            at(2024, 12, 31, 23, 59, 59),
            at(2025, 1, 1, 0, 0, 0),
        ];
        assert_eq!(kept(&t, "monthly=3"), [3, 4, 5]);
        assert_eq!(kept(&t, "monthly=6"), [0, 2, 3, 4, 5]);
        assert_eq!(kept(&t, "yearly=2"), [4, 5]);
        assert_eq!(kept(&t, "yearly=1"), [5]);
    }

    #[test]
    fn periods_combine_and_nothing_is_kept_twice() {
        // One snapshot an hour for three days.
        let start = at(2026, 6, 1, 0, 30, 0);
        let t: Vec<i64> = (0..72).map(|h| start + h * 3_600_000_000).collect();
        let k = kept(&t, "hourly=24,daily=7");
        // The last 24 hours, plus the newest of each of the two earlier days.
        assert_eq!(k.len(), 26);
        assert!(k.contains(&23) && k.contains(&47) && (48..72).all(|i| k.contains(&i)));
    }

    #[test]
    fn specs() {
        let k = Keep::parse("hourly=24, daily=7,weekly=4,monthly=12,yearly=0,latest=3").unwrap();
        assert_eq!(
            (k.hourly, k.daily, k.weekly, k.monthly, k.yearly, k.latest),
            (24, 7, 4, 12, 0, 3)
        );
        assert_eq!(
            k.to_string(),
            "latest=3,hourly=24,daily=7,weekly=4,monthly=12"
        );
        for bad in [
            "",
            "yearly=0",
            "hourly",
            "hourly=x",
            "minutely=3",
            "latest=-1",
        ] {
            assert!(Keep::parse(bad).is_err(), "{bad}");
        }
    }
}
