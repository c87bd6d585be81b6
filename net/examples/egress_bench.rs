//! What a world's network costs, side by side (run by bench/egress.sh, as
//! root; `make bench` runs that):
//!
//! 1. Per-world setup and teardown, interleaved iteration by iteration:
//!    (a) a bare netns (unshare, close): the anchor; (b) a netns joined to
//!    the bridge (`link::attach`: veth pair, addresses, routes) and
//!    released; (c) (b) plus `EgressTable::install` of a 10-entry policy;
//!    (d) the same with 1,000 entries. Setup ends as the runtime's create
//!    does, with the table's handle dropped; teardown is what a world's
//!    delete does: release the link, close the netns (the table dies with
//!    it).
//! 2. TCP connect latency from a world to a host netns on the bridge,
//!    interleaved round by round: (i) no table (the anchor); (ii) a table
//!    allowing the host's address:port among 10 entries of one port spec;
//!    (iii) among 1,000 of one spec; (iv) 1,000 entries each with its own
//!    port (one rule per spec: the worst case); and, to tell the two
//!    apart, (v) conntrack alone (a table of one `ct state` rule, by `nft`),
//!    which every egress table turns on in the world's netns. Connections
//!    end with a reset (SO_LINGER 0): no TIME_WAIT, so no run of ephemeral
//!    ports. No NFLOG reader is bound: the log statements find no listener.
//!
//! Everything lives on a bridge of the bench's own (`sbbenchN`, worlds on
//! 10.247.N.0/24, the host on 10.247.N+128.0/24, fd5b:5b57:247:N::/64 with
//! N in hex) with its leases under a temp run dir; all of it is removed on
//! the way out, also after an error (drop guards). The tables are built as
//! the runtime builds them: the host's addresses and the bridge's subnets
//! protected.
//!
//! Part 2's client and server threads run on one CPU (`--cpu`, default the
//! first this process may use): unpinned, where the scheduler puts them
//! moves a round's median by more than the table costs (seen on 2 cores:
//! the rounds' differences between (ii) and (i), p10..p90, spread over
//! -14..+10 us unpinned and +3.6..+4.8 us pinned).
//!
//! Usage: egress_bench [--net N] [--run-dir DIR] [--iterations N]
//!                     [--rounds N] [--connects N] [--cpu N] [--show-rounds]

use std::error::Error;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::sys::socket::{setsockopt, sockopt};
use nix::unistd::Pid;
use substrate_net::egress::{EgressOptions, EgressTable};
use substrate_net::link::{self, Bridge, WorldLink};
use substrate_net::netns::NetNs;
use substrate_net::protected::Protected;
use substrate_policy::network::{Entry, NetworkPolicy, Verdict};

type Result<T> = std::result::Result<T, Box<dyn Error>>;

/// The NFLOG group the tables log to (nothing reads it here).
const LOG_GROUP: u16 = 7;
/// The host's TCP port.
const PORT: u16 = 8080;
/// The goal for a world's network setup.
const SETUP_GOAL: Duration = Duration::from_millis(5);
/// Untimed iterations (part 1) and connects per variant (part 2) first.
const WARMUP_ITERATIONS: usize = 5;
const WARMUP_CONNECTS: usize = 200;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// An error and its sources on one line.
fn one_line(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

fn context<E: Error>(what: impl std::fmt::Display) -> impl FnOnce(E) -> Box<dyn Error> {
    move |e| format!("{what}: {}", one_line(&e)).into()
}

struct Args {
    net: u8,
    run_dir: Option<PathBuf>,
    iterations: usize,
    rounds: usize,
    connects: usize,
    /// The CPU part 2's client and server threads run on.
    cpu: usize,
    /// Print part 2's per-round medians.
    show_rounds: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        net: (std::process::id() % 128) as u8,
        run_dir: None,
        iterations: 200,
        rounds: 40,
        connects: 250,
        cpu: first_cpu()?,
        show_rounds: false,
    };
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        if flag == "--show-rounds" {
            args.show_rounds = true;
            continue;
        }
        let value = argv.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{flag} {value:?}: not a positive number"))
        };
        match flag.as_str() {
            "--net" => {
                args.net = value
                    .parse()
                    .ok()
                    .filter(|&n| n < 128)
                    .ok_or_else(|| format!("--net {value:?}: not a number below 128"))?
            }
            "--run-dir" => args.run_dir = Some(PathBuf::from(value)),
            "--iterations" => args.iterations = number()?,
            "--rounds" => args.rounds = number()?,
            "--connects" => args.connects = number()?,
            "--cpu" => {
                args.cpu = value
                    .parse()
                    .map_err(|_| format!("--cpu {value:?}: not a CPU number"))?
            }
            _ => {
                return Err(format!(
                    "unknown flag {flag}; usage: egress_bench [--net N] [--run-dir DIR] \
                     [--iterations N] [--rounds N] [--connects N] [--cpu N] [--show-rounds]"
                )
                .into())
            }
        }
    }
    let allowed = sched_getaffinity(Pid::from_raw(0)).map_err(context("sched_getaffinity"))?;
    if !allowed.is_set(args.cpu).unwrap_or(false) {
        return Err(format!("--cpu {}: not a CPU this process may run on", args.cpu).into());
    }
    Ok(args)
}

