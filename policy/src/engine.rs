//! The decision engine: a [`Policy`] compiled once ([`Policy::compile`])
//! into matchers that decide execs and opens. An exec decision allocates
//! only the command line (when a layer has globs or regexes) and what a
//! matching regex set reports; an open decision nothing, unless a
//! `deny_read` glob matches or the path needs normalizing.
//!
//! Commands: each layer (the section's own rules, then each
//! `narrowed_by` layer) is compiled into one bit per rule and an index per
//! matcher key: a hash map from each `exe`, `name` and `sha256` value to
//! the rules that name it, the `argv` prefixes, and one [`RegexSet`] of
//! every `command_line` glob and `regex`, run once per exec. Deciding an
//! exec ANDs, key by key, the rules that key lets through (those without
//! the key and those whose value matches); the lowest rule left is the
//! first that matches. The cost grows with the keys used, not with the
//! number of rules (bar a word of bits per 64 rules and the regex set).
//!
//! Filesystem: `hidden`, `read_only` and `writable` are path prefixes
//! checked in order; `deny_read` is one [`GlobSet`].

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use globset::{Candidate, GlobSet, GlobSetBuilder};
use regex::bytes::{RegexSet, RegexSetBuilder};

use crate::commands::{command_glob, last_component, Action, ArgvPrefix, Rule};
use crate::filesystem::{contains, path_glob, resolved};
use crate::{Mode, Policy, PolicyError};

/// A compiled policy: decides execs and opens. Cheap to share
/// (`Send + Sync`); deciding takes `&self`.
#[derive(Debug)]
pub struct CompiledPolicy {
    policy: Policy,
    mode: Mode,
    allow_written: bool,
    /// The commands section's own layer first, then `narrowed_by`'s.
    layers: Vec<CommandLayerMatcher>,
    filesystem: FilesystemMatcher,
    needs_sha256: bool,
    needs_argv: bool,
    needs_command_line: bool,
}

/// An exec to decide: what the kernel says about the file being executed
/// and the arguments it is given.
#[derive(Debug, Clone, Copy)]
pub struct ExecQuery<'a, A = &'a [u8]> {
    /// The executable's absolute path, as the kernel resolved it (not the
    /// path the program passed to `execve`). A relative path, or one with
    /// `..`, matches no `exe` key (`name` is still its last component).
    pub exe: &'a Path,
    /// The arguments, `argv[0]` included, as bytes.
    pub argv: &'a [A],
    /// The executable's content hash, when known. Rules with a `sha256`
    /// key match only when it is given: see
    /// [`CompiledPolicy::needs_sha256`].
    pub sha256: Option<[u8; 32]>,
    /// Whether the file lives in the world's upper layer (the world wrote
    /// it).
    pub written_by_world: bool,
}

/// An open to decide.
#[derive(Debug, Clone, Copy)]
pub struct OpenQuery<'a> {
    /// The absolute path of the file being opened, as the kernel names it
    /// in the world's view. A relative path or one with `..` is denied
    /// ([`RuleRef::UnresolvedPath`]): the policy cannot know what it
    /// names.
    pub path: &'a Path,
    /// Whether the open may write (`O_WRONLY`, `O_RDWR`, `O_CREAT`,
    /// `O_TRUNC`...).
    pub write: bool,
}

/// What the policy decides, which rule decided it, and what is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What the policy says.
    pub action: Action,
    /// The rule that said it.
    pub rule: RuleRef,
    /// The rule's `reason`, if it has one.
    pub reason: Option<Arc<str>>,
    /// The policy's mode.
    pub mode: Mode,
    /// What is done: `action` in `enforce` mode; in `observe`, `Allow`
    /// (and `action` says what would have been done).
    pub effective: Action,
}

