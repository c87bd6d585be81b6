//! The records the sensor's BPF programs write to a world's ring
//! (`bpf/sensor.bpf.c`: `struct header`, `exec_event`, `net_event`; the C
//! side asserts the offsets used here).
//!
//! The kernel writes them, but much of what they say comes from the world
//! (argv, paths, socket addresses it passed): every length is checked
//! against the record before it is used.

use std::net::{Ipv4Addr, Ipv6Addr};

/// What one record says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelEvent {
    Exec(ExecEvent),
    Net(NetEvent),
}

impl KernelEvent {
    pub fn header(&self) -> &Header {
        match self {
            KernelEvent::Exec(e) => &e.header,
            KernelEvent::Net(e) => &e.header,
        }
    }
}

/// Who and when, as the kernel saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// CLOCK_MONOTONIC, as the proc connector's timestamps.
    pub ktime_ns: u64,
    /// The process (thread group), host view.
    pub tgid: i32,
    /// The thread, host view.
    pub pid: i32,
    /// The process in the world's pid namespace.
    pub world_pid: u32,
    /// The parent process, host view.
    pub ppid: i32,
    /// The parent in the world's pid namespace; `None` when the parent is
    /// outside the world (the runtime that exec'd a process into it).
    pub world_ppid: Option<u32>,
    pub uid: u32,
    pub euid: u32,
    pub gid: u32,
    /// Seen in a pid namespace nested in the world's.
    pub nested: bool,
}

/// A successful exec, read in the kernel as it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecEvent {
    pub header: Header,
    pub cgroup_id: u64,
    /// The thread that called exec (the process's tgid afterwards).
    pub old_pid: i32,
    /// The file name given to execve (relative, `/dev/fd/N`, ...).
    pub filename: Vec<u8>,
    /// The executable's path as the process sees it (its root is the
    /// world's); `None` when deeper than the sensor walks.
    pub exe: Option<Vec<u8>>,
    pub exe_inode: u64,
    pub exe_dev: u32,
    /// The working directory, as the process sees it; `None` when deeper
    /// than the sensor walks.
    pub cwd: Option<Vec<u8>>,
    /// The arguments exactly (empty ones kept); the last one cut when
    /// `argv_truncated`.
    pub argv: Vec<Vec<u8>>,
    pub argc: u32,
    /// Longer than the sensor copies (4 KiB): `argv_len` says how long.
    pub argv_truncated: bool,
    pub argv_len: u32,
    /// The kernel could not read the arguments.
    pub argv_unreadable: bool,
}

/// A socket call, with its result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetEvent {
    pub header: Header,
    pub call: NetCall,
    pub fd: i32,
    /// What the call returned: `-errno` on failure.
    pub ret: i64,
    /// `SOCK_STREAM`, `SOCK_DGRAM`... (0: unknown).
    pub sock_type: u16,
    pub protocol: u16,
    pub address: SockAddr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetCall {
    Connect,
    Bind,
    Listen,
    Accept,
    /// The first datagram a process sent to a peer.
    Sendto,
}

/// A socket address, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SockAddr {
    Inet(Ipv4Addr, u16),
    Inet6(Ipv6Addr, u16),
    /// A unix socket's path (an abstract one starts with NUL).
    Unix(Vec<u8>),
    /// Another family, by number.
    Other(u16),
    /// None given, unreadable, or too short for its family.
    Unknown,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("a {0}-byte record is shorter than its header")]
    Short(usize),
    #[error("a record of unknown kind {0}")]
    UnknownKind(u32),
    #[error("a record's {field} says {len} bytes, more than it holds")]
    Overlong { field: &'static str, len: u32 },
}

const EVENT_EXEC: u32 = 1;
const EVENT_NET: u32 = 2;

const F_ARGV_TRUNC: u32 = 1 << 0;
const F_ARGV_FAULT: u32 = 1 << 1;
const F_CWD_TRUNC: u32 = 1 << 2;
const F_EXE_TRUNC: u32 = 1 << 3;
const F_NESTED_NS: u32 = 1 << 4;

