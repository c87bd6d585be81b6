//! The kernel sensor (issue 13): what programs that avoid glibc do in a
//! world is seen all the same, read in the kernel. Each test is a row of
//! the table, asserting the exact span.
//!
//! These run with the eBPF sensor on (this host and CI load it); the
//! fallback (proc connector only, `SUBSTRATE_SENSOR=off`) runs today's
//! trace tests (`make test`).

use std::fs;

use serde_json::Value;
use substrate_tests::{compile_static, programs_dir, unique_id, unused_loopback_port, Runtime};

fn world_span(spans: &[Value]) -> &Value {
    spans
        .iter()
        .find(|s| s["kind"] == "world")
        .expect("a world span")
}

fn execs_with_argv0<'a>(spans: &'a [Value], argv0: &str) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| s["kind"] == "exec" && s["argv"][0] == argv0)
        .collect()
}

/// The one exec span whose argv[0] is `argv0`.
#[track_caller]
fn one_exec_of<'a>(spans: &'a [Value], argv0: &str) -> &'a Value {
    match execs_with_argv0(spans, argv0)[..] {
        [exec] => exec,
        _ => panic!("one exec of {argv0}: {spans:#?}"),
    }
}

fn assert_sensor_on(spans: &[Value]) {
    let world = world_span(spans);
    assert_eq!(world["sensor"]["exec"], "ebpf:exec_tp_btf", "{world}");
    assert_eq!(world["sensor"]["net"], "ebpf", "{world}");
}

/// Row 2: `for i in $(seq 100); do /bin/busybox true; done` — every exec
/// of a static program has its argv and exe (the seed lost up to 81 of 102).
#[test]
fn a_hundred_static_execs_all_have_argv_and_exe() {
    let rt = Runtime::new();
    let name = unique_id("sensor-loop");
    rt.cli_run_ok(&name, "for i in $(seq 100); do /bin/busybox true $i; done");
    let spans = rt.spans(&name);
    assert_sensor_on(&spans);
    let loop_execs = execs_with_argv0(&spans, "/bin/busybox");
    assert_eq!(loop_execs.len(), 100, "{spans:#?}");
    let mut seen: Vec<u64> = loop_execs
        .iter()
        .map(|s| {
            assert_eq!(s["argv"][1], "true", "{s}");
            assert!(s["exe"].as_str().unwrap().ends_with("/busybox"), "{s}");
            assert_eq!(s["source"], "kernel");
            assert!(s["exe_inode"].as_u64().is_some(), "{s}");
            assert_eq!(s["result"]["code"], 0, "{s}");
            s["argv"][2].as_str().unwrap().parse().unwrap()
        })
        .collect();
    seen.sort();
    assert_eq!(seen, (1..=100).collect::<Vec<u64>>());
}

/// Row 1: a static shell's exec has its argv, exe and cwd.
#[test]
fn a_static_shell_exec_has_argv_exe_and_cwd() {
    let rt = Runtime::new();
    let name = unique_id("sensor-static");
    rt.cli_run_ok(&name, "cd /tmp && /bin/busybox sh -c 'echo x > f'");
    let spans = rt.spans(&name);
    let shell = one_exec_of(&spans, "/bin/busybox");
    assert_eq!(
        shell["argv"],
        serde_json::json!(["/bin/busybox", "sh", "-c", "echo x > f"])
    );
    assert!(
        shell["exe"].as_str().unwrap().ends_with("/busybox"),
        "{shell}"
    );
    assert_eq!(shell["cwd"], "/tmp", "{shell}");
    assert_eq!(shell["uid"], 0, "{shell}");
}

/// Rows 5 and 6: a musl program, and a dynamic program run without the
/// preload through a copy of the loader: argv from the kernel, not marked
/// as filled by the preload.
#[test]
fn musl_and_a_loader_copy_without_the_preload_are_named() {
    let dir = programs_dir();
    let musl = compile_static("tests/programs/musl_hello.c", dir.path());
    let loader = dir.path().join("ld-copy");
    fs::copy("/lib64/ld-linux-x86-64.so.2", &loader).unwrap();
    let rt = Runtime::new();
    let name = unique_id("sensor-musl");
    rt.cli_run_ok(
        &name,
        &format!(
            "{musl} one; env -u LD_PRELOAD {loader} /usr/bin/true two",
            musl = musl.display(),
            loader = loader.display()
        ),
    );
    let spans = rt.spans(&name);
    let musl_exec = one_exec_of(&spans, musl.to_str().unwrap());
    assert_eq!(musl_exec["argv"][1], "one");
    assert_eq!(musl_exec["exe"], musl.to_str().unwrap());
    assert!(musl_exec["filled_by"].is_null(), "{musl_exec}");
    let loader_exec = one_exec_of(&spans, loader.to_str().unwrap());
    assert_eq!(
        loader_exec["argv"],
        serde_json::json!([loader.to_str().unwrap(), "/usr/bin/true", "two"])
    );
    assert_eq!(loader_exec["exe"], loader.to_str().unwrap());
}

