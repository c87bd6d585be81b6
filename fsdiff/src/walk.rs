//! The walk of the upper layer: depth first, names in byte order, so entries
//! come out in path order. Directories are resolved here, one at a time;
//! everything else is queued in batches that rayon's workers resolve in
//! parallel while the walk goes on, and the results are handed to the sink
//! in queue order.

use std::cell::RefCell;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{mpsc, Arc};

use rayon::prelude::*;
use rustix::fs::{FileType, RawDir, StatxAttributes};

use super::error::FsDiffError;
use super::layers::{join_world, lstat_at, open_dir_at, read_ovl_attrs, Ctx, Layers};
use super::model::{Change, DiffOptions, FsDiff};
use super::resolve::{base_rec, before_of, is_dir, Env, Item, Scratch, UpperDir};
use super::sink::{Rec, Sink};

/// Items resolved per parallel round.
const BATCH: usize = 4096;
/// Below this, a round runs on the resolver thread alone.
const PARALLEL_MIN: usize = 64;
/// Batches waiting for the resolver before the walk waits.
const QUEUED_BATCHES: usize = 2;

/// aufs whiteouts, as OCI image layers carry them.
const WH_PREFIX: &[u8] = b".wh.";
const WH_META_PREFIX: &[u8] = b".wh..wh.";
const WH_OPAQUE: &[u8] = b".wh..wh..opq";

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

pub(super) fn diff(
    upper: &Path,
    lowers: &[PathBuf],
    options: &DiffOptions,
) -> Result<FsDiff, FsDiffError> {
    let layers = Layers::open(lowers)?;
    let env = Env {
        upper,
        layers: &layers,
        hash_max_bytes: options.hash_max_bytes,
    };
    let mut walker = Walker {
        upper,
        layers: &layers,
        exclude: options
            .exclude
            .iter()
            .filter_map(|p| world_key(p))
            .collect(),
        batch: Vec::with_capacity(BATCH),
        xattr_buf: vec![0; 1024],
        dirent_buf: vec![MaybeUninit::uninit(); 64 << 10],
        path: Vec::with_capacity(256),
        stack: Vec::new(),
        root_ctx: None,
    };
    let mut sink = Sink::new(options.max_entries);
    let mut take = |results: Vec<Result<Option<Rec>, FsDiffError>>| {
        for result in results {
            if let Some(rec) = result? {
                sink.push(rec);
            }
        }
        Ok::<(), FsDiffError>(())
    };

    // Three stages at once: this thread walks and feeds the sink; a resolver
    // thread hands each batch to rayon's workers, in order. Batches in flight
    // are bounded by the queue; results come back in the order sent.
    std::thread::scope(|scope| {
        let (to_resolve, batches) = mpsc::sync_channel::<Vec<Item>>(QUEUED_BATCHES);
        let (to_sink, results) = mpsc::channel();
        let env = &env;
        scope.spawn(move || {
            for batch in batches {
                let resolved = resolve_batch(env, batch);
                if to_sink.send(resolved).is_err() {
                    break;
                }
            }
        });
        let mut emit = |batch: Vec<Item>| {
            // The resolver only stops when this side has dropped `results`.
            let _ = to_resolve.send(batch);
            while let Ok(resolved) = results.try_recv() {
                take(resolved)?;
            }
            Ok(())
        };
        walker.start()?;
        walker.run(&mut emit)?;
        drop(to_resolve);
        for resolved in results {
            take(resolved)?;
        }
        Ok::<(), FsDiffError>(())
    })?;
    Ok(sink.finish())
}

/// Resolves a batch, in parallel when it is large enough to pay for it.
fn resolve_batch(env: &Env<'_>, batch: Vec<Item>) -> Vec<Result<Option<Rec>, FsDiffError>> {
    let resolve = |item| SCRATCH.with(|s| env.resolve(item, &mut s.borrow_mut()));
    if batch.len() < PARALLEL_MIN {
        batch.into_iter().map(resolve).collect()
    } else {
        batch.into_par_iter().map(resolve).collect()
    }
}

/// A world path as the bytes entries carry (`/a/b`), or `None` for the root
/// (which is never an entry).
fn world_key(path: &Path) -> Option<Vec<u8>> {
    let mut key = Vec::new();
    for comp in path.components() {
        if let Component::Normal(name) = comp {
            key.push(b'/');
            key.extend_from_slice(name.as_bytes());
        }
    }
    (!key.is_empty()).then_some(key)
}

