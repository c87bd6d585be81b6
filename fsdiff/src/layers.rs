//! What overlayfs writes into its layers, and lookups in the lower layers.
//!
//! Everything here is relative to an open directory fd and never follows a
//! symlink (`AT_SYMLINK_NOFOLLOW`, `O_NOFOLLOW`), so no lookup leaves the
//! layer it started in.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, Statx, StatxFlags};
use rustix::io::Errno;

use super::error::FsDiffError;

/// The xattr namespaces overlayfs uses: `trusted.` by default, `user.` on
/// `userxattr` mounts. Names under them that start with another `overlay.`
/// are escaped attributes of a nested overlay and are not ours.
const XATTR_PREFIXES: [&[u8]; 2] = [b"trusted.overlay.", b"user.overlay."];

/// The overlay xattrs of one inode that the diff cares about.
#[derive(Debug, Default)]
pub(super) struct OvlAttrs {
    /// `overlay.opaque` = `y`: the directory hides the lower directories.
    pub opaque: bool,
    /// `overlay.opaque` = `x`: not opaque, but holds xattr whiteouts.
    pub xwhiteouts: bool,
    /// `overlay.redirect`: a renamed directory's (or a metacopy file's data)
    /// origin, absolute from the layer root or relative to the parent.
    pub redirect: Option<Vec<u8>>,
    /// `overlay.metacopy`: the upper file holds metadata only; the data is the
    /// lower file's.
    pub metacopy: bool,
    /// `overlay.whiteout` on a zero-size file (in an `opaque=x` directory).
    pub whiteout: bool,
}

/// Reads the overlay xattrs of an open file: one `flistxattr`, and one
/// `fgetxattr` per overlay attribute that is present.
pub(super) fn read_ovl_attrs(fd: BorrowedFd<'_>, buf: &mut Vec<u8>) -> io::Result<OvlAttrs> {
    let mut attrs = OvlAttrs::default();
    if buf.len() < 1024 {
        buf.resize(1024, 0);
    }
    let len = loop {
        match rustix::fs::flistxattr(fd, &mut buf[..]) {
            Ok(len) => break len,
            Err(Errno::RANGE) => {
                let need = rustix::fs::flistxattr_query(fd)?;
                buf.resize(need.max(buf.len() * 2), 0);
            }
            // A filesystem without xattrs has no overlay attributes either.
            Err(Errno::NOTSUP) => return Ok(attrs),
            Err(err) => return Err(err.into()),
        }
    };
    let list = buf[..len].to_vec();
    // `trusted.` wins over `user.`: a privileged mount never reads `user.overlay.*`.
    for prefix in XATTR_PREFIXES.iter().rev() {
        for name in list.split(|&b| b == 0) {
            let Some(key) = name.strip_prefix(*prefix) else {
                continue;
            };
            let value = |buf: &mut Vec<u8>| read_xattr(fd, name, buf);
            match key {
                b"opaque" => {
                    let v = value(buf)?;
                    attrs.opaque = v == b"y";
                    attrs.xwhiteouts = v == b"x";
                }
                b"redirect" => attrs.redirect = Some(value(buf)?),
                b"metacopy" => attrs.metacopy = true,
                b"whiteout" => attrs.whiteout = true,
                _ => {}
            }
        }
    }
    Ok(attrs)
}

