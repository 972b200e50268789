//! Wall-clock times for snapshot records and the Gluster-style `--timestamp` name suffix,
//! and the UTC calendar the schedules and retention read ([`utc`], [`civil`]). The calendar
//! is jiff's (proleptic Gregorian, years -9999 to 9999; no leap seconds): this module only
//! formats its fields.
//!
//! Invariant: the suffixes one daemon hands out are strictly increasing, with microsecond
//! resolution (`_GMT-YYYY.MM.DD-HH.MM.SS.uuuuuu`): two creates in the same second, or even
//! the same microsecond, get different names. (A name that still exists, after the clock
//! went back across a restart, is skipped by the caller: see [`next_timestamp`].)

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::TimeZone;

/// Microseconds since the epoch (0 if the clock is before it).
pub(super) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// Seconds since the epoch (0 if the clock is before it).
pub(super) fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The last time handed out by [`next_timestamp`], microseconds since the epoch.
static LAST_STAMP_US: AtomicI64 = AtomicI64::new(0);

/// A time for a timestamped name: now, or one microsecond past the last one handed out if
/// that is not earlier (so every call in this process gets a different, later time).
pub(super) fn next_timestamp() -> i64 {
    let now = now_us();
    let prev = LAST_STAMP_US
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(now);
    now.max(prev + 1)
}

/// Gluster-style timestamp suffix of `us` microseconds since the epoch, in UTC, with the
/// microseconds: `_GMT-YYYY.MM.DD-HH.MM.SS.uuuuuu`.
pub(super) fn timestamp_suffix(us: i64) -> String {
    format!(
        "{}.{:06}",
        suffix_at(us.div_euclid(1_000_000)),
        us.rem_euclid(1_000_000)
    )
}

/// The whole-second timestamp suffix of `secs` since the epoch, in UTC.
fn suffix_at(secs: i64) -> String {
    utc(secs).strftime("_GMT-%Y.%m.%d-%H.%M.%S").to_string()
}

/// The instant `secs` seconds after the epoch, clamped to jiff's range (-9999-01-02 to
/// 9999-12-30 in UTC: no clock tandem reads gives a time outside it).
pub(super) fn instant(secs: i64) -> Timestamp {
    let s = secs.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    Timestamp::from_second(s).unwrap_or(if s < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    })
}

/// The UTC civil date and time of `secs` since the epoch.
pub(super) fn utc(secs: i64) -> DateTime {
    TimeZone::UTC.to_datetime(instant(secs))
}

