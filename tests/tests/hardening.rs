//! What a world writes stays out of every other host user's reach: the
//! state dirs the runtime makes are 0700 all the way down, so a setuid
//! binary planted in a world's upper layer cannot be run by an unprivileged
//! host user, kept or running.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use substrate_tests::{bin, unique_id, wait_until, Bundle};

/// A state dir and runtime root the runtime has to make itself (as
/// `/var/lib/substrate` and `/run/substrate` on a fresh host), under a temp
/// dir that is itself reachable by everyone.
struct FreshDirs {
    _base: tempfile::TempDir,
    state: PathBuf,
    root: PathBuf,
}

impl FreshDirs {
    fn new() -> FreshDirs {
        let base = tempfile::Builder::new()
            .prefix("substrate-fresh-")
            .tempdir()
            .unwrap();
        fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).unwrap();
        FreshDirs {
            state: base.path().join("var-lib-substrate"),
            root: base.path().join("run-substrate"),
            _base: base,
        }
    }

    fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("substrate-cli"));
        cmd.env("SUBSTRATE_STATE_DIR", &self.state)
            .env("NO_COLOR", "1")
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    fn runtime(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("substrate-runtime"));
        cmd.env("SUBSTRATE_STATE_DIR", &self.state)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// The world's upper layer, as its record names it.
    fn upper(&self, id: &str) -> PathBuf {
        let record = self.state.join("worlds").join(id).join("world.json");
        let record: serde_json::Value =
            serde_json::from_slice(&fs::read(&record).unwrap_or_default()).unwrap_or_default();
        PathBuf::from(record["upper"]["path"].as_str().unwrap_or_default())
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Runs `path -p -c id` as nobody, as an unprivileged host user would:
/// from a shell that already is nobody. (`setpriv --reuid … -- PATH` would
/// not do: setpriv still holds root's capabilities when it execs PATH, so
/// the path is looked up as root.)
fn run_as_nobody(path: &Path) -> Output {
    Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ])
        .args(["sh", "-c", r#""$0" -p -c 'id -u; id -ru'"#])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("setpriv")
}

fn assert_not_root_for_nobody(planted: &Path) {
    let out = run_as_nobody(planted);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && !stdout.lines().any(|l| l.trim() == "0"),
        "an unprivileged host user ran {} ({}): {stdout}{}",
        planted.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "refused for the right reason: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_private(dirs: &[&Path]) {
    for dir in dirs {
        assert_eq!(mode(dir), 0o700, "{} must be 0700", dir.display());
    }
}

#[test]
fn a_setuid_file_planted_by_a_kept_world_is_out_of_reach() {
    let dirs = FreshDirs::new();
    let id = unique_id("setuid-kept");
    let out = dirs
        .cli(&[
            "run",
            "--keep",
            "--name",
            &id,
            "--",
            "sh",
            "-c",
            "cp /bin/bash /tmp/rsh && chmod 4755 /tmp/rsh",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let planted = dirs.upper(&id).join("tmp/rsh");
    assert_eq!(mode(&planted), 0o4755, "the world planted a setuid copy");
    assert_private(&[
        &dirs.state,
        &dirs.state.join("worlds"),
        &dirs.state.join("worlds").join(&id),
        &dirs.root,
    ]);
    assert_not_root_for_nobody(&planted);
    let rm = dirs.cli(&["rm", &id]).output().unwrap();
    assert!(rm.status.success());
}

#[test]
fn a_setuid_file_planted_by_a_running_world_is_out_of_reach() {
    let dirs = FreshDirs::new();
    let id = unique_id("setuid-live");
    let mut world = dirs
        .cli(&[
            "run",
            "--name",
            &id,
            "--",
            "sh",
            "-c",
            "cp /bin/bash /tmp/rsh && chmod 4755 /tmp/rsh && exec sleep 300",
        ])
        .spawn()
        .unwrap();
    let mut planted = PathBuf::new();
    wait_until("the planted file", || {
        planted = dirs.upper(&id).join("tmp/rsh");
        fs::metadata(&planted).is_ok_and(|m| m.permissions().mode() & 0o7777 == 0o4755)
    });
    assert_not_root_for_nobody(&planted);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(world.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = world.wait();
}

/// The runtime CLI's state root and world store are private too.
#[test]
fn the_runtime_path_makes_private_state_dirs() {
    let dirs = FreshDirs::new();
    let id = unique_id("private-rt");
    let bundle = Bundle::new(&id, &["true"]);
    let out = dirs
        .runtime(&["run", "--bundle", bundle.path_str(), &id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_private(&[&dirs.state, &dirs.state.join("worlds"), &dirs.root]);
}

/// `substrate-cli gc` removes old finished worlds' records by age and count,
/// never a running world's, and says what it removed.
#[test]
fn gc_removes_old_finished_worlds_only() {
    let rt = substrate_tests::Runtime::new();
    let names: Vec<String> = (0..3).map(|_| unique_id("gc")).collect();
    for name in &names {
        rt.cli_run_ok(name, "echo x > /tmp/x");
    }
    let running = unique_id("gc-live");
    let mut live = rt
        .cli(&["run", "--name", &running, "--", "sleep", "300"])
        .spawn()
        .unwrap();
    rt.wait_running(&running);

    let nothing = rt.cli(&["gc"]).output().unwrap();
    assert!(!nothing.status.success(), "gc needs a rule");
    let young = rt.cli(&["gc", "--older-than", "1h"]).output().unwrap();
    assert!(young.status.success());
    assert!(young.stdout.is_empty(), "nothing is an hour old");
    let dry = rt
        .cli(&["gc", "--keep-last", "1", "--dry-run"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&dry.stdout).lines().count(),
        2,
        "dry run names the two oldest"
    );
    assert!(names.iter().all(|n| rt.world_dir(n).exists()));

    let gc = rt.cli(&["gc", "--keep-last", "1"]).output().unwrap();
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    let removed: Vec<String> = String::from_utf8_lossy(&gc.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(removed, [names[1].clone(), names[0].clone()]);
    assert!(!rt.world_dir(&names[0]).exists() && !rt.world_dir(&names[1]).exists());
    assert!(rt.world_dir(&names[2]).exists(), "the newest is kept");

    let all = rt.cli(&["gc", "--older-than", "0s"]).output().unwrap();
    assert!(all.status.success());
    assert!(!rt.world_dir(&names[2]).exists());
    assert!(
        rt.world_dir(&running).exists(),
        "a running world is never removed"
    );
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(live.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = live.wait();
}

/// A world that runs into its limits fails inside itself — EAGAIN past
/// pids, an OOM kill past memory, ENOSPC past disk — the host is not
/// touched, and the record says which limit was hit.
#[test]
fn limits_hit_fail_inside_the_world_and_are_recorded() {
    let rt = substrate_tests::Runtime::new();
    let hits = |name: &str| -> Vec<String> {
        rt.record(name)["limits_hit"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|h| h["limit"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };

    let pids = unique_id("lim-pids");
    let out = rt
        .cli(&[
            "run",
            "--pids",
            "16",
            "--name",
            &pids,
            "--",
            "sh",
            "-c",
            "for i in $(seq 40); do sleep 5 & done 2>/dev/null; echo forked",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("limits hit: pids"),
        "{out:?}"
    );
    assert_eq!(hits(&pids), ["pids"]);

    let memory = unique_id("lim-mem");
    let out = rt
        .cli(&[
            "run",
            "--memory",
            "32m",
            "--name",
            &memory,
            "--",
            "python3",
            "-c",
            "b = bytearray(256 << 20); print(len(b))",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(137), "OOM-killed inside: {out:?}");
    assert!(
        hits(&memory).contains(&"memory".to_owned()),
        "{:?}",
        hits(&memory)
    );

    let disk = unique_id("lim-disk");
    let out = rt
        .cli(&[
            "run",
            "--disk",
            "32m",
            "--name",
            &disk,
            "--",
            "sh",
            "-c",
            "dd if=/dev/zero of=/tmp/fill bs=1M count=64; echo dd=$?",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(stdout.contains("dd=1"), "{stdout}");
    assert!(
        hits(&disk).contains(&"disk".to_owned()),
        "{:?}",
        hits(&disk)
    );
    for name in [&pids, &memory, &disk] {
        substrate_tests::assert_no_leftovers(rt.root(), name);
    }
}

/// On the runtime path (with Substrate's overlay), `delete` removes the
/// upper layer Substrate made — the record and the diff stay — and a world
/// whose process never started keeps no record at all.
#[test]
fn delete_removes_the_upper_it_made_and_never_started_worlds_leave_nothing() {
    let rt = substrate_tests::Runtime::overlay();
    let id = unique_id("upper-gone");
    let mut bundle = Bundle::new(
        &id,
        &[
            "sh",
            "-c",
            "dd if=/dev/zero of=/big bs=1M count=8 2>/dev/null",
        ],
    );
    bundle.edit(|c| c["root"]["readonly"] = false.into());
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    let upper = PathBuf::from(rt.record(&id)["upper"]["path"].as_str().unwrap());
    rt.ok(&["start", &id]);
    substrate_tests::wait_until("the world to stop", || rt.status(&id) == "stopped");
    assert!(upper.join("big").exists(), "the world wrote into its upper");
    rt.ok(&["delete", &id]);
    let record = rt.record(&id);
    assert_eq!(record["diff"]["added"], 1, "{record}");
    assert_eq!(record["upper"]["kept"], false, "{record}");
    assert!(!upper.exists(), "the upper's files are gone");
    assert!(rt.world_dir(&id).join("diff.json").exists());

    let never = unique_id("never-started");
    let bundle = Bundle::new(&never, &["true"]);
    rt.ok(&["create", "--bundle", bundle.path_str(), &never]);
    assert!(rt.world_dir(&never).join("world.json").exists());
    rt.ok(&["delete", &never]);
    assert!(!rt.world_dir(&never).exists(), "nothing ran: no record");
    substrate_tests::assert_no_leftovers(rt.root(), &never);
}
