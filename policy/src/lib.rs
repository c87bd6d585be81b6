//! The world policy: a versioned YAML document, its parser and validator
//! (errors name the key and the bad value, with line and column), its
//! narrowing (a node's policy under an untrusted inline one, which may
//! only narrow it), and its decision engine ([`Policy::compile`]) that
//! decides execs and opens.
//!
//! Sections, each optional (`version` is not):
//!
//! - `mode`: `enforce` or `observe` ([`Mode`]);
//! - `commands`: a default and ordered rules over executables and their
//!   arguments ([`commands`]); `exec`: `allow_written` ([`ExecPolicy`]);
//! - `filesystem`: hidden, read-only and writable paths, and `deny_read`
//!   globs ([`filesystem`]);
//! - `network`: what a world may reach ([`network`]);
//! - `limits` and `budget`: what it may use ([`limits`]).
//!
//! The reference for users is `docs/policy.md`; the commented example
//! is `policy/examples/policy.yaml`.
//!
//! ```
//! use std::path::Path;
//! use substrate_policy::{Action, ExecQuery, Policy};
//!
//! let policy = Policy::parse(
//!     "version: 1\n\
//!      commands:\n  \
//!        rules:\n    \
//!          - match: { name: curl }\n      \
//!            action: deny\n      \
//!            reason: no downloads\n",
//! )?;
//! let compiled = policy.compile()?;
//! let decision = compiled.decide_exec(&ExecQuery {
//!     exe: Path::new("/usr/bin/curl"),
//!     argv: &["curl", "https://example.com"],
//!     sha256: None,
//!     written_by_world: false,
//! });
//! assert_eq!(decision.effective, Action::Deny);
//! assert_eq!(decision.rule.to_string(), "commands.rules[0]");
//! assert_eq!(decision.reason.as_deref(), Some("no downloads"));
//! # Ok::<(), substrate_policy::PolicyError>(())
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

pub mod ask;
pub mod commands;
mod engine;
pub mod filesystem;
pub mod limits;
pub mod network;
mod units;

pub use ask::AskPolicy;
pub use commands::{Action, CommandsPolicy, ExecPolicy};
pub use engine::{CompiledPolicy, Decision, ExecQuery, OpenQuery, RuleRef};
pub use filesystem::FilesystemPolicy;
pub use limits::{Budget, Limits};
use network::{NarrowError, NetworkPolicy};

/// The one policy document version this crate reads.
pub const VERSION: u32 = 1;

/// A world policy document. It serializes to the YAML it reads (sections
/// that say nothing left out, `network` aside).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Always [`VERSION`]; a document without it is refused, so that a
    /// later format is never read as this one.
    #[serde(deserialize_with = "deserialize_version")]
    pub version: u32,
    /// `None` when the document does not say: enforce ([`Policy::mode`]).
    /// Kept apart from an explicit `enforce` so that narrowing a node's
    /// `observe` by an inline policy that does not mention the mode keeps
    /// `observe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(default, skip_serializing_if = "CommandsPolicy::is_empty")]
    pub commands: CommandsPolicy,
    #[serde(default, skip_serializing_if = "ExecPolicy::is_default")]
    pub exec: ExecPolicy,
    #[serde(default, skip_serializing_if = "FilesystemPolicy::is_empty")]
    pub filesystem: FilesystemPolicy,
    #[serde(default)]
    pub network: NetworkPolicy,
    #[serde(default, skip_serializing_if = "Limits::is_empty")]
    pub limits: Limits,
    #[serde(default, skip_serializing_if = "Budget::is_empty")]
    pub budget: Budget,
    #[serde(default, skip_serializing_if = "AskPolicy::is_default")]
    pub ask: AskPolicy,
}

/// Whether decisions are carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// What the policy decides is done.
    #[default]
    Enforce,
    /// Everything is allowed; each decision is still made and recorded
    /// with what would have been done ("would deny").
    Observe,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Enforce => "enforce",
            Mode::Observe => "observe",
        })
    }
}

/// A policy that cannot be read, parsed, narrowed or compiled.
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
    /// A valid policy too large to compile (a regex set past its size
    /// limit).
    #[error("cannot compile {part}: {message}")]
    Compile {
        /// Where in the document: `commands.rules`, `filesystem.deny_read`.
        part: String,
        message: String,
    },
}

