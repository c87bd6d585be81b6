//! The permission gate: fanotify permission events on a world's mounts,
//! answered by the caller. `FAN_OPEN_EXEC_PERM` holds every exec of a file
//! on those mounts — a static binary's, a raw `execve`'s, a renamed copy's,
//! `execveat` on an fd — and `FAN_OPEN_PERM` every open (io_uring's and
//! `open_by_handle_at`'s too), until the gate says allow or deny. The event
//! carries an fd of the very file, so the decision is on what it is, not on
//! a path the program chose.
//!
//! The kernel has no timeout for a permission event: whoever reads the gate
//! must answer every event it reads. [`Gate::serve`] runs on a thread of its
//! own that does nothing else; a [`Request`] handed to another thread (an
//! exec waiting for an approver) is answered there, and one dropped
//! unanswered is denied. When the gate's fd is closed (its monitor gone),
//! the kernel allows what is pending.
//!
//! An open the caller decides on the file alone can be let through for
//! good ([`Request::pass_later_opens`]): an evictable ignore mark on its
//! inode, so the next open of that file does not leave the kernel.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::files::sys;

/// What a gate holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Execs (`FAN_OPEN_EXEC_PERM`).
    pub exec: bool,
    /// Opens (`FAN_OPEN_PERM`), for reading or writing; an exec is an
    /// open too, asked after the exec itself.
    pub open: bool,
}

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Exec,
    Open,
}

/// One exec or open the kernel holds until it is answered.
#[derive(Debug)]
pub struct Request {
    /// The file, opened by the kernel for the gate (read-only).
    pub file: File,
    /// Its path as the world sees it (the kernel's name for the fd).
    pub path: PathBuf,
    /// The process that execs or opens (host pid).
    pub pid: i32,
    /// When the gate read the event.
    pub at: Instant,
    pub access: Access,
    group: Arc<OwnedFd>,
    answered: bool,
}

/// What the gate's owner decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Allow,
    Deny,
}

/// A fanotify group with permission marks on a world's mounts.
#[derive(Debug)]
pub struct Gate {
    group: Arc<OwnedFd>,
}

const FAN_OPEN_PERM: u64 = 0x0001_0000;
const FAN_OPEN_EXEC_PERM: u64 = 0x0004_0000;
const FAN_MARK_IGNORED_MASK: u32 = 0x0000_0020;
const FAN_MARK_IGNORED_SURV_MODIFY: u32 = 0x0000_0040;
const FAN_MARK_EVICTABLE: u32 = 0x0000_0200;
const FAN_ALLOW: u32 = 0x01;
const FAN_DENY: u32 = 0x02;

impl Gate {
    /// A gate on every mount of the world whose init is `init_pid` that a
    /// program could run or read a file from: its root and the mounts below
    /// it (from its mountinfo), but `proc`, `sysfs`, `cgroup` and the like.
    pub fn open(init_pid: i32, held: Held) -> io::Result<Gate> {
        let group = sys::fanotify_init(
            libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK,
            (libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC) as u32,
        )
        .map_err(io::Error::from)?;
        let gate = Gate {
            group: Arc::new(group),
        };
        let mask = if held.exec { FAN_OPEN_EXEC_PERM } else { 0 }
            | if held.open { FAN_OPEN_PERM } else { 0 };
        if mask == 0 {
            return Ok(gate);
        }
        let root = PathBuf::from(format!("/proc/{init_pid}/root"));
        for mount_point in world_mounts(init_pid)? {
            let path = root.join(mount_point.strip_prefix("/").unwrap_or(&mount_point));
            let marked = sys::fanotify_mark(
                gate.group.as_fd(),
                libc::FAN_MARK_ADD | libc::FAN_MARK_MOUNT,
                mask,
                &path,
            );
            // A mount point under another mount (a hidden path's `/dev/null`
            // under a home the world does not see) cannot be reached, nor
            // run or read from.
            if marked == Err(Errno::ENOENT) {
                continue;
            }
            marked.map_err(|e| {
                io::Error::new(
                    io::Error::from(e).kind(),
                    format!("fanotify_mark {}: {e}", path.display()),
                )
            })?;
        }
        Ok(gate)
    }

