//! Parsing entries, `TARGET[:PORTS][/PROTO]` (the grammar is in the
//! parent module's docs), with errors that say what is wrong.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};

use super::{Entry, NamePattern, PortRange, Protocol, Target};

/// The longest domain name (RFC 1035 §2.3.4, without the trailing dot).
const MAX_NAME_LEN: usize = 253;
/// The longest label of a domain name (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// An entry that does not parse: the entry as written and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{entry:?}: {problem}")]
pub struct EntryError {
    /// The entry as written.
    pub entry: String,
    pub problem: EntryProblem,
}

/// What is wrong with an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryProblem {
    #[error("the entry is empty")]
    Empty,
    #[error("the entry contains whitespace")]
    Whitespace,
    #[error("no target before the ports or protocol")]
    MissingTarget,
    #[error("unknown protocol {0:?} (expected tcp, udp or icmp)")]
    UnknownProtocol(String),
    #[error("icmp takes no ports")]
    IcmpWithPorts,
    #[error("no ports after ':'")]
    MissingPorts,
    #[error("port {0:?} is not a number from 1 to 65535")]
    BadPort(String),
    #[error("port 0 is not a port a world can reach")]
    PortZero,
    #[error("port range {first}-{last} is reversed (did you mean {last}-{first}?)")]
    ReversedRange { first: u16, last: u16 },
    #[error("'[' without ']'")]
    UnclosedBracket,
    #[error("brackets hold only an IPv6 address or CIDR")]
    BracketsNotIpv6,
    #[error("unexpected {0:?} after ']' (expected ':' and ports)")]
    AfterBracket(String),
    #[error("an IPv6 address with ports needs brackets (did you mean {suggestion}?)")]
    Ipv6NeedsBrackets { suggestion: String },
    #[error("a number alone is no target (for a port on any address, write *:PORT)")]
    BareNumber,
    #[error("{0:?} is not an IPv4 address")]
    BadIpv4(String),
    #[error("{0:?} is not an IPv6 address")]
    BadIpv6(String),
    #[error("prefix length {prefix:?} is not a number from 0 to {max}")]
    BadPrefixLength { prefix: String, max: u8 },
    #[error("a prefix length follows only an IP address")]
    PrefixWithoutAddress,
    #[error("host bits are set (did you mean {network}?)")]
    HostBitsSet { network: IpNet },
    #[error("'*' is allowed only as the whole first label, as in *.example.com")]
    MisplacedWildcard,
    #[error("the name is longer than {MAX_NAME_LEN} characters")]
    NameTooLong,
    #[error("the name has an empty label")]
    EmptyLabel,
    #[error("label {0:?} is longer than {MAX_LABEL_LEN} characters")]
    LabelTooLong(String),
    #[error("{0:?} is not allowed in a name (only letters, digits, '-' and '.')")]
    NameCharacter(char),
    #[error("label {0:?} starts or ends with '-'")]
    LabelHyphen(String),
    #[error("a name needs at least two labels, as in example.com")]
    SingleLabel,
    #[error("the last label {0:?} is all digits, which no top-level domain is")]
    NumericTopLabel(String),
}

impl Entry {
    /// Parses an entry, `TARGET[:PORTS][/PROTO]` (see the [module
    /// docs](super)).
    pub fn parse(text: &str) -> Result<Entry, EntryError> {
        text.parse()
    }
}

impl FromStr for Entry {
    type Err = EntryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (target, ports, protocol) = parse_parts(text).map_err(|problem| EntryError {
            entry: text.to_owned(),
            problem,
        })?;
        Ok(Entry {
            target,
            protocol,
            ports,
            text: text.to_owned(),
        })
    }
}

/// Reads an entry from a string; a bad one fails with the entry and the
/// reason, and the deserializer adds where it is.
impl<'de> Deserialize<'de> for Entry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Parsed inside the visitor, not after `String::deserialize`:
        // serde_yaml_ng marks an error with the position of the value being
        // visited, and after it returns that is the enclosing list's.
        struct EntryVisitor;

        impl Visitor<'_> for EntryVisitor {
            type Value = Entry;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an entry, TARGET[:PORTS][/PROTO]")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Entry, E> {
                text.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_str(EntryVisitor)
    }
}

type Parts = (Target, Option<PortRange>, Option<Protocol>);

