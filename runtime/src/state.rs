//! The state a world reports, in the shape `runc state` prints it.
//!
//! containerd's runc shim and podman parse this JSON, so field names and the
//! lowercase status strings follow runc (and the OCI runtime spec's state).

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use libcontainer::container::ContainerStatus;
use serde::{Deserialize, Serialize};

/// The OCI runtime spec version this runtime implements.
pub const OCI_VERSION: &str = "1.2.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorldStatus {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl From<ContainerStatus> for WorldStatus {
    fn from(status: ContainerStatus) -> Self {
        match status {
            ContainerStatus::Creating => WorldStatus::Creating,
            ContainerStatus::Created => WorldStatus::Created,
            ContainerStatus::Running => WorldStatus::Running,
            ContainerStatus::Paused => WorldStatus::Paused,
            ContainerStatus::Stopped => WorldStatus::Stopped,
        }
    }
}

impl fmt::Display for WorldStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WorldStatus::Creating => "creating",
            WorldStatus::Created => "created",
            WorldStatus::Running => "running",
            WorldStatus::Paused => "paused",
            WorldStatus::Stopped => "stopped",
        })
    }
}

/// What `substrate-runtime state` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorldState {
    pub oci_version: String,
    pub id: String,
    /// The init process's host pid; 0 once it has stopped, as runc prints it.
    pub pid: i32,
    pub status: WorldStatus,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<HashMap<String, String>>,
    pub owner: String,
}
