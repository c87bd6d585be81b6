//! `limits`: which of its limits a world ran into, read from its cgroup
//! while it still exists, and noted in its record (`limits_hit`); and the
//! policy's limits its monitor stopped it at (`limits.wall_time`,
//! `budget.cpu_seconds`: see `monitor/limits.rs`).

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::World;
use crate::error::Result;
use crate::id::WorldId;
use crate::store::WorldStore;

/// A limit a world ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// A fork or clone refused at `pids.max` (the world saw EAGAIN).
    Pids,
    /// A process OOM-killed at the memory limit.
    Memory,
    /// Time throttled at the CPU quota.
    Cpu,
    /// The upper layer's filesystem full (the world saw ENOSPC).
    Disk,
    /// Stopped (every process SIGKILLed) by its monitor once it had run
    /// for the policy's `limits.wall_time`.
    WallTime,
    /// Stopped by its monitor once its cgroup had used the policy's
    /// `budget.cpu_seconds`.
    #[serde(rename = "budget.cpu_seconds")]
    CpuSeconds,
}

impl Limit {
    /// Whether the world's monitor stopped the world at this limit (noted
    /// once, when it did) rather than the kernel counting it in the
    /// world's cgroup.
    fn stops_the_world(self) -> bool {
        matches!(self, Limit::WallTime | Limit::CpuSeconds)
    }
}

/// How often the world ran into `limit` (for `disk`: 1, it was full).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitHit {
    pub limit: Limit,
    pub count: u64,
}

impl World {
    /// The limits this world has run into so far, from its cgroup's event
    /// counters (cgroup v1 or v2) and its upper filesystem.
    pub fn limits_hit(&self) -> Vec<LimitHit> {
        let Some(cgroup) = self.cgroup_path() else {
            return Vec::new();
        };
        let relative = cgroup.strip_prefix("/").unwrap_or(&cgroup).to_owned();
        let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let file = |controller: &str, name: &str| -> PathBuf {
            if unified {
                Path::new("/sys/fs/cgroup").join(&relative).join(name)
            } else {
                Path::new("/sys/fs/cgroup")
                    .join(controller)
                    .join(&relative)
                    .join(name)
            }
        };
        let mut hits = Vec::new();
        let mut note = |limit, count: Option<u64>| {
            if let Some(count) = count.filter(|&n| n > 0) {
                hits.push(LimitHit { limit, count });
            }
        };
        note(Limit::Pids, counter(&file("pids", "pids.events"), "max"));
        let oom = if unified {
            counter(&file("memory", "memory.events"), "oom_kill")
        } else {
            counter(&file("memory", "memory.oom_control"), "oom_kill")
        };
        note(Limit::Memory, oom);
        note(
            Limit::Cpu,
            counter(&file("cpu", "cpu.stat"), "nr_throttled"),
        );
        if self.upper_full() {
            note(Limit::Disk, Some(1));
        }
        hits
    }

    /// Notes in the record the limits the world has run into (counts only
    /// grow, so the latest reading replaces the last; a stop its monitor
    /// noted stays).
    pub(crate) fn note_limits(&self) -> Result<()> {
        let id = self.id();
        if !self.store.has_record(id) {
            return Ok(());
        }
        let hits = self.limits_hit();
        if hits.is_empty() {
            return Ok(());
        }
        let Some(_lock) = self.store.lock(id)? else {
            return Ok(());
        };
        if !self.store.has_record(id) {
            return Ok(());
        }
        let mut record = self.store.record(id)?;
        let hits = merge_hits(hits, &record.limits_hit);
        if record.limits_hit != hits {
            record.limits_hit = hits;
            self.store.save_record(&record)?;
        }
        Ok(())
    }

    /// Whether the world's own upper filesystem has no room left.
    fn upper_full(&self) -> bool {
        let Ok(record) = self.store.record(self.id()) else {
            return false;
        };
        let Some(upper) = record.upper else {
            return false;
        };
        let mount = crate::upper_fs::mount_point(&self.store.world_dir(self.id()));
        if !upper.path.starts_with(&mount) {
            return false;
        }
        nix::sys::statvfs::statvfs(&mount).is_ok_and(|fs| fs.blocks_available() == 0)
    }
}

/// Notes in the record of world `id` that its monitor stopped it at
/// `limit` (once: a second stop at the same limit changes nothing).
pub(crate) fn note_stopped(store: &WorldStore, id: &WorldId, limit: Limit) -> Result<()> {
    let Some(_lock) = store.lock(id)? else {
        return Ok(());
    };
    if !store.has_record(id) {
        return Ok(());
    }
    let mut record = store.record(id)?;
    if record.limits_hit.iter().any(|hit| hit.limit == limit) {
        return Ok(());
    }
    record.limits_hit.push(LimitHit { limit, count: 1 });
    store.save_record(&record)
}

/// The cgroup's latest reading, `read`, with the monitor's stops `noted`
/// before it kept.
fn merge_hits(mut read: Vec<LimitHit>, noted: &[LimitHit]) -> Vec<LimitHit> {
    read.retain(|hit| !hit.limit.stops_the_world());
    read.extend(noted.iter().filter(|hit| hit.limit.stops_the_world()));
    read
}

/// The value after `key` in a cgroup file of `key value` lines.
fn counter(path: &Path, key: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.lines().find_map(|line| {
        line.strip_prefix(key)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.oom_control");
        fs::write(&path, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").unwrap();
        assert_eq!(counter(&path, "oom_kill"), Some(3));
        assert_eq!(counter(&path, "under_oom"), Some(0));
        assert_eq!(counter(&path, "missing"), None);
        assert_eq!(counter(&dir.path().join("absent"), "oom_kill"), None);
    }

    #[test]
    fn a_new_reading_keeps_the_monitors_stops() {
        let hit = |limit, count| LimitHit { limit, count };
        let noted = [hit(Limit::Pids, 1), hit(Limit::WallTime, 1)];
        assert_eq!(
            merge_hits(vec![hit(Limit::Pids, 4), hit(Limit::Memory, 1)], &noted),
            [
                hit(Limit::Pids, 4),
                hit(Limit::Memory, 1),
                hit(Limit::WallTime, 1)
            ]
        );
        assert_eq!(
            merge_hits(vec![hit(Limit::Cpu, 2)], &[hit(Limit::CpuSeconds, 1)]),
            [hit(Limit::Cpu, 2), hit(Limit::CpuSeconds, 1)]
        );
    }

    #[test]
    fn stops_are_named_as_the_policy_names_them() {
        let json = |limit| serde_json::to_value(LimitHit { limit, count: 1 }).unwrap();
        assert_eq!(json(Limit::WallTime)["limit"], "wall_time");
        assert_eq!(json(Limit::CpuSeconds)["limit"], "budget.cpu_seconds");
        assert_eq!(json(Limit::Pids)["limit"], "pids");
    }
}
