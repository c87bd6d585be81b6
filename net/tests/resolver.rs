//! The world's resolver against the real kernel: a world namespace, a fake
//! upstream on the host's loopback, and queries from inside the world.
//! Needs root (a new network namespace).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use substrate_net::netns::NetNs;
use substrate_net::protected::Protected;
use substrate_net::resolver::{DnsEvent, DnsOutcome, Resolver, ResolverConfig, Transport};
use substrate_policy::network::NetworkPolicy;
use substrate_policy::Policy;

const RESOLVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53)), 53);
/// How long a test waits for an answer that must come.
const PATIENCE: Duration = Duration::from_secs(5);

/// A world's namespace with its `lo` up, as the runtime leaves it.
fn world() -> NetNs {
    let world = NetNs::new_anonymous().expect("a network namespace (run as root)");
    bring_up_lo(&world).expect("lo up in the world");
    world
}

/// SIOCSIFFLAGS IFF_UP on the namespace's `lo`, as the runtime does.
fn bring_up_lo(world: &NetNs) -> io::Result<()> {
    world.run(|| {
        let sock: OwnedFd = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        // SAFETY: ifreq is plain data; all-zero is a valid value.
        let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in request.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we own,
        // on a socket we own.
        unsafe {
            if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) < 0 {
                return Err(io::Error::last_os_error());
            }
            request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &request) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    })
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

fn a(owner: &str, ttl: u32, address: [u8; 4]) -> Record {
    Record::from_rdata(name(owner), ttl, RData::A(A(Ipv4Addr::from(address))))
}

fn aaaa(owner: &str, ttl: u32, address: &str) -> Record {
    let address: Ipv6Addr = address.parse().unwrap();
    Record::from_rdata(name(owner), ttl, RData::AAAA(AAAA(address)))
}

/// A fake upstream on the host's 127.0.0.1 (UDP and TCP on one port) that
/// answers fixed records and logs every question it gets.
struct Upstream {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<(String, RecordType, Transport)>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Upstream {
    fn start() -> Upstream {
        let (udp, tcp) = (0..20)
            .find_map(|_| {
                let udp = UdpSocket::bind("127.0.0.1:0").ok()?;
                let tcp = TcpListener::bind(udp.local_addr().ok()?).ok()?;
                Some((udp, tcp))
            })
            .expect("a UDP and TCP port pair on 127.0.0.1");
        let addr = udp.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let udp_thread = {
            let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut buffer = vec![0; 65535];
                while !stop.load(Ordering::SeqCst) {
                    let Ok((length, client)) = udp.recv_from(&mut buffer) else {
                        continue;
                    };
                    let Ok(query) = Message::from_vec(&buffer[..length]) else {
                        continue;
                    };
                    if let Some(reply) = answer(&query, Transport::Udp, &log) {
                        udp.send_to(&reply.to_vec().unwrap(), client).unwrap();
                    }
                }
            })
        };
        let tcp_thread = {
            let (log, stop) = (Arc::clone(&log), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in tcp.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(mut stream) = stream else { continue };
                    stream.set_read_timeout(Some(PATIENCE)).unwrap();
                    let mut length = [0; 2];
                    while stream.read_exact(&mut length).is_ok() {
                        let mut message = vec![0; usize::from(u16::from_be_bytes(length))];
                        if stream.read_exact(&mut message).is_err() {
                            break;
                        }
                        let Ok(query) = Message::from_vec(&message) else {
                            break;
                        };
                        if let Some(reply) = answer(&query, Transport::Tcp, &log) {
                            let reply = reply.to_vec().unwrap();
                            let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
                            framed.extend_from_slice(&reply);
                            if stream.write_all(&framed).is_err() {
                                break;
                            }
                        }
                    }
                }
            })
        };
        Upstream {
            addr,
            log,
            stop,
            threads: vec![udp_thread, tcp_thread],
        }
    }

    /// How many questions for `name` it got, over any transport.
    fn asked(&self, name: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _, _)| n == name)
            .count()
    }

    fn asked_over(&self, name: &str, transport: Transport) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _, t)| n == name && *t == transport)
            .count()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake both blocking calls: a datagram and a connection.
        let _ = UdpSocket::bind("127.0.0.1:0").and_then(|s| s.send_to(b"stop", self.addr));
        let _ = TcpStream::connect(self.addr);
        for thread in self.threads.drain(..) {
            thread.join().unwrap();
        }
    }
}

