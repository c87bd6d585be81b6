//! The Task service: containerd's calls on the containers (worlds) of one
//! shim.
//!
//! Locking rule (others' deadlocks taught it): the tasks lock is held only
//! to read or change the table, never across a call that can block (a
//! kill, a create, a world's delete, a wait). Exits come from the crate's
//! reaper (the shim is the subreaper of every container process), through
//! one subscription taken before any process exists, so none is missed.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use containerd_shim::api;
use containerd_shim::monitor::{monitor_subscribe, Subject, Topic};
use containerd_shim::protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskIO, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::ttrpc;
use containerd_shim::util::timestamp;
use containerd_shim::{ExitSignal, TtrpcContext, TtrpcResult};
use substrate_runtime::monitor::Monitoring;
use substrate_runtime::{ErrorKind, Runtime, WorldRun, WorldStatus};

use crate::helper::{self, Request, StdioPaths};
use crate::publisher::Publisher;
use crate::stdio::{keep_open, Console, ConsoleSocket, KeptOpen};

/// Exits of pids not (yet) known: a process can exit before the call that
/// made it returns its pid.
const UNCLAIMED_EXITS: usize = 256;

struct Exited {
    status: u32,
    at: Timestamp,
}

struct Process {
    /// 0 for an exec not started yet.
    pid: i32,
    exited: Option<Exited>,
    stdio: StdioPaths,
    terminal: bool,
    _kept: Option<KeptOpen>,
    console: Option<Console>,
    /// An exec's OCI process, written for the helper.
    spec: Option<PathBuf>,
}

struct Container {
    bundle: PathBuf,
    init: Process,
    execs: HashMap<String, Process>,
    /// The world and its monitor, until `Delete`. Declared before `rootfs`:
    /// dropped first (the world is deleted before its rootfs is unmounted)
    /// when the shim exits with containers left.
    run: Option<WorldRun>,
    rootfs: Option<MountedRootfs>,
}

#[derive(Default)]
struct Tasks {
    containers: HashMap<String, Container>,
    unclaimed: VecDeque<(i32, u32, Timestamp)>,
}

impl Tasks {
    fn container(&mut self, id: &str) -> TtrpcResult<&mut Container> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| status(ttrpc::Code::NOT_FOUND, format!("container {id} not found")))
    }

    fn process(&mut self, id: &str, exec_id: &str) -> TtrpcResult<&mut Process> {
        let container = self.container(id)?;
        if exec_id.is_empty() {
            return Ok(&mut container.init);
        }
        container.execs.get_mut(exec_id).ok_or_else(|| {
            status(
                ttrpc::Code::NOT_FOUND,
                format!("exec {exec_id} in {id} not found"),
            )
        })
    }

    /// An exit the reaper reported before its pid was known here.
    fn claim(&mut self, pid: i32) -> Option<Exited> {
        let at = self.unclaimed.iter().position(|(p, _, _)| *p == pid)?;
        let (_, status, at) = self.unclaimed.remove(at)?;
        Some(Exited { status, at })
    }
}

pub struct Service {
    namespace: String,
    runtime: Runtime,
    publisher: Arc<Publisher>,
    tasks: Arc<(Mutex<Tasks>, Condvar)>,
    exit: Arc<ExitSignal>,
    oom: Arc<crate::oom::OomWatcher>,
    /// The socket this shim serves on, removed when it shuts down:
    /// containerd-shim 0.11 finds it again through the bundle's `address`
    /// file, which a pod's shim outlives (the sandbox's bundle is gone by
    /// then), and left it in containerd's `s/` dir.
    socket: PathBuf,
}

fn status(code: ttrpc::Code, message: impl Into<String>) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, message.into()))
}

fn failed(message: impl std::fmt::Display) -> ttrpc::Error {
    status(ttrpc::Code::UNKNOWN, message.to_string())
}

