//! The eBPF source: every exec and socket call of a world's processes, read
//! in the kernel as it happens (`bpf/sensor.bpf.c`), whatever the program
//! is — static, gone 100 µs later, or never calling libc.
//!
//! One set of programs serves every world on the host: the first monitor
//! that needs them loads and attaches them and pins them (links and maps)
//! under [`SENSOR_DIR`]; every other monitor (the shim, `substrate-cli run`,
//! detached monitors, all at once) opens the pins. A world is registered
//! by its pid namespace: its key (the namespace's 64-bit `ns_id`, never
//! reused; its inode on kernels without one) goes into the `worlds` map with
//! the slot of a ring buffer of its own in `rings`, so a busy world cannot
//! make another lose events. Registration happens while the world's init
//! is held before its first exec, so nothing it runs is missed.
//!
//! Every change to the shared maps and pins is made under an flock on
//! `SENSOR_DIR/lock`. When the last world goes, its monitor removes the
//! pins, and the programs detach with them: nothing stays loaded. A world
//! whose monitor died without unregistering is swept by the next
//! registration (its owner's pid and start time no longer match).
//!
//! Where BPF cannot be loaded (no BTF, no CAP_BPF, a kernel that refuses),
//! [`WorldWatch::start`] says why and the monitor keeps the proc connector
//! as its only kernel source; `SUBSTRATE_SENSOR=off` chooses that.

mod event;
mod pins;

pub use event::{parse, EventError, ExecEvent, Header, KernelEvent, NetCall, NetEvent, SockAddr};

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use libbpf_rs::{MapCore, MapFlags, MapHandle, MapType, RingBuffer, RingBufferBuilder};

pub use pins::{host_state, probe, HostState, Probe, ProgramState};
use pins::{HostSensor, WorldSlot};

/// Where the sensor keeps its lock and its own bpffs.
pub const SENSOR_DIR: &str = "/run/substrate/sensor";

/// The environment variable that turns the eBPF source off (`off`).
pub const SENSOR_ENV: &str = "SUBSTRATE_SENSOR";

/// Bytes of each world's ring (the programs' inner map template says the
/// same; the kernel refuses a ring of another size).
const RING_BYTES: u32 = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    #[error("the eBPF sensor is turned off ({SENSOR_ENV}=off)")]
    Disabled,
    #[error("the world shares the host's pid namespace: the sensor tells worlds apart by theirs")]
    HostPidNamespace,
    #[error("another monitor already watches this pid namespace")]
    AlreadyWatched,
    #[error("every one of the sensor's {0} world slots is taken")]
    NoSlot(u32),
    #[error("cannot read the pid namespace of process {pid}")]
    Namespace {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up {}", path.display())]
    Setup {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the kernel refused the sensor's programs: {0}")]
    Load(String),
    #[error("the sensor's maps: {0}")]
    Map(String),
}

impl SensorError {
    fn map(what: &str, e: libbpf_rs::Error) -> SensorError {
        SensorError::Map(format!("{what}: {e}"))
    }
}

/// What the sensor's programs reported since the last read.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<KernelEvent>,
    /// Records that could not be decoded (each one a bug or a forgery).
    pub malformed: u64,
}

/// A world registered with the host's sensor; unregistered when dropped.
pub struct WorldWatch {
    ring: RingBuffer<'static>,
    /// The ring's map: libbpf maps it and needs no fd after, but it is the
    /// map the slot names, and held for as long as the watch is.
    _ring_map: MapHandle,
    records: Arc<Mutex<Vec<Vec<u8>>>>,
    slot: WorldSlot,
    /// Kernel drops already reported.
    dropped_seen: u64,
    sources: Vec<ProgramState>,
}

impl std::fmt::Debug for WorldWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorldWatch")
            .field("slot", &self.slot)
            .field("sources", &self.sources)
            .finish()
    }
}