/// The part of a policy a decision came from. Its `Display` is the
/// document path a user finds it at: `commands.rules[2]`,
/// `commands.narrowed_by[0].default`, `filesystem.deny_read[1]`...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleRef {
    /// `commands.default`, or `commands.narrowed_by[N].default`: no rule
    /// of that layer matched.
    CommandsDefault { narrowed_by: Option<usize> },
    /// `commands.rules[I]`, or `commands.narrowed_by[N].rules[I]`.
    CommandsRule {
        narrowed_by: Option<usize>,
        index: usize,
    },
    /// `exec.allow_written`: the file was written by the world.
    ExecAllowWritten,
    /// `filesystem.hidden[I]`.
    Hidden(usize),
    /// `filesystem.deny_read[I]`.
    DenyRead(usize),
    /// `filesystem.read_only[I]`: a write refused.
    ReadOnly(usize),
    /// `filesystem.writable[I]`: a write allowed.
    Writable(usize),
    /// `filesystem.writable`: a write to a path under none of its entries.
    NotWritable,
    /// `filesystem`: no entry names the path; allowed.
    NoFilesystemRule,
    /// `filesystem.unresolved_path`: a relative path, or one with `..`;
    /// denied.
    UnresolvedPath,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layer = |f: &mut fmt::Formatter<'_>, narrowed_by: &Option<usize>| match narrowed_by {
            None => f.write_str("commands"),
            Some(layer) => write!(f, "commands.narrowed_by[{layer}]"),
        };
        match self {
            RuleRef::CommandsDefault { narrowed_by } => {
                layer(f, narrowed_by)?;
                f.write_str(".default")
            }
            RuleRef::CommandsRule { narrowed_by, index } => {
                layer(f, narrowed_by)?;
                write!(f, ".rules[{index}]")
            }
            RuleRef::ExecAllowWritten => f.write_str("exec.allow_written"),
            RuleRef::Hidden(index) => write!(f, "filesystem.hidden[{index}]"),
            RuleRef::DenyRead(index) => write!(f, "filesystem.deny_read[{index}]"),
            RuleRef::ReadOnly(index) => write!(f, "filesystem.read_only[{index}]"),
            RuleRef::Writable(index) => write!(f, "filesystem.writable[{index}]"),
            RuleRef::NotWritable => f.write_str("filesystem.writable"),
            RuleRef::NoFilesystemRule => f.write_str("filesystem"),
            RuleRef::UnresolvedPath => f.write_str("filesystem.unresolved_path"),
        }
    }
}

