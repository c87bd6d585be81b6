//! A world's cgroup on either cgroup version, read in the OCI spec's terms.
//!
//! Tests name a setting as `linux.resources` does (memory limit, pids limit,
//! cpu shares, quota, period) and this module finds the file that holds it:
//! on cgroup v1 the controller's own hierarchy and v1 file names
//! (`memory/<path>/memory.limit_in_bytes`), on v2 the one unified hierarchy
//! and v2 names (`<path>/memory.max`), with the conversions runc and
//! libcgroups apply between the two (cpu shares → `cpu.weight`, quota and
//! period → `cpu.max`, -1 → `max`). A test states one claim and it is
//! checked on both versions.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where every cgroup hierarchy is mounted.
pub const ROOT: &str = "/sys/fs/cgroup";

/// The cgroup version worlds get on this host (what libcgroups picks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// Legacy or hybrid: each controller in its own v1 hierarchy under
    /// `/sys/fs/cgroup/<controller>` (a v2 `unified` mount, if any, holds no
    /// controller worlds use).
    V1,
    /// Unified: `/sys/fs/cgroup` is the cgroup2 mount.
    V2,
}

/// This host's version: v2 when `/sys/fs/cgroup` itself is a cgroup2 mount,
/// which has `cgroup.controllers` at its root (a hybrid host has it only in
/// `/sys/fs/cgroup/unified`).
pub fn version() -> Version {
    static VERSION: OnceLock<Version> = OnceLock::new();
    *VERSION.get_or_init(|| {
        if Path::new(ROOT).join("cgroup.controllers").exists() {
            Version::V2
        } else {
            Version::V1
        }
    })
}

/// The roots of every hierarchy a cgroup may be made in: on v2 the one
/// mount; on v1 each mounted hierarchy (and a hybrid host's `unified`).
pub fn hierarchies() -> Vec<PathBuf> {
    match version() {
        Version::V2 => vec![PathBuf::from(ROOT)],
        Version::V1 => {
            let mut roots: Vec<PathBuf> = fs::read_dir(ROOT)
                .map(|entries| entries.flatten().map(|e| e.path()).collect())
                .unwrap_or_default();
            roots.sort();
            roots
        }
    }
}

/// A cgroup setting, named as `linux.resources` in the OCI runtime spec
/// names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// `memory.limit` in bytes, -1 for none. v1 `memory.limit_in_bytes`,
    /// v2 `memory.max`.
    MemoryLimit,
    /// `pids.limit`, 0 or -1 for none. `pids.max` on both.
    PidsLimit,
    /// `cpu.shares`. v1 `cpu.shares`; v2 `cpu.weight`, converted.
    CpuShares,
    /// `cpu.quota` in µs per period, -1 for none. v1 `cpu.cfs_quota_us`,
    /// v2 the first field of `cpu.max`.
    CpuQuota,
    /// `cpu.period` in µs. v1 `cpu.cfs_period_us`, v2 the second field of
    /// `cpu.max`.
    CpuPeriod,
}

impl Setting {
    /// The controller whose hierarchy holds this setting on v1.
    pub fn controller(self) -> &'static str {
        match self {
            Setting::MemoryLimit => "memory",
            Setting::PidsLimit => "pids",
            Setting::CpuShares | Setting::CpuQuota | Setting::CpuPeriod => "cpu",
        }
    }

    /// The file holding this setting on `version`.
    pub fn file(self, version: Version) -> &'static str {
        match (self, version) {
            (Setting::MemoryLimit, Version::V1) => "memory.limit_in_bytes",
            (Setting::MemoryLimit, Version::V2) => "memory.max",
            (Setting::PidsLimit, _) => "pids.max",
            (Setting::CpuShares, Version::V1) => "cpu.shares",
            (Setting::CpuShares, Version::V2) => "cpu.weight",
            (Setting::CpuQuota, Version::V1) => "cpu.cfs_quota_us",
            (Setting::CpuPeriod, Version::V1) => "cpu.cfs_period_us",
            (Setting::CpuQuota | Setting::CpuPeriod, Version::V2) => "cpu.max",
        }
    }

    /// What the setting's file reads on `version` once a runtime has applied
    /// the OCI value `oci` (as runc and libcgroups write it).
    pub fn file_value(self, version: Version, oci: i64) -> String {
        match (self, version) {
            // The kernel's "no limit" (PAGE_COUNTER_MAX pages) on v1.
            (Setting::MemoryLimit, Version::V1) if oci < 0 => {
                (i64::MAX / page_size() * page_size()).to_string()
            }
            (Setting::MemoryLimit | Setting::CpuQuota, Version::V2) if oci < 0 => "max".into(),
            (Setting::PidsLimit, _) if oci <= 0 => "max".into(),
            (Setting::CpuShares, Version::V2) => shares_to_weight(oci as u64).to_string(),
            _ => oci.to_string(),
        }
    }
}

/// The `cpu.weight` runc (1.3.2 on, opencontainers/cgroups#20) and
/// libcgroups 0.7 write for v1 `cpu.shares`: a quadratic fit in log2(shares)
/// that keeps the extremes (2 → 1, 262144 → 10000) and the defaults
/// (1024 → 100). It replaced the linear
/// `1 + (shares - 2) * 9999 / 262142`, which mapped the default 1024 shares
/// to weight 39.
pub fn shares_to_weight(shares: u64) -> u64 {
    match shares {
        0 => 0,
        1..=2 => 1,
        262_144.. => 10_000,
        _ => {
            let l = (shares as f64).log2();
            let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            (10f64.powf(exponent).ceil() as u64).clamp(1, 10_000)
        }
    }
}

