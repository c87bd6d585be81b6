//! Waiting for a world's process in the foreground (`substrate-runtime run`
//! and `exec` without `--detach`, `substrate-cli run`): signals sent to us go
//! to the process, and its exit becomes ours.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::errno::Errno;
use std::sync::Arc;

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use signal_hook::iterator::{Handle, Signals};

use substrate_trace::ExitStatus;

/// Every signal a user or supervisor might send that the process should get
/// instead of the runtime. SIGCHLD is ours; SIGKILL and SIGSTOP cannot be
/// caught.
const FORWARDED: [Signal; 13] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGPIPE,
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
            for signal in self.signals.forever() {
                let Ok(signal) = Signal::try_from(signal) else {
                    continue;
                };
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
