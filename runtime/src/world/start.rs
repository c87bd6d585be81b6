//! `start`: let a created world's init exec the user's process.

use super::World;
use crate::error::{fail_point, Error, Result};
use crate::state::WorldStatus;

impl World {
    pub fn start(&mut self) -> Result<()> {
        if self.status() != WorldStatus::Created {
            return Err(self.incorrect_status("start it"));
        }
        fail_point("world.start")?;
        let id = self.id().to_owned();
        self.container
            .start()
            .map_err(|e| Error::libcontainer(&id, "start", e))?;
        self.note_start()
    }
}
