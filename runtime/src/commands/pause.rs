use anyhow::Result;
use liboci_cli::{Pause, Resume};
use substrate_runtime::Runtime;

pub fn pause(args: Pause, runtime: &Runtime) -> Result<()> {
    runtime.world(&args.container_id)?.pause()?;
    Ok(())
}

pub fn resume(args: Resume, runtime: &Runtime) -> Result<()> {
    runtime.world(&args.container_id)?.resume()?;
    Ok(())
}
