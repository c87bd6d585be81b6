//! The `commands` section: which programs a world may run, and the `exec`
//! section's rule on files the world wrote itself.
//!
//! ```yaml
//! commands:
//!   default: allow               # allow | deny | ask: what no rule matches
//!   rules:                       # the first rule that matches decides
//!     - match: { exe: /usr/bin/curl }
//!       action: deny
//!       reason: "no downloads"
//!     - match: { name: git, argv: [git, push] }
//!       action: ask
//! exec:
//!   allow_written: false         # no executing what the world wrote
//! ```
//!
//! A rule's `match` has at least one of these keys, and matches an exec
//! when all of them do:
//!
//! - `exe`: the executable's absolute path, exactly (normalized);
//! - `name`: the executable's file name (`git` for `/usr/bin/git`);
//! - `argv`: a prefix of the arguments, at least one element: the first
//!   names the program, and matches `argv[0]` or the executable's path
//!   exactly, or, when it has no `/`, either's last component (so
//!   `[git, push]` matches `/usr/bin/git push -f`, and an exec of
//!   `/usr/bin/git` whose caller made `argv[0]` up); the others match
//!   exactly;
//! - `sha256`: the executable's content hash, 64 hex digits;
//! - `command_line`: a glob over the whole command line (`argv` joined by
//!   single spaces): `*` any characters (`/` and newlines too), `?` one,
//!   `[...]`, `{a,b}`, `\` escapes; it must match all of the line;
//! - `regex`: a regular expression (the `regex` crate's syntax) searched
//!   for in the command line: unanchored (write `^` and `$`), `.` matches
//!   newlines too (`(?-s)` turns that off), case-sensitive (`(?i)`).
//!
//! Command-line bytes that are not UTF-8 are read as U+FFFD.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::filesystem::AbsPath;

/// What a rule (or a default) does with an exec. Ordered by strictness:
/// `Allow < Ask < Deny`; when several decisions meet, the greatest wins.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Allow,
    /// Wait while an approver is asked; what they answer decides.
    Ask,
    Deny,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "allow",
            Action::Ask => "ask",
            Action::Deny => "deny",
        })
    }
}

/// The commands section: a default, ordered rules, and, after
/// [`crate::Policy::narrow`], the narrowing policies' own defaults and
/// rules. Every layer decides an exec; the strictest decision wins.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommandsPolicy {
    /// What no rule matches.
    pub default: Action,
    /// Tried in order; the first that matches decides.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// Further layers, each deciding on its own; an exec gets the
    /// strictest of every layer's decision (and this section's own). Made
    /// by narrowing: a node's policy narrowed by an inline one keeps the
    /// inline's commands here. A document may list them too: they can
    /// only narrow.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub narrowed_by: Vec<CommandLayer>,
}

/// One layer of [`CommandsPolicy::narrowed_by`]: a default and rules.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommandLayer {
    pub default: Action,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

/// One rule: what it matches, what it does, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(rename = "match")]
    pub matches: Match,
    pub action: Action,
    /// Said to the user and written into the decision's span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a rule matches: every key given must hold, and a document gives at
/// least one (a `Match` built in code without keys matches every exec).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Match {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe: Option<AbsPath>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<FileName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub argv: Option<ArgvPrefix>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_line: Option<CommandGlob>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<CommandRegex>,
}

/// An executable's file name: not empty, no `/`, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileName(String);

/// A prefix of an exec's arguments: at least one, none with NUL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArgvPrefix(Vec<String>);

/// A SHA-256 digest, written as 64 hex digits (either case).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256(pub [u8; 32]);

/// A glob over the command line, as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommandGlob(String);

/// A regular expression over the command line, as written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommandRegex(String);

/// `exec`: rules on executables whatever the commands section says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExecPolicy {
    /// `false`: an exec of a file the world wrote itself (one in its
    /// overlay's upper layer: downloaded, unpacked, compiled, copied) is
    /// denied. `true`, the default, leaves it to the commands section.
    pub allow_written: bool,
}

impl Default for ExecPolicy {
    fn default() -> Self {
        ExecPolicy {
            allow_written: true,
        }
    }
}

impl ExecPolicy {
    /// Whether the section says nothing.
    pub fn is_default(&self) -> bool {
        *self == ExecPolicy::default()
    }

