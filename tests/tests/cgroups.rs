//! A world and the host's cgroups: a world writes no cgroup setting but its
//! own (the spec's read-only cgroup mount is read-only in every hierarchy,
//! and the world has its own cgroup in every hierarchy, named ones such as
//! `name=systemd` included), and whatever cgroups a world with a writable
//! cgroupfs made under its own, `delete` removes.
//!
//! Through the three ways a world is made: `substrate-runtime` with a
//! bundle (with and without a cgroup namespace), `substrate-cli run` with
//! its default spec (a cgroup namespace), and containerd's shim (`ctr run`
//! given the cgroup mount containerd's CRI plugin writes). The worlds that
//! try to write are hostile to a host whose runtime has the bugs these tests
//! are for: [`HostCgroups`] puts back what they changed.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use substrate_tests::cgroup::{self, Version};
use substrate_tests::containerd::{Containerd, IMAGE, RUNTIME};
use substrate_tests::{assert_no_leftovers, unique_id, wait_until, Bundle, Runtime};

/// Run inside a world: what is mounted at and under `/sys/fs/cgroup`, and
/// an attempt to write every cgroup setting and to make a cgroup there.
/// Each attempt only opens for writing (`: >>` writes nothing), so one that
/// succeeds changes nothing; a cgroup made is removed again. Output is
/// one line per fact: `mount <point> <options>`, `WROTE <what>`, or
/// `refused <what>: <error>`.
const PROBES: &str = r#"
awk '$5 == "/sys/fs/cgroup" || index($5, "/sys/fs/cgroup/") == 1 { print "mount", $5, $6 }' /proc/self/mountinfo
for f in $(find /sys/fs/cgroup -maxdepth 2 -type f -perm -200); do
    if err=$( { : >> "$f"; } 2>&1 ); then echo "WROTE $f"; else echo "refused $f: $err"; fi
