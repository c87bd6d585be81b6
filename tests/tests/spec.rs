//! Everything `config.json` can say is honoured, at the moment the OCI
//! runtime spec says: each test sets a field and checks it from inside the
//! world, or from the host.

use std::fs;
use std::process::Command;

use serde_json::json;
use substrate_tests::cgroup::{Cgroup, Setting};
use substrate_tests::{assert_no_leftovers, unique_id, Bundle, Runtime};

/// Runs the bundle in the foreground and returns (exit code, stdout, stderr).
fn run(rt: &Runtime, id: &str, bundle: &Bundle) -> (i32, String, String) {
    let out = rt.run(&["run", "--bundle", bundle.path_str(), id]);
    let result = (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_no_leftovers(rt.root(), id);
    result
}

fn run_ok(rt: &Runtime, id: &str, bundle: &Bundle) -> String {
    let (code, stdout, stderr) = run(rt, id, bundle);
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    stdout
}

fn sh(id: &str, script: &str) -> Bundle {
    Bundle::new(id, &["sh", "-c", script])
}

#[test]
fn hostname_and_read_only_root() {
    let rt = Runtime::new();
    let id = unique_id("host");
    let mut bundle = sh(
        &id,
        "hostname; touch /newfile 2>/dev/null && echo writable || echo read-only",
    );
    bundle.edit(|c| c["hostname"] = "substrate-spec".into());
    assert_eq!(run_ok(&rt, &id, &bundle), "substrate-spec\nread-only\n");
}

#[test]
fn bind_mounts_and_rootfs_propagation() {
    let rt = Runtime::new();
    let id = unique_id("mounts");
    let rw = tempfile::tempdir().unwrap();
    let ro = tempfile::tempdir().unwrap();
    fs::write(ro.path().join("given"), "from host").unwrap();
    let mut bundle = sh(
        &id,
        "echo from-world > /tmp/rw/made; cat /tmp/ro/given; echo; echo x > /tmp/ro/nope 2>/dev/null && echo ro-writable || echo ro-refused",
    );
    bundle.edit(|c| {
        c["linux"]["rootfsPropagation"] = "private".into();
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.push(json!({"destination": "/tmp/rw", "type": "bind", "source": rw.path(), "options": ["rbind", "rw"]}));
        mounts.push(json!({"destination": "/tmp/ro", "type": "bind", "source": ro.path(), "options": ["rbind", "ro"]}));
    });
    assert_eq!(run_ok(&rt, &id, &bundle), "from host\nro-refused\n");
    assert_eq!(
        fs::read_to_string(rw.path().join("made")).unwrap(),
        "from-world\n"
    );
    assert!(!ro.path().join("nope").exists());
}

#[test]
fn masked_and_read_only_paths() {
    let rt = Runtime::new();
    let id = unique_id("masked");
    let mut bundle = sh(
        &id,
        "wc -c < /etc/passwd; ls -A /root | wc -l; touch /root/x 2>/dev/null && echo root-writable || echo root-masked; \
         echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null && echo sys-writable || echo sys-read-only",
    );
    // A masked file reads as /dev/null, a masked directory as an empty
    // read-only tmpfs; the busybox bundle makes /proc/sys read-only.
    bundle.edit(|c| {
        let masked = c["linux"]["maskedPaths"].as_array_mut().unwrap();
        masked.push("/etc/passwd".into());
        masked.push("/root".into());
    });
    assert_eq!(
        run_ok(&rt, &id, &bundle),
        "0\n0\nroot-masked\nsys-read-only\n"
    );
}

#[test]
fn sysctl_in_the_worlds_network_namespace() {
    let rt = Runtime::new();
    let id = unique_id("sysctl");
    let mut bundle = sh(&id, "cat /proc/sys/net/ipv4/ip_forward");
    bundle.edit(|c| c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"}));
    assert_eq!(run_ok(&rt, &id, &bundle), "1\n");
}

#[test]
fn rlimits() {
    let rt = Runtime::new();
    let id = unique_id("rlimit");
    let mut bundle = sh(&id, "ulimit -n; ulimit -Hn");
    bundle.edit(|c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}])
    });
    assert_eq!(run_ok(&rt, &id, &bundle), "321\n654\n");
}

