//! Span timestamps: nanoseconds since the Unix epoch, written as RFC 3339 in
//! UTC with exactly nine fractional digits (`2024-07-01T12:00:00.123456789Z`).
//!
//! A string rather than an integer because a JSON number above 2^53 loses
//! precision in many readers (JavaScript, jq 1.6), and unix nanoseconds are
//! ~2^60; and because `world.json` already writes RFC 3339.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const NANOS_PER_SEC: i64 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;

/// A point in time with nanosecond precision, 1677-09-21 to 2262-04-11
/// (the range of an `i64` of nanoseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// A timestamp string that is not RFC 3339 or is out of range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid timestamp {text:?}: {reason} (expected RFC 3339, e.g. 2024-07-01T12:00:00.123456789Z)"
)]
pub struct TimestampError {
    pub text: String,
    pub reason: &'static str,
}

impl Timestamp {
    /// The system clock now.
    pub fn now() -> Timestamp {
        Timestamp::from(SystemTime::now())
    }

    pub const fn from_unix_nanos(nanos: i64) -> Timestamp {
        Timestamp(nanos)
    }

    pub const fn unix_nanos(self) -> i64 {
        self.0
    }

    /// Milliseconds since the epoch, rounded down (what a UUIDv7 carries).
    pub fn unix_millis(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// `later - self`, or `None` when `later` is earlier.
    pub fn until(self, later: Timestamp) -> Option<Duration> {
        let nanos = later.0.checked_sub(self.0)?;
        u64::try_from(nanos).ok().map(Duration::from_nanos)
    }
}

impl From<SystemTime> for Timestamp {
    /// Saturates outside the representable range.
    fn from(time: SystemTime) -> Timestamp {
        let clamp = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Timestamp(clamp(after)),
            Err(before) => Timestamp(-clamp(before.duration())),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(NANOS_PER_SEC);
        let nanos = self.0.rem_euclid(NANOS_PER_SEC);
        let days = secs.div_euclid(SECS_PER_DAY);
        let in_day = secs.rem_euclid(SECS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
            in_day / 3600,
            in_day / 60 % 60,
            in_day % 60
        )
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    /// RFC 3339 (section 5.6): `T`, `t` or a space between date and time,
    /// 0 to 9 fractional digits (more are cut to nanoseconds), `Z`, `z` or
    /// a `±hh:mm` offset.
    fn from_str(text: &str) -> Result<Timestamp, TimestampError> {
        let fail = |reason| TimestampError {
            text: text.to_owned(),
            reason,
        };
        let b = text.as_bytes();
        if b.len() < 20 {
            return Err(fail("too short"));
        }
        let num = |range: std::ops::Range<usize>| -> Result<i64, TimestampError> {
            let digits = &b[range];
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err(fail("expected digits"));
            }
            Ok(digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
        };
        let sep = |at: usize, want: &[u8]| -> Result<(), TimestampError> {
            if want.contains(&b[at]) {
                Ok(())
            } else {
                Err(fail("misplaced separator"))
            }
        };
        let year = num(0..4)?;
        sep(4, b"-")?;
        let month = num(5..7)?;
        sep(7, b"-")?;
        let day = num(8..10)?;
        sep(10, b"Tt ")?;
        let hour = num(11..13)?;
        sep(13, b":")?;
        let minute = num(14..16)?;
        sep(16, b":")?;
        let second = num(17..19)?;
        if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return Err(fail("no such date"));
        }
        // 60 is a leap second (RFC 3339 5.7); it is counted as the next second.
        if hour > 23 || minute > 59 || second > 60 {
            return Err(fail("no such time"));
        }

        let mut at = 19;
        let mut nanos = 0;
        if b[at] == b'.' {
            at += 1;
            let start = at;
            while at < b.len() && b[at].is_ascii_digit() {
                if at - start < 9 {
                    nanos = nanos * 10 + i64::from(b[at] - b'0');
                }
                at += 1;
            }
            if at == start {
                return Err(fail("no digits after '.'"));
            }
            for _ in (at - start)..9 {
                nanos *= 10;
            }
        }
        let offset_secs = match &b[at..] {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
                let oh = num(at + 1..at + 3)?;
                let om = num(at + 4..at + 6)?;
                if oh > 23 || om > 59 {
                    return Err(fail("no such offset"));
                }
                let offset = oh * 3600 + om * 60;
                if *sign == b'-' {
                    -offset
                } else {
                    offset
                }
            }
            _ => return Err(fail("expected Z or a ±hh:mm offset at the end")),
        };

        let secs =
            days_from_civil(year, month, day) * SECS_PER_DAY + hour * 3600 + minute * 60 + second
                - offset_secs;
        let total = i128::from(secs) * i128::from(NANOS_PER_SEC) + i128::from(nanos);
        i64::try_from(total)
            .map(Timestamp)
            .map_err(|_| fail("out of range (1677..2262)"))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant,
/// "chrono-Compatible Low-Level Date Algorithms").
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn formats_with_nine_digits_in_utc() {
        assert_eq!(
            Timestamp::from_unix_nanos(0).to_string(),
            "1970-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            Timestamp::from_unix_nanos(1_719_835_200_123_456_789).to_string(),
            "2024-07-01T12:00:00.123456789Z"
        );
        assert_eq!(
            Timestamp::from_unix_nanos(-1).to_string(),
            "1969-12-31T23:59:59.999999999Z"
        );
    }

    #[test]
    fn parses_what_it_formats() {
        for nanos in [
            0,
            1,
            -1,
            951_782_400_000_000_000, // 2000-02-29
            1_719_835_200_123_456_789,
            i64::MAX,
            i64::MIN,
        ] {
            let t = Timestamp::from_unix_nanos(nanos);
            assert_eq!(ts(&t.to_string()), t, "{t}");
        }
    }

    #[test]
    fn accepts_rfc3339_variants() {
        let want = Timestamp::from_unix_nanos(1_719_835_200_500_000_000);
        assert_eq!(ts("2024-07-01T12:00:00.5Z"), want);
        assert_eq!(ts("2024-07-01t12:00:00.500z"), want);
        assert_eq!(ts("2024-07-01 14:00:00.5+02:00"), want);
        assert_eq!(ts("2024-07-01T11:30:00.5-00:30"), want);
        assert_eq!(ts("2024-07-01T12:00:00.5000000001Z"), want);
        assert_eq!(
            ts("2024-07-01T12:00:00Z"),
            Timestamp::from_unix_nanos(1_719_835_200_000_000_000)
        );
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for bad in [
            "",
            "1719835200",
            "2024-07-01T12:00:00",
            "2024-07-01T12:00:00.Z",
            "2024-02-30T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2024-07-01T24:00:00Z",
            "2024-07-01T12:00:00+0200",
            "2024-07-01T12:00:00Z ",
            "2300-01-01T00:00:00Z",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn durations_between_points() {
        let a = Timestamp::from_unix_nanos(10);
        let b = Timestamp::from_unix_nanos(25);
        assert_eq!(a.until(b), Some(Duration::from_nanos(15)));
        assert_eq!(b.until(a), None);
    }
}
