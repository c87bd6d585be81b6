//! `kill`: send a signal to a world's init, or to every process in it.

use libcontainer::container::ContainerStatus;
use libcontainer::signal::Signal;

use super::World;
use crate::error::{Error, Result};
use crate::state::WorldStatus;

/// Parses a signal as runc accepts it: a name with or without `SIG`, in any
/// case, or its number.
pub fn parse_signal(signal: &str) -> Result<Signal> {
    let parsed = match signal.parse::<i32>() {
        Ok(number) => Signal::try_from(number).ok(),
        Err(_) => Signal::try_from(signal).ok(),
    };
    parsed.ok_or_else(|| Error::InvalidSignal(signal.to_owned()))
}

impl World {
    /// Sends `signal` to the init process, or with `all` to every process in
    /// the world's cgroup (runc `kill --all`, which also works on a stopped
    /// world whose init is gone but whose children are not).
    pub fn kill(&mut self, signal: Signal, all: bool) -> Result<()> {
        let before = self.container.status();
        let id = self.id().to_owned();
        let can_kill = match self.status() {
            WorldStatus::Created | WorldStatus::Running | WorldStatus::Paused => true,
            WorldStatus::Stopped => all,
            WorldStatus::Creating => false,
        };
        if !can_kill {
            return Err(self.incorrect_status("kill it"));
        }
        self.container
            .kill(signal, all)
            .map_err(|e| Error::libcontainer(&id, "kill", e))?;
        // libcontainer records every killed world as stopped, even after a
        // signal the process handles or ignores; keep the real status so a
        // `state` right after `kill -s USR1` still says "running".
        self.container
            .refresh_status()
            .map_err(|e| Error::libcontainer(&id, "kill", e))?;
        if self.container.status() != ContainerStatus::Stopped {
            self.container
                .set_status(before)
                .save()
                .map_err(|e| Error::libcontainer(&id, "kill", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use nix::sys::signal::Signal as NixSignal;

    use super::*;

    #[test]
    fn names_and_numbers() {
        for (text, expected) in [
            ("KILL", NixSignal::SIGKILL),
            ("SIGKILL", NixSignal::SIGKILL),
            ("kill", NixSignal::SIGKILL),
            ("9", NixSignal::SIGKILL),
            ("TERM", NixSignal::SIGTERM),
            ("15", NixSignal::SIGTERM),
            ("usr1", NixSignal::SIGUSR1),
        ] {
            let signal = parse_signal(text).unwrap();
            assert_eq!(signal.into_raw(), expected, "{text}");
        }
    }

    #[test]
    fn bad_signals_are_named() {
        for bad in ["", "NOPE", "0", "65", "-1", "SIG"] {
            let err = parse_signal(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }
}
