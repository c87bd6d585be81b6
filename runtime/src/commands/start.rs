use anyhow::Result;
use liboci_cli::Start;
use substrate_runtime::Runtime;

pub fn start(args: Start, runtime: &Runtime) -> Result<()> {
    runtime.world(&args.container_id)?.start()?;
    Ok(())
}
