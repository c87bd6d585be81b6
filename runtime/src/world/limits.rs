//! `limits`: which of its limits a world ran into, read from its cgroup
//! while it still exists, and noted in its record (`limits_hit`).

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::World;
use crate::error::Result;

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
    /// grow, so the latest reading replaces the last).
    pub(crate) fn note_limits(&self) -> Result<()> {
        let id = self.id();
        if !self.store.has_record(id) {
            return Ok(());
        }
        let hits = self.limits_hit();
        let Some(_lock) = self.store.lock(id)? else {
            return Ok(());
        };
        if !self.store.has_record(id) {
            return Ok(());
        }
        let mut record = self.store.record(id)?;
        if record.limits_hit != hits && !hits.is_empty() {
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
}
