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
    /// The answer the kernel waits for. Declared before `file`, so that a
    /// request dropped unanswered is denied while the event's fd (which
    /// names the event in the answer) is still open.
    pending: PendingAnswer,
    /// The file, opened by the kernel for the gate (read-only).
    pub file: File,
    /// Its path as the world sees it (the kernel's name for the fd).
    pub path: PathBuf,
    /// The process that execs or opens (host pid).
    pub pid: i32,
    /// When the gate read the event.
    pub at: Instant,
    pub access: Access,
}

/// The answer to one event, owed to the kernel: denied when dropped
/// unanswered (the kernel would hold the process until the gate closes,
/// then let it through).
#[derive(Debug)]
struct PendingAnswer {
    group: Arc<OwnedFd>,
    /// The event's fd, which the answer names.
    fd: i32,
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
    /// This process's `/proc/self/fd`, held open: an event's file is named
    /// by reading one link in it (`readlinkat`), not by walking
    /// `/proc/self/fd/N` from `/` on every event.
    fd_names: OwnedFd,
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
        let fd_names = nix::fcntl::open(
            "/proc/self/fd",
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(io::Error::from)?;
        let gate = Gate {
            group: Arc::new(group),
            // SAFETY: `open` just returned this fd; nothing else owns it.
            fd_names: unsafe { OwnedFd::from_raw_fd(fd_names) },
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
        // Room for 680 events: a burst of execs (a parallel build) is
        // taken in one read.
        let mut buffer = [0u8; 16384];
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
                let path = self.name_of(fd);
                requests.push(Request {
                    pending: PendingAnswer {
                        group: Arc::clone(&self.group),
                        fd,
                        answered: false,
                    },
                    file,
                    path,
                    pid,
                    at,
                    access: if mask & FAN_OPEN_EXEC_PERM != 0 {
                        Access::Exec
                    } else {
                        Access::Open
                    },
                });
            }
        }
        Ok(requests)
    }

    /// The path of the file an event's `fd` is open on, as the kernel
    /// names it (empty if it cannot say).
    fn name_of(&self, fd: i32) -> PathBuf {
        nix::fcntl::readlinkat(Some(self.fd_names.as_raw_fd()), fd.to_string().as_str())
            .map(PathBuf::from)
            .unwrap_or_default()
    }

    /// Hands every event to `decide`, until `stop` is readable (or closed).
    /// `decide` answers each request, or hands it to whoever will. Meant
    /// for a thread of its own: nothing else may delay the answers, since
    /// the kernel holds each exec or open until it has one.
    pub fn serve(&self, stop: BorrowedFd<'_>, mut decide: impl FnMut(Request)) -> io::Result<()> {
        // Refused (a seccomp filter, a kernel without the call): answers
        // then wait for a CPU like any other work, as they did.
        let _ = ask_for_short_slices();
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

/// The slice the gate's thread asks the scheduler for, in nanoseconds (the
/// kernel's shortest).
const GATE_SLICE_NS: u64 = 100_000;

/// Asks the scheduler for short slices for the calling thread (EEVDF's
/// custom slice, Linux 6.12; older kernels ignore it): its deadline when it
/// wakes is then early enough that it preempts a busy CPU's task at once,
/// where with the base slice (3 ms) it could queue behind it for that long
/// while the kernel holds an exec. An event costs the gate microseconds,
/// so the short slice costs it nothing, and its share of the CPU (its nice
/// value, kept as it was) is unchanged.
fn ask_for_short_slices() -> io::Result<()> {
    // SAFETY: sched_getscheduler takes no pointers; 0 is this thread.
    let policy = unsafe { libc::sched_getscheduler(0) };
    if ![libc::SCHED_OTHER, libc::SCHED_BATCH].contains(&policy) {
        // Real-time, or idle: not the fair class's slices to shorten.
        return Ok(());
    }
    Errno::clear();
    // SAFETY: getpriority takes no pointers.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if nice == -1 && Errno::last_raw() != 0 {
        return Err(io::Error::last_os_error());
    }
    let attributes = libc::sched_attr {
        size: std::mem::size_of::<libc::sched_attr>() as u32,
        sched_policy: policy as u32,
        sched_flags: 0,
        sched_nice: nice,
        sched_priority: 0,
        sched_runtime: GATE_SLICE_NS,
        sched_deadline: 0,
        sched_period: 0,
    };
    // SAFETY: `attributes` is a complete `struct sched_attr` that outlives
    // the call, which only reads it; pid 0 is the calling thread.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_sched_setattr,
            0,
            &attributes as *const libc::sched_attr,
            0,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Request {
    /// Answers the kernel; the file's fd is closed after the answer.
    pub fn answer(self, answer: Answer) -> io::Result<()> {
        self.answer_keeping_file(answer).0
    }

    /// Answers the kernel and hands the file back, for what is done with
    /// it once the process is on its way (which then does not delay it).
    pub fn answer_keeping_file(self, answer: Answer) -> (io::Result<()>, File) {
        let Request {
            mut pending, file, ..
        } = self;
        (pending.respond(answer), file)
    }
}

impl PendingAnswer {
    fn respond(&mut self, answer: Answer) -> io::Result<()> {
        self.answered = true;
        // struct fanotify_response: fd i32, response u32.
        let mut response = [0u8; 8];
        response[..4].copy_from_slice(&self.fd.to_ne_bytes());
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
}

impl Request {
    /// Lets the later opens of this file through without asking: an
    /// ignore mark for `FAN_OPEN_PERM` on its inode, kept across writes to
    /// it, dropped when the kernel evicts the inode (so it pins nothing).
    /// Execs of it are still asked. Fails on a kernel before 5.19 (no
    /// evictable marks) or when the group's marks are spent: the opens are
    /// then asked each time, as before.
    pub fn pass_later_opens(&self) -> io::Result<()> {
        sys::fanotify_mark_fd(
            self.pending.group.as_fd(),
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

/// The strings of `argv` whose first bytes one read takes, and how many
/// bytes of each ([`Memory::read_strings`]).
const STRINGS_PER_READ: usize = 64;
const STRING_HEAD: usize = 256;

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
        use std::io::Read;
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
        // The kernel counts a process's threads into the link count of its
        // `task` directory: two plus one per thread (fs/proc/base.c,
        // `proc_task_getattr`). One `stat`, where `status` would be an
        // open, a long formatted read and a close. Asked first, while the
        // process is still on its way to sleep (which its syscall file
        // waits for); the same answer as later: its one thread is held in
        // exec, so only another thread could start one.
        let task = nix::sys::stat::stat(format!("/proc/{}/task", self.pid).as_str())
            .map_err(io::Error::from)?;
        // The kernel says "running" until the task is seen asleep: the
        // event reaches the gate while the task, on another CPU, is still
        // on its way to sleep (or it was woken by a signal it does not die
        // of, and goes back): asked again, at once and then less often.
        // One read each time: the line (nine numbers) is well under the
        // buffer (`fs::read_to_string` would stat the file and read twice).
        let path = format!("/proc/{}/syscall", self.pid);
        let mut line = [0u8; 512];
        let mut length = 0;
        for attempt in 0..200u64 {
            length = File::open(&path)?.read(&mut line)?;
            if !line[..length].starts_with(b"running") {
                break;
            }
            if attempt < 50 {
                std::thread::yield_now();
            } else {
                std::thread::sleep(std::time::Duration::from_micros(100));
            }
        }
        let syscall = String::from_utf8_lossy(&line[..length]);
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
        let memory = Memory(nix::unistd::Pid::from_raw(self.pid));
        // The pointers, a block at a time (up to the page's end), then the
        // strings they point to.
        let mut string_pointers = Vec::new();
        let mut block = [0u8; 512];
        let mut at = argv_at;
        'pointers: loop {
            let page_left = 4096 - (at % 4096) as usize;
            let want = block.len().min(page_left).max(8);
            let read = memory.read_at(&mut block[..want], at)?;
            let whole = read - read % 8;
            if whole == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            for pointer in block[..whole].chunks_exact(8) {
                let string_at = u64::from_ne_bytes(pointer.try_into().expect("8"));
                if string_at == 0 {
                    break 'pointers;
                }
                string_pointers.push(string_at);
                // Each takes a pointer and at least its NUL.
                if string_pointers.len() * 9 > ARGV_BYTES {
                    return Err(invalid("argv is larger than the kernel takes"));
                }
            }
            at += whole as u64;
        }
        let argv = memory.read_strings(&string_pointers, ARGV_BYTES)?;
        Ok(ExecArguments {
            argv,
            other_threads: task.st_nlink > 3,
        })
    }
}

/// The memory of a process, read with `process_vm_readv` (which asks what
/// opening its `/proc/PID/mem` asks: ptrace access to it), without an fd
/// to open and close per exec.
struct Memory(nix::unistd::Pid);

impl Memory {
    /// Reads up to `buffer.len()` bytes at `at`: fewer where the mapping
    /// ends, none (an error) if `at` is not mapped.
    fn read_at(&self, buffer: &mut [u8], at: u64) -> io::Result<usize> {
        let remote = [nix::sys::uio::RemoteIoVec {
            base: usize::try_from(at).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?,
            len: buffer.len(),
        }];
        nix::sys::uio::process_vm_readv(self.0, &mut [io::IoSliceMut::new(buffer)], &remote)
            .map_err(io::Error::from)
    }

    /// The NUL-terminated strings at `pointers`, of at most `limit` bytes
    /// with their pointers and NULs (as the kernel counts them). Their
    /// first bytes are read in one call per [`STRINGS_PER_READ`] strings,
    /// which holds most arguments whole; the rest of a longer one (or of
    /// one after an unmapped address, where a read stops) is read on its
    /// own.
    fn read_strings(&self, pointers: &[u64], limit: usize) -> io::Result<Vec<Vec<u8>>> {
        let too_large = || {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "argv is larger than the kernel takes",
            )
        };
        let mut strings = Vec::with_capacity(pointers.len());
        let mut total = 0usize;
        let mut heads = [0u8; STRINGS_PER_READ * STRING_HEAD];
        for group in pointers.chunks(STRINGS_PER_READ) {
            // Each head up to its page's end, so that a string ending just
            // before an unmapped page reads.
            let lengths: Vec<usize> = group
                .iter()
                .map(|&at| STRING_HEAD.min(4096 - (at % 4096) as usize))
                .collect();
            let remote: Vec<nix::sys::uio::RemoteIoVec> = group
                .iter()
                .zip(&lengths)
                .map(|(&at, &len)| {
                    Ok(nix::sys::uio::RemoteIoVec {
                        base: usize::try_from(at)
                            .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?,
                        len,
                    })
                })
                .collect::<io::Result<_>>()?;
            let mut local: Vec<io::IoSliceMut<'_>> = heads
                .chunks_mut(STRING_HEAD)
                .zip(&lengths)
                .map(|(head, &len)| io::IoSliceMut::new(&mut head[..len]))
                .collect();
            // A fault stops the read where it is: what came before stands.
            let mut read =
                nix::sys::uio::process_vm_readv(self.0, &mut local, &remote).unwrap_or(0);
            drop(local);
            for ((&at, &len), head) in group.iter().zip(&lengths).zip(heads.chunks(STRING_HEAD)) {
                let got = read.min(len);
                read -= got;
                let string = match head[..got].iter().position(|&b| b == 0) {
                    Some(end) => head[..end].to_vec(),
                    None => self.read_string_at(at, limit.saturating_sub(total))?,
                };
                total += string.len() + 1 + 8;
                if total > limit {
                    return Err(too_large());
                }
                strings.push(string);
            }
        }
        Ok(strings)
    }

    /// The NUL-terminated string at `at`, of at most `limit` bytes.
    fn read_string_at(&self, at: u64, limit: usize) -> io::Result<Vec<u8>> {
        let mut string = Vec::new();
        let mut chunk = [0u8; 512];
        loop {
            let offset = at + string.len() as u64;
            // Up to the page's end, so that a string ending just before an
            // unmapped page reads.
            let page_left = 4096 - (offset % 4096) as usize;
            let want = chunk.len().min(page_left);
            let read = self.read_at(&mut chunk[..want], offset)?;
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
}

impl Drop for PendingAnswer {
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
