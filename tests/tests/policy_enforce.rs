//! The commands and exec sections of a policy, enforced in the kernel on
//! every exec (issue 15, its first part): fanotify permission events on the
//! world's mounts, decided on the file being run. The bypass battery: a
//! static shell, a renamed copy, a hard link, a raw execve through ctypes,
//! execveat on an fd, the dynamic loader run by hand, a script the world
//! wrote. Each refused and recorded as a `policy` span.

use std::path::Path;

use serde_json::Value;
use substrate_tests::{compile_static, programs_dir, unique_id, Runtime};

fn write_policy(dir: &Path, text: &str) -> String {
    let path = dir.join("policy.yaml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Runs `script` under `policy`; its stdout, and the world's policy spans.
fn run(runtime: &Runtime, policy: &str, script: &str) -> (String, Vec<Value>) {
    let id = unique_id("policy");
    let out = runtime
        .cli(&[
            "run", "--name", &id, "--policy", policy, "--", "/bin/sh", "-c", script,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spans = runtime
        .spans(&id)
        .into_iter()
        .filter(|s| s["kind"] == "policy")
        .collect();
    (stdout, spans)
}

/// The decisions about `subject`: (decision, rule, effective).
fn decisions(spans: &[Value], subject: &str) -> Vec<(String, String, String)> {
    spans
        .iter()
        .filter(|s| s["detail"]["subject"] == subject)
        .map(|s| {
            (
                s["detail"]["decision"].as_str().unwrap().to_owned(),
                s["detail"]["rule"].as_str().unwrap().to_owned(),
                s["enforcement"]["effective"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn sha256_hex(path: &str) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn a_denied_program_is_refused_however_it_is_run() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    // By content: every copy and link of it is the same file to the rule.
    let policy = write_policy(
        dir.path(),
        &format!(
            "version: 1\ncommands:\n  rules:\n    - match: {{ sha256: \"{}\" }}\n      \
             action: deny\n      reason: not this one\n",
            sha256_hex("/usr/bin/true")
        ),
    );
    let script = r#"
        /usr/bin/true; echo "direct $?"
        busybox sh -c /usr/bin/true; echo "static $?"
        cp /usr/bin/true /tmp/renamed; /tmp/renamed; echo "copy $?"
        ln /usr/bin/true /tmp/linked; /tmp/linked; echo "link $?"
        env -i /usr/bin/true; echo "env-i $?"
        /usr/bin/python3 -c '
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.execve(b"/usr/bin/true", None, None)
print("ctypes", ctypes.get_errno())
fd = os.open("/usr/bin/true", os.O_RDONLY)
try:
    os.execve(fd, ["true"], {})
except OSError as e:
    print("execveat", e.errno)
'
        /usr/bin/false; echo "other $?"
    "#;
    let (stdout, spans) = run(&runtime, &policy, script);
    for line in [
        "direct 126",
        "copy 126",
        "link 126",
        "env-i 126",
        "ctypes 1",
        "execveat 1",
        "other 1",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    // busybox's sh reports a refused exec as 126 too.
    assert!(stdout.contains("static 126"), "{stdout}");
    for subject in ["/usr/bin/true", "/tmp/renamed", "/tmp/linked"] {
        let decided = decisions(&spans, subject);
        assert!(
            !decided.is_empty()
                && decided
                    .iter()
                    .all(|(d, rule, e)| d == "deny" && rule == "commands.rules[0]" && e == "deny"),
            "{subject}: {decided:?}"
        );
    }
    let span = spans
        .iter()
        .find(|s| s["detail"]["subject"] == "/usr/bin/true")
        .unwrap();
    assert_eq!(span["detail"]["reason"], "not this one");
    assert_eq!(span["enforcement"]["by"], "fanotify");
    assert!(span["pid"].is_u64());
}

#[test]
fn default_deny_allows_only_the_listed_programs_and_their_loader() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        "version: 1\ncommands:\n  default: deny\n  rules:\n    \
         - match: { name: dash }\n      action: allow\n    \
         - match: { name: cat }\n      action: allow\n",
    );
    let (stdout, spans) = run(
        &runtime,
        &policy,
        "cat /proc/self/comm; ls / > /dev/null; echo \"ls $?\"; \
         /lib64/ld-linux-x86-64.so.2 /usr/bin/ls / > /dev/null; echo \"loader $?\"",
    );
    assert!(stdout.contains("cat\n"), "{stdout}");
    assert!(stdout.contains("ls 126"), "{stdout}");
    assert!(stdout.contains("loader 126"), "{stdout}");
    assert!(decisions(&spans, "/usr/bin/ls")
        .iter()
        .all(|(d, r, _)| d == "deny" && r == "commands.default"));
    assert_eq!(decisions(&spans, "/usr/bin/cat")[0].0, "allow");
}

#[test]
fn allow_written_false_refuses_what_the_world_wrote_or_downloaded() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "version: 1\nexec:\n  allow_written: false\n");
    let (stdout, spans) = run(
        &runtime,
        &policy,
        "printf '#!/bin/sh\\necho ran\\n' > /tmp/s.sh; chmod +x /tmp/s.sh; /tmp/s.sh; echo \"script $?\"; \
         cp /usr/bin/true /tmp/t; /tmp/t; echo \"dropped $?\"; /usr/bin/true; echo \"image $?\"",
    );
    assert!(
        stdout.contains("script 126") && !stdout.contains("ran\n"),
        "{stdout}"
    );
    assert!(stdout.contains("dropped 126"), "{stdout}");
    assert!(stdout.contains("image 0"), "{stdout}");
    assert_eq!(
        decisions(&spans, "/tmp/s.sh"),
        [("deny".into(), "exec.allow_written".into(), "deny".into())]
    );
}

#[test]
fn observe_mode_records_what_would_be_denied_and_allows_it() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        "version: 1\nmode: observe\ncommands:\n  rules:\n    - match: { exe: /usr/bin/true }\n      action: deny\n",
    );
    let (stdout, spans) = run(&runtime, &policy, "/usr/bin/true; echo \"true $?\"");
    assert!(stdout.contains("true 0"), "{stdout}");
    let span = spans
        .iter()
        .find(|s| s["detail"]["subject"] == "/usr/bin/true")
        .unwrap();
    assert_eq!(span["detail"]["decision"], "deny");
    assert_eq!(span["enforcement"]["mode"], "observe");
    assert_eq!(span["enforcement"]["effective"], "allow");
}

#[test]
fn a_bad_policy_refuses_the_world_with_line_and_column_and_leaves_nothing() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "version: 1\ncommands:\n  default: perhaps\n");
    let id = unique_id("policy-bad");
    let out = runtime
        .cli(&["run", "--name", &id, "--policy", &policy, "--", "true"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("policy.yaml:3:") && stderr.contains("perhaps"),
        "{stderr}"
    );
    assert!(!runtime.world_dir(&id).exists());
}

#[test]
fn execs_past_the_budget_are_refused_and_recorded() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "version: 1\nbudget:\n  max_execs: 4\n");
    // The shell is the first exec (Substrate's init is not counted).
    let (stdout, spans) = run(
        &runtime,
        &policy,
        "for i in 1 2 3 4 5; do /usr/bin/true; echo \"exec $i $?\"; done",
    );
    for line in [
        "exec 1 0",
        "exec 2 0",
        "exec 3 0",
        "exec 4 126",
        "exec 5 126",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    let past: Vec<&Value> = spans
        .iter()
        .filter(|s| s["detail"]["rule"] == "budget.max_execs")
        .collect();
    assert_eq!(past.len(), 2, "{spans:#?}");
    assert_eq!(past[0]["detail"]["reason"], "the world's 4 execs are spent");
}

#[test]
fn the_policys_limits_are_ceilings_on_the_worlds_cgroup() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "version: 1\nlimits:\n  pids: 64\n");
    // Asking for more, or for none, gets the policy's.
    for flags in [
        &["--pids", "1000"][..],
        &["--pids", "unlimited"][..],
        &[][..],
    ] {
        let id = unique_id("policy-limits");
        let mut args = vec!["run", "--name", id.as_str(), "--policy", policy.as_str()];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[
            "--",
            "/bin/sh",
            "-c",
            "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max",
        ]);
        let out = runtime.cli(&args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.trim(), "64", "{flags:?}");
    }
    // Asking for less gets less.
    let id = unique_id("policy-limits");
    let out = runtime
        .cli(&[
            "run",
            "--name",
            &id,
            "--policy",
            &policy,
            "--pids",
            "32",
            "--",
            "/bin/sh",
            "-c",
            "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "32");
}

/// The opens of `subject` the gate decided: (decision, rule, effective).
fn open_decisions(spans: &[Value], subject: &str) -> Vec<(String, String, String)> {
    decisions(spans, subject)
        .into_iter()
        .zip(spans.iter().filter(|s| s["detail"]["subject"] == subject))
        .filter(|(_, span)| span["enforcement"]["on"] == "open")
        .map(|(decision, _)| decision)
        .collect()
}

/// `filesystem.deny_read`, decided at open time in the kernel: however the
/// file is opened (cat, a static busybox, python, io_uring, for writing),
/// and under whatever name it gets (a hard link, a rename), it is refused,
/// and each refusal is a `policy` span. Other files open as before.
#[test]
fn a_file_deny_read_names_is_refused_however_it_is_opened_or_renamed() {
    let runtime = Runtime::new();
    let programs = programs_dir();
    let uring_read = compile_static("tests/programs/uring_read.c", programs.path());
    let home = programs.path().join("home");
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::create_dir_all(home.join("project")).unwrap();
    let key = home.join(".ssh/id_rsa");
    let other_key = home.join(".ssh/id_ed25519");
    let dotenv = home.join("project/.env");
    std::fs::write(&key, "SECRET-RSA-KEY\n").unwrap();
    std::fs::write(&other_key, "SECRET-ED25519-KEY\n").unwrap();
    std::fs::write(&dotenv, "TOKEN=SECRET-ENV\n").unwrap();
    std::fs::write(home.join("readme"), "public\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        &format!(
            "version: 1\nfilesystem:\n  deny_read: [\"{}/.ssh/id_*\", \"**/.env\"]\n",
            home.display()
        ),
    );
    let (key, other_key, dotenv) = (
        key.to_str().unwrap(),
        other_key.to_str().unwrap(),
        dotenv.to_str().unwrap(),
    );
    let home = home.to_str().unwrap();
    let uring_read = uring_read.to_str().unwrap();
    let script = format!(
        "cat {key}; echo \"cat $?\"; \
         /bin/busybox cat {key}; echo \"busybox $?\"; \
         python3 -c 'open(\"{key}\").read()' 2>/dev/null; echo \"python $?\"; \
         {uring_read} {key}; echo \"uring $?\"; \
         echo x 2>/dev/null >> {key}; echo \"append $?\"; \
         cat {dotenv}; echo \"dotenv $?\"; \
         ln {key} {home}/link && cat {home}/link; echo \"link $?\"; \
         rm {key} && cat {home}/link; echo \"link-alone $?\"; \
         mv {other_key} {home}/moved && cat {home}/moved; echo \"moved $?\"; \
         cat {home}/readme; echo \"readme $?\""
    );
    let id = unique_id("policy-read");
    let out = runtime
        .cli(&[
            "run",
            "--name",
            &id,
            "--seccomp",
            "unconfined",
            "--policy",
            &policy,
            "--",
            "/bin/sh",
            "-c",
            &script,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("SECRET"), "{stdout}");
    for line in [
        "cat 1",
        "busybox 1",
        "python 1",
        "open: -1\nuring 1",
        "append 2",
        "dotenv 1",
        "link 1",
        "link-alone 1",
        "moved 1",
        "public\nreadme 0",
    ] {
        assert!(stdout.contains(line), "{line:?}: {stdout}");
    }
    let spans: Vec<Value> = runtime
        .spans(&id)
        .into_iter()
        .filter(|s| s["kind"] == "policy")
        .collect();
    let refused = (
        "deny".to_owned(),
        "filesystem.deny_read[0]".to_owned(),
        "deny".to_owned(),
    );
    // cat, busybox, python, io_uring, the append.
    assert_eq!(open_decisions(&spans, key), vec![refused.clone(); 5]);
    assert_eq!(
        open_decisions(&spans, dotenv),
        [(
            "deny".into(),
            "filesystem.deny_read[1]".into(),
            "deny".into()
        )]
    );
    assert_eq!(
        open_decisions(&spans, &format!("{home}/link")),
        vec![refused.clone(); 2]
    );
    assert_eq!(open_decisions(&spans, &format!("{home}/moved")), [refused]);
    assert!(open_decisions(&spans, &format!("{home}/readme")).is_empty());
}

/// In observe mode a `deny_read` file opens, and each open is recorded as
/// what would have been refused.
#[test]
fn observe_mode_opens_a_deny_read_file_and_records_it() {
    let runtime = Runtime::new();
    let programs = programs_dir();
    let key = programs.path().join("id_rsa");
    std::fs::write(&key, "SECRET\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        &format!(
            "version: 1\nmode: observe\nfilesystem:\n  deny_read: [\"{}\"]\n",
            key.display()
        ),
    );
    let key = key.to_str().unwrap();
    let (stdout, spans) = run(&runtime, &policy, &format!("cat {key}; cat {key}"));
    assert_eq!(stdout, "SECRET\nSECRET\n");
    let observed = (
        "deny".to_owned(),
        "filesystem.deny_read[0]".to_owned(),
        "allow".to_owned(),
    );
    assert_eq!(open_decisions(&spans, key), [observed.clone(), observed]);
}

