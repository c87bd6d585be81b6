//! Kernel-level tracing of a world: every exec is a span in the world's
//! `trace.jsonl`, static binaries included, with parent links, and the world
//! span closes the trace.

use std::fs;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use substrate_tests::{unique_id, Runtime};

fn execs<'a>(spans: &'a [Value], argv0: &str) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| s["kind"] == "exec" && s["argv"][0] == argv0)
        .collect()
}

/// Exec spans of everything but the world's init. (A process that exits
/// before the monitor reads its argv from /proc has a span without argv.)
fn child_execs(spans: &[Value]) -> Vec<&Value> {
    spans
        .iter()
        .filter(|s| s["kind"] == "exec" && s["world_pid"] != 1)
        .collect()
}

/// In a substrate-cli world: exec spans of everything but its init (the
/// world span's child) and the command the init runs (the init's child),
/// told by their parent links, which the kernel's fork events give even
/// when a process was gone before its /proc could be read.
fn command_child_execs(spans: &[Value]) -> Vec<&Value> {
    let world = spans.iter().find(|s| s["kind"] == "world").unwrap();
    let init: Vec<&Value> = spans
        .iter()
        .filter(|s| s["kind"] == "exec" && s["parent_span_id"] == world["span_id"])
        .map(|s| &s["span_id"])
        .collect();
    spans
        .iter()
        .filter(|s| s["kind"] == "exec" && s["parent_span_id"] != world["span_id"])
        .filter(|s| !init.contains(&&s["parent_span_id"]))
        .collect()
}

#[test]
fn every_exec_is_a_span_with_its_parent() {
    let rt = Runtime::new();
    let name = unique_id("trace");
    rt.cli_run_ok(
        &name,
        "ls / | wc -l >/dev/null; /bin/busybox true; sh -c 'exit 3'; exit 0",
    );
    let spans = rt.spans(&name);

    let world: Vec<&Value> = spans.iter().filter(|s| s["kind"] == "world").collect();
    assert_eq!(world.len(), 1);
    assert_eq!(world[0]["result"]["code"], 0);
    assert_eq!(world[0]["detail"]["spans"]["exec"], 6, "{spans:#?}");

    // The init is the world span's one exec child, the command the init's:
    // told by the kernel's parent links. (argv, exe and world_pid are read
    // from /proc; a monitor starved of CPU reads it after the processes are
    // gone, and a dynamic program's argv then comes from the preload: the
    // span says `filled_by`. Whatever is there must be right.)
    let children_of = |parent: &Value| -> Vec<&Value> {
        spans
            .iter()
            .filter(|s| s["kind"] == "exec" && s["parent_span_id"] == *parent)
            .collect()
    };
    let [init] = children_of(&world[0]["span_id"])[..] else {
        panic!("one exec span under the world span: {spans:#?}");
    };
    assert_eq!(init["source"], "kernel");
    if !init["argv"].is_null() {
        assert_eq!(init["argv"][0], "/.substrate-init", "{init}");
    }
    if !init["world_pid"].is_null() {
        assert_eq!(init["world_pid"], 1, "{init}");
    }
    let [sh] = children_of(&init["span_id"])[..] else {
        panic!("one exec span under the init's: {spans:#?}");
    };
    if !sh["argv"].is_null() {
        assert_eq!(sh["argv"][0], "sh", "{sh}");
    }
    if !sh["world_pid"].is_null() {
        assert_eq!(sh["world_pid"], 2, "{sh}");
    }
    assert_eq!(sh["parent_span_id"], init["span_id"]);
    // ls, wc, the static busybox and the inner sh: children of the
    // command, with their exit statuses, whether or not their argv could be
    // read.
    let children = command_child_execs(&spans);
    assert_eq!(children.len(), 4, "{spans:#?}");
    for child in &children {
        assert_eq!(child["parent_span_id"], sh["span_id"], "{child}");
        assert_eq!(child["source"], "kernel");
        assert!(child["end"].as_str().unwrap() >= child["start"].as_str().unwrap());
    }
    let mut codes: Vec<i64> = children
        .iter()
        .map(|c| c["result"]["code"].as_i64().unwrap())
        .collect();
    codes.sort();
    assert_eq!(codes, [0, 0, 0, 3]);
    for span in execs(&spans, "/bin/busybox") {
        // exe is read from /proc after argv; the process may be gone by then.
        if let Some(exe) = span["exe"].as_str() {
            assert!(exe.ends_with("busybox"), "{span}");
        }
    }
    let tree = rt.cli(&["trace", &name]).output().unwrap();
    let tree = String::from_utf8_lossy(&tree.stdout);
    assert!(tree.starts_with(&format!("world {name}: exit 0")), "{tree}");
    // world, then the init, then the command, then its children.
    let children = tree
        .lines()
        .filter(|l| l.starts_with("      ├─ ") || l.starts_with("      └─ "))
        .count();
    assert_eq!(children, 4, "{tree}");
}

