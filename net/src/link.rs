//! A world's link to the outside: the host bridge, a veth pair with one end
//! in the world's netns, its addresses and default routes, and the host's
//! NAT of the bridge's subnet to the uplink — all over rtnetlink and
//! nfnetlink, never by running `ip` or `nft`.
//!
//! The bridge and its NAT table are shared by every world on it and stay
//! when the last world goes (as docker0 and cni0 do): creating them is
//! idempotent, and `substrate-cli doctor` shows them. What is a world's own
//! (its veth pair, its address lease) goes with it.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::{Ipv4Net, Ipv6Net};
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::fcntl::{Flock, FlockArg};

use crate::netns::NetNs;

/// The interface a world sees: `eth0`, as in every container.
pub const WORLD_INTERFACE: &str = "eth0";

/// Errors setting up or tearing down a world's link.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("{what}: {source}")]
    Netlink {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the bridge {bridge} has no free address left in {subnet}")]
    NoAddressLeft { bridge: String, subnet: Ipv4Net },
    #[error("bad bridge setting {value:?}: {reason}")]
    BadBridge { value: String, reason: String },
}

type Result<T, E = LinkError> = std::result::Result<T, E>;

fn netlink(what: impl Into<String>) -> impl FnOnce(io::Error) -> LinkError {
    let what = what.into();
    move |source| LinkError::Netlink { what, source }
}

/// The host bridge worlds join, and its subnets. The gateway of each is the
/// bridge's own (first) address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    pub name: String,
    pub v4: Ipv4Net,
    pub v6: Ipv6Net,
}

impl Default for Bridge {
    /// `substrate0`, 10.201.0.1/16 and fd5b:5b57:201::1/64: ranges picked to
    /// stay clear of docker's 172.17/16, CNI's and podman's 10.88/16 and
    /// Kubernetes' usual pod and service ranges.
    fn default() -> Self {
        Bridge {
            name: "substrate0".into(),
            v4: "10.201.0.1/16".parse().expect("a CIDR"),
            v6: "fd5b:5b57:201::1/64".parse().expect("a CIDR"),
        }
    }
}

impl FromStr for Bridge {
    type Err = LinkError;

    /// `NAME,V4/LEN,V6/LEN` (`substrate0,10.201.0.1/16,fd5b:5b57:201::1/64`):
    /// the addresses are the bridge's own, with their subnets' lengths.
    fn from_str(value: &str) -> Result<Self> {
        let bad = |reason: &str| LinkError::BadBridge {
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let mut parts = value.split(',');
        let (Some(name), Some(v4), Some(v6), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected NAME,IPV4/LEN,IPV6/LEN"));
        };
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', ',']) {
            return Err(bad("an interface name is 1 to 15 characters"));
        }
        let v4: Ipv4Net = v4.parse().map_err(|_| bad("not an IPv4 address/length"))?;
        let v6: Ipv6Net = v6.parse().map_err(|_| bad("not an IPv6 address/length"))?;
        if v4.prefix_len() > 28 || v6.prefix_len() > 120 {
            return Err(bad("the subnets are too small for worlds"));
        }
        Ok(Bridge {
            name: name.to_owned(),
            v4,
            v6,
        })
    }
}

impl Bridge {
    /// The nets a world must not reach through an answer to a name it may
    /// reach (DNS rebinding): the bridge's subnets, where the host and the
    /// other worlds are.
    pub fn protected(&self) -> Vec<ipnet::IpNet> {
        vec![self.v4.trunc().into(), self.v6.trunc().into()]
    }

