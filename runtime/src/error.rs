//! The runtime library's one error type.
//!
//! Every variant carries what a user needs to fix the problem (which id, which
//! file, which status), so the binary can print `{:#}` and be done.

use std::path::PathBuf;

use libcontainer::error::LibcontainerError;

use crate::state::WorldStatus;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId { id: String, reason: &'static str },

    #[error("container {id:?} does not exist")]
    NotFound { id: String },

    #[error("container {id:?} already exists")]
    AlreadyExists { id: String },

    #[error("bundle {}: {reason}", path.display())]
    Bundle { path: PathBuf, reason: String },

    #[error("{}: malformed config.json: {source}", path.display())]
    MalformedConfig {
        path: PathBuf,
        source: serde_json::Error,
    },

    #[error("{}: unsupported config: {reason}", path.display())]
    UnsupportedConfig { path: PathBuf, reason: String },

    #[error("invalid signal {0:?}: expected a name (TERM, SIGKILL) or a number (1-31)")]
    InvalidSignal(String),

    #[error("container {id:?} is {status}: cannot {operation}")]
    IncorrectStatus {
        id: String,
        status: WorldStatus,
        operation: &'static str,
    },

    #[error("process file {}: {reason}", path.display())]
    ProcessFile { path: PathBuf, reason: String },

    #[error("resources file {}: {reason}", path.display())]
    ResourcesFile { path: PathBuf, reason: String },

    #[error("cannot {operation} container {id:?}")]
    Libcontainer {
        id: String,
        operation: &'static str,
        // Boxed: libcontainer's error is large and every Result carries it.
        #[source]
        source: Box<LibcontainerError>,
    },

    #[error("cannot {operation} container {id:?}: cgroup")]
    Cgroup {
        id: String,
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("{context}: {}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("world record {}: {reason}", path.display())]
    Record { path: PathBuf, reason: String },

    #[error("world {id:?} has no record (unknown world)")]
    NoRecord { id: String },

    #[error("world {id:?} already has a record: remove it first (substrate-cli rm {id})")]
    RecordExists { id: String },

    #[error("world {id:?} is still {status}: stop it first")]
    WorldLive { id: String, status: WorldStatus },

    #[error("cannot set up the rootfs overlay at {}: {reason}", target.display())]
    Overlay { target: PathBuf, reason: String },

    #[error("cannot inject the preload tracer ({}): {reason}", path.display())]
    Preload { path: PathBuf, reason: String },

    #[error("cannot compute the fs diff of world {id:?}")]
    Diff {
        id: String,
        #[source]
        source: crate::fsdiff::FsDiffError,
    },

    /// A primary failure whose cleanup failed as well; both are kept.
    #[error("{primary}; cleaning up after it also failed: {cleanup}")]
    WithCleanup {
        primary: Box<Error>,
        cleanup: Box<Error>,
    },
}

impl Error {
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            context,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn libcontainer(
        id: &str,
        operation: &'static str,
        source: LibcontainerError,
    ) -> Self {
        Error::Libcontainer {
            id: id.to_owned(),
            operation,
            source: Box::new(source),
        }
    }

    /// Whether the error means "there is no such container", which runc's
    /// callers (containerd, podman) match on to treat a delete as done.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

/// An error and its causes on one line (`a: b: c`), dropping a cause whose
/// text the line already holds: libcontainer's messages often quote their
/// source, and a user should read each fact once.
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        let text = cause.to_string();
        if !text.is_empty() && !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
        next = cause.source();
    }
    line
}
