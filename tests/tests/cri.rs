//! Kubernetes' path, without a kubelet: a CRI client (what a kubelet is to
//! containerd) drives containerd 1.6's CRI plugin with the runtime handler
//! `substrate`, as a pod with `runtimeClassName: substrate` would.

use std::fs;
use std::path::Path;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use substrate_tests::cgroup::{Cgroup, Setting};
use substrate_tests::containerd::{Containerd, IMAGE};
use substrate_tests::unique_id;
use tonic::transport::{Channel, Endpoint, Uri};

const HANDLER: &str = "substrate";

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

async fn client(socket: &Path) -> RuntimeServiceClient<Channel> {
    let socket = socket.to_owned();
    let channel = Endpoint::try_from("http://[::]:50051")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .expect("connect to containerd's CRI");
    RuntimeServiceClient::new(channel)
}

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
