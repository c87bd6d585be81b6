//! Worlds: every container's rootfs is an overlay whose upper layer is the
//! world's record of what it wrote; the bundle is never written; the diff
//! and `world.json` survive the container.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};

use serde_json::Value;
use substrate_tests::{assert_no_leftovers, unique_id, wait_until, Bundle, Runtime};

fn writable(bundle: &mut Bundle) {
    bundle.edit(|c| c["root"]["readonly"] = false.into());
}

fn diff_json(rt: &Runtime, id: &str) -> Value {
    serde_json::from_slice(&fs::read(rt.world_dir(id).join("diff.json")).unwrap()).unwrap()
}

fn entry<'a>(diff: &'a Value, path: &str) -> Option<&'a Value> {
    diff["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == path)
}

#[test]
fn a_world_writes_to_its_upper_never_to_the_bundle() {
    let rt = Runtime::overlay();
    let id = unique_id("upper");
    let mut bundle = Bundle::new(
        &id,
        &[
            "sh",
            "-c",
            "echo hi > /root/new; rm /etc/group; chmod 600 /etc/passwd; cat /root/new",
        ],
    );
    writable(&mut bundle);
    let rootfs = substrate_tests::base_bundles().rootfs();
    let out = rt.ok(&["run", "--bundle", bundle.path_str(), &id]);
    assert_eq!(out, "hi\n");

    assert!(
        !rootfs.join("root/new").exists(),
        "the bundle is never written"
    );
    assert!(rootfs.join("etc/group").exists());
    assert_eq!(
        fs::metadata(rootfs.join("etc/passwd")).unwrap().mode() & 0o777,
        0o644
    );

    let record = rt.record(&id);
    assert_eq!(record["schema"], "substrate.world/v1");
    assert_eq!(record["source"]["kind"], "bundle");
    assert_eq!(record["upper"]["owner"], "world");
    assert_eq!(record["exit"], serde_json::json!({"code": 0}));
    assert!(
        record["started_at"].is_string() && record["ended_at"].is_string(),
        "{record}"
    );
    assert_eq!(record["diff"]["added"], 1, "{record}");
    assert_eq!(record["diff"]["deleted"], 1, "{record}");
    assert_eq!(record["diff"]["changed"], 1, "{record}");
    let diff = diff_json(&rt, &id);
    assert_eq!(entry(&diff, "/root/new").unwrap()["change"], "A");
    assert_eq!(entry(&diff, "/etc/group").unwrap()["change"], "D");
    let passwd = entry(&diff, "/etc/passwd").unwrap();
    assert_eq!(passwd["change"], "C");
    assert_eq!(passwd["metadata_only"], true, "{passwd}");
    // Mount points the runtime made (/proc, /dev, …) are not the world's doing.
    assert!(
        entry(&diff, "/proc").is_none() && entry(&diff, "/tmp").is_none(),
        "{diff}"
    );
    assert_no_leftovers(rt.root(), &id);
}

#[test]
fn worlds_from_one_bundle_do_not_see_each_other() {
    let rt = Runtime::overlay();
    let mut bundles = Vec::new();
    let ids: Vec<String> = (0..2).map(|_| unique_id("twins")).collect();
    for id in &ids {
        let mut bundle = Bundle::new(id, &["sh", "-c", "echo $(hostname) > /root/me; sleep 1000"]);
        writable(&mut bundle);
        bundle.edit(|c| {
            c["hostname"] = c["linux"]["cgroupsPath"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .into()
        });
        rt.ok(&["create", "--bundle", bundle.path_str(), id]);
        rt.ok(&["start", id]);
        bundles.push(bundle);
    }
    for id in &ids {
        let pid = rt.pid(id);
        let me = format!("/proc/{pid}/root/root/me");
        wait_until("the world's write", || {
            fs::read_to_string(&me).is_ok_and(|s| !s.is_empty())
        });
        assert_eq!(fs::read_to_string(&me).unwrap().trim(), id.as_str());
    }
    // No overlay of a world is visible on the host.
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(rt.state_dir().to_str().unwrap()),
        "{mounts}"
    );
    for id in &ids {
        rt.ok(&["delete", "--force", id]);
        assert_no_leftovers(rt.root(), id);
        let diff = diff_json(&rt, id);
        assert_eq!(entry(&diff, "/root/me").unwrap()["change"], "A");
    }
}

