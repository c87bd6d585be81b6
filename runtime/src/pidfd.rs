//! Waiting for a process that is not our child, with pidfd_open(2).
//!
//! A pidfd names one process for good (no pid-reuse race) and polls readable
//! once that process has exited, whoever its parent is.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

pub(crate) struct PidFd(OwnedFd);

impl PidFd {
    pub(crate) fn open(pid: Pid) -> io::Result<Self> {
        // SAFETY: pidfd_open takes a pid and flags (0) and returns a new fd
        // or -1; it touches no memory of ours.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this fd and nothing else owns it.
        Ok(PidFd(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }

    /// Signals the process; an error (ESRCH) once it has been reaped, never
    /// a process that reused its pid.
    pub(crate) fn send_signal(&self, signal: Signal) -> io::Result<()> {
        // SAFETY: pidfd_send_signal(fd, sig, info = NULL, flags = 0) reads no
        // memory of ours when info is NULL.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal as i32,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit; true if it did.
    pub(crate) fn wait_exited(&self, timeout: Duration) -> bool {
        let timeout = PollTimeout::try_from(timeout).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(self.0.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, timeout), Ok(n) if n > 0)
    }
}
