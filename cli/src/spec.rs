//! The bundle a `substrate-cli run` world starts from.
//!
//! `--bundle` is used as it is (a copy of its config when the command is
//! replaced, since a bundle is never written); `--rootfs` and the embedded
//! default get Substrate's default spec. The default world's lower is the
//! host's root filesystem: its `root.path` is an empty mount point and the
//! runtime mounts the overlay (lower `/`) there, in the world's own mount
//! namespace only.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxBuilder, RootBuilder, Spec};
use substrate_runtime::{Runtime, WorldId, WorldSource};

pub enum Origin {
    Bundle(PathBuf),
    Rootfs(PathBuf),
    Host,
}

/// The bundle to create the world from; a generated one is removed on drop.
pub struct WorldBundle {
    pub dir: PathBuf,
    pub source: WorldSource,
    /// The world's read-only lower when it is not the bundle's rootfs (the
    /// host's `/`): given to the runtime through `CreateOptions::lower`,
    /// never through the bundle.
    pub lower: Option<PathBuf>,
    generated: bool,
}

impl Drop for WorldBundle {
    fn drop(&mut self) {
        if self.generated {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl WorldBundle {
    /// Whether Substrate wrote this bundle's spec (`--rootfs`, the default)
    /// rather than the user (`--bundle`).
    pub fn generated(&self) -> bool {
        matches!(self.source, WorldSource::Rootfs { .. } | WorldSource::Host)
    }

    pub fn prepare(
        origin: Origin,
        id: &WorldId,
        command: &[String],
        runtime: &Runtime,
    ) -> Result<Self> {
        // Generated bundles live beside the runtime state, not in the world
        // dir: create replaces whatever an earlier world of the id left.
        let generated_dir = runtime.root().join(format!(".bundle-{id}"));
        match origin {
            Origin::Bundle(path) => {
                let path = fs::canonicalize(&path)
                    .with_context(|| format!("bundle {}", path.display()))?;
                let source = WorldSource::Bundle { path: path.clone() };
                if command.is_empty() {
                    return Ok(WorldBundle {
                        dir: path,
                        source,
                        lower: None,
                        generated: false,
                    });
                }
                let config = path.join("config.json");
                let mut spec = Spec::load(&config)
                    .with_context(|| format!("bundle {}: config.json", path.display()))?;
                let mut process = spec.process().clone().unwrap_or_default();
                process.set_args(Some(command.to_vec()));
                spec.set_process(Some(process));
                let mut root = spec.root().clone().unwrap_or_default();
                if root.path().is_relative() {
                    root.set_path(path.join(root.path()));
                }
                spec.set_root(Some(root));
                write_bundle(&generated_dir, &spec, source)
            }
            Origin::Rootfs(path) => {
                let path = fs::canonicalize(&path)
                    .with_context(|| format!("rootfs {}", path.display()))?;
                if !path.is_dir() {
                    bail!("rootfs {}: not a directory", path.display());
                }
                let spec = default_spec(id, command, &path, Path::new("/"), runtime)?;
                write_bundle(&generated_dir, &spec, WorldSource::Rootfs { path })
            }
            Origin::Host => {
                let mount_point = runtime.store().rootfs_dir(id);
                let cwd = host_cwd();
                let spec = default_spec(id, command, &mount_point, &cwd, runtime)?;
                let mut bundle = write_bundle(&generated_dir, &spec, WorldSource::Host)?;
                bundle.lower = Some(PathBuf::from("/"));
                Ok(bundle)
            }
        }
    }
}

fn write_bundle(dir: &Path, spec: &Spec, source: WorldSource) -> Result<WorldBundle> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let bundle = WorldBundle {
        dir: dir.to_owned(),
        source,
        lower: None,
        generated: true,
    };
    spec.save(dir.join("config.json"))
        .with_context(|| format!("cannot write {}/config.json", dir.display()))?;
    Ok(bundle)
}

/// The caller's working directory if the world can see it (it is on the
/// root filesystem, the only one in the default world's lower), else `/`.
fn host_cwd() -> PathBuf {
    let Ok(cwd) = std::env::current_dir() else {
        return "/".into();
    };
    let same_fs = match (fs::metadata(&cwd), fs::metadata("/")) {
        (Ok(here), Ok(root)) => here.dev() == root.dev(),
        _ => false,
    };
    if same_fs {
        cwd
    } else {
        "/".into()
    }
}

/// runc's default spec, made a world: writable root (the overlay takes the
/// writes), the caller's command and environment, its own cgroup, and
/// Substrate's own state hidden from the world.
fn default_spec(
    id: &WorldId,
    command: &[String],
    root_path: &Path,
    cwd: &Path,
    runtime: &Runtime,
) -> Result<Spec> {
    if command.is_empty() {
        bail!("no command: give one after `--`, e.g. substrate-cli run -- sh -c 'echo hi'");
    }
    let mut spec = Spec::default();
    spec.set_version("1.2.0".into());
    spec.set_hostname(Some("world".into()));
    spec.set_root(Some(
        RootBuilder::default()
            .path(root_path)
            .readonly(false)
            .build()?,
    ));
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_terminal(Some(false));
    process.set_args(Some(command.to_vec()));
    process.set_cwd(cwd.to_owned());
    let env: Vec<String> = std::env::vars_os()
        .filter_map(|(k, v)| Some(format!("{}={}", k.to_str()?, v.to_str()?)))
        .collect();
    process.set_env(Some(env));
    spec.set_process(Some(process));

    let default_linux = spec.linux().clone().unwrap_or_default();
    let mut masked = default_linux.masked_paths().clone().unwrap_or_default();
    // The world must not read other worlds' records or the runtime's state.
    masked.push(runtime.store().state_dir().to_string_lossy().into_owned());
    masked.push(runtime.root().to_string_lossy().into_owned());
    let linux = LinuxBuilder::default()
        .namespaces(default_linux.namespaces().clone().unwrap_or_default())
        .masked_paths(masked)
        .readonly_paths(default_linux.readonly_paths().clone().unwrap_or_default())
        .resources(default_linux.resources().clone().unwrap_or_default())
        .cgroups_path(PathBuf::from(format!("/substrate/{id}")))
        .build()?;
    spec.set_linux(Some(linux));
    Ok(spec)
}
