//! The decision engine through its public API: every matcher kind, rule
//! order, defaults, modes, the exec and filesystem rules, and narrowing.

use std::path::Path;
use std::time::Duration;

use substrate_policy::limits::Cpus;
use substrate_policy::{
    builtin_default, Action, CompiledPolicy, Decision, ExecQuery, Mode, OpenQuery, Policy, RuleRef,
};

fn compile(yaml: &str) -> CompiledPolicy {
    let policy = Policy::parse(yaml).unwrap_or_else(|error| panic!("{error}\n{yaml}"));
    policy.compile().unwrap()
}

fn exec(policy: &CompiledPolicy, exe: &str, argv: &[&str]) -> Decision {
    policy.decide_exec(&ExecQuery {
        exe: Path::new(exe),
        argv,
        sha256: None,
        written_by_world: false,
    })
}

/// The rule that decided, as a user reads it.
fn rule(decision: &Decision) -> String {
    decision.rule.to_string()
}

fn open(policy: &CompiledPolicy, path: &str, write: bool) -> Decision {
    policy.decide_open(&OpenQuery {
        path: Path::new(path),
        write,
    })
}

/// One rule, `action: deny`, matching `matcher` (a YAML flow map).
fn deny_if(matcher: &str) -> CompiledPolicy {
    compile(&format!(
        "version: 1\ncommands:\n  rules:\n    - match: {matcher}\n      action: deny\n"
    ))
}

fn denied(policy: &CompiledPolicy, exe: &str, argv: &[&str]) -> bool {
    let decision = exec(policy, exe, argv);
    match decision.action {
        Action::Deny => {
            assert_eq!(rule(&decision), "commands.rules[0]");
            true
        }
        Action::Allow => {
            assert_eq!(rule(&decision), "commands.default");
            false
        }
        Action::Ask => panic!("{decision:?}"),
    }
}

const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

#[test]
fn exe_matches_the_exact_path() {
    let policy = deny_if("{ exe: /usr/bin/curl }");
    assert!(denied(&policy, "/usr/bin/curl", &["curl"]));
    assert!(denied(&policy, "/usr//bin/./curl", &["curl"]));
    assert!(!denied(&policy, "/usr/local/bin/curl", &["curl"]));
    assert!(!denied(&policy, "/usr/bin/curl2", &["curl"]));
    // A path the kernel would never give, with `..`: no exe rule matches.
    assert!(!denied(&policy, "/usr/lib/../bin/curl", &["curl"]));
}

#[test]
fn name_matches_the_file_name() {
    let policy = deny_if("{ name: curl }");
    assert!(denied(&policy, "/usr/bin/curl", &["anything"]));
    assert!(denied(&policy, "/tmp/x/curl", &[]));
    assert!(!denied(&policy, "/usr/bin/curlie", &["curl"]));
    // Only the executable counts, never argv[0], which the caller chose.
    assert!(!denied(&policy, "/usr/bin/wget", &["curl"]));
}

#[test]
fn argv_matches_a_prefix() {
    let policy = deny_if("{ argv: [git, push] }");
    assert!(denied(&policy, "/usr/bin/git", &["git", "push"]));
    assert!(denied(
        &policy,
        "/usr/bin/git",
        &["/usr/bin/git", "push", "-f"]
    ));
    assert!(!denied(&policy, "/usr/bin/git", &["git", "pull"]));
    assert!(!denied(&policy, "/usr/bin/git", &["git"]));
    assert!(!denied(&policy, "/usr/bin/git", &["git", "push-x"]));
    // A number in YAML is read as written.
    let policy = deny_if("{ argv: [kill, -9] }");
    assert!(denied(&policy, "/bin/kill", &["kill", "-9", "1"]));
}

