//! The monitor's part of a world's egress policy: it runs the resolver the
//! world's `/etc/resolv.conf` names (which admits what allowed names
//! resolve to into the table's sets, for their TTL), and reads what the
//! table logs — one record per new connection or flow, allowed or blocked —
//! to give each `net` span its verdict and the rule that decided.
//!
//! The table itself is installed by whoever runs the world
//! ([`crate::World::connect`]): a world's policy holds whether or not it is
//! traced. Here a second handle on it is opened, with the same policy, for
//! the admissions and the decisions.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{json, Value};
use substrate_net::egress::{Decision, EgressTable};
use substrate_net::netns::NetNs;
use substrate_net::nflog::{LoggedPacket, NflogReader};
use substrate_net::resolver::{self, DnsEvent, DnsOutcome, Resolver, ResolverConfig};
use substrate_policy::network::{Target, Verdict};
use substrate_trace::{
    DnsDetail, Family, NetDetail, NetOp, Source, Span, SpanId, Timestamp, Transport,
};

use crate::record::WorldEgress;
use crate::world::RESOLVER;

/// How long a logged packet waits for the span of the call that sent it
/// (the sensor's and the preload's are held up to 500 ms before they are
/// written) before it is written as a span of its own.
const JOIN_WINDOW: Duration = Duration::from_millis(1500);

/// A logged packet and what decided it, waiting for its span.
struct Logged {
    at: Timestamp,
    packet: LoggedPacket,
    decision: Decision,
}

/// Destinations reached and blocked, for the world span.
#[derive(Default)]
struct Destination {
    verdict: &'static str,
    rule: String,
    attempts: u64,
}

pub(super) struct EgressWatch {
    table: Arc<EgressTable>,
    /// `None` when another world's monitor reads the namespace's log (a
    /// pod's sandbox, for the pod's containers: a group has one reader).
    nflog: Option<NflogReader>,
    /// Held for the monitor's life; stopped when it is dropped.
    _resolver: Option<Resolver>,
    dns_events: Receiver<(Timestamp, DnsEvent)>,
    logged: Vec<Logged>,
    destinations: BTreeMap<String, Destination>,
    /// Attempts to destinations past [`MAX_DESTINATIONS`], by verdict.
    unlisted: BTreeMap<&'static str, u64>,
    upstream: Option<std::net::SocketAddr>,
    /// Why names are not resolved, when the resolver could not start.
    resolver_error: Option<String>,
    names: BTreeMap<&'static str, u64>,
    netns: NetNs,
    /// The world's interfaces' byte counters, as last read: read on a
    /// clock while it runs, since its veth pair may be gone by the time
    /// the world span is written.
    traffic: substrate_net::link::Traffic,
    traffic_read: Option<std::time::Instant>,
    /// The egress quota was hit (its first refusal).
    quota_hit: Option<Timestamp>,
}

/// At most this many destinations are listed on the world span; the
/// attempts to others are counted (a world sending to a million addresses
/// must not grow its monitor without bound).
const MAX_DESTINATIONS: usize = 1024;

/// How often the world's byte counters are read.
const TRAFFIC_EVERY: Duration = Duration::from_millis(500);

/// Which spans are whose: the verdict's key.
fn key(address: &IpAddr, port: Option<u16>, protocol: u8) -> String {
    let protocol = match protocol {
        6 => "tcp".to_owned(),
        17 => "udp".to_owned(),
        1 => "icmp".to_owned(),
        58 => "icmpv6".to_owned(),
        other => format!("proto-{other}"),
    };
    match (address, port) {
        (IpAddr::V6(a), Some(port)) => format!("[{a}]:{port}/{protocol}"),
        (a, Some(port)) => format!("{a}:{port}/{protocol}"),
        (a, None) => format!("{a}/{protocol}"),
    }
}