/// The fake upstream's zone.
fn answer(
    query: &Message,
    transport: Transport,
    log: &Mutex<Vec<(String, RecordType, Transport)>>,
) -> Option<Message> {
    let question = query.queries().first()?;
    let asked = question.name().to_ascii().to_ascii_lowercase();
    let asked = asked.trim_end_matches('.').to_owned();
    let kind = question.query_type();
    log.lock().unwrap().push((asked.clone(), kind, transport));
    let owner = format!("{asked}.");
    let mut reply = Message::new();
    reply
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .add_query(question.clone());
    let answers: Vec<Record> = match (asked.as_str(), kind) {
        ("silent.test", _) => return None,
        ("allowed.test", RecordType::A) => vec![a(&owner, 1, [192, 0, 2, 10])],
        ("allowed.test", RecordType::AAAA) => vec![aaaa(&owner, 1, "2001:db8::10")],
        ("api.suffix.test", RecordType::A) => vec![a(&owner, 300, [192, 0, 2, 20])],
        (
            "unlisted.test" | "suffix.test" | "denied.suffix.test" | "anything.test",
            RecordType::A,
        ) => {
            vec![a(&owner, 300, [192, 0, 2, 70])]
        }
        ("metadata.test", RecordType::A) => vec![a(&owner, 60, [169, 254, 169, 254])],
        ("loopback.test", RecordType::A) => vec![a(&owner, 60, [127, 0, 0, 1])],
        ("mixed.test", RecordType::A) => vec![
            a(&owner, 60, [192, 0, 2, 30]),
            a(&owner, 60, [127, 0, 0, 1]),
        ],
        ("mapped.test", RecordType::AAAA) => vec![aaaa(&owner, 60, "::ffff:127.0.0.1")],
        ("protected.test", RecordType::A) => vec![a(&owner, 60, [10, 99, 0, 5])],
        ("refused.test", RecordType::A) => vec![a(&owner, 60, [192, 0, 2, 99])],
        ("txt.test", RecordType::TXT) => vec![Record::from_rdata(
            name(&owner),
            60,
            RData::TXT(TXT::new(vec!["hello from upstream".to_owned()])),
        )],
        ("cname.test", RecordType::A) => vec![
            Record::from_rdata(
                name(&owner),
                60,
                RData::CNAME(CNAME(name("target.elsewhere.test."))),
            ),
            a("target.elsewhere.test.", 60, [192, 0, 2, 50]),
        ],
        ("glue.test", RecordType::A) => {
            reply.add_additional(a("ns.glue.test.", 60, [127, 0, 0, 9]));
            vec![a(&owner, 60, [192, 0, 2, 60])]
        }
        ("big.test", RecordType::A) if transport == Transport::Udp => {
            reply.set_truncated(true);
            Vec::new()
        }
        // Over TCP: 40 addresses, more than a 512-byte UDP answer holds.
        ("big.test", RecordType::A) => (100..140).map(|i| a(&owner, 60, [192, 0, 2, i])).collect(),
        _ => {
            reply.set_response_code(ResponseCode::NXDomain);
            Vec::new()
        }
    };
    reply.add_answers(answers);
    Some(reply)
}

type Admitted = Arc<Mutex<Vec<(Vec<String>, IpAddr, Duration)>>>;

/// A world with a resolver in it, forwarding to a fake upstream.
struct Harness {
    // Dropped in this order: the resolver before the world and upstream.
    resolver: Option<Resolver>,
    world: NetNs,
    upstream: Upstream,
    admitted: Admitted,
    events: Arc<Mutex<Vec<DnsEvent>>>,
}

const POLICY: &str = r#"
version: 1
network:
  allow:
    - allowed.test
    - "*.suffix.test"
    - metadata.test
    - loopback.test
    - mixed.test
    - mapped.test
    - protected.test
    - refused.test
    - txt.test:443/tcp
    - big.test
    - silent.test
    - cname.test
    - glue.test
  deny:
    - denied.suffix.test
"#;

fn policy(text: &str) -> NetworkPolicy {
    Policy::parse(text).expect("the test's policy").network
}

impl Harness {
    fn start(policy: NetworkPolicy) -> Harness {
        Harness::start_with(policy, |_| {})
    }