/// Microseconds since the epoch as a UTC time for people (`2026-11-30 19:47:30 UTC`).
pub fn utc_time(us: i64) -> String {
    utc(us.div_euclid(1_000_000))
        .strftime("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

/// Microseconds since the epoch as an RFC 3339 UTC time, to the second
/// (`2026-11-30T19:47:30Z`): what `--json` output carries beside the unix seconds.
pub fn rfc3339(us: i64) -> String {
    // jiff prints a whole-second instant without a fraction, in UTC with `Z`.
    instant(us.div_euclid(1_000_000)).to_string()
}

/// The UTC civil date (year, month 1-12, day 1-31) of `days` since the epoch.
pub(super) fn civil(days: i64) -> (i64, u32, u32) {
    let d = utc(days.saturating_mul(86_400)).date();
    (i64::from(d.year()), d.month() as u32, d.day() as u32)
}

/// Days since the epoch of a UTC civil date: the inverse of [`civil`] (for tests, which
/// write their times as dates).
#[cfg(test)]
pub(super) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let date = jiff::civil::Date::new(y as i16, m as i8, d as i8).expect("a valid test date");
    let t = TimeZone::UTC
        .to_timestamp(date.at(0, 0, 0, 0))
        .expect("a test date in range");
    t.as_second().div_euclid(86_400)
}

#[cfg(test)]
mod tests {
    use super::utc_time;
    use super::{civil, days_from_civil, next_timestamp, rfc3339, suffix_at, timestamp_suffix};

    #[test]
    fn timestamps_never_repeat_and_keep_microseconds() {
        let mut names: Vec<String> = (0..1000)
            .map(|_| timestamp_suffix(next_timestamp()))
            .collect();
        let sorted = names.clone();
        names.dedup();
        assert_eq!(names.len(), 1000, "a repeated suffix");
        assert!(
            sorted.windows(2).all(|w| w[0] < w[1]),
            "suffixes go forward"
        );
        assert_eq!(
            timestamp_suffix(1_700_000_000_000_042),
            "_GMT-2023.11.14-22.13.20.000042"
        );
    }

    #[test]
    fn civil_dates() {
        assert_eq!(suffix_at(0), "_GMT-1970.01.01-00.00.00");
        // A leap day, and the last second of a leap year.
        assert_eq!(suffix_at(951_782_400), "_GMT-2000.02.29-00.00.00");
        assert_eq!(suffix_at(1_735_689_599), "_GMT-2024.12.31-23.59.59");
        assert_eq!(suffix_at(1_700_000_000), "_GMT-2023.11.14-22.13.20");
    }

    #[test]
    fn leap_day_year_end_and_before_1970() {
        // 2028-02-29 12:34:56.000789.
        let leap = 1_835_440_496_000_789;
        assert_eq!(timestamp_suffix(leap), "_GMT-2028.02.29-12.34.56.000789");
        assert_eq!(utc_time(leap), "2028-02-29 12:34:56 UTC");
        assert_eq!(rfc3339(leap), "2028-02-29T12:34:56Z");
        // The last microsecond of 2027, and the next one.
        let end = 1_830_297_599_999_999;
        assert_eq!(timestamp_suffix(end), "_GMT-2027.12.31-23.59.59.999999");
        assert_eq!(timestamp_suffix(end + 1), "_GMT-2028.01.01-00.00.00.000000");
        assert_eq!(rfc3339(end), "2027-12-31T23:59:59Z");
        assert_eq!(rfc3339(end + 1), "2028-01-01T00:00:00Z");
        // Before the epoch: rounded down to the second, not towards zero.
        assert_eq!(timestamp_suffix(-1), "_GMT-1969.12.31-23.59.59.999999");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(utc_time(-1_500_000), "1969-12-31 23:59:58 UTC");
        // 1900 was not a leap year, 1600 was.
        assert_eq!(suffix_at(-2_203_891_200), "_GMT-1900.03.01-00.00.00");
        assert_eq!(suffix_at(-2_203_891_201), "_GMT-1900.02.28-23.59.59");
        assert_eq!(suffix_at(-11_670_912_001), "_GMT-1600.02.29-23.59.59");
        // Outside jiff's range: clamped to its ends, never a panic.
        assert_eq!(rfc3339(i64::MAX), "9999-12-30T22:00:00Z");
        assert_eq!(utc_time(i64::MIN), "-9999-01-02 01:59:59 UTC");
    }

    #[test]
    fn civil_days_round_trip() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(-1), (1969, 12, 31));
        assert_eq!(civil(days_from_civil(2028, 2, 29)), (2028, 2, 29));
        assert_eq!(
            days_from_civil(2028, 3, 1) - days_from_civil(2028, 2, 28),
            2
        );
        assert_eq!(
            days_from_civil(2100, 3, 1) - days_from_civil(2100, 2, 28),
            1
        );
        // Every day from 1600 to 2400 follows the one before it.
        let (first, last) = (days_from_civil(1600, 1, 1), days_from_civil(2400, 12, 31));
        let mut prev = civil(first - 1);
        for day in first..=last {
            let c = civil(day);
            assert_eq!(days_from_civil(c.0, c.1, c.2), day);
            let next_of_prev = c.2 == prev.2 + 1 && c.1 == prev.1
                || c.2 == 1
                    && (c.1 == prev.1 + 1 && c.0 == prev.0 || c.1 == 1 && c.0 == prev.0 + 1);
            assert!(next_of_prev, "{prev:?} then {c:?}");
            prev = c;
        }
    }
}
