//! Escapes: the classic ways out of a container, each tried from inside a
//! world through all three paths that run worlds (`substrate-cli run`'s
//! default world, `substrate-runtime` on an OCI bundle, `ctr run` through
//! the shim), each asserted blocked *and* the host unchanged.
//!
//! Each attack is written once, as a POSIX `sh` script that runs under the
//! host's shell (the CLI's default world is the host's root filesystem) and
//! under busybox (the bundle and image worlds have nothing else). A script
//! prints `ESCAPED: <evidence>` for anything that got through and `DONE`
//! when it has tried everything, so that a script that never ran cannot
//! pass for a blocked attack. Around every attack the host's own state is
//! read before and after: sysctls, cgroup `release_agent`s, loaded
//! modules, the runtime binaries, canary files (one on the root filesystem,
//! one on a tmpfs no world's lower holds). Whatever an attack changed on the
//! host is put back before the test fails, so a product that lets one
//! through does not leave the machine damaged.
//!
//! The attacks run one at a time (`HOST`): what they measure is the host,
//! the one state every test shares; a change made by one must not be blamed
//! on another.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use substrate_tests::containerd::{Containerd, IMAGE, RUNTIME};
use substrate_tests::{
    assert_no_leftovers, base_bundles, bin, bin_dir, unique_id, wait_until, Bundle, Runtime,
};

static HOST: Mutex<()> = Mutex::new(());

fn host_lock() -> MutexGuard<'static, ()> {
    HOST.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// --- what an attack may reach: canaries ----------------------------------------

/// Files on the host that no world may read or change: `root` on the root
/// filesystem (the CLI's default world sees it read-only through its lower,
/// by design; no other world may see it at all), `hidden` on a tmpfs of its
/// own (no world's lower holds it), and an empty directory `target` on the
/// root filesystem that symlinks in an image point at.
struct Canaries {
    _dir: tempfile::TempDir,
    tmpfs: PathBuf,
    root: PathBuf,
    hidden: PathBuf,
    target: PathBuf,
    secret: String,
}

impl Canaries {
    fn new(marker: &str) -> Canaries {
        let dir = tempfile::Builder::new()
            .prefix("substrate-escape-")
            .tempdir_in("/var/tmp")
            .expect("a temp dir on the root filesystem");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let secret = format!("host-secret-{marker}");
        let root = dir.path().join("root-canary");
        fs::write(&root, format!("{secret} (root fs)\n")).unwrap();
        let target = dir.path().join("target");
        fs::create_dir(&target).unwrap();
        let tmpfs = dir.path().join("tmpfs");
        fs::create_dir(&tmpfs).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m,mode=0755", "escape-canary"])
            .arg(&tmpfs)
            .status()
            .expect("mount");
        assert!(status.success(), "cannot mount the canary tmpfs");
        let hidden = tmpfs.join("hidden-canary");
        fs::write(&hidden, format!("{secret} (tmpfs)\n")).unwrap();
        Canaries {
            _dir: dir,
            tmpfs,
            root,
            hidden,
            target,
            secret,
        }
    }

    /// Fills the placeholders of an attack script.
    fn fill(&self, script: &str, marker: &str) -> String {
        script
            .replace("@SECRET@", &self.secret)
            .replace("@ROOT_CANARY@", path_str(&self.root))
            .replace("@HIDDEN@", path_str(&self.hidden))
            .replace("@MARK@", marker)
            .replace("@HOST_BINARIES@", &host_binary_ids().join(" "))
    }
}

impl Drop for Canaries {
    fn drop(&mut self) {
        // Before the temp dir goes: its tmpfs first.
        let _ = Command::new("umount").arg(&self.tmpfs).status();
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}

/// `dev:inode` of the binaries a world must never open (CVE-2019-5736
/// rewrote runc through `/proc/<runc's pid>/exe`), as busybox's
/// `stat -L -c %d:%i` prints them.
fn host_binary_ids() -> Vec<String> {
    static IDS: OnceLock<Vec<String>> = OnceLock::new();
    IDS.get_or_init(|| {
        host_binaries()
            .iter()
            .filter_map(|p| fs::metadata(p).ok())
            .map(|m| format!("{}:{}", m.dev(), m.ino()))
            .collect()
    })
    .clone()
}

fn host_binaries() -> Vec<PathBuf> {
    [
        "substrate-runtime",
        "substrate-cli",
        "containerd-shim-substrate-v1",
        "libsubstrate_preload.so",
    ]
    .iter()
    .map(|name| bin_dir().join(name))
    .chain(["/usr/bin/containerd", "/usr/bin/ctr"].map(PathBuf::from))
    .collect()
}

// --- the host's state, before and after -------------------------------------------

/// Sysctls a world could use to run code on the host or change it, and that
/// nothing else on a test machine changes (not `ip_forward`: CNI sets it).
const SYSCTLS: &[&str] = &[
    "/proc/sys/kernel/core_pattern",
    "/proc/sys/kernel/modprobe",
    "/proc/sys/kernel/hostname",
    "/proc/sys/kernel/domainname",
    "/proc/sys/kernel/sysrq",
    "/proc/sys/kernel/panic",
    "/proc/sys/vm/panic_on_oom",
    "/proc/sys/fs/suid_dumpable",
    "/proc/sys/kernel/kptr_restrict",
];

#[derive(Clone, Debug, PartialEq, Eq)]
struct HostState {
    /// Writable host files (sysctls, release agents) and their contents.
    restorable: BTreeMap<PathBuf, String>,
    /// `/proc/modules`' module names (none on a kernel without modules).
    modules: Vec<String>,
    /// Inode, size, mtime and ctime of each binary: a write or chmod shows.
    binaries: BTreeMap<PathBuf, (u64, u64, i64, i64, i64, i64)>,
    /// Contents and mode of the canaries; what the target dir holds.
    canaries: BTreeMap<PathBuf, (String, u32)>,
    target: Vec<String>,
    /// Whether the canary tmpfs is still a mount point of its own.
    tmpfs_mounted: bool,
    /// Lines of the kernel log about sysrq.
    sysrq_log: usize,
}

fn release_agents() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for hierarchy in fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        for name in ["release_agent", "notify_on_release"] {
            let file = hierarchy.path().join(name);
            if file.exists() {
                files.push(file);
            }
        }
    }
    files
}