fn page_size() -> i64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096)
}

/// One cgroup, by its path relative to a hierarchy's root (what
/// `linux.cgroupsPath` names), on whichever version this host has.
#[derive(Clone, Debug)]
pub struct Cgroup {
    path: PathBuf,
}

impl Cgroup {
    /// The cgroup at `path` (relative to a hierarchy's root; a leading `/`
    /// is allowed, as in `linux.cgroupsPath`).
    pub fn at(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        Cgroup {
            path: path.strip_prefix("/").unwrap_or(path).to_owned(),
        }
    }

    /// The cgroup the harness's [`crate::Bundle`] gives world `id`.
    pub fn of_world(id: &str) -> Self {
        Cgroup::at(crate::cgroup_path(id))
    }

    /// The cgroup process `pid` is in, from `/proc/<pid>/cgroup`: the v2
    /// line (`0::<path>`) on v2, the memory controller's line on v1.
    pub fn of_pid(pid: i32) -> io::Result<Self> {
        let table = fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
        let wanted = |controllers: &str| match version() {
            Version::V2 => controllers.is_empty(),
            Version::V1 => controllers.split(',').any(|c| c == "memory"),
        };
        table
            .lines()
            .filter_map(|line| {
                let mut fields = line.splitn(3, ':');
                let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
                wanted(controllers).then(|| Cgroup::at(path))
            })
            .next()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no {:?} cgroup line for pid {pid}: {table}", version()),
                )
            })
    }

    /// The path relative to a hierarchy's root, without a leading `/`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory holding `controller`'s files for this cgroup: on v1
    /// `/sys/fs/cgroup/<controller>/<path>`, on v2 `/sys/fs/cgroup/<path>`
    /// whatever the controller (`freezer` stands for v2's `cgroup.freeze`,
    /// which is the core's, not a controller's).
    pub fn dir(&self, controller: &str) -> PathBuf {
        match version() {
            Version::V1 => Path::new(ROOT).join(controller).join(&self.path),
            Version::V2 => Path::new(ROOT).join(&self.path),
        }
    }

    /// The directories of this cgroup that exist, in any hierarchy. Empty
    /// when it is gone everywhere.
    pub fn existing_dirs(&self) -> Vec<PathBuf> {
        hierarchies()
            .into_iter()
            .map(|root| root.join(&self.path))
            .filter(|dir| dir.exists())
            .collect()
    }

    /// The setting's file, read and trimmed; for v2's `cpu.max` only the
    /// field that holds the setting.
    pub fn read(&self, setting: Setting) -> io::Result<String> {
        let version = version();
        let file = self.dir(setting.controller()).join(setting.file(version));
        let text = fs::read_to_string(&file)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", file.display())))?;
        let text = text.trim();
        let field = match (setting, version) {
            (Setting::CpuQuota, Version::V2) => text.split_whitespace().next(),
            (Setting::CpuPeriod, Version::V2) => text.split_whitespace().nth(1),
            _ => Some(text),
        };
        field.map(str::to_owned).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: unexpected {text:?}", file.display()),
            )
        })
    }

    /// Asserts that `setting` holds what a runtime writes for the OCI value
    /// `oci` on this host's version.
    #[track_caller]
    pub fn assert_setting(&self, setting: Setting, oci: i64) {
        let version = version();
        let read = self
            .read(setting)
            .unwrap_or_else(|e| panic!("{setting:?} of cgroup {}: {e}", self.path.display()));
        assert_eq!(
            read,
            setting.file_value(version, oci),
            "{setting:?} = {oci} in cgroup {} ({version:?}, {})",
            self.path.display(),
            setting.file(version)
        );
    }

    /// Whether every process of the cgroup is frozen: v1 `freezer.state`
    /// reads `FROZEN`; v2 `cgroup.events` says `frozen 1` (the state
    /// reached, where `cgroup.freeze` is only the one asked for).
    pub fn frozen(&self) -> io::Result<bool> {
        match version() {
            Version::V1 => {
                let state = fs::read_to_string(self.dir("freezer").join("freezer.state"))?;
                Ok(state.trim() == "FROZEN")
            }
            Version::V2 => {
                let events = fs::read_to_string(self.dir("freezer").join("cgroup.events"))?;
                Ok(events.lines().any(|line| line.trim() == "frozen 1"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_match_runc() {
        // Worked out from the formula in opencontainers/cgroups'
        // ConvertCPUSharesToCgroupV2Value; the ends and 1024 → 100 are its
        // stated fixed points.
        for (shares, weight) in [
            (0, 0),
            (2, 1),
            (3, 2),
            (256, 35),
            (512, 59),
            (1024, 100),
            (2048, 174),
            (262_144, 10_000),
        ] {
            assert_eq!(shares_to_weight(shares), weight, "{shares} shares");
        }
    }

    #[test]
    fn file_values() {
        assert_eq!(Setting::PidsLimit.file_value(Version::V1, -1), "max");
        assert_eq!(Setting::PidsLimit.file_value(Version::V2, 0), "max");
        assert_eq!(Setting::CpuQuota.file_value(Version::V2, -1), "max");
        assert_eq!(Setting::CpuQuota.file_value(Version::V1, -1), "-1");
        assert_eq!(Setting::MemoryLimit.file_value(Version::V2, 4096), "4096");
        assert_eq!(Setting::CpuShares.file_value(Version::V1, 512), "512");
        assert_eq!(Setting::CpuShares.file_value(Version::V2, 512), "59");
    }
}
