//! Substrate's span graph: every world's trace indexed in IndraDB (over
//! RocksDB), with the queries people ask of what worlds did — a world's
//! process tree, who wrote a path, what a process and its children
//! changed, where worlds connected, and suspicious chains
//! (docs/graph.md).
//!
//! The graph is an index: every fact in it comes from a world's
//! `trace.jsonl` (the durable, hash-chained record), and `rebuild` makes
//! it again from them. This is the only crate that links RocksDB; the
//! runtime starts its binary (`substrate-graph ingest`) when a world ends,
//! and `substrate-cli graph` runs it for the queries.

mod details;
mod detect;
pub mod error;
pub mod ingest;
pub mod model;
pub mod query;
pub mod render;
pub mod store;
pub mod traces;

pub use error::{Error, Result};
pub use ingest::{IngestOptions, IngestReport, IngestState};
pub use store::{Graph, GraphDir, GraphWriter};
pub use traces::Traces;

/// A fail point (`FAILPOINTS=graph.ingest.batch_written=pause`) for the
/// tests, which kill an ingest at it; debug builds only.
pub(crate) fn fail_point(name: &'static str) {
    #[cfg(debug_assertions)]
    fail::fail_point!(name);
    #[cfg(not(debug_assertions))]
    let _ = name;
}

/// Sets up the fail points named in `FAILPOINTS` for a binary's lifetime
/// (debug builds only).
pub fn fail_points() -> FailPoints {
    FailPoints {
        #[cfg(debug_assertions)]
        _scenario: fail::FailScenario::setup(),
    }
}

/// See [`fail_points`].
pub struct FailPoints {
    #[cfg(debug_assertions)]
    _scenario: fail::FailScenario<'static>,
}
