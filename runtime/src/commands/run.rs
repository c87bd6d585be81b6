use anyhow::Result;
use liboci_cli::Run;
use substrate_runtime::foreground::SignalForwarder;
use substrate_runtime::monitor::Monitoring;
use substrate_runtime::{AfterExit, CreateOptions, Error, RunOptions, Runtime};

/// `create` + `start`, then (unless `--detach`) wait for the init, forward
/// signals to it, delete the world and exit with its status, as `runc run`.
pub fn run(args: Run, runtime: &Runtime) -> Result<u8> {
    let create = CreateOptions {
        pid_file: args.pid_file,
        console_socket: args.console_socket,
        preserve_fds: args.preserve_fds,
        no_pivot: args.no_pivot,
        detach: args.detach,
        layering: super::layering()?,
        ..Default::default()
    };
    let id = &args.container_id;
    if args.detach {
        let monitoring = super::create::detached_monitor(runtime, id)?;
        runtime
            .launch(id, &args.bundle, create, monitoring)?
            .start()?
            .detach();
        return Ok(0);
    }
    // Orphans in the world reparent to us, so the init's exit is seen and
    // zombies do not pile up (runc does the same unless --no-subreaper).
    if !args.no_subreaper {
        nix::sys::prctl::set_child_subreaper(true)?;
    }
    let finished = runtime.run(
        id,
        &args.bundle,
        RunOptions {
            create,
            monitoring: Monitoring::Thread,
            signals: SignalForwarder::install()?,
            after_exit: if args.keep {
                AfterExit::Keep
            } else {
                AfterExit::Delete
            },
        },
    );
    let exit = match finished {
        Ok(finished) => finished.exit,
        // The workload ran: failing to record it must not replace its
        // exit status.
        Err(Error::Unfinished { exit, source, .. }) => {
            tracing::error!("world {id:?}: {}", substrate_runtime::one_line(&source));
            Some(exit)
        }
        Err(e) => return Err(e.into()),
    };
    Ok(exit.map_or(0, |e| e.shell_status()) as u8)
}