impl WorldWatch {
    /// Registers the world whose init is `init_pid` (held before its first
    /// exec) with the host's sensor, loading the sensor first if no world
    /// has it loaded.
    pub fn start(init_pid: i32) -> Result<WorldWatch, SensorError> {
        if std::env::var(SENSOR_ENV).is_ok_and(|v| v == "off") {
            return Err(SensorError::Disabled);
        }
        let key = world_key(init_pid)?;
        let ring = MapHandle::create(
            MapType::RingBuf,
            Some("world_ring"),
            0,
            0,
            RING_BYTES,
            &libbpf_sys::bpf_map_create_opts {
                sz: size_of::<libbpf_sys::bpf_map_create_opts>() as libbpf_sys::size_t,
                ..Default::default()
            },
        )
        .map_err(|e| SensorError::map("cannot create a world's ring", e))?;
        let host = HostSensor::lock(Path::new(SENSOR_DIR))?;
        let sources = host.programs().to_vec();
        let slot = host.register(key, &ring)?;
        drop(host);

        let records = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&records);
        let mut builder = RingBufferBuilder::new();
        builder
            .add(&ring, move |record: &[u8]| {
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(record.to_vec());
                0
            })
            .map_err(|e| SensorError::map("cannot map the world's ring", e))?;
        let reader = builder
            .build()
            .map_err(|e| SensorError::map("cannot map the world's ring", e))?;
        Ok(WorldWatch {
            ring: reader,
            _ring_map: ring,
            records,
            slot,
            dropped_seen: 0,
            sources,
        })
    }

    /// The programs that feed this world (exec and socket sources).
    pub fn sources(&self) -> &[ProgramState] {
        &self.sources
    }

    /// Whether socket calls are seen (their programs attached).
    pub fn sees_sockets(&self) -> bool {
        self.sources.iter().any(|p| p.starts_with("net_"))
    }

    /// Readable when the ring has a lot waiting (the programs wake the
    /// reader only past a threshold: read on a timer too).
    pub fn as_raw_fd(&self) -> i32 {
        self.ring.epoll_fd()
    }

    /// What the kernel has written since the last read (see also
    /// [`WorldWatch::dropped`]).
    pub fn read(&mut self) -> Batch {
        let _ = self.ring.consume();
        let records = std::mem::take(&mut *self.records.lock().unwrap_or_else(|e| e.into_inner()));
        let mut batch = Batch::default();
        for record in records {
            match parse(&record) {
                Ok(event) => batch.events.push(event),
                Err(_) => batch.malformed += 1,
            }
        }
        batch
    }

    /// Records the kernel dropped since the last call (the world's ring
    /// was full). A map lookup (a syscall): callers ask on a timer, not on
    /// every read.
    pub fn dropped(&mut self) -> u64 {
        let dropped = self.slot.dropped();
        let new = dropped.saturating_sub(self.dropped_seen);
        self.dropped_seen = dropped.max(self.dropped_seen);
        new
    }
}

impl AsFd for WorldWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the epoll fd is owned by `self.ring`, which outlives the
        // borrow.
        unsafe { BorrowedFd::borrow_raw(self.ring.epoll_fd()) }
    }
}

impl Drop for WorldWatch {
    fn drop(&mut self) {
        // On failure, left for the next registration's sweep (the owner's
        // pid is gone by then).
        if let Ok(host) = HostSensor::lock(Path::new(SENSOR_DIR)) {
            host.unregister(&self.slot);
        }
    }
}

/// The key the programs find a world by: its pid namespace's `ns_id`
/// (`NS_GET_ID`), else its inode. A world in the host's own pid namespace
/// cannot be told apart from the host.
fn world_key(init_pid: i32) -> Result<u64, SensorError> {
    let failed = |source| SensorError::Namespace {
        pid: init_pid,
        source,
    };
    let ns = File::open(format!("/proc/{init_pid}/ns/pid")).map_err(failed)?;
    let own = std::fs::metadata("/proc/self/ns/pid").map_err(failed)?;
    let theirs = ns.metadata().map_err(failed)?;
    if (theirs.dev(), theirs.ino()) == (own.dev(), own.ino()) {
        return Err(SensorError::HostPidNamespace);
    }
    Ok(ns_id(&ns).unwrap_or(theirs.ino()))
}

/// `NS_GET_ID` (`_IOR(0xb7, 0xd, __u64)`, Linux 6.18): a namespace's 64-bit
/// id, never reused. `None` on kernels without it.
fn ns_id(ns: &File) -> Option<u64> {
    const NS_GET_ID: libc::c_ulong = 0x8008_b70d;
    let mut id = 0u64;
    // SAFETY: NS_GET_ID writes one u64 through the pointer, which points at
    // `id`; the fd is a namespace file kept open by `ns`.
    let ret = unsafe { libc::ioctl(ns.as_raw_fd(), NS_GET_ID, &mut id as *mut u64) };
    (ret == 0 && id != 0).then_some(id)
}

/// Reads `dropped[slot]`.
fn read_counter(map: &MapHandle, slot: u32) -> u64 {
    map.lookup(&slot.to_ne_bytes(), MapFlags::ANY)
        .ok()
        .flatten()
        .and_then(|v| {
            v.get(..8)
                .map(|b| u64::from_ne_bytes(b.try_into().expect("8 bytes")))
        })
        .unwrap_or(0)
}