impl EgressWatch {
    /// Opens the table's handle and its log in the world's netns (that of
    /// `init_pid`), and starts the resolver. The resolver failing to start
    /// (no upstream in the host's resolv.conf, say) is recorded, not fatal:
    /// the world's names then fail, and its addresses are still governed.
    pub(super) fn start(
        init_pid: i32,
        egress: &WorldEgress,
    ) -> Result<EgressWatch, Box<dyn std::error::Error + Send + Sync>> {
        let netns = NetNs::of_pid(init_pid)?;
        // The resolver's address must be local when it binds: a socket
        // bound (IP_FREEBIND) before `lo` is up answers from 127.0.0.1,
        // which a stub resolver's connected socket drops.
        substrate_net::link::bring_up_loopback(&netns)?;
        let options = egress.table_options()?;
        let protected = options.protected.clone();
        let table = Arc::new(EgressTable::open(&netns, &egress.policy, options)?);
        let nflog = match NflogReader::open(&netns, table.options().log_group) {
            Ok(reader) => Some(reader),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => None,
            Err(e) => return Err(e.into()),
        };
        let (sender, dns_events) = mpsc::channel();
        let mut resolver_error = None;
        let upstream = match egress.dns_upstream {
            Some(upstream) => Some(upstream),
            None => resolver::host_upstream("/etc/resolv.conf".as_ref())
                .map_err(|e| resolver_error = Some(crate::one_line(&e)))
                .ok(),
        };
        let resolver = match upstream {
            Some(upstream) => {
                let mut config = ResolverConfig::new(upstream);
                config.listen = RESOLVER;
                config.protected = protected;
                let admitting = Arc::clone(&table);
                let admit: resolver::Admit = Box::new(move |entries, address, ttl| {
                    for entry in entries
                        .iter()
                        .filter(|e| matches!(e.target, Target::Name(_)))
                    {
                        admitting
                            .admit(entry, address, ttl)
                            .map_err(std::io::Error::other)?;
                    }
                    Ok(())
                });
                let events: resolver::OnEvent = Box::new(move |event| {
                    let _ = sender.send((Timestamp::now(), event));
                });
                match Resolver::start(
                    &netns,
                    config,
                    Arc::new(RwLock::new(egress.policy.clone())),
                    admit,
                    events,
                ) {
                    Ok(resolver) => Some(resolver),
                    Err(e) => {
                        resolver_error = Some(crate::one_line(&e));
                        None
                    }
                }
            }
            None => None,
        };
        Ok(EgressWatch {
            table,
            nflog,
            _resolver: resolver,
            dns_events,
            logged: Vec::new(),
            destinations: BTreeMap::new(),
            unlisted: BTreeMap::new(),
            upstream,
            resolver_error,
            names: BTreeMap::new(),
            netns,
            traffic: Default::default(),
            traffic_read: None,
            quota_hit: None,
        })
    }

    /// Reads the world's byte counters, when their time has come (every
    /// time with `now`).
    pub(super) fn read_traffic(&mut self, now: bool) {
        if !now
            && self
                .traffic_read
                .is_some_and(|at| at.elapsed() < TRAFFIC_EVERY)
        {
            return;
        }
        self.traffic_read = Some(std::time::Instant::now());
        // Gone with the veth pair: the last reading stands.
        if let Ok(traffic) = substrate_net::link::traffic(&self.netns) {
            if traffic.sent >= self.traffic.sent && traffic.received >= self.traffic.received {
                self.traffic = traffic;
            }
        }
    }

