//! The packets a world's egress table logs, read from the world's netns.
//!
//! The table's `log group G` statements hand packets to nfnetlink_log, whose
//! groups belong to a network namespace: the reader's socket is opened on a
//! thread inside the world's netns (see [`NetNs::run`]) and stays there.
//! What arrives is untrusted: the payload is the start of a packet the world
//! wrote, so every length is checked and nothing here panics on it.
//!
//! The netlink framing is parsed by hand: a header, a `nfgenmsg`, then
//! `nlattr`s (netlink(7), `include/uapi/linux/netfilter/nfnetlink_log.h`).
//! [`NetfilterSocket`] and [`messages`] are shared with [`crate::egress`],
//! which talks to nf_tables over the same kind of socket.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::socket::{
    bind, recv, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag,
    SockProtocol, SockType,
};

use crate::netns::NetNs;

/// How much of each packet the kernel copies: an IPv4 or IPv6 header with
/// room for extension headers, and the transport header's ports.
pub const COPY_RANGE: u32 = 128;

/// The receive buffer asked for, so that a burst of connects is queued
/// rather than dropped (ENOBUFS) while the reader is busy.
const RECEIVE_BUFFER: usize = 1 << 20;

/// Netlink message types (`include/uapi/linux/netlink.h`).
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
/// `NFNL_SUBSYS_ULOG`: nfnetlink_log's subsystem id, the high byte of the type.
const NFNL_SUBSYS_ULOG: u16 = 4;
const NFNETLINK_V0: u8 = 0;
const NLA_TYPE_MASK: u16 = 0x3fff;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_SCTP: u8 = 132;
const IPPROTO_UDPLITE: u8 = 136;

/// The address family of a logged packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

/// One packet the egress table logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedPacket {
    /// The log statement's prefix: which rule logged it (see
    /// [`crate::egress::EgressTable::decision`]).
    pub prefix: String,
    pub family: Family,
    /// The transport protocol (IPPROTO_*), after IPv6 extension headers.
    pub protocol: u8,
    pub source: IpAddr,
    pub destination: IpAddr,
    /// TCP, UDP, UDP-Lite and SCTP only, and not for a non-first fragment.
    pub source_port: Option<u16>,
    pub destination_port: Option<u16>,
    /// The IP total length (IPv6: payload length + 40), as the header says.
    pub length: u32,
    /// The fsuid/fsgid of the sending socket's file, when the packet has one
    /// (not for a reset or an ICMP error the kernel sends itself).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// The group's record number (NFULA_SEQ): consecutive unless records
    /// were lost.
    pub sequence: Option<u32>,
}

/// Reads the packets logged to one NFLOG group of one network namespace.
#[derive(Debug)]
pub struct NflogReader {
    socket: NetfilterSocket,
    group: u16,
    buffer: Vec<u8>,
    /// Packets that arrived while the configuration's ack was awaited.
    pending: Vec<LoggedPacket>,
    /// How often the kernel said it dropped records (ENOBUFS).
    overruns: u64,
    /// Records that could not be parsed (no payload, a truncated header).
    malformed: u64,
    /// The last record's sequence number, and how many numbers were skipped.
    last_sequence: Option<u32>,
    skipped: u64,
}

impl NflogReader {
    /// Binds `group` in `netns`'s nfnetlink_log: only one socket per
    /// namespace can hold a group (EBUSY for a second one).
    pub fn open(netns: &NetNs, group: u16) -> io::Result<NflogReader> {
        let socket = netns.run(|| NetfilterSocket::open(true))?;
        // Best effort: without CAP_NET_ADMIN the default buffer stays, and a
        // burst may be counted in `overruns` instead of read.
        if setsockopt(&socket.fd, sockopt::RcvBufForce, &RECEIVE_BUFFER).is_err() {
            let _ = setsockopt(&socket.fd, sockopt::RcvBuf, &RECEIVE_BUFFER);
        }
        let mut reader = NflogReader {
            socket,
            group,
            buffer: vec![0; 1 << 16],
            pending: Vec::new(),
            overruns: 0,
            malformed: 0,
            last_sequence: None,
            skipped: 0,
        };
        reader.configure()?;
        Ok(reader)
    }

