//! `substrate-runtime monitor ID` (hidden): the detached monitor `create`
//! starts for each world, as conmon does for podman (see
//! `substrate_runtime::monitor::serve_detached`).

use anyhow::Result;
use clap::Args;
use substrate_runtime::Runtime;

/// What `create` tells the monitor; not for people.
#[derive(Args, Debug)]
pub struct MonitorArgs {
    container_id: String,
}

pub fn monitor(args: MonitorArgs, runtime: &Runtime) -> Result<u8> {
    substrate_runtime::monitor::serve_detached(runtime, &args.container_id)?;
    Ok(0)
}