    /// `false` if either is.
    pub fn narrow(&self, inline: &ExecPolicy) -> ExecPolicy {
        ExecPolicy {
            allow_written: self.allow_written && inline.allow_written,
        }
    }
}

impl CommandsPolicy {
    /// Whether the section says nothing: `default: allow`, no rules.
    pub fn is_empty(&self) -> bool {
        *self == CommandsPolicy::default()
    }

    /// Whether some decision of this section can be `ask` (a default or a
    /// rule of any layer).
    pub fn may_ask(&self) -> bool {
        self.layers().any(|(_, default, rules)| {
            default == Action::Ask || rules.iter().any(|rule| rule.action == Action::Ask)
        })
    }

    /// Every layer in the order decisions name them: this section's own
    /// (`None`), then `narrowed_by[0]`, `narrowed_by[1]`, ...
    pub fn layers(&self) -> impl Iterator<Item = (Option<usize>, Action, &[Rule])> {
        std::iter::once((None, self.default, self.rules.as_slice())).chain(
            self.narrowed_by
                .iter()
                .enumerate()
                .map(|(index, layer)| (Some(index), layer.default, layer.rules.as_slice())),
        )
    }

    /// Applies `inline` under `self`, the node's: the node's section with
    /// every layer of the inline's appended to `narrowed_by` (those that
    /// decide nothing, `default: allow` without rules, left out). Nothing
    /// is merged: each layer still decides, and the strictest wins, so the
    /// result is never less strict than the node's.
    pub fn narrow(&self, inline: &CommandsPolicy) -> CommandsPolicy {
        let mut narrowed = self.clone();
        let inline_layers = inline
            .layers()
            .map(|(_, default, rules)| CommandLayer {
                default,
                rules: rules.to_vec(),
            })
            .filter(|layer| *layer != CommandLayer::default());
        for layer in inline_layers {
            if !narrowed.narrowed_by.contains(&layer) {
                narrowed.narrowed_by.push(layer);
            }
        }
        narrowed
    }
}

impl Match {
    /// The keys given, as the document names them.
    pub fn keys(&self) -> impl Iterator<Item = &'static str> {
        [
            ("exe", self.exe.is_some()),
            ("name", self.name.is_some()),
            ("argv", self.argv.is_some()),
            ("sha256", self.sha256.is_some()),
            ("command_line", self.command_line.is_some()),
            ("regex", self.regex.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, given)| given.then_some(key))
    }
}