    /// Removes the bridge, its NAT table and its leases: for an operator
    /// (and tests) once no world uses it. Idempotent.
    pub fn remove(&self, run_dir: &Path) -> Result<()> {
        let mut rtnl = Rtnl::open().map_err(netlink("cannot open a netlink socket"))?;
        rtnl.delete_link(&self.name)
            .map_err(netlink(format!("cannot delete {}", self.name)))?;
        nat::remove(self).map_err(netlink("cannot delete the bridge's NAT table"))?;
        let dir = self.leases_dir(run_dir);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(LinkError::Io {
                path: dir,
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Whether its NAT table is installed (an operator's `nft flush
    /// ruleset` removes it; worlds then reach no further than the host).
    pub fn nat_installed(&self) -> io::Result<bool> {
        nat::installed(self)
    }

    fn leases_dir(&self, run_dir: &Path) -> PathBuf {
        run_dir.join(&self.name)
    }
}

/// A world's end of the bridge: its addresses and the host side of its veth
/// pair. [`WorldLink::release`] takes it down; dropping it does nothing
/// (it is described in the world's state and released by whoever deletes
/// the world).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorldLink {
    pub bridge: String,
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
    pub host_interface: String,
    /// The lease file that holds `v4` for this world.
    pub lease: PathBuf,
}

/// Joins the world's netns to `bridge`: the bridge (and its NAT) made when
/// missing, an address leased, a veth pair with `eth0` in the world, its
/// addresses, `lo` and `eth0` up, default routes through the bridge. The
/// leases live under `run_dir` (`/run/substrate/net`). On failure nothing
/// of the world's is left.
pub fn attach(world: &NetNs, bridge: &Bridge, run_dir: &Path, owner: &str) -> Result<WorldLink> {
    let dir = bridge.leases_dir(run_dir);
    fs::create_dir_all(&dir).map_err(|source| LinkError::Io {
        path: dir.clone(),
        source,
    })?;
    // One world at a time on this bridge: the lease and the veth named
    // after it are made together, so a lease without its veth is stale.
    let lock_path = dir.join(".lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| LinkError::Io {
            path: lock_path.clone(),
            source,
        })?;
    let _lock = Flock::lock(lock, FlockArg::LockExclusive).map_err(|(_, e)| LinkError::Io {
        path: lock_path,
        source: e.into(),
    })?;
    let mut rtnl = Rtnl::open().map_err(netlink("cannot open a netlink socket"))?;
    let bridge_index = ensure_bridge(&mut rtnl, bridge)?;
    let (v4, lease) = lease_address(bridge, &dir, owner)?;
    let link = WorldLink {
        bridge: bridge.name.clone(),
        v4,
        v6: v6_for(bridge, v4),
        host_interface: host_interface_name(v4),
        lease,
    };
    match join(
        &mut rtnl,
        world,
        (bridge.v4, bridge.v6),
        bridge_index,
        &link,
    ) {
        Ok(()) => Ok(link),
        Err(e) => {
            let _ = rtnl.delete_link(&link.host_interface);
            let _ = fs::remove_file(&link.lease);
            Err(e)
        }
    }
}

/// Joins a namespace that serves worlds (a test's hosts, a sidecar) to
/// `bridge` on subnets of its own, outside the worlds' (whose addresses the
/// worlds' resolvers never admit from an answer): `v4` and `v6` are its
/// addresses with their subnets' lengths; the first address of each subnet
/// is added to the bridge as its gateway, and the host routes between the
/// subnets. No lease: the caller chooses the addresses.
pub fn attach_service(
    world: &NetNs,
    bridge: &Bridge,
    v4: Ipv4Net,
    v6: Ipv6Net,
) -> Result<WorldLink> {
    let mut rtnl = Rtnl::open().map_err(netlink("cannot open a netlink socket"))?;
    let bridge_index = ensure_bridge(&mut rtnl, bridge)?;
    // The first address of each subnet.
    let gateway4 = Ipv4Net::new(Ipv4Addr::from(u32::from(v4.network()) + 1), v4.prefix_len())
        .expect("a valid length");
    let gateway6 = Ipv6Net::new(
        Ipv6Addr::from(u128::from(v6.network()) + 1),
        v6.prefix_len(),
    )
    .expect("a valid length");
    for gateway in [ipnet::IpNet::from(gateway4), gateway6.into()] {
        rtnl.add_address(bridge_index, gateway.addr(), gateway.prefix_len())
            .map_err(netlink(format!("cannot add {gateway} to {}", bridge.name)))?;
    }
    let link = WorldLink {
        bridge: bridge.name.clone(),
        v4: v4.addr(),
        v6: v6.addr(),
        host_interface: host_interface_name(v4.addr()),
        lease: PathBuf::new(),
    };
    match join(&mut rtnl, world, (gateway4, gateway6), bridge_index, &link) {
        Ok(()) => Ok(link),
        Err(e) => {
            let _ = rtnl.delete_link(&link.host_interface);
            Err(e)
        }
    }
}

impl WorldLink {
    /// Deletes the host side of the veth pair (the world's side goes with
    /// it) and frees the address. Idempotent: what is gone already is fine.
    pub fn release(&self) -> Result<()> {
        let mut rtnl = Rtnl::open().map_err(netlink("cannot open a netlink socket"))?;
        rtnl.delete_link(&self.host_interface)
            .map_err(netlink(format!("cannot delete {}", self.host_interface)))?;
        if self.lease.as_os_str().is_empty() {
            return Ok(());
        }
        match fs::remove_file(&self.lease) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(LinkError::Io {
                path: self.lease.clone(),
                source: e,
            }),
            _ => Ok(()),
        }
    }
}

/// The host side of a world's veth: named after its address, so a lease
/// names its interface and the name is unique on the host.
fn host_interface_name(v4: Ipv4Addr) -> String {
    format!("sb{:08x}", u32::from(v4))
}

/// The world's IPv6 address: the bridge's prefix with the same host part as
/// its IPv4 address.
fn v6_for(bridge: &Bridge, v4: Ipv4Addr) -> Ipv6Addr {
    let host = u32::from(v4) & !u32::from(bridge.v4.netmask());
    Ipv6Addr::from(u128::from(bridge.v6.network()) | u128::from(host))
}

/// Takes the lowest free address of the bridge's subnet (after the
/// bridge's own) by creating its lease file. A lease whose veth is gone
/// (its world's netns died without a delete) is stale and taken over.
fn lease_address(bridge: &Bridge, dir: &Path, owner: &str) -> Result<(Ipv4Addr, PathBuf)> {
    for address in bridge.v4.hosts() {
        if address == bridge.v4.addr() {
            continue;
        }
        let path = dir.join(address.to_string());
        let created = OpenOptions::new().write(true).create_new(true).open(&path);
        let mut file = match created {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let interface = host_interface_name(address);
                if Path::new("/sys/class/net").join(&interface).exists() {
                    continue;
                }
                // Stale: its world is gone. Taken over under the lock.
                File::create(&path).map_err(|source| LinkError::Io {
                    path: path.clone(),
                    source,
                })?
            }
            Err(source) => return Err(LinkError::Io { path, source }),
        };
        file.write_all(owner.as_bytes())
            .map_err(|source| LinkError::Io {
                path: path.clone(),
                source,
            })?;
        return Ok((address, path));
    }
    Err(LinkError::NoAddressLeft {
        bridge: bridge.name.clone(),
        subnet: bridge.v4,
    })
}

