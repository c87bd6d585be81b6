//! The span graph's ingest as a world ends: `substrate-graph ingest WORLD`
//! (the `graph/` crate's binary), started detached if it is installed
//! beside this executable. Nothing that links the runtime pays for RocksDB;
//! a node without the binary simply has no graph (`substrate-cli graph
//! ingest` fills it later).
//!
//! The world's end does not wait for it: it reads the world's closed trace
//! from the store, its own process group, stdin closed, what it says
//! appended to the world's `graph.log`. Neither a failure to start it nor
//! its own failure fails the world: the trace stays in the store, and the
//! graph is an index of it (`substrate-cli graph rebuild` makes it again).
//! `SUBSTRATE_GRAPH=off` turns it off.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::id::WorldId;
use crate::store::WorldStore;

/// The graph's binary.
pub const BINARY: &str = "substrate-graph";

/// Its log in a world's dir.
pub const LOG_FILE: &str = "graph.log";

/// `off` turns the ingest at a world's end off.
pub const ENV: &str = "SUBSTRATE_GRAPH";

/// `substrate-graph` beside this executable, if installed.
fn binary() -> Option<PathBuf> {
    let path = std::env::current_exe().ok()?.parent()?.join(BINARY);
    path.is_file().then_some(path)
}

/// Starts the ingest of world `id`, whose trace was just closed. Never
/// fails the world: what goes wrong is logged.
pub(crate) fn world_ended(store: &WorldStore, id: &WorldId) {
    if std::env::var_os(ENV).is_some_and(|v| v == "off") {
        return;
    }
    let Some(graph) = binary() else {
        tracing::debug!("world {id}: not ingested into the graph: no {BINARY} installed");
        return;
    };
    if let Err(e) = start(store, id, &graph) {
        tracing::warn!("world {id}: not ingested into the graph: {e}");
    }
}

fn start(store: &WorldStore, id: &WorldId, graph: &PathBuf) -> Result<(), String> {
    let log_path = store.world_dir(id).join(LOG_FILE);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let log_too = log
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log_path.display()))?;
    let mut child = Command::new(graph)
        .arg("--state-dir")
        .arg(store.state_dir())
        .arg("ingest")
        .arg("--")
        .arg(id.as_str())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_too)
        // Signals for the caller's group (a ^C after `run` returned) are
        // not its business.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", graph.display()))?;
    // Reaped by a thread of its own where this process outlives it (the
    // shim); a process that exits first leaves it to init.
    let _ = std::thread::Builder::new()
        .name("graph-reaper".into())
        .spawn(move || child.wait());
    Ok(())
}
