//! The helper: a one-shot, single-threaded process that makes the one call
//! that clones container processes (create, exec) for the multithreaded
//! shim, answers, and exits.
//!
//! The shim starts it with `Command` (fork + exec: safe from any thread;
//! cloning libcontainer's processes straight from the shim is not, as only
//! async-signal-safe code may run in a child of a multithreaded process)
//! and talks to it over a `SOCK_SEQPACKET` socketpair (fd 3 in the helper):
//! one JSON request, one JSON response. libcontainer makes the container's
//! init (or exec'd process) a child of its caller; the helper exiting right
//! after hands it to the shim, the subreaper, which reaps it and learns its
//! exit status. Nothing stays resident between calls: a pod's shim is one
//! process.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};
use substrate_runtime::{CreateOptions, ErrorKind, ExecOptions, Runtime};

/// The argument that makes the binary a helper.
pub const ARG: &str = "__substrate-helper";
const FD: i32 = 3;
const MAX_MESSAGE: usize = 64 * 1024;

/// Where a process's standard streams go: containerd's FIFOs (empty: none).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    Create {
        root: PathBuf,
        id: String,
        bundle: PathBuf,
        stdio: StdioPaths,
        console_socket: Option<PathBuf>,
    },
    Exec {
        root: PathBuf,
        id: String,
        process: PathBuf,
        stdio: StdioPaths,
        console_socket: Option<PathBuf>,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Pid(i32),
    Failed(Failure),
}

/// Why a helper's call failed: the runtime library's kind of error (which
/// the service turns into a ttrpc code, as for its own calls) and the
/// message.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

impl Failure {
    fn other(message: impl std::fmt::Display) -> Failure {
        Failure {
            kind: ErrorKind::Other,
            message: message.to_string(),
        }
    }
}

impl From<substrate_runtime::Error> for Failure {
    fn from(e: substrate_runtime::Error) -> Failure {
        Failure {
            kind: e.kind(),
            message: substrate_runtime::one_line(&e),
        }
    }
}

/// Runs `request` in a new helper; its answer, or why there is none.
pub fn call(request: &Request) -> Result<i32, Failure> {
    exchange(request).map_err(|failure| Failure {
        message: with_logged_cause(failure.message, &request.log_path()),
        ..failure
    })
}