/// The one mapping from the runtime library's kinds of failure to ttrpc
/// codes, for the shim's own calls and its helper's alike.
fn code_of(kind: ErrorKind) -> ttrpc::Code {
    match kind {
        ErrorKind::NotFound => ttrpc::Code::NOT_FOUND,
        ErrorKind::AlreadyExists => ttrpc::Code::ALREADY_EXISTS,
        ErrorKind::InvalidInput => ttrpc::Code::INVALID_ARGUMENT,
        ErrorKind::FailedPrecondition => ttrpc::Code::FAILED_PRECONDITION,
        ErrorKind::Other => ttrpc::Code::UNKNOWN,
    }
}

fn runtime_error(e: substrate_runtime::Error) -> ttrpc::Error {
    status(code_of(e.kind()), substrate_runtime::one_line(&e))
}

fn helper_error(failure: helper::Failure) -> ttrpc::Error {
    status(code_of(failure.kind), failure.message)
}

fn now() -> Timestamp {
    timestamp().unwrap_or_default()
}

impl Service {
    pub fn new(
        namespace: String,
        runtime: Runtime,
        exit: Arc<ExitSignal>,
        socket: PathBuf,
    ) -> std::io::Result<Service> {
        let address = std::env::var("TTRPC_ADDRESS").unwrap_or_default();
        let publisher = Arc::new(Publisher::new(address, namespace.clone()));
        let tasks: Arc<(Mutex<Tasks>, Condvar)> = Arc::default();
        // Subscribed before any container process exists.
        let exits = monitor_subscribe(Topic::All).map_err(std::io::Error::other)?;
        {
            let tasks = Arc::clone(&tasks);
            let publisher = Arc::clone(&publisher);
            std::thread::spawn(move || {
                for event in exits.rx.iter() {
                    if let Subject::Pid(pid) = event.subject {
                        if let Some(exit) = record_exit(&tasks, pid, event.exit_code as u32) {
                            publisher.publish(&exit);
                        }
                    }
                }
            });
        }
        let oom = crate::oom::OomWatcher::start(Arc::clone(&publisher))?;
        Ok(Service {
            namespace,
            runtime,
            publisher,
            tasks,
            exit,
            oom,
            socket,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Tasks> {
        self.tasks.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `pid` as started, applying an exit that came first.
    fn started(&self, id: &str, exec_id: &str, pid: i32) -> TtrpcResult<()> {
        let early = {
            let mut tasks = self.lock();
            let early = tasks.claim(pid);
            let process = tasks.process(id, exec_id)?;
            process.pid = pid;
            early.map(|exited| {
                let event = TaskExit {
                    container_id: id.into(),
                    id: if exec_id.is_empty() {
                        id.into()
                    } else {
                        exec_id.into()
                    },
                    pid: pid as u32,
                    exit_status: exited.status,
                    exited_at: Some(exited.at.clone()).into(),
                    ..Default::default()
                };
                process.exited = Some(exited);
                event
            })
        };
        if let Some(event) = early {
            self.tasks.1.notify_all();
            self.publisher.publish(&event);
        }
        Ok(())
    }
}

/// The reaper's report: the process's exit, and the event to publish.
fn record_exit(tasks: &(Mutex<Tasks>, Condvar), pid: i32, code: u32) -> Option<TaskExit> {
    let mut guard = tasks.0.lock().unwrap_or_else(|p| p.into_inner());
    let at = now();
    let mut event = None;
    for (id, container) in guard.containers.iter_mut() {
        let found = std::iter::once((String::new(), &mut container.init))
            .chain(container.execs.iter_mut().map(|(k, v)| (k.clone(), v)))
            .find(|(_, p)| p.pid == pid && p.exited.is_none());
        if let Some((exec_id, process)) = found {
            process.exited = Some(Exited {
                status: code,
                at: at.clone(),
            });
            event = Some(TaskExit {
                container_id: id.clone(),
                id: if exec_id.is_empty() {
                    id.clone()
                } else {
                    exec_id
                },
                pid: pid as u32,
                exit_status: code,
                exited_at: Some(at.clone()).into(),
                ..Default::default()
            });
            break;
        }
    }
    if event.is_none() {
        if guard.unclaimed.len() >= UNCLAIMED_EXITS {
            guard.unclaimed.pop_front();
        }
        guard.unclaimed.push_back((pid, code, at));
    }
    drop(guard);
    tasks.1.notify_all();
    event
}

/// containerd's snapshot mounted at the bundle's `rootfs`, unmounted when
/// dropped: on `Delete`, and on every path where `Create` fails after it.
struct MountedRootfs {
    target: PathBuf,
}

impl MountedRootfs {
    /// `None` when containerd passed no mounts (the bundle has its rootfs).
    fn mount(
        mounts: &[containerd_shim::protos::types::mount::Mount],
        target: PathBuf,
    ) -> TtrpcResult<Option<MountedRootfs>> {
        if mounts.is_empty() {
            return Ok(None);
        }
        std::fs::create_dir_all(&target).map_err(failed)?;
        // From the first mount on, dropping this unmounts what is there.
        let rootfs = MountedRootfs { target };
        for m in mounts {
            containerd_shim::mount::mount_rootfs(
                Some(m.type_.as_str()).filter(|t| !t.is_empty()),
                Some(m.source.as_str()).filter(|s| !s.is_empty()),
                &m.options,
                &rootfs.target,
            )
            .map_err(|e| {
                failed(format!(
                    "mounting the rootfs at {}: {e}",
                    rootfs.target.display()
                ))
            })?;
        }
        Ok(Some(rootfs))
    }
}

impl Drop for MountedRootfs {
    fn drop(&mut self) {
        // Several mounts may be stacked there: take every one.
        loop {
            match nix::mount::umount2(&self.target, nix::mount::MntFlags::MNT_DETACH) {
                Ok(()) => continue,
                Err(nix::errno::Errno::EINVAL) => return,
                Err(e) => {
                    log::warn!("unmounting {}: {e}", self.target.display());
                    return;
                }
            }
        }
    }
}

impl containerd_shim::Task for Service {
    fn create(
        &self,
        _ctx: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> TtrpcResult<api::CreateTaskResponse> {
        if !req.checkpoint.is_empty() {
            return Err(status(
                ttrpc::Code::UNIMPLEMENTED,
                "checkpoint/restore is not supported",
            ));
        }
        let id = req.id.clone();
        let bundle = PathBuf::from(&req.bundle);
        let rootfs = MountedRootfs::mount(&req.rootfs, bundle.join("rootfs"))?;
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
        };
        let kept = keep_open(&stdio).map_err(failed)?;
        let console = if req.terminal {
            let socket = ConsoleSocket::new().map_err(failed)?;
            let path = socket.path.clone();
            Some((path, std::thread::spawn(move || socket.receive())))
        } else {
            None
        };
        let request = Request::Create {
            root: self.runtime.root().to_owned(),
            id: id.clone(),
            bundle: bundle.clone(),
            stdio: if req.terminal {
                StdioPaths::default()
            } else {
                stdio.clone()
            },
            console_socket: console.as_ref().map(|(path, _)| path.clone()),
        };
        let pid = helper::call(&request).map_err(helper_error)?;
        // The world exists: from here on, a failure deletes it (and the
        // rootfs guard unmounts what it mounted).
        let run = self
            .runtime
            .attach(&id, Monitoring::Thread)
            .map_err(runtime_error)?;
        let console = match console {
            Some((_, receiver)) => {
                let received = receiver
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("console receiver panicked")))
                    .and_then(|master| Console::start(master, &stdio));
                match received {
                    Ok(console) => Some(console),
                    Err(e) => {
                        let message = format!("the container's console: {e}");
                        return Err(match run.discard() {
                            Ok(()) => failed(message),
                            Err(cleanup) => failed(format!(
                                "{message}; cleaning up after it also failed: {}",
                                substrate_runtime::one_line(&cleanup)
                            )),
                        });
                    }
                }
            }
            None => None,
        };
        let cgroup = run.world().cgroup_path();
        self.lock().containers.insert(
            id.clone(),
            Container {
                bundle: bundle.clone(),
                init: Process {
                    pid: 0,
                    exited: None,
                    stdio: stdio.clone(),
                    terminal: req.terminal,
                    _kept: Some(kept),
                    console,
                    spec: None,
                },
                execs: HashMap::new(),
                run: Some(run),
                rootfs,
            },
        );
        self.started(&id, "", pid)?;
        if let Some(cgroup) = cgroup {
            if let Err(e) = self.oom.watch(&id, &cgroup) {
                log::warn!("container {id}: OOM kills will not be reported: {e}");
            }
        }
        self.publisher.publish(&TaskCreate {
            container_id: id,
            bundle: req.bundle,
            rootfs: req.rootfs,
            io: Some(TaskIO {
                stdin: stdio.stdin,
                stdout: stdio.stdout,
                stderr: stdio.stderr,
                terminal: req.terminal,
                ..Default::default()
            })
            .into(),
            pid: pid as u32,
            ..Default::default()
        });
        Ok(api::CreateTaskResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    fn start(
        &self,
        _ctx: &TtrpcContext,
        req: api::StartRequest,
    ) -> TtrpcResult<api::StartResponse> {
        if req.exec_id.is_empty() {
            // Out of the table while it starts (no lock across the call);
            // a start that fails has deleted the world, and containerd's
            // Delete that follows finds it gone.
            let run = self.lock().container(&req.id)?.run.take().ok_or_else(|| {
                status(
                    ttrpc::Code::FAILED_PRECONDITION,
                    "the world is being deleted",
                )
            })?;
            let run = run.start().map_err(runtime_error)?;
            let pid = run.world().pid().unwrap_or(0);
            if let Ok(container) = self.lock().container(&req.id) {
                container.run = Some(run);
            }
            self.publisher.publish(&TaskStart {
                container_id: req.id,
                pid: pid as u32,
                ..Default::default()
            });
            return Ok(api::StartResponse {
                pid: pid as u32,
                ..Default::default()
            });
        }
        let (spec, stdio, terminal) = {
            let mut tasks = self.lock();
            if tasks.container(&req.id)?.init.exited.is_some() {
                return Err(status(
                    ttrpc::Code::FAILED_PRECONDITION,
                    format!("container {} has stopped: no exec into it", req.id),
                ));
            }
            let exec = tasks.process(&req.id, &req.exec_id)?;
            (exec.spec.clone(), exec.stdio.clone(), exec.terminal)
        };
        let console = if terminal {
            let socket = ConsoleSocket::new().map_err(failed)?;
            let path = socket.path.clone();
            Some((path, std::thread::spawn(move || socket.receive())))
        } else {
            None
        };
        let pid = helper::call(&Request::Exec {
            root: self.runtime.root().to_owned(),
            id: req.id.clone(),
            process: spec.ok_or_else(|| failed("exec without a process"))?,
            stdio: if terminal {
                StdioPaths::default()
            } else {
                stdio.clone()
            },
            console_socket: console.as_ref().map(|(path, _)| path.clone()),
        })
        .map_err(helper_error)?;
        if let Some((_, receiver)) = console {
            let master = receiver
                .join()
                .map_err(|_| failed("console receiver panicked"))?
                .map_err(failed)?;
            let console = Console::start(master, &stdio).map_err(failed)?;
            self.lock().process(&req.id, &req.exec_id)?.console = Some(console);
        }
        self.started(&req.id, &req.exec_id, pid)?;
        self.publisher.publish(&TaskExecStarted {
            container_id: req.id,
            exec_id: req.exec_id,
            pid: pid as u32,
            ..Default::default()
        });
        Ok(api::StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    fn exec(&self, _ctx: &TtrpcContext, req: api::ExecProcessRequest) -> TtrpcResult<api::Empty> {
        let spec = req
            .spec
            .as_ref()
            .ok_or_else(|| status(ttrpc::Code::INVALID_ARGUMENT, "exec without a process spec"))?;
        let stdio = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
        };
        let kept = keep_open(&stdio).map_err(failed)?;
        let mut tasks = self.lock();
        let container = tasks.container(&req.id)?;
        if container.init.exited.is_some() {
            return Err(status(
                ttrpc::Code::FAILED_PRECONDITION,
                format!("container {} has stopped: no exec into it", req.id),
            ));
        }
        if container.execs.contains_key(&req.exec_id) {
            return Err(status(
                ttrpc::Code::ALREADY_EXISTS,
                format!("exec {} already exists", req.exec_id),
            ));
        }
        let path = container.bundle.join(format!("exec-{}.json", req.exec_id));
        std::fs::write(&path, &spec.value).map_err(failed)?;
        container.execs.insert(
            req.exec_id.clone(),
            Process {
                pid: 0,
                exited: None,
                stdio,
                terminal: req.terminal,
                _kept: Some(kept),
                console: None,
                spec: Some(path),
            },
        );
        drop(tasks);
        self.publisher.publish(&TaskExecAdded {
            container_id: req.id,
            exec_id: req.exec_id,
            ..Default::default()
        });
        Ok(api::Empty::new())
    }

    fn kill(&self, _ctx: &TtrpcContext, req: api::KillRequest) -> TtrpcResult<api::Empty> {
        let signal = nix::sys::signal::Signal::try_from(req.signal as i32).map_err(|_| {
            status(
                ttrpc::Code::INVALID_ARGUMENT,
                format!("invalid signal {}", req.signal),
            )
        })?;
        let pid = {
            let mut tasks = self.lock();
            let process = tasks.process(&req.id, &req.exec_id)?;
            if process.exited.is_some() && !req.all {
                return Err(status(ttrpc::Code::NOT_FOUND, "process already finished"));
            }
            process.pid
        };
        if req.exec_id.is_empty() {
            let mut world = self.runtime.world(&req.id).map_err(runtime_error)?;
            if world.status() == WorldStatus::Stopped && !req.all {
                return Err(status(ttrpc::Code::NOT_FOUND, "process already finished"));
            }
            world.kill(signal, req.all).map_err(runtime_error)?;
        } else if pid > 0 {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).map_err(failed)?;
        }
        Ok(api::Empty::new())
    }

    fn wait(&self, _ctx: &TtrpcContext, req: api::WaitRequest) -> TtrpcResult<api::WaitResponse> {
        let mut tasks = self.lock();
        loop {
            let process = tasks.process(&req.id, &req.exec_id)?;
            if let Some(exited) = &process.exited {
                return Ok(api::WaitResponse {
                    exit_status: exited.status,
                    exited_at: Some(exited.at.clone()).into(),
                    ..Default::default()
                });
            }
            tasks = self.tasks.1.wait(tasks).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn delete(
        &self,
        _ctx: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> TtrpcResult<api::DeleteResponse> {
        if !req.exec_id.is_empty() {
            let mut tasks = self.lock();
            let container = tasks.container(&req.id)?;
            let exec = container.execs.get(&req.exec_id).ok_or_else(|| {
                status(
                    ttrpc::Code::NOT_FOUND,
                    format!("exec {} not found", req.exec_id),
                )
            })?;
            if exec.pid > 0 && exec.exited.is_none() {
                return Err(status(
                    ttrpc::Code::FAILED_PRECONDITION,
                    format!("exec {} is running", req.exec_id),
                ));
            }
            let exec = container.execs.remove(&req.exec_id).expect("checked above");
            if let Some(spec) = &exec.spec {
                let _ = std::fs::remove_file(spec);
            }
            return Ok(delete_response(&exec));
        }
        // Taken out of the table for the delete (no lock held across it),
        // put back if the delete fails, so containerd can try again.
        let (run, rootfs) = {
            let mut tasks = self.lock();
            let container = tasks.container(&req.id)?;
            (container.run.take(), container.rootfs.take())
        };
        // A created or stopped world; a running one is killed (containerd
        // kills and waits first; this is the shim-died and cleanup path).
        let deleted = match run {
            Some(run) => run.end().map(|_| ()),
            // A start that failed, or a delete that failed half-way and is
            // tried again: whatever is left of the world goes.
            None => self.runtime.delete(&req.id, true),
        };
        if let Err(e) = deleted {
            if let Ok(container) = self.lock().container(&req.id) {
                container.rootfs = rootfs;
            }
            return Err(runtime_error(e));
        }
        self.oom.forget(&req.id);
        drop(rootfs);
        let container = self.lock().containers.remove(&req.id);
        let response = container
            .as_ref()
            .map(|c| delete_response(&c.init))
            .unwrap_or_default();
        self.publisher.publish(&TaskDelete {
            container_id: req.id.clone(),
            id: req.id,
            pid: response.pid,
            exit_status: response.exit_status,
            exited_at: response.exited_at.clone(),
            ..Default::default()
        });
        Ok(response)
    }

    fn state(
        &self,
        _ctx: &TtrpcContext,
        req: api::StateRequest,
    ) -> TtrpcResult<api::StateResponse> {
        let (pid, exited, stdio, terminal, bundle) = {
            let mut tasks = self.lock();
            let bundle = tasks.container(&req.id)?.bundle.clone();
            let p = tasks.process(&req.id, &req.exec_id)?;
            (
                p.pid,
                p.exited.as_ref().map(|e| (e.status, e.at.clone())),
                p.stdio.clone(),
                p.terminal,
                bundle,
            )
        };
        use containerd_shim::protos::types::task::Status;
        let state = match (&exited, req.exec_id.is_empty()) {
            (Some(_), _) => Status::STOPPED,
            (None, false) if pid == 0 => Status::CREATED,
            (None, false) => Status::RUNNING,
            (None, true) => match self.runtime.world(&req.id).map(|w| w.status()) {
                Ok(WorldStatus::Created) => Status::CREATED,
                Ok(WorldStatus::Running) => Status::RUNNING,
                Ok(WorldStatus::Paused) => Status::PAUSED,
                Ok(WorldStatus::Stopped) => Status::STOPPED,
                _ => Status::UNKNOWN,
            },
        };
        let mut response = api::StateResponse {
            id: if req.exec_id.is_empty() {
                req.id.clone()
            } else {
                req.exec_id.clone()
            },
            bundle: bundle.to_string_lossy().into_owned(),
            pid: pid as u32,
            status: state.into(),
            stdin: stdio.stdin,
            stdout: stdio.stdout,
            stderr: stdio.stderr,
            terminal,
            exec_id: req.exec_id,
            ..Default::default()
        };
        if let Some((status, at)) = exited {
            response.exit_status = status;
            response.exited_at = Some(at).into();
        }
        Ok(response)
    }

    fn pids(&self, _ctx: &TtrpcContext, req: api::PidsRequest) -> TtrpcResult<api::PidsResponse> {
        let world = self.runtime.world(&req.id).map_err(runtime_error)?;
        let pids = world.pids().map_err(runtime_error)?;
        Ok(api::PidsResponse {
            processes: pids
                .into_iter()
                .map(|pid| containerd_shim::protos::types::task::ProcessInfo {
                    pid: pid as u32,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    fn pause(&self, _ctx: &TtrpcContext, req: api::PauseRequest) -> TtrpcResult<api::Empty> {
        let mut world = self.runtime.world(&req.id).map_err(runtime_error)?;
        world.pause().map_err(runtime_error)?;
        self.publisher.publish(&TaskPaused {
            container_id: req.id,
            ..Default::default()
        });
        Ok(api::Empty::new())
    }

    fn resume(&self, _ctx: &TtrpcContext, req: api::ResumeRequest) -> TtrpcResult<api::Empty> {
        let mut world = self.runtime.world(&req.id).map_err(runtime_error)?;
        world.resume().map_err(runtime_error)?;
        self.publisher.publish(&TaskResumed {
            container_id: req.id,
            ..Default::default()
        });
        Ok(api::Empty::new())
    }

    fn checkpoint(
        &self,
        _ctx: &TtrpcContext,
        _req: api::CheckpointTaskRequest,
    ) -> TtrpcResult<api::Empty> {
        Err(status(
            ttrpc::Code::UNIMPLEMENTED,
            "checkpoint is not supported",
        ))
    }

    fn resize_pty(
        &self,
        _ctx: &TtrpcContext,
        req: api::ResizePtyRequest,
    ) -> TtrpcResult<api::Empty> {
        let mut tasks = self.lock();
        let process = tasks.process(&req.id, &req.exec_id)?;
        match &process.console {
            Some(console) => console.resize(req.width, req.height).map_err(failed)?,
            None => {
                return Err(status(
                    ttrpc::Code::FAILED_PRECONDITION,
                    "the process has no terminal",
                ))
            }
        }
        Ok(api::Empty::new())
    }

    fn close_io(&self, _ctx: &TtrpcContext, req: api::CloseIORequest) -> TtrpcResult<api::Empty> {
        // The process reads containerd's stdin FIFO itself (or our console
        // copy does): it sees EOF when containerd closes its write end.
        self.lock().process(&req.id, &req.exec_id)?;
        Ok(api::Empty::new())
    }

    fn update(&self, _ctx: &TtrpcContext, req: api::UpdateTaskRequest) -> TtrpcResult<api::Empty> {
        let resources = req
            .resources
            .as_ref()
            .ok_or_else(|| status(ttrpc::Code::INVALID_ARGUMENT, "update without resources"))?;
        let resources: substrate_runtime::LinuxResources = serde_json::from_slice(&resources.value)
            .map_err(|e| status(ttrpc::Code::INVALID_ARGUMENT, format!("resources: {e}")))?;
        let world = self.runtime.world(&req.id).map_err(runtime_error)?;
        world.update(&resources).map_err(runtime_error)?;
        Ok(api::Empty::new())
    }

    fn stats(
        &self,
        _ctx: &TtrpcContext,
        req: api::StatsRequest,
    ) -> TtrpcResult<api::StatsResponse> {
        let world = self.runtime.world(&req.id).map_err(runtime_error)?;
        let stats = world.stats().map_err(runtime_error)?;
        Ok(api::StatsResponse {
            stats: Some(crate::metrics::to_any(&stats).map_err(failed)?).into(),
            ..Default::default()
        })
    }

    fn connect(
        &self,
        _ctx: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> TtrpcResult<api::ConnectResponse> {
        let task_pid = self
            .lock()
            .containers
            .get(&req.id)
            .map(|c| c.init.pid as u32)
            .unwrap_or(0);
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid,
            ..Default::default()
        })
    }

    fn shutdown(&self, _ctx: &TtrpcContext, _req: api::ShutdownRequest) -> TtrpcResult<api::Empty> {
        if self.lock().containers.is_empty() {
            log::info!(
                "no containers left in namespace {}: shutting down",
                self.namespace
            );
            if let Err(e) = std::fs::remove_file(&self.socket) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    log::warn!("removing {}: {e}", self.socket.display());
                }
            }
            self.exit.signal();
        }
        Ok(api::Empty::new())
    }
}

fn delete_response(process: &Process) -> api::DeleteResponse {
    let mut response = api::DeleteResponse {
        pid: process.pid as u32,
        ..Default::default()
    };
    if let Some(exited) = &process.exited {
        response.exit_status = exited.status;
        response.exited_at = Some(exited.at.clone()).into();
    }
    response
}