#[test]
fn capabilities_and_no_new_privileges() {
    let rt = Runtime::new();
    let id = unique_id("caps");
    let mut bundle = sh(
        &id,
        "grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status",
    );
    bundle.edit(|c| {
        let kill_only = json!(["CAP_KILL"]);
        c["process"]["capabilities"] = json!({
            "bounding": kill_only, "effective": kill_only, "permitted": kill_only
        });
        c["process"]["noNewPrivileges"] = true.into();
    });
    let out = run_ok(&rt, &id, &bundle);
    assert!(out.contains("CapEff:\t0000000000000020"), "{out}");
    assert!(out.contains("CapBnd:\t0000000000000020"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");

    let id = unique_id("nnp");
    let mut bundle = sh(&id, "grep NoNewPrivs: /proc/self/status");
    bundle.edit(|c| c["process"]["noNewPrivileges"] = false.into());
    assert_eq!(run_ok(&rt, &id, &bundle), "NoNewPrivs:\t0\n");
}

#[test]
fn seccomp_filters_syscalls() {
    let rt = Runtime::new();
    let id = unique_id("seccomp");
    let mut bundle = sh(&id, "mkdir /tmp/d 2>&1; echo still-running");
    bundle.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]
        });
    });
    let out = run_ok(&rt, &id, &bundle);
    assert!(out.contains("Operation not permitted"), "{out}");
    assert!(out.ends_with("still-running\n"), "{out}");
}

#[test]
fn cgroup_resources_and_oom_score_adj() {
    let rt = Runtime::new();
    let id = unique_id("res");
    let mut bundle = Bundle::new(
        &id,
        &["sh", "-c", "cat /proc/self/oom_score_adj; sleep 1000"],
    );
    bundle.edit(|c| {
        c["process"]["oomScoreAdj"] = 345.into();
        c["linux"]["resources"]["memory"] = json!({"limit": 67108864});
        c["linux"]["resources"]["pids"] = json!({"limit": 64});
        c["linux"]["resources"]["cpu"] = json!({"shares": 256, "quota": 50000, "period": 250000});
    });
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    let cgroup = Cgroup::of_world(&id);
    cgroup.assert_setting(Setting::MemoryLimit, 67108864);
    cgroup.assert_setting(Setting::PidsLimit, 64);
    cgroup.assert_setting(Setting::CpuShares, 256);
    cgroup.assert_setting(Setting::CpuQuota, 50000);
    cgroup.assert_setting(Setting::CpuPeriod, 250000);
    let pid = rt.pid(&id);
    assert_eq!(
        fs::read_to_string(format!("/proc/{pid}/oom_score_adj"))
            .unwrap()
            .trim(),
        "345"
    );
    rt.ok(&["delete", "--force", &id]);
    assert_no_leftovers(rt.root(), &id);
}

#[test]
fn user_namespace_with_id_mappings() {
    let rt = Runtime::new();
    let id = unique_id("userns");
    let mut bundle = sh(&id, "cat /proc/self/uid_map /proc/self/gid_map; id -u");
    bundle.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "user"}));
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
    let out = run_ok(&rt, &id, &bundle);
    let fields: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(fields[0], ["0", "100000", "65536"], "{out}");
    assert_eq!(fields[1], ["0", "100000", "65536"], "{out}");
    assert_eq!(fields[2], ["0"], "{out}");
}

/// A named network namespace (`ip netns add`), deleted on drop even when the
/// test fails.
struct NetNs(String);

impl NetNs {
    fn new(name: String) -> Self {
        ip(&["netns", "add", &name]);
        NetNs(name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().unwrap();
    assert!(status.success(), "ip {args:?}");
}

#[test]
fn joins_a_network_namespace_by_path() {
    let rt = Runtime::new();
    let id = unique_id("netns");
    let netns = NetNs::new(format!("substrate-test-{}", std::process::id()));
    ip(&[
        "-n", &netns.0, "link", "add", "marker0", "type", "veth", "peer", "name", "marker1",
    ]);
    let mut bundle = sh(&id, "ip -o link show marker0 >/dev/null && echo joined");
    bundle.edit(|c| {
        for ns in c["linux"]["namespaces"].as_array_mut().unwrap() {
            if ns["type"] == "network" {
                ns["path"] = format!("/run/netns/{}", netns.0).into();
            }
        }
    });
    assert_eq!(run_ok(&rt, &id, &bundle), "joined\n");
}

#[test]
fn devices_are_created_and_allowed() {
    let rt = Runtime::new();
    let id = unique_id("devices");
    let mut bundle = sh(&id, "stat -c '%F %t:%T %a' /dev/marker; echo data > /dev/marker && echo written; cat /dev/null && echo null-ok");
    bundle.edit(|c| {
        c["linux"]["devices"] = json!([{"path": "/dev/marker", "type": "c", "major": 1, "minor": 3, "fileMode": 438, "uid": 0, "gid": 0}]);
        c["linux"]["resources"]["devices"] = json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}
        ]);
    });
    assert_eq!(
        run_ok(&rt, &id, &bundle),
        "character special file 1:3 666\nwritten\nnull-ok\n"
    );
}

