//! The monitor's side of the preload tracer: the world's span socket, the
//! rings processes hand over on it, and the records in those rings turned
//! into spans.
//!
//! Everything that arrives here comes from inside the world and is
//! untrusted. Who sent a message is what `SO_PEERCRED` says, never what the
//! message says; a message that does not parse, a ring that is not a sealed
//! memfd of the right size, a pid that is not the world's, a record that
//! does not decode, are refused and counted (the counts go on the world
//! span), and none of it can crash the monitor or make it block.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, UnixAddr};
use substrate_ring::hello::{self, Hello, HelloKind};
use substrate_ring::ring::{self, FileCall, NetCall, Record, Ring, RING_BYTES};
use substrate_trace::{
    fopen_flags, DnsDetail, Errno, Family, FileDetail, FileOp, NetDetail, NetOp, Source, Span,
    SpanId, Timestamp, Transport,
};

/// A connection that has said nothing for this long is closed.
const SILENT_CONNECTION: Duration = Duration::from_secs(2);
/// At most this many connections waiting for their message at once.
const MAX_PENDING: usize = 1024;
/// At most this many rings mapped at once (a fork bomb must not exhaust
/// the monitor); more are refused and counted.
const MAX_RINGS: usize = 16 * 1024;
/// Records drained per ring per pass: a ring kept full by a busy process
/// is emptied a few times over, but one a hostile process keeps marking
/// "written" cannot hold the monitor.
const DRAIN_BATCH: usize = 4 * ring::SLOTS as usize;

/// The world's span socket (`SOCK_SEQPACKET`), bound in its inject dir.
pub struct SpanSocket {
    listener: OwnedFd,
    path: PathBuf,
}

impl SpanSocket {
    /// Binds `<dir>/span.sock`; world processes of any uid may connect.
    pub fn bind(dir: &Path) -> io::Result<SpanSocket> {
        let path = dir.join(substrate_ring::SOCKET_NAME);
        let _ = fs::remove_file(&path);
        let listener = socket::socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        // sun_path holds 108 bytes; a world dir can be deeper than that.
        // Bind through the dir's fd instead of its path.
        let dir_fd = fs::File::open(dir)?;
        let short = format!(
            "/proc/self/fd/{}/{}",
            dir_fd.as_raw_fd(),
            substrate_ring::SOCKET_NAME
        );
        socket::bind(listener.as_raw_fd(), &UnixAddr::new(short.as_str())?)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o666))?;
        socket::listen(
            &listener,
            socket::Backlog::new(4096).unwrap_or(socket::Backlog::MAXCONN),
        )?;
        Ok(SpanSocket { listener, path })
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }
}

impl Drop for SpanSocket {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// One message as it arrived: who sent it (host pid, from the kernel), its
/// bytes, and the fd it carried.
pub struct Arrival {
    pub peer_pid: i32,
    /// The sender's pid in its own pid namespace, from the kernel, exactly
    /// (see [`peer_world_pid`]); `None` when that cannot be known.
    pub peer_world_pid: Option<u32>,
    pub bytes: Vec<u8>,
    pub fd: Option<OwnedFd>,
    /// Longer than any message may be (`bytes` is then empty).
    pub oversized: bool,
}

/// Connections accepted on the span socket, waiting for their message.
#[derive(Default)]
pub struct Connections {
    pending: Vec<(OwnedFd, Instant)>,
    /// Receive buffer, kept between messages: one per exec would be a
    /// zeroed 64 KiB allocation for every program a world runs.
    buf: Vec<u8>,
}

impl Connections {
    /// Accepts what is queued on `socket`. Returns how many were refused
    /// (too many pending).
    pub fn accept(&mut self, socket: &SpanSocket) -> u64 {
        let mut refused = 0;
        loop {
            let fd = match rustix::net::accept_with(
                &socket.listener,
                rustix::net::SocketFlags::CLOEXEC | rustix::net::SocketFlags::NONBLOCK,
            ) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return refused,
            };
            if self.pending.len() >= MAX_PENDING {
                refused += 1;
                continue;
            }
            self.pending.push((fd, Instant::now()));
        }
    }