    /// Reads what the table logged since the last pass.
    pub(super) fn read_log(&mut self) {
        let Some(nflog) = &mut self.nflog else {
            return;
        };
        let packets = match nflog.read() {
            Ok(packets) => packets,
            Err(e) => {
                tracing::warn!("cannot read the egress log: {e}");
                return;
            }
        };
        let now = Timestamp::now();
        for packet in packets {
            let Some(decision) = self.table.decision(&packet) else {
                continue;
            };
            let verdict = verdict_name(decision.verdict);
            let key = key(
                &packet.destination,
                packet.destination_port,
                packet.protocol,
            );
            if self.destinations.len() >= MAX_DESTINATIONS && !self.destinations.contains_key(&key)
            {
                *self.unlisted.entry(verdict).or_default() += 1;
            } else {
                let destination = self.destinations.entry(key).or_default();
                destination.verdict = verdict;
                destination.rule = decision.rule.to_string();
                destination.attempts += 1;
            }
            if decision.rule == substrate_net::egress::DecidingRule::Quota {
                self.quota_hit.get_or_insert(now);
            }
            self.logged.push(Logged {
                at: now,
                packet,
                decision,
            });
        }
    }

    /// Gives `span` (a socket call about to be written) the verdict of the
    /// logged packet it sent, if there is one.
    pub(super) fn annotate(&mut self, span: &mut Span) {
        let substrate_trace::Detail::Net(net) = &span.detail else {
            return;
        };
        if !matches!(net.op, NetOp::Connect | NetOp::Sendto) {
            return;
        }
        let (Some(address), Some(port)) = (&net.address, net.port) else {
            return;
        };
        let Some(address) = std::str::from_utf8(address)
            .ok()
            .and_then(|a| a.parse::<IpAddr>().ok())
        else {
            return;
        };
        let protocol = match net.transport {
            Some(Transport::Tcp) => 6,
            Some(Transport::Udp) => 17,
            _ => return,
        };
        let found = self.logged.iter().position(|logged| {
            logged.packet.destination.to_canonical() == address.to_canonical()
                && logged.packet.destination_port == Some(port)
                && logged.packet.protocol == protocol
        });
        if let Some(index) = found {
            let logged = self.logged.remove(index);
            mark(span, &logged.decision);
        }
    }

    /// The spans due now (all of them when `all`): the resolver's
    /// decisions, and logged packets no socket call's span claimed (a raw
    /// socket's ICMP, a call the sensor did not see).
    pub(super) fn due_spans(&mut self, world_id: &str, parent: SpanId, all: bool) -> Vec<Span> {
        let mut spans = Vec::new();
        while let Ok((at, event)) = self.dns_events.try_recv() {
            spans.push(dns_span(world_id, parent, at, event, &mut self.names));
        }
        let now = Timestamp::now();
        let (due, waiting): (Vec<Logged>, Vec<Logged>) = std::mem::take(&mut self.logged)
            .into_iter()
            .partition(|logged| {
                all || logged
                    .at
                    .until(now)
                    .is_some_and(|waited| waited >= JOIN_WINDOW)
            });
        self.logged = waiting;
        for logged in due {
            spans.push(unclaimed_packet_span(world_id, parent, logged));
        }
        spans
    }

    /// The world span's account: destinations reached and blocked, names
    /// answered and refused, the resolver's upstream.
    pub(super) fn summary(&self) -> Value {
        let destinations = |verdict: &str| -> Value {
            self.destinations
                .iter()
                .filter(|(_, d)| d.verdict == verdict)
                .map(|(key, d)| {
                    (
                        key.clone(),
                        json!({ "rule": d.rule, "attempts": d.attempts }),
                    )
                })
                .collect::<serde_json::Map<String, Value>>()
                .into()
        };
        let mut summary = json!({
            "reached": destinations("allow"),
            "blocked": destinations("deny"),
            "names": self.names,
            "resolver": RESOLVER.to_string(),
        });
        if let Some(upstream) = self.upstream {
            summary["upstream"] = Value::String(upstream.to_string());
        }
        if !self.unlisted.is_empty() {
            summary["unlisted_attempts"] = json!(self.unlisted);
        }
        summary["bytes"] = json!({ "sent": self.traffic.sent, "received": self.traffic.received });
        if let Some(at) = self.quota_hit {
            summary["quota_hit_at"] = Value::String(at.to_string());
        }
        if let Some(error) = &self.resolver_error {
            summary["resolver_error"] = Value::String(error.clone());
        }
        match &self.nflog {
            Some(nflog) if nflog.overruns() > 0 => {
                summary["log_overruns"] = nflog.overruns().into();
            }
            Some(_) => {}
            None => {
                summary["log"] =
                    "read by another world of this network namespace (the pod's sandbox)".into();
            }
        }
        summary
    }
}

fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Allow => "allow",
        Verdict::Deny => "deny",
    }
}

/// The span's `egress` field; a blocked call is also `refused_by` the
/// egress policy, as a world without a network's are by `network`.
fn mark(span: &mut Span, decision: &Decision) {
    span.extra.insert(
        "egress".into(),
        json!({ "verdict": verdict_name(decision.verdict), "rule": decision.rule.to_string() }),
    );
    if decision.verdict == Verdict::Deny {
        span.extra.insert(
            super::REFUSED_BY.into(),
            Value::String("egress policy".into()),
        );
    }
}

fn unclaimed_packet_span(world_id: &str, parent: SpanId, logged: Logged) -> Span {
    let packet = &logged.packet;
    let family = match packet.destination {
        IpAddr::V4(_) => Family::Inet,
        IpAddr::V6(_) => Family::Inet6,
    };
    let (op, transport) = match packet.protocol {
        6 => (NetOp::Connect, Some(Transport::Tcp)),
        17 => (NetOp::Sendto, Some(Transport::Udp)),
        _ => (NetOp::Sendto, None),
    };
    let mut detail = NetDetail::new(op, family);
    detail.transport = transport;
    detail.address = Some(packet.destination.to_string().into_bytes());
    detail.port = packet.destination_port;
    let mut span = Span::net(world_id, Source::Monitor, logged.at, detail)
        .parent(parent)
        .build();
    mark(&mut span, &logged.decision);
    span.extra.insert(
        "packet".into(),
        json!({
            "protocol": packet.protocol,
            "source": packet.source.to_string(),
            "uid": packet.uid,
        }),
    );
    span
}

fn dns_span(
    world_id: &str,
    parent: SpanId,
    at: Timestamp,
    event: DnsEvent,
    names: &mut BTreeMap<&'static str, u64>,
) -> Span {
    let mut answers = Vec::new();
    let resolver = match &event.outcome {
        DnsOutcome::Refused { reason } => {
            *names.entry("refused").or_default() += 1;
            json!({ "verdict": "refused", "reason": reason })
        }
        DnsOutcome::Answered {
            addresses,
            ttl,
            entries,
            rcode,
        } => {
            *names.entry("answered").or_default() += 1;
            answers = addresses.iter().map(ToString::to_string).collect();
            json!({ "verdict": "answered", "entries": entries, "ttl": ttl, "rcode": rcode })
        }
        DnsOutcome::NotAdmitted { address, reason } => {
            *names.entry("not_admitted").or_default() += 1;
            json!({ "verdict": "not_admitted", "address": address.to_string(), "reason": reason })
        }
        DnsOutcome::Failed { reason } => {
            *names.entry("failed").or_default() += 1;
            json!({ "verdict": "failed", "reason": reason })
        }
    };
    let mut span = Span::dns(
        world_id,
        Source::Monitor,
        at,
        DnsDetail {
            query: event.name.into_bytes(),
            answers,
        },
    )
    .parent(parent)
    .build();
    let mut resolver = resolver;
    resolver["type"] = Value::String(event.query_type);
    resolver["transport"] = Value::String(event.transport.to_string());
    resolver["client"] = Value::String(event.client.to_string());
    span.extra.insert("resolver".into(), resolver);
    if matches!(event.outcome, DnsOutcome::Refused { .. }) {
        span.extra.insert(
            super::REFUSED_BY.into(),
            Value::String("egress policy".into()),
        );
    }
    span
}
