use anyhow::Result;
use liboci_cli::Create;
use substrate_runtime::{CreateOptions, Runtime};

pub fn create(args: Create, runtime: &Runtime) -> Result<()> {
    runtime.create(
        &args.container_id,
        &args.bundle,
        CreateOptions {
            pid_file: args.pid_file,
            console_socket: args.console_socket,
            preserve_fds: args.preserve_fds,
            no_pivot: args.no_pivot,
            detach: true,
            stdio: Default::default(),
            source: None,
        },
    )?;
    Ok(())
}
