use anyhow::Result;
use liboci_cli::Kill;
use substrate_runtime::{parse_signal, Runtime};

pub fn kill(args: Kill, runtime: &Runtime) -> Result<()> {
    // The signal is checked before the world is looked up, so a typo is
    // reported as a typo whatever state the world is in.
    let signal = parse_signal(&args.signal)?;
    runtime.world(&args.container_id)?.kill(signal, args.all)?;
    Ok(())
}