    /// The group this reader holds.
    pub fn group(&self) -> u16 {
        self.group
    }

    /// How many times the kernel reported dropping records because the
    /// socket's buffer was full.
    pub fn overruns(&self) -> u64 {
        self.overruns
    }

    /// How many records were skipped as unparsable.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// How many records never arrived, by the gaps in their sequence
    /// numbers (the kernel drops records it cannot queue).
    pub fn lost(&self) -> u64 {
        self.skipped
    }

    /// The packets queued now; empty when there are none (never blocks:
    /// poll the fd to wait).
    pub fn read(&mut self) -> io::Result<Vec<LoggedPacket>> {
        let mut packets = std::mem::take(&mut self.pending);
        loop {
            let len = match self.socket.recv(&mut self.buffer) {
                Ok(len) => len,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(packets),
                // The kernel dropped records (netlink(7)): say so, keep reading.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.overruns += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            self.collect(len, &mut packets, None)?;
        }
    }

    /// Binds the group, asks for packets (not only metadata), and for each
    /// record to be sent at once (queue threshold 1) rather than batched for
    /// up to a second. One config message; the kernel handles the bind first.
    fn configure(&mut self) -> io::Result<()> {
        const SEQ: u32 = 1;
        let mut message = NetlinkWriter::new(
            (NFNL_SUBSYS_ULOG << 8) | libc::NFULNL_MSG_CONFIG as u16,
            (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16,
            SEQ,
        );
        message.nfgenmsg(libc::AF_UNSPEC as u8, self.group);
        message.attr(
            libc::NFULA_CFG_CMD as u16,
            &[libc::NFULNL_CFG_CMD_BIND as u8],
        );
        // struct nfulnl_msg_config_mode { __be32 copy_range; __u8 copy_mode; __u8 _pad; }
        let mut mode = [0u8; 6];
        mode[..4].copy_from_slice(&COPY_RANGE.to_be_bytes());
        mode[4] = libc::NFULNL_COPY_PACKET as u8;
        message.attr(libc::NFULA_CFG_MODE as u16, &mode);
        message.attr(libc::NFULA_CFG_QTHRESH as u16, &1u32.to_be_bytes());
        // Sequence numbers make lost records visible (`lost`); uid and gid
        // need no flag, the kernel adds them when the packet has a socket
        // with a file.
        message.attr(
            libc::NFULA_CFG_FLAGS as u16,
            &(libc::NFULNL_CFG_F_SEQ as u16).to_be_bytes(),
        );
        self.socket.send(message.finish())?;
        // The ack is queued while `send` runs (nfnetlink handles a config
        // message synchronously), but logged packets may be queued before
        // it by other CPUs: keep those for the first `read`.
        let mut packets = Vec::new();
        loop {
            let len = match self.socket.recv(&mut self.buffer) {
                Ok(len) => len,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("nfnetlink_log sent no ack binding group {}", self.group),
                    ))
                }
                Err(e) => return Err(e),
            };
            if self.collect(len, &mut packets, Some(SEQ))? {
                self.pending = packets;
                return Ok(());
            }
        }
    }

    /// Parses one datagram into `packets`; returns whether it held the ack
    /// for `ack_seq`, and fails on an error reply.
    fn collect(
        &mut self,
        len: usize,
        packets: &mut Vec<LoggedPacket>,
        ack_seq: Option<u32>,
    ) -> io::Result<bool> {
        let packet_type = NFNL_SUBSYS_ULOG << 8 | libc::NFULNL_MSG_PACKET as u16;
        let mut acked = false;
        for message in messages(&self.buffer[..len]) {
            match message.kind {
                NLMSG_ERROR => {
                    let code = error_code(message.payload);
                    if code != 0 {
                        return Err(io::Error::from_raw_os_error(code));
                    }
                    acked |= Some(message.seq) == ack_seq;
                }
                kind if kind == packet_type => match parse_packet(message.payload) {
                    Some(packet) => {
                        if let Some(sequence) = packet.sequence {
                            if let Some(last) = self.last_sequence {
                                self.skipped += skipped_between(last, sequence);
                            }
                            self.last_sequence = Some(sequence);
                        }
                        packets.push(packet);
                    }
                    None => self.malformed += 1,
                },
                _ => {}
            }
        }
        Ok(acked)
    }
}

