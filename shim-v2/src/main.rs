//! `containerd-shim-substrate-v1`: containerd's Task API (v2, ttrpc) over
//! Substrate's runtime library, in-process. Every container is a world:
//! overlay diff through containerd's snapshot upperdir, the preload tracer,
//! the world monitor as a thread of the shim, the world record.
//!
//! containerd runs `containerd-shim-substrate-v1 ... start` (which spawns
//! the long-lived shim server and prints its address) and `... delete` (the
//! cleanup after a shim died). The calls that clone container processes
//! run in a one-shot single-threaded helper (`helper`): the server is
//! multithreaded (ttrpc), and a process cloned from it may only run
//! async-signal-safe code, which libcontainer's setup is not.

mod helper;
mod metrics;
mod oom;
mod publisher;
mod service;
mod shim;
mod stdio;

fn main() {
    let _fail_points = substrate_runtime::fail_points();
    if std::env::args().nth(1).as_deref() == Some(helper::ARG) {
        std::process::exit(helper::serve());
    }
    containerd_shim::run::<shim::SubstrateShim>(shim::RUNTIME_ID, None);
}
