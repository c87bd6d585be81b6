//! The preload tracer in worlds: file, socket and lookup calls become spans
//! linked to the program that made them, whatever started the program
//! (`sh`, `env -i`, python's fork/exec and posix_spawn paths, vfork, a
//! multithreaded parent's fork), SIGKILL does not lose what was recorded,
//! musl and static programs run unharmed, and a hostile process cannot get
//! forged spans in or crash the monitor.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use substrate_tests::{programs_dir, unique_id, workspace_root, Runtime};

fn world_span(spans: &[Value]) -> &Value {
    let worlds: Vec<&Value> = spans.iter().filter(|s| s["kind"] == "world").collect();
    assert_eq!(worlds.len(), 1, "{spans:#?}");
    worlds[0]
}

fn of_kind<'a>(spans: &'a [Value], kind: &str) -> Vec<&'a Value> {
    spans.iter().filter(|s| s["kind"] == kind).collect()
}

/// File spans on `path` (any op).
fn files_on<'a>(spans: &'a [Value], path: &str) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| s["kind"] == "file" && s["detail"]["path"] == path)
        .collect()
}

/// The exec span of the program whose argv[0] ends with `name`.
fn exec_of<'a>(spans: &'a [Value], name: &str) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| {
            s["kind"] == "exec"
                && s["argv"][0]
                    .as_str()
                    .is_some_and(|a| a == name || a.ends_with(&format!("/{name}")))
        })
        .collect()
}

fn parent_of<'a>(spans: &'a [Value], span: &Value) -> &'a Value {
    spans
        .iter()
        .find(|s| s["span_id"] == span["parent_span_id"])
        .unwrap_or_else(|| panic!("no parent for {span}"))
}

/// Compiles a test program from tests/programs with `cc` (gcc or musl-gcc).
fn compile(cc: &str, source: &str, dir: &Path, extra: &[&str]) -> PathBuf {
    let src = workspace_root().join("tests/programs").join(source);
    let out = dir.join(source.trim_end_matches(".c"));
    let status = Command::new(cc)
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .args(extra)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "{cc} (Debian: {}): {e}",
                if cc == "musl-gcc" {
                    "musl-tools"
                } else {
                    "gcc"
                }
            )
        });
    assert!(status.success(), "{cc} {}", src.display());
    out
}

