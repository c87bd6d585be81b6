use anyhow::Result;
use liboci_cli::Run;
use substrate_runtime::foreground::SignalForwarder;
use substrate_runtime::{CreateOptions, Runtime};

/// `create` + `start`, then (unless `--detach`) wait for the init, forward
/// signals to it, delete the world and exit with its status, as `runc run`.
pub fn run(args: Run, runtime: &Runtime) -> Result<u8> {
    let forwarder = if args.detach {
        None
    } else {
        // Orphans in the world reparent to us, so the init's exit is seen
        // and zombies do not pile up (runc does the same unless
        // --no-subreaper).
        if !args.no_subreaper {
            nix::sys::prctl::set_child_subreaper(true)?;
        }
        Some(SignalForwarder::install()?)
    };
    let mut world = runtime.create(
        &args.container_id,
        &args.bundle,
        CreateOptions {
            pid_file: args.pid_file,
            console_socket: args.console_socket,
            preserve_fds: args.preserve_fds,
            no_pivot: args.no_pivot,
            detach: args.detach,
            stdio: Default::default(),
            source: None,
        },
    )?;
    let init_pid = world.pid().expect("a created world has an init pid");
    if let Err(e) = super::create::start_monitor(runtime, &args.container_id, init_pid) {
        tracing::warn!(
            "world {}: no monitor, so no trace: {e:#}",
            args.container_id
        );
    }
    if let Err(e) = world.start() {
        let _ = world.delete(true);
        return Err(e.into());
    }
    let Some(forwarder) = forwarder else {
        return Ok(0);
    };
    let pid = world.pid().expect("a started world has an init pid");
    let exit = forwarder.wait(nix::unistd::Pid::from_raw(pid))?;
    // Failures after the workload ran are logged: they must not replace its
    // exit status.
    if let Err(e) = world.finish(Some(exit)) {
        tracing::error!("cannot record world {:?}: {e}", args.container_id);
    }
    if !args.keep {
        world.refresh()?;
        if let Err(e) = world.delete(true) {
            tracing::error!("cannot delete container {:?}: {e}", args.container_id);
        }
    }
    Ok(exit.shell_status() as u8)
}
