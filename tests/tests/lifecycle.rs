//! The container lifecycle through `substrate-runtime`'s runc CLI, on the
//! busybox bundle and the real kernel.

use std::fs;
use std::io::Write;
use std::process::Stdio;

use substrate_tests::cgroup::{Cgroup, Setting};
use substrate_tests::{assert_no_leftovers, unique_id, wait_until, Bundle, Runtime};

#[test]
fn create_start_exit_delete_walks_through_every_status() {
    let rt = Runtime::new();
    let id = unique_id("life");
    // The init waits for a file that the test creates through /proc/<pid>/root,
    // so "running" is observed before it exits on its own.
    let bundle = Bundle::new(
        &id,
        &[
            "sh",
            "-c",
            "while [ ! -e /tmp/go ]; do sleep 0.01; done; exit 3",
        ],
    );
    let pid_file = bundle.path().join("init.pid");

    rt.ok(&[
        "create",
        "--bundle",
        bundle.path_str(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ]);
    let state = rt.state(&id);
    assert_eq!(state["status"], "created");
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["bundle"], bundle.path_str());
    assert_eq!(state["ociVersion"], "1.2.0");
    let pid = state["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(
        fs::read_to_string(&pid_file).unwrap().trim(),
        pid.to_string()
    );

    rt.ok(&["start", &id]);
    assert_eq!(rt.status(&id), "running");

    fs::write(format!("/proc/{pid}/root/tmp/go"), "").unwrap();
    rt.wait_status(&id, "stopped");
    assert_eq!(
        rt.state(&id)["pid"],
        0,
        "a stopped world reports pid 0, as runc"
    );

    rt.ok(&["delete", &id]);
    assert!(rt.run(&["state", &id]).status.code() == Some(1));
    assert_no_leftovers(rt.root(), &id);
}

