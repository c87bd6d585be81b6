//! Kernel-level process events for a world, from the proc connector.
//!
//! The preload tracer cannot see static binaries or raw syscalls; the kernel's
//! proc connector (netlink `NETLINK_CONNECTOR`, group `CN_IDX_PROC`; see
//! `linux/cn_proc.h`) reports every fork, exec and exit on the machine, and
//! [`ProcessTree`] keeps the ones that descend from a world's init.
//!
//! ```no_run
//! use substrate_sensor::proc_connector::{ProcEvents, ProcessTree, Received};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut events = ProcEvents::subscribe()?; // before the world's init starts
//! let init = std::process::Command::new("/bin/true").spawn()?;
//! let mut tree = ProcessTree::new(init.id() as i32);
//! while !tree.is_empty() {
//!     for item in events.next_events(None)? {
//!         match item {
//!             Received::Event(e) => { tree.apply(&e); }
//!             Received::Lost => tree.note_lost(), // and write a loss record
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Needs root (`CAP_NET_ADMIN`) and the initial network namespace: the
//! connector only broadcasts there.

mod tree;
mod wire;

use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{self, sockopt, MsgFlags, NetlinkAddr};

pub use tree::{ProcessTree, TreeChange};
pub use wire::{mcast_request, parse_datagram, WireError};

/// The receive buffer we ask for. Each event is a 76-byte datagram, but the
/// kernel charges its skb's truesize, about 1 KiB (measured: a 4 KiB request,
/// doubled to 8 KiB, holds 8 events), so 4 MiB, doubled to 8 MiB, holds
/// about 8000 events between two reads.
pub const RECEIVE_BUFFER: usize = 4 << 20;

/// Datagrams read per [`ProcEvents::next_events`] call at most, so that one
/// busy machine cannot keep a caller in the loop for ever.
const MAX_DATAGRAMS_PER_CALL: usize = 1024;

/// One page, as netlink(7) suggests; a proc event datagram is 76 bytes.
const DATAGRAM_BUFFER: usize = 8192;

/// A process event, stamped by the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcEvent {
    /// `ktime_get_ns()` when the event happened: CLOCK_MONOTONIC nanoseconds.
    pub timestamp_ns: u64,
    /// The CPU the event happened on.
    pub cpu: u32,
    pub kind: ProcEventKind,
}

/// What happened. `pid` is the thread id, `tgid` the process id; every event
/// is reported for each thread it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcEventKind {
    /// `child_pid` was created. For a new process `child_pid == child_tgid`;
    /// for a new thread `child_tgid` is its process. `parent_*` is the child's
    /// `real_parent` (for a thread, its process's parent).
    Fork {
        parent_pid: i32,
        parent_tgid: i32,
        child_pid: i32,
        child_tgid: i32,
    },
    /// `execve` succeeded.
    Exec { pid: i32, tgid: i32 },
    /// Real or effective uid changed.
    Uid {
        pid: i32,
        tgid: i32,
        ruid: u32,
        euid: u32,
    },
    /// Real or effective gid changed.
    Gid {
        pid: i32,
        tgid: i32,
        rgid: u32,
        egid: u32,
    },
    /// `setsid`.
    Sid { pid: i32, tgid: i32 },
    /// Attached to (`tracer_*` set) or detached from (zero) a tracer.
    Ptrace {
        pid: i32,
        tgid: i32,
        tracer_pid: i32,
        tracer_tgid: i32,
    },
    /// The thread renamed itself (`prctl(PR_SET_NAME)`, `/proc/*/comm`); the
    /// name is kernel bytes, not necessarily UTF-8.
    Comm { pid: i32, tgid: i32, comm: Vec<u8> },
    /// The thread dumped core.
    Coredump {
        pid: i32,
        tgid: i32,
        parent_pid: i32,
        parent_tgid: i32,
    },
    /// A thread exited. `exit_code` is the raw wait status (`task->exit_code`,
    /// decode with `ExitStatus::from_raw`); `exit_signal` is the signal the
    /// parent gets (`SIGCHLD` for a process, -1 for a thread).
    Exit {
        pid: i32,
        tgid: i32,
        exit_code: i32,
        exit_signal: i32,
        parent_pid: i32,
        parent_tgid: i32,
    },
}

/// One item read from the connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Event(ProcEvent),
    /// The socket overran (`ENOBUFS`): the kernel dropped events, how many it
    /// does not say. It reports the overrun before the events it had queued
    /// (which are older than the dropped ones), so the gap lies somewhere
    /// after this marker, past the events still queued when it was read.
    Lost,
}