#[test]
fn two_worlds_at_once_do_not_cross_talk() {
    let rt = Runtime::new();
    let names: Vec<String> = (0..2).map(|_| unique_id("twotrace")).collect();
    let children: Vec<_> = names
        .iter()
        .map(|name| {
            let script =
                format!("for i in 1 2 3 4 5; do echo {name} >/dev/null; /bin/true {name}; done");
            rt.cli(&["run", "--name", name, "--", "sh", "-c", &script])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    for (name, other) in [(&names[0], &names[1]), (&names[1], &names[0])] {
        let spans = rt.spans(name);
        let trues = command_child_execs(&spans);
        assert_eq!(trues.len(), 5, "{name}");
        assert!(trues.iter().all(|s| s["world_id"] == name.as_str()));
        assert!(!fs::read_to_string(rt.world_dir(name).join("trace.jsonl"))
            .unwrap()
            .contains(other.as_str()));
    }
}

#[test]
fn ten_thousand_execs_in_one_world() {
    let rt = Runtime::new();
    let name = unique_id("tenk");
    rt.cli_run_ok(&name, "for i in $(seq 10000); do /bin/true; done");
    let spans = rt.spans(&name);
    // The monitor reads as the world runs, and its receive buffer holds
    // about 10 000 events between two reads: it keeps up, nothing is lost.
    // (That a loss, when there is one, is written down is
    // `a_monitor_that_falls_behind_writes_down_the_loss`.)
    let losses: Vec<&Value> = spans.iter().filter(|s| s["kind"] == "loss").collect();
    assert!(losses.is_empty(), "{losses:#?}");
    // sh's children: `seq` and the 10 000 `/bin/true`.
    assert_eq!(command_child_execs(&spans).len(), 10_001);
}

/// The kernel's count of datagrams it dropped for `pid`'s proc connector
/// socket (the `Drops` column of /proc/net/netlink, found by the socket's
/// inode among `pid`'s fds); `None` while `pid` has no such socket.
fn connector_drops(pid: i32) -> Option<u64> {
    let inodes: Vec<String> = fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|fd| fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_str()?;
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode; NETLINK_CONNECTOR is 11.
    fs::read_to_string("/proc/net/netlink")
        .ok()?
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() >= 10 && f[1] == "11" && inodes.iter().any(|i| i == f[9]))
        .map(|f| f[8].parse().expect("a drop count"))
}

/// The state letter of `/proc/<pid>/stat` (`T`: stopped).
fn process_state(pid: i32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

#[test]
fn a_monitor_that_falls_behind_writes_down_the_loss() {
    let rt = Runtime::new();
    let id = unique_id("behind");
    let bundle = substrate_tests::Bundle::new(
        &id,
        &["sh", "-c", "for i in $(seq 10000); do /bin/true; done"],
    );
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    // `create` returned once the detached monitor was subscribed; stopped,
    // it reads nothing while the world runs.
    let monitors = substrate_tests::processes_mentioning(&format!(" monitor {id}"));
    assert_eq!(monitors.len(), 1, "the world's monitor: {monitors:?}");
    let monitor = Pid::from_raw(monitors[0]);
    kill(monitor, Signal::SIGSTOP).unwrap();
    substrate_tests::wait_until("the monitor to stop", || {
        process_state(monitor.as_raw()) == Some('T')
    });
    assert_eq!(connector_drops(monitor.as_raw()), Some(0));
    rt.ok(&["start", &id]);
    // Each /bin/true is a fork, an exec and an exit: 30 000 events against a
    // buffer of about 10 000. The kernel says when it dropped the first.
    let deadline = Instant::now() + Duration::from_secs(120);
    while connector_drops(monitor.as_raw()) == Some(0) {
        assert!(
            Instant::now() < deadline,
            "the kernel dropped nothing for a stopped monitor"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(connector_drops(monitor.as_raw()) > Some(0));
    rt.ok(&["kill", &id, "KILL"]);
    kill(monitor, Signal::SIGCONT).unwrap();
    rt.wait_status(&id, "stopped");
    // With events lost the monitor cannot know the tree is empty; it stops
    // when the world is deleted.
    rt.ok(&["delete", &id]);
    substrate_tests::wait_until("the world span", || {
        fs::read_to_string(rt.world_dir(&id).join("trace.jsonl"))
            .is_ok_and(|t| t.contains("\"kind\":\"world\""))
    });
    let spans = rt.spans(&id);
    let losses: Vec<&Value> = spans.iter().filter(|s| s["kind"] == "loss").collect();
    // The connector's overrun, once; the eBPF sensor's ring, which the
    // stopped monitor does not drain either, may have filled too (how many
    // execs ran before the kill depends on the host's load): each loss is
    // written down once, by its source.
    let by_source = |source: &str| {
        losses
            .iter()
            .filter(|s| s["detail"]["source"] == source)
            .count()
    };
    assert_eq!(
        by_source("proc_connector"),
        1,
        "one overrun, one loss span: {losses:#?}"
    );
    assert!(by_source("ebpf") <= 1, "{losses:#?}");
    assert_eq!(
        by_source("proc_connector") + by_source("ebpf"),
        losses.len(),
        "{losses:#?}"
    );
    let world: Vec<&Value> = spans.iter().filter(|s| s["kind"] == "world").collect();
    assert_eq!(world.len(), 1);
    assert_eq!(
        world[0]["detail"]["spans"]["loss"],
        losses.len(),
        "{}",
        world[0]
    );
    substrate_tests::assert_no_leftovers(rt.root(), &id);
}

#[test]
fn a_runtime_world_gets_a_monitor_with_the_exit_status() {
    // podman and containerd's runc shim never tell the runtime how the init
    // ended; the monitor `create` starts does.
    let rt = Runtime::overlay();
    let id = unique_id("monitored");
    let mut bundle = substrate_tests::Bundle::new(
        &id,
        &["sh", "-c", "/bin/busybox true; echo x > /root/f; exit 4"],
    );
    bundle.edit(|c| c["root"]["readonly"] = false.into());
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    rt.ok(&["start", &id]);
    substrate_tests::wait_until("the monitor to record the exit", || {
        fs::read(rt.world_dir(&id).join("world.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|r| r["exit"]["code"] == 4)
    });
    let record = rt.record(&id);
    assert_eq!(
        record["diff"]["added"], 1,
        "the diff is taken when the world ends: {record}"
    );
    substrate_tests::wait_until("the world span", || {
        fs::read_to_string(rt.world_dir(&id).join("trace.jsonl"))
            .is_ok_and(|t| t.contains("\"kind\":\"world\""))
    });
    let spans = rt.spans(&id);
    assert_eq!(child_execs(&spans).len(), 1, "{spans:#?}");
    rt.ok(&["delete", &id]);
    assert_eq!(
        rt.record(&id)["exit"]["code"],
        4,
        "delete keeps what the monitor recorded"
    );
    substrate_tests::assert_no_leftovers(rt.root(), &id);
}

#[test]
fn processes_execd_into_a_world_are_traced() {
    let rt = Runtime::new();
    let id = unique_id("execd");
    let bundle = substrate_tests::Bundle::new(&id, &["sleep", "1000"]);
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    rt.ok(&["start", &id]);
    let out = rt.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "/bin/busybox true; sleep 0.2; exit 0",
    ]);
    assert_eq!(out, "");
    substrate_tests::wait_until("the exec'd processes' spans", || {
        fs::read_to_string(rt.world_dir(&id).join("trace.jsonl")).is_ok_and(|t| {
            t.lines()
                .filter(|l| l.contains("\"kind\":\"exec\""))
                .count()
                >= 3
        })
    });
    let spans = rt.spans(&id);
    let sh = execs(&spans, "sh");
    assert_eq!(sh.len(), 1, "{spans:#?}");
    assert_eq!(
        sh[0]["world_pid"], 2,
        "the exec'd process lives in the world's pid namespace"
    );
    let inside: Vec<&Value> = spans
        .iter()
        .filter(|s| s["kind"] == "exec" && s["parent_span_id"] == sh[0]["span_id"])
        .collect();
    assert_eq!(
        inside.len(),
        2,
        "busybox and sleep, children of the exec'd sh: {spans:#?}"
    );
    rt.ok(&["delete", "--force", &id]);
    substrate_tests::assert_no_leftovers(rt.root(), &id);
}

/// A legitimate program is never counted as forged: under a load that
/// churns pids (so a busy monitor reads `/proc` of processes gone or
/// replaced), every world's programs keep their argv and nothing from
/// inside is rejected as `forged_pid`.
#[test]
fn no_legitimate_program_is_counted_as_forged_under_load() {
    struct Load(Vec<std::process::Child>);
    impl Drop for Load {
        fn drop(&mut self) {
            for child in &mut self.0 {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    let _load = Load(
        (0..2)
            .map(|_| {
                std::process::Command::new("sh")
                    .args(["-c", "while :; do /bin/true; done"])
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );
    let rt = Runtime::new();
    for i in 0..15 {
        let name = unique_id(&format!("forged{i}"));
        rt.cli_run_ok(
            &name,
            "echo \"hello from $(hostname)\" >/dev/null; cat /etc/hostname >/dev/null",
        );
        let spans = rt.spans(&name);
        let world = spans
            .iter()
            .find(|s| s["kind"] == "world")
            .expect("world span");
        assert!(
            world["detail"]["rejected"].get("forged_pid").is_none(),
            "{name}: {}",
            world["detail"]
        );
        for argv0 in ["hostname", "cat"] {
            let found = execs(&spans, argv0);
            assert_eq!(
                found.len(),
                1,
                "{name}: one {argv0} exec with its argv: {spans:#?}"
            );
        }
    }
}
