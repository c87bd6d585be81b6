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
        // Noted before the process is let go: from then on something ran,
        // and a caller killed at any moment after must not leave a world
        // that `delete` takes for never started (and keeps no record of).
        self.note_start()?;
        let id = self.id().to_owned();
        self.container
            .start()
            .map_err(|e| Error::libcontainer(&id, "start", e))
    }
}
