//! The policy's `limits.wall_time` and `budget.cpu_seconds`, kept by the
//! world's monitor (a thread of `substrate-cli run`; the detached monitor
//! process of `substrate-runtime create`): past either, every process of
//! the world is SIGKILLed through its cgroup, the world span says
//! `stopped_by` and the record's `limits_hit` names the limit. And the node
//! policy's `limits` as ceilings on a bundle world's cgroup, on cgroup v1
//! and v2.

use std::fs;
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use serde_json::Value;
use substrate_tests::cgroup::{Cgroup, Setting};
use substrate_tests::{assert_no_leftovers, processes_mentioning, unique_id, Bundle, Runtime};

fn write_policy(dir: &Path, text: &str) -> String {
    let path = dir.join("policy.yaml");
    fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// How a `substrate-cli run` ended.
struct Ran {
    id: String,
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// `substrate-cli run --policy POLICY -- sh -c SCRIPT`, waited for at most
/// `deadline` (past it the run is killed and the test fails: a limit that
/// is not kept must not hang the suite).
fn run_cli(runtime: &Runtime, policy: &str, script: &str, deadline: Duration) -> Ran {
    let id = unique_id("limits");
    let stdout = tempfile::NamedTempFile::new().unwrap();
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let started = Instant::now();
    let mut child = runtime
        .cli(&[
            "run", "--name", &id, "--policy", policy, "--", "/bin/sh", "-c", script,
        ])
        .stdout(stdout.reopen().unwrap())
        .stderr(stderr.reopen().unwrap())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "world {id} still ran after {deadline:?}: {}",
                fs::read_to_string(stderr.path()).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        id,
        status,
        stdout: fs::read_to_string(stdout.path()).unwrap(),
        stderr: fs::read_to_string(stderr.path()).unwrap(),
        took: started.elapsed(),
    }
}

/// The world span of a finished world's trace.
fn world_span(runtime: &Runtime, id: &str) -> Value {
    let spans = runtime.spans(id);
    spans
        .iter()
        .rev()
        .find(|s| s["kind"] == "world")
        .cloned()
        .unwrap_or_else(|| panic!("world {id} has no world span: {spans:#?}"))
}

/// The record's `limits_hit` entries, as `limit` names.
fn limits_hit(runtime: &Runtime, id: &str) -> Vec<String> {
    let record = runtime.record(id);
    record["limits_hit"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .map(|hit| hit["limit"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts the world span and the record say the world was stopped at
/// `limit`, whose value is `limit_s`.
#[track_caller]
fn assert_stopped_by(runtime: &Runtime, id: &str, limit: &str, limit_s: u64) -> Value {
    let span = world_span(runtime, id);
    let stopped_by = &span["stopped_by"];
    assert_eq!(stopped_by["limit"], limit, "{span:#}");
    assert_eq!(stopped_by["limit_s"], limit_s, "{span:#}");
    assert!(stopped_by["at"].is_string(), "{span:#}");
    let record = runtime.record(id);
    assert!(
        record["limits_hit"]
            .as_array()
            .is_some_and(|hits| hits.contains(&serde_json::json!({"limit": limit, "count": 1}))),
        "{record:#}"
    );
    stopped_by.clone()
}

#[test]
fn a_cli_world_past_its_wall_time_is_stopped_forks_and_all() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "version: 1\nlimits:\n  wall_time: 2\n");
    // A process that left the world's process tree (setsid, its parent
    // gone) and one that keeps forking: none of them outlives the world.
    let marker = format!("600.{}", std::process::id());
    let script = format!(
        "sh -c 'setsid sleep {marker} &'; \
         (while :; do sleep {marker} & sleep 0.05; done) & \
         echo started; sleep {marker}"
    );
    let ran = run_cli(&runtime, &policy, &script, Duration::from_secs(40));
    assert!(ran.stdout.contains("started"), "{}", ran.stderr);
    // Killed (SIGKILL: 128 + 9), after its 2 s, long before its sleep's 600.
    assert_eq!(ran.status.code(), Some(137), "{}", ran.stderr);
    assert!(ran.took >= Duration::from_secs(2), "{:?}", ran.took);
    assert!(ran.took < Duration::from_secs(30), "{:?}", ran.took);
    assert_stopped_by(&runtime, &ran.id, "wall_time", 2);
    assert_eq!(
        processes_mentioning(&format!("sleep {marker}")),
        Vec::<i32>::new()
    );
    assert_no_leftovers(runtime.root(), &ran.id);
}

#[test]
fn a_cli_world_past_its_cpu_budget_is_stopped() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path(), "version: 1\nbudget:\n  cpu_seconds: 1\n");
    // Two busy processes: the budget is the whole world's.
    let ran = run_cli(
        &runtime,
        &policy,
        "(while :; do :; done) & while :; do :; done",
        Duration::from_secs(60),
    );
    assert_eq!(ran.status.code(), Some(137), "{}", ran.stderr);
    let stopped_by = assert_stopped_by(&runtime, &ran.id, "budget.cpu_seconds", 1);
    let used = stopped_by["used_s"].as_f64().unwrap();
    assert!((1.0..5.0).contains(&used), "{stopped_by}");
    assert!(!limits_hit(&runtime, &ran.id).contains(&"wall_time".to_owned()));
    assert_no_leftovers(runtime.root(), &ran.id);
}

#[test]
fn a_cli_world_within_its_limits_is_untouched() {
    let runtime = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(
        dir.path(),
        "version: 1\nlimits:\n  wall_time: 1m\nbudget:\n  cpu_seconds: 60\n",
    );
    let ran = run_cli(
        &runtime,
        &policy,
        "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; echo done $i",
        Duration::from_secs(50),
    );
    assert!(ran.status.success(), "{}", ran.stderr);
    assert_eq!(ran.stdout.trim(), "done 20000");
    let span = world_span(&runtime, &ran.id);
    assert!(span.get("stopped_by").is_none(), "{span:#}");
    assert_eq!(span["result"], serde_json::json!({"code": 0}), "{span:#}");
    let hits = limits_hit(&runtime, &ran.id);
    assert!(
        !hits.contains(&"wall_time".to_owned()) && !hits.contains(&"budget.cpu_seconds".to_owned()),
        "{hits:?}"
    );
}

/// Writes the node's default policy into `runtime`'s config dir.
fn node_policy(runtime: &Runtime, text: &str) {
    let config = runtime.config_dir();
    fs::create_dir_all(&config).unwrap();
    fs::write(config.join("policy.yaml"), text).unwrap();
}

/// Polls `condition` every 20 ms for up to `deadline`.
#[track_caller]
fn wait_for(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(started.elapsed() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_bundle_world_past_the_node_policys_wall_time_is_stopped_by_its_detached_monitor() {
    let runtime = Runtime::new();
    node_policy(&runtime, "version: 1\nlimits:\n  wall_time: 2\n");
    let id = unique_id("limits-rt");
    let bundle = Bundle::new(&id, &["sleep", "600"]);
    let started = Instant::now();
    runtime.ok(&["create", "--bundle", bundle.path_str(), &id]);
    runtime.ok(&["start", &id]);
    // Nobody but the detached monitor stops it.
    wait_for("the world to be stopped", Duration::from_secs(30), || {
        runtime.status(&id) == "stopped"
    });
    let took = started.elapsed();
    assert!(took >= Duration::from_secs(2), "{took:?}");
    // The monitor closes the world once its last process is gone.
    let trace = runtime.world_dir(&id).join("trace.jsonl");
    wait_for("the world span", Duration::from_secs(30), || {
        fs::read_to_string(&trace).is_ok_and(|t| t.contains("\"kind\":\"world\""))
    });
    assert_stopped_by(&runtime, &id, "wall_time", 2);
    let span = world_span(&runtime, &id);
    assert_eq!(span["result"], serde_json::json!({"signal": 9}), "{span:#}");
    runtime.ok(&["delete", &id]);
    assert_no_leftovers(runtime.root(), &id);
}

#[test]
fn a_bundle_worlds_cgroup_limits_are_lowered_to_the_node_policys() {
    let runtime = Runtime::new();
    node_policy(
        &runtime,
        "version: 1\nlimits:\n  memory: 64m\n  pids: 32\n  cpus: 0.5\n",
    );
    // Asking for more, or for none: the policy's.
    let id = unique_id("limits-ceiling");
    let mut bundle = Bundle::new(&id, &["sleep", "600"]);
    bundle.edit(|c| {
        c["linux"]["resources"]["pids"] = serde_json::json!({"limit": 4096});
        c["linux"]["resources"]["memory"] = serde_json::json!({"limit": -1});
    });
    runtime.ok(&["create", "--bundle", bundle.path_str(), &id]);
    let cgroup = Cgroup::of_world(&id);
    cgroup.assert_setting(Setting::PidsLimit, 32);
    cgroup.assert_setting(Setting::MemoryLimit, 64 << 20);
    cgroup.assert_setting(Setting::CpuQuota, 50_000);
    cgroup.assert_setting(Setting::CpuPeriod, 100_000);
    runtime.ok(&["delete", "--force", &id]);
    assert_no_leftovers(runtime.root(), &id);

    // Asking for less: kept.
    let id = unique_id("limits-ceiling");
    let mut bundle = Bundle::new(&id, &["sleep", "600"]);
    bundle.edit(|c| {
        c["linux"]["resources"]["pids"] = serde_json::json!({"limit": 16});
        c["linux"]["resources"]["memory"] = serde_json::json!({"limit": 32 << 20});
        c["linux"]["resources"]["cpu"] = serde_json::json!({"quota": 20_000, "period": 100_000});
    });
    runtime.ok(&["create", "--bundle", bundle.path_str(), &id]);
    let cgroup = Cgroup::of_world(&id);
    cgroup.assert_setting(Setting::PidsLimit, 16);
    cgroup.assert_setting(Setting::MemoryLimit, 32 << 20);
    cgroup.assert_setting(Setting::CpuQuota, 20_000);
    runtime.ok(&["delete", "--force", &id]);
    assert_no_leftovers(runtime.root(), &id);
}

#[test]
fn without_limits_in_the_node_policy_a_bundle_keeps_its_own() {
    let runtime = Runtime::new();
    node_policy(&runtime, "version: 1\n");
    let id = unique_id("limits-none");
    let mut bundle = Bundle::new(&id, &["sleep", "600"]);
    bundle.edit(|c| {
        c["linux"]["resources"]["pids"] = serde_json::json!({"limit": 4096});
    });
    runtime.ok(&["create", "--bundle", bundle.path_str(), &id]);
    Cgroup::of_world(&id).assert_setting(Setting::PidsLimit, 4096);
    runtime.ok(&["delete", "--force", &id]);
    assert_no_leftovers(runtime.root(), &id);
}
