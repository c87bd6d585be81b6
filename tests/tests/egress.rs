//! Per-world egress policy (issue 14), end to end through `substrate-cli
//! run`: worlds on a bridge of the test's own, reaching hosts the test makes
//! (network namespaces on the same bridge, serving TCP, UDP and ICMP), with
//! names answered by an upstream DNS server the test runs (dnsmasq). What a
//! world reaches, what it is refused (at once), and what its trace says.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use substrate_net::link::{self, Bridge, WorldLink};
use substrate_net::netns::NetNs;
use substrate_tests::{compile_static, programs_dir, unique_id, workspace_root, Runtime};

/// Where worlds' (and so the test hosts') address leases live.
const LEASES: &str = "/run/substrate/net";
/// What the test hosts serve: a TCP greeting, a TCP sink, a UDP echo.
const GREET: u16 = 8080;
const SINK: u16 = 9090;
const ECHO: u16 = 7070;

/// A bridge of this test's own (worlds join it through `SUBSTRATE_BRIDGE`)
/// and the hosts on it; removed when dropped.
struct TestNet {
    bridge: Bridge,
    bridge_setting: String,
    hosts: Vec<Host>,
}

/// A network namespace on the bridge, serving [`GREET`], [`SINK`] and
/// [`ECHO`] on its v4 and v6 addresses, and answering pings.
struct Host {
    link: WorldLink,
    _netns: NetNs,
}

impl Host {
    fn v4(&self) -> String {
        self.link.v4.to_string()
    }
    fn v6(&self) -> String {
        self.link.v6.to_string()
    }
}

impl TestNet {
    /// A bridge with `hosts` hosts. Each test gets distinct subnets.
    fn new(hosts: usize) -> TestNet {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let a = 100 + std::process::id() % 100;
        // Worlds on 10.A.N.0/24, hosts on 10.A.N+128.0/24.
        let setting = format!("sbe{a}x{n},10.{a}.{n}.1/24,fd5b:{a:x}:{n:x}::1/64");
        let bridge: Bridge = setting.parse().unwrap();
        let mut net = TestNet {
            bridge,
            bridge_setting: setting,
            hosts: Vec::new(),
        };
        for _ in 0..hosts {
            let host = net.host();
            net.hosts.push(host);
        }
        assert!(net.hosts.len() < 100);
        net
    }

    /// A host on a subnet of its own (a world's resolver never admits an
    /// address of the worlds' subnet from an answer: other worlds are
    /// there) for IPv4; for IPv6, on the worlds' subnet (the host does not
    /// forward IPv6), which worlds reach by address only.
    fn host(&self) -> Host {
        let k = self.hosts.len() as u32 + 2;
        let v4 = self.bridge.v4.trunc();
        let v4: ipnet::Ipv4Net = format!(
            "{}/24",
            std::net::Ipv4Addr::from(u32::from(v4.network()) + (128 << 8) + k)
        )
        .parse()
        .unwrap();
        let v6: ipnet::Ipv6Net = format!(
            "{}/64",
            std::net::Ipv6Addr::from(u128::from(self.bridge.v6.network()) + 200 + k as u128)
        )
        .parse()
        .unwrap();
        let netns = NetNs::new_anonymous().unwrap();
        let link = link::attach_service(&netns, &self.bridge, v4, v6).unwrap();
        for address in [IpAddr::V4(link.v4), IpAddr::V6(link.v6)] {
            let greet = netns
                .run(|| TcpListener::bind(SocketAddr::new(address, GREET)))
                .unwrap();
            std::thread::spawn(move || {
                for stream in greet.incoming().flatten() {
                    let mut stream = stream;
                    // One write: the probe reads once.
                    let _ = stream.write_all(format!("hello from {address}\n").as_bytes());
                }
            });
            let sink = netns
                .run(|| TcpListener::bind(SocketAddr::new(address, SINK)))
                .unwrap();
            std::thread::spawn(move || {
                for stream in sink.incoming().flatten() {
                    std::thread::spawn(move || {
                        let mut stream = stream;
                        let mut buffer = [0u8; 65536];
                        while matches!(stream.read(&mut buffer), Ok(n) if n > 0) {}
                    });
                }
            });
            let echo = netns
                .run(|| UdpSocket::bind(SocketAddr::new(address, ECHO)))
                .unwrap();
            std::thread::spawn(move || {
                let mut buffer = [0u8; 512];
                while let Ok((n, peer)) = echo.recv_from(&mut buffer) {
                    let _ = echo.send_to(&buffer[..n], peer);
                }
            });
        }
        Host {
            link,
            _netns: netns,
        }
    }

    /// `substrate-cli run` on this bridge.
    fn cli(&self, runtime: &Runtime, args: &[&str]) -> Command {
        let mut cmd = runtime.cli(args);
        cmd.env("SUBSTRATE_BRIDGE", &self.bridge_setting);
        cmd
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for host in &self.hosts {
            let _ = host.link.release();
        }
        let _ = self.bridge.remove(LEASES.as_ref());
    }
}