#[test]
fn argvs_first_element_names_the_program_run_whatever_argv0_says() {
    let policy = deny_if("{ argv: [git, push] }");
    // A made-up argv[0] does not hide the program the kernel runs.
    assert!(denied(&policy, "/usr/bin/git", &["notgit", "push"]));
    assert!(denied(&policy, "/usr/bin/git", &["", "push"]));
    // Nor the other way round: argv[0] says git.
    assert!(denied(&policy, "/tmp/tool", &["git", "push"]));
    // A renamed copy called by its own name is another program (a
    // `sha256` rule names its content).
    assert!(!denied(&policy, "/tmp/tig", &["/tmp/tig", "push"]));
    // With a `/`, the element is a path, matched whole.
    let policy = deny_if("{ argv: [/usr/bin/git, push] }");
    assert!(denied(&policy, "/usr/bin/git", &["git", "push"]));
    assert!(!denied(&policy, "/usr/local/bin/git", &["git", "push"]));
    // The rest of the prefix is still the arguments, in order.
    assert!(!denied(&policy, "/usr/bin/git", &["git", "pull", "push"]));
}

#[test]
fn sha256_matches_the_content_hash_when_given() {
    let policy = deny_if(&format!(
        "{{ sha256: \"{}\" }}",
        EMPTY_SHA256.to_uppercase()
    ));
    assert!(policy.needs_sha256());
    assert!(!deny_if("{ name: x }").needs_sha256());
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&EMPTY_SHA256[2 * i..2 * i + 2], 16).unwrap();
    }
    let decide = |sha256| {
        policy
            .decide_exec(&ExecQuery {
                exe: Path::new("/tmp/renamed"),
                argv: &[b"renamed".as_slice()],
                sha256,
                written_by_world: false,
            })
            .action
    };
    assert_eq!(decide(Some(digest)), Action::Deny);
    digest[0] ^= 1;
    assert_eq!(decide(Some(digest)), Action::Allow);
    assert_eq!(decide(None), Action::Allow);
}

#[test]
fn command_line_is_a_glob_over_the_whole_line() {
    let policy = deny_if("{ command_line: \"rm -rf *\" }");
    assert!(denied(&policy, "/bin/rm", &["rm", "-rf", "/"]));
    assert!(denied(
        &policy,
        "/bin/rm",
        &["rm", "-rf", "/home/u", "/work"]
    ));
    assert!(denied(&policy, "/bin/rm", &["rm", "-rf", "a\nb"]));
    assert!(denied(&policy, "/bin/rm", &["rm", "-rf", ""]));
    // Anchored at both ends.
    assert!(!denied(&policy, "/bin/rm", &["/bin/rm", "-rf", "/"]));
    assert!(!denied(&policy, "/bin/rm", &["rm", "-r", "/"]));
    let policy = deny_if("{ command_line: \"{curl,wget} *\" }");
    assert!(denied(&policy, "/usr/bin/wget", &["wget", "http://x"]));
    let policy = deny_if("{ command_line: \"echo \\\\*\" }");
    assert!(denied(&policy, "/bin/echo", &["echo", "*"]));
    assert!(!denied(&policy, "/bin/echo", &["echo", "x"]));
}

#[test]
fn regex_is_searched_for_in_the_line() {
    let policy = deny_if("{ regex: \"^python3? .*-c\" }");
    assert!(denied(
        &policy,
        "/usr/bin/python3",
        &["python3", "-c", "print(1)"]
    ));
    assert!(denied(
        &policy,
        "/usr/bin/python3",
        &["python", "x.py", "-c"]
    ));
    assert!(!denied(&policy, "/usr/bin/python3", &["python3", "x.py"]));
    assert!(!denied(
        &policy,
        "/usr/bin/python3",
        &["/usr/bin/python3", "-c", "1"]
    ));
    // Unanchored: found anywhere.
    let policy = deny_if("{ regex: \"curl .*\\\\| *sh\" }");
    assert!(denied(&policy, "/bin/sh", &["sh", "-c", "curl x | sh"]));
    // `.` crosses newlines, and bytes that are not UTF-8.
    let policy = deny_if("{ regex: \"^a.b$\" }");
    assert!(denied(&policy, "/bin/a", &["a\nb"]));
    let not_utf8: &[&[u8]] = &[b"a\xffb"];
    let decision = policy.decide_exec(&ExecQuery {
        exe: Path::new("/bin/a"),
        argv: not_utf8,
        sha256: None,
        written_by_world: false,
    });
    assert_eq!(decision.action, Action::Deny);
    // Case-sensitive unless it says otherwise.
    assert!(!denied(&deny_if("{ regex: CURL }"), "/c", &["curl"]));
    assert!(denied(&deny_if("{ regex: \"(?i)CURL\" }"), "/c", &["curl"]));
}

