//! The world monitor: follows a world's processes through the kernel's proc
//! connector and is the only writer of the world's `trace.jsonl`.
//!
//! Every exec in the world becomes an exec span marked `source: kernel`,
//! whatever the program is (static binaries and raw `execve` included): the
//! kernel reports fork, exec and exit of every descendant of the world's init,
//! and the program's argv, exe and cwd are read from `/proc` when its exec is
//! reported. A process that is gone before that read (a `/bin/true` in a
//! tight loop: about 3% of them here) still gets its span, with what the
//! kernel said (pid, parent, times, exit status) and no argv; the preload
//! tracer is what gives those their argv.
//!
//! The preload tracer adds what a program did (file, socket and name-lookup
//! calls) and what only the program itself still knows when /proc is gone
//! (argv, env of a process that exited at once): see [`preload`]. Exec spans
//! stay with the kernel as their source; the preload's account only fills
//! gaps (marked `"filled_by": "preload"`), and its file/net/dns spans are
//! linked to the exec span of the image that made them, by the monitor,
//! from the kernel's view of who is who.
//!
//! Lines are appended whole (`O_APPEND`, each write a run of whole lines),
//! so a crash leaves at most an unfinished last line, which readers skip.
//! Every line is hash-chained to the one before it ([`substrate_trace::chain`]),
//! whoever writes it (this monitor, or whoever ends the trace of a lost one);
//! the chain's end goes into the world record when the trace is closed.
//! Lost events (a receive-buffer overrun, a full ring) are written as `loss`
//! spans: silence never means "nothing happened".

pub mod approval;
mod attach;
pub mod companion;
mod egress;
pub mod export;
mod graph;
mod guard;
mod kernel;
mod lease;
mod limits;
pub mod preload;

pub(crate) use attach::AttachedMonitor;
pub use attach::{serve_detached, Monitoring};
pub use lease::TraceLease;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often `follow` asks whether to give up.
const GIVE_UP_CHECK: Duration = Duration::from_millis(100);

use nix::time::{clock_gettime, ClockId};
use substrate_trace::{ExitStatus, Source, Span, SpanId, Timestamp, WorldDetail};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::os::fd::{AsFd, OwnedFd};
use substrate_ring::hello::HelloKind;

