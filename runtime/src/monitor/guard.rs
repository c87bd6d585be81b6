//! The monitor's policy guard: the policy's `commands`, `exec` and
//! `budget.max_execs` decided on every exec, and `filesystem.deny_read` on
//! every open, in the kernel's own terms (fanotify permission events, see
//! `substrate_sensor::gate`): the file being run or opened, not the path a
//! program chose. A static binary, a raw `execve`, a renamed copy,
//! `execveat` on an fd, io_uring or `open_by_handle_at` are held like any
//! exec or open.
//!
//! What the kernel does not give at exec time is the new argv (the file
//! is opened before the arguments are copied): rules that match on `argv`,
//! `command_line` or `regex` are not enforced here (they match nothing);
//! `exe`, `name`, `sha256` and `exec.allow_written` are.
//!
//! The guard answers on a thread of its own, which does nothing else: the
//! kernel holds each exec and open until it is answered. An open no rule
//! names is let through for good (an ignore mark on the file's inode), so
//! only a file's first open costs a round trip.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;

use serde_json::json;
use substrate_policy::{Action, CompiledPolicy, ExecQuery, Mode, OpenQuery, Policy, RuleRef};
use substrate_sensor::gate::{sha256_of, Access, Answer, ExecArguments, Gate, Held, Request};
use substrate_trace::{Decision, PolicyDetail, Source, Span, SpanId, Timestamp};

use super::approval::{Approvals, Pending, Settlement};

/// One decision, for its `policy` span.
pub(super) struct Decided {
    /// How an `ask` was settled.
    approval: Option<Settlement>,
    /// The exec's arguments, when a rule needed them.
    arguments: Option<ExecArguments>,
    at: Timestamp,
    pid: i32,
    path: PathBuf,
    on: Access,
    action: Action,
    effective: Action,
    rule: String,
    reason: Option<String>,
    mode: Mode,
    latency_ns: u64,
}

/// What the guard did over the world's life, for the world span.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub(super) struct GuardSummary {
    /// Execs allowed and refused (loaders allowed with their program not
    /// counted).
    pub execs_allowed: u64,
    pub execs_denied: u64,
    /// Opens a `deny_read` (or `hidden`) entry refused.
    pub opens_denied: u64,
    /// Files whose later opens were let through without asking.
    pub files_passed: u64,
    /// The files `deny_read` names, found by walking its globs' directories
    /// when the world started (so that a hard link or a rename of one is
    /// refused too); absent without `deny_read`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deny_read_inodes: Option<usize>,
    /// Whether that walk saw every entry under those directories (it stops
    /// after [`WALK_BUDGET`] entries).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deny_read_walk_complete: Option<bool>,
}

/// A decision's `policy` span, and the pid whose exec it allowed (whose
/// exec span then names it).
pub(super) struct DueDecision {
    /// Its parent is the world span until [`DueDecision::parent_from`].
    pub span: Span,
    pub pid: i32,
    /// The pid and file of the exec it allowed.
    pub allowed_exec: Option<(i32, PathBuf)>,
}

impl DueDecision {
    /// Parents the span under the first known of: the span of the process
    /// that called the exec it allowed (`caller`, once that exec was seen),
    /// the span of its pid, the span of its parent. The monitor writes a
    /// decision after the kernel's events queued before it, its pid's fork
    /// among them, so the pid has a span unless the connector lost events:
    /// only then is its parent asked of `/proc` — here, not on the gate's
    /// thread, where it would cost every exec an open, a read and a close
    /// before its answer.
    pub fn parent_from(&mut self, caller: Option<SpanId>, span_of: impl Fn(i32) -> Option<SpanId>) {
        if let Some(parent) = caller
            .or_else(|| span_of(self.pid))
            .or_else(|| parent_of(self.pid).and_then(&span_of))
        {
            self.span.parent_span_id = Some(parent);
        }
    }
}

pub(super) struct PolicyGuard {
    /// Written (or dropped) to stop the thread.
    stop: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
    decided: Receiver<Decided>,
    summary: std::sync::Arc<std::sync::Mutex<GuardSummary>>,
}

