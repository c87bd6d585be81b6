//! The span graph's benchmark (`bench/graph.sh`, `make bench`): ingest rate
//! and each query's latency at 10k, 100k and 1M spans, and the store's
//! size per span.
//!
//! The traces are made by a generator shaped like the worlds Substrate
//! records (CI jobs, agents' sessions), written with the trace crate's own
//! builders and hash chain, so they are the bytes a monitor writes:
//!
//! - a world of ~1000 spans: its init, a shell, and jobs below it: process
//!   trees 1–5 deep (a build tool, its compilers, their helpers), 0–4
//!   children per process, fewer the deeper;
//! - every process an exec span (argv of 2–8 arguments, a cwd, ten env
//!   entries) written when it ends, after its children's spans, as the
//!   monitor writes them; a policy decision before it (1 in 100 denied,
//!   then tried again);
//! - file spans: reads of shared paths (libraries, /etc: the same few
//!   hundred paths in every world), writes to the world's workspace drawn
//!   from a skewed (power-law) distribution over ~300 paths, temp files
//!   written then renamed or deleted, as build tools do; a log every world
//!   writes (one path, many writers across worlds);
//! - network: lookups then connects to a pool of 40 destinations, 1 in 50
//!   blocked by the egress policy; a download tool in 1 world of 10;
//! - suspicious worlds: 1 in 50 downloads a file and runs it, 1 in 50 pipes
//!   a download into a shell, 1 in 20 reads a key under ~/.ssh.
//!
//! The mix comes out at about 6% exec, 80% file, 4% net, 4% dns, 6%
//! policy spans (printed with each size).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use substrate_graph::{store, Graph, GraphDir, IngestOptions, Traces};
use substrate_trace::{
    Chain, Decision, DnsDetail, ExitStatus, Family, FileDetail, FileOp, NetDetail, NetOp,
    PolicyDetail, Source, Span, SpanId, Timestamp, Transport, WorldDetail,
};

// The allocator the binary has (graph/Cargo.toml), so that ingest is
// measured as `substrate-graph ingest` runs it.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// splitmix64: reproducible runs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
    /// Skewed toward 0: a few paths take most writes.
    fn skewed(&mut self, n: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64) * u.powi(3)) as u64
    }
}

const SHARED_READS: [&str; 12] = [
    "/etc/ld.so.cache",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/lib/x86_64-linux-gnu/libm.so.6",
    "/usr/lib/x86_64-linux-gnu/libz.so.1",
    "/usr/lib/x86_64-linux-gnu/libssl.so.3",
    "/etc/nsswitch.conf",
    "/etc/passwd",
    "/etc/hosts",
    "/usr/share/zoneinfo/UTC",
    "/etc/ssl/certs/ca-certificates.crt",
    "/usr/lib/locale/C.utf8/LC_CTYPE",
    "/proc/self/maps",
];

const TOOLS: [(&str, &str); 10] = [
    ("make", "/usr/bin/make"),
    ("cargo", "/root/.cargo/bin/cargo"),
    ("rustc", "/root/.cargo/bin/rustc"),
    ("cc", "/usr/bin/cc"),
    ("as", "/usr/bin/as"),
    ("ld", "/usr/bin/ld"),
    ("python3", "/usr/bin/python3"),
    ("git", "/usr/bin/git"),
    ("npm", "/usr/bin/npm"),
    ("node", "/usr/bin/node"),
];

struct World {
    id: String,
    rng: Rng,
    now: i64,
    pid: u32,
    lines: Vec<String>,
    chain: Chain,
    budget: usize,
}

impl World {
    fn tick(&mut self) -> Timestamp {
        self.now += 10_000 + self.rng.below(90_000) as i64;
        Timestamp::from_unix_nanos(self.now)
    }

    fn push(&mut self, span: Span) {
        let line = self.chain.link(&span).expect("a span line");
        self.lines.push(line);
    }

    fn file(&mut self, parent: SpanId, op: FileOp, path: &str, pid: u32) {
        let at = self.tick();
        let span = Span::file(&self.id, Source::Kernel, at, FileDetail::new(op, path))
            .parent(parent)
            .pid(pid)
            .build();
        self.push(span);
    }

