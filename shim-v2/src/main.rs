//! `containerd-shim-substrate-v1`: containerd's Task API (v2, ttrpc) over
//! Substrate's runtime library, in-process. Every container is a world:
//! overlay diff through containerd's snapshot upperdir, the preload tracer,
//! the world monitor as a thread of the shim, the world record.
//!
//! containerd runs `containerd-shim-substrate-v1 ... start` (which spawns
//! the long-lived shim server and prints its address) and `... delete` (the
//! cleanup after a shim died). The server also starts a single-threaded
//! helper, the zygote, for the calls that clone container processes: the
//! server is multithreaded (ttrpc), and a process cloned from it may only
//! run async-signal-safe code, which libcontainer's setup is not.

mod metrics;
mod publisher;
mod service;
mod shim;
mod stdio;
mod zygote;

fn main() {
    if std::env::args().nth(1).as_deref() == Some(zygote::ARG) {
        std::process::exit(zygote::serve());
    }
    containerd_shim::run::<shim::SubstrateShim>(shim::RUNTIME_ID, None);
}
