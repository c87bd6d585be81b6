//! Reading a world's cgroup: its processes and resource statistics.

use libcgroups::common::CgroupManager;
use libcgroups::stats::Stats;

use super::World;
use crate::error::{Error, Result};

impl World {
    /// Host pids of every process in the world's cgroup.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let manager = self.cgroup_manager("list processes of")?;
        let pids = manager.get_all_pids().map_err(|e| Error::Cgroup {
            id: self.id().to_string(),
            operation: "list processes of",
            source: Box::new(e),
        })?;
        Ok(pids.into_iter().map(|p| p.as_raw()).collect())
    }

    /// CPU, memory, pids, blkio and hugetlb statistics (cgroup v1 or v2).
    pub fn stats(&self) -> Result<Stats> {
        let manager = self.cgroup_manager("read statistics of")?;
        manager.stats().map_err(|e| Error::Cgroup {
            id: self.id().to_string(),
            operation: "read statistics of",
            source: Box::new(e),
        })
    }
}
