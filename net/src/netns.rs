//! Network namespaces, held by an open fd and entered by a thread of its
//! own: `setns` moves only the calling thread, and a socket belongs for its
//! whole life to the namespace of the thread that opened it. So a monitor in
//! the host's namespace can hold sockets inside a world's (its resolver, its
//! NFLOG reader, its nftables batches) without ever leaving its own.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::sched::{setns, unshare, CloneFlags};

/// A network namespace, kept alive for as long as this is held.
#[derive(Debug)]
pub struct NetNs {
    file: File,
}

impl NetNs {
    /// The namespace of the process `pid` (a world's init).
    pub fn of_pid(pid: i32) -> io::Result<NetNs> {
        NetNs::open(format!("/proc/{pid}/ns/net"))
    }

    /// The namespace at `path` (`/proc/PID/ns/net`, a bind-mounted one such
    /// as CNI's `/var/run/netns/NAME`).
    pub fn open(path: impl AsRef<Path>) -> io::Result<NetNs> {
        let file = File::open(path.as_ref())?;
        Ok(NetNs { file })
    }

    /// The calling thread's own namespace.
    pub fn current() -> io::Result<NetNs> {
        NetNs::open("/proc/thread-self/ns/net")
    }

    /// A new, empty namespace (only a `lo`, down), alive while this is held:
    /// what tests make their hosts from.
    pub fn new_anonymous() -> io::Result<NetNs> {
        std::thread::scope(|s| {
            s.spawn(|| {
                unshare(CloneFlags::CLONE_NEWNET)?;
                NetNs::current()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("netns thread panicked")))
        })
    }

    /// The namespace's inode: equal inodes, same namespace.
    pub fn inode(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.ino())
    }

    /// Whether this is the namespace the calling thread is in.
    pub fn is_current(&self) -> io::Result<bool> {
        Ok(self.inode()? == std::fs::metadata("/proc/thread-self/ns/net")?.ino())
    }

    /// Runs `f` on a thread that has entered this namespace, and returns
    /// what it returns. Sockets `f` opens stay in this namespace after it
    /// returns; the calling thread never moves.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET)?;
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("a thread in a network namespace panicked")))
        })
    }

    /// Clones the handle (another fd on the same namespace).
    pub fn try_clone(&self) -> io::Result<NetNs> {
        Ok(NetNs {
            file: self.file.try_clone()?,
        })
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}