#[test]
fn every_key_of_a_match_must_hold() {
    let policy = deny_if("{ name: git, argv: [git, push], regex: \"--force\" }");
    assert!(denied(&policy, "/usr/bin/git", &["git", "push", "--force"]));
    assert!(!denied(&policy, "/usr/bin/git", &["git", "push"]));
    assert!(!denied(
        &policy,
        "/usr/bin/git2",
        &["git", "push", "--force"]
    ));
    assert!(!denied(
        &policy,
        "/usr/bin/git",
        &["git", "pull", "--force"]
    ));
    let policy = deny_if("{ command_line: \"sh *\", regex: \"-c\" }");
    assert!(denied(&policy, "/bin/sh", &["sh", "-c", "x"]));
    assert!(!denied(&policy, "/bin/sh", &["sh", "x"]));
    assert!(!denied(&policy, "/bin/sh", &["bash", "-c", "x"]));
}

#[test]
fn the_first_matching_rule_wins() {
    let policy = compile(
        "version: 1\n\
         commands:\n  \
           default: deny\n  \
           rules:\n    \
             - match: { argv: [git, push] }\n      \
               action: ask\n      \
               reason: pushes are reviewed\n    \
             - match: { name: git }\n      \
               action: allow\n    \
             - match: { regex: git }\n      \
               action: deny\n",
    );
    let push = exec(&policy, "/usr/bin/git", &["git", "push"]);
    assert_eq!(
        (push.action, rule(&push), push.reason.as_deref()),
        (
            Action::Ask,
            "commands.rules[0]".to_owned(),
            Some("pushes are reviewed")
        )
    );
    assert_eq!(push.effective, Action::Ask);
    let status = exec(&policy, "/usr/bin/git", &["git", "status"]);
    assert_eq!(
        (status.action, rule(&status)),
        (Action::Allow, "commands.rules[1]".to_owned())
    );
    assert_eq!(status.reason, None);
    let other = exec(&policy, "/usr/bin/tig", &["tig", "git"]);
    assert_eq!(
        (other.action, rule(&other)),
        (Action::Deny, "commands.rules[2]".to_owned())
    );
    let none = exec(&policy, "/bin/ls", &["ls"]);
    assert_eq!(
        (none.action, rule(&none)),
        (Action::Deny, "commands.default".to_owned())
    );
    assert_eq!(none.rule, RuleRef::CommandsDefault { narrowed_by: None });
}

#[test]
fn the_default_decides_what_no_rule_matches() {
    for (default, action) in [
        ("allow", Action::Allow),
        ("ask", Action::Ask),
        ("deny", Action::Deny),
    ] {
        let policy = compile(&format!("version: 1\ncommands:\n  default: {default}\n"));
        let decision = exec(&policy, "/bin/ls", &["ls"]);
        assert_eq!((decision.action, decision.effective), (action, action));
        assert_eq!(rule(&decision), "commands.default");
        assert_eq!(decision.mode, Mode::Enforce);
    }
    // No commands section: everything runs.
    assert_eq!(
        exec(&compile("version: 1\n"), "/bin/ls", &["ls"]).action,
        Action::Allow
    );
}

