//! `run`: one world from create to delete for the caller that runs it —
//! created, monitored, started, waited for, finished — written once for
//! every caller (`substrate-cli run`, `substrate-runtime run` and `create`,
//! the shim, the agent API), with nothing left behind when a step fails.
//!
//! [`WorldRun`] owns the world and its monitor until the world is finished
//! or handed over ([`WorldRun::detach`]). A failed step cleans up at once and
//! keeps both errors when the cleanup fails too; a `WorldRun` dropped
//! without being finished (a caller's own `?`, a panic) cleans up the same
//! way and logs what it could not undo.

use std::path::Path;

use substrate_trace::ExitStatus;

use super::{CreateOptions, World};
use crate::error::{fail_point, Error, Result};
use crate::foreground::SignalForwarder;
use crate::id::WorldId;
use crate::monitor::{AttachedMonitor, ClosedWorld, Monitoring};
use crate::record::WorldRecord;
use crate::runtime::Runtime;

/// A world its caller runs, with its monitor. Dropped before
/// [`finish`](WorldRun::finish), [`end`](WorldRun::end) or
/// [`detach`](WorldRun::detach), the world is deleted.
#[derive(Debug)]
pub struct WorldRun {
    runtime: Runtime,
    /// `None` once finished, ended or detached.
    world: Option<World>,
    monitor: Option<AttachedMonitor>,
    /// The world's process has been started: its record is kept whatever
    /// happens next. Before that, a failure removes the record too.
    started: bool,
}

/// What the world does once its init has exited and it is finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterExit {
    /// Delete the container (`substrate-cli run`, `runc run`).
    Delete,
    /// Keep the stopped container for `state` and `delete` (`runc run
    /// --keep`).
    Keep,
}

/// A world that has run to its end.
#[derive(Debug)]
pub struct Finished {
    /// How its init ended (`None` only when nobody could tell: a world
    /// ended by [`WorldRun::end`] whose monitor did not see the exit).
    pub exit: Option<ExitStatus>,
    /// Its record, with the fs diff (`None`: the world has no record).
    pub record: Option<WorldRecord>,
    /// What its in-process monitor wrote (`None`: untraced, or monitored by
    /// a detached process).
    pub trace: Option<TraceSummary>,
}

/// The trace's totals, as the world span has them.
#[derive(Debug, Clone)]
pub struct TraceSummary {
    /// Spans by kind.
    pub spans: std::collections::BTreeMap<String, u64>,
    /// Kernel events were lost: the trace may miss processes.
    pub lost: bool,
}

/// How a caller in the foreground runs a world (see [`Runtime::run`]).
#[derive(Debug)]
pub struct RunOptions {
    /// `detach` must be false: the caller waits for the init, its child.
    pub create: CreateOptions,
    pub monitoring: Monitoring,
    /// Installed before the world is created, so no signal is lost.
    pub signals: SignalForwarder,
    pub after_exit: AfterExit,
}

impl Runtime {
    /// Creates the world `id` from `bundle` and attaches its monitor, which
    /// sees every fork and exec from here on. On failure nothing is left.
    pub fn launch(
        &self,
        id: &str,
        bundle: &Path,
        options: CreateOptions,
        monitoring: Monitoring,
    ) -> Result<WorldRun> {
        let world = self.create(id, bundle, options)?;
        WorldRun::attach(self, world, monitoring)
    }

    /// The whole sequence for a caller that waits in the foreground:
    /// create, monitor, start, wait (passing signals on), finish (fs diff,
    /// record, world span), delete. A failure at any step leaves no
    /// container, mount, cgroup, process or monitor behind. A failure after
    /// the init's exit is known comes back as [`Error::Unfinished`], which
    /// carries the exit status.
    pub fn run(&self, id: &str, bundle: &Path, options: RunOptions) -> Result<Finished> {
        let RunOptions {
            create,
            monitoring,
            signals,
            after_exit,
        } = options;
        debug_assert!(!create.detach, "run waits for its init: detach is false");
        let mut run = self.launch(id, bundle, create, monitoring)?.start()?;
        let exit = match run.wait(signals) {
            Ok(exit) => exit,
            Err(e) => return Err(run.abandon(e)),
        };
        run.finish(exit, after_exit)
            .map_err(|source| Error::Unfinished {
                id: id.to_owned(),
                exit,
                source: Box::new(source),
            })
    }
}

