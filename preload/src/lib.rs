//! `libsubstrate_preload.so`: the tracer inside every world.
//!
//! Loaded into each dynamically linked glibc program of a world (through
//! `/etc/ld.so.preload` and `LD_PRELOAD`), it hands the world's monitor one
//! ring per program image (see `substrate_ring`) and writes a record into it
//! for every traced file, socket and name-lookup call. The exec itself is
//! announced from the constructor of the new image, so `posix_spawn`,
//! `system`, `popen` and every `exec*` variant are covered whatever libc
//! does inside them.
//!
//! Rules every hook follows, because it runs inside arbitrary programs:
//! - errno after a hook is what the real call left;
//! - no allocation and no lock anywhere (a hook may run in a signal handler,
//!   a vfork child or a child forked from a multithreaded parent): records go
//!   into the ring with atomics, everything else is a raw system call;
//! - our own calls never go through a symbol we interpose (no `connect`,
//!   `open`... from here: raw syscalls instead);
//! - if anything fails (no monitor, not in a world, not glibc) the library
//!   turns itself off for the process and every hook is a plain call.

// Unit tests run on the host with std and the test harness; the library
// itself stays no_std.
#![cfg_attr(not(test), no_std)]

mod hooks;
mod sys;
mod tracer;

// The C glue (glue.c, compiled by build.rs): the constructor that calls
// `tracer::substrate_init`. Linked whole, since nothing in Rust refers to
// it. Not linked into the unit-test binary: tests must never announce
// themselves to a monitor or trace their own harness.
#[cfg_attr(
    not(test),
    link(
        name = "substrate_preload_glue",
        kind = "static",
        modifiers = "+whole-archive"
    )
)]
extern "C" {}

#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // Never reached by design (no indexing that can fail on untrusted
    // lengths); if it were, killing the program is not ours to do lightly,
    // but unwinding through C frames is undefined.
    // SAFETY: abort has no preconditions.
    unsafe { libc::abort() }
}

/// The precompiled `core` refers to the unwinding personality even with
/// panic = "abort"; nothing here unwinds, so it is never called. Defined so
/// that the library has no undefined strong symbol beyond libc's. (A test
/// binary has std's.)
#[cfg(not(test))]
#[no_mangle]
extern "C" fn rust_eh_personality() {}