impl PolicyGuard {
    /// Starts the guard on the world whose init is `init_pid`, when its
    /// policy says something about execs or opens: `None` when it does
    /// not. `upper` is the world's upper layer on the host, where what the
    /// world wrote is (`exec.allow_written`).
    /// `world_dir` is the world's state dir, where approvers connect when
    /// a rule can say `ask`.
    pub(super) fn start(
        init_pid: i32,
        policy: &Policy,
        upper: Option<PathBuf>,
        mountpoints: Vec<PathBuf>,
        world_dir: &std::path::Path,
    ) -> Result<Option<PolicyGuard>, Box<dyn std::error::Error + Send + Sync>> {
        let max_execs = policy.budget.max_execs;
        let held = Held {
            exec: !policy.commands.is_empty() || !policy.exec.is_default() || max_execs.is_some(),
            open: !policy.filesystem.deny_read.is_empty(),
        };
        if !held.exec && !held.open {
            return Ok(None);
        }
        let compiled = policy.compile()?;
        let mut summary = GuardSummary::default();
        let denied = if held.open {
            let denied = DeniedFiles::walk(init_pid, policy, &compiled);
            summary.deny_read_inodes = Some(denied.inodes.len());
            summary.deny_read_walk_complete = Some(denied.complete);
            denied
        } else {
            DeniedFiles::default()
        };
        let gate = Gate::open(init_pid, held)?;
        let (stop_read, stop_write) = nix::unistd::pipe()?;
        let (sender, decided) = mpsc::channel();
        let summary = std::sync::Arc::new(std::sync::Mutex::new(summary));
        let outcomes = Outcomes {
            sender,
            summary: std::sync::Arc::clone(&summary),
        };
        let approvals = if policy.commands.may_ask() && policy.mode() == Mode::Enforce {
            let outcomes = outcomes.clone();
            Some(Approvals::start(
                world_dir,
                &policy.ask,
                move |mut decided: Decided, allowed, settlement| {
                    decided.effective = if allowed { Action::Allow } else { Action::Deny };
                    decided.latency_ns = settlement.waited_ms.saturating_mul(1_000_000);
                    decided.approval = Some(settlement);
                    outcomes.record(decided);
                },
            )?)
        } else {
            None
        };
        let mut guard = Guard {
            compiled,
            // Where a file came from is looked up only when the policy asks.
            allow_written: policy.exec.allow_written,
            written: Written { upper },
            own: OwnFiles { mountpoints },
            loaders: Loaders::default(),
            hashes: ContentHashes::default(),
            budget: Budget {
                max_execs,
                execs: 0,
            },
            denied,
            passing: true,
            outcomes,
            approvals,
        };
        let thread = std::thread::Builder::new()
            .name("policy-gate".into())
            .spawn(move || {
                let served = gate.serve(stop_read.as_fd(), |request| guard.on_request(request));
                if let Err(e) = served {
                    tracing::error!(
                        "the policy gate stopped: {e}; execs and opens are no longer held"
                    );
                }
            })?;
        Ok(Some(PolicyGuard {
            stop: Some(stop_write),
            thread: Some(thread),
            decided,
            summary,
        }))
    }