impl Runtime {
    /// Takes charge of the world `id`, just created by another process (the
    /// shim's single-threaded helper), and starts its monitor. On failure
    /// the world is deleted.
    pub fn attach(&self, id: &str, monitoring: Monitoring) -> Result<WorldRun> {
        match self.world(id) {
            Ok(world) => WorldRun::attach(self, world, monitoring),
            Err(e) => {
                let cleanup = WorldId::new(id).and_then(|id| {
                    self.delete(id.as_str(), true)
                        .and_then(|()| self.store().remove(&id))
                });
                Err(match cleanup {
                    Ok(()) => e,
                    Err(cleanup) => Error::with_cleanup(e, cleanup),
                })
            }
        }
    }
}

impl WorldRun {
    /// Takes charge of `world`, just created (its init waits for `start`),
    /// and starts its monitor. On failure the world is deleted.
    pub fn attach(runtime: &Runtime, world: World, monitoring: Monitoring) -> Result<WorldRun> {
        let init_pid = world.pid();
        let mut run = WorldRun {
            runtime: runtime.clone(),
            world: Some(world),
            monitor: None,
            started: false,
        };
        let Some(init_pid) = init_pid else {
            let e = run.world().incorrect_status("monitor it");
            return Err(run.abandon(e));
        };
        match AttachedMonitor::start(runtime, run.id(), init_pid, monitoring) {
            Ok(monitor) => run.monitor = Some(monitor),
            Err(e) => return Err(run.abandon(e)),
        }
        if let Err(e) = fail_point("run.monitor") {
            return Err(run.abandon(e));
        }
        Ok(run)
    }

    pub fn world(&self) -> &World {
        self.world
            .as_ref()
            .expect("a WorldRun holds its world until it is consumed")
    }

    pub fn id(&self) -> &WorldId {
        self.world().id()
    }

    /// Runs a step of the caller's between create and start (bringing up
    /// the loopback, say); if it fails, the world is deleted.
    pub fn prepare(self, step: impl FnOnce(&World) -> Result<()>) -> Result<WorldRun> {
        match step(self.world()) {
            Ok(()) => Ok(self),
            Err(e) => Err(self.abandon(e)),
        }
    }

    /// Lets the world's init exec the user's process. On failure the world
    /// is deleted, with its record: nothing ran in it.
    pub fn start(mut self) -> Result<WorldRun> {
        let world = self.world.as_mut().expect("held until consumed");
        match world.start() {
            Ok(()) => {
                self.started = true;
                Ok(self)
            }
            Err(e) => Err(self.abandon(e)),
        }
    }

    /// Waits for the init (the caller's child: created with `detach`
    /// false), passing the caller's signals on to it.
    fn wait(&mut self, signals: SignalForwarder) -> Result<ExitStatus> {
        fail_point("run.wait")?;
        let id = self.id().to_string();
        let pid = self.world().pid().ok_or_else(|| Error::Wait {
            id: id.clone(),
            source: std::io::Error::other("the world has no init process"),
        })?;
        signals
            .wait(nix::unistd::Pid::from_raw(pid))
            .map_err(|source| Error::Wait { id, source })
    }

    /// Ends a world whose init has exited with `exit`: its fs diff and
    /// record, then (with [`AfterExit::Delete`]) the container, then the
    /// monitor's world span. Every step is attempted; the first failure is
    /// returned, with any later one kept beside it.
    pub fn finish(mut self, exit: ExitStatus, after_exit: AfterExit) -> Result<Finished> {
        let world = self.world.take().expect("held until consumed");
        let id = world.id().clone();
        // While the cgroup still exists: which limits the world ran into.
        let mut outcome = world.note_limits().and_then(|()| world.finish(Some(exit)));
        if after_exit == AfterExit::Delete {
            outcome = keep_first(outcome, delete(world));
        }
        let closed = self.monitor.take().map(|m| m.stop(&id)).transpose();
        let (record, closed) = match (outcome, closed) {
            (Ok(record), Ok(closed)) => (record, closed.flatten()),
            (Err(e), Ok(_)) | (Ok(_), Err(e)) => return Err(e),
            (Err(primary), Err(cleanup)) => return Err(Error::with_cleanup(primary, cleanup)),
        };
        Ok(Finished {
            exit: Some(exit),
            // The monitor's copy has its own account of the exit, when it
            // had to add it.
            record: closed.as_ref().and_then(|c| c.record.clone()).or(record),
            trace: closed.map(TraceSummary::from),
        })
    }

