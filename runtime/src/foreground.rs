//! Waiting for a world's process in the foreground (`substrate-runtime run`
//! and `exec` without `--detach`, `substrate-cli run`): signals sent to us go
//! to the process, and its exit becomes ours. And waiting for a process
//! that is not our child ([`Process`]: `substrate-cli stop`).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use std::sync::Arc;

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use signal_hook::iterator::{Handle, Signals};

use substrate_trace::ExitStatus;

/// Every signal a user or supervisor might send that the process should get
/// instead of the runtime. SIGCHLD is ours; SIGKILL and SIGSTOP cannot be
/// caught. Not SIGPIPE: the kernel raises it for the runtime's own write to
/// a closed pipe, which is not the world's business — and a handler for it
/// is where signal-hook's wake-up, writing to its own pipe once that is
/// closed, raised SIGPIPE again, and again (a loop at full CPU).
const FORWARDED: [Signal; 12] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGALRM,
    Signal::SIGTERM,
    Signal::SIGCONT,
    Signal::SIGTSTP,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGWINCH,
];

/// Signals are caught from before the process exists (so none sent in
/// between is lost or kills the runtime), and forwarded once its pid is known.
pub struct SignalForwarder {
    signals: Signals,
    kill_after: Option<Duration>,
}

impl std::fmt::Debug for SignalForwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignalForwarder")
            .field("kill_after", &self.kill_after)
            .finish_non_exhaustive()
    }
}

impl SignalForwarder {
    pub fn install() -> io::Result<Self> {
        let signals = Signals::new(FORWARDED.map(|s| s as i32))?;
        Ok(SignalForwarder {
            signals,
            kill_after: None,
        })
    }

    /// After SIGINT, SIGTERM or SIGHUP, SIGKILL the process if it has not
    /// exited within `grace`: the init of a pid namespace ignores signals it
    /// has no handler for, and Ctrl-C must stop the world all the same.
    pub fn kill_after(mut self, grace: Duration) -> Self {
        self.kill_after = Some(grace);
        self
    }

    /// Forwards signals to `pid`, our child, until it exits; returns how.
    pub fn wait(mut self, pid: Pid) -> io::Result<ExitStatus> {
        // Signals go through a pidfd: one that arrives after the process has
        // been reaped must not reach whatever reused its pid.
        let pidfd = Arc::new(pidfd_open(pid)?);
        let handle: Handle = self.signals.handle();
        let kill_after = self.kill_after;
        let forwarder = std::thread::spawn(move || {
            let mut ready = false;
            for signal in self.signals.forever() {
                let Ok(signal) = Signal::try_from(signal) else {
                    continue;
                };
                if !ready {
                    wait_until_it_takes(pid, signal);
                    ready = true;
                }
                let _ = pidfd_signal(&pidfd, signal);
                let stopping = matches!(signal, Signal::SIGINT | Signal::SIGTERM | Signal::SIGHUP);
                if let (true, Some(grace)) = (stopping, kill_after) {
                    let pidfd = Arc::clone(&pidfd);
                    std::thread::spawn(move || {
                        std::thread::sleep(grace);
                        let _ = pidfd_signal(&pidfd, Signal::SIGKILL);
                    });
                }
            }
        });
        let exit = loop {
            match waitpid(pid, None) {
                Ok(WaitStatus::Exited(_, code)) => break Ok(ExitStatus::Code(code)),
                Ok(WaitStatus::Signaled(_, signal, _)) => {
                    break Ok(ExitStatus::Signal(signal as i32))
                }
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => break Err(io::Error::from(e)),
            }
        };
        handle.close();
        let _ = forwarder.join();
        exit
    }
}

/// How long a process that has not exec'd yet (it is still the runtime's
/// clone, setting the world up) may take to, before a signal is sent all
/// the same.
const EXEC_WAIT: Duration = Duration::from_secs(1);
/// How long a process may take after its exec to block, catch or ignore a
/// signal (the world's init does it in its first instructions).
const SETUP_WAIT: Duration = Duration::from_millis(20);

