//! `delete`: remove a world's processes, cgroup and state.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use libcgroups::common::CgroupManager;

use super::{cgroup_manager, retry_procfs_race, World};
use crate::error::{Error, Result};
use crate::foreground::pidfd_open;
use crate::id::WorldId;
use crate::runtime::Runtime;
use crate::state::WorldStatus;

impl World {
    /// Deletes a stopped or created world; with `force`, a running or
    /// paused one too, killing every process in its cgroup first.
    ///
    /// The record stays, with the fs diff, and the upper layer Substrate
    /// made goes (unless the world was created to keep it) — but a world
    /// whose process never started keeps no record at all, as a create
    /// that failed keeps none.
    pub fn delete(mut self, force: bool) -> Result<()> {
        if !force && matches!(self.status(), WorldStatus::Running | WorldStatus::Paused) {
            return Err(self.incorrect_status("delete it without --force"));
        }
        // A created world's init waits for `start`: killed and waited for
        // here, forced or not, as runc does. Left to libcontainer, the
        // cgroup gets ~100 ms to empty and sometimes does not.
        let stop_first = match self.status() {
            WorldStatus::Created => true,
            WorldStatus::Running => force,
            _ => false,
        };
        if stop_first {
            self.stop_pid_namespace_init();
        }
        // While its cgroup exists: the limits the world ran into.
        if let Err(e) = self.note_limits() {
            tracing::warn!("world {}: limits not recorded: {e}", self.id());
        }
        let meta = self.meta();
        let id = self.id().to_owned();
        let container = &mut self.container;
        retry_procfs_race(|| container.delete(force))
            .map_err(|e| Error::libcontainer(&id, "delete", e))?;
        // Its processes are gone: its end of the bridge goes too (the
        // kernel would remove the veth pair with the netns, but not before
        // every socket in it is closed, and not the address lease).
        if let Some(link) = meta.as_ref().and_then(|m| m.link.clone()) {
            super::net::release(link)?;
        }
        // No meta: create was killed before it wrote it, long before start.
        if meta.as_ref().is_none_or(|m| m.started_at.is_none()) {
            return self.store.remove(&id);
        }
        // Every process is gone: the upper layer is final. The container is
        // gone already: with --force, a diff that cannot be taken (its
        // lower removed with the bundle) is a warning, not a container
        // that cannot be deleted.
        match self.finish(None) {
            Ok(_) => {}
            Err(e) if force => {
                tracing::warn!("world {id}: no fs diff: {}", crate::one_line(&e));
            }
            Err(e) => return Err(e),
        }
        if meta.is_some_and(|m| !m.keep_upper) && self.store.has_record(&id) {
            self.store.discard_upper(&id)?;
        }
        Ok(())
    }

    /// A world with its own pid namespace ends when its init does: the
    /// kernel then kills every other process in the namespace
    /// (pid_namespaces(7)). Killing the init and waiting for it here lets
    /// libcontainer find the world stopped and skip freezing, signalling and
    /// thawing the whole cgroup, which on cgroup v1 sleeps 10 ms whenever a
    /// process is exiting while the freezer runs. runc does the same.
    fn stop_pid_namespace_init(&mut self) {
        let Some(pid) = self.container.pid() else {
            return;
        };
        let own_namespace = match (
            fs::read_link(format!("/proc/{pid}/ns/pid")),
            fs::read_link("/proc/self/ns/pid"),
        ) {
            (Ok(theirs), Ok(ours)) => theirs != ours,
            _ => false,
        };
        if !own_namespace {
            return;
        }
        // The pidfd is taken before the signal, so the pid cannot be reused
        // in between.
        let Ok(pidfd) = pidfd_open(pid) else {
            return;
        };
        if kill(pid, Signal::SIGKILL).is_ok() && exits_within(&pidfd, Duration::from_secs(2)) {
            // Best effort: on failure libcontainer's own kill path runs.
            let _ = self.refresh_status("delete");
        }
    }
}