use crate::store::WorldStore;
use preload::{Arrival, Connections, MappedRing, Rings, SpanSocket};
use substrate_sensor::bpf::ExecEvent;
use substrate_sensor::proc_connector::{
    ProcEvent, ProcEventKind, ProcEvents, ProcessTree, Received, TreeChange,
};

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("cannot follow the world's processes")]
    Events(#[from] substrate_sensor::proc_connector::ProcEventsError),
    #[error(transparent)]
    Record(#[from] crate::Error),
    #[error("cannot open the world's span socket {}", path.display())]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the trace {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up the world monitor")]
    Setup(#[source] std::io::Error),
    #[error("cannot take the lease on the world's trace in {}", dir.display())]
    Lease {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the world monitor process")]
    Spawn(#[source] std::io::Error),
    #[error("the world monitor process did not start: {0}")]
    NotReady(String),
    #[error("the world has no init process to follow")]
    NoInit,
    #[error("the world monitor panicked")]
    Panicked,
    #[error("cannot watch the world's egress")]
    Egress(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot gate the world's execs and opens")]
    Guard(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot keep the world's wall time or CPU budget")]
    Limits(#[source] limits::LimitsError),
}

/// A world's `trace.jsonl`, with counts of what it holds, and the lease
/// that makes its holder the trace's one writer.
#[derive(Debug)]
pub struct TraceFile {
    path: PathBuf,
    file: File,
    lease: TraceLease,
    world_id: String,
    counts: BTreeMap<String, u64>,
    /// Untrusted input refused, by reason.
    rejected: BTreeMap<String, u64>,
    /// Events known to be lost (dropped from full rings).
    lost: u64,
    /// Whole lines not yet written.
    pending: Vec<u8>,
    /// The world span's id, the parent of the init's exec span.
    world_span: SpanId,
    /// Which kernel sources traced the world (on the world span).
    sensor: Option<serde_json::Value>,
    /// What the world reached and was refused (on the world span).
    egress: Option<serde_json::Value>,
    /// What its policy gate allowed and refused (on the world span).
    policy: Option<serde_json::Value>,
    /// The limit the monitor stopped the world at (on the world span).
    stopped_by: Option<serde_json::Value>,
    /// The hash chain of the lines written so far, those before this file
    /// was opened included.
    chain: substrate_trace::Chain,
}

/// Lines are written once this many bytes are pending (and at every pass
/// of the monitor's loop).
const WRITE_BATCH: usize = 256 * 1024;

impl TraceFile {
    /// Opens the trace at `path` for appending, its holder the one writer
    /// for as long as `lease` is held. Lines already there (a lost
    /// monitor's) stay, and the chain goes on from the last of them.
    pub fn open(path: &Path, world_id: &str, lease: TraceLease) -> Result<Self, MonitorError> {
        let file = OpenOptions::new()
            .read(true)
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| MonitorError::Write {
                path: path.to_owned(),
                source,
            })?;
        // Read from the start; writes still go to the end (O_APPEND).
        let chain = substrate_trace::Chain::resume(world_id, std::io::BufReader::new(&file))
            .map_err(|source| MonitorError::Write {
                path: path.to_owned(),
                source,
            })?;
        // A writer that died mid-line (a lost monitor) left an unfinished
        // last line: it is ended here, so that it stays one bad line that
        // readers skip and does not swallow the first line written now
        // (the chain counts it as a line, and the next one vouches for it).
        let ends_mid_line = |file: &File| -> std::io::Result<bool> {
            let len = file.metadata()?.len();
            if len == 0 {
                return Ok(false);
            }
            let mut last = [0u8];
            std::os::unix::fs::FileExt::read_exact_at(file, &mut last, len - 1)?;
            Ok(last[0] != b'\n')
        };
        let mut pending = Vec::new();
        if ends_mid_line(&file).map_err(|source| MonitorError::Write {
            path: path.to_owned(),
            source,
        })? {
            pending.push(b'\n');
        }
        Ok(TraceFile {
            path: path.to_owned(),
            file,
            lease,
            world_id: world_id.to_owned(),
            counts: BTreeMap::new(),
            rejected: BTreeMap::new(),
            lost: 0,
            pending,
            world_span: SpanId::new(),
            sensor: None,
            egress: None,
            policy: None,
            stopped_by: None,
            chain,
        })
    }

    fn write(&mut self, span: &Span) -> Result<(), MonitorError> {
        let mut line = match self.chain.link(span) {
            Ok(line) => line,
            // A span over the size cap (a huge argv) is dropped whole, and
            // counted with the other input refused for its size, rather
            // than written cut.
            Err(_) => {
                self.reject("oversized");
                return Ok(());
            }
        };
        line.push('\n');
        self.pending.extend_from_slice(line.as_bytes());
        if self.pending.len() >= WRITE_BATCH {
            self.flush()?;
        }
        // Looked up before inserting: a new String per span would cost.
        let kind = span.kind();
        match self.counts.get_mut(kind.as_str()) {
            Some(count) => *count += 1,
            None => {
                self.counts.insert(kind.as_str().to_owned(), 1);
            }
        }
        Ok(())
    }

    /// Writes the pending lines (one `write` of whole lines).
    pub fn flush(&mut self) -> Result<(), MonitorError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(&self.pending);
        self.pending.clear();
        result.map_err(|source| MonitorError::Write {
            path: self.path.clone(),
            source,
        })
    }

    fn reject(&mut self, reason: &str) {
        *self.rejected.entry(reason.to_owned()).or_default() += 1;
    }

    /// The world's final span: how its init ended, how long it ran, its fs
    /// diff totals and the counts of spans by kind.
    pub fn write_world_span(
        &mut self,
        start: Timestamp,
        exit: Option<ExitStatus>,
        diff: Option<&substrate_fsdiff::DiffSummary>,
    ) -> Result<(), MonitorError> {
        let end = Timestamp::now();
        let detail = WorldDetail {
            duration_ns: start.until(end).map(|d| d.as_nanos() as u64),
            fs: diff.map(|d| substrate_trace::FsTotals {
                added: d.added,
                changed: d.changed,
                deleted: d.deleted,
            }),
            spans: self.counts.clone(),
            rejected: self.rejected.clone(),
            lost: self.lost,
        };
        let mut span = Span::world(self.world_id.clone(), Source::Runtime, start, detail)
            .id(self.world_span)
            .end(end);
        if let Some(exit) = exit {
            span = span.exit(exit);
        }
        let mut span = span.build();
        if let Some(sensor) = self.sensor.clone() {
            span.extra.insert("sensor".into(), sensor);
        }
        if let Some(egress) = self.egress.clone() {
            span.extra.insert("egress".into(), egress);
        }
        if let Some(policy) = self.policy.clone() {
            span.extra.insert("policy".into(), policy);
        }
        if let Some(stopped_by) = self.stopped_by.clone() {
            span.extra.insert("stopped_by".into(), stopped_by);
        }
        self.write(&span)?;
        self.flush()
    }

    pub fn counts(&self) -> &BTreeMap<String, u64> {
        &self.counts
    }

    /// Counts spans written before this file was opened (by a monitor
    /// that was lost) in the world span's totals.
    pub(crate) fn add_counts(&mut self, counts: BTreeMap<String, u64>) {
        for (kind, n) in counts {
            *self.counts.entry(kind).or_default() += n;
        }
    }

    /// Writes a `loss` span: what was lost, said, never silent.
    pub(crate) fn write_loss(&mut self, detail: serde_json::Value) -> Result<(), MonitorError> {
        let span = Span {
            detail: substrate_trace::Detail::Other {
                kind: "loss".into(),
                detail: Some(detail),
            },
            ..Span::world(
                self.world_id.clone(),
                Source::Monitor,
                Timestamp::now(),
                WorldDetail::default(),
            )
            .build()
        };
        self.write(&span)
    }

    /// Where the trace's chain ends once the pending lines are written
    /// (they are, here): what the world record keeps of it.
    pub fn chain_end(&mut self) -> Result<substrate_trace::ChainEnd, MonitorError> {
        self.flush()?;
        Ok(self.chain.end())
    }

    /// Ends the trace once its world span is written (and its chain's end
    /// is in the record): the lease goes back, and the counts of what it
    /// holds are returned.
    pub fn close(mut self) -> Result<BTreeMap<String, u64>, MonitorError> {
        self.flush()?;
        self.lease.release();
        Ok(self.counts)
    }

    /// Untrusted input refused so far, by reason.
    pub fn rejected(&self) -> &BTreeMap<String, u64> {
        &self.rejected
    }
}

impl MonitorReport {
    /// Ends the world's record once `follow` has returned: the init's exit
    /// status (which nothing else learns in a runc- or shim-style flow), the
    /// fs diff (unless `delete` took it already), then the world span.
    pub fn close_world(
        self,
        runtime: &crate::Runtime,
        id: &crate::WorldId,
    ) -> Result<ClosedWorld, MonitorError> {
        let record = match runtime.world(id.as_str()) {
            Ok(world) => world.finish(self.init_exit)?,
            // Already deleted: delete took the diff; add what only we know.
            Err(_) => runtime.store().add_exit(id, self.init_exit)?,
        };
        let mut trace = self.trace;
        trace.write_world_span(
            self.start,
            self.init_exit,
            record.as_ref().and_then(|r| r.diff.as_ref()),
        )?;
        // While the lease is held: a reader that finds no lease finds the
        // chain's end in the record.
        let record = match record {
            Some(_) => runtime.store().add_trace_chain(id, trace.chain_end()?)?,
            None => None,
        };
        let spans = trace.close()?;
        if record.is_some() {
            companion::world_ended(runtime.store(), id);
        }
        Ok(ClosedWorld {
            record,
            spans,
            lost: self.lost,
        })
    }
}

/// A world whose monitor has written its last span.
#[derive(Debug)]
pub struct ClosedWorld {
    /// The world record as it ends (`None`: the world has no record).
    pub record: Option<crate::WorldRecord>,
    /// The trace's spans by kind.
    pub spans: BTreeMap<String, u64>,
    /// Kernel events were lost: the trace may miss processes.
    pub lost: bool,
}

/// An exec span between the exec and the exit (or the next exec).
struct OpenExec {
    id: SpanId,
    parent: Option<SpanId>,
    start: Timestamp,
    pid: i32,
    ppid: Option<i32>,
    world_pid: Option<u32>,
    world_ppid: Option<u32>,
    exe: Option<Vec<u8>>,
    argv: Option<Vec<Vec<u8>>>,
    cwd: Option<Vec<u8>>,
    env: Option<Vec<Vec<u8>>>,
    /// The preload supplied what /proc no longer had.
    filled_by_preload: bool,
    /// The proc connector's timestamp of the exec (CLOCK_MONOTONIC).
    event_ns: u64,
    /// The kernel sensor read argv, exe and cwd at exec time.
    from_sensor: bool,
    /// What only the sensor knows (uid, the exe's inode, a cut argv).
    extra: BTreeMap<String, serde_json::Value>,
}

impl OpenExec {
    /// An image of process `pid` the kernel reported at `start` (`event_ns`
    /// on CLOCK_MONOTONIC), with nothing yet known of what it runs.
    fn new(pid: i32, parent: Option<SpanId>, start: Timestamp, event_ns: u64) -> OpenExec {
        OpenExec {
            id: SpanId::new(),
            parent,
            start,
            pid,
            ppid: None,
            world_pid: None,
            world_ppid: None,
            exe: None,
            argv: None,
            cwd: None,
            env: None,
            filled_by_preload: false,
            event_ns,
            from_sensor: false,
            extra: BTreeMap::new(),
        }
    }
}

/// A program image that has ended (exit or a new exec), written once the
/// grace period for its late messages is over.
struct Retiring {
    due: Instant,
    pid: i32,
    exec: Option<OpenExec>,
    end: Option<Timestamp>,
    exit: Option<ExitStatus>,
    /// The process is gone: its ring is drained a last time and dropped.
    process_gone: bool,
}

/// How long an ended image waits for messages its process sent before it
/// ended (a hello still queued on the socket) before it is written.
const RETIRE_GRACE: Duration = Duration::from_millis(500);
/// How often every ring is drained when nobody rings a doorbell.
const DRAIN_INTERVAL: Duration = Duration::from_millis(20);

/// Subscribed before the world's processes run, so none of them is missed.
pub struct WorldMonitor {
    events: ProcEvents,
    trace: TraceFile,
    /// The world's span socket, when the preload tracer was injected.
    socket: Option<SpanSocket>,
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, to date the kernel's events.
    clock_offset_ns: i64,
    /// When the monitor subscribed: the world span starts then.
    start: Timestamp,
    /// Readable (EOF) once whoever owns the world has deleted it: `follow`
    /// stops at once instead of waiting for exits that may never be
    /// reported (events lost while the cgroup was killed).
    stop: Option<UnixStream>,
    /// The world's network, as its record says: a world without one gets
    /// its failed lookups and connections marked as refused for that.
    network: crate::record::WorldNetwork,
    /// The eBPF sensor's view of the world (or why there is none).
    sensor: kernel::KernelSensor,
    /// Socket records and file events not yet placed (see
    /// `place_kernel_nets`).
    kernel_nets: Vec<substrate_sensor::bpf::NetEvent>,
    kernel_files: Vec<substrate_sensor::files::FileEvent>,
    /// The world's resolver and egress log, when it has an egress policy.
    egress: Option<egress::EgressWatch>,
    /// The policy gate, when its policy says something about execs or opens.
    guard: Option<guard::PolicyGuard>,
    /// The `policy` spans that allowed each pid's coming execs, with the
    /// file each allowed and when.
    exec_decisions: HashMap<i32, Vec<(PathBuf, SpanId, Timestamp)>>,
    /// Decisions taken from the gate, not yet written.
    pending_decisions: Vec<guard::DueDecision>,
    /// The span that called each allowed exec seen (its exec span's
    /// parent), by the decision's span id: the decision's parent.
    decision_callers: HashMap<SpanId, SpanId>,
    /// The policy's wall time and CPU budget, when it sets either.
    limits: Option<limits::LimitWatch>,
}

/// What following a world produced.
pub struct MonitorReport {
    pub trace: TraceFile,
    /// When the monitor subscribed: the world span's start.
    pub start: Timestamp,
    /// How the init ended, as the kernel reported it.
    pub init_exit: Option<ExitStatus>,
    /// Kernel events were lost: the trace may miss processes.
    pub lost: bool,
}

/// What one poll of the monitor's fds found ready.
struct Polled {
    socket: bool,
    stop: bool,
    connections: Vec<bool>,
}

/// The state of one `follow`.
struct Follow {
    init_pid: i32,
    tree: ProcessTree,
    open: HashMap<i32, OpenExec>,
    retiring: Vec<Retiring>,
    /// The span a process belongs to: its own program's, or the one of
    /// the process that forked it until it execs.
    current: HashMap<i32, SpanId>,
    parent_of: HashMap<i32, i32>,
    init_exit: Option<ExitStatus>,
    lost: bool,
    world_pid_ns: Option<PathBuf>,
    rings: Rings,
    connections: Connections,
}

impl WorldMonitor {
    /// Subscribes to the kernel's process events for world `id` of
    /// `store`, whose init (`init_pid`) is held before its first exec:
    /// opens its trace, registers the world with the eBPF sensor (where the
    /// host allows it) and, when the preload tracer was injected (the world
    /// has an inject dir), binds its span socket there.
    pub fn subscribe(
        store: &WorldStore,
        id: &crate::WorldId,
        init_pid: i32,
    ) -> Result<Self, MonitorError> {
        let world_dir = store.world_dir(id);
        let lease = TraceLease::acquire(&world_dir).map_err(|source| MonitorError::Lease {
            dir: world_dir.clone(),
            source,
        })?;
        let mut trace = TraceFile::open(&store.trace_path(id), id.as_str(), lease)?;
        let events = ProcEvents::subscribe()?;
        let world_dir = store.world_dir(id);
        let record = store.record(id).ok();
        // The world's own upper filesystem, when it has one (CLI worlds,
        // and runtime worlds Substrate stacks an overlay for).
        let layer = crate::upper_fs::mount_point(&world_dir);
        let layer = record
            .as_ref()
            .and_then(|r| r.upper.as_ref())
            .filter(|upper| upper.path.parent() == Some(layer.as_path()))
            .map(|_| {
                (
                    layer.clone(),
                    record.as_ref().map(|r| r.lower.clone()).unwrap_or_default(),
                )
            });
        let sensor = kernel::KernelSensor::start(init_pid, layer);
        trace.sensor = Some(sensor.state.to_json());
        let egress = record
            .as_ref()
            .and_then(|r| r.egress.as_ref())
            .map(|policy| egress::EgressWatch::start(init_pid, policy))
            .transpose()
            .map_err(MonitorError::Egress)?;
        let guard = match record.as_ref().and_then(|r| r.policy.as_ref()) {
            Some(policy) => guard::PolicyGuard::start(
                init_pid,
                policy,
                record
                    .as_ref()
                    .and_then(|r| r.upper.as_ref())
                    .map(|u| u.path.clone()),
                record
                    .as_ref()
                    .map(|r| r.mountpoints.clone())
                    .unwrap_or_default(),
                &world_dir,
            )
            .map_err(MonitorError::Guard)?,
            None => None,
        };
        let limits =
            limits::LimitWatch::start(store, id, record.as_ref()).map_err(MonitorError::Limits)?;
        let inject_dir = store.inject_dir(id);
        let socket = inject_dir
            .is_dir()
            .then(|| {
                SpanSocket::bind(&inject_dir).map_err(|source| MonitorError::Socket {
                    path: inject_dir.join(substrate_ring::SOCKET_NAME),
                    source,
                })
            })
            .transpose()?;
        Ok(WorldMonitor {
            events,
            trace,
            socket,
            clock_offset_ns: clock_offset_ns(),
            start: Timestamp::now(),
            stop: None,
            network: store.record(id).map(|r| r.network).unwrap_or_default(),
            sensor,
            kernel_nets: Vec::new(),
            kernel_files: Vec::new(),
            egress,
            guard,
            exec_decisions: HashMap::new(),
            pending_decisions: Vec::new(),
            decision_callers: HashMap::new(),
            limits,
        })
    }

    /// Makes `follow` return as soon as `stop` is readable: its peer wrote
    /// to it or was closed.
    pub fn stop_on(mut self, stop: UnixStream) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Follows the world whose init is `init_pid` until every process in it
    /// has exited, or until `give_up()` says so (checked every 100 ms: the
    /// caller knows the world is gone, e.g. its cgroup was removed).
    pub fn follow(
        mut self,
        init_pid: i32,
        give_up: impl Fn() -> bool,
    ) -> Result<MonitorReport, MonitorError> {
        let mut state = Follow {
            init_pid,
            tree: ProcessTree::new(init_pid),
            open: HashMap::new(),
            retiring: Vec::new(),
            current: HashMap::from([(init_pid, self.trace.world_span)]),
            parent_of: HashMap::new(),
            init_exit: None,
            lost: false,
            // Processes `exec`'d into the world are not descendants of its
            // init; they are recognised by the world's pid namespace.
            world_pid_ns: fs::read_link(format!("/proc/{init_pid}/ns/pid")).ok(),
            rings: Rings::default(),
            connections: Connections::default(),
        };
        let mut last_check = Instant::now();
        let mut last_drain = Instant::now();
        while !state.tree.is_empty() {
            let Polled {
                socket: socket_ready,
                connections: ready,
                stop,
            } = self.wait(&state, DRAIN_INTERVAL)?;
            // Before the connector's events: an exec's record is then held
            // when its connector event comes (the sensor's fires first).
            self.take_sensor_events(&mut state)?;
            // Whether or not poll saw it readable: a connector event that
            // came after the poll (an exec before a file change the sensor
            // read just now) must be applied before what the sensor read is
            // placed on its process's image (a read that finds nothing
            // costs one syscall).
            self.take_kernel_events(&mut state)?;
            self.place_kernel_nets(&state);
            // Checked on a clock, not only when the kernel is quiet: on a
            // busy host other processes' events never stop arriving.
            if stop {
                break;
            }
            if last_check.elapsed() >= GIVE_UP_CHECK {
                last_check = Instant::now();
                if give_up() {
                    break;
                }
            }
            if let Some(stopped_by) = self.limits.as_mut().and_then(|l| l.check()) {
                self.trace.stopped_by = Some(stopped_by);
            }
            // Again, right before the preload's records: the kernel's record
            // of a socket call is written before the call returns, so it is
            // held by the time the preload's account of it is read.
            self.take_sensor_events(&mut state)?;
            self.take_kernel_events(&mut state)?;
            self.place_kernel_nets(&state);
            // After the kernel's events: a hello's sender is then known.
            if socket_ready {
                self.accept(&mut state);
            }
            if ready.iter().any(|&r| r) {
                self.take_messages(&mut state, Some(&ready))?;
            }
            if last_drain.elapsed() >= DRAIN_INTERVAL {
                last_drain = Instant::now();
                self.drain_rings(&mut state)?;
                self.write_kernel_leftovers(&mut state, false)?;
            }
            self.retire(&mut state, false)?;
            self.trace.flush()?;
        }
        // The last messages (hellos of processes that are gone by now),
        // then everything that is still open or retiring.
        self.take_sensor_events(&mut state)?;
        self.take_kernel_events(&mut state)?;
        self.place_kernel_nets(&state);
        self.accept(&mut state);
        self.take_messages(&mut state, None)?;
        self.drain_rings(&mut state)?;
        self.retire(&mut state, true)?;
        for (_, exec) in std::mem::take(&mut state.open) {
            self.write_exec(exec, None, None)?;
        }
        for mut ring in state.rings.drain_all().collect::<Vec<_>>() {
            self.drain_ring(&mut ring)?;
        }
        self.write_kernel_leftovers(&mut state, true)?;
        self.trace.flush()?;
        Ok(MonitorReport {
            trace: self.trace,
            start: self.start,
            init_exit: state.init_exit,
            lost: state.lost,
        })
    }

    /// Polls the kernel socket, the span socket, the stop socket and
    /// pending connections.
    fn wait(&self, state: &Follow, timeout: Duration) -> Result<Polled, MonitorError> {
        let mut fds = vec![PollFd::new(self.events.as_fd(), PollFlags::POLLIN)];
        // Readable once the sensor's ring holds a lot, or file events are
        // queued: both are read on every pass anyway.
        if let Some(sensor) = self.sensor.fd() {
            fds.push(PollFd::new(sensor, PollFlags::POLLIN));
        }
        if let Some(files) = self.sensor.files_fd() {
            fds.push(PollFd::new(files, PollFlags::POLLIN));
        }
        let socket_at = fds.len();
        if let Some(socket) = &self.socket {
            fds.push(PollFd::new(socket.as_fd(), PollFlags::POLLIN));
        }
        if let Some(stop) = &self.stop {
            fds.push(PollFd::new(stop.as_fd(), PollFlags::POLLIN));
        }
        let first_connection = fds.len();
        fds.extend(
            state
                .connections
                .fds()
                .map(|fd| PollFd::new(fd, PollFlags::POLLIN)),
        );
        let ms =
            PollTimeout::try_from(timeout.as_millis().max(1) as u64).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, ms) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                return Err(MonitorError::Events(
                    substrate_sensor::proc_connector::ProcEventsError::Poll(e),
                ))
            }
        }
        let is_ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
        let socket = self.socket.is_some() && is_ready(&fds[socket_at]);
        let stop = self.stop.is_some() && is_ready(&fds[first_connection - 1]);
        Ok(Polled {
            socket,
            stop,
            connections: fds[first_connection..].iter().map(is_ready).collect(),
        })
    }

    /// Applies what the kernel has queued.
    fn take_kernel_events(&mut self, state: &mut Follow) -> Result<(), MonitorError> {
        loop {
            let batch = match self.events.next_events(Some(Duration::ZERO)) {
                Ok(batch) => batch,
                Err(e) if e.is_recoverable() => continue,
                Err(e) => return Err(e.into()),
            };
            if batch.is_empty() {
                // Every event queued before the decisions taken is applied.
                return self.write_decisions(state);
            }
            for received in batch {
                match received {
                    Received::Event(event) => self.apply(state, &event)?,
                    Received::Lost => {
                        state.tree.note_lost();
                        state.lost = true;
                        self.trace.write_loss(serde_json::json!({
                            "source": "proc_connector",
                            "events": "unknown",
                            "reason": "receive buffer overrun",
                        }))?;
                    }
                }
            }
        }
    }

    fn apply(&mut self, state: &mut Follow, event: &ProcEvent) -> Result<(), MonitorError> {
        if let (ProcEventKind::Exec { tgid, .. }, Some(world_ns)) =
            (&event.kind, &state.world_pid_ns)
        {
            // The sensor's record says so in the kernel's words; /proc is
            // asked only without one (and misses a process already gone).
            let entered = !state.tree.contains(*tgid)
                && (self.sensor.has_exec_of(*tgid)
                    || fs::read_link(format!("/proc/{tgid}/ns/pid")).ok().as_ref()
                        == Some(world_ns));
            if entered && state.tree.adopt(*tgid) {
                state.current.insert(*tgid, self.trace.world_span);
            }
        }
        match state.tree.apply(event) {
            Some(TreeChange::Joined { tgid, parent_tgid }) => {
                state.parent_of.insert(tgid, parent_tgid);
                if let Some(&span) = state.current.get(&parent_tgid) {
                    state.current.insert(tgid, span);
                }
            }
            Some(TreeChange::Exec { tgid }) => {
                let time = self.time_of(event);
                // `exec` from a program ends that program's span.
                if let Some(previous) = state.open.remove(&tgid) {
                    state.retiring.push(Retiring {
                        due: Instant::now() + RETIRE_GRACE,
                        pid: tgid,
                        exec: Some(previous),
                        end: Some(time),
                        exit: None,
                        process_gone: false,
                    });
                }
                let (record, unreported) = self.sensor.take_exec(tgid, event.timestamp_ns);
                for lost in unreported {
                    self.write_unmatched_exec(state, lost)?;
                }
                let mut exec = describe_exec(
                    tgid,
                    state.parent_of.get(&tgid).copied(),
                    state.current.get(&tgid).copied(),
                    time,
                    event.timestamp_ns,
                    record.as_ref(),
                );
                // The gate sent its decision before it let the exec go on,
                // so it is in the channel by the time the exec's event is
                // read, even if it was not when this pass took decisions.
                self.take_decisions();
                let decided_by = self.decisions_of_exec(tgid, exec.exe.as_deref(), time);
                if let Some(caller) = exec.parent {
                    for id in &decided_by {
                        self.decision_callers.insert(*id, caller);
                    }
                }
                if !decided_by.is_empty() {
                    exec.extra.insert(
                        "decided_by".into(),
                        serde_json::json!(decided_by
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()),
                    );
                }
                state.current.insert(tgid, exec.id);
                state.open.insert(tgid, exec);
            }
            Some(TreeChange::Left { tgid, status }) => {
                let exit = match (status.code(), status.signal()) {
                    (Some(code), _) => ExitStatus::Code(code),
                    (None, Some(signal)) => ExitStatus::Signal(signal),
                    (None, None) => ExitStatus::Code(0),
                };
                if tgid == state.init_pid {
                    state.init_exit = Some(exit);
                }
                state.retiring.push(Retiring {
                    due: Instant::now() + RETIRE_GRACE,
                    pid: tgid,
                    exec: state.open.remove(&tgid),
                    end: Some(self.time_of(event)),
                    exit: Some(exit),
                    process_gone: true,
                });
                state.parent_of.remove(&tgid);
            }
            None => {}
        }
        Ok(())
    }

    /// Takes what the eBPF sensor has written: exec records are held for
    /// (or fill) the connector's exec spans, socket records become `net`
    /// spans; drops are `loss` spans.
    fn take_sensor_events(&mut self, state: &mut Follow) -> Result<(), MonitorError> {
        self.take_decisions();
        let read = self.sensor.read();
        for _ in 0..read.malformed {
            self.trace.reject("bad_kernel_record");
        }
        for event in read.execs {
            let tgid = event.header.tgid;
            // An exec whose connector event was handled before this record
            // was read: fill its span now.
            let images = state.open.get_mut(&tgid).into_iter().chain(
                state
                    .retiring
                    .iter_mut()
                    .filter(|r| r.pid == tgid)
                    .filter_map(|r| r.exec.as_mut()),
            );
            let late = image_of_record(images, event.header.ktime_ns);
            match late {
                Some(exec) => fill_from_sensor(exec, &event),
                // Held for the connector's exec event, which adopts a
                // process exec'd into the world on the record's word (after
                // the forks before it are applied: a child's span is its
                // parent's until it execs).
                None => self.sensor.hold_exec(event),
            }
        }
        self.kernel_nets.extend(read.nets);
        let (files, overflows, unplaced) = self.sensor.read_files();
        for _ in 0..unplaced {
            self.trace.reject("unplaced_file_event");
        }
        if overflows > 0 {
            state.lost = true;
            self.trace.write_loss(serde_json::json!({
                "source": "fanotify",
                "events": "unknown",
                "overflows": overflows,
                "reason": "queue overflow",
            }))?;
        }
        self.kernel_files.extend(files);
        Ok(())
    }

    /// Turns the socket records taken so far into `net` spans of their
    /// process's current image: after the connector's events are applied,
    /// so that the exec (or fork) before the call is known.
    fn place_kernel_nets(&mut self, state: &Follow) {
        for event in std::mem::take(&mut self.kernel_nets) {
            // The preload's own connection to the span socket is the
            // tracer's machinery, not the program's (a program that
            // connects there on its own is refused and counted by the
            // socket's side).
            if event.call == substrate_sensor::bpf::NetCall::Connect
                && event.address
                    == substrate_sensor::bpf::SockAddr::Unix(substrate_ring::SOCKET_PATH.into())
            {
                continue;
            }
            let time =
                Timestamp::from_unix_nanos(event.header.ktime_ns as i64 + self.clock_offset_ns);
            // The image that made the call: the process's latest exec
            // before it (it may have exec'd again since), else the span it
            // runs under (a child not yet exec'd: its parent's).
            let tgid = event.header.tgid;
            let image = state
                .open
                .get(&tgid)
                .into_iter()
                .chain(
                    state
                        .retiring
                        .iter()
                        .filter(|r| r.pid == tgid)
                        .filter_map(|r| r.exec.as_ref()),
                )
                .filter(|e| e.start <= time)
                .max_by_key(|e| e.start)
                .map(|e| e.id);
            let parent = image.or_else(|| state.current.get(&tgid).copied());
            let mut span = kernel::net_span(&self.trace.world_id, &event, time, parent);
            if self.network == crate::record::WorldNetwork::LoopbackOnly {
                mark_refused_for_no_network(&mut span);
            }
            self.sensor.hold_net(span);
        }
        let now = Timestamp::now();
        for event in std::mem::take(&mut self.kernel_files) {
            // fanotify does not date its events: they are placed at the
            // time they are read (within a pass of the monitor, ~20 ms).
            // The process's image now: open, or retiring (it has exited
            // or exec'd again since; its latest).
            let image = state.open.get(&event.pid).or_else(|| {
                state
                    .retiring
                    .iter()
                    .filter(|r| r.pid == event.pid)
                    .filter_map(|r| r.exec.as_ref())
                    .max_by_key(|e| e.start)
            });
            let parent = image
                .map(|e| e.id)
                .or_else(|| state.current.get(&event.pid).copied());
            let world_pid = image.and_then(|e| e.world_pid);
            let span = kernel::file_span(&self.trace.world_id, &event, now, parent, world_pid);
            self.sensor.hold_file(span);
        }
        self.sensor.retry_preload();
    }

    /// An exec the sensor saw and the connector did not report (its events
    /// were lost): a span of its own, from the kernel's record alone.
    fn write_unmatched_exec(
        &mut self,
        state: &Follow,
        event: ExecEvent,
    ) -> Result<(), MonitorError> {
        let tgid = event.header.tgid;
        let start = Timestamp::from_unix_nanos(event.header.ktime_ns as i64 + self.clock_offset_ns);
        let mut exec = OpenExec::new(
            tgid,
            state.current.get(&tgid).copied(),
            start,
            event.header.ktime_ns,
        );
        exec.ppid = Some(event.header.ppid);
        fill_from_sensor(&mut exec, &event);
        exec.extra.insert(
            "proc_connector".into(),
            serde_json::Value::String("unreported".into()),
        );
        self.write_exec(exec, None, None)
    }

    /// Writes the kernel's records whose wait for a counterpart is over
    /// (all of them when `all`), and what the kernel dropped.
    fn write_kernel_leftovers(
        &mut self,
        state: &mut Follow,
        all: bool,
    ) -> Result<(), MonitorError> {
        let dropped = self.sensor.dropped();
        if dropped > 0 {
            self.trace.lost += dropped;
            self.trace.write_loss(serde_json::json!({
                "source": "ebpf",
                "events": dropped,
                "reason": "ring full",
            }))?;
        }
        for event in self.sensor.expired_execs(all) {
            self.write_unmatched_exec(state, event)?;
        }
        if let Some(egress) = &mut self.egress {
            egress.read_log();
            egress.read_traffic(all);
        }
        for mut span in self.sensor.due_spans(all) {
            self.annotate_egress(&mut span);
            self.trace.write(&span)?;
        }
        for mut span in self.sensor.due_preload(all) {
            if self.network == crate::record::WorldNetwork::LoopbackOnly {
                mark_refused_for_no_network(&mut span);
            }
            self.annotate_egress(&mut span);
            self.trace.write(&span)?;
        }
        let world_span = self.trace.world_span;
        let world_id = self.trace.world_id.clone();
        if let Some(egress) = &mut self.egress {
            for span in egress.due_spans(&world_id, world_span, all) {
                self.trace.write(&span)?;
            }
            self.trace.egress = Some(egress.summary());
        }
        self.write_decisions(state)?;
        if let Some(guard) = &self.guard {
            self.trace.policy = serde_json::to_value(guard.summary()).ok();
        }
        Ok(())
    }

    /// Takes the policy gate's decisions and notes the execs they allowed,
    /// whose spans name them (`decided_by`). Called before the kernel's
    /// events are applied: the gate records a decision before it answers,
    /// so an exec's decision is here before the exec's own event.
    fn take_decisions(&mut self) {
        let Some(guard) = &mut self.guard else {
            return;
        };
        let due = guard.due_decisions(&self.trace.world_id, self.trace.world_span);
        for decision in &due {
            if let Some((pid, file)) = &decision.allowed_exec {
                self.exec_decisions.entry(*pid).or_default().push((
                    file.clone(),
                    decision.span.span_id,
                    decision.span.start,
                ));
            }
        }
        self.pending_decisions.extend(due);
    }

    /// Writes the decisions taken, each under the span of the process it
    /// decided for. Called after the kernel's events are applied: the
    /// events of what the process did before it asked (its fork, its
    /// parent's exec) were queued before the decision was made, so they
    /// have been read by now.
    fn write_decisions(&mut self, state: &Follow) -> Result<(), MonitorError> {
        for mut decision in std::mem::take(&mut self.pending_decisions) {
            let caller = self.decision_callers.remove(&decision.span.span_id);
            decision.parent_from(caller, |pid| state.current.get(&pid).copied());
            self.trace.write(&decision.span)?;
        }
        Ok(())
    }
    /// The decisions that allowed `pid`'s exec of `exe`, which completed at
    /// `time`: the one about that file and those before it (a script's,
    /// before its interpreter's). The pid's events may be read in a later
    /// pass than its decisions, so an earlier exec of the pid (of
    /// Substrate's own init, which no rule decides) must not take them: a
    /// decision is matched by its file, or, when the exec's file is not
    /// known yet (its kernel record still to come), by time — every
    /// decision made before this exec completed, which an earlier exec,
    /// complete before the decision was asked for, does not take.
    fn decisions_of_exec(&mut self, pid: i32, exe: Option<&[u8]>, time: Timestamp) -> Vec<SpanId> {
        let Some(pending) = self.exec_decisions.get_mut(&pid) else {
            return Vec::new();
        };
        let last = match exe {
            Some(exe) => pending.iter().position(|(file, _, _)| {
                std::os::unix::ffi::OsStrExt::as_bytes(file.as_os_str()) == exe
            }),
            None => pending.iter().rposition(|(_, _, at)| *at <= time),
        };
        let Some(last) = last else {
            return Vec::new();
        };
        let taken: Vec<SpanId> = pending.drain(..=last).map(|(_, id, _)| id).collect();
        if pending.is_empty() {
            self.exec_decisions.remove(&pid);
        }
        taken
    }

    /// Gives a socket call's span the egress verdict of the packet it sent.
    fn annotate_egress(&mut self, span: &mut Span) {
        if let Some(egress) = &mut self.egress {
            egress.annotate(span);
        }
    }

    fn accept(&mut self, state: &mut Follow) {
        if let Some(socket) = &self.socket {
            let refused = state.connections.accept(socket);
            for _ in 0..refused {
                self.trace.reject("too_many_connections");
            }
        }
    }

    fn take_messages(
        &mut self,
        state: &mut Follow,
        ready: Option<&[bool]>,
    ) -> Result<(), MonitorError> {
        let (arrivals, refused) = state.connections.read(ready);
        for _ in 0..refused {
            self.trace.reject("silent_connection");
        }
        for arrival in arrivals {
            if let Err(reason) = self.on_message(state, arrival) {
                self.trace.reject(reason);
            }
        }
        Ok(())
    }

    /// One message from inside the world. Its sender is the kernel's
    /// answer (SO_PEERCRED), and must be one of the world's processes.
    fn on_message(&mut self, state: &mut Follow, arrival: Arrival) -> Result<(), &'static str> {
        if arrival.oversized {
            return Err("oversized");
        }
        let greeting = preload::parse_greeting(&arrival.bytes)?;
        let pid = arrival.peer_pid;
        let known = state.tree.contains(pid) || state.retiring.iter().any(|r| r.pid == pid);
        if !known {
            return Err("sender_outside_world");
        }
        if greeting.kind == HelloKind::Doorbell {
            if let Some(mut ring) = state.rings.remove(pid) {
                let result = self.drain_ring(&mut ring);
                state.rings.insert(ring);
                result.map_err(|_| "trace_write")?;
            }
            return Ok(());
        }
        let fd = arrival.fd.ok_or("hello_without_ring")?;
        if state.rings.is_full() {
            return Err("too_many_rings");
        }
        let image = image_at(state, pid, greeting.time_ns);
        // The pid a process says it has must be the one the kernel gives
        // it: asked of the kernel through a pidfd of the sender when it
        // can be (exact, whatever pid reuse happened since), else as the
        // monitor recorded the image (checked against pid reuse when read,
        // see `describe_exec`).
        let world_pid = arrival.peer_world_pid.or_else(|| match &image {
            Some(exec) if greeting.kind == HelloKind::Exec => exec.world_pid,
            _ => world_pid_of(pid),
        });
        if world_pid.is_some_and(|p| p != greeting.claimed_pid) {
            return Err("forged_pid");
        }
        let parent = match (greeting.kind, image) {
            (HelloKind::Exec, Some(exec)) => {
                fill_from_preload(exec, &greeting);
                Some(exec.id)
            }
            _ => state.current.get(&pid).copied(),
        };
        let ring = preload::map_ring(&fd)?;
        let mapped = MappedRing::new(ring, pid, world_pid, parent, greeting.time_ns);
        if let Some(mut old) = state.rings.insert(mapped) {
            self.drain_ring(&mut old).map_err(|_| "trace_write")?;
        }
        Ok(())
    }

    fn drain_rings(&mut self, state: &mut Follow) -> Result<(), MonitorError> {
        let mut rings = std::mem::take(&mut state.rings);
        let mut result = Ok(());
        for ring in rings.iter_mut() {
            result = result.and(self.drain_ring(ring));
        }
        state.rings = rings;
        result
    }

    fn drain_ring(&mut self, ring: &mut MappedRing) -> Result<(), MonitorError> {
        let world_id = self.trace.world_id.clone();
        let mut spans = Vec::new();
        let dropped = ring.drain(&world_id, &mut |span| spans.push(span));
        for span in spans {
            match span {
                Ok(span) => {
                    let Some(mut span) = self.sensor.offer_preload(span) else {
                        continue;
                    };
                    if self.network == crate::record::WorldNetwork::LoopbackOnly {
                        mark_refused_for_no_network(&mut span);
                    }
                    if let Some(egress) = &mut self.egress {
                        egress.read_log();
                        egress.annotate(&mut span);
                    }
                    self.trace.write(&span)?
                }
                Err(reason) => self.trace.reject(reason),
            }
        }
        if dropped > 0 {
            self.trace.lost += dropped;
            self.trace.write_loss(serde_json::json!({
                "source": "preload",
                "events": dropped,
                "pid": ring.pid,
                "reason": "ring full",
            }))?;
        }
        Ok(())
    }

    /// Writes the images whose grace period is over (all when `all`).
    fn retire(&mut self, state: &mut Follow, all: bool) -> Result<(), MonitorError> {
        let now = Instant::now();
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut state.retiring)
            .into_iter()
            .partition(|r| all || r.due <= now);
        state.retiring = waiting;
        for retired in due {
            if retired.process_gone {
                state.current.remove(&retired.pid);
                let still_alive = state.tree.contains(retired.pid);
                if !still_alive {
                    if let Some(mut ring) = state.rings.remove(retired.pid) {
                        self.drain_ring(&mut ring)?;
                    }
                }
            }
            if let Some(exec) = retired.exec {
                self.write_exec(exec, retired.end, retired.exit)?;
            }
        }
        Ok(())
    }

    fn time_of(&self, event: &ProcEvent) -> Timestamp {
        Timestamp::from_unix_nanos(event.timestamp_ns as i64 + self.clock_offset_ns)
    }

    fn write_exec(
        &mut self,
        exec: OpenExec,
        end: Option<Timestamp>,
        exit: Option<ExitStatus>,
    ) -> Result<(), MonitorError> {
        let world_id = self.trace.world_id.clone();
        let mut span = Span::exec(world_id, Source::Kernel, exec.start)
            .id(exec.id)
            .pid(exec.pid as u32);
        if let Some(parent) = exec.parent {
            span = span.parent(parent);
        }
        if let Some(ppid) = exec.ppid {
            span = span.ppid(ppid as u32);
        }
        if let Some(pid) = exec.world_pid {
            span = span.world_pid(pid);
        }
        if let Some(pid) = exec.world_ppid {
            span = span.world_ppid(pid);
        }
        if let Some(exe) = exec.exe {
            span = span.exe(exe);
        }
        if let Some(argv) = exec.argv {
            span = span.argv(argv);
        }
        if let Some(cwd) = exec.cwd {
            span = span.cwd(cwd);
        }
        if let Some(env) = exec.env {
            span = span.env(env);
        }
        if let Some(end) = end {
            span = span.end(end);
        }
        if let Some(exit) = exit {
            span = span.exit(exit);
        }
        let mut span = span.build();
        if exec.filled_by_preload {
            span.extra.insert(
                "filled_by".into(),
                serde_json::Value::String("preload".into()),
            );
        }
        span.extra.extend(exec.extra);
        self.trace.write(&span)
    }
}