/// The bridge's index, made (with its addresses, up, with IPv4 forwarding
/// and the NAT of its subnets) when it does not exist.
fn ensure_bridge(rtnl: &mut Rtnl, bridge: &Bridge) -> Result<u32> {
    if let Some(index) = rtnl
        .link_index(&bridge.name)
        .map_err(netlink(format!("cannot look up {}", bridge.name)))?
    {
        // The NAT table was installed with the bridge. Not re-installed
        // per world: closing an nfnetlink socket after a commit waits an
        // RCU grace period (~10 ms here), a third of a world's setup.
        // `substrate-cli doctor` says when it is missing
        // (`Bridge::nat_installed`).
        return Ok(index);
    }
    let mut link = LinkMessage::default();
    link.attributes
        .push(LinkAttribute::IfName(bridge.name.clone()));
    link.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Bridge,
        )]));
    rtnl.request(
        RouteNetlinkMessage::NewLink(link),
        NLM_F_CREATE | NLM_F_EXCL,
    )
    .map_err(netlink(format!("cannot create the bridge {}", bridge.name)))?;
    let index = rtnl
        .link_index(&bridge.name)
        .map_err(netlink(format!("cannot look up {}", bridge.name)))?
        .ok_or_else(|| LinkError::Netlink {
            what: format!("the bridge {} vanished", bridge.name),
            source: io::Error::from(ErrorKind::NotFound),
        })?;
    let setup = (|| -> io::Result<()> {
        rtnl.add_address(index, bridge.v4.addr().into(), bridge.v4.prefix_len())?;
        rtnl.add_address(index, bridge.v6.addr().into(), bridge.v6.prefix_len())?;
        rtnl.set_up(index)?;
        // Worlds reach the uplink through the host's routing. IPv6
        // forwarding is left as the host has it: turning it on makes the
        // host stop accepting router advertisements.
        fs::write("/proc/sys/net/ipv4/ip_forward", "1")?;
        nat::install(bridge)
    })();
    setup.map_err(|e| {
        let _ = rtnl.delete_link(&bridge.name);
        LinkError::Netlink {
            what: format!("cannot set up the bridge {}", bridge.name),
            source: e,
        }
    })?;
    Ok(index)
}

