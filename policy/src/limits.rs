//! The `limits` and `budget` sections: how much a world may use.
//!
//! ```yaml
//! limits:
//!   memory: 2g        # bytes, with a k, m, g or t suffix (powers of 1024)
//!   cpus: 1.5         # CPUs' worth of time, to the thousandth
//!   pids: 512         # processes and threads
//!   disk: 10g         # bytes written into the world's upper layer
//!   wall_time: 30m    # whole seconds, or with an s, m or h suffix
//! budget:
//!   max_execs: 1000   # execs over the world's life
//!   cpu_seconds: 600  # CPU time over the world's life
//! ```
//!
//! Every key is optional (and `null` is the same as leaving it out): no
//! key, no limit from the policy. A limit of 0 is refused: no world could
//! run under it. The egress byte quota is `network.egress_bytes`, not a
//! key here.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::units::{
    deserialize_duration, deserialize_positive_byte_count, deserialize_positive_count, min_limit,
    serialize_duration,
};

/// Resource limits. Narrowing keeps the lower of each.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Bytes of memory (and swap) the world's cgroup may use.
    #[serde(
        deserialize_with = "deserialize_positive_byte_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory: Option<u64>,
    /// CPUs' worth of time per scheduling period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<Cpus>,
    /// Processes and threads alive at once.
    #[serde(
        deserialize_with = "deserialize_positive_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub pids: Option<u64>,
    /// Bytes the world may write into its upper layer.
    #[serde(
        deserialize_with = "deserialize_positive_byte_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub disk: Option<u64>,
    /// How long the world may run before it is stopped.
    #[serde(
        deserialize_with = "deserialize_duration",
        serialize_with = "serialize_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub wall_time: Option<Duration>,
}

/// What a world may spend over its life. Narrowing keeps the lower of each.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Budget {
    /// Execs over the world's life; past it, an exec is refused.
    #[serde(
        deserialize_with = "deserialize_positive_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_execs: Option<u64>,
    /// Seconds of CPU time, every process of the world together.
    #[serde(
        deserialize_with = "deserialize_positive_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub cpu_seconds: Option<u64>,
}

/// A number of CPUs, kept in thousandths (`1.5` is 1500), so that a policy
/// compares exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cpus {
    millis: u32,
}

impl Cpus {
    /// `None` for 0.
    pub fn from_millis(millis: u32) -> Option<Cpus> {
        (millis > 0).then_some(Cpus { millis })
    }

    /// Thousandths of a CPU.
    pub fn millis(self) -> u32 {
        self.millis
    }

    /// CPUs, as `1.5`.
    pub fn get(self) -> f64 {
        f64::from(self.millis) / 1000.0
    }
}

impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.get().fmt(f)
    }
}

impl Serialize for Cpus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.get())
    }
}

impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CpusVisitor;

        impl Visitor<'_> for CpusVisitor {
            type Value = Cpus;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of CPUs, at least 0.001")
            }

            fn visit_f64<E: de::Error>(self, cpus: f64) -> Result<Cpus, E> {
                let millis = (cpus * 1000.0).round();
                if !(1.0..=f64::from(u32::MAX)).contains(&millis) {
                    return Err(E::invalid_value(Unexpected::Float(cpus), &self));
                }
                // In range and whole: the cast is exact.
                Ok(Cpus {
                    millis: millis as u32,
                })
            }

            fn visit_u64<E: de::Error>(self, cpus: u64) -> Result<Cpus, E> {
                match u32::try_from(cpus).ok().and_then(|c| c.checked_mul(1000)) {
                    Some(millis) if millis > 0 => Ok(Cpus { millis }),
                    _ => Err(E::invalid_value(Unexpected::Unsigned(cpus), &self)),
                }
            }

            fn visit_i64<E: de::Error>(self, cpus: i64) -> Result<Cpus, E> {
                match u64::try_from(cpus) {
                    Ok(cpus) => self.visit_u64(cpus),
                    Err(_) => Err(E::invalid_value(Unexpected::Signed(cpus), &self)),
                }
            }
        }

        deserializer.deserialize_any(CpusVisitor)
    }
}

impl Limits {
    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }

    /// The lower of each limit; one left out inherits the other's.
    pub fn narrow(&self, inline: &Limits) -> Limits {
        Limits {
            memory: min_limit(self.memory, inline.memory),
            cpus: min_limit(self.cpus, inline.cpus),
            pids: min_limit(self.pids, inline.pids),
            disk: min_limit(self.disk, inline.disk),
            wall_time: min_limit(self.wall_time, inline.wall_time),
        }
    }
}

impl Budget {
    /// Whether no budget is set.
    pub fn is_empty(&self) -> bool {
        *self == Budget::default()
    }

    /// The lower of each; one left out inherits the other's.
    pub fn narrow(&self, inline: &Budget) -> Budget {
        Budget {
            max_execs: min_limit(self.max_execs, inline.max_execs),
            cpu_seconds: min_limit(self.cpu_seconds, inline.cpu_seconds),
        }
    }
}
