//! `delete`: remove a world's processes, cgroup and state.

use std::fs;

use super::World;
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::state::WorldStatus;

impl World {
    /// Deletes a stopped or created world; with `force`, a running or
    /// paused one too, killing every process in its cgroup first.
    pub fn delete(mut self, force: bool) -> Result<()> {
        if !force && matches!(self.status(), WorldStatus::Running | WorldStatus::Paused) {
            return Err(self.incorrect_status("delete it without --force"));
        }
        let id = self.id().to_owned();
        self.container
            .delete(force)
            .map_err(|e| Error::libcontainer(&id, "delete", e))
    }
}

impl Runtime {
    /// Deletes the world `id`. With `force`, a world that does not exist is
    /// not an error (as with runc), and a state dir without a state file — a
    /// create killed before it wrote one — is removed.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        match self.world(id) {
            Ok(world) => world.delete(force),
            Err(Error::NotFound { .. }) if force => {
                let dir = self.world_dir(id);
                match fs::remove_dir_all(&dir) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(Error::io("cannot remove state dir", dir, e)),
                }
            }
            Err(e) => Err(e),
        }
    }
}
