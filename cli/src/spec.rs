//! The bundle a `substrate-cli run` world starts from.
//!
//! `--rootfs` and the embedded default get Substrate's default spec: the
//! command, least privilege ([`Defaults`]: hidden host secrets, a minimal
//! environment, limits, Docker's seccomp filter), its own cgroup. The
//! default world's lower is the host's root filesystem: its `root.path` is
//! an empty mount point and the runtime mounts the overlay (lower `/`)
//! there, in the world's own mount namespace only.
//!
//! `--bundle` is the user's spec, run from a copy (a bundle is never
//! written) with the command replaced if one is given; it gets the
//! defaults' limits and seccomp filter where its config sets none, and
//! `--env`, `--hide` and the limit flags on top.
//!
//! Every world's command then runs under the world init ([`init`]) unless
//! `--no-init`, and the spec carries [`RunNotes`] for the commands that end
//! the world later.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Capability, LinuxBuilder, RootBuilder, Spec};
use substrate_runtime::{Runtime, WorldId, WorldSource};

pub mod env;
pub mod hide;
pub mod init;
pub mod limits;
pub mod seccomp;

use env::EnvArgs;
use hide::{HideArgs, Lower};
use init::Init;
use limits::{Bytes, Cpus, Host, Limit, Limits, Pids};

/// What a world gets unless the user says otherwise (`substrate-cli run`'s
/// flags).
#[derive(Clone, Debug, Default)]
pub struct Defaults {
    pub hide: HideArgs,
    pub env: EnvArgs,
    pub memory: Limit<Bytes>,
    pub cpus: Limit<Cpus>,
    pub pids: Limit<Pids>,
    /// `--seccomp unconfined`: no filter.
    pub unconfined: bool,
}

/// How `run` starts the world, beyond its command and defaults.
#[derive(Debug, Clone, Default)]
pub struct Launch {
    /// The world init as PID 1 (`None`: `--no-init`, the command is).
    pub init: Option<Init>,
    pub notes: RunNotes,
}

/// What `run` notes in a world's annotations (kept in its runtime state)
/// for the commands that end it later: `stop`, and the guardian of a
/// foreground run (see `commands::stop`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunNotes {
    /// `run --detach`: nobody waits for it; `stop` finishes it.
    pub detached: bool,
    /// A foreground run's token: its guardian acts on this world only.
    pub owner: Option<String>,
}

const NOTE_DETACHED: &str = "io.substrate.cli.detached";
const NOTE_OWNER: &str = "io.substrate.cli.owner";

impl RunNotes {
    /// Sets the notes in `spec` (a bundle's own copies of them are
    /// replaced).
    fn annotate(&self, spec: &mut Spec) {
        let mut annotations = spec.annotations().clone().unwrap_or_default();
        for key in [NOTE_DETACHED, NOTE_OWNER] {
            annotations.remove(key);
        }
        if self.detached {
            annotations.insert(NOTE_DETACHED.into(), "true".into());
        }
        if let Some(owner) = &self.owner {
            annotations.insert(NOTE_OWNER.into(), owner.clone());
        }
        spec.set_annotations(Some(annotations));
    }

