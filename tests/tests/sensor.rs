//! The kernel sensor (issue 13): what programs that avoid glibc do in a
//! world is seen all the same, read in the kernel. Each test is a row of
//! the table, asserting the exact span.
//!
//! These run with the eBPF sensor on (this host and CI load it); the
//! fallback (proc connector only, `SUBSTRATE_SENSOR=off`) runs today's
//! trace tests (`make test`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use substrate_tests::{unique_id, workspace_root, Runtime};

/// Compiles tests/programs/<source> static with musl-gcc into `dir`.
fn compile_static(source: &str, dir: &Path) -> PathBuf {
    let src = workspace_root().join("tests/programs").join(source);
    let out = dir.join(source.trim_end_matches(".c"));
    let status = Command::new("musl-gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .status()
        .expect("musl-gcc (Debian: musl-tools)");
    assert!(status.success(), "musl-gcc {}", src.display());
    out
}

/// A dir the host-rootfs world can see (its lower is the host's /).
fn programs_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("substrate-sensor")
        .tempdir_in("/var/tmp")
        .unwrap();
    fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    dir
}

fn world_span(spans: &[Value]) -> &Value {
    spans.iter().find(|s| s["kind"] == "world").expect("a world span")
}

fn execs_with_argv0<'a>(spans: &'a [Value], argv0: &str) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| s["kind"] == "exec" && s["argv"][0] == argv0)
        .collect()
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
    let [shell] = execs_with_argv0(&spans, "/bin/busybox")[..] else {
        panic!("one busybox exec: {spans:#?}");
    };
    assert_eq!(shell["argv"], serde_json::json!(["/bin/busybox", "sh", "-c", "echo x > f"]));
    assert!(shell["exe"].as_str().unwrap().ends_with("/busybox"), "{shell}");
    assert_eq!(shell["cwd"], "/tmp", "{shell}");
    assert_eq!(shell["uid"], 0, "{shell}");
}

/// Rows 5 and 6: a musl program, and a dynamic program run without the
/// preload through a copy of the loader: argv from the kernel, not marked
/// as filled by the preload.
#[test]
fn musl_and_a_loader_copy_without_the_preload_are_named() {
    let dir = programs_dir();
    let musl = compile_static("musl_hello.c", dir.path());
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
    let [musl_exec] = execs_with_argv0(&spans, musl.to_str().unwrap())[..] else {
        panic!("one musl exec: {spans:#?}");
    };
    assert_eq!(musl_exec["argv"][1], "one");
    assert_eq!(musl_exec["exe"], musl.to_str().unwrap());
    assert!(musl_exec["filled_by"].is_null(), "{musl_exec}");
    let [loader_exec] = execs_with_argv0(&spans, loader.to_str().unwrap())[..] else {
        panic!("one exec of the loader copy: {spans:#?}");
    };
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
    let program = compile_static("raw_connect.c", dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rt = Runtime::new();
    let name = unique_id("sensor-connect");
    rt.cli_run_ok(
        &name,
        &format!("{} {port}; test $? -eq 111", program.display()),
    );
    let spans = rt.spans(&name);
    let [exec] = execs_with_argv0(&spans, program.to_str().unwrap())[..] else {
        panic!("one exec of the program: {spans:#?}");
    };
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
    assert!(stdout.contains(&format!("bpf -1 {}", nix::libc::EPERM)), "{stdout}");
}
