//! `substrate-runtime` keeps the OCI runtime spec's semantics exactly, as
//! runc does: a plain-directory rootfs is written in place (what a container
//! or a hook writes is in the rootfs the bundle names), the runtime writes
//! nothing into it that the spec does not ask for, a config without a mount
//! namespace shares the runtime's, hooks run in the runtime's namespaces —
//! and a rootfs that resolves to the host's `/` is refused before anything
//! is written. Substrate's own overlay is the operator's opt-in
//! (`SUBSTRATE_ROOTFS=overlay`), never the bundle's.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use substrate_tests::{assert_no_leftovers, base_bundles, unique_id, Bundle, Runtime};

/// A bundle whose rootfs is a private, writable copy of the busybox one.
fn private_bundle(id: &str, args: &[&str]) -> (Bundle, tempfile::TempDir) {
    let copy = tempfile::Builder::new()
        .prefix("substrate-rootfs-")
        .tempdir()
        .unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(base_bundles().rootfs())
        .arg(copy.path().join("rootfs"))
        .status()
        .unwrap();
    assert!(status.success());
    let mut bundle = Bundle::new(id, args);
    bundle.edit(|c| {
        c["root"]["path"] = copy.path().join("rootfs").to_string_lossy().into();
        c["root"]["readonly"] = false.into();
    });
    (bundle, copy)
}

/// Every path under `root`, relative.
fn tree(root: &Path) -> BTreeSet<PathBuf> {
    let mut paths = BTreeSet::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            paths.insert(path.strip_prefix(root).unwrap().to_owned());
            if entry.file_type().unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    paths
}

fn mnt_ns(pid: &str) -> PathBuf {
    fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap()
}

#[test]
fn a_plain_rootfs_is_written_in_place_with_nothing_added() {
    let rt = Runtime::new();
    let id = unique_id("inplace");
    let (bundle, copy) = private_bundle(&id, &["sh", "-c", "echo hi > /root/written"]);
    let rootfs = copy.path().join("rootfs");
    let before = tree(&rootfs);
    rt.ok(&["run", "--bundle", bundle.path_str(), &id]);
    assert_eq!(
        fs::read_to_string(rootfs.join("root/written")).unwrap(),
        "hi\n",
        "what the container wrote is in the rootfs the bundle names"
    );
    let added: Vec<_> = tree(&rootfs).difference(&before).cloned().collect();
    assert_eq!(
        added,
        [PathBuf::from("root/written")],
        "the runtime adds nothing the spec does not ask for (no tracer mount points)"
    );
    let record = rt.record(&id);
    assert!(record["upper"].is_null(), "{record}");
    assert!(record["diff"].is_null(), "{record}");
    assert_eq!(record["preload"], false, "{record}");
    assert_eq!(record["exit"]["code"], 0, "{record}");
    let diff = rt.cli(&["diff", &id]).output().unwrap();
    assert!(!diff.status.success());
    assert!(
        String::from_utf8_lossy(&diff.stderr).contains("written in place"),
        "{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    assert_no_leftovers(rt.root(), &id);
}

/// The host's mounts as the runtime's mount namespace sees them: each
/// mount point with its propagation (`shared:N`, `master:N`, none).
fn host_mounts() -> BTreeSet<(String, String)> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-").unwrap();
            (fields[4].to_owned(), fields[6..dash].join(" "))
        })
        .collect()
}

/// The propagation of the host's mount at `point` (`None`: not a mount
/// point).
fn propagation_of(mounts: &BTreeSet<(String, String)>, point: &str) -> Option<String> {
    mounts
        .iter()
        .find(|(at, _)| at == point)
        .map(|(_, propagation)| propagation.clone())
}

/// Takes the mount namespace out of a config (`join`: then names that one
/// by path instead), and its masked and read-only paths, which need one.
fn without_mount_namespace(c: &mut serde_json::Value, join: Option<&str>) {
    let namespaces = c["linux"]["namespaces"].as_array_mut().unwrap();
    namespaces.retain(|ns| ns["type"] != "mount");
    if let Some(path) = join {
        namespaces.push(serde_json::json!({"type": "mount", "path": path}));
    }
    c["linux"]["maskedPaths"] = serde_json::json!([]);
    c["linux"]["readonlyPaths"] = serde_json::json!([]);
}