    /// The notes of a world, from its state's annotations.
    pub fn of(annotations: Option<&HashMap<String, String>>) -> RunNotes {
        let get = |key| annotations.and_then(|a| a.get(key));
        RunNotes {
            detached: get(NOTE_DETACHED).is_some_and(|v| v == "true"),
            owner: get(NOTE_OWNER).cloned(),
        }
    }
}

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
    /// The command the world runs (what its record names), without the
    /// init in front of it.
    pub command: Vec<String>,
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
        defaults: &Defaults,
        launch: &Launch,
    ) -> Result<Self> {
        defaults.env.validate()?;
        let host = Host::probe()?;
        // Generated bundles live beside the runtime state, not in the world
        // dir: create replaces whatever an earlier world of the id left.
        let generated_dir = runtime.root().join(format!(".bundle-{id}"));
        match origin {
            Origin::Bundle(path) => {
                let path = fs::canonicalize(&path)
                    .with_context(|| format!("bundle {}", path.display()))?;
                let source = WorldSource::Bundle { path: path.clone() };
                let config = path.join("config.json");
                let mut spec = Spec::load(&config)
                    .with_context(|| format!("bundle {}: config.json", path.display()))?;
                let mut process = spec.process().clone().unwrap_or_default();
                if !command.is_empty() {
                    process.set_args(Some(command.to_vec()));
                }
                // The bundle's own environment, plus what was asked for.
                let env = process.env().clone().unwrap_or_default();
                let env = defaults.env.add_to(env, |name| std::env::var_os(name))?;
                process.set_env(Some(env));
                spec.set_process(Some(process));
                let mut root = spec.root().clone().unwrap_or_default();
                if root.path().is_relative() {
                    root.set_path(path.join(root.path()));
                }
                spec.set_root(Some(root.clone()));
                let cwd = spec
                    .process()
                    .as_ref()
                    .map_or_else(|| PathBuf::from("/"), |p| p.cwd().clone());
                let lower = Lower {
                    root: root.path(),
                    cwd: &cwd,
                    substrate_dirs: Vec::new(),
                    defaults: false,
                };
                harden(&mut spec, &lower, defaults, &host, true)?;
                let command = launch.apply(&mut spec, id, root.path())?;
                write_bundle(&generated_dir, &spec, source, command)
            }
            Origin::Rootfs(path) => {
                let path = fs::canonicalize(&path)
                    .with_context(|| format!("rootfs {}", path.display()))?;
                if !path.is_dir() {
                    bail!("rootfs {}: not a directory", path.display());
                }
                let mut spec = default_spec(id, command, &path, Path::new("/"), defaults)?;
                let lower = Lower {
                    root: &path,
                    cwd: Path::new("/"),
                    substrate_dirs: substrate_dirs(runtime),
                    defaults: true,
                };
                harden(&mut spec, &lower, defaults, &host, false)?;
                let command = launch.apply(&mut spec, id, &path)?;
                write_bundle(&generated_dir, &spec, WorldSource::Rootfs { path }, command)
            }
            Origin::Host => {
                let mount_point = runtime.store().rootfs_dir(id);
                let cwd = host_cwd();
                let mut spec = default_spec(id, command, &mount_point, &cwd, defaults)?;
                let lower = Lower {
                    root: Path::new("/"),
                    cwd: &cwd,
                    substrate_dirs: substrate_dirs(runtime),
                    defaults: true,
                };
                harden(&mut spec, &lower, defaults, &host, false)?;
                let command = launch.apply(&mut spec, id, Path::new("/"))?;
                let mut bundle = write_bundle(&generated_dir, &spec, WorldSource::Host, command)?;
                bundle.lower = Some(PathBuf::from("/"));
                Ok(bundle)
            }
        }
    }
}

impl Launch {
    /// The init in front of the command (which is checked first: the init
    /// would find out only once the world runs) and the notes; returns the
    /// command.
    fn apply(&self, spec: &mut Spec, id: &WorldId, lower: &Path) -> Result<Vec<String>> {
        let command = spec
            .process()
            .as_ref()
            .and_then(|p| p.args().clone())
            .unwrap_or_default();
        if let Some(init) = &self.init {
            init::check_command(id, lower, spec)?;
            init.wrap(spec)?;
        }
        self.notes.annotate(spec);
        Ok(command)
    }
}

