//! `substrate-cli doctor`: can worlds run on this host? One line per check,
//! each with what to do when it fails; exit 1 when something the default
//! world (`substrate-cli run -- CMD`) needs is missing.
//!
//! The checks look at what the runtime will use, the way it uses it: the
//! overlay is mounted over `/` and an ext4 image on a loop device, for
//! real, in a mount namespace of the doctor's own (nothing is mounted on the
//! host, and the kernel takes it all away when the doctor exits).

use std::fmt;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;
use clap::Args;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use substrate_runtime::inject::{preload_library, tracing_enabled, PRELOAD_ENV, TRACE_ENV};
use substrate_runtime::Runtime;

/// `doctor --help`'s opening.
pub const ABOUT: &str = "\
Check this host: kernel, cgroups, tools and dirs a world needs.

One line per check: `ok`, `note` (absent, and nothing needs it yet), `warn`
(worlds run, with less than they could) or `FAIL` (the default world cannot
run), each with what to do about it. Exits 1 when a check fails.

The overlay and the upper layer's ext4 image on a loop device are mounted
for real, in a mount namespace of the doctor's own: the host sees nothing.";

#[derive(Args, Debug)]
pub struct DoctorArgs {}

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Ok,
    /// Absent, and nothing Substrate runs today needs it.
    Note,
    /// Worlds run, with less than they could (untraced calls, swap).
    Warn,
    /// The default world cannot run.
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Status::Ok => "ok",
            Status::Note => "note",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        })
    }
}

/// One line of the report.
struct Check {
    name: &'static str,
    status: Status,
    /// What was found.
    found: String,
    /// What to do about it (when not ok).
    fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, found: impl Into<String>) -> Check {
        Check {
            name,
            status: Status::Ok,
            found: found.into(),
            fix: None,
        }
    }

    fn not_ok(
        name: &'static str,
        status: Status,
        found: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name,
            status,
            found: found.into(),
            fix: Some(fix.into()),
        }
    }
}

pub fn doctor(_args: DoctorArgs, runtime: &Runtime) -> Result<u8> {
    let probes = Probes::new();
    let mut checks = vec![user(), kernel(), namespaces()];
    checks.push(probes.overlay());
    checks.push(probes.upper_fs());
    checks.extend(cgroups());
    checks.push(seccomp());
    checks.push(proc_connector());
    checks.push(preload());
    checks.push(private_dir("state dir", runtime.store().state_dir()));
    checks.push(private_dir("runtime root", runtime.root()));
    // What nothing needs yet, and other ways to run worlds.
    checks.push(user_namespaces());
    checks.push(fanotify());
    checks.extend(sensor());
    checks.extend(egress());
    checks.extend(probes.lsms());
    checks.extend(["runc", "containerd", "podman"].map(engine));

    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    for check in &checks {
        match &check.fix {
            None => println!(
                "{:<5} {:<width$}  {}",
                check.status, check.name, check.found
            ),
            Some(fix) => println!(
                "{:<5} {:<width$}  {} — {fix}",
                check.status, check.name, check.found
            ),
        }
    }
    let count = |status| checks.iter().filter(|c| c.status == status).count();
    let (failed, warned) = (count(Status::Fail), count(Status::Warn));
    if failed > 0 {
        println!(
            "doctor: {failed} of {} checks failed: the default world cannot run here (fix the FAIL lines)",
            checks.len()
        );
        return Ok(1);
    }
    println!(
        "doctor: {} checks, none failed{}: worlds can run here",
        checks.len(),
        match warned {
            0 => String::new(),
            n => format!(" ({n} warning{})", if n == 1 { "" } else { "s" }),
        }
    );
    Ok(0)
}

fn user() -> Check {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        Check::ok("user", "root")
    } else {
        Check::not_ok(
            "user",
            Status::Fail,
            format!("uid {uid}"),
            "run as root (sudo): a world's namespaces, mounts and cgroups need it",
        )
    }
}

/// Kernel releases the runtime relies on: LOOP_CONFIGURE (5.8) attaches a
/// world's upper filesystem image; pidfd_open (5.3) makes kills race-free.
const KERNEL_NEEDED: (u32, u32) = (5, 8);