/// A config without a mount namespace shares the runtime's (runtime-tools'
/// `linux_ns_itype`), and a `createRuntime` hook runs in the runtime's
/// mount namespace and sees the rootfs as the host does (`hooks_stdin`).
/// Without a mount namespace of its own, nothing is mounted: the spec's
/// mounts would be the host's, and runc 1.1 leaves them there and turns
/// the host's shared mounts private (the rslave of `/`). The host's mounts
/// and their propagation stay as they were.
#[test]
fn no_mount_namespace_means_the_runtimes_and_hooks_run_in_it() {
    let rt = Runtime::new();
    let id = unique_id("nomntns");
    let (mut bundle, copy) = private_bundle(&id, &["sleep", "300"]);
    let hook_out = copy.path().join("hook-mnt-ns");
    bundle.edit(|c| {
        // The bundle's mounts (/proc, /dev, /sys ...) stay: they must not
        // be made. Masked and read-only paths are refused (next test).
        without_mount_namespace(c, None);
        c["hooks"] = serde_json::json!({
            "createRuntime": [{
                "path": "/bin/sh",
                "args": ["sh", "-c", format!("readlink /proc/self/ns/mnt > {}", hook_out.display())],
            }]
        });
    });
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(bundle.path().join("config.json")).unwrap()).unwrap();
    assert!(!config["mounts"].as_array().unwrap().is_empty());
    let before = host_mounts();
    rt.ok(&["create", "--no-pivot", "--bundle", bundle.path_str(), &id]);
    let pid = rt.pid(&id).to_string();
    let ours = mnt_ns("self");
    assert_eq!(
        mnt_ns(&pid),
        ours,
        "the container shares the runtime's mount namespace"
    );
    assert_eq!(
        PathBuf::from(fs::read_to_string(&hook_out).unwrap().trim()),
        ours,
        "the hook runs in the runtime's mount namespace"
    );
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/root")).unwrap(),
        copy.path().join("rootfs"),
        "the container's root is its rootfs"
    );
    // (Other tests mount and unmount on the host meanwhile: what is
    // checked is what this container could have done.)
    let after = host_mounts();
    assert_eq!(
        propagation_of(&after, "/"),
        propagation_of(&before, "/"),
        "the host's / keeps its propagation"
    );
    let rootfs = copy.path().join("rootfs");
    let under_rootfs: Vec<_> = after
        .iter()
        .filter(|(point, _)| Path::new(point).starts_with(&rootfs))
        .collect();
    assert!(
        under_rootfs.is_empty(),
        "mounts made on the host: {under_rootfs:?}"
    );
    rt.ok(&["delete", "--force", &id]);
    assert_no_leftovers(rt.root(), &id);
}

/// What needs mounts of the container's own is refused without a mount
/// namespace of its own, as runc refuses masked and read-only paths: done
/// on the runtime's namespace it would mask the host's /proc paths, or
/// (root.readonly) remount the host's `/` read-only. The error names it;
/// the host is unchanged and nothing is left.
#[test]
fn what_needs_a_mount_namespace_is_refused_without_one() {
    let rt = Runtime::new();
    /// What is asked, how the mount namespace is left out (no entry, or
    /// an entry naming the runtime's own), and what the refusal says.
    struct Case<'a> {
        what: &'a str,
        ask: fn(&mut serde_json::Value),
        join: Option<&'a str>,
        refusal: &'a str,
    }
    let sys_entries = "unable to restrict sys entries without a private MNT namespace";
    let own = format!("/proc/{}/ns/mnt", std::process::id());
    let cases = [
        Case {
            what: "maskedPaths",
            ask: |c| c["linux"]["maskedPaths"] = serde_json::json!(["/proc/kcore"]),
            join: None,
            refusal: sys_entries,
        },
        Case {
            what: "readonlyPaths",
            ask: |c| c["linux"]["readonlyPaths"] = serde_json::json!(["/proc/sys"]),
            join: None,
            refusal: sys_entries,
        },
        Case {
            what: "root.readonly",
            ask: |c| c["root"]["readonly"] = true.into(),
            join: None,
            refusal: "root.readonly needs a mount namespace of the container's own",
        },
        Case {
            what: "maskedPaths, joining the runtime's own mount namespace",
            ask: |c| c["linux"]["maskedPaths"] = serde_json::json!(["/proc/kcore"]),
            join: Some(&own),
            refusal: "maskedPaths needs a mount namespace of the container's own",
        },
    ];
    for Case {
        what,
        ask,
        join,
        refusal,
    } in cases
    {
        let id = unique_id("nomntns-refused");
        let (mut bundle, _copy) = private_bundle(&id, &["true"]);
        bundle.edit(|c| {
            without_mount_namespace(c, join);
            ask(c);
        });
        let before = host_mounts();
        let out = rt
            .cmd(&["run", "--bundle", bundle.path_str(), &id])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{what}: ran without a mount namespace"
        );
        assert!(stderr.contains(refusal), "{what}: {stderr}");
        assert_eq!(
            propagation_of(&host_mounts(), "/"),
            propagation_of(&before, "/"),
            "{what}: the host's / changed"
        );
        let _ = rt.cmd(&["delete", "--force", &id]).output();
        assert_no_leftovers(rt.root(), &id);
    }
}

