//! Substrate's runtime library: the lifecycle of **worlds**, the recorded and
//! governed containers Substrate runs, on youki's `libcontainer`.
//!
//! The `substrate-runtime` binary (runc's CLI), the containerd shim and
//! `substrate-cli` all drive worlds through this API in-process:
//!
//! ```no_run
//! use substrate_runtime::{CreateOptions, Runtime};
//! # fn main() -> substrate_runtime::Result<()> {
//! let runtime = Runtime::new("/run/substrate");
//! let mut world = runtime.create("job-1", "/srv/bundle".as_ref(), CreateOptions {
//!     detach: true,
//!     ..Default::default()
//! })?;
//! world.start()?;
//! # Ok(()) }
//! ```

mod bundle;
mod error;
pub mod foreground;
pub mod fsdiff;
pub mod inject;
pub mod monitor;
mod overlay;
mod pidfd;
pub mod procevents;
pub mod record;
mod runtime;
mod state;
mod store;
mod world;

pub use bundle::Bundle;
pub use error::{one_line, Error, Result};
pub use overlay::LOWER_ANNOTATION;
pub use record::{WorldExit, WorldRecord, WorldSource};
pub use runtime::{validate_id, Runtime, DEFAULT_ROOT};
pub use state::{WorldState, WorldStatus, OCI_VERSION};
pub use store::{WorldStore, DEFAULT_STATE_DIR};
pub use world::{CreateOptions, ExecOptions, Stdio, World};

pub use world::kill::parse_signal;
pub use world::update::load_resources;

/// Re-exported so callers name signals and resources with the same types.
pub use libcgroups::stats::Stats;
pub use nix::sys::signal::Signal;
pub use oci_spec::runtime::LinuxResources;
