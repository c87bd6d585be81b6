//! Kubernetes' path, without a kubelet: a CRI client (what a kubelet is to
//! containerd) drives containerd 1.6's CRI plugin with the runtime handler
//! `substrate`, as a pod with `runtimeClassName: substrate` would.

mod cri_client;

use cri_client::{block_on, client, HANDLER};
use std::fs;
use std::path::Path;
use std::time::Duration;

use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use substrate_tests::cgroup::{Cgroup, Setting};
use substrate_tests::containerd::{Containerd, IMAGE};
use substrate_tests::unique_id;
use tonic::transport::Channel;

fn sandbox_config(name: &str, logs: &Path, host_network: bool) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "default".into(),
            attempt: 0,
        }),
        // A kubelet names no hostname for a host-network pod: it has the
        // node's UTS namespace.
        hostname: if host_network {
            String::new()
        } else {
            name.into()
        },
        log_directory: logs.to_string_lossy().into_owned(),
        annotations: [("io.substrate.example".to_owned(), "from the pod".to_owned())].into(),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: if host_network {
                        NamespaceMode::Node
                    } else {
                        NamespaceMode::Pod
                    } as i32,
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

/// A pod's whole life, as a kubelet drives it: sandbox, container, exec,
/// status, logs, stop, remove. Returns the pod IP (empty on the host
/// network).
async fn pod_lifecycle(ctd: &Containerd, host_network: bool) -> String {
    let mut cri = client(&ctd.socket()).await;
    let name = unique_id(if host_network {
        "pod-host"
    } else {
        "pod-bridge"
    });
    let logs = ctd.path(&format!("logs-{name}"));
    fs::create_dir_all(&logs).unwrap();
    let config = sandbox_config(&name, &logs, host_network);
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
            verbose: false,
        })
        .await
        .expect("PodSandboxStatus")
        .into_inner()
        .status
        .unwrap();
    assert_eq!(status.state, PodSandboxState::SandboxReady as i32);
    assert_eq!(status.runtime_handler, HANDLER);
    assert!(
        shim_socket(ctd, &sandbox).exists(),
        "the pod's shim serves at {}",
        shim_socket(ctd, &sandbox).display()
    );
    let ip = status.network.map(|n| n.ip).unwrap_or_default();

    let container = cri
        .create_container(CreateContainerRequest {
            pod_sandbox_id: sandbox.clone(),
            config: Some(ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: "job".into(),
                    attempt: 0,
                }),
                image: Some(ImageSpec {
                    image: IMAGE.into(),
                    ..Default::default()
                }),
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo hello from a pod; exec sleep 300".into(),
                ],
                log_path: "job.log".into(),
                linux: Some(LinuxContainerConfig::default()),
                ..Default::default()
            }),
            sandbox_config: Some(config),
        })
        .await
        .expect("CreateContainer")
        .into_inner()
        .container_id;
    cri.start_container(StartContainerRequest {
        container_id: container.clone(),
    })
    .await
    .expect("StartContainer");

    let exec = cri
        .exec_sync(ExecSyncRequest {
            container_id: container.clone(),
            cmd: vec!["sh".into(), "-c".into(), "hostname; exit 3".into()],
            timeout: 10,
        })
        .await
        .expect("ExecSync")
        .into_inner();
    assert_eq!(exec.exit_code, 3);
    let expected = if host_network {
        String::from_utf8(fs::read("/etc/hostname").unwrap()).unwrap()
    } else {
        name.clone()
    };
    assert_eq!(
        String::from_utf8_lossy(&exec.stdout).trim(),
        expected.trim()
    );

    let status = cri
        .container_status(ContainerStatusRequest {
            container_id: container.clone(),
            verbose: false,
        })
        .await
        .expect("ContainerStatus")
        .into_inner()
        .status
        .unwrap();
    assert_eq!(status.state, ContainerState::ContainerRunning as i32);

    // UpdateContainerResources reaches the world's cgroup.
    let limit: i64 = 64 << 20;
    cri.update_container_resources(UpdateContainerResourcesRequest {
        container_id: container.clone(),
        linux: Some(LinuxContainerResources {
            memory_limit_in_bytes: limit,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("UpdateContainerResources");
    Cgroup::at(format!("k8s.io/{container}")).assert_setting(Setting::MemoryLimit, limit);

    // CRI's log format: `<time> stdout F <line>`.
    let log = logs.join("job.log");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("hello from a pod")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no log line in {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fs::read_to_string(&log)
        .unwrap()
        .contains(" stdout F hello from a pod"));

    // The pod (sandbox and container) is served by one shim.
    assert_eq!(ctd.shim_pids().len(), 1, "one shim per pod");
    // Both are worlds, recorded.
    for id in [&sandbox, &container] {
        assert!(ctd.world(id).join("world.json").exists(), "world {id}");
    }

    cri.stop_container(StopContainerRequest {
        container_id: container.clone(),
        timeout: 2,
    })
    .await
    .expect("StopContainer");
    let status = cri
        .container_status(ContainerStatusRequest {
            container_id: container.clone(),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(status.state, ContainerState::ContainerExited as i32);
    cri.remove_container(RemoveContainerRequest {
        container_id: container.clone(),
    })
    .await
    .expect("RemoveContainer");
    cri.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    })
    .await
    .expect("StopPodSandbox");
    cri.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: sandbox.clone(),
    })
    .await
    .expect("RemovePodSandbox");
    // The container's world ended with the signal StopContainer sent.
    let record = ctd.record(&container);
    assert!(record["exit"].is_object(), "{record}");
    ctd.assert_clean(&container);
    ctd.assert_clean(&sandbox);
    // The pod's shim is gone, and so is its socket under containerd's
    // `/run/containerd/s/` (named by a hash of containerd's address, the
    // namespace and the pod); no `start` of ours is left behind.
    substrate_tests::wait_until("the pod's shim to exit", || ctd.shim_pids().is_empty());
    let socket = shim_socket(ctd, &sandbox);
    assert!(!socket.exists(), "stale shim socket {}", socket.display());
    let starts: Vec<i32> = substrate_tests::processes_mentioning("containerd-shim-substrate-v1")
        .into_iter()
        .filter(|pid| {
            fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                c.split(|&b| b == 0).any(|arg| arg == b"start")
                    && String::from_utf8_lossy(&c).contains(&ctd.socket().display().to_string())
            })
        })
        .collect();
    assert!(starts.is_empty(), "shim `start` processes left: {starts:?}");
    ip
}

