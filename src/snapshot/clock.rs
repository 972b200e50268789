//! Wall-clock times for snapshot records and the Gluster-style `--timestamp` name suffix
//! (a UTC civil date computed here, without a calendar dependency).
//!
//! Invariant: the suffixes one daemon hands out are strictly increasing, with microsecond
//! resolution (`_GMT-YYYY.MM.DD-HH.MM.SS.uuuuuu`): two creates in the same second, or even
//! the same microsecond, get different names. (A name that still exists, after the clock
//! went back across a restart, is skipped by the caller: see [`next_timestamp`].)

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

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
    let (y, m, d, h, mi, s) = utc_fields(secs);
    format!("_GMT-{y:04}.{m:02}.{d:02}-{h:02}.{mi:02}.{s:02}")
}

/// The UTC (year, month, day, hour, minute, second) of `secs` since the epoch.
fn utc_fields(secs: i64) -> (i64, u32, u32, i64, i64, i64) {
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Microseconds since the epoch as a UTC time for people (`2026-11-30 19:47:30 UTC`).
pub fn utc_time(us: i64) -> String {
    let (y, m, d, h, mi, s) = utc_fields(us.div_euclid(1_000_000));
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC")
}

/// Microseconds since the epoch as an RFC 3339 UTC time, to the second
/// (`2026-11-30T19:47:30Z`): what `--json` output carries beside the unix seconds.
pub fn rfc3339(us: i64) -> String {
    let (y, m, d, h, mi, s) = utc_fields(us.div_euclid(1_000_000));
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// The UTC civil date (year, month 1-12, day 1-31) of `days` since the epoch (Howard
/// Hinnant's algorithm).
pub(super) fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m as u32, d as u32)
}

/// Days since the epoch of a UTC civil date: the inverse of [`civil`] (for tests, which
/// write their times as dates).
#[cfg(test)]
pub(super) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::{next_timestamp, suffix_at, timestamp_suffix};

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
}
