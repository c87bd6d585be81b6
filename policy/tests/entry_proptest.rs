//! Property tests of the entry parser, which reads untrusted text (an inline
//! policy comes from a bundle or a pod annotation).

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::prelude::*;
use substrate_policy::network::{Entry, NamePattern, PortRange, Protocol, Target};

/// Text over the grammar's own alphabet, where the interesting cases are.
fn entry_like_text() -> impl Strategy<Value = String> {
    "[0-9a-fA-F:./*\\[\\]\\-tcpudimxz ]{0,48}"
}

fn target() -> impl Strategy<Value = Target> {
    let ipv4 = (any::<u32>(), 0..=32u8).prop_map(|(bits, len)| {
        IpNet::V4(Ipv4Net::new(Ipv4Addr::from(bits), len).unwrap().trunc())
    });
    let ipv6 = (any::<u128>(), 0..=128u8).prop_map(|(bits, len)| {
        IpNet::V6(Ipv6Net::new(Ipv6Addr::from(bits), len).unwrap().trunc())
    });
    let name = "([a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?\\.){1,3}[a-z]{2,6}";
    prop_oneof![
        Just(Target::Any),
        ipv4.prop_map(Target::Net),
        ipv6.prop_map(Target::Net),
        name.prop_map(|name| Target::Name(NamePattern::Exact(name))),
        name.prop_map(|name| Target::Name(NamePattern::Suffix(name))),
    ]
}

fn ports() -> impl Strategy<Value = Option<PortRange>> {
    proptest::option::of((1..=u16::MAX, 1..=u16::MAX).prop_map(|(a, b)| PortRange {
        first: a.min(b),
        last: a.max(b),
    }))
}

fn protocol() -> impl Strategy<Value = Option<Protocol>> {
    proptest::option::of(prop_oneof![
        Just(Protocol::Tcp),
        Just(Protocol::Udp),
        Just(Protocol::Icmp)
    ])
}

/// Writes an entry the way the grammar says to.
fn write_entry(target: &Target, ports: Option<PortRange>, protocol: Option<Protocol>) -> String {
    let mut text = match target {
        Target::Any => "*".to_owned(),
        Target::Net(net) if net.prefix_len() == net.max_prefix_len() => net.addr().to_string(),
        Target::Net(net) => net.to_string(),
        Target::Name(NamePattern::Exact(name)) => name.clone(),
        Target::Name(NamePattern::Suffix(name)) => format!("*.{name}"),
    };
    if let Some(ports) = ports {
        if matches!(target, Target::Net(IpNet::V6(_))) {
            text = format!("[{text}]");
        }
        text = format!("{text}:{ports}");
    }
    if let Some(protocol) = protocol {
        text = format!("{text}/{protocol}");
    }
    text
}

proptest! {
    #[test]
    fn parse_never_panics_on_any_string(text in any::<String>()) {
        let _ = Entry::parse(&text);
    }

    #[test]
    fn parse_never_panics_and_reparses_its_text(text in entry_like_text()) {
        if let Ok(entry) = Entry::parse(&text) {
            prop_assert_eq!(entry.text(), text.as_str());
            prop_assert_eq!(Entry::parse(entry.text()), Ok(entry));
        }
    }

    #[test]
    fn written_entries_parse_to_their_parts(
        target in target(),
        ports in ports(),
        protocol in protocol(),
    ) {
        // ICMP takes no ports.
        let ports = if protocol == Some(Protocol::Icmp) { None } else { ports };
        let text = write_entry(&target, ports, protocol);
        let entry = Entry::parse(&text).map_err(|error| TestCaseError::fail(error.to_string()))?;
        prop_assert_eq!(&entry.target, &target);
        prop_assert_eq!(entry.ports, ports);
        prop_assert_eq!(entry.protocol, protocol);
        prop_assert!(entry.covers(&entry), "{} does not cover itself", text);
    }
}