#[test]
fn a_killed_world_still_gets_its_diff() {
    let rt = Runtime::overlay();
    let id = unique_id("killed");
    let mut bundle = Bundle::new(
        &id,
        &["sh", "-c", "echo data > /root/before-kill; sleep 1000"],
    );
    writable(&mut bundle);
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    rt.ok(&["start", &id]);
    let pid = rt.pid(&id);
    wait_until("the write", || {
        fs::metadata(format!("/proc/{pid}/root/root/before-kill")).is_ok()
    });
    rt.ok(&["kill", &id, "KILL"]);
    rt.wait_status(&id, "stopped");
    rt.ok(&["delete", &id]);
    let diff = diff_json(&rt, &id);
    let file = entry(&diff, "/root/before-kill").unwrap();
    assert_eq!(file["change"], "A");
    assert_eq!(file["size"], 5);
    assert!(rt.record(&id)["ended_at"].is_string());
    assert_no_leftovers(rt.root(), &id);
}

/// An overlay mounted on the host, as containerd's and podman's snapshots are.
struct HostOverlay {
    dir: tempfile::TempDir,
}

impl HostOverlay {
    fn over(lower: &std::path::Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in ["upper", "work", "merged"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            dir.path().join("upper").display(),
            dir.path().join("work").display()
        );
        let status = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &options])
            .arg(dir.path().join("merged"))
            .status()
            .unwrap();
        assert!(status.success());
        HostOverlay { dir }
    }
}

impl Drop for HostOverlay {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg(self.dir.path().join("merged"))
            .status();
    }
}

#[test]
fn an_overlay_handed_over_is_adopted_not_stacked() {
    let rt = Runtime::new();
    let id = unique_id("adopt");
    let overlay = HostOverlay::over(&substrate_tests::base_bundles().rootfs());
    let mut bundle = Bundle::new(&id, &["sh", "-c", "echo adopted > /root/mine"]);
    writable(&mut bundle);
    let merged = overlay.dir.path().join("merged");
    bundle.edit(|c| c["root"]["path"] = merged.to_str().unwrap().into());
    rt.ok(&["run", "--bundle", bundle.path_str(), &id]);

    let upper = overlay.dir.path().join("upper");
    assert_eq!(
        fs::read_to_string(upper.join("root/mine")).unwrap(),
        "adopted\n",
        "writes land in the owner's upper"
    );
    let record = rt.record(&id);
    assert_eq!(record["upper"]["owner"], "adopted");
    assert_eq!(record["upper"]["path"], upper.to_str().unwrap());
    assert!(
        !rt.world_dir(&id).join("upper").exists(),
        "no second overlay was stacked"
    );
    assert_eq!(
        entry(&diff_json(&rt, &id), "/root/mine").unwrap()["change"],
        "A"
    );
    assert_no_leftovers(rt.root(), &id);
}

