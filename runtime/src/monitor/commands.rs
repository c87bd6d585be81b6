//! The monitor's exec guard: the policy's `commands` and `exec` sections,
//! decided on every exec in the kernel's own terms (fanotify
//! `FAN_OPEN_EXEC_PERM`, see `substrate_sensor::gate`): the file being run,
//! not the path a program chose. A static binary, a raw `execve`, a
//! renamed copy or `execveat` on an fd are held like any exec.
//!
//! What the kernel does not give at that point is the new argv (the file
//! is opened before the arguments are copied): rules that match on `argv`,
//! `command_line` or `regex` are not enforced here (they match nothing);
//! `exe`, `name`, `sha256` and `exec.allow_written` are.
//!
//! The guard answers on a thread of its own, which does nothing else: the
//! kernel holds each exec until it is answered.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;

use serde_json::json;
use substrate_policy::{Action, CompiledPolicy, ExecQuery, Mode, Policy};
use substrate_sensor::gate::{sha256_of, Answer, ExecGate, ExecRequest};
use substrate_trace::{Decision, PolicyDetail, Source, Span, SpanId, Timestamp};

/// One decision, for its `policy` span.
pub(super) struct Decided {
    at: Timestamp,
    pid: i32,
    path: PathBuf,
    action: Action,
    effective: Action,
    rule: String,
    reason: Option<String>,
    mode: Mode,
    latency_ns: u64,
}

pub(super) struct ExecGuard {
    /// Written (or dropped) to stop the thread.
    stop: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
    decided: Receiver<Decided>,
}

impl ExecGuard {
    /// Starts the guard on the world whose init is `init_pid`, when its
    /// policy says something about commands: `None` when it does not.
    /// `upper` is the world's upper layer on the host, where what the world
    /// wrote is (`exec.allow_written`).
    pub(super) fn start(
        init_pid: i32,
        policy: &Policy,
        upper: Option<PathBuf>,
        mountpoints: Vec<PathBuf>,
    ) -> Result<Option<ExecGuard>, Box<dyn std::error::Error + Send + Sync>> {
        let max_execs = policy.budget.max_execs;
        if policy.commands.is_empty() && policy.exec.is_default() && max_execs.is_none() {
            return Ok(None);
        }
        let compiled = policy.compile()?;
        let gate = ExecGate::open(init_pid)?;
        // Where a file came from is looked up only when the policy asks.
        let written = (!policy.exec.allow_written).then_some(Written { upper });
        let own = OwnFiles { mountpoints };
        let (stop_read, stop_write) = nix::unistd::pipe()?;
        let (sender, decided) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("exec-gate".into())
            .spawn(move || {
                let mut loaders = Loaders::default();
                let mut budget = Budget {
                    max_execs,
                    execs: 0,
                };
                let served = gate.serve(stop_read.as_fd(), |request| {
                    if own.holds(request) {
                        return Answer::Allow;
                    }
                    let (answer, decided) =
                        decide(&compiled, &written, &mut loaders, &mut budget, request);
                    if let Some(decided) = decided {
                        let _ = sender.send(decided);
                    }
                    answer
                });
                if let Err(e) = served {
                    tracing::error!("the exec gate stopped: {e}; execs are no longer held");
                }
            })?;
        Ok(Some(ExecGuard {
            stop: Some(stop_write),
            thread: Some(thread),
            decided,
        }))
    }

    /// The decisions made since the last call, as `policy` spans.
    pub(super) fn due_spans(&mut self, world_id: &str, parent: SpanId) -> Vec<Span> {
        let mut spans = Vec::new();
        while let Ok(decided) = self.decided.try_recv() {
            spans.push(policy_span(world_id, parent, decided));
        }
        spans
    }
}

