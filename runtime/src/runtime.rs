//! `Runtime`: where worlds' state lives, and how to find them again.

use std::fs;
use std::path::{Path, PathBuf};

use libcontainer::container::Container;
use libcontainer::error::LibcontainerError;

use crate::error::{Error, Result};
use crate::id::WorldId;
use crate::store::WorldStore;
use crate::world::{retry_procfs_race, NodeConfig, World};

/// Default state root, as runc's is `/run/runc`.
pub const DEFAULT_ROOT: &str = "/run/substrate";

/// Entry point of the library: a state root under which each world has a
/// directory named by its id.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
    systemd_cgroup: bool,
    store: WorldStore,
    node: NodeConfig,
}

impl Runtime {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Runtime {
            root: root.into(),
            systemd_cgroup: false,
            store: WorldStore::from_env(),
            node: NodeConfig::from_env(),
        }
    }

    /// Take the node's policies from `node` instead of the config dir
    /// `SUBSTRATE_CONFIG_DIR` names.
    pub fn with_node_config(mut self, node: NodeConfig) -> Self {
        self.node = node;
        self
    }

    /// Where the node's policies live (`/etc/substrate`).
    pub fn node_config(&self) -> &NodeConfig {
        &self.node
    }

    /// Keep world records (diffs, uppers) in `store` instead of the one
    /// `SUBSTRATE_STATE_DIR` names.
    pub fn with_store(mut self, store: WorldStore) -> Self {
        self.store = store;
        self
    }

    pub fn store(&self) -> &WorldStore {
        &self.store
    }

    /// Ask for systemd's cgroup driver. libcontainer falls back to cgroupfs
    /// where systemd does not manage cgroups (hybrid hierarchies, no systemd).
    pub fn with_systemd_cgroup(mut self, systemd_cgroup: bool) -> Self {
        self.systemd_cgroup = systemd_cgroup;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn systemd_cgroup(&self) -> bool {
        self.systemd_cgroup
    }

    pub(crate) fn world_dir(&self, id: &WorldId) -> PathBuf {
        self.root.join(id)
    }

    /// Loads the world `id`, with its status refreshed from the kernel.
    pub fn world(&self, id: &str) -> Result<World> {
        let id = WorldId::new(id)?;
        let dir = self.world_dir(&id);
        if !dir.join("state.json").exists() {
            return Err(Error::NotFound { id: id.to_string() });
        }
        let container =
            load_container(dir).map_err(|e| Error::libcontainer(id.as_str(), "load", e))?;
        Ok(World::from_container(id, container, self.store.clone()))
    }

    /// Every world under the root, sorted by id. Directories without a state
    /// file (a create killed before it wrote one) are skipped here; `delete
    /// --force` removes them.
    pub fn worlds(&self) -> Result<Vec<World>> {
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("cannot read state root", &self.root, e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.path().join("state.json").exists())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .collect();
        ids.sort();
        ids.iter()
            .filter_map(|id| match self.world(id) {
                Ok(world) => Some(Ok(world)),
                // Deleted between read_dir and load: not an error for a listing.
                Err(Error::NotFound { .. }) => None,
                Err(e) => Some(Err(e)),
            })
            .collect()
    }
}

/// Loads libcontainer's state. Loading refreshes the status (see
/// [`retry_procfs_race`]); and libcontainer rewrites `state.json` in place
/// (truncate, then write), so a reader racing a writer (`state` while `start`
/// runs) can find it empty: that is retried for a few milliseconds. A file
/// still unreadable after that is reported.
fn load_container(dir: PathBuf) -> Result<Container, LibcontainerError> {
    let mut attempts = 0;
    loop {
        match retry_procfs_race(|| Container::load(dir.clone())) {
            Err(LibcontainerError::State(_)) if attempts < 10 => {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            other => return other,
        }
    }
}

/// Refuses to go on in a process with more than one thread. libcontainer
/// clones world processes from the calling thread and runs Rust code (which
/// allocates) in the clone; a lock another thread held at the clone (the
/// allocator's) stays locked there forever. Callers with threads start a
/// single-threaded helper process for the clone, as the shim does.
pub(crate) fn ensure_single_threaded(operation: &'static str) -> Result<()> {
    let threads = fs::read_dir("/proc/self/task")
        .map_err(|e| Error::io("cannot count threads in", "/proc/self/task", e))?
        .count();
    if threads > 1 {
        return Err(Error::Threaded { operation, threads });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_world_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = Runtime::new(dir.path());
        assert!(runtime.world("nope").unwrap_err().is_not_found());
        assert!(runtime.worlds().unwrap().is_empty());
    }
}
