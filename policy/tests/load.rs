//! Reading policy files: the commented example, and errors that name the file.

use std::path::Path;

use std::time::Duration;

use substrate_policy::network::{Entry, NameDecision, Verdict};
use substrate_policy::{Action, ExecQuery, Mode, OpenQuery, Policy, PolicyError};

#[test]
fn the_example_policy_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/network.yaml");
    let policy = Policy::load(&path).unwrap_or_else(|error| panic!("{error}"));
    let network = &policy.network;
    assert_eq!(network.default, Verdict::Deny);
    assert_eq!(network.allow.len(), 10);
    assert_eq!(network.deny.len(), 2);
    assert_eq!(network.egress_bytes, Some(1 << 30));
    assert!(matches!(
        network.decide_name("files.pypi.org"),
        NameDecision::Allowed(entries) if entries.iter().map(|entry| entry.text()).eq(["*.pypi.org:443/tcp"])
    ));
    assert!(matches!(
        network.decide_name("x.ads.example.com"),
        NameDecision::Denied(entry) if entry.text() == "*.ads.example.com"
    ));
}

#[test]
fn the_full_example_policy_parses_and_decides() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/policy.yaml");
    let policy = Policy::load(&path).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(policy.mode, Some(Mode::Enforce));
    assert_eq!(policy.commands.default, Action::Allow);
    let keys: Vec<Vec<&str>> = policy
        .commands
        .rules
        .iter()
        .map(|rule| rule.matches.keys().collect())
        .collect();
    assert_eq!(
        keys,
        [
            vec!["exe"],
            vec!["name", "argv"],
            vec!["sha256"],
            vec!["command_line"],
            vec!["regex"]
        ]
    );
    assert!(!policy.exec.allow_written);
    let fs = &policy.filesystem;
    assert_eq!(
        (
            fs.hidden.len(),
            fs.read_only.len(),
            fs.writable.as_ref().map(Vec::len),
            fs.deny_read.len()
        ),
        (1, 1, Some(2), 2)
    );
    assert_eq!(policy.network.egress_bytes, Some(1 << 30));
    assert_eq!(policy.limits.memory, Some(2 << 30));
    assert_eq!(policy.limits.cpus.map(|cpus| cpus.get()), Some(1.5));
    assert_eq!(policy.limits.pids, Some(512));
    assert_eq!(policy.limits.disk, Some(10 << 30));
    assert_eq!(policy.limits.wall_time, Some(Duration::from_secs(1800)));
    assert_eq!(policy.budget.max_execs, Some(1000));
    assert_eq!(policy.budget.cpu_seconds, Some(600));

    let engine = policy.compile().unwrap();
    let exec = |exe: &str, argv: &[&str]| {
        let decision = engine.decide_exec(&ExecQuery {
            exe: Path::new(exe),
            argv,
            sha256: None,
            written_by_world: false,
        });
        (decision.effective, decision.rule.to_string())
    };
    assert_eq!(
        exec("/usr/bin/curl", &["curl", "x"]),
        (Action::Deny, "commands.rules[0]".to_owned())
    );
    assert_eq!(
        exec("/usr/bin/git", &["git", "push"]),
        (Action::Ask, "commands.rules[1]".to_owned())
    );
    assert_eq!(
        exec("/bin/rm", &["rm", "-rf", "/"]),
        (Action::Deny, "commands.rules[3]".to_owned())
    );
    assert_eq!(
        exec("/usr/bin/python3", &["python3", "-c", "1"]),
        (Action::Deny, "commands.rules[4]".to_owned())
    );
    assert_eq!(
        exec("/bin/ls", &["ls"]),
        (Action::Allow, "commands.default".to_owned())
    );
    let open = |path: &str, write| {
        engine
            .decide_open(&OpenQuery {
                path: Path::new(path),
                write,
            })
            .effective
    };
    assert_eq!(open("/root/.ssh/id_rsa", false), Action::Deny);
    assert_eq!(open("/etc/hosts", true), Action::Deny);
    assert_eq!(open("/work/out", true), Action::Allow);
    // It writes back as what it reads.
    let written = serde_yaml_ng::to_string(&policy).unwrap();
    assert_eq!(Policy::parse(&written).unwrap(), policy, "{written}");
}

#[test]
fn an_invalid_file_is_named_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    std::fs::write(
        &path,
        "version: 1\nnetwork:\n  default: deny\n  allow: [10.1.2.3/8]\n",
    )
    .unwrap();
    let error = Policy::load(&path).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            r#"{}:4:11: network.allow[0]: "10.1.2.3/8": host bits are set (did you mean 10.0.0.0/8?)"#,
            path.display()
        )
    );
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.yaml");
    let error = Policy::load(&path).unwrap_err();
    assert!(matches!(&error, PolicyError::Read { path: named, .. } if *named == path));
    assert_eq!(
        error.to_string(),
        format!("cannot read policy {}", path.display())
    );
}

#[test]
fn a_loaded_policy_equals_the_parsed_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.yaml");
    let text = "version: 1\nnetwork:\n  allow: [\"*:53/udp\"]\n";
    std::fs::write(&path, text).unwrap();
    let policy = Policy::load(&path).unwrap();
    assert_eq!(policy, Policy::parse(text).unwrap());
    assert_eq!(policy.network.allow, [Entry::parse("*:53/udp").unwrap()]);
}
