//! The `ask` section: how an `ask` is settled when no approver answers.
//!
//! ```yaml
//! ask:
//!   timeout: 60s     # how long an exec waits for an approver (default 60 s)
//!   default: deny    # what is done when none answers in time: deny | allow
//! ```
//!
//! An exec a rule says `ask` about waits in the kernel while the world's
//! monitor asks an approver (`substrate-cli run` on a terminal, or
//! `substrate-cli approve WORLD` from another one); when no approver
//! answers within `timeout`, `default` is done.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::units::{deserialize_duration, serialize_duration};

/// How long an ask waits when the document does not say.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The ask section. Narrowing keeps the shorter timeout, and `deny` when
/// either says it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AskPolicy {
    /// `None`: [`DEFAULT_TIMEOUT`].
    #[serde(
        deserialize_with = "deserialize_duration",
        serialize_with = "serialize_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// `None`: deny.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<Unanswered>,
}

/// What is done with an ask nobody answered in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unanswered {
    Deny,
    Allow,
}

impl AskPolicy {
    pub fn is_default(&self) -> bool {
        *self == AskPolicy::default()
    }

    /// How long an ask waits.
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    /// What is done when nobody answers in time.
    pub fn unanswered(&self) -> Unanswered {
        self.default.unwrap_or(Unanswered::Deny)
    }

    /// `inline` under `self`: the shorter timeout; deny if either denies.
    pub fn narrow(&self, inline: &AskPolicy) -> AskPolicy {
        AskPolicy {
            timeout: match (self.timeout, inline.timeout) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b).map(|t| t.min(DEFAULT_TIMEOUT)),
            },
            default: match (self.unanswered(), inline.unanswered()) {
                (Unanswered::Allow, Unanswered::Allow) => Some(Unanswered::Allow),
                _ if self.default.is_none() && inline.default.is_none() => None,
                _ => Some(Unanswered::Deny),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(timeout: Option<u64>, default: Option<Unanswered>) -> AskPolicy {
        AskPolicy {
            timeout: timeout.map(Duration::from_secs),
            default,
        }
    }

    #[test]
    fn narrowing_keeps_the_shorter_wait_and_deny() {
        use Unanswered::*;
        let node = ask(Some(30), Some(Allow));
        assert_eq!(node.narrow(&ask(Some(10), None)), ask(Some(10), Some(Deny)));
        assert_eq!(
            node.narrow(&ask(Some(90), Some(Allow))),
            ask(Some(30), Some(Allow))
        );
        // An inline timeout cannot outlast the default the node leaves.
        assert_eq!(
            ask(None, None).narrow(&ask(Some(600), None)).timeout(),
            DEFAULT_TIMEOUT
        );
        assert_eq!(ask(None, None).narrow(&ask(None, None)), ask(None, None));
        assert_eq!(
            ask(None, None).narrow(&ask(None, Some(Allow))).unanswered(),
            Deny
        );
    }
}