impl HostState {
    fn read(canaries: &Canaries) -> HostState {
        let restorable = SYSCTLS
            .iter()
            .map(PathBuf::from)
            .chain(release_agents())
            .filter_map(|p| fs::read_to_string(&p).ok().map(|v| (p, v)))
            .collect();
        let modules = fs::read_to_string("/proc/modules")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect();
        let binaries = host_binaries()
            .into_iter()
            .filter_map(|p| {
                let m = fs::metadata(&p).ok()?;
                Some((
                    p,
                    (
                        m.ino(),
                        m.size(),
                        m.mtime(),
                        m.mtime_nsec(),
                        m.ctime(),
                        m.ctime_nsec(),
                    ),
                ))
            })
            .collect();
        let canaries_state = [&canaries.root, &canaries.hidden]
            .into_iter()
            .map(|p| {
                let content = fs::read_to_string(p).unwrap_or_else(|e| format!("<{e}>"));
                let mode = fs::metadata(p).map(|m| m.mode()).unwrap_or(0);
                (p.clone(), (content, mode))
            })
            .collect();
        let mut target: Vec<String> = fs::read_dir(&canaries.target)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_else(|e| vec![format!("<{e}>")]);
        target.sort();
        let tmpfs_mounted = fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split_whitespace().nth(4) == Some(path_str(&canaries.tmpfs)));
        let sysrq_log = Command::new("dmesg")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter(|l| l.to_ascii_lowercase().contains("sysrq"))
                    .count()
            })
            .unwrap_or(0);
        HostState {
            restorable,
            modules,
            binaries,
            canaries: canaries_state,
            target,
            tmpfs_mounted,
            sysrq_log,
        }
    }

    /// What changed from `self` to `after`, in words.
    fn changes(&self, after: &HostState) -> Vec<String> {
        let mut changes = Vec::new();
        for (path, before) in &self.restorable {
            let now = after.restorable.get(path);
            if now != Some(before) {
                changes.push(format!("{}: {before:?} -> {now:?}", path.display()));
            }
        }
        if self.modules != after.modules {
            changes.push(format!(
                "loaded modules: {:?} -> {:?}",
                self.modules, after.modules
            ));
        }
        // The same file changed; a new inode is a rebuild (cargo links a
        // new file into place), which a world cannot do.
        for (path, before) in &self.binaries {
            if let Some(now) = after.binaries.get(path) {
                if now.0 == before.0 && now != before {
                    changes.push(format!("binary {} was written or changed", path.display()));
                }
            }
        }
        for (path, before) in &self.canaries {
            let now = after.canaries.get(path);
            if now != Some(before) {
                changes.push(format!("canary {}: {before:?} -> {now:?}", path.display()));
            }
        }
        if self.target != after.target {
            changes.push(format!(
                "the host directory an image's symlink names now holds {:?}",
                after.target
            ));
        }
        if self.tmpfs_mounted != after.tmpfs_mounted {
            changes.push("the canary tmpfs was unmounted".into());
        }
        if after.sysrq_log > self.sysrq_log {
            changes.push("the kernel log has new sysrq lines".into());
        }
        changes
    }

    /// Writes back every restorable file that changed (best effort).
    fn restore(&self, after: &HostState) {
        for (path, before) in &self.restorable {
            if after.restorable.get(path) != Some(before) {
                let _ = fs::write(path, before);
            }
        }
    }
}

// --- the attacks ---------------------------------------------------------------------

/// Shell helpers every script starts with. `has_cap NAME BIT`: whether the
/// capability is in the shell's bounding set.
const PRELUDE: &str = r#"
escaped() { echo "ESCAPED: $*"; }
has_cap() {
  v=$(grep '^CapBnd:' /proc/$$/status | cut -f2)
  [ $(( (0x$v >> $2) & 1 )) -eq 1 ] && escaped "the world holds $1 in its bounding set"
  return 0
}
secret_in() { grep -q "@SECRET@" "$@" 2>/dev/null; }
"#;

/// How a world is made for an attack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setup {
    /// The path's ordinary world, the script its process.
    Plain,
    /// The script also runs in a process exec'd into a running world
    /// (`substrate-runtime exec`, `ctr task exec`).
    AlsoExec,
    /// `process.cwd` (and `exec --cwd`) is `/proc/self/fd/N`, for N from
    /// 3 to 9 (CVE-2024-21626).
    CwdThroughFd,
    /// A world runs a watcher while the runtime execs `#!/proc/self/exe`
    /// into it (CVE-2019-5736).
    SelfExe,
    /// The setuid files the script plants are looked for on the host.
    PlantSetuid,
    /// The bundle's rootfs is a symlink to the host's `/`.
    SymlinkedRootfs,
    /// The image's `/.substrate` and `/etc/ld.so.preload` (where the
    /// runtime injects its tracer) are symlinks to host paths.
    SymlinkedInjectionTargets,
    /// The bundle asks for the host's `/` as its lower layer.
    LowerAnnotation,
    /// The caller asks for a seccomp filter (the bundle carries one;
    /// `ctr run --seccomp`): the world's process and every process exec'd
    /// into it must run under it. (Without one, the runtime and ctr paths
    /// run unfiltered, exactly as runc does: OCI semantics.)
    SeccompAsked,
}

struct Attack {
    script: &'static str,
    setup: Setup,
}