    pub fn fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.pending.iter().map(|(fd, _)| fd.as_fd())
    }

    /// Reads the connections `ready` says are readable (or all when
    /// `ready` is None), closing each once read; drops silent ones.
    /// Returns the messages and how many connections were refused.
    pub fn read(&mut self, ready: Option<&[bool]>) -> (Vec<Arrival>, u64) {
        let mut arrivals = Vec::new();
        let mut refused = 0;
        let now = Instant::now();
        let mut keep = Vec::with_capacity(self.pending.len());
        self.buf.resize(hello::MAX_BYTES + 1, 0);
        for (i, (fd, since)) in self.pending.drain(..).enumerate() {
            if ready.is_some_and(|r| !r.get(i).copied().unwrap_or(false)) {
                if now.duration_since(since) < SILENT_CONNECTION {
                    keep.push((fd, since));
                } else {
                    refused += 1;
                }
                continue;
            }
            match receive(&fd, &mut self.buf) {
                Ok(Some(arrival)) => arrivals.push(arrival),
                Ok(None) if now.duration_since(since) < SILENT_CONNECTION => keep.push((fd, since)),
                Ok(None) | Err(_) => refused += 1,
            }
        }
        self.pending = keep;
        (arrivals, refused)
    }
}

/// One message from a connection, read through `buf` (one byte longer
/// than any message may be); `None` if nothing is there yet.
fn receive(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<Option<Arrival>> {
    use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags};
    let creds = socket::getsockopt(fd, sockopt::PeerCredentials)?;
    let peer_world_pid = peer_world_pid(fd);
    // Room for one fd: the kernel closes any more than fit (MSG_CTRUNC).
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = match recvmsg(
        fd,
        &mut iov,
        &mut control,
        RecvFlags::DONTWAIT | RecvFlags::CMSG_CLOEXEC,
    ) {
        Ok(msg) => msg,
        Err(rustix::io::Errno::AGAIN) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // Every fd that came is owned here; all but the first are closed when
    // the iterator drops them.
    let passed = control
        .drain()
        .filter_map(|message| match message {
            RecvAncillaryMessage::ScmRights(fds) => Some(fds),
            _ => None,
        })
        .flatten()
        .next();
    let len = msg.bytes;
    let truncated =
        msg.flags.contains(ReturnFlags::TRUNC) || msg.flags.contains(ReturnFlags::CTRUNC);
    if len == 0 && !truncated {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    let oversized = truncated || len > hello::MAX_BYTES;
    let bytes = if oversized {
        Vec::new()
    } else {
        buf[..len].to_vec()
    };
    Ok(Some(Arrival {
        peer_pid: creds.pid(),
        peer_world_pid,
        bytes,
        fd: passed,
        oversized,
    }))
}

/// The one owner of a ring's mapping: it unmaps it when dropped. The
/// [`Ring`] view (a `Copy` pointer whose constructor is `unsafe` for this
/// reason) never leaves this module, so nothing can use it after the unmap.
pub struct RingMapping {
    ring: Ring,
}

// SAFETY: the mapping is owned by this value and unmapped once, in Drop;
// the ring's atomics make it safe to read from any thread.
unsafe impl Send for RingMapping {}

impl Drop for RingMapping {
    fn drop(&mut self) {
        // SAFETY: mapped by map_ring with RING_BYTES, not used after.
        unsafe { libc::munmap(self.ring.as_ptr().cast(), RING_BYTES) };
    }
}

/// `SO_PEERPIDFD` (Linux 6.5; `asm-generic/socket.h`, which x86-64 and
/// arm64 use).
const SO_PEERPIDFD: libc::c_int = 77;

/// The peer's pid in its innermost pid namespace, read from a pidfd of the
/// peer (`SO_PEERPIDFD`): its fdinfo's `NSpid` names the process that
/// connected, even after its host pid has been reused — which reading
/// `/proc/<pid>` cannot promise. `None` without `SO_PEERPIDFD` (older
/// kernels) or once the peer has exited.
pub fn peer_world_pid(socket: &OwnedFd) -> Option<u32> {
    let mut pidfd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into the int we own.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            (&mut pidfd as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 || pidfd < 0 {
        return None;
    }
    // SAFETY: the kernel just installed this fd for us; nothing else owns it.
    let pidfd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd) };
    let fdinfo = fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).ok()?;
    let last = fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .last()?;
    // -1: the process has exited.
    last.parse::<u32>().ok()
}

/// A ring a process handed over, mapped here.
pub struct MappedRing {
    mapping: RingMapping,
    tail: u64,
    dropped_seen: u64,
    /// The exec span (or, for a forked child, its parent's) its records
    /// belong to.
    pub parent: Option<SpanId>,
    pub pid: i32,
    pub world_pid: Option<u32>,
    /// When the process said hello (its clock).
    pub since_ns: u64,
}

