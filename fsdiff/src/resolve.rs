//! Turning one non-directory name into an entry: stat it, compare it with the
//! lower layers, hash it. Runs on the worker threads, one item at a time.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{FileType, Statx};
use sha2::{Digest, Sha256};

use super::error::FsDiffError;
use super::layers::{
    is_chardev_whiteout, join_world, lstat_at, open_file_at, read_ovl_attrs, stat_fd, Ctx, Found,
    Layers, OvlAttrs,
};
use super::model::{Before, Change, Device, Kind};
use super::sink::Rec;

/// An upper directory whose non-directory children are resolved in parallel.
#[derive(Debug)]
pub(super) struct UpperDir {
    pub fd: OwnedFd,
    /// The merged lower directory at the same path; `None` when the lower
    /// layers have nothing there (a new directory), so children are added
    /// without a lookup.
    pub ctx: Option<Ctx>,
    /// Where overlayfs finds this directory's lower content: `ctx`, except
    /// below a directory renamed with `redirect_dir`, where it is the merged
    /// lower directory at the origin. Metacopy files take their data from it.
    pub data_ctx: Option<Ctx>,
    /// Marked `opaque=x`: zero-size files may be xattr whiteouts.
    pub xwhiteouts: bool,
}

/// One name, in path order, waiting to become an entry.
#[derive(Debug)]
pub(super) enum Item {
    /// Already an entry (directories are resolved by the walker).
    Done(Rec),
    /// A non-directory in the upper layer. `path[name_at..]` is its name;
    /// `regular` when `readdir` said it is a regular file.
    Upper {
        dir: Arc<UpperDir>,
        path: Vec<u8>,
        name_at: usize,
        regular: bool,
    },
    /// An aufs-style `.wh.<name>` whiteout; `path` is the path it deletes.
    Whiteout {
        dir: Arc<UpperDir>,
        path: Vec<u8>,
        name_at: usize,
    },
    /// A lower entry hidden by an opaque upper directory: deleted.
    Hidden {
        ctx: Ctx,
        pos: usize,
        path: Vec<u8>,
        name_at: usize,
    },
}

/// What every worker shares.
pub(super) struct Env<'a> {
    pub upper: &'a Path,
    pub layers: &'a Layers,
    pub hash_max_bytes: u64,
}

/// Per-thread buffers.
pub(super) struct Scratch {
    data: Vec<u8>,
    other: Vec<u8>,
    xattrs: Vec<u8>,
}

const CHUNK: usize = 128 << 10;

impl Scratch {
    pub fn new() -> Self {
        Scratch {
            data: vec![0; CHUNK],
            other: Vec::new(),
            xattrs: vec![0; 1024],
        }
    }
}

