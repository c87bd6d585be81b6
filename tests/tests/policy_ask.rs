//! `ask` (issue 15): an exec a rule says `ask` about waits in the kernel
//! while the world's monitor asks an approver — `substrate-cli approve`
//! from another process, or the person at `substrate-cli run`'s terminal —
//! and is settled by the first answer, or by the policy's `ask.default`
//! when none comes within `ask.timeout`. Who answered, what, and how long
//! it took are in the exec's `policy` span.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use substrate_tests::{unique_id, Runtime};

/// A policy that asks about `/usr/bin/id`, with `extra` lines appended.
fn asking_policy(dir: &Path, extra: &str) -> String {
    let path = dir.join("policy.yaml");
    std::fs::write(
        &path,
        format!(
            "version: 1\ncommands:\n  rules:\n    - match: {{ exe: /usr/bin/id }}\n      \
             action: ask\n      reason: says who you are\n{extra}"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

/// `substrate-cli run --name ID --policy POLICY -- sh -c SCRIPT`, started.
fn spawn_run(runtime: &Runtime, id: &str, policy: &str, script: &str) -> Child {
    runtime
        .cli(&[
            "run", "--name", id, "--policy", policy, "--", "/bin/sh", "-c", script,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `substrate-cli approve ID --verdict VERDICT`: answers the next question.
fn approve(runtime: &Runtime, id: &str, verdict: &str) -> std::process::Output {
    runtime
        .cli(&["approve", id, "--verdict", verdict, "--wait", "30"])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn finish(child: Child) -> String {
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The `policy` spans about `/usr/bin/id`.
fn asked(runtime: &Runtime, id: &str) -> Vec<Value> {
    runtime
        .spans(id)
        .into_iter()
        .filter(|s| s["kind"] == "policy" && s["detail"]["subject"] == "/usr/bin/id")
        .collect()
}

#[test]
fn an_ask_answered_once_runs_the_exec_and_the_span_says_who_answered() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = asking_policy(dir.path(), "ask:\n  timeout: 60\n");
    let id = unique_id("ask-once");
    let run = spawn_run(&runtime, &id, &policy, "/usr/bin/id -u; echo \"id $?\"");
    let answered = approve(&runtime, &id, "once");
    assert!(answered.status.success(), "{answered:?}");
    let stdout = finish(run);
    assert_eq!(stdout, "0\nid 0\n");
    let spans = asked(&runtime, &id);
    assert_eq!(spans.len(), 1, "{spans:#?}");
    let span = &spans[0];
    assert_eq!(span["detail"]["decision"], "ask");
    assert_eq!(span["detail"]["rule"], "commands.rules[0]");
    assert_eq!(span["detail"]["reason"], "says who you are");
    assert_eq!(span["enforcement"]["effective"], "allow");
    assert_eq!(span["approval"]["answer"], "once");
    let by = span["approval"]["by"].as_str().unwrap();
    assert!(
        by.starts_with("substrate-cli approve") && by.contains("uid 0"),
        "{by}"
    );
    assert!(span["approval"]["waited_ms"].as_u64().is_some());
}

#[test]
fn an_ask_answered_deny_is_refused() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = asking_policy(dir.path(), "");
    let id = unique_id("ask-deny");
    let run = spawn_run(&runtime, &id, &policy, "/usr/bin/id -u; echo \"id $?\"");
    assert!(approve(&runtime, &id, "deny").status.success());
    assert_eq!(finish(run), "id 126\n");
    let spans = asked(&runtime, &id);
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0]["enforcement"]["effective"], "deny");
    assert_eq!(spans[0]["approval"]["answer"], "deny");
}

/// Nobody answers: the exec waits `ask.timeout`, then `ask.default`
/// decides (deny unless the policy says allow).
#[test]
fn an_unanswered_ask_is_settled_by_the_default_after_the_timeout() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    for (extra, expected, effective) in [
        ("ask:\n  timeout: 2\n", "id 126\n", "deny"),
        (
            "ask:\n  timeout: 2\n  default: allow\n",
            "0\nid 0\n",
            "allow",
        ),
    ] {
        let policy = asking_policy(dir.path(), extra);
        let id = unique_id("ask-timeout");
        let started = Instant::now();
        let run = spawn_run(&runtime, &id, &policy, "/usr/bin/id -u; echo \"id $?\"");
        assert_eq!(finish(run), expected);
        assert!(started.elapsed() >= Duration::from_secs(2));
        let spans = asked(&runtime, &id);
        assert_eq!(spans.len(), 1, "{spans:#?}");
        assert_eq!(spans[0]["approval"]["answer"], "timeout");
        assert_eq!(spans[0]["approval"]["by"], "ask.default");
        assert_eq!(spans[0]["enforcement"]["effective"], effective);
        assert!(spans[0]["approval"]["waited_ms"].as_u64().unwrap() >= 2000);
    }
}

/// `world`: the file runs now and for the rest of the world's life,
/// without asking again.
#[test]
fn an_ask_answered_for_the_world_is_not_asked_again() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = asking_policy(dir.path(), "ask:\n  timeout: 60\n");
    let id = unique_id("ask-world");
    let run = spawn_run(
        &runtime,
        &id,
        &policy,
        "/usr/bin/id -u; /usr/bin/id -u; echo \"id $?\"",
    );
    assert!(approve(&runtime, &id, "world").status.success());
    assert_eq!(finish(run), "0\n0\nid 0\n");
    let spans = asked(&runtime, &id);
    assert_eq!(spans.len(), 2, "{spans:#?}");
    assert_eq!(spans[0]["approval"]["answer"], "world");
    assert_eq!(spans[1]["approval"]["answer"], "world");
    assert_eq!(
        spans[1]["approval"]["by"],
        "an approver, earlier in this world"
    );
    assert!(spans
        .iter()
        .all(|s| s["enforcement"]["effective"] == "allow"));
}

/// `substrate-cli run` on a terminal prompts there: driven through a pty.
#[test]
fn run_on_a_terminal_prompts_and_the_answer_typed_there_decides() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = asking_policy(dir.path(), "ask:\n  timeout: 60\n");
    for (typed, expected, effective) in [("o\n", "id 0", "allow"), ("d\n", "id 126", "deny")] {
        let id = unique_id("ask-tty");
        let pty = nix::pty::openpty(None, None).unwrap();
        let slave = |pty: &OwnedFd| Stdio::from(pty.try_clone().unwrap());
        let mut command = runtime.cli(&[
            "run",
            "--name",
            &id,
            "--policy",
            &policy,
            "--",
            "/bin/sh",
            "-c",
            "/usr/bin/id -u; echo \"id $?\"",
        ]);
        command
            .stdin(slave(&pty.slave))
            .stdout(slave(&pty.slave))
            .stderr(slave(&pty.slave));
        let controlling = pty.slave.as_raw_fd();
        // SAFETY: only async-signal-safe calls between fork and exec: a
        // session of its own, with the pty as its controlling terminal
        // (so that /dev/tty is the pty).
        unsafe {
            command.pre_exec(move || {
                nix::unistd::setsid()?;
                if libc::ioctl(controlling, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().unwrap();
        drop(pty.slave);
        let mut master = std::fs::File::from(pty.master);
        let mut seen = Vec::new();
        let mut read_until = |master: &mut std::fs::File, text: &str| -> String {
            let mut buffer = [0u8; 1024];
            while !String::from_utf8_lossy(&seen).contains(text) {
                match master.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buffer[..n]),
                }
            }
            String::from_utf8_lossy(&seen).into_owned()
        };
        let prompt = read_until(&mut master, "[d]eny?");
        assert!(
            prompt.contains("wants to exec /usr/bin/id") && prompt.contains("says who you are"),
            "{prompt}"
        );
        master.write_all(typed.as_bytes()).unwrap();
        // The world ends, and the pty with it (EIO once no one holds it).
        let output = read_until(&mut master, "world ");
        assert!(child.wait().unwrap().success(), "{output}");
        assert!(output.contains(expected), "{output}");
        let spans = asked(&runtime, &id);
        assert_eq!(spans.len(), 1, "{spans:#?}");
        assert_eq!(spans[0]["enforcement"]["effective"], effective);
        let by = spans[0]["approval"]["by"].as_str().unwrap();
        assert!(by.contains("/dev/pts/"), "{by}");
    }
}
