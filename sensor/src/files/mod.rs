//! What a world's programs do to its files, from fanotify on the world's own
//! upper filesystem: seen in the kernel, so static binaries, raw system
//! calls and io_uring leave their trace like any other program.
//!
//! fanotify refuses FID reporting on an overlayfs mount (measured on 6.18),
//! but a world's upper layer lives on a filesystem of its own (an ext4 loop
//! image mounted at `<world dir>/layer`, holding `upper/` and `work/`; see
//! `runtime/src/upper_fs.rs`), and everything the overlay changes lands
//! there: [`FileWatch`] marks that whole filesystem
//! (`FAN_MARK_FILESYSTEM`), and translates what the kernel reports about
//! `upper/` and `work/` back into what the program did, by the path inside
//! the world (see `translate.rs` for the overlay internals taken out).
//!
//! ```no_run
//! use std::path::Path;
//! use substrate_sensor::files::FileWatch;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let layer = Path::new("/var/lib/substrate/worlds/w1/layer");
//! // Before the world's init starts: what happens before is not seen.
//! let mut watch = FileWatch::new(layer, &layer.join("upper"), &layer.join("work"))?;
//! loop {
//!     watch.wait(None)?; // or poll `watch.as_fd()` with the other sources
//!     let read = watch.read()?;
//!     for event in &read.events {
//!         println!("{} {:?} {}", event.pid, event.op, String::from_utf8_lossy(&event.path));
//!     }
//!     if read.overflows > 0 { /* record the loss */ }
//! }
//! # }
//! ```
//!
//! What is seen:
//!
//! - Creating files, dirs, symlinks, hard links and nodes; writing and
//!   truncating; deleting; renaming; chmod, chown and other metadata
//!   changes (times, xattrs); opening a file of the upper layer to run it
//!   (`OPEN_EXEC`). Each with the process (thread group) id that did it, as
//!   the monitor's pid namespace sees it.
//! - Changes to lower-layer files: the overlay copies the file up first,
//!   so the change lands on the upper filesystem (reported as the program's
//!   write or chmod, not as a creation).
//! - A file created and deleted at once: both, though nothing is left of
//!   it in the upper layer.
//! - Deleting what the lower layers have (overlay puts a whiteout in its
//!   place), and making it again (over the whiteout; a dir made so is
//!   opaque, hiding the lower one's entries): a Delete or Rmdir, then a
//!   Create or Mkdir. Overlay refuses to rename a dir the lower layers have
//!   (EXDEV), so programs copy it and delete it: that is what is reported.
//! - Each path where its directory was when the event happened, however
//!   the dirs were renamed before it was read (but for a dir made before
//!   the watch began: it is looked up once, where it is then).
//!
//! What is not:
//!
//! - Reads, and files opened only for reading: neither the upper
//!   filesystem's events asked for, nor changes.
//! - Anything on the lower layers, which live on other filesystems: running
//!   a lower-layer program is not an `ExecOpen` (the proc connector reports
//!   every exec).
//! - Writes through a shared `mmap` make no MODIFY: the close of a file
//!   opened for writing is reported as a Write when no MODIFY came since the
//!   last close.
//! - A directory's times and xattrs: overlayfs changes those itself on every
//!   copy-up and whiteout, so a directory's ATTRIB is reported only when its
//!   mode or owner changed from what was last seen.
//! - A hard link to a file the watch never saw named (made before it
//!   started) is reported as a Create.
//! - A chmod/chown is told from a touch by comparing the inode with what was
//!   last seen of it. A file created and changed before its creation was
//!   read, or a lower file with the lower dirs not given
//!   ([`FileWatch::with_lower_dirs`]), has nothing to compare with: its
//!   ATTRIB is reported as [`FileChange::Metadata`] (for a dir, not at all).
//! - The kernel's queue holds 16384 events (`fs.fanotify.max_queued_events`);
//!   past that it drops events and says so once ([`FileEvents::overflows`]).
//!
//! ext4 and tmpfs as the upper filesystem report the same events (measured
//! on 6.18; the handles differ in size only). Needs root:
//! `CAP_SYS_ADMIN` for a filesystem mark, `CAP_DAC_READ_SEARCH` for
//! `open_by_handle_at`; Linux 5.17 or later (`FAN_RENAME`,
//! `FAN_REPORT_TARGET_FID`) and 6.5 or later (`AT_HANDLE_FID`).

#[cfg(test)]
mod proptests;
pub(crate) mod sys;
mod translate;
mod tree;
mod wire;

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::FileStat;

pub use wire::{
    parse_events, EntryRole, FileHandle, InfoRecord, ParseError, Parsed, RawEvent, MAX_HANDLE_LEN,
    METADATA_LEN,
};

