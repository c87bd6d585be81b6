//! Egress policy for worlds made from bundles (issue 14): containerd's
//! (`ctr`), CRI pods' and `substrate-runtime create`'s. The node's policies
//! are files under the config dir (`SUBSTRATE_CONFIG_DIR`, the test's own);
//! a bundle or pod chooses one by annotation `io.substrate.policy` and may
//! narrow it with `io.substrate.policy.inline`, never widen it.
//!
//! The hosts reached are the test's own: network namespaces joined by a
//! veth pair, and listeners on the CNI bridge's gateway (the host's side).
//! No internet.

mod cri_client;

use cri_client::{block_on, client, HANDLER};
use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use serde_json::Value;
use substrate_net::netns::NetNs;
use substrate_tests::containerd::{Containerd, IMAGE, RUNTIME};
use substrate_tests::{assert_no_leftovers, unique_id, Bundle, Runtime};
use tonic::transport::Channel;

/// What a test host serves: a greeting, then the connection is closed.
const GREET: u16 = 8080;
/// What "refused at once" means: no retransmission, no timeout.
const AT_ONCE: Duration = Duration::from_millis(100);

// --- The test's hosts -------------------------------------------------------

/// `ip ARGS` inside `netns`, for the fixture only.
fn ip(netns: &NetNs, args: &str) {
    let status = Command::new("nsenter")
        .arg(format!("--net={}", ns_path(netns)))
        .arg("ip")
        .args(args.split_whitespace())
        .status()
        .expect("run nsenter ip");
    assert!(status.success(), "ip {args}: {status}");
}

/// A path to `netns` that any process of this machine can open (the
/// test's fd, through /proc).
fn ns_path(netns: &NetNs) -> String {
    format!(
        "/proc/{}/fd/{}",
        std::process::id(),
        netns.as_fd().as_raw_fd()
    )
}

/// The tables of the network namespace at `path` (`nft list tables`).
fn nft_tables(path: &str) -> Vec<String> {
    let output = Command::new("nsenter")
        .arg(format!("--net={path}"))
        .args(["nft", "list", "tables"])
        .output()
        .expect("run nsenter nft");
    assert!(
        output.status.success(),
        "nft list tables in {path}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Whether the namespace at `path` holds a world's egress table.
fn has_world_table(path: &str) -> bool {
    nft_tables(path).iter().any(|t| t == "table inet substrate")
}

/// The namespace the test, containerd and the shims run in: the host's.
fn host_netns() -> String {
    format!("/proc/{}/ns/net", std::process::id())
}

/// Serves a greeting (`hello from ADDRESS:PORT`) on `listener`, from a
/// thread, for as long as the process lives.
fn greet(listener: TcpListener) {
    let local = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = writeln!(stream, "hello from {local}");
        }
    });
}

/// A namespace for a container (`world`) and one serving it (`server`),
/// joined by a veth pair: the world is 10.79.0.1, the server answers
/// [`GREET`] on 10.79.0.2 and 10.79.0.3.
struct Lab {
    world: NetNs,
    _server: NetNs,
}

impl Lab {
    const ALLOWED: &str = "10.79.0.2";
    const OTHER: &str = "10.79.0.3";

    fn new() -> Lab {
        let world = NetNs::new_anonymous().expect("world netns");
        let server = NetNs::new_anonymous().expect("server netns");
        ip(
            &world,
            &format!(
                "link add w0 type veth peer name s0 netns {}",
                ns_path(&server)
            ),
        );
        ip(&world, "addr add 10.79.0.1/24 dev w0");
        ip(&world, "link set w0 up");
        ip(&server, "link set lo up");
        for address in [Self::ALLOWED, Self::OTHER] {
            ip(&server, &format!("addr add {address}/24 dev s0"));
        }
        ip(&server, "link set s0 up");
        for address in [Self::ALLOWED, Self::OTHER] {
            let address: IpAddr = address.parse().unwrap();
            let listener = server
                .run(|| TcpListener::bind(SocketAddr::new(address, GREET)))
                .unwrap();
            greet(listener);
        }
        Lab {
            world,
            _server: server,
        }
    }

    /// `ctr run --with-ns` joins the container to the world's namespace.
    fn with_ns(&self) -> String {
        format!("network:{}", ns_path(&self.world))
    }
}

