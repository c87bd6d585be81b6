//! Networks a world never reaches unless an allow entry names them: the
//! host's own loopback and link-local ranges (169.254.169.254 is the cloud's
//! metadata service), multicast and broadcast, and whatever the caller adds
//! (the bridge's subnets, where the host and the other worlds are; the
//! host's own addresses). `*`, `0.0.0.0/0` or a broad CIDR does not name
//! them; an entry *within* one does (`169.254.169.254:80/tcp`). The egress
//! table refuses them before its allow rules, and the resolver never admits
//! an answer in them (DNS rebinding).

use std::net::IpAddr;

use ipnet::IpNet;

/// Protected on every host.
const ALWAYS: [&str; 9] = [
    "0.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "255.255.255.255/32",
    "::/128",
    "::1/128",
    "fe80::/10",
    "ff00::/8",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    nets: Vec<IpNet>,
}

impl Default for Protected {
    fn default() -> Self {
        Protected::new([])
    }
}

impl Protected {
    /// The nets protected everywhere, and `extra`.
    pub fn new(extra: impl IntoIterator<Item = IpNet>) -> Protected {
        let mut nets: Vec<IpNet> = ALWAYS
            .iter()
            .map(|net| net.parse().expect("a CIDR"))
            .chain(extra.into_iter().map(|net| net.trunc()))
            .collect();
        nets.sort();
        nets.dedup();
        Protected { nets }
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// The protected net that holds `address` (an IPv4-mapped IPv6 address
    /// is judged as its IPv4 address: that is where it leads).
    pub fn containing(&self, address: IpAddr) -> Option<IpNet> {
        let address = address.to_canonical();
        self.nets.iter().find(|net| net.contains(&address)).copied()
    }

    /// Whether an allow entry for `net` names protected addresses
    /// explicitly: it lies within a protected net.
    pub fn names_explicitly(&self, net: &IpNet) -> bool {
        self.nets.iter().any(|protected| protected.contains(net))
    }

    /// Whether `address` may be reached (or admitted from an answer) under
    /// allow entries for `allowed` nets: it is not protected, or one of
    /// them names it explicitly.
    pub fn admits(&self, address: IpAddr, allowed: &[IpNet]) -> bool {
        let canonical = address.to_canonical();
        self.containing(address).is_none()
            || allowed
                .iter()
                .any(|net| net.contains(&canonical) && self.names_explicitly(net))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    #[test]
    fn only_an_entry_within_a_protected_net_names_it() {
        let protected = Protected::new([net("10.201.0.0/16")]);
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        assert!(!protected.admits(metadata, &[net("0.0.0.0/0")]));
        assert!(!protected.admits(metadata, &[net("169.0.0.0/8")]));
        assert!(protected.admits(metadata, &[net("169.254.169.254/32")]));
        assert!(!protected.admits("10.201.0.7".parse().unwrap(), &[net("10.0.0.0/8")]));
        assert!(protected.admits("10.201.0.7".parse().unwrap(), &[net("10.201.0.0/24")]));
        assert!(protected.admits("192.0.2.1".parse().unwrap(), &[]));
        // Mapped: judged as IPv4.
        assert!(!protected.admits("::ffff:127.0.0.1".parse().unwrap(), &[net("::/0")]));
    }
}