    fn read(&mut self, parent: SpanId, path: &str, pid: u32) {
        let at = self.tick();
        let span = Span::file(
            &self.id,
            Source::Preload,
            at,
            FileDetail::open(FileOp::Openat, path, 0o2000000, None),
        )
        .parent(parent)
        .pid(pid)
        .end(at)
        .returned(3)
        .build();
        self.push(span);
    }

    fn connect(&mut self, parent: SpanId, pid: u32, destination: u64, blocked: bool) {
        let name = format!("svc{destination}.example.com");
        let address = format!("10.20.{}.{}", destination / 200, destination % 200 + 1);
        let at = self.tick();
        let dns = Span::dns(
            &self.id,
            Source::Preload,
            at,
            DnsDetail {
                query: name.into_bytes(),
                answers: vec![address.clone()],
            },
        )
        .parent(parent)
        .pid(pid)
        .end(at)
        .returned(0)
        .build();
        self.push(dns);
        let at = self.tick();
        let mut span = Span::net(
            &self.id,
            Source::Kernel,
            at,
            NetDetail::ip(NetOp::Connect, Family::Inet, Transport::Tcp, &address, 443),
        )
        .parent(parent)
        .pid(pid);
        span = if blocked {
            span.failed(-1, substrate_trace::Errno(111))
        } else {
            span.failed(-1, substrate_trace::Errno(115))
        };
        let mut span = span.build();
        span.extra.insert(
            "egress".into(),
            json!({"verdict": if blocked { "deny" } else { "allow" },
                   "rule": if blocked { "default" } else { "*.example.com:443/tcp" }}),
        );
        if blocked {
            span.extra
                .insert("refused_by".into(), json!("egress policy"));
        }
        self.push(span);
    }

    fn decide(&mut self, parent: SpanId, subject: &str, deny: bool) {
        let at = self.tick();
        let span = Span::policy(
            &self.id,
            Source::Monitor,
            at,
            PolicyDetail {
                rule: if deny {
                    "commands.rules[0]".into()
                } else {
                    "commands.default".into()
                },
                decision: if deny {
                    Decision::Deny
                } else {
                    Decision::Allow
                },
                subject: subject.as_bytes().to_vec(),
                reason: None,
            },
        )
        .parent(parent)
        .build();
        self.push(span);
    }