const HEADER_LEN: usize = 48;
/// `struct exec_event`'s fields after the header.
const EXEC_FILENAME: usize = 96;
const EXEC_FILENAME_MAX: usize = 256;
const EXEC_EXE: usize = 352;
const EXEC_CWD: usize = 1120;
const EXEC_PATH_MAX: usize = 768;
const EXEC_ARGV: usize = 1888;
const NET_LEN: usize = 200;
const NET_ADDR: usize = 72;
const NET_ADDR_MAX: usize = 128;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Decodes one record.
pub fn parse(record: &[u8]) -> Result<KernelEvent, EventError> {
    if record.len() < HEADER_LEN {
        return Err(EventError::Short(record.len()));
    }
    let flags = u32_at(record, 4);
    let world_ppid = u32_at(record, 32);
    let header = Header {
        ktime_ns: u64_at(record, 8),
        tgid: u32_at(record, 16) as i32,
        pid: u32_at(record, 20) as i32,
        world_pid: u32_at(record, 24),
        ppid: u32_at(record, 28) as i32,
        world_ppid: (world_ppid != 0).then_some(world_ppid),
        uid: u32_at(record, 36),
        euid: u32_at(record, 40),
        gid: u32_at(record, 44),
        nested: flags & F_NESTED_NS != 0,
    };
    match u32_at(record, 0) {
        EVENT_EXEC => parse_exec(record, header, flags).map(KernelEvent::Exec),
        EVENT_NET => parse_net(record, header).map(KernelEvent::Net),
        kind => Err(EventError::UnknownKind(kind)),
    }
}

fn parse_exec(record: &[u8], header: Header, flags: u32) -> Result<ExecEvent, EventError> {
    if record.len() < EXEC_ARGV {
        return Err(EventError::Short(record.len()));
    }
    let field = |field: &'static str, at: usize, len: u32, max: usize| {
        let end = at + len as usize;
        if len as usize > max || end > record.len() {
            return Err(EventError::Overlong { field, len });
        }
        Ok(&record[at..end])
    };
    let filename = field(
        "filename",
        EXEC_FILENAME,
        u32_at(record, 84),
        EXEC_FILENAME_MAX,
    )?;
    let exe = field("exe", EXEC_EXE, u32_at(record, 88), EXEC_PATH_MAX)?;
    let cwd = field("cwd", EXEC_CWD, u32_at(record, 92), EXEC_PATH_MAX)?;
    let argv = field(
        "argv",
        EXEC_ARGV,
        u32_at(record, 76),
        record.len() - EXEC_ARGV,
    )?;
    Ok(ExecEvent {
        header,
        cgroup_id: u64_at(record, 48),
        exe_inode: u64_at(record, 56),
        exe_dev: u32_at(record, 64),
        old_pid: u32_at(record, 68) as i32,
        argc: u32_at(record, 72),
        argv_len: u32_at(record, 80),
        filename: until_nul(filename).to_vec(),
        exe: (flags & F_EXE_TRUNC == 0).then(|| leaf_first_path(exe)),
        cwd: (flags & F_CWD_TRUNC == 0).then(|| leaf_first_path(cwd)),
        argv: nul_separated(argv),
        argv_truncated: flags & F_ARGV_TRUNC != 0,
        argv_unreadable: flags & F_ARGV_FAULT != 0,
    })
}

fn parse_net(record: &[u8], header: Header) -> Result<NetEvent, EventError> {
    if record.len() < NET_LEN {
        return Err(EventError::Short(record.len()));
    }
    let call = match u32_at(record, 48) {
        1 => NetCall::Connect,
        2 => NetCall::Bind,
        3 => NetCall::Listen,
        4 => NetCall::Accept,
        5 => NetCall::Sendto,
        other => return Err(EventError::UnknownKind(other << 8 | EVENT_NET)),
    };
    let addr_len = u32_at(record, 68);
    if addr_len as usize > NET_ADDR_MAX {
        return Err(EventError::Overlong {
            field: "addr",
            len: addr_len,
        });
    }
    Ok(NetEvent {
        header,
        call,
        fd: u32_at(record, 52) as i32,
        ret: u64_at(record, 56) as i64,
        sock_type: u16_at(record, 64),
        protocol: u16_at(record, 66),
        address: sockaddr(&record[NET_ADDR..NET_ADDR + addr_len as usize]),
    })
}

