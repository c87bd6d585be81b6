//! The `network` section: what a world may reach.
//!
//! ```yaml
//! network:
//!   default: deny            # deny | allow: what no entry decides
//!   allow:
//!     - 10.0.0.0/8           # a CIDR, any port and protocol
//!     - 192.0.2.7:443/tcp    # an address, a port, a protocol
//!     - "[2001:db8::/32]:8000-8100"
//!     - example.com          # a name: the addresses it resolves to
//!     - "*.pypi.org:443"     # any name under pypi.org (not pypi.org)
//!   deny:
//!     - 10.0.5.0/24
//!   egress_bytes: 1g         # a byte quota on what the world sends
//! ```
//!
//! An entry is `TARGET[:PORTS][/PROTO]`:
//!
//! - `PROTO` is `tcp`, `udp` or `icmp` (any case). It is read from the text
//!   after the last `/` when that text is all letters, so a CIDR's prefix
//!   length (all digits) is never taken for one: `10.0.0.0/8/udp` is
//!   `10.0.0.0/8` over UDP. `icmp` takes no ports.
//! - `PORTS` is `443` or `8000-8100`, after the target's `:`: ports 1 to
//!   65535, the first no greater than the last.
//! - `TARGET` is `*` (any address); an IPv4 address or CIDR (`192.0.2.7`,
//!   `10.0.0.0/8`); an IPv6 address or CIDR, bare when no ports follow
//!   (`2001:db8::/32`) and in brackets when they do (`[2001:db8::1]:443`),
//!   since a bare `2001:db8::1:443` is itself an address; a domain name
//!   (`example.com`: at least two labels, each 1 to 63 of `a-z`, `0-9`,
//!   `-` not at either end, 253 characters in all, kept in lower case
//!   without a trailing dot); or `*.example.com`, every name strictly
//!   below `example.com` (`*.com` is allowed: `*` counts as a label).
//!
//! A CIDR with host bits set is refused rather than truncated: the author
//! meant either the address or the network, and only they know which.
//!
//! YAML reads a plain `*...` as an alias and `[...]` as a list: quote
//! such entries.

use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

mod entry;

pub use entry::{EntryError, EntryProblem};

/// What decides a destination no entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Reach it.
    Allow,
    /// Do not reach it.
    #[default]
    Deny,
}

/// The network section of a policy. Every key is optional; the default
/// section reaches nothing. It serializes to the YAML it reads (entries as
/// written).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkPolicy {
    pub default: Verdict,
    /// Reachable destinations (with `default: deny`).
    pub allow: Vec<Entry>,
    /// Unreachable destinations, whatever `allow` says: deny wins.
    pub deny: Vec<Entry>,
    /// At most this many bytes sent out of the world (`None`: no quota).
    /// Written as an integer or with a `k`, `m`, `g` or `t` suffix (powers
    /// of 1024); `null` is no quota.
    #[serde(
        deserialize_with = "deserialize_byte_count",
        skip_serializing_if = "Option::is_none"
    )]
    pub egress_bytes: Option<u64>,
}

/// One entry of an allow- or deny-list, as written (`TARGET[:PORTS][/PROTO]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub target: Target,
    /// `None`: any protocol; with ports, TCP and UDP.
    pub protocol: Option<Protocol>,
    /// `None`: any port.
    pub ports: Option<PortRange>,
    /// The entry as written: what errors, spans and rule names quote.
    text: String,
}

/// What an entry reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `*`: any address.
    Any,
    /// An address (a /32 or /128) or a CIDR.
    Net(IpNet),
    /// A domain name: the addresses the world's resolver answers for it.
    Name(NamePattern),
}

/// The names a name entry reaches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NamePattern {
    /// `example.com`: that name only (lower case, no trailing dot).
    Exact(String),
    /// `*.example.com`, kept as `example.com`: every name below it, not the
    /// name itself.
    Suffix(String),
}

/// An inclusive port range; a single port is `first == last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

/// A transport protocol an entry can be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    /// ICMP for IPv4 targets, ICMPv6 for IPv6 ones; takes no ports.
    Icmp,
}

