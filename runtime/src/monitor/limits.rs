//! The policy's `limits.wall_time` and `budget.cpu_seconds`, kept by the
//! world's monitor (a thread of `substrate-cli run`, of the shim, or the
//! detached `substrate-runtime monitor`).
//!
//! Every [`CHECK_INTERVAL`] the monitor compares how long the world has
//! run (since the monitor subscribed: the world span's start) and how much
//! CPU time its cgroup has used (cgroup v1 `cpuacct.usage`, v2 `cpu.stat`'s
//! `usage_usec`: every process of the world, the dead ones included) with
//! the policy's. Past either, the world is stopped the way `kill --all`
//! stops it ([`crate::World::kill`]): its cgroup frozen, every process in
//! it SIGKILLed, thawed; so nothing forks its way out between the listing
//! and the signal. It is noted in the record first (`limits_hit`, so that
//! whoever finishes the world after the kill sees it), and said on the
//! world span (`stopped_by`). Until the world's last process is gone, it is
//! killed again at each check (a freeze the kernel could not complete).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use substrate_trace::Timestamp;

use crate::id::WorldId;
use crate::record::WorldRecord;
use crate::store::WorldStore;
use crate::world::Limit;

/// How often the clock and the cgroup's CPU time are looked at: one small
/// file read each time, and a world overruns by at most this.
pub(super) const CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// Why a world's wall time or CPU budget cannot be kept: the world is not
/// run rather than run unbounded.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error("budget.cpu_seconds: cannot find the world's cgroup")]
    World(#[source] crate::Error),
    #[error("budget.cpu_seconds: the world has no cgroup recorded")]
    NoCgroup,
    #[error("budget.cpu_seconds: cannot tell the host's cgroup version")]
    Setup(#[source] libcgroups::common::GetCgroupSetupError),
    #[error("budget.cpu_seconds: the host has no cgroup v1 cpuacct hierarchy")]
    NoCpuacct(#[source] libcgroups::v1::util::V1MountPointError),
    #[error("budget.cpu_seconds: cannot read the world's CPU time from {}", path.display())]
    Usage {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A world's wall time and CPU budget, and whether it was stopped at one.
pub(super) struct LimitWatch {
    id: WorldId,
    store: WorldStore,
    /// The state root the world's runtime keeps it under (its record's).
    runtime_root: PathBuf,
    started: Instant,
    wall_time: Option<Duration>,
    cpu_seconds: Option<(u64, CpuUsage)>,
    last_check: Instant,
    stopped: bool,
}

impl LimitWatch {
    /// The watch for world `id` of `store` whose policy (in `record`) sets
    /// a wall time or a CPU budget, counted from now; `None` when it sets
    /// neither.
    pub(super) fn start(
        store: &WorldStore,
        id: &WorldId,
        record: Option<&WorldRecord>,
    ) -> Result<Option<LimitWatch>, LimitsError> {
        let Some(record) = record else {
            return Ok(None);
        };
        let Some(policy) = &record.policy else {
            return Ok(None);
        };
        let wall_time = policy.limits.wall_time;
        let cpu_seconds = match policy.budget.cpu_seconds {
            None => None,
            Some(seconds) => {
                let world = crate::Runtime::new(&record.runtime_root)
                    .world(id.as_str())
                    .map_err(LimitsError::World)?;
                let cgroup = world.cgroup_path().ok_or(LimitsError::NoCgroup)?;
                let usage = CpuUsage::of_cgroup(&cgroup)?;
                // Read once now: a file that cannot be read would leave the
                // budget unkept.
                usage.read().map_err(|source| LimitsError::Usage {
                    path: usage.path().to_owned(),
                    source,
                })?;
                Some((seconds, usage))
            }
        };
        if wall_time.is_none() && cpu_seconds.is_none() {
            return Ok(None);
        }
        let now = Instant::now();
        Ok(Some(LimitWatch {
            id: id.clone(),
            store: store.clone(),
            runtime_root: record.runtime_root.clone(),
            started: now,
            wall_time,
            cpu_seconds,
            last_check: now,
            stopped: false,
        }))
    }

    /// Called on every pass of the monitor's loop; looks at most every
    /// [`CHECK_INTERVAL`]. Returns the world span's `stopped_by` when the
    /// world has just been stopped at a limit.
    pub(super) fn check(&mut self) -> Option<serde_json::Value> {
        if self.last_check.elapsed() < CHECK_INTERVAL {
            return None;
        }
        self.last_check = Instant::now();
        if self.stopped {
            if self.still_running() {
                self.kill();
            }
            return None;
        }
        let used = self
            .cpu_seconds
            .as_ref()
            .and_then(|(_, usage)| usage.read().ok());
        let (limit, limit_s) = passed(
            self.started.elapsed(),
            self.wall_time,
            used,
            self.cpu_seconds.as_ref().map(|(seconds, _)| *seconds),
        )?;
        self.stopped = true;
        let at = Timestamp::now();
        if let Err(e) = crate::world::limits::note_stopped(&self.store, &self.id, limit) {
            tracing::warn!("world {}: cannot note its stop in its record: {e}", self.id);
        }
        self.kill();
        let mut stopped_by = serde_json::json!({
            "limit": limit,
            "limit_s": limit_s,
            "at": at,
        });
        if limit == Limit::CpuSeconds {
            if let Some(used) = used {
                stopped_by["used_s"] = used.as_secs_f64().into();
            }
        }
        tracing::info!("world {}: stopped at {stopped_by}", self.id);
        Some(stopped_by)
    }

    /// SIGKILLs every process of the world, through its cgroup.
    fn kill(&self) {
        let killed = crate::Runtime::new(&self.runtime_root)
            .world(self.id.as_str())
            .and_then(|mut world| world.kill(Signal::SIGKILL, true));
        match killed {
            Ok(()) => {}
            // Deleted meanwhile: nothing of it is left to stop.
            Err(e) if e.is_not_found() => {}
            Err(e) => tracing::warn!("world {}: cannot stop it: {e}", self.id),
        }
    }

    /// Whether the world's cgroup still holds a process.
    fn still_running(&self) -> bool {
        crate::Runtime::new(&self.runtime_root)
            .world(self.id.as_str())
            .and_then(|world| world.pids())
            .is_ok_and(|pids| !pids.is_empty())
    }
}

/// The limit the world is past, with its value in seconds, if any: after
/// running for `elapsed` of `wall_time`, having used `cpu_used` of
/// `cpu_seconds` (`None`: unread).
fn passed(
    elapsed: Duration,
    wall_time: Option<Duration>,
    cpu_used: Option<Duration>,
    cpu_seconds: Option<u64>,
) -> Option<(Limit, u64)> {
    if let Some(wall_time) = wall_time.filter(|&limit| elapsed >= limit) {
        return Some((Limit::WallTime, wall_time.as_secs()));
    }
    match (cpu_used, cpu_seconds) {
        (Some(used), Some(seconds)) if used >= Duration::from_secs(seconds) => {
            Some((Limit::CpuSeconds, seconds))
        }
        _ => None,
    }
}

/// Where a cgroup's CPU time is read: every process in it and its
/// descendants, since it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CpuUsage {
    /// cgroup v1 (legacy or hybrid): `cpuacct.usage`, in nanoseconds.
    V1(PathBuf),
    /// cgroup v2: `cpu.stat`, whose `usage_usec` is in microseconds (kept
    /// by the core, whether or not the `cpu` controller is enabled).
    V2(PathBuf),
}

impl CpuUsage {
    /// The file of `cgroup` (relative to a hierarchy's root, as libcgroups
    /// places it) on this host's cgroup version.
    fn of_cgroup(cgroup: &Path) -> Result<CpuUsage, LimitsError> {
        use libcgroups::common::{get_cgroup_setup, CgroupSetup, DEFAULT_CGROUP_ROOT};
        let relative = cgroup.strip_prefix("/").unwrap_or(cgroup);
        match get_cgroup_setup().map_err(LimitsError::Setup)? {
            CgroupSetup::Unified => Ok(CpuUsage::V2(
                Path::new(DEFAULT_CGROUP_ROOT)
                    .join(relative)
                    .join("cpu.stat"),
            )),
            CgroupSetup::Legacy | CgroupSetup::Hybrid => {
                let hierarchy = libcgroups::v1::util::get_subsystem_mount_point(
                    &libcgroups::v1::ControllerType::CpuAcct,
                )
                .map_err(LimitsError::NoCpuacct)?;
                Ok(CpuUsage::V1(hierarchy.join(relative).join("cpuacct.usage")))
            }
        }
    }

    fn path(&self) -> &Path {
        match self {
            CpuUsage::V1(path) | CpuUsage::V2(path) => path,
        }
    }

    /// The CPU time used so far.
    fn read(&self) -> io::Result<Duration> {
        let text = fs::read_to_string(self.path())?;
        let parsed = match self {
            CpuUsage::V1(_) => parse_cpuacct_usage(&text),
            CpuUsage::V2(_) => parse_cpu_stat_usage(&text),
        };
        parsed.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no CPU time in {text:?}"),
            )
        })
    }
}

