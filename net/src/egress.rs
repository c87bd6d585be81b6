//! A world's egress table: `table inet substrate` inside the world's netns,
//! built from its [`NetworkPolicy`] and sent to nf_tables as one batch.
//!
//! ```text
//! table inet substrate {
//!   set tcp_udp { type inet_proto; flags constant; elements = { tcp, udp } }
//!   set ndp { type icmpv6_type; flags constant; elements = { 131, 132, 133, 135, 136, 143 } }
//!   set d0_v4 { type ipv4_addr; flags interval; ... }        # deny spec 0, static
//!   set a2_v6_names { type ipv6_addr; flags timeout; }       # allow spec 2, resolver-fed
//!   chain refuse {
//!     meta l4proto tcp reject with tcp reset
//!     reject with icmpx admin-prohibited
//!   }
//!   chain output {
//!     type filter hook output priority 0; policy accept;
//!     oifname "lo" accept
//!     quota over N bytes counter log prefix "q" group G snaplen 128 goto refuse
//!     meta nfproto ipv6 meta l4proto ipv6-icmp icmpv6 type @ndp accept
//!     ct state established,related accept
//!     meta l4proto @tcp_udp th dport 53 counter log prefix "dns" ... goto refuse
//!     meta nfproto ipv4 [meta l4proto P | @tcp_udp] [th dport R] ip daddr @d0_v4 counter log prefix "d0" ... goto refuse
//!     ... the allow specs the same way, ending in accept ...
//!     counter log prefix "dflt" ... (accept | goto refuse)
//!   }
//! }
//! ```
//!
//! Entries are grouped by their (protocol, ports) spec, and each spec's
//! addresses live in sets: one interval set per family for the written
//! networks (merged first: nf_tables refuses overlapping intervals) and one
//! timeout set per family for the addresses the world's resolver admits for
//! the spec's names. A packet meets one rule per spec and family whatever
//! the number of entries, and a set lookup is logarithmic (rbtree) or
//! constant (hash).
//!
//! Loopback is accepted first: the world's resolver listens on 127.0.0.53
//! inside the netns. Neighbour discovery is accepted before anything else
//! decides: conntrack leaves it untracked, so without that rule a `default:
//! deny` world could not find its IPv6 gateway. Packets of established
//! connections are accepted before any log statement, so what is logged is
//! the first packet of a connection (or every packet of an unanswered UDP
//! flow, which conntrack keeps calling new). A refused packet is rejected,
//! never dropped: a TCP reset, else ICMP(v6) administratively prohibited,
//! so a blocked connect fails at once instead of timing out.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nftnl::expr::{
    Bitwise, Cmp, CmpOp, Conntrack, Counter, Expression, IcmpCode, Icmpv6HeaderField,
    Ipv4HeaderField, Ipv6HeaderField, Lookup, Meta, NetworkHeaderField, Payload, RejectionType,
    States, TcpHeaderField, TransportHeaderField, Verdict as NftVerdict,
};
use nftnl::nftnl_sys as sys;
use nftnl::set::{Set, SetKey};
use nftnl::{Chain, ChainType, Hook, MsgType, NlMsg, Policy, ProtoFamily, Rule, Table};
use nix::sys::socket::{setsockopt, sockopt};
use substrate_policy::network::{Entry, NetworkPolicy, PortRange, Protocol, Target, Verdict};

use crate::netns::NetNs;
use crate::nflog::{self, Family, LoggedPacket, NetfilterSocket};
use crate::protected::Protected;

/// The table's name, in family `inet` (IPv4 and IPv6 in one table).
pub const TABLE: &str = "substrate";
const TABLE_NAME: &CStr = c"substrate";
const OUTPUT_CHAIN: &CStr = c"output";
/// Where every refused packet goes: the reject fitting its protocol.
const REFUSE_CHAIN: &CStr = c"refuse";
const TCP_UDP_SET: &CStr = c"tcp_udp";
const NDP_SET: &CStr = c"ndp";

/// Log prefixes of the rules that are not an entry's.
const PREFIX_QUOTA: &str = "q";
const PREFIX_DNS: &str = "dns";
const PREFIX_DEFAULT: &str = "dflt";
const PREFIX_PROTECTED: &str = "prot";

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;
const DNS_PORT: u16 = 53;

/// The ICMPv6 types a host must send for IPv6 to work: MLD listener
/// reports and done (131, 132, 143: a snooping bridge forwards the
/// neighbour's solicitations only to listeners), router and neighbour
/// solicitation and neighbour advertisement (133, 135, 136). Router
/// advertisements and redirects are a router's: not sent.
const NDP_TYPES: [u8; 6] = [131, 132, 133, 135, 136, 143];

/// nftables' data type ids (nftables `include/datatype.h`): the kernel only
/// stores them, `nft list` uses them to print the elements.
const TYPE_INET_PROTOCOL: u32 = 12;
const TYPE_ICMP6_TYPE: u32 = 29;

/// How long after an admitted address expired `decision` still names the
/// entry it was admitted for: records are read a little after the fact.
const DECISION_GRACE: Duration = Duration::from_secs(60);
/// How often admissions past their grace are forgotten.
const PURGE_EVERY: Duration = Duration::from_secs(10);

/// A socket's send buffer must hold a whole batch (netlink(7): a datagram
/// larger than the buffer is EMSGSIZE); batches above this ask for more.
const DEFAULT_SEND_BUFFER: usize = 128 << 10;
const RECEIVE_BUFFER: usize = 1 << 20;

/// How the table logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressOptions {
    /// The NFLOG group (inside the world's netns) the log statements use:
    /// what an [`crate::nflog::NflogReader`] binds.
    pub log_group: u16,
    /// Refused before any allow entry but one within them.
    pub protected: Protected,
}

#[derive(Debug, thiserror::Error)]
pub enum EgressError {
    #[error("cannot open a netfilter socket in the world's network namespace")]
    Socket(#[source] io::Error),
    #[error("network entry {entry:?}: ICMP takes no ports")]
    IcmpWithPorts { entry: String },
    #[error("cannot send the egress batch ({bytes} bytes) to nf_tables")]
    Send {
        bytes: usize,
        #[source]
        source: io::Error,
    },
    #[error("nf_tables refused the egress table's {what}")]
    Refused {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("nf_tables did not acknowledge the egress batch ending with {what}{}",
        if *.replies_lost { " (replies were lost: ENOBUFS)" } else { "" })]
    Unacknowledged { what: String, replies_lost: bool },
    #[error("cannot read nf_tables' replies")]
    Receive(#[source] io::Error),
    #[error("network entry {entry:?} is not in the world's policy")]
    UnknownEntry { entry: String },
    #[error("network entry {entry:?} names networks, not a domain: nothing to admit")]
    NotAName { entry: String },
}

/// What decided a logged packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub rule: DecidingRule,
}

/// The rule behind a [`Decision`]; its `Display` is what records show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecidingRule {
    /// An allow or deny entry, as written.
    Entry(String),
    /// One of these name entries: the address was admitted for one of them
    /// so long ago that which one is forgotten.
    OneOf(Vec<String>),
    /// The policy's `default`.
    Default,
    /// DNS to anything but the world's own resolver.
    Dns,
    /// The `egress_bytes` quota is spent.
    Quota,
    /// A protected network (see [`crate::protected`]) no allow entry names.
    Protected(String),
}

impl fmt::Display for DecidingRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecidingRule::Entry(text) => f.write_str(text),
            DecidingRule::OneOf(texts) => write!(f, "one of {}", texts.join(", ")),
            DecidingRule::Default => f.write_str("default"),
            DecidingRule::Dns => f.write_str("dns: only the world's resolver"),
            DecidingRule::Quota => f.write_str("egress quota"),
            DecidingRule::Protected(net) => write!(f, "protected: {net}"),
        }
    }
}