/// Failures of the proc connector socket.
#[derive(Debug, thiserror::Error)]
pub enum ProcEventsError {
    #[error("cannot open a NETLINK_CONNECTOR socket (is CONFIG_PROC_EVENTS set?): {0}")]
    Socket(#[source] Errno),
    #[error("cannot set the proc connector socket's receive buffer to {bytes} bytes: {source}")]
    ReceiveBuffer {
        bytes: usize,
        #[source]
        source: Errno,
    },
    #[error("cannot read the proc connector socket's receive buffer size: {0}")]
    ReceiveBufferSize(#[source] Errno),
    #[error(
        "cannot join the proc connector group (run as root, in the initial network namespace): {0}"
    )]
    Bind(#[source] Errno),
    #[error("cannot send PROC_CN_MCAST_LISTEN to the proc connector (needs CAP_NET_ADMIN): {0}")]
    Listen(#[source] Errno),
    #[error("cannot poll the proc connector socket: {0}")]
    Poll(#[source] Errno),
    #[error("cannot read the proc connector socket: {0}")]
    Receive(#[source] Errno),
    /// Recoverable: the datagram was skipped.
    #[error("a {len}-byte proc connector datagram did not fit the {buffer}-byte buffer")]
    Truncated { len: usize, buffer: usize },
    /// Recoverable: the datagram was skipped.
    #[error("a proc connector datagram came from netlink port {port}, not the kernel")]
    NotFromKernel { port: u32 },
    /// Recoverable: the datagram was skipped.
    #[error("garbled {len}-byte proc connector datagram: {source}")]
    Garbled {
        len: usize,
        #[source]
        source: WireError,
    },
}

impl ProcEventsError {
    /// Whether the socket is still good after this error, having skipped one
    /// datagram (the caller should log it and read on).
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            Self::Truncated { .. } | Self::NotFromKernel { .. } | Self::Garbled { .. }
        )
    }
}

/// A subscription to the proc connector: owns the netlink socket.
///
/// Dropping it sends `PROC_CN_MCAST_IGNORE` (the kernel counts listeners and
/// stops building events when none is left) and closes the socket.
#[derive(Debug)]
pub struct ProcEvents {
    fd: OwnedFd,
    buf: Vec<u8>,
    /// An error met after some items were already read in the same call,
    /// returned by the next call so that items and errors keep their order.
    pending: Option<ProcEventsError>,
}

impl ProcEvents {
    /// Subscribes: opens the socket, joins `CN_IDX_PROC`, sends
    /// `PROC_CN_MCAST_LISTEN`. The kernel handles the request synchronously,
    /// so every event after this returns is delivered: subscribe BEFORE
    /// starting the processes to watch.
    pub fn subscribe() -> Result<Self, ProcEventsError> {
        Self::subscribe_with_receive_buffer(RECEIVE_BUFFER)
    }

    /// [`ProcEvents::subscribe`] with a receive buffer of `bytes` (the
    /// kernel doubles it for bookkeeping, see socket(7) `SO_RCVBUF`).
    pub fn subscribe_with_receive_buffer(bytes: usize) -> Result<Self, ProcEventsError> {
        let fd = netlink_connector_socket().map_err(ProcEventsError::Socket)?;
        set_receive_buffer(fd.as_fd(), bytes)?;
        socket::bind(fd.as_raw_fd(), &NetlinkAddr::new(0, libc::CN_IDX_PROC))
            .map_err(ProcEventsError::Bind)?;
        // Made only now: its Drop sends PROC_CN_MCAST_IGNORE, which must
        // follow a LISTEN (older kernels count listeners without checking).
        let this = Self {
            fd,
            buf: vec![0; DATAGRAM_BUFFER],
            pending: None,
        };
        this.send_op(libc::PROC_CN_MCAST_LISTEN)
            .map_err(ProcEventsError::Listen)?;
        Ok(this)
    }

    /// Asks for a receive buffer of `bytes` from now on. SO_RCVBUFFORCE
    /// (CAP_NET_ADMIN) ignores `net.core.rmem_max`; without it, this falls
    /// back to SO_RCVBUF, which the kernel silently caps at rmem_max:
    /// [`ProcEvents::receive_buffer`] says what was granted.
    ///
    /// An overrun already reported stays reported; events dropped since it
    /// happened stay dropped (netlink delivers nothing more to a socket
    /// that overran until its queue has been read empty).
    pub fn set_receive_buffer(&self, bytes: usize) -> Result<(), ProcEventsError> {
        set_receive_buffer(self.fd.as_fd(), bytes)
    }

    /// The receive buffer the kernel granted, in bytes: twice what was
    /// asked (it counts its bookkeeping, see socket(7) `SO_RCVBUF`), or
    /// less when the request fell back to SO_RCVBUF and rmem_max capped it.
    /// An event takes about 1 KiB of it (see [`RECEIVE_BUFFER`]).
    pub fn receive_buffer(&self) -> Result<usize, ProcEventsError> {
        socket::getsockopt(&self.fd, sockopt::RcvBuf).map_err(ProcEventsError::ReceiveBufferSize)
    }

    /// Waits up to `timeout` (`None`: for ever) for events, then returns what
    /// is queued (up to 1024 datagrams). An empty list means the timeout
    /// passed, or only non-process messages arrived.
    ///
    /// Overruns come back in the list as [`Received::Lost`], never silently.
    /// A datagram that is truncated, garbled or not from the kernel is an
    /// error for which [`ProcEventsError::is_recoverable`] holds: call again.
    pub fn next_events(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Vec<Received>, ProcEventsError> {
        if let Some(error) = self.pending.take() {
            return Err(error);
        }
        if !self.wait_readable(timeout)? {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for _ in 0..MAX_DATAGRAMS_PER_CALL {
            match self.receive_one() {
                Ok(Some(items)) => out.extend(items),
                Ok(None) => break,
                Err(error) if out.is_empty() => return Err(error),
                Err(error) => {
                    self.pending = Some(error);
                    break;
                }
            }
        }
        Ok(out)
    }

    /// `true` once the socket is readable (or has an error to report).
    fn wait_readable(&self, timeout: Option<Duration>) -> Result<bool, ProcEventsError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let wait = match deadline {
                None => PollTimeout::NONE,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    // Round up so a sub-millisecond wait is not a busy loop.
                    let ms = left.as_nanos().div_ceil(1_000_000);
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
                }
            };
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, wait) {
                Ok(0) => return Ok(false),
                Ok(_) => return Ok(true),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(ProcEventsError::Poll(e)),
            }
        }
    }

