//! `substrate-cli inspect`: a world's record, with its live status.

use anyhow::Result;
use clap::Args;
use substrate_runtime::Runtime;

use super::{record, world_status};

#[derive(Args, Debug)]
pub struct InspectArgs {
    world: String,
}

pub fn inspect(args: InspectArgs, runtime: &Runtime) -> Result<()> {
    let record = record(runtime, &args.world)?;
    let mut value = serde_json::to_value(&record)?;
    value["status"] = world_status(runtime, &record).into();
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}
