//! A world: one container and everything Substrate records about it.
//!
//! Each lifecycle operation lives in its own file (`create.rs`, `start.rs`,
//! …) as an `impl World` block, so "what does delete do?" is answered by a
//! file name.

pub(crate) mod capabilities;
mod ceilings;
mod create;
mod delete;
mod exec;
pub(crate) mod filesystem;
mod finish;
pub(crate) mod kill;
pub(crate) mod limits;
mod lost;
mod net;
mod pause;
pub(crate) mod policy;
mod run;
mod start;
mod stats;
pub(crate) mod update;

use std::fs;
use std::path::{Path, PathBuf};

use libcgroups::common::{AnyCgroupManager, CgroupConfig};
use libcontainer::container::Container;
use libcontainer::error::LibcontainerError;
use serde::{Deserialize, Serialize};

pub use create::{CreateOptions, Layering, Stdio};
pub use exec::ExecOptions;
pub use limits::{Limit, LimitHit};
pub use net::{LOG_GROUP, RESOLVER};
pub use policy::{
    BundlePolicyError, NodeConfig, CONFIG_DIR_ENV, DEFAULT_CONFIG_DIR, INLINE_ANNOTATION,
    POLICY_ANNOTATION,
};
pub use run::{AfterExit, Finished, RunOptions, TraceSummary, WorldRun};

use crate::error::{Error, Result};
use crate::id::WorldId;
use crate::state::{WorldState, WorldStatus, OCI_VERSION};
use crate::store::WorldStore;

/// What Substrate keeps beside libcontainer's own `state.json`: facts that
/// runc's state reports and libcontainer does not store.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WorldMeta {
    rootfs: PathBuf,
    cgroup_path: PathBuf,
    /// When `start` ran; moved into the world record by `finish`, so that
    /// starting a world costs no durable write.
    #[serde(default)]
    started_at: Option<substrate_trace::Timestamp>,
    /// Keep the upper layer Substrate made when the world is deleted (the
    /// record and the diff are kept either way).
    #[serde(default)]
    keep_upper: bool,
    /// The world's end of the host bridge, released when it is deleted.
    #[serde(default)]
    link: Option<net::LinkMeta>,
}

const META_FILE: &str = "substrate.json";

#[derive(Debug)]
pub struct World {
    id: WorldId,
    container: Container,
    store: WorldStore,
}

impl World {
    pub(crate) fn from_container(id: WorldId, container: Container, store: WorldStore) -> Self {
        World {
            id,
            container,
            store,
        }
    }

    pub fn id(&self) -> &WorldId {
        &self.id
    }

    pub fn status(&self) -> WorldStatus {
        self.container.status().into()
    }

    /// Host pid of the world's init process, while it has one.
    pub fn pid(&self) -> Option<i32> {
        match self.status() {
            WorldStatus::Stopped => None,
            _ => self.container.pid().map(|p| p.as_raw()),
        }
    }

    pub fn bundle(&self) -> &Path {
        self.container.bundle()
    }

    /// The directory holding this world's runtime state.
    pub fn state_dir(&self) -> &Path {
        &self.container.root
    }

    pub fn state(&self) -> WorldState {
        let meta = self.meta();
        let state = &self.container.state;
        WorldState {
            oci_version: OCI_VERSION.to_owned(),
            id: state.id.clone(),
            pid: self.pid().unwrap_or(0),
            status: self.status(),
            bundle: state.bundle.clone(),
            rootfs: meta.map(|m| m.rootfs).unwrap_or_default(),
            created: state.created,
            annotations: state.annotations.clone().filter(|a| !a.is_empty()),
            owner: String::new(),
        }
    }

    /// Runtime state, like libcontainer's own state.json: replaced whole
    /// (temp file + rename) but not fsync'd, since it lives in `/run`.
    fn save_meta(&self, meta: &WorldMeta) -> Result<()> {
        save_meta(self.state_dir(), meta)
    }

    fn meta(&self) -> Option<WorldMeta> {
        let bytes = fs::read(self.state_dir().join(META_FILE)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The world's cgroup, relative to a hierarchy's root (as create
    /// recorded it).
    pub fn cgroup_path(&self) -> Option<PathBuf> {
        self.meta().map(|m| m.cgroup_path)
    }

    /// The cgroup manager for this world's cgroup. The path comes from what
    /// create recorded, so it works even when libcontainer's own config file
    /// was never written (a create killed half-way).
    pub(crate) fn cgroup_manager(&self, operation: &'static str) -> Result<AnyCgroupManager> {
        let cgroup_path = match self.meta() {
            Some(meta) => meta.cgroup_path,
            None => {
                self.container
                    .spec()
                    .map_err(|e| Error::libcontainer(self.id.as_str(), operation, e))?
                    .cgroup_path
            }
        };
        cgroup_manager(
            self.id.as_str(),
            &cgroup_path,
            self.container.systemd(),
            operation,
        )
    }

    /// Re-reads the state from disk and the kernel.
    pub fn refresh(&mut self) -> Result<()> {
        self.container
            .refresh_state()
            .map_err(|e| Error::libcontainer(self.id.as_str(), "load", e))?;
        self.refresh_status("load")
    }

    /// Refreshes the status from the kernel. libcontainer checks that the
    /// init's pid exists, then reads its `/proc/<pid>/stat`; an init that
    /// exits in between makes that read fail, and asking again sees it gone.
    pub(crate) fn refresh_status(&mut self, operation: &'static str) -> Result<()> {
        let container = &mut self.container;
        retry_procfs_race(|| container.refresh_status())
            .map_err(|e| Error::libcontainer(self.id.as_str(), operation, e))
    }

    fn incorrect_status(&self, operation: &'static str) -> Error {
        Error::IncorrectStatus {
            id: self.id.to_string(),
            status: self.status(),
            operation,
        }
    }
}

/// Runs a libcontainer operation that starts by refreshing the status (kill,
/// delete), once more if the init exited while it read `/proc/<pid>/stat`.
pub(crate) fn retry_procfs_race<T>(
    mut operation: impl FnMut() -> Result<T, LibcontainerError>,
) -> Result<T, LibcontainerError> {
    match operation() {
        Err(LibcontainerError::Procfs(_)) => operation(),
        other => other,
    }
}

fn save_meta(dir: &Path, meta: &WorldMeta) -> Result<()> {
    let bytes = serde_json::to_vec(meta).expect("WorldMeta serializes");
    crate::record::write_replacing(&dir.join(META_FILE), &bytes, false)
}

pub(crate) fn cgroup_manager(
    id: &str,
    cgroup_path: &Path,
    systemd: bool,
    operation: &'static str,
) -> Result<AnyCgroupManager> {
    libcgroups::common::create_cgroup_manager(CgroupConfig {
        cgroup_path: cgroup_path.to_owned(),
        systemd_cgroup: systemd,
        container_name: id.to_owned(),
    })
    .map_err(|e| Error::Cgroup {
        id: id.to_owned(),
        operation,
        source: Box::new(e),
    })
}
