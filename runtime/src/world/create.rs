//! `create`: set up a world and leave its init process waiting for `start`.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;

use super::{World, WorldMeta};
use crate::bundle::Bundle;
use crate::error::{fail_point, Error, Result};
use crate::id::WorldId;
use crate::inject;
use crate::overlay::{self, PrivateMounts, RootfsLayers};
use crate::record::{
    redact_env, UpperLayer, UpperOwner, WorldEgress, WorldNetwork, WorldRecord, WorldSource,
    RECORD_SCHEMA,
};
use crate::runtime::{ensure_single_threaded, Runtime};
use crate::upper_fs::UpperFs;

/// Standard streams for a world's process; `None` inherits the caller's.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

impl Stdio {
    pub(crate) fn apply(self, mut builder: ContainerBuilder) -> ContainerBuilder {
        if let Some(fd) = self.stdin {
            builder = builder.with_stdin(fd);
        }
        if let Some(fd) = self.stdout {
            builder = builder.with_stdout(fd);
        }
        if let Some(fd) = self.stderr {
            builder = builder.with_stderr(fd);
        }
        builder
    }
}

#[derive(Debug, Default)]
pub struct CreateOptions {
    /// Written with the init pid once it exists (runc `--pid-file`).
    pub pid_file: Option<PathBuf>,
    /// AF_UNIX socket that receives the pty master when `process.terminal`.
    pub console_socket: Option<PathBuf>,
    /// Extra fds, from 3 upwards, passed into the world (runc `--preserve-fds`).
    pub preserve_fds: i32,
    /// Use `MS_MOVE` + chroot instead of pivot_root (for ramfs roots).
    pub no_pivot: bool,
    /// `false` only when the caller stays to wait for the init (`run` in the
    /// foreground); `create` always detaches, as runc's does.
    pub detach: bool,
    pub stdio: Stdio,
    /// What the world record names as the world's origin; by default the
    /// bundle.
    pub source: Option<WorldSource>,
    /// What the world record names as the world's command; by default the
    /// spec's `process.args` (a caller that runs the command under an init
    /// of its own, as `substrate-cli` does, names the command itself).
    pub command: Option<Vec<String>>,
    /// Where the world's writes go.
    pub layering: Layering,
    /// Keep the upper layer Substrate made (its files) when the world is
    /// deleted; by default they go, and the record and diff stay.
    pub keep_upper: bool,
    /// The world's network, set up by create before it returns
    /// ([`World::connect`]). With [`WorldNetwork::LoopbackOnly`] or
    /// [`WorldNetwork::Bridge`] the spec must give the world a network
    /// namespace of its own (the caller's own spec: `substrate-cli`'s).
    pub network: WorldNetwork,
    /// The world's egress policy: its table, installed by create, and its
    /// resolver, which its `/etc/resolv.conf` names, run by its monitor.
    /// `None` with [`WorldNetwork::Spec`]: the node's policy, as the
    /// bundle's annotations choose and narrow it (`world/policy.rs`), or
    /// none when the node has none.
    pub egress: Option<WorldEgress>,
    /// The policy the world's monitor enforces, `network` aside (that is
    /// `egress`): `commands` and `exec` on every exec, `filesystem` on every
    /// open (fanotify permission events), `limits.wall_time` and `budget`;
    /// `None`: none.
    pub policy: Option<substrate_policy::Policy>,
}

/// Where a world's writes go, as the caller (never the bundle) chooses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Layering {
    /// Into the rootfs the bundle names, as runc does: what the OCI runtime
    /// spec says and `substrate-runtime` does by default. A rootfs that
    /// already is an overlay mount (podman's, containerd's snapshot) is
    /// adopted: its upper layer is diffed and the tracer injected there;
    /// a plain directory gets no diff and nothing the spec does not ask for.
    #[default]
    InPlace,
    /// Into an upper layer of Substrate's own, over the rootfs (or over
    /// `lower`, whose `root.path` is then only the overlay's mount point:
    /// `substrate-cli` gives the host's `/`): the rootfs is never written
    /// and every write is in the diff. Only a trusted caller sets `lower`:
    /// it decides what of the host the world sees.
    ///
    /// With `upper_limit`, the upper layer is on a filesystem of its own of
    /// that many bytes (a sparse ext4 image on a loop device, mounted
    /// `nosuid,nodev,noexec` on the host side): past it the world gets
    /// ENOSPC, and no host user can run what the world wrote.
    Overlay {
        lower: Option<PathBuf>,
        upper_limit: Option<u64>,
    },
}