const PROC_SYS: Attack = Attack {
    setup: Setup::Plain,
    script: r#"
try_write() { if (printf '%s\n' "$2" > "$1") 2>/dev/null; then escaped "wrote $2 to $1"; fi; }
try_write /proc/sys/kernel/core_pattern /tmp/substrate-escape-@MARK@-core
try_write /proc/sys/kernel/modprobe /substrate-escape-@MARK@-modprobe
try_write /proc/sys/fs/suid_dumpable 2
try_write /proc/sys/kernel/domainname substrate-escape-@MARK@
try_write /proc/sys/net/ipv4/ip_forward 1
# The world's own hostname (UTS namespace): allowed; the host's must not change.
hostname substrate-escape-@MARK@ 2>/dev/null
for m in /proc/sys /proc/sys/kernel /proc/sysrq-trigger; do
  mount -o remount,rw,bind "$m" 2>/dev/null && escaped "remounted $m read-write"
done
try_write /proc/sys/kernel/core_pattern /tmp/substrate-escape-@MARK@-core2
echo DONE
"#,
};

const SYSRQ: Attack = Attack {
    setup: Setup::Plain,
    script: r#"
# h: the help text, into the kernel log; harmless if it gets through.
if [ -e /proc/sysrq-trigger ] && (printf h > /proc/sysrq-trigger) 2>/dev/null; then
  escaped "wrote to /proc/sysrq-trigger"
fi
if [ -e /proc/sys/kernel/sysrq ] && (printf '1\n' > /proc/sys/kernel/sysrq) 2>/dev/null; then
  escaped "wrote /proc/sys/kernel/sysrq"
fi
has_cap CAP_SYS_BOOT 22
echo DONE
"#,
};

const KCORE: Attack = Attack {
    setup: Setup::Plain,
    script: r#"
for f in /proc/kcore /proc/kmem /proc/mem /dev/mem /dev/kmem /dev/port; do
  [ -e "$f" ] || continue
  n=$(head -c 4096 "$f" 2>/dev/null | wc -c)
  [ "$n" -gt 0 ] && escaped "read $n bytes of $f"
done
for f in /proc/timer_list /proc/sched_debug /proc/keys /proc/latency_stats; do
  [ -e "$f" ] || continue
  n=$(head -c 4096 "$f" 2>/dev/null | wc -c)
  [ "$n" -gt 0 ] && escaped "read $n bytes of $f (masked in every runtime's defaults)"
done
has_cap CAP_SYS_RAWIO 17
echo DONE
"#,
};

const MKNOD_DEVICES: Attack = Attack {
    setup: Setup::Plain,
    script: r#"
# The host's disks (/proc/partitions is not namespaced) and memory, as
# device nodes made in the world, in every writable place.
devices=""
while read -r major minor blocks name; do
  case "$major" in ''|major) continue ;; esac
  devices="$devices b:$major:$minor:$name"
done < /proc/partitions
devices="$devices c:1:1:mem c:1:2:kmem c:1:4:port"
for dir in /dev /root /tmp /var/tmp /; do
  for d in $devices; do
    IFS=: read -r type major minor name <<EOF
$d
EOF
    node="$dir/.escape-@MARK@-$name"
    mknod "$node" "$type" "$major" "$minor" 2>/dev/null || continue
    n=$(head -c 512 "$node" 2>/dev/null | wc -c)
    [ "$n" -gt 0 ] && escaped "read $n bytes of the host's $name through $node"
    rm -f "$node"
  done
done
echo DONE
"#,
};

const MOUNT: Attack = Attack {
    setup: Setup::Plain,
    script: r#"
has_cap CAP_SYS_ADMIN 21
m=/tmp/.escape-@MARK@-mnt
mkdir -p "$m"
mount -t tmpfs none "$m" 2>/dev/null && { escaped "mounted a tmpfs"; umount "$m"; }
mount -t proc proc "$m" 2>/dev/null && { escaped "mounted a procfs"; umount "$m"; }
mount -t sysfs sysfs "$m" 2>/dev/null && { escaped "mounted a sysfs"; umount "$m"; }
mount -t debugfs debugfs "$m" 2>/dev/null && { escaped "mounted debugfs"; umount "$m"; }
mount -o remount,rw /sys 2>/dev/null && escaped "remounted /sys read-write"
# The host's root disk, through a node of its own.
while read -r major minor blocks name; do
  case "$major" in ''|major) continue ;; esac
  mknod "$m.dev" b "$major" "$minor" 2>/dev/null || continue
  if mount -o ro "$m.dev" "$m" 2>/dev/null; then
    escaped "mounted the host's $name"
    secret_in -r "$m" && escaped "read the host's files from $name"
    umount "$m"
  fi
  rm -f "$m.dev"
done < /proc/partitions
echo DONE
"#,
};

const MODULE: Attack = Attack {
    setup: Setup::Plain,
    script: r#"
has_cap CAP_SYS_MODULE 16
printf 'not a module' > /tmp/.escape-@MARK@.ko
out=$(busybox insmod /tmp/.escape-@MARK@.ko 2>&1)
case "$out" in
  # EPERM: no capability; ENOSYS (busybox: "does not support"): a
  # kernel without modules.
  *"not permitted"*|*"Function not implemented"*|*"does not support"*) ;;
  *) escaped "init_module was not refused for want of a capability: $out" ;;
esac
if [ -e /proc/sys/kernel/modules_disabled ] && (printf '0\n' > /proc/sys/kernel/modules_disabled) 2>/dev/null; then
  escaped "wrote modules_disabled"
fi
echo DONE
"#,
};

const NAMESPACES: Attack = Attack {
    setup: Setup::Plain,
    script: r#"
for ns in mnt pid net ipc uts; do echo "NS $ns $(readlink /proc/$$/ns/$ns)"; done
has_cap CAP_SYS_PTRACE 19
# Every process the world can see, every way into its root and cwd.
for p in /proc/[0-9]*; do
  for via in root cwd; do
    secret_in "$p/$via@HIDDEN@" && escaped "read the host's tmpfs through $p/$via"
  done
done
secret_in @HIDDEN@ && escaped "read the host's tmpfs directly"
if command -v nsenter >/dev/null 2>&1; then
  out=$(nsenter -t 1 -m -u -i -n -p cat @HIDDEN@ 2>/dev/null)
  case "$out" in *@SECRET@*) escaped "nsenter into pid 1's namespaces reached the host" ;; esac
