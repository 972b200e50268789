//! Calendar schedules (`tandem schedule add --cron "EXPR"`): the five fields of crontab(5)
//! (minute, hour, day of month, month, day of week), read in UTC, and the next time such an
//! expression fires. Pure functions of the expression and a time, so they are unit-tested
//! over synthetic times. The calendar (month lengths, leap years, weekdays) is jiff's.
//!
//! Accepted: `*`, `N`, `A-B`, `*/S`, `A-B/S`, `A/S` (A to the field's end), lists of those
//! with commas, month names (`jan`..`dec`) and day names (`sun`..`sat`, 0 and 7 both
//! Sunday), and the macros `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly`,
//! `@yearly` (`@annually`). As in Vixie cron, when both the day of month and the day of week
//! are restricted (neither starts with `*`), a day matching either fires.
//!
//! Invariant: a parsed [`Cron`] fires at least once in any [`HORIZON_DAYS`] (an expression
//! that never does, such as `0 0 31 2 *`, is refused at parse time), so [`Cron::next_after`]
//! always finds a time.

use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// How far ahead [`Cron::next_after`] looks: long enough for `0 0 29 2 *` (a leap day is
/// at most 8 years after the last one, across a century that skips one).
pub const HORIZON_DAYS: i64 = 366 * 9;

/// Why a cron expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid cron expression '{expr}': {reason} (five fields in UTC: minute hour day-of-month month day-of-week, for example --cron \"0 3 * * *\" for 03:00 every day)"
)]
pub struct CronError {
    pub expr: String,
    pub reason: String,
}

/// A parsed five-field cron expression (bit `i` of a field set: value `i` matches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Day of month and day of week both restricted: either matches (Vixie cron).
    either_day: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// One field's value: a number, or a name when the field has names (`names[i]` is `first + i`).
fn value(s: &str, names: &[&str], first: u32) -> Result<u32, String> {
    if let Ok(n) = s.parse::<u32>() {
        return Ok(n);
    }
    let lower = s.to_ascii_lowercase();
    names
        .iter()
        .position(|n| *n == lower)
        .map(|i| first + i as u32)
        .ok_or_else(|| format!("'{s}' is not a number"))
}

