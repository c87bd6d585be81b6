//! The seccomp filter of a CLI world: the allow-list Docker and podman
//! apply by default, with the same semantics — every syscall not allowed
//! fails with EPERM; some are allowed only with arguments that cannot
//! escape the world (`clone` without namespace flags, `personality` with the
//! harmless personas, `socket` for the address families containers use),
//! some only when the world's bounding set holds the capability that makes
//! them useful (`mount` with CAP_SYS_ADMIN, `ptrace` with CAP_SYS_PTRACE on
//! kernels before 4.8, ...), some only on the architectures that have them.
//!
//! What is left out, and so fails with EPERM: user and other namespaces
//! (`unshare`, `setns`, `clone`/`clone3` with namespace flags), mounts,
//! the kernel keyring (`add_key`, `keyctl`, `request_key`), BPF and perf
//! events, kernel modules, `kexec`, `reboot`, swap, the clock, `userfaultfd`,
//! `io_uring`, `pivot_root`/`chroot`, AF_VSOCK and AF_ALG sockets, and every
//! syscall newer than this list.
//!
//! The profile is written here as data (moby's `profiles/seccomp` is the
//! reference for its content) and compiled for the world's architecture,
//! kernel and capabilities into `linux.seccomp`.

use std::collections::HashSet;

use nix::libc;
use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

/// Architecture names, as the profile's conditions use them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abi {
    Amd64,
    X32,
    X86,
    Arm64,
    Arm,
    S390x,
    S390,
    Ppc64le,
    Riscv64,
    Loong64,
    Other,
}

impl Abi {
    /// The architecture this binary (and so the world's runtime) runs on.
    pub fn native() -> Abi {
        if cfg!(target_arch = "x86_64") {
            Abi::Amd64
        } else if cfg!(target_arch = "x86") {
            Abi::X86
        } else if cfg!(target_arch = "aarch64") {
            Abi::Arm64
        } else if cfg!(target_arch = "arm") {
            Abi::Arm
        } else if cfg!(target_arch = "s390x") {
            Abi::S390x
        } else if cfg!(all(target_arch = "powerpc64", target_endian = "little")) {
            Abi::Ppc64le
        } else if cfg!(target_arch = "riscv64") {
            Abi::Riscv64
        } else if cfg!(target_arch = "loongarch64") {
            Abi::Loong64
        } else {
            Abi::Other
        }
    }

    /// The ABIs a process of this architecture can call the kernel through:
    /// a 64-bit x86 process may use the 32-bit and x32 syscall tables, and
    /// a filter that leaves them out kills such a process outright.
    fn filter_arches(self) -> Vec<Arch> {
        match self {
            Abi::Amd64 => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
            Abi::Arm64 => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
            Abi::S390x => vec![Arch::ScmpArchS390x, Arch::ScmpArchS390],
            Abi::Riscv64 => vec![Arch::ScmpArchRiscv64],
            Abi::Loong64 => vec![Arch::ScmpArchLoongarch64],
            // The native one only (libseccomp's default).
            _ => Vec::new(),
        }
    }
}

/// What the profile is compiled for.
#[derive(Clone, Debug)]
pub struct Target {
    pub abi: Abi,
    /// The kernel's `major.minor`.
    pub kernel: (u32, u32),
    /// The world's bounding set: a rule that needs a capability is kept only
    /// when the world could hold it.
    pub caps: HashSet<Capability>,
}

impl Target {
    /// This host, for a world whose bounding set is `caps`.
    pub fn host(caps: HashSet<Capability>) -> Target {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        Target {
            abi: Abi::native(),
            kernel: kernel_version(&release),
            caps,
        }
    }
}

/// `major.minor` of a kernel release string (`6.18.0-1-amd64`); (0, 0) if
/// it cannot be read, which keeps every rule that needs a newer kernel out.
fn kernel_version(release: &str) -> (u32, u32) {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse().ok());
    let minor = parts.next().and_then(|p| p.parse().ok());
    match (major, minor) {
        (Some(major), Some(minor)) => (major, minor),
        _ => (0, 0),
    }
}