fi
# pid 1 of the world must be the world's own.
[ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && escaped "pid 1 is the host's init"
echo DONE
"#,
};

const CGROUP_ESCAPE: Attack = Attack {
    setup: Setup::Plain,
    script: r#"
before=$(cat /proc/$$/cgroup)
for f in /sys/fs/cgroup/*/release_agent /sys/fs/cgroup/release_agent; do
  [ -e "$f" ] || continue
  (printf '/substrate-escape-@MARK@\n' > "$f") 2>/dev/null && escaped "wrote $f"
done
# Each hierarchy's root only: the host state read around the attack holds
# (and puts back) those; a cgroup below may be another world's.
for f in /sys/fs/cgroup/*/notify_on_release; do
  [ -e "$f" ] || continue
  (printf '1\n' > "$f") 2>/dev/null && escaped "wrote $f"
done
# A hierarchy of its own, whose root has a release_agent (the 2019 escape).
m=/tmp/.escape-@MARK@-cg
mkdir -p "$m"
for c in rdma memory pids cpu,cpuacct freezer devices; do
  if mount -t cgroup -o "$c" cgroup "$m" 2>/dev/null; then
    escaped "mounted the $c cgroup hierarchy"
    (printf '/substrate-escape-@MARK@\n' > "$m/release_agent") 2>/dev/null && escaped "wrote the $c release_agent"
    umount "$m"
  fi
done
# Limits and device rules of its own cgroup, and leaving it.
for f in /sys/fs/cgroup/devices/devices.allow /sys/fs/cgroup/devices/*/devices.allow; do
  [ -e "$f" ] || continue
  (printf 'a *:* rwm\n' > "$f") 2>/dev/null && escaped "widened its devices through $f"
done
for f in /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; do
  [ -e "$f" ] || continue
  old=$(cat "$f")
  (printf '%s\n' "$old" > "$f") 2>/dev/null && escaped "the cgroupfs is writable: $f"
done
for f in /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/cgroup.procs; do
  [ -e "$f" ] || continue
  (echo $$ > "$f") 2>/dev/null
done
[ "$(cat /proc/$$/cgroup)" = "$before" ] || escaped "moved itself to another cgroup: $(cat /proc/$$/cgroup | tr '\n' ' ')"
echo DONE
"#,
};

const LEAKED_FDS: Attack = Attack {
    setup: Setup::AlsoExec,
    script: r#"
# CVE-2024-21626: a runtime's fd to a host directory, inherited.
for p in $$ 1; do
  for fd in /proc/$p/fd/*; do
    [ -e "$fd" ] || continue
    if [ -d "$fd" ]; then
      escaped "fd $fd of pid $p is a directory: $(readlink "$fd")"
      secret_in "$fd/../../../../../../../..@HIDDEN@" && escaped "climbed out through $fd"
    fi
  done
done
echo DONE
"#,
};

const CWD_THROUGH_FD: Attack = Attack {
    setup: Setup::CwdThroughFd,
    script: r#"
echo "CWD $(pwd -P 2>/dev/null)"
secret_in "../../../../../../../..@HIDDEN@" && escaped "climbed from its cwd $(pwd) to the host's tmpfs"
secret_in "../../../../../../../..@ROOT_CANARY@" && escaped "climbed from its cwd $(pwd) to the host's root"
echo DONE
"#,
};

const SELF_EXE: Attack = Attack {
    setup: Setup::SelfExe,
    script: r#"
# CVE-2019-5736: a process of the runtime's that comes into the world is
# opened through /proc/PID/exe, to be written once it has exited.
printf '#!/proc/self/exe\n' > /x && chmod 755 /x
watch() {
  end=$(( $(date +%s) + 10 ))
  while [ "$(date +%s)" -lt "$end" ] && [ ! -e /tmp/.stop-@MARK@ ]; do
    for e in /proc/[0-9]*/exe; do
      id=$(stat -L -c %d:%i "$e" 2>/dev/null) || continue
      case " @HOST_BINARIES@ " in
        *" $id "*)
          escaped "reached a host binary through $e ($(readlink "$e"))"
          (exec 3>>"$e") 2>/dev/null && escaped "opened $e for writing" ;;
      esac
    done
  done
}
watch &
echo READY
# What the world can do itself: run its own /proc/self/exe trick.
/x >/dev/null 2>&1
sleep 1
/x >/dev/null 2>&1
wait
echo DONE
"#,
};

const SETUID: Attack = Attack {
    setup: Setup::PlantSetuid,
    script: r#"
for d in / /root /var/tmp /tmp /dev/shm; do
  mkdir -p "$d/.escape-@MARK@" 2>/dev/null && chmod 755 "$d/.escape-@MARK@" || continue
  f="$d/.escape-@MARK@/busybox"
  cp /bin/busybox "$f" 2>/dev/null && chmod 6755 "$f" 2>/dev/null && echo "PLANTED $f"
done
echo READY
sleep 4
echo DONE
"#,
};

const SYMLINKED_ROOTFS: Attack = Attack {
    setup: Setup::SymlinkedRootfs,
    script: r#"
secret_in @ROOT_CANARY@ && escaped "read the host's root filesystem (the rootfs symlink was followed)"
[ -e /etc/os-release ] && escaped "sees the host's /etc/os-release"
echo DONE
"#,
};

const SYMLINKED_INJECTION: Attack = Attack {
    setup: Setup::SymlinkedInjectionTargets,
    script: r#"
secret_in /etc/ld.so.preload && escaped "/etc/ld.so.preload shows the host file its symlink names"
secret_in @ROOT_CANARY@ && escaped "read the host's root filesystem"
ls /.substrate >/dev/null 2>&1
echo DONE
"#,
};

const LOWER_ANNOTATION: Attack = Attack {
    setup: Setup::LowerAnnotation,
    script: r#"
secret_in @ROOT_CANARY@ && escaped "read the host's root filesystem (the bundle chose its lower)"
echo DONE
"#,
};