/// Maps the ring a process handed over, after checking it cannot hurt us;
/// the error says why it was refused.
pub fn map_ring(fd: &OwnedFd) -> Result<RingMapping, &'static str> {
    // Sealed against shrinking: our mapping can never fault (SIGBUS).
    let sealed = rustix::fs::fcntl_get_seals(fd)
        .is_ok_and(|seals| seals.contains(rustix::fs::SealFlags::SHRINK));
    if !sealed {
        return Err("ring_unsealed");
    }
    let size = nix::sys::stat::fstat(fd.as_raw_fd())
        .map_err(|_| "ring_unsealed")?
        .st_size;
    if (size as usize) < RING_BYTES {
        return Err("ring_too_small");
    }
    // SAFETY: a shared mapping of a sealed memfd at least RING_BYTES long.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            RING_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err("ring_unmappable");
    }
    // SAFETY: just mapped, RING_BYTES long, page aligned; the mapping is
    // owned by the RingMapping from here on, which unmaps it once.
    let ring = unsafe { Ring::from_raw(NonNull::new_unchecked(base.cast())) };
    let mapping = RingMapping { ring };
    if mapping.ring.check().is_err() {
        return Err("ring_bad_header");
    }
    Ok(mapping)
}

impl MappedRing {
    pub fn new(
        mapping: RingMapping,
        pid: i32,
        world_pid: Option<u32>,
        parent: Option<SpanId>,
        since_ns: u64,
    ) -> Self {
        MappedRing {
            mapping,
            tail: 0,
            dropped_seen: 0,
            parent,
            pid,
            world_pid,
            since_ns,
        }
    }

    /// Turns what the ring holds into spans (or refusals); returns how many
    /// records the process dropped since the last call (a full ring).
    pub fn drain(
        &mut self,
        world_id: &str,
        sink: &mut impl FnMut(Result<Span, &'static str>),
    ) -> u64 {
        let ring = self.mapping.ring;
        let mut tail = self.tail;
        // Once per drain, not per record: "not in the future" within a
        // minute does not need the clock read again.
        let now = Timestamp::now().unix_nanos();
        ring.drain(&mut tail, DRAIN_BATCH, |record| {
            sink(self.span_of(world_id, &record, now))
        });
        self.tail = tail;
        let dropped = ring.dropped();
        let new = dropped.saturating_sub(self.dropped_seen);
        self.dropped_seen = self.dropped_seen.max(dropped);
        new
    }

    fn span_of(&self, world_id: &str, record: &Record, now: i64) -> Result<Span, &'static str> {
        let start =
            Timestamp::from_unix_nanos(i64::try_from(record.start_ns).map_err(|_| "bad_time")?);
        // A process's clock claim within reason: not before the world, not
        // in the future.
        if start.unix_nanos() > now + 60_000_000_000 || record.duration_ns > 86_400_000_000_000 {
            return Err("bad_time");
        }
        let end = Timestamp::from_unix_nanos(start.unix_nanos() + record.duration_ns as i64);
        let a = record.a().ok_or("bad_record")?.to_vec();
        let b = record.b().ok_or("bad_record")?;
        let mut span = match record.kind {
            ring::kind::FILE => {
                let call = FileCall::from_u8(record.op).ok_or("bad_record")?;
                let detail = file_detail(call, a, b, record);
                let s = Span::file(world_id, Source::Preload, start, detail);
                let s = self.stamp(s).end(end);
                if record.ret < 0 {
                    s.failed(record.ret, Errno(record.errno))
                } else {
                    s.returned(record.ret)
                }
                .build()
            }
            ring::kind::NET => {
                let call = NetCall::from_u8(record.op).ok_or("bad_record")?;
                let detail = net_detail(call, &a, record.arg0).ok_or("bad_record")?;
                let s = self
                    .stamp(Span::net(world_id, Source::Preload, start, detail))
                    .end(end);
                if record.ret < 0 {
                    s.failed(record.ret, Errno(record.errno))
                } else {
                    s.returned(record.ret)
                }
                .build()
            }
            ring::kind::DNS => {
                let detail = DnsDetail {
                    query: a,
                    answers: b
                        .chunks_exact(ring::DNS_ANSWER_BYTES)
                        .filter_map(answer_text)
                        .collect(),
                };
                let s = self
                    .stamp(Span::dns(world_id, Source::Preload, start, detail))
                    .end(end);
                // getaddrinfo returns an EAI_* code, not -1 + errno.
                s.returned(record.ret).build()
            }
            _ => return Err("bad_record"),
        };
        if record.truncated != 0 {
            span.extra
                .insert("truncated".into(), serde_json::Value::Bool(true));
        }
        Ok(span)
    }