fn kernel() -> Check {
    let uts = nix::sys::utsname::uname();
    let (release, machine) = match &uts {
        Ok(uts) => (
            uts.release().to_string_lossy().into_owned(),
            uts.machine().to_string_lossy().into_owned(),
        ),
        Err(e) => {
            return Check::not_ok(
                "kernel",
                Status::Fail,
                format!("uname: {e}"),
                "run on Linux",
            )
        }
    };
    let found = format!("Linux {release} ({machine})");
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    if version >= KERNEL_NEEDED {
        Check::ok("kernel", found)
    } else {
        Check::not_ok(
            "kernel",
            Status::Fail,
            format!(
                "{found}: older than {}.{}",
                KERNEL_NEEDED.0, KERNEL_NEEDED.1
            ),
            "a world's upper layer needs loop(4)'s LOOP_CONFIGURE (5.8): use a newer kernel, \
             or run worlds with --disk unlimited",
        )
    }
}

/// The namespaces every CLI world gets.
const NAMESPACES: &[(&str, &str)] = &[
    ("mnt", "CONFIG_NAMESPACES"),
    ("pid", "CONFIG_PID_NS"),
    ("net", "CONFIG_NET_NS"),
    ("ipc", "CONFIG_IPC_NS"),
    ("uts", "CONFIG_UTS_NS"),
];

fn namespaces() -> Check {
    let missing: Vec<&(&str, &str)> = NAMESPACES
        .iter()
        .filter(|(ns, _)| !Path::new("/proc/self/ns").join(ns).exists())
        .collect();
    if missing.is_empty() {
        let names: Vec<&str> = NAMESPACES.iter().map(|(ns, _)| *ns).collect();
        return Check::ok("namespaces", names.join(" "));
    }
    Check::not_ok(
        "namespaces",
        Status::Fail,
        format!(
            "missing: {}",
            missing
                .iter()
                .map(|(ns, _)| *ns)
                .collect::<Vec<_>>()
                .join(" ")
        ),
        format!(
            "a kernel built with {}",
            missing
                .iter()
                .map(|(_, config)| format!("{config}=y"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    )
}

fn user_namespaces() -> Check {
    let max = read_trimmed("/proc/sys/user/max_user_namespaces");
    match max.as_deref().map(str::parse::<u64>) {
        _ if !Path::new("/proc/self/ns/user").exists() => Check::not_ok(
            "user namespaces",
            Status::Note,
            "not in this kernel",
            "nothing needs them yet (worlds run as root); rootless worlds will need CONFIG_USER_NS=y",
        ),
        Some(Ok(0)) => Check::not_ok(
            "user namespaces",
            Status::Note,
            "off (user.max_user_namespaces = 0)",
            "nothing needs them yet; sysctl user.max_user_namespaces=15000 turns them on",
        ),
        Some(Ok(n)) => Check::ok("user namespaces", format!("available (at most {n})")),
        _ => Check::ok("user namespaces", "available"),
    }
}

/// The controllers a CLI world's default limits are written to.
const CONTROLLERS: &[&str] = &["cpu", "memory", "pids"];

fn cgroups() -> Vec<Check> {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
    let root = Path::new("/sys/fs/cgroup");
    let is_cgroup2 =
        |path: &Path| statfs(path).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC);
    let (version, controllers): (String, Vec<String>) = if is_cgroup2(root) {
        let list = read_trimmed(root.join("cgroup.controllers")).unwrap_or_default();
        (
            "v2 (unified)".into(),
            list.split_whitespace().map(str::to_owned).collect(),
        )
    } else if root.join("memory").exists() || root.join("cpu").exists() {
        // v1: /proc/cgroups lists each controller, its hierarchy (0: not
        // mounted as v1) and whether it is enabled.
        let table = read_trimmed("/proc/cgroups").unwrap_or_default();
        let mounted = table
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let fields: Vec<&str> = l.split_whitespace().collect();
                (fields.len() >= 4 && fields[1] != "0" && fields[3] == "1")
                    .then(|| fields[0].to_owned())
            })
            .collect();
        let version = if is_cgroup2(&root.join("unified")) {
            "v1 (hybrid: cgroup2 at /sys/fs/cgroup/unified)"
        } else {
            "v1"
        };
        (version.into(), mounted)
    } else {
        return vec![Check::not_ok(
            "cgroups",
            Status::Fail,
            "no cgroup filesystem at /sys/fs/cgroup",
            "mount cgroup2 there (mount -t cgroup2 none /sys/fs/cgroup), as systemd does",
        )];
    };
    let missing: Vec<&str> = CONTROLLERS
        .iter()
        .copied()
        .filter(|c| !controllers.iter().any(|have| have == c))
        .collect();
    let found = format!("{version}: {}", controllers.join(" "));
    let cgroups = if missing.is_empty() {
        Check::ok("cgroups", found)
    } else {
        Check::not_ok(
            "cgroups",
            Status::Fail,
            format!("{found}; missing {}", missing.join(" ")),
            format!(
                "a world's default limits need the {} controller(s): enable them (v2: in \
                 /sys/fs/cgroup/cgroup.subtree_control; v1: mounted under /sys/fs/cgroup), or \
                 boot without cgroup_disable=",
                missing.join(", ")
            ),
        )
    };
    // As the CLI decides whether to hold swap to the memory limit.
    let v1_memory = root.join("memory");
    let swap = if v1_memory.join("memory.limit_in_bytes").exists() {
        v1_memory.join("memory.memsw.limit_in_bytes").exists()
    } else {
        fs::read_dir(root).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.path().join("memory.swap.max").exists())
        })
    };
    let swap = if swap {
        Check::ok(
            "swap limit",
            "accounted: a world's swap is held to its memory limit",
        )
    } else {
        Check::not_ok(
            "swap limit",
            Status::Warn,
            "not accounted: a world may swap beyond its memory limit",
            "boot with swapaccount=1 (v1) or without cgroup.memory=noswap (v2)",
        )
    };
    vec![cgroups, swap]
}