    /// A process below `parent` running `argv`, its activity, its children
    /// (to `depth`), then its exec span.
    fn process(&mut self, parent: SpanId, argv: Vec<String>, exe: &str, depth: u32) {
        let me = SpanId::new();
        self.pid += 1;
        let pid = self.pid;
        if self.rng.chance(100) {
            // Denied, then tried again (and allowed: a rule changed, or
            // another path to the same program).
            self.decide(parent, exe, true);
        }
        self.decide(parent, exe, false);
        let start = self.tick();
        for _ in 0..(2 + self.rng.below(6)) {
            let path = SHARED_READS[self.rng.below(SHARED_READS.len() as u64) as usize];
            self.read(me, path, pid);
        }
        for _ in 0..self.rng.below(8) {
            let n = self.rng.skewed(300);
            let path = format!("/work/src/module{n}/file{}.rs", n % 7);
            self.read(me, &path, pid);
        }
        let writes = self.rng.below(6);
        for _ in 0..writes {
            let n = self.rng.skewed(300);
            let path = format!("/work/target/obj{n}.o");
            self.file(me, FileOp::Create, &path, pid);
            self.file(me, FileOp::Write, &path, pid);
        }
        if self.rng.chance(4) {
            let tmp = format!("/tmp/tmp.{}", self.rng.below(1 << 30));
            self.file(me, FileOp::Create, &tmp, pid);
            if self.rng.chance(2) {
                let at = self.tick();
                let span = Span::file(
                    &self.id,
                    Source::Kernel,
                    at,
                    FileDetail::rename(FileOp::Rename, tmp.clone(), "/work/target/out.bin"),
                )
                .parent(me)
                .pid(pid)
                .returned(0)
                .build();
                self.push(span);
            } else {
                self.file(me, FileOp::Delete, &tmp, pid);
            }
        }
        if self.rng.chance(10) {
            self.file(me, FileOp::Write, "/var/log/build.log", pid);
        }
        if argv[0] == "npm" || argv[0] == "git" || argv[0] == "cargo" || self.rng.chance(8) {
            for _ in 0..(1 + self.rng.below(3)) {
                let d = self.rng.skewed(40);
                let blocked = self.rng.chance(50);
                self.connect(me, pid, d, blocked);
            }
        }
        if depth < 5 && self.lines.len() < self.budget {
            let children = match depth {
                0 | 1 => self.rng.below(5),
                2 => self.rng.below(3),
                _ => self.rng.below(2),
            };
            for _ in 0..children {
                let (name, exe) = TOOLS[self.rng.below(TOOLS.len() as u64) as usize];
                let mut argv = vec![name.to_owned()];
                for i in 0..(1 + self.rng.below(7)) {
                    argv.push(format!("--opt{i}=v{}", self.rng.below(100)));
                }
                self.process(me, argv, exe, depth + 1);
            }
        }
        let end = self.tick();
        let span = Span::exec(&self.id, Source::Kernel, start)
            .id(me)
            .parent(parent)
            .pid(pid)
            .world_pid(pid)
            .exe(exe)
            .argv(argv)
            .cwd("/work")
            .env([
                "PATH=/usr/local/bin:/usr/bin:/bin",
                "HOME=/root",
                "LANG=C.UTF-8",
                "TERM=xterm",
                "USER=root",
                "PWD=/work",
                "SHELL=/bin/sh",
                "CI=true",
                "CARGO_HOME=/root/.cargo",
                "GITHUB_TOKEN=ghp_0123456789",
            ])
            .end(end)
            .exit(ExitStatus::Code(0))
            .build();
        self.push(span);
    }

    fn suspicious(&mut self, shell: SpanId) {
        if self.rng.chance(50) {
            // curl -o /tmp/x …; /tmp/x
            let curl = SpanId::new();
            self.pid += 1;
            let pid = self.pid;
            let start = self.tick();
            self.connect(curl, pid, 39, false);
            self.file(curl, FileOp::Create, "/tmp/installer", pid);
            self.file(curl, FileOp::Write, "/tmp/installer", pid);
            let end = self.tick();
            let span = Span::exec(&self.id, Source::Kernel, start)
                .id(curl)
                .parent(shell)
                .pid(pid)
                .exe("/usr/bin/curl")
                .argv([
                    "curl",
                    "-sSo",
                    "/tmp/installer",
                    "https://svc39.example.com/i",
                ])
                .end(end)
                .exit(ExitStatus::Code(0))
                .build();
            self.push(span);
            self.process(shell, vec!["/tmp/installer".into()], "/tmp/installer", 4);
        }
        if self.rng.chance(50) {
            // curl … | sh
            let (curl, sh) = (SpanId::new(), SpanId::new());
            let start = self.tick();
            self.pid += 2;
            self.connect(curl, self.pid - 1, 38, false);
            let end = self.tick();
            for (id, exe, argv) in [
                (
                    curl,
                    "/usr/bin/curl",
                    vec!["curl", "-s", "https://svc38.example.com/x"],
                ),
                (sh, "/usr/bin/dash", vec!["sh"]),
            ] {
                let span = Span::exec(&self.id, Source::Kernel, start)
                    .id(id)
                    .parent(shell)
                    .exe(exe)
                    .argv(argv)
                    .end(end)
                    .exit(ExitStatus::Code(0))
                    .build();
                self.push(span);
            }
        }
        if self.rng.chance(20) {
            let pid = self.pid;
            self.read(shell, "/root/.ssh/id_ed25519", pid);
        }
    }
}

