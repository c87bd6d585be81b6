//! A containerd of a test's own: root, state, socket and config in a temp
//! dir, the shim found on PATH (the workspace's binaries first), worlds in
//! the temp dir too; stopped, with whatever it ran, when dropped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::{base_bundles, bin_dir, processes_mentioning, wait_until};
use serde_json::Value;
use tempfile::TempDir;

pub const RUNTIME: &str = "io.containerd.substrate.v1";
pub const IMAGE: &str = "localhost/substrate-busybox:latest";

pub const PAUSE_IMAGE: &str = "localhost/substrate-pause:latest";

pub struct Containerd {
    dir: TempDir,
    daemon: Option<Child>,
    /// The namespace images go to and `ctr` works in.
    namespace: &'static str,
    /// `FAILPOINTS` for containerd, and so for its shims and their helpers.
    fail_points: Option<String>,
    /// With the CRI plugin: the CNI network of this containerd's own.
    cni: Option<CniNetwork>,
}

/// A CNI bridge network of one containerd's own: a bridge name and a
/// `10.231.N.0/24` no other (of this process, or on the host now) has.
/// Two containerds on one bridge and subnet, each with its own IPAM, gave
/// two pods the same address; the bridge plugin never removes its bridge,
/// so it is removed when the containerd is dropped.
struct CniNetwork {
    bridge: String,
    octet: u8,
}