fn seccomp() -> Check {
    match read_trimmed("/proc/sys/kernel/seccomp/actions_avail") {
        Some(actions) if actions.contains("errno") => {
            Check::ok("seccomp", format!("filters ({actions})"))
        }
        _ => Check::not_ok(
            "seccomp",
            Status::Fail,
            "no seccomp filters in this kernel",
            "a kernel with CONFIG_SECCOMP_FILTER=y, or run worlds with --seccomp unconfined",
        ),
    }
}

fn proc_connector() -> Check {
    let listed = read_trimmed("/proc/net/connector")
        .is_some_and(|table| table.lines().any(|l| l.starts_with("cn_proc")));
    match (listed, tracing_enabled()) {
        (true, _) => Check::ok(
            "process events",
            "proc connector: every fork, exec and exit is traced",
        ),
        (false, false) => Check::not_ok(
            "process events",
            Status::Note,
            "no proc connector",
            format!("{TRACE_ENV}=off: worlds run untraced anyway"),
        ),
        (false, true) => Check::not_ok(
            "process events",
            Status::Fail,
            "no proc connector (cn_proc): a world's processes cannot be traced, so it does not run",
            format!(
                "a kernel with CONFIG_PROC_EVENTS=y, or {TRACE_ENV}=off to run worlds untraced"
            ),
        ),
    }
}

fn preload() -> Check {
    const NAME: &str = "preload";
    if !tracing_enabled() {
        return Check::not_ok(
            NAME,
            Status::Note,
            format!("{TRACE_ENV}=off: worlds run untraced"),
            format!("unset {TRACE_ENV} to trace them"),
        );
    }
    match preload_library() {
        Err(e) => Check::not_ok(
            NAME,
            Status::Fail,
            substrate_runtime::one_line(&e),
            format!(
                "unset {PRELOAD_ENV} (the library beside substrate-cli is used), point it at a \
                 built libsubstrate_preload.so (make build), or set {PRELOAD_ENV}=off"
            ),
        ),
        Ok(None) if std::env::var_os(PRELOAD_ENV).is_some_and(|v| v == "off") => Check::not_ok(
            NAME,
            Status::Warn,
            format!("{PRELOAD_ENV}=off: file, network and DNS calls are not traced"),
            format!("unset {PRELOAD_ENV}"),
        ),
        Ok(None) => Check::not_ok(
            NAME,
            Status::Warn,
            "libsubstrate_preload.so is not beside substrate-cli (nor in ../lib/substrate): \
             file, network and DNS calls are not traced",
            format!("make build (or make install), or set {PRELOAD_ENV}=PATH"),
        ),
        Ok(Some(path)) => {
            let mut magic = [0u8; 4];
            let elf = fs::File::open(&path)
                .and_then(|mut f| f.read_exact(&mut magic))
                .is_ok()
                && &magic == b"\x7fELF";
            if elf {
                Check::ok(NAME, path.display().to_string())
            } else {
                Check::not_ok(
                    NAME,
                    Status::Fail,
                    format!("{} is not a shared library", path.display()),
                    format!("rebuild it (make build), or point {PRELOAD_ENV} at the built one"),
                )
            }
        }
    }
}