impl AsFd for NflogReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.fd.as_fd()
    }
}

impl AsRawFd for NflogReader {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.fd.as_raw_fd()
    }
}

/// How many sequence numbers lie strictly between `last` and `next`
/// (wrapping); none when `next` is not ahead of `last` (a reset group).
fn skipped_between(last: u32, next: u32) -> u64 {
    let gap = next.wrapping_sub(last).wrapping_sub(1);
    if gap < u32::MAX / 2 {
        u64::from(gap)
    } else {
        0
    }
}

/// Parses an `NFULNL_MSG_PACKET` message's payload (after the netlink
/// header): `None` when it has no usable IP header.
fn parse_packet(payload: &[u8]) -> Option<LoggedPacket> {
    // struct nfgenmsg { __u8 nfgen_family; __u8 version; __be16 res_id; }
    let attributes = payload.get(4..)?;
    let mut prefix = String::new();
    let mut ip_packet: Option<&[u8]> = None;
    let mut uid = None;
    let mut gid = None;
    let mut sequence = None;
    for (kind, value) in attrs(attributes) {
        match kind as i32 {
            libc::NFULA_PREFIX => {
                // NUL-terminated by the kernel; a prefix is ours, but lossy
                // decoding costs nothing and cannot fail.
                let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
                prefix = String::from_utf8_lossy(&value[..end]).into_owned();
            }
            libc::NFULA_PAYLOAD => ip_packet = Some(value),
            libc::NFULA_UID => uid = be32(value),
            libc::NFULA_GID => gid = be32(value),
            libc::NFULA_SEQ => sequence = be32(value),
            _ => {}
        }
    }
    let headers = parse_ip(ip_packet?)?;
    Some(LoggedPacket {
        prefix,
        family: headers.family,
        protocol: headers.protocol,
        source: headers.source,
        destination: headers.destination,
        source_port: headers.ports.map(|(s, _)| s),
        destination_port: headers.ports.map(|(_, d)| d),
        length: headers.length,
        uid,
        gid,
        sequence,
    })
}

struct IpHeaders {
    family: Family,
    protocol: u8,
    source: IpAddr,
    destination: IpAddr,
    ports: Option<(u16, u16)>,
    length: u32,
}

/// The network and transport headers of a packet's first bytes.
fn parse_ip(packet: &[u8]) -> Option<IpHeaders> {
    match packet.first()? >> 4 {
        4 => parse_ipv4(packet),
        6 => parse_ipv6(packet),
        _ => None,
    }
}

fn parse_ipv4(packet: &[u8]) -> Option<IpHeaders> {
    let header_len = usize::from(packet.first()? & 0x0f) * 4;
    if header_len < 20 || packet.len() < header_len {
        return None;
    }
    let fragment_offset = u16::from_be_bytes([packet[6], packet[7]]) & 0x1fff;
    let protocol = packet[9];
    let source = Ipv4Addr::from(<[u8; 4]>::try_from(&packet[12..16]).ok()?);
    let destination = Ipv4Addr::from(<[u8; 4]>::try_from(&packet[16..20]).ok()?);
    let ports = if fragment_offset == 0 {
        ports(protocol, &packet[header_len..])
    } else {
        None
    };
    Some(IpHeaders {
        family: Family::V4,
        protocol,
        source: source.into(),
        destination: destination.into(),
        ports,
        length: u32::from(u16::from_be_bytes([packet[2], packet[3]])),
    })
}

