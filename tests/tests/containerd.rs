//! The shim under containerd 1.6 (Debian's), driven with `ctr`: each test
//! starts its own containerd (root, state, socket and config in a temp dir,
//! the CRI plugin off, the shim found on PATH) and stops it at the end.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use substrate_tests::{base_bundles, bin_dir, processes_mentioning, unique_id, wait_until};
use tempfile::TempDir;

const RUNTIME: &str = "io.containerd.substrate.v1";
const IMAGE: &str = "localhost/substrate-busybox:latest";

struct Containerd {
    dir: TempDir,
    daemon: Option<Child>,
}

impl Containerd {
    fn start() -> Containerd {
        let dir = tempfile::Builder::new().prefix("substrate-ctd-").tempdir_in("/tmp").unwrap();
        let d = dir.path().display();
        fs::write(
            dir.path().join("config.toml"),
            format!(
                "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{d}/c.sock\"\n[debug]\n  level = \"info\"\n"
            ),
        )
        .unwrap();
        let mut ctd = Containerd { dir, daemon: None };
        ctd.spawn_daemon();
        let import = ctd.ctr(&["images", "import", base_bundles().busybox_image().to_str().unwrap()]);
        assert!(import.status.success(), "{}", String::from_utf8_lossy(&import.stderr));
        ctd
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn_daemon(&mut self) {
        let path = format!("{}:{}", bin_dir().display(), std::env::var("PATH").unwrap_or_default());
        let log = fs::OpenOptions::new().create(true).append(true).open(self.path("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(self.path("config.toml"))
            .env("PATH", path)
            .env("SUBSTRATE_STATE_DIR", self.path("worlds"))
            .env("SUBSTRATE_ROOT", self.path("substrate"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd (Debian: containerd)");
        self.daemon = Some(daemon);
        let socket = self.path("c.sock");
        wait_until("containerd's socket", || socket.exists());
        wait_until("containerd to answer", || {
            Command::new("ctr").arg("-a").arg(&socket).arg("version").output().is_ok_and(|o| o.status.success())
        });
    }

    fn stop_daemon(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(daemon.id() as i32), nix::sys::signal::SIGTERM);
            let _ = daemon.wait();
        }
    }

    fn ctr_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("-a").arg(self.path("c.sock")).args(args).stdin(Stdio::null());
        cmd
    }

    fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_command(args).output().expect("ctr")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(out.status.success(), "ctr {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ctr run --rm` of `sh -c script`: its output.
    fn run(&self, id: &str, script: &str) -> Output {
        self.ctr(&["run", "--rm", "--runtime", RUNTIME, IMAGE, id, "sh", "-c", script])
    }

    fn run_detached(&self, id: &str, script: &str) {
        self.ok(&["run", "-d", "--runtime", RUNTIME, IMAGE, id, "sh", "-c", script]);
    }

    fn task_status(&self, id: &str) -> Option<String> {
        let list = self.ok(&["task", "ls"]);
        list.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
    }

    fn world(&self, id: &str) -> PathBuf {
        self.path("worlds").join("worlds").join(id)
    }

    fn record(&self, id: &str) -> Value {
        serde_json::from_slice(&fs::read(self.world(id).join("world.json")).unwrap()).unwrap()
    }

    fn trace(&self, id: &str) -> Vec<Value> {
        fs::read_to_string(self.world(id).join("trace.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The shim servers of this containerd (not their zygotes).
    fn shim_pids(&self) -> Vec<i32> {
        processes_mentioning("containerd-shim-substrate-v1")
            .into_iter()
            .filter(|pid| {
                !fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains("__substrate-zygote"))
            })
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|e| String::from_utf8_lossy(&e).contains(&self.path("worlds").display().to_string()))
            })
            .collect()
    }

    /// Nothing of container `id` left: mounts, runtime state, cgroups.
    fn assert_clean(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut left = Vec::new();
            let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
            left.extend(mountinfo.lines().filter(|l| l.contains(&format!("/{id}/"))).map(str::to_owned));
            let state = self.path("substrate").join("containerd/default").join(id);
            if state.exists() {
                left.push(format!("state {}", state.display()));
            }
            for hierarchy in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
                let cgroup = hierarchy.path().join("default").join(id);
                if cgroup.exists() {
                    left.push(format!("cgroup {}", cgroup.display()));
                }
            }
            if left.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "container {id} left behind: {left:#?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Tasks first (their shims exit with them), then the daemon.
        if self.daemon.is_some() {
            for line in self.ok(&["task", "ls", "-q"]).lines() {
                let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", line]);
                let _ = self.ctr(&["task", "delete", "-f", line]);
            }
            for line in self.ok(&["containers", "ls", "-q"]).lines() {
                let _ = self.ctr(&["containers", "rm", line]);
            }
        }
        self.stop_daemon();
        for pid in self.shim_pids() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let root = self.dir.path().display().to_string();
        for line in mountinfo.lines().filter(|l| l.contains(&root)) {
            if let Some(target) = line.split_whitespace().nth(4) {
                let _ = nix::mount::umount2(Path::new(target), nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

#[test]
fn ctr_run_rm_gives_the_exit_code_the_output_and_a_recorded_world() {
    let ctd = Containerd::start();
    let id = unique_id("ctr-run");
    let out = ctd.run(&id, "echo hello from a world; echo x > /root/made; exit 3");
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from a world\n");
    let record = ctd.record(&id);
    assert_eq!(record["exit"]["code"], 3, "{record}");
    // containerd's snapshot is an overlay: its upper layer is diffed.
    assert_eq!(record["upper"]["owner"], "adopted", "{record}");
    assert_eq!(record["diff"]["added"], 1, "{record}");
    let trace = ctd.trace(&id);
    let world = trace.iter().find(|s| s["kind"] == "world").expect("the world span");
    assert_eq!(world["result"]["code"], 3);
    // The image is a static busybox: the kernel's exec spans, no preload.
    assert!(trace.iter().any(|s| s["kind"] == "exec" && s["world_pid"] == 1 && s["result"]["code"] == 3), "{trace:#?}");
    ctd.assert_clean(&id);
    assert!(ctd.ok(&["task", "ls", "-q"]).trim().is_empty());
}

#[test]
fn a_detached_task_takes_exec_ps_pause_resume_kill_and_publishes_its_events() {
    let ctd = Containerd::start();
    let id = unique_id("ctr-task");
    let mut events = ctd
        .ctr_command(&["events"])
        .stdout(fs::File::create(ctd.path("events.txt")).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    ctd.run_detached(&id, "trap 'exit 143' TERM; while :; do sleep 0.05; done");
    assert_eq!(ctd.task_status(&id).as_deref(), Some("RUNNING"));

    let exec = ctd.ctr(&["task", "exec", "--exec-id", "e1", &id, "sh", "-c", "echo in the world; exit 4"]);
    assert_eq!(exec.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&exec.stdout), "in the world\n");

    let ps = ctd.ok(&["task", "ps", &id]);
    assert!(ps.lines().count() >= 2, "{ps}");

    ctd.ok(&["task", "pause", &id]);
    assert_eq!(ctd.task_status(&id).as_deref(), Some("PAUSED"));
    ctd.ok(&["task", "resume", &id]);
    assert_eq!(ctd.task_status(&id).as_deref(), Some("RUNNING"));

    let metrics = ctd.ok(&["task", "metrics", &id]);
    assert!(metrics.contains("memory") || metrics.contains("cpu"), "{metrics}");

    ctd.ok(&["task", "kill", &id]);
    wait_until("the task to stop", || ctd.task_status(&id).as_deref() == Some("STOPPED"));
    let delete = ctd.ctr(&["task", "delete", &id]);
    assert!(delete.status.success());
    assert!(String::from_utf8_lossy(&delete.stderr).contains("exit code 143"), "{}", String::from_utf8_lossy(&delete.stderr));
    ctd.ok(&["containers", "rm", &id]);
    ctd.assert_clean(&id);
    // The exec is in the world's trace too.
    let trace = ctd.trace(&id);
    assert!(trace.iter().any(|s| s["kind"] == "exec" && s["argv"][2] == "echo in the world; exit 4"), "{trace:#?}");

    std::thread::sleep(Duration::from_millis(300));
    let _ = events.kill();
    let _ = events.wait();
    let seen = fs::read_to_string(ctd.path("events.txt")).unwrap();
    for topic in [
        "/tasks/create",
        "/tasks/start",
        "/tasks/exec-added",
        "/tasks/exec-started",
        "/tasks/paused",
        "/tasks/resumed",
        "/tasks/exit",
        "/tasks/delete",
    ] {
        assert!(seen.contains(topic), "no {topic} in:\n{seen}");
    }
}

#[test]
fn a_terminal_task_gets_a_tty() {
    let ctd = Containerd::start();
    let id = unique_id("ctr-tty");
    // ctr -t needs a terminal of its own: script(1) gives it one.
    let command = format!(
        "ctr -a {} run -t --rm --runtime {RUNTIME} {IMAGE} {id} sh -c 'tty; exit 5'",
        ctd.path("c.sock").display()
    );
    let out = Command::new("script").args(["-qec", &command, "/dev/null"]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("/dev/pts/"), "{}", String::from_utf8_lossy(&out.stdout));
    ctd.assert_clean(&id);
}

#[test]
fn many_containers_at_once() {
    let ctd = Containerd::start();
    let ids: Vec<String> = (0..8).map(|_| unique_id("ctr-many")).collect();
    std::thread::scope(|s| {
        for (i, id) in ids.iter().enumerate() {
            let ctd = &ctd;
            s.spawn(move || {
                let out = ctd.run(id, &format!("echo {i}; exit {i}"));
                assert_eq!(out.status.code(), Some(i as i32), "{}", String::from_utf8_lossy(&out.stderr));
                assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), i.to_string());
            });
        }
    });
    for id in &ids {
        ctd.assert_clean(id);
    }
}

#[test]
fn a_container_outlives_a_containerd_restart_and_its_exit_is_seen() {
    let mut ctd = Containerd::start();
    let id = unique_id("ctr-restart");
    ctd.run_detached(&id, "while [ ! -e /tmp/go ]; do sleep 0.05; done; echo done; exit 7");
    ctd.stop_daemon();
    ctd.spawn_daemon();
    assert_eq!(ctd.task_status(&id).as_deref(), Some("RUNNING"), "after the restart");
    let exec = ctd.ctr(&["task", "exec", "--exec-id", "go", &id, "touch", "/tmp/go"]);
    assert!(exec.status.success(), "{}", String::from_utf8_lossy(&exec.stderr));
    wait_until("the exit to reach the new containerd", || ctd.task_status(&id).as_deref() == Some("STOPPED"));
    let delete = ctd.ctr(&["task", "delete", &id]);
    assert!(String::from_utf8_lossy(&delete.stderr).contains("exit code 7"), "{}", String::from_utf8_lossy(&delete.stderr));
    ctd.ok(&["containers", "rm", &id]);
    ctd.assert_clean(&id);
}

#[test]
fn a_killed_shim_leaves_an_exited_task_and_nothing_behind() {
    let ctd = Containerd::start();
    let id = unique_id("ctr-shimkill");
    ctd.run_detached(&id, "sleep 300");
    let shims = ctd.shim_pids();
    assert_eq!(shims.len(), 1, "{shims:?}");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shims[0]), nix::sys::signal::SIGKILL).unwrap();
    wait_until("containerd to see the task gone", || ctd.task_status(&id).as_deref() != Some("RUNNING"));
    let _ = ctd.ctr(&["task", "delete", &id]);
    ctd.ok(&["containers", "rm", &id]);
    ctd.assert_clean(&id);
    assert!(processes_mentioning("sleep 300").iter().all(|pid| {
        // Only ours would be in the world's pid namespace with that cmdline;
        // none may survive its shim.
        !fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default().contains(&id)
    }));
}

#[test]
fn a_container_that_cannot_start_is_a_clear_error_and_leaves_nothing() {
    let ctd = Containerd::start();
    let id = unique_id("ctr-bad");
    let out = ctd.ctr(&["run", "--rm", "--runtime", RUNTIME, IMAGE, &id, "/no/such/program"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/no/such/program"), "{stderr}");
    let _ = ctd.ctr(&["containers", "rm", &id]);
    ctd.assert_clean(&id);
}