/// Waits, for a signal that arrives just as the process starts, until the
/// process can take it, so that it is not lost: before its exec the process
/// is a clone of ours, whose handlers would swallow the signal; right after
/// it, the init of a pid namespace has not yet blocked the signal, and the
/// kernel drops a signal that init has no handler for (pid_namespaces(7)).
/// Past the waits the signal is sent anyway (a command that is PID 1 and
/// never handles it is stopped by `kill_after`).
fn wait_until_it_takes(pid: Pid, signal: Signal) {
    let ours = std::fs::read_link("/proc/self/exe").ok();
    let started = Instant::now();
    let mut execd: Option<Instant> = None;
    loop {
        let theirs = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        match (theirs, execd) {
            // Gone, or out of reach: nothing to wait for.
            (None, _) => return,
            (Some(exe), None) if Some(&exe) == ours.as_ref() => {
                if started.elapsed() >= EXEC_WAIT {
                    return;
                }
            }
            (Some(_), None) => execd = Some(Instant::now()),
            (Some(_), Some(at)) if at.elapsed() >= SETUP_WAIT => return,
            (Some(_), Some(_)) => {}
        }
        if execd.is_some() && takes(pid, signal) {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Whether `pid` blocks, catches or ignores `signal` (its `SigBlk`,
/// `SigCgt` and `SigIgn` in /proc/PID/status, proc(5)).
fn takes(pid: Pid, signal: Signal) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let bit = 1u64 << (signal as i32 - 1);
    status
        .lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(key, _)| matches!(*key, "SigBlk" | "SigCgt" | "SigIgn"))
        .filter_map(|(_, mask)| u64::from_str_radix(mask.trim(), 16).ok())
        .any(|mask| mask & bit != 0)
}

/// A process named for good (a pidfd), our child or not: signalled and
/// waited for without a pid-reuse race.
#[derive(Debug)]
pub struct Process {
    /// `None`: the process had exited (and was reaped) when it was opened.
    pidfd: Option<OwnedFd>,
}

impl Process {
    /// The process `pid`; one that no longer exists is one that has exited.
    pub fn open(pid: i32) -> io::Result<Process> {
        match pidfd_open(Pid::from_raw(pid)) {
            Ok(pidfd) => Ok(Process { pidfd: Some(pidfd) }),
            Err(e) if e.raw_os_error() == Some(Errno::ESRCH as i32) => Ok(Process { pidfd: None }),
            Err(e) => Err(e),
        }
    }

    /// Sends `signal`; a process that has exited is not an error.
    pub fn signal(&self, signal: Signal) -> io::Result<()> {
        match &self.pidfd {
            Some(pidfd) => match pidfd_signal(pidfd, signal) {
                Err(e) if e.raw_os_error() == Some(Errno::ESRCH as i32) => Ok(()),
                other => other,
            },
            None => Ok(()),
        }
    }

    /// Whether the process exits within `timeout` (`None`: waits as long
    /// as it takes). A pidfd is readable once its process has exited
    /// (pidfd_open(2)), reaped or not.
    pub fn exited_within(&self, timeout: Option<Duration>) -> io::Result<bool> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        let Some(pidfd) = &self.pidfd else {
            return Ok(true);
        };
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let wait = match deadline {
                None => PollTimeout::NONE,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX)
                }
            };
            let mut fds = [PollFd::new(pidfd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, wait) {
                Ok(0) if deadline.is_some_and(|d| Instant::now() >= d) => return Ok(false),
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => return Ok(true),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// A pidfd (pidfd_open(2)) names one process for good: no pid-reuse race.
pub(crate) fn pidfd_open(pid: Pid) -> io::Result<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid.as_raw())
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// Signals the process a pidfd names: an error (ESRCH) once it has been
/// reaped, never a process that reused its pid.
fn pidfd_signal(pidfd: &OwnedFd, signal: Signal) -> io::Result<()> {
    let signal = rustix::process::Signal::from_named_raw(signal as i32)
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok(rustix::process::pidfd_send_signal(pidfd, signal)?)
}
