//! The zygote: a single-threaded helper process that makes the calls that
//! clone container processes (create, exec) for the multithreaded shim.
//!
//! The shim starts it with `Command` (fork + exec: safe from any thread)
//! and talks to it over a `SOCK_SEQPACKET` socketpair (fd 3 in the zygote),
//! one JSON request and one JSON response per call, one call at a time.
//! Container processes it creates are reparented to the shim, the
//! subreaper, when libcontainer's intermediate process exits, so the shim
//! reaps them and learns their exit status.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};
use substrate_runtime::{CreateOptions, ExecOptions, Runtime};

/// The argument that makes the binary a zygote.
pub const ARG: &str = "__substrate-zygote";
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
    Failed(String),
}

/// The shim's handle on its zygote.
pub struct Zygote {
    socket: Mutex<OwnedFd>,
}

impl Zygote {
    pub fn spawn() -> io::Result<Zygote> {
        let (ours, theirs) = socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )?;
        let theirs_fd = theirs.as_raw_fd();
        let mut command = Command::new(std::env::current_exe()?);
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
        // Reaped by the shim's reaper like any child; never waited here.
        let child = command.spawn()?;
        drop(child);
        drop(theirs);
        Ok(Zygote {
            socket: Mutex::new(ours),
        })
    }

    /// One call; the zygote's answer or why there is none.
    pub fn call(&self, request: &Request) -> Result<i32, String> {
        let socket = self.socket.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        socket::send(socket.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL)
            .map_err(|e| format!("the zygote is gone: {e}"))?;
        let mut buf = vec![0u8; MAX_MESSAGE];
        let n = socket::recv(socket.as_raw_fd(), &mut buf, MsgFlags::empty())
            .map_err(|e| format!("the zygote did not answer: {e}"))?;
        if n == 0 {
            return Err("the zygote exited".into());
        }
        match serde_json::from_slice(&buf[..n]).map_err(|e| e.to_string())? {
            Response::Pid(pid) => Ok(pid),
            Response::Failed(reason) => Err(reason),
        }
    }
}

/// The zygote's loop: until the shim closes its end.
pub fn serve() -> i32 {
    // SAFETY: fd 3 is the socketpair end the shim gave us.
    let socket = unsafe { OwnedFd::from_raw_fd(FD) };
    // Not for the container processes made from here.
    let _ = nix::fcntl::fcntl(FD, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC));
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let n = match socket::recv(socket.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Ok(0) => return 0,
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return 1,
        };
        let response = match serde_json::from_slice::<Request>(&buf[..n]) {
            Ok(request) => match in_child(&request.log_path(), || handle(request)) {
                Ok(pid) => Response::Pid(pid),
                Err(reason) => Response::Failed(reason),
            },
            Err(e) => Response::Failed(format!("bad request: {e}")),
        };
        let bytes = serde_json::to_vec(&response).unwrap_or_default();
        if socket::send(socket.as_raw_fd(), &bytes, MsgFlags::MSG_NOSIGNAL).is_err() {
            return 1;
        }
    }
}

/// Runs `call` in a forked child of the zygote (safe: the zygote has one
/// thread) and returns its answer. libcontainer makes the container's init
/// a child of its caller (CLONE_PARENT from its intermediate process): the
/// caller exiting right after is what hands the init to the shim, the
/// subreaper, which reaps it and learns its exit status.
fn in_child(log: &Path, call: impl FnOnce() -> Result<i32, String>) -> Result<i32, String> {
    // One message each way; the container's init inherits the child's
    // fds until it execs, so "EOF" can never be the signal.
    let (ours, theirs) = socket::socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| e.to_string())?;
    // SAFETY: the zygote is single-threaded; the child runs ordinary code.
    match unsafe { nix::unistd::fork() }.map_err(|e| e.to_string())? {
        nix::unistd::ForkResult::Child => {
            drop(ours);
            log_errors_to(log);
            let answer = serde_json::to_vec(&match call() {
                Ok(pid) => Response::Pid(pid),
                Err(reason) => Response::Failed(reason),
            })
            .unwrap_or_default();
            let sent = socket::send(theirs.as_raw_fd(), &answer, MsgFlags::MSG_NOSIGNAL);
            // SAFETY: _exit ends the child without running the zygote's
            // exit handlers or destructors a second time.
            unsafe { libc::_exit(i32::from(sent.is_err())) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(theirs);
            let mut answer = vec![0u8; MAX_MESSAGE];
            let received = socket::recv(ours.as_raw_fd(), &mut answer, MsgFlags::empty());
            let _ = nix::sys::wait::waitpid(child, None);
            let n = received.map_err(|e| e.to_string())?;
            match serde_json::from_slice(&answer[..n]) {
                Ok(Response::Pid(pid)) => Ok(pid),
                Ok(Response::Failed(reason)) => Err(with_logged_cause(reason, log)),
                Err(_) => Err("the zygote's child died without an answer".into()),
            }
        }
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

/// In the forked child: errors (this process's and the container
/// processes' it makes) as JSON lines in `path`.
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

fn handle(request: Request) -> Result<i32, String> {
    let error = |e: substrate_runtime::Error| substrate_runtime::one_line(&e);
    match request {
        Request::Create {
            root,
            id,
            bundle,
            stdio,
            console_socket,
        } => {
            let runtime = Runtime::new(root);
            let world = runtime
                .create(
                    &id,
                    &bundle,
                    CreateOptions {
                        detach: true,
                        console_socket,
                        stdio: open_stdio(&stdio).map_err(|e| e.to_string())?,
                        ..Default::default()
                    },
                )
                .map_err(error)?;
            world.pid().ok_or_else(|| "the world has no init".to_owned())
        }
        Request::Exec {
            root,
            id,
            process,
            stdio,
            console_socket,
        } => {
            let runtime = Runtime::new(root);
            let world = runtime.world(&id).map_err(error)?;
            let pid = world
                .exec(
                    &runtime,
                    ExecOptions {
                        process: Some(process),
                        console_socket,
                        detach: true,
                        stdio: open_stdio(&stdio).map_err(|e| e.to_string())?,
                        ..Default::default()
                    },
                )
                .map_err(error)?;
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