#[test]
fn observe_mode_decides_and_allows() {
    let policy = compile(
        "version: 1\nmode: observe\ncommands:\n  default: ask\n  rules:\n    - match: { name: curl }\n      action: deny\n      reason: no downloads\nexec:\n  allow_written: false\nfilesystem:\n  hidden: [/srv]\n",
    );
    assert_eq!(policy.mode(), Mode::Observe);
    let curl = exec(&policy, "/usr/bin/curl", &["curl"]);
    assert_eq!(
        (curl.action, curl.effective, curl.mode),
        (Action::Deny, Action::Allow, Mode::Observe)
    );
    assert_eq!(curl.reason.as_deref(), Some("no downloads"));
    let ls = exec(&policy, "/bin/ls", &["ls"]);
    assert_eq!((ls.action, ls.effective), (Action::Ask, Action::Allow));
    let written = policy.decide_exec(&ExecQuery {
        exe: Path::new("/tmp/dropped"),
        argv: &["dropped"],
        sha256: None,
        written_by_world: true,
    });
    assert_eq!(
        (written.action, written.effective),
        (Action::Deny, Action::Allow)
    );
    let secret = open(&policy, "/srv/key", false);
    assert_eq!(
        (secret.action, secret.effective),
        (Action::Deny, Action::Allow)
    );
}

#[test]
fn allow_written_false_denies_what_the_world_wrote() {
    let policy = compile(
        "version: 1\nexec:\n  allow_written: false\ncommands:\n  rules:\n    - match: { exe: /tmp/tool }\n      action: allow\n",
    );
    let run = |written_by_world| {
        policy.decide_exec(&ExecQuery {
            exe: Path::new("/tmp/tool"),
            argv: &["tool"],
            sha256: None,
            written_by_world,
        })
    };
    let written = run(true);
    assert_eq!(written.action, Action::Deny);
    assert_eq!(written.rule, RuleRef::ExecAllowWritten);
    assert_eq!(rule(&written), "exec.allow_written");
    // A rule that allows the file by name does not override it.
    assert_eq!(run(false).action, Action::Allow);
    // Allowed by default.
    let policy = compile("version: 1\n");
    let decision = policy.decide_exec(&ExecQuery {
        exe: Path::new("/tmp/tool"),
        argv: &["tool"],
        sha256: None,
        written_by_world: true,
    });
    assert_eq!(decision.action, Action::Allow);
}

#[test]
fn more_rules_than_fit_on_the_stack() {
    let mut yaml = String::from("version: 1\ncommands:\n  rules:\n");
    for i in 0..1500 {
        yaml.push_str(&format!(
            "    - match: {{ exe: /bin/t{i} }}\n      action: allow\n    - match: {{ regex: \"^t{i} \" }}\n      action: deny\n"
        ));
    }
    let policy = compile(&yaml);
    let decision = exec(&policy, "/bin/x", &["t1499", "y"]);
    assert_eq!(
        (decision.action, rule(&decision)),
        (Action::Deny, "commands.rules[2999]".to_owned())
    );
    let decision = exec(&policy, "/bin/t1499", &["t1499", "y"]);
    assert_eq!(
        (decision.action, rule(&decision)),
        (Action::Allow, "commands.rules[2998]".to_owned())
    );
    assert_eq!(rule(&exec(&policy, "/bin/x", &["x"])), "commands.default");
}

const FILESYSTEM: &str = "version: 1\n\
    filesystem:\n  \
      hidden: [/srv/secrets]\n  \
      read_only: [/etc, /work/ro]\n  \
      writable: [/tmp, /work]\n  \
      deny_read: [\"**/.ssh/id_*\", /etc/shadow, \"/work/**/*.key\"]\n";