/// The probe script, where a world can read it.
struct Probe {
    _dir: tempfile::TempDir,
    script: PathBuf,
}

impl Probe {
    fn new() -> Probe {
        let dir = programs_dir();
        let script = dir.path().join("netprobe.py");
        std::fs::copy(workspace_root().join("tests/programs/netprobe.py"), &script).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        Probe { _dir: dir, script }
    }

    /// `run [flags] -- python3 netprobe.py probes…`: the probes' results by
    /// probe line (`tcp 10.0.0.2 8080` → (`ok:...`, ms)).
    fn run(
        &self,
        net: &TestNet,
        runtime: &Runtime,
        name: &str,
        flags: &[&str],
        probes: &[&str],
    ) -> Results {
        let mut args = vec!["run", "--name", name];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", "/usr/bin/python3", self.script.to_str().unwrap()]);
        args.extend_from_slice(probes);
        let out = net.cli(runtime, &args).output().unwrap();
        Results::of(out)
    }
}

#[derive(Debug)]
struct Results {
    lines: BTreeMap<String, (String, f64)>,
    stderr: String,
}

impl Results {
    fn of(out: Output) -> Results {
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "the world failed: {stdout}\n{stderr}");
        let mut lines = BTreeMap::new();
        for line in stdout.lines() {
            let [probe, result, ms] = line.split('\t').collect::<Vec<_>>()[..] else {
                panic!("not a probe's line: {line:?}");
            };
            lines.insert(probe.to_owned(), (result.to_owned(), ms.parse().unwrap()));
        }
        Results { lines, stderr }
    }

    #[track_caller]
    fn get(&self, probe: &str) -> &(String, f64) {
        self.lines
            .get(probe)
            .unwrap_or_else(|| panic!("no result for {probe:?}: {self:#?}"))
    }

    #[track_caller]
    fn ok(&self, probe: &str) -> &str {
        let (result, _) = self.get(probe);
        result
            .strip_prefix("ok:")
            .unwrap_or_else(|| panic!("{probe}: {result}; {self:#?}"))
    }

    /// The probe failed with `error`, within `within`.
    #[track_caller]
    fn refused(&self, probe: &str, error: &str, within: Duration) {
        let (result, ms) = self.get(probe);
        assert_eq!(result, &format!("err:{error}"), "{probe}: {self:#?}");
        assert!(
            *ms < within.as_secs_f64() * 1000.0,
            "{probe} took {ms} ms to be refused"
        );
    }
}

fn net_spans<'a>(spans: &'a [Value], address: &str, port: Option<u16>) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| {
            s["kind"] == "net"
                && s["detail"]["address"] == address
                && port.is_none_or(|p| s["detail"]["port"] == p)
        })
        .collect()
}