/// How a policy answers a name the world looks up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameDecision<'a> {
    /// A deny entry names it: refused, whatever allows it. A deny entry
    /// with ports or a protocol refuses the whole name too: a name is
    /// answered or not, whatever port the world then uses.
    Denied(&'a Entry),
    /// These allow entries name it (or allow any address: `*`), in policy
    /// order; their ports and protocols say how its addresses may be
    /// reached.
    Allowed(Vec<&'a Entry>),
    /// No name entry names it and the default is allow.
    AllowedByDefault,
    /// No entry names it and the default is deny. A CIDR entry may still
    /// allow addresses it resolves to: it is not answered (a world that may
    /// reach a CIDR reaches it by address).
    NotListed,
}

/// Why an inline policy cannot narrow the node's: it would widen it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NarrowError {
    #[error("default: allow is not within the node policy, whose default is deny")]
    DefaultAllow,
    #[error("allow entry {:?} is not within the node policy", entry.text())]
    AllowNotWithin { entry: Entry },
}

impl NetworkPolicy {
    /// Whether the world may reach anything at all (a world that may not
    /// needs no network).
    pub fn allows_anything(&self) -> bool {
        self.default == Verdict::Allow || !self.allow.is_empty()
    }

    /// Decides a name the world looks up (any case, with or without the
    /// trailing dot). Only name entries take part; deny wins.
    pub fn decide_name(&self, name: &str) -> NameDecision<'_> {
        let name = name.to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name);
        let names_it = |entry: &&Entry| match &entry.target {
            Target::Name(pattern) => pattern.matches(name),
            Target::Any | Target::Net(_) => false,
        };
        if let Some(denied) = self.deny.iter().find(names_it) {
            return NameDecision::Denied(denied);
        }
        // An allow entry for any address (`*`, `*:443`) reaches whatever a
        // name resolves to: the name is allowed under it.
        let allowed: Vec<&Entry> = self
            .allow
            .iter()
            .filter(|entry| names_it(entry) || entry.target == Target::Any)
            .collect();
        if !allowed.is_empty() {
            NameDecision::Allowed(allowed)
        } else if self.default == Verdict::Allow {
            NameDecision::AllowedByDefault
        } else {
            NameDecision::NotListed
        }
    }

    /// Applies `inline`, a policy from an untrusted source (a bundle, a pod
    /// annotation), under `self`, the node's policy: `inline` may only
    /// narrow. The result has `inline`'s default and allow entries, the
    /// node's deny entries followed by `inline`'s, and the lower of the two
    /// egress quotas (a missing one inherits the other).
    pub fn narrow(&self, inline: &NetworkPolicy) -> Result<NetworkPolicy, NarrowError> {
        if self.default == Verdict::Deny {
            if inline.default == Verdict::Allow {
                return Err(NarrowError::DefaultAllow);
            }
            let wider = inline
                .allow
                .iter()
                .find(|entry| !self.allow.iter().any(|node| node.covers(entry)));
            if let Some(entry) = wider {
                return Err(NarrowError::AllowNotWithin {
                    entry: entry.clone(),
                });
            }
        }
        Ok(NetworkPolicy {
            default: inline.default,
            allow: inline.allow.clone(),
            deny: self.deny.iter().chain(&inline.deny).cloned().collect(),
            egress_bytes: match (self.egress_bytes, inline.egress_bytes) {
                (Some(node), Some(inline)) => Some(node.min(inline)),
                (node, inline) => node.or(inline),
            },
        })
    }
}