/// Where containerd-shim puts a grouped shim's socket: `/run/containerd/s/`
/// and the sha256 of `<containerd address>/<namespace>/<group>`.
fn shim_socket(ctd: &Containerd, sandbox: &str) -> std::path::PathBuf {
    use sha2::{Digest, Sha256};
    let key = ctd.socket().join("k8s.io").join(sandbox);
    let hash = Sha256::digest(key.display().to_string().as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    Path::new("/run/containerd/s").join(hex)
}

#[test]
fn a_pod_on_the_host_network_runs_through_the_substrate_handler() {
    let ctd = Containerd::start_with_cri();
    let ip = block_on(pod_lifecycle(&ctd, true));
    assert!(ip.is_empty(), "host network: {ip}");
}

#[test]
fn a_pod_on_a_cni_bridge_network_gets_its_address() {
    let ctd = Containerd::start_with_cri();
    let ip = block_on(pod_lifecycle(&ctd, false));
    assert!(ip.starts_with("10.231."), "pod IP {ip:?}");
}

/// A pod cannot make the host's `/` its containers' lower layer: the
/// `io.substrate.world.lower` annotation (forwarded by the handler's
/// `pod_annotations`) is refused, the sandbox does not start, and nothing
/// of it is left.
#[test]
fn a_pod_annotation_cannot_choose_the_lower_layer() {
    let ctd = Containerd::start_with_cri();
    block_on(async {
        let mut cri = client(&ctd.socket()).await;
        let name = unique_id("pod-lower");
        let logs = ctd.path(&format!("logs-{name}"));
        fs::create_dir_all(&logs).unwrap();
        let mut config = sandbox_config(&name, &logs, true);
        config
            .annotations
            .insert("io.substrate.world.lower".into(), "/".into());
        let refused = cri
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: HANDLER.into(),
            })
            .await
            .expect_err("a pod that names the lower layer must not start");
        assert!(
            refused.message().contains("io.substrate.world.lower")
                && refused.message().contains("cannot choose"),
            "{refused:?}"
        );
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
    });
    // No world of it anywhere: no runtime state, no record.
    let empty =
        |dir: std::path::PathBuf| fs::read_dir(&dir).map_or(true, |mut d| d.next().is_none());
    assert!(empty(ctd.path("substrate/containerd/k8s.io")));
    assert!(empty(ctd.path("worlds/worlds")));
}

