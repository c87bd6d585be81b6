//! Loading and checking an OCI bundle before anything is created for it.
//!
//! libcontainer parses `config.json` again when it builds the container; we
//! parse it first so that every mistake a user can make in a bundle is reported
//! with the bundle's path and what is wrong, before a state dir, cgroup or
//! process exists that would have to be cleaned up.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, LinuxResources, PosixRlimit, PosixRlimitType, Spec};

use crate::error::{Error, Result};

/// A bundle whose `config.json` parsed and whose paths exist.
#[derive(Debug)]
pub struct Bundle {
    /// Canonical path of the bundle directory.
    pub path: PathBuf,
    pub spec: Spec,
    /// The rootfs, resolved once here (symlinks followed, then checked):
    /// what every later step uses, never `root.path` again.
    rootfs: PathBuf,
}

impl Bundle {
    /// Loads the bundle at `path`. With `lower`, `root.path` is only the
    /// mount point of the world's overlay (made at create) and `lower` is
    /// the directory that must exist.
    pub fn load(path: &Path, lower: Option<&Path>) -> Result<Self> {
        let bundle_error = |reason: String| Error::Bundle {
            path: path.to_owned(),
            reason,
        };
        let path = fs::canonicalize(path).map_err(|e| bundle_error(describe_io(&e)))?;
        if !path.is_dir() {
            return Err(bundle_error("not a directory".into()));
        }
        let config_path = path.join("config.json");
        let bytes = fs::read(&config_path)
            .map_err(|e| bundle_error(format!("config.json: {}", describe_io(&e))))?;
        let spec: Spec =
            serde_json::from_slice(&bytes).map_err(|source| Error::MalformedConfig {
                path: config_path.clone(),
                source,
            })?;
        check_spec(&config_path, &path, &spec, lower)?;
        let named = rootfs_path(&path, &spec);
        let rootfs = match lower {
            // Only the mount point of the world's overlay, in the world
            // store: the runtime's own path.
            Some(_) => named,
            None => resolve_rootfs(&config_path, &named)?,
        };
        Ok(Bundle { path, spec, rootfs })
    }

    /// The rootfs, resolved against the bundle and through any symlink.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }
}

/// `root.path` with every symlink resolved, refused if that is the host's
/// `/`: a bundle whose rootfs is a symlink to `/` would have the runtime
/// make mount points and write files on the host's root.
fn resolve_rootfs(config_path: &Path, named: &Path) -> Result<PathBuf> {
    let unsupported = |reason: String| Error::UnsupportedConfig {
        path: config_path.to_owned(),
        reason,
    };
    let resolved = fs::canonicalize(named).map_err(|e| {
        unsupported(format!(
            "root.path {}: {}",
            named.display(),
            describe_io(&e)
        ))
    })?;
    if resolved == Path::new("/") {
        return Err(unsupported(format!(
            "root.path {} is the host's root directory: a container cannot run on it",
            named.display()
        )));
    }
    Ok(resolved)
}

pub(crate) fn rootfs_path(bundle: &Path, spec: &Spec) -> PathBuf {
    match spec.root() {
        Some(root) if root.path().is_absolute() => root.path().clone(),
        Some(root) => bundle.join(root.path()),
        None => bundle.join("rootfs"),
    }
}

