//! Values with units that several sections read: byte counts (`1g`),
//! durations (`30m`) and counts. Each is checked inside its serde visitor,
//! so that serde_yaml_ng marks a bad value with the value's own line and
//! column (after the visitor returns, the position is the enclosing
//! map's).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Unexpected, Visitor};
use serde::{Deserializer, Serializer};

/// What a limit of 0 is refused with: a world could not even start.
const ZERO: &str = "0 is no limit a world can run under (leave the key out for none)";

/// Reads a byte count: an integer, or one with a `k`, `m`, `g` or `t`
/// suffix (powers of 1024), or `null` for none. Counts below `min` are
/// refused.
pub(crate) fn deserialize_byte_count<'de, D: Deserializer<'de>>(
    deserializer: D,
    min: u64,
) -> Result<Option<u64>, D::Error> {
    struct ByteCount {
        min: u64,
    }

    impl ByteCount {
        fn check<E: de::Error>(&self, count: u64) -> Result<Option<u64>, E> {
            if count < self.min {
                Err(E::custom(ZERO))
            } else {
                Ok(Some(count))
            }
        }
    }

    impl Visitor<'_> for ByteCount {
        type Value = Option<u64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte count: an integer, or one with a k, m, g or t suffix")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_u64<E: de::Error>(self, count: u64) -> Result<Self::Value, E> {
            self.check(count)
        }

        fn visit_i64<E: de::Error>(self, count: i64) -> Result<Self::Value, E> {
            match u64::try_from(count) {
                Ok(count) => self.check(count),
                Err(_) => Err(E::invalid_value(Unexpected::Signed(count), &self)),
            }
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            match parse_byte_count(text) {
                Some(count) => self.check(count),
                None => Err(E::invalid_value(Unexpected::Str(text), &self)),
            }
        }
    }

    deserializer.deserialize_any(ByteCount { min })
}

/// A byte count of at least 1, or `null`.
pub(crate) fn deserialize_positive_byte_count<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    deserialize_byte_count(deserializer, 1)
}

/// `1g` is 2^30. `None` when `text` is no byte count or one past `u64::MAX`.
pub(crate) fn parse_byte_count(text: &str) -> Option<u64> {
    let shift = match text.bytes().last()?.to_ascii_lowercase() {
        b'k' => 10,
        b'm' => 20,
        b'g' => 30,
        b't' => 40,
        _ => 0,
    };
    // The suffix is one ASCII byte, so this slices at a char boundary.
    let digits = if shift == 0 {
        text
    } else {
        &text[..text.len() - 1]
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

/// Reads a count of at least 1 (an integer), or `null` for none.
pub(crate) fn deserialize_positive_count<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    struct Count;

    impl Visitor<'_> for Count {
        type Value = Option<u64>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a whole number of at least 1")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_u64<E: de::Error>(self, count: u64) -> Result<Self::Value, E> {
            match count {
                0 => Err(E::custom(ZERO)),
                count => Ok(Some(count)),
            }
        }

        fn visit_i64<E: de::Error>(self, count: i64) -> Result<Self::Value, E> {
            match u64::try_from(count) {
                Ok(count) => self.visit_u64(count),
                Err(_) => Err(E::invalid_value(Unexpected::Signed(count), &self)),
            }
        }
    }

    deserializer.deserialize_any(Count)
}

/// Reads a duration of at least a second: whole seconds (`90`), or a whole
/// number with an `s`, `m` or `h` suffix (`90s`, `30m`, `2h`); `null` for
/// none.
pub(crate) fn deserialize_duration<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    struct Seconds;

    impl Visitor<'_> for Seconds {
        type Value = Option<Duration>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration: whole seconds, or a whole number with an s, m or h suffix")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Self::Value, E> {
            match seconds {
                0 => Err(E::custom(ZERO)),
                seconds => Ok(Some(Duration::from_secs(seconds))),
            }
        }

        fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Self::Value, E> {
            match u64::try_from(seconds) {
                Ok(seconds) => self.visit_u64(seconds),
                Err(_) => Err(E::invalid_value(Unexpected::Signed(seconds), &self)),
            }
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            match parse_seconds(text) {
                Some(seconds) => self.visit_u64(seconds),
                None => Err(E::invalid_value(Unexpected::Str(text), &self)),
            }
        }
    }

    deserializer.deserialize_any(Seconds)
}

/// `30m` is 1800. `None` when `text` is no duration or one past `u64::MAX`
/// seconds.
fn parse_seconds(text: &str) -> Option<u64> {
    let unit = match text.bytes().last()? {
        b's' => 1,
        b'm' => 60,
        b'h' => 3600,
        _ => 1,
    };
    let digits = text.strip_suffix(['s', 'm', 'h']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

/// Writes a duration as the whole seconds it was read as.
pub(crate) fn serialize_duration<S: Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => serializer.serialize_u64(duration.as_secs()),
        None => serializer.serialize_none(),
    }
}

/// The lower of two optional limits; a missing one inherits the other.
pub(crate) fn min_limit<T: Ord + Copy>(node: Option<T>, inline: Option<T>) -> Option<T> {
    match (node, inline) {
        (Some(node), Some(inline)) => Some(node.min(inline)),
        (node, inline) => node.or(inline),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts() {
        assert_eq!(parse_byte_count("0"), Some(0));
        assert_eq!(parse_byte_count("4096"), Some(4096));
        assert_eq!(parse_byte_count("2k"), Some(2048));
        assert_eq!(parse_byte_count("2K"), Some(2048));
        assert_eq!(parse_byte_count("512m"), Some(512 << 20));
        assert_eq!(parse_byte_count("1g"), Some(1 << 30));
        assert_eq!(parse_byte_count("1t"), Some(1 << 40));
        for bad in ["", "g", "1.5g", "-1", "1x", "1 g", "99999999999t"] {
            assert_eq!(parse_byte_count(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_seconds("90"), Some(90));
        assert_eq!(parse_seconds("90s"), Some(90));
        assert_eq!(parse_seconds("30m"), Some(1800));
        assert_eq!(parse_seconds("2h"), Some(7200));
        for bad in [
            "",
            "s",
            "1.5h",
            "-1s",
            "1d",
            "1 m",
            "1m30s",
            "99999999999999999999h",
        ] {
            assert_eq!(parse_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_lower_limit_wins() {
        assert_eq!(min_limit(Some(3), Some(2)), Some(2));
        assert_eq!(min_limit(Some(3), None), Some(3));
        assert_eq!(min_limit(None, Some(2)), Some(2));
        assert_eq!(min_limit::<u64>(None, None), None);
    }
}
