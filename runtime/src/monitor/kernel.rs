//! The kernel sensor in the monitor. The eBPF source's exec records give
//! the proc connector's exec spans their argv, exe and cwd as the kernel
//! read them at exec time; its socket records become `net` spans. The
//! file source (fanotify on the world's own upper filesystem) makes `file`
//! spans of what programs did to the world's files.
//!
//! The kernel is the authority. The proc connector still says who forks
//! and exits (exact, and the tree the monitor follows); the sensor says
//! what each exec was, and what happened to sockets and files. The
//! preload's account of the same call joins the kernel's span rather than
//! repeating it: the preload span is dropped and the kernel's marked
//! `"preload": true` (a socket call) or `"preload": "<call>"` (a file
//! change). A preload `net` span the kernel did not report (while its
//! socket programs are attached) is written marked `"kernel": "unseen"`.
//! (A preload file call without a kernel span is not marked: the file
//! source watches the world's root filesystem only, not `/dev` or
//! `/dev/shm`, and sees changes, not calls that changed nothing.)

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use std::path::{Path, PathBuf};

use substrate_sensor::bpf::{ExecEvent, NetCall, NetEvent, SockAddr, WorldWatch};
use substrate_sensor::files::{FileChange, FileEvent, FileWatch};
use substrate_trace::{
    Detail, Errno, Family, FileDetail, FileOp, NetDetail, NetOp, Source, Span, SpanId, Timestamp,
};

/// How far before the proc connector's exec event the sensor's may be
/// stamped and still be the same exec (both fire in `exec_binprm`,
/// microseconds apart).
pub(super) const MATCH_WINDOW_NS: u64 = 10_000_000;
/// How long a kernel record waits for its counterpart (the connector's
/// exec, the preload's account of a socket call) before it is written on
/// its own.
const KERNEL_GRACE: Duration = Duration::from_millis(500);
/// How long a preload span waits for the kernel's span of its call (read
/// within a pass of the monitor, ~20 ms).
const PRELOAD_WAIT: Duration = Duration::from_millis(200);

/// Which kernel sources trace this world, for its world span.
#[derive(Debug, Clone)]
pub(super) struct SensorState {
    /// `ebpf:<program>` or `proc_connector`.
    pub exec: String,
    /// `ebpf` or `off`.
    pub net: String,
    /// `fanotify`, or why not.
    pub files: String,
    /// Why the eBPF sensor is not active, when it is not.
    pub ebpf_unavailable: Option<String>,
}

impl SensorState {
    pub(super) fn to_json(&self) -> serde_json::Value {
        let mut value =
            serde_json::json!({ "exec": self.exec, "net": self.net, "files": self.files });
        if let Some(why) = &self.ebpf_unavailable {
            value["ebpf_unavailable"] = why.clone().into();
        }
        value
    }
}

/// A kernel span waiting for the preload's account of the same call.
struct Held {
    due: Instant,
    key: JoinKey,
    span: Span,
}

#[derive(Clone, PartialEq, Eq)]
enum JoinKey {
    Net(NetKey),
    File(FileKey),
    /// Already joined: one preload account per kernel span.
    Joined,
}

/// What makes a file change and a preload file call the same: the
/// process, the kind of change, the path (the kernel's is absolute in the
/// world; the preload's is what the program passed, maybe relative).
#[derive(Clone, PartialEq, Eq)]
struct FileKey {
    pid: u32,
    change: &'static str,
    path: Vec<u8>,
}

impl FileKey {
    fn matches(&self, pid: u32, change: &str, path: &[u8]) -> bool {
        if self.pid != pid || self.change != change {
            return false;
        }
        let path = path.strip_prefix(b"./").unwrap_or(path);
        if path.first() == Some(&b'/') {
            return self.path == path;
        }
        self.path.len() > path.len()
            && self.path.ends_with(path)
            && self.path[self.path.len() - path.len() - 1] == b'/'
    }
}

/// What makes two accounts of a socket call the same call.
#[derive(Clone, PartialEq, Eq, Hash)]
struct NetKey {
    pid: u32,
    op: NetOp,
    address: Option<Vec<u8>>,
    port: Option<u16>,
}

impl NetKey {
    fn of(span: &Span) -> Option<NetKey> {
        let Detail::Net(net) = &span.detail else {
            return None;
        };
        Some(NetKey {
            pid: span.process.pid?,
            op: net.op.clone(),
            address: net.address.clone(),
            port: net.port,
        })
    }
}

