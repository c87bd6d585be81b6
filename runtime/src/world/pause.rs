//! `pause` and `resume`: freeze and thaw every process of a world.

use super::World;
use crate::error::{Error, Result};
use crate::state::WorldStatus;

impl World {
    pub fn pause(&mut self) -> Result<()> {
        if self.status() != WorldStatus::Running {
            return Err(self.incorrect_status("pause it"));
        }
        let id = self.id().to_owned();
        self.container
            .pause()
            .map_err(|e| Error::libcontainer(&id, "pause", e))
    }

    pub fn resume(&mut self) -> Result<()> {
        if self.status() != WorldStatus::Paused {
            return Err(self.incorrect_status("resume it"));
        }
        let id = self.id().to_owned();
        self.container
            .resume()
            .map_err(|e| Error::libcontainer(&id, "resume", e))
    }
}