impl Env<'_> {
    fn upper_err(&self, world_path: &[u8], source: io::Error) -> FsDiffError {
        FsDiffError::Upper {
            path: join_world(self.upper, world_path),
            source,
        }
    }

    pub fn resolve(&self, item: Item, scratch: &mut Scratch) -> Result<Option<Rec>, FsDiffError> {
        match item {
            Item::Done(rec) => Ok(Some(rec)),
            Item::Upper {
                dir,
                path,
                name_at,
                regular,
            } => self.upper_entry(&dir, path, name_at, regular, scratch),
            Item::Whiteout { dir, path, name_at } => match &dir.ctx {
                Some(ctx) => self.deleted(ctx, path, name_at, scratch),
                None => Ok(None),
            },
            Item::Hidden {
                ctx,
                pos,
                path,
                name_at,
            } => {
                let dir = &ctx[pos];
                let name = OsStr::from_bytes(&path[name_at..]);
                let st = lstat_at(dir.fd.as_fd(), name)
                    .map_err(|e| self.layers.err(dir.layer, &path, e))?;
                let found = Found { pos, st };
                self.deleted_rec(&ctx, &found, path, name_at).map(Some)
            }
        }
    }

    /// A whiteout at `path`: `D` of what the lower layers had there, if anything.
    fn deleted(
        &self,
        ctx: &Ctx,
        path: Vec<u8>,
        name_at: usize,
        scratch: &mut Scratch,
    ) -> Result<Option<Rec>, FsDiffError> {
        let name = OsStr::from_bytes(&path[name_at..]);
        match self.layers.lookup(ctx, name, &path, &mut scratch.xattrs)? {
            // A whiteout over nothing deletes nothing.
            None => Ok(None),
            Some(found) => self.deleted_rec(ctx, &found, path, name_at).map(Some),
        }
    }

    fn deleted_rec(
        &self,
        ctx: &Ctx,
        found: &Found,
        path: Vec<u8>,
        name_at: usize,
    ) -> Result<Rec, FsDiffError> {
        let dir = &ctx[found.pos];
        let kind = kind_of(&found.st);
        let target = if kind == Kind::Symlink {
            let name = OsStr::from_bytes(&path[name_at..]);
            Some(
                read_link(dir.fd.as_fd(), name)
                    .map_err(|e| self.layers.err(dir.layer, &path, e))?,
            )
        } else {
            None
        };
        let mut rec = base_rec(Change::Deleted, path, &found.st);
        rec.target = target;
        rec.link_key = None;
        Ok(rec)
    }

    fn upper_entry(
        &self,
        dir: &UpperDir,
        path: Vec<u8>,
        name_at: usize,
        regular: bool,
        scratch: &mut Scratch,
    ) -> Result<Option<Rec>, FsDiffError> {
        let name = OsStr::from_bytes(&path[name_at..]);
        let upper_err = |e| self.upper_err(&path, e);
        // A regular file (as readdir says) is opened first and stat'ed
        // through its fd: one name lookup instead of two.
        let mut file = None;
        let st = if regular && (self.hash_max_bytes > 0 || dir.ctx.is_some() || dir.xwhiteouts) {
            let fd = open_file_at(dir.fd.as_fd(), name).map_err(upper_err)?;
            let st = stat_fd(fd.as_fd()).map_err(upper_err)?;
            if kind_of(&st) == Kind::File {
                file = Some(fd);
            }
            st
        } else {
            lstat_at(dir.fd.as_fd(), name).map_err(upper_err)?
        };
        if is_chardev_whiteout(&st) {
            return match &dir.ctx {
                Some(ctx) => self.deleted(ctx, path, name_at, scratch),
                None => Ok(None),
            };
        }
        let kind = kind_of(&st);
        let size = st.stx_size;
        let hashable = kind == Kind::File && self.hash_max_bytes > 0 && size <= self.hash_max_bytes;

        // A non-empty regular file is opened once, for its overlay xattrs
        // (metacopy) and its content; an empty one only where it may be an
        // xattr whiteout.
        let mut attrs = OvlAttrs::default();
        if kind == Kind::File
            && (size > 0 && (hashable || dir.ctx.is_some()) || size == 0 && dir.xwhiteouts)
        {
            if file.is_none() {
                file = Some(open_file_at(dir.fd.as_fd(), name).map_err(upper_err)?);
            }
            if let Some(fd) = &file {
                attrs = read_ovl_attrs(fd.as_fd(), &mut scratch.xattrs).map_err(upper_err)?;
            }
        }
        if attrs.whiteout && size == 0 && dir.xwhiteouts {
            return match &dir.ctx {
                Some(ctx) => self.deleted(ctx, path, name_at, scratch),
                None => Ok(None),
            };
        }

        let lower = match &dir.ctx {
            Some(ctx) => self
                .layers
                .lookup(ctx, name, &path, &mut scratch.xattrs)?
                .map(|found| (ctx, found)),
            None => None,
        };

        let target = if kind == Kind::Symlink {
            Some(read_link(dir.fd.as_fd(), name).map_err(upper_err)?)
        } else {
            None
        };

        // Where the file's content lives: the upper file, or for a metacopy
        // file the lower data file: at its redirect (absolute from the layer
        // roots, or a name in the parent's lower directories), else at the
        // same name in the parent's lower directories.
        let mut data_path = None;
        let data: Option<Data<'_>> = match &file {
            Some(_) if attrs.metacopy => {
                let data_fd = match &attrs.redirect {
                    Some(abs) if abs.starts_with(b"/") => {
                        data_path = Some(abs.clone());
                        self.layers.open_data(abs)
                    }
                    redirect => {
                        let data_name = redirect.as_deref().unwrap_or(&path[name_at..]);
                        let mut abs = path[..name_at].to_vec();
                        abs.extend_from_slice(data_name);
                        data_path = Some(abs);
                        self.open_in(dir.data_ctx.as_ref(), data_name, scratch)
                    }
                };
                data_fd.map(Data::Owned)
            }
            Some(fd) => Some(Data::Upper(fd.as_fd())),
            None => None,
        };

        let sha256 = match (&data, hashable) {
            (_, false) => None,
            (_, true) if size == 0 => Some(Sha256::digest(b"").into()),
            (Some(data), true) => {
                Some(hash_fd(data.fd(), size, &mut scratch.data).map_err(upper_err)?)
            }
            // A metacopy file whose data is nowhere: no hash rather than
            // the hash of the upper file's holes.
            (None, true) => None,
        };

        let Some((ctx, found)) = lower else {
            let mut rec = base_rec(Change::Added, path, &st);
            rec.target = target;
            rec.sha256 = sha256;
            return Ok(Some(rec));
        };

        // A copy-up, or a replacement, of a lower entry.
        let lower_dir = &ctx[found.pos];
        let lower_err = |e| self.layers.err(lower_dir.layer, &path, e);
        let lst = &found.st;
        let content_same = if kind_of(lst) != kind {
            false
        } else {
            match kind {
                Kind::File => {
                    // Metadata-only copy-up of this very path: the data is
                    // the lower file's by construction.
                    let metacopy_in_place =
                        attrs.metacopy && data_path.as_deref() == Some(&path[..]);
                    if metacopy_in_place {
                        true
                    } else if lst.stx_size != size {
                        false
                    } else if size == 0 {
                        true
                    } else if let Some(data) = &data {
                        let lower_fd =
                            open_file_at(lower_dir.fd.as_fd(), name).map_err(lower_err)?;
                        match sha256 {
                            Some(digest) => {
                                hash_fd(lower_fd.as_fd(), size, &mut scratch.data)
                                    .map_err(lower_err)?
                                    == digest
                            }
                            None => same_content(data.fd(), lower_fd.as_fd(), scratch)
                                .map_err(lower_err)?,
                        }
                    } else {
                        false
                    }
                }
                Kind::Symlink => {
                    let lower_target = read_link(lower_dir.fd.as_fd(), name).map_err(lower_err)?;
                    target.as_deref() == Some(&lower_target[..])
                }
                Kind::CharDevice | Kind::BlockDevice => {
                    (st.stx_rdev_major, st.stx_rdev_minor)
                        == (lst.stx_rdev_major, lst.stx_rdev_minor)
                }
                Kind::Fifo | Kind::Socket => true,
                // Directories are the walker's.
                Kind::Dir => false,
            }
        };

        let nothing_changed = content_same
            && st.stx_mode == lst.stx_mode
            && st.stx_uid == lst.stx_uid
            && st.stx_gid == lst.stx_gid
            && st.stx_mtime.tv_sec == lst.stx_mtime.tv_sec
            && st.stx_mtime.tv_nsec == lst.stx_mtime.tv_nsec
            && st.stx_nlink <= 1;
        if nothing_changed {
            // Copied up (opened for writing, say) but nothing visible changed.
            return Ok(None);
        }
        let before = before_of(lst);
        let mut rec = base_rec(Change::Changed, path, &st);
        rec.target = target;
        rec.sha256 = sha256;
        rec.metadata_only = content_same;
        rec.before = Some(before);
        Ok(Some(rec))
    }
}

