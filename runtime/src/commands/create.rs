use std::process::Command;

use anyhow::Result;
use liboci_cli::Create;
use substrate_runtime::monitor::Monitoring;
use substrate_runtime::{CreateOptions, Runtime};

pub fn create(args: Create, runtime: &Runtime) -> Result<()> {
    runtime
        .launch(
            &args.container_id,
            &args.bundle,
            CreateOptions {
                pid_file: args.pid_file,
                console_socket: args.console_socket,
                preserve_fds: args.preserve_fds,
                no_pivot: args.no_pivot,
                detach: true,
                layering: super::layering()?,
                ..Default::default()
            },
            detached_monitor(runtime, &args.container_id)?,
        )?
        .detach();
    Ok(())
}

/// The world's monitor outlives this command: `substrate-runtime monitor`,
/// with this root and world store (the environment passes the store on).
pub(super) fn detached_monitor(runtime: &Runtime, id: &str) -> Result<Monitoring> {
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("--root")
        .arg(runtime.root())
        .arg("monitor")
        .arg(id);
    Ok(Monitoring::Process(command))
}
