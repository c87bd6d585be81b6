//! `substrate-cli`: run a command in a new world and see what it did.

mod commands;
mod spec;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use substrate_runtime::{Runtime, WorldStore, DEFAULT_ROOT};

#[derive(Parser, Debug)]
#[command(
    name = "substrate-cli",
    version,
    about = "Run commands in recorded worlds"
)]
struct Cli {
    /// Runtime state root (substrate-runtime's --root).
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Where world records are kept [default: $SUBSTRATE_STATE_DIR, else /var/lib/substrate].
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Run(commands::run::RunArgs),
    Ps(commands::ps::PsArgs),
    Diff(commands::diff::DiffArgs),
    Inspect(commands::inspect::InspectArgs),
    Rm(commands::rm::RmArgs),
    Gc(commands::gc::GcArgs),
    Trace(commands::trace::TraceArgs),
}

/// `run`'s own failures exit with this (as `docker run`), so they are told
/// apart from the command's exit statuses.
const RUN_FAILED: u8 = 125;

fn main() -> ExitCode {
    // Output piped into `head` ends quietly, as other command-line tools do,
    // instead of a panic on EPIPE. (`run` catches SIGPIPE again to pass it
    // on to the world.)
    // SAFETY: restoring the default disposition of SIGPIPE, before any
    // thread exists, installs no handler code.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
    let _fail_points = substrate_runtime::fail_points();
    let cli = Cli::parse();
    let store = cli
        .state_dir
        .map(WorldStore::new)
        .unwrap_or_else(WorldStore::from_env);
    let runtime = Runtime::new(cli.root).with_store(store);
    let (result, failure) = match cli.command {
        Command::Run(args) => (commands::run::run(args, &runtime), RUN_FAILED),
        Command::Ps(args) => (commands::ps::ps(args, &runtime).map(|()| 0), 1),
        Command::Diff(args) => (commands::diff::diff(args, &runtime).map(|()| 0), 1),
        Command::Inspect(args) => (commands::inspect::inspect(args, &runtime).map(|()| 0), 1),
        Command::Rm(args) => (commands::rm::rm(args, &runtime), 1),
        Command::Gc(args) => (commands::gc::gc(args, &runtime), 1),
        Command::Trace(args) => (commands::trace::trace(args, &runtime).map(|()| 0), 1),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("substrate-cli: {}", substrate_runtime::one_line(e.as_ref()));
            ExitCode::from(failure)
        }
    }
}
