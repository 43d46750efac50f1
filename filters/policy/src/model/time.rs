//! The request time as Cedar's `datetime` text.

use std::time::{SystemTime, UNIX_EPOCH};

pub(super) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Cedar's `datetime` text for a time, to the second (policies need no
/// more, and it lets consecutive requests share one value), in UTC. Times
/// before 1970 are clamped to the epoch: a host clock never reports them.
pub(crate) fn cedar_datetime(time: SystemTime) -> String {
    let secs = i64::try_from(unix_seconds(time)).unwrap_or(i64::MAX);
    let days = secs.div_euclid(86_400);
    let secs_of_day = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (h, rest) = (secs_of_day / 3600, secs_of_day % 3600);
    let (min, s) = (rest / 60, rest % 60);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}Z")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// well-known algorithm, rewritten here).
pub(super) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}