/// Row 7: a raw `syscall(SYS_connect)` by a static program is a `net`
/// span of that program, with the address and the refusal.
#[test]
fn a_raw_connect_is_a_net_span_of_its_program() {
    let dir = programs_dir();
    let program = compile_static("tests/programs/raw_connect.c", dir.path());
    let port = unused_loopback_port();
    let rt = Runtime::new();
    let name = unique_id("sensor-connect");
    rt.cli_run_ok(
        &name,
        &format!("{} {port}; test $? -eq 111", program.display()),
    );
    let spans = rt.spans(&name);
    let exec = one_exec_of(&spans, program.to_str().unwrap());
    let nets: Vec<&Value> = spans.iter().filter(|s| s["kind"] == "net").collect();
    let [connect] = nets[..] else {
        panic!("one net span: {nets:#?}");
    };
    assert_eq!(connect["source"], "kernel");
    assert_eq!(connect["parent_span_id"], exec["span_id"]);
    assert_eq!(connect["pid"], exec["pid"]);
    assert_eq!(
        connect["detail"],
        serde_json::json!({"op": "connect", "family": "inet", "transport": "tcp", "address": "127.0.0.1", "port": port})
    );
    assert_eq!(connect["result"]["errno"]["name"], "ECONNREFUSED");
    // Nobody else says so: the kernel's span is the only account.
    assert!(connect["preload"].is_null());
}

/// A dynamic program's connect is one span, the kernel's, joined by the
/// preload's account (never twice).
#[test]
fn a_libc_connect_is_one_span_seen_by_both() {
    let port = unused_loopback_port();
    let rt = Runtime::new();
    let name = unique_id("sensor-libc-connect");
    rt.cli_run_ok(
        &name,
        &format!(
            "/usr/bin/python3 -c 'import socket; socket.socket().connect_ex((\"127.0.0.1\", {port}))'"
        ),
    );
    let spans = rt.spans(&name);
    let nets: Vec<&Value> = spans.iter().filter(|s| s["kind"] == "net").collect();
    let [connect] = nets[..] else {
        panic!("one net span: {nets:#?}");
    };
    assert_eq!(connect["source"], "kernel");
    assert_eq!(connect["preload"], true, "{connect}");
    assert_eq!(connect["detail"]["port"], port);
}

/// Inside a world, the sensor's maps and pins are out of reach: the
/// sensor's dir is not visible and `bpf()` is refused.
#[test]
fn a_world_cannot_reach_the_sensor() {
    let rt = Runtime::new();
    let name = unique_id("sensor-reach");
    let out = rt.cli_run_ok(
        &name,
        "ls /run/substrate/sensor 2>&1; /usr/bin/python3 -c 'import ctypes, os; \
         r = ctypes.CDLL(None, use_errno=True).syscall(321, 0, 0, 0); print(\"bpf\", r, ctypes.get_errno())'",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("No such file or directory"), "{stdout}");
    assert!(
        stdout.contains(&format!("bpf -1 {}", nix::libc::EPERM)),
        "{stdout}"
    );
}

