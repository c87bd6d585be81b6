//! `update`: change a world's cgroup resources while it runs.

use std::fs;
use std::path::Path;

use libcgroups::common::{CgroupManager, ControllerOpt};
use oci_spec::runtime::LinuxResources;

use super::World;
use crate::bundle::describe_io;
use crate::error::{Error, Result};
use crate::state::WorldStatus;

impl World {
    pub fn update(&self, resources: &LinuxResources) -> Result<()> {
        if self.status() == WorldStatus::Stopped {
            return Err(self.incorrect_status("update it"));
        }
        let manager = self.cgroup_manager("update")?;
        let options = ControllerOpt {
            resources,
            disable_oom_killer: resources
                .memory()
                .as_ref()
                .and_then(|m| m.disable_oom_killer())
                .unwrap_or(false),
            oom_score_adj: None,
            freezer_state: None,
        };
        manager.apply(&options).map_err(|e| Error::Cgroup {
            id: self.id().to_string(),
            operation: "update",
            source: Box::new(e),
        })
    }
}

/// Reads an OCI `LinuxResources` JSON document (runc `update --resources`).
pub fn load_resources(path: &Path, bytes: Option<&[u8]>) -> Result<LinuxResources> {
    let bad = |reason: String| Error::ResourcesFile {
        path: path.to_owned(),
        reason,
    };
    let owned;
    let bytes = match bytes {
        Some(bytes) => bytes,
        None => {
            owned = fs::read(path).map_err(|e| bad(describe_io(&e)))?;
            &owned
        }
    };
    serde_json::from_slice(bytes).map_err(|e| bad(format!("malformed: {e}")))
}
