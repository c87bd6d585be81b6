//! `kill -9` of the runtime in the middle of `create` leaves nothing that a
//! following `delete --force` cannot clean. Each kill lands at a known phase
//! of `create`, checked before the kill: the runtime waits there (at a fail
//! point set to `pause`, or in a hook of the bundle that does not return),
//! and the test sees both what it has made so far and that it waits.

use std::fs;
use std::path::Path;
use std::process::{Child, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use substrate_tests::{assert_no_leftovers, processes_mentioning, unique_id, Bundle, Runtime};

/// Where `create` is when it is killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The world's dir and record are written; nothing else exists.
    Recorded,
    /// The overlay is mounted (in the runtime's private mount namespace).
    Mounted,
    /// libcontainer is half-way: the cgroup and the init process exist, the
    /// init waits in its namespaces for the createRuntime hook to return.
    InHook,
    /// libcontainer has built the container: its init waits for `start`.
    Built,
    /// The world's detached monitor is subscribed.
    Monitored,
}

impl Phase {
    const ALL: [Phase; 5] = [
        Phase::Recorded,
        Phase::Mounted,
        Phase::InHook,
        Phase::Built,
        Phase::Monitored,
    ];

    /// The fail point `create` pauses at, `None` for the hook.
    fn fail_point(self) -> Option<&'static str> {
        match self {
            Phase::Recorded => Some("world.create.recorded"),
            Phase::Mounted => Some("world.create.mounted"),
            Phase::InHook => None,
            Phase::Built => Some("world.create"),
            Phase::Monitored => Some("run.monitor"),
        }
    }
}

/// Whether `pid` sleeps in futex(2). The runtime is single-threaded and
/// waits with a futex only in a fail point's `pause`.
fn in_futex_wait(pid: i32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/syscall"))
        .is_ok_and(|s| s.split_whitespace().next() == Some(&nix::libc::SYS_futex.to_string()))
}

/// Whether the mount namespace of `pid` has an overlay whose upper is `upper`.
fn has_overlay(pid: i32, upper: &Path) -> bool {
    let option = format!("upperdir={}", upper.display());
    fs::read_to_string(format!("/proc/{pid}/mountinfo")).is_ok_and(|m| {
        m.lines()
            .any(|l| l.contains(" - overlay ") && l.split([' ', ',']).any(|o| o == option))
    })
}

/// libcontainer's state of world `id`: `created`, with a live init.
fn built(rt: &Runtime, id: &str) -> bool {
    fs::read(rt.root().join(id).join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|s| {
            s["status"] == "created"
                && s["pid"]
                    .as_i64()
                    .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists())
        })
}

/// Waits until `create` is at `phase`; for [`Phase::InHook`], returns the
/// hook's pid (the test's to kill).
fn wait_for_phase(rt: &Runtime, id: &str, create: &Child, phase: Phase, hook_pid: &Path) -> i32 {
    let pid = create.id() as i32;
    let mut hook = 0;
    substrate_tests::wait_until(&format!("create of {id} to be at {phase:?}"), || {
        let paused = || in_futex_wait(pid);
        match phase {
            Phase::Recorded => {
                rt.world_dir(id).join("world.json").exists()
                    && !rt.root().join(id).exists()
                    && paused()
            }
            Phase::Mounted => has_overlay(pid, &rt.world_dir(id).join("upper")) && paused(),
            Phase::InHook => {
                // Written by the hook, which only runs while create waits for it.
                hook = fs::read_to_string(hook_pid)
                    .ok()
                    .and_then(|p| p.trim().parse().ok())
                    .unwrap_or(0);
                hook > 0 && !built(rt, id)
            }
            Phase::Built => built(rt, id) && paused(),
            Phase::Monitored => {
                !processes_mentioning(&format!(" monitor {id}")).is_empty() && paused()
            }
        }
    });
    hook
}

#[test]
fn sigkill_at_each_phase_of_create_is_cleaned_by_delete_force() {
    let rt = Runtime::overlay();
    for phase in Phase::ALL {
        let id = unique_id("crash");
        let mut bundle = Bundle::new(&id, &["sleep", "1000"]);
        let hook_pid = bundle.path().join("hook.pid");
        if phase == Phase::InHook {
            let script = format!(
                "echo $$ > {0}.tmp && mv {0}.tmp {0} && exec /bin/sleep 1000",
                hook_pid.display()
            );
            bundle.edit(|c| {
                c["hooks"] = json!({
                    "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", script]}]
                })
            });
        }
        let mut command = rt.cmd(&["create", "--bundle", bundle.path_str(), &id]);
        if let Some(point) = phase.fail_point() {
            command.env("FAILPOINTS", format!("{point}=pause"));
        }
        let mut create = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let hook = wait_for_phase(&rt, &id, &create, phase, &hook_pid);
        create.kill().unwrap();
        let killed = create.wait().unwrap();
        if hook > 0 {
            // The hook is the test's, not the world's: it outlives create.
            kill(Pid::from_raw(hook), Signal::SIGKILL).unwrap();
        }
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&killed),
            Some(9),
            "{phase:?}: create ended before the kill: {killed}"
        );

        let out = rt.run(&["delete", "--force", &id]);
        assert!(
            out.status.success(),
            "delete --force after a create killed at {phase:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_no_leftovers(rt.root(), &id);
        // The world's process never started, at whichever phase create was
        // killed: no record of it is kept, as for a create that failed.
        assert!(
            !rt.world_dir(&id).exists(),
            "{phase:?}: the world store keeps {}",
            rt.world_dir(&id).display()
        );
    }
}