/// A bundle whose rootfs is a symlink to `/` is refused, on the runtime
/// path (in place and with Substrate's overlay) and through
/// `substrate-cli run --bundle`, and nothing is written on the host's root.
#[test]
fn a_rootfs_symlink_to_the_hosts_root_is_refused() {
    let host_preload = fs::read("/etc/ld.so.preload").ok();
    for rt in [Runtime::new(), Runtime::overlay()] {
        let id = unique_id("rootlink");
        let mut bundle = Bundle::new(&id, &["true"]);
        let link = bundle.path().join("rootfs-link");
        std::os::unix::fs::symlink("/", &link).unwrap();
        bundle.edit(|c| c["root"]["path"] = "rootfs-link".into());
        let err = rt.fails(&["create", "--bundle", bundle.path_str(), &id]);
        assert!(err.contains("host's root directory"), "{err}");
        assert_no_leftovers(rt.root(), &id);
        let cli = rt
            .cli(&[
                "run",
                "--bundle",
                bundle.path_str(),
                "--name",
                &id,
                "--",
                "true",
            ])
            .output()
            .unwrap();
        assert!(!cli.status.success());
        assert!(
            String::from_utf8_lossy(&cli.stderr).contains("host's root directory"),
            "{}",
            String::from_utf8_lossy(&cli.stderr)
        );
    }
    assert!(
        !Path::new("/.substrate").exists(),
        "nothing made on the host's /"
    );
    assert_eq!(fs::read("/etc/ld.so.preload").ok(), host_preload);
}

/// With Substrate's overlay, the tracer's mount points are made inside the
/// rootfs whatever the image's symlinks say: an image whose `/.substrate`
/// is a symlink to a host directory does not get that directory written or
/// mounted over.
#[test]
fn injection_targets_stay_inside_the_rootfs() {
    let rt = Runtime::overlay();
    let id = unique_id("injlink");
    let (bundle, copy) = private_bundle(&id, &["sh", "-c", "ls /.substrate >/dev/null; echo ok"]);
    let canary = tempfile::Builder::new()
        .prefix("substrate-canary-")
        .tempdir()
        .unwrap();
    fs::write(canary.path().join("keep"), "host file").unwrap();
    std::os::unix::fs::symlink(canary.path(), copy.path().join("rootfs/.substrate")).unwrap();
    let out = rt.run(&["run", "--bundle", bundle.path_str(), &id]);
    let names: Vec<_> = fs::read_dir(canary.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, ["keep"], "the host dir is untouched ({out:?})");
    assert_eq!(
        fs::read_to_string(canary.path().join("keep")).unwrap(),
        "host file"
    );
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&canary.path().display().to_string()));
    assert_no_leftovers(rt.root(), &id);
}

/// A failing poststart hook is a warning: `start` succeeds, the hooks after
/// it run, the container runs (runtime spec, config.md "poststart").
#[test]
fn a_failing_poststart_hook_is_a_warning() {
    let rt = Runtime::new();
    let id = unique_id("poststart");
    let (mut bundle, copy) = private_bundle(&id, &["sleep", "300"]);
    let after = copy.path().join("second-hook-ran");
    bundle.edit(|c| {
        c["hooks"] = serde_json::json!({
            "poststart": [
                {"path": "/bin/false", "args": ["false"]},
                {"path": "/bin/sh", "args": ["sh", "-c", format!("touch {}", after.display())]},
            ]
        });
    });
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    let start = rt.run(&["start", &id]);
    assert!(
        start.status.success(),
        "start: {}",
        String::from_utf8_lossy(&start.stderr)
    );
    assert!(after.exists(), "the hook after the failing one ran");
    assert_eq!(rt.status(&id), "running");
    rt.ok(&["delete", "--force", &id]);
    assert_no_leftovers(rt.root(), &id);
}

