//! The world's DNS resolver.
//!
//! A world's `/etc/resolv.conf` names `127.0.0.53`, an address on the
//! loopback of the world's own network namespace. The monitor opens this
//! resolver's sockets there (through [`NetNs::run`]) and serves them from
//! threads of its own, which stay in the host's namespace: the queries it
//! forwards reach the host's upstream wherever that listens, systemd-resolved
//! on the host's own `127.0.0.53` included.
//!
//! The question's name decides ([`NetworkPolicy::decide_name`]): a name no
//! entry allows is answered NXDOMAIN and never leaves the host; an allowed
//! name is forwarded, and every A and AAAA record of its answer is admitted
//! into the world's egress table (the `admit` callback) before the world sees
//! it, so the world can connect to exactly the addresses it was told about.
//! An address that would turn an allowed name into a way back to the host,
//! the world itself or the cloud's metadata service (DNS rebinding) is
//! removed from the answer instead, unless an allow entry names its network.
//!
//! Untrusted input: everything a world sends. UDP queries go through a
//! bounded queue to a fixed pool of workers (a query whose upstream never
//! answers holds one worker for the upstream timeout, not the socket); TCP
//! clients are capped in number, in message size (the 2-byte length of
//! RFC 7766 §8 caps it at 64 KiB) and in idle time. Every wait also watches
//! a stop pipe, so [`Resolver::stop`] is prompt whatever is in flight.

use std::collections::HashSet;
use std::ffi::CString;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream, UdpSocket,
};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::{RData, Record, RecordType};
use ipnet::IpNet;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    self, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage,
};
use substrate_policy::network::{Entry, NameDecision, NetworkPolicy, Target};
use tracing::{debug, warn};

use crate::netns::NetNs;
use crate::protected::Protected;

/// The largest DNS message either transport carries: TCP's 2-byte length
/// prefix (RFC 7766 §8), and more than any UDP datagram.
const MAX_MESSAGE: usize = u16::MAX as usize;

/// A DNS header's length (RFC 1035 §4.1.1): anything shorter is not DNS.
const HEADER_LEN: usize = 12;

/// Workers answering UDP queries. Each holds a query for at most the
/// upstream timeout; beyond this many slow queries the rest wait in the
/// queue.
const UDP_WORKERS: usize = 8;

/// UDP queries waiting for a worker; more are dropped (the client retries,
/// as it does for any lost datagram).
const UDP_QUEUE: usize = 64;

/// Datagrams read per wake-up before the stop pipe is looked at again, so a
/// flood cannot keep the reader from stopping.
const UDP_BURST: usize = 64;

/// The resolver's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the resolver's {transport} socket on {listen} in the world's network namespace: {source}")]
    Listen {
        transport: Transport,
        listen: SocketAddr,
        #[source]
        source: io::Error,
    },

    #[error("cannot make the resolver's stop pipe: {0}")]
    StopPipe(#[source] io::Error),

    #[error("cannot start the resolver's {thread} thread: {source}")]
    Thread {
        thread: &'static str,
        #[source]
        source: io::Error,
    },

    #[error("cannot read {}: {source}", path.display())]
    ReadResolvConf {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{} names no nameserver this resolver can use", path.display())]
    NoNameserver { path: PathBuf },
}

impl From<Error> for io::Error {
    fn from(error: Error) -> io::Error {
        let kind = match &error {
            Error::Listen { source, .. }
            | Error::Thread { source, .. }
            | Error::ReadResolvConf { source, .. } => source.kind(),
            Error::StopPipe(source) => source.kind(),
            Error::NoNameserver { .. } => io::ErrorKind::NotFound,
        };
        io::Error::new(kind, error)
    }
}

/// How the resolver listens, forwards and admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Where the world's `/etc/resolv.conf` points, in the world's
    /// namespace: `127.0.0.53:53`.
    pub listen: SocketAddr,
    /// The server allowed queries go to, reached from the host's namespace
    /// (see [`host_upstream`]).
    pub upstream: SocketAddr,
    /// The shortest time an answered address stays admitted: a record's TTL
    /// of 0 or 1 s would otherwise expire before the world connects.
    pub ttl_floor: Duration,
    /// Networks no name may resolve into unless an allow entry within them
    /// names them (see [`crate::protected`]): loopback, link-local,
    /// multicast… always, and the bridge's subnets and the host's own
    /// addresses as the caller adds them.
    pub protected: Protected,
    /// How long a forwarded query may take, UDP and a TCP retry together,
    /// before the world gets SERVFAIL. Shorter than a stub resolver's own
    /// timeout (glibc's: 5 s), so the world hears the failure.
    pub upstream_timeout: Duration,
    /// At most this many TCP clients at once; more are closed on accept.
    pub max_tcp_clients: usize,
    /// A TCP client that sends nothing for this long, or takes this long to
    /// send one query or read one answer, is disconnected.
    pub tcp_idle_timeout: Duration,
}

impl ResolverConfig {
    /// The usual configuration, forwarding to `upstream`.
    pub fn new(upstream: SocketAddr) -> ResolverConfig {
        ResolverConfig {
            listen: SocketAddr::from((Ipv4Addr::new(127, 0, 0, 53), 53)),
            upstream,
            ttl_floor: Duration::from_secs(5),
            protected: Protected::default(),
            upstream_timeout: Duration::from_secs(2),
            max_tcp_clients: 16,
            tcp_idle_timeout: Duration::from_secs(10),
        }
    }
}

/// Adds an answered address to the egress table's sets for the allow
/// entries that allowed the name, for `ttl`. Called before the answer goes
/// back to the world; an error keeps the address out of the answer.
pub type Admit = Box<dyn Fn(&[&Entry], IpAddr, Duration) -> io::Result<()> + Send + Sync>;

