use anyhow::Result;
use liboci_cli::Delete;
use substrate_runtime::Runtime;

pub fn delete(args: Delete, runtime: &Runtime) -> Result<()> {
    runtime.delete(&args.container_id, args.force)?;
    Ok(())
}