/// The first CPU this process may run on.
fn first_cpu() -> Result<usize> {
    let set = sched_getaffinity(Pid::from_raw(0)).map_err(context("sched_getaffinity"))?;
    (0..CpuSet::count())
        .find(|&cpu| set.is_set(cpu).unwrap_or(false))
        .ok_or_else(|| "no CPU in this process's affinity mask".into())
}

/// Moves the calling thread to `cpu`.
fn pin(cpu: usize) -> std::io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu)?;
    sched_setaffinity(Pid::from_raw(0), &set)?;
    Ok(())
}

/// The bench's bridge, its run dir and the host on it; all removed when
/// dropped.
struct BenchNet {
    bridge: Bridge,
    run_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    host: Option<Host>,
}

/// What a world on `bridge` gets, as the runtime builds it: protected, the
/// host's own addresses and the bridge's subnets.
fn options(bridge: &Bridge) -> Result<EgressOptions> {
    let mut protected: Vec<ipnet::IpNet> = link::host_addresses()
        .map_err(context("the host's addresses"))?
        .into_iter()
        .map(ipnet::IpNet::from)
        .collect();
    protected.extend(bridge.protected());
    Ok(EgressOptions {
        log_group: LOG_GROUP,
        protected: Protected::new(protected),
    })
}

/// A netns on the bridge serving TCP on [`PORT`]: an accept loop that
/// closes what it accepts.
struct Host {
    link: WorldLink,
    _netns: NetNs,
}

impl BenchNet {
    fn new(net: u8, run_dir: Option<PathBuf>) -> Result<BenchNet> {
        let name = format!("sbbench{net}");
        if Path::new("/sys/class/net").join(&name).exists() {
            return Err(format!("{name} exists already: another bench on --net {net}?").into());
        }
        let bridge: Bridge = format!("{name},10.247.{net}.1/24,fd5b:5b57:247:{net:x}::1/64")
            .parse()
            .map_err(context("bridge"))?;
        let (run_dir, temp) = match run_dir {
            Some(dir) => (dir, None),
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("substrate-egress-bench-")
                    .tempdir()
                    .map_err(context("temp run dir"))?;
                (temp.path().to_owned(), Some(temp))
            }
        };
        Ok(BenchNet {
            bridge,
            run_dir,
            _temp: temp,
            host: None,
        })
    }

    /// Starts the host: 10.247.N+128.2/24 and the worlds' /64 + 202, its
    /// accept loop on `cpu`.
    fn start_host(&mut self, cpu: usize) -> Result<SocketAddr> {
        let v4_net = u32::from(self.bridge.v4.network()) + (128 << 8);
        let v4 = format!("{}/24", Ipv4Addr::from(v4_net + 2))
            .parse()
            .map_err(context("host v4"))?;
        let v6 = format!(
            "{}/64",
            Ipv6Addr::from(u128::from(self.bridge.v6.network()) + 202)
        )
        .parse()
        .map_err(context("host v6"))?;
        let netns = NetNs::new_anonymous().map_err(context("host netns"))?;
        let link = link::attach_service(&netns, &self.bridge, v4, v6)
            .map_err(context("host on the bridge"))?;
        let address = SocketAddr::new(link.v4.into(), PORT);
        self.host = Some(Host {
            link,
            _netns: netns.try_clone().map_err(context("host netns"))?,
        });
        let listener = netns
            .run(|| TcpListener::bind(address))
            .map_err(context(format!("listen on {address}")))?;
        // Ends with the process; the socket keeps its netns alive until
        // then, but not its link (released in drop).
        std::thread::spawn(move || {
            if let Err(e) = pin(cpu) {
                eprintln!("egress bench: cannot pin the host's accept loop to CPU {cpu}: {e}");
            }
            loop {
                if let Ok((stream, _)) = listener.accept() {
                    drop(stream);
                }
            }
        });
        Ok(address)
    }
}