fn parse_ipv6(packet: &[u8]) -> Option<IpHeaders> {
    // Hop-by-hop, routing, fragment, destination options, AH: the extension
    // headers that may stand before the transport header (RFC 8200 4.1).
    const HOP_BY_HOP: u8 = 0;
    const ROUTING: u8 = 43;
    const FRAGMENT: u8 = 44;
    const AUTHENTICATION: u8 = 51;
    const DESTINATION_OPTIONS: u8 = 60;
    // More than the RFC's order allows; bounds the walk over hostile bytes.
    const MAX_EXTENSION_HEADERS: usize = 8;

    if packet.len() < 40 {
        return None;
    }
    let payload_len = u16::from_be_bytes([packet[4], packet[5]]);
    let source = Ipv6Addr::from(<[u8; 16]>::try_from(&packet[8..24]).ok()?);
    let destination = Ipv6Addr::from(<[u8; 16]>::try_from(&packet[24..40]).ok()?);
    let mut next_header = packet[6];
    let mut offset = 40usize;
    let mut first_fragment = true;
    for _ in 0..MAX_EXTENSION_HEADERS {
        let header_len = match next_header {
            HOP_BY_HOP | ROUTING | DESTINATION_OPTIONS => {
                (usize::from(*packet.get(offset + 1)?) + 1) * 8
            }
            AUTHENTICATION => (usize::from(*packet.get(offset + 1)?) + 2) * 4,
            FRAGMENT => {
                let field =
                    u16::from_be_bytes([*packet.get(offset + 2)?, *packet.get(offset + 3)?]);
                first_fragment = field >> 3 == 0;
                8
            }
            _ => break,
        };
        next_header = *packet.get(offset)?;
        offset = offset.checked_add(header_len)?;
    }
    let ports = if first_fragment {
        packet
            .get(offset..)
            .and_then(|transport| ports(next_header, transport))
    } else {
        None
    };
    Some(IpHeaders {
        family: Family::V6,
        protocol: next_header,
        source: source.into(),
        destination: destination.into(),
        ports,
        length: u32::from(payload_len) + 40,
    })
}

/// Source and destination port: the first four bytes of the transport
/// header of the protocols that have them there.
fn ports(protocol: u8, transport: &[u8]) -> Option<(u16, u16)> {
    match protocol {
        IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP | IPPROTO_UDPLITE => {
            let bytes = transport.get(..4)?;
            Some((
                u16::from_be_bytes([bytes[0], bytes[1]]),
                u16::from_be_bytes([bytes[2], bytes[3]]),
            ))
        }
        _ => None,
    }
}

fn be32(value: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(value.get(..4)?.try_into().ok()?))
}

/// An `NLMSG_ERROR` payload's error: 0 for an ack, a positive errno
/// otherwise (the kernel sends it negated); EPROTO when it is cut short.
pub(crate) fn error_code(payload: &[u8]) -> i32 {
    match payload.get(..4) {
        Some(bytes) => {
            i32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]).saturating_neg()
        }
        None => libc::EPROTO,
    }
}

/// One netlink message of a datagram.
pub(crate) struct Message<'a> {
    pub(crate) kind: u16,
    pub(crate) seq: u32,
    /// After the 16-byte header, as long as the header says.
    pub(crate) payload: &'a [u8],
    /// The whole message, header included.
    pub(crate) bytes: &'a [u8],
}

/// The messages of a datagram; stops at the first whose length does not fit.
pub(crate) fn messages(mut datagram: &[u8]) -> impl Iterator<Item = Message<'_>> {
    std::iter::from_fn(move || {
        // struct nlmsghdr { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }
        let header = datagram.get(..16)?;
        let len = u32::from_ne_bytes(header[0..4].try_into().ok()?) as usize;
        if len < 16 || len > datagram.len() {
            return None;
        }
        let message = Message {
            kind: u16::from_ne_bytes([header[4], header[5]]),
            seq: u32::from_ne_bytes(header[8..12].try_into().ok()?),
            payload: &datagram[16..len],
            bytes: &datagram[..len],
        };
        datagram = datagram.get(align4(len)..).unwrap_or(&[]);
        Some(message)
    })
}

/// The attributes `(type, value)` of a message; stops at the first whose
/// length does not fit.
fn attrs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        // struct nlattr { u16 nla_len; u16 nla_type; }
        let header = data.get(..4)?;
        let len = usize::from(u16::from_ne_bytes([header[0], header[1]]));
        if len < 4 || len > data.len() {
            return None;
        }
        let kind = u16::from_ne_bytes([header[2], header[3]]) & NLA_TYPE_MASK;
        let value = &data[4..len];
        data = data.get(align4(len)..).unwrap_or(&[]);
        Some((kind, value))
    })
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