/// A world of about `spans` spans, as its trace's lines.
fn world(id: &str, seed: u64, spans: usize, start: i64) -> Vec<String> {
    let mut w = World {
        id: id.to_owned(),
        rng: Rng(seed),
        now: start,
        pid: 1,
        lines: Vec::with_capacity(spans + 64),
        chain: Chain::start(id),
        budget: spans,
    };
    let world_span = SpanId::new();
    let init = SpanId::new();
    let shell = SpanId::new();
    let t0 = w.tick();
    while w.lines.len() < spans {
        let (name, exe) = TOOLS[w.rng.below(TOOLS.len() as u64) as usize];
        w.process(shell, vec![name.into(), "build".into()], exe, 0);
    }
    w.suspicious(shell);
    // What this world alone made.
    w.file(shell, FileOp::Create, &format!("/work/dist/{id}.tar"), 1);
    let end = w.tick();
    for (id, parent, argv) in [
        (shell, init, vec!["sh", "-c", "make ci"]),
        (
            init,
            world_span,
            vec!["/.substrate-init", "--", "sh", "-c", "make ci"],
        ),
    ] {
        let span = Span::exec(&w.id, Source::Kernel, t0)
            .id(id)
            .parent(parent)
            .pid(1)
            .exe("/usr/bin/dash")
            .argv(argv)
            .end(end)
            .exit(ExitStatus::Code(0))
            .build();
        w.push(span);
    }
    let span = Span::world(&w.id, Source::Runtime, t0, WorldDetail::default())
        .id(world_span)
        .end(end)
        .exit(ExitStatus::Code(0))
        .build();
    w.push(span);
    w.lines
}

fn write_traces(state: &Path, spans: usize, per_world: usize) -> (Vec<String>, usize, String) {
    let worlds = spans.div_ceil(per_world);
    let mut ids = Vec::new();
    let mut total = 0;
    let kinds = ["exec", "file", "net", "dns", "policy", "world"];
    let mut by_kind = [0usize; 6];
    for i in 0..worlds {
        let id = format!("bench-{i:05}");
        let lines = world(
            &id,
            i as u64 + 1,
            per_world,
            1_800_000_000_000_000_000 + i as i64 * 1_000_000_000,
        );
        total += lines.len();
        for line in &lines {
            for (i, kind) in kinds.iter().enumerate() {
                if line.contains(&format!("\"kind\":\"{kind}\"")) {
                    by_kind[i] += 1;
                }
            }
        }
        let dir = state.join("worlds").join(&id);
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(dir.join("trace.jsonl"), text).unwrap();
        ids.push(id);
    }
    let mix = kinds
        .iter()
        .zip(by_kind)
        .map(|(k, n)| format!("{k} {:.0}%", 100.0 * n as f64 / total as f64))
        .collect::<Vec<_>>()
        .join(", ");
    (ids, total, mix)
}

/// CPU seconds (user + system) this process has used, every thread: what
/// an ingest costs whatever else the machine runs (/proc/self/stat, proc(5)).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, s)| s).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15: 11 and 12 after the comm.
    (ticks(11) + ticks(12)) / 100.0
}