fn parse_parts(text: &str) -> Result<Parts, EntryProblem> {
    if text.is_empty() {
        return Err(EntryProblem::Empty);
    }
    if text.chars().any(char::is_whitespace) {
        return Err(EntryProblem::Whitespace);
    }
    let (rest, protocol) = match text.rsplit_once('/') {
        Some((rest, suffix))
            if !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_alphabetic()) =>
        {
            (rest, Some(parse_protocol(suffix)?))
        }
        _ => (text, None),
    };
    if rest.is_empty() {
        return Err(EntryProblem::MissingTarget);
    }
    let (target, ports) = split_ports(rest)?;
    let target = match target {
        TargetText::Bracketed(inner) => parse_bracketed(inner)?,
        TargetText::Plain(plain) => parse_plain(plain, &text[rest.len()..])?,
    };
    let ports = ports.map(parse_ports).transpose()?;
    if protocol == Some(Protocol::Icmp) && ports.is_some() {
        return Err(EntryProblem::IcmpWithPorts);
    }
    Ok((target, ports, protocol))
}

fn parse_protocol(text: &str) -> Result<Protocol, EntryProblem> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        "icmp" => Ok(Protocol::Icmp),
        _ => Err(EntryProblem::UnknownProtocol(text.to_owned())),
    }
}

enum TargetText<'a> {
    /// Inside `[...]`.
    Bracketed(&'a str),
    Plain(&'a str),
}

/// Splits `TARGET[:PORTS]` at the colon before the ports. A target with
/// more than one colon and no brackets is a bare IPv6 address: no ports.
fn split_ports(text: &str) -> Result<(TargetText<'_>, Option<&str>), EntryProblem> {
    if let Some(bracketed) = text.strip_prefix('[') {
        let (inner, after) = bracketed
            .split_once(']')
            .ok_or(EntryProblem::UnclosedBracket)?;
        let ports = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| EntryProblem::AfterBracket(after.to_owned()))?,
            ),
        };
        return Ok((TargetText::Bracketed(inner), ports));
    }
    match text.split_once(':') {
        Some((target, ports)) if !ports.contains(':') => {
            if target.is_empty() {
                return Err(EntryProblem::MissingTarget);
            }
            Ok((TargetText::Plain(target), Some(ports)))
        }
        _ => Ok((TargetText::Plain(text), None)),
    }
}

fn parse_bracketed(inner: &str) -> Result<Target, EntryProblem> {
    if !inner.contains(':') {
        return Err(EntryProblem::BracketsNotIpv6);
    }
    parse_net(inner).map(Target::Net)
}

/// Parses a target written without brackets; `protocol_suffix` is what
/// followed it in the entry (`/tcp` or nothing), for a suggestion.
fn parse_plain(text: &str, protocol_suffix: &str) -> Result<Target, EntryProblem> {
    if text == "*" {
        return Ok(Target::Any);
    }
    if text.contains(':') {
        return parse_net(text).map(Target::Net).map_err(|problem| {
            // `2001:db8::/32:443` is no address, but without its last
            // `:443` it is: the author forgot the brackets.
            match text.rsplit_once(':') {
                Some((net, ports))
                    if !ports.is_empty()
                        && ports.bytes().all(|b| b.is_ascii_digit() || b == b'-')
                        && parse_net(net).is_ok() =>
                {
                    EntryProblem::Ipv6NeedsBrackets {
                        suggestion: format!("[{net}]:{ports}{protocol_suffix}"),
                    }
                }
                _ => problem,
            }
        });
    }
    if let Some((address, _)) = text.split_once('/') {
        return if looks_like_ipv4(address) {
            parse_net(text).map(Target::Net)
        } else {
            Err(EntryProblem::PrefixWithoutAddress)
        };
    }
    if looks_like_ipv4(text) {
        if !text.contains('.') {
            return Err(EntryProblem::BareNumber);
        }
        return parse_net(text).map(Target::Net);
    }
    parse_name(text).map(Target::Name)
}

/// Digits and dots only: meant as an IPv4 address, never a name.
fn looks_like_ipv4(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// Parses an address (a /32 or /128) or a CIDR without host bits.
fn parse_net(text: &str) -> Result<IpNet, EntryProblem> {
    let (address_text, prefix) = match text.split_once('/') {
        Some((address, prefix)) => (address, Some(prefix)),
        None => (text, None),
    };
    let address: IpAddr = address_text.parse().map_err(|_| {
        if address_text.contains(':') {
            EntryProblem::BadIpv6(address_text.to_owned())
        } else {
            EntryProblem::BadIpv4(address_text.to_owned())
        }
    })?;
    let Some(prefix) = prefix else {
        return Ok(IpNet::from(address));
    };
    let bad_prefix = || EntryProblem::BadPrefixLength {
        prefix: prefix.to_owned(),
        max: if address.is_ipv4() { 32 } else { 128 },
    };
    // `u8::from_str` takes a leading `+`; a prefix length is digits only.
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_prefix());
    }
    let length: u8 = prefix.parse().map_err(|_| bad_prefix())?;
    let net = IpNet::new(address, length).map_err(|_| bad_prefix())?;
    if net.trunc() != net {
        return Err(EntryProblem::HostBitsSet {
            network: net.trunc(),
        });
    }
    Ok(net)
}