fn sha256_of(path: &str) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn cli_run_on_the_host_rootfs_leaves_the_host_untouched() {
    let rt = Runtime::new();
    // A file of our own on the host's root filesystem for the world to delete.
    let victim = format!("/var/tmp/substrate-victim-{}", std::process::id());
    fs::write(&victim, "keep me").unwrap();
    let before = [
        ("/etc/passwd", sha256_of("/etc/passwd")),
        (victim.as_str(), sha256_of(&victim)),
    ];
    let mtime = fs::metadata("/etc/passwd").unwrap().mtime_nsec();
    let created = format!("/var/tmp/substrate-created-{}", std::process::id());

    let name = unique_id("host");
    let script = format!(
        "echo hi > {created}; rm {victim}; echo extra >> /etc/passwd; cat {created}; exit 3"
    );
    let out = rt
        .cli(&["run", "--name", &name, "--", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("world {name}: exited 3")),
        "{stderr}"
    );
    assert!(stderr.contains("1 added, 1 changed, 1 deleted"), "{stderr}");
    assert!(!stderr.contains('\x1b'), "no colour when piped: {stderr}");

    for (path, hash) in &before {
        assert_eq!(&sha256_of(path), hash, "{path} is untouched");
    }
    assert_eq!(fs::metadata("/etc/passwd").unwrap().mtime_nsec(), mtime);
    assert!(!std::path::Path::new(&created).exists());
    fs::remove_file(&victim).unwrap();

    let diff = rt.cli(&["diff", &name]).output().unwrap();
    let diff = String::from_utf8_lossy(&diff.stdout);
    assert!(diff.contains(&format!("A {created}")), "{diff}");
    assert!(diff.contains(&format!("D {victim}")), "{diff}");
    assert!(diff.contains("C /etc/passwd"), "{diff}");

    let record = rt.record(&name);
    assert_eq!(record["source"]["kind"], "host");
    assert_eq!(record["lower"][0], "/");
    assert_eq!(record["exit"]["code"], 3);
    assert_eq!(
        record["upper"]["kept"], false,
        "without --keep the files go, the diff stays"
    );
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(rt.state_dir().to_str().unwrap()));
}