/// Receives every decision the resolver makes.
pub type OnEvent = Box<dyn Fn(DnsEvent) + Send + Sync>;

/// The transport a query came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        })
    }
}

/// One decision about one query, for the world's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsEvent {
    /// The question's name, lower case, without the trailing dot.
    pub name: String,
    /// The question's type as DNS spells it: `A`, `AAAA`, `TXT`…
    pub query_type: String,
    /// The process's socket in the world's namespace.
    pub client: SocketAddr,
    pub transport: Transport,
    pub outcome: DnsOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsOutcome {
    /// The name is not allowed: answered NXDOMAIN, not forwarded.
    Refused {
        /// `denied by ENTRY` or `not in the allow-list`.
        reason: String,
    },
    /// The upstream's answer, as the world got it.
    Answered {
        /// The A and AAAA addresses in the answer (after removals).
        addresses: Vec<IpAddr>,
        /// The smallest TTL among the answer's records; `None` without any.
        ttl: Option<u32>,
        /// The allow entries that allowed the name, as written; empty when
        /// the policy's default allowed it.
        entries: Vec<String>,
        /// The answer's RCODE (RFC 6895 §2.3): 0 NOERROR, 3 NXDOMAIN…
        rcode: u16,
    },
    /// An address removed from an answer (reported before the answer's
    /// [`DnsOutcome::Answered`]).
    NotAdmitted { address: IpAddr, reason: String },
    /// The upstream did not answer usably: the world got SERVFAIL.
    Failed { reason: String },
}

/// The resolver of one world: its sockets in the world's namespace and the
/// threads serving them. Stopped and joined on drop.
pub struct Resolver {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("listen", &self.shared.listen)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl Resolver {
    /// Binds `config.listen` (UDP and TCP) inside `world` and starts
    /// serving it. Call it from a thread in the host's namespace (the
    /// serving threads are spawned from it and forward from where they are)
    /// and before the world's processes run, so none of them can take the
    /// port first. Bring the world's `lo` up before (see `open_listening`):
    /// answers must come from the address queries went to.
    pub fn start(
        world: &NetNs,
        config: ResolverConfig,
        policy: Arc<RwLock<NetworkPolicy>>,
        admit: Admit,
        events: OnEvent,
    ) -> Result<Resolver, Error> {
        let listen = config.listen;
        let udp = world
            .run(|| open_listening(listen, SockType::Datagram))
            .map_err(|source| Error::Listen {
                transport: Transport::Udp,
                listen,
                source,
            })?;
        let tcp = world
            .run(|| open_listening(listen, SockType::Stream))
            .map_err(|source| Error::Listen {
                transport: Transport::Tcp,
                listen,
                source,
            })?;
        let udp = UdpSocket::from(udp);
        let tcp = TcpListener::from(tcp);

        let shared = Arc::new(Shared {
            listen,
            upstream: config.upstream,
            ttl_floor: config.ttl_floor,
            upstream_timeout: config.upstream_timeout,
            max_tcp_clients: config.max_tcp_clients,
            tcp_idle_timeout: config.tcp_idle_timeout,
            protected: config.protected,
            policy,
            admit,
            events,
            stop: StopSignal::new().map_err(Error::StopPipe)?,
        });
        let mut resolver = Resolver {
            shared: Arc::clone(&shared),
            threads: Vec::new(),
        };
        // From here on an error drops `resolver`, which stops and joins
        // whatever was already started.
        let (queue, waiting) = mpsc::sync_channel::<Datagram>(UDP_QUEUE);
        let waiting = Arc::new(Mutex::new(waiting));
        for _ in 0..UDP_WORKERS {
            let shared = Arc::clone(&shared);
            let waiting = Arc::clone(&waiting);
            let reply = udp.try_clone().map_err(|source| Error::Listen {
                transport: Transport::Udp,
                listen,
                source,
            })?;
            resolver.spawn("dns-udp-worker", move || {
                answer_udp_queries(&shared, &reply, &waiting)
            })?;
        }
        let reader = Arc::clone(&shared);
        resolver.spawn("dns-udp", move || read_udp_queries(&reader, &udp, queue))?;
        let acceptor = Arc::clone(&shared);
        resolver.spawn("dns-tcp", move || accept_tcp_clients(&acceptor, &tcp))?;
        Ok(resolver)
    }

    fn spawn(
        &mut self,
        thread: &'static str,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<(), Error> {
        let handle = std::thread::Builder::new()
            .name(thread.to_owned())
            .spawn(f)
            .map_err(|source| Error::Thread { thread, source })?;
        self.threads.push(handle);
        Ok(())
    }