/// Rules on the arguments (`argv`, `command_line`, `regex`) are decided on
/// the argv the held exec was given, read from the caller while the kernel
/// holds it: however the program is started (a shell, python's `os.execv`,
/// a static busybox, `env -i`), and whatever the program file is called.
#[test]
fn rules_on_the_arguments_are_decided_on_the_execs_own_argv() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        "version: 1\ncommands:\n  rules:\n    \
         - match: { argv: [git, push] }\n      action: deny\n      reason: no pushing\n    \
         - match: { command_line: \"sort --version*\" }\n      action: deny\n    \
         - match: { regex: \"^uniq .*--help\" }\n      action: deny\n",
    );
    let (stdout, spans) = run(
        &runtime,
        &policy,
        // Outside any repository, whatever the test's working directory.
        "cd /; git push 2>/dev/null; echo \"push $?\"; \
         python3 -c 'import os; os.execv(\"/usr/bin/git\", [\"notgit\", \"push\"])' 2>/dev/null; echo \"python $?\"; \
         /bin/busybox sh -c 'exec git push' 2>/dev/null; echo \"busybox $?\"; \
         env -i /usr/bin/git push 2>/dev/null; echo \"env $?\"; \
         cp /usr/bin/git /tmp/tig; /tmp/tig push 2>/dev/null; echo \"renamed $?\"; \
         git --version >/dev/null; echo \"version $?\"; \
         sort --version >/dev/null 2>&1; echo \"sort $?\"; \
         uniq --help >/dev/null 2>&1; echo \"uniq $?\"; \
         uniq --version >/dev/null; echo \"uniq-version $?\"",
    );
    for line in [
        "push 126",
        "python 1",
        "busybox 126",
        "env 126",
        "version 0",
        "sort 126",
        "uniq 126",
        "uniq-version 0",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    // python's made-up argv[0] does not hide /usr/bin/git; the renamed
    // copy run by its own name is another program (git outside a
    // repository: 128), which a `sha256` rule would name.
    assert!(stdout.contains("renamed 128"), "{stdout}");
    let pushes: Vec<&Value> = spans
        .iter()
        .filter(|s| s["detail"]["rule"] == "commands.rules[0]")
        .collect();
    assert!(pushes.len() >= 4, "{pushes:#?}");
    for span in &pushes {
        assert_eq!(span["detail"]["decision"], "deny");
        assert_eq!(span["detail"]["reason"], "no pushing");
        assert_eq!(span["argv"][1], "push", "{span}");
        assert!(span["argv"][0].as_str().unwrap().ends_with("git"), "{span}");
    }
    assert!(spans
        .iter()
        .any(|s| s["detail"]["rule"] == "commands.rules[1]" && s["argv"][0] == "sort"));
    assert!(spans
        .iter()
        .any(|s| s["detail"]["rule"] == "commands.rules[2]" && s["argv"][0] == "uniq"));
}

