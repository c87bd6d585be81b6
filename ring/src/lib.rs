//! What the preload tracer inside a world and the monitor outside it share.
//!
//! A traced process owns one [`ring`] (a sealed memfd of fixed-size slots)
//! per program image. It writes one record per traced call into it without
//! a system call; the monitor maps the same memfd and drains it. Because the
//! monitor holds the mapping, what a process recorded survives its SIGKILL.
//!
//! The process hands its ring over with a [`hello`] message on the world's
//! span socket (`SOCK_SEQPACKET`, the memfd as `SCM_RIGHTS`): the monitor
//! learns who sent it from `SO_PEERCRED`, never from the message.
//!
//! Everything here is `no_std` and allocation-free: the producer side runs
//! inside arbitrary programs, in vfork children and signal handlers. The
//! consumer side treats every byte as hostile: a world's processes can write
//! anything into their rings and their messages.

#![cfg_attr(not(test), no_std)]

pub mod hello;
#[cfg(test)]
mod proptests;
pub mod ring;

/// Where Substrate's files appear inside every world (a read-only bind
/// mount of the world's inject dir).
pub const WORLD_DIR: &str = "/.substrate";
/// The world's span socket, as a world's processes see it.
pub const SOCKET_PATH: &str = "/.substrate/span.sock";
/// The socket's file name in the inject dir.
pub const SOCKET_NAME: &str = "span.sock";
/// The preload library's file name, in the inject dir and inside worlds.
pub const LIBRARY_NAME: &str = "libsubstrate_preload.so";
/// The preload library as the world's processes load it.
pub const LIBRARY_PATH: &str = "/.substrate/libsubstrate_preload.so";