impl Layering {
    fn lower(&self) -> Option<&Path> {
        match self {
            Layering::Overlay { lower, .. } => lower.as_deref(),
            Layering::InPlace => None,
        }
    }

    fn upper_limit(&self) -> Option<u64> {
        match self {
            Layering::Overlay { upper_limit, .. } => *upper_limit,
            Layering::InPlace => None,
        }
    }
}

impl Runtime {
    /// Creates the world `id` from the bundle at `bundle`. On failure nothing
    /// is left behind: no state dir, cgroup or process.
    pub fn create(&self, id: &str, bundle: &Path, mut options: CreateOptions) -> Result<World> {
        let id = &WorldId::new(id)?;
        ensure_single_threaded("create a world")?;
        let dir = self.world_dir(id);
        if dir.exists() {
            return Err(Error::AlreadyExists { id: id.to_string() });
        }
        let layering = std::mem::take(&mut options.layering);
        let network = options.network;
        let upper_limit = layering.upper_limit();
        let bundle = Bundle::load(bundle, layering.lower())?;
        // The caller's own policy wins (`substrate-cli` is root on the
        // node), and so does a network the caller chose (`--net none`:
        // nothing to govern). A world on its spec's network (containerd's,
        // CRI's, podman's) gets the node's, as the bundle's annotations
        // choose and narrow it: refused here, before anything of the world
        // exists.
        let (egress, node_policy) = match (options.egress.clone(), network) {
            (Some(egress), _) => (Some(egress), None),
            (None, WorldNetwork::Spec) => {
                match super::policy::egress_of_bundle(&bundle, self.node_config()).map_err(
                    |source| Error::EgressPolicy {
                        path: bundle.path.clone(),
                        source: Box::new(source),
                    },
                )? {
                    Some((egress, policy)) => (Some(egress), Some(policy)),
                    None => (None, None),
                }
            }
            (None, WorldNetwork::LoopbackOnly | WorldNetwork::Bridge) => (None, None),
        };
        // The node policy's limits: ceilings on the spec's resources (below).
        let node_limits = node_policy.as_ref().map(|policy| policy.limits.clone());
        // The policy's `filesystem.hidden`, `read_only` and `writable`:
        // mounts in the world's spec (`world/filesystem.rs`), whether or
        // not a monitor is needed.
        let filesystem =
            super::filesystem::enforced(options.policy.as_ref().or(node_policy.as_ref()));
        if options.policy.is_none() {
            // What the world's monitor enforces of it, as for a CLI world's.
            options.policy = node_policy.filter(|policy| policy.needs_monitor());
        }
        let linux = bundle
            .spec
            .linux()
            .as_ref()
            .expect("Bundle::load checked linux is present");
        let meta = WorldMeta {
            rootfs: bundle.rootfs().to_owned(),
            cgroup_path: libcontainer::utils::get_cgroup_path(linux.cgroups_path(), id.as_str()),
            started_at: None,
            keep_upper: options.keep_upper,
            link: None,
        };
        // An earlier world of the same id (containerd and podman reuse ids)
        // is gone from the runtime, since `dir` does not exist: its record
        // gives way to this one.
        let store = self.store();
        store.remove(id)?;
        let mut layers = self.rootfs_layers(id, &bundle, layering);
        let mut record = WorldRecord {
            network,
            egress: egress.clone(),
            policy: options.policy.take(),
            ..new_record(
                self,
                id,
                &bundle,
                &layers,
                options.source.take(),
                options.command.take(),
            )
        };
        let prepared = store
            .create_world_dir(id)
            .and_then(|world_dir| {
                // The upper layer's own filesystem, in the host's mount
                // namespace: the diff reads it after the world is gone.
                let Some(size) = upper_limit else {
                    return Ok(());
                };
                let upper_fs = UpperFs::create(&world_dir, &store.templates_dir(), size)?;
                if let RootfsLayers::Stacked { upper, work, .. } = &mut layers {
                    (*upper, *work) = (upper_fs.upper(), upper_fs.work());
                }
                if let Some(record_upper) = &mut record.upper {
                    record_upper.path = upper_fs.upper();
                }
                Ok(())
            })
            .and_then(|()| crate::store::private_dir(self.root()))
            .and_then(|()| self.inject(id, &bundle, &layers))
            .and_then(|injection| {
                if let Some(injection) = &injection {
                    record
                        .mountpoints
                        .extend(injection.mountpoints.iter().cloned());
                    record.preload = true;
                }
                store.save_record(&record)?;
                // Fail points at each phase a crash can interrupt (the
                // tests pause here and kill the process): the record is
                // written, then the overlay is mounted, then libcontainer
                // has built the container (`world.create`).
                fail_point("world.create.recorded")?;
                // Only Substrate's own overlay needs a mount namespace of
                // this thread's (the container's processes start from its
                // mounts); any other world is created from the caller's, as
                // runc's are, hooks included.
                let private = match &layers {
                    RootfsLayers::Stacked { .. } => {
                        let private = PrivateMounts::enter().map_err(|reason| Error::Overlay {
                            target: bundle.rootfs().to_owned(),
                            reason,
                        })?;
                        overlay::mount_stacked(&private, &layers)?;
                        Some(private)
                    }
                    RootfsLayers::InPlace | RootfsLayers::Adopted { .. } => None,
                };
                fail_point("world.create.mounted")?;
                if let Some(injection) = &injection {
                    inject::make_mountpoints(bundle.rootfs(), injection)?;
                }
                Ok((private, injection))
            });
        let (private_mounts, injection) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => return Err(self.discard(id, &dir, e)),
        };
        // libcontainer is given the world's spec: the bundle's, with the
        // rootfs as resolved at load (never followed again), plus the
        // tracer's mounts when it is injected.
        let mut spec = injection.map_or_else(|| bundle.spec.clone(), |i| i.spec);
        if let Some(mut root) = spec.root().clone() {
            root.set_path(bundle.rootfs().to_owned());
            spec.set_root(Some(root));
        }
        if let Some(limits) = &node_limits {
            super::ceilings::apply(&mut spec, limits);
        }
        if egress.is_some() {
            if let Err(e) = super::net::govern_spec(&mut spec, &bundle.path, &store.world_dir(id)) {
                drop(private_mounts);
                return Err(self.discard(id, &dir, e));
            }
        }
        let writable_binds = match filesystem
            .as_ref()
            .map(|policy| super::filesystem::narrow_spec(&mut spec, policy, bundle.rootfs()))
            .transpose()
        {
            Ok(binds) => binds,
            Err(e) => {
                drop(private_mounts);
                return Err(self.discard(id, &dir, Error::filesystem_policy(id, e)));
            }
        };
        let built = self.build(id, &bundle, spec, options);
        // The container's processes have their own copy of the overlay
        // mount now; this thread goes back to the host's mounts.
        drop(private_mounts);