/// A seccomp profile that forbids getcwd(2), loaded before the runtime's
/// own working-directory check (no noNewPrivileges), does not stop the
/// container from starting (runtime-tools' `linux_seccomp`, as crun).
#[test]
fn a_profile_forbidding_getcwd_still_starts() {
    let rt = Runtime::new();
    let id = unique_id("getcwd");
    let (mut bundle, _copy) = private_bundle(&id, &["echo", "started"]);
    bundle.edit(|c| {
        c["process"]["noNewPrivileges"] = false.into();
        // Without noNewPrivileges only a process with CAP_SYS_ADMIN may load
        // a filter: the runtime loads it before dropping capabilities.
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push("CAP_SYS_ADMIN".into());
        }
        c["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}],
        });
    });
    assert_eq!(
        rt.ok(&["run", "--bundle", bundle.path_str(), &id]),
        "started\n"
    );
    assert_no_leftovers(rt.root(), &id);
}

/// An exec'd process gets the container's seccomp filter, and — when no
/// process file says otherwise — its rlimits and user, as runc's exec does
/// (an exec must not be a way out of the container's profile).
#[test]
fn an_exec_gets_the_containers_seccomp_rlimits_and_user() {
    let rt = Runtime::new();
    let id = unique_id("execsec");
    let (mut bundle, copy) = private_bundle(&id, &["sleep", "300"]);
    bundle.edit(|c| {
        c["linux"]["seccomp"] = serde_json::json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}],
        });
        c["process"]["rlimits"] = serde_json::json!([
            {"type": "RLIMIT_NOFILE", "hard": 1000, "soft": 1000}
        ]);
        c["process"]["user"] = serde_json::json!({"uid": 1234, "gid": 1234});
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "uts"}));
    });
    rt.ok(&["run", "--detach", "--bundle", bundle.path_str(), &id]);
    let status = rt.ok(&["exec", &id, "grep", "Seccomp:", "/proc/self/status"]);
    assert_eq!(status.split_whitespace().nth(1), Some("2"), "{status}");
    assert_eq!(
        rt.ok(&["exec", &id, "sh", "-c", "ulimit -n"]).trim(),
        "1000"
    );
    assert_eq!(rt.ok(&["exec", &id, "id", "-u"]).trim(), "1234");
    // With a process file (what containerd's shims pass), the profile
    // still applies.
    let process = copy.path().join("process.json");
    fs::write(
        &process,
        serde_json::json!({
            "args": ["grep", "Seccomp:", "/proc/self/status"],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "env": ["PATH=/bin:/usr/bin"],
        })
        .to_string(),
    )
    .unwrap();
    let status = rt.ok(&["exec", "--process", process.to_str().unwrap(), &id]);
    assert_eq!(status.split_whitespace().nth(1), Some("2"), "{status}");
    rt.ok(&["delete", "--force", &id]);
    assert_no_leftovers(rt.root(), &id);
}

/// `rootfsPropagation` takes runc's recursive spellings (`rshared`,
/// `rslave`, what containerd's CRI plugin writes for a pod's Bidirectional
/// and HostToContainer mounts), and a mount made on the host under a shared
/// mount the container has with `rslave` propagates into it.
#[test]
fn recursive_rootfs_propagation_is_accepted_and_propagates() {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let rt = Runtime::new();
    let shared = tempfile::Builder::new()
        .prefix("substrate-shared-")
        .tempdir()
        .unwrap();
    let dir = shared.path();
    /// Unmounts its path when dropped: a failing assertion leaves no mount
    /// on the host.
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = umount2(self.0, MntFlags::MNT_DETACH);
        }
    }
    mount(Some(dir), dir, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
    let _bound = Unmount(dir);
    mount(
        None::<&str>,
        dir,
        None::<&str>,
        MsFlags::MS_SHARED,
        None::<&str>,
    )
    .unwrap();
    fs::create_dir(dir.join("sub")).unwrap();
    for propagation in ["rshared", "rslave"] {
        let id = unique_id("propagation");
        let (mut bundle, _copy) = private_bundle(&id, &["sleep", "300"]);
        bundle.edit(|c| {
            c["linux"]["rootfsPropagation"] = propagation.into();
            c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
                "destination": "/mnt",
                "type": "bind",
                "source": dir,
                "options": ["rbind", propagation],
            }));
        });
        rt.ok(&["run", "--detach", "--bundle", bundle.path_str(), &id]);
        mount(
            Some("tmpfs"),
            &dir.join("sub"),
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        let sub = dir.join("sub");
        let sub_mount = Unmount(&sub);
        let seen = rt.ok(&["exec", &id, "cat", "/proc/self/mountinfo"]);
        drop(sub_mount);
        assert!(
            seen.lines()
                .any(|l| l.split_whitespace().nth(4) == Some("/mnt/sub")),
            "{propagation}: the host's new mount is seen in the container:\n{seen}"
        );
        rt.ok(&["delete", "--force", &id]);
        assert_no_leftovers(rt.root(), &id);
    }
}

