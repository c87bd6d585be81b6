//! podman drives `substrate-runtime` unchanged: run, exec, rm -f, on the
//! locally built busybox image, with podman's storage in a temp dir so the
//! test touches nothing of the host's podman.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use substrate_tests::{base_bundles, bin, processes_mentioning};
use tempfile::TempDir;

const IMAGE: &str = "localhost/substrate-busybox:latest";

struct Podman {
    dir: TempDir,
    runtime: std::path::PathBuf,
}

impl Podman {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("substrate-podman-")
            .tempdir()
            .unwrap();
        // podman does not pass its environment down to the OCI runtime, so
        // the test's world store is set by a wrapper, as an operator would.
        let runtime = dir.path().join("substrate-runtime");
        let wrapper = format!(
            "#!/bin/sh\nSUBSTRATE_STATE_DIR={} exec {} \"$@\"\n",
            dir.path().join("state").display(),
            bin("substrate-runtime").display()
        );
        std::fs::write(&runtime, wrapper).unwrap();
        std::fs::set_permissions(&runtime, PermissionsExt::from_mode(0o755)).unwrap();
        let podman = Podman { dir, runtime };
        let out = podman.run(&[
            "load",
            "--input",
            base_bundles().busybox_image().to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "podman load: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        podman
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(d.join("storage"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .arg("--storage-driver")
            .arg("overlay")
            .arg("--cgroup-manager")
            .arg("cgroupfs")
            .arg("--events-backend")
            .arg("file")
            .arg("--runtime")
            .arg(&self.runtime)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .output()
            .expect("podman is installed (make deps)")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "podman {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .cmd(&["rm", "--all", "--force", "--time", "0"])
            .output();
    }
}

/// podman's defaults ask for rlimits above this host's hard limits, which
/// only CAP_SYS_RESOURCE could grant; every runtime (runc too) needs these.
const RUN: &[&str] = &[
    "run",
    "--network",
    "none",
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
];

fn args<'a>(prefix: &'a [&'a str], rest: &'a [&'a str]) -> Vec<&'a str> {
    prefix.iter().chain(rest).copied().collect()
}

#[test]
fn podman_runs_execs_into_and_removes_containers() {
    let podman = Podman::new();

    // run --rm: output and exit status come back through podman and conmon.
    let out = podman.run(&args(
        RUN,
        &[
            "--rm",
            IMAGE,
            "sh",
            "-c",
            "echo hello from $(hostname -s | wc -c) chars; exit 3",
        ],
    ));
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("hello from"),
        "{out:?}"
    );

    // A detached container, exec into it (plain and with a tty), then rm -f.
    let name = format!("substrate-podman-{}", std::process::id());
    podman.ok(&args(
        RUN,
        &["--detach", "--name", &name, IMAGE, "sleep", "1000"],
    ));
    let inspect = podman.ok(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.OCIRuntime}}",
        &name,
    ]);
    assert!(inspect.starts_with("running"), "{inspect}");
    assert!(
        inspect.contains("substrate-runtime"),
        "podman used our runtime: {inspect}"
    );

    let out = podman.run(&[
        "exec",
        &name,
        "sh",
        "-c",
        "echo exec $((40 + 2)); cat /proc/1/cmdline | tr '\\0' ' '; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "exec 42\nsleep 1000 ");

    let out = podman.ok(&["exec", "--tty", &name, "tty"]);
    assert!(out.trim().starts_with("/dev/pts/"), "{out}");

    let top = podman.ok(&["top", &name, "pid", "args"]);
    assert!(top.contains("sleep 1000"), "{top}");

    podman.ok(&["pause", &name]);
    assert!(podman
        .ok(&["inspect", "--format", "{{.State.Status}}", &name])
        .starts_with("paused"));
    podman.ok(&["unpause", &name]);

    let container_id = podman
        .ok(&["inspect", "--format", "{{.Id}}", &name])
        .trim()
        .to_owned();
    podman.ok(&["rm", "--force", "--time", "0", &name]);
    // podman's rootfs is its own overlay: the world adopted its upper layer
    // (`podman diff` keeps working) and recorded the diff at delete.
    let record_path = podman
        .dir
        .path()
        .join("state/worlds")
        .join(&container_id)
        .join("world.json");
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(&record_path).unwrap_or_else(|e| panic!("{}: {e}", record_path.display())),
    )
    .unwrap();
    assert_eq!(record["upper"]["owner"], "adopted", "{record}");
    assert!(record["diff"].is_object(), "{record}");
    assert_eq!(
        podman.ok(&["ps", "--all", "--quiet"]).trim(),
        "",
        "no container is left"
    );
    assert!(
        processes_mentioning("sleep 1000")
            .iter()
            .all(|pid| !is_in_podman_run_dir(*pid, podman.dir.path())),
        "the container's processes are gone"
    );
}

/// Whether a process belongs to this test's podman (its root is under the
/// test's storage dir), so parallel tests' `sleep 1000` are not counted.
fn is_in_podman_run_dir(pid: i32, dir: &Path) -> bool {
    std::fs::read_link(format!("/proc/{pid}/root")).is_ok_and(|root| root.starts_with(dir))
}
