//! Kernel event sources for a world's monitor: what the kernel reports about
//! a world's processes, whatever those processes do to hide.
//!
//! - [`bpf`]: eBPF programs that read every exec (argv, exe, cwd) and
//!   socket call of a world's processes in the kernel, as they happen.
//! - [`files`]: what a world's programs do to its files (create, write,
//!   delete, rename, chmod, exec), from fanotify on the world's own upper
//!   filesystem, with overlayfs's internals taken out.
//! - [`proc_connector`]: every fork, exec and exit on the machine (netlink
//!   `NETLINK_CONNECTOR`), and the [`ProcessTree`](proc_connector::ProcessTree)
//!   that keeps the ones descending from a world's init.
//!
//! Records from the kernel are untrusted bytes until their length and kind
//! are checked (see `proc_connector::wire`).

pub mod bpf;
pub mod files;
pub mod gate;
pub mod proc_connector;

#[cfg(test)]
mod proptests;
