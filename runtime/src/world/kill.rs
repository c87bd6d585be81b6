//! `kill`: send a signal to a world's init, or to every process in it.

use std::str::FromStr;

use libcontainer::container::ContainerStatus;
use nix::sys::signal::Signal;

use super::{retry_procfs_race, World};
use crate::error::{Error, Result};
use crate::state::WorldStatus;

/// Parses a signal as runc accepts it: a name with or without `SIG`, in any
/// case, or its number.
pub fn parse_signal(signal: &str) -> Result<Signal> {
    let parsed = match signal.parse::<i32>() {
        Ok(number) => Signal::try_from(number).ok(),
        Err(_) => {
            let upper = signal.to_ascii_uppercase();
            let name = upper.strip_prefix("SIG").unwrap_or(&upper);
            Signal::from_str(&format!("SIG{name}")).ok()
        }
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
        let container = &mut self.container;
        retry_procfs_race(|| container.kill(libcontainer::signal::Signal::from(signal), all))
            .map_err(|e| Error::libcontainer(&id, "kill", e))?;
        // libcontainer records every killed world as stopped, even after a
        // signal the process handles or ignores; keep the real status so a
        // `state` right after `kill -s USR1` still says "running".
        self.refresh_status("kill")?;
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
    use super::*;

    #[test]
    fn names_and_numbers() {
        for (text, expected) in [
            ("KILL", Signal::SIGKILL),
            ("SIGKILL", Signal::SIGKILL),
            ("kill", Signal::SIGKILL),
            ("9", Signal::SIGKILL),
            ("TERM", Signal::SIGTERM),
            ("15", Signal::SIGTERM),
            ("usr1", Signal::SIGUSR1),
            ("SigHup", Signal::SIGHUP),
        ] {
            assert_eq!(parse_signal(text).unwrap(), expected, "{text}");
        }
    }

    #[test]
    fn bad_signals_are_named() {
        for bad in ["", "NOPE", "0", "65", "-1", "SIG", "SIGSIGKILL"] {
            let err = parse_signal(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }
}