/// A decision is a child of the span of the process that asked (the
/// program that called `execve`), and the exec it allowed names it.
#[test]
fn a_decision_is_linked_to_the_process_it_decided_for_and_the_exec_it_allowed() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        "version: 1\ncommands:\n  rules:\n    - match: { name: id }\n      action: deny\n",
    );
    let id = unique_id("policy-link");
    let out = runtime
        .cli(&[
            "run",
            "--name",
            &id,
            "--policy",
            &policy,
            "--",
            "/bin/sh",
            "-c",
            "/usr/bin/id; /usr/bin/true",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let spans = runtime.spans(&id);
    let exec_of = |exe: &str| {
        spans
            .iter()
            .find(|s| s["kind"] == "exec" && s["exe"] == exe)
            .unwrap_or_else(|| panic!("no exec of {exe}: {spans:#?}"))
    };
    let decision_about = |subject: &str| {
        spans
            .iter()
            .find(|s| s["kind"] == "policy" && s["detail"]["subject"] == subject)
            .unwrap_or_else(|| panic!("no decision about {subject}: {spans:#?}"))
    };
    let shell = exec_of("/usr/bin/dash");
    let refused = decision_about("/usr/bin/id");
    assert_eq!(refused["detail"]["decision"], "deny");
    assert_eq!(refused["parent_span_id"], shell["span_id"]);
    let allowed = decision_about("/usr/bin/true");
    assert_eq!(allowed["parent_span_id"], shell["span_id"]);
    assert_eq!(
        exec_of("/usr/bin/true")["decided_by"],
        serde_json::json!([allowed["span_id"]])
    );
    assert_eq!(
        shell["decided_by"],
        serde_json::json!([decision_about("/usr/bin/dash")["span_id"]])
    );
}