fn exchange(request: &Request) -> Result<i32, Failure> {
    let (ours, theirs) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| Failure::other(format!("socketpair: {e}")))?;
    let theirs_fd = theirs.as_raw_fd();
    let exe =
        std::env::current_exe().map_err(|e| Failure::other(format!("the shim's own path: {e}")))?;
    let mut command = Command::new(exe);
    command
        .arg(ARG)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only dup2/fcntl, async-signal-safe, between fork and exec.
    unsafe {
        command.pre_exec(move || {
            // dup2 onto itself keeps FD_CLOEXEC: clear it by hand then.
            let ok = if theirs_fd == FD {
                libc::fcntl(FD, libc::F_SETFD, 0) >= 0
            } else {
                libc::dup2(theirs_fd, FD) >= 0
            };
            if !ok {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Reaped by the shim's reaper like any child; never waited for here.
    let child = command
        .spawn()
        .map_err(|e| Failure::other(format!("starting the helper: {e}")))?;
    drop(child);
    drop(theirs);
    let bytes = serde_json::to_vec(request).map_err(Failure::other)?;
    socket::send(ours.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL)
        .map_err(|e| Failure::other(format!("the helper is gone: {e}")))?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let n = socket::recv(ours.as_raw_fd(), &mut buf, MsgFlags::empty())
        .map_err(|e| Failure::other(format!("the helper did not answer: {e}")))?;
    if n == 0 {
        return Err(Failure::other("the helper exited without an answer"));
    }
    match serde_json::from_slice(&buf[..n]).map_err(Failure::other)? {
        Response::Pid(pid) => Ok(pid),
        Response::Failed(failure) => Err(failure),
    }
}

/// The helper's main: one request, one answer.
pub fn serve() -> i32 {
    let Some(socket) = take_socket() else {
        eprintln!("{ARG}: fd {FD} is not the shim's socket: this is not for people to run");
        return 2;
    };
    let mut buf = vec![0u8; MAX_MESSAGE];
    let n = loop {
        match socket::recv(socket.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(0) => return 0,
            Ok(n) => break n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 1,
        }
    };
    let response = match serde_json::from_slice::<Request>(&buf[..n]) {
        Ok(request) => {
            log_errors_to(&request.log_path());
            match handle(request) {
                Ok(pid) => Response::Pid(pid),
                Err(reason) => Response::Failed(reason),
            }
        }
        Err(e) => Response::Failed(Failure {
            kind: ErrorKind::InvalidInput,
            message: format!("bad request: {e}"),
        }),
    };
    let bytes = serde_json::to_vec(&response).unwrap_or_default();
    match socket::send(socket.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL) {
        Ok(_) => 0,
        Err(_) => 1,
    }
}

impl Request {
    /// Where libcontainer's own account of a failure goes: the container's
    /// processes can only report it there (their parent gets an errno).
    fn log_path(&self) -> PathBuf {
        match self {
            Request::Create { bundle, .. } => bundle.join(LOG_FILE),
            Request::Exec { process, .. } => process.with_file_name(LOG_FILE),
        }
    }
}

const LOG_FILE: &str = "substrate-log.json";

/// Errors (the helper's and those of the container processes it makes)
/// as JSON lines in `path`.
fn log_errors_to(path: &Path) {
    let Ok(file) = OpenOptions::new().create(true).append(true).open(path) else {
        return;
    };
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::ERROR)
        .with_writer(Mutex::new(file))
        .finish();
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// `reason` and, when libcontainer logged why, its last error line (as
/// the runc shim adds runc's log to its errors).
fn with_logged_cause(reason: String, log: &Path) -> String {
    let logged = std::fs::read_to_string(log).unwrap_or_default();
    let cause = logged
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["fields"]["message"].as_str().map(str::to_owned));
    match cause {
        Some(cause) if !reason.contains(&cause) => format!("{reason}: {cause}"),
        _ => reason,
    }
}

/// Takes fd 3 once it is known to be what the shim passes: an open
/// `SOCK_SEQPACKET` socket (run by hand, fd 3 may be anything, or nothing).
fn take_socket() -> Option<OwnedFd> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    // Not for the container processes made from here; and EBADF if fd 3
    // is not open.
    fcntl(FD, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).ok()?;
    // SAFETY: fd 3 is open (F_SETFD succeeded) and only borrowed here.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(FD) };
    let kind = socket::getsockopt(&borrowed, socket::sockopt::SockType).ok()?;
    if kind != SockType::SeqPacket {
        return None;
    }
    // SAFETY: fd 3 is an open socket that nothing else in this process
    // owns: the helper opened nothing yet, and the shim dup2'd it there
    // for us.
    Some(unsafe { OwnedFd::from_raw_fd(FD) })
}

fn handle(request: Request) -> Result<i32, Failure> {
    match request {
        Request::Create {
            root,
            id,
            bundle,
            stdio,
            console_socket,
        } => {
            let runtime = Runtime::new(root);
            let world = runtime.create(
                &id,
                &bundle,
                CreateOptions {
                    detach: true,
                    console_socket,
                    stdio: open_stdio(&stdio).map_err(Failure::other)?,
                    ..Default::default()
                },
            )?;
            world
                .pid()
                .ok_or_else(|| Failure::other("the world has no init"))
        }
        Request::Exec {
            root,
            id,
            process,
            stdio,
            console_socket,
        } => {
            let runtime = Runtime::new(root);
            let world = runtime.world(&id)?;
            let pid = world.exec(
                &runtime,
                ExecOptions {
                    process: Some(process),
                    console_socket,
                    detach: true,
                    stdio: open_stdio(&stdio).map_err(Failure::other)?,
                    ..Default::default()
                },
            )?;
            Ok(pid.as_raw())
        }
    }
}

/// Opens containerd's FIFOs as the process's stdio (not used with a tty:
/// the console carries everything then, and the shim copies).
fn open_stdio(paths: &StdioPaths) -> io::Result<substrate_runtime::Stdio> {
    let open = |path: &str, write: bool| -> io::Result<Option<OwnedFd>> {
        if path.is_empty() {
            return Ok(None);
        }
        let file: File = if write {
            // The shim holds a read end open, so this does not block.
            OpenOptions::new().write(true).open(Path::new(path))?
        } else {
            crate::stdio::open_fifo_for_reading(path)?
        };
        Ok(Some(file.into()))
    };
    Ok(substrate_runtime::Stdio {
        stdin: open(&paths.stdin, false)?,
        stdout: open(&paths.stdout, true)?,
        stderr: open(&paths.stderr, true)?,
    })
}
