//! Where a world's monitor runs: a thread of the caller that owns the world,
//! or a process of its own for a caller that exits while the world runs.
//! [`Monitoring`] says which; [`AttachedMonitor`] is the running one, which
//! only [`WorldRun`](crate::WorldRun) starts and stops.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

use super::{ClosedWorld, MonitorError, WorldMonitor};
use crate::error::{Error, Result};
use crate::id::WorldId;
use crate::runtime::Runtime;

/// How a world is monitored.
#[derive(Debug)]
pub enum Monitoring {
    /// Not at all: the world runs untraced, and nothing but whoever waits
    /// for its init learns its exit status.
    Off,
    /// A thread of this process, which must outlive the world
    /// (`substrate-cli run`, `substrate-runtime run` in the foreground, the
    /// shim).
    Thread,
    /// A process of its own, for callers that return while the world runs
    /// (`substrate-runtime create`, as conmon does for podman). The command
    /// must call [`serve_detached`] for the world; it is started in its own
    /// process group (signals for the caller's group are not its business)
    /// and waited for until it says it is subscribed.
    Process(Command),
}

impl Monitoring {
    /// `SUBSTRATE_TRACE=off` runs every world untraced (the anchor of the
    /// tracing benchmarks), whatever the caller asked.
    fn effective(self) -> Monitoring {
        if crate::inject::tracing_enabled() {
            self
        } else {
            Monitoring::Off
        }
    }
}

/// The line a detached monitor prints once it is subscribed to the kernel's
/// events: from then on, nothing the world does is missed.
const READY: &str = "substrate-monitor-ready";

/// A started monitor.
#[derive(Debug)]
pub(crate) enum AttachedMonitor {
    Off,
    Thread {
        /// Dropped to make the monitor stop following (see
        /// [`WorldMonitor::stop_on`]).
        stop: UnixStream,
        thread: JoinHandle<Result<ClosedWorld, MonitorError>>,
    },
    Process(Child),
}

impl AttachedMonitor {
    /// Subscribes a monitor to the world `id`, whose init (host pid
    /// `init_pid`) is waiting for `start`: it sees every fork and exec.
    pub(crate) fn start(
        runtime: &Runtime,
        id: &WorldId,
        init_pid: i32,
        monitoring: Monitoring,
    ) -> Result<AttachedMonitor> {
        let failed = |source: MonitorError| Error::Monitor {
            id: id.to_string(),
            source: Box::new(source),
        };
        match monitoring.effective() {
            Monitoring::Off => Ok(AttachedMonitor::Off),
            Monitoring::Thread => {
                let (stop, stopped) =
                    UnixStream::pair().map_err(|e| failed(MonitorError::Setup(e)))?;
                let monitor = WorldMonitor::subscribe(runtime.store(), id, init_pid)
                    .map_err(failed)?
                    .stop_on(stopped);
                let (runtime, world) = (runtime.clone(), id.clone());
                let thread = std::thread::Builder::new()
                    .name("world-monitor".into())
                    .spawn(move || {
                        monitor
                            .follow(init_pid, || false)?
                            .close_world(&runtime, &world)
                    })
                    .map_err(|e| failed(MonitorError::Setup(e)))?;
                Ok(AttachedMonitor::Thread { stop, thread })
            }
            Monitoring::Process(mut command) => {
                let mut child = command
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .process_group(0)
                    .spawn()
                    .map_err(|e| failed(MonitorError::Spawn(e)))?;
                let mut line = String::new();
                let read =
                    BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line);
                if read.is_ok() && line.trim() == READY {
                    return Ok(AttachedMonitor::Process(child));
                }
                let _ = child.kill();
                let status = child.wait();
                Err(failed(MonitorError::NotReady(match (read, status) {
                    (Err(e), _) => format!("reading its ready line: {e}"),
                    (Ok(_), Ok(status)) => format!("it exited ({status}) before it was ready"),
                    (Ok(_), Err(e)) => format!("waiting for it: {e}"),
                })))
            }
        }
    }

    /// Stops following once the world is gone and returns what the monitor
    /// wrote last (`None` when there is no in-process monitor: a detached
    /// one closes the world on its own, when it sees it deleted).
    pub(crate) fn stop(self, id: &WorldId) -> Result<Option<ClosedWorld>> {
        match self {
            AttachedMonitor::Off | AttachedMonitor::Process(_) => Ok(None),
            AttachedMonitor::Thread { stop, thread } => {
                drop(stop);
                let closed = thread.join().map_err(|_| Error::Monitor {
                    id: id.to_string(),
                    source: Box::new(MonitorError::Panicked),
                })?;
                closed.map(Some).map_err(|source| Error::Monitor {
                    id: id.to_string(),
                    source: Box::new(source),
                })
            }
        }
    }

    /// Ends the monitor of a world being thrown away: a detached one is
    /// killed and reaped (it would otherwise write into a record that is
    /// about to be removed), a thread is stopped and joined.
    pub(crate) fn abandon(self, id: &WorldId) -> Result<()> {
        match self {
            AttachedMonitor::Process(mut child) => {
                let _ = child.kill();
                child.wait().map(|_| ()).map_err(|e| Error::Monitor {
                    id: id.to_string(),
                    source: Box::new(MonitorError::Spawn(e)),
                })
            }
            other => other.stop(id).map(|_| ()),
        }
    }
}

/// The body of a detached monitor (`substrate-runtime monitor ID`):
/// subscribes to the world's events, says so on stdout, follows the world
/// until its last process has exited (or its state is deleted), then writes
/// the init's exit status, the fs diff and the world span.
pub fn serve_detached(runtime: &Runtime, id: &str) -> Result<ClosedWorld> {
    let world = runtime.world(id)?;
    let id = world.id();
    let failed = |source: MonitorError| Error::Monitor {
        id: id.to_string(),
        source: Box::new(source),
    };
    let init_pid = world.pid().ok_or_else(|| failed(MonitorError::NoInit))?;
    let monitor = WorldMonitor::subscribe(runtime.store(), id, init_pid).map_err(failed)?;
    let ready = || -> io::Result<()> {
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "{READY}")?;
        stdout.flush()
    };
    ready().map_err(|e| failed(MonitorError::Setup(e)))?;
    let state_dir = runtime.world_dir(id);
    // A world deleted while the monitor waits (its cgroup killed with
    // events lost) has no state dir: nothing more will come.
    monitor
        .follow(init_pid, || !state_dir.exists())
        .and_then(|report| report.close_world(runtime, id))
        .map_err(failed)
}