/// What the table's deciding rules have counted. Established connections
/// are accepted before these rules, so for TCP this counts connection
/// attempts (their first packet), for UDP each packet of a flow not yet
/// answered.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EgressCounters {
    /// By log prefix, in rule order; a spec's rules (both families, written
    /// networks and admitted names) summed.
    pub rules: Vec<RuleCounter>,
    /// Bytes the `egress_bytes` quota has counted (`None` without one).
    pub quota_used: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCounter {
    /// The log prefix: `a<N>`, `d<N>`, `dns`, `dflt` or `q`.
    pub prefix: String,
    pub verdict: Verdict,
    /// The spec's entries as written (none for the rules of no entry).
    pub entries: Vec<String>,
    pub packets: u64,
    pub bytes: u64,
}

/// A world's installed egress table.
///
/// Dropping it leaves the table in place (it dies with the namespace);
/// [`EgressTable::remove`] deletes it.
#[derive(Debug)]
pub struct EgressTable {
    netns: NetNs,
    options: EgressOptions,
    plan: Plan,
    state: Mutex<State>,
}

/// What `admit` changes, and the socket every batch goes through (one
/// batch at a time: its replies are read before the next is sent).
#[derive(Debug)]
struct State {
    socket: NetfilterSocket,
    /// By address: the name entries it was admitted for, until when.
    admissions: HashMap<IpAddr, Vec<Admission>>,
    next_purge: Instant,
}

#[derive(Debug, Clone)]
struct Admission {
    entry: Entry,
    expires: Instant,
}

impl EgressTable {
    /// Compiles `policy` and installs it as `table inet substrate` in
    /// `netns`, replacing any table of that name in one transaction.
    pub fn install(
        netns: &NetNs,
        policy: &NetworkPolicy,
        options: EgressOptions,
    ) -> Result<EgressTable, EgressError> {
        let table = EgressTable::open(netns, policy, options)?;
        // Into a namespace without one (a new world's), the table is only
        // added: deleting one in the same batch would leave the kernel
        // work to defer, and closing the socket waits for it (an RCU grace
        // period, ~10 ms, most of a world's setup).
        let replace = table.is_installed()?;
        let batch = table_batch(&table.plan, &table.options, &[], 0, replace);
        commit(&table.lock().socket, &batch)?;
        Ok(table)
    }

    /// A handle on the table [`EgressTable::install`] put in `netns` for
    /// `policy` (another process's, or another part of this one), without
    /// touching it: what a world's monitor admits resolved addresses and
    /// reads decisions through.
    pub fn open(
        netns: &NetNs,
        policy: &NetworkPolicy,
        options: EgressOptions,
    ) -> Result<EgressTable, EgressError> {
        let plan = Plan::compile(policy, &options.protected)?;
        let netns = netns.try_clone().map_err(EgressError::Socket)?;
        let socket = netns
            .run(|| NetfilterSocket::open(false))
            .map_err(EgressError::Socket)?;
        // Best effort, as the reader's: errors of a big failed batch must
        // not be dropped for want of room.
        if setsockopt(&socket.fd, sockopt::RcvBufForce, &RECEIVE_BUFFER).is_err() {
            let _ = setsockopt(&socket.fd, sockopt::RcvBuf, &RECEIVE_BUFFER);
        }
        Ok(EgressTable {
            netns,
            options,
            plan,
            state: Mutex::new(State {
                socket,
                admissions: HashMap::new(),
                next_purge: Instant::now() + PURGE_EVERY,
            }),
        })
    }

    /// Replaces the table with one built from `policy`, in one transaction:
    /// no packet meets a half-built table or none. Addresses admitted for
    /// name entries the new policy still has stay admitted for what is
    /// left of their time.
    pub fn replace(&mut self, policy: &NetworkPolicy) -> Result<(), EgressError> {
        let plan = Plan::compile(policy, &self.options.protected)?;
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        // The new quota starts from what the old one counted (the kernel
        // refuses a start above the quota): replacing the policy must not
        // give the world its bytes back. What passes between this read and
        // the commit is not carried.
        let quota_used = match (self.plan.egress_bytes, plan.egress_bytes) {
            (Some(_), Some(limit)) => dump_rules(&state.socket)?
                .iter()
                .find_map(|r| r.quota_used)
                .map_or(0, |used| used.min(limit)),
            _ => 0,
        };
        let now = Instant::now();
        let readmit: Vec<Readmission> = state
            .admissions
            .iter()
            .flat_map(|(addr, admissions)| admissions.iter().map(move |a| (*addr, a)))
            .filter(|(_, a)| a.expires > now && plan.has_entry(&a.entry))
            .map(|(addr, a)| Readmission {
                entry: &a.entry,
                addr,
                timeout_ms: timeout_ms(a.expires - now),
            })
            .collect();
        let batch = table_batch(&plan, &self.options, &readmit, quota_used, true);
        commit(&state.socket, &batch)?;
        state.admissions.retain(|_, admissions| {
            admissions.retain(|a| plan.has_entry(&a.entry));
            !admissions.is_empty()
        });
        self.plan = plan;
        Ok(())
    }

    /// Admits `addr`, which the name in `entry` resolved to, for `ttl`:
    /// into the timeout set of every spec `entry` belongs to. An address
    /// already admitted gets `ttl` from now, longer or shorter than before.
    /// A zero `ttl` admits for a millisecond (the kernel reads a zero
    /// timeout as "for ever").
    pub fn admit(&self, entry: &Entry, addr: IpAddr, ttl: Duration) -> Result<(), EgressError> {
        if !matches!(entry.target, Target::Name(_)) {
            return Err(EgressError::NotAName {
                entry: entry.text().to_owned(),
            });
        }
        let groups: Vec<&Group> = self
            .plan
            .groups
            .iter()
            .filter(|g| g.entries.contains(entry))
            .collect();
        if groups.is_empty() {
            return Err(EgressError::UnknownEntry {
                entry: entry.text().to_owned(),
            });
        }
        // An IPv4-mapped IPv6 answer leaves as IPv4 from a dual-stack socket.
        let addr = addr.to_canonical();
        let timeout = timeout_ms(ttl);
        let batch = admit_batch(&groups, addr, timeout);
        let mut state = self.lock();
        commit(&state.socket, &batch)?;
        let now = Instant::now();
        let expires = now + Duration::from_millis(timeout);
        let admissions = state.admissions.entry(addr).or_default();
        match admissions.iter_mut().find(|a| &a.entry == entry) {
            Some(admission) => admission.expires = expires,
            None => admissions.push(Admission {
                entry: entry.clone(),
                expires,
            }),
        }
        if now >= state.next_purge {
            state.admissions.retain(|_, admissions| {
                admissions.retain(|a| a.expires + DECISION_GRACE > now);
                !admissions.is_empty()
            });
            state.next_purge = now + PURGE_EVERY;
        }
        Ok(())
    }

    /// What decided a packet this table logged: `None` for a prefix the
    /// table does not use. Read against the policy installed now: a record
    /// logged before a [`EgressTable::replace`] may be named after the new
    /// policy's entries.
    pub fn decision(&self, packet: &LoggedPacket) -> Option<Decision> {
        let (verdict, rule) = match packet.prefix.as_str() {
            PREFIX_QUOTA => (Verdict::Deny, DecidingRule::Quota),
            PREFIX_DNS => (Verdict::Deny, DecidingRule::Dns),
            PREFIX_DEFAULT => (self.plan.default, DecidingRule::Default),
            PREFIX_PROTECTED => (
                Verdict::Deny,
                DecidingRule::Protected(
                    self.options
                        .protected
                        .containing(packet.destination)
                        .map_or_else(|| packet.destination.to_string(), |net| net.to_string()),
                ),
            ),
            prefix => {
                let group = self.plan.groups.iter().find(|g| g.prefix == prefix)?;
                (
                    group.verdict,
                    self.deciding_entry(group, packet.destination),
                )
            }
        };
        Some(Decision { verdict, rule })
    }

    /// Deletes the table (nothing if it is already gone).
    pub fn remove(self) -> Result<(), EgressError> {
        let mut batch = BatchBuffer::new();
        let table = Table::new(TABLE_NAME, ProtoFamily::Inet);
        // Adding first makes the deletion succeed whether or not it exists.
        batch.push(&table, MsgType::Add, "table (added to be deleted)");
        batch.push(&table, MsgType::Del, "table (deleted)");
        let state = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        commit(&state.socket, &batch.finish())
    }