/// A failing poststop hook is a warning: `delete` succeeds and the hooks
/// after it run; and a world whose bundle is gone (hooks included) is
/// still deleted by `delete --force`, with nothing left (runtime-tools'
/// `poststop_fail`).
#[test]
fn a_failing_poststop_hook_and_a_vanished_bundle_do_not_block_delete() {
    let rt = Runtime::new();
    let id = unique_id("poststop");
    let (mut bundle, copy) = private_bundle(&id, &["true"]);
    let after = copy.path().join("second-hook-ran");
    bundle.edit(|c| {
        c["hooks"] = serde_json::json!({
            "poststop": [
                {"path": "/bin/false", "args": ["false"]},
                {"path": "/bin/sh", "args": ["sh", "-c", format!("touch {}", after.display())]},
            ]
        });
    });
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    rt.ok(&["start", &id]);
    substrate_tests::wait_until("the world to stop", || rt.status(&id) == "stopped");
    rt.ok(&["delete", &id]);
    assert!(after.exists(), "the hook after the failing one ran");
    assert_no_leftovers(rt.root(), &id);

    // Its bundle and the hooks in it removed before the delete.
    let gone = unique_id("bundle-gone");
    let hooks = tempfile::tempdir().unwrap();
    let hook = hooks.path().join("hook.sh");
    fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
    fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (mut bundle, copy) = private_bundle(&gone, &["sleep", "300"]);
    bundle.edit(|c| {
        c["hooks"] = serde_json::json!({"poststop": [{"path": hook.to_str().unwrap()}]});
    });
    rt.ok(&["create", "--bundle", bundle.path_str(), &gone]);
    rt.ok(&["start", &gone]);
    drop(hooks);
    drop(bundle);
    drop(copy);
    rt.ok(&["delete", "--force", &gone]);
    assert_no_leftovers(rt.root(), &gone);
}

/// A container that joins another's pid namespace (a pod's: CRI's
/// `PodSandbox` pid mode, or a `path` in the spec) starts whatever its pid
/// there, and gets its cgroup mount: libcontainer read `/proc/<its pid in
/// the joined namespace>` of the host's /proc, which was another process's
/// or none (under pod churn, most starts failed with "failed to prepare
/// rootfs"). The joining container is made to get a pid the host has no
/// process for, through the pod's `ns_last_pid`.
#[test]
fn a_container_joining_a_pid_namespace_starts_whatever_its_pid_there() {
    let rt = Runtime::new();
    let pod = unique_id("pidns-pod");
    let bundle = Bundle::new(&pod, &["sleep", "300"]);
    rt.ok(&["run", "--detach", "--bundle", bundle.path_str(), &pod]);
    let pod_pid = rt.pid(&pod);

    // A pid no host process has, away from where the host allocates next.
    let host_last: i32 = fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid_max: i32 = fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let free = |pid: &i32| !Path::new(&format!("/proc/{pid}")).exists();
    let wanted = (1000..host_last.saturating_sub(1000))
        .rev()
        .chain((host_last + 1000..pid_max - 1).rev())
        .find(free)
        .expect("a pid the host does not use");
    let set_last = Command::new("nsenter")
        .arg("--target")
        .arg(pod_pid.to_string())
        .arg("--pid")
        .arg("--")
        .arg("sh")
        .arg("-c")
        .arg(format!(
            "echo {} > /proc/sys/kernel/ns_last_pid",
            wanted - 1
        ))
        .status()
        .unwrap();
    assert!(set_last.success());

    let id = unique_id("pidns-joiner");
    let mut joiner = Bundle::new(&id, &["sleep", "300"]);
    joiner.edit(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "pid" {
                ns["path"] = format!("/proc/{pod_pid}/ns/pid").into();
            }
        }
        c["mounts"].as_array_mut().unwrap().push(serde_json::json!({
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]
        }));
    });
    rt.ok(&["run", "--detach", "--bundle", joiner.path_str(), &id]);
    let status = fs::read_to_string(format!("/proc/{}/status", rt.pid(&id))).unwrap();
    let nspid = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .to_owned();
    assert_eq!(nspid, wanted.to_string(), "the joiner's pid in the pod");
    let cgroups = rt.ok(&["exec", &id, "ls", "/sys/fs/cgroup"]);
    assert!(!cgroups.trim().is_empty(), "the cgroup mount is there");
    for world in [&id, &pod] {
        rt.ok(&["delete", "--force", world]);
        assert_no_leftovers(rt.root(), world);
    }
}