#[test]
fn opens_are_decided_in_order() {
    let policy = compile(FILESYSTEM);
    let decide = |path, write| {
        let decision = open(&policy, path, write);
        (decision.action, rule(&decision))
    };
    let deny = |rule: &str| (Action::Deny, rule.to_owned());
    let allow = |rule: &str| (Action::Allow, rule.to_owned());
    // hidden: everything, reads and writes, the entry and below.
    assert_eq!(decide("/srv/secrets", false), deny("filesystem.hidden[0]"));
    assert_eq!(
        decide("/srv/secrets/db/key", true),
        deny("filesystem.hidden[0]")
    );
    assert_eq!(decide("/srv/secretsx", false), allow("filesystem"));
    // deny_read: reads and writes, by glob.
    assert_eq!(
        decide("/home/u/.ssh/id_rsa", false),
        deny("filesystem.deny_read[0]")
    );
    assert_eq!(
        decide("/root/.ssh/id_ed25519.pub", false),
        deny("filesystem.deny_read[0]")
    );
    assert_eq!(
        decide("/home/u/.ssh/known_hosts", false),
        allow("filesystem")
    );
    assert_eq!(
        decide("/etc/shadow", false),
        deny("filesystem.deny_read[1]")
    );
    assert_eq!(
        decide("/tmp/.ssh/id_rsa", true),
        deny("filesystem.deny_read[0]")
    );
    assert_eq!(
        decide("/work/a/b/c.key", false),
        deny("filesystem.deny_read[2]")
    );
    assert_eq!(
        decide("/work/c.key", false),
        deny("filesystem.deny_read[2]")
    );
    // `*` stays within a component.
    assert_eq!(decide("/home/u/.ssh/id_x/y", false), allow("filesystem"));
    // read_only: writes refused, reads allowed.
    assert_eq!(decide("/etc/passwd", false), allow("filesystem"));
    assert_eq!(decide("/etc/passwd", true), deny("filesystem.read_only[0]"));
    // read_only wins over writable, wherever each is.
    assert_eq!(decide("/work/ro/x", true), deny("filesystem.read_only[1]"));
    // writable listed: the only places a write may open.
    assert_eq!(decide("/work/x", true), allow("filesystem.writable[1]"));
    assert_eq!(decide("/tmp", true), allow("filesystem.writable[0]"));
    assert_eq!(decide("/var/x", true), deny("filesystem.writable"));
    assert_eq!(decide("/var/x", false), allow("filesystem"));
    // Paths are compared normalized; unresolved ones are refused.
    assert_eq!(
        decide("//srv//secrets/", false),
        deny("filesystem.hidden[0]")
    );
    assert_eq!(
        decide("/tmp/../srv/secrets/k", false),
        deny("filesystem.unresolved_path")
    );
    assert_eq!(decide("tmp/x", false), deny("filesystem.unresolved_path"));
}

#[test]
fn without_writable_a_write_goes_anywhere_not_refused() {
    let policy = compile("version: 1\nfilesystem:\n  read_only: [/etc]\n");
    assert_eq!(open(&policy, "/var/x", true).action, Action::Allow);
    assert_eq!(open(&policy, "/etc/x", true).action, Action::Deny);
    // An empty list: nothing is writable.
    let policy = compile("version: 1\nfilesystem:\n  writable: []\n");
    assert_eq!(open(&policy, "/tmp/x", true).rule, RuleRef::NotWritable);
    assert_eq!(open(&policy, "/tmp/x", false).action, Action::Allow);
}

#[test]
fn the_builtin_default() {
    let policy = builtin_default();
    assert_eq!(policy.mode, Some(Mode::Enforce));
    assert!(!policy.network.allows_anything());
    assert_eq!(
        serde_yaml_ng::to_string(&policy).unwrap(),
        "version: 1\nmode: enforce\nnetwork:\n  default: deny\n  allow: []\n  deny: []\n"
    );
    let compiled = policy.compile().unwrap();
    let run = exec(&compiled, "/bin/ls", &["ls"]);
    assert_eq!(
        (run.effective, rule(&run)),
        (Action::Allow, "commands.default".to_owned())
    );
    let written = compiled.decide_exec(&ExecQuery {
        exe: Path::new("/tmp/x"),
        argv: &["x"],
        sha256: None,
        written_by_world: true,
    });
    assert_eq!(written.effective, Action::Allow);
    assert_eq!(
        open(&compiled, "/etc/shadow", true).effective,
        Action::Allow
    );
    assert!(policy.limits.is_empty() && policy.budget.is_empty());
}