/// The default filter for `target`, as `linux.seccomp`.
pub fn default_profile(target: &Target) -> LinuxSeccomp {
    let mut syscalls = Vec::new();
    for rule in RULES {
        if rule.when.holds(target) {
            syscalls.push(rule.compile());
        }
    }
    for &domain in SOCKET_DOMAINS {
        syscalls.push(socket_rule(domain));
    }
    let mut seccomp = LinuxSeccomp::default();
    seccomp.set_default_action(LinuxSeccompAction::ScmpActErrno);
    seccomp.set_default_errno_ret(Some(libc::EPERM as u32));
    let arches = target.abi.filter_arches();
    if !arches.is_empty() {
        seccomp.set_architectures(Some(arches));
    }
    seccomp.set_syscalls(Some(syscalls));
    seccomp
}

/// One entry of the profile: `names` get `action` when `args` match, if
/// `when` holds for the world.
struct Rule {
    names: &'static [&'static str],
    action: Action,
    args: &'static [Cond],
    when: When,
}

#[derive(Clone, Copy)]
enum Action {
    Allow,
    Errno(i32),
}

/// A condition on one argument. A rule has at most one per argument: the
/// runtime adds conditions on the same argument as alternatives (runc
/// does too), so a range cannot be written as two of them.
#[derive(Clone, Copy)]
enum Cond {
    Eq(usize, u64),
    /// The argument has none of the mask's bits set.
    NoBitsOf(usize, u64),
}

/// When a rule is part of the profile: each non-empty list must hold.
#[derive(Clone, Copy)]
struct When {
    /// The native architecture is one of these.
    arches: &'static [Abi],
    /// The native architecture is none of these.
    not_arches: &'static [Abi],
    /// The bounding set has every one of these.
    caps: &'static [Capability],
    /// The bounding set has none of these.
    not_caps: &'static [Capability],
    /// The kernel is at least this.
    min_kernel: Option<(u32, u32)>,
}

const ALWAYS: When = When {
    arches: &[],
    not_arches: &[],
    caps: &[],
    not_caps: &[],
    min_kernel: None,
};

const fn on(arches: &'static [Abi]) -> When {
    When { arches, ..ALWAYS }
}

const fn with(caps: &'static [Capability]) -> When {
    When { caps, ..ALWAYS }
}

impl When {
    fn holds(&self, target: &Target) -> bool {
        (self.arches.is_empty() || self.arches.contains(&target.abi))
            && !self.not_arches.contains(&target.abi)
            && self.caps.iter().all(|c| target.caps.contains(c))
            && !self.not_caps.iter().any(|c| target.caps.contains(c))
            && self.min_kernel.is_none_or(|min| target.kernel >= min)
    }
}

impl Rule {
    fn compile(&self) -> LinuxSyscall {
        let mut syscall = LinuxSyscall::default();
        syscall.set_names(self.names.iter().map(|n| n.to_string()).collect());
        match self.action {
            Action::Allow => syscall.set_action(LinuxSeccompAction::ScmpActAllow),
            Action::Errno(errno) => syscall
                .set_action(LinuxSeccompAction::ScmpActErrno)
                .set_errno_ret(Some(errno as u32)),
        };
        if !self.args.is_empty() {
            syscall.set_args(Some(self.args.iter().map(|c| c.compile()).collect()));
        }
        syscall
    }
}

impl Cond {
    fn compile(self) -> LinuxSeccompArg {
        match self {
            Cond::Eq(index, value) => arg(index, LinuxSeccompOperator::ScmpCmpEq, value, None),
            Cond::NoBitsOf(index, mask) => {
                let (value, value_two) = masked_eq_operands(mask, 0);
                arg(
                    index,
                    LinuxSeccompOperator::ScmpCmpMaskedEq,
                    value,
                    Some(value_two),
                )
            }
        }
    }
}