fn fanotify() -> Check {
    if Path::new("/proc/sys/fs/fanotify").exists() {
        Check::ok("fanotify", "available (the kernel sensor's file source)")
    } else {
        Check::not_ok(
            "fanotify",
            Status::Warn,
            "not in this kernel",
            "file changes are seen by the preload only (CONFIG_FANOTIFY=y, \
             CONFIG_FANOTIFY_ACCESS_PERMISSIONS=y)",
        )
    }
}

/// The kernel sensor's sources, as this kernel takes them: each program
/// kind is loaded (and unloaded) to know, since a kernel in lockdown lists
/// what it then refuses.
fn sensor() -> Vec<Check> {
    use substrate_sensor::bpf::{probe, SENSOR_ENV};
    if std::env::var(SENSOR_ENV).is_ok_and(|v| v == "off") {
        return vec![Check::not_ok(
            "ebpf sensor",
            Status::Warn,
            format!("turned off ({SENSOR_ENV}=off)"),
            "worlds are traced by the proc connector and the preload only: a static program's \
             argv and any raw connect are missed",
        )];
    }
    let btf = Path::new("/sys/kernel/btf/vmlinux").exists();
    let probe = probe();
    let mut checks = vec![match &probe.exec {
        Ok(program) => Check::ok(
            "ebpf sensor",
            format!("exec: {program} (argv, exe, cwd read in the kernel)"),
        ),
        Err(why) => Check::not_ok(
            "ebpf sensor",
            Status::Warn,
            format!("refused ({why}){}", if btf { "" } else { "; no BTF" }),
            "worlds are traced by the proc connector and the preload only (CONFIG_BPF_SYSCALL, \
             CONFIG_DEBUG_INFO_BTF, CAP_BPF)",
        ),
    }];
    checks.push(match &probe.net {
        Ok(()) => Check::ok(
            "ebpf sockets",
            "connect, bind, listen, accept, sendto (syscall tracepoints)",
        ),
        Err(why) => Check::not_ok(
            "ebpf sockets",
            Status::Warn,
            format!("refused ({why})"),
            "socket calls are seen by the preload only (CONFIG_FTRACE_SYSCALLS, tracefs)",
        ),
    });
    checks.push(match &probe.lsm {
        Ok(()) => Check::ok("bpf lsm", "a BPF LSM program loads"),
        Err(why) => Check::not_ok(
            "bpf lsm",
            Status::Note,
            format!("refused ({why})"),
            "nothing needs it: kernel-enforced policy uses fanotify permission events",
        ),
    });
    checks.push(Check::ok(
        "sensor pins",
        if probe.pinned.is_empty() {
            format!(
                "none: nothing loaded (loaded with the first world, removed with the last; {})",
                substrate_sensor::bpf::SENSOR_DIR
            )
        } else {
            format!(
                "{} program(s) loaded for {} world(s): {}",
                probe.pinned.len(),
                probe.worlds,
                probe.pinned.join(" ")
            )
        },
    ));
    checks
}