impl Drop for BenchNet {
    fn drop(&mut self) {
        if let Some(host) = &self.host {
            if let Err(e) = host.link.release() {
                eprintln!(
                    "egress bench: cannot release the host's link: {}",
                    one_line(&e)
                );
            }
        }
        if let Err(e) = self.bridge.remove(&self.run_dir) {
            eprintln!(
                "egress bench: cannot remove the bridge {}: {}",
                self.bridge.name,
                one_line(&e)
            );
        }
    }
}

/// A world's netns and its link; released when dropped (a timed teardown
/// goes through [`World::teardown`] instead).
struct World {
    netns: Option<NetNs>,
    link: Option<WorldLink>,
}

impl World {
    fn new() -> Result<World> {
        Ok(World {
            netns: Some(NetNs::new_anonymous().map_err(context("unshare a netns"))?),
            link: None,
        })
    }

    fn netns(&self) -> &NetNs {
        self.netns
            .as_ref()
            .expect("a world has its netns until torn down")
    }

    fn attach(&mut self, net: &BenchNet, owner: &str) -> Result<()> {
        let link = link::attach(self.netns(), &net.bridge, &net.run_dir, owner)
            .map_err(context("attach"))?;
        self.link = Some(link);
        Ok(())
    }

    /// Installs the world's table and drops the handle, as the runtime's
    /// create does (the world's monitor opens a handle of its own). The
    /// drop closes the handle's netfilter socket, and that close waits for
    /// nf_tables' deferred cleanup of the commit (it frees a batch's
    /// transactions after an RCU grace period; a closing netfilter socket
    /// flushes that work: nft_rcv_nl_event): it belongs to the setup.
    fn install(&self, policy: &NetworkPolicy, options: EgressOptions) -> Result<()> {
        EgressTable::install(self.netns(), policy, options)
            .map_err(context(format!("install ({} entries)", policy.allow.len())))?;
        Ok(())
    }

    /// What a world's delete does: the link released, the netns closed;
    /// the table goes with the netns.
    fn teardown(mut self) -> Result<()> {
        if let Some(link) = self.link.take() {
            link.release().map_err(context("release"))?;
        }
        self.netns = None;
        Ok(())
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(link) = self.link.take() {
            let _ = link.release();
        }
    }
}

/// `count` allow entries: `count - 1` on distinct, non-adjacent /32s of
/// 172.16.0.0/12 (nothing there answers), then `target` last. All on
/// `target`'s port, or (`own_ports`) each on a port of its own: one rule
/// per entry.
fn policy(count: usize, target: SocketAddr, own_ports: bool) -> Result<NetworkPolicy> {
    let mut texts: Vec<String> = (0..count - 1)
        .map(|i| {
            let port = if own_ports {
                10_000 + i
            } else {
                target.port().into()
            };
            format!("172.16.{}.{}:{port}/tcp", i / 100, (i % 100) * 2 + 1)
        })
        .collect();
    texts.push(format!("{target}/tcp"));
    let allow = texts
        .iter()
        .map(|text| Entry::parse(text).map_err(|e| format!("entry {text:?}: {e}")))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(NetworkPolicy {
        default: Verdict::Deny,
        allow,
        deny: Vec::new(),
        egress_bytes: None,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// The `p` quantile (0..=1, nearest rank) of sorted samples.
fn quantile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    quantile(&sorted, 0.5)
}

fn p90(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    quantile(&sorted, 0.9)
}

/// Part 1's variants.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Setup {
    Bare,
    Link,
    Table10,
    Table1000,
}

impl Setup {
    const ALL: [Setup; 4] = [Setup::Bare, Setup::Link, Setup::Table10, Setup::Table1000];

    fn label(self) -> &'static str {
        match self {
            Setup::Bare => "(a) bare netns",
            Setup::Link => "(b) + veth on the bridge",
            Setup::Table10 => "(c) + table, 10 entries",
            Setup::Table1000 => "(d) + table, 1000 entries",
        }
    }
}

#[derive(Default)]
struct SetupTimes {
    setup: Vec<Duration>,
    teardown: Vec<Duration>,
    total: Vec<Duration>,
}