    /// What the rules counted so far (reset by `replace`, but for the
    /// quota's bytes).
    pub fn counters(&self) -> Result<EgressCounters, EgressError> {
        let dumped = dump_rules(&self.lock().socket)?;
        let mut rules: Vec<RuleCounter> = Vec::new();
        let mut quota_used = None;
        let mut add = |prefix: &str, verdict: Verdict, entries: Vec<String>| {
            let (mut packets, mut bytes) = (0, 0);
            for rule in dumped
                .iter()
                .filter(|r| r.prefix.as_deref() == Some(prefix))
            {
                packets += rule.packets;
                bytes += rule.bytes;
            }
            rules.push(RuleCounter {
                prefix: prefix.to_owned(),
                verdict,
                entries,
                packets,
                bytes,
            });
        };
        if self.plan.egress_bytes.is_some() {
            add(PREFIX_QUOTA, Verdict::Deny, Vec::new());
            quota_used = dumped.iter().find_map(|r| r.quota_used);
        }
        add(PREFIX_DNS, Verdict::Deny, Vec::new());
        for group in &self.plan.groups {
            let texts = group.entries.iter().map(|e| e.text().to_owned()).collect();
            add(&group.prefix, group.verdict, texts);
        }
        add(PREFIX_DEFAULT, self.plan.default, Vec::new());
        Ok(EgressCounters { rules, quota_used })
    }

