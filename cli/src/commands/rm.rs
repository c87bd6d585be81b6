//! `substrate-cli rm`: remove worlds' records and upper layers.

use anyhow::Result;
use clap::Args;
use substrate_runtime::{Runtime, WorldStatus};

use super::record;

#[derive(Args, Debug)]
pub struct RmArgs {
    /// The worlds to remove: ids (`--name`, or the w-… ids `run` made), as
    /// `ps` lists them.
    #[arg(required = true)]
    worlds: Vec<String>,
}

/// Removes each world it can; reports every one it cannot and exits 1 then.
pub fn rm(args: RmArgs, runtime: &Runtime) -> Result<u8> {
    let mut failed = false;
    for id in &args.worlds {
        if let Err(e) = remove(runtime, id) {
            eprintln!(
                "substrate-cli: rm {id}: {}",
                substrate_runtime::one_line(e.as_ref())
            );
            failed = true;
        }
    }
    Ok(u8::from(failed))
}

pub(super) fn remove(runtime: &Runtime, id: &str) -> Result<()> {
    let record = record(runtime, id)?;
    let container_runtime = Runtime::new(&record.runtime_root).with_store(runtime.store().clone());
    if let Ok(world) = container_runtime.world(id) {
        match world.status() {
            WorldStatus::Stopped | WorldStatus::Created => world.delete(true)?,
            status => anyhow::bail!("world is {status}: stop it first (substrate-cli stop {id})"),
        }
    }
    runtime.store().remove(&record.id)?;
    Ok(())
}
