use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use anyhow::Result;
use liboci_cli::Create;
use substrate_runtime::{CreateOptions, Runtime};

pub fn create(args: Create, runtime: &Runtime) -> Result<()> {
    let world = runtime.create(
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
    let init_pid = world.pid().expect("a created world has an init pid");
    // The init waits for `start`: once the monitor is subscribed, it sees
    // every fork and exec of the world.
    if let Err(e) = start_monitor(runtime, &args.container_id, init_pid) {
        tracing::warn!(
            "world {}: no monitor, so no trace or exit status: {e:#}",
            args.container_id
        );
    }
    Ok(())
}

/// Starts `substrate-runtime monitor` in its own process group (signals for
/// our caller's group are not its business) and waits for its ready line.
pub(super) fn start_monitor(runtime: &Runtime, id: &str, init_pid: i32) -> Result<()> {
    let mut child = Command::new(std::env::current_exe()?)
        .arg("--root")
        .arg(runtime.root())
        .arg("monitor")
        .arg("--init-pid")
        .arg(init_pid.to_string())
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line)?;
    if line.trim() != super::monitor::READY {
        let status = child.wait()?;
        anyhow::bail!("the monitor did not start ({status})");
    }
    Ok(())
}
