//! Kernel-level tracing of a world: every exec is a span in the world's
//! `trace.jsonl`, static binaries included, with parent links, and the world
//! span closes the trace.

use std::fs;

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
    assert_eq!(world[0]["detail"]["spans"]["exec"], 5, "{spans:#?}");

    let sh = execs(&spans, "sh");
    let init = sh
        .iter()
        .find(|s| s["world_pid"] == 1)
        .expect("the init's exec span");
    assert_eq!(init["parent_span_id"], world[0]["span_id"]);
    assert_eq!(init["source"], "kernel");
    // ls, wc, the static busybox and the inner sh: children of the init,
    // with their exit statuses, whether or not their argv could be read.
    let children = child_execs(&spans);
    assert_eq!(children.len(), 4, "{spans:#?}");
    for child in &children {
        assert_eq!(child["parent_span_id"], init["span_id"], "{child}");
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
    let children = tree
        .lines()
        .filter(|l| l.starts_with("   ├─ ") || l.starts_with("   └─ "))
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
        let trues = child_execs(&spans);
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
    let lost = spans.iter().filter(|s| s["kind"] == "loss").count();
    // sh's children: `seq` and the 10 000 `/bin/true`.
    let trues = child_execs(&spans).len() - 1;
    // Every exec is seen, or the loss is written down: never silence.
    assert!(
        trues == 10_000 || lost > 0,
        "{trues} of 10000 execs, no loss record"
    );
    assert_eq!(lost, 0, "this machine keeps up with 10k execs");
}

#[test]
fn a_runtime_world_gets_a_monitor_with_the_exit_status() {
    // podman and containerd's runc shim never tell the runtime how the init
    // ended; the monitor `create` starts does.
    let rt = Runtime::new();
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