    fn start_with(policy: NetworkPolicy, configure: impl FnOnce(&mut ResolverConfig)) -> Harness {
        let world = world();
        let upstream = Upstream::start();
        let mut config = ResolverConfig::new(upstream.addr);
        config.protected = Protected::new(["10.99.0.0/16".parse().unwrap()]);
        config.upstream_timeout = Duration::from_millis(800);
        configure(&mut config);
        let admitted: Admitted = Arc::default();
        let events: Arc<Mutex<Vec<DnsEvent>>> = Arc::default();
        let resolver = {
            let admitted = Arc::clone(&admitted);
            let events = Arc::clone(&events);
            Resolver::start(
                &world,
                config,
                Arc::new(RwLock::new(policy)),
                Box::new(move |entries, address, ttl| {
                    if address == IpAddr::V4(Ipv4Addr::new(192, 0, 2, 99)) {
                        return Err(io::Error::other("set full"));
                    }
                    let entries = entries.iter().map(|e| e.text().to_owned()).collect();
                    admitted.lock().unwrap().push((entries, address, ttl));
                    Ok(())
                }),
                Box::new(move |event| events.lock().unwrap().push(event)),
            )
            .expect("resolver starts")
        };
        Harness {
            resolver: Some(resolver),
            world,
            upstream,
            admitted,
            events,
        }
    }

    fn ask_udp(&self, query: &Message) -> Message {
        ask_udp(&self.world, query).expect("an answer over UDP")
    }

    fn ask_tcp(&self, query: &Message) -> Message {
        ask_tcp(&self.world, query).expect("an answer over TCP")
    }

    fn events_for(&self, name: &str) -> Vec<DnsOutcome> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.name == name)
            .map(|e| e.outcome.clone())
            .collect()
    }

    fn admitted(&self, address: IpAddr) -> Vec<(Vec<String>, Duration)> {
        self.admitted
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, a, _)| *a == address)
            .map(|(entries, _, ttl)| (entries.clone(), *ttl))
            .collect()
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(resolver) = self.resolver.take() {
            resolver.stop();
        }
    }
}

fn query(text: &str, kind: RecordType) -> Message {
    let mut message = Message::new();
    message
        .set_id(0x5ead)
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(name(text), kind));
    message
}

/// Asks the resolver over UDP from inside `world`.
fn ask_udp(world: &NetNs, query: &Message) -> io::Result<Message> {
    let bytes = query.to_vec().unwrap();
    world.run(|| {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(PATIENCE))?;
        socket.send_to(&bytes, RESOLVER)?;
        let mut buffer = vec![0; 65535];
        let length = socket.recv(&mut buffer)?;
        Message::from_vec(&buffer[..length]).map_err(io::Error::other)
    })
}

/// Asks the resolver over TCP from inside `world`.
fn ask_tcp(world: &NetNs, query: &Message) -> io::Result<Message> {
    let bytes = query.to_vec().unwrap();
    world.run(|| {
        let mut stream = TcpStream::connect(RESOLVER)?;
        stream.set_read_timeout(Some(PATIENCE))?;
        write_framed(&mut stream, &bytes)?;
        read_framed(&mut stream)
    })
}

fn write_framed(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.write_all(&framed)
}

fn read_framed(stream: &mut TcpStream) -> io::Result<Message> {
    let mut length = [0; 2];
    stream.read_exact(&mut length)?;
    let mut message = vec![0; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut message)?;
    Message::from_vec(&message).map_err(io::Error::other)
}

/// Asserts the resolver closed `stream`: end of file, or a reset when it
/// closed with bytes of ours unread (tcp(7)).
fn assert_closed(stream: &mut TcpStream) {
    match stream.read(&mut [0; 64]) {
        Ok(0) => {}
        Err(error) if error.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the connection closed, got {other:?}"),
    }
}