// --- Pod churn (issue 11, item 4) -----------------------------------------
//
// A kubelet restarting a pod's containers over and over: create, start,
// read the exit code, stop, remove, in one pod, then in several pods at
// once. Containers joining the pod's pid namespace (`shareProcessNamespace`,
// CRI `NamespaceOption.pid = POD`) found libcontainer's cgroup v1 mount
// reading the host's /proc/<its pid in the pod>. Every start must succeed
// and every exit code be the container's. The `runc` handler, in the same
// containerd, runs the same churn: the anchor.
//
// `CHURN_CYCLES` cycles per pod (default 20, to keep `make test` quick); the
// issue's bar is at least 200:
//   CHURN_CYCLES=200 cargo test -p substrate-tests --test cri churn -- --test-threads=1

/// How long one CRI call may take before the test fails saying which.
const RPC_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a container may take to exit (by itself, or once stopped).
const EXIT_TIMEOUT: Duration = Duration::from_secs(30);

fn churn_cycles() -> usize {
    std::env::var("CHURN_CYCLES")
        .ok()
        .map(|n| {
            n.parse()
                .unwrap_or_else(|_| panic!("CHURN_CYCLES={n}: not a number"))
        })
        .unwrap_or(20)
}

/// A CRI call with a deadline: its answer, or what went wrong.
async fn rpc<T>(
    what: impl std::fmt::Display,
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    match tokio::time::timeout(RPC_TIMEOUT, call).await {
        Err(_) => Err(format!("{what}: no answer in {RPC_TIMEOUT:?} (hung)")),
        Ok(Err(status)) => Err(format!("{what}: {:?}: {}", status.code(), status.message())),
        Ok(Ok(answer)) => Ok(answer.into_inner()),
    }
}

/// What one churning pod did: its sandbox, its containers, the failed
/// cycles (each with why), the pod's network namespace.
struct Churned {
    sandbox: String,
    containers: Vec<String>,
    failures: Vec<String>,
    netns: Option<std::path::PathBuf>,
}

