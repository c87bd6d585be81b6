//! `substrate-cli policy check|explain` (issue 15): the policy document
//! validated with the line and column of a mistake, and the decision its
//! engine makes for a command, with the deciding rule.

use std::path::Path;

use substrate_tests::{workspace_root, Runtime};

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn check_accepts_the_example() {
    let runtime = Runtime::new();
    let example = workspace_root().join("policy/examples/policy.yaml");
    let out = runtime
        .cli(&["policy", "check", example.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        format!("{}: a valid policy (version 1)\n", example.display())
    );
}

#[test]
fn check_names_the_line_and_column_of_a_mistake() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    for (text, at, says) in [
        ("version: 1\ncommands:\n  rules:\n    - match: { regex: \"^python(\" }\n      action: deny\n", ":4:", "unclosed group"),
        ("version: 1\ncommands:\n  default: maybe\n", ":3:", "maybe"),
        ("version: 1\nfilesystem:\n  hidden: [relative/path]\n", ":3:", "relative/path"),
        ("version: 1\nlimits:\n  memory: 0\n", ":3:", "memory"),
        ("version: 1\nnetwork:\n  alow: []\n", ":3:", "alow"),
    ] {
        let file = write(dir.path(), "p.yaml", text);
        let out = runtime.cli(&["policy", "check", &file]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}: {stderr}");
        assert!(stderr.contains(&format!("p.yaml{at}")) && stderr.contains(says), "{text}: {stderr}");
    }
}

#[test]
fn explain_prints_the_deciding_rule_and_exits_by_the_decision() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "p.yaml",
        "version: 1\ncommands:\n  default: allow\n  rules:\n    \
         - match: { name: curl }\n      action: deny\n      reason: no downloads\n    \
         - match: { argv: [sh, -c] }\n      action: ask\n",
    );
    let explain = |command: &[&str]| {
        let mut args = vec!["policy", "explain", file.as_str(), "--"];
        args.extend_from_slice(command);
        let out = runtime.cli(&args).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = explain(&["curl", "http://example.com"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("denied by commands.rules[0] (no downloads)"),
        "{text}"
    );
    let (code, text) = explain(&["sh", "-c", "true"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("asked by commands.rules[1]"), "{text}");
    let (code, text) = explain(&["true"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("allowed by commands.default"), "{text}");
    // Not on PATH: said so, not decided.
    let (code, _) = explain(&["no-such-program-here"]);
    assert_eq!(code, Some(1));
}

#[test]
fn run_warns_when_an_untraced_world_would_not_enforce_its_policy() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "p.yaml",
        "version: 1\nfilesystem:\n  deny_read: [\"/etc/shadow\"]\n",
    );
    let run = |trace: &str| {
        let out = runtime
            .cli(&["run", "--policy", &file, "--", "true"])
            .env("SUBSTRATE_TRACE", trace)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    let untraced = run("off");
    assert!(
        untraced.contains(
            "warning: the policy's filesystem.deny_read is not enforced: the world runs untraced"
        ),
        "{untraced}"
    );
    let traced = run("on");
    assert!(!traced.contains("warning"), "{traced}");
}