/// Other runtimes and engines, found on PATH (worlds under them need them;
/// the CLI's own do not).
/// Networking for worlds (`--allow`, `--net bridge`): an egress table and
/// its log in a scratch network namespace, and the host bridge as it is.
fn egress() -> Vec<Check> {
    use substrate_net::egress::{EgressOptions, EgressTable};
    use substrate_net::netns::NetNs;
    let fix = "worlds with --allow or --net bridge cannot start: the kernel needs nf_tables, nfnetlink_log and veth";
    let table = NetNs::new_anonymous()
        .map_err(|e| format!("no network namespace: {e}"))
        .and_then(|netns| {
            let policy = substrate_policy::network::NetworkPolicy {
                allow: vec!["192.0.2.1:443/tcp".parse().expect("a valid entry")],
                ..Default::default()
            };
            let options = EgressOptions {
                log_group: 1,
                protected: Default::default(),
            };
            EgressTable::install(&netns, &policy, options)
                .map_err(|e| format!("nftables: {}", substrate_runtime::one_line(&e)))?;
            substrate_net::nflog::NflogReader::open(&netns, 1)
                .map_err(|e| format!("NFLOG: {e}"))?;
            Ok(())
        });
    let mut checks = vec![match table {
        Ok(()) => Check::ok(
            "egress table",
            "nftables sets, reject and quota, NFLOG, in a world's netns",
        ),
        Err(found) => Check::not_ok("egress table", Status::Warn, found, fix),
    }];
    let bridge = substrate_net::link::Bridge::default();
    let forwarding = read_trimmed("/proc/sys/net/ipv4/ip_forward");
    let made = Path::new("/sys/class/net").join(&bridge.name).exists();
    let nat = bridge.nat_installed();
    checks.push(match (made, nat) {
        (false, _) => Check::ok(
            "bridge",
            format!(
                "{} not made yet: the first world with --allow makes it ({}, {})",
                bridge.name, bridge.v4, bridge.v6
            ),
        ),
        (true, Ok(true)) => Check::ok(
            "bridge",
            format!(
                "{} ({}, {}), its NAT table installed; IPv4 forwarding {}",
                bridge.name,
                bridge.v4,
                bridge.v6,
                if forwarding.as_deref() == Some("1") { "on" } else { "off" }
            ),
        ),
        (true, nat) => Check::not_ok(
            "bridge",
            Status::Warn,
            format!(
                "{} without its NAT table (inet substrate-nat-{}){}",
                bridge.name,
                bridge.name,
                nat.err().map(|e| format!(": {e}")).unwrap_or_default()
            ),
            format!(
                "worlds reach no further than this host: `ip link del {}`, and the next world makes both again",
                bridge.name
            ),
        ),
    });
    checks
}

fn engine(name: &'static str) -> Check {
    match on_path(name) {
        Some(path) => Check::ok(name, path.display().to_string()),
        None => Check::not_ok(
            name,
            Status::Note,
            "not on PATH",
            format!("only needed to run worlds through {name} (apt-get install {name})"),
        ),
    }
}

/// A dir Substrate keeps private (0700, root's): what worlds wrote and
/// their records are out of other users' reach.
fn private_dir(name: &'static str, dir: &Path) -> Check {
    match fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check::ok(
            name,
            format!("{} (made 0700 by the first world)", dir.display()),
        ),
        Err(e) => Check::not_ok(
            name,
            Status::Fail,
            format!("{}: {e}", dir.display()),
            "make it a directory root can use, or choose another (--state-dir, --root)",
        ),
        Ok(meta) if !meta.is_dir() => Check::not_ok(
            name,
            Status::Fail,
            format!("{} is not a directory", dir.display()),
            "remove it, or choose another (--state-dir, --root)",
        ),
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o7777;
            let found = format!("{} (mode {mode:04o}, uid {})", dir.display(), meta.uid());
            if mode & 0o077 != 0 || meta.uid() != 0 {
                Check::not_ok(
                    name,
                    Status::Warn,
                    found,
                    format!(
                        "chown root {0} && chmod 0700 {0} (each new world also makes it 0700)",
                        dir.display()
                    ),
                )
            } else {
                Check::ok(name, found)
            }
        }
    }
}

/// The probes that mount: run in a mount namespace of this process's own,
/// in a tmpfs mounted there over a new empty dir of the temp dir. Nothing
/// reaches the host's mount table (when the doctor exits, the namespace and
/// all in it go); the empty dir is removed when the probes are done.
struct Probes {
    /// Where to work, or why it could not be made.
    scratch: std::result::Result<PathBuf, String>,
    /// The dir made for it, removed on drop.
    made: Option<PathBuf>,
}