const SECCOMP: Attack = Attack {
    setup: Setup::SeccompAsked,
    script: r#"
mode=$(grep '^Seccomp:' /proc/$$/status | cut -f2)
[ "$mode" = 2 ] || escaped "no seccomp filter (Seccomp: $mode): every syscall of the kernel is open to the world"
echo DONE
"#,
};

// --- the three paths ---------------------------------------------------------------------

/// What came of one world: its output (stdout and stderr), whether the
/// world was refused before its process ran, extra evidence the runner
/// found on the host.
#[derive(Default)]
struct Outcome {
    output: String,
    /// Runs of the script: how many printed DONE, of how many tried.
    done: usize,
    runs: usize,
    /// Runs refused before the script ran (a refused world is a blocked
    /// attack for the setups that are the attack themselves).
    refused: usize,
    evidence: Vec<String>,
}

impl Outcome {
    fn add(&mut self, what: &str, out: &Output) {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        self.runs += 1;
        if stdout.contains("DONE") {
            self.done += 1;
        } else if !out.status.success() {
            self.refused += 1;
        }
        self.output
            .push_str(&format!("--- {what}: {}\n{stdout}{stderr}", out.status));
    }
}

#[derive(Clone, Copy, Debug)]
enum Path3 {
    Cli,
    Runtime,
    Ctr,
}

/// A copy of the busybox rootfs (the shared one is never written).
fn rootfs_copy(dir: &Path) -> PathBuf {
    let copy = dir.join("rootfs");
    let status = Command::new("cp")
        .arg("-a")
        .arg(base_bundles().rootfs())
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(status.success());
    copy
}

/// The rootfs a setup asks for, or None for the ordinary one.
fn special_rootfs(setup: Setup, canaries: &Canaries, scratch: &Path) -> Option<PathBuf> {
    match setup {
        Setup::SymlinkedRootfs => {
            let link = scratch.join("rootfs");
            std::os::unix::fs::symlink("/", &link).unwrap();
            Some(link)
        }
        Setup::SymlinkedInjectionTargets => {
            let rootfs = rootfs_copy(scratch);
            std::os::unix::fs::symlink(&canaries.target, rootfs.join(".substrate")).unwrap();
            std::os::unix::fs::symlink(&canaries.root, rootfs.join("etc/ld.so.preload")).unwrap();
            Some(rootfs)
        }
        _ => None,
    }
}

fn sh_args(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

/// Runs `cmd` to completion with its output in files (a world's process
/// inherits them; a pipe would stay open as long as it lives).
fn output_of(cmd: &mut Command) -> Output {
    let stdout = tempfile::tempfile().unwrap();
    let stderr = tempfile::tempfile().unwrap();
    let status = cmd
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().unwrap())
        .stderr(stderr.try_clone().unwrap())
        .status()
        .expect("spawn");
    Output {
        status,
        stdout: read_file(stdout),
        stderr: read_file(stderr),
    }
}

fn read_file(mut file: fs::File) -> Vec<u8> {
    use std::io::{Read, Seek};
    let mut bytes = Vec::new();
    file.rewind().unwrap();
    file.read_to_end(&mut bytes).unwrap();
    bytes
}

/// Setuid files planted by the world that an unprivileged host user can
/// run with their owner's rights: set-id bit kept, owned by root, on a
/// filesystem that honours it, and reachable and executable by `nobody`.
fn runnable_setuid_files(upper: &Path, marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(out) = Command::new("find")
        .arg(upper)
        .args(["-path", &format!("*escape-{marker}*"), "-type", "f"])
        .output()
    else {
        return found;
    };
    for path in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(meta) = fs::metadata(path) else {
            continue;
        };
        if meta.mode() & 0o6000 == 0 || meta.uid() != 0 {
            continue;
        }
        let nosuid = nix::sys::statvfs::statvfs(path)
            .is_ok_and(|s| s.flags().contains(nix::sys::statvfs::FsFlags::ST_NOSUID));
        if nosuid {
            continue;
        }
        let reachable = Command::new("setpriv")
            .args([
                "--reuid",
                "65534",
                "--regid",
                "65534",
                "--clear-groups",
                "--",
            ])
            .args(["test", "-x", path])
            .status()
            .is_ok_and(|s| s.success());
        if reachable {
            found.push(format!(
                "setuid-root file {path} (mode {:o}) can be run by any host user",
                meta.mode() & 0o7777
            ));
        }
    }
    found
}

