//! The host's one set of sensor programs: loaded, attached and pinned by the
//! first monitor that needs them, shared by the others, removed by the last
//! (see the parent module). Everything here runs under the host lock.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use libbpf_rs::{MapCore, MapFlags, MapHandle, ObjectBuilder};
use nix::fcntl::{Flock, FlockArg};
use nix::mount::{mount, MsFlags};
use sha2::{Digest, Sha256};

use super::{read_counter, SensorError};

/// The programs, compiled by build.rs.
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sensor.bpf.o"));

/// `BPF_FS_MAGIC`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;
/// The programs' slots (`SLOTS` in the C source).
const SLOTS: u32 = 256;

/// The exec programs, best first: `tp_btf` reads typed arguments; `raw_tp`
/// is the same hook on kernels that refuse `tp_btf`.
const EXEC_PROGRAMS: [&str; 2] = ["exec_tp_btf", "exec_raw_tp"];
/// The socket programs (syscall tracepoints) start with this.
const NET_PREFIX: &str = "net_";
const LSM_PROBE: &str = "probe_lsm";

/// An attached program, by name (`exec_tp_btf`, `net_connect_enter`...).
pub type ProgramState = String;

/// A world's place in the shared maps.
pub(crate) struct WorldSlot {
    key: u64,
    slot: u32,
    dropped: MapHandle,
}

impl std::fmt::Debug for WorldSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "slot {} of world key {}", self.slot, self.key)
    }
}

impl WorldSlot {
    /// Records the kernel dropped for this world (its ring was full).
    pub(crate) fn dropped(&self) -> u64 {
        read_counter(&self.dropped, self.slot)
    }
}

/// The host's sensor, locked for a change.
pub(crate) struct HostSensor {
    _lock: Flock<File>,
    pins: PathBuf,
    worlds: MapHandle,
    rings: MapHandle,
    dropped: MapHandle,
    programs: Vec<ProgramState>,
}

/// `struct world` in the C source.
struct WorldEntry {
    slot: u32,
    owner: u64,
    owner_start: u64,
}

impl WorldEntry {
    fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(24);
        b.extend(self.slot.to_ne_bytes());
        b.extend(0u32.to_ne_bytes());
        b.extend(self.owner.to_ne_bytes());
        b.extend(self.owner_start.to_ne_bytes());
        b
    }

    fn from_bytes(b: &[u8]) -> Option<WorldEntry> {
        let u64_at = |at: usize| Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?));
        Some(WorldEntry {
            slot: u32::from_ne_bytes(b.get(..4)?.try_into().ok()?),
            owner: u64_at(8)?,
            owner_start: u64_at(16)?,
        })
    }
}

impl HostSensor {
    /// Takes the host lock and opens the sensor, loading it if no world
    /// has.
    pub(crate) fn lock(dir: &Path) -> Result<HostSensor, SensorError> {
        let setup = |path: &Path| {
            let path = path.to_owned();
            move |source| SensorError::Setup { path, source }
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(setup(dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_CLOEXEC)
            .open(&lock_path)
            .map_err(setup(&lock_path))?;
        let lock =
            Flock::lock(lock, FlockArg::LockExclusive).map_err(|(_, e)| SensorError::Setup {
                path: lock_path.clone(),
                source: e.into(),
            })?;
        let bpffs = dir.join("bpf");
        ensure_bpffs(&bpffs).map_err(setup(&bpffs))?;
        let pins = bpffs.join(object_digest());
        sweep_stale_builds(&bpffs, &pins);
        if !pins.join("map_worlds").exists() {
            load_and_pin(&pins)?;
        }
        let open = |name: &str| {
            MapHandle::from_pinned_path(pins.join(name))
                .map_err(|e| SensorError::map(&format!("cannot open the pinned {name}"), e))
        };
        let programs = fs::read_dir(&pins)
            .map_err(setup(&pins))?
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                Some(name.strip_prefix("link_")?.to_owned())
            })
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        Ok(HostSensor {
            worlds: open("map_worlds")?,
            rings: open("map_rings")?,
            dropped: open("map_dropped")?,
            _lock: lock,
            pins,
            programs,
        })
    }

    pub(crate) fn programs(&self) -> &[ProgramState] {
        &self.programs
    }