/// `value` and `valueTwo` of an `SCMP_CMP_MASKED_EQ` condition meaning
/// `arg & mask == datum`: the mask first, as the runtime spec, runc and
/// libseccomp's `SCMP_CMP(arg, SCMP_CMP_MASKED_EQ, mask, datum)` have it
/// (libcontainer 0.7.0 read them the other way round until Substrate's
/// patch, `third_party/README.md`). `tests/tests/defaults.rs` makes raw
/// `clone` calls to prove both halves: a plain one works, one with
/// CLONE_NEWUSER fails.
fn masked_eq_operands(mask: u64, datum: u64) -> (u64, u64) {
    (mask, datum)
}

/// Every namespace `clone` can make.
const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// The address families `socket` may create: all the kernel still has,
/// but AF_VSOCK (host/VM sockets, not confined to a network namespace) and
/// AF_ALG (the kernel's crypto API, attack surface no build needs).
/// Written as one `arg < AF_DECnet` rule for AF_UNIX..AF_ROSE (the
/// non-creatable AF_UNSPEC is 0) and one equality each for the rest.
const SOCKET_DOMAINS: &[SocketDomain] = &[
    SocketDomain::Below(12), // AF_UNIX .. AF_ROSE; 12 is AF_DECnet, gone since 6.1
    SocketDomain::Is(13),    // AF_NETBEUI
    SocketDomain::Is(14),    // AF_SECURITY
    SocketDomain::Is(15),    // AF_KEY
    SocketDomain::Is(16),    // AF_NETLINK
    SocketDomain::Is(17),    // AF_PACKET
    SocketDomain::Is(18),    // AF_ASH
    SocketDomain::Is(21),    // AF_RDS
    SocketDomain::Is(22),    // AF_SNA
    SocketDomain::Is(24),    // AF_PPPOX
    SocketDomain::Is(26),    // AF_LLC
    SocketDomain::Is(27),    // AF_IB
    SocketDomain::Is(28),    // AF_MPLS
    SocketDomain::Is(29),    // AF_CAN
    SocketDomain::Is(30),    // AF_TIPC
    SocketDomain::Is(31),    // AF_BLUETOOTH
    SocketDomain::Is(32),    // AF_IUCV
    SocketDomain::Is(33),    // AF_RXRPC
    SocketDomain::Is(35),    // AF_PHONET
    SocketDomain::Is(36),    // AF_IEEE802154
    SocketDomain::Is(39),    // AF_NFC
    SocketDomain::Is(41),    // AF_KCM
    SocketDomain::Is(42),    // AF_QIPCRTR
    SocketDomain::Is(43),    // AF_SMC
    SocketDomain::Is(44),    // AF_XDP
    SocketDomain::Is(45),    // AF_MCTP
];

#[derive(Clone, Copy)]
enum SocketDomain {
    Below(u64),
    Is(u64),
}

fn arg(
    index: usize,
    op: LinuxSeccompOperator,
    value: u64,
    value_two: Option<u64>,
) -> LinuxSeccompArg {
    let builder = LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value);
    match value_two {
        Some(two) => builder.value_two(two),
        None => builder,
    }
    .build()
    .expect("every field of a seccomp argument is given")
}

fn socket_rule(domain: SocketDomain) -> LinuxSyscall {
    let arg = match domain {
        SocketDomain::Below(end) => arg(0, LinuxSeccompOperator::ScmpCmpLt, end, None),
        SocketDomain::Is(family) => arg(0, LinuxSeccompOperator::ScmpCmpEq, family, None),
    };
    let mut syscall = LinuxSyscall::default();
    syscall.set_names(vec!["socket".into()]);
    syscall.set_action(LinuxSeccompAction::ScmpActAllow);
    syscall.set_args(Some(vec![arg]));
    syscall
}

