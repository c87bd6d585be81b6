//! Substrate's runtime library: the lifecycle of **worlds**, the recorded and
//! governed containers Substrate runs, on youki's `libcontainer`.
//!
//! The `substrate-runtime` binary (runc's CLI), the containerd shim and
//! `substrate-cli` all drive worlds through this API in-process, and run a
//! world through one sequence ([`WorldRun`]): created, monitored, started,
//! waited for, finished, deleted — with nothing left behind when a step
//! fails.
//!
//! ```no_run
//! use substrate_runtime::foreground::SignalForwarder;
//! use substrate_runtime::monitor::Monitoring;
//! use substrate_runtime::{AfterExit, CreateOptions, RunOptions, Runtime};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = Runtime::new("/run/substrate");
//! let finished = runtime.run("job-1", "/srv/bundle".as_ref(), RunOptions {
//!     create: CreateOptions::default(),
//!     monitoring: Monitoring::Thread,
//!     signals: SignalForwarder::install()?,
//!     after_exit: AfterExit::Delete,
//! })?;
//! println!("{:?}", finished.exit);
//! # Ok(()) }
//! ```
//!
//! World processes are cloned from the calling thread: `create` and `exec`
//! refuse to run in a process with other threads (the shim runs them in a
//! single-threaded helper process).

mod bundle;
mod error;
pub mod foreground;
mod id;
pub mod inject;
pub mod monitor;
mod overlay;
#[cfg(test)]
mod proptests;
pub mod record;
mod runtime;
pub mod settings;
mod state;
mod store;
mod upper_fs;
pub mod verify;
mod world;

pub use bundle::Bundle;
pub use error::{one_line, Error, ErrorKind, Result};
pub use id::WorldId;
pub use record::{ExitStatus, WorldEgress, WorldNetwork, WorldRecord, WorldSource};
pub use runtime::{Runtime, DEFAULT_ROOT};

/// Fail points (`FAILPOINTS=world.start=return`) for the tests, which fail
/// each step of a world's life through the real binaries; a binary holds the
/// guard for its lifetime. Debug builds only (what `cargo test` runs): a
/// release build ignores `FAILPOINTS` and has no fail point in its code.
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
pub use state::{WorldState, WorldStatus, OCI_VERSION};
pub use store::{WorldStore, DEFAULT_STATE_DIR};
pub use verify::{Problem, TraceState, Verification};
pub use world::{
    AfterExit, BundlePolicyError, CreateOptions, ExecOptions, Finished, Layering, Limit, LimitHit,
    NodeConfig, RunOptions, Stdio, TraceSummary, World, WorldRun, CONFIG_DIR_ENV,
    DEFAULT_CONFIG_DIR, INLINE_ANNOTATION, POLICY_ANNOTATION,
};

pub use world::kill::parse_signal;
pub use world::policy::unenforced_sections;
pub use world::update::load_resources;

/// Re-exported so callers name signals and resources with the same types.
pub use libcgroups::stats::Stats;
pub use nix::sys::signal::Signal;
pub use oci_spec::runtime::LinuxResources;