impl Entry {
    /// The entry as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether everything `other` reaches, this entry reaches too.
    pub fn covers(&self, other: &Entry) -> bool {
        let ports_covered = match (self.ports, other.ports) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => mine.contains(&theirs),
        };
        self.target.covers(&other.target)
            && self.protocols().contains(other.protocols())
            && ports_covered
    }

    fn protocols(&self) -> ProtocolSet {
        match (self.protocol, self.ports) {
            (Some(Protocol::Tcp), _) => ProtocolSet::TCP,
            (Some(Protocol::Udp), _) => ProtocolSet::UDP,
            (Some(Protocol::Icmp), _) => ProtocolSet::ICMP,
            (None, Some(_)) => ProtocolSet::TCP_UDP,
            (None, None) => ProtocolSet::ALL,
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// An entry serializes as written, which is what it deserializes from.
impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

/// The protocols an entry reaches, one bit each: its protocol if written;
/// if not, TCP and UDP when it has ports, every IP protocol when not.
#[derive(Debug, Clone, Copy)]
struct ProtocolSet(u8);

impl ProtocolSet {
    const TCP: Self = Self(1);
    const UDP: Self = Self(1 << 1);
    const ICMP: Self = Self(1 << 2);
    const TCP_UDP: Self = Self(Self::TCP.0 | Self::UDP.0);
    /// TCP, UDP, ICMP and every other IP protocol (the last bit).
    const ALL: Self = Self(Self::TCP_UDP.0 | Self::ICMP.0 | 1 << 3);

    fn contains(self, other: Self) -> bool {
        other.0 & !self.0 == 0
    }
}

impl Target {
    /// Whether every destination `other` names, this one names too. A name
    /// is covered only by `*` or a name pattern: an address range says
    /// nothing about where a name resolves.
    pub fn covers(&self, other: &Target) -> bool {
        match (self, other) {
            (Target::Any, _) => true,
            (Target::Net(mine), Target::Net(theirs)) => mine.contains(theirs),
            (Target::Name(mine), Target::Name(theirs)) => mine.covers(theirs),
            _ => false,
        }
    }
}

impl NamePattern {
    /// Whether this pattern names `name`, which is lower case without a
    /// trailing dot.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(exact) => name == exact,
            NamePattern::Suffix(suffix) => is_below(name, suffix),
        }
    }

    /// Whether every name `other` names, this pattern names too.
    pub fn covers(&self, other: &NamePattern) -> bool {
        match (self, other) {
            (NamePattern::Exact(mine), NamePattern::Exact(theirs)) => mine == theirs,
            (NamePattern::Exact(_), NamePattern::Suffix(_)) => false,
            (NamePattern::Suffix(mine), NamePattern::Exact(theirs)) => is_below(theirs, mine),
            (NamePattern::Suffix(mine), NamePattern::Suffix(theirs)) => {
                theirs == mine || is_below(theirs, mine)
            }
        }
    }
}

/// Whether `name` is strictly below `suffix`, as `a.example.com` is below
/// `example.com` (and `aexample.com` is not).
fn is_below(name: &str, suffix: &str) -> bool {
    name.strip_suffix(suffix)
        .and_then(|head| head.strip_suffix('.'))
        .is_some_and(|label| !label.is_empty())
}

impl PortRange {
    /// Whether every port of `other` is in this range.
    pub fn contains(&self, other: &PortRange) -> bool {
        self.first <= other.first && other.last <= self.last
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        })
    }
}

