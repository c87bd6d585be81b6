//! `substrate-cli kill`: send a signal to a running world's init, which
//! passes it on to the command's process group (`--no-init`: the command
//! gets it itself). SIGKILL, the default, ends the world at once.

use anyhow::{bail, Result};
use clap::Args;
use substrate_runtime::{parse_signal, Runtime};

use super::{record, world_status};

#[derive(Args, Debug)]
pub struct KillArgs {
    /// The world: its id (`--name`, or the w-… id `run` made), as `ps`
    /// lists it.
    world: String,
    /// The signal: a name (TERM, SIGUSR1, hup) or a number.
    #[arg(default_value = "KILL")]
    signal: String,
}

pub fn kill(args: KillArgs, runtime: &Runtime) -> Result<u8> {
    // A typo is reported as a typo, whatever the world's state.
    let signal = parse_signal(&args.signal)?;
    let record = record(runtime, &args.world)?;
    let live = Runtime::new(&record.runtime_root).with_store(runtime.store().clone());
    let mut world = match live.world(record.id.as_str()) {
        Ok(world) if world.pid().is_some() => world,
        Ok(_) | Err(_) => bail!(
            "world {} is not running ({})",
            record.id,
            world_status(runtime, &record)
        ),
    };
    world.kill(signal, false)?;
    Ok(0)
}