/// The probe a container runs: `nc` to each `ADDRESS PORT`, printing
/// `probe ADDRESS:PORT rc=N s=SECONDS` after what it read.
fn probe_script(targets: &[(String, u16)]) -> String {
    probe_script_with(targets, "")
}

/// The probe, its busybox applets run as `{busybox}APPLET` (`busybox `
/// on the host, where `nc` may be another program or none).
fn probe_script_with(targets: &[(String, u16)], busybox: &str) -> String {
    targets
        .iter()
        .map(|(address, port)| {
            format!(
                "out=$({busybox}time -f 's=%e' {busybox}nc -w 5 {address} {port} </dev/null 2>&1); \
                 rc=$?; echo \"probe {address}:{port} rc=$rc $(echo $out | {busybox}tr '\\n' ' ')\"; "
            )
        })
        .collect()
}

/// The probe run on the host, in the network namespace at `netns`.
fn probe_in(netns: &str, targets: &[(String, u16)]) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={netns}"))
        .args([
            "busybox",
            "sh",
            "-c",
            &probe_script_with(targets, "busybox "),
        ])
        .output()
        .expect("run nsenter busybox");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The probe's line for `address:port`.
#[track_caller]
fn probe_line<'a>(output: &'a str, address: &str, port: u16) -> &'a str {
    output
        .lines()
        .find(|l| l.starts_with(&format!("probe {address}:{port} ")))
        .unwrap_or_else(|| panic!("no probe of {address}:{port} in {output:?}"))
}

#[track_caller]
fn assert_reached(output: &str, address: &str, port: u16) {
    let line = probe_line(output, address, port);
    // A listener on the wildcard greets as 0.0.0.0.
    assert!(
        line.contains("rc=0")
            && (line.contains(&format!("hello from {address}:{port}"))
                || line.contains(&format!("hello from 0.0.0.0:{port}"))),
        "{address}:{port} not reached: {line}"
    );
}

/// Refused at once: `nc` failed with ECONNREFUSED (the table's TCP reset),
/// within [`AT_ONCE`] (`time`'s resolution is 10 ms).
#[track_caller]
fn assert_refused_at_once(output: &str, address: &str, port: u16) {
    let line = probe_line(output, address, port);
    assert!(
        !line.contains("rc=0") && line.contains("Connection refused"),
        "{address}:{port} not refused: {line}"
    );
    let seconds: f64 = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("s="))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no time in {line}"));
    assert!(
        seconds < AT_ONCE.as_secs_f64(),
        "{address}:{port} took {seconds} s to be refused"
    );
}

/// The egress verdicts the trace's `net` spans give `address:port`.
fn verdicts(spans: &[Value], address: &str, port: u16) -> BTreeSet<String> {
    spans
        .iter()
        .filter(|s| {
            s["kind"] == "net" && s["detail"]["address"] == address && s["detail"]["port"] == port
        })
        .filter_map(|s| s["egress"]["verdict"].as_str().map(str::to_owned))
        .collect()
}

/// The trace of world `id`, once its world span (written when it ends) is
/// there.
fn finished_trace(ctd: &Containerd, id: &str) -> Vec<Value> {
    let mut spans = Vec::new();
    substrate_tests::wait_until(&format!("the world span of {id}"), || {
        spans = ctd.trace(id);
        spans.iter().any(|s| s["kind"] == "world")
    });
    spans
}

const LAB_POLICY: &str = "version: 1\nnetwork:\n  allow: [\"10.79.0.2:8080/tcp\"]\n";

// --- ctr --------------------------------------------------------------------