impl Env<'_> {
    /// Opens the regular file `name` of a merged lower directory, if visible.
    fn open_in(&self, ctx: Option<&Ctx>, name: &[u8], scratch: &mut Scratch) -> Option<OwnedFd> {
        let ctx = ctx?;
        let name = OsStr::from_bytes(name);
        // An unreadable lower is "no data": the entry then has no hash.
        let found = self
            .layers
            .lookup(ctx, name, b"", &mut scratch.xattrs)
            .ok()??;
        if kind_of(&found.st) != Kind::File {
            return None;
        }
        open_file_at(ctx[found.pos].fd.as_fd(), name).ok()
    }
}

enum Data<'a> {
    Upper(BorrowedFd<'a>),
    Owned(OwnedFd),
}

impl Data<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Data::Upper(fd) => *fd,
            Data::Owned(fd) => fd.as_fd(),
        }
    }
}

pub(super) fn kind_of(st: &Statx) -> Kind {
    Kind::from_mode(u32::from(st.stx_mode))
}

pub(super) fn before_of(st: &Statx) -> Before {
    let kind = kind_of(st);
    Before {
        kind,
        mode: u32::from(st.stx_mode) & 0o7777,
        uid: st.stx_uid,
        gid: st.stx_gid,
        size: (kind == Kind::File).then_some(st.stx_size),
    }
}

/// The entry's attributes from a stat; content fields are left to the caller.
pub(super) fn base_rec(change: Change, path: Vec<u8>, st: &Statx) -> Rec {
    let kind = kind_of(st);
    Rec {
        change,
        kind,
        path,
        mode: u32::from(st.stx_mode) & 0o7777,
        uid: st.stx_uid,
        gid: st.stx_gid,
        size: (kind == Kind::File).then_some(st.stx_size),
        target: None,
        device: matches!(kind, Kind::CharDevice | Kind::BlockDevice).then_some(Device {
            major: st.stx_rdev_major,
            minor: st.stx_rdev_minor,
        }),
        sha256: None,
        metadata_only: false,
        renamed_from: None,
        before: None,
        link_key: (kind != Kind::Dir && st.stx_nlink > 1).then(|| {
            (
                (u64::from(st.stx_dev_major) << 32) | u64::from(st.stx_dev_minor),
                st.stx_ino,
            )
        }),
    }
}

fn read_link(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<Vec<u8>> {
    Ok(rustix::fs::readlinkat(dir, name, Vec::new())?.into_bytes())
}

/// sha256 of the first `size` bytes of an open file (all of it, unless it
/// grew since it was statted).
fn hash_fd(fd: BorrowedFd<'_>, size: u64, buf: &mut [u8]) -> io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut left = size;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = rustix::io::read(fd, &mut buf[..want])?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hasher.finalize().into())
}

/// Byte-wise comparison of two files of equal size, for files too large to hash.
fn same_content(a: BorrowedFd<'_>, b: BorrowedFd<'_>, scratch: &mut Scratch) -> io::Result<bool> {
    scratch.other.resize(scratch.data.len(), 0);
    loop {
        let n = read_full(a, &mut scratch.data)?;
        let m = read_full(b, &mut scratch.other)?;
        if n != m || scratch.data[..n] != scratch.other[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

fn read_full(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = rustix::io::read(fd, &mut buf[filled..])?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// Is this lower entry a directory?
pub(super) fn is_dir(st: &Statx) -> bool {
    FileType::from_raw_mode(st.stx_mode.into()) == FileType::Directory
}