impl Runtime {
    /// Deletes the world `id`. With `force`, a world that does not exist is
    /// not an error (as with runc), and what a create killed half-way left
    /// is removed too: its setup processes, cgroup and state dir.
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        let id = &WorldId::new(id)?;
        let world = match self.world(id.as_str()) {
            Ok(world) => Some(world),
            Err(Error::NotFound { .. }) if force => None,
            // libcontainer rewrites state.json in place: a create killed
            // while it wrote leaves it empty.
            Err(e @ Error::Libcontainer { .. }) if force => {
                tracing::warn!("{e}; removing what is left of it");
                None
            }
            Err(e) => return Err(e),
        };
        let interrupted_create = world.as_ref().is_none_or(|w| w.container.pid().is_none());
        if force && interrupted_create {
            self.kill_orphaned_setup_processes(id.as_str());
        }
        match world {
            Some(world) => world.delete(force)?,
            None => {
                let dir = self.world_dir(id);
                // The cgroup exists once libcontainer wrote its config. As
                // libcontainer's delete does: what is below it and in the
                // hierarchies libcgroups does not know first.
                if let Ok(config) = libcontainer::config::YoukiConfig::load(&dir) {
                    let cgroup_error =
                        |e: Box<dyn std::error::Error + Send + Sync>| Error::Cgroup {
                            id: id.to_string(),
                            operation: "delete",
                            source: e,
                        };
                    libcontainer::hierarchies::remove(&config.cgroup_path)
                        .map_err(|e| cgroup_error(Box::new(e)))?;
                    cgroup_manager(
                        id.as_str(),
                        &config.cgroup_path,
                        self.systemd_cgroup(),
                        "delete",
                    )?
                    .remove()
                    .map_err(|e| cgroup_error(Box::new(e)))?;
                }
                match fs::remove_dir_all(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("cannot remove state dir", dir, e)),
                }
            }
        }
        if force && interrupted_create {
            // The world's process never ran: no record of it is kept.
            self.store().remove(id)?;
        }
        Ok(())
    }

    /// A create killed with SIGKILL leaves libcontainer's intermediate and
    /// init processes behind, blocked forever on their sync sockets (the
    /// kernel sends no parent-death signal to them), and possibly outside
    /// the world's cgroup, where killing the cgroup cannot reach them. They
    /// are clones of that create command, so they are found by what only they
    /// have: our executable, and a command line naming this root and id.
    fn kill_orphaned_setup_processes(&self, id: &str) {
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let root = self.root().to_string_lossy().into_owned();
        let orphans: Vec<Pid> = setup_processes(&exe, &root, id).collect();
        for &pid in &orphans {
            let _ = kill(pid, Signal::SIGKILL);
        }
        // Wait (briefly) until they are gone or zombies, so none of them
        // re-creates the cgroup after it has been removed.
        let deadline = Instant::now() + Duration::from_secs(2);
        while orphans.iter().any(|&pid| is_alive(pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn setup_processes<'a>(
    exe: &'a Path,
    root: &'a str,
    id: &'a str,
) -> impl Iterator<Item = Pid> + 'a {
    let me = std::process::id() as i32;
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter(move |&pid| pid != me)
        .filter(move |pid| fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|e| e == exe))
        .filter(move |pid| {
            let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
            let has = |s: &str| args.contains(&s.as_bytes());
            (has("create") || has("run")) && has(id) && names_root(&args, root)
        })
        .map(Pid::from_raw)
}

/// Whether a command line's `--root` (or the default) is `root`.
fn names_root(args: &[&[u8]], root: &str) -> bool {
    let given = args
        .windows(2)
        .find_map(|w| (w[0] == b"--root" || w[0] == b"-r").then_some(w[1]));
    let given = given.or_else(|| args.iter().find_map(|a| a.strip_prefix(b"--root=")));
    match given {
        Some(given) => given == root.as_bytes(),
        None => root == crate::runtime::DEFAULT_ROOT,
    }
}

fn is_alive(pid: Pid) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Whether the process `pidfd` names exits within `timeout` (a pidfd polls
/// readable once its process has exited, whoever its parent is).
fn exits_within(pidfd: &std::os::fd::OwnedFd, timeout: Duration) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, timeout), Ok(n) if n > 0)
}