impl CompiledPolicy {
    pub(crate) fn new(policy: &Policy) -> Result<CompiledPolicy, PolicyError> {
        let layers = policy
            .commands
            .layers()
            .map(|(narrowed_by, default, rules)| {
                CommandLayerMatcher::new(narrowed_by, default, rules)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CompiledPolicy {
            mode: policy.mode(),
            allow_written: policy.exec.allow_written,
            needs_sha256: layers.iter().any(|layer| layer.sha256.is_some()),
            needs_argv: layers
                .iter()
                .any(|layer| layer.argv.is_some() || layer.patterns.is_some()),
            needs_command_line: layers.iter().any(|layer| layer.patterns.is_some()),
            layers,
            filesystem: FilesystemMatcher::new(&policy.filesystem)?,
            policy: policy.clone(),
        })
    }

    /// The policy this was compiled from (its limits, budget and network
    /// are read from here).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Whether a rule matches on the executable's content hash: if not, a
    /// caller need not hash executables for [`ExecQuery::sha256`].
    pub fn needs_sha256(&self) -> bool {
        self.needs_sha256
    }

    /// Whether a rule matches on the arguments (`argv`, `command_line`,
    /// `regex`): if not, a caller need not read them for
    /// [`ExecQuery::argv`].
    pub fn needs_argv(&self) -> bool {
        self.needs_argv
    }

    /// Decides an exec: `exec.allow_written` first (a file the world wrote
    /// is denied outright when it is `false`), then every commands layer,
    /// each by its first matching rule or its default; the strictest
    /// action wins (`deny` over `ask` over `allow`), and between equals
    /// the earlier layer is named.
    pub fn decide_exec<A: AsRef<[u8]>>(&self, query: &ExecQuery<'_, A>) -> Decision {
        if query.written_by_world && !self.allow_written {
            return self.decision(Action::Deny, RuleRef::ExecAllowWritten, None);
        }
        let exe = resolved(query.exe);
        let command_line = if self.needs_command_line {
            command_line(query.argv)
        } else {
            String::new()
        };
        let facts = ExecFacts {
            exe: exe.as_deref(),
            name: last_component(query.exe.as_os_str().as_bytes()),
            argv: query.argv,
            sha256: query.sha256.as_ref().map(|digest| digest.as_slice()),
            command_line: command_line.as_bytes(),
        };
        let mut strictest: Option<(Action, RuleRef, &Option<Arc<str>>)> = None;
        for layer in &self.layers {
            let decided = layer.decide(&facts);
            if strictest.is_none_or(|(action, _, _)| decided.0 > action) {
                strictest = Some(decided);
            }
            if decided.0 == Action::Deny {
                break;
            }
        }
        // There is always the section's own layer.
        let (action, rule, reason) = strictest.unwrap_or((
            Action::Allow,
            RuleRef::CommandsDefault { narrowed_by: None },
            &None,
        ));
        self.decision(action, rule, reason.clone())
    }

    /// Decides an open, in this order:
    ///
    /// 1. a path that is relative or has `..` is denied
    ///    ([`RuleRef::UnresolvedPath`]);
    /// 2. a path at or below a `hidden` entry is denied;
    /// 3. a path a `deny_read` glob matches is denied, whether the open
    ///    reads or writes;
    /// 4. an open that may write is denied at or below a `read_only`
    ///    entry, and, when `writable` is listed, anywhere not at or below
    ///    one of its entries;
    /// 5. everything else is allowed.
    ///
    /// The first entry (in document order) of the deciding list is named.
    pub fn decide_open(&self, query: &OpenQuery<'_>) -> Decision {
        let (action, rule) = self.filesystem.decide(query);
        self.decision(action, rule, None)
    }

    fn decision(&self, action: Action, rule: RuleRef, reason: Option<Arc<str>>) -> Decision {
        Decision {
            action,
            rule,
            reason,
            mode: self.mode,
            effective: match self.mode {
                Mode::Enforce => action,
                Mode::Observe => Action::Allow,
            },
        }
    }
}

/// `argv` joined by single spaces; bytes that are not UTF-8 read as
/// U+FFFD (so that a regex's `.` matches them).
fn command_line<A: AsRef<[u8]>>(argv: &[A]) -> String {
    let mut line = Vec::with_capacity(argv.iter().map(|arg| arg.as_ref().len() + 1).sum());
    for (index, arg) in argv.iter().enumerate() {
        if index > 0 {
            line.push(b' ');
        }
        line.extend_from_slice(arg.as_ref());
    }
    match String::from_utf8(line) {
        Ok(line) => line,
        Err(error) => String::from_utf8_lossy(error.as_bytes()).into_owned(),
    }
}

/// What an exec is matched on, computed once for every layer.
struct ExecFacts<'q, A> {
    /// Normalized; `None` when unresolved.
    exe: Option<&'q [u8]>,
    name: &'q [u8],
    argv: &'q [A],
    sha256: Option<&'q [u8]>,
    command_line: &'q [u8],
}

/// One commands layer, compiled.
#[derive(Debug)]
struct CommandLayerMatcher {
    narrowed_by: Option<usize>,
    default: Action,
    outcomes: Vec<(Action, Option<Arc<str>>)>,
    /// A bit per rule: `words` words, the bits past the last rule clear.
    all: Vec<u64>,
    exe: Option<KeyIndex>,
    name: Option<KeyIndex>,
    sha256: Option<KeyIndex>,
    argv: Option<ArgvIndex>,
    patterns: Option<PatternIndex>,
}

/// The rules that name each value of one key, and those without the key.
#[derive(Debug)]
struct KeyIndex {
    without: Vec<u64>,
    by_value: HashMap<Box<[u8]>, Vec<usize>>,
}

