//! `substrate-cli graph …`: the span graph's queries, run by the
//! `substrate-graph` binary beside this one (the graph links RocksDB,
//! which nothing else pays for: docs/graph.md).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Result};
use substrate_runtime::Runtime;

/// The graph's binary.
const BINARY: &str = "substrate-graph";

#[derive(clap::Args, Debug)]
#[command(disable_help_flag = true)]
pub struct GraphArgs {
    /// `substrate-cli graph --help` lists them: tree, who-wrote,
    /// what-changed, connections, chains, ingest, rebuild, worlds.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

/// `substrate-graph` beside this executable (the build tree's
/// `target/<profile>/`, `make install`'s `bin/`), as the preload library is
/// found.
fn binary() -> Result<PathBuf> {
    let path = substrate_runtime::monitor::companion::beside_this_executable(BINARY);
    if !path.is_file() {
        bail!(
            "{BINARY} is not installed: there is no {} (it is built apart, so that nothing \
             else pays for RocksDB: `cargo build -p substrate-graph`, which `make build` and \
             `make release` do; `make install` installs it)",
            path.display()
        );
    }
    Ok(path)
}

/// Runs `substrate-graph ARGS…` in this process's place, with this
/// command's state dir; returns only if it cannot be run.
pub fn graph(args: GraphArgs, runtime: &Runtime) -> Result<u8> {
    let binary = binary()?;
    let mut command = Command::new(&binary);
    command.env("SUBSTRATE_GRAPH_AS", "substrate-cli graph");
    // This command's state dir, unless the graph's own arguments name one.
    let named = args
        .args
        .iter()
        .any(|a| a == "--state-dir" || a.to_string_lossy().starts_with("--state-dir="));
    if !named {
        command.arg("--state-dir").arg(runtime.store().state_dir());
    }
    command.args(&args.args);
    let e = command.exec();
    bail!("cannot run {}: {e}", binary.display())
}