/// What a span of a world without a network (loopback only) says of a
/// lookup or connection that failed for want of one: `"refused_by":
/// "network"`. A name lookup fails (its resolver's servers are
/// unreachable), a connection or datagram to anything but the loopback
/// gets ENETUNREACH; without the mark a reader sees only a DNS failure.
pub(crate) const REFUSED_BY: &str = "refused_by";

fn mark_refused_for_no_network(span: &mut Span) {
    const ENETUNREACH: i32 = 101;
    let refused = match (&span.detail, &span.result) {
        (substrate_trace::Detail::Dns(_), Some(substrate_trace::Outcome::Returned { ret, .. })) => {
            *ret != 0
        }
        (
            substrate_trace::Detail::Net(_),
            Some(substrate_trace::Outcome::Returned {
                errno: Some(errno), ..
            }),
        ) => errno.0 == ENETUNREACH,
        _ => false,
    };
    if refused {
        span.extra.insert(
            REFUSED_BY.into(),
            serde_json::Value::String("network".into()),
        );
    }
}

/// The image `pid` was running at `time_ns` (its clock): the latest exec
/// that started before then, still open or retiring.
fn image_at(state: &mut Follow, pid: i32, time_ns: u64) -> Option<&mut OpenExec> {
    let time = time_ns as i64;
    let open = state
        .open
        .get_mut(&pid)
        .filter(|e| e.start.unix_nanos() <= time);
    if open.is_some() {
        return open;
    }
    state
        .retiring
        .iter_mut()
        .filter(|r| r.pid == pid)
        .filter_map(|r| r.exec.as_mut())
        .filter(|e| e.start.unix_nanos() <= time)
        .max_by_key(|e| e.start)
}