/// A `ctr run` container in a network namespace of its own (here one the
/// test made, as CNI would) chooses the node policy `lab` by annotation:
/// it reaches the host that policy allows, is refused the other at once,
/// and its trace says which was which. The table is in the container's
/// namespace, never the host's.
#[test]
fn a_ctr_container_is_governed_by_the_node_policy_its_annotation_names() {
    let ctd = Containerd::start();
    ctd.install_policy(Some("lab"), LAB_POLICY);
    let lab = Lab::new();
    let id = unique_id("ctr-egress");
    let script = probe_script(&[
        (Lab::ALLOWED.to_owned(), GREET),
        (Lab::OTHER.to_owned(), GREET),
    ]);
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--with-ns",
        &lab.with_ns(),
        "--annotation",
        "io.substrate.policy=lab",
        IMAGE,
        &id,
        "sh",
        "-c",
        &script,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ctr run: {stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        ctd.log_tail()
    );
    assert_reached(&stdout, Lab::ALLOWED, GREET);
    assert_refused_at_once(&stdout, Lab::OTHER, GREET);

    // The record has the policy in force; ctr mounts no resolv.conf, so
    // the resolver forwards to the host's.
    let record = ctd.record(&id);
    assert_eq!(
        record["egress"]["policy"]["allow"],
        serde_json::json!(["10.79.0.2:8080/tcp"]),
        "{record}"
    );
    assert!(record["egress"]["dns_upstream"].is_null(), "{record}");
    assert!(record["egress"]["bridge"].is_null(), "{record}");

    let spans = finished_trace(&ctd, &id);
    assert_eq!(
        verdicts(&spans, Lab::ALLOWED, GREET),
        BTreeSet::from(["allow".to_owned()]),
        "{spans:#?}"
    );
    assert_eq!(
        verdicts(&spans, Lab::OTHER, GREET),
        BTreeSet::from(["deny".to_owned()]),
        "{spans:#?}"
    );
    assert!(
        spans.iter().any(|s| s["kind"] == "net"
            && s["detail"]["address"] == Lab::OTHER
            && s["refused_by"] == "egress policy"),
        "{spans:#?}"
    );

    // The table went into the container's namespace, not the host's.
    assert!(has_world_table(&ns_path(&lab.world)));
    assert!(!has_world_table(&host_netns()));
    ctd.assert_clean(&id);
}

/// Without any annotation, the node default `policy.yaml` governs a ctr
/// container.
#[test]
fn the_node_default_policy_governs_a_ctr_container_without_annotations() {
    let ctd = Containerd::start();
    ctd.install_policy(None, LAB_POLICY);
    let lab = Lab::new();
    let id = unique_id("ctr-default");
    let script = probe_script(&[
        (Lab::ALLOWED.to_owned(), GREET),
        (Lab::OTHER.to_owned(), GREET),
    ]);
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--with-ns",
        &lab.with_ns(),
        IMAGE,
        &id,
        "sh",
        "-c",
        &script,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ctr run: {stdout}\n{}",
        ctd.log_tail()
    );
    assert_reached(&stdout, Lab::ALLOWED, GREET);
    assert_refused_at_once(&stdout, Lab::OTHER, GREET);
    ctd.assert_clean(&id);
}

/// What a bundle may not ask for refuses the container before anything of
/// its world exists: a widening inline policy (naming the entry), a
/// policy name that is a path or that the node does not have, an inline
/// policy with no node policy under it, a governed container on the
/// host's network. Its namespace gets no table.
#[test]
fn ctr_containers_asking_for_more_than_the_node_allows_are_refused() {
    let ctd = Containerd::start();
    let lab = Lab::new();
    let with_ns = lab.with_ns();
    let refused = |annotations: &[&str], extra: &[&str], expected: &[&str]| {
        let id = unique_id("ctr-refused");
        let mut args = vec!["run", "--rm", "--runtime", RUNTIME];
        args.extend_from_slice(extra);
        for annotation in annotations {
            args.extend_from_slice(&["--annotation", annotation]);
        }
        args.extend_from_slice(&[IMAGE, &id, "echo", "ran"]);
        let out = ctd.ctr(&args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "{annotations:?} ran: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for part in expected {
            assert!(
                stderr.contains(part),
                "{annotations:?}: {part:?} not in {stderr}"
            );
        }
        ctd.assert_clean(&id);
        // No world of it: no record, no trace.
        assert!(!ctd.world(&id).exists(), "{annotations:?}: a world dir");
        let _ = ctd.ctr(&["containers", "rm", &id]);
    };

    // With no node policy at all, an inline one has nothing to narrow.
    refused(
        &["io.substrate.policy.inline=version: 1"],
        &["--with-ns", &with_ns],
        &["there is no node policy for it to narrow"],
    );
    ctd.install_policy(Some("lab"), LAB_POLICY);
    ctd.install_policy(None, "version: 1\n");
    refused(
        &[
            "io.substrate.policy=lab",
            "io.substrate.policy.inline=version: 1\nnetwork:\n  allow: [10.79.0.3:8080/tcp]\n",
        ],
        &["--with-ns", &with_ns],
        &[
            "may only narrow the node policy",
            "lab.yaml",
            "10.79.0.3:8080/tcp",
            "is not within the node policy",
        ],
    );
    refused(
        &["io.substrate.policy.inline=version: 1\nnetwork:\n  default: allow\n"],
        &["--with-ns", &with_ns],
        &["default: allow is not within the node policy"],
    );
    refused(
        &["io.substrate.policy=nope"],
        &["--with-ns", &with_ns],
        &["this node has no such policy", "nope.yaml"],
    );
    for name in ["../lab", "policies/../lab", "..", "lab/../../lab"] {
        refused(
            &[&format!("io.substrate.policy={name}")],
            &["--with-ns", &with_ns],
            &["never a path"],
        );
    }
    // A policy that does not parse: its file, line and column.
    ctd.install_policy(
        Some("broken"),
        "version: 1\nnetwork:\n  allow: [10.1.2.3/8]\n",
    );
    refused(
        &["io.substrate.policy=broken"],
        &["--with-ns", &with_ns],
        &["broken.yaml:3:11: network.allow[0]", "host bits are set"],
    );
    // Governed on the host's network: refused, its table would govern the
    // host.
    refused(
        &["io.substrate.policy=lab"],
        &["--net-host"],
        &["its spec gives it no network namespace"],
    );
    assert!(!has_world_table(&ns_path(&lab.world)));
    assert!(!has_world_table(&host_netns()));
}