    /// Deletes the world, killing whatever still runs in it, and stops its
    /// monitor (containerd's `Delete`). The record keeps the fs diff and,
    /// when the monitor saw it, the init's exit.
    pub fn end(mut self) -> Result<Finished> {
        let world = self.world.take().expect("held until consumed");
        let id = world.id().clone();
        let deleted = world.note_limits().and_then(|()| delete(world));
        let closed = self.monitor.take().map(|m| m.stop(&id)).transpose();
        let closed = match (deleted, closed) {
            (Ok(()), Ok(closed)) => closed.flatten(),
            (Err(e), Ok(_)) | (Ok(()), Err(e)) => return Err(e),
            (Err(primary), Err(cleanup)) => return Err(Error::with_cleanup(primary, cleanup)),
        };
        let record = match &closed {
            Some(closed) => closed.record.clone(),
            None if self.runtime.store().has_record(&id) => Some(self.runtime.store().record(&id)?),
            None => None,
        };
        Ok(Finished {
            exit: record.as_ref().and_then(|r| r.exit),
            record,
            trace: closed.map(TraceSummary::from),
        })
    }

    /// Leaves the world to run on its own (`substrate-runtime create`, `run
    /// --detach`): a detached monitor goes on following it; a thread monitor
    /// follows it for as long as this process lives.
    pub fn detach(mut self) -> World {
        if let Some(AttachedMonitor::Thread { stop, thread }) = self.monitor.take() {
            // Neither stopped nor joined: it ends with the world.
            std::mem::forget(stop);
            drop(thread);
        }
        self.world.take().expect("held until consumed")
    }

    /// Throws the world away: deletes it (killing its processes), ends its
    /// monitor and, unless its process was started, removes its record.
    pub fn discard(mut self) -> Result<()> {
        self.clean_up()
    }

    /// [`discard`](WorldRun::discard)s the world after `primary` made the
    /// run fail; returns `primary`, with the cleanup's own failure beside
    /// it if there was one.
    fn abandon(mut self, primary: Error) -> Error {
        match self.clean_up() {
            Ok(()) => primary,
            Err(cleanup) => Error::with_cleanup(primary, cleanup),
        }
    }

    fn clean_up(&mut self) -> Result<()> {
        let Some(world) = self.world.take() else {
            return Ok(());
        };
        let id = world.id().clone();
        let deleted = delete(world);
        let monitor = match self.monitor.take() {
            Some(monitor) => monitor.abandon(&id),
            None => Ok(()),
        };
        let record = if self.started {
            Ok(())
        } else {
            self.runtime.store().remove(&id)
        };
        deleted.and(monitor).and(record)
    }
}

impl Drop for WorldRun {
    fn drop(&mut self) {
        if let Err(e) = self.clean_up() {
            tracing::error!(
                "cannot clean up after a world that did not finish: {}",
                crate::one_line(&e)
            );
        }
    }
}

impl From<ClosedWorld> for TraceSummary {
    fn from(closed: ClosedWorld) -> Self {
        TraceSummary {
            spans: closed.spans,
            lost: closed.lost,
        }
    }
}

/// Deletes a world with force: its processes are killed first.
fn delete(mut world: World) -> Result<()> {
    // The status libcontainer acts on must be the kernel's now, not the
    // one loaded at create.
    world.refresh_status("delete")?;
    world.delete(true)
}

fn keep_first<T>(first: Result<T>, then: Result<()>) -> Result<T> {
    match (first, then) {
        (Ok(value), Ok(())) => Ok(value),
        (Err(e), Ok(())) | (Ok(_), Err(e)) => Err(e),
        (Err(primary), Err(cleanup)) => Err(Error::with_cleanup(primary, cleanup)),
    }
}