/// What one read of the sensor gave.
#[derive(Default)]
pub(super) struct SensorRead {
    pub execs: Vec<ExecEvent>,
    pub nets: Vec<NetEvent>,
    pub malformed: u64,
}

pub(super) struct KernelSensor {
    watch: Option<WorldWatch>,
    pub(super) state: SensorState,
    /// Exec records not yet matched with the connector's exec, by tgid.
    execs: HashMap<i32, VecDeque<(Instant, ExecEvent)>>,
    held: Vec<Held>,
    files: Option<FileWatch>,
    /// Preload spans waiting for the kernel's span of the same call.
    waiting_preload: Vec<(Instant, Span)>,
    /// The first datagram to each peer is all the kernel reports (and all
    /// the preload does): later ones are neither's.
    sendto_peers: HashSet<NetKey>,
}

impl KernelSensor {
    /// Registers the world whose init (`init_pid`) is held before its
    /// first exec, and watches its upper filesystem (`layer`, with the
    /// lower dirs, when it has one of its own); where a source cannot run,
    /// says why and goes without it.
    pub(super) fn start(init_pid: i32, layer: Option<(PathBuf, Vec<PathBuf>)>) -> KernelSensor {
        let (watch, state) = match WorldWatch::start(init_pid) {
            Ok(watch) => {
                let exec = watch
                    .sources()
                    .iter()
                    .find(|p| p.starts_with("exec_"))
                    .map(|p| format!("ebpf:{p}"))
                    .unwrap_or_else(|| "proc_connector".into());
                let net = if watch.sees_sockets() { "ebpf" } else { "off" };
                let state = SensorState {
                    exec,
                    net: net.into(),
                    files: String::new(),
                    ebpf_unavailable: None,
                };
                (Some(watch), state)
            }
            Err(e) => {
                let state = SensorState {
                    exec: "proc_connector".into(),
                    net: "off".into(),
                    files: String::new(),
                    ebpf_unavailable: Some(crate::one_line(&e)),
                };
                (None, state)
            }
        };
        let mut state = state;
        let files = match layer {
            _ if std::env::var(substrate_sensor::bpf::SENSOR_ENV).is_ok_and(|v| v == "off") => {
                state.files = "off (SUBSTRATE_SENSOR=off)".into();
                None
            }
            None => {
                state.files = "off: the world has no upper filesystem of its own".into();
                None
            }
            Some((layer, lowers)) => match watch_files(&layer, lowers) {
                Ok(watch) => {
                    state.files = "fanotify".into();
                    Some(watch)
                }
                Err(e) => {
                    state.files = format!("off: {}", crate::one_line(&e));
                    None
                }
            },
        };
        KernelSensor {
            watch,
            state,
            execs: HashMap::new(),
            held: Vec::new(),
            files,
            waiting_preload: Vec::new(),
            sendto_peers: HashSet::new(),
        }
    }