    /// Reads one datagram; `None` when none is queued.
    fn receive_one(&mut self) -> Result<Option<Vec<Received>>, ProcEventsError> {
        loop {
            let mut iov = [IoSliceMut::new(&mut self.buf)];
            // MSG_TRUNC: netlink then returns the datagram's real length.
            let (len, flags, from) = match socket::recvmsg::<NetlinkAddr>(
                self.fd.as_raw_fd(),
                &mut iov,
                None,
                MsgFlags::MSG_TRUNC,
            ) {
                Ok(msg) => (msg.bytes, msg.flags, msg.address),
                Err(Errno::EAGAIN) => return Ok(None),
                Err(Errno::EINTR) => continue,
                // netlink(7): the receive queue overflowed and messages were
                // dropped; the socket stays usable.
                Err(Errno::ENOBUFS) => return Ok(Some(vec![Received::Lost])),
                Err(e) => return Err(ProcEventsError::Receive(e)),
            };
            if flags.contains(MsgFlags::MSG_TRUNC) || len > self.buf.len() {
                return Err(ProcEventsError::Truncated {
                    len,
                    buffer: self.buf.len(),
                });
            }
            // Any local process can unicast to our port; only port 0 is the kernel.
            if let Some(port) = from.map(|a| a.pid()).filter(|&p| p != 0) {
                return Err(ProcEventsError::NotFromKernel { port });
            }
            return parse_datagram(&self.buf[..len])
                .map(Some)
                .map_err(|source| ProcEventsError::Garbled { len, source });
        }
    }

    fn send_op(&self, op: u32) -> Result<(), Errno> {
        let request = mcast_request(op, 0);
        socket::send(self.fd.as_raw_fd(), &request, MsgFlags::empty()).map(drop)
    }
}

impl AsFd for ProcEvents {
    /// The socket, for a monitor that polls it with other fds; read it only
    /// through [`ProcEvents::next_events`].
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for ProcEvents {
    fn drop(&mut self) {
        // Best effort: if this fails the kernel merely keeps building events
        // for a listener count that is one too high.
        let _ = self.send_op(libc::PROC_CN_MCAST_IGNORE);
    }
}

/// See [`ProcEvents::set_receive_buffer`].
fn set_receive_buffer(fd: BorrowedFd<'_>, bytes: usize) -> Result<(), ProcEventsError> {
    socket::setsockopt(&fd, sockopt::RcvBufForce, &bytes)
        .or_else(|_| socket::setsockopt(&fd, sockopt::RcvBuf, &bytes))
        .map_err(|source| ProcEventsError::ReceiveBuffer { bytes, source })
}

/// `socket(AF_NETLINK, SOCK_DGRAM, NETLINK_CONNECTOR)`, non-blocking and
/// close-on-exec. nix's `SockProtocol` has no `NETLINK_CONNECTOR`, hence libc.
fn netlink_connector_socket() -> Result<OwnedFd, Errno> {
    // SAFETY: socket(2) takes no pointers; it returns a new fd or -1.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::NETLINK_CONNECTOR,
        )
    };
    if raw < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `raw` is a valid fd that socket(2) just returned and nothing
    // else owns, so the OwnedFd becomes its one owner.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}
