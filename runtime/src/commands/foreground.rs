//! Waiting for a process in the foreground (`run`, `exec` without
//! `--detach`): signals sent to the runtime go to the process, and its exit
//! becomes the runtime's exit status.

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use signal_hook::iterator::{Handle, Signals};

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
}

impl SignalForwarder {
    pub fn install() -> Result<Self> {
        let signals =
            Signals::new(FORWARDED.map(|s| s as i32)).context("cannot install signal handlers")?;
        Ok(SignalForwarder { signals })
    }

    /// Forwards signals to `pid` until it exits; returns its exit status the
    /// way a shell reports it (128 + signal number for a killed process).
    pub fn wait(mut self, pid: Pid) -> Result<u8> {
        let handle: Handle = self.signals.handle();
        let forwarder = std::thread::spawn(move || {
            for signal in self.signals.forever() {
                if let Ok(signal) = Signal::try_from(signal) {
                    let _ = kill(pid, signal);
                }
            }
        });
        let status = loop {
            match waitpid(pid, None) {
                Ok(WaitStatus::Exited(_, code)) => break code as u8,
                Ok(WaitStatus::Signaled(_, signal, _)) => break 128u8.wrapping_add(signal as u8),
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(e) => {
                    handle.close();
                    let _ = forwarder.join();
                    return Err(e).with_context(|| format!("cannot wait for process {pid}"));
                }
            }
        };
        handle.close();
        let _ = forwarder.join();
        Ok(status)
    }
}
