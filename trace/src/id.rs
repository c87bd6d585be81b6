//! Span ids: UUIDv7 (RFC 9562), so that ids sort in creation order and a
//! reader can tell roughly when a span was made from its id alone.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::time::Timestamp;

/// A span's id, written as a lowercase hyphenated UUID.
///
/// [`SpanId::new`] makes a UUIDv7 whose order follows creation order within a
/// process (the `uuid` crate's shared v7 context puts a counter after the
/// millisecond timestamp). Readers accept any UUID: the id is an opaque key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpanId(Uuid);

/// A span id that is not a UUID.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid span id {text:?}: not a UUID")]
pub struct SpanIdError {
    pub text: String,
}

impl SpanId {
    /// A new UUIDv7 from the system clock and the OS's random source.
    #[allow(clippy::new_without_default)] // a default id would be a new random one: say so
    pub fn new() -> SpanId {
        SpanId(Uuid::now_v7())
    }

    /// A UUIDv7 from a time and caller-supplied random bits, for writers
    /// that must not make a system call per span: put a per-process counter
    /// in the first bytes of `random` to keep ids made within one
    /// millisecond in order. Times before the epoch count as 0.
    pub fn v7_from_parts(at: Timestamp, random: [u8; 10]) -> SpanId {
        let millis = u64::try_from(at.unix_millis()).unwrap_or(0);
        SpanId(uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid())
    }

    pub const fn from_uuid(uuid: Uuid) -> SpanId {
        SpanId(uuid)
    }

    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    /// The millisecond time a UUIDv7 carries; `None` for other versions.
    pub fn created_at(&self) -> Option<Timestamp> {
        if self.0.get_version_num() != 7 {
            return None;
        }
        let (secs, nanos) = self.0.get_timestamp()?.to_unix();
        let secs = i64::try_from(secs).ok()?;
        Some(Timestamp::from_unix_nanos(
            secs.checked_mul(1_000_000_000)? + i64::from(nanos),
        ))
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for SpanId {
    type Err = SpanIdError;

    fn from_str(text: &str) -> Result<SpanId, SpanIdError> {
        Uuid::parse_str(text).map(SpanId).map_err(|_| SpanIdError {
            text: text.to_owned(),
        })
    }
}

impl Serialize for SpanId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SpanId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_v7_and_ordered() {
        let ids: Vec<SpanId> = (0..10_000).map(|_| SpanId::new()).collect();
        assert!(ids.iter().all(|id| id.as_uuid().get_version_num() == 7));
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids not increasing");
        // String order is id order, so sorting lines by span_id works too.
        let texts: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert!(texts.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn ids_carry_their_creation_time() {
        let before = Timestamp::now().unix_millis();
        let id = SpanId::new();
        let after = Timestamp::now().unix_millis();
        let at = id.created_at().expect("a v7 id").unix_millis();
        assert!(before <= at && at <= after, "{before} <= {at} <= {after}");
    }

    #[test]
    fn ids_from_parts_order_by_time_then_random() {
        let t1 = Timestamp::from_unix_nanos(1_719_835_200_123_000_000);
        let t2 = Timestamp::from_unix_nanos(1_719_835_200_124_000_000);
        let a = SpanId::v7_from_parts(t1, [0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        let b = SpanId::v7_from_parts(t1, [0, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
        let c = SpanId::v7_from_parts(t2, [0; 10]);
        assert!(a < b && b < c);
        assert_eq!(
            a.created_at().map(Timestamp::unix_millis),
            Some(t1.unix_millis())
        );
    }

    #[test]
    fn text_round_trip_and_errors() {
        let id = SpanId::new();
        assert_eq!(id.to_string().parse::<SpanId>(), Ok(id));
        assert!("not-a-uuid".parse::<SpanId>().is_err());
    }
}

/// What is wrong with `id` as a world's id, if anything: runc's rule for
/// container ids (`^[\w+\-.]+$`, not `.` or `..`, at most 1024 bytes),
/// under which an id joined to a directory never names anything outside
/// it. The runtime, which names worlds, and every reader of the store that
/// does not link it (the graph) check ids with this one rule.
pub fn world_id_flaw(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("it is empty")
    } else if id == "." || id == ".." {
        Some("it names a directory")
    } else if id.len() > 1024 {
        Some("it is longer than 1024 bytes")
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'))
    {
        Some("only letters, digits, '_', '+', '-' and '.' are allowed")
    } else {
        None
    }
}