impl CniNetwork {
    fn new() -> CniNetwork {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // The /24s of 10.231.0.0/16 the host has an address in.
        let addresses = Command::new("ip")
            .args(["-o", "-4", "addr", "show"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let used: Vec<u8> = addresses
            .split_whitespace()
            .filter_map(|word| word.strip_prefix("10.231."))
            .filter_map(|rest| rest.split('.').next()?.parse().ok())
            .collect();
        let first = (pid + n * 37) % 250;
        let octet = (0..250)
            .map(|i| ((first + i) % 250) as u8)
            .find(|octet| !used.contains(octet))
            .expect("a free /24 in 10.231.0.0/16");
        CniNetwork {
            bridge: format!("sbr{}x{}", pid % 100_000, n % 100),
            octet,
        }
    }
}

impl Drop for CniNetwork {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

impl Containerd {
    /// For `ctr`: the CRI plugin off.
    pub fn start() -> Containerd {
        Self::start_with(false, None)
    }

    /// For `ctr`, with the shims failing where `fail_points` says
    /// (`FAILPOINTS` syntax: `world.start=return`).
    pub fn start_failing(fail_points: &str) -> Containerd {
        Self::start_with(false, Some(fail_points.to_owned()))
    }

    /// With the CRI plugin: runtime handler `substrate` (deploy/'s
    /// settings), the pause image as sandbox image, CNI from Debian's
    /// containernetworking-plugins with a bridge network of this test's.
    /// `restrict_oom_score_adj`: these machines lack CAP_SYS_RESOURCE, so
    /// the -998 CRI asks for a sandbox cannot be set (with any runtime) from
    /// a containerd at 0; production containerd runs at -999.
    pub fn start_with_cri() -> Containerd {
        Self::start_with(true, None)
    }

    fn start_with(cri: bool, fail_points: Option<String>) -> Containerd {
        let dir = tempfile::Builder::new()
            .prefix("substrate-ctd-")
            .tempdir_in("/tmp")
            .unwrap();
        let d = dir.path().display();
        // Top-level keys come before the first table.
        let disabled = if cri {
            ""
        } else {
            "disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"
        };
        let mut config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n{disabled}\
             [grpc]\n  address = \"{d}/c.sock\"\n[debug]\n  level = \"info\"\n"
        );
        let cni = cri.then(CniNetwork::new);
        if let Some(CniNetwork { bridge, octet }) = &cni {
            fs::create_dir_all(dir.path().join("cni")).unwrap();
            fs::write(
                dir.path().join("cni/10-substrate.conflist"),
                format!(
                    r#"{{"cniVersion":"0.4.0","name":"substrate-test","plugins":[{{"type":"bridge","bridge":"{bridge}","isGateway":true,"ipMasq":false,"ipam":{{"type":"host-local","ranges":[[{{"subnet":"10.231.{}.0/24"}}]],"dataDir":"{d}/ipam"}}}},{{"type":"loopback"}}]}}"#,
                    octet
                ),
            )
            .unwrap();
            config.push_str(&format!(
                "[plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"{PAUSE_IMAGE}\"\n\
                 \x20 restrict_oom_score_adj = true\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n\
                 \x20 runtime_type = \"io.containerd.runc.v2\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.substrate]\n\
                 \x20 runtime_type = \"{RUNTIME}\"\n  pod_annotations = [\"io.substrate.*\"]\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = \"/usr/lib/cni\"\n  conf_dir = \"{d}/cni\"\n"
            ));
        }
        fs::write(dir.path().join("config.toml"), config).unwrap();
        let namespace = if cri { "k8s.io" } else { "default" };
        let mut ctd = Containerd {
            dir,
            daemon: None,
            namespace,
            fail_points,
            cni,
        };
        ctd.spawn_daemon();
        let mut images = vec![base_bundles().busybox_image()];
        if cri {
            images.push(base_bundles().pause_image());
        }
        for image in images {
            let import = ctd.ctr(&["images", "import", image.to_str().unwrap()]);
            assert!(
                import.status.success(),
                "{}",
                String::from_utf8_lossy(&import.stderr)
            );
        }
        ctd
    }

    /// The end of containerd's log (the shims' lines included), for
    /// failure messages.
    pub fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.path("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains("level=info msg=\"loading plugin"))
            .collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `ctr events` from now until the returned watcher is dropped.
    pub fn watch_events(&self) -> EventWatch {
        let path = self.path(&format!("events-{}.txt", crate::unique_id("w")));
        let child = self
            .ctr_command(&["events"])
            .stdout(fs::File::create(&path).unwrap())
            .spawn()
            .expect("ctr events");
        let watch = EventWatch { child, path };
        // ctr subscribes asynchronously, and says nothing when it has. An
        // event of our own that it prints shows it has: namespaces made and
        // removed (nothing else sees them) until one of them is printed.
        let marker = crate::unique_id("events-ready");
        let mut made = 0;
        wait_until("ctr events to print an event of ours", || {
            made += 1;
            let namespace = format!("{marker}-{made}");
            self.ok(&["namespaces", "create", &namespace]);
            self.ok(&["namespaces", "remove", &namespace]);
            watch.seen().contains(&marker)
        });
        watch
    }

    /// The node's config dir the shims read policies from
    /// (`SUBSTRATE_CONFIG_DIR`): empty until a test writes to it.
    pub fn config_dir(&self) -> PathBuf {
        self.path("etc-substrate")
    }

    /// Installs the node policy `name` (`policies/NAME.yaml`), or with
    /// `None` the node default (`policy.yaml`).
    pub fn install_policy(&self, name: Option<&str>, text: &str) {
        let path = match name {
            Some(name) => self
                .config_dir()
                .join("policies")
                .join(format!("{name}.yaml")),
            None => self.config_dir().join("policy.yaml"),
        };
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    /// The CNI bridge's gateway (the host's address on it) with the CRI
    /// plugin: pods reach the host there.
    pub fn cni_gateway(&self) -> std::net::Ipv4Addr {
        let cni = self.cni.as_ref().expect("a containerd with the CRI plugin");
        std::net::Ipv4Addr::new(10, 231, cni.octet, 1)
    }

    /// containerd's socket.
    pub fn socket(&self) -> PathBuf {
        self.path("c.sock")
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn spawn_daemon(&mut self) {
        let path = format!(
            "{}:{}",
            bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path("containerd.log"))
            .unwrap();
        let mut daemon = Command::new("containerd");
        if let Some(fail_points) = &self.fail_points {
            daemon.env("FAILPOINTS", fail_points);
        }
        let daemon = daemon
            .arg("--config")
            .arg(self.path("config.toml"))
            .env("PATH", path)
            .env("SUBSTRATE_STATE_DIR", self.path("worlds"))
            .env("SUBSTRATE_ROOT", self.path("substrate"))
            // The node's policies are this test's, never the host's
            // /etc/substrate (a host whose policy.yaml exists would govern
            // every test world).
            .env("SUBSTRATE_CONFIG_DIR", self.config_dir())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("containerd (Debian: containerd)");
        self.daemon = Some(daemon);
        let socket = self.path("c.sock");
        wait_until("containerd's socket", || socket.exists());
        wait_until("containerd to answer", || {
            Command::new("ctr")
                .arg("-a")
                .arg(&socket)
                .arg("version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    }

    pub fn stop_daemon(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(daemon.id() as i32),
                nix::sys::signal::SIGTERM,
            );
            let _ = daemon.wait();
        }
    }

    pub fn ctr_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("-a")
            .arg(self.path("c.sock"))
            .arg("-n")
            .arg(self.namespace)
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    pub fn ctr(&self, args: &[&str]) -> Output {
        self.ctr_command(args).output().expect("ctr")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ctr run --rm` of `sh -c script`: its output.
    pub fn run(&self, id: &str, script: &str) -> Output {
        self.ctr(&[
            "run",
            "--rm",
            "--runtime",
            RUNTIME,
            IMAGE,
            id,
            "sh",
            "-c",
            script,
        ])
    }

    pub fn run_detached(&self, id: &str, script: &str) {
        self.ok(&[
            "run",
            "-d",
            "--runtime",
            RUNTIME,
            IMAGE,
            id,
            "sh",
            "-c",
            script,
        ]);
    }

    pub fn task_status(&self, id: &str) -> Option<String> {
        let list = self.ok(&["task", "ls"]);
        list.lines()
            .find(|l| l.split_whitespace().next() == Some(id))
            .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
    }

    pub fn world(&self, id: &str) -> PathBuf {
        self.path("worlds").join("worlds").join(id)
    }

    pub fn record(&self, id: &str) -> Value {
        serde_json::from_slice(&fs::read(self.world(id).join("world.json")).unwrap()).unwrap()
    }

    pub fn trace(&self, id: &str) -> Vec<Value> {
        fs::read_to_string(self.world(id).join("trace.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The shim servers of this containerd (not their one-shot helpers).
    pub fn shim_pids(&self) -> Vec<i32> {
        processes_mentioning("containerd-shim-substrate-v1")
            .into_iter()
            .filter(|pid| {
                !fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains("__substrate-helper"))
            })
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/environ")).is_ok_and(|e| {
                    String::from_utf8_lossy(&e).contains(&self.path("worlds").display().to_string())
                })
            })
            .collect()
    }

    /// Nothing of container `id` left: mounts, runtime state, cgroups.
    pub fn assert_clean(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut left = Vec::new();
            let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
            left.extend(
                mountinfo
                    .lines()
                    .filter(|l| l.contains(&format!("/{id}/")))
                    .map(str::to_owned),
            );
            let state = self
                .path("substrate")
                .join("containerd")
                .join(self.namespace)
                .join(id);
            if state.exists() {
                left.push(format!("state {}", state.display()));
            }
            for hierarchy in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
                let cgroup = hierarchy.path().join(self.namespace).join(id);
                if cgroup.exists() {
                    left.push(format!("cgroup {}", cgroup.display()));
                }
            }
            if left.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "container {id} left behind: {left:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Tasks first (their shims exit with them), then the daemon.
        if self.daemon.is_some() {
            for line in self.ok(&["task", "ls", "-q"]).lines() {
                let _ = self.ctr(&["task", "kill", "-s", "SIGKILL", line]);
                let _ = self.ctr(&["task", "delete", "-f", line]);
            }
            for line in self.ok(&["containers", "ls", "-q"]).lines() {
                let _ = self.ctr(&["containers", "rm", line]);
            }
        }
        self.stop_daemon();
        for pid in self.shim_pids() {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let root = self.dir.path().display().to_string();
        for line in mountinfo.lines().filter(|l| l.contains(&root)) {
            if let Some(target) = line.split_whitespace().nth(4) {
                let _ = nix::mount::umount2(Path::new(target), nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

/// A running `ctr events`, writing to a file.
pub struct EventWatch {
    child: Child,
    path: PathBuf,
}

impl EventWatch {
    /// What `ctr events` printed so far.
    pub fn seen(&self) -> String {
        fs::read_to_string(&self.path).unwrap_or_default()
    }
}

impl Drop for EventWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