    /// The decisions made since the last call, as `policy` spans whose
    /// parent the caller sets ([`DueDecision::parent_from`]): the span of
    /// the process each decided for.
    pub(super) fn due_decisions(&mut self, world_id: &str, world_span: SpanId) -> Vec<DueDecision> {
        let mut due = Vec::new();
        while let Ok(decided) = self.decided.try_recv() {
            let allowed_exec = (decided.on == Access::Exec && decided.effective == Action::Allow)
                .then(|| (decided.pid, decided.path.clone()));
            let pid = decided.pid;
            let span = policy_span(world_id, world_span, decided);
            due.push(DueDecision {
                span,
                pid,
                allowed_exec,
            });
        }
        due
    }
    /// What the guard did so far.
    pub(super) fn summary(&self) -> GuardSummary {
        self.summary.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for PolicyGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The gate thread's state: everything a decision reads or counts.
struct Guard {
    compiled: CompiledPolicy,
    /// `exec.allow_written`: whether a file the world wrote may run.
    allow_written: bool,
    written: Written,
    own: OwnFiles,
    loaders: Loaders,
    /// The hashes of the files run, when a rule matches on `sha256`.
    hashes: ContentHashes,
    budget: Budget,
    denied: DeniedFiles,
    /// Whether files are still let through for good (see
    /// [`Request::pass_later_opens`]); off once the kernel refuses.
    passing: bool,
    outcomes: Outcomes,
    /// Where `ask`s go, when a rule can say it.
    approvals: Option<Approvals<Decided>>,
}

/// Where decisions go: the monitor's `policy` spans and the summary.
#[derive(Clone)]
struct Outcomes {
    sender: Sender<Decided>,
    summary: std::sync::Arc<std::sync::Mutex<GuardSummary>>,
}

impl Outcomes {
    fn record(&self, decided: Decided) {
        if let Ok(mut summary) = self.summary.lock() {
            match (decided.on, decided.effective) {
                (Access::Exec, Action::Allow) => summary.execs_allowed += 1,
                (Access::Exec, _) => summary.execs_denied += 1,
                (Access::Open, Action::Allow) => {}
                (Access::Open, _) => summary.opens_denied += 1,
            }
        }
        let _ = self.sender.send(decided);
    }
}

/// What the gate's thread does with a request.
enum Outcome {
    Answer {
        answer: Answer,
        decided: Option<Decided>,
        /// An exec allowed: its dynamic loader, if it has one, is the
        /// kernel's next exec for the pid (see [`Loaders`]).
        loader_follows: bool,
    },
    /// An approver is asked; the request is answered when they settle it.
    Ask(Decided),
}

impl Outcome {
    /// An answer that needs nothing after it.
    fn just(answer: Answer, decided: Option<Decided>) -> Outcome {
        Outcome::Answer {
            answer,
            decided,
            loader_follows: false,
        }
    }
}

impl Guard {
    fn on_request(&mut self, request: Request) {
        let outcome = match request.access {
            Access::Exec => {
                if self.own.holds(&request) {
                    Outcome::just(Answer::Allow, None)
                } else {
                    self.decide_exec(&request)
                }
            }
            Access::Open => {
                let (answer, decided) = self.decide_open(&request);
                Outcome::just(answer, decided)
            }
        };
        match outcome {
            Outcome::Answer {
                answer,
                decided,
                loader_follows,
            } => {
                // Recorded before the answer: the monitor takes an exec's
                // decision when it reads the exec's own event, which the
                // answer lets happen. (A send on the channel: no system
                // call.)
                if let Some(decided) = decided {
                    self.outcomes.record(decided);
                }
                let pid = request.pid;
                let (answered, file) = request.answer_keeping_file(answer);
                if let Err(e) = answered {
                    tracing::error!("answering the kernel: {e}");
                }
                // After the answer, off the process's wait: the kernel opens
                // the loader only once the program is allowed, and this
                // thread reads that event only after this returns.
                if loader_follows {
                    self.loaders.expect(pid, &file);
                }
            }
            Outcome::Ask(decided) => match &self.approvals {
                Some(approvals) => approvals.ask(Pending {
                    on: "exec",
                    rule: decided.rule.clone(),
                    reason: decided.reason.clone(),
                    request,
                    decided,
                }),
                // Not reached: an ask is only made with approvals.
                None => drop(request),
            },
        }
    }

    /// An open is decided on the file's path as the kernel names it and,
    /// for a file with more than one name, on its inode: a hard link or a
    /// rename of a file `deny_read` names is that file.
    fn decide_open(&mut self, request: &Request) -> (Answer, Option<Decided>) {
        let decision = self.compiled.decide_open(&OpenQuery {
            path: &request.path,
            write: false,
        });
        let metadata = request.file.metadata().ok();
        let inode = metadata.as_ref().map(|m| (m.dev(), m.ino()));
        let (action, rule, reason) = match decision.action {
            Action::Allow => match inode
                .and_then(|inode| self.denied.inodes.get(&inode))
                .or_else(|| {
                    self.denied
                        .same_content(request, metadata.as_ref()?, &self.written)
                }) {
                Some(named) => (
                    Action::Deny,
                    named.rule.to_string(),
                    Some(format!(
                        "the same file as {} (a hard link, a rename or a copy-up of it)",
                        named.path.display()
                    )),
                ),
                None => {
                    // Asked again only if it gets another name (a hard
                    // link) or goes on the deny list.
                    if self.passing && metadata.as_ref().is_some_and(|m| m.nlink() <= 1) {
                        match request.pass_later_opens() {
                            Ok(()) => {
                                if let Ok(mut summary) = self.outcomes.summary.lock() {
                                    summary.files_passed += 1;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(
                                    "files can no longer be let through for good ({e}): \
                                     every open is asked"
                                );
                                self.passing = false;
                            }
                        }
                    }
                    return (Answer::Allow, None);
                }
            },
            action => {
                // Its other names are refused too.
                if let Some(inode) = inode {
                    if !self.denied.inodes.contains_key(&inode) {
                        let named =
                            NamedFile::new(decision.rule, request.path.clone(), &request.file);
                        self.denied.add(inode, named);
                    }
                }
                (
                    action,
                    decision.rule.to_string(),
                    decision.reason.as_deref().map(str::to_owned),
                )
            }
        };
        let effective = match decision.mode {
            Mode::Enforce => action,
            Mode::Observe => Action::Allow,
        };
        let decided = Decided {
            at: Timestamp::now(),
            pid: request.pid,
            path: request.path.clone(),
            on: Access::Open,
            approval: None,
            arguments: None,
            action,
            effective,
            rule,
            reason,
            mode: decision.mode,
            latency_ns: request.at.elapsed().as_nanos() as u64,
        };
        let answer = match effective {
            Action::Allow => Answer::Allow,
            Action::Deny | Action::Ask => Answer::Deny,
        };
        (answer, Some(decided))
    }
}

/// Entries the start-up walk of `deny_read`'s directories stops after, so
/// that a glob over a large tree (`**/.env` over the host's root) cannot
/// hold a world's start: about 50 ms here.
const WALK_BUDGET: usize = 50_000;

/// The files `deny_read` names, by inode (device and inode number as the
/// world's mounts report them) and by content.
///
/// The inode catches a rename of a file of the lower layers (overlayfs
/// keeps its inode number across the copy-up). A hard link does not keep
/// it: overlayfs gives the copied-up file the upper layer's inode number
/// under its new name (and under the old one too, once the old name is
/// removed). The content catches that: a file the world wrote (in its
/// upper layer, or on its tmpfs) with the size and SHA-256 of a file named
/// here is that file. Only a file's first open is checked; it is hashed
/// only when its size is one of theirs.
#[derive(Default)]
struct DeniedFiles {
    inodes: HashMap<(u64, u64), std::sync::Arc<NamedFile>>,
    /// The named files of at most [`HASHED_SIZE`] bytes, by size.
    by_size: HashMap<u64, Vec<std::sync::Arc<NamedFile>>>,
    complete: bool,
}

/// Named files larger than this are known by inode only: hashing a large
/// file at every first open of a file of that size would cost too much.
const HASHED_SIZE: u64 = 1 << 20;

struct NamedFile {
    rule: RuleRef,
    /// The name the policy knows it by, in the world's view.
    path: PathBuf,
    /// Its size and content hash, when it is small enough to be hashed.
    content: Option<(u64, [u8; 32])>,
}

impl NamedFile {
    fn new(rule: RuleRef, path: PathBuf, file: &File) -> NamedFile {
        let content = file
            .metadata()
            .ok()
            .filter(|m| m.len() <= HASHED_SIZE)
            .and_then(|m| Some((m.len(), sha256_of(file).ok()?)));
        NamedFile {
            rule,
            path,
            content,
        }
    }
}

impl DeniedFiles {
    fn add(&mut self, inode: (u64, u64), named: NamedFile) {
        let named = std::sync::Arc::new(named);
        if let Some((size, _)) = named.content {
            self.by_size
                .entry(size)
                .or_default()
                .push(std::sync::Arc::clone(&named));
        }
        self.inodes.insert(inode, named);
    }

    /// The named file whose content `request`'s file has, when the world
    /// wrote that file (see [`DeniedFiles`]).
    fn same_content(
        &self,
        request: &Request,
        metadata: &std::fs::Metadata,
        written: &Written,
    ) -> Option<&std::sync::Arc<NamedFile>> {
        let candidates = self.by_size.get(&metadata.len())?;
        if !written.by_world(request) {
            return None;
        }
        let sha256 = sha256_of(&request.file).ok()?;
        candidates
            .iter()
            .find(|named| named.content.is_some_and(|(_, hash)| hash == sha256))
    }

    /// Walks the directories `deny_read`'s globs are under (in the world's
    /// view, through `/proc/<init>/root`; symbolic links not followed, the
    /// kernel's pseudo filesystems not entered) and notes every file one
    /// names.
    fn walk(init_pid: i32, policy: &Policy, compiled: &CompiledPolicy) -> DeniedFiles {
        let root = PathBuf::from(format!("/proc/{init_pid}/root"));
        let mut prefixes: Vec<PathBuf> = policy
            .filesystem
            .deny_read
            .iter()
            .map(|glob| glob.literal_prefix())
            .collect();
        // The narrowest directories first, so that a broad glob (`**/.env`
        // from `/`) cannot spend the budget before them; a directory is
        // walked once.
        // (The stack is popped from its end: the deepest last.)
        prefixes.sort();
        prefixes.dedup();
        prefixes.sort_by_key(|prefix| prefix.components().count());
        let mut denied = DeniedFiles {
            complete: true,
            ..DeniedFiles::default()
        };
        let mut seen = 0usize;
        let mut stack: Vec<PathBuf> = prefixes;
        let mut visited = HashSet::new();
        while let Some(dir) = stack.pop() {
            if matches!(dir.to_str(), Some("/proc" | "/sys" | "/dev")) {
                continue;
            }
            let host_dir = root.join(dir.strip_prefix("/").unwrap_or(&dir));
            let Ok(entries) = std::fs::read_dir(&host_dir) else {
                continue;
            };
            // A directory reached twice (a prefix under another) is
            // walked once.
            match host_dir.metadata() {
                Ok(metadata) if visited.insert((metadata.dev(), metadata.ino())) => {}
                _ => continue,
            }
            for entry in entries.flatten() {
                seen += 1;
                if seen > WALK_BUDGET {
                    denied.complete = false;
                    return denied;
                }
                let Ok(metadata) = entry.metadata() else {
                    continue;
                };
                let path = dir.join(entry.file_name());
                if metadata.is_dir() {
                    stack.push(path);
                    continue;
                }
                if !metadata.is_file() {
                    continue;
                }
                let decision = compiled.decide_open(&OpenQuery {
                    path: &path,
                    write: false,
                });
                let inode = (metadata.dev(), metadata.ino());
                if decision.action != Action::Allow && !denied.inodes.contains_key(&inode) {
                    let Ok(file) = File::open(entry.path()) else {
                        continue;
                    };
                    denied.add(inode, NamedFile::new(decision.rule, path, &file));
                }
            }
        }
        denied
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
    fn holds(&self, request: &Request) -> bool {
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
    fn by_world(&self, request: &Request) -> bool {
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
    /// Each loader name seen, resolved: `canonicalize` costs a system call
    /// or two per component, on the gate's thread (which reads no other
    /// event meanwhile), so it is done once per name rather than once per
    /// exec.
    resolved: HashMap<Vec<u8>, PathBuf>,
}

/// The loader names [`Loaders::resolved`] keeps (a host has a handful).
const LOADER_NAMES: usize = 64;

impl Loaders {
    /// Expects `pid` to exec the dynamic loader of `file` next, if it has
    /// one.
    fn expect(&mut self, pid: i32, file: &File) {
        let Some(name) = elf_interpreter(file) else {
            return;
        };
        let path = match self.resolved.get(name.as_slice()) {
            Some(path) => path.clone(),
            None => {
                let path = PathBuf::from(std::ffi::OsStr::from_bytes(&name));
                // The kernel names the loader's fd by its resolved path.
                let path = std::fs::canonicalize(&path).unwrap_or(path);
                if self.resolved.len() < LOADER_NAMES {
                    self.resolved.insert(name, path.clone());
                }
                path
            }
        };
        self.expected.insert(pid, path);
    }
}

/// The content hashes of the files run, by version: without them a rule on
/// `sha256` would hash the whole file at every exec of it, on the gate's
/// path.
#[derive(Default)]
struct ContentHashes {
    by_version: HashMap<FileVersion, [u8; 32]>,
}

/// One content of one file: its inode, size and times. Any change to the
/// content sets the ctime (which no program can set) to the time of the
/// change, but only as finely as the filesystem keeps time: a change in
/// the same tick as the hash could leave it as it was. So a hash is kept
/// only for a file whose ctime was [`SETTLED`] before it was hashed (git's
/// rule for its racy index): any later change then moves the ctime.
#[derive(Hash, PartialEq, Eq)]
struct FileVersion {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// How long a file must have been unchanged for its hash to be kept: well
/// over any filesystem's timestamp granularity.
const SETTLED: std::time::Duration = std::time::Duration::from_secs(2);

/// The hashes [`ContentHashes`] keeps (it starts over when full).
const HASHES_KEPT: usize = 4096;

impl ContentHashes {
    /// The SHA-256 of `file`'s content, hashed unless this version of it
    /// was.
    fn of(&mut self, file: &File) -> Option<[u8; 32]> {
        let Ok(metadata) = file.metadata() else {
            return sha256_of(file).ok();
        };
        let version = FileVersion {
            dev: metadata.dev(),
            ino: metadata.ino(),
            size: metadata.size(),
            mtime: (metadata.mtime(), metadata.mtime_nsec()),
            ctime: (metadata.ctime(), metadata.ctime_nsec()),
        };
        if let Some(hash) = self.by_version.get(&version) {
            return Some(*hash);
        }
        let hashed_at = i128::from(Timestamp::now().unix_nanos());
        let hash = sha256_of(file).ok()?;
        let changed_at = i128::from(version.ctime.0) * 1_000_000_000 + i128::from(version.ctime.1);
        if changed_at + SETTLED.as_nanos() as i128 <= hashed_at {
            if self.by_version.len() >= HASHES_KEPT {
                self.by_version.clear();
            }
            self.by_version.insert(version, hash);
        }
        Some(hash)
    }
}

/// `budget.max_execs`: the programs the world may start over its life,
/// counted as the gate allows them (their loaders not counted).
struct Budget {
    max_execs: Option<u64>,
    execs: u64,
}

impl Guard {
    fn decide_exec(&mut self, request: &Request) -> Outcome {
        if self.loaders.expected.get(&request.pid) == Some(&request.path) {
            self.loaders.expected.remove(&request.pid);
            return Outcome::just(Answer::Allow, None);
        }
        // Where a file came from is looked up only when the policy asks.
        let written_by_world = !self.allow_written && self.written.by_world(request);
        let sha256 = if self.compiled.needs_sha256() {
            self.hashes.of(&request.file)
        } else {
            None
        };
        // Read only when a rule matches on them (see
        // `Request::exec_arguments`).
        let arguments = self.compiled.needs_argv().then(|| request.exec_arguments());
        let no_argv: Vec<Vec<u8>> = Vec::new();
        let argv = match &arguments {
            Some(Ok(arguments)) => &arguments.argv,
            _ => &no_argv,
        };
        let decision = self.compiled.decide_exec(&ExecQuery {
            exe: &request.path,
            argv: argv.as_slice(),
            sha256,
            written_by_world,
        });
        let mut effective = decision.effective;
        let mut rule = decision.rule.to_string();
        let mut action = decision.action;
        let mut reason = decision.reason.as_deref().map(str::to_owned);
        if let Some(Err(e)) = &arguments {
            // A rule could match on arguments no one can read: refused
            // (the kernel could not copy them either).
            (action, rule) = (Action::Deny, "commands (arguments)".into());
            reason = Some(format!("the exec's arguments cannot be read: {e}"));
            effective = match decision.mode {
                Mode::Enforce => Action::Deny,
                Mode::Observe => Action::Allow,
            };
        }
        let mut approval = None;
        if effective == Action::Ask {
            let for_world = self
                .approvals
                .as_ref()
                .and_then(|a| a.allowed_for_world.lock().ok())
                .is_some_and(|allowed| allowed.contains(&request.path));
            if for_world {
                effective = Action::Allow;
                approval = Some(Settlement {
                    answer: "world".into(),
                    by: "an approver, earlier in this world".into(),
                    waited_ms: 0,
                });
            }
        }
        if effective != Action::Deny {
            match self.budget.max_execs {
                Some(max) if self.budget.execs >= max => {
                    // Past the budget: refused in either mode (a budget is a
                    // limit, not a rule to observe).
                    (action, effective) = (Action::Deny, Action::Deny);
                    rule = "budget.max_execs".into();
                    reason = Some(format!("the world's {max} execs are spent"));
                }
                _ => self.budget.execs += 1,
            }
        }
        if effective == Action::Ask {
            // Expected before the approver's answer, which another thread
            // gives while this one reads on.
            self.loaders.expect(request.pid, &request.file);
        }
        let decided = Decided {
            at: Timestamp::now(),
            pid: request.pid,
            path: request.path.clone(),
            action,
            effective,
            rule,
            reason,
            approval,
            arguments: arguments.and_then(Result::ok),
            on: Access::Exec,
            mode: decision.mode,
            latency_ns: request.at.elapsed().as_nanos() as u64,
        };
        match effective {
            Action::Allow => Outcome::Answer {
                answer: Answer::Allow,
                decided: Some(decided),
                loader_follows: true,
            },
            Action::Deny => Outcome::just(Answer::Deny, Some(decided)),
            Action::Ask => Outcome::Ask(decided),
        }
    }
}

/// The parent of process `pid`, while it lives: the field after the state
/// in `/proc/PID/stat` (which costs the kernel less than `status`), after
/// the command's name in parentheses (which may hold anything).
fn parent_of(pid: i32) -> Option<i32> {
    use std::io::Read;
    // One read: the line is well under a page (`fs::read` would stat the
    // file and read it in small steps).
    let mut buffer = [0u8; 1024];
    let read = File::open(format!("/proc/{pid}/stat"))
        .ok()?
        .read(&mut buffer)
        .ok()?;
    let stat = &buffer[..read];
    let after_name = &stat[stat.iter().rposition(|&b| b == b')')? + 1..];
    let mut fields = after_name
        .split(|&b| b == b' ')
        .filter(|field| !field.is_empty());
    let _state = fields.next()?;
    std::str::from_utf8(fields.next()?).ok()?.parse().ok()
}

/// The `PT_INTERP` of an ELF file (its dynamic loader's name, as written),
/// if it has one: read with one `pread` of the file's first page, where
/// the header, the program headers and the loader's name are in any
/// executable a linker made (an exotic layout is not followed: its loader
/// is then decided as a command).
fn elf_interpreter(file: &File) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut page = [0u8; 4096];
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
        return Some(name[..end].to_vec());
    }
    None
}

/// A decision's `policy` span: the child of the deciding process's span
/// (the program that called `execve` or `open`).
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
            "on": match decided.on { Access::Exec => "exec", Access::Open => "open" },
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
    if let Some(arguments) = decided.arguments {
        // What the decision read (redacted as an exec span's argv is).
        span.process.argv = Some(arguments.argv);
        if arguments.other_threads {
            // Another thread could have changed them before the kernel
            // copied them: the exec span has what the program got.
            span.extra.insert("argv_racy".into(), json!(true));
        }
    }
    if let Some(approval) = decided.approval {
        span.extra.insert(
            "approval".into(),
            serde_json::to_value(approval).unwrap_or_default(),
        );
    }
    span
}