/// Nanoseconds this thread has run on a CPU (CLOCK_THREAD_CPUTIME_ID): a
/// query's cost whatever else the machine runs.
fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Median and worst of `runs` runs of `f`, in ms (wall), the median CPU
/// time of this thread, and what it returned.
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, f64, f64, T) {
    let mut times = Vec::with_capacity(runs);
    let mut cpus = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let c = thread_cpu_ns();
        last = Some(f());
        cpus.push(thread_cpu_ns() - c);
        times.push(t.elapsed());
    }
    times.sort();
    cpus.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    (
        ms(times[runs / 2]),
        ms(times[runs - 1]),
        cpus[runs / 2] as f64 / 1e6,
        last.unwrap(),
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut sizes = vec![10_000usize, 100_000, 1_000_000];
    let mut base: Option<PathBuf> = None;
    let mut cli: Option<PathBuf> = None;
    let mut queries = true;
    let mut keep = false;
    let mut reuse = false;
    let mut runs = 15usize;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sizes" => {
                sizes = args
                    .next()
                    .expect("--sizes N,N")
                    .split(',')
                    .map(|s| s.parse().expect("a number"))
                    .collect()
            }
            "--dir" => base = Some(args.next().expect("--dir DIR").into()),
            "--cli" => cli = Some(args.next().expect("--cli substrate-graph").into()),
            "--ingest-only" => queries = false,
            // The traces and the store are left in DIR (last size only).
            "--keep" => keep = true,
            // Queries only, on what `--keep` left in DIR (one size).
            "--reuse" => reuse = true,
            "--runs" => runs = args.next().expect("--runs N").parse().expect("a number"),
            other => panic!("unknown argument {other}"),
        }
    }
    let base = base.unwrap_or_else(|| std::env::temp_dir().join("substrate-graph-bench"));
    println!("# substrate-graph benchmark: worlds of ~1000 spans (graph/examples/graph_bench.rs)");
    let last = sizes.len().saturating_sub(1);
    for (i, size) in sizes.into_iter().enumerate() {
        let state = base.join("state");
        if reuse {
            let traces = Traces::new(&state);
            let worlds = traces.worlds().unwrap();
            println!("\n## queries on the store kept in {}", base.display());
            let dir = GraphDir::new(base.join("graph"));
            queries_of(&Graph::open(&dir).unwrap(), &worlds, runs);
            return;
        }
        let _ = std::fs::remove_dir_all(&base);
        let t = Instant::now();
        let (worlds, spans, mix) = write_traces(&state, size, 1000);
        let trace_bytes: u64 = worlds
            .iter()
            .map(|w| {
                std::fs::metadata(state.join("worlds").join(w).join("trace.jsonl"))
                    .unwrap()
                    .len()
            })
            .sum();
        println!(
            "\n## {spans} spans in {} worlds ({:.0} MB of trace, made in {:.1} s)",
            worlds.len(),
            trace_bytes as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );
        println!("spans by kind: {mix}");
        let traces = Traces::new(&state);
        let dir = GraphDir::new(base.join("graph"));
        let t = Instant::now();
        let cpu = cpu_secs();
        {
            // As `substrate-graph ingest` (every world) and `rebuild` do.
            let writer = Graph::open_writer(&dir, store::LOCK_WAIT).unwrap();
            let found: Vec<(&str, PathBuf)> = worlds
                .iter()
                .map(|w| (w.as_str(), traces.trace(w).unwrap()))
                .collect();
            let found: Vec<(&str, &std::path::Path)> =
                found.iter().map(|(w, t)| (*w, t.as_path())).collect();
            for report in writer
                .ingest_many(&found, &IngestOptions::default())
                .unwrap()
            {
                report.unwrap();
            }
            writer.flush().unwrap();
        }
        let secs = t.elapsed().as_secs_f64();
        let cpu = cpu_secs() - cpu;
        let graph = Graph::open(&dir).unwrap();
        let disk = graph.disk_bytes();
        println!(
            "ingest: {:.2} s, {:.0} spans/s (every world, as `ingest` does, then a flush)",
            secs,
            spans as f64 / secs
        );
        println!(
            "ingest CPU: {cpu:.2} s on all threads, {:.1} us/span",
            cpu * 1e6 / spans as f64
        );
        println!(
            "store: {:.1} MB, {:.0} bytes/span (trace: {:.0} bytes/span)",
            disk as f64 / 1e6,
            disk as f64 / spans as f64,
            trace_bytes as f64 / spans as f64
        );
        if !queries {
            if keep && i == last {
                return;
            }
            continue;
        }
        queries_of(&graph, &worlds, runs);
        drop(graph);
        if let Some(cli) = &cli {
            let world = &worlds[worlds.len() / 2];
            // What a person waits for: a process that opens the store,
            // answers and exits.
            let (median, worst, _, _) = time(5, || {
                let out = std::process::Command::new(cli)
                    .arg("--graph-dir")
                    .arg(dir.path())
                    .args(["tree", world, "--json"])
                    .output()
                    .unwrap();
                assert!(out.status.success());
            });
            println!(
                "  {:<44} {median:>8.2} {worst:>8.2}   (a process: open, answer, exit)",
                "substrate-graph tree WORLD --json"
            );
        }
        if keep && i == last {
            return;
        }
    }
    if !keep {
        let _ = std::fs::remove_dir_all(&base);
    }
}