/// Builds one netlink message with a `nfgenmsg` and flat attributes.
struct NetlinkWriter {
    bytes: Vec<u8>,
}

impl NetlinkWriter {
    fn new(kind: u16, flags: u16, seq: u32) -> NetlinkWriter {
        let mut bytes = Vec::with_capacity(64);
        bytes.extend_from_slice(&0u32.to_ne_bytes()); // length, set by finish
        bytes.extend_from_slice(&kind.to_ne_bytes());
        bytes.extend_from_slice(&flags.to_ne_bytes());
        bytes.extend_from_slice(&seq.to_ne_bytes());
        bytes.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        NetlinkWriter { bytes }
    }

    fn nfgenmsg(&mut self, family: u8, res_id: u16) {
        self.bytes.extend_from_slice(&[family, NFNETLINK_V0]);
        self.bytes.extend_from_slice(&res_id.to_be_bytes());
    }

    fn attr(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.bytes.extend_from_slice(&(len as u16).to_ne_bytes());
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
        self.bytes.extend_from_slice(value);
        self.bytes.resize(align4(self.bytes.len()), 0);
    }

    fn finish(&mut self) -> &[u8] {
        let len = self.bytes.len() as u32;
        self.bytes[0..4].copy_from_slice(&len.to_ne_bytes());
        &self.bytes
    }
}

/// A NETLINK_NETFILTER socket, bound to a port id the kernel picks, in the
/// namespace of the thread that opened it.
#[derive(Debug)]
pub(crate) struct NetfilterSocket {
    pub(crate) fd: OwnedFd,
}

