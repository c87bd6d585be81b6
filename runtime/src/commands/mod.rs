//! One file per subcommand: parse runc's flags, call one library method.

mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
pub mod monitor;
mod pause;
mod ps;
mod run;
mod spec;
mod start;
mod state;
mod update;

use anyhow::{bail, Result};
use liboci_cli::{CommonCmd, StandardCmd};
use substrate_runtime::{Layering, Runtime};

use crate::Command;

/// Chooses where a world's writes go: the operator's choice, in the
/// runtime's environment, never the bundle's.
pub const ROOTFS_ENV: &str = "SUBSTRATE_ROOTFS";

/// `SUBSTRATE_ROOTFS=in-place` (the default: runc's semantics, the rootfs
/// the bundle names is written; an overlay rootfs such as podman's and
/// containerd's is still diffed and traced) or `overlay` (Substrate's own
/// overlay over a plain-directory rootfs: it is never written, every write
/// is in the world's diff, the preload tracer is injected).
fn layering() -> Result<Layering> {
    match std::env::var(ROOTFS_ENV).as_deref() {
        Err(std::env::VarError::NotPresent) | Ok("") | Ok("in-place") => Ok(Layering::InPlace),
        Ok("overlay") => Ok(Layering::Overlay {
            lower: None,
            upper_limit: None,
        }),
        Ok(other) => bail!("{ROOTFS_ENV}={other:?}: expected `in-place` or `overlay`"),
        Err(e) => bail!("{ROOTFS_ENV}: {e}"),
    }
}

/// Runs one subcommand; the value is the process exit status.
pub fn run(command: Command, runtime: &Runtime) -> Result<u8> {
    match command {
        Command::Standard(cmd) => match *cmd {
            StandardCmd::Create(args) => create::create(args, runtime).map(|()| 0),
            StandardCmd::Start(args) => start::start(args, runtime).map(|()| 0),
            StandardCmd::State(args) => state::state(args, runtime).map(|()| 0),
            StandardCmd::Kill(args) => kill::kill(args, runtime).map(|()| 0),
            StandardCmd::Delete(args) => delete::delete(args, runtime).map(|()| 0),
        },
        Command::Monitor(args) => monitor::monitor(args, runtime),
        Command::Common(cmd) => match *cmd {
            CommonCmd::Run(args) => run::run(args, runtime),
            CommonCmd::Exec(args) => exec::exec(args, runtime),
            CommonCmd::Ps(args) => ps::ps(args, runtime).map(|()| 0),
            CommonCmd::List(args) => list::list(args, runtime).map(|()| 0),
            CommonCmd::Pause(args) => pause::pause(args, runtime).map(|()| 0),
            CommonCmd::Resume(args) => pause::resume(args, runtime).map(|()| 0),
            CommonCmd::Update(args) => update::update(args, runtime).map(|()| 0),
            CommonCmd::Events(args) => events::events(args, runtime).map(|()| 0),
            CommonCmd::Features(_) => features::features().map(|()| 0),
            CommonCmd::Spec(args) => spec::spec(args).map(|()| 0),
            CommonCmd::Checkpointt(_) => {
                bail!("checkpoint is not supported by substrate-runtime (no CRIU integration)")
            }
        },
    }
}