/// The `argv` prefixes by their first element (which `argv[0]` matches
/// whole, or by its last component when the element has no `/`).
#[derive(Debug)]
struct ArgvIndex {
    without: Vec<u64>,
    by_first: HashMap<Box<[u8]>, Vec<(usize, ArgvPrefix)>>,
}

/// Every `command_line` glob and `regex` of a layer, in one set.
#[derive(Debug)]
struct PatternIndex {
    set: RegexSet,
    /// For each pattern of the set: its rule, and whether it is a glob.
    owners: Vec<(usize, bool)>,
    glob_without: Vec<u64>,
    regex_without: Vec<u64>,
}

/// Where the bit arrays of a decision live when they fit: up to 1,024
/// rules per layer decide without allocating.
const STACK_WORDS: usize = 32;

impl CommandLayerMatcher {
    fn new(
        narrowed_by: Option<usize>,
        default: Action,
        rules: &[Rule],
    ) -> Result<CommandLayerMatcher, PolicyError> {
        let words = rules.len().div_ceil(64);
        let mut all = vec![0u64; words];
        for index in 0..rules.len() {
            set_bit(&mut all, index);
        }
        let key_index = |value: &dyn Fn(&Rule) -> Option<Box<[u8]>>| {
            let mut index = KeyIndex {
                without: all.clone(),
                by_value: HashMap::new(),
            };
            let mut used = false;
            for (number, rule) in rules.iter().enumerate() {
                if let Some(value) = value(rule) {
                    used = true;
                    clear_bit(&mut index.without, number);
                    index.by_value.entry(value).or_default().push(number);
                }
            }
            used.then_some(index)
        };
        let exe = key_index(&|rule| rule.matches.exe.as_ref().map(|exe| exe.as_bytes().into()));
        let name = key_index(&|rule| {
            rule.matches
                .name
                .as_ref()
                .map(|name| name.as_str().as_bytes().into())
        });
        let sha256 = key_index(&|rule| {
            rule.matches
                .sha256
                .as_ref()
                .map(|digest| digest.0.as_slice().into())
        });

        let mut argv = ArgvIndex {
            without: all.clone(),
            by_first: HashMap::new(),
        };
        let mut owners = Vec::new();
        let mut patterns = Vec::new();
        let mut glob_without = all.clone();
        let mut regex_without = all.clone();
        for (number, rule) in rules.iter().enumerate() {
            if let Some(prefix) = &rule.matches.argv {
                clear_bit(&mut argv.without, number);
                argv.by_first
                    .entry(prefix.as_slice()[0].as_bytes().into())
                    .or_default()
                    .push((number, prefix.clone()));
            }
            if let Some(glob) = &rule.matches.command_line {
                let glob = command_glob(glob.text())
                    .map_err(|message| compile_error(narrowed_by, Some(number), message))?;
                clear_bit(&mut glob_without, number);
                owners.push((number, true));
                patterns.push(glob.regex().to_owned());
            }
            if let Some(regex) = &rule.matches.regex {
                clear_bit(&mut regex_without, number);
                owners.push((number, false));
                patterns.push(regex.text().to_owned());
            }
        }
        let patterns = if patterns.is_empty() {
            None
        } else {
            // The same options as `commands::command_regex`, which checked
            // each regex when it was read. The regex crate's default size
            // limits stay: an inline policy is untrusted input, and a
            // thousand ordinary patterns fit well within them.
            let set = RegexSetBuilder::new(&patterns)
                .dot_matches_new_line(true)
                .build()
                .map_err(|error| {
                    let hint = "use fewer or smaller globs and regexes; \
                                (?-u) makes \\w, \\d and \\s ASCII-only and far smaller";
                    compile_error(narrowed_by, None, format!("{error} ({hint})"))
                })?;
            Some(PatternIndex {
                set,
                owners,
                glob_without,
                regex_without,
            })
        };
        Ok(CommandLayerMatcher {
            narrowed_by,
            default,
            outcomes: rules
                .iter()
                .map(|rule| (rule.action, rule.reason.as_deref().map(Arc::from)))
                .collect(),
            all,
            exe,
            name,
            sha256,
            argv: (!argv.by_first.is_empty()).then_some(argv),
            patterns,
        })
    }