    /// Reads the events queued now, as many as one read returns (none: an
    /// empty list); the group stays readable while more are queued.
    pub fn read(&self) -> io::Result<Vec<Request>> {
        let mut buffer = [0u8; 4096];
        let mut requests = Vec::new();
        {
            let size = loop {
                match nix::unistd::read(self.group.as_raw_fd(), &mut buffer) {
                    Ok(size) => break size,
                    Err(Errno::EAGAIN) => return Ok(requests),
                    Err(Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            let at = Instant::now();
            let mut offset = 0;
            // struct fanotify_event_metadata: event_len u32, vers u8,
            // reserved u8, metadata_len u16, mask u64, fd i32, pid i32.
            while offset + 24 <= size {
                let field = |at: usize, len: usize| &buffer[offset + at..offset + at + len];
                let length = u32::from_ne_bytes(field(0, 4).try_into().expect("4")) as usize;
                let mask = u64::from_ne_bytes(field(8, 8).try_into().expect("8"));
                let fd = i32::from_ne_bytes(field(16, 4).try_into().expect("4"));
                let pid = i32::from_ne_bytes(field(20, 4).try_into().expect("4"));
                if length < 24 || offset + length > size {
                    break;
                }
                offset += length;
                if fd < 0 {
                    continue;
                }
                // SAFETY: the kernel put this fd in our table for this
                // event; nothing else owns it.
                let file = unsafe { File::from_raw_fd(fd) };
                let path = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap_or_default();
                requests.push(Request {
                    file,
                    path,
                    pid,
                    at,
                    access: if mask & FAN_OPEN_EXEC_PERM != 0 {
                        Access::Exec
                    } else {
                        Access::Open
                    },
                    group: Arc::clone(&self.group),
                    answered: false,
                });
            }
        }
        Ok(requests)
    }

    /// Hands every event to `decide`, until `stop` is readable (or closed).
    /// `decide` answers each request, or hands it to whoever will. Meant
    /// for a thread of its own: nothing else may delay the answers, since
    /// the kernel holds each exec or open until it has one.
    pub fn serve(&self, stop: BorrowedFd<'_>, mut decide: impl FnMut(Request)) -> io::Result<()> {
        loop {
            let mut fds = [
                PollFd::new(self.group.as_fd(), PollFlags::POLLIN),
                PollFd::new(stop, PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
            if fds[1].revents().is_some_and(|r| !r.is_empty()) {
                return Ok(());
            }
            for request in self.read()? {
                decide(request);
            }
        }
    }
}

impl Request {
    /// Answers the kernel; the file's fd is closed after the answer.
    pub fn answer(mut self, answer: Answer) -> io::Result<()> {
        self.answered = true;
        self.respond(answer)
    }

    fn respond(&self, answer: Answer) -> io::Result<()> {
        // struct fanotify_response: fd i32, response u32.
        let mut response = [0u8; 8];
        response[..4].copy_from_slice(&self.file.as_raw_fd().to_ne_bytes());
        let verdict = match answer {
            Answer::Allow => FAN_ALLOW,
            Answer::Deny => FAN_DENY,
        };
        response[4..].copy_from_slice(&verdict.to_ne_bytes());
        loop {
            match nix::unistd::write(&*self.group, &response) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Lets the later opens of this file through without asking: an
    /// ignore mark for `FAN_OPEN_PERM` on its inode, kept across writes to
    /// it, dropped when the kernel evicts the inode (so it pins nothing).
    /// Execs of it are still asked. Fails on a kernel before 5.19 (no
    /// evictable marks) or when the group's marks are spent: the opens are
    /// then asked each time, as before.
    pub fn pass_later_opens(&self) -> io::Result<()> {
        sys::fanotify_mark_fd(
            self.group.as_fd(),
            libc::FAN_MARK_ADD
                | FAN_MARK_IGNORED_MASK
                | FAN_MARK_IGNORED_SURV_MODIFY
                | FAN_MARK_EVICTABLE,
            FAN_OPEN_PERM,
            self.file.as_fd(),
        )
        .map_err(io::Error::from)
    }
}

/// The arguments of an exec the gate holds: see [`Request::exec_arguments`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecArguments {
    /// `argv`, `argv[0]` included.
    pub argv: Vec<Vec<u8>>,
    /// The process had other threads when they were read: one of them
    /// could change the strings before the kernel copies them.
    pub other_threads: bool,
}

/// The most `argv` is read up to: the kernel's own bound (a quarter of an
/// 8 MiB stack) for the strings, and as many pointers.
const ARGV_BYTES: usize = 2 << 20;

#[cfg(target_arch = "x86_64")]
const EXEC_SYSCALLS: (u64, u64) = (59, 322);
#[cfg(target_arch = "aarch64")]
const EXEC_SYSCALLS: (u64, u64) = (221, 281);

impl Request {
    /// The `argv` the held exec was given, read from the process while the
    /// kernel holds it in `execve` (or `execveat`): the kernel opens the
    /// file before it copies the arguments, so they are still in the
    /// caller's memory, where the system call's registers point
    /// (`/proc/PID/syscall`, `/proc/PID/mem`). The caller is blocked, but
    /// its other threads are not: [`ExecArguments::other_threads`] says
    /// whether there were any.
    ///
    /// Fails when the process is not in an exec system call (an exec of the
    /// loader, a script's interpreter: the same call, so the same argv), or
    /// its memory cannot be read (the kernel would fail the exec too).
    pub fn exec_arguments(&self) -> io::Result<ExecArguments> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        // The kernel says "running" until the task is seen asleep: the
        // event reaches the gate while the task, on another CPU, is still
        // on its way to sleep (or it was woken by a signal it does not die
        // of, and goes back): asked again, at once and then less often.
        let path = format!("/proc/{}/syscall", self.pid);
        let mut syscall = String::new();
        for attempt in 0..200u64 {
            syscall = std::fs::read_to_string(&path)?;
            if !syscall.starts_with("running") {
                break;
            }
            if attempt < 50 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
        }
        let fields: Vec<u64> = syscall
            .split_whitespace()
            .map(|field| match field.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16).ok(),
                None => field.parse().ok(),
            })
            .collect::<Option<_>>()
            .ok_or_else(|| {
                invalid(&format!(
                    "the process is not in a system call ({})",
                    syscall.trim()
                ))
            })?;
        let argv_at = match fields.as_slice() {
            [nr, _path, argv, ..] if *nr == EXEC_SYSCALLS.0 => *argv,
            [nr, _dirfd, _path, argv, ..] if *nr == EXEC_SYSCALLS.1 => *argv,
            _ => return Err(invalid("the process is not in execve or execveat")),
        };
        let memory = File::open(format!("/proc/{}/mem", self.pid))?;
        let mut argv = Vec::new();
        let mut total = 0usize;
        for index in 0u64.. {
            let mut pointer = [0u8; 8];
            read_exact_at(&memory, &mut pointer, argv_at + index * 8)?;
            let at = u64::from_ne_bytes(pointer);
            if at == 0 {
                break;
            }
            let arg = read_string_at(&memory, at, ARGV_BYTES - total)?;
            total += arg.len() + 1 + 8;
            if total > ARGV_BYTES {
                return Err(invalid("argv is larger than the kernel takes"));
            }
            argv.push(arg);
        }
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let threads = status
            .lines()
            .find_map(|line| line.strip_prefix("Threads:"))
            .and_then(|n| n.trim().parse::<u32>().ok())
            .unwrap_or(1);
        Ok(ExecArguments {
            argv,
            other_threads: threads > 1,
        })
    }
}

fn read_exact_at(file: &File, buffer: &mut [u8], at: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buffer, at)
}

/// The NUL-terminated string at `at`, of at most `limit` bytes.
fn read_string_at(file: &File, at: u64, limit: usize) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut string = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        let offset = at + string.len() as u64;
        // Up to the page's end, so that a string ending just before an
        // unmapped page reads.
        let page_left = 4096 - (offset % 4096) as usize;
        let want = chunk.len().min(page_left);
        let read = file.read_at(&mut chunk[..want], offset)?;
        if read == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if let Some(end) = chunk[..read].iter().position(|&b| b == 0) {
            string.extend_from_slice(&chunk[..end]);
            return Ok(string);
        }
        string.extend_from_slice(&chunk[..read]);
        if string.len() > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "argv is larger than the kernel takes",
            ));
        }
    }
}