/// The image an exec record (stamped `ktime_ns`) is about, among a
/// process's images the connector reported and no record has filled: the
/// first exec reported after the record, within the window both events
/// fire in. A process that exec'd again at once (`env` into `sh` into
/// `cat`) has later images within the window too: the earliest is the
/// record's own.
fn image_of_record<'a>(
    images: impl Iterator<Item = &'a mut OpenExec>,
    ktime_ns: u64,
) -> Option<&'a mut OpenExec> {
    images
        .filter(|e| {
            !e.from_sensor
                && e.event_ns >= ktime_ns
                && e.event_ns - ktime_ns <= kernel::MATCH_WINDOW_NS
        })
        .min_by_key(|e| e.event_ns)
}

/// What the sensor read in the kernel at exec time: the authority for the
/// program's argv, exe, cwd and pids (it overrides what /proc said).
fn fill_from_sensor(exec: &mut OpenExec, event: &ExecEvent) {
    // An argv the kernel could not read is not an empty one: what /proc or
    // the preload has stays.
    if !event.argv_unreadable && !event.argv.is_empty() {
        exec.argv = Some(event.argv.clone());
    }
    if let Some(exe) = &event.exe {
        exec.exe = Some(exe.clone());
    }
    if let Some(cwd) = &event.cwd {
        exec.cwd = Some(cwd.clone());
    }
    exec.world_pid = Some(event.header.world_pid);
    if event.header.world_ppid.is_some() {
        exec.world_ppid = event.header.world_ppid;
    }
    exec.filled_by_preload = false;
    exec.from_sensor = true;
    exec.extra.insert("uid".into(), event.header.uid.into());
    exec.extra
        .insert("exe_inode".into(), event.exe_inode.into());
    if event.filename != event.exe.as_deref().unwrap_or_default() {
        exec.extra.insert(
            "filename".into(),
            String::from_utf8_lossy(&event.filename).into_owned().into(),
        );
    }
    if event.argv_truncated {
        exec.extra.insert(
            "argv_truncated".into(),
            serde_json::json!({ "bytes": event.argv_len }),
        );
    }
    if event.argv_unreadable {
        exec.extra.insert("argv_unreadable".into(), true.into());
    }
}