    /// This layer's decision: its first matching rule, or its default.
    fn decide<A: AsRef<[u8]>>(
        &self,
        facts: &ExecFacts<'_, A>,
    ) -> (Action, RuleRef, &Option<Arc<str>>) {
        static NO_REASON: Option<Arc<str>> = None;
        let by_default = (
            self.default,
            RuleRef::CommandsDefault {
                narrowed_by: self.narrowed_by,
            },
            &NO_REASON,
        );
        let words = self.all.len();
        if words == 0 {
            return by_default;
        }
        let mut stack = [0u64; STACK_WORDS];
        let mut heap = Vec::new();
        let bits: &mut [u64] = if 2 * words <= STACK_WORDS {
            &mut stack[..2 * words]
        } else {
            heap.resize(2 * words, 0);
            &mut heap
        };
        let (candidates, scratch) = bits.split_at_mut(words);
        candidates.copy_from_slice(&self.all);

        for (index, value) in [
            (&self.exe, facts.exe),
            (&self.name, Some(facts.name)),
            (&self.sha256, facts.sha256),
        ] {
            if let Some(index) = index {
                scratch.copy_from_slice(&index.without);
                if let Some(rules) = value.and_then(|value| index.by_value.get(value)) {
                    for &rule in rules {
                        set_bit(scratch, rule);
                    }
                }
                if !and_any(candidates, scratch) {
                    return by_default;
                }
            }
        }
        if let Some(argv) = &self.argv {
            scratch.copy_from_slice(&argv.without);
            if let Some(first) = facts.argv.first() {
                let first = first.as_ref();
                let name = last_component(first);
                // The first element names the program: `argv[0]`, which
                // the caller chose, or the file the kernel runs (its path,
                // or its name), which it did not — so that an exec with a
                // made-up `argv[0]` is still the program it runs. An
                // element with a `/` is found under a path whole, one
                // without under a path or its last component.
                let keys = [Some(first), Some(name), facts.exe, Some(facts.name)];
                let mut seen: [&[u8]; 4] = [&[]; 4];
                for (index, key) in keys.into_iter().flatten().enumerate() {
                    if seen[..index].contains(&key) {
                        continue;
                    }
                    seen[index] = key;
                    let Some(prefixes) = argv.by_first.get(key) else {
                        continue;
                    };
                    for (rule, prefix) in prefixes {
                        if has_bit(candidates, *rule) && prefix.matches_program(facts.argv, key) {
                            set_bit(scratch, *rule);
                        }
                    }
                }
            }
            if !and_any(candidates, scratch) {
                return by_default;
            }
        }
        if let Some(patterns) = &self.patterns {
            // Most execs match no pattern, which a plain search says more
            // cheaply than collecting every match of a large set.
            if !patterns.set.is_match(facts.command_line) {
                if !and_any(candidates, &patterns.glob_without)
                    || !and_any(candidates, &patterns.regex_without)
                {
                    return by_default;
                }
            } else {
                let matched = patterns.set.matches(facts.command_line);
                for glob in [true, false] {
                    scratch.copy_from_slice(if glob {
                        &patterns.glob_without
                    } else {
                        &patterns.regex_without
                    });
                    for pattern in matched.iter() {
                        let (rule, is_glob) = patterns.owners[pattern];
                        if is_glob == glob {
                            set_bit(scratch, rule);
                        }
                    }
                    if !and_any(candidates, scratch) {
                        return by_default;
                    }
                }
            }
        }
        match first_bit(candidates) {
            Some(rule) => {
                let (action, reason) = &self.outcomes[rule];
                (
                    *action,
                    RuleRef::CommandsRule {
                        narrowed_by: self.narrowed_by,
                        index: rule,
                    },
                    reason,
                )
            }
            None => by_default,
        }
    }
}