/// Reads `egress_bytes`: an integer, or one with a `k`, `m`, `g` or `t`
/// suffix (powers of 1024), or `null` for no quota. A quota of 0 is kept:
/// the world sends nothing.
fn deserialize_byte_count<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    crate::units::deserialize_byte_count(deserializer, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::parse_byte_count;

    fn entry(text: &str) -> Entry {
        Entry::parse(text).unwrap_or_else(|error| panic!("{error}"))
    }

    fn entries(texts: &[&str]) -> Vec<Entry> {
        texts.iter().map(|text| entry(text)).collect()
    }

    fn covers(node: &str, inline: &str) -> bool {
        entry(node).covers(&entry(inline))
    }

    #[test]
    fn any_covers_every_target() {
        for other in [
            "*",
            "10.0.0.0/8",
            "2001:db8::1",
            "example.com",
            "*.example.com",
        ] {
            assert!(covers("*", other), "{other}");
        }
    }

    #[test]
    fn a_network_covers_what_it_contains_in_its_family() {
        assert!(covers("10.0.0.0/8", "10.0.0.0/8"));
        assert!(covers("10.0.0.0/8", "10.1.0.0/16"));
        assert!(covers("10.0.0.0/8", "10.1.2.3"));
        assert!(!covers("10.0.0.0/8", "11.0.0.0/8"));
        assert!(!covers("10.1.0.0/16", "10.0.0.0/8"));
        assert!(covers("0.0.0.0/0", "192.0.2.1"));
        assert!(!covers("0.0.0.0/0", "2001:db8::1"));
        assert!(!covers("::/0", "192.0.2.1"));
        assert!(covers("2001:db8::/32", "[2001:db8::1]:443"));
        assert!(!covers("10.0.0.0/8", "*"));
    }

    #[test]
    fn a_name_is_covered_only_by_any_or_a_name_pattern() {
        assert!(!covers("0.0.0.0/0", "example.com"));
        assert!(covers("example.com", "example.com"));
        assert!(!covers("example.com", "a.example.com"));
        assert!(!covers("example.com", "*.example.com"));
        assert!(covers("*.example.com", "a.example.com"));
        assert!(covers("*.example.com", "a.b.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "aexample.com"));
        assert!(covers("*.example.com", "*.example.com"));
        assert!(covers("*.example.com", "*.a.example.com"));
        assert!(!covers("*.a.example.com", "*.example.com"));
        assert!(!covers("*.example.com", "*.other.com"));
        assert!(!covers("example.com", "192.0.2.1"));
    }

    #[test]
    fn protocols_and_ports() {
        assert!(covers("10.0.0.0/8", "10.0.0.0/8:443/tcp"));
        assert!(covers("10.0.0.0/8", "10.0.0.0/8/icmp"));
        assert!(covers("10.0.0.0/8/tcp", "10.0.0.0/8:443/tcp"));
        assert!(!covers("10.0.0.0/8/tcp", "10.0.0.0/8:443/udp"));
        assert!(!covers("10.0.0.0/8/tcp", "10.0.0.0/8:443"));
        assert!(!covers("10.0.0.0/8/tcp", "10.0.0.0/8"));
        // Ports without a protocol: TCP and UDP, not ICMP or the rest.
        assert!(covers("10.0.0.0/8:443", "10.0.0.0/8:443/udp"));
        assert!(covers("10.0.0.0/8:443", "10.0.0.0/8:443"));
        assert!(!covers("10.0.0.0/8:1-65535", "10.0.0.0/8/icmp"));
        assert!(!covers("10.0.0.0/8:1-65535", "10.0.0.0/8"));
        assert!(covers("*:8000-8100", "*:8000-8010"));
        assert!(covers("*:8000-8100", "*:8100"));
        assert!(!covers("*:8000-8100", "*:7999-8000"));
        assert!(!covers("*:443", "*/tcp"));
    }

    fn policy(default: Verdict, allow: &[&str], deny: &[&str]) -> NetworkPolicy {
        NetworkPolicy {
            default,
            allow: entries(allow),
            deny: entries(deny),
            egress_bytes: None,
        }
    }

    fn texts(decision: NameDecision<'_>) -> Vec<&str> {
        match decision {
            NameDecision::Allowed(allowed) => allowed.iter().map(|entry| entry.text()).collect(),
            other => panic!("not allowed: {other:?}"),
        }
    }

    #[test]
    fn allows_anything() {
        assert!(!NetworkPolicy::default().allows_anything());
        assert!(policy(Verdict::Deny, &["example.com"], &[]).allows_anything());
        assert!(policy(Verdict::Allow, &[], &["*"]).allows_anything());
        assert!(!policy(Verdict::Deny, &[], &["10.0.0.0/8"]).allows_anything());
    }

    #[test]
    fn decide_name_lists_every_matching_allow_entry_in_order() {
        let network = policy(
            Verdict::Deny,
            &[
                "*.example.com:443/tcp",
                "10.0.0.0/8",
                "api.example.com:8443",
                "example.com",
                "*",
            ],
            &[],
        );
        assert_eq!(
            texts(network.decide_name("api.example.com")),
            ["*.example.com:443/tcp", "api.example.com:8443", "*"]
        );
        assert_eq!(
            texts(network.decide_name("API.Example.com.")),
            ["*.example.com:443/tcp", "api.example.com:8443", "*"]
        );
        assert_eq!(
            texts(network.decide_name("example.com")),
            ["example.com", "*"]
        );
        assert_eq!(
            texts(network.decide_name("a.b.example.com")),
            ["*.example.com:443/tcp", "*"]
        );
        // `*` reaches any address: every name is allowed under it.
        assert_eq!(texts(network.decide_name("other.com")), ["*"]);
    }

    #[test]
    fn decide_name_deny_wins() {
        let network = policy(
            Verdict::Allow,
            &["*.example.com"],
            &["10.0.0.0/8", "ads.example.com:443", "*.tracker.example.com"],
        );
        let denied = |name| match network.decide_name(name) {
            NameDecision::Denied(entry) => entry.text().to_owned(),
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(denied("ads.example.com"), "ads.example.com:443");
        assert_eq!(denied("a.tracker.example.com"), "*.tracker.example.com");
        assert_eq!(
            texts(network.decide_name("tracker.example.com")),
            ["*.example.com"]
        );
        assert_eq!(
            network.decide_name("example.org"),
            NameDecision::AllowedByDefault
        );
    }

    #[test]
    fn narrowing_is_accepted_and_merges_deny() {
        let node = NetworkPolicy {
            egress_bytes: Some(1 << 30),
            ..policy(
                Verdict::Deny,
                &["10.0.0.0/8", "*.pypi.org:443/tcp"],
                &["10.0.5.0/24"],
            )
        };
        let inline = NetworkPolicy {
            egress_bytes: Some(1 << 20),
            ..policy(
                Verdict::Deny,
                &["10.1.0.0/16:80", "files.pypi.org:443/tcp"],
                &["10.1.2.0/24"],
            )
        };
        let narrowed = node.narrow(&inline).unwrap();
        assert_eq!(narrowed.default, Verdict::Deny);
        assert_eq!(narrowed.allow, inline.allow);
        assert_eq!(narrowed.deny, entries(&["10.0.5.0/24", "10.1.2.0/24"]));
        assert_eq!(narrowed.egress_bytes, Some(1 << 20));
    }

    #[test]
    fn narrowing_takes_the_lower_quota_and_inherits_a_missing_one() {
        let quota = |bytes| NetworkPolicy {
            egress_bytes: bytes,
            ..NetworkPolicy::default()
        };
        let narrowed = |node, inline| quota(node).narrow(&quota(inline)).unwrap().egress_bytes;
        assert_eq!(narrowed(Some(10), None), Some(10));
        assert_eq!(narrowed(None, Some(10)), Some(10));
        assert_eq!(narrowed(Some(10), Some(20)), Some(10));
        assert_eq!(narrowed(None, None), None);
    }

    #[test]
    fn widening_is_refused_naming_the_entry() {
        let node = policy(Verdict::Deny, &["10.0.0.0/8", "*.pypi.org:443/tcp"], &[]);
        let refused = |inline: NetworkPolicy| node.narrow(&inline).unwrap_err().to_string();
        assert_eq!(
            refused(policy(
                Verdict::Deny,
                &["10.0.0.0/8", "pypi.org:443/tcp"],
                &[]
            )),
            r#"allow entry "pypi.org:443/tcp" is not within the node policy"#
        );
        assert_eq!(
            refused(policy(Verdict::Deny, &["files.pypi.org:443"], &[])),
            r#"allow entry "files.pypi.org:443" is not within the node policy"#
        );
        assert_eq!(
            node.narrow(&policy(Verdict::Allow, &[], &[])),
            Err(NarrowError::DefaultAllow)
        );
    }

    #[test]
    fn under_a_default_allow_node_anything_narrows() {
        let node = policy(Verdict::Allow, &[], &["169.254.169.254"]);
        let inline = policy(Verdict::Allow, &["*"], &["10.0.0.0/8"]);
        let narrowed = node.narrow(&inline).unwrap();
        assert_eq!(narrowed.default, Verdict::Allow);
        assert_eq!(narrowed.deny, entries(&["169.254.169.254", "10.0.0.0/8"]));
    }

    #[test]
    fn byte_counts() {
        assert_eq!(parse_byte_count("0"), Some(0));
        assert_eq!(parse_byte_count("1024"), Some(1024));
        assert_eq!(parse_byte_count("1k"), Some(1 << 10));
        assert_eq!(parse_byte_count("3M"), Some(3 << 20));
        assert_eq!(parse_byte_count("1g"), Some(1 << 30));
        assert_eq!(parse_byte_count("2t"), Some(2 << 40));
        assert_eq!(parse_byte_count("16777215t"), Some(16_777_215 << 40));
        assert_eq!(parse_byte_count("16777216t"), None);
        for bad in ["", "g", "1x", "1gb", "-1", "+1", "1.5g", " 1", "1é"] {
            assert_eq!(parse_byte_count(bad), None, "{bad:?}");
        }
    }
}