/// What the kernel's /proc could not give (the process was gone before it
/// was read), from the process's own account.
fn fill_from_preload(exec: &mut OpenExec, greeting: &preload::Greeting) {
    if exec.from_sensor {
        // The kernel's account stands; only the environment is the
        // process's to tell.
        if exec.env.is_none() {
            exec.env = Some(greeting.env.clone());
        }
        return;
    }
    let mut filled = false;
    if exec.argv.is_none() && !greeting.argv.is_empty() {
        exec.argv = Some(greeting.argv.clone());
        filled = true;
    }
    if exec.exe.is_none() && !greeting.exe.is_empty() {
        exec.exe = Some(greeting.exe.clone());
        filled = true;
    }
    if exec.cwd.is_none() && !greeting.cwd.is_empty() {
        exec.cwd = Some(greeting.cwd.clone());
        filled = true;
    }
    if exec.env.is_none() {
        exec.env = Some(greeting.env.clone());
        filled = true;
    }
    exec.filled_by_preload |= filled;
}

/// The pid a host process has inside its innermost pid namespace: the
/// last of `NSpid` (one pid per namespace, outermost first).
fn world_pid_of(pid: i32) -> Option<u32> {
    innermost_pid(&fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// `/proc/<pid>/cmdline` or `environ`: NUL-separated, empty entries dropped.
fn nul_list(bytes: Vec<u8>) -> Vec<Vec<u8>> {
    bytes
        .split(|&b| b == 0)
        .filter(|e| !e.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

/// What `/proc` still tells of a process that has just exec'd (at
/// `event_ns`, CLOCK_MONOTONIC, as the kernel stamped the event).
///
/// By the time a busy monitor reads it, the process may have exited and
/// its pid been taken by another — a process of the host, say — whose
/// argv and pid must not end up in this world's trace. So `/proc/<pid>` is
/// opened once and checked: a process that started after the exec event
/// is not the one that exec'd. Everything is then read through that
/// directory fd, which goes on naming the process it was opened for (reads
/// fail once it has exited, even if the pid is reused).
fn describe_exec(
    tgid: i32,
    ppid: Option<i32>,
    parent: Option<SpanId>,
    start: Timestamp,
    event_ns: u64,
    record: Option<&ExecEvent>,
) -> OpenExec {
    let mut exec = OpenExec::new(tgid, parent, start, event_ns);
    exec.ppid = ppid;
    if let Some(record) = record {
        fill_from_sensor(&mut exec, record);
    }
    // The sensor's record names the parent as the world sees it; only
    // without it is the parent's `status` read (a read the monitor would
    // otherwise pay on every exec).
    if exec.world_ppid.is_none() {
        exec.world_ppid = ppid.and_then(world_pid_of);
    }
    let Some(proc) = ProcDir::open(tgid).filter(|p| p.started_by(event_ns)) else {
        // Gone, or a newer process under the same pid: what the kernel
        // said (pid, times, exit) stays; the preload may fill the rest.
        return exec;
    };
    if exec.from_sensor {
        // Only the environment is left for /proc to give.
        exec.env = proc.environ();
        return exec;
    }
    // Read first: a short-lived process's argv is what is most often gone.
    // Empty while the process is between images: then unknown, for the
    // preload's account to fill.
    exec.argv = proc
        .read("cmdline")
        .filter(|bytes| !bytes.is_empty())
        .map(nul_list);
    exec.exe = proc.link("exe");
    exec.cwd = proc.link("cwd");
    exec.env = proc.environ();
    exec.world_pid = proc
        .read("status")
        .and_then(|status| innermost_pid(&String::from_utf8_lossy(&status)));
    exec
}

/// One process's `/proc/<pid>` directory, held open.
struct ProcDir(OwnedFd);

impl ProcDir {
    fn open(pid: i32) -> Option<ProcDir> {
        use rustix::fs::{open, Mode, OFlags};
        open(
            format!("/proc/{pid}"),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()
        .map(ProcDir)
    }

    fn read(&self, name: &str) -> Option<Vec<u8>> {
        use rustix::fs::{openat, Mode, OFlags};
        use std::io::Read;
        let fd = openat(
            &self.0,
            name,
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let mut bytes = Vec::new();
        File::from(fd).read_to_end(&mut bytes).ok()?;
        Some(bytes)
    }

    /// The process's environment, whole or not at all: a process that
    /// exits while it is read leaves a part, which would pass for the
    /// whole (the preload's account fills an unknown one). Whole means as
    /// long as the env area `stat` gives (fields 50 and 51) before the
    /// read and still gives after it.
    fn environ(&self) -> Option<Vec<Vec<u8>>> {
        let env_area = || -> Option<u64> {
            let stat = self.read("stat")?;
            let stat = String::from_utf8_lossy(&stat);
            let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(47);
            let start: u64 = fields.next()?.parse().ok()?;
            let end: u64 = fields.next()?.parse().ok()?;
            (end > start).then_some(end - start)
        };
        let before = env_area()?;
        let bytes = self.read("environ")?;
        (bytes.len() as u64 == before && env_area() == Some(before)).then(|| nul_list(bytes))
    }

    fn link(&self, name: &str) -> Option<Vec<u8>> {
        rustix::fs::readlinkat(&self.0, name, Vec::new())
            .ok()
            .map(|target| target.into_bytes())
    }

    /// Whether this process was already running at `event_ns`
    /// (CLOCK_MONOTONIC): its start time (`stat` field 22, clock ticks
    /// since boot, CLOCK_BOOTTIME) is not later than the event, give or
    /// take a tick.
    fn started_by(&self, event_ns: u64) -> bool {
        let Some(stat) = self.read("stat") else {
            return false;
        };
        let stat = String::from_utf8_lossy(&stat);
        // Fields after the command, which is in parentheses and may hold
        // anything: the 22nd field is the 20th after the last `)`.
        let start_ticks = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(19))
            .and_then(|t| t.parse::<u64>().ok());
        let Some(start_ticks) = start_ticks else {
            return false;
        };
        let ticks_per_second = rustix::param::clock_ticks_per_second().max(1);
        let started_ns = start_ticks.saturating_mul(1_000_000_000 / ticks_per_second);
        let event_boottime_ns = event_ns.saturating_add_signed(boottime_offset_ns());
        started_ns <= event_boottime_ns.saturating_add(1_000_000_000 / ticks_per_second)
    }
}

/// CLOCK_BOOTTIME minus CLOCK_MONOTONIC: the time spent suspended.
fn boottime_offset_ns() -> i64 {
    let nanos = |clock| {
        clock_gettime(clock)
            .map(|t| t.tv_sec() * 1_000_000_000 + t.tv_nsec())
            .unwrap_or(0)
    };
    nanos(ClockId::CLOCK_BOOTTIME) - nanos(ClockId::CLOCK_MONOTONIC)
}

/// The last pid of a `status` file's `NSpid` line: the pid in the
/// process's innermost pid namespace.
fn innermost_pid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|rest| rest.split_whitespace().last()?.parse().ok())
}

fn clock_offset_ns() -> i64 {
    let nanos = |clock| {
        clock_gettime(clock)
            .map(|t| t.tv_sec() * 1_000_000_000 + t.tv_nsec())
            .unwrap_or(0)
    };
    nanos(ClockId::CLOCK_REALTIME) - nanos(ClockId::CLOCK_MONOTONIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn monotonic_ns() -> u64 {
        let now = clock_gettime(ClockId::CLOCK_MONOTONIC).unwrap();
        (now.tv_sec() * 1_000_000_000 + now.tv_nsec()) as u64
    }

    /// A process that was running at an event is the one the event is
    /// about; one that started after it (a reused pid) is not.
    #[test]
    fn a_process_is_checked_against_the_events_time() {
        let me = ProcDir::open(std::process::id() as i32).unwrap();
        assert!(me.started_by(monotonic_ns()), "running now: started by now");
        assert!(!me.started_by(0), "not running at boot");
        let gone = ProcDir::open(i32::MAX);
        assert!(gone.is_none());
    }

    fn image(event_ns: u64) -> OpenExec {
        OpenExec::new(
            7,
            None,
            Timestamp::from_unix_nanos(event_ns as i64),
            event_ns,
        )
    }

    /// `env` exec'd `sh` exec'd `cat` in one process, all reported by the
    /// connector before any record was read: each record fills its own
    /// image, not the next one within the window.
    #[test]
    fn an_exec_record_fills_its_own_image_in_an_exec_chain() {
        // As the monitor offers them: the open image (the latest) first,
        // then the retiring ones.
        let mut images = [image(3_000), image(2_000), image(1_000)];
        let env = image_of_record(images.iter_mut(), 900).map(|e| e.event_ns);
        assert_eq!(env, Some(1_000));
        images[2].from_sensor = true;
        let sh = image_of_record(images.iter_mut(), 1_900).map(|e| e.event_ns);
        assert_eq!(sh, Some(2_000));
        images[1].from_sensor = true;
        // A record after every reported exec is none of theirs (its exec's
        // event is still to come).
        assert!(image_of_record(images.iter_mut(), 3_001).is_none());
        // Nor is one further before an exec than the window.
        images[0].event_ns = 3_000 + kernel::MATCH_WINDOW_NS + 1;
        assert!(image_of_record(images.iter_mut(), 2_999).is_none());
        // At the window's edge, it is.
        let cat = image_of_record(images.iter_mut(), 3_001).map(|e| e.event_ns);
        assert_eq!(cat, Some(3_000 + kernel::MATCH_WINDOW_NS + 1));
    }

    #[test]
    fn the_innermost_pid_is_the_last_of_nspid() {
        let status = "Name:\tsh\nTgid:\t4242\nNSpid:\t4242\t17\t3\nPPid:\t1\n";
        assert_eq!(innermost_pid(status), Some(3));
        assert_eq!(innermost_pid("Name:\tsh\n"), None);
    }
}