    /// Adds a world: its ring in a free slot, then its key (which makes the
    /// programs write to the ring).
    pub(crate) fn register(&self, key: u64, ring: &MapHandle) -> Result<WorldSlot, SensorError> {
        let entries = self.entries();
        // Sweep the worlds of monitors that died without unregistering.
        for (stale_key, entry) in &entries {
            if !owner_alive(entry.owner, entry.owner_start) {
                let _ = self.worlds.delete(&stale_key.to_ne_bytes());
                let _ = self.rings.delete(&entry.slot.to_ne_bytes());
            }
        }
        let used: BTreeSet<u32> = self.entries().iter().map(|(_, entry)| entry.slot).collect();
        let slot = (0..SLOTS)
            .find(|s| !used.contains(s))
            .ok_or(SensorError::NoSlot(SLOTS))?;
        let ring_fd = ring.as_fd().as_raw_fd() as u32;
        self.rings
            .update(&slot.to_ne_bytes(), &ring_fd.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| SensorError::map("cannot add a world's ring", e))?;
        let _ = self
            .dropped
            .update(&slot.to_ne_bytes(), &0u64.to_ne_bytes(), MapFlags::ANY);
        let (owner, owner_start) = own_identity();
        let entry = WorldEntry {
            slot,
            owner,
            owner_start,
        };
        if let Err(e) =
            self.worlds
                .update(&key.to_ne_bytes(), &entry.to_bytes(), MapFlags::NO_EXIST)
        {
            let _ = self.rings.delete(&slot.to_ne_bytes());
            return Err(if self.lookup(key).is_some() {
                SensorError::AlreadyWatched
            } else {
                SensorError::map("cannot add a world", e)
            });
        }
        let dropped = MapHandle::from_pinned_path(self.pins.join("map_dropped"))
            .map_err(|e| SensorError::map("cannot open the pinned map_dropped", e))?;
        Ok(WorldSlot { key, slot, dropped })
    }

    /// Removes a world; the last one takes the programs with it.
    pub(crate) fn unregister(self, world: &WorldSlot) {
        if self.lookup(world.key).is_some_and(|e| e.slot == world.slot) {
            let _ = self.worlds.delete(&world.key.to_ne_bytes());
        }
        let _ = self.rings.delete(&world.slot.to_ne_bytes());
        if self.entries().is_empty() {
            remove_pins(&self.pins);
        }
    }

    fn lookup(&self, key: u64) -> Option<WorldEntry> {
        let value = self
            .worlds
            .lookup(&key.to_ne_bytes(), MapFlags::ANY)
            .ok()??;
        WorldEntry::from_bytes(&value)
    }

    fn entries(&self) -> Vec<(u64, WorldEntry)> {
        self.worlds
            .keys()
            .filter_map(|k| {
                let key = u64::from_ne_bytes(k.get(..8)?.try_into().ok()?);
                Some((key, self.lookup(key)?))
            })
            .collect()
    }
}

/// Removes the pins of other builds of the sensor that no live monitor
/// uses: a build whose load was cut short (its monitor killed while it
/// pinned: no `map_worlds`), or whose worlds' monitors are all gone.
/// Under the host lock, so no monitor is between its checks and its pins.
fn sweep_stale_builds(bpffs: &Path, current: &Path) {
    let Ok(builds) = fs::read_dir(bpffs) else {
        return;
    };
    for build in builds.flatten() {
        let path = build.path();
        if path == current || !path.is_dir() {
            continue;
        }
        let in_use = MapHandle::from_pinned_path(path.join("map_worlds")).is_ok_and(|worlds| {
            worlds.keys().any(|key| {
                worlds
                    .lookup(&key, MapFlags::ANY)
                    .ok()
                    .flatten()
                    .and_then(|v| WorldEntry::from_bytes(&v))
                    .is_some_and(|e| owner_alive(e.owner, e.owner_start))
            })
        });
        if !in_use {
            remove_pins(&path);
        }
    }
}

/// Removes every pin in `pins`, then the directory: the links' last
/// references go, and the programs detach.
fn remove_pins(pins: &Path) {
    // Listed first, then unlinked: unlinking while reading a bpffs dir
    // can skip entries, and a dir left behind without its `map_worlds`
    // would keep its links' programs attached.
    let entries: Vec<PathBuf> = fs::read_dir(pins)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    for entry in entries {
        let _ = fs::remove_file(entry);
    }
    let _ = fs::remove_dir(pins);
}