struct Walker<'a> {
    upper: &'a Path,
    layers: &'a Layers,
    exclude: HashSet<Vec<u8>>,
    batch: Vec<Item>,
    xattr_buf: Vec<u8>,
    dirent_buf: Vec<MaybeUninit<u8>>,
    /// World path of the name being visited.
    path: Vec<u8>,
    stack: Vec<Frame>,
    /// The merged lower root, for absolute redirects.
    root_ctx: Option<Ctx>,
}

/// A directory being walked.
struct Frame {
    dir: Arc<UpperDir>,
    /// Child names, back to back; `Child` has offsets into it.
    names: Vec<u8>,
    /// Sorted by name.
    children: Vec<Child>,
    next: usize,
    /// Length of the directory's world path (0 for the root).
    path_len: usize,
    /// The directory hides its lower directory's listing (it, or a parent,
    /// is opaque): lower names it lacks were deleted.
    opaque: bool,
}

#[derive(Clone, Copy, Debug)]
struct Child {
    start: usize,
    len: usize,
    what: What,
}

/// Where a child name comes from; for equal names the first wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum What {
    /// An upper entry; `d_type` said directory / not / don't know.
    Upper(DType),
    /// An upper `.wh.<name>` file.
    Aufs,
    /// A name only the (hidden) lower directory has, at this `Ctx` position.
    Hidden(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum DType {
    Dir,
    File,
    Other,
    Unknown,
}

/// An upper directory's listing.
struct Listing {
    names: Vec<u8>,
    children: Vec<Child>,
    /// It holds `.wh..wh..opq`.
    aufs_opaque: bool,
}

impl Walker<'_> {
    fn upper_err(&self, world_path: &[u8], source: std::io::Error) -> FsDiffError {
        FsDiffError::Upper {
            path: join_world(self.upper, world_path),
            source,
        }
    }

    /// The root frame: the upper root over the merged lower roots.
    fn start(&mut self) -> Result<(), FsDiffError> {
        let upper = self.upper;
        let root_err = |source| FsDiffError::LayerRoot {
            path: upper.to_path_buf(),
            source,
        };
        let fd: OwnedFd = rustix::fs::open(
            upper,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| root_err(e.into()))?;
        let attrs = read_ovl_attrs(fd.as_fd(), &mut self.xattr_buf).map_err(root_err)?;
        let ctx = if self.layers.roots.is_empty() {
            None
        } else {
            Some(self.layers.root_ctx(&mut self.xattr_buf)?)
        };
        let listing = self.list_upper(&fd, b"")?;
        let opaque = attrs.opaque || listing.aufs_opaque;
        self.root_ctx = ctx.clone();
        let dir = Arc::new(UpperDir {
            fd,
            data_ctx: ctx.clone(),
            ctx,
            xwhiteouts: attrs.xwhiteouts,
        });
        self.push_frame(dir, listing, 0, opaque)
    }

    /// Walks the tree, handing every full batch (and the last) to `emit`.
    fn run(
        &mut self,
        emit: &mut impl FnMut(Vec<Item>) -> Result<(), FsDiffError>,
    ) -> Result<(), FsDiffError> {
        while let Some(frame) = self.stack.last_mut() {
            let Some(&child) = frame.children.get(frame.next) else {
                self.stack.pop();
                continue;
            };
            frame.next += 1;
            self.path.truncate(frame.path_len);
            self.path.push(b'/');
            self.path
                .extend_from_slice(&frame.names[child.start..child.start + child.len]);
            let name_at = frame.path_len + 1;
            let dir = Arc::clone(&frame.dir);
            let opaque = frame.opaque;
            match child.what {
                // A file mount point (a runtime's bind-mounted file).
                What::Upper(DType::File | DType::Other) if self.exclude.contains(&self.path) => {}
                What::Upper(dtype @ (DType::File | DType::Other)) => self.batch.push(Item::Upper {
                    dir,
                    path: self.path.clone(),
                    name_at,
                    regular: dtype == DType::File,
                }),
                What::Upper(_) => self.enter(dir, opaque, name_at)?,
                What::Aufs => {
                    if dir.ctx.is_some() {
                        self.batch.push(Item::Whiteout {
                            dir,
                            path: self.path.clone(),
                            name_at,
                        });
                    }
                }
                What::Hidden(pos) => {
                    if let Some(ctx) = &dir.ctx {
                        self.batch.push(Item::Hidden {
                            ctx: Arc::clone(ctx),
                            pos,
                            path: self.path.clone(),
                            name_at,
                        });
                    }
                }
            }
            if self.batch.len() >= BATCH {
                emit(std::mem::replace(
                    &mut self.batch,
                    Vec::with_capacity(BATCH),
                ))?;
            }
        }
        if !self.batch.is_empty() {
            emit(std::mem::take(&mut self.batch))?;
        }
        Ok(())
    }

    /// Visits an upper name that may be a directory (`self.path`): its own
    /// entry, then a frame for its children.
    fn enter(
        &mut self,
        parent: Arc<UpperDir>,
        parent_opaque: bool,
        name_at: usize,
    ) -> Result<(), FsDiffError> {
        let path = self.path.clone();
        let name = OsStr::from_bytes(&path[name_at..]);
        let st = lstat_at(parent.fd.as_fd(), name).map_err(|e| self.upper_err(&path, e))?;
        if !is_dir(&st) {
            if self.exclude.contains(&path) {
                return Ok(());
            }
            self.batch.push(Item::Upper {
                dir: parent,
                path,
                name_at,
                regular: false,
            });
            return Ok(());
        }
        if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT)
            && st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT)
        {
            return Err(FsDiffError::MountInUpper {
                path: join_world(self.upper, &path),
            });
        }
        let fd = open_dir_at(parent.fd.as_fd(), name).map_err(|e| self.upper_err(&path, e))?;
        let attrs = read_ovl_attrs(fd.as_fd(), &mut self.xattr_buf)
            .map_err(|e| self.upper_err(&path, e))?;
        let listing = self.list_upper(&fd, &path)?;
        let layers = self.layers;

        let mut rec = base_rec(Change::Added, path.clone(), &st);
        let mut report = true;
        let mut ctx: Option<Ctx> = None;
        let mut opaque = false;
        // Renamed with redirect_dir=on: a new directory here (its old path
        // holds a whiteout, reported there) whose content is not listed.
        let origin = attrs.redirect.as_ref().map(|redirect| {
            if redirect.starts_with(b"/") {
                redirect.clone()
            } else {
                let mut from = path[..name_at].to_vec();
                from.extend_from_slice(redirect);
                from
            }
        });
        if let Some(parent_ctx) = &parent.ctx {
            let found = layers.lookup(parent_ctx, name, &path, &mut self.xattr_buf)?;
            match found {
                Some(found) if origin.is_some() => {
                    rec.change = Change::Changed;
                    rec.before = Some(before_of(&found.st));
                }
                None => {}
                Some(found) => {
                    rec.change = Change::Changed;
                    rec.before = Some(before_of(&found.st));
                    if is_dir(&found.st) {
                        ctx = Some(layers.descend(
                            parent_ctx,
                            name,
                            &found,
                            &path,
                            &mut self.xattr_buf,
                        )?);
                        opaque = parent_opaque || attrs.opaque || listing.aufs_opaque;
                        // A directory that was deleted and made again is
                        // changed; one that was only traversed for its
                        // children is not, unless its own mode or owner changed.
                        let own_change = st.stx_mode != found.st.stx_mode
                            || st.stx_uid != found.st.stx_uid
                            || st.stx_gid != found.st.stx_gid;
                        rec.metadata_only = !opaque;
                        report = opaque || own_change;
                    }
                }
            }
        }
        // Where metacopy files below find their data: the lower directory at
        // the rename's origin, the one at this path, or (below a renamed
        // directory) the origin's subdirectory of the same name.
        let data_ctx = match (&attrs.redirect, &ctx) {
            (Some(redirect), _) => {
                let origin = origin.as_deref().unwrap_or_default();
                if redirect.starts_with(b"/") {
                    match &self.root_ctx {
                        Some(root) => layers.ctx_at(root, origin, &mut self.xattr_buf)?,
                        None => None,
                    }
                } else {
                    self.sub_ctx(parent.data_ctx.as_ref(), redirect, origin)?
                }
            }
            (None, Some(ctx)) => Some(Arc::clone(ctx)),
            (None, None) if parent.ctx.is_none() => {
                self.sub_ctx(parent.data_ctx.as_ref(), &path[name_at..], &path)?
            }
            (None, None) => None,
        };
        rec.renamed_from = origin;
        if report && !self.exclude.contains(&path) {
            self.batch.push(Item::Done(rec));
        }
        let dir = Arc::new(UpperDir {
            fd,
            ctx,
            data_ctx,
            xwhiteouts: attrs.xwhiteouts,
        });
        self.push_frame(dir, listing, path.len(), opaque)
    }

    /// The merged lower directory `name` of `ctx`, if the lower layers have a
    /// directory there.
    fn sub_ctx(
        &mut self,
        ctx: Option<&Ctx>,
        name: &[u8],
        world_path: &[u8],
    ) -> Result<Option<Ctx>, FsDiffError> {
        let Some(ctx) = ctx else {
            return Ok(None);
        };
        let layers = self.layers;
        let name = OsStr::from_bytes(name);
        match layers.lookup(ctx, name, world_path, &mut self.xattr_buf)? {
            Some(found) if is_dir(&found.st) => Ok(Some(layers.descend(
                ctx,
                name,
                &found,
                world_path,
                &mut self.xattr_buf,
            )?)),
            _ => Ok(None),
        }
    }

    /// Adds the names an opaque directory hides, sorts, and pushes the frame.
    fn push_frame(
        &mut self,
        dir: Arc<UpperDir>,
        mut listing: Listing,
        path_len: usize,
        opaque: bool,
    ) -> Result<(), FsDiffError> {
        if let (true, Some(ctx)) = (opaque, &dir.ctx) {
            let world_dir = &self.path[..path_len];
            for (name, pos) in self
                .layers
                .list_merged(ctx, world_dir, &mut self.xattr_buf)?
            {
                listing.children.push(Child {
                    start: listing.names.len(),
                    len: name.len(),
                    what: What::Hidden(pos),
                });
                listing.names.extend_from_slice(&name);
            }
        }
        let names = listing.names;
        let mut children = listing.children;
        let name = |c: &Child| &names[c.start..c.start + c.len];
        children.sort_unstable_by(|a, b| name(a).cmp(name(b)).then(a.what.cmp(&b.what)));
        children.dedup_by(|later, first| name(later) == name(first));
        self.stack.push(Frame {
            dir,
            names,
            children,
            next: 0,
            path_len,
            opaque,
        });
        Ok(())
    }

    /// The names of an upper directory, aufs whiteouts turned into the names
    /// they delete.
    fn list_upper(&mut self, fd: &OwnedFd, world_dir: &[u8]) -> Result<Listing, FsDiffError> {
        let mut listing = Listing {
            names: Vec::new(),
            children: Vec::new(),
            aufs_opaque: false,
        };
        let mut entries = RawDir::new(fd.as_fd(), &mut self.dirent_buf);
        while let Some(entry) = entries.next() {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    return Err(FsDiffError::Upper {
                        path: join_world(self.upper, world_dir),
                        source: e.into(),
                    })
                }
            };
            let name = entry.file_name().to_bytes();
            let (name, what) = if name == b"." || name == b".." {
                continue;
            } else if name == WH_OPAQUE {
                listing.aufs_opaque = true;
                continue;
            } else if name.starts_with(WH_META_PREFIX) {
                // aufs bookkeeping (.wh..wh.plnk and the like): not content.
                continue;
            } else if let Some(deleted) = name.strip_prefix(WH_PREFIX) {
                if deleted.is_empty() {
                    continue;
                }
                (deleted, What::Aufs)
            } else {
                let dtype = match entry.file_type() {
                    FileType::Directory => DType::Dir,
                    FileType::RegularFile => DType::File,
                    FileType::Unknown => DType::Unknown,
                    _ => DType::Other,
                };
                (name, What::Upper(dtype))
            };
            listing.children.push(Child {
                start: listing.names.len(),
                len: name.len(),
                what,
            });
            listing.names.extend_from_slice(name);
        }
        Ok(listing)
    }
}
