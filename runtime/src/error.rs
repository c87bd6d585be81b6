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
    #[error("network: {what}: {source}")]
    Network {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
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

    /// The egress policy a bundle's annotations ask for, refused by the
    /// node's rule (see `world/policy.rs`).
    #[error("bundle {}: egress policy", path.display())]
    EgressPolicy {
        path: PathBuf,
        #[source]
        source: Box<crate::world::BundlePolicyError>,
    },

    /// The policy's `filesystem` section, which cannot be enforced on the
    /// world's rootfs (see `world/filesystem.rs`).
    #[error("world {id:?}: its policy's filesystem section cannot be enforced")]
    FilesystemPolicy {
        id: String,
        #[source]
        source: Box<crate::world::filesystem::FilesystemPolicyError>,
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
        source: substrate_fsdiff::FsDiffError,
    },

    #[error("world {id:?}: monitor")]
    Monitor {
        id: String,
        #[source]
        source: Box<crate::monitor::MonitorError>,
    },

    #[error("cannot wait for the init of world {id:?}")]
    Wait {
        id: String,
        #[source]
        source: std::io::Error,
    },

    /// The world ran and its init exited with `exit`, but what comes after
    /// (the fs diff, the record, deleting the container) failed.
    #[error("world {id:?} exited ({}) but was not finished", exit.shell_status())]
    Unfinished {
        id: String,
        exit: substrate_trace::ExitStatus,
        #[source]
        source: Box<Error>,
    },

    /// libcontainer clones from the calling thread and runs Rust code in the
    /// child: with other threads alive, one may hold a lock (the
    /// allocator's) that the child then waits on forever.
    #[error("cannot {operation} from a process with {threads} threads: world processes are cloned only from a single-threaded process (see the shim's helper)")]
    Threaded {
        operation: &'static str,
        threads: usize,
    },

    /// A fail point set in `FAILPOINTS` (debug builds only: the tests' way
    /// to fail each step of a world's life).
    #[error("injected failure at {0}")]
    Injected(&'static str),

    /// A primary failure whose cleanup failed as well; both are kept, each
    /// with its causes.
    #[error(
        "{}; cleaning up after it also failed: {}",
        one_line(.primary.as_ref()),
        one_line(.cleanup.as_ref())
    )]
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
        id: impl std::fmt::Display,
        operation: &'static str,
        source: LibcontainerError,
    ) -> Self {
        Error::Libcontainer {
            id: id.to_string(),
            operation,
            source: Box::new(source),
        }
    }

    pub(crate) fn filesystem_policy(
        id: impl std::fmt::Display,
        source: crate::world::filesystem::FilesystemPolicyError,
    ) -> Self {
        Error::FilesystemPolicy {
            id: id.to_string(),
            source: Box::new(source),
        }
    }

    /// `primary`, with the failure of the cleanup that followed it.
    pub(crate) fn with_cleanup(primary: Error, cleanup: Error) -> Self {
        Error::WithCleanup {
            primary: Box::new(primary),
            cleanup: Box::new(cleanup),
        }
    }

    /// Whether the error means "there is no such container", which runc's
    /// callers (containerd, podman) match on to treat a delete as done.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}

/// `Err(Error::Injected(name))` when the fail point `name` is set (see
/// [`crate::fail_points`]); always `Ok` in release builds.
pub(crate) fn fail_point(name: &'static str) -> Result<()> {
    #[cfg(debug_assertions)]
    fail::fail_point!(name, |_| Err(Error::Injected(name)));
    #[cfg(not(debug_assertions))]
    let _ = name;
    Ok(())
}

/// What kind of failure an [`Error`] is, for callers that answer in codes
/// (the shim's ttrpc status, the agent API's HTTP status): one mapping here,
/// one at each RPC boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No such world.
    NotFound,
    /// A world of that id exists already.
    AlreadyExists,
    /// What the caller gave is wrong: an id, a bundle, a signal, a file.
    InvalidInput,
    /// The world is not in a state that allows the operation.
    FailedPrecondition,
    /// Anything else: the host, the kernel, libcontainer.
    Other,
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } | Error::NoRecord { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } | Error::RecordExists { .. } => ErrorKind::AlreadyExists,
            Error::InvalidId { .. }
            | Error::Bundle { .. }
            | Error::MalformedConfig { .. }
            | Error::UnsupportedConfig { .. }
            | Error::EgressPolicy { .. }
            | Error::FilesystemPolicy { .. }
            | Error::InvalidSignal(_)
            | Error::ProcessFile { .. }
            | Error::ResourcesFile { .. } => ErrorKind::InvalidInput,
            Error::IncorrectStatus { .. } | Error::WorldLive { .. } => {
                ErrorKind::FailedPrecondition
            }
            Error::WithCleanup { primary, .. } => primary.kind(),
            _ => ErrorKind::Other,
        }
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
