//! The shim's life: `start` (spawn or join the shim server of the
//! container's group), the server itself, and `delete` (cleanup after a
//! shim that died).

use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use containerd_shim::publisher::RemotePublisher;
use containerd_shim::util::{timestamp, write_address};
use containerd_shim::{Config, DeleteResponse, ExitSignal, Flags, StartOpts};
use substrate_runtime::Runtime;

use crate::service::Service;

pub const RUNTIME_ID: &str = "io.containerd.substrate.v1";

/// The CRI annotation naming a container's pod: one shim per pod.
const SANDBOX_ANNOTATION: &str = "io.kubernetes.cri.sandbox-id";
/// Where worlds of containerd namespace `ns` live: `$SUBSTRATE_ROOT` (or
/// /run/substrate) + `containerd/<ns>`.
const ROOT_ENV: &str = "SUBSTRATE_ROOT";

pub fn runtime_for(namespace: &str) -> Runtime {
    let base = std::env::var_os(ROOT_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(substrate_runtime::DEFAULT_ROOT));
    Runtime::new(base.join("containerd").join(namespace))
}

pub struct SubstrateShim {
    exit: Arc<ExitSignal>,
    namespace: String,
    id: String,
    bundle: PathBuf,
    /// The socket a server serves on (`-socket unix://PATH`).
    socket: PathBuf,
}

impl containerd_shim::Shim for SubstrateShim {
    type T = Service;

    fn new(_runtime_id: &str, args: &Flags, _config: &mut Config) -> Self {
        SubstrateShim {
            exit: Arc::new(ExitSignal::default()),
            namespace: args.namespace.clone(),
            id: args.id.clone(),
            bundle: PathBuf::from(&args.bundle),
            socket: PathBuf::from(args.socket.strip_prefix("unix://").unwrap_or(&args.socket)),
        }
    }

    fn start_shim(&mut self, opts: StartOpts) -> containerd_shim::Result<String> {
        // containerd runs `start` in the bundle.
        let grouping = sandbox_of(Path::new("config.json")).unwrap_or_else(|| opts.id.clone());
        let address = containerd_shim::socket_address(&opts.address, &opts.namespace, &grouping);
        // The pod's shim already serves: its address, and nothing spawned.
        // A second server would find the socket taken and exit at once,
        // and its SIGCHLD would reach the signal handlers containerd-shim
        // 0.11 is tearing down as `start` returns: their writes to a closed
        // socket raise SIGPIPE, whose handler writes again — a loop at 100%
        // CPU, and a StartContainer that never returns.
        let address = if serves(&address) {
            address
        } else {
            containerd_shim::spawn(opts, &grouping, Vec::new())?.1
        };
        // A `.address` left by a crash would make write_address fail.
        let _ = std::fs::remove_file(".address");
        write_address(&address)?;
        // Said and done: exit now, before the crate drops its signal
        // iterator with handlers still installed (see above).
        let mut stdout = std::io::stdout().lock();
        let written = write!(stdout, "{address}").and_then(|()| stdout.flush());
        std::process::exit(if written.is_ok() { 0 } else { 1 });
    }

    fn delete_shim(&mut self) -> containerd_shim::Result<DeleteResponse> {
        // The shim that served this container is gone: so is its world.
        let runtime = runtime_for(&self.namespace);
        if let Ok(world) = runtime.world(&self.id) {
            if let Err(e) = world.delete(true) {
                log::warn!(
                    "deleting world {}: {}",
                    self.id,
                    substrate_runtime::one_line(&e)
                );
            }
        }
        let bundle = if self.bundle.as_os_str().is_empty() {
            std::env::current_dir().unwrap_or_default()
        } else {
            self.bundle.clone()
        };
        let _ = nix::mount::umount2(&bundle.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
        Ok(DeleteResponse {
            // As if killed: 128 + SIGKILL.
            exit_status: 137,
            exited_at: Some(timestamp()?).into(),
            ..Default::default()
        })
    }

    fn wait(&mut self) {
        self.exit.wait();
    }

    fn create_task_service(&self, _publisher: RemotePublisher) -> Service {
        match Service::new(
            self.namespace.clone(),
            runtime_for(&self.namespace),
            Arc::clone(&self.exit),
            self.socket.clone(),
        ) {
            Ok(service) => service,
            Err(e) => {
                log::error!("cannot start the task service: {e}");
                std::process::exit(1);
            }
        }
    }
}

/// Whether a shim answers at `address` (`unix://PATH`).
fn serves(address: &str) -> bool {
    let path = address.strip_prefix("unix://").unwrap_or(address);
    UnixStream::connect(path).is_ok()
}

/// The pod a container belongs to, from its bundle's annotations.
fn sandbox_of(config: &Path) -> Option<String> {
    let spec: serde_json::Value = serde_json::from_slice(&std::fs::read(config).ok()?).ok()?;
    spec["annotations"][SANDBOX_ANNOTATION]
        .as_str()
        .map(str::to_owned)
}
