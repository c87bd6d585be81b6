//! Every cgroup hierarchy a container has a cgroup in (Substrate patch).
//!
//! libcgroups' v1 manager creates, joins and removes a container's cgroup
//! only in the hierarchies of the controllers it knows. A named hierarchy
//! (`name=systemd`), one of a controller it does not know (`misc`, `rdma`)
//! and a hybrid host's cgroup2 hierarchy (`/sys/fs/cgroup/unified`) kept
//! the container in the runtime's own cgroup there: on a host whose runtime
//! runs in the root cgroup, the host's root, which a cgroup namespace then
//! hands to the container as its own. runc's fs manager joins them all
//! (its `NameGroup` subsystems, and `""` on hybrid hosts); [`join`] does.
//!
//! Both managers' `remove` kill the processes of the container's cgroup and
//! rmdir it, which fails while it has child cgroups: a container with a
//! writable cgroupfs could make itself undeletable with one `mkdir`.
//! [`remove`] kills every process of the whole subtree and removes its
//! cgroups deepest first, in every hierarchy, as runc's `RemovePaths` does.

use std::fs;
use std::io::{self, BufRead, BufReader};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use libcgroups::common::DEFAULT_CGROUP_ROOT;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use pathrs::flags::OpenFlags;
use pathrs::procfs::{ProcfsBase, ProcfsHandle};
use procfs::process::MountInfo;

/// How long [`remove`] waits for the processes it killed to leave their
/// cgroups, and for the cgroups to be removable.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HierarchyError {
    #[error("cannot list the cgroup hierarchies (/proc/self/mountinfo): {0}")]
    MountInfo(String),
    #[error("cgroup path {0:?} leaves its hierarchy: it must name a cgroup below the root")]
    InvalidPath(PathBuf),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cgroup {path} still has processes {pids:?} after they were killed")]
    StillPopulated { path: PathBuf, pids: Vec<i32> },
}

type Result<T> = std::result::Result<T, HierarchyError>;

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> HierarchyError + 'a {
    move |source| HierarchyError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where it is mounted, under `/sys/fs/cgroup`.
    pub mount_point: PathBuf,
    /// cgroup2 (the unified hierarchy) rather than a v1 one.
    pub v2: bool,
    /// A v1 hierarchy holding the freezer controller.
    pub freezer: bool,
}

/// Every cgroup hierarchy mounted at or under `/sys/fs/cgroup`: each v1
/// hierarchy (named ones included) and the cgroup2 one (the root of a v2
/// host, `unified` on a hybrid one). A hierarchy mounted twice is listed
/// once; a bind mount of a cgroup below a hierarchy's root is not listed.
pub fn hierarchies() -> Result<Vec<Hierarchy>> {
    let file = ProcfsHandle::new()
        .and_then(|procfs| {
            procfs.open(
                ProcfsBase::ProcSelf,
                "mountinfo",
                OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC,
            )
        })
        .map_err(|e| HierarchyError::MountInfo(e.to_string()))?;
    let mut found: Vec<(String, Hierarchy)> = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| HierarchyError::MountInfo(e.to_string()))?;
        let info =
            MountInfo::from_line(&line).map_err(|e| HierarchyError::MountInfo(e.to_string()))?;
        let v2 = match info.fs_type.as_str() {
            "cgroup" => false,
            "cgroup2" => true,
            _ => continue,
        };
        if !info.mount_point.starts_with(DEFAULT_CGROUP_ROOT) || info.root != "/" {
            continue;
        }
        if found.iter().any(|(majmin, _)| *majmin == info.majmin) {
            continue;
        }
        // A mount under another one mounted over it later is listed but
        // not reachable: its path leads into the one on top.
        if !reaches(&info.mount_point, &info.majmin) {
            continue;
        }
        let freezer = !v2 && info.super_options.contains_key("freezer");
        found.push((
            info.majmin.clone(),
            Hierarchy {
                mount_point: info.mount_point,
                v2,
                freezer,
            },
        ));
    }
    Ok(found.into_iter().map(|(_, h)| h).collect())
}

/// Whether `path` is on the filesystem whose device mountinfo gives as
/// `majmin` (`major:minor`).
fn reaches(path: &Path, majmin: &str) -> bool {
    let Ok(stat) = nix::sys::stat::stat(path) else {
        return false;
    };
    let dev = stat.st_dev;
    majmin
        == format!(
            "{}:{}",
            nix::sys::stat::major(dev),
            nix::sys::stat::minor(dev)
        )
}

/// `cgroup_path` (as `linux.cgroupsPath`: relative to a hierarchy's root,
/// leading `/` or not) made relative; `None` for the root itself, which is
/// nobody's own to join or remove. A path that leaves its hierarchy (`..`)
/// is refused.
fn relative(cgroup_path: &Path) -> Result<Option<PathBuf>> {
    let mut relative = PathBuf::new();
    for component in cgroup_path.components() {
        match component {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => relative.push(name),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(HierarchyError::InvalidPath(cgroup_path.to_owned()));
            }
        }
    }
    Ok((!relative.as_os_str().is_empty()).then_some(relative))
}