// --- substrate-runtime ------------------------------------------------------

/// `substrate-runtime create` reads the same rule; a refusal leaves no
/// state dir, cgroup, mount or record.
#[test]
fn substrate_runtime_create_refuses_what_the_node_does_not_allow_and_leaves_nothing() {
    let runtime = Runtime::new();
    let config = runtime.config_dir();
    fs::create_dir_all(config.join("policies")).unwrap();
    fs::write(config.join("policies/lab.yaml"), LAB_POLICY).unwrap();
    for (annotations, expected) in [
        (
            serde_json::json!({
                "io.substrate.policy": "lab",
                "io.substrate.policy.inline": "version: 1\nnetwork:\n  allow: [\"*:443/tcp\"]\n",
            }),
            "allow entry \"*:443/tcp\" is not within the node policy",
        ),
        (
            serde_json::json!({"io.substrate.policy": "../policies/lab"}),
            "never a path",
        ),
        (
            serde_json::json!({"io.substrate.policy": "missing"}),
            "this node has no such policy",
        ),
    ] {
        let id = unique_id("rt-refused");
        let mut bundle = Bundle::new(&id, &["true"]);
        bundle.edit(|c| c["annotations"] = annotations.clone());
        let error = runtime.fails(&["create", "--bundle", bundle.path_str(), &id]);
        assert!(
            error.contains("egress policy") && error.contains(expected),
            "{annotations}: {error}"
        );
        assert_no_leftovers(runtime.root(), &id);
        assert!(!runtime.world_dir(&id).exists(), "{annotations}: a record");
    }

    // A policy that only narrows: created, its table in the world's own
    // namespace, its record naming the policy in force.
    let id = unique_id("rt-narrowed");
    let mut bundle = Bundle::new(&id, &["sleep", "30"]);
    bundle.edit(|c| {
        c["annotations"] = serde_json::json!({
            "io.substrate.policy": "lab",
            "io.substrate.policy.inline": "version: 1\nnetwork:\n  allow: [10.79.0.2:8080/tcp]\n  egress_bytes: 1m\n",
        });
    });
    runtime.ok(&["create", "--bundle", bundle.path_str(), &id]);
    let pid = runtime.pid(&id);
    assert!(has_world_table(&format!("/proc/{pid}/ns/net")));
    assert!(!has_world_table(&host_netns()));
    let record = runtime.record(&id);
    assert_eq!(
        record["egress"]["policy"]["egress_bytes"],
        1 << 20,
        "{record}"
    );
    // An exec cannot bring in what the world could not hold: CAP_NET_ADMIN
    // asked for, or every capability (a process without a list).
    let error = runtime.fails(&["exec", "--cap", "CAP_NET_ADMIN", &id, "true"]);
    assert!(error.contains("cannot hold CAP_NET_ADMIN"), "{error}");
    let process = bundle.path().join("exec-process.json");
    fs::write(
        &process,
        r#"{"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}}"#,
    )
    .unwrap();
    let error = runtime.fails(&["exec", "--process", process.to_str().unwrap(), &id]);
    assert!(error.contains("cannot hold CAP_NET_ADMIN"), "{error}");
    runtime.ok(&["start", &id]);
    runtime.ok(&["exec", &id, "true"]);
    runtime.ok(&["delete", "--force", &id]);
    assert_no_leftovers(runtime.root(), &id);
}