fn parse_ports(text: &str) -> Result<PortRange, EntryProblem> {
    if text.is_empty() {
        return Err(EntryProblem::MissingPorts);
    }
    let (first, last) = match text.split_once('-') {
        Some((first, last)) => (parse_port(first)?, parse_port(last)?),
        None => {
            let port = parse_port(text)?;
            (port, port)
        }
    };
    if first > last {
        return Err(EntryProblem::ReversedRange { first, last });
    }
    Ok(PortRange { first, last })
}

fn parse_port(text: &str) -> Result<u16, EntryProblem> {
    let bad_port = || EntryProblem::BadPort(text.to_owned());
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_port());
    }
    match text.parse::<u16>().map_err(|_| bad_port())? {
        0 => Err(EntryProblem::PortZero),
        port => Ok(port),
    }
}

/// Parses `example.com` or `*.example.com`.
fn parse_name(text: &str) -> Result<NamePattern, EntryProblem> {
    let lower = text.to_ascii_lowercase();
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    if name.len() > MAX_NAME_LEN {
        return Err(EntryProblem::NameTooLong);
    }
    let (body, is_suffix) = match name.strip_prefix("*.") {
        Some(suffix) => (suffix, true),
        None => (name, false),
    };
    if body.contains('*') {
        return Err(EntryProblem::MisplacedWildcard);
    }
    body.split('.').try_for_each(check_label)?;
    // `*` counts as a label: `*.com` is allowed, `com` is not.
    if !is_suffix && !body.contains('.') {
        return Err(EntryProblem::SingleLabel);
    }
    if let Some(top) = body.rsplit('.').next() {
        if top.bytes().all(|b| b.is_ascii_digit()) {
            return Err(EntryProblem::NumericTopLabel(top.to_owned()));
        }
    }
    Ok(if is_suffix {
        NamePattern::Suffix(body.to_owned())
    } else {
        NamePattern::Exact(body.to_owned())
    })
}