        match built {
            Ok(container) => {
                if let Err(e) = fail_point("world.create") {
                    return Err(self.discard(id, &dir, e));
                }
                let world = World::from_container(id.clone(), container, store.clone());
                super::save_meta(&dir, &meta).map_err(|e| self.discard(id, &dir, e))?;
                // The writable binds are what was checked (the rootfs did
                // not change under libcontainer's mounts).
                if let (Some(binds), Some(pid)) = (&writable_binds, world.pid()) {
                    binds
                        .verify(pid)
                        .map_err(|e| self.discard(id, &dir, Error::filesystem_policy(id, e)))?;
                }
                // Before anything of the world runs: its network, and the
                // egress table that governs it (whoever creates the world
                // — the CLI, the runtime's CLI, the shim's helper — and
                // whether or not it is traced).
                world
                    .connect(network, egress.as_ref())
                    .map_err(|e| self.discard(id, &dir, e))?;
                Ok(world)
            }
            Err(e) => Err(self.discard(id, &dir, e)),
        }
    }

    /// Prepares the preload tracer's injection, unless worlds are untraced
    /// or no library is installed (then the kernel-level trace remains).
    fn inject(
        &self,
        id: &WorldId,
        bundle: &Bundle,
        layers: &RootfsLayers,
    ) -> Result<Option<inject::Injection>> {
        if !inject::tracing_enabled() || matches!(layers, RootfsLayers::InPlace) {
            return Ok(None);
        }
        let Some(library) = inject::preload_library()? else {
            tracing::warn!(
                "world {id}: no {} installed: file, net and DNS calls are not traced",
                substrate_ring::LIBRARY_NAME
            );
            return Ok(None);
        };
        let image_root = match layers {
            // Nothing is written into a rootfs written in place that the
            // spec does not ask for: no tracer there.
            RootfsLayers::InPlace => return Ok(None),
            RootfsLayers::Stacked { lowers, .. } => lowers[0].clone(),
            RootfsLayers::Adopted { .. } => bundle.rootfs().to_owned(),
        };
        inject::prepare(
            &bundle.spec,
            &image_root,
            &library,
            &self.store().inject_dir(id),
        )
        .map(Some)
    }

    /// Where the world's writes go.
    fn rootfs_layers(&self, id: &WorldId, bundle: &Bundle, layering: Layering) -> RootfsLayers {
        let target = bundle.rootfs().to_owned();
        match layering {
            Layering::InPlace => match overlay::existing_overlay(&target) {
                Some((lowers, upper)) => RootfsLayers::Adopted { lowers, upper },
                None => RootfsLayers::InPlace,
            },
            Layering::Overlay { lower, .. } => RootfsLayers::Stacked {
                lowers: vec![lower.unwrap_or_else(|| target.clone())],
                upper: self.store().upper_dir(id),
                work: self.store().work_dir(id),
                target,
            },
        }
    }

    fn build(
        &self,
        id: &WorldId,
        bundle: &Bundle,
        spec: oci_spec::runtime::Spec,
        options: CreateOptions,
    ) -> Result<libcontainer::container::Container> {
        let lc = |e| Error::libcontainer(id, "create", e);
        let CreateOptions {
            pid_file,
            console_socket,
            preserve_fds,
            no_pivot,
            detach,
            stdio,
            source: _,
            command: _,
            layering: _,
            keep_upper: _,
            network: _,
            egress: _,
            policy: _,
        } = options;
        let builder = ContainerBuilder::new(id.to_string(), SyscallType::Linux)
            .with_root_path(self.root())
            .map_err(lc)?
            .with_pid_file(pid_file.as_ref())
            .map_err(lc)?
            .with_console_socket(console_socket.as_ref())
            .with_preserved_fds(preserve_fds);
        stdio
            .apply(builder)
            .as_init(&bundle.path)
            .with_spec(spec)
            .with_systemd(self.systemd_cgroup())
            .with_detach(detach)
            .with_no_pivot(no_pivot)
            .build()
            .map_err(lc)
    }

    /// Removes what a failed create left. libcontainer cleans up after a
    /// failure once the init process is being set up, but not after one
    /// before that (console socket, user namespace checks), so the state
    /// dir goes here too; a force delete also takes any cgroup or process.
    fn discard(&self, id: &WorldId, dir: &Path, primary: Error) -> Error {
        let container_cleanup = if !dir.exists() {
            Ok(())
        } else {
            match self.world(id.as_str()) {
                Ok(world) => world.delete(true),
                Err(_) => fs::remove_dir_all(dir)
                    .map_err(|e| Error::io("cannot remove state dir", dir, e)),
            }
        };
        // Nothing ran in this world: no record of it is kept.
        let record_cleanup = self.store().remove(id);
        match container_cleanup.and(record_cleanup) {
            Ok(()) => primary,
            Err(cleanup) => Error::with_cleanup(primary, cleanup),
        }
    }
}