/// `linux.resources.devices` is enforced, not only the devices a bundle
/// names: a world with CAP_MKNOD (in runc's default set) may make any node,
/// as runc allows (`c *:* m`, `b *:* m`), but cannot open a device its rules
/// leave out. cgroup v1's devices controller does it; on v2 it takes the
/// eBPF device program a runtime attaches to the world's cgroup.
#[test]
fn devices_outside_the_rules_cannot_be_opened() {
    let rt = Runtime::new();
    let id = unique_id("nodevice");
    // 1:11 is /dev/kmsg, in no runtime's default list; opening it for
    // writing needs no capability, so only the device rules refuse it.
    let bundle = sh(
        &id,
        "mknod /dev/made c 1 11 && (: > /dev/made) 2>&1 && echo opened; echo > /dev/null && echo null-ok",
    );
    let out = run_ok(&rt, &id, &bundle);
    assert!(
        out.contains("Operation not permitted") && !out.contains("opened"),
        "{out}"
    );
    assert!(out.ends_with("null-ok\n"), "{out}");
}

#[test]
fn hooks_run_at_their_moments_with_the_state_on_stdin() {
    let rt = Runtime::new();
    let id = unique_id("hooks");
    let out = tempfile::tempdir().unwrap();
    let host_dir = out.path().to_str().unwrap().to_owned();
    let mut bundle = Bundle::new(&id, &["true"]);
    let hook = |dir: &str, name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("cat > {dir}/{name}.json")]});
    bundle.edit(|c| {
        // Hooks in the runtime namespace, and createContainer (in the
        // container's mount namespace before pivot_root, where host paths
        // still resolve), write to the host dir directly; startContainer runs
        // in the world's root, where the same dir is mounted at /tmp/hooks.
        c["hooks"] = json!({
            "prestart": [hook(&host_dir, "prestart")],
            "createRuntime": [hook(&host_dir, "createRuntime")],
            "createContainer": [hook(&host_dir, "createContainer")],
            "startContainer": [hook("/tmp/hooks", "startContainer")],
            "poststart": [hook(&host_dir, "poststart")],
            "poststop": [hook(&host_dir, "poststop")],
        });
        c["mounts"].as_array_mut().unwrap().push(json!({"destination": "/tmp/hooks", "type": "bind", "source": host_dir, "options": ["rbind", "rw"]}));
    });
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    for name in ["prestart", "createRuntime", "createContainer"] {
        assert!(
            out.path().join(format!("{name}.json")).exists(),
            "{name} runs during create"
        );
    }
    for name in ["startContainer", "poststart", "poststop"] {
        assert!(
            !out.path().join(format!("{name}.json")).exists(),
            "{name} must wait"
        );
    }
    rt.ok(&["start", &id]);
    rt.wait_status(&id, "stopped");
    assert!(out.path().join("startContainer.json").exists());
    assert!(out.path().join("poststart.json").exists());
    assert!(
        !out.path().join("poststop.json").exists(),
        "poststop waits for delete"
    );
    rt.ok(&["delete", &id]);
    // prestart and createRuntime read `created`, as crun gives it and the
    // runtime-tools validation suite (`hooks_stdin`) expects, though they
    // run inside the create operation (runc 1.1 and libcontainer 0.7 gave
    // `creating`).
    for (name, status) in [
        ("prestart", "created"),
        ("createRuntime", "created"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ] {
        let state: serde_json::Value =
            serde_json::from_slice(&fs::read(out.path().join(format!("{name}.json"))).unwrap())
                .unwrap();
        assert_eq!(state["id"], id.as_str(), "{name}: {state}");
        assert_eq!(state["status"], status, "{name}: {state}");
        assert_eq!(state["bundle"], bundle.path_str(), "{name}: {state}");
    }
    assert_no_leftovers(rt.root(), &id);
}