/// v1 `cpuacct.usage`: one number, nanoseconds.
fn parse_cpuacct_usage(text: &str) -> Option<Duration> {
    text.trim().parse().ok().map(Duration::from_nanos)
}

/// v2 `cpu.stat`: the `usage_usec` line, microseconds.
fn parse_cpu_stat_usage(text: &str) -> Option<Duration> {
    text.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        (fields.next()? == "usage_usec")
            .then(|| fields.next()?.parse().ok().map(Duration::from_micros))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_wall_time_is_passed_at_its_value() {
        assert_eq!(passed(S(1), Some(S(2)), None, None), None);
        assert_eq!(
            passed(S(2), Some(S(2)), None, None),
            Some((Limit::WallTime, 2))
        );
        assert_eq!(
            passed(S(90), Some(S(60)), None, None),
            Some((Limit::WallTime, 60))
        );
        assert_eq!(passed(S(3600), None, None, None), None);
    }

    #[test]
    fn the_cpu_budget_is_passed_once_spent() {
        let ms = Duration::from_millis;
        assert_eq!(passed(S(9), None, Some(ms(999)), Some(1)), None);
        assert_eq!(
            passed(S(9), None, Some(ms(1000)), Some(1)),
            Some((Limit::CpuSeconds, 1))
        );
        // Unread (the cgroup gone as the world ends): nothing is passed.
        assert_eq!(passed(S(9), None, None, Some(1)), None);
        // Both past: the wall time says it first.
        assert_eq!(
            passed(S(5), Some(S(5)), Some(S(7)), Some(1)),
            Some((Limit::WallTime, 5))
        );
        assert_eq!(
            passed(S(4), Some(S(5)), Some(S(7)), Some(1)),
            Some((Limit::CpuSeconds, 1))
        );
    }

    #[test]
    fn cpu_time_is_read_in_either_versions_words() {
        assert_eq!(
            parse_cpuacct_usage("1500000000\n"),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_cpuacct_usage(""), None);
        let stat = "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n\
                    nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n";
        assert_eq!(
            parse_cpu_stat_usage(stat),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(parse_cpu_stat_usage("user_usec 5\n"), None);
        assert_eq!(parse_cpu_stat_usage("usage_usec_total 5\n"), None);
    }

    #[test]
    fn cpu_time_is_read_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let v1 = dir.path().join("cpuacct.usage");
        fs::write(&v1, "3000000000\n").unwrap();
        assert_eq!(CpuUsage::V1(v1).read().unwrap(), S(3));
        let v2 = dir.path().join("cpu.stat");
        fs::write(&v2, "usage_usec 4000000\nuser_usec 1\n").unwrap();
        assert_eq!(CpuUsage::V2(v2.clone()).read().unwrap(), S(4));
        fs::write(&v2, "user_usec 1\n").unwrap();
        assert_eq!(
            CpuUsage::V2(v2).read().unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        let gone = CpuUsage::V1(dir.path().join("gone"));
        assert_eq!(gone.read().unwrap_err().kind(), io::ErrorKind::NotFound);
    }
}