// --- CRI --------------------------------------------------------------------

/// A pod on the CNI bridge with `annotations`, its DNS server `dns`.
fn pod_config(
    name: &str,
    logs: &Path,
    annotations: &[(&str, &str)],
    dns: Ipv4Addr,
) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: name.into(),
        log_directory: logs.to_string_lossy().into_owned(),
        dns_config: Some(DnsConfig {
            servers: vec![dns.to_string()],
            ..Default::default()
        }),
        annotations: annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Pod as i32,
                    pid: NamespaceMode::Container as i32,
                    ipc: NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The network namespaces containerd's CNI made (`/var/run/netns/cni-*`).
fn cni_netns() -> BTreeSet<PathBuf> {
    fs::read_dir("/var/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("cni-"))
        })
        .collect()
}

/// The worlds of this containerd (their records' dirs).
fn worlds(ctd: &Containerd) -> BTreeSet<String> {
    fs::read_dir(ctd.path("worlds/worlds"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// A containerd with the CRI plugin whose node has the policy `pods` (the
/// CNI subnet, less SSH on the gateway), and two listeners of the host's,
/// reachable from pods at the gateway.
struct PodLab {
    ctd: Containerd,
    gateway: Ipv4Addr,
    allowed_port: u16,
    other_port: u16,
    /// Sections the pods' inline policy adds to its `network`.
    inline_extra: String,
    /// Last, so it is let go after containerd has stopped.
    _turn: CniTurn,
}

/// The host's `/var/run/netns` is shared by every CRI test of this binary,
/// which run at once: a test that attributes the namespaces that appeared
/// while it ran to its own pods has them to itself.
static CNI_NAMESPACES: RwLock<()> = RwLock::new(());

enum CniTurn {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

impl PodLab {
    fn new() -> PodLab {
        // A test that failed holding its turn poisons the lock, not the
        // namespaces.
        let turn = CniTurn::Shared(CNI_NAMESPACES.read().unwrap_or_else(|e| e.into_inner()));
        PodLab::with_turn(turn)
    }

    /// A lab no other CRI test runs beside: every CNI namespace that
    /// appears while it lives is one of its pods'.
    fn alone() -> PodLab {
        let turn = CniTurn::Alone(CNI_NAMESPACES.write().unwrap_or_else(|e| e.into_inner()));
        PodLab::with_turn(turn)
    }

    fn with_turn(turn: CniTurn) -> PodLab {
        let ctd = Containerd::start_with_cri();
        let gateway = ctd.cni_gateway();
        let subnet = format!("{}/24", Ipv4Addr::from(u32::from(gateway) & !0xff));
        let allowed = TcpListener::bind("0.0.0.0:0").unwrap();
        let other = TcpListener::bind("0.0.0.0:0").unwrap();
        let (allowed_port, other_port) = (
            allowed.local_addr().unwrap().port(),
            other.local_addr().unwrap().port(),
        );
        greet(allowed);
        greet(other);
        ctd.install_policy(
            Some("pods"),
            &format!(
                "version: 1\nnetwork:\n  allow: [\"{subnet}\"]\n  deny: [\"{gateway}:22/tcp\"]\n"
            ),
        );
        PodLab {
            ctd,
            gateway,
            allowed_port,
            other_port,
            inline_extra: String::new(),
            _turn: turn,
        }
    }

    /// The node policy `pods` with `node_extra` beside its network, and the
    /// pods' inline policy with `inline_extra` beside theirs.
    fn with_sections(node_extra: &str, inline_extra: &str) -> PodLab {
        let mut lab = PodLab::new();
        let subnet = format!("{}/24", Ipv4Addr::from(u32::from(lab.gateway) & !0xff));
        lab.ctd.install_policy(
            Some("pods"),
            &format!(
                "version: 1\nnetwork:\n  allow: [\"{subnet}\"]\n  deny: [\"{}:22/tcp\"]\n{node_extra}",
                lab.gateway
            ),
        );
        lab.inline_extra = inline_extra.to_owned();
        lab
    }

    /// The pod's annotations: the node policy `pods`, narrowed to the
    /// allowed port of the gateway.
    fn inline(&self) -> String {
        format!(
            "version: 1\nnetwork:\n  allow: [\"{}:{}/tcp\"]\n{}",
            self.gateway, self.allowed_port, self.inline_extra
        )
    }

    fn targets(&self) -> Vec<(String, u16)> {
        vec![
            (self.gateway.to_string(), self.allowed_port),
            (self.gateway.to_string(), self.other_port),
        ]
    }

    #[track_caller]
    fn assert_governed(&self, output: &str) {
        let gw = self.gateway.to_string();
        assert_reached(output, &gw, self.allowed_port);
        assert_refused_at_once(output, &gw, self.other_port);
    }

    /// Runs a governed pod (its sandbox only): its id, config and network
    /// namespace.
    async fn run_pod(
        &self,
        cri: &mut RuntimeServiceClient<Channel>,
    ) -> (String, PodSandboxConfig, String) {
        let ctd = &self.ctd;
        let name = unique_id("pod-governed");
        let logs = ctd.path(&format!("logs-{name}"));
        fs::create_dir_all(&logs).unwrap();
        let inline = self.inline();
        let config = pod_config(
            &name,
            &logs,
            &[
                ("io.substrate.policy", "pods"),
                ("io.substrate.policy.inline", &inline),
            ],
            self.gateway,
        );
        let sandbox = cri
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: HANDLER.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", ctd.log_tail()))
            .into_inner()
            .pod_sandbox_id;
        let status = cri
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: sandbox.clone(),
                verbose: true,
            })
            .await
            .expect("PodSandboxStatus")
            .into_inner();
        let info: Value =
            serde_json::from_str(status.info.get("info").map_or("{}", String::as_str)).unwrap();
        let netns = info["runtimeSpec"]["linux"]["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|ns| ns["type"] == "network")
            .and_then(|ns| ns["path"].as_str())
            .map(str::to_owned)
            .expect("the pod's network namespace");
        (sandbox, config, netns)
    }

    /// The world `id` of a governed pod: its record has the policy in
    /// force (the inline's allow entry, the node's deny entry), and its
    /// resolver forwards to the pod's DNS server (CRI's resolv.conf).
    #[track_caller]
    fn assert_governed_record(&self, id: &str) {
        let record = self.ctd.record(id);
        let gw = self.gateway;
        assert_eq!(
            record["egress"]["policy"]["allow"],
            serde_json::json!([format!("{gw}:{}/tcp", self.allowed_port)]),
            "{id}: {record}"
        );
        assert_eq!(
            record["egress"]["policy"]["deny"],
            serde_json::json!([format!("{gw}:22/tcp")]),
            "{id}: {record}"
        );
        assert_eq!(
            record["egress"]["dns_upstream"],
            format!("{gw}:53"),
            "{record}"
        );
        assert!(record["egress"]["bridge"].is_null(), "{record}");
    }

    /// Creates and starts a container `sleep 300` in the pod `sandbox`:
    /// its id.
    async fn start_sleeper(
        &self,
        cri: &mut RuntimeServiceClient<Channel>,
        sandbox: &str,
        config: PodSandboxConfig,
    ) -> String {
        let ctd = &self.ctd;
        let container = cri
            .create_container(CreateContainerRequest {
                pod_sandbox_id: sandbox.to_owned(),
                config: Some(ContainerConfig {
                    metadata: Some(ContainerMetadata {
                        name: "job".into(),
                        attempt: 0,
                    }),
                    image: Some(ImageSpec {
                        image: IMAGE.into(),
                        ..Default::default()
                    }),
                    command: vec!["sleep".into(), "300".into()],
                    log_path: "job.log".into(),
                    linux: Some(LinuxContainerConfig::default()),
                    ..Default::default()
                }),
                sandbox_config: Some(config),
            })
            .await
            .unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", ctd.log_tail()))
            .into_inner()
            .container_id;
        cri.start_container(StartContainerRequest {
            container_id: container.clone(),
        })
        .await
        .unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", ctd.log_tail()));
        container
    }

    async fn remove_pod(&self, cri: &mut RuntimeServiceClient<Channel>, sandbox: &str) {
        cri.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: sandbox.to_owned(),
        })
        .await
        .expect("StopPodSandbox");
        cri.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: sandbox.to_owned(),
        })
        .await
        .expect("RemovePodSandbox");
        self.ctd.assert_clean(sandbox);
    }
}