fn compile_error(narrowed_by: Option<usize>, rule: Option<usize>, message: String) -> PolicyError {
    let layer = match narrowed_by {
        None => "commands".to_owned(),
        Some(layer) => format!("commands.narrowed_by[{layer}]"),
    };
    PolicyError::Compile {
        part: match rule {
            Some(rule) => format!("{layer}.rules[{rule}]"),
            None => format!("{layer}.rules"),
        },
        message,
    }
}

fn set_bit(bits: &mut [u64], index: usize) {
    bits[index / 64] |= 1 << (index % 64);
}

fn clear_bit(bits: &mut [u64], index: usize) {
    bits[index / 64] &= !(1 << (index % 64));
}

fn has_bit(bits: &[u64], index: usize) -> bool {
    bits[index / 64] & (1 << (index % 64)) != 0
}

/// `bits &= other`; whether any bit is left.
fn and_any(bits: &mut [u64], other: &[u64]) -> bool {
    let mut any = 0;
    for (bits, other) in bits.iter_mut().zip(other) {
        *bits &= other;
        any |= *bits;
    }
    any != 0
}

fn first_bit(bits: &[u64]) -> Option<usize> {
    bits.iter()
        .enumerate()
        .find(|(_, word)| **word != 0)
        .map(|(index, word)| index * 64 + word.trailing_zeros() as usize)
}

/// The filesystem section, compiled.
#[derive(Debug)]
struct FilesystemMatcher {
    hidden: Vec<Box<[u8]>>,
    read_only: Vec<Box<[u8]>>,
    writable: Option<Vec<Box<[u8]>>>,
    deny_read: GlobSet,
}

impl FilesystemMatcher {
    fn new(section: &crate::filesystem::FilesystemPolicy) -> Result<Self, PolicyError> {
        let bytes = |paths: &[crate::filesystem::AbsPath]| -> Vec<Box<[u8]>> {
            paths.iter().map(|path| path.as_bytes().into()).collect()
        };
        let mut deny_read = GlobSetBuilder::new();
        for (index, glob) in section.deny_read.iter().enumerate() {
            deny_read.add(
                path_glob(glob.text()).map_err(|message| PolicyError::Compile {
                    part: format!("filesystem.deny_read[{index}]"),
                    message,
                })?,
            );
        }
        Ok(FilesystemMatcher {
            hidden: bytes(&section.hidden),
            read_only: bytes(&section.read_only),
            writable: section.writable.as_deref().map(bytes),
            deny_read: deny_read.build().map_err(|error| PolicyError::Compile {
                part: "filesystem.deny_read".to_owned(),
                message: error.to_string(),
            })?,
        })
    }

    fn decide(&self, query: &OpenQuery<'_>) -> (Action, RuleRef) {
        let Some(path) = resolved(query.path) else {
            return (Action::Deny, RuleRef::UnresolvedPath);
        };
        let under = |entries: &[Box<[u8]>]| entries.iter().position(|entry| contains(entry, &path));
        if let Some(index) = under(&self.hidden) {
            return (Action::Deny, RuleRef::Hidden(index));
        }
        if !self.deny_read.is_empty() {
            let candidate = Candidate::new(Path::new(OsStr::from_bytes(&path)));
            // No allocation unless a glob matches.
            let mut matched = Vec::new();
            self.deny_read
                .matches_candidate_into(&candidate, &mut matched);
            // Sorted: the first is the first in document order.
            if let Some(&index) = matched.first() {
                return (Action::Deny, RuleRef::DenyRead(index));
            }
        }
        if query.write {
            if let Some(index) = under(&self.read_only) {
                return (Action::Deny, RuleRef::ReadOnly(index));
            }
            if let Some(writable) = &self.writable {
                return match under(writable) {
                    Some(index) => (Action::Allow, RuleRef::Writable(index)),
                    None => (Action::Deny, RuleRef::NotWritable),
                };
            }
        }
        (Action::Allow, RuleRef::NoFilesystemRule)
    }
}