/// The first 16 hex digits of the object's SHA-256: a new build of the
/// programs gets pins of its own beside an older one still in use.
fn object_digest() -> String {
    let digest = Sha256::digest(OBJECT);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Mounts a bpffs of the sensor's own at `path` unless one is there.
fn ensure_bpffs(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)?;
    if nix::sys::statfs::statfs(path)?.filesystem_type().0 as i64 == BPF_FS_MAGIC {
        return Ok(());
    }
    mount(
        Some("bpf"),
        path,
        Some("bpf"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=0700"),
    )
    .map_err(io::Error::from)
}

/// The syscall tracepoints attach through tracefs; hosts that have not
/// mounted it yet get it mounted where the kernel expects it.
fn ensure_tracefs() {
    let mounted = [
        "/sys/kernel/tracing/events",
        "/sys/kernel/debug/tracing/events",
    ]
    .iter()
    .any(|p| Path::new(p).is_dir());
    if !mounted {
        let _ = mount(
            Some("tracefs"),
            "/sys/kernel/tracing",
            Some("tracefs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None::<&str>,
        );
    }
}

/// Loads the programs the kernel accepts, best first, attaches and pins
/// them with the maps.
fn load_and_pin(pins: &Path) -> Result<(), SensorError> {
    ensure_tracefs();
    quiet_libbpf();
    let mut refusals = Vec::new();
    for with_net in [true, false] {
        for exec in EXEC_PROGRAMS {
            match load_and_attach(exec, with_net) {
                Ok((mut object, links)) => {
                    return pin_all(pins, &mut object, links);
                }
                Err(e) => {
                    refusals.push(format!("{exec}{}: {e}", if with_net { "+net" } else { "" }))
                }
            }
        }
    }
    Err(SensorError::Load(refusals.join("; ")))
}

fn load_and_attach(
    exec: &str,
    with_net: bool,
) -> Result<(libbpf_rs::Object, Vec<(String, libbpf_rs::Link)>), libbpf_rs::Error> {
    let mut open = ObjectBuilder::default().open_memory(OBJECT)?;
    for mut program in open.progs_mut() {
        let name = program.name().to_string_lossy().into_owned();
        program.set_autoload(name == exec || (with_net && name.starts_with(NET_PREFIX)));
    }
    let object = open.load()?;
    let mut links = Vec::new();
    for program in object.progs_mut() {
        let name = program.name().to_string_lossy().into_owned();
        if name == exec || (with_net && name.starts_with(NET_PREFIX)) {
            links.push((name, program.attach()?));
        }
    }
    Ok((object, links))
}

fn pin_all(
    pins: &Path,
    object: &mut libbpf_rs::Object,
    links: Vec<(String, libbpf_rs::Link)>,
) -> Result<(), SensorError> {
    let pin_failed = |e: libbpf_rs::Error| {
        remove_pins(pins);
        SensorError::map("cannot pin the sensor", e)
    };
    // What an earlier load left half made (a monitor killed while it
    // pinned) is not the sensor: it goes, then the dir is made afresh.
    remove_pins(pins);
    fs::DirBuilder::new()
        .mode(0o700)
        .create(pins)
        .map_err(|source| SensorError::Setup {
            path: pins.to_owned(),
            source,
        })?;
    for (name, mut link) in links {
        link.pin(pins.join(format!("link_{name}")))
            .map_err(pin_failed)?;
    }
    // The worlds map last: its pin is what says the sensor is ready.
    for name in ["rings", "dropped", "worlds"] {
        let mut map = object
            .maps_mut()
            .find(|m| m.name() == name)
            .ok_or_else(|| SensorError::Map(format!("the object has no map {name}")))?;
        map.pin(pins.join(format!("map_{name}")))
            .map_err(pin_failed)?;
    }
    Ok(())
}

/// libbpf's own messages (verifier logs of a refused program) would go to
/// the caller's stderr; the refusal is reported as an error instead.
/// `SUBSTRATE_SENSOR_LOG=1` keeps them, to learn why.
fn quiet_libbpf() {
    if std::env::var_os("SUBSTRATE_SENSOR_LOG").is_none() {
        libbpf_rs::set_print(None);
    }
}

/// This process: its pid and start time (pids are reused; the pair is not).
fn own_identity() -> (u64, u64) {
    let pid = std::process::id() as u64;
    (pid, start_time(pid).unwrap_or(0))
}

fn owner_alive(pid: u64, start: u64) -> bool {
    start_time(pid).is_some_and(|s| s == start)
}

/// `/proc/<pid>/stat` field 22: when the process started, in clock ticks.
fn start_time(pid: u64) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// What this host lets the sensor do, as `doctor` and `features` report it.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The exec program that loads (`exec_tp_btf`, `exec_raw_tp`), or why
    /// none does.
    pub exec: Result<String, String>,
    /// Whether the socket programs load and attach.
    pub net: Result<(), String>,
    /// Whether a BPF LSM program loads (the policy broker would use it).
    pub lsm: Result<(), String>,
    /// The programs pinned now, and the worlds watched.
    pub pinned: Vec<String>,
    pub worlds: usize,
}

/// Tries each program kind on this kernel (loads and unloads them; a
/// world's sensor is not touched).
pub fn probe() -> Probe {
    ensure_tracefs();
    quiet_libbpf();
    let try_load = |wanted: &dyn Fn(&str) -> bool, attach: bool| -> Result<(), String> {
        let mut open = ObjectBuilder::default()
            .open_memory(OBJECT)
            .map_err(|e| e.to_string())?;
        for mut program in open.progs_mut() {
            let name = program.name().to_string_lossy().into_owned();
            program.set_autoload(wanted(&name));
        }
        let object = open.load().map_err(|e| e.to_string())?;
        if attach {
            for program in object.progs_mut() {
                if wanted(&program.name().to_string_lossy()) {
                    // Attached, then detached at once: the probe only asks.
                    drop(program.attach().map_err(|e| e.to_string())?);
                }
            }
        }
        Ok(())
    };
    let mut exec_refusals = Vec::new();
    let mut exec = None;
    for name in EXEC_PROGRAMS {
        match try_load(&|n| n == name, true) {
            Ok(()) => {
                exec = Some(name.to_owned());
                break;
            }
            Err(e) => exec_refusals.push(format!("{name}: {e}")),
        }
    }
    let net = try_load(&|n| n.starts_with(NET_PREFIX), true);
    let lsm = try_load(&|n| n == LSM_PROBE, false);
    let (pinned, worlds) = pinned_now();
    Probe {
        exec: exec.ok_or_else(|| exec_refusals.join("; ")),
        net,
        lsm,
        pinned,
        worlds,
    }
}

/// What is loaded on the host now: the programs pinned by any build of
/// the sensor, and the worlds in their maps.
#[derive(Debug, Clone, Default)]
pub struct HostState {
    pub pinned: Vec<String>,
    pub worlds: usize,
}

/// [`HostState`], read under the host lock (so never half-way through a
/// registration).
pub fn host_state() -> HostState {
    let dir = Path::new(super::SENSOR_DIR);
    let lock = File::open(dir.join("lock"))
        .ok()
        .and_then(|f| Flock::lock(f, FlockArg::LockExclusive).ok());
    let (pinned, worlds) = pinned_now();
    drop(lock);
    HostState { pinned, worlds }
}

/// The programs pinned by any build of the sensor, and the worlds in their
/// maps (read without the lock by `probe`: a report, not a decision).
fn pinned_now() -> (Vec<String>, usize) {
    let bpffs = Path::new(super::SENSOR_DIR).join("bpf");
    let mut pinned = Vec::new();
    let mut worlds = 0;
    let Ok(builds) = fs::read_dir(&bpffs) else {
        return (pinned, worlds);
    };
    for build in builds.flatten() {
        let Ok(entries) = fs::read_dir(build.path()) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(program) = name.strip_prefix("link_") {
                pinned.push(program.to_owned());
            }
        }
        if let Ok(map) = MapHandle::from_pinned_path(build.path().join("map_worlds")) {
            worlds += map.keys().count();
        }
    }
    (pinned, worlds)
}