fn check_label(label: &str) -> Result<(), EntryProblem> {
    if label.is_empty() {
        return Err(EntryProblem::EmptyLabel);
    }
    if let Some(bad) = label
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(EntryProblem::NameCharacter(bad));
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(EntryProblem::LabelTooLong(label.to_owned()));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(EntryProblem::LabelHyphen(label.to_owned()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> Target {
        Target::Net(text.parse().unwrap())
    }

    fn exact(name: &str) -> Target {
        Target::Name(NamePattern::Exact(name.to_owned()))
    }

    fn suffix(name: &str) -> Target {
        Target::Name(NamePattern::Suffix(name.to_owned()))
    }

    fn ports(first: u16, last: u16) -> Option<PortRange> {
        Some(PortRange { first, last })
    }

    fn parts(text: &str) -> (Target, Option<PortRange>, Option<Protocol>) {
        let entry = Entry::parse(text).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(entry.text(), text);
        (entry.target, entry.ports, entry.protocol)
    }

    fn problem(text: &str) -> EntryProblem {
        match Entry::parse(text) {
            Ok(entry) => panic!("{text:?} parsed as {entry:?}"),
            Err(error) => {
                assert_eq!(error.entry, text);
                error.problem
            }
        }
    }

    #[test]
    fn any_target() {
        assert_eq!(parts("*"), (Target::Any, None, None));
        assert_eq!(parts("*:53"), (Target::Any, ports(53, 53), None));
        assert_eq!(parts("*/icmp"), (Target::Any, None, Some(Protocol::Icmp)));
    }

    #[test]
    fn ipv4_targets() {
        assert_eq!(parts("192.0.2.7"), (net("192.0.2.7/32"), None, None));
        assert_eq!(parts("10.0.0.0/8"), (net("10.0.0.0/8"), None, None));
        assert_eq!(parts("0.0.0.0/0"), (net("0.0.0.0/0"), None, None));
        assert_eq!(
            parts("192.0.2.7:443/tcp"),
            (net("192.0.2.7/32"), ports(443, 443), Some(Protocol::Tcp))
        );
        assert_eq!(
            parts("10.0.0.0/8:8000-8100"),
            (net("10.0.0.0/8"), ports(8000, 8100), None)
        );
    }

    #[test]
    fn protocol_after_a_cidr_is_not_a_prefix_length() {
        assert_eq!(
            parts("10.0.0.0/8/udp"),
            (net("10.0.0.0/8"), None, Some(Protocol::Udp))
        );
        assert_eq!(
            parts("2001:db8::/32/tcp"),
            (net("2001:db8::/32"), None, Some(Protocol::Tcp))
        );
    }

    #[test]
    fn ipv6_targets() {
        assert_eq!(parts("2001:db8::1"), (net("2001:db8::1/128"), None, None));
        assert_eq!(parts("::1"), (net("::1/128"), None, None));
        assert_eq!(parts("2001:db8::/32"), (net("2001:db8::/32"), None, None));
        assert_eq!(
            parts("[2001:db8::1]:443"),
            (net("2001:db8::1/128"), ports(443, 443), None)
        );
        assert_eq!(
            parts("[2001:db8::/32]:443/tcp"),
            (net("2001:db8::/32"), ports(443, 443), Some(Protocol::Tcp))
        );
        assert_eq!(
            parts("[2001:db8::1]/udp"),
            (net("2001:db8::1/128"), None, Some(Protocol::Udp))
        );
        // A bare IPv6 target is read whole: this is an address, no port.
        assert_eq!(
            parts("2001:db8::1:443"),
            (net("2001:db8::1:443/128"), None, None)
        );
    }

    #[test]
    fn name_targets() {
        assert_eq!(parts("example.com"), (exact("example.com"), None, None));
        assert_eq!(parts("Example.COM."), (exact("example.com"), None, None));
        assert_eq!(
            parts("a-1.example.com:443/tcp"),
            (
                exact("a-1.example.com"),
                ports(443, 443),
                Some(Protocol::Tcp)
            )
        );
        assert_eq!(parts("*.pypi.org"), (suffix("pypi.org"), None, None));
        assert_eq!(parts("*.com"), (suffix("com"), None, None));
        assert_eq!(
            parts("*.Example.com.:1-1024/udp"),
            (suffix("example.com"), ports(1, 1024), Some(Protocol::Udp))
        );
        assert_eq!(parts("1.example.com"), (exact("1.example.com"), None, None));
    }

    #[test]
    fn ports_and_protocols() {
        assert_eq!(
            parts("example.com:1"),
            (exact("example.com"), ports(1, 1), None)
        );
        assert_eq!(
            parts("example.com:65535"),
            (exact("example.com"), ports(65535, 65535), None)
        );
        assert_eq!(
            parts("example.com:80-80"),
            (exact("example.com"), ports(80, 80), None)
        );
        assert_eq!(
            parts("example.com/TCP"),
            (exact("example.com"), None, Some(Protocol::Tcp))
        );
        assert_eq!(
            parts("192.0.2.1/icmp"),
            (net("192.0.2.1/32"), None, Some(Protocol::Icmp))
        );
    }

    #[test]
    fn entry_level_errors() {
        assert_eq!(problem(""), EntryProblem::Empty);
        assert_eq!(problem(" 10.0.0.0/8"), EntryProblem::Whitespace);
        assert_eq!(problem("example.com :443"), EntryProblem::Whitespace);
        assert_eq!(problem("/tcp"), EntryProblem::MissingTarget);
        assert_eq!(problem(":443"), EntryProblem::MissingTarget);
        assert_eq!(
            problem("example.com/sctp"),
            EntryProblem::UnknownProtocol("sctp".into())
        );
        assert_eq!(problem("example.com:7/icmp"), EntryProblem::IcmpWithPorts);
    }

    #[test]
    fn port_errors() {
        assert_eq!(problem("example.com:"), EntryProblem::MissingPorts);
        assert_eq!(problem("example.com:0"), EntryProblem::PortZero);
        assert_eq!(problem("example.com:0-80"), EntryProblem::PortZero);
        assert_eq!(
            problem("example.com:65536"),
            EntryProblem::BadPort("65536".into())
        );
        assert_eq!(
            problem("example.com:+80"),
            EntryProblem::BadPort("+80".into())
        );
        assert_eq!(
            problem("example.com:http"),
            EntryProblem::BadPort("http".into())
        );
        assert_eq!(problem("example.com:80-"), EntryProblem::BadPort("".into()));
        assert_eq!(
            problem("example.com:1-2-3"),
            EntryProblem::BadPort("2-3".into())
        );
        assert_eq!(
            problem("example.com:8100-8000"),
            EntryProblem::ReversedRange {
                first: 8100,
                last: 8000
            }
        );
    }

    #[test]
    fn address_errors() {
        assert_eq!(
            problem("10.1.2.3/8"),
            EntryProblem::HostBitsSet {
                network: "10.0.0.0/8".parse().unwrap()
            }
        );
        assert_eq!(
            problem("2001:db8::1/32"),
            EntryProblem::HostBitsSet {
                network: "2001:db8::/32".parse().unwrap()
            }
        );
        assert_eq!(
            problem("10.0.0.0/33"),
            EntryProblem::BadPrefixLength {
                prefix: "33".into(),
                max: 32
            }
        );
        assert_eq!(
            problem("2001:db8::/129"),
            EntryProblem::BadPrefixLength {
                prefix: "129".into(),
                max: 128
            }
        );
        assert_eq!(
            problem("10.0.0.0/"),
            EntryProblem::BadPrefixLength {
                prefix: "".into(),
                max: 32
            }
        );
        assert_eq!(
            problem("10.0.0.256"),
            EntryProblem::BadIpv4("10.0.0.256".into())
        );
        assert_eq!(problem("10.0.0"), EntryProblem::BadIpv4("10.0.0".into()));
        assert_eq!(
            problem("010.0.0.1"),
            EntryProblem::BadIpv4("010.0.0.1".into())
        );
        assert_eq!(problem("443"), EntryProblem::BareNumber);
        assert_eq!(
            problem("2001:db8::g"),
            EntryProblem::BadIpv6("2001:db8::g".into())
        );
        assert_eq!(problem("example.com/8"), EntryProblem::PrefixWithoutAddress);
    }

    #[test]
    fn bracket_errors() {
        assert_eq!(problem("[2001:db8::1:443"), EntryProblem::UnclosedBracket);
        assert_eq!(problem("[10.0.0.1]:443"), EntryProblem::BracketsNotIpv6);
        assert_eq!(problem("[example.com]"), EntryProblem::BracketsNotIpv6);
        assert_eq!(
            problem("[2001:db8::1]443"),
            EntryProblem::AfterBracket("443".into())
        );
        assert_eq!(
            problem("2001:db8::/32:443/tcp"),
            EntryProblem::Ipv6NeedsBrackets {
                suggestion: "[2001:db8::/32]:443/tcp".into()
            }
        );
        assert_eq!(
            problem("::1:8000-8100"),
            EntryProblem::Ipv6NeedsBrackets {
                suggestion: "[::1]:8000-8100".into()
            }
        );
    }

    #[test]
    fn name_errors() {
        assert_eq!(problem("*.*.example.com"), EntryProblem::MisplacedWildcard);
        assert_eq!(problem("a*.example.com"), EntryProblem::MisplacedWildcard);
        assert_eq!(problem("example.*"), EntryProblem::MisplacedWildcard);
        assert_eq!(problem("*."), EntryProblem::MisplacedWildcard);
        assert_eq!(problem("localhost"), EntryProblem::SingleLabel);
        assert_eq!(problem("example..com"), EntryProblem::EmptyLabel);
        assert_eq!(problem(".example.com"), EntryProblem::EmptyLabel);
        assert_eq!(problem("example.com.."), EntryProblem::EmptyLabel);
        assert_eq!(
            problem("-a.example.com"),
            EntryProblem::LabelHyphen("-a".into())
        );
        assert_eq!(
            problem("a.example-.com"),
            EntryProblem::LabelHyphen("example-".into())
        );
        assert_eq!(problem("a_b.example.com"), EntryProblem::NameCharacter('_'));
        assert_eq!(problem("bücher.example"), EntryProblem::NameCharacter('ü'));
        assert_eq!(
            problem("example.123"),
            EntryProblem::NumericTopLabel("123".into())
        );
        let long_label = "a".repeat(64);
        assert_eq!(
            problem(&format!("{long_label}.com")),
            EntryProblem::LabelTooLong(long_label)
        );
        let longest = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "a".repeat(61));
        assert_eq!(longest.len(), 253);
        assert!(Entry::parse(&longest).is_ok());
        assert!(Entry::parse(&format!("{longest}.")).is_ok());
        assert_eq!(problem(&format!("a{longest}")), EntryProblem::NameTooLong);
    }

    #[test]
    fn error_names_the_entry_and_suggests_the_network() {
        let error = Entry::parse("10.1.2.3/8").unwrap_err();
        assert_eq!(
            error.to_string(),
            r#""10.1.2.3/8": host bits are set (did you mean 10.0.0.0/8?)"#
        );
    }
}
