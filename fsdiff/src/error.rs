//! The one error type of the fs diff.

use std::io;
use std::path::PathBuf;

/// Why a diff could not be computed. Every variant names the host path that
/// failed, so the message says what to look at.
#[derive(Debug, thiserror::Error)]
pub enum FsDiffError {
    /// Reading the upper layer failed (a directory, an entry, a file's content).
    #[error("fs diff: cannot read upper layer entry {}: {source}", path.display())]
    Upper { path: PathBuf, source: io::Error },

    /// Reading a lower layer failed.
    #[error("fs diff: cannot read lower layer entry {}: {source}", path.display())]
    Lower { path: PathBuf, source: io::Error },

    /// A layer root given by the caller is not a directory we can open.
    #[error("fs diff: layer root {} is not a readable directory: {source}", path.display())]
    LayerRoot { path: PathBuf, source: io::Error },

    /// Something is mounted inside the upper layer: overlayfs does not see
    /// through it, and neither can the diff see what lies beneath it.
    #[error(
        "fs diff: {} is a mount point inside the upper layer; unmount it before taking the diff",
        path.display()
    )]
    MountInUpper { path: PathBuf },
}
