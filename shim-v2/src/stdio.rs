//! A process's standard streams: containerd's FIFOs, and the console of a
//! process with a terminal.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};

use crate::helper::StdioPaths;

/// Read ends of a process's stdout/stderr FIFOs that the shim holds for
/// the process's lifetime: when containerd restarts (and drops its own read
/// ends), the process's writes do not fail with EPIPE; they wait (the pipe
/// buffer) until containerd reopens them.
pub struct KeptOpen(#[allow(dead_code)] Vec<File>);

pub fn keep_open(paths: &StdioPaths) -> io::Result<KeptOpen> {
    let mut kept = Vec::new();
    for path in [&paths.stdout, &paths.stderr] {
        if !path.is_empty() {
            kept.push(
                OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(path)?,
            );
        }
    }
    Ok(KeptOpen(kept))
}

/// The socket libcontainer sends a terminal's pty master to.
pub struct ConsoleSocket {
    listener: UnixListener,
    pub path: PathBuf,
}

const CONSOLE_TIMEOUT: Duration = Duration::from_secs(10);

impl ConsoleSocket {
    pub fn new() -> io::Result<ConsoleSocket> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        // Short: sun_path holds 108 bytes, containerd's bundle paths are long.
        let path = PathBuf::from(format!(
            "/run/substrate-console-{}-{}.sock",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        listener.set_nonblocking(true)?;
        Ok(ConsoleSocket { listener, path })
    }

    /// Waits for the pty master.
    pub fn receive(self) -> io::Result<OwnedFd> {
        let deadline = Instant::now() + CONSOLE_TIMEOUT;
        let stream = loop {
            match self.listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(e),
            }
        };
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(CONSOLE_TIMEOUT))?;
        let mut buf = [0u8; 256];
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        // Room for one fd: the kernel closes any more than fit (and sets
        // MSG_CTRUNC), so a sender passing several cannot fill our table.
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        recvmsg(&stream, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)?;
        // Every fd received is owned here; all but the first are closed
        // when the iterator drops them.
        let master = control
            .drain()
            .filter_map(|message| match message {
                RecvAncillaryMessage::ScmRights(fds) => Some(fds),
                _ => None,
            })
            .flatten()
            .next();
        master.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "no pty master on the console socket",
            )
        })
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A terminal process's pty master, copied to and from containerd's FIFOs
/// by two threads.
pub struct Console {
    master: File,
}

impl Console {
    pub fn start(master: OwnedFd, paths: &StdioPaths) -> io::Result<Console> {
        let master = File::from(master);
        if !paths.stdout.is_empty() {
            let mut from = master.try_clone()?;
            let mut to = OpenOptions::new().write(true).open(&paths.stdout)?;
            std::thread::spawn(move || copy(&mut from, &mut to));
        }
        if !paths.stdin.is_empty() {
            let mut to = master.try_clone()?;
            let mut from = open_fifo_for_reading(&paths.stdin)?;
            std::thread::spawn(move || copy(&mut from, &mut to));
        }
        Ok(Console { master })
    }

    pub fn resize(&self, width: u32, height: u32) -> io::Result<()> {
        let size = rustix::termios::Winsize {
            ws_row: height.try_into().unwrap_or(u16::MAX),
            ws_col: width.try_into().unwrap_or(u16::MAX),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        Ok(rustix::termios::tcsetwinsize(&self.master, size)?)
    }
}

/// Opens a FIFO for reading without waiting for a writer, then makes its
/// reads blocking.
pub fn open_fifo_for_reading(path: &str) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let flags = nix::fcntl::fcntl(file.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFL)?;
    let flags = nix::fcntl::OFlag::from_bits_truncate(flags) & !nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(file.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(flags))?;
    Ok(file)
}

/// Until either side ends (EIO from a master whose slave is closed).
fn copy(from: &mut File, to: &mut File) {
    let mut buf = [0u8; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}