    /// Whether the table is in its namespace now (a pod's containers share
    /// the namespace its sandbox's world governs).
    pub fn is_installed(&self) -> Result<bool, EgressError> {
        // A dump filtered on a table that does not exist is empty (or
        // ENOENT); an installed one always has rules.
        match dump_rules(&self.lock().socket) {
            Ok(rules) => Ok(!rules.is_empty()),
            Err(EgressError::Refused { source, .. })
                if source.raw_os_error() == Some(libc::ENOENT) =>
            {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// How the table was built.
    pub fn options(&self) -> &EgressOptions {
        &self.options
    }

    /// The namespace the table is in.
    pub fn netns(&self) -> &NetNs {
        &self.netns
    }

    /// The entry of `group` that covers `destination`, the way the rules
    /// look: its written networks first, then the addresses admitted.
    fn deciding_entry(&self, group: &Group, destination: IpAddr) -> DecidingRule {
        let destination = destination.to_canonical();
        if let Some(entry) = group.written_entry(destination) {
            return DecidingRule::Entry(entry.text().to_owned());
        }
        let now = Instant::now();
        let state = self.lock();
        let admitted = state
            .admissions
            .get(&destination)
            .into_iter()
            .flatten()
            .filter(|a| a.expires + DECISION_GRACE > now && group.entries.contains(&a.entry))
            .max_by_key(|a| a.expires);
        match admitted {
            Some(admission) => DecidingRule::Entry(admission.entry.text().to_owned()),
            None => DecidingRule::OneOf(
                group
                    .entries
                    .iter()
                    .filter(|e| matches!(e.target, Target::Name(_)))
                    .map(|e| e.text().to_owned())
                    .collect(),
            ),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the socket and the map
        // usable: every batch drains its replies before returning.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A kernel element timeout in milliseconds: at least 1, since 0 means
/// "no timeout", and at most the largest DNS TTL (2^31 - 1 s, RFC 2181
/// section 8), far below what the kernel refuses as out of range.
fn timeout_ms(ttl: Duration) -> u64 {
    const MAX_TTL_MS: u64 = (i32::MAX as u64) * 1000;
    u64::try_from(ttl.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_TTL_MS)
}

/// The policy compiled into specs, in rule order.
#[derive(Debug, Clone)]
struct Plan {
    default: Verdict,
    egress_bytes: Option<u64>,
    /// Deny specs first (deny wins), then allow specs.
    groups: Vec<Group>,
}

/// The entries of one list sharing a (protocol, ports) spec.
#[derive(Debug, Clone)]
struct Group {
    verdict: Verdict,
    /// `d<N>` or `a<N>`: the log prefix, and the sets' names.
    prefix: String,
    protocol: Option<Protocol>,
    ports: Option<PortRange>,
    /// As written, in order.
    entries: Vec<Entry>,
    /// The written networks, merged: disjoint, sorted, not adjacent.
    v4: Vec<(u128, u128)>,
    v6: Vec<(u128, u128)>,
    /// Whether any entry is a name (then both families get a timeout set).
    names: bool,
    /// Allow entries within a protected net: their rules come before the
    /// protected nets' refusal, the other allow rules after it.
    within_protected: bool,
}

impl Plan {
    fn compile(policy: &NetworkPolicy, protected: &Protected) -> Result<Plan, EgressError> {
        let mut groups = Vec::new();
        for (verdict, entries, letter) in [
            (Verdict::Deny, &policy.deny, 'd'),
            (Verdict::Allow, &policy.allow, 'a'),
        ] {
            let first = groups.len();
            for entry in entries {
                if entry.protocol == Some(Protocol::Icmp) && entry.ports.is_some() {
                    return Err(EgressError::IcmpWithPorts {
                        entry: entry.text().to_owned(),
                    });
                }
                let within_protected = verdict == Verdict::Allow
                    && matches!(&entry.target, Target::Net(net) if protected.names_explicitly(net));
                let existing = groups[first..].iter().position(|g: &Group| {
                    g.protocol == entry.protocol
                        && g.ports == entry.ports
                        && g.within_protected == within_protected
                });
                let index = match existing {
                    Some(index) => first + index,
                    None => {
                        groups.push(Group {
                            verdict,
                            prefix: format!("{letter}{}", groups.len() - first),
                            protocol: entry.protocol,
                            ports: entry.ports,
                            entries: Vec::new(),
                            v4: Vec::new(),
                            v6: Vec::new(),
                            names: false,
                            within_protected,
                        });
                        groups.len() - 1
                    }
                };
                let group = &mut groups[index];
                group.entries.push(entry.clone());
                match &entry.target {
                    Target::Any => {
                        group.v4.push((0, Family::V4.max()));
                        group.v6.push((0, Family::V6.max()));
                    }
                    Target::Net(ipnet::IpNet::V4(net)) => group.v4.push((
                        u128::from(u32::from(net.network())),
                        u128::from(u32::from(net.broadcast())),
                    )),
                    Target::Net(ipnet::IpNet::V6(net)) => group
                        .v6
                        .push((u128::from(net.network()), u128::from(net.broadcast()))),
                    Target::Name(_) => group.names = true,
                }
            }
        }
        for group in &mut groups {
            group.v4 = merge(std::mem::take(&mut group.v4));
            group.v6 = merge(std::mem::take(&mut group.v6));
        }
        Ok(Plan {
            default: policy.default,
            egress_bytes: policy.egress_bytes,
            groups,
        })
    }

    fn has_entry(&self, entry: &Entry) -> bool {
        self.groups.iter().any(|g| g.entries.contains(entry))
    }
}

impl Group {
    /// The first entry as written whose networks cover `destination`.
    fn written_entry(&self, destination: IpAddr) -> Option<&Entry> {
        self.entries.iter().find(|entry| match &entry.target {
            Target::Any => true,
            Target::Net(net) => net.contains(&destination),
            Target::Name(_) => false,
        })
    }

    fn ranges(&self, family: Family) -> &[(u128, u128)] {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    fn static_set(&self, family: Family) -> CString {
        set_name(format!("{}_{}", self.prefix, family.suffix()))
    }

    fn names_set(&self, family: Family) -> CString {
        set_name(format!("{}_{}_names", self.prefix, family.suffix()))
    }

    /// `tcp dport 443`-like, for rule comments.
    fn describe(&self) -> String {
        let verdict = match self.verdict {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
        };
        let protocol = match self.protocol {
            Some(Protocol::Tcp) => "tcp",
            Some(Protocol::Udp) => "udp",
            Some(Protocol::Icmp) => "icmp",
            None if self.ports.is_some() => "tcp,udp",
            None => "any protocol",
        };
        let ports = match self.ports {
            Some(PortRange { first, last }) if first == last => format!(" dport {first}"),
            Some(PortRange { first, last }) => format!(" dport {first}-{last}"),
            None => String::new(),
        };
        format!("{}: {verdict} {protocol}{ports}", self.prefix)
    }
}

fn set_name(name: String) -> CString {
    // Made of a prefix, digits and letters: never a NUL.
    CString::new(name).unwrap_or_default()
}

/// Sorted, overlapping and adjacent ranges joined: the kernel refuses
/// overlapping intervals, and an interval ending where the next starts
/// would need an end and a start element with one key.
fn merge(mut ranges: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    ranges.sort_unstable();
    let mut merged: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match merged.last_mut() {
            Some(previous) if first <= previous.1.saturating_add(1) => {
                previous.1 = previous.1.max(last);
            }
            _ => merged.push((first, last)),
        }
    }
    merged
}

impl Family {
    const BOTH: [Family; 2] = [Family::V4, Family::V6];

    fn max(self) -> u128 {
        match self {
            Family::V4 => u128::from(u32::MAX),
            Family::V6 => u128::MAX,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Family::V4 => "v4",
            Family::V6 => "v6",
        }
    }

    fn nfproto(self) -> u8 {
        match self {
            Family::V4 => libc::NFPROTO_IPV4 as u8,
            Family::V6 => libc::NFPROTO_IPV6 as u8,
        }
    }

    fn icmp(self) -> u8 {
        match self {
            Family::V4 => IPPROTO_ICMP,
            Family::V6 => IPPROTO_ICMPV6,
        }
    }

    fn daddr(self) -> Payload {
        Payload::Network(match self {
            Family::V4 => NetworkHeaderField::Ipv4(Ipv4HeaderField::Daddr),
            Family::V6 => NetworkHeaderField::Ipv6(Ipv6HeaderField::Daddr),
        })
    }

    /// An address of this family as a set key (network byte order).
    fn key(self, value: u128) -> Vec<u8> {
        match self {
            Family::V4 => (value as u32).to_be_bytes().to_vec(),
            Family::V6 => value.to_be_bytes().to_vec(),
        }
    }

    fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

fn addr_value(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// An address admitted before a `replace`, carried into the new table.
struct Readmission<'a> {
    entry: &'a Entry,
    addr: IpAddr,
    timeout_ms: u64,
}

/// The batch that (re)creates the whole table: add it (so the delete
/// cannot fail), delete it, and build it again; nf_tables commits all of it
/// or none.
fn table_batch(
    plan: &Plan,
    options: &EgressOptions,
    readmit: &[Readmission<'_>],
    quota_used: u64,
    replace: bool,
) -> Batch {
    let mut batch = BatchBuffer::new();
    let table = Table::new(TABLE_NAME, ProtoFamily::Inet);
    if replace {
        batch.push(&table, MsgType::Add, "table (added to be replaced)");
        batch.push(&table, MsgType::Del, "table (the previous one, deleted)");
    }
    batch.push(&table, MsgType::Add, "table");
    let mut set_ids = 1u32..;
    let mut next_id = || set_ids.next().unwrap_or_default();

    let tcp_udp = new_set::<InetProtocol>(&table, TCP_UDP_SET, next_id(), libc::NFT_SET_CONSTANT);
    for protocol in [IPPROTO_TCP, IPPROTO_UDP] {
        add_element(&tcp_udp, &[protocol], ElementKind::Key, None);
    }
    tcp_udp.push_to(&mut batch);
    let ndp = new_set::<Icmpv6Type>(&table, NDP_SET, next_id(), libc::NFT_SET_CONSTANT);
    for kind in NDP_TYPES {
        add_element(&ndp, &[kind], ElementKind::Key, None);
    }
    ndp.push_to(&mut batch);

    let refuse = Chain::new(REFUSE_CHAIN, &table);
    batch.push(&refuse, MsgType::Add, "chain refuse");
    let mut rule = Rule::new(&refuse);
    rule.add_expr(&Meta::L4Proto);
    rule.add_expr(&Cmp::new(CmpOp::Eq, IPPROTO_TCP));
    rule.add_expr(&NftVerdict::Reject(RejectionType::TcpRst));
    batch.push(&rule, MsgType::Add, "rule refuse: tcp reset");
    let mut rule = Rule::new(&refuse);
    // In an inet table this is NFT_REJECT_ICMPX_UNREACH: ICMP or ICMPv6.
    rule.add_expr(&NftVerdict::Reject(RejectionType::Icmp(
        IcmpCode::AdminProhibited,
    )));
    batch.push(&rule, MsgType::Add, "rule refuse: icmpx admin-prohibited");

    let mut output = Chain::new(OUTPUT_CHAIN, &table);
    output.set_hook(Hook::Out, 0);
    output.set_type(ChainType::Filter);
    output.set_policy(Policy::Accept);
    batch.push(&output, MsgType::Add, "chain output");
    let refuse = || NftVerdict::Goto {
        chain: REFUSE_CHAIN.to_owned(),
    };
    let log = |prefix: &str| Log {
        group: options.log_group,
        prefix: CString::new(prefix).unwrap_or_default(),
    };

    let mut rule = Rule::new(&output);
    let mut lo = [0u8; libc::IFNAMSIZ];
    lo[..2].copy_from_slice(b"lo");
    rule.add_expr(&Meta::OifName);
    rule.add_expr(&Cmp::new(CmpOp::Eq, &lo[..]));
    rule.add_expr(&NftVerdict::Accept);
    batch.push(&rule, MsgType::Add, "rule: oifname lo accept");

    if let Some(bytes) = plan.egress_bytes {
        let mut rule = Rule::new(&output);
        rule.add_expr(&QuotaOver {
            bytes,
            used: quota_used,
        });
        rule.add_expr(&Counter);
        rule.add_expr(&log(PREFIX_QUOTA));
        rule.add_expr(&refuse());
        batch.push(
            &rule,
            MsgType::Add,
            format!("rule: quota over {bytes} bytes"),
        );
    }

    let mut rule = Rule::new(&output);
    rule.add_expr(&Meta::NfProto);
    rule.add_expr(&Cmp::new(CmpOp::Eq, Family::V6.nfproto()));
    rule.add_expr(&Meta::L4Proto);
    rule.add_expr(&Cmp::new(CmpOp::Eq, IPPROTO_ICMPV6));
    rule.add_expr(&Payload::Transport(TransportHeaderField::Icmpv6(
        Icmpv6HeaderField::Type,
    )));
    rule.add_expr(&Lookup::new(&ndp));
    rule.add_expr(&NftVerdict::Accept);
    batch.push(&rule, MsgType::Add, "rule: neighbour discovery accept");

    let mut rule = Rule::new(&output);
    let accepted_states = (States::ESTABLISHED | States::RELATED).bits();
    rule.add_expr(&Conntrack::State);
    rule.add_expr(&Bitwise::new(accepted_states, 0u32));
    rule.add_expr(&Cmp::new(CmpOp::Neq, 0u32));
    rule.add_expr(&NftVerdict::Accept);
    batch.push(
        &rule,
        MsgType::Add,
        "rule: ct state established,related accept",
    );

    let mut rule = Rule::new(&output);
    rule.add_expr(&Meta::L4Proto);
    rule.add_expr(&Lookup::new(&tcp_udp));
    rule.add_expr(&dport());
    rule.add_expr(&Cmp::new(CmpOp::Eq, &DNS_PORT.to_be_bytes()[..]));
    rule.add_expr(&Counter);
    rule.add_expr(&log(PREFIX_DNS));
    rule.add_expr(&refuse());
    batch.push(&rule, MsgType::Add, "rule: dns refused");

    // Deny wins; then the allow entries that name protected addresses,
    // then the refusal of every other protected address, then the rest.
    let deny = plan.groups.iter().filter(|g| g.verdict == Verdict::Deny);
    let (within, beyond): (Vec<&Group>, Vec<&Group>) = plan
        .groups
        .iter()
        .filter(|g| g.verdict == Verdict::Allow)
        .partition(|g| g.within_protected);
    let steps = deny
        .map(Some)
        .chain(within.into_iter().map(Some))
        .chain([None])
        .chain(beyond.into_iter().map(Some));
    for step in steps {
        let Some(group) = step else {
            for family in Family::BOTH {
                let ranges: Vec<(u128, u128)> = merge(
                    options
                        .protected
                        .nets()
                        .iter()
                        .filter_map(|net| match (net, family) {
                            (ipnet::IpNet::V4(net), Family::V4) => Some((
                                u128::from(u32::from(net.network())),
                                u128::from(u32::from(net.broadcast())),
                            )),
                            (ipnet::IpNet::V6(net), Family::V6) => {
                                Some((u128::from(net.network()), u128::from(net.broadcast())))
                            }
                            _ => None,
                        })
                        .collect(),
                );
                let name = set_name(format!("protected_{}", family.suffix()));
                let set = new_family_set(&table, family, &name, next_id(), libc::NFT_SET_INTERVAL);
                add_intervals(&set, family, &ranges);
                set.push_to(&mut batch);
                let mut rule = Rule::new(&output);
                rule.add_expr(&Meta::NfProto);
                rule.add_expr(&Cmp::new(CmpOp::Eq, family.nfproto()));
                rule.add_expr(&family.daddr());
                rule.add_expr(&set.lookup());
                rule.add_expr(&Counter);
                rule.add_expr(&log(PREFIX_PROTECTED));
                rule.add_expr(&refuse());
                batch.push(
                    &rule,
                    MsgType::Add,
                    format!("rule: protected ({})", family.suffix()),
                );
            }
            continue;
        };
        for family in Family::BOTH {
            let ranges = group.ranges(family);
            let mut sets = Vec::new();
            if !ranges.is_empty() {
                let name = group.static_set(family);
                let set = new_family_set(&table, family, &name, next_id(), libc::NFT_SET_INTERVAL);
                add_intervals(&set, family, ranges);
                sets.push(set);
            }
            if group.names {
                let name = group.names_set(family);
                let set = new_family_set(&table, family, &name, next_id(), libc::NFT_SET_TIMEOUT);
                let mut timeouts: HashMap<IpAddr, u64> = HashMap::new();
                for readmission in readmit {
                    if Family::of(readmission.addr) == family
                        && group.entries.contains(readmission.entry)
                    {
                        let timeout = timeouts.entry(readmission.addr).or_default();
                        *timeout = (*timeout).max(readmission.timeout_ms);
                    }
                }
                for (addr, timeout) in timeouts {
                    add_element(
                        &set,
                        &family.key(addr_value(addr)),
                        ElementKind::Key,
                        Some(timeout),
                    );
                }
                sets.push(set);
            }
            for set in &sets {
                set.push_to(&mut batch);
                let mut rule = Rule::new(&output);
                let comment = CString::new(group.describe()).unwrap_or_default();
                // Too long a comment is only a missing comment.
                let _ = rule.set_comment(&comment);
                rule.add_expr(&Meta::NfProto);
                rule.add_expr(&Cmp::new(CmpOp::Eq, family.nfproto()));
                match (group.protocol, group.ports) {
                    (Some(protocol), _) => {
                        let number = match protocol {
                            Protocol::Tcp => IPPROTO_TCP,
                            Protocol::Udp => IPPROTO_UDP,
                            Protocol::Icmp => family.icmp(),
                        };
                        rule.add_expr(&Meta::L4Proto);
                        rule.add_expr(&Cmp::new(CmpOp::Eq, number));
                    }
                    // Ports without a protocol: TCP and UDP.
                    (None, Some(_)) => {
                        rule.add_expr(&Meta::L4Proto);
                        rule.add_expr(&Lookup::new(&tcp_udp));
                    }
                    (None, None) => {}
                }
                if let Some(PortRange { first, last }) = group.ports {
                    rule.add_expr(&dport());
                    // Big-endian bytes compare (memcmp) as the numbers do.
                    if first == last {
                        rule.add_expr(&Cmp::new(CmpOp::Eq, &first.to_be_bytes()[..]));
                    } else {
                        rule.add_expr(&Cmp::new(CmpOp::Gte, &first.to_be_bytes()[..]));
                        rule.add_expr(&Cmp::new(CmpOp::Lte, &last.to_be_bytes()[..]));
                    }
                }
                rule.add_expr(&family.daddr());
                rule.add_expr(&set.lookup());
                rule.add_expr(&Counter);
                rule.add_expr(&log(&group.prefix));
                match group.verdict {
                    Verdict::Allow => rule.add_expr(&NftVerdict::Accept),
                    Verdict::Deny => rule.add_expr(&refuse()),
                }
                let what = format!(
                    "rule {} ({}, set {})",
                    group.prefix,
                    family.suffix(),
                    set.get_name().to_string_lossy()
                );
                batch.push(&rule, MsgType::Add, what);
            }
        }
    }

    let mut rule = Rule::new(&output);
    rule.add_expr(&Counter);
    rule.add_expr(&log(PREFIX_DEFAULT));
    match plan.default {
        Verdict::Allow => rule.add_expr(&NftVerdict::Accept),
        Verdict::Deny => rule.add_expr(&refuse()),
    }
    batch.push(&rule, MsgType::Add, "rule: default");
    batch.finish()
}

/// The batch that admits `addr` into the timeout sets of `groups`, with a
/// fresh timeout whether or not it is there already: add it without
/// NLM_F_EXCL (a no-op when it exists), delete it (it exists now), add it
/// with the timeout. One transaction: no packet sees it missing.
fn admit_batch(groups: &[&Group], addr: IpAddr, timeout_ms: u64) -> Batch {
    let mut batch = BatchBuffer::new();
    let table = Table::new(TABLE_NAME, ProtoFamily::Inet);
    let family = Family::of(addr);
    let key = family.key(addr_value(addr));
    for group in groups {
        let name = group.names_set(family);
        let what = format!("element {addr} of set {}", name.to_string_lossy());
        for (kind, timeout, clear) in [
            (MsgType::Add, None, libc::NLM_F_EXCL as u16),
            (MsgType::Del, None, 0),
            (MsgType::Add, Some(timeout_ms), 0),
        ] {
            // Only the set's name and table go into an element message.
            let set = new_family_set(&table, family, &name, 0, 0);
            add_element(&set, &key, ElementKind::Key, timeout);
            set.push_elements(&mut batch, kind, &what, clear);
        }
    }
    batch.finish()
}

/// `th dport`: bytes 2-3 of the transport header, where TCP, UDP, UDP-Lite
/// and SCTP keep the destination port.
fn dport() -> Payload {
    Payload::Transport(TransportHeaderField::Tcp(TcpHeaderField::Dport))
}

/// Key types of the constant sets (the elements are added as raw bytes).
struct InetProtocol;
impl SetKey for InetProtocol {
    const TYPE: u32 = TYPE_INET_PROTOCOL;
    const LEN: u32 = 1;
    fn data(&self) -> Box<[u8]> {
        Box::new([])
    }
}

struct Icmpv6Type;
impl SetKey for Icmpv6Type {
    const TYPE: u32 = TYPE_ICMP6_TYPE;
    const LEN: u32 = 1;
    fn data(&self) -> Box<[u8]> {
        Box::new([])
    }
}

/// An address set: its key type decides the key's type id and length.
enum FamilySet<'a> {
    V4(Set<'a, Ipv4Addr>),
    V6(Set<'a, Ipv6Addr>),
}

fn new_family_set<'a>(
    table: &'a Table,
    family: Family,
    name: &CStr,
    id: u32,
    flags: i32,
) -> FamilySet<'a> {
    match family {
        Family::V4 => FamilySet::V4(new_set(table, name, id, flags)),
        Family::V6 => FamilySet::V6(new_set(table, name, id, flags)),
    }
}

fn new_set<'a, K: SetKey>(table: &'a Table, name: &CStr, id: u32, flags: i32) -> Set<'a, K> {
    let set = Set::new_named(name, id, table, ProtoFamily::Inet);
    if flags != 0 {
        // SAFETY: the set is a live nftnl_set owned by `set`; a u32
        // attribute is copied in.
        unsafe {
            sys::nftnl_set_set_u32(
                set.as_ptr().as_ptr(),
                sys::NFTNL_SET_FLAGS as u16,
                flags as u32,
            )
        };
    }
    set
}

/// Something holding an `nftnl_set`.
trait RawSet {
    fn raw(&self) -> NonNull<sys::nftnl_set>;
    fn push_to(&self, batch: &mut BatchBuffer);
}

impl<K> RawSet for Set<'_, K> {
    fn raw(&self) -> NonNull<sys::nftnl_set> {
        self.as_ptr()
    }
    fn push_to(&self, batch: &mut BatchBuffer) {
        let what = format!("set {}", self.get_name().to_string_lossy());
        batch.push(self, MsgType::Add, what.clone());
        for message in self.elems_iter() {
            batch.push(&message, MsgType::Add, format!("elements of {what}"));
        }
    }
}

impl RawSet for FamilySet<'_> {
    fn raw(&self) -> NonNull<sys::nftnl_set> {
        match self {
            FamilySet::V4(set) => set.as_ptr(),
            FamilySet::V6(set) => set.as_ptr(),
        }
    }
    fn push_to(&self, batch: &mut BatchBuffer) {
        match self {
            FamilySet::V4(set) => set.push_to(batch),
            FamilySet::V6(set) => set.push_to(batch),
        }
    }
}

impl FamilySet<'_> {
    fn get_name(&self) -> &CStr {
        match self {
            FamilySet::V4(set) => set.get_name(),
            FamilySet::V6(set) => set.get_name(),
        }
    }

    fn lookup(&self) -> Lookup {
        match self {
            FamilySet::V4(set) => Lookup::new(set),
            FamilySet::V6(set) => Lookup::new(set),
        }
    }

    /// Appends the element messages. nftnl's iterator advances only as
    /// each message is written: every message must be pushed as it comes.
    fn push_elements(&self, batch: &mut BatchBuffer, kind: MsgType, what: &str, clear: u16) {
        match self {
            FamilySet::V4(set) => {
                for message in set.elems_iter() {
                    batch.push_clearing(&message, kind, what, clear);
                }
            }
            FamilySet::V6(set) => {
                for message in set.elems_iter() {
                    batch.push_clearing(&message, kind, what, clear);
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum ElementKind {
    Key,
    /// The exclusive end of an interval (NFT_SET_ELEM_INTERVAL_END).
    IntervalEnd,
}

fn add_element(set: &impl RawSet, key: &[u8], kind: ElementKind, timeout_ms: Option<u64>) {
    // SAFETY: nftnl_set_elem_alloc returns a new element or NULL (checked);
    // nftnl_set_elem_set copies `key` (alive for the call, its length
    // passed with it); nftnl_set_elem_add hands the element to the live set
    // `set` owns, which frees it.
    unsafe {
        let Some(element) = NonNull::new(sys::nftnl_set_elem_alloc()) else {
            // As nftnl does: a failed allocation of a few bytes.
            std::process::abort();
        };
        let element = element.as_ptr();
        sys::nftnl_set_elem_set(
            element,
            sys::NFTNL_SET_ELEM_KEY as u16,
            key.as_ptr().cast(),
            key.len() as u32,
        );
        if let ElementKind::IntervalEnd = kind {
            sys::nftnl_set_elem_set_u32(
                element,
                sys::NFTNL_SET_ELEM_FLAGS as u16,
                libc::NFT_SET_ELEM_INTERVAL_END as u32,
            );
        }
        if let Some(timeout) = timeout_ms {
            sys::nftnl_set_elem_set_u64(element, sys::NFTNL_SET_ELEM_TIMEOUT as u16, timeout);
        }
        sys::nftnl_set_elem_add(set.raw().as_ptr(), element);
    }
}

/// The elements of an interval set, as nft writes them: each range's first
/// address, then the address after its last flagged as an interval end (none
/// when the range reaches the family's last address), and an end at 0 before
/// a first range that does not start there.
fn add_intervals(set: &impl RawSet, family: Family, ranges: &[(u128, u128)]) {
    if ranges.first().is_some_and(|&(first, _)| first != 0) {
        add_element(set, &family.key(0), ElementKind::IntervalEnd, None);
    }
    for &(first, last) in ranges {
        add_element(set, &family.key(first), ElementKind::Key, None);
        if last < family.max() {
            add_element(set, &family.key(last + 1), ElementKind::IntervalEnd, None);
        }
    }
}

/// `log group G prefix P snaplen 128`: the packet's first bytes to
/// nfnetlink_log (nftnl 0.9 has no log expression).
struct Log {
    group: u16,
    prefix: CString,
}

impl Expression for Log {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let expr = alloc_expr(c"log");
        // SAFETY: `expr` is a live nftnl_expr of type log; the prefix is
        // copied (strdup) and the integers by value.
        unsafe {
            sys::nftnl_expr_set_str(
                expr.as_ptr(),
                sys::NFTNL_EXPR_LOG_PREFIX as u16,
                self.prefix.as_ptr(),
            );
            sys::nftnl_expr_set_u16(expr.as_ptr(), sys::NFTNL_EXPR_LOG_GROUP as u16, self.group);
            sys::nftnl_expr_set_u32(
                expr.as_ptr(),
                sys::NFTNL_EXPR_LOG_SNAPLEN as u16,
                nflog::COPY_RANGE,
            );
        }
        expr
    }
}

/// `quota over N bytes`: matches once more than N bytes went through it,
/// counting from `used` (nftnl 0.9 has no quota expression).
struct QuotaOver {
    bytes: u64,
    used: u64,
}

impl Expression for QuotaOver {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        let expr = alloc_expr(c"quota");
        // SAFETY: `expr` is a live nftnl_expr of type quota; integers are
        // copied by value.
        unsafe {
            sys::nftnl_expr_set_u64(
                expr.as_ptr(),
                sys::NFTNL_EXPR_QUOTA_BYTES as u16,
                self.bytes,
            );
            sys::nftnl_expr_set_u32(
                expr.as_ptr(),
                sys::NFTNL_EXPR_QUOTA_FLAGS as u16,
                libc::NFT_QUOTA_F_INV as u32,
            );
            if self.used > 0 {
                sys::nftnl_expr_set_u64(
                    expr.as_ptr(),
                    sys::NFTNL_EXPR_QUOTA_CONSUMED as u16,
                    self.used,
                );
            }
        }
        expr
    }
}

fn alloc_expr(name: &CStr) -> NonNull<sys::nftnl_expr> {
    // SAFETY: `name` is a NUL-terminated expression name; the result is
    // checked for NULL, and the rule it is added to frees it.
    let expr = unsafe { sys::nftnl_expr_alloc(name.as_ptr()) };
    // As nftnl does: a failed allocation of a few bytes.
    NonNull::new(expr).unwrap_or_else(|| std::process::abort())
}

/// A byte buffer whose usable part starts at an 8-byte boundary: libnftnl
/// and libmnl read and write `struct nlmsghdr` and `struct nlattr` fields in
/// place, and a `Vec<u8>` promises no alignment.
struct AlignedBuffer {
    bytes: Vec<u8>,
}

impl AlignedBuffer {
    fn new(len: usize) -> AlignedBuffer {
        AlignedBuffer {
            bytes: vec![0; len + 8],
        }
    }

    fn get(&self) -> &[u8] {
        let offset = self.bytes.as_ptr().align_offset(8);
        &self.bytes[offset..]
    }

    fn get_mut(&mut self) -> &mut [u8] {
        let offset = self.bytes.as_ptr().align_offset(8);
        &mut self.bytes[offset..]
    }
}

/// A batch being written: nftnl's objects serialise themselves into a
/// scratch buffer, from which each message is appended to one contiguous
/// datagram. nftnl's own `Batch` splits into pages sent as separate
/// datagrams, and nfnetlink aborts a batch whose end is not in the datagram
/// of its begin; it also asks for an ack per message, which a batch of
/// thousands would overflow the socket with.
pub(crate) struct BatchBuffer {
    bytes: Vec<u8>,
    scratch: AlignedBuffer,
    /// `what[i]`: the message with sequence number `i + 2` (1 is the begin).
    what: Vec<String>,
    /// Where the last content message starts: it gets the batch's ack.
    last: Option<usize>,
}

/// A finished batch.
pub(crate) struct Batch {
    bytes: Vec<u8>,
    what: Vec<String>,
}

const FIRST_SEQ: u32 = 2;
/// Byte offset of `nlmsg_flags` in `struct nlmsghdr`.
const FLAGS_OFFSET: usize = 6;

impl BatchBuffer {
    pub(crate) fn new() -> BatchBuffer {
        let mut batch = BatchBuffer {
            bytes: Vec::new(),
            scratch: AlignedBuffer::new(nftnl::nft_nlmsg_maxsize() as usize),
            what: Vec::new(),
            last: None,
        };
        // SAFETY: the scratch buffer is aligned and has nft_nlmsg_maxsize()
        // bytes; a batch begin message is 20.
        unsafe {
            sys::nftnl_batch_begin(batch.scratch.get_mut().as_mut_ptr().cast(), FIRST_SEQ - 1)
        };
        batch.append_scratch(0);
        batch
    }

    /// Appends `message`; it is acked only if it ends the batch (an error
    /// is reported whatever the flags).
    pub(crate) fn push(&mut self, message: &impl NlMsg, kind: MsgType, what: impl Into<String>) {
        self.push_clearing(message, kind, what, 0);
    }

    /// Appends `message` with `clear` taken from its netlink flags.
    fn push_clearing(
        &mut self,
        message: &impl NlMsg,
        kind: MsgType,
        what: impl Into<String>,
        clear: u16,
    ) {
        let seq = FIRST_SEQ + self.what.len() as u32;
        // SAFETY: the scratch buffer is aligned and has nft_nlmsg_maxsize()
        // bytes: the room NlMsg::write requires.
        unsafe { message.write(self.scratch.get_mut().as_mut_ptr().cast(), seq, kind) };
        self.last = Some(self.bytes.len());
        self.append_scratch(clear | libc::NLM_F_ACK as u16);
        self.what.push(what.into());
    }

    /// Copies the message written at the scratch buffer's start.
    fn append_scratch(&mut self, clear: u16) {
        let written = self.scratch.get();
        let len = u32::from_ne_bytes([written[0], written[1], written[2], written[3]]) as usize;
        // nftnl writes at most nft_nlmsg_maxsize() bytes and says how many.
        let len = len.clamp(16, written.len());
        let start = self.bytes.len();
        self.bytes.extend_from_slice(&written[..len]);
        self.bytes.resize((self.bytes.len() + 3) & !3, 0);
        let flags = &mut self.bytes[start + FLAGS_OFFSET..start + FLAGS_OFFSET + 2];
        let value = u16::from_ne_bytes([flags[0], flags[1]]) & !clear;
        flags.copy_from_slice(&value.to_ne_bytes());
    }

    pub(crate) fn finish(mut self) -> Batch {
        if let Some(last) = self.last {
            let flags = &mut self.bytes[last + FLAGS_OFFSET..last + FLAGS_OFFSET + 2];
            let value = u16::from_ne_bytes([flags[0], flags[1]]) | libc::NLM_F_ACK as u16;
            flags.copy_from_slice(&value.to_ne_bytes());
        }
        let seq = FIRST_SEQ + self.what.len() as u32;
        // SAFETY: as for the begin message.
        unsafe { sys::nftnl_batch_end(self.scratch.get_mut().as_mut_ptr().cast(), seq) };
        self.append_scratch(0);
        Batch {
            bytes: self.bytes,
            what: self.what,
        }
    }
}

impl Batch {
    fn what(&self, seq: u32) -> String {
        seq.checked_sub(FIRST_SEQ)
            .and_then(|i| self.what.get(i as usize))
            .cloned()
            .unwrap_or_else(|| format!("message {seq}"))
    }
}

/// Sends `batch` and reads every reply. nfnetlink processes a batch while
/// `send` runs and queues its replies before returning, so the replies are
/// all there once it has: read until none is left. Success is no error and
/// the last message's ack.
pub(crate) fn commit(socket: &NetfilterSocket, batch: &Batch) -> Result<(), EgressError> {
    if batch.what.is_empty() {
        return Ok(());
    }
    let bytes = batch.bytes.len();
    if bytes > DEFAULT_SEND_BUFFER {
        // The kernel doubles what is asked; ask for the batch with room.
        let size = bytes + 4096;
        if setsockopt(&socket.fd, sockopt::SndBufForce, &size).is_err() {
            let _ = setsockopt(&socket.fd, sockopt::SndBuf, &size);
        }
    }
    socket
        .send(&batch.bytes)
        .map_err(|source| EgressError::Send { bytes, source })?;
    let last_seq = FIRST_SEQ + batch.what.len() as u32 - 1;
    let mut buffer = vec![0u8; 1 << 16];
    let mut first_error: Option<(u32, i32)> = None;
    let mut acked = false;
    let mut replies_lost = false;
    loop {
        let len = match socket.recv(&mut buffer) {
            Ok(len) => len,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                replies_lost = true;
                continue;
            }
            Err(e) => return Err(EgressError::Receive(e)),
        };
        for message in nflog::messages(&buffer[..len]) {
            if message.kind != nflog::NLMSG_ERROR {
                continue;
            }
            match nflog::error_code(message.payload) {
                0 => acked |= message.seq == last_seq,
                // The lowest sequence number first: later messages often
                // fail only because an earlier one did.
                code => {
                    if first_error.is_none_or(|(seq, _)| message.seq < seq) {
                        first_error = Some((message.seq, code));
                    }
                }
            }
        }
    }
    if let Some((seq, code)) = first_error {
        return Err(EgressError::Refused {
            what: batch.what(seq),
            source: io::Error::from_raw_os_error(code),
        });
    }
    if !acked {
        return Err(EgressError::Unacknowledged {
            what: batch.what(last_seq),
            replies_lost,
        });
    }
    Ok(())
}

/// What one rule of the output chain logs and counted.
#[derive(Debug, Default)]
struct DumpedRule {
    prefix: Option<String>,
    packets: u64,
    bytes: u64,
    quota_used: Option<u64>,
}

/// The output chain's rules as the kernel has them (NFT_MSG_GETRULE dump).
fn dump_rules(socket: &NetfilterSocket) -> Result<Vec<DumpedRule>, EgressError> {
    const SEQ: u32 = 1;
    let new_rule = (libc::NFNL_SUBSYS_NFTABLES as u16) << 8 | libc::NFT_MSG_NEWRULE as u16;
    let mut request = AlignedBuffer::new(nftnl::nft_nlmsg_maxsize() as usize);
    {
        let rule = OwnedRule::new();
        // SAFETY: `rule` is a live nftnl_rule; the strings are copied in.
        unsafe {
            sys::nftnl_rule_set_u32(
                rule.0.as_ptr(),
                sys::NFTNL_RULE_FAMILY as u16,
                libc::NFPROTO_INET as u32,
            );
            sys::nftnl_rule_set_str(
                rule.0.as_ptr(),
                sys::NFTNL_RULE_TABLE as u16,
                TABLE_NAME.as_ptr(),
            );
            sys::nftnl_rule_set_str(
                rule.0.as_ptr(),
                sys::NFTNL_RULE_CHAIN as u16,
                OUTPUT_CHAIN.as_ptr(),
            );
        }
        // SAFETY: the request buffer is aligned and nft_nlmsg_maxsize()
        // long; a rule with a table and chain name fills a few dozen bytes.
        unsafe {
            let header = sys::nftnl_nlmsg_build_hdr(
                request.get_mut().as_mut_ptr().cast(),
                libc::NFT_MSG_GETRULE as u16,
                libc::NFPROTO_INET as u16,
                libc::NLM_F_DUMP as u16,
                SEQ,
            );
            sys::nftnl_rule_nlmsg_build_payload(header, rule.0.as_ptr());
        }
    }
    let written = request.get();
    let len = u32::from_ne_bytes([written[0], written[1], written[2], written[3]]) as usize;
    socket
        .send(&written[..len.clamp(16, written.len())])
        .map_err(|source| EgressError::Send { bytes: len, source })?;
    // Each recv runs the dump on (netlink_recvmsg calls the dump callback
    // again while the socket has room), so the next part is always queued
    // by the time it is asked for, up to NLMSG_DONE.
    let mut buffer = AlignedBuffer::new(1 << 16);
    let mut rules = Vec::new();
    loop {
        let len = socket
            .recv(buffer.get_mut())
            .map_err(EgressError::Receive)?;
        for message in nflog::messages(&buffer.get()[..len]) {
            match message.kind {
                nflog::NLMSG_DONE => return Ok(rules),
                nflog::NLMSG_ERROR => match nflog::error_code(message.payload) {
                    0 => {}
                    code => {
                        return Err(EgressError::Refused {
                            what: "rule listing".to_owned(),
                            source: io::Error::from_raw_os_error(code),
                        })
                    }
                },
                kind if kind == new_rule => rules.extend(parse_rule(message.bytes)),
                _ => {}
            }
        }
    }
}

/// An `nftnl_rule` this code owns.
struct OwnedRule(NonNull<sys::nftnl_rule>);

impl OwnedRule {
    fn new() -> OwnedRule {
        // SAFETY: allocates a new, empty rule (checked for NULL below).
        let rule = unsafe { sys::nftnl_rule_alloc() };
        // As nftnl does: a failed allocation of a few bytes.
        OwnedRule(NonNull::new(rule).unwrap_or_else(|| std::process::abort()))
    }
}

impl Drop for OwnedRule {
    fn drop(&mut self) {
        // SAFETY: the rule was allocated by nftnl_rule_alloc and is freed
        // once, here.
        unsafe { sys::nftnl_rule_free(self.0.as_ptr()) };
    }
}

/// The log prefix, counter and quota of a NEWRULE message.
fn parse_rule(message: &[u8]) -> Option<DumpedRule> {
    let rule = OwnedRule::new();
    // SAFETY: `message` is one whole netlink message (its length checked by
    // `messages`), 4-byte aligned (a netlink-aligned offset into an aligned
    // buffer); libnftnl checks the attributes against that length.
    if unsafe { sys::nftnl_rule_nlmsg_parse(message.as_ptr().cast(), rule.0.as_ptr()) } < 0 {
        return None;
    }
    // SAFETY: `rule` was parsed; the iterator is destroyed below, before it.
    let iter = NonNull::new(unsafe { sys::nftnl_expr_iter_create(rule.0.as_ptr()) })?;
    let mut dumped = DumpedRule::default();
    // SAFETY: `iter` is live; the expression it returns belongs to `rule`.
    while let Some(expr) = NonNull::new(unsafe { sys::nftnl_expr_iter_next(iter.as_ptr()) }) {
        let expr = expr.as_ptr();
        // SAFETY: `expr` is live while `rule` is; strings read are copied
        // before the next call, and a missing attribute reads as NULL or 0.
        unsafe {
            let name = sys::nftnl_expr_get_str(expr, sys::NFTNL_EXPR_NAME as u16);
            if name.is_null() {
                continue;
            }
            match CStr::from_ptr(name).to_bytes() {
                b"log" => {
                    let prefix = sys::nftnl_expr_get_str(expr, sys::NFTNL_EXPR_LOG_PREFIX as u16);
                    if !prefix.is_null() {
                        dumped.prefix = Some(CStr::from_ptr(prefix).to_string_lossy().into_owned());
                    }
                }
                b"counter" => {
                    dumped.packets =
                        sys::nftnl_expr_get_u64(expr, sys::NFTNL_EXPR_CTR_PACKETS as u16);
                    dumped.bytes = sys::nftnl_expr_get_u64(expr, sys::NFTNL_EXPR_CTR_BYTES as u16);
                }
                b"quota" => {
                    dumped.quota_used = Some(sys::nftnl_expr_get_u64(
                        expr,
                        sys::NFTNL_EXPR_QUOTA_CONSUMED as u16,
                    ));
                }
                _ => {}
            }
        }
    }
    // SAFETY: created above, destroyed once.
    unsafe { sys::nftnl_expr_iter_destroy(iter.as_ptr()) };
    Some(dumped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], deny: &[&str]) -> NetworkPolicy {
        let parse = |texts: &[&str]| texts.iter().map(|t| Entry::parse(t).unwrap()).collect();
        NetworkPolicy {
            default: Verdict::Deny,
            allow: parse(allow),
            deny: parse(deny),
            egress_bytes: None,
        }
    }

    fn v4(a: [u8; 4]) -> u128 {
        u128::from(u32::from(Ipv4Addr::from(a)))
    }

    #[test]
    fn entries_are_grouped_by_spec_deny_first() {
        let plan = Plan::compile(
            &policy(
                &[
                    "10.0.0.0/8",
                    "192.0.2.7:443/tcp",
                    "example.com:443/tcp",
                    "198.51.100.0/24:443",
                    "*",
                ],
                &["10.0.5.0/24"],
            ),
            &Protected::default(),
        )
        .unwrap();
        let summary: Vec<(&str, Verdict, usize, bool)> = plan
            .groups
            .iter()
            .map(|g| (g.prefix.as_str(), g.verdict, g.entries.len(), g.names))
            .collect();
        assert_eq!(
            summary,
            [
                ("d0", Verdict::Deny, 1, false),
                ("a0", Verdict::Allow, 2, false),
                ("a1", Verdict::Allow, 2, true),
                ("a2", Verdict::Allow, 1, false),
            ]
        );
        // `*` swallows 10.0.0.0/8: one interval per family.
        assert_eq!(plan.groups[1].v4, [(0, Family::V4.max())]);
        assert_eq!(plan.groups[1].v6, [(0, Family::V6.max())]);
        assert_eq!(
            plan.groups[2].v4,
            [(v4([192, 0, 2, 7]), v4([192, 0, 2, 7]))]
        );
        assert!(plan.groups[2].v6.is_empty());
    }

    #[test]
    fn overlapping_and_adjacent_networks_merge() {
        let plan = Plan::compile(
            &policy(
                &[
                    "10.0.0.0/25",
                    "10.0.0.128/25",
                    "10.0.0.5",
                    "10.0.2.0/24",
                    "10.0.1.0/24",
                    "10.0.4.0/24",
                ],
                &[],
            ),
            &Protected::default(),
        )
        .unwrap();
        assert_eq!(
            plan.groups[0].v4,
            [
                (v4([10, 0, 0, 0]), v4([10, 0, 2, 255])),
                (v4([10, 0, 4, 0]), v4([10, 0, 4, 255]))
            ]
        );
        assert_eq!(merge(vec![(5, u128::MAX), (0, 4)]), [(0, u128::MAX)]);
    }

    #[test]
    fn a_packet_is_named_after_the_entry_that_decided_it() {
        let plan = Plan::compile(
            &policy(
                &[
                    "10.0.0.0/8:443/tcp",
                    "10.1.0.0/16:443/tcp",
                    "example.com:443/tcp",
                    "[2001:db8::/32]:443/tcp",
                ],
                &[],
            ),
            &Protected::default(),
        )
        .unwrap();
        let group = &plan.groups[0];
        let written = |addr: &str| group.written_entry(addr.parse().unwrap()).map(Entry::text);
        // The first entry as written that covers the address.
        assert_eq!(written("10.1.2.3"), Some("10.0.0.0/8:443/tcp"));
        assert_eq!(written("2001:db8::1"), Some("[2001:db8::/32]:443/tcp"));
        assert_eq!(written("11.0.0.1"), None);
    }

    #[test]
    fn a_zero_ttl_is_not_forever() {
        assert_eq!(timeout_ms(Duration::ZERO), 1);
        assert_eq!(timeout_ms(Duration::from_secs(3)), 3000);
        assert_eq!(timeout_ms(Duration::MAX), i32::MAX as u64 * 1000);
    }

    #[test]
    fn icmp_with_ports_is_refused() {
        // The policy parser refuses it too; a hand-built entry is caught here.
        let mut entry = Entry::parse("10.0.0.1:80").unwrap();
        entry.protocol = Some(Protocol::Icmp);
        let policy = NetworkPolicy {
            allow: vec![entry],
            ..NetworkPolicy::default()
        };
        assert!(matches!(
            Plan::compile(&policy, &Protected::default()),
            Err(EgressError::IcmpWithPorts { .. })
        ));
    }
}