fn write_bundle(
    dir: &Path,
    spec: &Spec,
    source: WorldSource,
    command: Vec<String>,
) -> Result<WorldBundle> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let bundle = WorldBundle {
        dir: dir.to_owned(),
        source,
        lower: None,
        command,
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

/// The state dir and runtime root in use: hidden from the world with the
/// default ones.
fn substrate_dirs(runtime: &Runtime) -> Vec<PathBuf> {
    vec![
        runtime.store().state_dir().to_owned(),
        runtime.root().to_owned(),
    ]
}

/// runc's default spec, made a world: writable root (the overlay takes the
/// writes), the caller's command in the minimal environment, its own
/// cgroup.
fn default_spec(
    id: &WorldId,
    command: &[String],
    root_path: &Path,
    cwd: &Path,
    defaults: &Defaults,
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
    process.set_env(Some(defaults.env.world_env(|name| std::env::var_os(name))?));
    spec.set_process(Some(process));

    let default_linux = spec.linux().clone().unwrap_or_default();
    let linux = LinuxBuilder::default()
        .namespaces(default_linux.namespaces().clone().unwrap_or_default())
        .masked_paths(default_linux.masked_paths().clone().unwrap_or_default())
        .readonly_paths(default_linux.readonly_paths().clone().unwrap_or_default())
        .resources(default_linux.resources().clone().unwrap_or_default())
        .cgroups_path(PathBuf::from(format!("/substrate/{id}")))
        .build()?;
    spec.set_linux(Some(linux));
    Ok(spec)
}

/// Least privilege on top of `spec`: what `lower` hides masked, limits in
/// `linux.resources` and the seccomp filter. For a user's bundle
/// (`bundle`), a limit or filter its config already has is kept unless a
/// flag sets it.
fn harden(
    spec: &mut Spec,
    lower: &Lower,
    defaults: &Defaults,
    host: &Host,
    bundle: bool,
) -> Result<()> {
    let mut linux = spec.linux().clone().unwrap_or_default();

    let mut masked = linux.masked_paths().clone().unwrap_or_default();
    for path in lower.hidden(&defaults.hide)? {
        let path = path.to_string_lossy().into_owned();
        if !masked.contains(&path) {
            masked.push(path);
        }
    }
    linux.set_masked_paths(Some(masked));

    let mut resources = linux.resources().clone().unwrap_or_default();
    let (memory, cpus, pids) = if bundle {
        // A bundle's own limit stands unless a flag replaces it.
        let (own_memory, own_cpu, own_pids) = limits::has_own(&resources);
        (
            keep_own(defaults.memory, own_memory),
            keep_own(defaults.cpus, own_cpu),
            keep_own(defaults.pids, own_pids),
        )
    } else {
        (
            Some(defaults.memory),
            Some(defaults.cpus),
            Some(defaults.pids),
        )
    };
    let resolved = Limits::resolve(
        memory.unwrap_or_default(),
        cpus.unwrap_or_default(),
        pids.unwrap_or_default(),
        host,
    )?;
    let mut applied = resources.clone();
    resolved.apply(&mut applied, host);
    if memory.is_some() {
        resources.set_memory(*applied.memory());
    }
    if cpus.is_some() {
        resources.set_cpu(applied.cpu().clone());
    }
    if pids.is_some() {
        resources.set_pids(*applied.pids());
    }
    linux.set_resources(Some(resources));

    if defaults.unconfined {
        linux.set_seccomp(None);
    } else if !(bundle && linux.seccomp().is_some()) {
        let caps: HashSet<Capability> = spec
            .process()
            .as_ref()
            .and_then(|p| p.capabilities().as_ref())
            .and_then(|c| c.bounding().clone())
            .unwrap_or_default();
        linux.set_seccomp(Some(seccomp::default_profile(&seccomp::Target::host(caps))));
    }
    spec.set_linux(Some(linux));
    Ok(())
}

/// `None` when a bundle's own setting stays (the flag was left at its
/// default and the bundle has one); else the flag's value.
fn keep_own<T>(flag: Limit<T>, own: bool) -> Option<Limit<T>> {
    match flag {
        Limit::Default if own => None,
        flag => Some(flag),
    }
}