/// What a runtime must refuse up front (runtime spec, "config.md"), and what
/// this kernel cannot do, each with a reason that names the field.
fn check_spec(config_path: &Path, bundle: &Path, spec: &Spec, lower: Option<&Path>) -> Result<()> {
    let unsupported = |reason: String| Error::UnsupportedConfig {
        path: config_path.to_owned(),
        reason,
    };
    if !spec.version().starts_with("1.") {
        return Err(unsupported(format!(
            "ociVersion {:?}: only 1.x is supported",
            spec.version()
        )));
    }
    if spec.root().is_none() {
        return Err(unsupported(
            "root: missing (the rootfs must be named)".into(),
        ));
    }
    let refused = crate::overlay::REFUSED_LOWER_ANNOTATION;
    if spec
        .annotations()
        .as_ref()
        .is_some_and(|a| a.contains_key(refused))
    {
        return Err(unsupported(format!(
            "annotation {refused}: a bundle cannot choose the world's lower layer \
             (it would expose the host's files to the world)"
        )));
    }
    // With a lower from the caller, root.path is only the overlay's mount
    // point (made at create); the lower is what must exist.
    match lower {
        Some(lower) if !lower.is_dir() => {
            return Err(unsupported(format!(
                "lower {}: no such directory",
                lower.display()
            )))
        }
        Some(_) => {}
        None => {
            let rootfs = rootfs_path(bundle, spec);
            if !rootfs.is_dir() {
                return Err(unsupported(format!(
                    "root.path {}: no such directory",
                    rootfs.display()
                )));
            }
        }
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| unsupported("process: missing (nothing to run)".into()))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(unsupported("process.args: empty (nothing to run)".into()));
    }
    for rlimit in process.rlimits().iter().flatten() {
        check_rlimit(rlimit).map_err(&unsupported)?;
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| unsupported("linux: missing (this runtime runs Linux containers)".into()))?;
    if let Some(resources) = linux.resources() {
        check_cgroup_resources(resources).map_err(&unsupported)?;
    }
    for ns in linux.namespaces().iter().flatten() {
        if let Some(ns_path) = ns.path() {
            if !ns_path.exists() {
                return Err(unsupported(format!(
                    "linux.namespaces: {:?} path {}: no such file",
                    ns.typ(),
                    ns_path.display()
                )));
            }
        } else if !kernel_has_namespace(ns.typ()) {
            return Err(unsupported(format!(
                "linux.namespaces: {:?}: this kernel has no such namespace",
                ns.typ()
            )));
        }
    }
    Ok(())
}

/// Resources libcgroups would skip without a word on this host. (The ones it
/// cannot apply, such as hugetlb limits without a v1 hugetlb hierarchy, it
/// refuses itself, naming the controller.)
fn check_cgroup_resources(resources: &LinuxResources) -> Result<(), String> {
    if resources.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
        return Err(
            "linux.resources.rdma: this runtime does not manage the rdma cgroup controller".into(),
        );
    }
    let unified = resources.unified().as_ref().is_some_and(|u| !u.is_empty());
    if unified {
        let setup = libcgroups::common::get_cgroup_setup()
            .map_err(|e| format!("cannot tell this host's cgroup setup: {e}"))?;
        if !matches!(setup, libcgroups::common::CgroupSetup::Unified) {
            return Err(format!(
                "linux.resources.unified: these are cgroup v2 files, but this host's cgroups are {setup:?} (v1 controllers); use the v1 resource fields"
            ));
        }
    }
    Ok(())
}

/// Raising a hard limit needs CAP_SYS_RESOURCE (setrlimit(2)); without it
/// the container's init would fail with a bare EPERM, so say which limit.
fn check_rlimit(rlimit: &PosixRlimit) -> Result<(), String> {
    use nix::sys::resource::{getrlimit, Resource};
    let resource = match rlimit.typ() {
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
    };
    // The name as config.json spells it (RLIMIT_NOFILE).
    let name = serde_json::to_value(rlimit.typ())
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("{:?}", rlimit.typ()));
    if rlimit.soft() > rlimit.hard() {
        return Err(format!(
            "process.rlimits: {name} soft limit {} is above its hard limit {}",
            rlimit.soft(),
            rlimit.hard()
        ));
    }
    // setrlimit(2) refuses an RLIMIT_NOFILE above fs.nr_open to everyone,
    // CAP_SYS_RESOURCE or not.
    if resource == Resource::RLIMIT_NOFILE {
        let nr_open = fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok());
        if let Some(nr_open) = nr_open.filter(|&n| rlimit.hard() > n) {
            return Err(format!(
                "process.rlimits: {name} hard limit {} is above this host's fs.nr_open ({nr_open}), which no process may exceed",
                rlimit.hard()
            ));
        }
    }
    let (_, current_hard) = getrlimit(resource).map_err(|e| format!("getrlimit: {e}"))?;
    if rlimit.hard() > current_hard && !has_cap_sys_resource() {
        return Err(format!(
            "process.rlimits: {name} hard limit {} is above this host's {} and the runtime lacks CAP_SYS_RESOURCE to raise it",
            rlimit.hard(),
            current_hard
        ));
    }
    Ok(())
}

fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    let Ok(status) = fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

fn kernel_has_namespace(typ: LinuxNamespaceType) -> bool {
    let name = match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    };
    Path::new("/proc/self/ns").join(name).exists()
}

/// `io::Error`'s Display adds "(os error N)"; users want the words.
pub(crate) fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}