impl Drop for Probes {
    fn drop(&mut self) {
        if let Some(dir) = &self.made {
            let _ = umount2(dir, MntFlags::MNT_DETACH);
            let _ = fs::remove_dir(dir);
        }
    }
}

impl Probes {
    fn new() -> Probes {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join(format!(".substrate-doctor-{}", std::process::id()));
        if let Err(e) = fs::DirBuilder::new().mode(0o700).create(&dir) {
            return Probes {
                scratch: Err(format!("cannot make {}: {e}", dir.display())),
                made: None,
            };
        }
        let scratch = (|| -> std::result::Result<PathBuf, String> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
                .map_err(|e| format!("cannot make a private mount namespace: {e}"))?;
            // Nothing mounted below propagates back to the host.
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .map_err(|e| format!("cannot make / private: {e}"))?;
            mount(
                Some("tmpfs"),
                &dir,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some("mode=0700,size=64m"),
            )
            .map_err(|e| format!("cannot mount a tmpfs to work in: {e}"))?;
            Ok(dir.clone())
        })();
        Probes {
            scratch,
            made: Some(dir),
        }
    }

    /// An overlay over `/`, as the default world's rootfs is: mounted,
    /// written through, the write found in the upper dir.
    fn overlay(&self) -> Check {
        const NAME: &str = "overlay";
        let scratch = match &self.scratch {
            Ok(scratch) => scratch.join("overlay"),
            Err(e) => return Check::not_ok(NAME, Status::Fail, e.clone(), "run as root"),
        };
        let (upper, work, merged) = (scratch.join("u"), scratch.join("w"), scratch.join("m"));
        let made = [&upper, &work, &merged]
            .into_iter()
            .try_for_each(fs::create_dir_all);
        let result = made.map_err(|e| e.to_string()).and_then(|()| {
            let options = format!(
                "lowerdir=/,upperdir={},workdir={}",
                upper.display(),
                work.display()
            );
            mount(
                Some("overlay"),
                &merged,
                Some("overlay"),
                MsFlags::empty(),
                Some(options.as_str()),
            )
            .map_err(|e| format!("cannot mount an overlay over /: {e}"))?;
            let written = fs::write(merged.join(".substrate-doctor"), b"x")
                .map_err(|e| format!("cannot write through the overlay: {e}"));
            let _ = umount2(&merged, MntFlags::MNT_DETACH);
            written?;
            if !upper.join(".substrate-doctor").exists() {
                return Err("a write through the overlay did not land in its upper dir".into());
            }
            Ok(())
        });
        let params: Vec<String> = ["redirect_dir", "index", "metacopy", "xino_auto"]
            .iter()
            .filter_map(|p| {
                read_trimmed(format!("/sys/module/overlay/parameters/{p}"))
                    .map(|v| format!("{p}={v}"))
            })
            .collect();
        match result {
            Ok(()) => Check::ok(
                NAME,
                format!(
                    "mounts over / and takes writes (defaults: {})",
                    if params.is_empty() {
                        "-".into()
                    } else {
                        params.join(" ")
                    }
                ),
            ),
            Err(e) => Check::not_ok(
                NAME,
                Status::Fail,
                e,
                "a kernel with CONFIG_OVERLAY_FS (modprobe overlay); / must be a filesystem \
                 overlayfs can use as a lower (ext4, xfs, btrfs, overlay)",
            ),
        }
    }

    /// The default world's upper layer: an ext4 image (mkfs.ext4) on a
    /// loop device, mounted.
    fn upper_fs(&self) -> Check {
        const NAME: &str = "upper layer";
        const ESCAPE: &str = "or run worlds with --disk unlimited (the upper layer on the \
                              state dir's own filesystem)";
        let Some(mkfs) = on_path("mkfs.ext4") else {
            let fix = match ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"]
                .into_iter()
                .find(|p| Path::new(p).exists())
            {
                Some(found) => format!(
                    "{found} is not on PATH: add {} to PATH, {ESCAPE}",
                    Path::new(found)
                        .parent()
                        .unwrap_or(Path::new("/"))
                        .display()
                ),
                None => format!("apt-get install e2fsprogs, {ESCAPE}"),
            };
            return Check::not_ok(NAME, Status::Fail, "no mkfs.ext4 on PATH", fix);
        };
        if let Err(e) = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/loop-control")
        {
            return Check::not_ok(
                NAME,
                Status::Fail,
                format!("cannot open /dev/loop-control: {e}"),
                format!("modprobe loop (a kernel with CONFIG_BLK_DEV_LOOP), {ESCAPE}"),
            );
        }
        let version = Command::new(&mkfs)
            .arg("-V")
            .output()
            .ok()
            .and_then(|out| {
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .next()
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let scratch = match &self.scratch {
            Ok(scratch) => scratch.join("upper"),
            Err(e) => return Check::not_ok(NAME, Status::Fail, e.clone(), "run as root"),
        };
        match probe_ext4_on_loop(&mkfs, &scratch) {
            Ok(()) => Check::ok(
                NAME,
                format!("an ext4 image on a loop device mounts ({version}, /dev/loop-control)"),
            ),
            Err(e) => Check::not_ok(
                NAME,
                Status::Fail,
                e,
                format!("modprobe loop ext4 (CONFIG_BLK_DEV_LOOP, CONFIG_EXT4_FS), {ESCAPE}"),
            ),
        }
    }

    /// Landlock, from the kernel's list of active LSMs
    /// (securityfs; mounted in the private namespace when the host has not).
    fn lsms(&self) -> Vec<Check> {
        let list = read_trimmed("/sys/kernel/security/lsm").or_else(|| {
            let dir = self.scratch.as_ref().ok()?.join("securityfs");
            fs::create_dir_all(&dir).ok()?;
            mount(
                Some("securityfs"),
                &dir,
                Some("securityfs"),
                MsFlags::empty(),
                None::<&str>,
            )
            .ok()?;
            let list = read_trimmed(dir.join("lsm"));
            let _ = umount2(&dir, MntFlags::MNT_DETACH);
            list
        });
        let Some(list) = list else {
            return vec![Check::not_ok(
                "lsm",
                Status::Note,
                "the active LSMs cannot be read (no securityfs)",
                "nothing needs Landlock yet",
            )];
        };
        let active: Vec<&str> = list.split(',').collect();
        let lsm = |name: &'static str, lsm: &str, boot: &str, later: &str| {
            // (BPF LSM is listed even where its programs are refused: the
            // sensor's probe loads one to know.)
            if active.contains(&lsm) {
                Check::ok(name, format!("active (LSMs: {})", active.join(" ")))
            } else {
                Check::not_ok(
                    name,
                    Status::Note,
                    format!("not active (LSMs: {})", active.join(" ")),
                    format!("nothing needs it yet ({later}: boot with lsm={list},{boot})"),
                )
            }
        };
        vec![lsm(
            "landlock",
            "landlock",
            "landlock",
            "in-world path rules will use it",
        )]
    }
}

