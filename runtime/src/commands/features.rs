use anyhow::Result;
use oci_spec::runtime::{
    Arch, CgroupBuilder, FeaturesBuilder, LinuxFeatureBuilder, LinuxNamespaceType,
    LinuxSeccompAction, SeccompBuilder,
};
use substrate_runtime::OCI_VERSION;

/// What this runtime understands, as the OCI `features` document
/// (runtime-spec `features.md`), so higher layers can check before asking.
pub fn features() -> Result<()> {
    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let seccomp = SeccompBuilder::default()
        .enabled(true)
        .actions(vec![
            LinuxSeccompAction::ScmpActAllow,
            LinuxSeccompAction::ScmpActErrno,
            LinuxSeccompAction::ScmpActKill,
            LinuxSeccompAction::ScmpActKillProcess,
            LinuxSeccompAction::ScmpActKillThread,
            LinuxSeccompAction::ScmpActLog,
            LinuxSeccompAction::ScmpActNotify,
            LinuxSeccompAction::ScmpActTrace,
            LinuxSeccompAction::ScmpActTrap,
        ])
        .operators(strings(&[
            "SCMP_CMP_EQ",
            "SCMP_CMP_GE",
            "SCMP_CMP_GT",
            "SCMP_CMP_LE",
            "SCMP_CMP_LT",
            "SCMP_CMP_MASKED_EQ",
            "SCMP_CMP_NE",
        ]))
        .archs(vec![
            Arch::ScmpArchX86_64,
            Arch::ScmpArchX86,
            Arch::ScmpArchX32,
            Arch::ScmpArchAarch64,
        ])
        .build()?;
    let linux = LinuxFeatureBuilder::default()
        .namespaces(vec![
            LinuxNamespaceType::Cgroup,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::User,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Time,
        ])
        .capabilities(caps_all())
        .cgroup(
            CgroupBuilder::default()
                .v1(true)
                .v2(true)
                .systemd(false)
                .systemd_user(false)
                .build()?,
        )
        .seccomp(seccomp)
        .build()?;
    let features = FeaturesBuilder::default()
        .oci_version_min("1.0.0")
        .oci_version_max(OCI_VERSION)
        .hooks(strings(&[
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        ]))
        .mount_options(strings(&[
            "async",
            "atime",
            "bind",
            "defaults",
            "dev",
            "diratime",
            "dirsync",
            "exec",
            "iversion",
            "lazytime",
            "loud",
            "mand",
            "noatime",
            "nodev",
            "nodiratime",
            "noexec",
            "noiversion",
            "nolazytime",
            "nomand",
            "norelatime",
            "nostrictatime",
            "nosuid",
            "nosymfollow",
            "private",
            "rbind",
            "relatime",
            "remount",
            "ro",
            "rprivate",
            "rshared",
            "rslave",
            "runbindable",
            "rw",
            "shared",
            "silent",
            "slave",
            "strictatime",
            "suid",
            "symfollow",
            "sync",
            "unbindable",
        ]))
        .linux(linux)
        .annotations(sensor_annotations())
        .build()?;
    println!("{}", serde_json::to_string_pretty(&features)?);
    Ok(())
}

/// The kernel sensor's sources on this host (runc reports its own
/// `io.github.seccomp.libseccomp.version` and such the same way): each
/// program kind loaded (and unloaded) to know.
fn sensor_annotations() -> std::collections::HashMap<String, String> {
    use substrate_sensor::bpf::{probe, SENSOR_ENV};
    let state = |r: Result<String, String>| match r {
        Ok(what) => what,
        Err(why) => format!("unavailable: {why}"),
    };
    let mut annotations = std::collections::HashMap::new();
    if std::env::var(SENSOR_ENV).is_ok_and(|v| v == "off") {
        let off = format!("off ({SENSOR_ENV}=off)");
        annotations.insert(
            "io.substrate.sensor.exec".into(),
            format!("proc_connector; ebpf {off}"),
        );
        annotations.insert("io.substrate.sensor.net".into(), off);
        return annotations;
    }
    let probe = probe();
    annotations.insert(
        "io.substrate.sensor.exec".into(),
        match probe.exec {
            Ok(program) => format!("ebpf:{program}"),
            Err(why) => format!("proc_connector; ebpf unavailable: {why}"),
        },
    );
    annotations.insert(
        "io.substrate.sensor.net".into(),
        state(probe.net.map(|()| "ebpf".into())),
    );
    // Marks are made per world, on its own upper filesystem: the kernel's
    // fanotify is what there is to report here.
    annotations.insert(
        "io.substrate.sensor.files".into(),
        if std::path::Path::new("/proc/sys/fs/fanotify").exists() {
            "fanotify".into()
        } else {
            "unavailable: no fanotify in this kernel".into()
        },
    );
    annotations.insert(
        "io.substrate.sensor.bpf_lsm".into(),
        state(probe.lsm.map(|()| "loads".into())),
    );
    annotations
}

fn caps_all() -> Vec<String> {
    (0..=40)
        .filter_map(|n| cap_name(n).map(str::to_owned))
        .collect()
}

/// Capability names by number (linux/capability.h), up to CAP_CHECKPOINT_RESTORE.
fn cap_name(n: u32) -> Option<&'static str> {
    const NAMES: [&str; 41] = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
    ];
    NAMES.get(n as usize).copied()
}