    pub(super) fn files_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.files.as_ref().map(|w| w.as_fd())
    }

    /// What the file source has read since the last call, and how many
    /// times the kernel's queue overflowed (events lost), and how many
    /// events could not be placed or parsed.
    pub(super) fn read_files(&mut self) -> (Vec<FileEvent>, u64, u64) {
        let Some(watch) = &mut self.files else {
            return (Vec::new(), 0, 0);
        };
        match watch.read() {
            Ok(read) => (
                read.events,
                u64::from(read.overflows),
                u64::from(read.unplaced) + read.garbled.len() as u64,
            ),
            // A read that fails is a loss like an overflow, said so.
            Err(_) => (Vec::new(), 1, 0),
        }
    }

    /// Holds a kernel file span for the preload's account of the call.
    pub(super) fn hold_file(&mut self, span: Span) {
        let key = match (&span.detail, span.process.pid) {
            (Detail::File(file), Some(pid)) => join_class(&file.op).map(|change| FileKey {
                pid,
                change,
                path: file.new_path.clone().unwrap_or_else(|| file.path.clone()),
            }),
            _ => None,
        };
        self.held.push(Held {
            due: Instant::now() + KERNEL_GRACE,
            key: key.map_or(JoinKey::Joined, JoinKey::File),
            span,
        });
    }

    /// Joins a preload `file` span to the kernel's span of the change it
    /// made: `true` when the kernel has it (the preload span is not
    /// written).
    fn join_preload_file(&mut self, span: &Span) -> bool {
        let (Detail::File(file), Some(pid)) = (&span.detail, span.process.pid) else {
            return false;
        };
        if !matches!(
            span.result,
            Some(substrate_trace::Outcome::Returned { errno: None, .. })
        ) {
            return false;
        }
        let path = file.new_path.as_deref().unwrap_or(&file.path);
        for change in preload_classes(file) {
            if let Some(held) = self.held.iter_mut().find(|h| match &h.key {
                JoinKey::File(key) => key.matches(pid, change, path),
                _ => false,
            }) {
                held.span.extra.insert(
                    "preload".into(),
                    serde_json::Value::String(file.op.as_str().to_owned()),
                );
                // What only the call says: its open flags, mode and return.
                if let Detail::File(kernel) = &mut held.span.detail {
                    kernel.flags = kernel.flags.or(file.flags);
                    kernel.mode = kernel.mode.or(file.mode);
                }
                held.span.result = held.span.result.or(span.result);
                held.key = JoinKey::Joined;
                return true;
            }
        }
        false
    }

    pub(super) fn fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.watch.as_ref().map(|w| w.as_fd())
    }

    pub(super) fn sees_sockets(&self) -> bool {
        self.watch.as_ref().is_some_and(|w| w.sees_sockets())
    }

    pub(super) fn read(&mut self) -> SensorRead {
        let Some(watch) = &mut self.watch else {
            return SensorRead::default();
        };
        let batch = watch.read();
        let mut read = SensorRead {
            malformed: batch.malformed,
            ..SensorRead::default()
        };
        for event in batch.events {
            match event {
                substrate_sensor::bpf::KernelEvent::Exec(e) => read.execs.push(e),
                substrate_sensor::bpf::KernelEvent::Net(e) => read.nets.push(e),
            }
        }
        read
    }

    /// Records the kernel dropped since the last call (a full ring).
    pub(super) fn dropped(&mut self) -> u64 {
        self.watch.as_mut().map_or(0, |w| w.dropped())
    }

    /// Keeps an exec record for the connector's exec event of its process.
    pub(super) fn hold_exec(&mut self, event: ExecEvent) {
        self.execs
            .entry(event.header.tgid)
            .or_default()
            .push_back((Instant::now(), event));
    }

    /// Whether the kernel has reported an exec of `tgid` in the world.
    pub(super) fn has_exec_of(&self, tgid: i32) -> bool {
        self.execs.get(&tgid).is_some_and(|q| !q.is_empty())
    }

    /// The exec record of the connector's exec of `tgid` at `event_ns`;
    /// older records of the same process are execs the connector did not
    /// report (lost events), returned for spans of their own.
    pub(super) fn take_exec(
        &mut self,
        tgid: i32,
        event_ns: u64,
    ) -> (Option<ExecEvent>, Vec<ExecEvent>) {
        let Some(queue) = self.execs.get_mut(&tgid) else {
            return (None, Vec::new());
        };
        let mut older = Vec::new();
        let mut matched = None;
        while let Some((_, event)) = queue.front() {
            if event.header.ktime_ns > event_ns {
                break;
            }
            let (_, event) = queue.pop_front().expect("front exists");
            if event_ns - event.header.ktime_ns <= MATCH_WINDOW_NS {
                if let Some(previous) = matched.replace(event) {
                    older.push(previous);
                }
            } else {
                older.push(event);
            }
        }
        if queue.is_empty() {
            self.execs.remove(&tgid);
        }
        (matched, older)
    }

    /// Exec records that waited past the grace period for a connector
    /// event that never came (all of them when `all`).
    pub(super) fn expired_execs(&mut self, all: bool) -> Vec<ExecEvent> {
        let now = Instant::now();
        let mut expired = Vec::new();
        self.execs.retain(|_, queue| {
            while let Some((held, _)) = queue.front() {
                if !all && now.duration_since(*held) < KERNEL_GRACE {
                    break;
                }
                expired.push(queue.pop_front().expect("front exists").1);
            }
            !queue.is_empty()
        });
        expired.sort_by_key(|e| e.header.ktime_ns);
        expired
    }

    /// Holds a kernel socket span for the preload's account of the call.
    pub(super) fn hold_net(&mut self, span: Span) {
        let Some(key) = NetKey::of(&span) else {
            return;
        };
        if key.op == NetOp::Sendto {
            self.sendto_peers.insert(key.clone());
        }
        self.held.push(Held {
            due: Instant::now() + KERNEL_GRACE,
            key: JoinKey::Net(key),
            span,
        });
    }

    /// Joins a preload `net` span to the kernel's record of the same call:
    /// `true` when the kernel has it (the preload span is not written);
    /// otherwise marks it unseen by the kernel (when the kernel watches
    /// sockets).
    fn join_preload_net(&mut self, span: &Span) -> bool {
        if !self.sees_sockets() {
            return false;
        }
        let Some(key) = NetKey::of(span) else {
            return false;
        };
        if let Some(held) = self
            .held
            .iter_mut()
            .find(|h| h.key == JoinKey::Net(key.clone()))
        {
            held.span
                .extra
                .insert("preload".into(), serde_json::Value::Bool(true));
            held.key = JoinKey::Joined;
            return true;
        }
        key.op == NetOp::Sendto && self.sendto_peers.contains(&key)
    }

    /// Takes a preload span: joined to the kernel's span of the same call
    /// (`None`: not written), held a little while the kernel's may still be
    /// unread (`None` too; see [`KernelSensor::due_preload`]), or given
    /// back to be written as it is. The kernel's record of a call is queued
    /// before the call returns, but may be read after the preload's: the
    /// monitor reads the kernel's sources once a pass, the preload's rings
    /// whenever they ring.
    pub(super) fn offer_preload(&mut self, span: Span) -> Option<Span> {
        if self.join_preload_net(&span) || self.join_preload_file(&span) {
            return None;
        }
        if self.kernel_may_join(&span) {
            self.waiting_preload
                .push((Instant::now() + PRELOAD_WAIT, span));
            return None;
        }
        Some(span)
    }

    /// Tries the held preload spans again, once the kernel's sources have
    /// been read and placed.
    pub(super) fn retry_preload(&mut self) {
        for (due, span) in std::mem::take(&mut self.waiting_preload) {
            if !(self.join_preload_net(&span) || self.join_preload_file(&span)) {
                self.waiting_preload.push((due, span));
            }
        }
    }

    /// Held preload spans no kernel span joined in time (all when `all`):
    /// a socket call the kernel did not see says so.
    pub(super) fn due_preload(&mut self, all: bool) -> Vec<Span> {
        let now = Instant::now();
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting_preload)
            .into_iter()
            .partition(|(at, _)| all || *at <= now);
        self.waiting_preload = waiting;
        due.into_iter()
            .map(|(_, mut span)| {
                if matches!(span.detail, Detail::Net(_)) {
                    span.extra
                        .insert("kernel".into(), serde_json::Value::String("unseen".into()));
                }
                span
            })
            .collect()
    }

    /// Whether a kernel span could still join this preload span: a socket
    /// call while the socket programs run, a file call that changed
    /// something while the file source runs.
    fn kernel_may_join(&self, span: &Span) -> bool {
        let succeeded = matches!(
            span.result,
            Some(substrate_trace::Outcome::Returned { errno: None, .. })
        );
        match &span.detail {
            Detail::Net(_) => self.sees_sockets(),
            Detail::File(file) => {
                self.files.is_some() && succeeded && !preload_classes(file).is_empty()
            }
            _ => false,
        }
    }

    /// Kernel socket and file spans whose wait is over (all when `all`),
    /// in the order they were seen.
    pub(super) fn due_spans(&mut self, all: bool) -> Vec<Span> {
        let now = Instant::now();
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| all || h.due <= now);
        self.held = waiting;
        due.into_iter().map(|h| h.span).collect()
    }
}

