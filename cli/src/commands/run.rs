//! `substrate-cli run`: run a command in a new world, then record it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use substrate_runtime::foreground::SignalForwarder;
use substrate_runtime::monitor::Monitoring;
use substrate_runtime::{AfterExit, CreateOptions, Layering, RunOptions, Runtime, WorldId};

use crate::spec::{Origin, WorldBundle};
use crate::summary;

#[derive(Args, Debug)]
pub struct RunArgs {
    /// An OCI bundle; its rootfs is the world's lower layer.
    #[arg(long, conflicts_with = "rootfs")]
    bundle: Option<PathBuf>,
    /// A root filesystem directory, run with Substrate's default spec.
    /// Without --bundle or --rootfs the world's lower is the host's `/`.
    #[arg(long)]
    rootfs: Option<PathBuf>,
    /// The world's id [default: generated].
    #[arg(long)]
    name: Option<String>,
    /// Keep the world's upper layer (its files) after the run; the record
    /// and the diff are kept either way.
    #[arg(long)]
    keep: bool,
    /// Print the summary as JSON (on stderr, like the human one).
    #[arg(long)]
    json: bool,
    /// The command and its arguments (after `--`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// What a world may write: its upper layer is a filesystem of this size
/// (sparse: only what is written takes room).
const DEFAULT_DISK: u64 = 10 << 30;

/// How long a world may take to stop after Ctrl-C (or SIGTERM) is passed
/// on, before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

pub fn run(args: RunArgs, runtime: &Runtime) -> Result<u8> {
    let id = match args.name {
        Some(name) => {
            let id = WorldId::new(name)?;
            if runtime.store().has_record(&id) {
                bail!("world {id:?} already exists: remove it first (substrate-cli rm {id})");
            }
            id
        }
        None => generated_id(),
    };
    let origin = match (args.bundle, args.rootfs) {
        (Some(bundle), _) => Origin::Bundle(bundle),
        (None, Some(rootfs)) => Origin::Rootfs(rootfs),
        (None, None) => Origin::Host,
    };
    let bundle = WorldBundle::prepare(origin, &id, &args.command, runtime)?;
    let started = Instant::now();
    let finished = runtime.run(
        id.as_str(),
        &bundle.dir,
        RunOptions {
            create: CreateOptions {
                detach: false,
                source: Some(bundle.source.clone()),
                // Substrate's own overlay: the rootfs is never written and
                // every write is in the diff.
                layering: Layering::Overlay {
                    lower: bundle.lower.clone(),
                    upper_limit: Some(DEFAULT_DISK),
                },
                ..Default::default()
            },
            monitoring: Monitoring::Thread,
            // Substrate's own specs give the world a network namespace of
            // its own and no network yet: it still reaches itself on
            // localhost.
            loopback: bundle.generated(),
            // Caught before the world exists, so none is lost.
            signals: SignalForwarder::install()
                .context("cannot install signal handlers")?
                .kill_after(STOP_GRACE),
            after_exit: AfterExit::Delete,
        },
    )?;
    let elapsed = started.elapsed();
    let exit = finished
        .exit
        .expect("a world run in the foreground has an exit");
    if finished.trace.as_ref().is_some_and(|t| t.lost) {
        eprintln!("substrate-cli: kernel events were lost: the trace of {id} may miss processes");
    }
    if !args.keep {
        runtime.store().discard_upper(&id)?;
    }
    if let Some(record) = &finished.record {
        summary::print(
            record,
            exit,
            elapsed,
            finished.trace.as_ref().map(|t| &t.spans),
            args.json,
        );
    }
    Ok(exit.shell_status().clamp(0, 255) as u8)
}

/// `w-` + a UUIDv7's time-ordered first 12 hex digits + 4 random ones:
/// short, sortable by creation, unique.
fn generated_id() -> WorldId {
    let uuid = uuid::Uuid::now_v7().simple().to_string();
    WorldId::new(format!("w-{}{}", &uuid[..12], &uuid[28..])).expect("letters, digits and '-'")
}