/// Waits until `file` (a world's output) says READY, or 10 s.
fn wait_ready(read: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !read().contains("READY") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A runtime whose state dir and root are reachable by every host user, as
/// `/var/lib` and `/run` are: what keeps a world's files from them must be
/// the modes the runtime gives its own dirs, not a test's private temp dir.
fn reachable_runtime() -> Runtime {
    let rt = Runtime::new();
    for dir in [rt.state_dir(), rt.root()] {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    }
    rt
}

fn via_cli(attack: &Attack, script: &str, canaries: &Canaries, marker: &str) -> Outcome {
    let rt = reachable_runtime();
    let id = unique_id(&format!("esc-cli-{marker}"));
    let scratch = tempfile::tempdir().unwrap();
    let mut outcome = Outcome::default();
    // A bundle for `--bundle`, kept until the run is over.
    let make_bundle = |rootfs: Option<PathBuf>, annotate: bool| -> Bundle {
        let mut bundle = Bundle::new(&id, &["sh", "-c", script]);
        bundle.edit(|c| {
            c["root"]["readonly"] = false.into();
            if let Some(rootfs) = &rootfs {
                c["root"]["path"] = path_str(rootfs).into();
            }
            if annotate {
                c["annotations"] = serde_json::json!({"io.substrate.world.lower": "/"});
            }
        });
        bundle
    };
    let bundle = match attack.setup {
        Setup::SymlinkedRootfs | Setup::SymlinkedInjectionTargets => Some(make_bundle(
            special_rootfs(attack.setup, canaries, scratch.path()),
            false,
        )),
        Setup::LowerAnnotation => Some(make_bundle(None, true)),
        _ => None,
    };
    let mut extra: Vec<String> = Vec::new();
    if let Some(bundle) = &bundle {
        extra.extend(["--bundle".to_owned(), bundle.path_str().to_owned()]);
    }
    if attack.setup == Setup::PlantSetuid {
        extra.push("--keep".into());
    }
    let mut args: Vec<String> = vec!["run".into(), "--name".into(), id.clone()];
    args.extend(extra);
    args.push("--".into());
    args.extend(sh_args(script));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    if attack.setup == Setup::PlantSetuid {
        // Looked for while the world runs and after it ended (kept).
        let log = scratch.path().join("out");
        let mut child = rt
            .cli(&args)
            .stdout(fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_ready(|| fs::read_to_string(&log).unwrap_or_default());
        let upper = rt.world_dir(&id).join("upper");
        outcome
            .evidence
            .extend(runnable_setuid_files(&upper, marker));
        let status = child.wait().unwrap();
        outcome.add(
            "cli run --keep",
            &Output {
                status,
                stdout: fs::read(&log).unwrap_or_default(),
                stderr: Vec::new(),
            },
        );
        outcome
            .evidence
            .extend(runnable_setuid_files(&upper, marker));
        // A kept world keeps its upper layer (mounted) until it is removed.
        let rm = output_of(&mut rt.cli(&["rm", &id]));
        assert!(
            rm.status.success(),
            "{}",
            String::from_utf8_lossy(&rm.stderr)
        );
    } else {
        outcome.add("cli run", &output_of(&mut rt.cli(&args)));
    }
    assert_no_leftovers(rt.root(), &id);
    outcome
}

fn via_runtime(attack: &Attack, script: &str, canaries: &Canaries, marker: &str) -> Outcome {
    let rt = reachable_runtime();
    let scratch = tempfile::tempdir().unwrap();
    let mut outcome = Outcome::default();
    let new_bundle = |id: &str, args: &[&str], cwd: Option<&str>| {
        let mut bundle = Bundle::new(id, args);
        let own = scratch.path().join(id);
        fs::create_dir(&own).unwrap();
        let rootfs = special_rootfs(attack.setup, canaries, &own);
        bundle.edit(|c| {
            c["root"]["readonly"] = false.into();
            if let Some(rootfs) = &rootfs {
                c["root"]["path"] = path_str(rootfs).into();
            }
            if let Some(cwd) = cwd {
                c["process"]["cwd"] = cwd.into();
            }
            if attack.setup == Setup::LowerAnnotation {
                c["annotations"] = serde_json::json!({"io.substrate.world.lower": "/"});
            }
            if attack.setup == Setup::SeccompAsked {
                c["linux"]["seccomp"] = serde_json::json!({
                    "defaultAction": "SCMP_ACT_ALLOW",
                    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                    "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}]
                });
            }
        });
        bundle
    };
    let run = |outcome: &mut Outcome, what: &str, cwd: Option<&str>| {
        let id = unique_id(&format!("esc-rt-{marker}"));
        let bundle = new_bundle(&id, &["sh", "-c", script], cwd);
        outcome.add(what, &rt.run(&["run", "--bundle", bundle.path_str(), &id]));
        assert_no_leftovers(rt.root(), &id);
    };
    // A world started in the background, its output in a file.
    let running = |script: &str| {
        let id = unique_id(&format!("esc-rt-{marker}"));
        let bundle = new_bundle(&id, &["sh", "-c", script], None);
        let log = scratch.path().join(format!("{id}.out"));
        let status = rt
            .cmd(&["create", "--bundle", bundle.path_str(), &id])
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "create {id}");
        rt.ok(&["start", &id]);
        (id, bundle, log)
    };
    match attack.setup {
        Setup::Plain
        | Setup::SymlinkedRootfs
        | Setup::SymlinkedInjectionTargets
        | Setup::LowerAnnotation => run(&mut outcome, "runtime run", None),
        Setup::AlsoExec | Setup::SeccompAsked => {
            run(&mut outcome, "runtime run", None);
            let (id, _bundle, _log) = running("sleep 600");
            outcome.add("runtime exec", &rt.run(&["exec", &id, "sh", "-c", script]));
            rt.ok(&["delete", "--force", &id]);
            assert_no_leftovers(rt.root(), &id);
        }
        Setup::CwdThroughFd => {
            for fd in 3..=9 {
                let cwd = format!("/proc/self/fd/{fd}");
                run(&mut outcome, &format!("runtime run, cwd {cwd}"), Some(&cwd));
            }
            let (id, _bundle, _log) = running("sleep 600");
            for fd in 3..=9 {
                let cwd = format!("/proc/self/fd/{fd}");
                outcome.add(
                    &format!("runtime exec --cwd {cwd}"),
                    &rt.run(&["exec", "--cwd", &cwd, &id, "sh", "-c", script]),
                );
            }
            rt.ok(&["delete", "--force", &id]);
            assert_no_leftovers(rt.root(), &id);
        }
        Setup::SelfExe => {
            let (id, _bundle, log) = running(script);
            wait_ready(|| fs::read_to_string(&log).unwrap_or_default());
            for _ in 0..3 {
                let _ = rt.run(&["exec", &id, "/x"]);
            }
            let _ = rt.run(&["exec", &id, "touch", &format!("/tmp/.stop-{marker}")]);
            wait_until("the watcher to finish", || {
                fs::read_to_string(&log)
                    .unwrap_or_default()
                    .contains("DONE")
                    || rt.status(&id) == "stopped"
            });
            rt.wait_status(&id, "stopped");
            outcome.add(
                "runtime create + exec #!/proc/self/exe",
                &Output {
                    status: std::process::ExitStatus::default(),
                    stdout: fs::read(&log).unwrap_or_default(),
                    stderr: Vec::new(),
                },
            );
            rt.ok(&["delete", "--force", &id]);
            assert_no_leftovers(rt.root(), &id);
        }
        Setup::PlantSetuid => {
            let (id, _bundle, log) = running(script);
            wait_ready(|| fs::read_to_string(&log).unwrap_or_default());
            let upper = rt.world_dir(&id).join("upper");
            outcome
                .evidence
                .extend(runnable_setuid_files(&upper, marker));
            rt.wait_status(&id, "stopped");
            outcome
                .evidence
                .extend(runnable_setuid_files(&upper, marker));
            outcome.add(
                "runtime create",
                &Output {
                    status: std::process::ExitStatus::default(),
                    stdout: fs::read(&log).unwrap_or_default(),
                    stderr: Vec::new(),
                },
            );
            rt.ok(&["delete", "--force", &id]);
            outcome
                .evidence
                .extend(runnable_setuid_files(&upper, marker));
            assert_no_leftovers(rt.root(), &id);
        }
    }
    outcome
}

fn ctr_run(
    ctd: &Containerd,
    id: &str,
    flags: &[&str],
    image_or_rootfs: &str,
    script: &str,
) -> Output {
    let mut args = vec!["run", "--rm", "--runtime", RUNTIME];
    args.extend_from_slice(flags);
    args.extend([image_or_rootfs, id, "sh", "-c", script]);
    ctd.ctr(&args)
}

fn via_ctr(attack: &Attack, script: &str, canaries: &Canaries, marker: &str) -> Outcome {
    let ctd = Containerd::start();
    // Reachable as /var/lib and /run are: containerd's and the runtime's
    // own modes are what must keep other users out.
    fs::set_permissions(ctd.path(""), fs::Permissions::from_mode(0o755)).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut outcome = Outcome::default();
    let id = || unique_id(&format!("esc-ctr-{marker}"));
    let detached_with = |flags: &[&str], id: &str, script: &str| {
        let mut args = vec!["run", "-d", "--runtime", RUNTIME];
        args.extend_from_slice(flags);
        args.extend([IMAGE, id, "sh", "-c", script]);
        ctd.ok(&args);
    };
    let detached = |id: &str, script: &str| detached_with(&[], id, script);
    let stop = |id: &str| {
        let _ = ctd.ctr(&["task", "kill", "-s", "SIGKILL", id]);
        wait_until("the task to stop", || {
            ctd.task_status(id).as_deref() != Some("RUNNING")
        });
        let _ = ctd.ctr(&["task", "delete", id]);
        let _ = ctd.ctr(&["containers", "rm", id]);
        ctd.assert_clean(id);
    };
    // The world's output, for detached tasks: its trace has no stdout, so
    // the script writes a copy into the world, read from the host through
    // the task's root.
    let world_file = |id: &str, name: &str| -> String {
        let pid = ctd
            .ok(&["task", "ls"])
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
            .unwrap_or_default();
        fs::read_to_string(format!("/proc/{pid}/root/{name}")).unwrap_or_default()
    };
    match attack.setup {
        Setup::Plain => {
            let id = id();
            outcome.add("ctr run", &ctr_run(&ctd, &id, &[], IMAGE, script));
            ctd.assert_clean(&id);
        }
        Setup::SymlinkedRootfs | Setup::SymlinkedInjectionTargets => {
            let id = id();
            let rootfs = special_rootfs(attack.setup, canaries, scratch.path()).unwrap();
            outcome.add(
                "ctr run --rootfs",
                // No image, so no image config: PATH is given.
                &ctr_run(
                    &ctd,
                    &id,
                    &["--env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "--rootfs"],
                    path_str(&rootfs),
                    script,
                ),
            );
            ctd.assert_clean(&id);
        }
        Setup::LowerAnnotation => {
            let id = id();
            outcome.add(
                "ctr run --annotation io.substrate.world.lower=/",
                &ctr_run(
                    &ctd,
                    &id,
                    &["--annotation", "io.substrate.world.lower=/"],
                    IMAGE,
                    script,
                ),
            );
            ctd.assert_clean(&id);
        }
        Setup::AlsoExec | Setup::SeccompAsked => {
            let flags: &[&str] = if attack.setup == Setup::SeccompAsked {
                &["--seccomp"]
            } else {
                &[]
            };
            let first = id();
            outcome.add("ctr run", &ctr_run(&ctd, &first, flags, IMAGE, script));
            ctd.assert_clean(&first);
            let id = id();
            detached_with(flags, &id, "sleep 600");
            outcome.add(
                "ctr task exec",
                &ctd.ctr(&["task", "exec", "--exec-id", "e1", &id, "sh", "-c", script]),
            );
            stop(&id);
        }
        Setup::CwdThroughFd => {
            for fd in 3..=9 {
                let cwd = format!("/proc/self/fd/{fd}");
                let id = id();
                outcome.add(
                    &format!("ctr run --cwd {cwd}"),
                    &ctr_run(&ctd, &id, &["--cwd", &cwd], IMAGE, script),
                );
                ctd.assert_clean(&id);
            }
            let id = id();
            detached(&id, "sleep 600");
            for fd in 3..=9 {
                let cwd = format!("/proc/self/fd/{fd}");
                outcome.add(
                    &format!("ctr task exec --cwd {cwd}"),
                    &ctd.ctr(&[
                        "task",
                        "exec",
                        "--exec-id",
                        &format!("e{fd}"),
                        "--cwd",
                        &cwd,
                        &id,
                        "sh",
                        "-c",
                        script,
                    ]),
                );
            }
            stop(&id);
        }
        Setup::SelfExe | Setup::PlantSetuid => {
            let id = id();
            let logged = format!("({script}) > /tmp/.out-{marker} 2>&1; sleep 600");
            detached(&id, &logged);
            let name = format!("tmp/.out-{marker}");
            wait_ready(|| world_file(&id, &name));
            if attack.setup == Setup::SelfExe {
                for n in 0..3 {
                    let _ = ctd.ctr(&["task", "exec", "--exec-id", &format!("x{n}"), &id, "/x"]);
                }
                let _ = ctd.ctr(&[
                    "task",
                    "exec",
                    "--exec-id",
                    "stop",
                    &id,
                    "touch",
                    &format!("/tmp/.stop-{marker}"),
                ]);
            } else {
                let upper = PathBuf::from(
                    ctd.record(&id)["upper"]["path"]
                        .as_str()
                        .unwrap_or_default(),
                );
                outcome
                    .evidence
                    .extend(runnable_setuid_files(&upper, marker));
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while !world_file(&id, &name).contains("DONE") && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let text = world_file(&id, &name);
            outcome.add(
                "ctr run -d + task exec",
                &Output {
                    status: std::process::ExitStatus::default(),
                    stdout: text.into_bytes(),
                    stderr: Vec::new(),
                },
            );
            stop(&id);
        }
    }
    outcome
}

// --- the verdict ----------------------------------------------------------------------

fn host_namespaces() -> BTreeMap<String, String> {
    ["mnt", "pid", "net", "ipc", "uts"]
        .iter()
        .map(|ns| {
            let link = fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
            (ns.to_string(), link.to_string_lossy().into_owned())
        })
        .collect()
}

/// Runs `attack` through `path` and asserts it was blocked and the host
/// left as it was.
fn escape(attack: &Attack, path: Path3) {
    let _host = host_lock();
    let marker = unique_id("m").replace('-', "");
    let canaries = Canaries::new(&marker);
    let script = canaries.fill(&format!("{PRELUDE}{}", attack.script), &marker);
    let before = HostState::read(&canaries);
    let outcome = match path {
        Path3::Cli => via_cli(attack, &script, &canaries, &marker),
        Path3::Runtime => via_runtime(attack, &script, &canaries, &marker),
        Path3::Ctr => via_ctr(attack, &script, &canaries, &marker),
    };
    let after = HostState::read(&canaries);
    before.restore(&after);
    // Shown with --nocapture, and with a failure.
    eprintln!("{path:?}: what the world said:\n{}", outcome.output);

    let mut failures: Vec<String> = outcome
        .output
        .lines()
        .filter(|l| l.starts_with("ESCAPED:"))
        .map(str::to_owned)
        .collect();
    failures.extend(outcome.evidence.iter().cloned());
    failures.extend(
        before
            .changes(&after)
            .into_iter()
            .map(|c| format!("host changed: {c}")),
    );
    let host_ns = host_namespaces();
    for line in outcome.output.lines().filter(|l| l.starts_with("NS ")) {
        let mut words = line.split_whitespace().skip(1);
        let (Some(ns), Some(link)) = (words.next(), words.next()) else {
            continue;
        };
        if host_ns.get(ns).map(String::as_str) == Some(link) {
            failures.push(format!(
                "the world shares the host's {ns} namespace ({link})"
            ));
        }
    }
    // The setups that are the attack may be refused outright; the others
    // must have run to the end, or nothing was shown.
    let may_be_refused = matches!(
        attack.setup,
        Setup::CwdThroughFd
            | Setup::SymlinkedRootfs
            | Setup::SymlinkedInjectionTargets
            | Setup::LowerAnnotation
    );
    let ran = outcome.done + if may_be_refused { outcome.refused } else { 0 };
    if outcome.runs == 0 || ran < outcome.runs {
        failures.push(format!(
            "the attack did not run to its end ({} of {} runs printed DONE, {} refused)",
            outcome.done, outcome.runs, outcome.refused
        ));
    }
    assert!(
        failures.is_empty(),
        "{path:?}: {} failure(s):\n  {}\n\nwhat the world said:\n{}",
        failures.len(),
        failures.join("\n  "),
        outcome.output
    );
}

/// One test per attack and path: `<attack>::cli`, `::runtime`, `::ctr`.
macro_rules! escapes {
    ($($name:ident: $attack:expr => [$($path:ident),*];)*) => {
        $(
            mod $name {
                use super::*;
                $(
                    #[test]
                    fn $path() {
                        escape(&$attack, path3(stringify!($path)));
                    }
                )*
            }
        )*
    };
}

fn path3(name: &str) -> Path3 {
    match name {
        "cli" => Path3::Cli,
        "runtime" => Path3::Runtime,
        "ctr" => Path3::Ctr,
        other => unreachable!("no path {other}"),
    }
}

escapes! {
    proc_sys_writes: PROC_SYS => [cli, runtime, ctr];
    sysrq_trigger: SYSRQ => [cli, runtime, ctr];
    kcore_and_kernel_memory: KCORE => [cli, runtime, ctr];
    mknod_host_devices: MKNOD_DEVICES => [cli, runtime, ctr];
    mount: MOUNT => [cli, runtime, ctr];
    module_load: MODULE => [cli, runtime, ctr];
    namespaces: NAMESPACES => [cli, runtime, ctr];
    cgroup_release_agent: CGROUP_ESCAPE => [cli, runtime, ctr];
    leaked_fds_cve_2024_21626: LEAKED_FDS => [cli, runtime, ctr];
    cwd_through_fd_cve_2024_21626: CWD_THROUGH_FD => [runtime, ctr];
    proc_self_exe_cve_2019_5736: SELF_EXE => [cli, runtime, ctr];
    setuid_planting: SETUID => [cli, runtime, ctr];
    symlinked_rootfs: SYMLINKED_ROOTFS => [cli, runtime, ctr];
    symlinked_injection_targets: SYMLINKED_INJECTION => [cli, runtime, ctr];
    lower_annotation: LOWER_ANNOTATION => [cli, runtime, ctr];
    seccomp: SECCOMP => [cli, runtime, ctr];
}

#[test]
fn the_canaries_are_what_the_attacks_look_for() {
    // The evidence the scripts look for exists on the host and is hidden
    // from a plain world: a blocked attack is not a canary that was never
    // there.
    let _host = host_lock();
    let canaries = Canaries::new("selftest");
    assert!(fs::read_to_string(&canaries.hidden)
        .unwrap()
        .contains(&canaries.secret));
    let script = canaries.fill(
        &format!("{PRELUDE}secret_in @HIDDEN@ && echo FOUND; echo DONE"),
        "selftest",
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "FOUND\nDONE\n");
    assert!(!host_binary_ids().is_empty());
    let _ = bin("substrate-runtime");
}
