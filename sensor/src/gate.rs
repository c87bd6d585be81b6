//! The exec gate: fanotify permission events (`FAN_OPEN_EXEC_PERM`) on a
//! world's mounts, answered by the caller. The kernel holds every exec of a
//! file on those mounts — a static binary's, a raw `execve`'s, a renamed
//! copy's, `execveat` on an fd — until the gate says allow or deny, and the
//! event carries an fd of the very file being run, so the decision is on
//! what it is, not on a path the program chose.
//!
//! The kernel has no timeout for a permission event: whoever reads the gate
//! must answer every event it reads, and promptly. [`ExecGate::serve`] runs
//! on a thread of its own that does nothing else. When the gate's fd is
//! closed (its monitor gone), the kernel allows what is pending.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Instant;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::files::sys;

/// One exec the kernel holds until it is answered.
#[derive(Debug)]
pub struct ExecRequest {
    /// The file being run, opened by the kernel (read-only).
    pub file: File,
    /// Its path as the world sees it (the kernel's name for the fd).
    pub path: PathBuf,
    /// The process that execs (host pid).
    pub pid: i32,
    /// When the gate read the event.
    pub at: Instant,
}

/// What the gate's owner decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Allow,
    Deny,
}

/// A fanotify group with `FAN_OPEN_EXEC_PERM` marks on a world's mounts.
#[derive(Debug)]
pub struct ExecGate {
    group: OwnedFd,
}

const FAN_OPEN_EXEC_PERM: u64 = 0x0004_0000;
const FAN_ALLOW: u32 = 0x01;
const FAN_DENY: u32 = 0x02;

impl ExecGate {
    /// A gate on every mount of the world whose init is `init_pid` that a
    /// program could run a file from: its root and the mounts below it
    /// (from its mountinfo), but `proc`, `sysfs`, `cgroup` and the like.
    pub fn open(init_pid: i32) -> io::Result<ExecGate> {
        let group = sys::fanotify_init(
            libc::FAN_CLASS_CONTENT | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK,
            (libc::O_RDONLY | libc::O_LARGEFILE | libc::O_CLOEXEC) as u32,
        )
        .map_err(io::Error::from)?;
        let gate = ExecGate { group };
        let root = PathBuf::from(format!("/proc/{init_pid}/root"));
        for mount_point in exec_mounts(init_pid)? {
            let path = root.join(mount_point.strip_prefix("/").unwrap_or(&mount_point));
            let marked = sys::fanotify_mark(
                gate.group.as_fd(),
                libc::FAN_MARK_ADD | libc::FAN_MARK_MOUNT,
                FAN_OPEN_EXEC_PERM,
                &path,
            );
            // A mount point under another mount (a hidden path's `/dev/null`
            // under a home the world does not see) cannot be reached, nor
            // run from.
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

    /// Reads the events queued now (none: an empty list).
    pub fn read(&self) -> io::Result<Vec<ExecRequest>> {
        let mut buffer = [0u8; 4096];
        let mut requests = Vec::new();
        loop {
            let size = match nix::unistd::read(self.group.as_raw_fd(), &mut buffer) {
                Ok(size) => size,
                Err(Errno::EAGAIN) => return Ok(requests),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let at = Instant::now();
            let mut offset = 0;
            // struct fanotify_event_metadata: event_len u32, vers u8,
            // reserved u8, metadata_len u16, mask u64, fd i32, pid i32.
            while offset + 24 <= size {
                let field = |at: usize, len: usize| &buffer[offset + at..offset + at + len];
                let length = u32::from_ne_bytes(field(0, 4).try_into().expect("4")) as usize;
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
                requests.push(ExecRequest {
                    file,
                    path,
                    pid,
                    at,
                });
            }
        }
    }

    /// Answers `request`. The file's fd is closed after the answer.
    pub fn answer(&self, request: ExecRequest, answer: Answer) -> io::Result<()> {
        // struct fanotify_response: fd i32, response u32.
        let mut response = [0u8; 8];
        response[..4].copy_from_slice(&request.file.as_raw_fd().to_ne_bytes());
        let verdict = match answer {
            Answer::Allow => FAN_ALLOW,
            Answer::Deny => FAN_DENY,
        };
        response[4..].copy_from_slice(&verdict.to_ne_bytes());
        loop {
            match nix::unistd::write(&self.group, &response) {
                Ok(_) => return Ok(()),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Answers every event with `decide`, until `stop` is readable (or
    /// closed). Meant for a thread of its own: nothing else may delay the
    /// answers, since the kernel holds each exec until it has one.
    pub fn serve(
        &self,
        stop: BorrowedFd<'_>,
        mut decide: impl FnMut(&ExecRequest) -> Answer,
    ) -> io::Result<()> {
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
                let answer = decide(&request);
                self.answer(request, answer)?;
            }
        }
    }
}

/// The content hash of a file the gate holds, read through its fd.
pub fn sha256_of(file: &File) -> io::Result<[u8; 32]> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    // The kernel's fd starts at offset 0, and it is ours alone.
    let mut reader = file;
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = reader.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher.finalize().into())
}

/// The mount points (as the world sees them) a file could be run from:
/// every mount but the kernel's pseudo filesystems.
fn exec_mounts(init_pid: i32) -> io::Result<Vec<PathBuf>> {
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