const fn allow(names: &'static [&'static str]) -> Rule {
    Rule {
        names,
        action: Action::Allow,
        args: &[],
        when: ALWAYS,
    }
}

const fn allow_if(names: &'static [&'static str], when: When) -> Rule {
    Rule {
        names,
        action: Action::Allow,
        args: &[],
        when,
    }
}

const fn personality(persona: &'static [Cond]) -> Rule {
    Rule {
        names: &["personality"],
        action: Action::Allow,
        args: persona,
        when: ALWAYS,
    }
}

use Capability as Cap;

const RULES: &[Rule] = &[
    // Files, directories, links, attributes.
    allow(&[
        "access",
        "faccessat",
        "faccessat2",
        "open",
        "openat",
        "openat2",
        "creat",
        "close",
        "close_range",
        "read",
        "readv",
        "pread64",
        "preadv",
        "preadv2",
        "write",
        "writev",
        "pwrite64",
        "pwritev",
        "pwritev2",
        "lseek",
        "_llseek",
        "readahead",
        "sendfile",
        "sendfile64",
        "copy_file_range",
        "splice",
        "tee",
        "vmsplice",
        "dup",
        "dup2",
        "dup3",
        "fcntl",
        "fcntl64",
        "flock",
        "fsync",
        "fdatasync",
        "sync",
        "syncfs",
        "sync_file_range",
        "fallocate",
        "fadvise64",
        "fadvise64_64",
        "truncate",
        "truncate64",
        "ftruncate",
        "ftruncate64",
        "stat",
        "stat64",
        "lstat",
        "lstat64",
        "fstat",
        "fstat64",
        "fstatat64",
        "newfstatat",
        "statx",
        "statfs",
        "statfs64",
        "fstatfs",
        "fstatfs64",
        "cachestat",
        "getcwd",
        "chdir",
        "fchdir",
        "getdents",
        "getdents64",
        "mkdir",
        "mkdirat",
        "rmdir",
        "mknod",
        "mknodat",
        "link",
        "linkat",
        "symlink",
        "symlinkat",
        "unlink",
        "unlinkat",
        "rename",
        "renameat",
        "renameat2",
        "readlink",
        "readlinkat",
        "chmod",
        "fchmod",
        "fchmodat",
        "fchmodat2",
        "chown",
        "chown32",
        "fchown",
        "fchown32",
        "fchownat",
        "lchown",
        "lchown32",
        "umask",
        "utime",
        "utimes",
        "utimensat",
        "utimensat_time64",
        "futimesat",
        "getxattr",
        "lgetxattr",
        "fgetxattr",
        "getxattrat",
        "setxattr",
        "lsetxattr",
        "fsetxattr",
        "setxattrat",
        "listxattr",
        "llistxattr",
        "flistxattr",
        "listxattrat",
        "removexattr",
        "lremovexattr",
        "fremovexattr",
        "removexattrat",
        "name_to_handle_at",
        "inotify_init",
        "inotify_init1",
        "inotify_add_watch",
        "inotify_rm_watch",
        "fanotify_mark",
        "listmount",
        "statmount",
        "ioctl",
    ]),
    // Waiting on many things: polling, pipes, event and timer fds, aio.
    allow(&[
        "pipe",
        "pipe2",
        "poll",
        "ppoll",
        "ppoll_time64",
        "select",
        "_newselect",
        "pselect6",
        "pselect6_time64",
        "epoll_create",
        "epoll_create1",
        "epoll_ctl",
        "epoll_ctl_old",
        "epoll_wait",
        "epoll_wait_old",
        "epoll_pwait",
        "epoll_pwait2",
        "eventfd",
        "eventfd2",
        "signalfd",
        "signalfd4",
        "timerfd_create",
        "timerfd_settime",
        "timerfd_settime64",
        "timerfd_gettime",
        "timerfd_gettime64",
        "io_setup",
        "io_destroy",
        "io_submit",
        "io_cancel",
        "io_getevents",
        "io_pgetevents",
        "io_pgetevents_time64",
    ]),
    // Processes and threads (clone is below: only without namespaces).
    allow(&[
        "fork",
        "vfork",
        "execve",
        "execveat",
        "exit",
        "exit_group",
        "wait4",
        "waitid",
        "waitpid",
        "kill",
        "tkill",
        "tgkill",
        "pidfd_open",
        "pidfd_send_signal",
        "process_mrelease",
        "getpid",
        "getppid",
        "gettid",
        "getpgid",
        "setpgid",
        "getpgrp",
        "getsid",
        "setsid",
        "set_tid_address",
        "set_robust_list",
        "get_robust_list",
        "rseq",
        "futex",
        "futex_time64",
        "futex_waitv",
        "futex_wait",
        "futex_wake",
        "futex_requeue",
        "prctl",
        "capget",
        "capset",
        "seccomp",
        "landlock_create_ruleset",
        "landlock_add_rule",
        "landlock_restrict_self",
        "getrlimit",
        "ugetrlimit",
        "setrlimit",
        "prlimit64",
        "getrusage",
        "times",
        "getpriority",
        "setpriority",
        "ioprio_get",
        "ioprio_set",
        "sched_yield",
        "sched_getaffinity",
        "sched_setaffinity",
        "sched_getattr",
        "sched_setattr",
        "sched_getparam",
        "sched_setparam",
        "sched_getscheduler",
        "sched_setscheduler",
        "sched_get_priority_max",
        "sched_get_priority_min",
        "sched_rr_get_interval",
        "sched_rr_get_interval_time64",
        "getcpu",
        "get_thread_area",
        "set_thread_area",
        "restart_syscall",
        "uretprobe",
        "map_shadow_stack",
    ]),
    // Who the process is, and becoming someone else within the world.
    allow(&[
        "getuid",
        "getuid32",
        "geteuid",
        "geteuid32",
        "getgid",
        "getgid32",
        "getegid",
        "getegid32",
        "getresuid",
        "getresuid32",
        "getresgid",
        "getresgid32",
        "getgroups",
        "getgroups32",
        "setuid",
        "setuid32",
        "setgid",
        "setgid32",
        "setreuid",
        "setreuid32",
        "setregid",
        "setregid32",
        "setresuid",
        "setresuid32",
        "setresgid",
        "setresgid32",
        "setfsuid",
        "setfsuid32",
        "setfsgid",
        "setfsgid32",
        "setgroups",
        "setgroups32",
    ]),
    // Signals.
    allow(&[
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "rt_sigpending",
        "rt_sigsuspend",
        "rt_sigtimedwait",
        "rt_sigtimedwait_time64",
        "rt_sigqueueinfo",
        "rt_tgsigqueueinfo",
        "sigaltstack",
        "sigprocmask",
        "sigreturn",
        "alarm",
        "pause",
    ]),
    // Memory.
    allow(&[
        "brk",
        "mmap",
        "mmap2",
        "munmap",
        "mremap",
        "mprotect",
        "madvise",
        "mincore",
        "msync",
        "mlock",
        "mlock2",
        "mlockall",
        "munlock",
        "munlockall",
        "membarrier",
        "memfd_create",
        "memfd_secret",
        "remap_file_pages",
        "pkey_alloc",
        "pkey_free",
        "pkey_mprotect",
        "mseal",
    ]),
    // Time: reading clocks, sleeping, timers (setting a clock needs
    // CAP_SYS_TIME, below).
    allow(&[
        "time",
        "gettimeofday",
        "clock_gettime",
        "clock_gettime64",
        "clock_getres",
        "clock_getres_time64",
        "clock_nanosleep",
        "clock_nanosleep_time64",
        "nanosleep",
        "adjtimex",
        "clock_adjtime",
        "clock_adjtime64",
        "getitimer",
        "setitimer",
        "timer_create",
        "timer_delete",
        "timer_settime",
        "timer_settime64",
        "timer_gettime",
        "timer_gettime64",
        "timer_getoverrun",
    ]),
    // The machine, as far as the world may know it.
    allow(&["uname", "sysinfo", "getrandom", "riscv_hwprobe"]),
    // System V and POSIX IPC (the world has its own IPC namespace).
    allow(&[
        "ipc",
        "msgget",
        "msgsnd",
        "msgrcv",
        "msgctl",
        "semget",
        "semop",
        "semtimedop",
        "semtimedop_time64",
        "semctl",
        "shmget",
        "shmat",
        "shmdt",
        "shmctl",
        "mq_open",
        "mq_unlink",
        "mq_timedsend",
        "mq_timedsend_time64",
        "mq_timedreceive",
        "mq_timedreceive_time64",
        "mq_notify",
        "mq_getsetattr",
    ]),
    // Sockets once made (`socket` itself is by address family, below;
    // 32-bit x86's `socketcall` hides its arguments behind a pointer, so it
    // cannot be filtered and is allowed as Docker allows it).
    allow(&[
        "socketpair",
        "bind",
        "listen",
        "accept",
        "accept4",
        "connect",
        "getsockname",
        "getpeername",
        "getsockopt",
        "setsockopt",
        "send",
        "sendto",
        "sendmsg",
        "sendmmsg",
        "recv",
        "recvfrom",
        "recvmsg",
        "recvmmsg",
        "recvmmsg_time64",
        "shutdown",
        "socketcall",
    ]),
    // Debugging another process of the world: safe under seccomp since
    // Linux 4.8 (before, ptrace could change a syscall after the filter ran).
    allow_if(
        &["ptrace", "process_vm_readv", "process_vm_writev"],
        When {
            min_kernel: Some((4, 8)),
            ..ALWAYS
        },
    ),
    // The personas programs ask for: Linux, 32-bit Linux, and each with
    // UNAME26; 0xffffffff only queries.
    personality(&[Cond::Eq(0, 0x0)]),
    personality(&[Cond::Eq(0, 0x8)]),
    personality(&[Cond::Eq(0, 0x20000)]),
    personality(&[Cond::Eq(0, 0x20008)]),
    personality(&[Cond::Eq(0, 0xffff_ffff)]),
    // Architecture-specific calls.
    allow_if(&["arch_prctl"], on(&[Abi::Amd64, Abi::X32])),
    allow_if(&["modify_ldt"], on(&[Abi::Amd64, Abi::X32, Abi::X86])),
    allow_if(
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
        on(&[Abi::Arm, Abi::Arm64]),
    ),
    allow_if(&["sync_file_range2", "swapcontext"], on(&[Abi::Ppc64le])),
    allow_if(
        &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
        on(&[Abi::S390, Abi::S390x]),
    ),
    allow_if(&["riscv_flush_icache"], on(&[Abi::Riscv64])),
    // New processes and threads, but no new namespaces, unless the world
    // holds CAP_SYS_ADMIN (then the next rule allows every clone). s390
    // passes clone's flags second.
    Rule {
        names: &["clone"],
        action: Action::Allow,
        args: &[Cond::NoBitsOf(0, NAMESPACE_FLAGS)],
        when: When {
            not_arches: &[Abi::S390, Abi::S390x],
            not_caps: &[Cap::SysAdmin],
            ..ALWAYS
        },
    },
    Rule {
        names: &["clone"],
        action: Action::Allow,
        args: &[Cond::NoBitsOf(1, NAMESPACE_FLAGS)],
        when: When {
            arches: &[Abi::S390, Abi::S390x],
            not_caps: &[Cap::SysAdmin],
            ..ALWAYS
        },
    },
    // clone3 passes its flags in memory, where a filter cannot look:
    // ENOSYS makes libc fall back to clone, which is filtered.
    Rule {
        names: &["clone3"],
        action: Action::Errno(libc::ENOSYS),
        args: &[],
        when: When {
            not_caps: &[Cap::SysAdmin],
            ..ALWAYS
        },
    },
    // What a capability is for, allowed only to a world that may hold it.
    allow_if(
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "lsm_get_self_attr",
            "lsm_list_modules",
            "lsm_set_self_attr",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        with(&[Cap::SysAdmin]),
    ),
    allow_if(&["open_by_handle_at"], with(&[Cap::DacReadSearch])),
    allow_if(&["reboot"], with(&[Cap::SysBoot])),
    allow_if(&["chroot"], with(&[Cap::SysChroot])),
    allow_if(
        &["init_module", "finit_module", "delete_module"],
        with(&[Cap::SysModule]),
    ),
    allow_if(&["acct"], with(&[Cap::SysPacct])),
    allow_if(
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
        with(&[Cap::SysPtrace]),
    ),
    allow_if(&["iopl", "ioperm"], with(&[Cap::SysRawio])),
    allow_if(
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        with(&[Cap::SysTime]),
    ),
    allow_if(&["vhangup"], with(&[Cap::SysTtyConfig])),
    allow_if(
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
        with(&[Cap::SysNice]),
    ),
    allow_if(&["syslog"], with(&[Cap::Syslog])),
    allow_if(&["bpf"], with(&[Cap::Bpf])),
    allow_if(&["perf_event_open"], with(&[Cap::Perfmon])),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn target(abi: Abi, caps: &[Capability]) -> Target {
        Target {
            abi,
            kernel: (6, 1),
            caps: caps.iter().copied().collect(),
        }
    }

    /// The action `profile` gives `name` when no argument matters, if a rule
    /// without conditions names it.
    fn plain_action(profile: &LinuxSeccomp, name: &str) -> Option<LinuxSyscall> {
        profile
            .syscalls()
            .iter()
            .flatten()
            .find(|s| s.args().is_none() && s.names().iter().any(|n| n == name))
            .cloned()
    }

    #[test]
    fn denies_by_default_with_eperm_on_every_abi_of_the_machine() {
        let profile = default_profile(&target(Abi::Amd64, &[]));
        assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(profile.default_errno_ret(), Some(libc::EPERM as u32));
        assert_eq!(
            profile.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
    }

    #[test]
    fn ordinary_work_is_allowed_escapes_are_not() {
        let profile = default_profile(&target(Abi::Amd64, &[Cap::Kill, Cap::NetBindService]));
        for name in [
            "read",
            "openat",
            "execve",
            "wait4",
            "mmap",
            "futex",
            "arch_prctl",
            "prctl",
            "memfd_create",
            "sendmsg",
            "ptrace",
        ] {
            assert!(plain_action(&profile, name).is_some(), "{name} allowed");
        }
        for name in [
            "mount",
            "unshare",
            "setns",
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "chroot",
            "pivot_root",
            "reboot",
            "init_module",
            "kexec_load",
            "userfaultfd",
            "io_uring_setup",
            "perf_event_open",
            "open_by_handle_at",
            "swapon",
            "clock_settime",
        ] {
            let allowed = profile
                .syscalls()
                .iter()
                .flatten()
                .any(|s| s.names().iter().any(|n| n == name));
            assert!(!allowed, "{name} must fall to the default action");
        }
        // Only on other architectures.
        assert!(plain_action(&profile, "set_tls").is_none());
    }

    #[test]
    fn clone_is_allowed_without_namespace_flags_and_clone3_falls_back() {
        let profile = default_profile(&target(Abi::Amd64, &[]));
        let clones: Vec<_> = profile
            .syscalls()
            .iter()
            .flatten()
            .filter(|s| s.names().iter().any(|n| n == "clone"))
            .collect();
        assert_eq!(clones.len(), 1, "only the conditional clone");
        let args = clones[0].args().as_ref().expect("conditional");
        assert_eq!(args.len(), 1);
        assert_eq!(args[0].index(), 0);
        assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        let (value, value_two) = masked_eq_operands(NAMESPACE_FLAGS, 0);
        assert_eq!(
            (args[0].value(), args[0].value_two()),
            (value, Some(value_two))
        );
        assert!(NAMESPACE_FLAGS & libc::CLONE_NEWUSER as u64 != 0);
        let clone3 = plain_action(&profile, "clone3").expect("clone3 has a rule");
        assert_eq!(clone3.action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3.errno_ret(), Some(libc::ENOSYS as u32));
    }

    #[test]
    fn capabilities_widen_the_profile_as_docker_does() {
        let admin = default_profile(&target(Abi::Amd64, &[Cap::SysAdmin]));
        let mount = plain_action(&admin, "mount").expect("mount with CAP_SYS_ADMIN");
        assert_eq!(mount.action(), LinuxSeccompAction::ScmpActAllow);
        assert!(plain_action(&admin, "clone").is_some(), "every clone");
        assert!(
            plain_action(&admin, "clone3")
                .is_some_and(|s| s.action() == LinuxSeccompAction::ScmpActAllow),
            "clone3 allowed, not ENOSYS"
        );
        let clone_conditions = admin
            .syscalls()
            .iter()
            .flatten()
            .filter(|s| s.names().iter().any(|n| n == "clone") && s.args().is_some())
            .count();
        assert_eq!(clone_conditions, 0);
    }

    #[test]
    fn architecture_and_kernel_conditions() {
        let arm = default_profile(&target(Abi::Arm64, &[]));
        assert!(plain_action(&arm, "set_tls").is_some());
        assert!(plain_action(&arm, "arch_prctl").is_none());
        assert_eq!(
            arm.architectures().as_deref(),
            Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
        );
        let s390 = default_profile(&target(Abi::S390x, &[]));
        let clone = s390
            .syscalls()
            .iter()
            .flatten()
            .find(|s| s.names().iter().any(|n| n == "clone"))
            .expect("clone rule");
        assert_eq!(clone.args().as_ref().unwrap()[0].index(), 1);
        let mut old = target(Abi::Amd64, &[]);
        old.kernel = (4, 4);
        assert!(plain_action(&default_profile(&old), "ptrace").is_none());
    }

    #[test]
    fn sockets_by_family_without_vsock_or_alg() {
        let profile = default_profile(&target(Abi::Amd64, &[]));
        let allowed = |family: u64| {
            profile.syscalls().iter().flatten().any(|s| {
                s.names().iter().any(|n| n == "socket")
                    && s.args().iter().flatten().all(|a| match a.op() {
                        LinuxSeccompOperator::ScmpCmpEq => family == a.value(),
                        LinuxSeccompOperator::ScmpCmpLt => family < a.value(),
                        _ => false,
                    })
            })
        };
        for family in [
            libc::AF_UNIX,
            libc::AF_INET,
            libc::AF_INET6,
            libc::AF_NETLINK,
            libc::AF_PACKET,
        ] {
            assert!(allowed(family as u64), "family {family}");
        }
        for family in [libc::AF_VSOCK, libc::AF_ALG, 12, 100] {
            assert!(!allowed(family as u64), "family {family}");
        }
        // No rule puts two conditions on one argument (they would be
        // alternatives, not a range).
        for s in profile.syscalls().iter().flatten() {
            let mut seen = HashSet::new();
            for a in s.args().iter().flatten() {
                assert!(seen.insert(a.index()), "{:?}", s.names());
            }
        }
    }

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(kernel_version("6.18.0-1-amd64\n"), (6, 18));
        assert_eq!(kernel_version("4.8"), (4, 8));
        assert_eq!(kernel_version("garbage"), (0, 0));
    }
}