    fn stamp<K>(
        &self,
        mut span: substrate_trace::SpanBuilder<K>,
    ) -> substrate_trace::SpanBuilder<K> {
        span = span.pid(self.pid as u32);
        if let Some(parent) = self.parent {
            span = span.parent(parent);
        }
        if let Some(world_pid) = self.world_pid {
            span = span.world_pid(world_pid);
        }
        span
    }
}

const O_CREAT: u32 = 0o100;
const O_TMPFILE: u32 = 0o20_200_000;

fn file_detail(call: FileCall, a: Vec<u8>, b: &[u8], record: &Record) -> FileDetail {
    let (flags, mode) = (record.arg0, record.arg1);
    let opened_mode = (flags & O_CREAT != 0 || flags & O_TMPFILE == O_TMPFILE).then_some(mode);
    match call {
        FileCall::Open => FileDetail::open(FileOp::Open, a, flags, opened_mode),
        FileCall::Openat => FileDetail::open(FileOp::Openat, a, flags, opened_mode),
        FileCall::Creat => FileDetail::open(FileOp::Creat, a, flags, Some(mode)),
        FileCall::Fopen => FileDetail::open(FileOp::Fopen, a, fopen_flags(b), None),
        FileCall::Unlink => FileDetail::new(FileOp::Unlink, a),
        FileCall::Unlinkat => FileDetail::new(FileOp::Unlinkat, a),
        FileCall::Rename => FileDetail::rename(FileOp::Rename, a, b),
        FileCall::Renameat => FileDetail::rename(FileOp::Renameat, a, b),
        FileCall::Mkdir => FileDetail::new(FileOp::Mkdir, a).with_mode(mode),
        FileCall::Mkdirat => FileDetail::new(FileOp::Mkdirat, a).with_mode(mode),
        FileCall::Rmdir => FileDetail::new(FileOp::Rmdir, a),
        FileCall::Chmod => FileDetail::new(FileOp::Chmod, a).with_mode(mode),
        FileCall::Fchmodat => FileDetail::new(FileOp::Fchmodat, a).with_mode(mode),
        FileCall::Truncate => FileDetail::new(FileOp::Truncate, a),
    }
}

/// The transport of a socket of type `sotype` (`SOCK_STREAM`... with any
/// `SOCK_NONBLOCK`/`SOCK_CLOEXEC` bits): TCP, UDP, or none said.
pub(super) fn transport_of(sotype: u32) -> Option<Transport> {
    match sotype as i32 & 0xf {
        libc::SOCK_STREAM => Some(Transport::Tcp),
        libc::SOCK_DGRAM => Some(Transport::Udp),
        _ => None,
    }
}

/// A `sockaddr` as the process passed it.
fn net_detail(call: NetCall, addr: &[u8], sotype: u32) -> Option<NetDetail> {
    let op = match call {
        NetCall::Connect => NetOp::Connect,
        NetCall::Bind => NetOp::Bind,
        NetCall::Accept => NetOp::Accept,
        NetCall::Sendto => NetOp::Sendto,
    };
    let transport = transport_of(sotype);
    if addr.len() < 2 {
        // accept without a peer address (an unnamed unix peer).
        return Some(NetDetail::new(op, Family::Unix));
    }
    let family = i32::from(u16::from_ne_bytes([addr[0], addr[1]]));
    let port = |a: &[u8]| a.get(2..4).map(|p| u16::from_be_bytes([p[0], p[1]]));
    let mut detail = match family {
        libc::AF_INET => {
            let ip: [u8; 4] = addr.get(4..8)?.try_into().ok()?;
            NetDetail::ip(
                op,
                Family::Inet,
                transport.clone()?,
                &std::net::Ipv4Addr::from(ip).to_string(),
                port(addr)?,
            )
        }
        libc::AF_INET6 => {
            let ip: [u8; 16] = addr.get(8..24)?.try_into().ok()?;
            NetDetail::ip(
                op,
                Family::Inet6,
                transport.clone()?,
                &std::net::Ipv6Addr::from(ip).to_string(),
                port(addr)?,
            )
        }
        libc::AF_UNIX => {
            let path = &addr[2..];
            // A filesystem path ends at its NUL; an abstract name (leading
            // NUL) is all of its bytes.
            let path = match path.first() {
                Some(0) => path,
                _ => path.split(|&b| b == 0).next().unwrap_or_default(),
            };
            let mut d = NetDetail::new(op, Family::Unix);
            d.address = Some(path.to_vec());
            d
        }
        _ => return None,
    };
    if detail.transport.is_none() {
        detail.transport = transport;
    }
    Some(detail)
}