fn narrow(node: &str, inline: &str) -> Policy {
    let node = Policy::parse(node).unwrap();
    let inline = Policy::parse(inline).unwrap();
    let narrowed = node.narrow(&inline).unwrap();
    // The narrowed document reads back as itself.
    let text = serde_yaml_ng::to_string(&narrowed).unwrap();
    assert_eq!(Policy::parse(&text).unwrap(), narrowed, "{text}");
    narrowed
}

#[test]
fn narrowed_commands_take_the_stricter_decision() {
    let node = "version: 1\ncommands:\n  default: allow\n  rules:\n    - match: { name: curl }\n      action: deny\n      reason: node says no\n    - match: { name: git }\n      action: ask\n";
    let inline = "version: 1\ncommands:\n  default: deny\n  rules:\n    - match: { name: curl }\n      action: allow\n    - match: { name: git }\n      action: allow\n    - match: { name: ls }\n      action: allow\n    - match: { name: make }\n      action: ask\n      reason: inline asks\n";
    let policy = narrow(node, inline).compile().unwrap();
    let decide = |exe: &str| {
        let decision = exec(&policy, exe, &["x"]);
        (decision.action, rule(&decision), decision.reason)
    };
    // The inline's allow does not override the node's deny or ask.
    assert_eq!(
        decide("/usr/bin/curl"),
        (
            Action::Deny,
            "commands.rules[0]".to_owned(),
            Some("node says no".into())
        )
    );
    assert_eq!(
        decide("/usr/bin/git"),
        (Action::Ask, "commands.rules[1]".to_owned(), None)
    );
    // Where both allow, the node's rule is named.
    assert_eq!(
        decide("/bin/ls"),
        (Action::Allow, "commands.default".to_owned(), None)
    );
    // The inline's stricter decisions apply.
    assert_eq!(
        decide("/usr/bin/make"),
        (
            Action::Ask,
            "commands.narrowed_by[0].rules[3]".to_owned(),
            Some("inline asks".into())
        )
    );
    assert_eq!(
        decide("/usr/bin/wget"),
        (
            Action::Deny,
            "commands.narrowed_by[0].default".to_owned(),
            None
        )
    );
}

#[test]
fn narrowing_again_adds_layers() {
    let once = narrow(
        "version: 1\n",
        "version: 1\ncommands:\n  rules:\n    - match: { name: a }\n      action: deny\n",
    );
    assert_eq!(once.commands.narrowed_by.len(), 1);
    let inline = Policy::parse(
        "version: 1\ncommands:\n  rules:\n    - match: { name: b }\n      action: ask\n",
    )
    .unwrap();
    let twice = once.narrow(&inline).unwrap();
    assert_eq!(twice.commands.narrowed_by.len(), 2);
    // An inline without commands adds no layer.
    assert_eq!(twice.narrow(&Policy::default()).unwrap(), twice);
    let compiled = twice.compile().unwrap();
    assert_eq!(
        rule(&exec(&compiled, "/a", &["a"])),
        "commands.narrowed_by[0].rules[0]"
    );
    assert_eq!(
        rule(&exec(&compiled, "/b", &["b"])),
        "commands.narrowed_by[1].rules[0]"
    );
}

#[test]
fn narrowed_mode_is_enforce_if_either_says_so() {
    let mode = |node: &str, inline: &str| {
        let with = |mode: &str| match mode {
            "" => "version: 1\n".to_owned(),
            mode => format!("version: 1\nmode: {mode}\n"),
        };
        narrow(&with(node), &with(inline)).mode
    };
    assert_eq!(mode("", ""), None);
    assert_eq!(mode("", "observe"), None);
    assert_eq!(mode("enforce", "observe"), Some(Mode::Enforce));
    assert_eq!(mode("observe", "enforce"), Some(Mode::Enforce));
    assert_eq!(mode("observe", "observe"), Some(Mode::Observe));
    // An inline that does not say keeps the node's observe mode.
    assert_eq!(mode("observe", ""), Some(Mode::Observe));
}