/// A socket record as a `net` span of the process's current image.
pub(super) fn net_span(
    world_id: &str,
    event: &NetEvent,
    time: Timestamp,
    parent: Option<SpanId>,
) -> Span {
    let op = match event.call {
        NetCall::Connect => NetOp::Connect,
        NetCall::Bind => NetOp::Bind,
        NetCall::Listen => NetOp::Listen,
        NetCall::Accept => NetOp::Accept,
        NetCall::Sendto => NetOp::Sendto,
    };
    let transport = super::preload::transport_of(u32::from(event.sock_type));
    let mut detail = match &event.address {
        SockAddr::Inet(ip, port) => {
            let mut d = NetDetail::new(op, Family::Inet);
            d.address = Some(ip.to_string().into_bytes());
            d.port = Some(*port);
            d
        }
        SockAddr::Inet6(ip, port) => {
            let mut d = NetDetail::new(op, Family::Inet6);
            d.address = Some(ip.to_string().into_bytes());
            d.port = Some(*port);
            d
        }
        SockAddr::Unix(path) => {
            let mut d = NetDetail::new(op, Family::Unix);
            // Empty: a listening unix socket, whose path is not read.
            d.address = (!path.is_empty()).then(|| path.clone());
            d
        }
        SockAddr::Other(family) => NetDetail::new(op, Family::Other(format!("af_{family}"))),
        SockAddr::Unknown => NetDetail::new(op, Family::Other("unknown".into())),
    };
    if matches!(detail.family, Family::Inet | Family::Inet6) {
        detail.transport = transport;
    }
    let mut span = Span::net(world_id, Source::Kernel, time, detail)
        .pid(event.header.tgid as u32)
        .world_pid(event.header.world_pid);
    if let Some(parent) = parent {
        span = span.parent(parent);
    }
    if event.ret < 0 {
        span.failed(-1, Errno(-event.ret as i32))
    } else {
        span.returned(event.ret)
    }
    .build()
}

