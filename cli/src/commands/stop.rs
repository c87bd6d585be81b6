//! `substrate-cli stop`: end a running world — SIGTERM to its init, which
//! passes it on to the command, SIGKILL if it is still there after the
//! timeout — and see it finished: a `run --detach` world is finished here
//! (its monitor records the exit, diff and last span; then the container,
//! its cgroup and, unless `--keep`, its upper layer go), a foreground one
//! by the `run` that waits for it.
//!
//! The same command, hidden, is a foreground run's guardian
//! (`--after PID:TOKEN`): started by `run` before the world exists, in a
//! process group of its own, it waits until that `run` has exited. A `run`
//! that finished its world leaves nothing for it; one that was killed first
//! (SIGKILL can't be caught) leaves its world behind, and the guardian ends
//! it at once. The world's init has usually ended its processes already
//! (its lifeline broke with the `run`); the guardian ends its trace (the
//! run's monitor died with it: a `loss` span says so), finishes its record
//! and removes the rest: container, cgroup, upper layer.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use substrate_runtime::foreground::Process;
use substrate_runtime::{Runtime, Signal, World, WorldId};

use super::record;
use crate::spec::RunNotes;

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait after SIGTERM before sending SIGKILL.
    #[arg(long, short = 't', value_name = "SECS", default_value_t = 10)]
    timeout: u64,
    /// The world to stop: its id (`--name`, or the w-… id `run` made), as
    /// `ps` lists it.
    world: String,
    /// A foreground run's guardian: wait until process PID (that `run`)
    /// has exited, then end the world if it is still there with TOKEN.
    #[arg(long, hide = true, value_name = "PID:TOKEN")]
    after: Option<String>,
}

/// How long the init may take to go once SIGKILLed.
const KILL_WAIT: Duration = Duration::from_secs(10);
/// How long a world's monitor may take to record its end (the fs diff
/// included) once its processes are gone, and a foreground `run` to finish
/// its world.
const FINISH_WAIT: Duration = Duration::from_secs(30);

pub fn stop(args: StopArgs, runtime: &Runtime) -> Result<u8> {
    if let Some(owner) = &args.after {
        return guard(runtime, &args.world, owner).map(|()| 0);
    }
    let record = record(runtime, &args.world)?;
    let live = Runtime::new(&record.runtime_root).with_store(runtime.store().clone());
    let id = &record.id;
    let mut world = match live.world(id.as_str()) {
        Ok(world) => world,
        // Gone already: finished, nothing to stop.
        Err(e) if e.is_not_found() => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let notes = RunNotes::of(world.state().annotations.as_ref());
    terminate(&mut world, Duration::from_secs(args.timeout))?;
    if notes.detached {
        // Its monitor, a process of its own, records how it ended (unless
        // it is gone: then the record and the trace end here, the trace
        // with a `loss` span, without the exit).
        wait_for(FINISH_WAIT, || {
            let ended = runtime
                .store()
                .record(id)
                .is_ok_and(|r| r.ended_at.is_some());
            ended || live.end_unmonitored(id).unwrap_or(false)
        });
        end(&live, id)?;
    } else if notes.owner.is_some() {
        // Its `run` finishes it (diff, record, delete) and prints how it
        // ended; stop returns once it has.
        let finished = wait_for(FINISH_WAIT, || {
            live.world(id.as_str()).is_err_and(|e| e.is_not_found())
        });
        if !finished {
            bail!(
                "world {id} has stopped, but its `substrate-cli run` has not finished it \
                 within {} s",
                FINISH_WAIT.as_secs()
            );
        }
    }
    Ok(0)
}

/// SIGTERM to the world's init; SIGKILL once `timeout` has passed without
/// its exit. Returns once the init has exited.
fn terminate(world: &mut World, timeout: Duration) -> Result<()> {
    let Some(pid) = world.pid() else {
        return Ok(());
    };
    let init = Process::open(pid).with_context(|| format!("world {}: init", world.id()))?;
    signal(world, &init, Signal::SIGTERM)?;
    if init.exited_within(Some(timeout))? {
        return Ok(());
    }
    signal(world, &init, Signal::SIGKILL)?;
    if !init.exited_within(Some(KILL_WAIT))? {
        bail!(
            "world {}: its init (pid {pid}) did not exit within {} s of SIGKILL",
            world.id(),
            KILL_WAIT.as_secs()
        );
    }
    Ok(())
}

/// Signals the init through the runtime (which knows a paused world); a
/// world that ends meanwhile is not an error.
fn signal(world: &mut World, init: &Process, signal: Signal) -> Result<()> {
    match world.kill(signal, false) {
        Ok(()) => Ok(()),
        Err(_) if init.exited_within(Some(Duration::ZERO))? => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Removes a world whose processes are gone, or kills them first: its
/// container and cgroup, and its upper layer's files unless it was run with
/// `--keep` (the fs diff is taken first if nothing took it).
fn end(live: &Runtime, id: &WorldId) -> Result<()> {
    match live.world(id.as_str()) {
        Ok(world) => Ok(world.delete(true)?),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The guardian of a foreground run (see the module's doc). `runtime` is
/// the run's own (`--root`, `--state-dir`).
fn guard(runtime: &Runtime, world: &str, owner: &str) -> Result<()> {
    let (pid, token) = owner
        .split_once(':')
        .and_then(|(pid, token)| Some((pid.parse::<i32>().ok()?, token)))
        .with_context(|| format!("--after {owner:?}: expected PID:TOKEN"))?;
    let run = Process::open(pid).context("cannot watch the run")?;
    // The run is our parent: if we have been reparented, it is gone
    // already (and `pid` may name another process by now).
    if nix::unistd::getppid().as_raw() == pid {
        run.exited_within(None)?;
    }
    let world = match runtime.world(world) {
        Ok(world) => world,
        // Finished and deleted by its run: nothing was left behind.
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let notes = RunNotes::of(world.state().annotations.as_ref());
    // Another world of the same name, made since: not ours.
    if notes.owner.as_deref() != Some(token) {
        return Ok(());
    }
    // Its processes are killed first if they still run: a `--no-init`
    // world has no lifeline, nor one whose run died before it started.
    // The run's monitor (a thread) died with it: its trace is ended here.
    let id = world.id().clone();
    drop(world);
    // Whatever came of that, the world is removed.
    let traced = runtime.end_unmonitored(&id);
    end(runtime, &id)?;
    traced.map(|_| ()).map_err(Into::into)
}

/// Polls `done` every 20 ms until it holds or `timeout` has passed;
/// returns whether it held.
fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