/// Decodes a `struct sockaddr_*` as a program passed it (native byte
/// order for the family, network order for port and address).
pub fn sockaddr(bytes: &[u8]) -> SockAddr {
    const AF_UNIX: u16 = 1;
    const AF_INET: u16 = 2;
    const AF_INET6: u16 = 10;
    if bytes.len() < 2 {
        return SockAddr::Unknown;
    }
    let family = u16_at(bytes, 0);
    let port = || u16::from_be_bytes([bytes[2], bytes[3]]);
    match family {
        AF_INET if bytes.len() >= 8 => {
            let ip: [u8; 4] = bytes[4..8].try_into().expect("4 bytes");
            SockAddr::Inet(Ipv4Addr::from(ip), port())
        }
        AF_INET6 if bytes.len() >= 24 => {
            let ip: [u8; 16] = bytes[8..24].try_into().expect("16 bytes");
            SockAddr::Inet6(Ipv6Addr::from(ip), port())
        }
        AF_UNIX => {
            let path = &bytes[2..];
            // An abstract name (leading NUL) is taken whole; a path ends
            // at its NUL.
            let path = match path.first() {
                Some(0) => path,
                _ => until_nul(path),
            };
            SockAddr::Unix(path.to_vec())
        }
        AF_INET | AF_INET6 => SockAddr::Unknown,
        other => SockAddr::Other(other),
    }
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == 0).next().unwrap_or_default()
}

/// argv as the kernel lays it out: each argument NUL-terminated; empty
/// arguments are arguments.
fn nul_separated(bytes: &[u8]) -> Vec<Vec<u8>> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    bytes.split(|&b| b == 0).map(<[u8]>::to_vec).collect()
}

/// A path the sensor wrote leaf first (`c\0b\0a\0`) as `/a/b/c`.
fn leaf_first_path(bytes: &[u8]) -> Vec<u8> {
    let mut path = Vec::with_capacity(bytes.len() + 1);
    let components: Vec<&[u8]> = bytes.split(|&b| b == 0).filter(|c| !c.is_empty()).collect();
    for component in components.iter().rev() {
        path.push(b'/');
        path.extend_from_slice(component);
    }
    if path.is_empty() {
        path.push(b'/');
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_keeps_empty_arguments() {
        assert_eq!(
            nul_separated(b"sh\0\0-c\0"),
            vec![b"sh".to_vec(), b"".to_vec(), b"-c".to_vec()]
        );
        assert_eq!(nul_separated(b""), Vec::<Vec<u8>>::new());
        assert_eq!(nul_separated(b"cut"), vec![b"cut".to_vec()]);
    }

    #[test]
    fn paths_are_written_leaf_first() {
        assert_eq!(leaf_first_path(b"c\0b\0a\0"), b"/a/b/c");
        assert_eq!(leaf_first_path(b""), b"/");
    }

    #[test]
    fn socket_addresses_decode() {
        let mut v4 = vec![2, 0, 0x1f, 0x90, 127, 0, 0, 1];
        v4.extend([0; 8]);
        assert_eq!(sockaddr(&v4), SockAddr::Inet(Ipv4Addr::LOCALHOST, 8080));
        let mut unix = vec![1, 0];
        unix.extend(b"/run/x.sock\0junk");
        assert_eq!(sockaddr(&unix), SockAddr::Unix(b"/run/x.sock".to_vec()));
        assert_eq!(sockaddr(&[2, 0, 0]), SockAddr::Unknown);
        assert_eq!(sockaddr(&[]), SockAddr::Unknown);
    }
}