/// The world's upper filesystem watched, the lower dirs given so that a
/// chmod of a lower file is told from a touch.
fn watch_files(
    layer: &Path,
    lowers: Vec<PathBuf>,
) -> Result<FileWatch, substrate_sensor::files::FileWatchError> {
    Ok(FileWatch::new(layer, &layer.join("upper"), &layer.join("work"))?.with_lower_dirs(lowers))
}

/// A file change as a `file` span of the process that made it.
pub(super) fn file_span(
    world_id: &str,
    event: &FileEvent,
    time: Timestamp,
    parent: Option<SpanId>,
    world_pid: Option<u32>,
) -> Span {
    let (op, mode) = match event.op {
        FileChange::Create => (FileOp::Create, None),
        FileChange::Mkdir => (FileOp::Mkdir, None),
        FileChange::Symlink => (FileOp::Symlink, None),
        FileChange::Link => (FileOp::Link, None),
        FileChange::Mknod => (FileOp::Mknod, None),
        FileChange::Write => (FileOp::Write, None),
        FileChange::Delete => (FileOp::Delete, None),
        FileChange::Rmdir => (FileOp::Rmdir, None),
        FileChange::Rename => (FileOp::Rename, None),
        FileChange::Chmod { mode } => (FileOp::Chmod, Some(mode)),
        FileChange::Chown { .. } => (FileOp::Chown, None),
        FileChange::Metadata => (FileOp::Metadata, None),
        FileChange::ExecOpen => (FileOp::Exec, None),
    };
    let mut detail = match &event.new_path {
        Some(to) => FileDetail::rename(op, event.path.clone(), to.clone()),
        None => FileDetail::new(op, event.path.clone()),
    };
    if let Some(mode) = mode {
        detail = detail.with_mode(mode);
    }
    let mut span = Span::file(world_id, Source::Kernel, time, detail).pid(event.pid as u32);
    if let Some(parent) = parent {
        span = span.parent(parent);
    }
    if let Some(world_pid) = world_pid {
        span = span.world_pid(world_pid);
    }
    let mut span = span.build();
    if let FileChange::Chown { uid, gid } = event.op {
        span.extra.insert(
            "owner".into(),
            serde_json::json!({ "uid": uid, "gid": gid }),
        );
    }
    span
}

/// The kind of change a kernel file span is, for joining (`None`: no
/// preload call makes it on its own).
fn join_class(op: &FileOp) -> Option<&'static str> {
    Some(match op {
        FileOp::Create => "create",
        FileOp::Write => "write",
        FileOp::Delete => "delete",
        FileOp::Rmdir => "rmdir",
        FileOp::Mkdir => "mkdir",
        FileOp::Rename => "rename",
        FileOp::Chmod => "chmod",
        _ => return None,
    })
}

/// The changes a preload file call may have made, likeliest first.
fn preload_classes(file: &FileDetail) -> Vec<&'static str> {
    const O_ACCMODE: u32 = 0o3;
    const O_CREAT: u32 = 0o100;
    const O_TRUNC: u32 = 0o1000;
    match file.op {
        FileOp::Open | FileOp::Openat | FileOp::Creat | FileOp::Fopen => {
            let flags = file.flags.unwrap_or(0);
            let mut classes = Vec::new();
            if flags & O_CREAT != 0 || file.op == FileOp::Creat {
                classes.push("create");
            }
            if flags & O_ACCMODE != 0 || flags & O_TRUNC != 0 || file.op == FileOp::Creat {
                classes.push("write");
            }
            classes
        }
        FileOp::Unlink | FileOp::Unlinkat => vec!["delete", "rmdir"],
        FileOp::Rmdir => vec!["rmdir"],
        FileOp::Mkdir | FileOp::Mkdirat => vec!["mkdir"],
        FileOp::Rename | FileOp::Renameat => vec!["rename"],
        FileOp::Chmod | FileOp::Fchmodat => vec!["chmod"],
        FileOp::Truncate => vec!["write"],
        _ => Vec::new(),
    }
}