/// One cycle: a container in the pod's pid namespace (`own_pid` false) or
/// its own; it either exits by itself with a code of its own, or runs
/// until StopContainer's SIGTERM, which it traps to exit with one. Either
/// way the code says which pid namespace it was in (`$$` is 1 only in its
/// own). Returns the container's id once created, and the cycle's outcome.
async fn churn_cycle(
    cri: &mut RuntimeServiceClient<Channel>,
    sandbox: &str,
    config: &PodSandboxConfig,
    logs: &Path,
    cycle: usize,
    own_pid: bool,
    stopped: bool,
) -> (Option<String>, Result<(), String>) {
    // Exit codes of this cycle: 1..=100 in the pod's pid namespace,
    // 101..=200 in its own, so a code read from another container shows.
    let in_pod = 1 + (cycle % 100) as i32;
    let in_own = 101 + (cycle % 100) as i32;
    let expected = if own_pid { in_own } else { in_pod };
    let code = format!("code() {{ if [ $$ -eq 1 ]; then exit {in_own}; else exit {in_pod}; fi; }}");
    let script = if stopped {
        format!("{code}; trap 'kill $!; code' TERM; sleep 300 & echo ready; wait")
    } else {
        format!("{code}; code")
    };
    let log_name = format!("c{cycle}.log");
    let pid = if own_pid {
        NamespaceMode::Container
    } else {
        NamespaceMode::Pod
    };
    let what = |step: &str| format!("cycle {cycle} ({pid:?} pid namespace, {step})");
    let created = rpc(
        what("CreateContainer"),
        cri.create_container(CreateContainerRequest {
            pod_sandbox_id: sandbox.into(),
            config: Some(ContainerConfig {
                metadata: Some(ContainerMetadata {
                    name: format!("churn-{cycle}"),
                    attempt: 0,
                }),
                image: Some(ImageSpec {
                    image: IMAGE.into(),
                    ..Default::default()
                }),
                command: vec!["sh".into(), "-c".into(), script],
                log_path: log_name.clone(),
                linux: Some(LinuxContainerConfig {
                    security_context: Some(LinuxContainerSecurityContext {
                        namespace_options: Some(NamespaceOption {
                            network: NamespaceMode::Pod as i32,
                            pid: pid as i32,
                            ipc: NamespaceMode::Pod as i32,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            sandbox_config: Some(config.clone()),
        }),
    )
    .await;
    let container = match created {
        Ok(c) => c.container_id,
        Err(e) => return (None, Err(e)),
    };
    let outcome = async {
        rpc(
            what("StartContainer"),
            cri.start_container(StartContainerRequest {
                container_id: container.clone(),
            }),
        )
        .await?;
        if stopped {
            // Stop it only once its trap is set: it says so in its log.
            let log = logs.join(&log_name);
            let deadline = tokio::time::Instant::now() + EXIT_TIMEOUT;
            while !fs::read_to_string(&log)
                .unwrap_or_default()
                .contains(" stdout F ready")
            {
                if tokio::time::Instant::now() > deadline {
                    return Err(format!(
                        "{}: no `ready` in {} within {EXIT_TIMEOUT:?}",
                        what("running"),
                        log.display()
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            rpc(
                what("StopContainer"),
                cri.stop_container(StopContainerRequest {
                    container_id: container.clone(),
                    timeout: 20,
                }),
            )
            .await?;
        }
        // Its exit, as ContainerStatus reports it.
        let deadline = tokio::time::Instant::now() + EXIT_TIMEOUT;
        let status = loop {
            let status = rpc(
                what("ContainerStatus"),
                cri.container_status(ContainerStatusRequest {
                    container_id: container.clone(),
                    verbose: false,
                }),
            )
            .await?
            .status
            .ok_or_else(|| what("ContainerStatus: no status"))?;
            if status.state == ContainerState::ContainerExited as i32 {
                break status;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!(
                    "{}: still {:?} after {EXIT_TIMEOUT:?}",
                    what("exit"),
                    ContainerState::try_from(status.state)
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if status.exit_code != expected {
            return Err(format!(
                "{}: exit code {} ({}), expected {expected}",
                what("exit"),
                status.exit_code,
                status.reason
            ));
        }
        Ok(())
    }
    .await;
    // Removed whatever happened, as a kubelet would.
    let removed = rpc(
        what("RemoveContainer"),
        cri.remove_container(RemoveContainerRequest {
            container_id: container.clone(),
        }),
    )
    .await
    .map(|_| ());
    (Some(container), outcome.and(removed))
}

/// A pod of `handler`, `cycles` containers in it one after the other
/// (mostly in the pod's pid namespace, every third pair in their own; half
/// exiting by themselves, half stopped), then the pod stopped and removed.
async fn churn_pod(ctd: &Containerd, handler: &str, label: &str, cycles: usize) -> Churned {
    let mut cri = client(&ctd.socket()).await;
    let name = unique_id(&format!("churn-{handler}-{label}"));
    let logs = ctd.path(&format!("logs-{name}"));
    fs::create_dir_all(&logs).unwrap();
    let mut config = sandbox_config(&name, &logs, false);
    // The pod shares one pid namespace (`shareProcessNamespace: true`).
    config
        .linux
        .as_mut()
        .and_then(|l| l.security_context.as_mut())
        .and_then(|s| s.namespace_options.as_mut())
        .unwrap()
        .pid = NamespaceMode::Pod as i32;
    let sandbox = rpc(
        format!("{name}: RunPodSandbox"),
        cri.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        }),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", ctd.log_tail()))
    .pod_sandbox_id;
    // Its network namespace, to see it gone at the end.
    let status = rpc(
        format!("{name}: PodSandboxStatus"),
        cri.pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: sandbox.clone(),
            verbose: true,
        }),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", ctd.log_tail()));
    assert_eq!(
        status.status.as_ref().map(|s| s.runtime_handler.as_str()),
        Some(handler)
    );
    let info: serde_json::Value =
        serde_json::from_str(status.info.get("info").map_or("{}", String::as_str)).unwrap();
    let netns = info["runtimeSpec"]["linux"]["namespaces"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|ns| ns["type"] == "network")
        .and_then(|ns| ns["path"].as_str())
        .map(std::path::PathBuf::from);
    assert!(
        netns.as_ref().is_some_and(|p| p.exists()),
        "{name}: the pod's network namespace {netns:?} (from {info})"
    );

    let mut containers = Vec::new();
    let mut failures = Vec::new();
    for cycle in 0..cycles {
        let own_pid = (cycle / 2) % 3 == 2;
        let stopped = cycle % 2 == 1;
        let (container, outcome) =
            churn_cycle(&mut cri, &sandbox, &config, &logs, cycle, own_pid, stopped).await;
        containers.extend(container);
        if let Err(e) = outcome {
            failures.push(format!("{name}: {e}"));
        }
    }

    for (step, result) in [
        (
            "StopPodSandbox",
            rpc(
                format!("{name}: StopPodSandbox"),
                cri.stop_pod_sandbox(StopPodSandboxRequest {
                    pod_sandbox_id: sandbox.clone(),
                }),
            )
            .await
            .map(|_| ()),
        ),
        (
            "RemovePodSandbox",
            rpc(
                format!("{name}: RemovePodSandbox"),
                cri.remove_pod_sandbox(RemovePodSandboxRequest {
                    pod_sandbox_id: sandbox.clone(),
                }),
            )
            .await
            .map(|_| ()),
        ),
    ] {
        if let Err(e) = result {
            failures.push(format!("{name}: {step}: {e}"));
        }
    }
    Churned {
        sandbox,
        containers,
        failures,
        netns,
    }
}

/// `pods` pods of `handler` churning at once (a thread each), then:
/// no failure, every container and sandbox gone (mounts, cgroups, runtime
/// state), no pod's shim socket or network namespace left.
fn churn(handler: &str, pods: usize) {
    let cycles = churn_cycles();
    assert!(cycles > 0, "CHURN_CYCLES=0 would check nothing");
    let ctd = Containerd::start_with_cri();
    let started = std::time::Instant::now();
    let churned: Vec<Churned> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..pods)
            .map(|pod| {
                let ctd = &ctd;
                scope.spawn(move || block_on(churn_pod(ctd, handler, &format!("p{pod}"), cycles)))
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a churning pod's thread panicked"))
            .collect()
    });
    let elapsed = started.elapsed();
    let failures: Vec<&String> = churned.iter().flat_map(|c| &c.failures).collect();
    eprintln!(
        "churn: handler {handler}, {pods} pod(s) x {cycles} cycles: {} failure(s) in {elapsed:.1?}",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "handler {handler}: {} of {} cycles failed:\n{}\n--- containerd's log:\n{}",
        failures.len(),
        pods * cycles,
        failures
            .iter()
            .take(20)
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        ctd.log_tail()
    );
    for pod in &churned {
        assert_eq!(pod.containers.len(), cycles, "every cycle made a container");
        for id in pod.containers.iter().chain([&pod.sandbox]) {
            ctd.assert_clean(id);
        }
        let socket = shim_socket(&ctd, &pod.sandbox);
        substrate_tests::wait_until(
            &format!("the shim socket {} to go", socket.display()),
            || !socket.exists(),
        );
        let netns = pod.netns.as_ref().unwrap();
        substrate_tests::wait_until(&format!("the netns {} to go", netns.display()), || {
            !netns.exists()
        });
    }
    if handler == HANDLER {
        substrate_tests::wait_until("the pods' shims to exit", || ctd.shim_pids().is_empty());
        // Every container was a world, and its record has its exit.
        for id in churned.iter().flat_map(|c| &c.containers) {
            let record = ctd.record(id);
            assert!(record["exit"].is_object(), "{id}: {record}");
        }
    }
}

#[test]
fn churn_in_one_pod_with_the_substrate_handler() {
    churn(HANDLER, 1);
}

#[test]
fn churn_in_one_pod_with_the_runc_handler() {
    churn("runc", 1);
}

#[test]
fn churn_in_three_pods_at_once_with_the_substrate_handler() {
    churn(HANDLER, 3);
}

#[test]
fn churn_in_three_pods_at_once_with_the_runc_handler() {
    churn("runc", 3);
}
