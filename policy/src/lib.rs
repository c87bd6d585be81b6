//! The world policy: a versioned YAML document. This crate parses and
//! validates it (errors name the entry, with line and column) and decides
//! whether one policy only narrows another. Today it has the `network`
//! section; the policy broker adds commands, files and limits.
//!
//! ```
//! let policy = substrate_policy::Policy::parse("version: 1\nnetwork:\n  allow: [example.com]\n")?;
//! assert!(policy.network.allows_anything());
//! # Ok::<(), substrate_policy::PolicyError>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

pub mod network;

use network::{NarrowError, NetworkPolicy};

/// The one policy document version this crate reads.
pub const VERSION: u32 = 1;

/// A world policy document. It serializes to the YAML it reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Always [`VERSION`]; a document without it is refused, so that a
    /// later format is never read as this one.
    #[serde(deserialize_with = "deserialize_version")]
    pub version: u32,
    #[serde(default)]
    pub network: NetworkPolicy,
}

/// A policy that cannot be read, parsed or applied.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not a valid policy: bad YAML, an unknown key, a bad value or entry.
    /// `message` is the deserializer's, with the key's path
    /// (`network.allow[0]: ...`) but without the position.
    #[error("{}{message}", Origin { file: file.as_deref(), position: *position })]
    Invalid {
        /// The file it came from (`None` for [`Policy::parse`]).
        file: Option<PathBuf>,
        position: Option<Position>,
        message: String,
    },
    #[error(transparent)]
    Narrow(#[from] NarrowError),
}

/// A place in a policy document, counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Default for Policy {
    /// Version 1 with `default: deny` and no entries: reach nothing.
    fn default() -> Self {
        Policy {
            version: VERSION,
            network: NetworkPolicy::default(),
        }
    }
}

impl Policy {
    /// Parses a policy document.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        parse(text, None)
    }

    /// Reads and parses the policy document at `path`; errors name it.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
        parse(&text, Some(path))
    }

    /// Applies `inline`, from an untrusted source, under `self`, the
    /// node's policy: see [`NetworkPolicy::narrow`].
    pub fn narrow(&self, inline: &Policy) -> Result<Policy, PolicyError> {
        Ok(Policy {
            version: VERSION,
            network: self.network.narrow(&inline.network)?,
        })
    }
}

fn parse(text: &str, file: Option<&Path>) -> Result<Policy, PolicyError> {
    serde_yaml_ng::from_str(text).map_err(|error| {
        let position = error.location().map(|location| Position {
            line: location.line(),
            column: location.column(),
        });
        let mut message = error.to_string();
        // serde_yaml_ng writes the position into its message, at the end
        // of ours and after the problem of a YAML syntax error; we put it
        // in front, where editors and terminals look for it.
        if let Some(Position { line, column }) = position {
            let at = format!(" at line {line} column {column}");
            message = match message.strip_suffix(&at) {
                Some(rest) => rest.to_owned(),
                None => message.replacen(&at, "", 1),
            };
        }
        PolicyError::Invalid {
            file: file.map(Path::to_owned),
            position,
            message,
        }
    })
}

fn deserialize_version<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    // Checked inside the visitor, so that the error is marked with the
    // value's position rather than the document's.
    struct Version;

    impl Visitor<'_> for Version {
        type Value = u32;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "version {VERSION}")
        }

        fn visit_u64<E: de::Error>(self, version: u64) -> Result<u32, E> {
            match version {
                version if version == u64::from(VERSION) => Ok(VERSION),
                other => Err(E::custom(format_args!(
                    "unsupported version {other} (this Substrate reads version {VERSION})"
                ))),
            }
        }

        fn visit_i64<E: de::Error>(self, version: i64) -> Result<u32, E> {
            Err(E::invalid_value(de::Unexpected::Signed(version), &self))
        }
    }

    deserializer.deserialize_u32(Version)
}

/// Writes `file:line:column: `, or as much of it as is known.
struct Origin<'a> {
    file: Option<&'a Path>,
    position: Option<Position>,
}

impl fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.file, self.position) {
            (Some(file), Some(Position { line, column })) => {
                write!(f, "{}:{line}:{column}: ", file.display())
            }
            (Some(file), None) => write!(f, "{}: ", file.display()),
            (None, Some(Position { line, column })) => write!(f, "{line}:{column}: "),
            (None, None) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::{Entry, Verdict};

    fn invalid(text: &str) -> (Option<Position>, String) {
        match Policy::parse(text) {
            Ok(policy) => panic!("parsed: {policy:?}"),
            Err(PolicyError::Invalid {
                file: None,
                position,
                message,
            }) => (position, message),
            Err(other) => panic!("{other:?}"),
        }
    }

    fn at(line: usize, column: usize) -> Option<Position> {
        Some(Position { line, column })
    }

    #[test]
    fn parses_every_key() {
        let policy = Policy::parse(
            "version: 1\n\
             network:\n  \
               default: allow\n  \
               allow: [\"10.0.0.0/8\", \"example.com:443/tcp\", \"*.pypi.org\"]\n  \
               deny: [10.0.5.0/24]\n  \
               egress_bytes: 1g\n",
        )
        .unwrap();
        let entries = |texts: &[&str]| -> Vec<Entry> {
            texts
                .iter()
                .map(|text| Entry::parse(text).unwrap())
                .collect()
        };
        assert_eq!(policy.version, 1);
        assert_eq!(policy.network.default, Verdict::Allow);
        assert_eq!(
            policy.network.allow,
            entries(&["10.0.0.0/8", "example.com:443/tcp", "*.pypi.org"])
        );
        assert_eq!(policy.network.deny, entries(&["10.0.5.0/24"]));
        assert_eq!(policy.network.egress_bytes, Some(1 << 30));
    }