/// The veth pair, the world's addresses and routes.
fn join(
    rtnl: &mut Rtnl,
    world: &NetNs,
    (subnet4, subnet6): (Ipv4Net, Ipv6Net),
    bridge_index: u32,
    link: &WorldLink,
) -> Result<()> {
    let mut peer = LinkMessage::default();
    peer.attributes
        .push(LinkAttribute::IfName(WORLD_INTERFACE.into()));
    peer.attributes.push(LinkAttribute::NetNsFd(
        std::os::fd::AsFd::as_fd(world).as_raw_fd(),
    ));
    let mut host = LinkMessage::default();
    host.attributes
        .push(LinkAttribute::IfName(link.host_interface.clone()));
    host.attributes
        .push(LinkAttribute::Controller(bridge_index));
    host.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    rtnl.request(
        RouteNetlinkMessage::NewLink(host),
        NLM_F_CREATE | NLM_F_EXCL,
    )
    .map_err(netlink(format!(
        "cannot create the veth pair {}/{WORLD_INTERFACE}",
        link.host_interface
    )))?;
    let host_index = rtnl
        .link_index(&link.host_interface)
        .and_then(|i| i.ok_or_else(|| io::Error::from(ErrorKind::NotFound)))
        .map_err(netlink(format!("cannot look up {}", link.host_interface)))?;
    rtnl.set_up(host_index)
        .map_err(netlink(format!("cannot bring up {}", link.host_interface)))?;
    let (v4, v6) = (link.v4, link.v6);
    let (v4_len, v6_len) = (subnet4.prefix_len(), subnet6.prefix_len());
    let (gateway4, gateway6) = (subnet4.addr(), subnet6.addr());
    world
        .run(move || {
            let mut rtnl = Rtnl::open()?;
            let lo = rtnl.link_index("lo")?.ok_or(ErrorKind::NotFound)?;
            rtnl.set_up(lo)?;
            let eth0 = rtnl
                .link_index(WORLD_INTERFACE)?
                .ok_or(ErrorKind::NotFound)?;
            rtnl.add_address(eth0, v4.into(), v4_len)?;
            rtnl.add_address(eth0, v6.into(), v6_len)?;
            rtnl.set_up(eth0)?;
            rtnl.add_default_route(eth0, gateway4.into())?;
            rtnl.add_default_route(eth0, gateway6.into())?;
            Ok(())
        })
        .map_err(netlink(format!(
            "cannot configure {WORLD_INTERFACE} in the world"
        )))
}

