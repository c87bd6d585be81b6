//! Span timestamps: nanoseconds since the Unix epoch, written as RFC 3339 in
//! UTC with exactly nine fractional digits (`2024-07-01T12:00:00.123456789Z`).
//!
//! A string rather than an integer because a JSON number above 2^53 loses
//! precision in many readers (JavaScript, jq 1.6), and unix nanoseconds are
//! ~2^60; and because `world.json` already writes RFC 3339.
//!
//! The calendar, the formatting and the parsing are chrono's; this type
//! exists for what chrono's `DateTime<Utc>` does not give: a fixed
//! nine-digit form (so that lines sort and diff as text), a range that is
//! exactly an `i64` of nanoseconds, and one 8-byte `Copy` value that the
//! span model and the runtime share.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::format::ParseErrorKind;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

    /// The same instant as chrono's type. Never fails: every `i64` of
    /// nanoseconds is inside chrono's range.
    pub const fn to_datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_nanos(self.0)
    }
}

impl From<SystemTime> for Timestamp {
    /// Saturates outside the representable range. Not through chrono: its
    /// own `From<SystemTime>` panics outside its range, which a `SystemTime`
    /// can be.
    fn from(time: SystemTime) -> Timestamp {
        let clamp = |d: Duration| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX);
        match time.duration_since(UNIX_EPOCH) {
            Ok(after) => Timestamp(clamp(after)),
            Err(before) => Timestamp(-clamp(before.duration())),
        }
    }
}