use translate::{Kind, Lookup, Output, Stat, Translator};
use tree::{Ancestry, DirTree};

/// What a program did to a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileChange {
    /// A regular file was created (`open(O_CREAT)`, `O_TMPFILE` linked in).
    Create,
    Mkdir,
    Symlink,
    /// A new name for a file already in the world (`link`).
    Link,
    /// A fifo, socket or device node.
    Mknod,
    /// Written or truncated; one per (process, file) until the process
    /// closes it, however many writes.
    Write,
    Delete,
    Rmdir,
    /// `path` was renamed to `new_path` (replacing what was there).
    Rename,
    /// Mode changed to `mode` (permission bits).
    Chmod {
        mode: u32,
    },
    /// Owner changed to `uid`:`gid`.
    Chown {
        uid: u32,
        gid: u32,
    },
    /// Other metadata (times, xattrs), or a mode/owner change not told apart.
    Metadata,
    /// The file was opened to be run (`execve`, `uselib`): upper-layer
    /// files only.
    ExecOpen,
}

/// One thing a program did to a file of its world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEvent {
    /// The process (thread group) that did it, in the monitor's pid
    /// namespace (the host's pid); 0 if it is not visible there.
    pub pid: i32,
    pub op: FileChange,
    /// The path inside the world, `/`-rooted: the kernel's bytes, not
    /// necessarily UTF-8.
    pub path: Vec<u8>,
    /// For [`FileChange::Rename`]: where it went.
    pub new_path: Option<Vec<u8>>,
    /// Whether it is (or was) a directory.
    pub is_dir: bool,
}

/// What one [`FileWatch::read`] found.
#[derive(Debug, Default)]
pub struct FileEvents {
    pub events: Vec<FileEvent>,
    /// `FAN_Q_OVERFLOW`s read: each time, the kernel's queue was full and
    /// it dropped the events that followed (how many, it does not say).
    pub overflows: u32,
    /// Kernel events about a directory that was gone before it could be
    /// placed (one made before the watch, removed before its event was
    /// read): what they said is not known.
    pub unplaced: u32,
    /// Kernel records that did not parse (never seen: a kernel bug or an
    /// ABI this parser does not know), skipped.
    pub garbled: Vec<ParseError>,
}

