use anyhow::Result;
use liboci_cli::State;
use substrate_runtime::Runtime;

pub fn state(args: State, runtime: &Runtime) -> Result<()> {
    let world = runtime.world(&args.container_id)?;
    println!("{}", serde_json::to_string_pretty(&world.state())?);
    Ok(())
}