/// A place in a policy document, counted from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Default for Policy {
    /// Version 1 and nothing else: see [`builtin_default`], which this is
    /// but for saying its mode.
    fn default() -> Self {
        Policy {
            version: VERSION,
            mode: None,
            commands: CommandsPolicy::default(),
            exec: ExecPolicy::default(),
            filesystem: FilesystemPolicy::default(),
            network: NetworkPolicy::default(),
            limits: Limits::default(),
            budget: Budget::default(),
            ask: AskPolicy::default(),
        }
    }
}

/// The policy of a world that is given none (no `--policy`, no node
/// policy, no `/etc/substrate/policy.yaml`):
///
/// - `mode: enforce`;
/// - `commands`: `default: allow`, no rules: every command runs;
/// - `exec.allow_written: true`: files the world wrote may run;
/// - `filesystem`: nothing beyond the hardening every world gets;
/// - `network`: `default: deny`, no entries: nothing is reachable;
/// - `limits`, `budget`: none from the policy; the CLI's own defaults
///   (`--memory`, `--cpus`, `--pids`: half the RAM up to 2 GiB, all CPUs
///   but one, 1,024 processes) still apply to its worlds.
///
/// As a document: `version: 1` and `mode: enforce`.
pub fn builtin_default() -> Policy {
    Policy {
        mode: Some(Mode::Enforce),
        ..Policy::default()
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

    /// The mode decisions are made in: `enforce` unless the document says
    /// `observe`.
    pub fn mode(&self) -> Mode {
        self.mode.unwrap_or_default()
    }

    /// Whether a world's monitor has anything to enforce of this policy
    /// (its `network` aside, which its netns's table and resolver do):
    /// execs to decide, opens to decide, a wall time or a budget to keep.
    pub fn needs_monitor(&self) -> bool {
        !self.commands.is_empty()
            || !self.exec.is_default()
            || !self.filesystem.is_empty()
            || !self.budget.is_empty()
            || self.limits.wall_time.is_some()
    }

    /// Compiles the policy into its decision engine.
    pub fn compile(&self) -> Result<CompiledPolicy, PolicyError> {
        CompiledPolicy::new(self)
    }

    /// Applies `inline`, from an untrusted source, under `self`, the
    /// node's policy. The result is never less strict than `self`:
    ///
    /// - `mode`: `enforce` if either says so; the node's otherwise;
    /// - `commands`: the node's section with the inline's layers appended
    ///   to `narrowed_by` ([`CommandsPolicy::narrow`]): both decide, the
    ///   stricter wins;
    /// - `exec.allow_written`: `false` if either is;
    /// - `filesystem`: see [`FilesystemPolicy::narrow`];
    /// - `network`: see [`NetworkPolicy::narrow`] (the only section that
    ///   refuses an inline policy that would widen it: the others cannot
    ///   be widened);
    /// - `limits`, `budget`: the lower of each;
    /// - `ask`: see [`AskPolicy::narrow`].
    pub fn narrow(&self, inline: &Policy) -> Result<Policy, PolicyError> {
        Ok(Policy {
            version: VERSION,
            mode: match (self.mode, inline.mode) {
                (_, Some(Mode::Enforce)) => Some(Mode::Enforce),
                (node, _) => node,
            },
            commands: self.commands.narrow(&inline.commands),
            exec: self.exec.narrow(&inline.exec),
            filesystem: self.filesystem.narrow(&inline.filesystem),
            network: self.network.narrow(&inline.network)?,
            limits: self.limits.narrow(&inline.limits),
            budget: self.budget.narrow(&inline.budget),
            ask: self.ask.narrow(&inline.ask),
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
        let (position, message) = invalid("version: 1\ncomands: {}\n");
        assert_eq!(position, at(2, 1));
        assert!(message.starts_with("unknown field `comands`"), "{message}");
        for (text, position, start) in [
            ("version: 1\ncommands:\n  rule: []\n", at(3, 3), "commands: unknown field `rule`"),
            (
                "version: 1\ncommands:\n  rules:\n    - match: { exe: /x }\n      action: deny\n      why: x\n",
                at(6, 7),
                "commands.rules[0]: unknown field `why`",
            ),
            (
                "version: 1\ncommands:\n  rules:\n    - match: { exe: /x, path: /y }\n      action: deny\n",
                at(4, 25),
                "commands.rules[0].match: unknown field `path`",
            ),
            ("version: 1\nexec:\n  allow: true\n", at(3, 3), "exec: unknown field `allow`"),
            ("version: 1\nfilesystem:\n  hide: []\n", at(3, 3), "filesystem: unknown field `hide`"),
            (
                "version: 1\nlimits:\n  egress_bytes: 1g\n",
                at(3, 3),
                "limits: unknown field `egress_bytes`",
            ),
            ("version: 1\nbudget:\n  execs: 1\n", at(3, 3), "budget: unknown field `execs`"),
        ] {
            let (found, message) = invalid(text);
            assert_eq!(found, position, "{text}");
            assert!(message.starts_with(start), "{message}");
        }
    }

    #[test]
    fn bad_values_of_every_section_are_named_with_line_and_column() {
        let rule = |matcher: &str| {
            format!("version: 1\ncommands:\n  rules:\n    - match: {matcher}\n      action: deny\n")
        };
        let cases = [
            ("version: 1\nmode: strict\n".to_owned(), at(2, 7), "mode: unknown variant `strict`"),
            (
                "version: 1\ncommands:\n  default: maybe\n".to_owned(),
                at(3, 12),
                "commands.default: unknown variant `maybe`",
            ),
            (
                "version: 1\ncommands:\n  rules:\n    - match: { exe: /x }\n      action: block\n".to_owned(),
                at(5, 15),
                "commands.rules[0].action: unknown variant `block`",
            ),
            (
                "version: 1\ncommands:\n  rules:\n    - match: { exe: /x }\n".to_owned(),
                at(4, 7),
                "commands.rules[0]: missing field `action`",
            ),
            (
                rule("{}"),
                at(4, 14),
                "commands.rules[0].match: a match needs at least one of `exe`, `name`, `argv`, `sha256`, `command_line`, `regex`",
            ),
            (
                rule("{ exe: bin/curl }"),
                at(4, 21),
                r#"commands.rules[0].match.exe: "bin/curl": not an absolute path (start it with /)"#,
            ),
            (
                rule("{ exe: /usr/../bin/curl }"),
                at(4, 21),
                r#"commands.rules[0].match.exe: "/usr/../bin/curl": `.` and `..` are not allowed"#,
            ),
            (
                rule("{ name: bin/git }"),
                at(4, 22),
                r#"commands.rules[0].match.name: "bin/git": a name has no `/`"#,
            ),
            (
                rule("{ argv: [] }"),
                at(4, 22),
                "commands.rules[0].match.argv: an argv prefix has at least one element",
            ),
            (
                rule("{ sha256: e3b0 }"),
                at(4, 24),
                r#"commands.rules[0].match.sha256: "e3b0": a SHA-256 is 64 hex digits"#,
            ),
            (
                rule("{ command_line: \"rm [\" }"),
                at(4, 30),
                r#"commands.rules[0].match.command_line: "rm [": unclosed character class"#,
            ),
            (
                rule("{ regex: \"^python(\" }"),
                at(4, 23),
                r#"commands.rules[0].match.regex: "^python(": unclosed group"#,
            ),
            (
                "version: 1\nexec:\n  allow_written: no\n".to_owned(),
                at(3, 18),
                "exec.allow_written: invalid type",
            ),
            (
                "version: 1\nfilesystem:\n  hidden: [/srv, srv]\n".to_owned(),
                at(3, 18),
                r#"filesystem.hidden[1]: "srv": not an absolute path"#,
            ),
            (
                "version: 1\nfilesystem:\n  writable:\n    - /tmp/./x\n".to_owned(),
                at(4, 7),
                r#"filesystem.writable[0]: "/tmp/./x": `.` and `..` are not allowed"#,
            ),
            (
                "version: 1\nfilesystem:\n  deny_read: [\".ssh/*\"]\n".to_owned(),
                at(3, 15),
                r#"filesystem.deny_read[0]: ".ssh/*": paths are absolute: start the glob with / or **/"#,
            ),
            (
                "version: 1\nfilesystem:\n  deny_read: [\"/a/[b\"]\n".to_owned(),
                at(3, 15),
                r#"filesystem.deny_read[0]: "/a/[b": unclosed character class"#,
            ),
            (
                "version: 1\nlimits:\n  memory: 2x\n".to_owned(),
                at(3, 11),
                r#"limits.memory: invalid value: string "2x""#,
            ),
            (
                "version: 1\nlimits:\n  disk: 0\n".to_owned(),
                at(3, 9),
                "limits.disk: 0 is no limit a world can run under",
            ),
            (
                "version: 1\nlimits:\n  cpus: -1\n".to_owned(),
                at(3, 9),
                "limits.cpus: invalid value: integer `-1`",
            ),
            (
                "version: 1\nlimits:\n  cpus: 0.0001\n".to_owned(),
                at(3, 9),
                "limits.cpus: invalid value: floating point `0.0001`",
            ),
            (
                "version: 1\nlimits:\n  pids: 1.5\n".to_owned(),
                at(3, 9),
                "limits.pids: invalid type: floating point `1.5`",
            ),
            (
                "version: 1\nlimits:\n  wall_time: 1d\n".to_owned(),
                at(3, 14),
                r#"limits.wall_time: invalid value: string "1d""#,
            ),
            (
                "version: 1\nbudget:\n  max_execs: 0\n".to_owned(),
                at(3, 14),
                "budget.max_execs: 0 is no limit",
            ),
            (
                "version: 1\nbudget:\n  cpu_seconds: 10m\n".to_owned(),
                at(3, 16),
                r#"budget.cpu_seconds: invalid type: string "10m""#,
            ),
        ];
        for (text, position, start) in cases {
            let (found, message) = invalid(&text);
            assert_eq!(found, position, "{text}{message}");
            assert!(message.starts_with(start), "{message}");
        }
        // In a file: file:line:column first.
        let error = Policy::parse(&rule("{ regex: \"(\" }"))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("4:23: commands.rules[0].match.regex: \"(\": "),
            "{error}"
        );
    }

    #[test]
    fn parses_the_new_sections() {
        let policy = Policy::parse(
            "version: 1\n\
             mode: observe\n\
             commands:\n  \
               default: ask\n  \
               rules:\n    \
                 - match: { exe: /usr/bin/curl }\n      \
                   action: deny\n      \
                   reason: no downloads\n\
             exec:\n  \
               allow_written: false\n\
             filesystem:\n  \
               hidden: [/srv/secrets/]\n  \
               writable: []\n\
             limits:\n  \
               memory: 2g\n  \
               cpus: 1.5\n  \
               pids: 512\n  \
               disk: 10g\n  \
               wall_time: 30m\n\
             budget:\n  \
               max_execs: 1000\n  \
               cpu_seconds: 600\n",
        )
        .unwrap();
        assert_eq!(policy.mode(), Mode::Observe);
        assert_eq!(policy.commands.default, Action::Ask);
        assert_eq!(
            policy.commands.rules[0].reason.as_deref(),
            Some("no downloads")
        );
        assert!(!policy.exec.allow_written);
        assert_eq!(
            policy.filesystem.hidden[0].as_path(),
            Path::new("/srv/secrets")
        );
        assert_eq!(policy.filesystem.writable, Some(vec![]));
        assert_eq!(policy.limits.memory, Some(2 << 30));
        assert_eq!(policy.limits.cpus.map(limits::Cpus::millis), Some(1500));
        assert_eq!(policy.limits.pids, Some(512));
        assert_eq!(policy.limits.disk, Some(10 << 30));
        assert_eq!(
            policy.limits.wall_time,
            Some(std::time::Duration::from_secs(1800))
        );
        assert_eq!(policy.budget.max_execs, Some(1000));
        assert_eq!(policy.budget.cpu_seconds, Some(600));
        let written = serde_yaml_ng::to_string(&policy).unwrap();
        assert_eq!(Policy::parse(&written).unwrap(), policy, "{written}");
        // Each key alone; null is the key left out.
        assert_eq!(
            Policy::parse("version: 1\nlimits:\n  cpus: 2\n  wall_time: \"90\"\n")
                .unwrap()
                .limits
                .wall_time,
            Some(std::time::Duration::from_secs(90))
        );
        assert!(Policy::parse("version: 1\nlimits:\n  memory:\n")
            .unwrap()
            .limits
            .is_empty());
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
