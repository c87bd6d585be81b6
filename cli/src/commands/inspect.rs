//! `substrate-cli inspect`: a world's record, with its live status.

use anyhow::Result;
use clap::Args;
use substrate_runtime::Runtime;
use substrate_trace::redact::{redact_command, redact_environment};

use super::{record, world_status};

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The world: its id (`--name`, or the w-… id `run` made), as `ps` lists it.
    world: String,
}

pub fn inspect(args: InspectArgs, runtime: &Runtime) -> Result<()> {
    let mut record = record(runtime, &args.world)?;
    // The trace's redaction, whatever wrote the record (an older one kept
    // the command as given).
    record.command = redact_command(&record.command);
    record.env = redact_environment(&record.env);
    let mut value = serde_json::to_value(&record)?;
    value["status"] = world_status(runtime, &record).into();
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(())
}