/// One world of `setup`'s kind made and torn down: (setup, teardown).
fn one_world(
    setup: Setup,
    net: &BenchNet,
    policies: &[NetworkPolicy; 2],
) -> Result<(Duration, Duration)> {
    let started = Instant::now();
    let mut world = World::new()?;
    if setup != Setup::Bare {
        world.attach(net, "bench")?;
    }
    match setup {
        Setup::Table10 => world.install(&policies[0], options(&net.bridge)?)?,
        Setup::Table1000 => world.install(&policies[1], options(&net.bridge)?)?,
        Setup::Bare | Setup::Link => {}
    }
    let made = started.elapsed();
    let started = Instant::now();
    world.teardown()?;
    Ok((made, started.elapsed()))
}

fn bench_setup(net: &BenchNet, iterations: usize, target: SocketAddr) -> Result<()> {
    let policies = [policy(10, target, false)?, policy(1000, target, false)?];
    let mut times: Vec<SetupTimes> = Setup::ALL.iter().map(|_| SetupTimes::default()).collect();
    for i in 0..WARMUP_ITERATIONS + iterations {
        // The order rotates, so drift and what one variant leaves to the
        // kernel's deferred work fall on all alike.
        for k in 0..Setup::ALL.len() {
            let index = (i + k) % Setup::ALL.len();
            let (made, torn) = one_world(Setup::ALL[index], net, &policies)
                .map_err(|e| format!("{}: {e}", Setup::ALL[index].label()))?;
            if i >= WARMUP_ITERATIONS {
                times[index].setup.push(made);
                times[index].teardown.push(torn);
                times[index].total.push(made + torn);
            }
        }
    }
    println!(
        "1. per-world network setup + teardown: {iterations} interleaved iterations \
         (after {WARMUP_ITERATIONS} untimed), ms"
    );
    println!(
        "   {:<28} {:>14} {:>16} {:>14} {:>11}",
        "", "setup med p90", "teardown med p90", "total med p90", "total/(a)"
    );
    let anchor = median(&times[0].total);
    for (setup, t) in Setup::ALL.iter().zip(&times) {
        println!(
            "   {:<28} {:>6.2} {:>7.2} {:>7.2} {:>8.2} {:>6.2} {:>7.2} {:>10.1}x",
            setup.label(),
            ms(median(&t.setup)),
            ms(p90(&t.setup)),
            ms(median(&t.teardown)),
            ms(p90(&t.teardown)),
            ms(median(&t.total)),
            ms(p90(&t.total)),
            median(&t.total).as_secs_f64() / anchor.as_secs_f64(),
        );
    }
    let bare = median(&times[0].setup);
    println!(
        "   network setup added to a bare netns (setup medians): (b) {:.2} ms, (c) {:.2} ms, (d) {:.2} ms",
        ms(median(&times[1].setup).saturating_sub(bare)),
        ms(median(&times[2].setup).saturating_sub(bare)),
        ms(median(&times[3].setup).saturating_sub(bare)),
    );
    let verdict = |t: &SetupTimes| {
        let m = median(&t.setup);
        format!(
            "{} ({:.2} ms, p90 {:.2})",
            if m <= SETUP_GOAL { "met" } else { "MISSED" },
            ms(m),
            ms(p90(&t.setup))
        )
    };
    println!(
        "   goal: setup <= {} ms (median, netns included): (c) {}, (d) {}",
        SETUP_GOAL.as_millis(),
        verdict(&times[2]),
        verdict(&times[3])
    );
    Ok(())
}

/// What part 2's variants put in the world's netns.
enum Filter {
    /// Nothing: the anchor.
    None,
    /// A table of one `ct state established,related accept` rule (by
    /// `nft`): what conntrack alone costs, which every egress table turns on.
    ConntrackOnly,
    Policy(NetworkPolicy),
}

/// Part 2's variants.
struct Variant {
    label: &'static str,
    filter: Filter,
    samples: Vec<Duration>,
    round_medians: Vec<Duration>,
    installs: Vec<Duration>,
}

/// `count` connects (and closes) to `target` from a thread in `netns`: the
/// time of each. Closed with SO_LINGER 0 (a reset, no TIME_WAIT), so tens
/// of thousands of connects never run out of ephemeral ports.
fn connects(netns: &NetNs, target: SocketAddr, count: usize, cpu: usize) -> Result<Vec<Duration>> {
    let times = netns
        .run(|| {
            pin(cpu)?;
            let mut times = Vec::with_capacity(count);
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            for _ in 0..count {
                let started = Instant::now();
                let stream = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT)?;
                setsockopt(&stream, sockopt::Linger, &linger)?;
                drop(stream);
                times.push(started.elapsed());
            }
            Ok(times)
        })
        .map_err(context(format!("connect to {target}")))?;
    Ok(times)
}