#[test]
fn run_propagates_exit_codes_and_signals() {
    let rt = Runtime::new();
    for (script, expected) in [
        ("exit 0", 0),
        ("exit 42", 42),
        ("kill -9 $$", 137),
        ("kill -TERM $$", 143),
    ] {
        let id = unique_id("exit");
        // `kill $$` from pid 1 of a pid namespace is ignored without a
        // handler, so the shell runs as a child of the init.
        let bundle = Bundle::new(&id, &["sh", "-c", &format!("sh -c '{script}'; exit $?")]);
        let out = rt.run(&["run", "--bundle", bundle.path_str(), &id]);
        assert_eq!(
            out.status.code(),
            Some(expected),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_no_leftovers(rt.root(), &id);
    }
}

#[test]
fn run_connects_stdin_stdout_and_stderr() {
    let rt = Runtime::new();
    let id = unique_id("stdio");
    let bundle = Bundle::new(
        &id,
        &[
            "sh",
            "-c",
            "read line; echo \"out:$line\"; echo \"err:$line\" >&2",
        ],
    );
    let mut child = rt
        .cmd(&["run", "--bundle", bundle.path_str(), &id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"hello world\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out:hello world\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err:hello world\n");
    assert_no_leftovers(rt.root(), &id);
}

#[test]
fn run_forwards_signals_to_the_init() {
    let rt = Runtime::new();
    let id = unique_id("fwd");
    let bundle = Bundle::new(
        &id,
        &[
            "sh",
            "-c",
            "trap 'exit 7' TERM; touch /tmp/ready; while :; do sleep 0.01; done",
        ],
    );
    let mut child = rt
        .cmd(&["run", "--bundle", bundle.path_str(), &id])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    rt.wait_running(&id);
    let pid = rt.pid(&id);
    wait_until("the trap", || {
        fs::metadata(format!("/proc/{pid}/root/tmp/ready")).is_ok()
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(7));
    assert_no_leftovers(rt.root(), &id);
}

fn trapping_init() -> [&'static str; 3] {
    [
        "sh",
        "-c",
        // /tmp/ready says the traps are set: a signal before that would hit
        // a pid 1 without handlers, which ignores it.
        "trap 'touch /tmp/usr1' USR1; trap 'exit 0' TERM; touch /tmp/ready; while :; do sleep 0.01; done",
    ]
}

#[test]
fn kill_takes_signal_names_and_numbers() {
    let rt = Runtime::new();
    for (handled, fatal) in [
        ("USR1", "TERM"),
        ("SIGUSR1", "15"),
        ("10", "KILL"),
        ("usr1", "9"),
        ("SIGUSR1", "SIGKILL"),
    ] {
        let id = unique_id("kill");
        let bundle = Bundle::new(&id, &trapping_init());
        rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
        rt.ok(&["start", &id]);
        let pid = rt.pid(&id);
        wait_until("the traps", || {
            fs::metadata(format!("/proc/{pid}/root/tmp/ready")).is_ok()
        });
        rt.ok(&["kill", &id, handled]);
        wait_until("the USR1 trap", || {
            fs::metadata(format!("/proc/{pid}/root/tmp/usr1")).is_ok()
        });
        assert_eq!(
            rt.status(&id),
            "running",
            "a handled signal leaves the world running"
        );
        rt.ok(&["kill", &id, fatal]);
        rt.wait_status(&id, "stopped");
        rt.ok(&["delete", &id]);
        assert_no_leftovers(rt.root(), &id);
    }
}

#[test]
fn kill_all_reaches_every_process() {
    let rt = Runtime::new();
    let id = unique_id("killall");
    let bundle = Bundle::new(&id, &["sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    rt.ok(&["start", &id]);
    wait_until("three processes", || {
        let pids: Vec<i64> =
            serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
        pids.len() == 3
    });
    rt.ok(&["kill", "--all", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    rt.ok(&["delete", &id]);
    assert_no_leftovers(rt.root(), &id);
}

#[test]
fn exec_runs_in_the_world_with_args_env_cwd_and_process_file() {
    let rt = Runtime::new();
    let id = unique_id("exec");
    let bundle = Bundle::new(&id, &["sleep", "1000"]);
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    rt.ok(&["start", &id]);

    let out = rt.run(&[
        "exec",
        "--env",
        "FOO=bar",
        "--cwd",
        "/etc",
        &id,
        "sh",
        "-c",
        "echo $FOO; pwd; hostname; exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "bar\n/etc\nsubstrate\n"
    );

    // The exec'd process sees the world's pid namespace: the init is pid 1.
    let out = rt.ok(&["exec", &id, "cat", "/proc/1/cmdline"]);
    assert_eq!(out, "sleep\x001000\x00");

    let process = bundle.path().join("process.json");
    fs::write(
        &process,
        r#"{"args":["sh","-c","echo from-file $X; id -u"],"env":["X=1","PATH=/bin"],"cwd":"/","user":{"uid":65534,"gid":65534}}"#,
    )
    .unwrap();
    let out = rt.ok(&["exec", "--process", process.to_str().unwrap(), &id]);
    assert_eq!(out, "from-file 1\n65534\n");

    let pid_file = bundle.path().join("exec.pid");
    rt.ok(&[
        "exec",
        "--detach",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ]);
    let exec_pid: i32 = fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pids: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(pids.contains(&exec_pid), "{exec_pid} in {pids:?}");

    rt.ok(&["delete", "--force", &id]);
    assert_no_leftovers(rt.root(), &id);
}

#[test]
fn exec_into_a_stopped_world_is_refused() {
    let rt = Runtime::new();
    let id = unique_id("execstop");
    let bundle = Bundle::new(&id, &["true"]);
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped");
    let err = rt.fails(&["exec", &id, "true"]);
    assert!(err.contains("is stopped: cannot exec into it"), "{err}");
    rt.ok(&["delete", &id]);
    assert_no_leftovers(rt.root(), &id);
}

#[test]
fn pause_freezes_and_resume_thaws() {
    let rt = Runtime::new();
    let id = unique_id("pause");
    let bundle = Bundle::new(
        &id,
        &[
            "sh",
            "-c",
            "while :; do echo tick >> /tmp/ticks; sleep 0.01; done",
        ],
    );
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    rt.ok(&["start", &id]);
    let pid = rt.pid(&id);
    let ticks = || {
        fs::read_to_string(format!("/proc/{pid}/root/tmp/ticks"))
            .map(|s| s.len())
            .unwrap_or(0)
    };
    wait_until("ticks", || ticks() > 0);

    rt.ok(&["pause", &id]);
    assert_eq!(rt.status(&id), "paused");
    assert!(
        Cgroup::of_world(&id)
            .frozen()
            .expect("the world's freezer state"),
        "the world's cgroup is frozen"
    );
    let frozen_at = ticks();
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(ticks(), frozen_at, "nothing runs while paused");
    let err = rt.fails(&["pause", &id]);
    assert!(err.contains("is paused: cannot pause it"), "{err}");

    rt.ok(&["resume", &id]);
    assert_eq!(rt.status(&id), "running");
    assert!(!Cgroup::of_world(&id).frozen().unwrap(), "thawed");
    wait_until("ticks after resume", || ticks() > frozen_at);

    rt.ok(&["delete", "--force", &id]);
    assert_no_leftovers(rt.root(), &id);
}

#[test]
fn ps_lists_the_worlds_processes() {
    let rt = Runtime::new();
    let id = unique_id("ps");
    let bundle = Bundle::new(&id, &["sleep", "1000"]);
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    let pid = rt.pid(&id);
    let pids: Vec<i32> = serde_json::from_str(&rt.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(pids, vec![pid]);
    rt.ok(&["start", &id]);
    let table = rt.ok(&["ps", &id]);
    let mut lines = table.lines();
    assert!(lines.next().unwrap().contains("PID"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "{table}");
    assert!(
        rows[0].contains(&pid.to_string()) && rows[0].contains("sleep 1000"),
        "{table}"
    );
    rt.ok(&["delete", "--force", &id]);
    assert_no_leftovers(rt.root(), &id);
}

#[test]
fn many_worlds_side_by_side() {
    let rt = Runtime::new();
    let ids: Vec<String> = (0..8).map(|_| unique_id("many")).collect();
    let bundles: Vec<Bundle> = ids
        .iter()
        .map(|id| Bundle::new(id, &["sleep", "1000"]))
        .collect();
    std::thread::scope(|scope| {
        for (id, bundle) in ids.iter().zip(&bundles) {
            let rt = &rt;
            scope.spawn(move || {
                rt.ok(&["create", "--bundle", bundle.path_str(), id]);
                rt.ok(&["start", id]);
            });
        }
    });
    let listed = rt.ok(&["list", "-q"]);
    let mut listed: Vec<&str> = listed.lines().collect();
    listed.sort();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort();
    assert_eq!(listed, expected);

    let json: serde_json::Value =
        serde_json::from_str(&rt.ok(&["list", "--format", "json"])).unwrap();
    let pids: std::collections::BTreeSet<i64> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["pid"].as_i64().unwrap())
        .collect();
    assert_eq!(pids.len(), ids.len(), "every world has its own init");
    assert!(json
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["status"] == "running"));

    let table = rt.ok(&["list"]);
    assert!(table.starts_with("ID"), "{table}");
    assert_eq!(table.lines().count(), ids.len() + 1);

    std::thread::scope(|scope| {
        for id in &ids {
            let rt = &rt;
            scope.spawn(move || rt.ok(&["delete", "--force", id]));
        }
    });
    for id in &ids {
        assert_no_leftovers(rt.root(), id);
    }
}

#[test]
fn delete_refuses_a_running_world_without_force() {
    let rt = Runtime::new();
    let id = unique_id("delrun");
    let bundle = Bundle::new(&id, &["sleep", "1000"]);
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    rt.ok(&["start", &id]);
    let err = rt.fails(&["delete", &id]);
    assert!(
        err.contains("is running: cannot delete it without --force"),
        "{err}"
    );
    assert_eq!(rt.status(&id), "running");
    rt.ok(&["delete", "--force", &id]);
    assert_no_leftovers(rt.root(), &id);
}

#[test]
fn a_created_world_can_be_deleted() {
    let rt = Runtime::new();
    let id = unique_id("delcreated");
    let bundle = Bundle::new(&id, &["sleep", "1000"]);
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    rt.ok(&["delete", &id]);
    assert_no_leftovers(rt.root(), &id);
}

#[test]
fn update_changes_cgroup_limits() {
    let rt = Runtime::new();
    let id = unique_id("update");
    let bundle = Bundle::new(&id, &["sleep", "1000"]);
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    rt.ok(&["start", &id]);
    let cgroup = Cgroup::of_world(&id);
    rt.ok(&["update", "--memory", "67108864", "--pids-limit", "50", &id]);
    cgroup.assert_setting(Setting::MemoryLimit, 67108864);
    cgroup.assert_setting(Setting::PidsLimit, 50);

    let resources = bundle.path().join("resources.json");
    fs::write(
        &resources,
        r#"{"memory":{"limit":33554432},"cpu":{"shares":512,"quota":20000,"period":100000}}"#,
    )
    .unwrap();
    rt.ok(&["update", "--resources", resources.to_str().unwrap(), &id]);
    cgroup.assert_setting(Setting::MemoryLimit, 33554432);
    cgroup.assert_setting(Setting::CpuShares, 512);
    cgroup.assert_setting(Setting::CpuQuota, 20000);
    cgroup.assert_setting(Setting::CpuPeriod, 100000);
    // What update leaves out stays as it was.
    cgroup.assert_setting(Setting::PidsLimit, 50);

    let events = rt.ok(&["events", "--stats", &id]);
    let event: serde_json::Value = serde_json::from_str(events.trim()).unwrap();
    assert_eq!(event["type"], "stats");
    assert_eq!(event["id"], id.as_str());
    assert!(event["data"]["memory"].is_object(), "{event}");

    rt.ok(&["delete", "--force", &id]);
    assert_no_leftovers(rt.root(), &id);
}

#[test]
fn spec_and_features_describe_the_runtime() {
    let rt = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    rt.ok(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    let spec: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert!(spec["ociVersion"].as_str().unwrap().starts_with("1."));
    let err = rt.fails(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    assert!(err.contains("config.json"), "refuses to overwrite: {err}");

    let features: serde_json::Value = serde_json::from_str(&rt.ok(&["features"])).unwrap();
    assert_eq!(features["ociVersionMax"], "1.2.0");
    assert_eq!(features["linux"]["cgroup"]["v1"], true);
    assert!(features["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h == "createRuntime"));
}