/// Each query, `runs` times.
fn queries_of(graph: &Graph, worlds: &[String], runs: usize) {
    {
        // Targets: a world in the middle; its shell; the deepest process
        // with children; a path it alone wrote; one every world writes.
        let world = &worlds[worlds.len() / 2];
        let tree = graph.tree(world, None).unwrap();
        let shell = tree.root.children[0].children[0]
            .process
            .span
            .clone()
            .unwrap();
        let job = tree.root.children[0].children[0]
            .children
            .iter()
            .max_by_key(|c| c.children.len())
            .and_then(|c| c.process.span.clone())
            .unwrap();
        let own_path = "/tmp/installer";
        println!(
            "query (runs: {runs}; median / worst ms; median CPU ms of the thread; answer size):"
        );
        let report = |name: &str, (median, worst, cpu, rows): (f64, f64, f64, usize)| {
            println!("  {name:<44} {median:>8.2} {worst:>8.2} {cpu:>8.2}   {rows} rows");
        };
        let nodes = |n: &substrate_graph::query::tree::Node| -> usize {
            fn count(n: &substrate_graph::query::tree::Node) -> usize {
                1 + n.children.iter().map(count).sum::<usize>()
            }
            count(n)
        };
        report("tree WORLD (a world of ~1000 spans)", {
            let (a, b, c, t) = time(runs, || graph.tree(world, None).unwrap());
            (a, b, c, nodes(&t.root))
        });
        report("tree SPAN (one job below the shell)", {
            let (a, b, c, t) = time(runs, || graph.tree(&job, None).unwrap());
            (a, b, c, nodes(&t.root))
        });
        report("who-wrote PATH (a path of one world)", {
            let p = format!("/work/dist/{world}.tar");
            let (a, b, c, t) = time(runs, || graph.who_wrote(p.as_bytes()).unwrap());
            (a, b, c, t.changes.len())
        });
        report("who-wrote /tmp/installer (2% of worlds)", {
            let (a, b, c, t) = time(runs, || graph.who_wrote(own_path.as_bytes()).unwrap());
            (a, b, c, t.changes.len())
        });
        report("who-wrote /var/log/build.log (every world)", {
            let (a, b, c, t) = time(runs, || graph.who_wrote(b"/var/log/build.log").unwrap());
            (a, b, c, t.changes.len())
        });
        report("what-changed SPAN (the job)", {
            let (a, b, c, t) = time(runs, || graph.what_changed(&job, None).unwrap());
            (a, b, c, t.changes.len())
        });
        report("what-changed SPAN (the world's shell)", {
            let (a, b, c, t) = time(runs, || graph.what_changed(&shell, None).unwrap());
            (a, b, c, t.changes.len())
        });
        report("connections --world W", {
            let (a, b, c, t) = time(runs, || graph.connections(Some(world), false).unwrap());
            (a, b, c, t.connections.len())
        });
        report("connections --blocked --world W", {
            let (a, b, c, t) = time(runs, || graph.connections(Some(world), true).unwrap());
            (a, b, c, t.connections.len())
        });
        report("connections --blocked (every world)", {
            let (a, b, c, t) = time(runs, || graph.connections(None, true).unwrap());
            (a, b, c, t.connections.len())
        });
        report("chains --world W", {
            let (a, b, c, t) = time(runs, || graph.chains(Some(world), None).unwrap());
            (a, b, c, t.chains.len())
        });
        report("chains (every world)", {
            let (a, b, c, t) = time(runs, || graph.chains(None, None).unwrap());
            (a, b, c, t.chains.len())
        });
        report("chains --kind download_exec (every world)", {
            let (a, b, c, t) = time(runs, || graph.chains(None, Some("download_exec")).unwrap());
            (a, b, c, t.chains.len())
        });
        report("connections (every world, every destination)", {
            let (a, b, c, t) = time(3, || graph.connections(None, false).unwrap());
            (a, b, c, t.connections.len())
        });
    }
}