/// A pod whose annotations choose the node policy `pods` (the CNI subnet)
/// and narrow it to one port of the gateway: its network namespace (CNI's)
/// gets the table, not the host's; in it, that port is reached and
/// another port of the same host refused at once; the pod's record has
/// the policy in force, its resolver the pod's DNS server.
#[test]
fn a_cri_pods_network_is_governed_by_the_node_policy_its_annotations_choose_and_narrow() {
    let lab = PodLab::new();
    block_on(async {
        let mut cri = client(&lab.ctd.socket()).await;
        let (sandbox, _, netns) = lab.run_pod(&mut cri).await;
        lab.assert_governed_record(&sandbox);
        assert!(
            has_world_table(&netns),
            "no table in the pod's namespace {netns}"
        );
        assert!(!has_world_table(&host_netns()));
        // Whatever runs in the pod's namespace is governed by its table.
        lab.assert_governed(&probe_in(&netns, &lab.targets()));
        lab.remove_pod(&mut cri, &sandbox).await;
    });
}

/// The same pod's container reaches what the pod's policy allows, and
/// nothing else.
#[test]
fn a_governed_pods_container_reaches_only_what_the_pods_policy_allows() {
    let lab = PodLab::new();
    let ctd = &lab.ctd;
    block_on(async {
        let mut cri = client(&ctd.socket()).await;
        let (sandbox, config, _) = lab.run_pod(&mut cri).await;
        let container = lab.start_sleeper(&mut cri, &sandbox, config).await;
        let exec = cri
            .exec_sync(ExecSyncRequest {
                container_id: container.clone(),
                cmd: vec!["sh".into(), "-c".into(), probe_script(&lab.targets())],
                timeout: 30,
            })
            .await
            .expect("ExecSync")
            .into_inner();
        lab.assert_governed(&String::from_utf8_lossy(&exec.stdout));
        lab.assert_governed_record(&container);

        cri.stop_container(StopContainerRequest {
            container_id: container.clone(),
            timeout: 2,
        })
        .await
        .expect("StopContainer");
        cri.remove_container(RemoveContainerRequest {
            container_id: container.clone(),
        })
        .await
        .expect("RemoveContainer");
        ctd.assert_clean(&container);
        lab.remove_pod(&mut cri, &sandbox).await;
    });
}