fn new_record(
    runtime: &Runtime,
    id: &WorldId,
    bundle: &Bundle,
    layers: &RootfsLayers,
    source: Option<WorldSource>,
    command: Option<Vec<String>>,
) -> WorldRecord {
    let process = bundle.spec.process().as_ref();
    WorldRecord {
        schema: RECORD_SCHEMA.to_owned(),
        id: id.clone(),
        source: source.unwrap_or_else(|| WorldSource::Bundle {
            path: bundle.path.clone(),
        }),
        runtime_root: runtime.root().to_owned(),
        lower: layers.lowers().to_vec(),
        upper: layers.upper().map(|upper| UpperLayer {
            path: upper.to_owned(),
            owner: match layers {
                RootfsLayers::Adopted { .. } => UpperOwner::Adopted,
                _ => UpperOwner::World,
            },
            kept: true,
        }),
        mountpoints: bundle
            .spec
            .mounts()
            .iter()
            .flatten()
            .map(|m| m.destination().clone())
            .collect(),
        preload: false,
        command: substrate_trace::redact::redact_command(
            &command
                .or_else(|| process.and_then(|p| p.args().clone()))
                .unwrap_or_default(),
        ),
        env: redact_env(&process.and_then(|p| p.env().clone()).unwrap_or_default()),
        cwd: process
            .map(|p| p.cwd().clone())
            .unwrap_or_else(|| "/".into()),
        created_at: substrate_trace::Timestamp::now(),
        started_at: None,
        ended_at: None,
        exit: None,
        diff: None,
        limits_hit: Vec::new(),
        network: WorldNetwork::Spec,
        egress: None,
        policy: None,
        trace_chain: None,
    }
}