impl From<DateTime<Utc>> for Timestamp {
    /// Saturates outside 1677..2262 (chrono's range is far wider). A leap
    /// second (`23:59:60`) counts as the first second of the next minute.
    fn from(time: DateTime<Utc>) -> Timestamp {
        match time.timestamp_nanos_opt() {
            Some(nanos) => Timestamp(nanos),
            None if time.timestamp() < 0 => Timestamp(i64::MIN),
            None => Timestamp(i64::MAX),
        }
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(time: Timestamp) -> DateTime<Utc> {
        time.to_datetime()
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with nine fractional digits, as chrono's
    /// `to_rfc3339_opts(SecondsFormat::Nanos, true)` writes it (years
    /// 1677..2262, all an i64 of nanoseconds holds, have four digits).
    /// Written by hand into a stack buffer: the monitor formats two per
    /// span, hundreds of thousands of spans a second.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1_000_000_000);
        let nanos = self.0.rem_euclid(1_000_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        let mut out = *b"0000-00-00T00:00:00.000000000Z";
        let mut put = |at: usize, width: usize, mut value: u32| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        put(0, 4, year as u32);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, of_day / 3600);
        put(14, 2, of_day / 60 % 60);
        put(17, 2, of_day % 60);
        put(20, 9, nanos);
        f.write_str(std::str::from_utf8(&out).expect("ASCII digits"))
    }
}

/// The proleptic Gregorian date of a day count from 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    /// RFC 3339 (section 5.6), as chrono reads it: `T`, `t` or a space
    /// between date and time, any number of fractional digits (past nine
    /// they are cut), `Z`, `z` or a `±hh:mm` offset (converted to UTC), a
    /// leap second (`:60`) as the next second.
    fn from_str(text: &str) -> Result<Timestamp, TimestampError> {
        let fail = |reason| TimestampError {
            text: text.to_owned(),
            reason,
        };
        let parsed = DateTime::parse_from_rfc3339(text).map_err(|e| {
            fail(match e.kind() {
                ParseErrorKind::TooShort => "ends before the date, time and offset are complete",
                ParseErrorKind::TooLong => "text after the offset",
                ParseErrorKind::OutOfRange | ParseErrorKind::Impossible => {
                    "no such date, time or offset"
                }
                _ => "a digit or separator is missing or misplaced",
            })
        })?;
        parsed
            .timestamp_nanos_opt()
            .map(Timestamp)
            .ok_or_else(|| fail("out of range (1677..2262)"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::SecondsFormat;

    fn ts(text: &str) -> Timestamp {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(text: &str) -> TimestampError {
        match text.parse::<Timestamp>() {
            Ok(t) => panic!("{text:?} parsed as {t}"),
            Err(e) => e,
        }
    }

    #[test]
    fn formats_with_nine_digits_in_utc() {
        for (nanos, text) in [
            (0, "1970-01-01T00:00:00.000000000Z"),
            (1_719_835_200_123_456_789, "2024-07-01T12:00:00.123456789Z"),
            (-1, "1969-12-31T23:59:59.999999999Z"),
            (951_782_400_000_000_000, "2000-02-29T00:00:00.000000000Z"),
            // 1900 is not a leap year (divisible by 100, not by 400).
            (-2_203_977_600_000_000_000, "1900-02-28T00:00:00.000000000Z"),
            (-2_203_891_200_000_000_000, "1900-03-01T00:00:00.000000000Z"),
            (i64::MAX, "2262-04-11T23:47:16.854775807Z"),
            (i64::MIN, "1677-09-21T00:12:43.145224192Z"),
        ] {
            assert_eq!(Timestamp::from_unix_nanos(nanos).to_string(), text);
        }
    }

    #[test]
    fn parses_what_it_formats() {
        for nanos in [
            0,
            1,
            -1,
            951_782_400_000_000_000,    // 2000-02-29
            -2_203_977_600_000_000_000, // 1900-02-28, not a leap year
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
        assert_eq!(ts("2024-07-01T12:00:00.5+00:00"), want);
        assert_eq!(
            ts("2024-07-02T11:59:00.5+23:59"),
            ts("2024-07-01T12:00:00.5Z")
        );
        // Digits past nanoseconds are cut, not rounded.
        assert_eq!(ts("2024-07-01T12:00:00.5000000009Z"), want);
        assert_eq!(
            ts("2024-07-01T12:00:00Z"),
            Timestamp::from_unix_nanos(1_719_835_200_000_000_000)
        );
        // A leap second is the next second.
        assert_eq!(ts("2016-12-31T23:59:60Z"), ts("2017-01-01T00:00:00Z"));
        assert_eq!(ts("2016-12-31T23:59:60.25Z"), ts("2017-01-01T00:00:00.25Z"));
    }

    #[test]
    fn reads_what_chrono_writes() {
        // world.json's times were written by chrono's serde (`AutoSi`: 0, 3,
        // 6 or 9 digits) and may be read back as a Timestamp.
        for nanos in [
            1_795_915_475_000_000_000,
            1_795_915_475_123_000_000,
            1_795_915_475_123_456_000,
            1_795_915_475_123_456_789,
            -1,
        ] {
            let t = Timestamp::from_unix_nanos(nanos);
            let json = serde_json::to_string(&t.to_datetime()).unwrap();
            assert_eq!(
                serde_json::from_str::<Timestamp>(&json).unwrap(),
                t,
                "{json}"
            );
            let offset = t
                .to_datetime()
                .to_rfc3339_opts(SecondsFormat::AutoSi, false);
            assert!(offset.ends_with("+00:00"), "{offset}");
            assert_eq!(ts(&offset), t, "{offset}");
        }
        assert_eq!(
            ts("2026-11-29T01:24:35.123456Z"),
            Timestamp::from_unix_nanos(1_795_915_475_123_456_000)
        );
    }

    #[test]
    fn converts_to_and_from_chrono() {
        for nanos in [0, -1, 1_719_835_200_123_456_789, i64::MAX, i64::MIN] {
            let t = Timestamp::from_unix_nanos(nanos);
            let dt = t.to_datetime();
            assert_eq!(dt.timestamp_nanos_opt(), Some(nanos));
            assert_eq!(Timestamp::from(dt), t);
            assert_eq!(DateTime::<Utc>::from(t), dt);
            assert_eq!(
                dt.to_rfc3339_opts(SecondsFormat::Nanos, true),
                t.to_string()
            );
        }
        // chrono reaches further than an i64 of nanoseconds: saturate.
        let far = DateTime::parse_from_rfc3339("2300-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(Timestamp::from(far), Timestamp::from_unix_nanos(i64::MAX));
        let early = DateTime::parse_from_rfc3339("1600-01-01T00:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(Timestamp::from(early), Timestamp::from_unix_nanos(i64::MIN));
        let leap = DateTime::parse_from_rfc3339("2016-12-31T23:59:60.5Z")
            .unwrap()
            .to_utc();
        assert_eq!(Timestamp::from(leap), ts("2017-01-01T00:00:00.5Z"));
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for (bad, reason) in [
            ("", "ends before"),
            ("1719835200", "ends before"),
            ("2024-07-01T12:00:00", "ends before"),
            ("2024-07-01T12:00:00.Z", "misplaced"),
            ("2024-07-01T12:00:00.5", "ends before"),
            ("2024-07-01", "ends before"),
            ("2024-7-01T12:00:00Z", "misplaced"),
            ("2024/07/01T12:00:00Z", "misplaced"),
            ("2024-07-01_12:00:00Z", "misplaced"),
            ("2024-07-01T12:00:00+0200", "misplaced"),
            ("2024-07-01T12:00:00 UTC", "misplaced"),
            ("2024-02-30T12:00:00Z", "no such"),
            ("2023-02-29T12:00:00Z", "no such"),
            ("1900-02-29T12:00:00Z", "no such"),
            ("2024-13-01T12:00:00Z", "no such"),
            ("2024-07-01T24:00:00Z", "no such"),
            ("2024-07-01T12:60:00Z", "no such"),
            ("2024-07-01T12:00:61Z", "no such"),
            ("2024-07-01T12:00:00+24:00", "no such"),
            ("2024-07-01T12:00:00Z ", "text after"),
            ("2024-07-01T12:00:00Zjunk", "text after"),
            ("2300-01-01T00:00:00Z", "out of range"),
            ("1677-09-21T00:12:43.145224191Z", "out of range"),
            ("2262-04-11T23:47:16.854775808Z", "out of range"),
        ] {
            let e = err(bad);
            assert_eq!(e.text, bad);
            assert!(e.reason.contains(reason), "{bad:?}: {e}");
        }
        // Garbage that is not ASCII must fail, not panic on a char boundary.
        err("2024-07-01T12:00:00é");
        err("２０２４-07-01T12:00:00Z");
    }

    #[test]
    fn the_range_ends_are_exact() {
        assert_eq!(
            ts("2262-04-11T23:47:16.854775807Z"),
            Timestamp::from_unix_nanos(i64::MAX)
        );
        assert_eq!(
            ts("1677-09-21T00:12:43.145224192Z"),
            Timestamp::from_unix_nanos(i64::MIN)
        );
        // An offset may bring a time from outside the range into it.
        assert_eq!(
            ts("2262-04-12T00:47:16.854775807+01:00"),
            Timestamp::from_unix_nanos(i64::MAX)
        );
    }

    #[test]
    fn the_error_says_what_and_why() {
        let e = err("2023-02-29T12:00:00Z");
        assert_eq!(
            e.to_string(),
            "invalid timestamp \"2023-02-29T12:00:00Z\": no such date, time or offset \
             (expected RFC 3339, e.g. 2024-07-01T12:00:00.123456789Z)"
        );
        let e = serde_json::from_str::<Timestamp>("\"soon\"").unwrap_err();
        assert!(e.to_string().contains("invalid timestamp \"soon\""), "{e}");
    }

    #[test]
    fn serde_writes_the_display_form() {
        let t = Timestamp::from_unix_nanos(1_719_835_200_123_456_789);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            "\"2024-07-01T12:00:00.123456789Z\""
        );
    }

    #[test]
    fn order_is_time_order() {
        let a = ts("2024-07-01T12:00:00.000000001Z");
        let b = ts("2024-07-01T13:00:00.000000000+02:00");
        assert!(b < a);
        assert_eq!(b.until(a), Some(Duration::from_nanos(3_600_000_000_001)));
    }

    #[test]
    fn durations_between_points() {
        let a = Timestamp::from_unix_nanos(10);
        let b = Timestamp::from_unix_nanos(25);
        assert_eq!(a.until(b), Some(Duration::from_nanos(15)));
        assert_eq!(b.until(a), None);
    }

    #[test]
    fn system_time_saturates() {
        let t = UNIX_EPOCH + Duration::from_nanos(1_719_835_200_123_456_789);
        assert_eq!(
            Timestamp::from(t),
            Timestamp::from_unix_nanos(1_719_835_200_123_456_789)
        );
        let before = UNIX_EPOCH - Duration::from_nanos(5);
        assert_eq!(Timestamp::from(before), Timestamp::from_unix_nanos(-5));
        let far = UNIX_EPOCH + Duration::from_secs(400 * 365 * 86_400);
        assert_eq!(Timestamp::from(far), Timestamp::from_unix_nanos(i64::MAX));
    }

    #[test]
    fn millis_round_down() {
        assert_eq!(Timestamp::from_unix_nanos(1_999_999).unix_millis(), 1);
        assert_eq!(Timestamp::from_unix_nanos(-1).unix_millis(), -1);
    }
}

#[cfg(test)]
mod display_tests {
    use super::*;
    use chrono::SecondsFormat;

    /// The edges of what an i64 of nanoseconds holds, the epoch and the
    /// instant before it, leap days: written as chrono writes them.
    #[test]
    fn timestamps_are_written_as_chrono_writes_them() {
        let cases = [
            i64::MIN,
            i64::MAX,
            0,
            -1,
            951_782_400_000_000_000,   // 2000-02-29
            4_107_542_399_999_999_999, // 2100-02-28T23:59:59.999999999
        ];
        for nanos in cases {
            let t = Timestamp::from_unix_nanos(nanos);
            assert_eq!(
                t.to_string(),
                t.to_datetime().to_rfc3339_opts(SecondsFormat::Nanos, true),
                "{nanos}"
            );
        }
    }
}