/// Failures of the file watch.
#[derive(Debug, thiserror::Error)]
pub enum FileWatchError {
    #[error("cannot resolve {}: {source}", path.display())]
    Path {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not on the upper filesystem mounted at {}", path.display(), layer.display())]
    NotInLayer { path: PathBuf, layer: PathBuf },
    /// A filesystem mark on a dir that is no mount point would watch the
    /// whole filesystem it is on (the host's root, say).
    #[error("{} is not a mount point", layer.display())]
    NotAMountPoint { layer: PathBuf },
    #[error("cannot create a fanotify group reporting file handles (needs CAP_SYS_ADMIN, Linux 5.17 or later): {0}")]
    Init(#[source] Errno),
    #[error("cannot mark the filesystem of {} (fanotify refuses FID marks on overlayfs: give the filesystem holding its upper dir): {source}", path.display())]
    Mark {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("cannot take the file handle of {} (needs Linux 6.5 or later for AT_HANDLE_FID): {source}", path.display())]
    Handle {
        path: PathBuf,
        #[source]
        source: Errno,
    },
    #[error("cannot poll the fanotify group: {0}")]
    Poll(#[source] Errno),
    #[error("cannot read the fanotify group: {0}")]
    Read(#[source] Errno),
}

/// Events asked for. FAN_RENAME rather than MOVED_FROM/MOVED_TO: fanotify
/// has no rename cookie, and FAN_RENAME carries both names in one event.
const MASK: u64 = libc::FAN_CREATE
    | libc::FAN_MODIFY
    | libc::FAN_CLOSE_WRITE
    | libc::FAN_DELETE
    | libc::FAN_ATTRIB
    | libc::FAN_OPEN_EXEC
    | libc::FAN_RENAME
    | libc::FAN_ONDIR;

/// Read buffer: an event is at most a few hundred bytes (three handles of
/// at most 128 bytes and a name of at most 255).
const BUFFER: usize = 64 << 10;

/// Reads per [`FileWatch::read`] at most, so that a busy world cannot keep
/// the caller in it for ever.
const MAX_READS_PER_CALL: usize = 64;

/// A fanotify group watching one world's upper filesystem. See the module
/// doc.
#[derive(Debug)]
pub struct FileWatch {
    group: OwnedFd,
    fs: LayerFs,
    translator: Translator,
    buf: Vec<u8>,
}

impl FileWatch {
    /// Watches the filesystem mounted at `layer`, which holds the overlay's
    /// `upper` and `work` dirs. Start it before the world's processes: what
    /// happens before is not seen.
    pub fn new(layer: &Path, upper: &Path, work: &Path) -> Result<Self, FileWatchError> {
        let canonical = |path: &Path| {
            std::fs::canonicalize(path).map_err(|source| FileWatchError::Path {
                path: path.to_owned(),
                source,
            })
        };
        let layer = canonical(layer)?;
        let upper = canonical(upper)?;
        let work = canonical(work)?;
        let metadata = |path: &Path| {
            std::fs::symlink_metadata(path).map_err(|source| FileWatchError::Path {
                path: path.to_owned(),
                source,
            })
        };
        let layer_meta = metadata(&layer)?;
        if layer != Path::new("/") && metadata(&layer.join(".."))?.dev() == layer_meta.dev() {
            return Err(FileWatchError::NotAMountPoint { layer });
        }
        for dir in [&upper, &work] {
            if !dir.starts_with(&layer) || metadata(dir)?.dev() != layer_meta.dev() {
                return Err(FileWatchError::NotInLayer {
                    path: dir.clone(),
                    layer: layer.clone(),
                });
            }
        }

        let group = sys::fanotify_init(
            libc::FAN_CLASS_NOTIF
                | libc::FAN_CLOEXEC
                | libc::FAN_NONBLOCK
                | libc::FAN_REPORT_DFID_NAME
                | libc::FAN_REPORT_FID
                | libc::FAN_REPORT_TARGET_FID,
            (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_LARGEFILE) as u32,
        )
        .map_err(FileWatchError::Init)?;
        sys::fanotify_mark(
            group.as_fd(),
            libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM,
            MASK,
            &layer,
        )
        .map_err(|source| FileWatchError::Mark {
            path: layer.clone(),
            source,
        })?;

        // Not O_PATH: open_by_handle_at refuses an O_PATH mount fd.
        let mount = OwnedFd::from(File::open(&layer).map_err(|source| FileWatchError::Path {
            path: layer.clone(),
            source,
        })?);
        let prefix = fd_path(mount.as_fd()).map_err(|source| FileWatchError::Path {
            path: layer.clone(),
            source: source.into(),
        })?;
        let handle = |path: &Path| {
            let c_path = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL);
            c_path
                .and_then(|p| sys::handle_at(mount.as_fd(), &p, 0))
                .map_err(|source| FileWatchError::Handle {
                    path: path.to_owned(),
                    source,
                })
        };
        let upper_handle = handle(&upper)?;
        let tree = DirTree::new(handle(&layer)?, upper_handle.clone(), handle(&work)?);
        let mut translator = Translator::new(tree);
        // The upper root's mode and owner, for its first chmod or chown.
        let upper_meta = metadata(&upper)?;
        translator.note_attrs(&upper_handle, stat_of(&upper_meta));
        Ok(FileWatch {
            group,
            fs: LayerFs {
                mount,
                prefix,
                lowers: Vec::new(),
            },
            translator,
            buf: vec![0; BUFFER],
        })
    }

    /// The overlay's lower dirs, topmost first: where a copied-up file's
    /// mode and owner before the program's chmod or chown are read, and
    /// what tells a deleted lower dir from a file.
    pub fn with_lower_dirs(mut self, lowers: impl IntoIterator<Item = PathBuf>) -> Self {
        self.fs.lowers = lowers.into_iter().collect();
        self
    }

    /// Waits up to `timeout` (`None`: for ever) for events; `true` once
    /// there are some to [`read`](FileWatch::read).
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, FileWatchError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let wait = match deadline {
                None => PollTimeout::NONE,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    // Round up so a sub-millisecond wait is not a busy loop.
                    let ms = left.as_nanos().div_ceil(1_000_000);
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
                }
            };
            let mut fds = [PollFd::new(self.group.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, wait) {
                Ok(0) => return Ok(false),
                Ok(_) => return Ok(true),
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(FileWatchError::Poll(e)),
            }
        }
    }

    /// The events queued now, translated; never blocks. Events the kernel
    /// dropped or that could not be read are counted in the result, never
    /// left out silently.
    pub fn read(&mut self) -> Result<FileEvents, FileWatchError> {
        let mut out = Output::default();
        let mut garbled = Vec::new();
        let mut drained = false;
        for _ in 0..MAX_READS_PER_CALL {
            let len = match nix::unistd::read(self.group.as_raw_fd(), &mut self.buf) {
                Ok(len) => len,
                Err(Errno::EINTR) => continue,
                Err(Errno::EAGAIN) => {
                    drained = true;
                    break;
                }
                Err(e) => return Err(FileWatchError::Read(e)),
            };
            let parsed = parse_events(&self.buf[..len]);
            // FID groups get no fds (FAN_NOFD), but whatever the kernel
            // hands over is ours to close.
            for fd in &parsed.fds {
                sys::close_event_fd(*fd);
            }
            garbled.extend(parsed.errors);
            for event in &parsed.events {
                self.translator.event(event, &mut self.fs, &mut out);
            }
        }
        if drained {
            // Read empty: whatever waits for a partner event will not get
            // it (overlay queues both in one system call).
            self.translator.drained(&mut self.fs, &mut out);
        } else {
            self.translator.carry_over();
        }
        Ok(FileEvents {
            events: out.events,
            overflows: out.overflows,
            unplaced: out.unplaced,
            garbled,
        })
    }
}

impl AsFd for FileWatch {
    /// The fanotify group, for a monitor that polls it with other fds; read
    /// it only through [`FileWatch::read`].
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.group.as_fd()
    }
}