/// The kernel's file spans of a world, as (op, path, new_path, pid).
fn file_changes(spans: &[Value]) -> Vec<(String, String, Option<String>, u64)> {
    spans
        .iter()
        .filter(|s| s["kind"] == "file" && s["source"] == "kernel")
        .map(|s| {
            (
                s["detail"]["op"].as_str().unwrap().to_owned(),
                s["detail"]["path"].as_str().unwrap().to_owned(),
                s["detail"]["new_path"].as_str().map(str::to_owned),
                s["pid"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn change(op: &str, path: &str, pid: u64) -> (String, String, Option<String>, u64) {
    (op.into(), path.into(), None, pid)
}

/// Row 1 (files): a static shell's redirect is a create and a write of
/// that shell, with the path inside the world.
#[test]
fn a_static_shells_redirect_is_a_create_and_a_write() {
    let rt = Runtime::new();
    let name = unique_id("sensor-redirect");
    rt.cli_run_ok(&name, "cd /tmp && /bin/busybox sh -c 'echo x > f'");
    let spans = rt.spans(&name);
    assert_eq!(world_span(&spans)["sensor"]["files"], "fanotify");
    let shell = one_exec_of(&spans, "/bin/busybox");
    let pid = shell["pid"].as_u64().unwrap();
    assert_eq!(
        file_changes(&spans),
        [
            change("create", "/tmp/f", pid),
            change("write", "/tmp/f", pid)
        ]
    );
    for span in spans.iter().filter(|s| s["kind"] == "file") {
        assert_eq!(span["parent_span_id"], shell["span_id"], "{span}");
    }
}

/// Row 3: raw `syscall(SYS_openat)` + `write` from a static program: the
/// create and the write, its pid, the exec span its parent.
#[test]
fn raw_syscall_writes_are_file_spans() {
    let dir = programs_dir();
    let program = compile_static("sensor/tests/programs/raw_write.c", dir.path());
    let rt = Runtime::new();
    let name = unique_id("sensor-raw-write");
    rt.cli_run_ok(&name, &format!("{} /tmp/raw-out", program.display()));
    let spans = rt.spans(&name);
    let exec = one_exec_of(&spans, program.to_str().unwrap());
    let pid = exec["pid"].as_u64().unwrap();
    assert_eq!(
        file_changes(&spans),
        [
            change("create", "/tmp/raw-out", pid),
            change("write", "/tmp/raw-out", pid)
        ]
    );
    let create = spans
        .iter()
        .find(|s| s["detail"]["op"] == "create")
        .unwrap();
    assert_eq!(create["parent_span_id"], exec["span_id"]);
    assert_eq!(create["world_pid"], exec["world_pid"]);
}

/// Row 4: io_uring `OP_OPENAT` + `OP_WRITE` (no open or write system
/// call at all). io_uring is refused by the default seccomp profile, so
/// the world runs unconfined for this row.
#[test]
fn io_uring_writes_are_file_spans() {
    let dir = programs_dir();
    let program = compile_static("sensor/tests/programs/uring_write.c", dir.path());
    let rt = Runtime::new();
    let name = unique_id("sensor-uring");
    let out = rt
        .cli(&[
            "run",
            "--name",
            &name,
            "--seccomp",
            "unconfined",
            "--",
            program.to_str().unwrap(),
            "/tmp/uring-out",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spans = rt.spans(&name);
    let exec = one_exec_of(&spans, program.to_str().unwrap());
    let pid = exec["pid"].as_u64().unwrap();
    assert_eq!(
        file_changes(&spans),
        [
            change("create", "/tmp/uring-out", pid),
            change("write", "/tmp/uring-out", pid)
        ]
    );
}

/// Row 8: a static program that creates, writes and deletes a file at once:
/// nothing in the diff, all of it in the trace.
#[test]
fn a_file_created_then_deleted_is_in_the_trace_not_the_diff() {
    let dir = programs_dir();
    let program = compile_static("sensor/tests/programs/create_delete.c", dir.path());
    let rt = Runtime::new();
    let name = unique_id("sensor-ephemeral");
    rt.cli_run_ok(&name, &format!("{} /tmp/ephemeral", program.display()));
    let spans = rt.spans(&name);
    let world = world_span(&spans);
    assert_eq!(world["detail"]["fs"]["added"], 0, "{world}");
    let exec = one_exec_of(&spans, program.to_str().unwrap());
    let pid = exec["pid"].as_u64().unwrap();
    assert_eq!(
        file_changes(&spans),
        [
            change("create", "/tmp/ephemeral", pid),
            change("write", "/tmp/ephemeral", pid),
            change("delete", "/tmp/ephemeral", pid),
        ]
    );
}

/// A rename, a chmod and a delete of files of the image (the lower layer)
/// by static busybox: what the program did, not the overlay's copy-ups
/// and whiteouts.
#[test]
fn changes_to_image_files_are_what_the_program_did() {
    let rt = Runtime::new();
    let name = unique_id("sensor-lower");
    rt.cli_run_ok(
        &name,
        "/bin/busybox sh -c 'chmod 600 /etc/hostname && mv /etc/hostname /etc/hostname.old && rm /etc/motd'",
    );
    let spans = rt.spans(&name);
    let changes: Vec<(String, String, Option<String>)> = file_changes(&spans)
        .into_iter()
        .map(|(op, path, new_path, _)| (op, path, new_path))
        .collect();
    assert_eq!(
        changes,
        [
            ("chmod".into(), "/etc/hostname".into(), None),
            (
                "rename".into(),
                "/etc/hostname".into(),
                Some("/etc/hostname.old".into())
            ),
            ("delete".into(), "/etc/motd".into(), None),
        ]
    );
    let chmod = spans.iter().find(|s| s["detail"]["op"] == "chmod").unwrap();
    assert_eq!(chmod["detail"]["mode"], 0o600);
}

/// With the sensor off, the world says so and is traced as before (the
/// proc connector and the preload).
#[test]
fn with_the_sensor_off_the_world_says_so() {
    let rt = Runtime::new();
    let name = unique_id("sensor-off");
    let out = rt
        .cli(&["run", "--name", &name, "--", "/bin/busybox", "true", "off"])
        .env("SUBSTRATE_SENSOR", "off")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spans = rt.spans(&name);
    let sensor = &world_span(&spans)["sensor"];
    assert_eq!(sensor["exec"], "proc_connector", "{sensor}");
    assert_eq!(sensor["net"], "off", "{sensor}");
    assert!(sensor["ebpf_unavailable"]
        .as_str()
        .unwrap()
        .contains("SUBSTRATE_SENSOR=off"));
    assert!(
        sensor["files"].as_str().unwrap().starts_with("off"),
        "{sensor}"
    );
    // Both execs (the init's and the command's) are spans, from the proc
    // connector (their argv from /proc when it was read in time).
    assert_eq!(
        world_span(&spans)["detail"]["spans"]["exec"],
        2,
        "{spans:#?}"
    );
}
