//! The world's rootfs, as [`Layering`](crate::Layering) chooses: written in
//! place as the bundle names it (runc's semantics), or an overlay of
//! Substrate's own whose upper layer records every write.
//!
//! Substrate's overlay is mounted in a mount namespace private to the creating
//! process, right over the rootfs path that libcontainer is about to use.
//! libcontainer's container processes are cloned from that process and so
//! start from its mounts; the host never sees the overlay, so nothing is left
//! mounted on it, ever, and two worlds from one bundle cannot stack on each
//! other. The mount lives exactly as long as the world's own mount
//! namespace; the upper dir outlives it for the diff.
//!
//! When the rootfs is already an overlay mount (podman's and containerd's
//! snapshots), its owner keeps its own diff there (`podman diff`, commits),
//! so Substrate adopts that upper layer and stacks nothing.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use std::os::fd::OwnedFd;

use nix::sched::{setns, unshare, CloneFlags};

use crate::error::{Error, Result};

/// An annotation that once named a world's read-only lower. Settings that
/// change what the host exposes to a world never come from a bundle (any
/// bundle could name the host's `/`); a bundle that still carries it is
/// refused with this reason. The lower comes through
/// [`CreateOptions::lower`](crate::CreateOptions::lower) from a trusted
/// caller (`substrate-cli`).
pub(crate) const REFUSED_LOWER_ANNOTATION: &str = "io.substrate.world.lower";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RootfsLayers {
    /// The bundle's rootfs, written in place: no upper layer, no diff.
    InPlace,
    /// Substrate mounts an overlay of `lowers` + `upper` at `target`.
    Stacked {
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
        target: PathBuf,
    },
    /// `rootfs` already is an overlay; its upper is read, never written.
    Adopted {
        lowers: Vec<PathBuf>,
        upper: PathBuf,
    },
}

impl RootfsLayers {
    pub(crate) fn lowers(&self) -> &[PathBuf] {
        match self {
            RootfsLayers::InPlace => &[],
            RootfsLayers::Stacked { lowers, .. } | RootfsLayers::Adopted { lowers, .. } => lowers,
        }
    }

    /// The layer that records the world's writes, if there is one.
    pub(crate) fn upper(&self) -> Option<&Path> {
        match self {
            RootfsLayers::InPlace => None,
            RootfsLayers::Stacked { upper, .. } | RootfsLayers::Adopted { upper, .. } => {
                Some(upper)
            }
        }
    }
}

/// The overlay mount at `path`, if `path` is one: its lowers and upper.
pub(crate) fn existing_overlay(path: &Path) -> Option<(Vec<PathBuf>, PathBuf)> {
    let mounts = procfs::process::Process::myself().ok()?.mountinfo().ok()?;
    // The last mount on a path is the one that is visible there.
    let info = mounts.0.into_iter().rev().find(|m| m.mount_point == path)?;
    if info.fs_type != "overlay" {
        return None;
    }
    let upper = info.super_options.get("upperdir")?.as_ref()?;
    let lowers = info
        .super_options
        .get("lowerdir")
        .and_then(|l| l.as_ref())
        .map(|l| split_lowerdir(l))
        .unwrap_or_default();
    Some((lowers, PathBuf::from(upper)))
}

/// Splits overlay's `lowerdir=a:b:c`, where `\:` escapes a colon.
fn split_lowerdir(value: &str) -> Vec<PathBuf> {
    let mut layers = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => current.extend(chars.next()),
            ':' => layers.push(PathBuf::from(std::mem::take(&mut current))),
            c => current.push(c),
        }
    }
    layers.push(PathBuf::from(current));
    layers
}

/// Escapes a path for an overlay mount option (`\`, `:` and `,` are special).
fn escape_option(path: &Path) -> Result<String, String> {
    let text = path
        .to_str()
        .ok_or_else(|| format!("{} is not valid UTF-8", path.display()))?;
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | ':' | ',') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    Ok(escaped)
}

/// The calling thread's stay in a private mount namespace holding a world's
/// overlay: container processes cloned meanwhile start from its mounts.
/// Dropping it returns the thread to the mount namespace it came from, so
/// the lower layer is visible again as itself (the diff compares with it),
/// and a long-lived caller can create the next world from a clean slate.
pub(crate) struct PrivateMounts {
    original: Option<OwnedFd>,
}

impl Drop for PrivateMounts {
    fn drop(&mut self) {
        if let Some(original) = self.original.take() {
            // Cannot fail for a namespace this thread was in a moment ago;
            // if it did, the thread would only keep a private view.
            let _ = setns(original, CloneFlags::CLONE_NEWNS);
        }
    }
}

impl PrivateMounts {
    /// Moves the calling thread into a mount namespace of its own, receiving
    /// the host's mount events and sending none back, until dropped.
    pub(crate) fn enter() -> std::result::Result<PrivateMounts, String> {
        let original = fs::File::open("/proc/thread-self/ns/mnt")
            .map_err(|e| format!("/proc/thread-self/ns/mnt: {e}"))?;
        unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
        let guard = PrivateMounts {
            original: Some(original.into()),
        };
        // MS_SLAVE: mounts made here do not propagate to the host.
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_SLAVE,
            None::<&str>,
        )
        .map_err(|e| format!("making / a slave mount: {e}"))?;
        Ok(guard)
    }
}

/// Mounts a stacked world's overlay over its rootfs, in the private mount
/// namespace the caller's guard proves it is in (adopted layers are
/// already mounted).
pub(crate) fn mount_stacked(_in: &PrivateMounts, layers: &RootfsLayers) -> Result<()> {
    let RootfsLayers::Stacked {
        lowers,
        upper,
        work,
        target,
    } = layers
    else {
        return Ok(());
    };
    let failed = |reason: String| Error::Overlay {
        target: target.clone(),
        reason,
    };
    for dir in [upper, work] {
        fs::create_dir_all(dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
    }
    fs::create_dir_all(target).map_err(|e| failed(format!("{}: {e}", target.display())))?;
    let mut options = String::from("lowerdir=");
    for (i, lower) in lowers.iter().enumerate() {
        if i > 0 {
            options.push(':');
        }
        options.push_str(&escape_option(lower).map_err(&failed)?);
    }
    options.push_str(",upperdir=");
    options.push_str(&escape_option(upper).map_err(&failed)?);
    options.push_str(",workdir=");
    options.push_str(&escape_option(work).map_err(&failed)?);
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|e| failed(format!("mount -t overlay -o {options}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowerdir_lists_split_on_unescaped_colons() {
        assert_eq!(
            split_lowerdir("/a:/b\\:c:/d"),
            [
                PathBuf::from("/a"),
                PathBuf::from("/b:c"),
                PathBuf::from("/d")
            ]
        );
    }

    #[test]
    fn options_escape_separators() {
        assert_eq!(escape_option(Path::new("/x,y:z")).unwrap(), "/x\\,y\\:z");
    }
}
