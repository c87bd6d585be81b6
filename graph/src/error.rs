//! The graph's errors: what went wrong, with the dir, world, file or span
//! it concerns.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("graph store at {}: {source}", dir.display())]
    Store {
        dir: PathBuf,
        #[source]
        source: indradb::Error,
    },
    #[error(
        "the graph at {} is empty: nothing was ingested yet (`substrate-cli graph ingest` \
         ingests every recorded world)",
        dir.display()
    )]
    Empty { dir: PathBuf },
    #[error(
        "the graph at {} is busy: another ingest holds {} (waited {waited_s} s); \
         try again when it has finished",
        dir.display(),
        lock.display()
    )]
    Busy {
        dir: PathBuf,
        lock: PathBuf,
        waited_s: u64,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid world id {id:?}: {reason}")]
    BadWorldId { id: String, reason: &'static str },
    #[error(
        "world {world:?} has no trace at {} (see `substrate-cli ps`)",
        path.display()
    )]
    NoTrace { world: String, path: PathBuf },
    #[error(
        "world {world:?} is not in the graph (ingest it: `substrate-cli graph ingest {world}`)"
    )]
    UnknownWorld { world: String },
    #[error(
        "no process span {span} in the graph{} (a span id from `substrate-cli trace --json`; \
         ingest its world first)",
        world.as_ref().map(|w| format!(" of world {w:?}")).unwrap_or_default()
    )]
    UnknownSpan { span: String, world: Option<String> },
    #[error("{what:?} is neither a world in the graph nor a span id")]
    NotWorldOrSpan { what: String },
    #[error("cannot render SVG: `dot` (Graphviz; Debian: apt-get install graphviz) {reason}")]
    Graphviz { reason: String },
    #[error("stored value of {what} is not what this version writes: {reason}")]
    Corrupt { what: String, reason: String },
    /// A batch holding lines of several worlds failed to be written: the
    /// error went to the first of them (`world`).
    #[error("not written: the write it shared with world {world:?} failed: {reason}")]
    SharedWrite { world: String, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