#[test]
fn narrowed_exec_and_filesystem() {
    let narrowed = narrow(
        "version: 1\nexec:\n  allow_written: true\nfilesystem:\n  hidden: [/srv]\n  read_only: [/etc]\n  writable: [/tmp, /work]\n  deny_read: [/etc/shadow]\n",
        "version: 1\nexec:\n  allow_written: false\nfilesystem:\n  hidden: [/srv, /opt]\n  read_only: [/work/ro]\n  writable: [/work/out, /var]\n  deny_read: [\"**/*.pem\"]\n",
    );
    assert!(!narrowed.exec.allow_written);
    let fs = &narrowed.filesystem;
    let texts = |paths: &[substrate_policy::filesystem::AbsPath]| {
        paths.iter().map(|p| p.to_string()).collect::<Vec<_>>()
    };
    assert_eq!(texts(&fs.hidden), ["/srv", "/opt"]);
    assert_eq!(texts(&fs.read_only), ["/etc", "/work/ro"]);
    assert_eq!(texts(fs.writable.as_deref().unwrap()), ["/work/out"]);
    let globs: Vec<&str> = fs.deny_read.iter().map(|glob| glob.text()).collect();
    assert_eq!(globs, ["/etc/shadow", "**/*.pem"]);
    let compiled = narrowed.compile().unwrap();
    assert_eq!(open(&compiled, "/var/x", true).action, Action::Deny);
    assert_eq!(open(&compiled, "/tmp/x", true).action, Action::Deny);
    assert_eq!(open(&compiled, "/work/out/x", true).action, Action::Allow);
    assert_eq!(open(&compiled, "/x/cert.pem", false).action, Action::Deny);
    // allow_written: true in an inline does not undo the node's false.
    let narrowed = narrow(
        "version: 1\nexec:\n  allow_written: false\n",
        "version: 1\nexec:\n  allow_written: true\n",
    );
    assert!(!narrowed.exec.allow_written);
}

#[test]
fn narrowed_limits_and_budget_take_the_lower() {
    let narrowed = narrow(
        "version: 1\nlimits:\n  memory: 2g\n  cpus: 1.5\n  wall_time: 1h\nbudget:\n  max_execs: 1000\n",
        "version: 1\nlimits:\n  memory: 512m\n  cpus: 4\n  pids: 64\n  disk: 1g\n  wall_time: 90m\nbudget:\n  max_execs: 2000\n  cpu_seconds: 60\n",
    );
    let limits = &narrowed.limits;
    assert_eq!(limits.memory, Some(512 << 20));
    assert_eq!(limits.cpus, Cpus::from_millis(1500));
    assert_eq!(limits.pids, Some(64));
    assert_eq!(limits.disk, Some(1 << 30));
    assert_eq!(limits.wall_time, Some(Duration::from_secs(3600)));
    assert_eq!(narrowed.budget.max_execs, Some(1000));
    assert_eq!(narrowed.budget.cpu_seconds, Some(60));
}

#[test]
fn a_compiled_policy_can_be_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<CompiledPolicy>();
    shared::<Decision>();
}

#[test]
fn a_regex_set_too_large_is_an_error_naming_the_layer() {
    // Each `\w{100}` (Unicode) fits alone, but five do not fit in one set.
    let mut yaml = String::from("version: 1\ncommands:\n  rules:\n");
    for i in 0..5 {
        yaml.push_str(&format!(
            "    - match: {{ regex: \"\\\\w{{100}}{i}\" }}\n      action: deny\n"
        ));
    }
    let policy = Policy::parse(&yaml).unwrap();
    let error = policy.compile().unwrap_err().to_string();
    assert!(
        error.starts_with("cannot compile commands.rules: "),
        "{error}"
    );
    assert!(error.contains("(?-u)"), "{error}");
}