/// A pod whose inline policy widens the node's, or that names a policy the
/// node does not have or a path, does not start, its error naming what is
/// wrong, and nothing of it is left: no world, no record, no table in the
/// namespace CNI made for it.
#[test]
fn cri_pods_asking_for_more_than_the_node_allows_do_not_start() {
    let lab = PodLab::alone();
    let ctd = &lab.ctd;
    block_on(async {
        let mut cri = client(&ctd.socket()).await;
        for (annotations, expected) in [
            (
                vec![
                    ("io.substrate.policy", "pods"),
                    (
                        "io.substrate.policy.inline",
                        "version: 1\nnetwork:\n  allow: [\"10.9.9.9:80/tcp\"]\n",
                    ),
                ],
                &["10.9.9.9:80/tcp", "is not within the node policy"][..],
            ),
            (
                vec![("io.substrate.policy", "../etc-substrate/policies/pods")],
                &["never a path"][..],
            ),
            (
                vec![("io.substrate.policy", "missing")],
                &["this node has no such policy", "missing.yaml"][..],
            ),
        ] {
            let name = unique_id("pod-refused");
            let logs = ctd.path(&format!("logs-{name}"));
            fs::create_dir_all(&logs).unwrap();
            let netns_before = cni_netns();
            let refused = cri
                .run_pod_sandbox(RunPodSandboxRequest {
                    config: Some(pod_config(&name, &logs, &annotations, lab.gateway)),
                    runtime_handler: HANDLER.into(),
                })
                .await
                .expect_err("a pod asking for more than the node allows must not start");
            for part in expected {
                assert!(
                    refused.message().contains(part),
                    "{annotations:?}: {part:?} not in {refused:?}"
                );
            }
            let pods = cri
                .list_pod_sandbox(ListPodSandboxRequest::default())
                .await
                .expect("ListPodSandbox")
                .into_inner()
                .items;
            assert!(
                pods.iter()
                    .all(|p| p.state != PodSandboxState::SandboxReady as i32),
                "{pods:?}"
            );
            // No world of it: no runtime state, no record; no namespace
            // CNI made (and containerd has not removed yet) has a table.
            let empty = |dir: PathBuf| fs::read_dir(&dir).map_or(true, |mut d| d.next().is_none());
            assert!(empty(ctd.path("substrate/containerd/k8s.io")));
            assert!(worlds(ctd).is_empty(), "{:?}", worlds(ctd));
            for netns in cni_netns().difference(&netns_before) {
                assert!(
                    !has_world_table(&netns.to_string_lossy()),
                    "{} has a world's table",
                    netns.display()
                );
            }
        }
    });
}