fn answer_text(answer: &[u8]) -> Option<String> {
    match i32::from(answer[0]) {
        libc::AF_INET => {
            Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(&answer[1..5]).ok()?).to_string())
        }
        libc::AF_INET6 => {
            Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(&answer[1..17]).ok()?).to_string())
        }
        _ => None,
    }
}

/// A parsed hello, owned.
pub struct Greeting {
    pub kind: HelloKind,
    pub claimed_pid: u32,
    pub time_ns: u64,
    pub exe: Vec<u8>,
    pub cwd: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub env: Vec<Vec<u8>>,
}

pub fn parse_greeting(bytes: &[u8]) -> Result<Greeting, &'static str> {
    let hello = Hello::parse(bytes).map_err(|_| "garbage")?;
    Ok(Greeting {
        kind: hello.kind,
        claimed_pid: hello.pid,
        time_ns: hello.time_ns,
        exe: hello.exe.to_vec(),
        cwd: hello.cwd.to_vec(),
        argv: hello.argv().map(<[u8]>::to_vec).collect(),
        env: hello.env().map(<[u8]>::to_vec).collect(),
    })
}

/// The world's mapped rings, one per process (its current program image).
#[derive(Default)]
pub struct Rings {
    by_pid: HashMap<i32, MappedRing>,
}

impl Rings {
    pub fn is_full(&self) -> bool {
        self.by_pid.len() >= MAX_RINGS
    }

    /// Keeps `ring` as `pid`'s, unless the ring already kept is newer (a
    /// late hello from an image the process has exec'd away from): the
    /// ring given back is the one to drain a last time and drop.
    pub fn insert(&mut self, ring: MappedRing) -> Option<MappedRing> {
        match self.by_pid.get(&ring.pid) {
            Some(kept) if kept.since_ns > ring.since_ns => Some(ring),
            _ => self.by_pid.insert(ring.pid, ring),
        }
    }

    pub fn get_mut(&mut self, pid: i32) -> Option<&mut MappedRing> {
        self.by_pid.get_mut(&pid)
    }

    pub fn remove(&mut self, pid: i32) -> Option<MappedRing> {
        self.by_pid.remove(&pid)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut MappedRing> {
        self.by_pid.values_mut()
    }

    pub fn drain_all(&mut self) -> impl Iterator<Item = MappedRing> + '_ {
        self.by_pid.drain().map(|(_, r)| r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel names the peer of a socket exactly: here, this process.
    #[test]
    fn the_peer_is_named_by_its_pidfd() {
        let (ours, _theirs) = socket::socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        assert_eq!(peer_world_pid(&ours), Some(std::process::id()));
    }

    #[test]
    fn socket_addresses_decode() {
        // AF_INET 10.0.0.1:443
        let mut v4 = vec![0u8; 16];
        v4[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        v4[2..4].copy_from_slice(&443u16.to_be_bytes());
        v4[4..8].copy_from_slice(&[10, 0, 0, 1]);
        let d = net_detail(NetCall::Connect, &v4, libc::SOCK_STREAM as u32).unwrap();
        assert_eq!(
            (d.address.as_deref(), d.port, d.transport),
            (Some(&b"10.0.0.1"[..]), Some(443), Some(Transport::Tcp))
        );
        let mut un = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
        un.extend_from_slice(b"/run/x.sock\0\0\0");
        let d = net_detail(NetCall::Connect, &un, libc::SOCK_STREAM as u32).unwrap();
        assert_eq!(d.address.as_deref(), Some(&b"/run/x.sock"[..]));
        // Garbage: unknown family, short inet address.
        assert!(net_detail(NetCall::Connect, &[0xff, 0xff, 1, 2], 1).is_none());
        assert!(net_detail(NetCall::Connect, &v4[..6], 1).is_none());
    }
}
