//! Harness for Substrate's end-to-end tests: real kernel, real binaries.
//!
//! Every test gets its own state root (a temp dir) and its own container ids,
//! so the suite runs in parallel without tests seeing each other's worlds.

pub mod cgroup;
pub mod containerd;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// The repository checkout.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_owned()
}

/// Directory holding the workspace's binaries: `SUBSTRATE_BIN_DIR`, or the
/// cargo profile dir this test binary was built into (`target/debug`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SUBSTRATE_BIN_DIR") {
        return dir.into();
    }
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_owned()
}

pub fn bin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`, which `make test` does)",
        path.display()
    );
    path
}

/// Built artifacts of `bundles/build.sh`, made once per target dir and shared
/// by every test (the rootfs is mounted read-only by each world).
pub struct BaseBundles {
    pub dir: PathBuf,
}

impl BaseBundles {
    pub fn busybox(&self) -> PathBuf {
        self.dir.join("busybox")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("busybox/rootfs")
    }
    pub fn busybox_image(&self) -> PathBuf {
        self.dir.join("busybox-image.tar")
    }
    pub fn pause_image(&self) -> PathBuf {
        self.dir.join("pause-image.tar")
    }
}

pub fn base_bundles() -> &'static BaseBundles {
    static BUNDLES: OnceLock<BaseBundles> = OnceLock::new();
    BUNDLES.get_or_init(|| {
        let dir = bin_dir().join("test-bundles");
        if !dir.join("busybox/config.json").exists() || !dir.join("pause-image.tar").exists() {
            // Build beside the final place and rename, so concurrent test
            // processes never see a half-built bundle.
            let tmp = tempfile::Builder::new()
                .prefix(".test-bundles-")
                .tempdir_in(bin_dir())
                .expect("tempdir");
            let status = Command::new("bash")
                .arg(workspace_root().join("bundles/build.sh"))
                .arg(tmp.path())
                .stdout(Stdio::null())
                .status()
                .expect("run bundles/build.sh");
            assert!(status.success(), "bundles/build.sh failed");
            let built = tmp.keep();
            // An older build without every artefact gives way.
            if !dir.join("pause-image.tar").exists() {
                let _ = fs::remove_dir_all(&dir);
            }
            if fs::rename(&built, &dir).is_err() {
                // Another test process won the race; use its copy.
                let _ = fs::remove_dir_all(&built);
            }
        }
        BaseBundles { dir }
    })
}

/// Compiles the C program `source` (a path under the workspace) static
/// with musl-gcc into `dir` (see [`programs_dir`]), named after it.
pub fn compile_static(source: &str, dir: &Path) -> PathBuf {
    let src = workspace_root().join(source);
    let out = dir.join(Path::new(source).file_stem().unwrap());
    // The kernel headers (<linux/io_uring.h>) are not in musl's path;
    // after it, they add only what musl lacks.
    let status = std::process::Command::new("musl-gcc")
        .args(["-static", "-O2"])
        .args([
            "-idirafter",
            "/usr/include",
            "-idirafter",
            "/usr/include/x86_64-linux-gnu",
        ])
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .expect("musl-gcc (Debian: musl-tools)");
    assert!(status.success(), "musl-gcc {}", src.display());
    out
}

/// A dir for test programs that a host-rootfs world can see (its lower is
/// the host's /, and /tmp is not the host's in a world): under /var/tmp,
/// mode 0755, removed when dropped.
pub fn programs_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("substrate-programs")
        .tempdir_in("/var/tmp")
        .unwrap();
    fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    dir
}

/// A TCP port of 127.0.0.1 nothing listens on: one the kernel gave a
/// listener of this test's, closed again.
pub fn unused_loopback_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A unique container id: the test's name plus this process and a counter.
pub fn unique_id(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `substrate-runtime` with a private `--root` and world store
/// (`SUBSTRATE_STATE_DIR`).
pub struct Runtime {
    pub bin: PathBuf,
    pub root: TempDir,
    pub state: TempDir,
    /// `SUBSTRATE_ROOTFS` for `substrate-runtime`: `None` is its default
    /// (the rootfs written in place, as runc does).
    rootfs: Option<&'static str>,
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    pub fn new() -> Self {
        Runtime {
            bin: bin("substrate-runtime"),
            root: tempfile::Builder::new()
                .prefix("substrate-root-")
                .tempdir()
                .expect("tempdir"),
            state: tempfile::Builder::new()
                .prefix("substrate-state-")
                .tempdir()
                .expect("tempdir"),
            rootfs: None,
        }
    }

    /// A runtime whose worlds get Substrate's own overlay over a
    /// plain-directory rootfs (`SUBSTRATE_ROOTFS=overlay`): the bundle is
    /// never written, every write is diffed, the preload tracer injected.
    pub fn overlay() -> Self {
        let mut runtime = Self::new();
        runtime.rootfs = Some("overlay");
        runtime
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The world store: `<state>/worlds/<id>/` holds each world's record.
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    pub fn world_dir(&self, id: &str) -> PathBuf {
        self.state.path().join("worlds").join(id)
    }

    /// The record (`world.json`) of world `id`.
    /// The world's trace, one JSON value per span.
    pub fn spans(&self, id: &str) -> Vec<Value> {
        fs::read_to_string(self.world_dir(id).join("trace.jsonl"))
            .expect("the world's trace")
            .lines()
            .map(|l| serde_json::from_str(l).expect("a span line"))
            .collect()
    }

    pub fn record(&self, id: &str) -> Value {
        let path = self.world_dir(id).join("world.json");
        serde_json::from_slice(
            &fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
        .expect("world.json is JSON")
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        if let Some(rootfs) = self.rootfs {
            cmd.env("SUBSTRATE_ROOTFS", rootfs);
        }
        cmd.env("SUBSTRATE_STATE_DIR", self.state.path())
            .env("SUBSTRATE_CONFIG_DIR", self.config_dir())
            .arg("--root")
            .arg(self.root.path())
            .args(args);
        cmd
    }

    /// The node's config dir its worlds' policies come from
    /// (`SUBSTRATE_CONFIG_DIR`), this test's, never the host's
    /// `/etc/substrate`: it does not exist until a test writes to it.
    pub fn config_dir(&self) -> PathBuf {
        self.state.path().join("etc-substrate")
    }

    /// `substrate-cli` sharing this runtime's root and world store.
    pub fn cli(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin("substrate-cli"));
        cmd.env("SUBSTRATE_STATE_DIR", self.state.path())
            .env("SUBSTRATE_CONFIG_DIR", self.config_dir())
            .env("NO_COLOR", "1")
            .arg("--root")
            .arg(self.root.path())
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// `substrate-cli run --name <name> -- sh -c <script>`, asserted to
    /// succeed.
    pub fn cli_run_ok(&self, name: &str, script: &str) -> Output {
        let out = self
            .cli(&["run", "--name", name, "--", "sh", "-c", script])
            .output()
            .expect("spawn substrate-cli");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs to completion with stdin closed and output captured. Output goes
    /// through files, not pipes: a created world's init inherits them and
    /// would hold a pipe open until it exits, as with runc.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut stdout = tempfile::tempfile().expect("tempfile");
        let mut stderr = tempfile::tempfile().expect("tempfile");
        let status = self
            .cmd(args)
            .stdin(Stdio::null())
            .stdout(stdout.try_clone().expect("dup"))
            .stderr(stderr.try_clone().expect("dup"))
            .status()
            .expect("spawn substrate-runtime");
        Output {
            status,
            stdout: read_all(&mut stdout),
            stderr: read_all(&mut stderr),
        }
    }

    /// Runs, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "substrate-runtime {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs, asserts a non-zero exit and a single line on stderr, returns it.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "substrate-runtime {args:?} should have failed; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "runc's error exit status is 1: {stderr}"
        );
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "expected a one-line error, got: {stderr}"
        );
        stderr
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state is JSON")
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub fn wait_status(&self, id: &str, status: &str) {
        wait_until(&format!("{id} to be {status}"), || {
            self.status(id) == status
        });
    }

    /// Waits until `id` exists and runs (it may be created by another
    /// process, such as `substrate-cli run`).
    pub fn wait_running(&self, id: &str) {
        wait_until(&format!("{id} to run"), || {
            self.run(&["state", id]).status.success() && self.status(id) == "running"
        });
    }

    pub fn pid(&self, id: &str) -> i32 {
        self.state(id)["pid"].as_i64().expect("pid") as i32
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Whatever a failed test left running is killed, so one failure does
        // not leak processes into the next tests.
        if let Ok(entries) = fs::read_dir(self.root.path()) {
            for entry in entries.flatten() {
                let id = entry.file_name();
                let _ = self
                    .cmd(&["delete", "--force", &id.to_string_lossy()])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        // A kept world's upper filesystem is mounted until `rm`: unmounted
        // here (its loop device goes with it), so the temp dir can go.
        if let Ok(worlds) = fs::read_dir(self.state.path().join("worlds")) {
            for world in worlds.flatten() {
                let _ = nix::mount::umount2(
                    &world.path().join("layer"),
                    nix::mount::MntFlags::MNT_DETACH,
                );
            }
        }
    }
}

fn read_all(file: &mut fs::File) -> Vec<u8> {
    use std::io::{Read, Seek};
    let mut bytes = Vec::new();
    file.rewind().expect("rewind");
    file.read_to_end(&mut bytes).expect("read");
    bytes
}

/// An OCI bundle whose rootfs is the shared busybox rootfs, with a config
/// edited per test.
pub struct Bundle {
    pub dir: TempDir,
    pub config: Value,
}

impl Bundle {
    /// A bundle running `args`, in the cgroup `/substrate-tests/<id>` so
    /// leftovers can be looked for by id.
    pub fn new(id: &str, args: &[&str]) -> Self {
        let base = base_bundles();
        let mut config: Value = serde_json::from_slice(
            &fs::read(base.busybox().join("config.json")).expect("base config"),
        )
        .expect("base config is JSON");
        config["root"]["path"] = base.rootfs().to_string_lossy().into();
        // The sample bundle is writable and has no /tmp of its own
        // (bundles/build.sh); every test shares its rootfs, which no test
        // may write: read-only, with a tmpfs /tmp, unless a test says so.
        config["root"]["readonly"] = true.into();
        let mounts = config["mounts"].as_array_mut().expect("mounts");
        if !mounts.iter().any(|m| m["destination"] == "/tmp") {
            mounts.push(serde_json::json!({
                "destination": "/tmp",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "nodev", "mode=1777"]
            }));
        }
        config["process"]["args"] = args.iter().map(|a| Value::from(*a)).collect();
        config["linux"]["cgroupsPath"] = cgroup_path(id).into();
        let bundle = Bundle {
            dir: tempfile::Builder::new()
                .prefix("substrate-bundle-")
                .tempdir()
                .expect("tempdir"),
            config,
        };
        bundle.write();
        bundle
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn path_str(&self) -> &str {
        self.dir.path().to_str().expect("utf-8 temp path")
    }

    pub fn edit(&mut self, f: impl FnOnce(&mut Value)) -> &mut Self {
        f(&mut self.config);
        self.write();
        self
    }

    fn write(&self) {
        let mut file = fs::File::create(self.dir.path().join("config.json")).expect("config.json");
        file.write_all(
            serde_json::to_string_pretty(&self.config)
                .unwrap()
                .as_bytes(),
        )
        .expect("write config.json");
    }
}

pub fn cgroup_path(id: &str) -> String {
    format!("/substrate-tests/{id}")
}

/// Polls `condition` every 10 ms for up to 10 s.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Everything a world named `id` could leave on the host: its state dir, a
/// cgroup in any hierarchy (each v1 one, or the v2 one; see
/// [`cgroup::hierarchies`]), a mount, or a process whose
/// command line names the runtime root and the id (the runtime's own clones
/// and the world's monitor). Returns
/// descriptions of what is left; empty means clean.
pub fn leftovers(runtime_root: &Path, id: &str) -> Vec<String> {
    let mut left = Vec::new();
    let state_dir = runtime_root.join(id);
    if state_dir.exists() {
        left.push(format!("state dir {}", state_dir.display()));
    }
    for candidate in [
        cgroup::Cgroup::of_world(id),
        // libcontainer's default when a bundle names no cgroupsPath.
        cgroup::Cgroup::at(format!(":youki:{id}")),
        // substrate-cli's own specs.
        cgroup::Cgroup::at(format!("substrate/{id}")),
    ] {
        for dir in candidate.existing_dirs() {
            left.push(format!("cgroup {}", dir.display()));
        }
    }
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let root = runtime_root.to_string_lossy();
    for line in mountinfo.lines() {
        if line.contains(root.as_ref()) || line.contains(&format!("/{id}/")) {
            left.push(format!("mount {line}"));
        }
    }
    // The runtime's own processes for this world (its clones before exec,
    // its monitor) name both the root and the id.
    for pid in processes_mentioning(&root) {
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.split(|&b| b == 0).any(|arg| arg == id.as_bytes()) {
            left.push(format!("process {pid}"));
        }
    }
    left
}

/// Pids of live (non-zombie) processes whose command line contains `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let zombie = stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'));
            !zombie
                && String::from_utf8_lossy(&cmdline)
                    .replace('\0', " ")
                    .contains(needle)
        })
        .collect()
}

pub fn assert_no_leftovers(runtime_root: &Path, id: &str) {
    // A killed process may need a moment to be reaped by its new parent.
    let deadline = Instant::now() + Duration::from_secs(5);
    let left = loop {
        let left = leftovers(runtime_root, id);
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(left.is_empty(), "world {id} left behind: {left:#?}");
}
