//! What the runtime puts into every world so that the preload tracer runs
//! there without the image's help.
//!
//! The world's inject dir (`<state>/worlds/<id>/inject/`, host side) is
//! bind-mounted read-only at [`substrate_ring::WORLD_DIR`]. It holds the
//! monitor's span socket, a mount point for the library (bind-mounted from
//! where it is installed), and the world's `ld.so.preload`: the library
//! first, then whatever the image's own file listed. That file is
//! bind-mounted over `/etc/ld.so.preload` and `LD_PRELOAD` names the library
//! in the init's env, so scrubbing the environment (`env -i`) does not
//! shake the tracer off, and musl programs (which ignore ld.so.preload)
//! meet it too.
//!
//! The spec is extended, not rewritten by hand: the bundle's `config.json`
//! plus these mounts and that variable is what libcontainer is given (never
//! written over the bundle's file, which a container whose rootfs is the
//! bundle would see).
//!
//! Only a world whose writes land in an upper layer gets the tracer (its
//! mount points are made there, and the diff leaves them out): a rootfs
//! written in place, as runc does, gets nothing the spec does not ask for.

use std::fs;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{Mount, MountBuilder, Spec};
use substrate_ring::{LIBRARY_NAME, LIBRARY_PATH, WORLD_DIR};

use crate::error::{Error, Result};

/// Set to `off` to run worlds untraced (no monitor socket, no preload).
pub const TRACE_ENV: &str = "SUBSTRATE_TRACE";
/// The preload library to inject, instead of the one installed beside the
/// runtime; `off` injects none (the kernel-level trace remains).
pub const PRELOAD_ENV: &str = "SUBSTRATE_PRELOAD";

const LD_SO_PRELOAD: &str = "/etc/ld.so.preload";

/// Whether worlds are traced (`SUBSTRATE_TRACE` is not `off`).
pub fn tracing_enabled() -> bool {
    std::env::var_os(TRACE_ENV).is_none_or(|v| v != "off")
}

/// The preload library to inject: `$SUBSTRATE_PRELOAD`, else the one beside
/// this executable (the build tree, `make install`'s `lib/substrate/`).
pub fn preload_library() -> Result<Option<PathBuf>> {
    // Empty is unset, as for PATH-like variables.
    if let Some(path) = std::env::var_os(PRELOAD_ENV).filter(|p| !p.is_empty()) {
        if path == "off" {
            return Ok(None);
        }
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(Error::Preload {
                path,
                reason: format!("{PRELOAD_ENV} names no file"),
            });
        }
        return Ok(Some(path));
    }
    let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_owned))
    else {
        return Ok(None);
    };
    Ok([
        dir.join(LIBRARY_NAME),
        dir.join("../lib/substrate").join(LIBRARY_NAME),
    ]
    .into_iter()
    .find(|p| p.is_file()))
}

/// What [`prepare`] made.
#[derive(Debug)]
pub(crate) struct Injection {
    /// The world's spec: the bundle's plus the tracer's mounts and env.
    pub spec: Spec,
    /// Mount points the tracer's mounts add to the rootfs.
    pub mountpoints: Vec<PathBuf>,
}

/// Fills `inject_dir` and extends the spec. `image_root` is where the
/// image's own `/etc/ld.so.preload` is read.
pub(crate) fn prepare(
    spec: &Spec,
    image_root: &Path,
    library: &Path,
    inject_dir: &Path,
) -> Result<Injection> {
    let io = |what: &'static str, path: &Path, e| Error::io(what, path, e);
    fs::create_dir_all(inject_dir).map_err(|e| io("cannot create inject dir", inject_dir, e))?;
    fs::set_permissions(inject_dir, fs::Permissions::from_mode(0o755))
        .map_err(|e| io("cannot set inject dir mode", inject_dir, e))?;
    let library_mountpoint = inject_dir.join(LIBRARY_NAME);
    fs::write(&library_mountpoint, b"").map_err(|e| io("cannot create", &library_mountpoint, e))?;
    let preload_list = inject_dir.join("ld.so.preload");
    fs::write(&preload_list, merged_preload_list(image_root))
        .map_err(|e| io("cannot write", &preload_list, e))?;
    for file in [&library_mountpoint, &preload_list] {
        fs::set_permissions(file, fs::Permissions::from_mode(0o644))
            .map_err(|e| io("cannot set mode of", file, e))?;
    }

    let mut spec = spec.clone();
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(bind(inject_dir, WORLD_DIR, true)?);
    mounts.push(bind(library, LIBRARY_PATH, false)?);
    let mut mountpoints = vec![PathBuf::from(WORLD_DIR), PathBuf::from(LIBRARY_PATH)];
    // An image without /etc (scratch) gets LD_PRELOAD only.
    if has_real_etc(image_root) {
        mounts.push(bind(&preload_list, LD_SO_PRELOAD, false)?);
        mountpoints.push(PathBuf::from(LD_SO_PRELOAD));
    }
    spec.set_mounts(Some(mounts));
    if let Some(mut process) = spec.process().clone() {
        let mut env = process.env().clone().unwrap_or_default();
        match env.iter_mut().find(|e| e.starts_with("LD_PRELOAD=")) {
            Some(entry) => {
                *entry = format!(
                    "LD_PRELOAD={LIBRARY_PATH}:{}",
                    &entry["LD_PRELOAD=".len()..]
                )
            }
            None => env.push(format!("LD_PRELOAD={LIBRARY_PATH}")),
        }
        process.set_env(Some(env));
        spec.set_process(Some(process));
    }
    Ok(Injection { spec, mountpoints })
}