/// The one verdict the trace gives connections to `address:port`.
#[track_caller]
fn verdict(spans: &[Value], address: &str, port: Option<u16>) -> (String, String) {
    let marked: Vec<_> = net_spans(spans, address, port)
        .into_iter()
        .filter(|s| s["egress"].is_object())
        .collect();
    assert!(
        !marked.is_empty(),
        "no net span to {address}:{port:?} with a verdict: {spans:#?}"
    );
    let verdicts: Vec<(String, String)> = marked
        .iter()
        .map(|s| {
            (
                s["egress"]["verdict"].as_str().unwrap().to_owned(),
                s["egress"]["rule"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(verdicts.windows(2).all(|w| w[0] == w[1]), "{verdicts:?}");
    verdicts[0].clone()
}

fn world_egress(spans: &[Value]) -> &Value {
    &spans
        .iter()
        .find(|s| s["kind"] == "world")
        .expect("a world span")["egress"]
}

/// An upstream DNS server on the host's loopback: dnsmasq answering the
/// test's names with TTL 1, stopped when dropped.
struct Upstream {
    child: Child,
    address: String,
}

impl Upstream {
    fn start(records: &[(&str, &str)]) -> Upstream {
        let port = substrate_tests::unused_loopback_port();
        let mut cmd = Command::new("dnsmasq");
        cmd.args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--local-ttl=1",
            "--pid-file=",
            "--user=root",
            "--log-facility=-",
        ])
        .arg(format!("--port={port}"));
        for (name, addresses) in records {
            cmd.arg(format!("--host-record={name},{addresses}"));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (Debian: dnsmasq-base)");
        let address = format!("127.0.0.1:{port}");
        // Ready once it answers a TCP connection on its port.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "dnsmasq did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Upstream { child, address }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const AT_ONCE: Duration = Duration::from_millis(100);

#[test]
fn allowed_addresses_and_ports_are_reached_and_the_rest_refused_at_once() {
    let net = TestNet::new(2);
    let (a, b) = (&net.hosts[0], &net.hosts[1]);
    let runtime = Runtime::new();
    let probe = Probe::new();
    let id = unique_id("egress-ip");
    let allow_a = format!("{}:{GREET}/tcp", a.v4());
    let allow_b6 = format!("[{}]:{GREET}", b.v6());
    let results = probe.run(
        &net,
        &runtime,
        &id,
        &["--allow", &allow_a, "--allow", &allow_b6],
        &[
            "tcp",
            &a.v4(),
            "8080",
            "tcp",
            &a.v4(),
            "9090",
            "tcp",
            &b.v4(),
            "8080",
            "udp",
            &a.v4(),
            "7070",
            "tcp",
            &b.v6(),
            "8080",
            "tcp",
            &a.v6(),
            "8080",
        ],
    );
    assert_eq!(
        results.ok(&format!("tcp {} 8080", a.v4())),
        format!("hello from {}", a.v4())
    );
    assert_eq!(
        results.ok(&format!("tcp {} 8080", b.v6())),
        format!("hello from {}", b.v6())
    );
    results.refused(&format!("tcp {} 9090", a.v4()), "ECONNREFUSED", AT_ONCE);
    results.refused(&format!("tcp {} 8080", b.v4()), "ECONNREFUSED", AT_ONCE);
    results.refused(&format!("tcp {} 8080", a.v6()), "ECONNREFUSED", AT_ONCE);
    results.refused(&format!("udp {} 7070", a.v4()), "EPERM", AT_ONCE);

    let spans = runtime.spans(&id);
    assert_eq!(
        verdict(&spans, &a.v4(), Some(GREET)),
        ("allow".into(), allow_a.clone())
    );
    assert_eq!(
        verdict(&spans, &b.v6(), Some(GREET)),
        ("allow".into(), allow_b6.clone())
    );
    assert_eq!(
        verdict(&spans, &a.v4(), Some(SINK)),
        ("deny".into(), "default".into())
    );
    assert_eq!(
        verdict(&spans, &b.v4(), Some(GREET)),
        ("deny".into(), "default".into())
    );
    assert_eq!(
        verdict(&spans, &a.v4(), Some(ECHO)),
        ("deny".into(), "default".into())
    );
    let blocked = net_spans(&spans, &b.v4(), Some(GREET));
    assert!(
        blocked.iter().all(|s| s["refused_by"] == "egress policy"),
        "{blocked:#?}"
    );
    // The process that made the call is named: a kernel span under the
    // python exec.
    assert!(blocked.iter().all(|s| s["pid"].is_u64()), "{blocked:#?}");

    let summary = world_egress(&spans);
    assert!(
        summary["reached"][format!("{}:{GREET}/tcp", a.v4())].is_object(),
        "{summary:#}"
    );
    assert!(
        summary["blocked"][format!("{}:{SINK}/tcp", a.v4())].is_object(),
        "{summary:#}"
    );
    let record = runtime.record(&id);
    assert_eq!(record["network"], "bridge");
    assert_eq!(record["egress"]["policy"]["allow"][0], allow_a.as_str());
}

#[test]
fn names_the_policy_allows_resolve_and_connect_and_others_are_nxdomain() {
    let net = TestNet::new(2);
    let (a, b) = (&net.hosts[0], &net.hosts[1]);
    let upstream = Upstream::start(&[
        ("allowed.test", &a.v4()),
        ("other.test", &b.v4()),
        ("api.suffix.test", &b.v4()),
    ]);
    let runtime = Runtime::new();
    let probe = Probe::new();
    let id = unique_id("egress-names");
    let results = probe.run(
        &net,
        &runtime,
        &id,
        &[
            "--dns-upstream",
            &upstream.address,
            "--allow",
            "allowed.test:8080/tcp",
            "--allow",
            "*.suffix.test",
        ],
        &[
            "resolve",
            "allowed.test",
            "tcp",
            "allowed.test",
            "8080",
            "tcp",
            "allowed.test",
            "9090",
            "resolve",
            "other.test",
            "tcp",
            &b.v4(),
            "8080",
            "resolve",
            "api.suffix.test",
            "tcp",
            "api.suffix.test",
            "8080",
        ],
    );
    assert_eq!(results.ok("resolve allowed.test"), a.v4());
    assert!(results
        .ok("tcp allowed.test 8080")
        .starts_with("hello from "));
    results.refused("tcp allowed.test 9090", "ECONNREFUSED", AT_ONCE);
    results.refused("resolve other.test", "EAI_NONAME", AT_ONCE);
    // The name was refused, and so is its address: nothing admitted it.
    results.refused(&format!("tcp {} 8080", b.v4()), "ECONNREFUSED", AT_ONCE);
    assert_eq!(results.ok("resolve api.suffix.test"), b.v4());
    assert_eq!(
        results.ok("tcp api.suffix.test 8080"),
        format!("hello from {}", b.v4())
    );

    let spans = runtime.spans(&id);
    let dns: Vec<&Value> = spans
        .iter()
        .filter(|s| s["kind"] == "dns" && s["source"] == "monitor")
        .collect();
    let refused: Vec<_> = dns
        .iter()
        .filter(|s| s["detail"]["query"] == "other.test")
        .collect();
    assert!(
        !refused.is_empty()
            && refused.iter().all(
                |s| s["resolver"]["verdict"] == "refused" && s["refused_by"] == "egress policy"
            ),
        "{dns:#?}"
    );
    let answered: Vec<_> = dns
        .iter()
        .filter(|s| s["detail"]["query"] == "allowed.test" && s["resolver"]["type"] == "A")
        .collect();
    assert!(!answered.is_empty(), "{dns:#?}");
    assert_eq!(answered[0]["resolver"]["verdict"], "answered");
    assert_eq!(answered[0]["detail"]["answers"][0], a.v4().as_str());
    assert_eq!(
        answered[0]["resolver"]["entries"][0],
        "allowed.test:8080/tcp"
    );
    assert_eq!(
        verdict(&spans, &a.v4(), Some(GREET)),
        ("allow".into(), "allowed.test:8080/tcp".into())
    );
    // By address before any lookup: refused; after api.suffix.test was
    // answered: admitted for *.suffix.test.
    let verdicts: Vec<(&str, &str)> = net_spans(&spans, &b.v4(), Some(GREET))
        .iter()
        .filter_map(|s| {
            Some((
                s["egress"]["verdict"].as_str()?,
                s["egress"]["rule"].as_str()?,
            ))
        })
        .collect();
    assert_eq!(verdicts, [("deny", "default"), ("allow", "*.suffix.test")]);
    let summary = world_egress(&spans);
    assert_eq!(summary["upstream"], upstream.address.as_str());
}

#[test]
fn an_address_stays_admitted_for_its_ttl_and_a_new_lookup_admits_it_again() {
    let net = TestNet::new(1);
    let a = &net.hosts[0];
    // dnsmasq answers with TTL 1: admitted for the resolver's floor (5 s).
    let upstream = Upstream::start(&[("allowed.test", &a.v4())]);
    let runtime = Runtime::new();
    let probe = Probe::new();
    let id = unique_id("egress-ttl");
    let results = probe.run(
        &net,
        &runtime,
        &id,
        &[
            "--dns-upstream",
            &upstream.address,
            "--allow",
            "allowed.test",
        ],
        &[
            "tcp",
            "allowed.test",
            "8080",
            // By address, without looking it up again: refused once the
            // admission expires.
            "until_refused",
            &a.v4(),
            "8080",
            "20",
            "tcp",
            "allowed.test",
            "8080",
        ],
    );
    let expired = results.ok(&format!("until_refused {} 8080 20", a.v4()));
    let after: f64 = expired
        .strip_prefix("refused-after=")
        .and_then(|r| r.split(':').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (3.5..15.0).contains(&after),
        "expired after {after} s (floor 5 s): {results:#?}"
    );
    assert!(expired.ends_with(":ECONNREFUSED"), "{expired}");
    // The lookup the second connect makes admits it again.
    assert!(
        results
            .ok("tcp allowed.test 8080")
            .starts_with("hello from"),
        "{results:#?}"
    );
    let spans = runtime.spans(&id);
    let answers = spans
        .iter()
        .filter(|s| {
            s["kind"] == "dns"
                && s["resolver"]["verdict"] == "answered"
                && s["resolver"]["type"] == "A"
        })
        .count();
    assert!(answers >= 2, "looked up twice: {answers}");
}

#[test]
fn dns_to_any_other_server_is_refused_even_where_the_address_is_allowed() {
    let net = TestNet::new(1);
    let a = &net.hosts[0];
    let runtime = Runtime::new();
    let probe = Probe::new();
    let id = unique_id("egress-dns");
    let results = probe.run(
        &net,
        &runtime,
        &id,
        &["--allow", &a.v4(), "--allow", &a.v6()],
        &[
            "dns",
            &a.v4(),
            "example.com",
            "udp",
            "dns",
            &a.v4(),
            "example.com",
            "tcp",
            "dns",
            &a.v6(),
            "example.com",
            "udp",
            "tcp",
            &a.v4(),
            "8080",
        ],
    );
    results.refused(&format!("dns {} example.com udp", a.v4()), "EPERM", AT_ONCE);
    results.refused(
        &format!("dns {} example.com tcp", a.v4()),
        "ECONNREFUSED",
        AT_ONCE,
    );
    results.refused(&format!("dns {} example.com udp", a.v6()), "EPERM", AT_ONCE);
    assert!(results
        .ok(&format!("tcp {} 8080", a.v4()))
        .starts_with("hello"));
    let spans = runtime.spans(&id);
    assert_eq!(
        verdict(&spans, &a.v4(), Some(53)),
        ("deny".into(), "dns: only the world's resolver".into())
    );
}

#[test]
fn raw_icmp_is_governed_and_recorded() {
    let net = TestNet::new(2);
    let (a, b) = (&net.hosts[0], &net.hosts[1]);
    let runtime = Runtime::new();
    let probe = Probe::new();
    let id = unique_id("egress-icmp");
    let allow = format!("{}/icmp", a.v4());
    let results = probe.run(
        &net,
        &runtime,
        &id,
        &["--allow", &allow],
        &[
            "icmp",
            &a.v4(),
            "ping",
            "icmp",
            &b.v4(),
            "ping",
            "icmp",
            &a.v4(),
            "raw",
        ],
    );
    assert_eq!(results.ok(&format!("icmp {} ping", a.v4())), "echo-reply");
    // Refused by the table (an ICMP admin-prohibited to the sender).
    let (blocked, _) = results.get(&format!("icmp {} ping", b.v4()));
    assert!(blocked.starts_with("err:"), "{results:#?}");
    // A raw socket needs CAP_NET_RAW, which a world does not have.
    results.refused(&format!("icmp {} raw", a.v4()), "EPERM", AT_ONCE);
    let spans = runtime.spans(&id);
    assert_eq!(
        verdict(&spans, &a.v4(), None),
        ("allow".into(), allow.clone())
    );
    assert_eq!(
        verdict(&spans, &b.v4(), None),
        ("deny".into(), "default".into())
    );
}

#[test]
fn names_that_resolve_to_metadata_or_loopback_are_not_admitted() {
    let net = TestNet::new(1);
    let a = &net.hosts[0];
    let upstream = Upstream::start(&[
        ("meta.test", "169.254.169.254"),
        ("loop.test", "127.0.0.1"),
        ("bridge.test", &net.bridge.v4.addr().to_string()),
        ("mixed.test", &a.v4()),
    ]);
    let runtime = Runtime::new();
    let probe = Probe::new();
    let id = unique_id("egress-rebind");
    let results = probe.run(
        &net,
        &runtime,
        &id,
        &[
            "--dns-upstream",
            &upstream.address,
            "--allow",
            "meta.test",
            "--allow",
            "loop.test",
            "--allow",
            "bridge.test",
            "--allow",
            "mixed.test",
        ],
        &[
            "resolve",
            "meta.test",
            "resolve",
            "loop.test",
            "resolve",
            "bridge.test",
            "resolve",
            "mixed.test",
            "tcp",
            "169.254.169.254",
            "80",
        ],
    );
    for name in ["meta.test", "loop.test", "bridge.test"] {
        let (result, _) = results.get(&format!("resolve {name}"));
        assert!(result.starts_with("err:"), "{name} resolved: {result}");
    }
    assert_eq!(results.ok("resolve mixed.test"), a.v4());
    results.refused("tcp 169.254.169.254 80", "ECONNREFUSED", AT_ONCE);
    let spans = runtime.spans(&id);
    let not_admitted: Vec<String> = spans
        .iter()
        .filter(|s| s["resolver"]["verdict"] == "not_admitted")
        .map(|s| s["resolver"]["address"].as_str().unwrap().to_owned())
        .collect();
    for address in [
        "169.254.169.254",
        "127.0.0.1",
        &net.bridge.v4.addr().to_string(),
    ] {
        assert!(
            not_admitted.iter().any(|a| a == address),
            "{address}: {not_admitted:?}"
        );
    }
}

#[test]
fn a_static_binarys_raw_connect_is_refused_and_recorded() {
    let net = TestNet::new(1);
    let a = &net.hosts[0];
    let runtime = Runtime::new();
    let programs = programs_dir();
    let program = compile_static("tests/programs/raw_connect.c", programs.path());
    let id = unique_id("egress-raw");
    let out = net
        .cli(
            &runtime,
            &[
                "run",
                "--name",
                &id,
                "--allow",
                "10.255.255.1",
                "--",
                program.to_str().unwrap(),
                "8080",
                &a.v4(),
            ],
        )
        .output()
        .unwrap();
    // It exits with the errno of its connect.
    assert_eq!(
        out.status.code(),
        Some(libc_econnrefused()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let spans = runtime.spans(&id);
    let (verdict, rule) = verdict(&spans, &a.v4(), Some(GREET));
    assert_eq!((verdict.as_str(), rule.as_str()), ("deny", "default"));
    let span = &net_spans(&spans, &a.v4(), Some(GREET))[0];
    assert_eq!(span["source"], "kernel");
}

fn libc_econnrefused() -> i32 {
    111
}

#[test]
fn two_worlds_side_by_side_each_reach_what_their_own_policy_allows() {
    let net = TestNet::new(2);
    let (a, b) = (&net.hosts[0], &net.hosts[1]);
    let runtime = Runtime::new();
    let probe = Probe::new();
    let spawn = |name: &str, allow: &str| {
        let mut args = vec![
            "run",
            "--name",
            name,
            "--allow",
            allow,
            "--",
            "/usr/bin/python3",
        ];
        args.push(probe.script.to_str().unwrap());
        let (av4, bv4) = (a.v4(), b.v4());
        let probes = ["tcp", &av4, "8080", "tcp", &bv4, "8080"];
        args.extend_from_slice(&probes);
        net.cli(&runtime, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (unique_id("egress-a"), unique_id("egress-b"));
    let allow_a = format!("{}:8080/tcp", a.v4());
    let allow_b = format!("{}:8080/tcp", b.v4());
    let one = spawn(&first, &allow_a);
    let two = spawn(&second, &allow_b);
    let one = Results::of(one.wait_with_output().unwrap());
    let two = Results::of(two.wait_with_output().unwrap());
    assert!(one.ok(&format!("tcp {} 8080", a.v4())).starts_with("hello"));
    one.refused(&format!("tcp {} 8080", b.v4()), "ECONNREFUSED", AT_ONCE);
    assert!(two.ok(&format!("tcp {} 8080", b.v4())).starts_with("hello"));
    two.refused(&format!("tcp {} 8080", a.v4()), "ECONNREFUSED", AT_ONCE);
}

#[test]
fn the_egress_quota_stops_a_world_that_sends_too_much_and_says_so() {
    let net = TestNet::new(1);
    let a = &net.hosts[0];
    let runtime = Runtime::new();
    let probe = Probe::new();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "version: 1\nnetwork:\n  allow: [\"{}\"]\n  egress_bytes: 64k\n",
            a.v4()
        ),
    )
    .unwrap();
    let id = unique_id("egress-quota");
    let results = probe.run(
        &net,
        &runtime,
        &id,
        &["--policy", policy.to_str().unwrap()],
        &["send", &a.v4(), "9090", "1000000", "tcp", &a.v4(), "8080"],
    );
    let (sent, _) = results.get(&format!("send {} 9090 1000000", a.v4()));
    assert!(
        sent.starts_with("err:"),
        "a megabyte went out under a 64k quota: {results:#?}"
    );
    let (after, ms) = results.get(&format!("tcp {} 8080", a.v4()));
    assert_eq!(after, "err:ECONNREFUSED", "{results:#?}");
    assert!(*ms < 100.0);
    let spans = runtime.spans(&id);
    assert!(
        spans.iter().any(|s| s["egress"]["rule"] == "egress quota"),
        "no span says the quota was hit"
    );
    let summary = world_egress(&spans);
    assert!(summary["quota_hit_at"].is_string(), "{summary:#}");
    let sent = summary["bytes"]["sent"].as_u64().unwrap();
    // At most the quota (and the frames' own headers) went out.
    assert!(
        (16 << 10..80 << 10).contains(&sent),
        "sent {sent} bytes under a 64k quota"
    );
}

#[test]
fn a_bad_entry_is_refused_before_the_world_exists_and_leaves_nothing() {
    let net = TestNet::new(0);
    let runtime = Runtime::new();
    let leases_before = leases(&net);
    for (entry, says) in [
        ("10.1.2.3/8", "host bits are set"),
        ("example.com:0", "port"),
        ("10.0.0.0/33", "prefix"),
        ("*.*.example.com", "*"),
    ] {
        let id = unique_id("egress-bad");
        let out = net
            .cli(
                &runtime,
                &["run", "--name", &id, "--allow", entry, "--", "true"],
            )
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{entry} was accepted");
        assert!(
            stderr.contains(entry) && stderr.contains(says),
            "{entry}: {stderr}"
        );
        assert!(
            !runtime.world_dir(&id).exists(),
            "{entry}: a world dir was left"
        );
    }
    // A policy file's bad entry is named with its line and column.
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(
        &policy,
        "version: 1\nnetwork:\n  allow:\n    - 10.0.0.0/8\n    - 300.1.1.1\n",
    )
    .unwrap();
    let out = net
        .cli(
            &runtime,
            &["run", "--policy", policy.to_str().unwrap(), "--", "true"],
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("p.yaml:5:") && stderr.contains("300.1.1.1"),
        "{stderr}"
    );
    // `--net none` with something allowed is a contradiction, said so.
    let out = net
        .cli(
            &runtime,
            &["run", "--net", "none", "--allow", "10.0.0.1", "--", "true"],
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--net bridge"));
    assert_eq!(leases(&net), leases_before);
    assert_eq!(
        std::fs::read_dir(runtime.root()).unwrap().count(),
        0,
        "runtime state left"
    );
}

#[test]
fn a_deleted_world_leaves_no_veth_lease_or_netns() {
    let net = TestNet::new(1);
    let a = &net.hosts[0];
    let runtime = Runtime::new();
    let probe = Probe::new();
    let before = (leases(&net), host_interfaces(&net));
    let id = unique_id("egress-gone");
    let results = probe.run(
        &net,
        &runtime,
        &id,
        &["--allow", &a.v4()],
        &["tcp", &a.v4(), "8080"],
    );
    assert!(results
        .ok(&format!("tcp {} 8080", a.v4()))
        .starts_with("hello"));
    assert_eq!(
        (leases(&net), host_interfaces(&net)),
        before,
        "{}",
        results.stderr
    );
}

/// The address leases on the test's bridge.
fn leases(net: &TestNet) -> Vec<String> {
    let dir = Path::new(LEASES).join(&net.bridge.name);
    let mut leases: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    leases.retain(|l| !l.starts_with('.'));
    leases.sort();
    leases
}

/// The host side of the veth pairs on the test's bridge (`sb` + the hex of
/// the address: the /24's first three bytes).
fn host_interfaces(net: &TestNet) -> Vec<String> {
    let prefix = format!("sb{:06x}", u32::from(net.bridge.v4.addr()) >> 8);
    let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    names.sort();
    names
}

#[test]
fn any_address_does_not_reach_the_host_the_bridge_or_metadata_unless_named() {
    let net = TestNet::new(1);
    let a = &net.hosts[0];
    // A service of the host's own, on the bridge's address.
    let gateway = net.bridge.v4.addr().to_string();
    let host_service = TcpListener::bind((net.bridge.v4.addr(), 0)).unwrap();
    let port = host_service.local_addr().unwrap().port().to_string();
    std::thread::spawn(move || {
        for stream in host_service.incoming().flatten() {
            let mut stream = stream;
            let _ = stream.write_all(b"host\n");
        }
    });
    let runtime = Runtime::new();
    let probe = Probe::new();
    let id = unique_id("egress-protected");
    let results = probe.run(
        &net,
        &runtime,
        &id,
        &["--allow", "*"],
        &[
            "tcp",
            &a.v4(),
            "8080",
            "tcp",
            &gateway,
            &port,
            "tcp",
            "169.254.169.254",
            "80",
        ],
    );
    assert!(results
        .ok(&format!("tcp {} 8080", a.v4()))
        .starts_with("hello"));
    results.refused(&format!("tcp {gateway} {port}"), "ECONNREFUSED", AT_ONCE);
    results.refused("tcp 169.254.169.254 80", "ECONNREFUSED", AT_ONCE);
    let spans = runtime.spans(&id);
    let (verdict, rule) = verdict(&spans, &gateway, None);
    assert_eq!(verdict, "deny");
    assert!(rule.starts_with("protected: "), "{rule}");
    assert_eq!(
        self::verdict(&spans, "169.254.169.254", Some(80)),
        ("deny".into(), "protected: 169.254.0.0/16".into())
    );

    // Named explicitly, the host's service is reached.
    let named = format!("{gateway}:{port}/tcp");
    let id = unique_id("egress-protected-named");
    let results = probe.run(
        &net,
        &runtime,
        &id,
        &["--allow", "*", "--allow", &named],
        &["tcp", &gateway, &port],
    );
    assert_eq!(results.ok(&format!("tcp {gateway} {port}")), "host");
}

#[test]
fn a_governed_world_holds_neither_cap_net_admin_nor_cap_net_raw() {
    let net = TestNet::new(1);
    let a = &net.hosts[0];
    let runtime = Runtime::new();
    // Asked for, or held for want of a `capabilities` list (a process
    // without one keeps every capability).
    type Edit = fn(&mut Value);
    let edits: [Edit; 2] = [
        |config| {
            for set in ["bounding", "effective", "permitted"] {
                config["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push("CAP_NET_ADMIN".into());
            }
        },
        |config| {
            config["process"]
                .as_object_mut()
                .unwrap()
                .remove("capabilities");
        },
    ];
    for edit in edits {
        let id = unique_id("egress-netadmin");
        let mut bundle = substrate_tests::Bundle::new(&id, &["true"]);
        bundle.edit(edit);
        let leases_before = leases(&net);
        let out = net
            .cli(
                &runtime,
                &[
                    "run",
                    "--name",
                    &id,
                    "--bundle",
                    bundle.path_str(),
                    "--allow",
                    &a.v4(),
                ],
            )
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "a world with CAP_NET_ADMIN was governed"
        );
        assert!(stderr.contains("CAP_NET_ADMIN"), "{stderr}");
        assert!(!runtime.world_dir(&id).exists());
        assert_eq!(
            std::fs::read_dir(runtime.root()).unwrap().count(),
            0,
            "runtime state left"
        );
        assert_eq!(leases(&net), leases_before);
    }

    // Without it, the same bundle is governed, and CAP_NET_RAW it asks
    // for is taken away: packet sockets would go around the table.
    const CAP_NET_RAW: u64 = 1 << 13;
    let with_net_raw = |id: &str, script: &str, sets: &[&str]| {
        let mut bundle = substrate_tests::Bundle::new(id, &["sh", "-c", script]);
        bundle.edit(|config| {
            for set in sets {
                let caps = config["process"]["capabilities"][*set]
                    .as_array_mut()
                    .unwrap();
                if !caps.iter().any(|c| c == "CAP_NET_RAW") {
                    caps.push("CAP_NET_RAW".into());
                }
            }
        });
        bundle
    };
    let masks = |stdout: &[u8]| -> Vec<u64> {
        String::from_utf8_lossy(stdout)
            .lines()
            .map(|line| u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap())
            .collect()
    };
    let id = unique_id("egress-bundle");
    let bundle = with_net_raw(
        &id,
        "grep -E '^Cap(Bnd|Eff|Prm)' /proc/self/status",
        &["bounding", "effective", "permitted"],
    );
    let out = net
        .cli(
            &runtime,
            &[
                "run",
                "--name",
                &id,
                "--bundle",
                bundle.path_str(),
                "--allow",
                &a.v4(),
            ],
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(runtime.record(&id)["network"], "bridge");
    let sets = masks(&out.stdout);
    assert_eq!(sets.len(), 3, "{sets:x?}");
    assert!(sets.iter().all(|set| set & CAP_NET_RAW == 0), "{sets:x?}");
    // Ungoverned, the bundle keeps it: nothing else is changed.
    let id = unique_id("egress-ungoverned");
    let bundle = with_net_raw(&id, "grep -E '^CapBnd' /proc/self/status", &["bounding"]);
    let out = runtime
        .cli(&["run", "--name", &id, "--bundle", bundle.path_str()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(masks(&out.stdout)[0] & CAP_NET_RAW, 0);
}

#[test]
fn a_world_that_tries_a_thousand_destinations_gets_a_bounded_summary() {
    let net = TestNet::new(1);
    let a = &net.hosts[0];
    let runtime = Runtime::new();
    let probe = Probe::new();
    let id = unique_id("egress-many");
    let results = probe.run(
        &net,
        &runtime,
        &id,
        &["--allow", &a.v4()],
        &["udp_burst", &a.v4(), "20000", "1100"],
    );
    results.ok(&format!("udp_burst {} 20000 1100", a.v4()));
    let spans = runtime.spans(&id);
    let summary = world_egress(&spans);
    let listed = summary["reached"].as_object().unwrap().len();
    assert_eq!(listed, 1024, "{}", summary["unlisted_attempts"]);
    let unlisted = summary["unlisted_attempts"]["allow"].as_u64().unwrap();
    assert!((1..=76).contains(&unlisted), "{unlisted}");
}

#[test]
fn policy_suggest_proposes_what_a_recorded_world_did() {
    let net = TestNet::new(2);
    let (a, b) = (&net.hosts[0], &net.hosts[1]);
    let upstream = Upstream::start(&[("allowed.test", &a.v4())]);
    let runtime = Runtime::new();
    let probe = Probe::new();
    let id = unique_id("egress-suggest");
    let results = probe.run(
        &net,
        &runtime,
        &id,
        &[
            "--dns-upstream",
            &upstream.address,
            "--allow",
            "allowed.test:8080/tcp",
        ],
        &[
            "tcp",
            "allowed.test",
            "8080",
            "tcp",
            &b.v4(),
            "8080",
            "resolve",
            "other.test",
        ],
    );
    assert!(results.ok("tcp allowed.test 8080").starts_with("hello"));
    let out = runtime.cli(&["policy", "suggest", &id]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    // The program it ran, the host it reached by name, what was refused.
    assert!(
        yaml.contains("- match: { exe: \"/usr/bin/python3"),
        "{yaml}"
    );
    assert!(yaml.contains("- \"allowed.test:8080/tcp\""), "{yaml}");
    assert!(
        yaml.contains(&format!(
            "#   - \"{}:8080/tcp\"   # refused by: default",
            b.v4()
        )),
        "{yaml}"
    );
    assert!(
        yaml.contains("#   - \"other.test\"   # name refused"),
        "{yaml}"
    );
    assert!(!yaml.contains(".substrate-init"), "{yaml}");
    // What it allows, as a network section, is what the world did.
    let network = yaml.split("network:").nth(1).unwrap();
    assert!(network.contains("default: deny"), "{yaml}");
    // It is a valid policy, and it allows the program the world ran.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("suggested.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let file = file.to_str().unwrap();
    let check = runtime.cli(&["policy", "check", file]).output().unwrap();
    assert!(
        check.status.success(),
        "{}\n{yaml}",
        String::from_utf8_lossy(&check.stderr)
    );
    let explain = runtime
        .cli(&[
            "policy",
            "explain",
            file,
            "--",
            "/usr/bin/python3",
            "-c",
            "pass",
        ])
        .output()
        .unwrap();
    assert_eq!(
        explain.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&explain.stdout)
    );
    // A program it did not run is not allowed.
    let refused = runtime
        .cli(&["policy", "explain", file, "--", "/usr/bin/true"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stdout);
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(said.contains("denied by commands.default"), "{said}");
}
