//! `substrate-runtime monitor` (hidden): the detached monitor `create`
//! starts for each world, as conmon does for podman. It follows the world's
//! processes into its trace, and when the last one has exited it records
//! the init's exit status (which nothing else in a runc-style flow learns)
//! and the fs diff, then the world span.

use std::io::Write;

use anyhow::Result;
use clap::Args;
use substrate_runtime::monitor::WorldMonitor;
use substrate_runtime::Runtime;
use substrate_trace::Timestamp;

/// What `create` tells the monitor; not for people.
#[derive(Args, Debug)]
pub struct MonitorArgs {
    #[arg(long)]
    init_pid: i32,
    container_id: String,
}

/// The line the monitor prints once it is subscribed to the kernel's events.
pub const READY: &str = "substrate-monitor-ready";

pub fn monitor(args: MonitorArgs, runtime: &Runtime) -> Result<u8> {
    let id = &args.container_id;
    let start = Timestamp::now();
    let monitor = WorldMonitor::subscribe(runtime.store(), id)?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{READY}")?;
        stdout.flush()?;
    }
    let state_dir = runtime.root().join(id);
    // A world deleted while the monitor waits (its cgroup killed with
    // events lost) has no state dir: nothing more will come.
    let report = monitor.follow(args.init_pid, || !state_dir.exists())?;
    report.close_world(runtime, id, start)?;
    Ok(0)
}