done
for d in /sys/fs/cgroup /sys/fs/cgroup/*; do
    [ -d "$d" ] && [ ! -L "$d" ] || continue
    if err=$(mkdir "$d/substrate-probe" 2>&1); then
        echo "WROTE mkdir $d/substrate-probe"; rmdir "$d/substrate-probe"
    else
        echo "refused mkdir $d/substrate-probe: $err"
    fi
done
"#;

/// The issue's own reproduction: on a hybrid host the `name=systemd`
/// hierarchy is not a controller libcgroups knows, and a world left in the
/// host's root cgroup there could change the host's root settings.
const SYSTEMD_NOTIFY: &str = "/sys/fs/cgroup/systemd/notify_on_release";
const SYSTEMD_AGENT: &str = "/sys/fs/cgroup/systemd/release_agent";

/// The world's script: the probes into `/tmp/probes`, then `/tmp/probed`,
/// then it waits to be killed (so the host can read its cgroups).
fn probing_script() -> String {
    format!(
        "{{ {PROBES}\n [ -e {SYSTEMD_NOTIFY} ] && {{ echo 1 > {SYSTEMD_NOTIFY}; }} 2>&1 | sed 's/^/refused notify: /'; }} > /tmp/probes 2>&1\n\
         touch /tmp/probed\nexec sleep 600"
    )
}

/// What of the host's cgroups a world must not change: the root
/// settings above, as they were, and no cgroup of the probes' names in a
/// hierarchy's root. Dropped, it puts back whatever a world changed, so a
/// failing test (or the code before the fix) does not leave the host so.
struct HostCgroups {
    settings: Vec<(PathBuf, String)>,
}

/// Names the worlds below give the cgroups they try to make.
const PROBE_DIR: &str = "substrate-probe";
const CHILD_DIR: &str = "substrate-child";

impl HostCgroups {
    fn record() -> Self {
        let settings = [SYSTEMD_NOTIFY, SYSTEMD_AGENT]
            .iter()
            .filter_map(|p| Some((PathBuf::from(p), fs::read_to_string(p).ok()?)))
            .collect();
        HostCgroups { settings }
    }

    fn roots() -> Vec<PathBuf> {
        let mut roots = cgroup::hierarchies();
        roots.push(PathBuf::from(cgroup::ROOT));
        roots
    }

    /// What differs from the record, put back.
    fn restore(&self) -> Vec<String> {
        let mut changed = Vec::new();
        for (path, value) in &self.settings {
            let now = fs::read_to_string(path).unwrap_or_default();
            if &now != value {
                changed.push(format!("{}: {value:?} → {now:?}", path.display()));
                let _ = fs::write(path, value.trim_end());
            }
        }
        for root in Self::roots() {
            for name in [PROBE_DIR, CHILD_DIR] {
                let dir = root.join(name);
                if dir.exists() {
                    changed.push(format!("made {}", dir.display()));
                    remove_cgroup_tree(&dir);
                }
            }
        }
        changed
    }

    #[track_caller]
    fn assert_unchanged(&self) {
        let changed = self.restore();
        assert!(
            changed.is_empty(),
            "a world changed the host's cgroups: {changed:#?}"
        );
    }
}

impl Drop for HostCgroups {
    fn drop(&mut self) {
        self.restore();
    }
}

/// Test cleanup only: thaws, kills and removes a cgroup tree a world left
/// in a host hierarchy's root.
fn remove_cgroup_tree(dir: &Path) {
    let mut dirs = vec![dir.to_owned()];
    let mut i = 0;
    while i < dirs.len() {
        if let Ok(entries) = fs::read_dir(&dirs[i]) {
            dirs.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
        i += 1;
    }
    for dir in &dirs {
        let _ = fs::write(dir.join("freezer.state"), "THAWED");
        let _ = fs::write(dir.join("cgroup.freeze"), "0");
        for pid in fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // A v1 freezer cgroup elsewhere would hold the signal.
            if let Some((_, frozen)) = cgroups_of(pid)
                .into_iter()
                .find(|(h, _)| h.ends_with(":freezer"))
            {
                let state = Path::new(cgroup::ROOT)
                    .join("freezer")
                    .join(frozen.trim_start_matches('/'))
                    .join("freezer.state");
                let _ = fs::write(state, "THAWED");
            }
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    for dir in dirs.iter().rev() {
        let deadline = Instant::now() + Duration::from_secs(2);
        while fs::remove_dir(dir).is_err() && dir.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The v1 hierarchies mounted under `/sys/fs/cgroup` on the host (their
/// directory names); empty on a v2 host.
fn host_v1_hierarchies() -> BTreeSet<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let dash = fields.iter().position(|f| *f == "-")?;
            let point = Path::new(fields[4]);
            (fields.get(dash + 1) == Some(&"cgroup") && point.parent()? == Path::new(cgroup::ROOT))
                .then(|| point.file_name()?.to_str().map(str::to_owned))
                .flatten()
        })
        .collect()
}

/// Checks what [`PROBES`] printed: every cgroup mount read-only, no write
/// that went through, every refusal EROFS, and each hierarchy probed.
#[track_caller]
fn assert_cgroupfs_read_only(probes: &str) {
    let mounts: Vec<&str> = probes.lines().filter(|l| l.starts_with("mount ")).collect();
    assert!(!mounts.is_empty(), "no cgroup mount in the world: {probes}");
    for mount in &mounts {
        let options = mount.rsplit(' ').next().unwrap();
        assert!(
            options.split(',').any(|o| o == "ro"),
            "a cgroup mount is writable: {mount}\n{probes}"
        );
    }
    let wrote: Vec<&str> = probes.lines().filter(|l| l.starts_with("WROTE")).collect();
    assert!(wrote.is_empty(), "the world could write: {wrote:#?}");
    let refused: Vec<&str> = probes
        .lines()
        .filter(|l| l.starts_with("refused"))
        .collect();
    for line in &refused {
        assert!(
            line.ends_with("Read-only file system"),
            "refused for another reason than EROFS: {line}"
        );
    }
    let probed = |dir: &str| {
        refused
            .iter()
            .any(|l| l.starts_with(&format!("refused {dir}/")))
    };
    match cgroup::version() {
        Version::V1 => {
            for hierarchy in host_v1_hierarchies() {
                assert!(
                    probed(&format!("{}/{hierarchy}", cgroup::ROOT)),
                    "{hierarchy} was not probed: {probes}"
                );
            }
        }
        Version::V2 => assert!(probed(cgroup::ROOT), "{probes}"),
    }
}

/// The cgroup of every hierarchy in `/proc/<pid>/cgroup`, as the host sees
/// it: `(hierarchy id:controllers, path)`.
fn cgroups_of(pid: i32) -> Vec<(String, String)> {
    fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let mut fields = line.splitn(3, ':');
            let (id, controllers) = (fields.next().unwrap(), fields.next().unwrap());
            (
                format!("{id}:{controllers}"),
                fields.next().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Every hierarchy the host has (as many lines as the test's own
/// `/proc/self/cgroup`), and the world's own cgroup in each. On v2 only the
/// unified hierarchy counts (under tests/cgroup-v2-unshare.sh the kernel
/// still has v1 hierarchies, mounted nowhere the runtime looks).
#[track_caller]
fn assert_own_cgroup_everywhere(pid: i32, expected: &str) {
    let mounted = |cgroups: Vec<(String, String)>| -> Vec<(String, String)> {
        match cgroup::version() {
            Version::V1 => cgroups,
            Version::V2 => cgroups.into_iter().filter(|(h, _)| h == "0:").collect(),
        }
    };
    let world = mounted(cgroups_of(pid));
    let host = mounted(cgroups_of(std::process::id() as i32));
    assert_eq!(
        world.len(),
        host.len(),
        "the world is in other hierarchies than the host has: {world:?}"
    );
    let elsewhere: Vec<_> = world.iter().filter(|(_, path)| path != expected).collect();
    assert!(
        elsewhere.is_empty(),
        "the world is outside its cgroup {expected} in {elsewhere:?}"
    );
}

/// A bundle whose config mounts cgroupfs with `options` (runc's spec
/// default is `nosuid,noexec,nodev,relatime,ro`).
fn with_cgroup_mount(bundle: &mut Bundle, options: &[&str]) {
    bundle.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": options,
        }))
    });
}

fn with_cgroup_namespace(bundle: &mut Bundle) {
    bundle.edit(|c| {
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "cgroup"}))
    });
}

const READ_ONLY: &[&str] = &["nosuid", "noexec", "nodev", "relatime", "ro"];
const WRITABLE: &[&str] = &["nosuid", "noexec", "nodev", "relatime", "rw"];

/// Waits for the probes of the world whose init is `pid`, and returns
/// them.
fn probes_of(pid: i32) -> String {
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    // A few hundred forks of busybox: seconds under emulation, longer
    // than wait_until's 10 s.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !root.join("tmp/probed").exists() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the world's probes"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    fs::read_to_string(root.join("tmp/probes")).unwrap()
}

fn runtime_world_is_confined(namespace: bool) {
    let rt = Runtime::new();
    let id = unique_id(if namespace { "cgro-ns" } else { "cgro" });
    let script = probing_script();
    let mut bundle = Bundle::new(&id, &["sh", "-c", &script]);
    with_cgroup_mount(&mut bundle, READ_ONLY);
    if namespace {
        with_cgroup_namespace(&mut bundle);
    }
    let host = HostCgroups::record();
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    rt.ok(&["start", &id]);
    let pid = rt.pid(&id);
    let probes = probes_of(pid);
    assert_cgroupfs_read_only(&probes);
    let expected = substrate_tests::cgroup_path(&id);
    assert_own_cgroup_everywhere(pid, &expected);
    // A process exec'd into the world joins it in every hierarchy too.
    let exec = rt.ok(&["exec", &id, "cat", "/proc/self/cgroup"]);
    let inside = if namespace { "/" } else { expected.as_str() };
    for line in exec.lines() {
        if cgroup::version() == Version::V2 && !line.starts_with("0::") {
            continue;
        }
        assert!(line.ends_with(&format!(":{inside}")), "exec: {exec}");
    }
    rt.ok(&["delete", "--force", &id]);
    host.assert_unchanged();
    assert_no_leftovers(rt.root(), &id);
}

/// runc's spec mounts cgroupfs `ro`: on v1 that is a tmpfs with a bind
/// mount of the world's own cgroup for each hierarchy, every one of them
/// read-only; on v2 a read-only cgroup2 mount.
#[test]
fn a_bundles_read_only_cgroup_mount_is_read_only_in_every_hierarchy() {
    runtime_world_is_confined(false);
}

/// With a cgroup namespace each hierarchy is a fresh cgroupfs mount, rooted
/// at the world's own cgroup (`name=systemd` included): read-only as well.
#[test]
fn a_cgroup_namespace_worlds_cgroup_mount_is_read_only_and_its_own() {
    runtime_world_is_confined(true);
}

/// `substrate-cli run`'s default spec: a cgroup namespace and runc's
/// read-only cgroup mount.
#[test]
fn a_cli_world_cannot_write_the_hosts_cgroups() {
    let rt = Runtime::new();
    let name = unique_id("cgcli");
    let host = HostCgroups::record();
    let script = probing_script();
    let mut cli = rt
        .cli(&["run", "--name", &name, "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn substrate-cli");
    // Under emulation (tests/cgroup-v2-vm.sh) a CLI world's first start
    // (its upper filesystem made) takes longer than wait_running allows.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(rt.run(&["state", &name]).status.success() && rt.status(&name) == "running") {
        if let Some(status) = cli.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut cli.stderr.take().unwrap(), &mut stderr).unwrap();
            panic!("substrate-cli run ended ({status}) before its world ran: {stderr}");
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {name} to run"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = rt.pid(&name);
    let probes = probes_of(pid);
    assert_cgroupfs_read_only(&probes);
    assert_own_cgroup_everywhere(pid, &format!("/substrate/{name}"));
    let namespace = |pid: &str| fs::read_link(format!("/proc/{pid}/ns/cgroup")).unwrap();
    assert_ne!(
        namespace(&pid.to_string()),
        namespace("self"),
        "a CLI world has a cgroup namespace of its own"
    );
    rt.ok(&["kill", &name, "KILL"]);
    let stderr = BufReader::new(cli.stderr.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect::<Vec<_>>()
        .join("\n");
    let status = cli.wait().unwrap();
    assert_eq!(status.code(), Some(137), "{stderr}");
    host.assert_unchanged();
    assert_no_leftovers(rt.root(), &name);
}

/// Through containerd's shim. `ctr run`'s spec (containerd 1.6) mounts no
/// cgroupfs; its CRI plugin adds the mount runc's spec has, which is given
/// here with `--mount`.
#[test]
fn a_containerd_world_cannot_write_the_hosts_cgroups() {
    let ctd = Containerd::start();
    let id = unique_id("cgctr");
    let host = HostCgroups::record();
    let script = probing_script();
    ctd.ok(&[
        "run",
        "-d",
        "--runtime",
        RUNTIME,
        "--mount",
        "type=cgroup,src=cgroup,dst=/sys/fs/cgroup,options=nosuid:noexec:nodev:relatime:ro",
        IMAGE,
        &id,
        "sh",
        "-c",
        &script,
    ]);
    let pid: i32 = ctd
        .ok(&["task", "ls"])
        .lines()
        .find(|l| l.split_whitespace().next() == Some(id.as_str()))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .expect("the task's pid");
    let probes = probes_of(pid);
    assert_cgroupfs_read_only(&probes);
    // containerd names the cgroup /<namespace>/<id>.
    assert_own_cgroup_everywhere(pid, &format!("/default/{id}"));
    ctd.ok(&["task", "kill", "-s", "SIGKILL", &id]);
    wait_until("the task to stop", || {
        ctd.task_status(&id).as_deref() == Some("STOPPED")
    });
    ctd.ok(&["task", "delete", &id]);
    ctd.ok(&["containers", "rm", &id]);
    host.assert_unchanged();
    ctd.assert_clean(&id);
}

/// Run in a world with a writable cgroupfs: nested cgroups under its own in
/// every hierarchy, a process moved into one of them in each, and that
/// cgroup frozen, the hardest case for a delete (v1 does not deliver
/// SIGKILL to a frozen task until it is thawed).
const MAKE_CHILDREN: &str = r#"
sleep 600 &
for d in /sys/fs/cgroup /sys/fs/cgroup/*; do
    [ -d "$d" ] && [ ! -L "$d" ] && [ -e "$d/cgroup.procs" ] || continue
    mkdir -p "$d/substrate-child/b/c" && echo "made $d/substrate-child/b/c"
    echo $! > "$d/substrate-child/b/cgroup.procs" 2>/dev/null && echo "moved into $d/substrate-child/b"
done
[ -e /sys/fs/cgroup/freezer/substrate-child/b/freezer.state ] && echo FROZEN > /sys/fs/cgroup/freezer/substrate-child/b/freezer.state
[ -e /sys/fs/cgroup/substrate-child/b/cgroup.freeze ] && echo 1 > /sys/fs/cgroup/substrate-child/b/cgroup.freeze
"#;

/// The world's cgroup and what it made, in every host hierarchy.
fn world_cgroups(id: &str) -> Vec<PathBuf> {
    let path = substrate_tests::cgroup_path(id);
    cgroup::hierarchies()
        .into_iter()
        .map(|root| root.join(path.trim_start_matches('/')))
        .filter(|dir| dir.exists())
        .collect()
}

fn writable_world(id: &str, script: &str, namespace: bool) -> Bundle {
    let mut bundle = Bundle::new(id, &["sh", "-c", script]);
    with_cgroup_mount(&mut bundle, WRITABLE);
    if namespace {
        with_cgroup_namespace(&mut bundle);
    }
    bundle
}

/// Without a cgroup namespace, a writable cgroup2 mount is the host's
/// whole hierarchy: no test world gets that on a v2 host.
fn writable_without_namespace_is_safe() -> bool {
    cgroup::version() == Version::V1
}

fn delete_force_removes_child_cgroups(namespace: bool) {
    let rt = Runtime::new();
    let id = unique_id(if namespace { "cgdel-ns" } else { "cgdel" });
    let host = HostCgroups::record();
    let script = format!("{MAKE_CHILDREN}\ntouch /tmp/ready\nwait");
    let bundle = writable_world(&id, &script, namespace);
    rt.ok(&["create", "--bundle", bundle.path_str(), &id]);
    rt.ok(&["start", &id]);
    let pid = rt.pid(&id);
    wait_until("the world's child cgroups", || {
        Path::new(&format!("/proc/{pid}/root/tmp/ready")).exists()
    });
    let children: Vec<PathBuf> = world_cgroups(&id)
        .into_iter()
        .map(|dir| dir.join("substrate-child/b"))
        .filter(|dir| {
            fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty())
        })
        .collect();
    assert!(
        !children.is_empty(),
        "the world made no child cgroup with a process in it"
    );
    let started = Instant::now();
    rt.ok(&["delete", "--force", &id]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "delete took {:?}",
        started.elapsed()
    );
    assert_no_leftovers(rt.root(), &id);
    host.assert_unchanged();
}

/// `delete --force` of a running world that made child cgroups (a process
/// and a frozen cgroup among them) kills what is in them and removes them,
/// deepest first, in every hierarchy. Without a cgroup namespace where that
/// is safe (v1: the world's mounts are its own cgroups); on a v2 host a
/// writable cgroup2 mount without one would be the host's whole hierarchy,
/// so the world gets a cgroup namespace there.
#[test]
fn delete_force_removes_the_cgroups_a_world_made() {
    delete_force_removes_child_cgroups(!writable_without_namespace_is_safe());
}

#[test]
fn delete_force_removes_the_cgroups_a_world_with_a_cgroup_namespace_made() {
    delete_force_removes_child_cgroups(true);
}

/// The issue's `mkdir /sys/fs/cgroup/memory/x`, with a writable cgroupfs:
/// the world exits 0, and `run` finishes it (exit 0) and leaves nothing.
#[test]
fn run_finishes_a_world_that_made_child_cgroups() {
    let rt = Runtime::new();
    let id = unique_id("cgrun");
    let host = HostCgroups::record();
    let script = "for d in /sys/fs/cgroup /sys/fs/cgroup/*; do \
                  [ -e \"$d/cgroup.procs\" ] && [ ! -L \"$d\" ] && mkdir -p \"$d/substrate-child/y\"; done; exit 0";
    let bundle = writable_world(&id, script, true);
    let out = rt.run(&["run", "--bundle", bundle.path_str(), &id]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_leftovers(rt.root(), &id);
    host.assert_unchanged();
}
