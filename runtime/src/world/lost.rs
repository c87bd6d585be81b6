//! `end_unmonitored`: ends a world whose monitor died before it finished
//! the world's trace (its process was SIGKILLed, OOM-killed, crashed). A
//! world must not run on untraced, and its trace must not stop in silence:
//! whoever notices first (the next `substrate-cli` command that looks at
//! the world, a foreground run's guardian) kills what still runs, writes a
//! `loss` span saying the monitor was lost, finishes the record (the fs
//! diff, the end) and writes the world span, as the monitor would have,
//! chained to the lost monitor's lines, with the chain's end in the record.

use std::io::{BufReader, ErrorKind};
use std::time::Duration;

use nix::sys::signal::Signal;
use substrate_trace::{read_spans, Timestamp};

use crate::error::{Error, Result};
use crate::foreground::Process;
use crate::id::WorldId;
use crate::monitor::{MonitorError, TraceFile, TraceLease};
use crate::runtime::Runtime;
use crate::state::WorldStatus;

/// How long the init may take to go once SIGKILLed.
const KILL_WAIT: Duration = Duration::from_secs(10);

impl Runtime {
    /// If world `id` (of this runtime root and store) had a monitor that
    /// died before finishing its trace, ends the world for it; returns
    /// whether it did (not while the monitor runs, after it finished, nor
    /// for a world that never had one: an untraced world). The container
    /// itself stays, stopped, for its owner to delete, as after any other
    /// kill.
    pub fn end_unmonitored(&self, id: &WorldId) -> Result<bool> {
        let monitor_error = |source: MonitorError| Error::Monitor {
            id: id.to_string(),
            source: Box::new(source),
        };
        let world_dir = self.store().world_dir(id);
        let lease = match TraceLease::of_lost_monitor(&world_dir) {
            Ok(Some(lease)) => lease,
            Ok(None) => return Ok(false),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(monitor_error(MonitorError::Lease {
                    dir: world_dir,
                    source,
                }))
            }
        };
        let mut world = match self.world(id.as_str()) {
            Ok(world) => Some(world),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e),
        };
        if let Some(world) = &mut world {
            stop_untraced(world)?;
        }
        let trace_path = self.store().trace_path(id);
        // What the trace holds, for the world span's counts.
        let counts = span_counts(&trace_path);
        let mut trace = TraceFile::open(&trace_path, id.as_str(), lease).map_err(monitor_error)?;
        trace
            .write_loss(serde_json::json!({
                "source": "monitor",
                "events": "unknown",
                "reason": "monitor lost",
            }))
            .map_err(monitor_error)?;
        let record = match &world {
            Some(world) => world.finish(None)?,
            None => self.store().record(id).ok(),
        };
        let start = record
            .as_ref()
            .map(|r| r.started_at.unwrap_or(r.created_at))
            .unwrap_or_else(Timestamp::now);
        trace.add_counts(counts);
        trace
            .write_world_span(start, None, record.as_ref().and_then(|r| r.diff.as_ref()))
            .map_err(monitor_error)?;
        // The lost monitor's lines and ours are one chain (TraceFile::open
        // went on from its last line): its end goes into the record.
        if record.is_some() {
            let end = trace.chain_end().map_err(monitor_error)?;
            self.store().add_trace_chain(id, end)?;
        }
        trace.close().map_err(monitor_error)?;
        if record.is_some() {
            crate::monitor::companion::world_ended(self.store(), id);
        }
        Ok(true)
    }
}

/// Kills every process of a world that may still run, and waits for its
/// init to be gone.
fn stop_untraced(world: &mut super::World) -> Result<()> {
    let pid = match world.status() {
        WorldStatus::Created | WorldStatus::Running | WorldStatus::Paused => world.pid(),
        WorldStatus::Stopped | WorldStatus::Creating => None,
    };
    let Some(pid) = pid else {
        return Ok(());
    };
    let init = Process::open(pid).map_err(|source| Error::Wait {
        id: world.id().to_string(),
        source,
    })?;
    // An init that ended meanwhile leaves a world that can't be killed:
    // not an error.
    if let Err(e) = world.kill(Signal::SIGKILL, true) {
        if !init.exited_within(Some(Duration::ZERO)).unwrap_or(false) {
            return Err(e);
        }
    }
    match init.exited_within(Some(KILL_WAIT)) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::Wait {
            id: world.id().to_string(),
            source: std::io::Error::new(
                ErrorKind::TimedOut,
                format!(
                    "its init (pid {pid}) did not exit within {} s of SIGKILL",
                    KILL_WAIT.as_secs()
                ),
            ),
        }),
        Err(source) => Err(Error::Wait {
            id: world.id().to_string(),
            source,
        }),
    }
}

/// The spans of the trace at `path` by kind (what a monitor counts as it
/// writes); a trace that can't be read counts nothing.
fn span_counts(path: &std::path::Path) -> std::collections::BTreeMap<String, u64> {
    let mut counts = std::collections::BTreeMap::new();
    let Ok(file) = std::fs::File::open(path) else {
        return counts;
    };
    for span in read_spans(BufReader::new(file)).flatten() {
        *counts.entry(span.kind().as_str().to_owned()).or_default() += 1;
    }
    counts
}
