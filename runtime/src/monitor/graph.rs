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

use crate::id::WorldId;
use crate::store::WorldStore;

/// The graph's binary.
pub const BINARY: &str = "substrate-graph";

/// Its log in a world's dir.
pub const LOG_FILE: &str = "graph.log";

/// `off` turns the ingest at a world's end off.
pub const ENV: &str = "SUBSTRATE_GRAPH";

/// `substrate-graph` beside this executable, if installed.
fn binary() -> Option<std::path::PathBuf> {
    let path = super::companion::beside_this_executable(BINARY);
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
    let args = [
        "--state-dir".as_ref(),
        store.state_dir().as_os_str(),
        "ingest".as_ref(),
        "--".as_ref(),
        id.as_str().as_ref(),
    ];
    let log = store.world_dir(id).join(LOG_FILE);
    if let Err(e) = super::companion::start_detached(&graph, args, &log, "graph-reaper") {
        tracing::warn!("world {id}: not ingested into the graph: {e}");
    }
}