/// Moves `pid` into the cgroup `cgroup_path` of every hierarchy, making it
/// where it does not exist. Joining one it is already in changes nothing,
/// so the hierarchies libcgroups handled are joined again harmlessly. The
/// root cgroup is not joined: the process stays where it is.
pub fn join(cgroup_path: &Path, pid: Pid) -> Result<()> {
    let Some(relative) = relative(cgroup_path)? else {
        return Ok(());
    };
    for hierarchy in hierarchies()? {
        let dir = hierarchy.mount_point.join(&relative);
        fs::create_dir_all(&dir).map_err(io_error("cannot create cgroup", &dir))?;
        let procs = dir.join("cgroup.procs");
        fs::write(&procs, pid.as_raw().to_string())
            .map_err(io_error("cannot move the process into", &procs))?;
    }
    Ok(())
}

/// The cgroup `dir` and every cgroup below it, parents before children.
fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![dir.to_owned()];
    let mut next = 0;
    while next < dirs.len() {
        if let Ok(entries) = fs::read_dir(&dirs[next]) {
            dirs.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
        next += 1;
    }
    dirs
}

/// The processes of the cgroup `dir` (not of its children).
fn procs(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

/// Writes a control file, ignoring a cgroup removed meanwhile.
fn write_control(file: &Path, value: &str) -> Result<()> {
    match fs::write(file, value) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error("cannot write", file)(e)),
        _ => Ok(()),
    }
}

/// Kills every process in the cgroup `cgroup_path` and below it, in every
/// hierarchy, then removes those cgroups, deepest first. A cgroup that does
/// not exist is not an error; the root cgroup is never removed.
pub fn remove(cgroup_path: &Path) -> Result<()> {
    let Some(relative) = relative(cgroup_path)? else {
        return Ok(());
    };
    let trees: Vec<(Hierarchy, PathBuf)> = hierarchies()?
        .into_iter()
        .map(|h| {
            let dir = h.mount_point.join(&relative);
            (h, dir)
        })
        .filter(|(_, dir)| dir.exists())
        .collect();
    if trees.is_empty() {
        return Ok(());
    }
    let deadline = Instant::now() + REMOVE_TIMEOUT;
    kill_all(&trees, deadline)?;
    for (_, dir) in &trees {
        remove_deepest_first(dir, deadline)?;
    }
    Ok(())
}

/// SIGKILLs every process of the trees until none is left.
///
/// cgroup v2's `cgroup.kill` (Linux 5.14) kills a whole subtree at once,
/// frozen processes included, and with no pid to reuse in between. On v1
/// every pid is read and signalled: the freezer subtree is frozen first so
/// that nothing forks meanwhile, then every cgroup of it thawed, since a
/// frozen process takes no SIGKILL until it thaws and a child cgroup frozen
/// on its own stays frozen when its parent is thawed (`self_freezing`).
fn kill_all(trees: &[(Hierarchy, PathBuf)], deadline: Instant) -> Result<()> {
    loop {
        for (_, dir) in trees.iter().filter(|(h, _)| h.v2) {
            // Before 5.14 there is none: the signal loop below does it.
            let kill_file = dir.join("cgroup.kill");
            if kill_file.exists() {
                write_control(&kill_file, "1")?;
            }
        }
        let freezer = trees.iter().find(|(h, _)| h.freezer).map(|(_, d)| d);
        if let Some(freezer) = freezer {
            // Best effort: a freezer that cannot freeze still lets the
            // loop kill, one fork later.
            let _ = write_control(&freezer.join("freezer.state"), "FROZEN");
        }
        let mut pids: Vec<(PathBuf, i32)> = Vec::new();
        for (_, dir) in trees {
            for cgroup in subtree(dir) {
                pids.extend(procs(&cgroup).into_iter().map(|pid| (cgroup.clone(), pid)));
            }
        }
        for (_, pid) in &pids {
            match kill(Pid::from_raw(*pid), Signal::SIGKILL) {
                Ok(()) | Err(Errno::ESRCH) => {}
                Err(e) => tracing::warn!(pid, "cannot kill a process of the cgroup: {e}"),
            }
        }
        if let Some(freezer) = freezer {
            for cgroup in subtree(freezer) {
                write_control(&cgroup.join("freezer.state"), "THAWED")?;
            }
        }
        let Some((path, _)) = pids.first() else {
            return Ok(());
        };
        if Instant::now() > deadline {
            let path = path.clone();
            let pids = pids
                .into_iter()
                .filter(|(p, _)| *p == path)
                .map(|(_, pid)| pid)
                .collect();
            return Err(HierarchyError::StillPopulated { path, pids });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Removes the cgroup `dir` and every cgroup below it, children before
/// parents. A cgroup whose last process is still exiting is busy for a
/// moment; that is retried until `deadline`.
fn remove_deepest_first(dir: &Path, deadline: Instant) -> Result<()> {
    for cgroup in subtree(dir).iter().rev() {
        loop {
            match fs::remove_dir(cgroup) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(io_error("cannot remove cgroup", cgroup)(e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        let rel = |p: &str| relative(Path::new(p));
        assert_eq!(rel("/a/b").unwrap(), Some(PathBuf::from("a/b")));
        assert_eq!(rel("a/./b").unwrap(), Some(PathBuf::from("a/b")));
        assert_eq!(rel(":youki:x").unwrap(), Some(PathBuf::from(":youki:x")));
        for root in ["/", "", "."] {
            assert_eq!(rel(root).unwrap(), None, "{root:?}");
        }
        for bad in ["/a/../../b", "../a", "/a/.."] {
            assert!(rel(bad).is_err(), "{bad:?}");
        }
    }
}