impl FileName {
    pub fn parse(text: &str) -> Result<FileName, String> {
        if text.is_empty() || text == "." || text == ".." {
            return Err(format!("{text:?}: not a file name"));
        }
        if text.contains('/') {
            return Err(format!(
                "{text:?}: a name has no `/` (match a path with `exe`)"
            ));
        }
        if text.contains('\0') {
            return Err(format!("{text:?}: a name cannot contain NUL"));
        }
        Ok(FileName(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ArgvPrefix {
    pub fn new(argv: Vec<String>) -> Result<ArgvPrefix, String> {
        if argv.is_empty() {
            return Err("an argv prefix has at least one element".to_owned());
        }
        if let Some(arg) = argv.iter().find(|arg| arg.contains('\0')) {
            return Err(format!("{arg:?}: an argument cannot contain NUL"));
        }
        Ok(ArgvPrefix(argv))
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }

    /// Whether `argv` past its first element starts with this prefix's
    /// rest, the first element having been found equal to `program` (the
    /// engine's index: `argv[0]`, the executable, or either's name).
    pub(crate) fn matches_program<A: AsRef<[u8]>>(&self, argv: &[A], program: &[u8]) -> bool {
        self.0[0].as_bytes() == program
            && argv.len() >= self.0.len()
            && self.0[1..]
                .iter()
                .zip(&argv[1..])
                .all(|(want, got)| want.as_bytes() == got.as_ref())
    }

    /// Whether an exec of `exe` with `argv` matches this prefix (see the
    /// module's doc): its first element names the program — `argv[0]` or
    /// `exe` (normalized) whole, or, without a `/`, either's last
    /// component — and the others are `argv[1..]`'s first, whole.
    pub fn matches<A: AsRef<[u8]>>(&self, argv: &[A], exe: &std::path::Path) -> bool {
        let Some(first) = argv.first().map(AsRef::as_ref) else {
            return false;
        };
        let want = self.0[0].as_bytes();
        let exe_whole = crate::filesystem::resolved(exe);
        let exe_name = last_component(std::os::unix::ffi::OsStrExt::as_bytes(exe.as_os_str()));
        let names_program = if want.contains(&b'/') {
            want == first || exe_whole.as_deref() == Some(want)
        } else {
            want == first || want == last_component(first) || want == exe_name
        };
        names_program && self.matches_program(argv, want)
    }
}

/// What follows the last `/` of `path` (all of it without one).
pub(crate) fn last_component(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => &path[slash + 1..],
        None => path,
    }
}

impl Sha256 {
    pub fn parse(text: &str) -> Result<Sha256, String> {
        let bad = || format!("{text:?}: a SHA-256 is 64 hex digits");
        // Checked first: `from_str_radix` would take a `+`.
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(text.as_bytes().chunks(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
        }
        Ok(Sha256(digest))
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

impl CommandGlob {
    pub fn parse(text: &str) -> Result<CommandGlob, String> {
        command_glob(text)?;
        Ok(CommandGlob(text.to_owned()))
    }

    pub fn text(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommandGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Compiles `text` the one way a command-line glob is read.
pub(crate) fn command_glob(text: &str) -> Result<globset::Glob, String> {
    globset::GlobBuilder::new(text)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
        .map_err(|error| format!("{text:?}: {}", error.kind()))
}

impl CommandRegex {
    pub fn parse(text: &str) -> Result<CommandRegex, String> {
        command_regex(text)?;
        Ok(CommandRegex(text.to_owned()))
    }

    pub fn text(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommandRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Compiles `text` the one way a command-line regex is read (the engine
/// compiles the same pattern into its set with the same options).
pub(crate) fn command_regex(text: &str) -> Result<regex::bytes::Regex, String> {
    regex::bytes::RegexBuilder::new(text)
        .dot_matches_new_line(true)
        .build()
        .map_err(|error| {
            // The regex crate's errors are several lines, with a caret
            // under the problem; a policy error is one line.
            let error = error.to_string();
            let summary = error
                .lines()
                .rev()
                .find(|line| line.starts_with("error: "))
                .map(|line| line.trim_start_matches("error: ").to_owned())
                .unwrap_or(error);
            format!("{text:?}: {summary}")
        })
}

/// Serializes a checked string value as its `Display`, the text it is
/// read from, and reads it with `$parse`.
macro_rules! string_value {
    ($type:ident, $parse:path, $expecting:literal) => {
        impl Serialize for $type {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                // Checked inside the visitor: see `crate::units`.
                struct StrVisitor;

                impl Visitor<'_> for StrVisitor {
                    type Value = $type;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }

                    fn visit_str<E: de::Error>(self, text: &str) -> Result<$type, E> {
                        $parse(text).map_err(E::custom)
                    }
                }

                deserializer.deserialize_str(StrVisitor)
            }
        }
    };
}

string_value!(FileName, FileName::parse, "a file name");
string_value!(Sha256, Sha256::parse, "64 hex digits");
string_value!(
    CommandGlob,
    CommandGlob::parse,
    "a glob over the command line"
);
string_value!(CommandRegex, CommandRegex::parse, "a regular expression");

impl Serialize for ArgvPrefix {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for ArgvPrefix {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ArgvVisitor;

        impl<'de> Visitor<'de> for ArgvVisitor {
            type Value = ArgvPrefix;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of arguments")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ArgvPrefix, A::Error> {
                let mut argv = Vec::new();
                while let Some(Arg(arg)) = seq.next_element()? {
                    argv.push(arg);
                }
                ArgvPrefix::new(argv).map_err(de::Error::custom)
            }
        }

        deserializer.deserialize_seq(ArgvVisitor)
    }
}

/// One argument, read as written even where YAML would see a number
/// (`[kill, -9]`).
struct Arg(String);

impl<'de> Deserialize<'de> for Arg {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ArgVisitor;

        impl Visitor<'_> for ArgVisitor {
            type Value = Arg;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an argument")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Arg, E> {
                Ok(Arg(text.to_owned()))
            }
        }

        deserializer.deserialize_str(ArgVisitor)
    }
}

/// Read key by key, so that a match without keys is refused where it is
/// written.
impl<'de> Deserialize<'de> for Match {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const KEYS: &[&str] = &["exe", "name", "argv", "sha256", "command_line", "regex"];

        #[derive(Deserialize)]
        #[serde(field_identifier, rename_all = "snake_case")]
        enum Key {
            Exe,
            Name,
            Argv,
            Sha256,
            CommandLine,
            Regex,
        }

        struct MatchVisitor;

        fn set<T, E: de::Error>(slot: &mut Option<T>, value: T, key: &str) -> Result<(), E> {
            if slot.replace(value).is_some() {
                return Err(E::custom(format_args!("duplicate key `{key}`")));
            }
            Ok(())
        }

        impl<'de> Visitor<'de> for MatchVisitor {
            type Value = Match;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a match: a map of exe, name, argv, sha256, command_line, regex")
            }

            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Match, A::Error> {
                let mut found = Match::default();
                while let Some(key) = map.next_key()? {
                    match key {
                        Key::Exe => set(&mut found.exe, map.next_value()?, "exe")?,
                        Key::Name => set(&mut found.name, map.next_value()?, "name")?,
                        Key::Argv => set(&mut found.argv, map.next_value()?, "argv")?,
                        Key::Sha256 => set(&mut found.sha256, map.next_value()?, "sha256")?,
                        Key::CommandLine => {
                            set(&mut found.command_line, map.next_value()?, "command_line")?
                        }
                        Key::Regex => set(&mut found.regex, map.next_value()?, "regex")?,
                    }
                }
                if found.keys().next().is_none() {
                    return Err(de::Error::custom(format_args!(
                        "a match needs at least one of `{}`",
                        KEYS.join("`, `")
                    )));
                }
                Ok(found)
            }
        }

        deserializer.deserialize_struct("Match", KEYS, MatchVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> ArgvPrefix {
        ArgvPrefix::new(words.iter().map(|w| w.to_string()).collect()).unwrap()
    }

    #[test]
    fn actions_are_ordered_by_strictness() {
        assert!(Action::Allow < Action::Ask);
        assert!(Action::Ask < Action::Deny);
        assert_eq!(
            [Action::Ask, Action::Deny, Action::Allow].iter().max(),
            Some(&Action::Deny)
        );
    }

    #[test]
    fn argv_prefixes() {
        let tool = std::path::Path::new("/opt/tool");
        let push = argv(&["git", "push"]);
        assert!(push.matches(&[b"git".as_slice(), b"push", b"-f"], tool));
        assert!(push.matches(&["/usr/bin/git", "push"], tool));
        assert!(!push.matches(&["git"], tool));
        assert!(!push.matches(&["git", "pull"], tool));
        assert!(!push.matches(&["legit", "push"], tool));
        assert!(!push.matches(&["git/", "push"], tool));
        // The program run, whatever argv[0] says.
        let git = std::path::Path::new("/usr//bin/git");
        assert!(push.matches(&["made-up", "push"], git));
        let exact = argv(&["/usr/bin/git", "push"]);
        assert!(exact.matches(&["/usr/bin/git", "push"], tool));
        assert!(!exact.matches(&["git", "push"], tool));
        assert!(exact.matches(&["git", "push"], git));
        assert!(!exact.matches(&["/opt/usr/bin/git", "push"], tool));
        // Later elements are compared whole, never by their last component.
        assert!(!argv(&["cat", "id_rsa"]).matches(&["cat", "/root/.ssh/id_rsa"], tool));
        assert!(ArgvPrefix::new(vec![]).is_err());
    }

    #[test]
    fn file_names() {
        assert!(FileName::parse("git").is_ok());
        for bad in ["", ".", "..", "bin/git"] {
            assert!(FileName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sha256_digests() {
        let text = "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855";
        let digest = Sha256::parse(text).unwrap();
        assert_eq!(digest.0[0], 0xe3);
        assert_eq!(digest.0[31], 0x55);
        assert_eq!(digest.to_string(), text.to_ascii_lowercase());
        assert!(Sha256::parse(&text[1..]).is_err());
        assert!(Sha256::parse(&format!("{}g", &text[1..])).is_err());
        assert!(Sha256::parse(&format!("é{}", &text[2..])).is_err());
        assert!(Sha256::parse(&format!("+{}", &text[1..])).is_err());
    }

    #[test]
    fn bad_patterns_name_the_pattern_on_one_line() {
        let error = CommandRegex::parse("(unclosed").unwrap_err();
        assert!(error.starts_with("\"(unclosed\": "), "{error}");
        assert!(!error.contains('\n'), "{error}");
        let error = CommandGlob::parse("rm [").unwrap_err();
        assert!(error.starts_with("\"rm [\": "), "{error}");
    }
}