/// The set of values one field matches, as bits; `lo..=hi` is the field's range.
fn field(s: &str, what: &str, lo: u32, hi: u32, names: &[&str]) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => {
                let st: u32 = st
                    .parse()
                    .map_err(|_| format!("{what}: step '{st}' is not a number"))?;
                if st == 0 {
                    return Err(format!("{what}: a step of 0"));
                }
                (r, st)
            }
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (
                value(a, names, lo).map_err(|e| format!("{what}: {e}"))?,
                value(b, names, lo).map_err(|e| format!("{what}: {e}"))?,
            )
        } else {
            let a = value(range, names, lo).map_err(|e| format!("{what}: {e}"))?;
            // `A/S` runs from A to the field's end.
            (a, if part.contains('/') { hi } else { a })
        };
        if a < lo || b > hi || a > b {
            return Err(format!(
                "{what}: '{range}' is outside {lo}-{hi} or runs backwards"
            ));
        }
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron, CronError> {
        let bad = |reason: String| CronError {
            expr: expr.to_string(),
            reason,
        };
        let text = match expr.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            "@yearly" | "@annually" => "0 0 1 1 *",
            m if m.starts_with('@') => return Err(bad(format!("unknown macro '{m}'"))),
            other => other,
        };
        let f: Vec<&str> = text.split_whitespace().collect();
        if f.len() != 5 {
            return Err(bad(format!("{} field(s), not 5", f.len())));
        }
        let mut weekdays = field(f[4], "day of week", 0, 7, &WEEKDAYS).map_err(bad)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f;
        }
        let c = Cron {
            minutes: field(f[0], "minute", 0, 59, &[]).map_err(bad)?,
            hours: field(f[1], "hour", 0, 23, &[]).map_err(bad)? as u32,
            days: field(f[2], "day of month", 1, 31, &[]).map_err(bad)? as u32,
            months: field(f[3], "month", 1, 12, &MONTHS).map_err(bad)? as u16,
            weekdays: weekdays as u8,
            either_day: !f[2].starts_with('*') && !f[4].starts_with('*'),
        };
        if c.next_after(0).is_none() {
            return Err(bad(format!(
                "it never fires (no matching day within {} years)",
                HORIZON_DAYS / 366
            )));
        }
        Ok(c)
    }

    fn day_matches(&self, date: Date) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let dom = self.days & (1 << date.day()) != 0;
        let dow = self.weekdays & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        if self.either_day {
            dom || dow
        } else {
            dom && dow
        }
    }

    /// The first whole minute of the day (minutes since midnight) at or after `from` that
    /// matches the hour and minute fields.
    fn minute_of_day(&self, from: i64) -> Option<i64> {
        (from..24 * 60)
            .find(|m| self.hours & (1 << (m / 60)) != 0 && self.minutes & (1 << (m % 60)) != 0)
    }

    /// The first time the expression fires strictly after `secs` (seconds since the epoch,
    /// UTC), in seconds since the epoch; None only when it fires on no day within
    /// [`HORIZON_DAYS`] (refused by [`Cron::parse`]) or past jiff's last instant
    /// (9999-12-30 22:00 UTC).
    pub fn next_after(&self, secs: i64) -> Option<i64> {
        // The next whole minute after `secs`.
        let next_minute = secs.div_euclid(60).checked_add(1)?.checked_mul(60)?;
        let start = TimeZone::UTC.to_datetime(Timestamp::from_second(next_minute).ok()?);
        let mut date = start.date();
        let mut from = i64::from(start.hour()) * 60 + i64::from(start.minute());
        for _ in 0..HORIZON_DAYS {
            if self.day_matches(date)
                && let Some(m) = self.minute_of_day(from)
            {
                let at = date.at((m / 60) as i8, (m % 60) as i8, 0, 0);
                return TimeZone::UTC.to_timestamp(at).ok().map(|t| t.as_second());
            }
            date = date.tomorrow().ok()?;
            from = 0;
        }
        None
    }

    /// [`Cron::next_after`] in microseconds.
    pub fn next_after_us(&self, us: i64) -> Option<i64> {
        self.next_after(us.div_euclid(1_000_000))
            .map(|s| s * 1_000_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seconds since the epoch of a UTC civil time.
    fn at(y: i64, mo: u32, d: u32, h: i64, mi: i64) -> i64 {
        super::super::clock::days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60
    }

    fn next(expr: &str, from: i64) -> i64 {
        Cron::parse(expr).unwrap().next_after(from).unwrap()
    }

    #[test]
    fn every_minute_fires_at_the_next_whole_minute() {
        let t = at(2026, 11, 30, 22, 59);
        assert_eq!(next("* * * * *", t), t + 60);
        assert_eq!(next("* * * * *", t + 1), t + 60);
        assert_eq!(next("* * * * *", t + 59), t + 60);
    }

    #[test]
    fn daily_at_a_time_rolls_over_day_month_and_year() {
        assert_eq!(
            next("30 3 * * *", at(2026, 11, 30, 2, 0)),
            at(2026, 11, 30, 3, 30)
        );
        // At the very minute: strictly after, so the next day.
        assert_eq!(
            next("30 3 * * *", at(2026, 11, 30, 3, 30)),
            at(2026, 12, 1, 3, 30)
        );
        assert_eq!(
            next("0 0 * * *", at(2026, 12, 31, 23, 59)),
            at(2027, 1, 1, 0, 0)
        );
        assert_eq!(
            next("@daily", at(2026, 12, 31, 23, 59)),
            at(2027, 1, 1, 0, 0)
        );
    }

    #[test]
    fn steps_ranges_lists_and_names() {
        let t = at(2026, 11, 30, 10, 7);
        assert_eq!(next("*/15 * * * *", t), at(2026, 11, 30, 10, 15));
        assert_eq!(next("5/20 * * * *", t), at(2026, 11, 30, 10, 25));
        assert_eq!(next("0 9-17/4 * * *", t), at(2026, 11, 30, 13, 0));
        assert_eq!(next("0,45 * * * *", t), at(2026, 11, 30, 10, 45));
        // 2026-11-30 is a Monday: the next Saturday 00:00 is 2026-12-05.
        assert_eq!(next("0 0 * * sat", t), at(2026, 12, 5, 0, 0));
        assert_eq!(next("0 0 * * 6", t), at(2026, 12, 5, 0, 0));
        // 0 and 7 are both Sunday.
        assert_eq!(next("0 0 * * 7", t), at(2026, 12, 6, 0, 0));
        assert_eq!(next("0 0 * * 0", t), at(2026, 12, 6, 0, 0));
        assert_eq!(next("0 0 1 jan *", t), at(2027, 1, 1, 0, 0));
        assert_eq!(next("@monthly", t), at(2026, 12, 1, 0, 0));
        assert_eq!(next("@weekly", t), at(2026, 12, 6, 0, 0));
        assert_eq!(next("@hourly", t), at(2026, 11, 30, 11, 0));
    }

    #[test]
    fn day_of_month_and_day_of_week_either_matches_when_both_are_restricted() {
        // The 15th, or any Friday: from Monday 2026-11-30 the first is Friday 2026-12-04.
        let t = at(2026, 11, 30, 12, 0);
        assert_eq!(next("0 0 15 * fri", t), at(2026, 12, 4, 0, 0));
        // Only the day of month restricted: the 15th.
        assert_eq!(next("0 0 15 * *", t), at(2026, 12, 15, 0, 0));
        // A star with a step still counts as unrestricted for this rule (as in Vixie cron):
        // every other day of the month that is also a Friday.
        assert_eq!(next("0 0 */2 * fri", t), at(2026, 12, 11, 0, 0));
    }

    #[test]
    fn leap_days_and_the_end_of_months() {
        assert_eq!(
            next("0 0 29 2 *", at(2026, 11, 30, 0, 0)),
            at(2028, 2, 29, 0, 0)
        );
        // 2100 is not a leap year: from 2096's leap day the next is 2104's.
        assert_eq!(
            next("0 0 29 2 *", at(2096, 2, 29, 0, 0)),
            at(2104, 2, 29, 0, 0)
        );
        // The 31st skips months without one.
        assert_eq!(
            next("0 12 31 * *", at(2026, 4, 1, 0, 0)),
            at(2026, 5, 31, 12, 0)
        );
    }

    #[test]
    fn leap_day_year_end_and_before_1970() {
        // The minute after 2028-02-28 23:59 is on the leap day, and the day after it March.
        assert_eq!(
            next("* * * * *", at(2028, 2, 28, 23, 59)),
            at(2028, 2, 29, 0, 0)
        );
        assert_eq!(at(2028, 2, 29, 12, 34), 1_835_440_440);
        assert_eq!(
            next("0 0 * * *", at(2028, 2, 29, 0, 0)),
            at(2028, 3, 1, 0, 0)
        );
        // The last minute of a year: from itself, a year later; a weekday across New Year
        // (2026-12-31 is a Thursday, 2027-01-04 the next Monday).
        assert_eq!(
            next("59 23 31 12 *", at(2027, 12, 31, 23, 59)),
            at(2028, 12, 31, 23, 59)
        );
        assert_eq!(at(2027, 12, 31, 23, 59), 1_830_297_540);
        assert_eq!(
            next("0 0 * * mon", at(2026, 12, 31, 5, 0)),
            at(2027, 1, 4, 0, 0)
        );
        // Before the epoch: 1969-12-28 was a Sunday; New Year 1970 is second 0.
        assert_eq!(next("0 0 * * sun", at(1969, 12, 25, 0, 0)), -345_600);
        assert_eq!(next("0 0 1 1 *", at(1969, 6, 1, 0, 0)), 0);
        assert_eq!(next("* * * * *", -61), -60);
        // 1900 was not a leap year: from 1896's leap day the next is 1904's.
        assert_eq!(
            next("0 0 29 2 *", at(1896, 2, 29, 0, 0)),
            at(1904, 2, 29, 0, 0)
        );
        // Past jiff's last instant (9999-12-30 22:00 UTC): no time, never one in the past.
        let every = Cron::parse("* * * * *").unwrap();
        let last = jiff::Timestamp::MAX.as_second();
        assert_eq!(every.next_after(i64::MAX), None);
        assert_eq!(every.next_after(last), None);
        assert_eq!(every.next_after(last - 90), Some(last - 60));
        assert_eq!(
            Cron::parse("0 23 * * *").unwrap().next_after(last - 90),
            None
        );
    }

    #[test]
    fn bad_expressions_are_refused_with_the_reason() {
        for (expr, why) in [
            ("* * * *", "4 field(s)"),
            ("60 * * * *", "minute"),
            ("* 24 * * *", "hour"),
            ("* * 0 * *", "day of month"),
            ("* * * 13 *", "month"),
            ("* * * * 8", "day of week"),
            ("*/0 * * * *", "step of 0"),
            ("5-1 * * * *", "backwards"),
            ("x * * * *", "not a number"),
            ("0 0 31 2 *", "never fires"),
            ("@often", "unknown macro"),
        ] {
            let e = Cron::parse(expr).unwrap_err();
            assert!(e.to_string().contains(why), "{expr}: {e}");
            assert!(e.to_string().contains(expr), "{expr}: {e}");
        }
    }
}