impl Drop for Request {
    /// A request nobody answered is denied: the kernel would hold the
    /// process until the gate closes, then let it through.
    fn drop(&mut self) {
        if !self.answered {
            let _ = self.respond(Answer::Deny);
        }
    }
}

/// The content hash of `file`, from its first byte whatever its offset
/// (read with `pread`, so the offset is left as it was).
pub fn sha256_of(file: &File) -> io::Result<[u8; 32]> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::FileExt;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 16];
    let mut offset = 0u64;
    loop {
        let read = file.read_at(&mut buffer, offset)?;
        if read == 0 {
            return Ok(hasher.finalize().into());
        }
        hasher.update(&buffer[..read]);
        offset += read as u64;
    }
}

/// The mount points (as the world sees them) a file could be run or read
/// from: every mount but the kernel's pseudo filesystems.
fn world_mounts(init_pid: i32) -> io::Result<Vec<PathBuf>> {
    const PSEUDO: [&str; 12] = [
        "proc",
        "sysfs",
        "cgroup",
        "cgroup2",
        "devpts",
        "mqueue",
        "securityfs",
        "debugfs",
        "tracefs",
        "bpf",
        "pstore",
        "configfs",
    ];
    let text = std::fs::read_to_string(format!("/proc/{init_pid}/mountinfo"))?;
    let mut mounts = Vec::new();
    for line in text.lines() {
        // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
        let mut fields = line.split(' ');
        let Some(mount_point) = fields.nth(4) else {
            continue;
        };
        let fstype = line
            .split(" - ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_default();
        if PSEUDO.contains(&fstype) {
            continue;
        }
        let mount_point = unescape(mount_point);
        if !mounts.contains(&mount_point) {
            mounts.push(mount_point);
        }
    }
    Ok(mounts)
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> PathBuf {
    let mut bytes = Vec::with_capacity(field.len());
    let raw = field.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'\\' && i + 3 < raw.len() && raw[i + 1..i + 4].iter().all(u8::is_ascii_digit)
        {
            let value = (raw[i + 1] - b'0') * 64 + (raw[i + 2] - b'0') * 8 + (raw[i + 3] - b'0');
            bytes.push(value);
            i += 4;
        } else {
            bytes.push(raw[i]);
            i += 1;
        }
    }
    PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes))
}