fn has_real_etc(root: &Path) -> bool {
    fs::symlink_metadata(root.join("etc")).is_ok_and(|m| m.is_dir())
}

/// Makes the mount points the tracer's mounts need in the world's rootfs
/// (an upper layer takes the writes), as the host's root: a world in a
/// user namespace could not create them in a root dir it does not own.
/// Every path is resolved inside the rootfs (`openat2` with
/// `RESOLVE_IN_ROOT`, through `pathrs`), so an image's symlink
/// (`/etc -> /host/etc`, `/.substrate -> /`) can never lead a write out
/// of it; and nothing that exists is replaced.
pub(crate) fn make_mountpoints(rootfs: &Path, injection: &Injection) -> Result<()> {
    let failed = |path: &Path, e: pathrs::error::Error| Error::Preload {
        path: rootfs.join(path.strip_prefix("/").unwrap_or(path)),
        reason: format!("cannot create the mount point: {e}"),
    };
    let root = pathrs::Root::open(rootfs).map_err(|e| failed(Path::new("/"), e))?;
    for mountpoint in &injection.mountpoints {
        if root.resolve_nofollow(mountpoint).is_ok() {
            continue;
        }
        if mountpoint == Path::new(WORLD_DIR) {
            root.mkdir_all(mountpoint, &fs::Permissions::from_mode(0o755))
                .map_err(|e| failed(mountpoint, e))?;
        } else if mountpoint == Path::new(LD_SO_PRELOAD) {
            root.create_file(
                mountpoint,
                pathrs::flags::OpenFlags::O_WRONLY
                    | pathrs::flags::OpenFlags::O_CREAT
                    | pathrs::flags::OpenFlags::O_EXCL
                    | pathrs::flags::OpenFlags::O_NOFOLLOW
                    | pathrs::flags::OpenFlags::O_CLOEXEC,
                &fs::Permissions::from_mode(0o644),
            )
            .map_err(|e| failed(mountpoint, e))?;
        }
    }
    Ok(())
}

fn bind(source: &Path, destination: &str, recursive: bool) -> Result<Mount> {
    let kind = if recursive { "rbind" } else { "bind" };
    MountBuilder::default()
        .destination(destination)
        .typ("bind")
        .source(source)
        .options([kind, "ro", "nosuid", "nodev"].map(String::from).to_vec())
        .build()
        .map_err(|e| Error::Preload {
            path: source.to_owned(),
            reason: format!("cannot describe the mount on {destination}: {e}"),
        })
}

/// The library, then the image's own list (never read through a symlink:
/// the image's `/etc/ld.so.preload -> /etc/shadow` must not leak the host's).
fn merged_preload_list(image_root: &Path) -> Vec<u8> {
    let mut list = format!("{LIBRARY_PATH}\n").into_bytes();
    let etc = image_root.join("etc");
    let own = has_real_etc(image_root)
        .then(|| {
            let mut file = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(etc.join("ld.so.preload"))
                .ok()?;
            let mut bytes = Vec::new();
            // A list of library paths; anything bigger is not one.
            (&mut file).take(64 * 1024).read_to_end(&mut bytes).ok()?;
            Some(bytes)
        })
        .flatten()
        .unwrap_or_default();
    for entry in own
        .split(|b| b.is_ascii_whitespace() || *b == b':')
        .filter(|e| !e.is_empty() && *e != LIBRARY_PATH.as_bytes())
    {
        list.extend_from_slice(entry);
        list.push(b'\n');
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_list_follows_the_library_and_symlinks_are_not_read() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(
            merged_preload_list(root.path()),
            format!("{LIBRARY_PATH}\n").into_bytes()
        );
        fs::create_dir(root.path().join("etc")).unwrap();
        fs::write(
            root.path().join("etc/ld.so.preload"),
            "/lib/a.so /lib/b.so:/lib/c.so\n",
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(merged_preload_list(root.path())).unwrap(),
            format!("{LIBRARY_PATH}\n/lib/a.so\n/lib/b.so\n/lib/c.so\n")
        );
        let secret = root.path().join("secret");
        fs::write(&secret, "host secret").unwrap();
        fs::remove_file(root.path().join("etc/ld.so.preload")).unwrap();
        std::os::unix::fs::symlink(&secret, root.path().join("etc/ld.so.preload")).unwrap();
        assert_eq!(
            merged_preload_list(root.path()),
            format!("{LIBRARY_PATH}\n").into_bytes()
        );
    }
}