fn addresses(message: &Message) -> Vec<IpAddr> {
    message
        .answers()
        .iter()
        .filter_map(|record| match record.data() {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn is_nxdomain_echoing(reply: &Message, asked: &Message) -> bool {
    reply.response_code() == ResponseCode::NXDomain
        && reply.id() == asked.id()
        && reply.queries() == asked.queries()
        && reply.answers().is_empty()
}

#[test]
fn an_allowed_name_is_answered_and_admitted_for_at_least_the_floor() {
    let harness = Harness::start(policy(POLICY));
    let asked = query("allowed.test.", RecordType::A);
    let reply = harness.ask_udp(&asked);
    assert_eq!(reply.id(), asked.id());
    assert_eq!(reply.response_code(), ResponseCode::NoError);
    assert_eq!(addresses(&reply), [ip("192.0.2.10")]);
    // TTL 1 upstream: admitted for the 5 s floor.
    assert_eq!(
        harness.admitted(ip("192.0.2.10")),
        [(vec!["allowed.test".to_owned()], Duration::from_secs(5))]
    );
    assert_eq!(
        harness.events_for("allowed.test"),
        [DnsOutcome::Answered {
            addresses: vec![ip("192.0.2.10")],
            ttl: Some(1),
            entries: vec!["allowed.test".to_owned()],
            rcode: 0,
        }]
    );
    let event = harness.events.lock().unwrap()[0].clone();
    assert_eq!(event.query_type, "A");
    assert_eq!(event.transport, Transport::Udp);
    assert_eq!(event.client.ip(), ip("127.0.0.1"));

    let reply = harness.ask_udp(&query("allowed.test.", RecordType::AAAA));
    assert_eq!(addresses(&reply), [ip("2001:db8::10")]);
    assert_eq!(
        harness.admitted(ip("2001:db8::10")),
        [(vec!["allowed.test".to_owned()], Duration::from_secs(5))]
    );
}

#[test]
fn unlisted_and_denied_names_get_nxdomain_and_never_reach_the_upstream() {
    let harness = Harness::start(policy(POLICY));
    for (asked_name, reason) in [
        ("unlisted.test", "not in the allow-list"),
        // `*.suffix.test` is every name below suffix.test, not itself.
        ("suffix.test", "not in the allow-list"),
        ("denied.suffix.test", "denied by denied.suffix.test"),
    ] {
        let asked = query(&format!("{asked_name}."), RecordType::A);
        let reply = harness.ask_udp(&asked);
        assert!(
            is_nxdomain_echoing(&reply, &asked),
            "{asked_name}: {reply:?}"
        );
        assert_eq!(
            harness.upstream.asked(asked_name),
            0,
            "{asked_name} was forwarded"
        );
        assert_eq!(
            harness.events_for(asked_name),
            [DnsOutcome::Refused {
                reason: reason.to_owned()
            }]
        );
    }
    assert!(harness.admitted.lock().unwrap().is_empty());
}

#[test]
fn a_suffix_entry_allows_names_below_it_in_any_case() {
    let harness = Harness::start(policy(POLICY));
    let reply = harness.ask_udp(&query("API.Suffix.TEST.", RecordType::A));
    assert_eq!(addresses(&reply), [ip("192.0.2.20")]);
    assert_eq!(
        harness.admitted(ip("192.0.2.20")),
        [(vec!["*.suffix.test".to_owned()], Duration::from_secs(300))]
    );
    assert_eq!(harness.upstream.asked("api.suffix.test"), 1);
    assert!(matches!(
        harness.events_for("api.suffix.test")[..],
        [DnsOutcome::Answered { ttl: Some(300), .. }]
    ));
}

#[test]
fn rebinding_answers_are_stripped_and_reported() {
    let harness = Harness::start(policy(POLICY));
    for (asked_name, kind, address) in [
        ("metadata.test", RecordType::A, "169.254.169.254"),
        ("loopback.test", RecordType::A, "127.0.0.1"),
        ("mapped.test", RecordType::AAAA, "::ffff:127.0.0.1"),
        // In the caller's protected nets (10.99.0.0/16).
        ("protected.test", RecordType::A, "10.99.0.5"),
    ] {
        let reply = harness.ask_udp(&query(&format!("{asked_name}."), kind));
        assert_eq!(reply.response_code(), ResponseCode::NoError, "{asked_name}");
        assert!(addresses(&reply).is_empty(), "{asked_name}: {reply:?}");
        assert!(
            harness.admitted(ip(address)).is_empty(),
            "{address} admitted"
        );
        let outcomes = harness.events_for(asked_name);
        assert!(
            matches!(
                &outcomes[..],
                [
                    DnsOutcome::NotAdmitted { address: a, reason },
                    DnsOutcome::Answered { addresses, rcode: 0, .. },
                ] if *a == ip(address) && reason.contains("rebinding") && addresses.is_empty()
            ),
            "{asked_name}: {outcomes:?}"
        );
    }

    // A public address next to a loopback one: only the public one stays.
    let reply = harness.ask_udp(&query("mixed.test.", RecordType::A));
    assert_eq!(addresses(&reply), [ip("192.0.2.30")]);
    assert_eq!(harness.admitted(ip("192.0.2.30")).len(), 1);
    assert!(harness.admitted(ip("127.0.0.1")).is_empty());
    assert!(matches!(
        &harness.events_for("mixed.test")[..],
        [
            DnsOutcome::NotAdmitted { .. },
            DnsOutcome::Answered { addresses, .. },
        ] if *addresses == [ip("192.0.2.30")]
    ));
}

#[test]
fn an_allow_entry_naming_the_network_lets_a_rebinding_address_through() {
    let harness = Harness::start(policy(
        "version: 1\nnetwork:\n  allow: [loopback.test, metadata.test, 127.0.0.0/8]\n",
    ));
    let reply = harness.ask_udp(&query("loopback.test.", RecordType::A));
    assert_eq!(addresses(&reply), [ip("127.0.0.1")]);
    assert_eq!(
        harness.admitted(ip("127.0.0.1")),
        [(vec!["loopback.test".to_owned()], Duration::from_secs(60))]
    );
    // The entry names 127/8 only: the metadata address still goes.
    let reply = harness.ask_udp(&query("metadata.test.", RecordType::A));
    assert!(addresses(&reply).is_empty());
    assert!(harness.admitted(ip("169.254.169.254")).is_empty());
}

#[test]
fn an_address_the_egress_table_refuses_is_kept_out_of_the_answer() {
    let harness = Harness::start(policy(POLICY));
    let reply = harness.ask_udp(&query("refused.test.", RecordType::A));
    assert_eq!(reply.response_code(), ResponseCode::NoError);
    assert!(addresses(&reply).is_empty());
    assert!(matches!(
        &harness.events_for("refused.test")[..],
        [DnsOutcome::NotAdmitted { reason, .. }, DnsOutcome::Answered { .. }]
            if reason.contains("set full")
    ));
}

#[test]
fn other_types_and_cname_chains_of_allowed_names_are_forwarded() {
    let harness = Harness::start(policy(POLICY));
    let reply = harness.ask_udp(&query("txt.test.", RecordType::TXT));
    assert_eq!(reply.response_code(), ResponseCode::NoError);
    let [record] = reply.answers() else {
        panic!("one TXT record: {reply:?}")
    };
    let RData::TXT(txt) = record.data() else {
        panic!("a TXT record: {record:?}")
    };
    assert_eq!(&*txt.txt_data()[0], b"hello from upstream");
    assert_eq!(
        harness.events_for("txt.test"),
        [DnsOutcome::Answered {
            addresses: vec![],
            ttl: Some(60),
            entries: vec!["txt.test:443/tcp".to_owned()],
            rcode: 0,
        }]
    );

    // The question's name decides; the chain's target is admitted under it.
    let reply = harness.ask_udp(&query("cname.test.", RecordType::A));
    assert_eq!(reply.answers().len(), 2);
    assert_eq!(addresses(&reply), [ip("192.0.2.50")]);
    assert_eq!(
        harness.admitted(ip("192.0.2.50")),
        [(vec!["cname.test".to_owned()], Duration::from_secs(60))]
    );

    // Addresses outside the answer section are not passed on unscreened.
    let reply = harness.ask_udp(&query("glue.test.", RecordType::A));
    assert_eq!(addresses(&reply), [ip("192.0.2.60")]);
    assert!(reply
        .additionals()
        .iter()
        .all(|record| !matches!(record.data(), RData::A(_) | RData::AAAA(_))));

    // The upstream's own NXDOMAIN for an allowed name passes through.
    let harness = Harness::start(policy("version: 1\nnetwork:\n  allow: [nowhere.test]\n"));
    let asked = query("nowhere.test.", RecordType::A);
    let reply = harness.ask_udp(&asked);
    assert!(is_nxdomain_echoing(&reply, &asked));
    assert_eq!(harness.upstream.asked("nowhere.test"), 1);
    assert!(matches!(
        harness.events_for("nowhere.test")[..],
        [DnsOutcome::Answered { rcode: 3, .. }]
    ));
}

#[test]
fn a_name_allowed_by_default_is_answered_without_admission() {
    let harness = Harness::start(policy("version: 1\nnetwork:\n  default: allow\n"));
    let reply = harness.ask_udp(&query("anything.test.", RecordType::A));
    assert_eq!(addresses(&reply), [ip("192.0.2.70")]);
    assert!(harness.admitted.lock().unwrap().is_empty());
    assert_eq!(
        harness.events_for("anything.test"),
        [DnsOutcome::Answered {
            addresses: vec![ip("192.0.2.70")],
            ttl: Some(300),
            entries: vec![],
            rcode: 0,
        }]
    );
    // Rebinding protection holds with the default too.
    let reply = harness.ask_udp(&query("loopback.test.", RecordType::A));
    assert!(addresses(&reply).is_empty());
}

#[test]
fn tcp_queries_get_the_same_answers() {
    let harness = Harness::start(policy(POLICY));
    let reply = harness.ask_tcp(&query("allowed.test.", RecordType::A));
    assert_eq!(addresses(&reply), [ip("192.0.2.10")]);
    assert_eq!(harness.admitted(ip("192.0.2.10")).len(), 1);
    let asked = query("unlisted.test.", RecordType::A);
    assert!(is_nxdomain_echoing(&harness.ask_tcp(&asked), &asked));
    let reply = harness.ask_tcp(&query("mixed.test.", RecordType::A));
    assert_eq!(addresses(&reply), [ip("192.0.2.30")]);
    assert!(harness
        .events
        .lock()
        .unwrap()
        .iter()
        .all(|event| event.transport == Transport::Tcp));

    // Several queries on one connection.
    harness
        .world
        .run(|| {
            let mut stream = TcpStream::connect(RESOLVER)?;
            stream.set_read_timeout(Some(PATIENCE))?;
            for _ in 0..3 {
                let asked = query("api.suffix.test.", RecordType::A);
                write_framed(&mut stream, &asked.to_vec().unwrap())?;
                let reply = read_framed(&mut stream)?;
                assert_eq!(addresses(&reply), [ip("192.0.2.20")]);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_truncated_upstream_answer_is_fetched_again_over_tcp() {
    let harness = Harness::start(policy(POLICY));
    let every: Vec<IpAddr> = (100..140)
        .map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)))
        .collect();

    // Over TCP to the resolver: the whole answer, fetched from the
    // upstream over UDP (truncated) and then TCP.
    let reply = harness.ask_tcp(&query("big.test.", RecordType::A));
    assert_eq!(addresses(&reply), every);
    assert_eq!(harness.upstream.asked_over("big.test", Transport::Udp), 1);
    assert_eq!(harness.upstream.asked_over("big.test", Transport::Tcp), 1);
    for address in &every {
        assert_eq!(harness.admitted(*address).len(), 1, "{address}");
    }

    // Over UDP without EDNS (512 bytes at most): TC, to ask over TCP.
    let asked = query("big.test.", RecordType::A);
    let reply = harness.ask_udp(&asked);
    assert!(reply.truncated());
    assert_eq!(reply.queries(), asked.queries());
    assert!(reply.answers().is_empty());
}

#[test]
fn a_silent_upstream_gives_servfail_within_the_timeout() {
    let harness = Harness::start(policy(POLICY));
    let asked = query("silent.test.", RecordType::A);
    let started = Instant::now();
    let reply = harness.ask_udp(&asked);
    let took = started.elapsed();
    assert_eq!(reply.response_code(), ResponseCode::ServFail);
    assert_eq!(reply.queries(), asked.queries());
    // The harness's timeout is 800 ms.
    assert!(took >= Duration::from_millis(700), "too early: {took:?}");
    assert!(took < Duration::from_millis(1800), "too late: {took:?}");
    assert!(matches!(
        &harness.events_for("silent.test")[..],
        [DnsOutcome::Failed { reason }] if reason.contains("did not answer")
    ));
    // Other queries are answered meanwhile and after.
    assert_eq!(
        addresses(&harness.ask_udp(&query("allowed.test.", RecordType::A))).len(),
        1
    );
}

#[test]
fn an_upstream_that_is_not_there_gives_servfail() {
    // A port nothing listens on: the ICMP error ends the wait early.
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let world = world();
    let mut config = ResolverConfig::new(port);
    config.upstream_timeout = Duration::from_secs(3);
    let events: Arc<Mutex<Vec<DnsEvent>>> = Arc::default();
    let sink = Arc::clone(&events);
    let resolver = Resolver::start(
        &world,
        config,
        Arc::new(RwLock::new(policy(
            "version: 1\nnetwork:\n  allow: [allowed.test]\n",
        ))),
        Box::new(|_, _, _| Ok(())),
        Box::new(move |event| sink.lock().unwrap().push(event)),
    )
    .unwrap();
    let started = Instant::now();
    let reply = ask_udp(&world, &query("allowed.test.", RecordType::A)).unwrap();
    assert_eq!(reply.response_code(), ResponseCode::ServFail);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(
        &events.lock().unwrap()[0].outcome,
        DnsOutcome::Failed { reason } if reason.contains(&port.to_string())
    ));
    resolver.stop();
}

#[test]
fn malformed_messages_do_not_kill_the_resolver() {
    let harness = Harness::start(policy(POLICY));
    harness
        .world
        .run(|| {
            let socket = UdpSocket::bind("127.0.0.1:0")?;
            socket.set_read_timeout(Some(PATIENCE))?;
            let mut buffer = vec![0; 65535];
            // Not even a header: dropped without a word.
            socket.send_to(b"\x01\x02\x03", RESOLVER)?;
            socket.send_to(&[], RESOLVER)?;
            // A response sent to the resolver: dropped (no loops).
            let mut response = query("allowed.test.", RecordType::A);
            response
                .set_id(0xbad1)
                .set_message_type(MessageType::Response);
            socket.send_to(&response.to_vec().unwrap(), RESOLVER)?;
            // A header promising a question that is not there: FORMERR.
            let truncated = [
                0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7, b'e', b'x',
            ];
            let other = UdpSocket::bind("127.0.0.1:0")?;
            other.set_read_timeout(Some(PATIENCE))?;
            other.send_to(&truncated, RESOLVER)?;
            let length = other.recv(&mut buffer)?;
            assert_eq!(&buffer[..2], [0xab, 0xcd]);
            assert_eq!(buffer[2] & 0x80, 0x80, "QR set");
            assert_eq!(buffer[3] & 0x0f, 1, "FORMERR");
            assert_eq!(length, 12);
            // Two questions: FORMERR too (RFC 9619).
            let mut two = query("allowed.test.", RecordType::A);
            two.add_query(Query::query(name("txt.test."), RecordType::TXT));
            other.send_to(&two.to_vec().unwrap(), RESOLVER)?;
            let length = other.recv(&mut buffer)?;
            assert_eq!(
                Message::from_vec(&buffer[..length])
                    .unwrap()
                    .response_code(),
                ResponseCode::FormErr
            );
            // Not a query: NOTIMP.
            let mut notify = query("allowed.test.", RecordType::SOA);
            notify.set_op_code(OpCode::Notify);
            other.send_to(&notify.to_vec().unwrap(), RESOLVER)?;
            let length = other.recv(&mut buffer)?;
            assert_eq!(
                Message::from_vec(&buffer[..length])
                    .unwrap()
                    .response_code(),
                ResponseCode::NotImp
            );

            // The first socket's first reply is to its first real query;
            // nothing else arrives for it.
            let asked = query("allowed.test.", RecordType::A);
            socket.send_to(&asked.to_vec().unwrap(), RESOLVER)?;
            let length = socket.recv(&mut buffer)?;
            let reply = Message::from_vec(&buffer[..length]).unwrap();
            assert_eq!(reply.id(), asked.id());
            assert_eq!(addresses(&reply), [ip("192.0.2.10")]);
            socket.set_nonblocking(true)?;
            assert_eq!(
                socket.recv(&mut buffer).unwrap_err().kind(),
                io::ErrorKind::WouldBlock
            );

            // TCP: a frame too short for a header closes the connection…
            let mut stream = TcpStream::connect(RESOLVER)?;
            stream.set_read_timeout(Some(PATIENCE))?;
            stream.write_all(&[0, 3, 1, 2, 3])?;
            assert_closed(&mut stream);
            // …and a frame of junk gets FORMERR on a connection that stays.
            let mut stream = TcpStream::connect(RESOLVER)?;
            stream.set_read_timeout(Some(PATIENCE))?;
            let junk = [
                0x11, 0x22, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0, 1, 0, 1,
            ];
            write_framed(&mut stream, &junk)?;
            let mut length = [0; 2];
            stream.read_exact(&mut length)?;
            let mut reply = vec![0; usize::from(u16::from_be_bytes(length))];
            stream.read_exact(&mut reply)?;
            assert_eq!(&reply[..2], [0x11, 0x22]);
            assert_eq!(reply[3] & 0x0f, 1, "FORMERR");
            write_framed(
                &mut stream,
                &query("allowed.test.", RecordType::A).to_vec().unwrap(),
            )?;
            assert_eq!(addresses(&read_framed(&mut stream)?), [ip("192.0.2.10")]);
            Ok(())
        })
        .unwrap();
    // Still serving.
    assert_eq!(
        addresses(&harness.ask_tcp(&query("allowed.test.", RecordType::A))).len(),
        1
    );
    assert_eq!(
        addresses(&harness.ask_udp(&query("allowed.test.", RecordType::A))).len(),
        1
    );
}

#[test]
fn hostile_tcp_clients_are_capped_and_time_out_without_blocking_udp() {
    let harness = Harness::start_with(policy(POLICY), |config| {
        config.max_tcp_clients = 3;
        config.tcp_idle_timeout = Duration::from_millis(600);
    });
    harness
        .world
        .run(|| {
            // Three clients that send half a length and stall.
            let stalled: Vec<TcpStream> = (0..3)
                .map(|_| {
                    let mut stream = TcpStream::connect(RESOLVER)?;
                    stream.write_all(&[0])?;
                    stream.set_read_timeout(Some(PATIENCE))?;
                    Ok(stream)
                })
                .collect::<io::Result<_>>()?;
            // A fourth, accepted after them (the backlog is first in, first
            // out): over the cap, closed at once, not served.
            let started = Instant::now();
            let mut fourth = TcpStream::connect(RESOLVER)?;
            fourth.set_read_timeout(Some(PATIENCE))?;
            // The write may find the connection closed already.
            let _ = write_framed(
                &mut fourth,
                &query("allowed.test.", RecordType::A).to_vec().unwrap(),
            );
            assert_closed(&mut fourth);
            assert!(started.elapsed() < Duration::from_millis(500));

            // UDP is served meanwhile.
            let socket = UdpSocket::bind("127.0.0.1:0")?;
            socket.set_read_timeout(Some(PATIENCE))?;
            let asked = query("allowed.test.", RecordType::A);
            socket.send_to(&asked.to_vec().unwrap(), RESOLVER)?;
            let mut buffer = vec![0; 512];
            let length = socket.recv(&mut buffer)?;
            let reply = Message::from_vec(&buffer[..length]).unwrap();
            assert_eq!(addresses(&reply), [ip("192.0.2.10")]);

            // The stalled ones are cut off after the idle timeout.
            for mut stream in stalled {
                assert_closed(&mut stream);
            }
            let idle = started.elapsed();
            assert!(idle >= Duration::from_millis(500), "cut off after {idle:?}");
            assert!(idle < Duration::from_secs(3), "cut off after {idle:?}");
            Ok(())
        })
        .unwrap();
    // Their slots are free again.
    assert_eq!(
        addresses(&harness.ask_tcp(&query("allowed.test.", RecordType::A))).len(),
        1
    );
}

#[test]
fn stop_is_prompt_with_queries_in_flight_and_frees_the_port() {
    let mut harness = Harness::start_with(policy(POLICY), |config| {
        config.upstream_timeout = Duration::from_secs(30);
        config.tcp_idle_timeout = Duration::from_secs(30);
    });
    let resolver = harness.resolver.take().unwrap();
    let (in_flight, idle) = harness
        .world
        .run(|| {
            // A UDP query the upstream never answers, and a TCP client that
            // asks the same and one that says nothing.
            let socket = UdpSocket::bind("127.0.0.1:0")?;
            socket.send_to(
                &query("silent.test.", RecordType::A).to_vec().unwrap(),
                RESOLVER,
            )?;
            let mut asking = TcpStream::connect(RESOLVER)?;
            write_framed(
                &mut asking,
                &query("silent.test.", RecordType::A).to_vec().unwrap(),
            )?;
            let idle = TcpStream::connect(RESOLVER)?;
            Ok(((socket, asking), idle))
        })
        .unwrap();
    // Wait until the upstream has both silent questions: then both are in
    // flight in the resolver.
    let deadline = Instant::now() + PATIENCE;
    while harness.upstream.asked("silent.test") < 2 {
        assert!(
            Instant::now() < deadline,
            "the queries never reached the upstream"
        );
        std::thread::yield_now();
    }
    let started = Instant::now();
    resolver.stop();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(500), "stop took {took:?}");
    drop((in_flight, idle));

    harness
        .world
        .run(|| {
            UdpSocket::bind(RESOLVER)?;
            TcpListener::bind(RESOLVER)?;
            Ok(())
        })
        .expect("the port is free after stop");
}

#[test]
fn the_socket_can_be_bound_before_lo_is_up() {
    let world = NetNs::new_anonymous().unwrap();
    let upstream = Upstream::start();
    let resolver = Resolver::start(
        &world,
        ResolverConfig::new(upstream.addr),
        Arc::new(RwLock::new(policy(
            "version: 1\nnetwork:\n  allow: [allowed.test]\n",
        ))),
        Box::new(|_, _, _| Ok(())),
        Box::new(|_| {}),
    )
    .expect("bound with IP_FREEBIND");
    // lo comes up after the resolver has bound its address.
    bring_up_lo(&world).expect("lo up");
    let reply = ask_udp(&world, &query("allowed.test.", RecordType::A)).unwrap();
    assert_eq!(addresses(&reply), [ip("192.0.2.10")]);
    resolver.stop();
}

#[test]
fn the_policy_can_change_while_serving() {
    let shared = Arc::new(RwLock::new(policy(POLICY)));
    let world = world();
    let upstream = Upstream::start();
    let resolver = Resolver::start(
        &world,
        ResolverConfig::new(upstream.addr),
        Arc::clone(&shared),
        Box::new(|_, _, _| Ok(())),
        Box::new(|_| {}),
    )
    .unwrap();
    let asked = query("allowed.test.", RecordType::A);
    assert_eq!(addresses(&ask_udp(&world, &asked).unwrap()).len(), 1);
    *shared.write().unwrap() = policy("version: 1\nnetwork:\n  allow: [other.test]\n");
    assert!(is_nxdomain_echoing(
        &ask_udp(&world, &asked).unwrap(),
        &asked
    ));
    assert_eq!(upstream.asked("allowed.test"), 1);
    resolver.stop();
}
