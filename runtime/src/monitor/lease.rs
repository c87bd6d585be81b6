//! The monitor's lease on a world's trace: an flock(2) on
//! `<world dir>/monitor.lock`, taken when a monitor opens the trace and
//! given back (the file removed) once it has written the world span.
//!
//! The kernel drops the lock when the monitor's process dies, however it
//! dies (SIGKILL, OOM kill, a panic of the thread's process), so a lock file
//! that is there but not locked means exactly one thing: a monitor began
//! the world's trace and never finished it. Whoever finds that takes the
//! lease over ([`TraceLease::of_lost_monitor`]) and ends the trace for it.
//! Nothing is learnt by scanning `/proc` or trusting a pid.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

const LOCK_FILE: &str = "monitor.lock";

/// Held by the one writer of a world's trace.
#[derive(Debug)]
pub struct TraceLease {
    lock: Flock<File>,
    path: PathBuf,
}

impl TraceLease {
    /// Takes the lease for a new monitor of the world whose record dir is
    /// `world_dir`. The lock file appears already locked (made under a
    /// temporary name, locked, then renamed into place), so no one can
    /// read a starting monitor as a lost one.
    pub fn acquire(world_dir: &Path) -> io::Result<TraceLease> {
        let path = world_dir.join(LOCK_FILE);
        let staging = world_dir.join(format!(".{LOCK_FILE}.{}", std::process::id()));
        let file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&staging)?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock)
            .map_err(|(_, errno)| io::Error::from(errno))?;
        if let Err(e) = fs::rename(&staging, &path) {
            let _ = fs::remove_file(&staging);
            return Err(e);
        }
        Ok(TraceLease { lock, path })
    }

    /// The lease of a monitor that began the world's trace and died before
    /// it finished (its lock file is there, unlocked), now held by the
    /// caller; `None` while the monitor runs, after it finished, or for a
    /// world that never had one (untraced, or from before leases).
    pub fn of_lost_monitor(world_dir: &Path) -> io::Result<Option<TraceLease>> {
        let path = world_dir.join(LOCK_FILE);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            // Its monitor holds it: alive.
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => return Ok(None),
            Err((_, errno)) => return Err(errno.into()),
        };
        // A monitor that finished removes the file before it lets go of the
        // lock: if ours is no longer the file at that path, it finished
        // between our open and our lock.
        let ours = lock.metadata()?;
        match fs::metadata(&path) {
            Ok(now) if now.ino() == ours.ino() && now.dev() == ours.dev() => {
                Ok(Some(TraceLease { lock, path }))
            }
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether a monitor began the trace of the world whose record dir is
    /// `world_dir` and has not finished it: it writes it now, or it was
    /// lost (its lock file is there). Takes nothing.
    pub fn is_taken(world_dir: &Path) -> bool {
        world_dir.join(LOCK_FILE).symlink_metadata().is_ok()
    }

    /// Gives the lease back once the trace is complete: the file goes
    /// first, then the lock (see [`TraceLease::of_lost_monitor`]).
    pub fn release(self) {
        let _ = fs::remove_file(&self.path);
        drop(self.lock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lease_is_not_lost_and_a_released_one_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!TraceLease::is_taken(dir.path()));
        let lease = TraceLease::acquire(dir.path()).unwrap();
        assert!(TraceLease::is_taken(dir.path()));
        assert!(TraceLease::of_lost_monitor(dir.path()).unwrap().is_none());
        lease.release();
        assert!(!dir.path().join(LOCK_FILE).exists());
        assert!(!TraceLease::is_taken(dir.path()));
        assert!(TraceLease::of_lost_monitor(dir.path()).unwrap().is_none());
    }

    #[test]
    fn a_lease_dropped_without_release_is_lost_once() {
        let dir = tempfile::tempdir().unwrap();
        // What a monitor's death does: the lock goes, the file stays.
        drop(TraceLease::acquire(dir.path()).unwrap());
        let taken = TraceLease::of_lost_monitor(dir.path()).unwrap();
        assert!(taken.is_some(), "an unlocked lease file is a lost monitor");
        // While one caller holds the lost lease, no other takes it.
        assert!(TraceLease::of_lost_monitor(dir.path()).unwrap().is_none());
        taken.unwrap().release();
        assert!(TraceLease::of_lost_monitor(dir.path()).unwrap().is_none());
    }
}