fn read_xattr(fd: BorrowedFd<'_>, name: &[u8], buf: &mut Vec<u8>) -> io::Result<Vec<u8>> {
    let name = OsStr::from_bytes(name);
    loop {
        match rustix::fs::fgetxattr(fd, name, &mut buf[..]) {
            Ok(len) => return Ok(buf[..len].to_vec()),
            Err(Errno::RANGE) => {
                let need = rustix::fs::fgetxattr_query(fd, name)?;
                buf.resize(need.max(buf.len() * 2), 0);
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// `lstat` of `name` in `dir`.
pub(super) fn lstat_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Statx> {
    Ok(rustix::fs::statx(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    )?)
}

/// Opens a directory below `dir` for reading, refusing symlinks.
pub(super) fn open_dir_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens a regular file below `dir` for reading, refusing symlinks. The
/// non-blocking flag keeps a file swapped for a fifo from hanging the diff;
/// `O_NOATIME` keeps the diff from writing access times into the layers it
/// reads (it needs ownership or CAP_FOWNER, hence the retry without it).
pub(super) fn open_file_at(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<OwnedFd> {
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    match rustix::fs::openat(dir, name, flags | OFlags::NOATIME, Mode::empty()) {
        Err(Errno::PERM) => Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?),
        other => Ok(other?),
    }
}

/// `fstat` of an open file.
pub(super) fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<Statx> {
    Ok(rustix::fs::statx(
        fd,
        "",
        AtFlags::EMPTY_PATH,
        StatxFlags::BASIC_STATS,
    )?)
}

/// A whiteout as overlayfs makes it: a character device 0/0.
pub(super) fn is_chardev_whiteout(st: &Statx) -> bool {
    FileType::from_raw_mode(st.stx_mode.into()) == FileType::CharacterDevice
        && st.stx_rdev_major == 0
        && st.stx_rdev_minor == 0
}

/// One lower layer's directory that is part of a merged lower directory.
#[derive(Debug)]
pub(super) struct LowerDir {
    /// Index into the caller's `lowers`.
    pub layer: usize,
    pub fd: OwnedFd,
    /// The directory is marked `opaque=x`: zero-size files in it may be
    /// xattr whiteouts.
    pub xwhiteouts: bool,
}

/// A merged lower directory: the layers' directories at one path, top-most
/// first, as overlayfs would merge them.
pub(super) type Ctx = Arc<Vec<LowerDir>>;

/// The top-most visible lower entry at a name.
#[derive(Debug)]
pub(super) struct Found {
    /// Index into the `Ctx` it was found in.
    pub pos: usize,
    pub st: Statx,
}

/// The lower layers: their roots (for error messages and absolute redirects).
#[derive(Debug)]
pub(super) struct Layers {
    pub roots: Vec<PathBuf>,
    pub root_fds: Vec<OwnedFd>,
}

impl Layers {
    pub fn open(lowers: &[PathBuf]) -> Result<Self, FsDiffError> {
        let mut root_fds = Vec::with_capacity(lowers.len());
        for root in lowers {
            let fd = open_root(root).map_err(|source| FsDiffError::LayerRoot {
                path: root.clone(),
                source,
            })?;
            root_fds.push(fd);
        }
        Ok(Layers {
            roots: lowers.to_vec(),
            root_fds,
        })
    }

    /// The merged lower root directory.
    pub fn root_ctx(&self, xattr_buf: &mut Vec<u8>) -> Result<Ctx, FsDiffError> {
        let mut dirs = Vec::with_capacity(self.root_fds.len());
        for (layer, fd) in self.root_fds.iter().enumerate() {
            let fd = fd
                .try_clone()
                .map_err(|source| self.err(layer, b"", source))?;
            let attrs = read_ovl_attrs(fd.as_fd(), xattr_buf)
                .map_err(|source| self.err(layer, b"", source))?;
            dirs.push(LowerDir {
                layer,
                fd,
                xwhiteouts: attrs.xwhiteouts,
            });
        }
        Ok(Arc::new(dirs))
    }

    /// The error for `world_path` (`/a/b`, or empty for the root) in `layer`.
    pub fn err(&self, layer: usize, world_path: &[u8], source: io::Error) -> FsDiffError {
        FsDiffError::Lower {
            path: join_world(&self.roots[layer], world_path),
            source,
        }
    }

    /// Looks `name` up in the merged lower directory `ctx`, whose world path
    /// is the parent of `world_path`: the top-most entry, unless a whiteout
    /// hides it.
    pub fn lookup(
        &self,
        ctx: &[LowerDir],
        name: &OsStr,
        world_path: &[u8],
        xattr_buf: &mut Vec<u8>,
    ) -> Result<Option<Found>, FsDiffError> {
        for (pos, dir) in ctx.iter().enumerate() {
            let st = match lstat_at(dir.fd.as_fd(), name) {
                Ok(st) => st,
                Err(err) if is_absent(&err) => continue,
                Err(err) => return Err(self.err(dir.layer, world_path, err)),
            };
            if self
                .is_whiteout(dir, name, &st, xattr_buf)
                .map_err(|err| self.err(dir.layer, world_path, err))?
            {
                return Ok(None);
            }
            return Ok(Some(Found { pos, st }));
        }
        Ok(None)
    }

    /// The merged lower directory below `ctx` at `name`, given that its
    /// top-most entry `top` is a directory: that directory and the ones under
    /// it in lower layers, down to the first opaque one, a whiteout or a
    /// non-directory.
    pub fn descend(
        &self,
        ctx: &[LowerDir],
        name: &OsStr,
        top: &Found,
        world_path: &[u8],
        xattr_buf: &mut Vec<u8>,
    ) -> Result<Ctx, FsDiffError> {
        let mut dirs = Vec::new();
        for (pos, parent) in ctx.iter().enumerate().skip(top.pos) {
            let err = |source| self.err(parent.layer, world_path, source);
            if pos != top.pos {
                let st = match lstat_at(parent.fd.as_fd(), name) {
                    Ok(st) => st,
                    Err(e) if is_absent(&e) => continue,
                    Err(e) => return Err(err(e)),
                };
                if FileType::from_raw_mode(st.stx_mode.into()) != FileType::Directory {
                    // A whiteout or a file ends the merge as surely as an
                    // opaque directory does.
                    break;
                }
            }
            let fd = open_dir_at(parent.fd.as_fd(), name).map_err(err)?;
            let attrs = read_ovl_attrs(fd.as_fd(), xattr_buf).map_err(err)?;
            dirs.push(LowerDir {
                layer: parent.layer,
                fd,
                xwhiteouts: attrs.xwhiteouts,
            });
            if attrs.opaque {
                break;
            }
        }
        Ok(Arc::new(dirs))
    }

    /// The merged lower directory at the absolute world path `abs`, walking
    /// down from the merged root `root`; `None` unless every component is a
    /// directory there.
    pub fn ctx_at(
        &self,
        root: &Ctx,
        abs: &[u8],
        xattr_buf: &mut Vec<u8>,
    ) -> Result<Option<Ctx>, FsDiffError> {
        let mut cur = Arc::clone(root);
        let mut walked = Vec::with_capacity(abs.len());
        for comp in abs.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            walked.push(b'/');
            walked.extend_from_slice(comp);
            let name = OsStr::from_bytes(comp);
            let Some(found) = self.lookup(&cur, name, &walked, xattr_buf)? else {
                return Ok(None);
            };
            if FileType::from_raw_mode(found.st.stx_mode.into()) != FileType::Directory {
                return Ok(None);
            }
            cur = self.descend(&cur, name, &found, &walked, xattr_buf)?;
        }
        Ok(Some(cur))
    }

    /// The names of the merged lower directory `ctx` (whose world path is
    /// `world_dir`), sorted, each with the `ctx` position of the layer whose
    /// entry is visible. Whiteouts are not names.
    pub fn list_merged(
        &self,
        ctx: &[LowerDir],
        world_dir: &[u8],
        xattr_buf: &mut Vec<u8>,
    ) -> Result<Vec<(Vec<u8>, usize)>, FsDiffError> {
        // name -> Some(pos) visible, None whited out by a higher lower layer.
        let mut seen: std::collections::HashMap<Vec<u8>, Option<usize>> = Default::default();
        let mut dirent_buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 32 << 10];
        for (pos, dir) in ctx.iter().enumerate() {
            let err = |source| self.err(dir.layer, world_dir, source);
            let fd = open_dir_at(dir.fd.as_fd(), OsStr::new(".")).map_err(err)?;
            let mut entries = RawDir::new(&fd, &mut dirent_buf);
            while let Some(entry) = entries.next() {
                let entry = entry.map_err(|e| err(e.into()))?;
                let name = entry.file_name().to_bytes();
                if name == b"." || name == b".." || seen.contains_key(name) {
                    continue;
                }
                let maybe_whiteout = match entry.file_type() {
                    FileType::CharacterDevice | FileType::Unknown => true,
                    FileType::RegularFile => dir.xwhiteouts,
                    _ => false,
                };
                let mut visible = true;
                if maybe_whiteout {
                    let os = OsStr::from_bytes(name);
                    let st = lstat_at(dir.fd.as_fd(), os).map_err(err)?;
                    visible = !self.is_whiteout(dir, os, &st, xattr_buf).map_err(err)?;
                }
                seen.insert(name.to_vec(), visible.then_some(pos));
            }
        }
        let mut names: Vec<(Vec<u8>, usize)> = seen
            .into_iter()
            .filter_map(|(name, pos)| Some((name, pos?)))
            .collect();
        names.sort_unstable();
        Ok(names)
    }

    /// The first lower layer that has a regular file at the absolute
    /// (layer-root relative) path `abs`, opened: where a metacopy file's
    /// `redirect` points for its data.
    pub fn open_data(&self, abs: &[u8]) -> Option<OwnedFd> {
        let components: Vec<&[u8]> = abs
            .split(|&b| b == b'/')
            .filter(|c| !c.is_empty())
            .collect();
        let (last, dirs) = components.split_last()?;
        'layers: for root in &self.root_fds {
            let mut cur: Option<OwnedFd> = None;
            for comp in dirs {
                let at = cur.as_ref().map_or(root.as_fd(), |fd| fd.as_fd());
                match open_dir_at(at, OsStr::from_bytes(comp)) {
                    Ok(fd) => cur = Some(fd),
                    Err(_) => continue 'layers,
                }
            }
            let at = cur.as_ref().map_or(root.as_fd(), |fd| fd.as_fd());
            let name = OsStr::from_bytes(last);
            match lstat_at(at, name) {
                Ok(st) if FileType::from_raw_mode(st.stx_mode.into()) == FileType::RegularFile => {
                    if let Ok(fd) = open_file_at(at, name) {
                        return Some(fd);
                    }
                }
                _ => {}
            }
        }
        None
    }

    fn is_whiteout(
        &self,
        dir: &LowerDir,
        name: &OsStr,
        st: &Statx,
        xattr_buf: &mut Vec<u8>,
    ) -> io::Result<bool> {
        if is_chardev_whiteout(st) {
            return Ok(true);
        }
        if dir.xwhiteouts
            && st.stx_size == 0
            && FileType::from_raw_mode(st.stx_mode.into()) == FileType::RegularFile
        {
            let fd = open_file_at(dir.fd.as_fd(), name)?;
            return Ok(read_ovl_attrs(fd.as_fd(), xattr_buf)?.whiteout);
        }
        Ok(false)
    }
}

fn open_root(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// `ENOENT`, or `ENOTDIR` (a path component is not a directory).
pub(super) fn is_absent(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

/// `root` joined with a world path (`/a/b`; empty is the root itself).
pub(super) fn join_world(root: &Path, world_path: &[u8]) -> PathBuf {
    let rel = world_path.strip_prefix(b"/").unwrap_or(world_path);
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}