impl Drop for ExecGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the runtime put into the world for itself (Substrate's init, the
/// tracer): bind-mounted from the host at the record's mount points. The
/// world cannot put a file there (the mount covers it), and its commands
/// policy is not about them.
struct OwnFiles {
    mountpoints: Vec<PathBuf>,
}

impl OwnFiles {
    fn holds(&self, request: &ExecRequest) -> bool {
        self.mountpoints.contains(&request.path) && WorldFilesystem::of(&request.file).is_none()
    }
}

/// What tells a file the world wrote: it is on the world's overlay and in
/// its upper layer (created or copied up there), or on a tmpfs of the
/// world's (nothing but the world writes there). A file bind-mounted in by
/// the runtime (its init, the tracer) is on neither filesystem. The path is
/// the kernel's name for the file being run, not one a program chose.
struct Written {
    upper: Option<PathBuf>,
}

/// The filesystems a file of the world's own can be on.
#[derive(PartialEq, Eq)]
enum WorldFilesystem {
    Overlay,
    Tmpfs,
}

impl WorldFilesystem {
    /// Which of the world's filesystems `file` is on, if either.
    fn of(file: &File) -> Option<WorldFilesystem> {
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;
        match nix::sys::statfs::fstatfs(file).ok()?.filesystem_type().0 {
            TMPFS_MAGIC => Some(WorldFilesystem::Tmpfs),
            OVERLAYFS_SUPER_MAGIC => Some(WorldFilesystem::Overlay),
            _ => None,
        }
    }
}

impl Written {
    fn by_world(&self, request: &ExecRequest) -> bool {
        match WorldFilesystem::of(&request.file) {
            Some(WorldFilesystem::Tmpfs) => true,
            Some(WorldFilesystem::Overlay) => self.upper.as_deref().is_some_and(|upper| {
                request
                    .path
                    .strip_prefix("/")
                    .is_ok_and(|relative| upper.join(relative).symlink_metadata().is_ok())
            }),
            None => false,
        }
    }
}

/// The ELF interpreters (`PT_INTERP`: the dynamic loader) of the programs
/// just allowed, by pid: the kernel opens the loader for exec right after
/// the program, and it is allowed with it. Run as a program of its own
/// (`ld.so /usr/bin/curl`), the loader is a command like any other.
#[derive(Default)]
struct Loaders {
    expected: HashMap<i32, PathBuf>,
}

/// `budget.max_execs`: the programs the world may start over its life,
/// counted as the gate allows them (their loaders not counted).
struct Budget {
    max_execs: Option<u64>,
    execs: u64,
}

fn decide(
    compiled: &CompiledPolicy,
    written: &Option<Written>,
    loaders: &mut Loaders,
    budget: &mut Budget,
    request: &ExecRequest,
) -> (Answer, Option<Decided>) {
    if loaders.expected.get(&request.pid) == Some(&request.path) {
        loaders.expected.remove(&request.pid);
        return (Answer::Allow, None);
    }
    let written_by_world = written.as_ref().is_some_and(|w| w.by_world(request));
    let sha256 = if compiled.needs_sha256() {
        sha256_of(&request.file).ok()
    } else {
        None
    };
    let argv: [&[u8]; 0] = [];
    let decision = compiled.decide_exec(&ExecQuery {
        exe: &request.path,
        argv: &argv,
        sha256,
        written_by_world,
    });
    // `ask` has no approver yet: it is refused (and says so).
    let mut effective = match decision.effective {
        Action::Ask => Action::Deny,
        other => other,
    };
    let mut rule = decision.rule.to_string();
    let mut action = decision.action;
    let mut reason = decision.reason.as_deref().map(str::to_owned);
    if effective == Action::Allow {
        match budget.max_execs {
            Some(max) if budget.execs >= max => {
                // Past the budget: refused in either mode (a budget is a
                // limit, not a rule to observe).
                (action, effective) = (Action::Deny, Action::Deny);
                rule = "budget.max_execs".into();
                reason = Some(format!("the world's {max} execs are spent"));
            }
            _ => budget.execs += 1,
        }
    }
    let answer = match effective {
        Action::Allow => {
            if let Some(interpreter) = elf_interpreter(&request.file) {
                loaders.expected.insert(request.pid, interpreter);
            }
            Answer::Allow
        }
        Action::Deny | Action::Ask => Answer::Deny,
    };
    let decided = Decided {
        at: Timestamp::now(),
        pid: request.pid,
        path: request.path.clone(),
        action,
        effective,
        rule,
        reason: match action {
            Action::Ask => Some(reason.map_or(
                "ask: no approver (not implemented yet): refused".into(),
                |r| format!("{r}; ask: no approver (not implemented yet): refused"),
            )),
            _ => reason,
        },
        mode: decision.mode,
        latency_ns: request.at.elapsed().as_nanos() as u64,
    };
    (answer, Some(decided))
}

/// The `PT_INTERP` of an ELF file (its dynamic loader), if it has one:
/// read with one `pread` of the file's first page, where the header, the
/// program headers and the loader's name are in any executable a linker
/// made (an exotic layout is not followed: its loader is then decided as
/// a command).
fn elf_interpreter(file: &File) -> Option<PathBuf> {
    use std::os::unix::fs::FileExt;
    let mut page = vec![0u8; 4096];
    let read = file.read_at(&mut page, 0).ok()?;
    let page = &page[..read];
    // 64-bit little-endian ELF only (what these hosts run).
    if page.len() < 64 || &page[..4] != b"\x7fELF" || page[4] != 2 || page[5] != 1 {
        return None;
    }
    let u16_at =
        |at: usize| Some(u16::from_le_bytes(page.get(at..at + 2)?.try_into().ok()?) as usize);
    let u32_at = |at: usize| Some(u32::from_le_bytes(page.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| {
        usize::try_from(u64::from_le_bytes(page.get(at..at + 8)?.try_into().ok()?)).ok()
    };
    let (phoff, phentsize, phnum) = (u64_at(32)?, u16_at(54)?, u16_at(56)?);
    if phentsize < 56 {
        return None;
    }
    const PT_INTERP: u32 = 3;
    for index in 0..phnum {
        let entry = phoff.checked_add(index.checked_mul(phentsize)?)?;
        if u32_at(entry)? != PT_INTERP {
            continue;
        }
        let (offset, size) = (u64_at(entry + 8)?, u64_at(entry + 32)?);
        let name = page.get(offset..offset.checked_add(size)?)?;
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        let path = PathBuf::from(std::ffi::OsStr::from_bytes(&name[..end]));
        // The kernel names the loader's fd by its resolved path.
        return Some(std::fs::canonicalize(&path).unwrap_or(path));
    }
    None
}

fn policy_span(world_id: &str, parent: SpanId, decided: Decided) -> Span {
    let decision = match decided.action {
        Action::Allow => Decision::Allow,
        Action::Deny => Decision::Deny,
        Action::Ask => Decision::Ask,
    };
    let mut span = Span::policy(
        world_id,
        Source::Monitor,
        decided.at,
        PolicyDetail {
            rule: decided.rule,
            decision,
            subject: decided.path.as_os_str().as_encoded_bytes().to_vec(),
            reason: decided.reason,
        },
    )
    .parent(parent)
    .pid(decided.pid as u32)
    .build();
    span.extra.insert(
        "enforcement".into(),
        json!({
            "on": "exec",
            "by": "fanotify",
            "mode": match decided.mode { Mode::Enforce => "enforce", Mode::Observe => "observe" },
            "effective": match decided.effective {
                Action::Allow => "allow",
                Action::Deny => "deny",
                Action::Ask => "ask",
            },
            "latency_ns": decided.latency_ns,
        }),
    );
    span
}
