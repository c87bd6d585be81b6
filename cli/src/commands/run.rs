//! `substrate-cli run`: run a command in a new world, then record it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use nix::unistd::Pid;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use substrate_runtime::foreground::SignalForwarder;
use substrate_runtime::monitor::WorldMonitor;
use substrate_runtime::{CreateOptions, Runtime};
use substrate_trace::Timestamp;

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

/// How long a world may take to stop after Ctrl-C (or SIGTERM) is passed
/// on, before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

pub fn run(args: RunArgs, runtime: &Runtime) -> Result<u8> {
    let id = match args.name {
        Some(name) => {
            substrate_runtime::validate_id(&name)?;
            if runtime.store().has_record(&name) {
                bail!("world {name:?} already exists: remove it first (substrate-cli rm {name})");
            }
            name
        }
        None => generated_id(),
    };
    let origin = match (args.bundle, args.rootfs) {
        (Some(bundle), _) => Origin::Bundle(bundle),
        (None, Some(rootfs)) => Origin::Rootfs(rootfs),
        (None, None) => Origin::Host,
    };
    let bundle = WorldBundle::prepare(origin, &id, &args.command, runtime)?;

    // Signals are caught before the world exists, so none is lost.
    let forwarder = SignalForwarder::install()
        .context("cannot install signal handlers")?
        .kill_after(STOP_GRACE);
    let started = Instant::now();
    let mut world = runtime.create(
        &id,
        &bundle.dir,
        CreateOptions {
            detach: false,
            source: Some(bundle.source.clone()),
            ..Default::default()
        },
    )?;
    let pid = world.pid().expect("a created world has an init pid");
    // Substrate's own specs give the world a network namespace of its own
    // and no network yet: it still reaches itself on localhost.
    if bundle.generated() {
        if let Err(e) = world.bring_up_loopback() {
            let _ = world.delete(true);
            return Err(e.into());
        }
    }
    // The init is waiting for start: subscribing now sees every fork and
    // exec of the world. `SUBSTRATE_TRACE=off` runs it untraced (the anchor
    // of the tracing benchmark).
    let traced = substrate_runtime::inject::tracing_enabled();
    let world_gone = Arc::new(AtomicBool::new(false));
    let follower = if traced {
        let monitor = match WorldMonitor::subscribe(runtime.store(), &id) {
            Ok(monitor) => monitor,
            Err(e) => {
                let _ = world.delete(true);
                return Err(e.into());
            }
        };
        let world_gone = Arc::clone(&world_gone);
        Some(std::thread::spawn(move || {
            monitor.follow(pid, || world_gone.load(Ordering::Relaxed))
        }))
    } else {
        None
    };
    let start_time = Timestamp::now();
    if let Err(e) = world.start() {
        let _ = world.delete(true);
        world_gone.store(true, Ordering::Relaxed);
        if let Some(follower) = follower {
            let _ = follower.join();
        }
        return Err(e.into());
    }
    let exit = forwarder
        .wait(Pid::from_raw(pid))
        .context("cannot wait for the world's init")?;
    let elapsed = started.elapsed();

    let record = world.finish(Some(exit))?;
    world.refresh()?;
    world.delete(true)?;
    world_gone.store(true, Ordering::Relaxed);
    let mut spans = None;
    if let Some(follower) = follower {
        let report = follower
            .join()
            .map_err(|_| anyhow::anyhow!("the world monitor panicked"))??;
        let mut trace = report.trace;
        trace.write_world_span(
            start_time,
            Some(exit),
            record.as_ref().and_then(|r| r.diff.as_ref()),
        )?;
        if report.lost {
            eprintln!(
                "substrate-cli: kernel events were lost: the trace of {id} may miss processes"
            );
        }
        spans = Some(trace.counts().clone());
    }
    if !args.keep {
        runtime.store().discard_upper(&id)?;
    }
    if let Some(record) = record {
        summary::print(&record, exit, elapsed, spans.as_ref(), args.json);
    }
    Ok(exit.shell_status().clamp(0, 255) as u8)
}

/// `w-` + a UUIDv7's time-ordered first 12 hex digits + 4 random ones:
/// short, sortable by creation, unique.
fn generated_id() -> String {
    let uuid = uuid::Uuid::now_v7().simple().to_string();
    format!("w-{}{}", &uuid[..12], &uuid[28..])
}