    /// Stops serving, waits for every thread, and closes the sockets (the
    /// port is free when this returns).
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.shared.stop.raise();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                warn!(listen = %self.shared.listen, "a resolver thread panicked");
            }
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// The host's upstream: the first usable `nameserver` of `resolv_conf`
/// (`/etc/resolv.conf`), on port 53, read as glibc reads it (resolv.conf(5)):
/// the keyword starts its line, the address ends at blanks, `#` or `;`, and
/// an IPv6 address may carry a `%scope`. Lines glibc would skip are skipped.
pub fn host_upstream(resolv_conf: &Path) -> Result<SocketAddr, Error> {
    let text = std::fs::read(resolv_conf).map_err(|source| Error::ReadResolvConf {
        path: resolv_conf.to_owned(),
        source,
    })?;
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(nameserver)
        .ok_or_else(|| Error::NoNameserver {
            path: resolv_conf.to_owned(),
        })
}

/// The address a `nameserver` line names, if this is one glibc would use.
fn nameserver(line: &str) -> Option<SocketAddr> {
    let rest = line.strip_prefix("nameserver")?;
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    let address = rest
        .trim_start_matches([' ', '\t'])
        .split([' ', '\t', '#', ';'])
        .next()?;
    if let Ok(v4) = address.parse::<Ipv4Addr>() {
        return Some(SocketAddr::from((v4, 53)));
    }
    let (v6, scope) = match address.split_once('%') {
        Some((v6, scope)) => (v6, Some(scope)),
        None => (address, None),
    };
    let v6 = v6.parse::<Ipv6Addr>().ok()?;
    let scope_id = match scope {
        None => 0,
        Some(scope) => scope
            .parse::<u32>()
            .ok()
            .or_else(|| interface_index(scope))?,
    };
    Some(SocketAddr::V6(SocketAddrV6::new(v6, 53, 0, scope_id)))
}

/// The index of the host's interface `name`, as glibc resolves a scope.
fn interface_index(name: &str) -> Option<u32> {
    let name = CString::new(name).ok()?;
    // SAFETY: `name` is a NUL-terminated string that outlives the call;
    // if_nametoindex(3) only reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// A socket bound to `listen` in the calling thread's namespace,
/// non-blocking (every wait is a poll that also watches the stop pipe).
fn open_listening(listen: SocketAddr, kind: SockType) -> io::Result<OwnedFd> {
    let family = match listen {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket::socket(
        family,
        kind,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    // ip(7) IP_FREEBIND, ipv6(7) IPV6_FREEBIND: bind an address that is not
    // (yet) configured. Bring the world's `lo` up first all the same: a
    // socket bound while its address was not local sends its answers from
    // the interface's primary address (127.0.0.1), which the connected
    // socket of a stub resolver (glibc's) drops.
    let (level, option) = match listen {
        SocketAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_FREEBIND),
        SocketAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_FREEBIND),
    };
    let on: libc::c_int = 1;
    // SAFETY: `fd` is an open socket we own; the option value is a c_int
    // that lives across the call, and its size is passed with it.
    let set = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            option,
            std::ptr::from_ref(&on).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if set < 0 {
        return Err(io::Error::last_os_error());
    }
    if kind == SockType::Stream {
        // A restarted resolver rebinds while the last one's connections
        // are in TIME_WAIT.
        socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    }
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(listen))?;
    if kind == SockType::Stream {
        socket::listen(&fd, Backlog::new(64)?)?;
    }
    Ok(fd)
}

/// What every thread of one resolver shares.
struct Shared {
    listen: SocketAddr,
    upstream: SocketAddr,
    ttl_floor: Duration,
    upstream_timeout: Duration,
    max_tcp_clients: usize,
    tcp_idle_timeout: Duration,
    protected: Protected,
    policy: Arc<RwLock<NetworkPolicy>>,
    admit: Admit,
    events: OnEvent,
    stop: StopSignal,
}

/// A pipe whose read end turns readable, for good, when the resolver stops:
/// every poll of every thread includes it.
struct StopSignal {
    readable: OwnedFd,
    writable: OwnedFd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    Ready,
    TimedOut,
    Stopped,
}

impl StopSignal {
    fn new() -> io::Result<StopSignal> {
        let (readable, writable) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
        Ok(StopSignal { readable, writable })
    }

    fn raise(&self) {
        // One byte that nobody reads keeps the pipe readable. EAGAIN (a
        // full pipe after repeated raises) leaves it readable as well.
        let _ = nix::unistd::write(&self.writable, &[1]);
    }

    fn is_raised(&self) -> bool {
        self.wait_for(None, Some(Instant::now())) == Wait::Stopped
    }

    /// Waits until `fd` is ready for `events`, `deadline` passes (`None`:
    /// never) or the resolver stops. An error or hang-up on `fd` counts as
    /// ready: the read or write that follows reports it.
    fn wait(&self, fd: BorrowedFd<'_>, events: PollFlags, deadline: Option<Instant>) -> Wait {
        self.wait_for(Some((fd, events)), deadline)
    }

    fn wait_for(&self, fd: Option<(BorrowedFd<'_>, PollFlags)>, deadline: Option<Instant>) -> Wait {
        loop {
            let timeout = match deadline {
                None => PollTimeout::NONE,
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    // Rounded up: a deadline 0.4 ms away must not become a
                    // busy loop of zero-timeout polls.
                    let millis = left.as_nanos().div_ceil(1_000_000);
                    PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX)
                }
            };
            let mut fds = vec![PollFd::new(self.readable.as_fd(), PollFlags::POLLIN)];
            if let Some((fd, events)) = fd {
                fds.push(PollFd::new(fd, events));
            }
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(errno) => {
                    // poll(2) fails only for bad arguments or ENOMEM; give
                    // up on this wait as if stopping rather than spin.
                    warn!(%errno, "poll failed in the resolver");
                    return Wait::Stopped;
                }
            }
            if fds[0].revents().is_some_and(|r| !r.is_empty()) {
                return Wait::Stopped;
            }
            if fds
                .get(1)
                .and_then(|polled| polled.revents())
                .is_some_and(|r| !r.is_empty())
            {
                return Wait::Ready;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Wait::TimedOut;
            }
        }
    }
}

/// A UDP query waiting for a worker.
struct Datagram {
    bytes: Vec<u8>,
    client: SocketAddr,
}

