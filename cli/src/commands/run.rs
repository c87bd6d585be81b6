//! `substrate-cli run`: run a command in a new world, then record it.

use std::fs;
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use substrate_policy::network::Entry;
use substrate_policy::Policy;
use substrate_runtime::foreground::SignalForwarder;
use substrate_runtime::monitor::Monitoring;
use substrate_runtime::{
    AfterExit, CreateOptions, Layering, RunOptions, Runtime, Stdio, WorldEgress, WorldId,
    WorldNetwork,
};

use crate::spec::env::EnvArgs;
use crate::spec::hide::HideArgs;
use crate::spec::init::{Init, Lifeline};
use crate::spec::limits::{Bytes, Cpus, Limit, Pids};
use crate::spec::{Defaults, Launch, Origin, RunNotes, WorldBundle};
use crate::summary;

/// What `run --help` says after the flags: the defaults of a world.
const DEFAULTS_HELP: &str = "\
A world starts from least privilege (README: \"A CLI world's defaults\"):
  hidden     /etc/shadow and gshadow, ssh host keys, credentials in every home
             (.ssh .gnupg .aws .azure .config/gcloud .kube .docker/config.json
             .npmrc .pypirc .netrc .git-credentials .config/gh ...), every home
             (/root, /home/*) but the one holding the working directory,
             Substrate's state dirs and runtime roots, containerd/docker/podman/
             CRI-O/kubelet state and sockets, /run/user. Hidden means empty: a
             read-only empty dir, or a file reading as /dev/null.
  env        only PATH, HOME, TERM, LANG and USER from this environment (when
             set), then each --env-pass NAME (an error if NAME is unset), then
             each --env KEY=VALUE; a later one replaces an earlier one.
  limits     memory: half the RAM, at most 2 GiB (swap included); cpus: all
             but one (at least 1); pids: 1024; disk: 10 GiB written. At a
             limit the world fails inside itself: EAGAIN for a fork past
             pids, an OOM kill past memory, ENOSPC past disk; the record
             says which limit was hit (limits_hit).
  seccomp    Docker's default profile: syscalls outside its allow-list fail
             with EPERM (namespaces, mount, keyctl, bpf, ...).
  network    none: the world's own network namespace, loopback only. Name
             lookups fail (EAI_AGAIN) and connections out get ENETUNREACH;
             the trace marks them [refused: the world has no network].
             With --allow or a --policy that allows something, the world
             joins the bridge (--net bridge) and reaches only what its
             policy allows; names are answered by Substrate's resolver,
             which admits what allowed names resolve to for their TTL.
A --bundle keeps its own config.json: only --hide, --env, the limits it does
not set and the seccomp filter if it has none are added.";

#[derive(Args, Debug)]
#[command(after_help = DEFAULTS_HELP)]
pub struct RunArgs {
    /// An OCI bundle; its rootfs is the world's lower layer.
    #[arg(long, conflicts_with = "rootfs")]
    bundle: Option<PathBuf>,
    /// A root filesystem directory, run with Substrate's default spec.
    /// Without --bundle or --rootfs the world's lower is the host's `/`.
    #[arg(long)]
    rootfs: Option<PathBuf>,
    /// The world's id [default: generated].
    #[arg(long)]
    name: Option<String>,
    /// Keep the world's upper layer (its files) after the run; the record
    /// and the diff are kept either way.
    #[arg(long)]
    keep: bool,
    /// Print the summary as JSON (on stderr, like the human one).
    #[arg(long)]
    json: bool,
    /// Run the world in the background: print its id and return. Its
    /// stdin, stdout and stderr are /dev/null (output the command writes to
    /// files lands in the world's upper layer, in its diff); `substrate-cli
    /// stop` ends it.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Run the command itself as the world's PID 1. By default Substrate's
    /// init is PID 1 (/.substrate-init): it passes signals on to the
    /// command (Ctrl-C stops a plain program at once), reaps orphans, and
    /// ends the world when this `run` ends.
    #[arg(long)]
    no_init: bool,
    #[command(flatten)]
    defaults: Box<DefaultsArgs>,
    /// The command and its arguments (after `--`).
    // Not `allow_hyphen_values`: an unknown flag before the command is a
    // usage error, not the command (after `--` or the command's first word,
    // `trailing_var_arg` takes flags as the command's).
    #[arg(trailing_var_arg = true)]
    command: Vec<String>,
}

// The flags that change a world's defaults, boxed in `RunArgs` (they are
// most of its size). Not a doc comment: clap would make it `run`'s about.
#[derive(Args, Debug)]
#[command(next_help_heading = "Least privilege (see below)")]
struct DefaultsArgs {
    /// Hide PATH (absolute) in the world too: an empty read-only dir, or a
    /// file reading as /dev/null. Repeatable.
    #[arg(long, value_name = "PATH")]
    hide: Vec<PathBuf>,
    /// Show PATH, an entry of the default hide-list (exactly as listed),
    /// in the world after all. Repeatable.
    #[arg(long, value_name = "PATH")]
    expose: Vec<PathBuf>,
    /// Set KEY=VALUE in the world's environment. The world gets only PATH,
    /// HOME, TERM, LANG and USER from this one, then --env-pass, then --env.
    /// Repeatable.
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Pass NAME with its value here into the world (an error if it is
    /// unset). Repeatable.
    #[arg(long = "env-pass", value_name = "NAME")]
    env_pass: Vec<String>,
    /// Memory limit, swap included: bytes, or 512m, 2g ...; `unlimited` lifts
    /// it [default: half the RAM, at most 2g].
    #[arg(long, value_name = "SIZE")]
    memory: Option<Limit<Bytes>>,
    /// CPU limit: 1.5 is one and a half CPUs' time; `unlimited` lifts it
    /// [default: all CPUs but one, at least 1].
    #[arg(long, value_name = "N")]
    cpus: Option<Limit<Cpus>>,
    /// Limit on processes and threads; `unlimited` lifts it [default: 1024].
    #[arg(long, value_name = "N")]
    pids: Option<Limit<Pids>>,
    /// What the world may write: its upper layer is a filesystem of this
    /// size (sparse: only what is written takes room on the host), ENOSPC
    /// past it; `unlimited` puts the upper layer on the state dir's own
    /// filesystem [default: 10g].
    #[arg(long, value_name = "SIZE")]
    disk: Option<Limit<Bytes>>,
    /// The world's network: `none` (loopback only) or `bridge` (a veth pair
    /// on the host bridge, governed by the egress policy) [default: bridge
    /// when the policy allows something, else none].
    #[arg(long, value_name = "MODE", value_parser = ["none", "bridge"])]
    net: Option<String>,
    /// Allow the world to reach ENTRY: an address or CIDR, `HOST:PORT`,
    /// `CIDR:PORT-PORT`, a name or `*.suffix`, with `/tcp`, `/udp` or
    /// `/icmp` (docs/egress-policy.md). Repeatable; implies --net bridge.
    #[arg(long, value_name = "ENTRY")]
    allow: Vec<String>,
    /// The world's policy (YAML, docs/egress-policy.md); --allow entries are
    /// added to its network allow-list.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Where the world's resolver forwards the names its policy allows
    /// (IP or IP:PORT) [default: the first nameserver of /etc/resolv.conf].
    #[arg(long, value_name = "ADDR")]
    dns_upstream: Option<String>,
    /// `default`: Docker's default seccomp profile; `unconfined`: no filter.
    #[arg(long, value_name = "PROFILE", default_value = "default", value_parser = ["default", "unconfined"])]
    seccomp: String,
}

impl DefaultsArgs {
    fn into_defaults(self) -> Defaults {
        Defaults {
            hide: HideArgs {
                hide: self.hide,
                expose: self.expose,
            },
            env: EnvArgs {
                set: self.env,
                pass: self.env_pass,
            },
            memory: self.memory.unwrap_or_default(),
            cpus: self.cpus.unwrap_or_default(),
            pids: self.pids.unwrap_or_default(),
            unconfined: self.seccomp == "unconfined",
        }
    }
}

/// The world's network and egress policy, from `--net`, `--allow`,
/// `--policy` and `--dns-upstream`: every entry is checked (and a bad one
/// named) before anything of the world exists.
fn world_network(
    args: &DefaultsArgs,
) -> Result<(
    WorldNetwork,
    Option<WorldEgress>,
    Option<Policy>,
    substrate_policy::Limits,
)> {
    let mut policy = match &args.policy {
        Some(path) => Policy::load(path)?,
        None => Policy::default(),
    };
    let unenforced = substrate_runtime::unenforced_sections(&policy);
    if !unenforced.is_empty() {
        eprintln!(
            "substrate-cli: warning: the policy's {} {} not enforced: the world runs \
             untraced (SUBSTRATE_TRACE=off), without the monitor that enforces {}",
            unenforced.join(", "),
            if unenforced.len() == 1 { "is" } else { "are" },
            if unenforced.len() == 1 { "it" } else { "them" },
        );
    }
    for text in &args.allow {
        let entry: Entry = text.parse().with_context(|| format!("--allow {text:?}"))?;
        policy.network.allow.push(entry);
    }
    let dns_upstream = args
        .dns_upstream
        .as_deref()
        .map(|text| {
            text.parse::<SocketAddr>()
                .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                .with_context(|| format!("--dns-upstream {text:?}: expected IP or IP:PORT"))
        })
        .transpose()?;
    let wants_bridge = policy.network.allows_anything();
    let network = match args.net.as_deref() {
        Some("bridge") => WorldNetwork::Bridge,
        Some(_) if wants_bridge => {
            bail!("--net none reaches nothing, but the policy allows destinations: use --net bridge (or drop --allow)")
        }
        Some(_) => WorldNetwork::LoopbackOnly,
        None if wants_bridge => WorldNetwork::Bridge,
        None => WorldNetwork::LoopbackOnly,
    };
    // What the world's monitor enforces.
    let governed = policy.needs_monitor().then(|| Policy {
        network: Default::default(),
        ..policy.clone()
    });
    let egress = (network == WorldNetwork::Bridge).then(|| WorldEgress {
        policy: policy.network,
        bridge: std::env::var(BRIDGE_ENV).ok().filter(|b| !b.is_empty()),
        dns_upstream,
    });
    if let Some(bridge) = egress.as_ref().and_then(|e| e.bridge.as_deref()) {
        bridge
            .parse::<substrate_net::link::Bridge>()
            .with_context(|| BRIDGE_ENV.to_string())?;
    }
    Ok((network, egress, governed, policy.limits))
}

/// The policy's `limits` are ceilings: a flag may ask for less, never for
/// more (nor lift one: `unlimited` gets the policy's).
fn apply_policy_limits(args: &mut DefaultsArgs, limits: &substrate_policy::Limits) {
    fn ceiling<T: Copy>(flag: &mut Option<Limit<T>>, policy: Option<T>, lower: fn(T, T) -> T) {
        let Some(policy) = policy else { return };
        *flag = Some(Limit::Set(match flag.take() {
            Some(Limit::Set(asked)) => lower(asked, policy),
            _ => policy,
        }));
    }
    ceiling(&mut args.memory, limits.memory.map(Bytes), |a, b| {
        Bytes(a.0.min(b.0))
    });
    ceiling(&mut args.disk, limits.disk.map(Bytes), |a, b| {
        Bytes(a.0.min(b.0))
    });
    ceiling(
        &mut args.pids,
        limits.pids.map(|p| Pids(p.min(i64::MAX as u64) as i64)),
        |a, b| Pids(a.0.min(b.0)),
    );
    ceiling(
        &mut args.cpus,
        limits.cpus.map(|c| Cpus(c.get())),
        |a, b| Cpus(a.0.min(b.0)),
    );
}

/// The bridge worlds join, when not the default `substrate0`
/// (`NAME,V4/LEN,V6/LEN`): a host setting, as the operator's environment
/// gives it (tests give each their own).
const BRIDGE_ENV: &str = "SUBSTRATE_BRIDGE";

/// What a world may write: its upper layer is a filesystem of this size
/// (sparse: only what is written takes room).
const DEFAULT_DISK: u64 = 10 << 30;

/// How long a world may take to stop after Ctrl-C (or SIGTERM) is passed
/// on, before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

pub fn run(mut args: RunArgs, runtime: &Runtime) -> Result<u8> {
    let id = match args.name {
        Some(name) => {
            let id = WorldId::new(name)?;
            if runtime.store().has_record(&id) {
                bail!("world {id:?} already exists: remove it first (substrate-cli rm {id})");
            }
            id
        }
        None => generated_id(),
    };
    let origin = match (args.bundle, args.rootfs) {
        (Some(bundle), _) => Origin::Bundle(bundle),
        (None, Some(rootfs)) => Origin::Rootfs(rootfs),
        (None, None) => Origin::Host,
    };
    let (network, egress, policy, limits) = world_network(&args.defaults)?;
    apply_policy_limits(&mut args.defaults, &limits);
    let upper_limit = match args.defaults.disk.unwrap_or_default() {
        Limit::Default => Some(DEFAULT_DISK),
        Limit::Set(Bytes(bytes)) => Some(bytes),
        Limit::Unlimited => None,
    };
    let defaults = args.defaults.into_defaults();
    // A foreground run's token, which its guardian checks the world by.
    let owner = (!args.detach).then(|| uuid::Uuid::now_v7().simple().to_string());
    let launch = Launch {
        init: match args.no_init {
            true => None,
            // A foreground world's init holds its lifeline.
            false => Some(Init::install(runtime, !args.detach)?),
        },
        notes: RunNotes {
            detached: args.detach,
            owner: owner.clone(),
        },
    };
    let bundle = WorldBundle::prepare(origin, &id, &args.command, runtime, &defaults, &launch)?;
    let lifeline = launch.init.as_ref().is_some_and(|init| init.lifeline);
    let create = CreateOptions {
        source: Some(bundle.source.clone()),
        // The record names the command, not the init in front of it.
        command: Some(bundle.command.clone()),
        // Substrate's own overlay: the rootfs is never written and every
        // write is in the diff.
        layering: Layering::Overlay {
            lower: bundle.lower.clone(),
            upper_limit,
        },
        // Without --keep the upper layer's files go when the world is
        // deleted; the record and the diff stay.
        keep_upper: args.keep,
        // Substrate's own specs give the world a network namespace of its
        // own and nothing in it but the loopback (or its veth pair on the
        // bridge); a bundle's spec says what its network is, unless a
        // policy asks for the bridge.
        network: match network {
            WorldNetwork::LoopbackOnly if !bundle.generated() => WorldNetwork::Spec,
            network => network,
        },
        egress,
        policy,
        preserve_fds: launch.init.as_ref().map_or(0, Init::preserve_fds),
        ..Default::default()
    };
    if args.detach {
        return detach(runtime, &id, &bundle, create);
    }
    if let Some(owner) = &owner {
        start_guardian(runtime, &id, owner)?;
    }
    // A policy that asks, run from a terminal: the person at it answers.
    let approver = match &create.policy {
        Some(policy) if policy.commands.may_ask() && std::io::stdin().is_terminal() => {
            Some(start_approver(runtime, &id)?)
        }
        _ => None,
    };
    // Fd 3, before the signal handlers open anything: see `Lifeline`.
    let lifeline = lifeline.then(Lifeline::claim).transpose()?;
    let started = Instant::now();
    let finished = runtime.run(
        id.as_str(),
        &bundle.dir,
        RunOptions {
            create,
            monitoring: Monitoring::Thread,
            // Caught before the world exists, so none is lost.
            signals: SignalForwarder::install()
                .context("cannot install signal handlers")?
                .kill_after(STOP_GRACE),
            after_exit: AfterExit::Delete,
        },
    )?;
    // Held until the world is over: its end is the world's.
    drop(lifeline);
    if let Some(mut approver) = approver {
        // It ends with the world's approval socket; a prompt still open
        // (a question settled by its timeout) is closed here.
        let _ = approver.kill();
        let _ = approver.wait();
    }
    let elapsed = started.elapsed();
    let exit = finished
        .exit
        .expect("a world run in the foreground has an exit");
    if finished.trace.as_ref().is_some_and(|t| t.lost) {
        eprintln!("substrate-cli: kernel events were lost: the trace of {id} may miss processes");
    }
    if let Some(record) = &finished.record {
        summary::print(
            record,
            exit,
            elapsed,
            finished.trace.as_ref().map(|t| &t.spans),
            args.json,
        );
    }
    Ok(exit.shell_status().clamp(0, 255) as u8)
}

/// `substrate-cli approve ID` on this terminal, as a process of its own
/// (a world is created by a single-threaded process): it connects to the
/// world's approval socket as soon as the monitor binds it, and prompts
/// for each `ask` until the world ends.
fn start_approver(runtime: &Runtime, id: &WorldId) -> Result<std::process::Child> {
    std::process::Command::new(std::env::current_exe().context("cannot find substrate-cli")?)
        .arg("--root")
        .arg(runtime.root())
        .arg("--state-dir")
        .arg(runtime.store().state_dir())
        .args(["approve", id.as_str(), "--wait", "60"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("cannot start the approver")
}

/// `run --detach`: the world is created and started with a monitor that is
/// a process of its own (`substrate-runtime monitor ID`, as `create` starts
/// for podman), and left to run; its id is printed.
fn detach(
    runtime: &Runtime,
    id: &WorldId,
    bundle: &WorldBundle,
    mut create: CreateOptions,
) -> Result<u8> {
    let null = || -> Result<OwnedFd> {
        Ok(fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .context("cannot open /dev/null")?
            .into())
    };
    create.detach = true;
    create.stdio = Stdio {
        stdin: Some(null()?),
        stdout: Some(null()?),
        stderr: Some(null()?),
    };
    runtime
        .launch(
            id.as_str(),
            &bundle.dir,
            create,
            detached_monitor(runtime, id)?,
        )?
        .start()?
        .detach();
    println!("{id}");
    Ok(0)
}

/// `substrate-runtime monitor ID` with this root and world store: beside
/// this binary (the build tree, `make install`'s bin dir), else on PATH.
fn detached_monitor(runtime: &Runtime, id: &WorldId) -> Result<Monitoring> {
    const MONITOR: &str = "substrate-runtime";
    let beside = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name(MONITOR))
        .filter(|path| path.is_file());
    let on_path = || {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join(MONITOR))
            .find(|path| path.is_file())
    };
    let Some(binary) = beside.or_else(on_path) else {
        bail!("run --detach needs {MONITOR} (the world's monitor): not beside substrate-cli nor on PATH");
    };
    let mut command = Command::new(binary);
    command
        .env("SUBSTRATE_STATE_DIR", runtime.store().state_dir())
        .arg("--root")
        .arg(runtime.root())
        .arg("monitor")
        .arg(id.as_str());
    Ok(Monitoring::Process(command))
}

/// Starts the guardian of a foreground world (`stop --after`, see
/// `commands::stop`): it outlives this process on purpose, in a process
/// group of its own (a terminal's Ctrl-C is not for it), and ends the world
/// if this process is killed before it has finished it. It is started
/// before the world exists, so no moment of the world is unguarded.
fn start_guardian(runtime: &Runtime, id: &WorldId, owner: &str) -> Result<()> {
    // This very binary, even if its file was replaced since it started.
    let guardian = Command::new("/proc/self/exe")
        .arg0("substrate-cli")
        .arg("--root")
        .arg(runtime.root())
        .arg("--state-dir")
        .arg(runtime.store().state_dir())
        .arg("stop")
        .arg("--after")
        .arg(format!("{}:{owner}", std::process::id()))
        .arg(id.as_str())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .context("cannot start the world's guardian")?;
    // Not waited for: it exits after this process does.
    drop(guardian);
    Ok(())
}

/// `w-` + a UUIDv7's time-ordered first 12 hex digits + 4 random ones:
/// short, sortable by creation, unique.
fn generated_id() -> WorldId {
    let uuid = uuid::Uuid::now_v7().simple().to_string();
    WorldId::new(format!("w-{}{}", &uuid[..12], &uuid[28..])).expect("letters, digits and '-'")
}