/// The addresses of the calling thread's network namespace (the host's,
/// from the host): what a world must not reach through a broad allow entry
/// or a name's answer (see [`crate::protected`]).
pub fn host_addresses() -> io::Result<Vec<IpAddr>> {
    let mut rtnl = Rtnl::open()?;
    let answers = rtnl.request(
        RouteNetlinkMessage::GetAddress(AddressMessage::default()),
        netlink_packet_core::NLM_F_DUMP,
    )?;
    Ok(answers
        .into_iter()
        .filter_map(|answer| match answer {
            RouteNetlinkMessage::NewAddress(message) => {
                message.attributes.into_iter().find_map(|a| match a {
                    AddressAttribute::Local(ip) => Some(ip),
                    AddressAttribute::Address(ip) => Some(ip),
                    _ => None,
                })
            }
            _ => None,
        })
        .collect())
}

/// Bytes a network namespace sent and received through its interfaces but
/// the loopback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    pub sent: u64,
    pub received: u64,
}

/// What `netns` has sent and received so far (its interfaces' counters,
/// `lo` left out).
pub fn traffic(netns: &NetNs) -> io::Result<Traffic> {
    netns.run(|| {
        let mut rtnl = Rtnl::open()?;
        let answers = rtnl.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            netlink_packet_core::NLM_F_DUMP,
        )?;
        let mut traffic = Traffic::default();
        for answer in answers {
            let RouteNetlinkMessage::NewLink(link) = answer else {
                continue;
            };
            let loopback = link
                .attributes
                .iter()
                .any(|a| matches!(a, LinkAttribute::IfName(name) if name == "lo"));
            if loopback {
                continue;
            }
            for attribute in &link.attributes {
                if let LinkAttribute::Stats64(stats) = attribute {
                    traffic.sent += stats.tx_bytes;
                    traffic.received += stats.rx_bytes;
                }
            }
        }
        Ok(traffic)
    })
}

/// Brings `lo` up in `netns`: a new network namespace starts with it down,
/// and a world without a network still reaches itself on 127.0.0.1 (as
/// docker's and podman's `--network none` do).
pub fn bring_up_loopback(netns: &NetNs) -> io::Result<()> {
    netns.run(|| {
        let mut rtnl = Rtnl::open()?;
        let lo = rtnl.link_index("lo")?.ok_or(ErrorKind::NotFound)?;
        rtnl.set_up(lo)
    })
}

/// A blocking rtnetlink socket that sends one request at a time and waits
/// for its answer.
struct Rtnl {
    socket: Socket,
    sequence: u32,
}