#[test]
fn cli_run_json_summary_bundle_and_rootfs_worlds() {
    let rt = Runtime::new();
    let bundle_world = unique_id("clibundle");
    let base = substrate_tests::base_bundles();
    let mut bundle = Bundle::new(&bundle_world, &["true"]);
    writable(&mut bundle);
    let out = rt
        .cli(&[
            "run",
            "--json",
            "--keep",
            "--bundle",
            bundle.path_str(),
            "--name",
            &bundle_world,
            "--",
            "sh",
            "-c",
            "echo x > /root/y",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_str(String::from_utf8_lossy(&out.stderr).trim()).unwrap();
    assert_eq!(summary["world"], bundle_world.as_str());
    assert_eq!(summary["status"], 0);
    assert_eq!(summary["diff"]["added"], 1);
    let upper = rt.record(&bundle_world)["upper"]["path"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        std::path::Path::new(&upper).join("root/y").exists(),
        "--keep keeps the files"
    );
    assert!(!base.rootfs().join("root/y").exists());

    let rootfs_world = unique_id("clirootfs");
    let out = rt
        .cli(&[
            "run",
            "--rootfs",
            base.rootfs().to_str().unwrap(),
            "--name",
            &rootfs_world,
            "--",
            "sh",
            "-c",
            "mkdir /made && hostname",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "world\n");
    assert_eq!(rt.record(&rootfs_world)["source"]["kind"], "rootfs");

    let again = rt
        .cli(&[
            "run",
            "--rootfs",
            "/",
            "--name",
            &rootfs_world,
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[test]
fn cli_exit_statuses_signals_and_ctrl_c() {
    let rt = Runtime::new();
    let killed = unique_id("clikill");
    let child = rt
        .cli(&[
            "run",
            "--name",
            &killed,
            "--",
            "sh",
            "-c",
            "echo before > /var/tmp/k; sleep 1000",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    rt.wait_running(&killed);
    let pid = rt.pid(&killed);
    wait_until("the write", || {
        fs::metadata(format!("/proc/{pid}/root/var/tmp/k")).is_ok()
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(137));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("killed SIGKILL"),
        "{out:?}"
    );
    let record = rt.record(&killed);
    assert_eq!(record["exit"], serde_json::json!({"signal": 9}));
    assert_eq!(
        record["diff"]["added"], 1,
        "a killed world still gets its diff: {record}"
    );

    // Ctrl-C: a command that is PID 1 (--no-init) and has no handler
    // ignores SIGINT; the world is stopped all the same after the grace
    // period. (Under the init it stops at once: tests/tests/cli_lifecycle.rs.)
    let interrupted = unique_id("cliint");
    let child = rt
        .cli(&[
            "run",
            "--name",
            &interrupted,
            "--no-init",
            "--",
            "sleep",
            "1000",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    rt.wait_running(&interrupted);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_leftovers(rt.root(), &interrupted);

    let handled = unique_id("cliterm");
    let child = rt
        .cli(&[
            "run",
            "--name",
            &handled,
            "--",
            "sh",
            "-c",
            "trap 'exit 42' INT; touch /var/tmp/ready; while :; do sleep 0.01; done",
        ])
        .spawn()
        .unwrap();
    rt.wait_running(&handled);
    let pid = rt.pid(&handled);
    wait_until("the trap", || {
        fs::metadata(format!("/proc/{pid}/root/var/tmp/ready")).is_ok()
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(42));
}

#[test]
fn cli_ps_inspect_diff_rm_and_unknown_worlds() {
    let rt = Runtime::new();
    let name = unique_id("cliadmin");
    let status = rt
        .cli(&[
            "run",
            "--keep",
            "--name",
            &name,
            "--",
            "sh",
            "-c",
            "touch /var/tmp/substrate-admin",
        ])
        .status()
        .unwrap();
    assert!(status.success());

    let ps = rt.cli(&["ps"]).output().unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    let row = ps
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("{ps}"));
    assert!(row.contains("exited 0") && row.contains("1/0/0"), "{row}");
    let ps_json = rt.cli(&["ps", "--json"]).output().unwrap();
    let line: Value = serde_json::from_str(
        String::from_utf8_lossy(&ps_json.stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line["world"], name.as_str());

    let inspect: Value =
        serde_json::from_slice(&rt.cli(&["inspect", &name]).output().unwrap().stdout).unwrap();
    assert_eq!(inspect["id"], name.as_str());
    assert_eq!(inspect["status"], "exited 0");

    let diff: Value =
        serde_json::from_slice(&rt.cli(&["diff", "--json", &name]).output().unwrap().stdout)
            .unwrap();
    assert_eq!(diff["summary"]["added"], 1);

    for args in [
        vec!["diff", "nope"],
        vec!["inspect", "nope"],
        vec!["rm", "nope"],
        vec!["diff", "../etc"],
    ] {
        let out = rt.cli(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no such world") && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }

    let out = rt.cli(&["rm", &name]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!rt.world_dir(&name).exists(), "rm removes record and upper");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(rt.state_dir().to_str().unwrap()),
        "nothing left mounted"
    );
}

#[test]
fn huge_diffs_keep_the_first_entries_and_exact_totals() {
    let rt = Runtime::new();
    let name = unique_id("huge");
    let out = rt
        .cli(&[
            "run",
            "--name",
            &name,
            "--",
            "sh",
            "-c",
            "mkdir /var/tmp/many && cd /var/tmp/many && for i in $(seq 20); do echo $i > f$i; done",
        ])
        .env("SUBSTRATE_DIFF_MAX_ENTRIES", "5")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = &rt.record(&name)["diff"];
    assert_eq!(summary["added"], 21, "the dir and 20 files: {summary}");
    assert_eq!(summary["entries_kept"], 5);
    assert_eq!(summary["truncated"], true);
    let diff = rt.cli(&["diff", &name]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&diff.stdout).lines().count(), 5);
    assert!(
        String::from_utf8_lossy(&diff.stderr).contains("first 5 of 21 entries"),
        "{diff:?}"
    );
}

#[test]
fn a_world_whose_stdout_is_dev_null_can_write_to_it() {
    // libcontainer 0.7.0 reopened /dev/null read-only over such fds (EBADF
    // on every write); third_party/ carries the fix.
    let rt = Runtime::new();
    let name = unique_id("devnull");
    let status = rt
        .cli(&[
            "run",
            "--name",
            &name,
            "--",
            "sh",
            "-c",
            "echo to-null && echo to-null >&2",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
}

#[test]
fn a_default_world_reaches_itself_on_localhost() {
    // Its own network namespace, no network: lo is up all the same.
    let rt = Runtime::new();
    let name = unique_id("localhost");
    let out = rt.cli_run_ok(
        &name,
        "/usr/bin/python3 -c 'import socket\n\
s = socket.socket()\n\
s.bind((\"127.0.0.1\", 0))\n\
s.listen(1)\n\
c = socket.create_connection((\"127.0.0.1\", s.getsockname()[1]))\n\
a, _ = s.accept()\n\
c.sendall(b\"ping\")\n\
print(a.recv(4).decode())'",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ping");
}