impl NetfilterSocket {
    /// Opens the socket in the calling thread's network namespace.
    pub(crate) fn open(nonblocking: bool) -> io::Result<NetfilterSocket> {
        let mut flags = SockFlag::SOCK_CLOEXEC;
        if nonblocking {
            flags |= SockFlag::SOCK_NONBLOCK;
        }
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            flags,
            SockProtocol::NetlinkNetFilter,
        )?;
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
        // Error replies carry only the failed message's header, not a copy
        // of it (up to 64 KiB for a set's elements) (netlink(7)).
        // Best effort: without it (before Linux 4.3) replies are only longer.
        let one: libc::c_int = 1;
        // SAFETY: `fd` is an open socket; the option value is a c_int that
        // lives across the call, and its size is passed with it.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_NETLINK,
                libc::NETLINK_CAP_ACK,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        Ok(NetfilterSocket { fd })
    }

    /// Sends `data` as one datagram: a batch must reach nfnetlink whole.
    pub(crate) fn send(&self, data: &[u8]) -> io::Result<()> {
        let sent = send(self.fd.as_raw_fd(), data, MsgFlags::empty())?;
        if sent != data.len() {
            return Err(io::Error::other(format!(
                "netlink send took {sent} of {} bytes",
                data.len()
            )));
        }
        Ok(())
    }

    /// Receives one datagram without waiting (WouldBlock when none is
    /// queued). A datagram larger than `buffer` is an error, not a cut.
    pub(crate) fn recv(&self, buffer: &mut [u8]) -> io::Result<usize> {
        let len = recv(
            self.fd.as_raw_fd(),
            buffer,
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_TRUNC,
        )?;
        if len > buffer.len() {
            return Err(io::Error::other(format!(
                "a netlink datagram of {len} bytes does not fit in {}",
                buffer.len()
            )));
        }
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4_tcp(destination: [u8; 4], destination_port: u16) -> Vec<u8> {
        let mut packet = vec![0u8; 40];
        packet[0] = 0x45;
        packet[2..4].copy_from_slice(&60u16.to_be_bytes());
        packet[9] = IPPROTO_TCP;
        packet[12..16].copy_from_slice(&[10, 0, 0, 1]);
        packet[16..20].copy_from_slice(&destination);
        packet[20..22].copy_from_slice(&40000u16.to_be_bytes());
        packet[22..24].copy_from_slice(&destination_port.to_be_bytes());
        packet
    }

    fn record(prefix: &str, payload: &[u8], uid: Option<u32>) -> Vec<u8> {
        let mut message = NetlinkWriter::new(NFNL_SUBSYS_ULOG << 8, 0, 7);
        message.nfgenmsg(libc::AF_INET as u8, 5);
        message.attr(libc::NFULA_PACKET_HDR as u16, &[0x08, 0x00, 3, 0]);
        let mut prefix = prefix.as_bytes().to_vec();
        prefix.push(0);
        message.attr(libc::NFULA_PREFIX as u16, &prefix);
        if let Some(uid) = uid {
            message.attr(libc::NFULA_UID as u16, &uid.to_be_bytes());
        }
        message.attr(libc::NFULA_SEQ as u16, &41u32.to_be_bytes());
        message.attr(libc::NFULA_PAYLOAD as u16, payload);
        message.finish().to_vec()
    }

    #[test]
    fn sequence_gaps_count_lost_records() {
        assert_eq!(skipped_between(4, 5), 0);
        assert_eq!(skipped_between(4, 8), 3);
        assert_eq!(skipped_between(u32::MAX, 1), 1);
        assert_eq!(skipped_between(9, 3), 0);
        assert_eq!(skipped_between(9, 9), 0);
    }

    #[test]
    fn parses_an_ipv4_tcp_record() {
        let datagram = record("a3", &ipv4_tcp([192, 0, 2, 7], 443), Some(1000));
        let message = messages(&datagram).next().unwrap();
        let packet = parse_packet(message.payload).unwrap();
        assert_eq!(packet.prefix, "a3");
        assert_eq!(packet.family, Family::V4);
        assert_eq!(packet.protocol, IPPROTO_TCP);
        assert_eq!(packet.destination, IpAddr::from([192, 0, 2, 7]));
        assert_eq!(packet.source_port, Some(40000));
        assert_eq!(packet.destination_port, Some(443));
        assert_eq!(packet.length, 60);
        assert_eq!(packet.uid, Some(1000));
        assert_eq!(packet.gid, None);
        assert_eq!(packet.sequence, Some(41));
    }

    #[test]
    fn a_non_first_fragment_has_no_ports() {
        let mut packet = ipv4_tcp([192, 0, 2, 7], 443);
        packet[6..8].copy_from_slice(&0x0010u16.to_be_bytes());
        let parsed = parse_ip(&packet).unwrap();
        assert_eq!(parsed.ports, None);
    }

    #[test]
    fn ipv6_extension_headers_are_walked_to_the_transport_header() {
        let mut packet = vec![0u8; 40 + 8 + 8 + 4];
        packet[0] = 0x60;
        packet[4..6].copy_from_slice(&20u16.to_be_bytes());
        packet[6] = 0; // hop-by-hop
        packet[24..40].copy_from_slice(&Ipv6Addr::LOCALHOST.octets());
        packet[40] = 60; // then destination options
        packet[41] = 0; // 8 bytes
        packet[48] = IPPROTO_UDP;
        packet[49] = 0;
        packet[56..58].copy_from_slice(&5353u16.to_be_bytes());
        packet[58..60].copy_from_slice(&53u16.to_be_bytes());
        let parsed = parse_ip(&packet).unwrap();
        assert_eq!(parsed.family, Family::V6);
        assert_eq!(parsed.protocol, IPPROTO_UDP);
        assert_eq!(parsed.ports, Some((5353, 53)));
        assert_eq!(parsed.length, 60);
    }

    #[test]
    fn truncated_and_hostile_input_is_refused_without_panicking() {
        let full = record("d0", &ipv4_tcp([10, 0, 0, 2], 80), None);
        for len in 0..full.len() {
            for message in messages(&full[..len]) {
                let _ = parse_packet(message.payload);
            }
            let _ = parse_ip(&ipv4_tcp([10, 0, 0, 2], 80)[..len.min(40)]);
        }
        // A header length beyond the bytes, an attribute longer than its
        // message, an IPv6 header chain that loops on hop-by-hop.
        assert!(parse_ip(&[0x4f; 20]).is_none());
        assert_eq!(attrs(&[0xff, 0xff, 1, 0]).count(), 0);
        let mut looping = vec![0u8; 40 + 8 * 10];
        looping[0] = 0x60;
        assert!(parse_ip(&looping).unwrap().ports.is_none());
    }
}