    #[test]
    fn everything_but_the_version_is_optional() {
        assert_eq!(Policy::parse("version: 1").unwrap(), Policy::default());
        assert_eq!(
            Policy::parse("version: 1\nnetwork: {}\n").unwrap(),
            Policy::default()
        );
        assert_eq!(
            Policy::parse("version: 1\nnetwork:\n  egress_bytes: 4096\n")
                .unwrap()
                .network
                .egress_bytes,
            Some(4096)
        );
    }

    #[test]
    fn a_null_quota_is_no_quota() {
        let policy = Policy::parse("version: 1\nnetwork:\n  egress_bytes:\n").unwrap();
        assert_eq!(policy.network.egress_bytes, None);
    }

    #[test]
    fn serializes_to_what_it_reads() {
        for text in [
            "version: 1\n",
            "version: 1\nnetwork:\n  default: allow\n  deny: [\"*.Ads.example.com:443\", \"[::1]:53/udp\"]\n",
            include_str!("../examples/network.yaml"),
        ] {
            let policy = Policy::parse(text).unwrap();
            let written = serde_yaml_ng::to_string(&policy).unwrap();
            assert_eq!(Policy::parse(&written).unwrap(), policy, "{written}");
        }
        let policy =
            Policy::parse("version: 1\nnetwork:\n  allow: [\"Example.com.:443\"]\n").unwrap();
        assert_eq!(
            serde_yaml_ng::to_string(&policy).unwrap(),
            "version: 1\nnetwork:\n  default: deny\n  allow:\n  - Example.com.:443\n  deny: []\n"
        );
    }

    #[test]
    fn the_default_policy_reaches_nothing() {
        let policy = Policy::default();
        assert_eq!(policy.version, VERSION);
        assert!(!policy.network.allows_anything());
    }

    #[test]
    fn version_is_required_and_must_be_1() {
        assert_eq!(invalid("").1, "missing field `version`");
        assert_eq!(invalid("network: {}\n").1, "missing field `version`");
        assert_eq!(
            invalid("network: {}\nversion: 2\n"),
            (
                at(2, 10),
                "version: unsupported version 2 (this Substrate reads version 1)".to_owned()
            )
        );
        assert_eq!(
            invalid("version: \"1\"\n"),
            (
                at(1, 10),
                "version: invalid type: string \"1\", expected version 1".to_owned()
            )
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_line_and_column() {
        assert_eq!(
            invalid("version: 1\nnetwork:\n  defualt: deny\n"),
            (
                at(3, 3),
                "network: unknown field `defualt`, expected one of `default`, `allow`, `deny`, `egress_bytes`"
                    .to_owned()
            )
        );
        let (position, message) = invalid("version: 1\ncommands: []\n");
        assert_eq!(position, at(2, 1));
        assert!(message.starts_with("unknown field `commands`"), "{message}");
    }

    #[test]
    fn a_bad_entry_is_named_with_its_place() {
        let error =
            Policy::parse("version: 1\nnetwork:\n  allow:\n    - example.com\n    - 10.1.2.3/8\n")
                .unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"5:7: network.allow[1]: "10.1.2.3/8": host bits are set (did you mean 10.0.0.0/8?)"#
        );
        assert_eq!(
            invalid("version: 1\nnetwork:\n  deny: [\"*.*.example.com\"]\n"),
            (
                at(3, 10),
                r#"network.deny[0]: "*.*.example.com": '*' is allowed only as the whole first label, as in *.example.com"#
                    .to_owned()
            )
        );
    }

    #[test]
    fn an_entry_yaml_reads_as_a_number_is_read_as_written() {
        assert_eq!(
            invalid("version: 1\nnetwork:\n  allow: [443]\n"),
            (
                at(3, 11),
                r#"network.allow[0]: "443": a number alone is no target (for a port on any address, write *:PORT)"#
                    .to_owned()
            )
        );
    }

    #[test]
    fn bad_values_are_errors_with_line_and_column() {
        let (position, message) = invalid("version: 1\nnetwork:\n  default: maybe\n");
        assert_eq!(position, at(3, 12));
        assert!(
            message.starts_with("network.default: unknown variant `maybe`"),
            "{message}"
        );
        for quota in ["-1", "1x", "1.5g", "[]"] {
            let (position, message) =
                invalid(&format!("version: 1\nnetwork:\n  egress_bytes: {quota}\n"));
            assert_eq!(position, at(3, 17), "{quota}");
            assert!(message.starts_with("network.egress_bytes: "), "{message}");
        }
    }

    #[test]
    fn yaml_syntax_errors_have_a_position_once() {
        let error = Policy::parse("version: 1\nnetwork:\n  allow: *.pypi.org\n").unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("3:11: "), "{message}");
        assert!(!message.contains("line 3 column 11"), "{message}");
    }

    #[test]
    fn narrow_applies_the_network_section() {
        let node = Policy::parse("version: 1\nnetwork:\n  allow: [\"*.example.com\"]\n").unwrap();
        let inline = Policy::parse("version: 1\nnetwork:\n  allow: [a.example.com]\n").unwrap();
        assert_eq!(
            node.narrow(&inline).unwrap().network.allow,
            inline.network.allow
        );
        let wider = Policy::parse("version: 1\nnetwork:\n  allow: [example.com]\n").unwrap();
        assert_eq!(
            node.narrow(&wider).unwrap_err().to_string(),
            r#"allow entry "example.com" is not within the node policy"#
        );
    }
}
