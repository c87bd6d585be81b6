//! A world's loopback interface.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};

use super::World;
use crate::error::{Error, Result};

impl World {
    /// Brings `lo` up in the world's network namespace when it has one of
    /// its own, so that a world without a network still reaches itself on
    /// 127.0.0.1 (as docker's and podman's `--network none` do; a new
    /// network namespace starts with `lo` down). Done from a thread of its
    /// own: entering the namespace moves only that thread.
    pub fn bring_up_loopback(&self) -> Result<()> {
        let Some(pid) = self.pid() else { return Ok(()) };
        let path = format!("/proc/{pid}/ns/net");
        let theirs = File::open(&path).map_err(|e| Error::io("cannot open", &path, e))?;
        let ours = std::fs::metadata("/proc/thread-self/ns/net")
            .map_err(|e| Error::io("cannot stat", "/proc/thread-self/ns/net", e))?;
        let same = theirs.metadata().is_ok_and(|m| {
            std::os::unix::fs::MetadataExt::ino(&m) == std::os::unix::fs::MetadataExt::ino(&ours)
        });
        if same {
            return Ok(());
        }
        std::thread::scope(|s| {
            s.spawn(|| -> std::io::Result<()> {
                setns(theirs.as_fd(), CloneFlags::CLONE_NEWNET)?;
                let sock: OwnedFd = socket(
                    AddressFamily::Inet,
                    SockType::Datagram,
                    SockFlag::SOCK_CLOEXEC,
                    None,
                )?;
                // SAFETY: ifreq is plain data; all-zero is a valid value.
                let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
                for (dst, src) in request.ifr_name.iter_mut().zip(b"lo\0") {
                    *dst = *src as libc::c_char;
                }
                // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq
                // we own, on a socket we own.
                unsafe {
                    if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                    if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &request) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("loopback thread panicked")))
        })
        .map_err(|e| Error::io("cannot bring up lo in", &path, e))
    }
}