#[test]
fn file_socket_and_lookup_calls_are_spans_of_their_program() {
    let rt = Runtime::new();
    let name = unique_id("preload");
    rt.cli_run_ok(
        &name,
        "echo hi > /tmp/pre-a; mkdir /tmp/pre-d; mv /tmp/pre-a /tmp/pre-d/b; \
         chmod 600 /tmp/pre-d/b; truncate -s 0 /tmp/pre-d/b; rm /tmp/pre-d/b; rmdir /tmp/pre-d; \
         /usr/bin/python3 -c 'import socket\n\
print(socket.getaddrinfo(\"localhost\", 80, socket.AF_INET)[0][4])\n\
s = socket.socket()\n\
try: s.connect((\"127.0.0.1\", 9))\n\
except OSError as e: print(e)\n\
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
for b in (b\"x\", b\"y\"):\n    try: u.sendto(b, (\"127.0.0.1\", 9))\n    except OSError as e: print(e)\n\
l = socket.socket(socket.AF_UNIX)\n\
l.bind(\"/tmp/pre.sock\")\n\
l.listen(1)\n\
c = socket.socket(socket.AF_UNIX)\n\
c.connect(\"/tmp/pre.sock\")\n\
a, _ = l.accept()'",
    );
    let spans = rt.spans(&name);
    let world = world_span(&spans);
    assert_eq!(world["result"]["code"], 0);

    let init = &exec_of(&spans, "sh")[0];
    // With the kernel sensor's file source (the default), a change it saw
    // is its span, joined by the preload's account of the call that made it
    // (flags, mode and return included); without it (`SUBSTRATE_SENSOR=off`,
    // which `make test` runs too), the preload's span is all there is.
    let kernel_files = world["sensor"]["files"] == "fanotify";
    let created = files_on(&spans, "/tmp/pre-a");
    let open = created
        .iter()
        .find(|s| s["preload"] == "open" || s["detail"]["op"] == "open")
        .expect("sh's open of /tmp/pre-a");
    if kernel_files {
        assert_eq!(open["source"], "kernel");
        assert_eq!(open["detail"]["op"], "create");
    } else {
        assert_eq!(open["source"], "preload");
    }
    assert_eq!(
        open["parent_span_id"], init["span_id"],
        "the redirect is the shell's"
    );
    assert_eq!(open["pid"], init["pid"]);
    let flags = open["detail"]["flags"].as_u64().unwrap();
    assert_ne!(flags & 0o100, 0, "O_CREAT: {open}");
    assert!(open["result"]["ret"].as_i64().unwrap() >= 0);

    let by = |span: &Value| {
        parent_of(&spans, span)["argv"][0]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let op_on = |op: &str, path: &str| -> Value {
        (*files_on(&spans, path)
            .iter()
            .find(|s| {
                s["detail"]["op"].as_str().unwrap().contains(op)
                    || s["preload"].as_str().is_some_and(|call| call.contains(op))
            })
            .unwrap_or_else(|| panic!("no {op} of {path} in {spans:#?}")))
        .clone()
    };
    let mkdir = op_on("mkdir", "/tmp/pre-d");
    assert_eq!(by(&mkdir), "mkdir");
    assert_eq!(mkdir["detail"]["mode"], 0o777);
    let rename = op_on("rename", "/tmp/pre-a");
    assert_eq!(rename["detail"]["new_path"], "/tmp/pre-d/b");
    assert_eq!(by(&rename), "mv");
    assert_eq!(by(&op_on("chmod", "/tmp/pre-d/b")).as_str(), "chmod");
    // coreutils truncate opens (O_CREAT) then ftruncates.
    assert_eq!(by(&op_on("open", "/tmp/pre-d/b")).as_str(), "truncate");
    assert_eq!(by(&op_on("unlink", "/tmp/pre-d/b")).as_str(), "rm");
    assert_eq!(by(&op_on("rmdir", "/tmp/pre-d")).as_str(), "rmdir");

    let dns = of_kind(&spans, "dns");
    let localhost = dns
        .iter()
        .find(|s| s["detail"]["query"] == "localhost")
        .expect("the lookup");
    assert!(
        localhost["detail"]["answers"]
            .as_array()
            .unwrap()
            .contains(&Value::from("127.0.0.1")),
        "{localhost}"
    );
    assert_eq!(by(localhost), "/usr/bin/python3");

    let net = of_kind(&spans, "net");
    // (glibc's own connect to nscd's socket, which the kernel sensor
    // sees, is not the program's.)
    let connect = net
        .iter()
        .find(|s| s["detail"]["op"] == "connect" && s["detail"]["family"] == "inet")
        .expect("connect");
    assert_eq!(connect["detail"]["address"], "127.0.0.1");
    assert_eq!(connect["detail"]["port"], 9);
    assert_eq!(connect["detail"]["transport"], "tcp");
    assert_eq!(
        connect["result"]["ret"], -1,
        "nothing listens on port 9: {connect}"
    );
    assert!(connect["result"]["errno"]["name"].is_string(), "{connect}");
    // Two datagrams to one peer: one span (the first).
    let sends: Vec<_> = net
        .iter()
        .filter(|s| s["detail"]["op"] == "sendto")
        .collect();
    assert_eq!(sends.len(), 1, "{sends:#?}");
    assert_eq!(sends[0]["detail"]["transport"], "udp");
    // A unix socket: bind, connect and accept, with its path.
    for op in ["bind", "connect"] {
        assert!(
            net.iter().any(|s| s["detail"]["op"] == op
                && s["detail"]["family"] == "unix"
                && s["detail"]["address"] == "/tmp/pre.sock"),
            "{op}: {net:#?}"
        );
    }
    let accept = net
        .iter()
        .find(|s| s["detail"]["op"] == "accept")
        .expect("accept");
    assert_eq!(accept["detail"]["family"], "unix");
    assert!(accept["result"]["ret"].as_i64().unwrap() >= 0, "{accept}");

    // Exec spans carry the env, keys always, values redacted unless allowed.
    let env = init["env"].as_array().expect("the init's env");
    assert!(
        env.iter()
            .any(|e| e.as_str().unwrap().starts_with("PATH=/")),
        "{env:?}"
    );
    assert_eq!(world["detail"]["rejected"], Value::Null, "{world}");

    // The tree names what each program wrote.
    let tree = rt.cli(&["trace", &name]).output().unwrap();
    let tree = String::from_utf8_lossy(&tree.stdout);
    assert!(tree.contains("wrote: rename"), "{tree}");
    assert!(
        tree.lines()
            .any(|l| l.contains("net: ") && l.contains("connect 127.0.0.1:9/tcp")),
        "{tree}"
    );
    assert!(tree.contains("dns: localhost -> 127.0.0.1"), "{tree}");
}

#[test]
fn scrubbing_the_environment_does_not_shake_the_tracer_off() {
    let rt = Runtime::new();
    let name = unique_id("envi");
    rt.cli_run_ok(
        &name,
        "env -i /bin/sh -c 'cat /etc/hostname > /tmp/envi-out'",
    );
    let spans = rt.spans(&name);
    let cat = &exec_of(&spans, "cat")[0];
    let env = cat["env"].as_array().expect("env of cat");
    assert!(
        !env.iter()
            .any(|e| e.as_str().unwrap().starts_with("LD_PRELOAD")),
        "env -i removed LD_PRELOAD: {env:?}"
    );
    let read = files_on(&spans, "/etc/hostname");
    assert!(
        read.iter().any(|s| s["parent_span_id"] == cat["span_id"]),
        "{spans:#?}"
    );
    let write = files_on(&spans, "/tmp/envi-out");
    assert_eq!(parent_of(&spans, write[0])["argv"][0], "/bin/sh");
}

#[test]
fn python_subprocess_fork_exec_and_posix_spawn_are_both_traced() {
    let rt = Runtime::new();
    let name = unique_id("python");
    // close_fds=True (default): _posixsubprocess's fork/vfork + exec;
    // close_fds=False with an absolute path: os.posix_spawn.
    rt.cli_run_ok(
        &name,
        "/usr/bin/python3 -c 'import subprocess\n\
subprocess.run([\"cat\", \"/etc/hostname\"], stdout=subprocess.DEVNULL, check=True)\n\
subprocess.run([\"/bin/cat\", \"/etc/passwd\"], stdout=subprocess.DEVNULL, close_fds=False, check=True)'",
    );
    let spans = rt.spans(&name);
    let python = &exec_of(&spans, "/usr/bin/python3")[0];
    for (argv0, path) in [("cat", "/etc/hostname"), ("/bin/cat", "/etc/passwd")] {
        let cat = spans
            .iter()
            .find(|s| s["kind"] == "exec" && s["argv"][0] == argv0 && s["argv"][1] == path)
            .unwrap_or_else(|| panic!("{argv0} {path}: {spans:#?}"));
        assert_eq!(cat["parent_span_id"], python["span_id"]);
        assert_eq!(cat["result"]["code"], 0);
        assert!(
            files_on(&spans, path)
                .iter()
                .any(|f| f["parent_span_id"] == cat["span_id"]),
            "{path} opened by {argv0}"
        );
    }
}

#[test]
fn forks_of_a_multithreaded_program_and_vfork_children() {
    let dir = programs_dir();
    let threads = compile("gcc", "threads_fork.c", dir.path(), &["-pthread"]);
    let vfork = compile("gcc", "vfork_exec.c", dir.path(), &[]);
    let rt = Runtime::new();
    let name = unique_id("forks");
    rt.cli_run_ok(
        &name,
        &format!("{} && {}", threads.display(), vfork.display()),
    );
    let spans = rt.spans(&name);
    let program = &exec_of(&spans, threads.to_str().unwrap())[0];
    assert_eq!(program["result"]["code"], 0);
    // Each child's own open, from a ring of its own (its pid, not the
    // parent's), linked to the program it was forked from.
    for i in 0..20 {
        let path = format!("/tmp/forked-child-{i}");
        let opens = files_on(&spans, &path);
        assert_eq!(opens.len(), 1, "{path}: {opens:#?}");
        assert_eq!(opens[0]["parent_span_id"], program["span_id"]);
        assert_ne!(opens[0]["pid"], program["pid"], "{}", opens[0]);
    }
    let vforker = &exec_of(&spans, vfork.to_str().unwrap())[0];
    assert_eq!(vforker["result"]["code"], 0);
    let cat = &exec_of(&spans, "cat")[0];
    assert_eq!(cat["parent_span_id"], vforker["span_id"]);
    assert!(files_on(&spans, "/etc/hostname")
        .iter()
        .any(|f| f["parent_span_id"] == cat["span_id"]));
}

#[test]
fn what_a_process_recorded_survives_its_sigkill() {
    let dir = programs_dir();
    let program = compile("gcc", "open_then_sigkill.c", dir.path(), &[]);
    let rt = Runtime::new();
    let name = unique_id("killed");
    rt.cli_run_ok(&name, &format!("{} 300; true", program.display()));
    let spans = rt.spans(&name);
    let exec = &exec_of(&spans, program.to_str().unwrap())[0];
    assert_eq!(exec["result"]["signal"], 9, "{exec}");
    let recorded: Vec<_> = spans
        .iter()
        .filter(|s| {
            s["kind"] == "file"
                && s["detail"]["path"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("/nonexistent/killed-"))
        })
        .collect();
    assert_eq!(recorded.len(), 300);
    for span in recorded {
        assert_eq!(span["result"]["errno"]["name"], "ENOENT", "{span}");
        assert_eq!(span["parent_span_id"], exec["span_id"], "{span}");
    }
}

#[test]
fn musl_and_static_programs_run_unharmed() {
    let dir = programs_dir();
    let musl = compile("musl-gcc", "musl_hello.c", dir.path(), &[]);
    let rt = Runtime::new();
    let name = unique_id("musl");
    let out = rt.cli_run_ok(
        &name,
        &format!("LD_PRELOAD=/.substrate/libsubstrate_preload.so {} && /bin/busybox cat /etc/hostname >/dev/null", musl.display()),
    );
    let hostname_len = fs::read("/etc/hostname").unwrap().len();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("musl read {hostname_len} bytes")
    );
    let spans = rt.spans(&name);
    // Both are seen by the kernel; neither reports calls (musl: the tracer
    // stays inert; static: nothing to preload into). A program this short
    // may be gone before the monitor reads its argv from /proc, and only
    // the preload could have told: so the children are told apart by
    // elimination.
    let init = &exec_of(&spans, "sh")[0];
    let children: Vec<&Value> = spans
        .iter()
        .filter(|s| s["kind"] == "exec" && s["parent_span_id"] == init["span_id"])
        .collect();
    assert_eq!(children.len(), 2, "{children:#?}");
    for exec in children {
        assert_eq!(exec["result"]["code"], 0, "{exec}");
        assert_eq!(exec["source"], "kernel");
        if let Some(argv0) = exec["argv"][0].as_str() {
            assert!(
                argv0 == "/bin/busybox" || argv0 == musl.to_str().unwrap(),
                "{exec}"
            );
        }
        assert!(
            !spans
                .iter()
                .any(|s| s["kind"] == "file" && s["parent_span_id"] == exec["span_id"]),
            "{exec}"
        );
    }
}

#[test]
fn a_hostile_process_cannot_forge_spans_or_stop_the_monitor() {
    let rt = Runtime::new();
    let name = unique_id("hostile");
    let script = workspace_root().join("tests/programs/hostile.py");
    let out = rt.cli_run_ok(
        &name,
        &format!("/usr/bin/python3 {} && cat /etc/hostname", script.display()),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("hostile done"));
    let spans = rt.spans(&name);
    let world = world_span(&spans);
    let rejected = &world["detail"]["rejected"];
    assert_eq!(rejected["garbage"], 1, "{rejected}");
    assert_eq!(rejected["oversized"], 1, "{rejected}");
    assert_eq!(rejected["forged_pid"], 1, "{rejected}");
    assert_eq!(rejected["hello_without_ring"], 1, "{rejected}");
    assert_eq!(
        rejected["ring_unsealed"], 2,
        "a regular file and an unsealed memfd: {rejected}"
    );
    assert_eq!(rejected["bad_record"], 50, "{rejected}");
    assert!(!spans
        .iter()
        .any(|s| s["world_pid"] == 4242 || s["pid"] == 4242));
    // The monitor kept going: the next program is traced as usual.
    let cat = &exec_of(&spans, "cat")[0];
    assert!(files_on(&spans, "/etc/hostname")
        .iter()
        .any(|f| f["parent_span_id"] == cat["span_id"]));
}

#[test]
fn two_worlds_at_once_keep_their_calls_apart() {
    let rt = Runtime::new();
    let (a, b) = (unique_id("apart-a"), unique_id("apart-b"));
    std::thread::scope(|s| {
        for (name, marker) in [(&a, "/tmp/apart-a"), (&b, "/tmp/apart-b")] {
            let rt = &rt;
            s.spawn(move || {
                rt.cli_run_ok(
                    name,
                    &format!("for i in 1 2 3 4 5; do echo $i > {marker}-$i; done"),
                )
            });
        }
    });
    for (name, mine, theirs) in [
        (&a, "/tmp/apart-a", "/tmp/apart-b"),
        (&b, "/tmp/apart-b", "/tmp/apart-a"),
    ] {
        let spans = rt.spans(name);
        // One span per file made: the kernel's create (joined by the
        // shell's open), or without the file source the open itself.
        let created = if world_span(&spans)["sensor"]["files"] == "fanotify" {
            "create"
        } else {
            "open"
        };
        let paths: Vec<&str> = of_kind(&spans, "file")
            .iter()
            .filter(|s| s["detail"]["op"] == created)
            .filter_map(|s| s["detail"]["path"].as_str())
            .collect();
        assert_eq!(
            paths.iter().filter(|p| p.starts_with(mine)).count(),
            5,
            "{paths:?}"
        );
        assert!(!paths.iter().any(|p| p.starts_with(theirs)), "{paths:?}");
    }
}