/// The upper filesystem, as translation asks about it.
#[derive(Debug)]
struct LayerFs {
    /// Its root, opened (not O_PATH): the mount fd of `open_by_handle_at`.
    mount: OwnedFd,
    /// Its root's path as `/proc/self/fd` shows it.
    prefix: Vec<u8>,
    lowers: Vec<PathBuf>,
}

/// Where `fd` is, as the kernel names it (`/proc/self/fd/N`).
fn fd_path(fd: BorrowedFd<'_>) -> Result<Vec<u8>, Errno> {
    let link = nix::fcntl::readlink(format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str())?;
    Ok(link.into_encoded_bytes())
}

fn kind_of(mode: u32) -> Option<Kind> {
    Some(match mode & libc::S_IFMT {
        libc::S_IFREG => Kind::File,
        libc::S_IFDIR => Kind::Dir,
        libc::S_IFLNK => Kind::Symlink,
        libc::S_IFIFO => Kind::Fifo,
        libc::S_IFSOCK => Kind::Socket,
        libc::S_IFCHR => Kind::CharDevice,
        libc::S_IFBLK => Kind::BlockDevice,
        _ => return None,
    })
}

fn stat_of(metadata: &std::fs::Metadata) -> Stat {
    Stat {
        kind: kind_of(metadata.mode()).unwrap_or(Kind::File),
        mode: metadata.mode() & 0o7777,
        uid: metadata.uid(),
        gid: metadata.gid(),
        ino: metadata.ino(),
        rdev: metadata.rdev(),
    }
}

fn stat_from(st: &FileStat) -> Option<Stat> {
    Some(Stat {
        kind: kind_of(st.st_mode)?,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        ino: st.st_ino,
        rdev: st.st_rdev,
    })
}

impl Lookup for LayerFs {
    fn stat(&mut self, handle: &FileHandle) -> Option<Stat> {
        // O_PATH: any inode, symlinks included, opened for fstat only.
        let fd =
            sys::open_by_handle(self.mount.as_fd(), handle, libc::O_PATH | libc::O_CLOEXEC).ok()?;
        let st = nix::sys::stat::fstat(fd.as_raw_fd()).ok()?;
        stat_from(&st)
    }

    fn ancestry(&mut self, dir: &FileHandle) -> Option<Ancestry> {
        let fd = sys::open_by_handle(
            self.mount.as_fd(),
            dir,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
        .ok()?;
        if nix::sys::stat::fstat(fd.as_raw_fd()).ok()?.st_nlink == 0 {
            return None; // removed: its path would end in " (deleted)"
        }
        let path = fd_path(fd.as_fd()).ok()?;
        let relative = if path == self.prefix {
            &[][..]
        } else if self.prefix == b"/" {
            path.strip_prefix(b"/")?
        } else {
            path.strip_prefix(self.prefix.as_slice())?
                .strip_prefix(b"/")?
        };
        // Each ancestor's handle, looked up by its path now.
        let mut chain = Vec::new();
        let mut so_far = Vec::new();
        for name in relative.split(|&b| b == b'/').filter(|n| !n.is_empty()) {
            if !so_far.is_empty() {
                so_far.push(b'/');
            }
            so_far.extend_from_slice(name);
            let c_path = CString::new(so_far.clone()).ok()?;
            let handle = sys::handle_at(self.mount.as_fd(), &c_path, 0).ok()?;
            chain.push((handle, name.to_vec()));
        }
        Some(chain)
    }

    fn lower(&mut self, path: &[u8]) -> Option<Stat> {
        let relative = std::ffi::OsStr::from_bytes(path.strip_prefix(b"/").unwrap_or(path));
        for lower in &self.lowers {
            match std::fs::symlink_metadata(lower.join(relative)) {
                Ok(metadata) => {
                    let stat = stat_of(&metadata);
                    // A whiteout in an upper lower layer hides the rest.
                    return (!stat.is_whiteout()).then_some(stat);
                }
                Err(_) => continue,
            }
        }
        None
    }
}