#[test]
fn a_ctr_containers_execs_are_gated_by_the_node_policys_exec_section() {
    let ctd = Containerd::start();
    ctd.install_policy(
        Some("nodrop"),
        "version: 1\nexec:\n  allow_written: false\n",
    );
    let lab = Lab::new();
    let id = unique_id("ctr-commands");
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--runtime",
        RUNTIME,
        "--with-ns",
        &lab.with_ns(),
        "--annotation",
        "io.substrate.policy=nodrop",
        IMAGE,
        &id,
        "sh",
        "-c",
        "cp /bin/busybox /tmp/dropped; /tmp/dropped true; echo \"dropped $?\"; true; echo \"image $?\"",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "ctr run: {stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        ctd.log_tail()
    );
    // A binary the container wrote is refused; the image's own run.
    assert!(stdout.contains("dropped 126"), "{stdout}");
    assert!(stdout.contains("image 0"), "{stdout}");
    let spans = finished_trace(&ctd, &id);
    assert!(
        spans.iter().any(|s| s["kind"] == "policy"
            && s["detail"]["subject"] == "/tmp/dropped"
            && s["detail"]["rule"] == "exec.allow_written"
            && s["enforcement"]["effective"] == "deny"),
        "{spans:#?}"
    );
}

/// The same policy through a CRI pod: the node policy's `commands` rule on
/// the arguments and its `deny_read`, and a rule the pod's inline policy
/// adds, hold for the pod's container (its monitor's gate), each refusal a
/// `policy` span in the container's trace.
#[test]
fn a_cri_pods_container_is_gated_by_the_node_policys_commands_and_files() {
    let lab = PodLab::with_sections(
        "commands:\n  rules:\n    - match: { argv: [busybox, id] }\n      action: deny\n\
         filesystem:\n  deny_read: [/etc/group]\n",
        "commands:\n  rules:\n    - match: { argv: [busybox, whoami] }\n      action: deny\n",
    );
    let ctd = &lab.ctd;
    block_on(async {
        let mut cri = client(&ctd.socket()).await;
        let (sandbox, config, _) = lab.run_pod(&mut cri).await;
        let container = lab.start_sleeper(&mut cri, &sandbox, config).await;
        let exec = cri
            .exec_sync(ExecSyncRequest {
                container_id: container.clone(),
                cmd: vec![
                    "sh".into(),
                    "-c".into(),
                    "/bin/busybox id >/dev/null 2>&1; echo \"id $?\"; \
                     /bin/busybox whoami >/dev/null 2>&1; echo \"whoami $?\"; \
                     cat /etc/group >/dev/null 2>&1; echo \"group $?\"; \
                     cat /etc/passwd >/dev/null; echo \"passwd $?\""
                        .into(),
                ],
                timeout: 30,
            })
            .await
            .expect("ExecSync")
            .into_inner();
        let stdout = String::from_utf8_lossy(&exec.stdout).into_owned();
        assert_eq!(
            stdout,
            "id 126\nwhoami 126\ngroup 1\npasswd 0\n",
            "{}",
            String::from_utf8_lossy(&exec.stderr)
        );
        cri.stop_container(StopContainerRequest {
            container_id: container.clone(),
            timeout: 2,
        })
        .await
        .expect("StopContainer");
        let spans = finished_trace(ctd, &container);
        let refused = |on: &str, rule: &str| {
            spans.iter().any(|s| {
                s["kind"] == "policy"
                    && s["enforcement"]["on"] == on
                    && s["detail"]["rule"] == rule
                    && s["enforcement"]["effective"] == "deny"
            })
        };
        assert!(refused("exec", "commands.rules[0]"), "{spans:#?}");
        assert!(
            refused("exec", "commands.narrowed_by[0].rules[0]"),
            "{spans:#?}"
        );
        assert!(refused("open", "filesystem.deny_read[0]"), "{spans:#?}");
        cri.remove_container(RemoveContainerRequest {
            container_id: container.clone(),
        })
        .await
        .expect("RemoveContainer");
        ctd.assert_clean(&container);
        lab.remove_pod(&mut cri, &sandbox).await;
    });
}