/// Reads the world's UDP queries into the workers' queue until the
/// resolver stops; dropping `queue` then ends the workers.
fn read_udp_queries(shared: &Shared, socket: &UdpSocket, queue: SyncSender<Datagram>) {
    let mut buffer = vec![0; MAX_MESSAGE];
    loop {
        if shared.stop.wait(socket.as_fd(), PollFlags::POLLIN, None) != Wait::Ready {
            return;
        }
        for _ in 0..UDP_BURST {
            match socket.recv_from(&mut buffer) {
                Ok((length, client)) => {
                    let datagram = Datagram {
                        bytes: buffer[..length].to_vec(),
                        client,
                    };
                    match queue.try_send(datagram) {
                        Ok(()) => {}
                        Err(TrySendError::Full(datagram)) => {
                            debug!(client = %datagram.client, "resolver busy: UDP query dropped");
                        }
                        Err(TrySendError::Disconnected(_)) => return,
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    debug!(%error, "resolver: UDP receive failed");
                    break;
                }
            }
        }
    }
}

/// One UDP worker: answers queued queries until the queue's sender is gone.
fn answer_udp_queries(shared: &Shared, socket: &UdpSocket, waiting: &Mutex<Receiver<Datagram>>) {
    loop {
        // The lock is held only while waiting for the next datagram; a
        // worker that panicked while holding it left the receiver intact.
        let next = waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv();
        let Ok(datagram) = next else { return };
        if shared.stop.is_raised() {
            return;
        }
        let Some(reply) = shared.respond(&datagram.bytes, datagram.client, Transport::Udp) else {
            continue;
        };
        if let Err(error) = socket.send_to(&reply, datagram.client) {
            debug!(client = %datagram.client, %error, "resolver: cannot send a UDP answer");
        }
    }
}

/// Decrements the count of TCP clients when a client's thread ends, however
/// it ends (or when it could not be spawned).
struct ClientSlot(Arc<AtomicUsize>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accepts TCP clients, one thread each, at most `max_tcp_clients` at once,
/// until the resolver stops; then waits for the clients' threads.
fn accept_tcp_clients(shared: &Arc<Shared>, listener: &TcpListener) {
    let active = Arc::new(AtomicUsize::new(0));
    let mut clients: Vec<JoinHandle<()>> = Vec::new();
    loop {
        if shared.stop.wait(listener.as_fd(), PollFlags::POLLIN, None) != Wait::Ready {
            break;
        }
        // Finished threads are dropped here, so the list stays as short as
        // the cap.
        clients.retain(|client| !client.is_finished());
        let (stream, client) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
            Err(error) => {
                // EMFILE and the like leave the connection pending and the
                // listener readable: back off instead of spinning.
                debug!(%error, "resolver: TCP accept failed");
                if shared
                    .stop
                    .wait_for(None, Some(Instant::now() + Duration::from_millis(100)))
                    == Wait::Stopped
                {
                    break;
                }
                continue;
            }
        };
        if active.load(Ordering::SeqCst) >= shared.max_tcp_clients {
            debug!(%client, "resolver: too many TCP clients, connection closed");
            continue;
        }
        if let Err(error) = stream.set_nonblocking(true) {
            debug!(%client, %error, "resolver: cannot make a TCP client non-blocking");
            continue;
        }
        active.fetch_add(1, Ordering::SeqCst);
        let slot = ClientSlot(Arc::clone(&active));
        let shared = Arc::clone(shared);
        let spawned = std::thread::Builder::new()
            .name("dns-tcp-client".to_owned())
            .spawn(move || {
                let _slot = slot;
                serve_tcp_client(&shared, &stream, client);
            });
        match spawned {
            Ok(handle) => clients.push(handle),
            Err(error) => debug!(%client, %error, "resolver: cannot start a TCP client thread"),
        }
    }
    for client in clients {
        if client.join().is_err() {
            warn!("a resolver TCP client thread panicked");
        }
    }
}

/// Answers one TCP client's queries, one at a time, until it closes, idles,
/// sends something that is not DNS, or the resolver stops.
fn serve_tcp_client(shared: &Shared, stream: &TcpStream, client: SocketAddr) {
    loop {
        let mut length = [0; 2];
        let idle = Instant::now() + shared.tcp_idle_timeout;
        if let Err(error) = read_exact_until(&shared.stop, stream, &mut length, idle) {
            debug!(%client, %error, "resolver: TCP client done");
            return;
        }
        let length = usize::from(u16::from_be_bytes(length));
        if length < HEADER_LEN {
            debug!(%client, length, "resolver: TCP message too short, connection closed");
            return;
        }
        let mut query = vec![0; length];
        let deadline = Instant::now() + shared.tcp_idle_timeout;
        if let Err(error) = read_exact_until(&shared.stop, stream, &mut query, deadline) {
            debug!(%client, %error, "resolver: TCP query cut short");
            return;
        }
        let Some(reply) = shared.respond(&query, client, Transport::Tcp) else {
            if shared.stop.is_raised() {
                return;
            }
            continue;
        };
        let deadline = Instant::now() + shared.tcp_idle_timeout;
        if let Err(error) = write_framed_until(&shared.stop, stream, &reply, deadline) {
            debug!(%client, %error, "resolver: cannot send a TCP answer");
            return;
        }
    }
}

/// Why a wait on a stream ended without the bytes.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("the resolver is stopping")]
    Stopped,
    #[error("timed out")]
    TimedOut,
    #[error("closed by the peer")]
    Closed,
    #[error(transparent)]
    Io(#[from] io::Error),
}

fn read_exact_until(
    stop: &StopSignal,
    mut stream: &TcpStream,
    buffer: &mut [u8],
    deadline: Instant,
) -> Result<(), StreamError> {
    let mut filled = 0;
    while filled < buffer.len() {
        match stream.read(&mut buffer[filled..]) {
            Ok(0) => return Err(StreamError::Closed),
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                match stop.wait(stream.as_fd(), PollFlags::POLLIN, Some(deadline)) {
                    Wait::Ready => {}
                    Wait::TimedOut => return Err(StreamError::TimedOut),
                    Wait::Stopped => return Err(StreamError::Stopped),
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// Writes `message` with its 2-byte length (RFC 1035 §4.2.2).
fn write_framed_until(
    stop: &StopSignal,
    mut stream: &TcpStream,
    message: &[u8],
    deadline: Instant,
) -> Result<(), StreamError> {
    let length = u16::try_from(message.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "DNS message over 64 KiB"))?;
    let mut framed = Vec::with_capacity(2 + message.len());
    framed.extend_from_slice(&length.to_be_bytes());
    framed.extend_from_slice(message);
    let mut written = 0;
    while written < framed.len() {
        match stream.write(&framed[written..]) {
            Ok(0) => return Err(StreamError::Closed),
            Ok(n) => written += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                match stop.wait(stream.as_fd(), PollFlags::POLLOUT, Some(deadline)) {
                    Wait::Ready => {}
                    Wait::TimedOut => return Err(StreamError::TimedOut),
                    Wait::Stopped => return Err(StreamError::Stopped),
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// Why a forwarded query got no usable answer: the reason a
/// [`DnsOutcome::Failed`] gives.
#[derive(Debug, thiserror::Error)]
enum ForwardError {
    #[error("the resolver is stopping")]
    Stopped,
    #[error("upstream {upstream} did not answer within {timeout:?}")]
    TimedOut {
        upstream: SocketAddr,
        timeout: Duration,
    },
    #[error("upstream {upstream} over {transport}: {source}")]
    Io {
        upstream: SocketAddr,
        transport: Transport,
        #[source]
        source: io::Error,
    },
    #[error("upstream {upstream} over {transport}: {reason}")]
    BadAnswer {
        upstream: SocketAddr,
        transport: Transport,
        reason: String,
    },
    #[error("no random query id: {0}")]
    Random(#[source] io::Error),
}

/// The policy's verdict on a name, taken out of the policy's lock so that
/// forwarding (up to the upstream timeout) never holds it.
enum Decision {
    Refuse {
        reason: String,
    },
    Forward {
        allowance: Allowance,
        /// The networks of the allow entries that name networks: the only
        /// way a protected address gets through.
        explicit: Vec<IpNet>,
    },
}

enum Allowance {
    /// These entries allow the name: its addresses join their sets.
    Entries(Vec<Entry>),
    /// The policy's default allows everything: nothing to admit.
    ByDefault,
}

/// An upstream's answer: its bytes as sent and their parse.
struct Upstream {
    bytes: Vec<u8>,
    message: Message,
}

impl Shared {
    /// The reply to one message from the world, or nothing to send (not a
    /// query, or the resolver is stopping).
    fn respond(&self, query: &[u8], client: SocketAddr, transport: Transport) -> Option<Vec<u8>> {
        if query.len() < HEADER_LEN || query[2] & 0x80 != 0 {
            // Too short to answer, or a response (QR set): answering
            // responses is how two resolvers loop.
            return None;
        }
        let request = match Message::from_vec(query) {
            Ok(request) => request,
            Err(error) => {
                debug!(%client, %error, "resolver: malformed query");
                return Some(header_only_reply(query, ResponseCode::FormErr));
            }
        };
        if request.op_code() != OpCode::Query {
            return Some(header_only_reply(query, ResponseCode::NotImp));
        }
        // RFC 9619: a query has exactly one question.
        let [question] = request.queries() else {
            return Some(header_only_reply(query, ResponseCode::FormErr));
        };
        let name = question.name().to_ascii().to_ascii_lowercase();
        let name = name.strip_suffix('.').unwrap_or(&name).to_owned();
        let report = |outcome| {
            (self.events)(DnsEvent {
                name: name.clone(),
                query_type: type_name(question.query_type()),
                client,
                transport,
                outcome,
            });
        };

        let (allowance, explicit) = match self.decide(&name) {
            Decision::Refuse { reason } => {
                report(DnsOutcome::Refused { reason });
                return synthesized_reply(&request, ResponseCode::NXDomain);
            }
            Decision::Forward {
                allowance,
                explicit,
            } => (allowance, explicit),
        };
        let upstream = match self.forward(query, &request) {
            Ok(upstream) => upstream,
            Err(ForwardError::Stopped) => return None,
            Err(error) => {
                report(DnsOutcome::Failed {
                    reason: error.to_string(),
                });
                return synthesized_reply(&request, ResponseCode::ServFail);
            }
        };
        let mut reply = self.screen(upstream, &allowance, &explicit, &report)?;
        reply[..2].copy_from_slice(&request.id().to_be_bytes());

        let limit = match transport {
            Transport::Udp => usize::from(request.max_payload()),
            Transport::Tcp => MAX_MESSAGE,
        };
        if reply.len() > limit {
            // Larger than the client can take over UDP (an upstream TCP
            // answer, or its EDNS size): TC tells it to ask again over TCP
            // (RFC 1035 §4.2.1).
            let mut truncated = reply_to(&request, ResponseCode::NoError);
            truncated.set_truncated(true);
            return truncated.to_vec().ok();
        }
        Some(reply)
    }

    fn decide(&self, name: &str) -> Decision {
        // A writer that panicked still left a whole policy: replacing it is
        // one assignment.
        let policy = self.policy.read().unwrap_or_else(PoisonError::into_inner);
        let allowance = match policy.decide_name(name) {
            NameDecision::Denied(entry) => {
                return Decision::Refuse {
                    reason: format!("denied by {}", entry.text()),
                }
            }
            NameDecision::NotListed => {
                return Decision::Refuse {
                    reason: "not in the allow-list".to_owned(),
                }
            }
            NameDecision::Allowed(entries) => {
                Allowance::Entries(entries.into_iter().cloned().collect())
            }
            NameDecision::AllowedByDefault => Allowance::ByDefault,
        };
        let explicit = policy
            .allow
            .iter()
            .filter_map(|entry| match entry.target {
                Target::Net(net) => Some(net),
                _ => None,
            })
            .collect();
        Decision::Forward {
            allowance,
            explicit,
        }
    }

    /// Asks the upstream over UDP, and again over TCP if the answer was
    /// truncated, all within the upstream timeout. The query goes as the
    /// world wrote it (its EDNS, its flags) under an id of our own.
    fn forward(&self, query: &[u8], request: &Message) -> Result<Upstream, ForwardError> {
        let deadline = Instant::now() + self.upstream_timeout;
        let id = random_id().map_err(ForwardError::Random)?;
        let mut outgoing = query.to_vec();
        outgoing[..2].copy_from_slice(&id.to_be_bytes());
        let answer = self.ask_over_udp(&outgoing, id, request, deadline)?;
        if !answer.message.truncated() {
            return Ok(answer);
        }
        self.ask_over_tcp(&outgoing, id, request, deadline)
    }

    fn ask_over_udp(
        &self,
        outgoing: &[u8],
        id: u16,
        request: &Message,
        deadline: Instant,
    ) -> Result<Upstream, ForwardError> {
        let io_error = |source| ForwardError::Io {
            upstream: self.upstream,
            transport: Transport::Udp,
            source,
        };
        // A socket per query: a random source port (with the random id,
        // what an off-path spoofer must guess), and connect(2) keeps out
        // datagrams from anyone but the upstream.
        let any: IpAddr = match self.upstream {
            SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        };
        let socket = UdpSocket::bind((any, 0)).map_err(io_error)?;
        socket.connect(self.upstream).map_err(io_error)?;
        socket.set_nonblocking(true).map_err(io_error)?;
        socket.send(outgoing).map_err(io_error)?;
        let mut buffer = vec![0; MAX_MESSAGE];
        loop {
            match self
                .stop
                .wait(socket.as_fd(), PollFlags::POLLIN, Some(deadline))
            {
                Wait::Ready => {}
                Wait::TimedOut => return Err(self.timed_out()),
                Wait::Stopped => return Err(ForwardError::Stopped),
            }
            let length = match socket.recv(&mut buffer) {
                Ok(length) => length,
                Err(error)
                    if matches!(
                        error.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue
                }
                // ECONNREFUSED: nothing listens there (an ICMP error).
                Err(error) => return Err(io_error(error)),
            };
            let bytes = &buffer[..length];
            if bytes.len() < HEADER_LEN || bytes[..2] != id.to_be_bytes() {
                // Not the answer to this query (a late answer to nothing
                // we asked, or junk): keep waiting for the right one.
                continue;
            }
            let message = self.parse_answer(bytes, request, Transport::Udp)?;
            return Ok(Upstream {
                bytes: bytes.to_vec(),
                message,
            });
        }
    }

    fn ask_over_tcp(
        &self,
        outgoing: &[u8],
        id: u16,
        request: &Message,
        deadline: Instant,
    ) -> Result<Upstream, ForwardError> {
        let stream = self.connect_upstream(deadline)?;
        let stream_error = |error| match error {
            StreamError::Stopped => ForwardError::Stopped,
            StreamError::TimedOut => self.timed_out(),
            StreamError::Closed => ForwardError::BadAnswer {
                upstream: self.upstream,
                transport: Transport::Tcp,
                reason: "closed the connection without an answer".to_owned(),
            },
            StreamError::Io(source) => ForwardError::Io {
                upstream: self.upstream,
                transport: Transport::Tcp,
                source,
            },
        };
        write_framed_until(&self.stop, &stream, outgoing, deadline).map_err(stream_error)?;
        let mut length = [0; 2];
        read_exact_until(&self.stop, &stream, &mut length, deadline).map_err(stream_error)?;
        let mut bytes = vec![0; usize::from(u16::from_be_bytes(length))];
        read_exact_until(&self.stop, &stream, &mut bytes, deadline).map_err(stream_error)?;
        if bytes.len() < HEADER_LEN || bytes[..2] != id.to_be_bytes() {
            return Err(ForwardError::BadAnswer {
                upstream: self.upstream,
                transport: Transport::Tcp,
                reason: "answered with another query's id".to_owned(),
            });
        }
        let message = self.parse_answer(&bytes, request, Transport::Tcp)?;
        Ok(Upstream { bytes, message })
    }

    /// A non-blocking connect(2) to the upstream, waited for with the stop
    /// pipe (connect(2): EINPROGRESS, then SO_ERROR once writable).
    fn connect_upstream(&self, deadline: Instant) -> Result<TcpStream, ForwardError> {
        let io_error = |source| ForwardError::Io {
            upstream: self.upstream,
            transport: Transport::Tcp,
            source,
        };
        let family = match self.upstream {
            SocketAddr::V4(_) => AddressFamily::Inet,
            SocketAddr::V6(_) => AddressFamily::Inet6,
        };
        let fd = socket::socket(
            family,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(|errno| io_error(errno.into()))?;
        match socket::connect(fd.as_raw_fd(), &SockaddrStorage::from(self.upstream)) {
            Ok(()) => return Ok(TcpStream::from(fd)),
            Err(nix::errno::Errno::EINPROGRESS) => {}
            Err(errno) => return Err(io_error(errno.into())),
        }
        match self
            .stop
            .wait(fd.as_fd(), PollFlags::POLLOUT, Some(deadline))
        {
            Wait::Ready => {}
            Wait::TimedOut => return Err(self.timed_out()),
            Wait::Stopped => return Err(ForwardError::Stopped),
        }
        match socket::getsockopt(&fd, sockopt::SocketError) {
            Ok(0) => Ok(TcpStream::from(fd)),
            Ok(errno) => Err(io_error(io::Error::from_raw_os_error(errno))),
            Err(errno) => Err(io_error(errno.into())),
        }
    }

    fn timed_out(&self) -> ForwardError {
        ForwardError::TimedOut {
            upstream: self.upstream,
            timeout: self.upstream_timeout,
        }
    }

    /// The upstream's answer, if it is one to `request`.
    fn parse_answer(
        &self,
        bytes: &[u8],
        request: &Message,
        transport: Transport,
    ) -> Result<Message, ForwardError> {
        let bad = |reason: String| ForwardError::BadAnswer {
            upstream: self.upstream,
            transport,
            reason,
        };
        let message =
            Message::from_vec(bytes).map_err(|e| bad(format!("malformed answer: {e}")))?;
        if message.message_type() != MessageType::Response {
            return Err(bad("sent a query, not an answer".to_owned()));
        }
        // A truncated answer may leave out the question; any other must
        // repeat it.
        let echoed = message.queries() == request.queries()
            || (message.truncated() && message.queries().is_empty());
        if !echoed {
            return Err(bad("answered another question".to_owned()));
        }
        Ok(message)
    }

    /// Admits the answer's addresses and removes those it must not pass
    /// (rebinding, or refused by the egress table); returns the bytes for the
    /// world (id still the upstream's). Reports what it removed and then
    /// the answer.
    fn screen(
        &self,
        upstream: Upstream,
        allowance: &Allowance,
        explicit: &[IpNet],
        report: &dyn Fn(DnsOutcome),
    ) -> Option<Vec<u8>> {
        let Upstream { bytes, mut message } = upstream;
        // Each address once, with the longest TTL any of its records has.
        let mut answered: Vec<(IpAddr, u32)> = Vec::new();
        for record in message.answers() {
            if let Some(address) = address_of(record) {
                match answered.iter_mut().find(|(a, _)| *a == address) {
                    Some((_, ttl)) => *ttl = (*ttl).max(record.ttl()),
                    None => answered.push((address, record.ttl())),
                }
            }
        }
        let entries: Vec<&Entry> = match allowance {
            Allowance::Entries(entries) => entries.iter().collect(),
            Allowance::ByDefault => Vec::new(),
        };
        let mut removed: HashSet<IpAddr> = HashSet::new();
        for &(address, ttl) in &answered {
            let refusal = match self.rebinding(address, explicit) {
                Some(reason) => Some(reason),
                None if matches!(allowance, Allowance::Entries(_)) => {
                    let ttl = Duration::from_secs(ttl.into()).max(self.ttl_floor);
                    (self.admit)(&entries, address, ttl)
                        .err()
                        .map(|e| format!("the egress table did not take it: {e}"))
                }
                None => None,
            };
            if let Some(reason) = refusal {
                report(DnsOutcome::NotAdmitted { address, reason });
                removed.insert(address);
            }
        }
        // Addresses outside the answer section (glue in the additional
        // section) are neither admitted nor needed by a stub resolver: they
        // go, so that every address the world sees was screened.
        let stray = message
            .name_servers()
            .iter()
            .chain(message.additionals())
            .any(|record| address_of(record).is_some());
        let bytes = if removed.is_empty() && !stray {
            // Unchanged: the upstream's own bytes, whatever records hickory
            // would re-encode differently.
            bytes
        } else {
            message
                .answers_mut()
                .retain(|record| address_of(record).is_none_or(|a| !removed.contains(&a)));
            message
                .name_servers_mut()
                .retain(|record| address_of(record).is_none());
            message
                .additionals_mut()
                .retain(|record| address_of(record).is_none());
            match message.to_vec() {
                Ok(bytes) => bytes,
                Err(error) => {
                    report(DnsOutcome::Failed {
                        reason: format!("cannot re-encode the screened answer: {error}"),
                    });
                    let mut failure =
                        Message::error_msg(message.id(), OpCode::Query, ResponseCode::ServFail);
                    failure.add_queries(message.queries().iter().cloned());
                    return failure.to_vec().ok();
                }
            }
        };
        report(DnsOutcome::Answered {
            addresses: answered
                .iter()
                .map(|&(address, _)| address)
                .filter(|address| !removed.contains(address))
                .collect(),
            ttl: message.answers().iter().map(Record::ttl).min(),
            entries: entries
                .iter()
                .map(|entry| entry.text().to_owned())
                .collect(),
            rcode: u16::from(message.response_code()),
        });
        Some(bytes)
    }

    /// Why `address` must not be answered for a name, if it must not: it
    /// leads to the world's or the host's own addresses, the cloud's
    /// metadata service or a protected network, and no allow entry names
    /// its network.
    fn rebinding(&self, address: IpAddr, explicit: &[IpNet]) -> Option<String> {
        if self.protected.admits(address, explicit) {
            return None;
        }
        let net = self.protected.containing(address)?;
        Some(match special_class(address.to_canonical()) {
            Some(class) => format!(
                "{address} is a {class} address (DNS rebinding) and no allow entry names its network"
            ),
            None => format!(
                "{address} is in the protected network {net} (DNS rebinding) and no allow entry names it"
            ),
        })
    }
}

/// The kind of address no name may resolve to by default, if it is one.
fn special_class(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) if v4.is_loopback() => Some("loopback"),
        IpAddr::V4(v4) if v4.is_link_local() => Some("link-local (cloud metadata)"),
        // 0.0.0.0/8, "this network" (RFC 1122 §3.2.1.3): Linux connects
        // 0.0.0.0 to the local host.
        IpAddr::V4(v4) if v4.octets()[0] == 0 => Some("unspecified"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("broadcast"),
        IpAddr::V4(v4) if v4.is_multicast() => Some("multicast"),
        IpAddr::V6(v6) if v6.is_loopback() => Some("loopback"),
        IpAddr::V6(v6) if v6.is_unicast_link_local() => Some("link-local"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("unspecified"),
        IpAddr::V6(v6) if v6.is_multicast() => Some("multicast"),
        _ => None,
    }
}

/// A record type as DNS spells it, `TYPE65400` for one without a name
/// (RFC 3597 §5) where hickory would say `Unknown`.
fn type_name(kind: RecordType) -> String {
    match kind {
        RecordType::Unknown(code) => format!("TYPE{code}"),
        known => known.to_string(),
    }
}

/// The address an A or AAAA record holds.
fn address_of(record: &Record) -> Option<IpAddr> {
    match record.data() {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
        _ => None,
    }
}

/// The answer header to `request` with `rcode`, its question echoed.
fn reply_to(request: &Message, rcode: ResponseCode) -> Message {
    let mut reply = Message::error_msg(request.id(), request.op_code(), rcode);
    reply
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .set_checking_disabled(request.checking_disabled())
        .add_queries(request.queries().iter().cloned());
    reply
}

fn synthesized_reply(request: &Message, rcode: ResponseCode) -> Option<Vec<u8>> {
    match reply_to(request, rcode).to_vec() {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            debug!(%error, "resolver: cannot encode a reply");
            None
        }
    }
}

/// A reply to a query that could not be parsed: its header, with QR set,
/// `rcode`, and no records (RFC 1035 §4.1.1).
fn header_only_reply(query: &[u8], rcode: ResponseCode) -> Vec<u8> {
    let mut reply = query[..HEADER_LEN].to_vec();
    // QR, the query's opcode and RD; AA, TC cleared.
    reply[2] = 0x80 | (query[2] & 0x79);
    // RA, and the low four bits of the rcode (the rest needs EDNS).
    reply[3] = 0x80 | (u16::from(rcode) & 0x0f) as u8;
    reply[4..].fill(0);
    reply
}

/// A random 16-bit query id (getrandom(2)).
fn random_id() -> io::Result<u16> {
    let mut id = [0u8; 2];
    // SAFETY: getrandom(2) writes at most `id.len()` bytes into `id`, which
    // we own and which outlives the call.
    let got = unsafe { libc::getrandom(id.as_mut_ptr().cast(), id.len(), 0) };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    if got as usize != id.len() {
        return Err(io::Error::other("getrandom returned too few bytes"));
    }
    Ok(u16::from_be_bytes(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameserver_lines_are_read_as_glibc_reads_them() {
        assert_eq!(
            nameserver("nameserver 127.0.0.53"),
            Some("127.0.0.53:53".parse().unwrap())
        );
        assert_eq!(
            nameserver("nameserver\t10.0.0.2 # the router"),
            Some("10.0.0.2:53".parse().unwrap())
        );
        assert_eq!(
            nameserver("nameserver 10.0.0.3;x"),
            Some("10.0.0.3:53".parse().unwrap())
        );
        assert_eq!(
            nameserver("nameserver 2001:db8::1"),
            Some("[2001:db8::1]:53".parse().unwrap())
        );
        assert_eq!(
            nameserver("nameserver fe80::1%7"),
            Some(SocketAddr::V6(SocketAddrV6::new(
                "fe80::1".parse().unwrap(),
                53,
                0,
                7
            )))
        );
        assert_eq!(nameserver("# nameserver 10.0.0.1"), None);
        assert_eq!(nameserver(" nameserver 10.0.0.1"), None);
        assert_eq!(nameserver("nameservers 10.0.0.1"), None);
        assert_eq!(nameserver("nameserver"), None);
        assert_eq!(nameserver("nameserver not-an-address"), None);
        assert_eq!(nameserver("nameserver fe80::1%no-such-interface0"), None);
        assert_eq!(nameserver("search example.com"), None);
    }

    #[test]
    fn host_upstream_takes_the_first_usable_nameserver() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(
            &path,
            "# generated\nsearch lan\nnameserver bogus\nnameserver 192.0.2.1\nnameserver 192.0.2.2\n",
        )
        .unwrap();
        assert_eq!(
            host_upstream(&path).unwrap(),
            "192.0.2.1:53".parse().unwrap()
        );
        std::fs::write(&path, "search lan\n").unwrap();
        assert!(matches!(
            host_upstream(&path),
            Err(Error::NoNameserver { .. })
        ));
        assert!(matches!(
            host_upstream(&dir.path().join("missing")),
            Err(Error::ReadResolvConf { .. })
        ));
    }

    #[test]
    fn special_addresses_are_classified() {
        for (address, class) in [
            ("127.0.0.1", Some("loopback")),
            ("127.255.0.9", Some("loopback")),
            ("169.254.169.254", Some("link-local (cloud metadata)")),
            ("0.0.0.0", Some("unspecified")),
            ("255.255.255.255", Some("broadcast")),
            ("224.0.0.1", Some("multicast")),
            ("::1", Some("loopback")),
            ("fe80::1", Some("link-local")),
            ("::", Some("unspecified")),
            ("ff02::1", Some("multicast")),
            ("192.0.2.10", None),
            ("2001:db8::10", None),
        ] {
            assert_eq!(special_class(address.parse().unwrap()), class, "{address}");
        }
    }

    #[test]
    fn record_types_are_named_as_dns_names_them() {
        assert_eq!(type_name(RecordType::AAAA), "AAAA");
        assert_eq!(type_name(RecordType::HTTPS), "HTTPS");
        assert_eq!(type_name(RecordType::Unknown(65400)), "TYPE65400");
    }

    #[test]
    fn a_malformed_query_gets_its_header_back_as_formerr() {
        let query = [0x12, 0x34, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 0, 0xff];
        let reply = header_only_reply(&query, ResponseCode::FormErr);
        assert_eq!(reply, [0x12, 0x34, 0x81, 0x81, 0, 0, 0, 0, 0, 0, 0, 0]);
    }
}
