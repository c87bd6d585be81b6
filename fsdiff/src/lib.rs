//! The exact filesystem diff of a world, read from its overlayfs upper layer.
//!
//! A world's rootfs is an overlay: read-only lower layers (the bundle's
//! rootfs, or the host's `/`) under an upper directory that receives every
//! change. [`diff_upper`] reads the upper directory after the world exited and
//! says what was added (`A`), changed (`C`) and deleted (`D`), as `docker diff`
//! does, with each entry's type, mode, owner, size, symlink target, device
//! number and content hash.
//!
//! # Cost follows the change, not the image
//!
//! Only the upper tree is walked. A lower layer is looked up (one `statx` per
//! layer) only at a path the upper tree has, and a lower directory is listed
//! only where the upper layer made it opaque, to name what it hid. Nothing is
//! looked up under a directory that is new (`A`): its children are new too.
//! A lower file is read only to decide whether a full copy-up of it changed
//! content. Non-directories are stat'ed, compared and hashed on rayon's
//! threads in batches; entries stream, in path order, into counters and the
//! tree hash, and only the first [`DiffOptions::max_entries`] are kept.
//!
//! Nothing follows a symlink: every lookup is `*at()` on an open directory with
//! `AT_SYMLINK_NOFOLLOW` / `O_NOFOLLOW`, so the walk cannot leave the layer
//! it is in; fifos, sockets and devices are never opened. A mount inside the
//! upper directory is an error ([`FsDiffError::MountInUpper`]): overlayfs does
//! not see through it and the diff cannot see beneath it.
//!
//! # Rules (overlayfs semantics, see the kernel's
//! `Documentation/filesystems/overlayfs.rst`)
//!
//! - **A**: in the upper layer, absent from the lower layers (or hidden there
//!   by a lower whiteout).
//! - **C**: in the upper layer and in a lower layer: a copy-up, or a
//!   replacement (then `kind` differs from `before.kind`: a directory replaced
//!   by a file and back comes out as `C` with the new kind; what the replaced
//!   directory held is not listed). `before` has the lower entry's kind, mode,
//!   owner and size.
//!   - `metadata_only` is true when the content is the lower's: a
//!     `metacopy=on` copy-up (xattr `overlay.metacopy`, data at the lower path
//!     or at `overlay.redirect`), or a full copy-up whose data equals the lower
//!     file's (same size, then same sha256, or byte-wise equal above
//!     `hash_max_bytes`), the same symlink target, the same device number.
//!     chmod, chown and touch give `metadata_only` entries.
//!   - A copy-up with nothing visible changed (content, mode, owner, mtime
//!     and a single link all as in the lower) is no change and not reported.
//!   - A **directory** that exists in the lower layers is reported only when
//!     its own mode, uid or gid changed (`metadata_only`), or when it was
//!     deleted and made again (opaque: `metadata_only` false). A directory that
//!     was merely copied up to hold changed children is not reported (unlike
//!     `docker diff`); its mtime is not looked at.
//! - **D**: a whiteout in the upper layer over a path the lower layers have:
//!   a character device 0/0, a zero-size file with xattr `overlay.whiteout` in
//!   a directory marked `overlay.opaque=x`, or an aufs-style `.wh.<name>` file
//!   (as OCI image layers carry them). A whiteout over nothing is no change.
//!   A deleted directory is one `D` (its lower children are not listed). A `D`
//!   entry has the attributes of the deleted lower entry (no hash).
//! - **Opaque directories** (`overlay.opaque=y`, or a `.wh..wh..opq` file in
//!   it) hide their lower directory: each direct entry of the (merged) lower
//!   directory that the upper one does not have again is one `D`, the
//!   directory itself is `C` (`A` if the lower layers had no directory there).
//!   The same holds below an opaque directory, for subdirectories that the
//!   lower layers also had.
//! - **Renames**: a renamed file is `D` old + `A` new. A directory renamed with
//!   `redirect_dir=on` (xattr `overlay.redirect`) is `D` old (the whiteout
//!   left there) + `A` new with `renamed_from`; its content is not listed, and
//!   its children in the upper layer are `A`.
//! - **Hard links**: non-directories that share an inode in the upper layer
//!   (including a lower file copied up to be linked): each but the first in
//!   path order has `hard_link` = the first one's path.
//! - Both xattr namespaces are read: `trusted.overlay.*` and, for `userxattr`
//!   mounts, `user.overlay.*`. Lower layers are interpreted as overlayfs
//!   interprets them (character-device and xattr whiteouts, opaque
//!   directories); redirects and metacopy inside lower layers are not followed.
//! - The root directory itself is never an entry. [`DiffOptions::exclude`]
//!   drops the entries of the runtime's mount points: directories (not their
//!   children) and files (a bind-mounted `/etc/ld.so.preload`).
//!
//! # Order, names and the tree hash
//!
//! Entries are sorted by path component by component (the order of
//! [`std::path::Path`]'s `Ord`, names compared as bytes): a depth-first walk
//! with each directory's names in byte order, so `/a`, `/a/b`, `/a-c`.
//!
//! Names are bytes on Linux. JSON carries `path` as a string in which bytes
//! that are not UTF-8 are written `\xNN`, and, only for such names,
//! `path_bytes` with the exact bytes in standard base64 (the same for
//! `target`/`target_bytes`, `hard_link`/`hard_link_bytes` and
//! `renamed_from`/`renamed_from_bytes`). [`DiffEntry::path_os`] and friends
//! give the exact bytes back.
//!
//! `tree_hash` is `sha256:<hex>` over the canonical record of every entry
//! (kept or not), in path order. A record is these fields, each followed by a
//! NUL byte, then a newline: the letter; the kind (`file`, `dir`, ...); the
//! path bytes; the mode in octal; uid; gid; size (decimal, empty if none);
//! symlink target bytes; `major:minor`; the sha256 in hex (no prefix); `1` or
//! `0` for `metadata_only`; `hard_link` bytes; `renamed_from` bytes; and
//! `before` as `kind:mode-octal:uid:gid:size`. Absent fields are empty.
//! There are no times or inode numbers in it, so the same changes give the
//! same hash.

mod error;
mod layers;
mod model;
mod resolve;
mod sink;
mod walk;

use std::path::{Path, PathBuf};

pub use error::FsDiffError;
pub use model::{
    decode_name, encode_name, Before, Change, Device, DiffEntry, DiffOptions, DiffSummary, FsDiff,
    Kind,
};

/// The diff of an overlay's `upper` directory against its `lowers` (top-most
/// first, as in `lowerdir=`). The overlay should be unmounted, or at least
/// quiet: the layers must not change during the walk.
pub fn diff_upper(
    upper: &Path,
    lowers: &[PathBuf],
    options: &DiffOptions,
) -> Result<FsDiff, FsDiffError> {
    walk::diff(upper, lowers, options)
}
