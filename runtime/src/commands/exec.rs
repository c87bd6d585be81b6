use anyhow::Result;
use liboci_cli::Exec;
use substrate_runtime::foreground::SignalForwarder;
use substrate_runtime::{ExecOptions, Runtime};

pub fn exec(args: Exec, runtime: &Runtime) -> Result<u8> {
    let world = runtime.world(&args.container_id)?;
    let forwarder = if args.detach {
        None
    } else {
        Some(SignalForwarder::install()?)
    };
    let pid = world.exec(
        runtime,
        ExecOptions {
            process: args.process,
            args: args.command,
            env: args.env,
            cwd: args.cwd,
            user: args.user.map(|(uid, _)| uid),
            group: args.user.and_then(|(_, gid)| gid),
            additional_gids: args.additional_gids,
            tty: args.tty,
            console_socket: args.console_socket,
            pid_file: args.pid_file,
            preserve_fds: args.preserve_fds,
            no_new_privs: args.no_new_privs,
            capabilities: args.cap,
            detach: args.detach,
            ignore_paused: args.ignore_paused,
            sub_cgroup: args.cgroup,
            stdio: Default::default(),
        },
    )?;
    match forwarder {
        Some(forwarder) => Ok(forwarder.wait(pid)?.shell_status() as u8),
        None => Ok(0),
    }
}
