//! The eBPF sensor in the monitor: its exec records give the proc
//! connector's exec spans their argv, exe and cwd as the kernel read them
//! at exec time; its socket records become `net` spans, which the preload's
//! account of the same call joins rather than repeats.
//!
//! The kernel is the authority. The proc connector still says who forks
//! and exits (exact, and the tree the monitor follows); the sensor says
//! what each exec was. A preload `net` span whose call the kernel also
//! reported is dropped, the kernel's span marked `"preload": true`; one the
//! kernel did not report (while its socket programs are attached) is
//! written marked `"kernel": "unseen"`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use substrate_sensor::bpf::{ExecEvent, NetCall, NetEvent, SockAddr, WorldWatch};
use substrate_trace::{Detail, Errno, Family, NetDetail, NetOp, Source, Span, SpanId, Timestamp, Transport};

/// How far before the proc connector's exec event the sensor's may be
/// stamped and still be the same exec (both fire in `exec_binprm`,
/// microseconds apart).
const MATCH_WINDOW_NS: u64 = 10_000_000;
/// How long a kernel record waits for its counterpart (the connector's
/// exec, the preload's account of a socket call) before it is written on
/// its own.
const KERNEL_GRACE: Duration = Duration::from_millis(500);

/// Which kernel sources trace this world, for its world span.
#[derive(Debug, Clone)]
pub(super) struct SensorState {
    /// `ebpf:<program>` or `proc_connector`.
    pub exec: String,
    /// `ebpf` or `off`.
    pub net: String,
    /// Why the eBPF sensor is not active, when it is not.
    pub ebpf_unavailable: Option<String>,
}

impl SensorState {
    pub(super) fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::json!({ "exec": self.exec, "net": self.net });
        if let Some(why) = &self.ebpf_unavailable {
            value["ebpf_unavailable"] = why.clone().into();
        }
        value
    }
}

/// A kernel socket span waiting for the preload's account of the call.
struct PendingNet {
    due: Instant,
    key: NetKey,
    span: Span,
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
    nets: Vec<PendingNet>,
    /// The first datagram to each peer is all the kernel reports (and all
    /// the preload does): later ones are neither's.
    sendto_peers: HashSet<NetKey>,
}

impl KernelSensor {
    /// Registers the world whose init (`init_pid`) is held before its
    /// first exec; where the sensor cannot run, says why and stays off.
    pub(super) fn start(init_pid: i32) -> KernelSensor {
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
                    ebpf_unavailable: None,
                };
                (Some(watch), state)
            }
            Err(e) => {
                let state = SensorState {
                    exec: "proc_connector".into(),
                    net: "off".into(),
                    ebpf_unavailable: Some(error_chain(&e)),
                };
                (None, state)
            }
        };
        KernelSensor {
            watch,
            state,
            execs: HashMap::new(),
            nets: Vec::new(),
            sendto_peers: HashSet::new(),
        }
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
    pub(super) fn take_exec(&mut self, tgid: i32, event_ns: u64) -> (Option<ExecEvent>, Vec<ExecEvent>) {
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
        self.nets.push(PendingNet {
            due: Instant::now() + KERNEL_GRACE,
            key,
            span,
        });
    }

    /// Joins a preload `net` span to the kernel's record of the same call:
    /// `true` when the kernel has it (the preload span is not written);
    /// otherwise marks it unseen by the kernel (when the kernel watches
    /// sockets).
    pub(super) fn join_preload_net(&mut self, span: &mut Span) -> bool {
        if !self.sees_sockets() {
            return false;
        }
        let Some(key) = NetKey::of(span) else {
            return false;
        };
        if let Some(pending) = self.nets.iter_mut().find(|p| p.key == key) {
            pending
                .span
                .extra
                .insert("preload".into(), serde_json::Value::Bool(true));
            // One preload account per kernel record.
            pending.key.pid = u32::MAX;
            return true;
        }
        if key.op == NetOp::Sendto && self.sendto_peers.contains(&key) {
            return true;
        }
        span.extra
            .insert("kernel".into(), serde_json::Value::String("unseen".into()));
        false
    }

    /// Kernel socket spans whose wait is over (all when `all`).
    pub(super) fn due_nets(&mut self, all: bool) -> Vec<Span> {
        let now = Instant::now();
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.nets)
            .into_iter()
            .partition(|p| all || p.due <= now);
        self.nets = waiting;
        due.into_iter().map(|p| p.span).collect()
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
    let transport = match i32::from(event.sock_type) & 0xf {
        libc::SOCK_STREAM => Some(Transport::Tcp),
        libc::SOCK_DGRAM => Some(Transport::Udp),
        _ => None,
    };
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

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
