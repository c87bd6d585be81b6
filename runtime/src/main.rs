//! `substrate-runtime`: runc's command line over the Substrate runtime
//! library, so that containerd's runc shim, podman and Docker drive worlds
//! unchanged.

mod commands;
mod logging;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use liboci_cli::{CommonCmd, GlobalOpts, StandardCmd};
use substrate_runtime::{Runtime, DEFAULT_ROOT};

#[derive(Parser, Debug)]
#[command(
    name = "substrate-runtime",
    version,
    about = "Substrate's OCI runtime (runc-compatible CLI)"
)]
struct Opts {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    #[command(flatten)]
    Standard(Box<StandardCmd>),
    #[command(flatten)]
    Common(Box<CommonCmd>),
    /// The detached per-world monitor that `create` starts.
    #[command(hide = true)]
    Monitor(commands::monitor::MonitorArgs),
}

fn main() -> ExitCode {
    let _fail_points = substrate_runtime::fail_points();
    let opts = Opts::parse();
    let format = match logging::LogFormat::parse(opts.global.log_format.as_deref()) {
        Ok(format) => format,
        Err(e) => return fatal(&e, false),
    };
    if let Err(e) = logging::init(opts.global.log.as_deref(), format, opts.global.debug) {
        return fatal(&e, false);
    }
    let logs_elsewhere = opts
        .global
        .log
        .as_deref()
        .is_some_and(|p| p != std::path::Path::new("/dev/stderr"));
    let runtime = Runtime::new(
        opts.global
            .root
            .clone()
            .unwrap_or_else(|| DEFAULT_ROOT.into()),
    )
    .with_systemd_cgroup(opts.global.systemd_cgroup);
    match commands::run(opts.command, &runtime) {
        Ok(code) => ExitCode::from(code),
        Err(e) => fatal(&e, logs_elsewhere),
    }
}

/// Reports a failure: one plain line on stderr for whoever ran the command
/// (podman and containerd's shims show it), and, when `--log` names a file,
/// the same message as a runc-shaped `error` entry there, which containerd's
/// runc shim reads to say why a call failed. Exit status 1, as runc.
fn fatal(e: &anyhow::Error, logs_elsewhere: bool) -> ExitCode {
    let message = substrate_runtime::one_line(e.as_ref());
    if logs_elsewhere {
        tracing::error!("{message}");
    }
    eprintln!("substrate-runtime: {message}");
    ExitCode::FAILURE
}