impl Rtnl {
    fn open() -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl {
            socket,
            sequence: 0,
        })
    }

    /// Sends `message` with `flags` (plus REQUEST and ACK) and returns the
    /// messages the kernel answered with, up to its ACK (or DONE, for a
    /// dump); a NACK is the error it carries.
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
        packet.finalize();
        let mut buffer = vec![0; packet.buffer_len()];
        packet.serialize(&mut buffer);
        self.socket.send(&buffer, 0)?;
        let mut answers = Vec::new();
        let mut receive = vec![0u8; 64 * 1024];
        loop {
            receive.clear();
            let size = self.socket.recv(&mut receive, 0)?;
            let mut offset = 0;
            while offset < size {
                let reply =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&receive[offset..size])
                        .map_err(|e| io::Error::new(ErrorKind::InvalidData, e.to_string()))?;
                let length = reply.header.length as usize;
                if length == 0 {
                    return Err(io::Error::new(
                        ErrorKind::InvalidData,
                        "empty netlink message",
                    ));
                }
                offset += (length + 3) & !3;
                if reply.header.sequence_number != self.sequence {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(error) if error.code.is_some() => {
                        return Err(error.to_io())
                    }
                    NetlinkPayload::Error(_) | NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                    _ => {}
                }
            }
        }
    }

    /// The index of the interface `name`, if it exists.
    fn link_index(&mut self, name: &str) -> io::Result<Option<u32>> {
        let mut link = LinkMessage::default();
        link.attributes.push(LinkAttribute::IfName(name.to_owned()));
        match self.request(RouteNetlinkMessage::GetLink(link), 0) {
            Ok(answers) => Ok(answers.into_iter().find_map(|answer| match answer {
                RouteNetlinkMessage::NewLink(link) => Some(link.header.index),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn set_up(&mut self, index: u32) -> io::Result<()> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.header.flags = LinkFlags::Up;
        link.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(link), 0)
            .map(drop)
    }

    /// Deletes the interface `name`; one that does not exist is fine.
    fn delete_link(&mut self, name: &str) -> io::Result<()> {
        let mut link = LinkMessage::default();
        link.attributes.push(LinkAttribute::IfName(name.to_owned()));
        match self.request(RouteNetlinkMessage::DelLink(link), 0) {
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(()),
            other => other.map(drop),
        }
    }

    fn add_address(&mut self, index: u32, address: IpAddr, prefix_len: u8) -> io::Result<()> {
        let mut message = AddressMessage::default();
        message.header.index = index;
        message.header.prefix_len = prefix_len;
        message.header.family = family(address);
        message.attributes.push(AddressAttribute::Local(address));
        message.attributes.push(AddressAttribute::Address(address));
        // No duplicate address detection: the address is leased, and DAD
        // would keep it unusable for a second after the world starts.
        message
            .attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        match self.request(
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_CREATE | NLM_F_EXCL,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            other => other.map(drop),
        }
    }

    fn add_default_route(&mut self, index: u32, gateway: IpAddr) -> io::Result<()> {
        let mut route = RouteMessage::default();
        route.header = RouteHeader {
            address_family: family(gateway),
            table: RouteHeader::RT_TABLE_MAIN,
            protocol: RouteProtocol::Static,
            scope: RouteScope::Universe,
            kind: RouteType::Unicast,
            ..RouteHeader::default()
        };
        route
            .attributes
            .push(RouteAttribute::Gateway(match gateway {
                IpAddr::V4(a) => RouteAddress::Inet(a),
                IpAddr::V6(a) => RouteAddress::Inet6(a),
            }));
        route.attributes.push(RouteAttribute::Oif(index));
        self.request(
            RouteNetlinkMessage::NewRoute(route),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }
}

fn family(address: IpAddr) -> AddressFamily {
    match address {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// The host's NAT of the bridge's subnets: table `inet substrate-nat-BRIDGE`,
/// masquerading what leaves the host from a world through any interface but
/// the bridge.
mod nat {
    use super::*;
    use crate::egress::{commit, BatchBuffer};
    use crate::nflog::NetfilterSocket;
    use nftnl::expr::{
        Bitwise, Cmp, CmpOp, Ipv4HeaderField, Ipv6HeaderField, Masquerade, Meta,
        NetworkHeaderField, Payload,
    };
    use nftnl::{Chain, Hook, MsgType, Policy, ProtoFamily, Rule, Table};

    /// One table per bridge: `substrate-nat-<bridge>`.
    fn table_name(bridge: &Bridge) -> CString {
        CString::new(format!("substrate-nat-{}", bridge.name)).expect("no NUL in a name")
    }

    /// Whether the bridge's NAT table is in the calling thread's netns.
    pub(super) fn installed(bridge: &Bridge) -> io::Result<bool> {
        let socket = mnl::Socket::new(mnl::Bus::Netfilter)?;
        let portid = socket.portid();
        const SEQ: u32 = 1;
        let request = nftnl::table::get_tables_nlmsg(SEQ);
        let length = u32::from_ne_bytes(request[0..4].try_into().expect("4 bytes")) as usize;
        socket.send(&request[..length.clamp(16, request.len())])?;
        let mut tables = std::collections::HashSet::new();
        let mut buffer = vec![0u8; nftnl::nft_nlmsg_maxsize() as usize];
        loop {
            let size = socket.recv(&mut buffer[..])?;
            if size == 0 {
                break;
            }
            let run = mnl::cb_run2(
                &buffer[..size],
                SEQ,
                portid,
                nftnl::table::get_tables_cb,
                &mut tables,
            )?;
            if matches!(run, mnl::CbResult::Stop) {
                break;
            }
        }
        Ok(tables.contains(&table_name(bridge)))
    }

    pub(super) fn remove(bridge: &Bridge) -> io::Result<()> {
        let table = Table::new(table_name(bridge), ProtoFamily::Inet);
        let mut batch = BatchBuffer::new();
        batch.push(&table, MsgType::Add, "table (added to be deleted)");
        batch.push(&table, MsgType::Del, "table");
        send(batch)
    }

    pub(super) fn install(bridge: &Bridge) -> io::Result<()> {
        let name = table_name(bridge);
        let table = Table::new(&name, ProtoFamily::Inet);
        let mut batch = BatchBuffer::new();
        // Add, delete, add: replaces the table whether or not it exists,
        // in one transaction.
        batch.push(&table, MsgType::Add, "table (added to be replaced)");
        batch.push(&table, MsgType::Del, "table (the previous one)");
        batch.push(&table, MsgType::Add, "table");
        let mut chain = Chain::new(c"postrouting", &table);
        chain.set_hook(Hook::PostRouting, 100);
        chain.set_type(nftnl::ChainType::Nat);
        chain.set_policy(Policy::Accept);
        batch.push(&chain, MsgType::Add, "chain postrouting");
        let bridge_name = CString::new(bridge.name.as_str()).expect("no NUL in a name");
        for net in [
            ipnet::IpNet::from(bridge.v4.trunc()),
            bridge.v6.trunc().into(),
        ] {
            let mut rule = Rule::new(&chain);
            rule.add_expr(&Meta::NfProto);
            rule.add_expr(&Cmp::new(
                CmpOp::Eq,
                match net {
                    ipnet::IpNet::V4(_) => libc::NFPROTO_IPV4 as u8,
                    ipnet::IpNet::V6(_) => libc::NFPROTO_IPV6 as u8,
                },
            ));
            match net {
                ipnet::IpNet::V4(net) => {
                    rule.add_expr(&Payload::Network(NetworkHeaderField::Ipv4(
                        Ipv4HeaderField::Saddr,
                    )));
                    rule.add_expr(&Bitwise::new(net.netmask(), 0u32));
                    rule.add_expr(&Cmp::new(CmpOp::Eq, net.network()));
                }
                ipnet::IpNet::V6(net) => {
                    rule.add_expr(&Payload::Network(NetworkHeaderField::Ipv6(
                        Ipv6HeaderField::Saddr,
                    )));
                    rule.add_expr(&Bitwise::new(net.netmask(), Ipv6Addr::UNSPECIFIED));
                    rule.add_expr(&Cmp::new(CmpOp::Eq, net.network()));
                }
            }
            rule.add_expr(&Meta::OifName);
            rule.add_expr(&Cmp::new(CmpOp::Neq, bridge_name.as_bytes_with_nul()));
            rule.add_expr(&Masquerade);
            batch.push(&rule, MsgType::Add, format!("rule: masquerade {net}"));
        }
        send(batch)
    }

    /// Commits `batch` through a netfilter socket of the calling thread's
    /// netns: the egress table's transaction, applied whole or not at all.
    fn send(batch: BatchBuffer) -> io::Result<()> {
        let socket = NetfilterSocket::open(false)?;
        commit(&socket, &batch.finish()).map_err(io::Error::other)
    }
}