/// Makes an 8 MiB ext4 image in `dir`, mounts it through a loop device
/// (mount(8) attaches one with autoclear, so the device is freed when the
/// mount goes) and writes a file in it.
fn probe_ext4_on_loop(mkfs: &Path, dir: &Path) -> std::result::Result<(), String> {
    fs::create_dir_all(dir.join("m")).map_err(|e| e.to_string())?;
    let image = dir.join("layer.img");
    fs::File::create(&image)
        .and_then(|f| f.set_len(8 << 20))
        .map_err(|e| format!("cannot make an image: {e}"))?;
    let out = Command::new(mkfs)
        .args(["-q", "-F", "-O", "^has_journal"])
        .arg(&image)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", mkfs.display()))?;
    if !out.status.success() {
        return Err(format!(
            "mkfs.ext4 failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mount_point = dir.join("m");
    let out = Command::new("mount")
        .args(["-n", "-t", "ext4", "-o", "loop,nosuid,nodev,noexec"])
        .arg(&image)
        .arg(&mount_point)
        .output()
        .map_err(|e| format!("cannot run mount(8): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cannot mount an ext4 image on a loop device: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let written = fs::write(mount_point.join("probe"), b"x")
        .map_err(|e| format!("cannot write in the mounted image: {e}"));
    let _ = umount2(&mount_point, MntFlags::MNT_DETACH);
    written
}

/// `name` in `$PATH`, as `Command::new(name)` would find it.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}