/// The conntrack-only table of [`Filter::ConntrackOnly`].
const CONNTRACK_ONLY: &str = "add table inet bench_ct
add chain inet bench_ct output { type filter hook output priority 0; policy accept; }
add rule inet bench_ct output ct state established,related accept
";

/// `nft -f -` inside `netns`, `script` on its stdin.
fn nft(netns: &NetNs, script: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::fd::{AsFd as _, AsRawFd as _};
    let path = format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        netns.as_fd().as_raw_fd()
    );
    let mut child = std::process::Command::new("nsenter")
        .arg(format!("--net={path}"))
        .args(["nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(context("run nsenter nft"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(context("write to nft"))?;
    }
    let output = child.wait_with_output().map_err(context("wait for nft"))?;
    if !output.status.success() {
        return Err(format!(
            "nft: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into());
    }
    Ok(())
}

fn bench_connect(
    net: &BenchNet,
    rounds: usize,
    per_round: usize,
    target: SocketAddr,
    cpu: usize,
    show_rounds: bool,
) -> Result<()> {
    let mut world = World::new()?;
    world.attach(net, "bench-connect")?;
    let variant = |label, filter| Variant {
        label,
        filter,
        samples: Vec::new(),
        round_medians: Vec::new(),
        installs: Vec::new(),
    };
    let mut variants = vec![
        variant("(i) no table", Filter::None),
        variant(
            "(ii) 10 entries, one spec",
            Filter::Policy(policy(10, target, false)?),
        ),
        variant(
            "(iii) 1000 entries, one spec",
            Filter::Policy(policy(1000, target, false)?),
        ),
        variant(
            "(iv) 1000 entries, own ports",
            Filter::Policy(policy(1000, target, true)?),
        ),
    ];
    if nft(world.netns(), "list tables").is_ok() {
        variants.push(variant("(v) conntrack only", Filter::ConntrackOnly));
    } else {
        println!("   (no `nft`: the conntrack-only row is left out)");
    }
    let target_entry = format!("{target}/tcp");
    for round in 0..=rounds {
        let count = if round == 0 {
            WARMUP_CONNECTS
        } else {
            per_round
        };
        for k in 0..variants.len() {
            let index = (round + k) % variants.len();
            let variant = &mut variants[index];
            let table = match &variant.filter {
                Filter::Policy(policy) => {
                    let started = Instant::now();
                    let table = EgressTable::install(world.netns(), policy, options(&net.bridge)?)
                        .map_err(context(format!("{}: install", variant.label)))?;
                    if round > 0 {
                        variant.installs.push(started.elapsed());
                    }
                    Some(table)
                }
                Filter::ConntrackOnly => {
                    nft(world.netns(), CONNTRACK_ONLY)
                        .map_err(|e| format!("{}: {e}", variant.label))?;
                    None
                }
                Filter::None => None,
            };
            let times = connects(world.netns(), target, count, cpu)
                .map_err(|e| format!("{}: {e}", variant.label))?;
            if let Some(table) = table {
                // The table decided: its rule for the host's entry counted
                // every SYN.
                let counters = table
                    .counters()
                    .map_err(context(format!("{}: counters", variant.label)))?;
                let counted = counters
                    .rules
                    .iter()
                    .filter(|r| r.entries.contains(&target_entry))
                    .map(|r| r.packets)
                    .sum::<u64>();
                if counted < count as u64 {
                    return Err(format!(
                        "{}: the rule for {target_entry} counted {counted} of {count} connects",
                        variant.label
                    )
                    .into());
                }
                table
                    .remove()
                    .map_err(context(format!("{}: remove", variant.label)))?;
            }
            if let Filter::ConntrackOnly = variant.filter {
                nft(world.netns(), "delete table inet bench_ct")
                    .map_err(|e| format!("{}: {e}", variant.label))?;
            }
            if round > 0 {
                variant.round_medians.push(median(&times));
                variant.samples.extend(times);
            }
        }
    }
    world.teardown()?;

    println!(
        "2. TCP connect + close (SO_LINGER 0) from a world to a host netns on the bridge \
         ({target}): {rounds} interleaved rounds x {per_round} connects per variant \
         (after {WARMUP_CONNECTS} untimed), client and server on CPU {cpu}, us"
    );
    println!(
        "   {:<32} {:>8} {:>8} {:>7} {:>9} {:>11}",
        "", "median", "p90", "/(i)", "+us", "install ms"
    );
    let anchor = median(&variants[0].samples);
    for v in &variants {
        let m = median(&v.samples);
        println!(
            "   {:<32} {:>8.1} {:>8.1} {:>6.2}x {:>+9.1} {:>11}",
            v.label,
            us(m),
            us(p90(&v.samples)),
            m.as_secs_f64() / anchor.as_secs_f64(),
            us(m) - us(anchor),
            if v.installs.is_empty() {
                "-".to_owned()
            } else {
                format!("{:.2}", ms(median(&v.installs)))
            },
        );
    }
    // Noise: each round's median of a variant against the same round's of
    // the one it is compared with (minutes apart would see the machine
    // change; one round, tens of ms, hardly does). When the middle half of
    // those round-by-round differences (p25..p75) holds 0, the difference
    // is noise; when it lies all above 0, most rounds paid it. The middle
    // half, not p10..p90: a round now and then runs ~15 us faster as a
    // whole, whatever its variant (seen on 2 cores, unexplained), and one
    // such round in a pair is no cost of either.
    let versus = |a: usize, b: usize| -> String {
        let mut diffs: Vec<f64> = variants[a]
            .round_medians
            .iter()
            .zip(&variants[b].round_medians)
            .map(|(x, y)| us(*x) - us(*y))
            .collect();
        diffs.sort_by(f64::total_cmp);
        let at = |p: f64| {
            let rank = ((diffs.len() as f64 * p).ceil() as usize).clamp(1, diffs.len());
            diffs[rank - 1]
        };
        let (lo, mid, hi) = (at(0.25), at(0.5), at(0.75));
        let verdict = if lo <= 0.0 && 0.0 <= hi {
            "within noise"
        } else if lo > 0.0 {
            "ABOVE noise"
        } else {
            "below: cheaper"
        };
        format!("{mid:+.1} us (rounds p25..p75 {lo:+.1}..{hi:+.1}): {verdict}")
    };
    if show_rounds {
        for v in &variants {
            let medians: Vec<String> = v
                .round_medians
                .iter()
                .map(|d| format!("{:.0}", us(*d)))
                .collect();
            println!("   {:<32} per round: {}", v.label, medians.join(" "));
        }
    }
    let mut anchor_rounds = variants[0].round_medians.clone();
    anchor_rounds.sort();
    println!(
        "   the anchor's own per-round medians, p25..p75: {:.1}..{:.1} us",
        us(quantile(&anchor_rounds, 0.25)),
        us(quantile(&anchor_rounds, 0.75))
    );
    println!("   differences of per-round medians, median of the rounds:");
    println!(
        "   goal: connect overhead within noise: (ii) - (i) {}",
        versus(1, 0)
    );
    println!("   goal: 1000 entries cost no more than 10:");
    println!("         (iii) - (ii) {}", versus(2, 1));
    println!("         (iv) - (ii)  {}", versus(3, 1));
    if variants.len() > 4 {
        println!(
            "   of (ii)'s overhead: conntrack alone, (v) - (i) {}",
            versus(4, 0)
        );
        println!(
            "                       the rules, (ii) - (v) {}",
            versus(1, 4)
        );
    }
    println!(
        "   install ms: into a netns that already tracks connections (earlier rounds'), where \
         conntrack's first user walks the host's whole conntrack table (nf_ct_netns_get); \
         a new world's netns tracks none: part 1 shows what it pays"
    );
    Ok(())
}

/// The first three fields of /proc/loadavg: other work on the machine.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn run() -> Result<()> {
    let args = parse_args()?;
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root (network namespaces, bridges, nftables)".into());
    }
    let mut net = BenchNet::new(args.net, args.run_dir)?;
    let target = net.start_host(args.cpu)?;
    // The bridge and its NAT exist from here on (made with the host), as on
    // a host where worlds have run before.
    println!(
        "egress bench: bridge {} ({}, {}), host {target}; {} cores, kernel {}",
        net.bridge.name,
        net.bridge.v4.trunc(),
        net.bridge.v6.trunc(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    println!("load average at the start: {}", load_average());
    bench_setup(&net, args.iterations, target)?;
    bench_connect(
        &net,
        args.rounds,
        args.connects,
        target,
        args.cpu,
        args.show_rounds,
    )?;
    println!("load average at the end: {}", load_average());
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("egress bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
