//! The world monitor: follows a world's processes through the kernel's proc
//! connector and is the only writer of the world's `trace.jsonl`.
//!
//! Every exec in the world becomes an exec span marked `source: kernel`,
//! whatever the program is (static binaries and raw `execve` included): the
//! kernel reports fork, exec and exit of every descendant of the world's init,
//! and the program's argv, exe and cwd are read from `/proc` when its exec is
//! reported. A process that is gone before that read (a `/bin/true` in a
//! tight loop: about 3% of them here) still gets its span, with what the
//! kernel said (pid, parent, times, exit status) and no argv; the preload
//! tracer is what gives those their argv.
//!
//! Lines are appended whole (one `write` each, `O_APPEND`), so a crash leaves
//! at most an unfinished last line, which readers skip. Lost kernel events
//! (a receive-buffer overrun) are written as a `loss` span: silence never
//! means "nothing happened".

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often `follow` asks whether to give up.
const GIVE_UP_CHECK: Duration = Duration::from_millis(100);

use nix::time::{clock_gettime, ClockId};
use substrate_trace::{ExitStatus, Source, Span, SpanId, Timestamp, WorldDetail};

use crate::procevents::{ProcEvent, ProcEventKind, ProcEvents, ProcessTree, Received, TreeChange};
use crate::record::WorldExit;

#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("cannot follow the world's processes")]
    Events(#[from] crate::procevents::ProcEventsError),
    #[error("cannot write the trace {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A world's `trace.jsonl`, with counts of what it holds.
#[derive(Debug)]
pub struct TraceFile {
    path: PathBuf,
    file: File,
    world_id: String,
    counts: BTreeMap<String, u64>,
    /// The world span's id, the parent of the init's exec span.
    world_span: SpanId,
}

impl TraceFile {
    pub fn open(path: &Path, world_id: &str) -> Result<Self, MonitorError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| MonitorError::Write {
                path: path.to_owned(),
                source,
            })?;
        Ok(TraceFile {
            path: path.to_owned(),
            file,
            world_id: world_id.to_owned(),
            counts: BTreeMap::new(),
            world_span: SpanId::new(),
        })
    }

    fn write(&mut self, span: &Span) -> Result<(), MonitorError> {
        let mut line = match span.to_line() {
            Ok(line) => line,
            // A span over the size cap (a huge argv) is dropped whole, and
            // counted, rather than written cut.
            Err(_) => {
                *self.counts.entry("oversized".into()).or_default() += 1;
                return Ok(());
            }
        };
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|source| MonitorError::Write {
                path: self.path.clone(),
                source,
            })?;
        *self
            .counts
            .entry(span.kind().as_str().to_owned())
            .or_default() += 1;
        Ok(())
    }

    /// The world's final span: how its init ended, how long it ran, its fs
    /// diff totals and the counts of spans by kind.
    pub fn write_world_span(
        &mut self,
        start: Timestamp,
        exit: Option<WorldExit>,
        diff: Option<&crate::fsdiff::DiffSummary>,
    ) -> Result<(), MonitorError> {
        let end = Timestamp::now();
        let detail = WorldDetail {
            duration_ns: start.until(end).map(|d| d.as_nanos() as u64),
            fs: diff.map(|d| substrate_trace::FsTotals {
                added: d.added,
                changed: d.changed,
                deleted: d.deleted,
            }),
            spans: self.counts.clone(),
        };
        let mut span = Span::world(self.world_id.clone(), Source::Runtime, start, detail)
            .id(self.world_span)
            .end(end);
        if let Some(exit) = exit {
            span = span.exit(match exit {
                WorldExit::Code(code) => ExitStatus::Code(code),
                WorldExit::Signal(signal) => ExitStatus::Signal(signal),
            });
        }
        self.write(&span.build())
    }

    pub fn counts(&self) -> &BTreeMap<String, u64> {
        &self.counts
    }
}

/// An exec span between the exec and the exit (or the next exec).
struct OpenExec {
    id: SpanId,
    parent: Option<SpanId>,
    start: Timestamp,
    pid: i32,
    ppid: Option<i32>,
    world_pid: Option<u32>,
    world_ppid: Option<u32>,
    exe: Option<Vec<u8>>,
    argv: Option<Vec<Vec<u8>>>,
    cwd: Option<Vec<u8>>,
}

/// Subscribed before the world's processes run, so none of them is missed.
pub struct WorldMonitor {
    events: ProcEvents,
    trace: TraceFile,
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, to date the kernel's events.
    clock_offset_ns: i64,
}

/// What following a world produced.
pub struct MonitorReport {
    pub trace: TraceFile,
    /// How the init ended, as the kernel reported it.
    pub init_exit: Option<WorldExit>,
    /// Kernel events were lost: the trace may miss processes.
    pub lost: bool,
}

impl WorldMonitor {
    pub fn subscribe(trace: TraceFile) -> Result<Self, MonitorError> {
        let events = ProcEvents::subscribe()?;
        Ok(WorldMonitor {
            events,
            trace,
            clock_offset_ns: clock_offset_ns(),
        })
    }

    /// Follows the world whose init is `init_pid` until every process in it
    /// has exited, or until `give_up()` says so (checked every 100 ms: the
    /// caller knows the world is gone, e.g. its cgroup was removed).
    pub fn follow(
        mut self,
        init_pid: i32,
        give_up: impl Fn() -> bool,
    ) -> Result<MonitorReport, MonitorError> {
        let mut tree = ProcessTree::new(init_pid);
        let mut open: HashMap<i32, OpenExec> = HashMap::new();
        // The span a process belongs to: its own program's, or the one of
        // the process that forked it until it execs.
        let mut current: HashMap<i32, SpanId> = HashMap::new();
        current.insert(init_pid, self.trace.world_span);
        let mut parent_of: HashMap<i32, i32> = HashMap::new();
        let mut init_exit = None;
        let mut lost = false;
        let mut last_check = Instant::now();
        // Processes `exec`'d into the world are not descendants of its init;
        // they are recognised by the world's pid namespace when they exec.
        let world_pid_ns = fs::read_link(format!("/proc/{init_pid}/ns/pid")).ok();
        while !tree.is_empty() {
            let batch = self.events.next_events(Some(GIVE_UP_CHECK));
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) if e.is_recoverable() => continue,
                Err(e) => return Err(e.into()),
            };
            // Checked on a clock, not only when the kernel is quiet: on a
            // busy host other processes' events never stop arriving.
            if last_check.elapsed() >= GIVE_UP_CHECK {
                last_check = Instant::now();
                if give_up() {
                    break;
                }
            }
            for received in batch {
                let event = match received {
                    Received::Event(event) => event,
                    Received::Lost => {
                        tree.note_lost();
                        lost = true;
                        self.write_loss()?;
                        continue;
                    }
                };
                if let (ProcEventKind::Exec { tgid, .. }, Some(world_ns)) =
                    (&event.kind, &world_pid_ns)
                {
                    let entered = !tree.contains(*tgid)
                        && fs::read_link(format!("/proc/{tgid}/ns/pid")).ok().as_ref()
                            == Some(world_ns);
                    if entered && tree.adopt(*tgid) {
                        current.insert(*tgid, self.trace.world_span);
                    }
                }
                match tree.apply(&event) {
                    Some(TreeChange::Joined { tgid, parent_tgid }) => {
                        parent_of.insert(tgid, parent_tgid);
                        if let Some(&span) = current.get(&parent_tgid) {
                            current.insert(tgid, span);
                        }
                    }
                    Some(TreeChange::Exec { tgid }) => {
                        let time = self.time_of(&event);
                        // `exec` from a program ends that program's span.
                        if let Some(previous) = open.remove(&tgid) {
                            self.write_exec(previous, Some(time), None)?;
                        }
                        let exec = describe_exec(
                            tgid,
                            parent_of.get(&tgid).copied(),
                            current.get(&tgid).copied(),
                            time,
                        );
                        current.insert(tgid, exec.id);
                        open.insert(tgid, exec);
                    }
                    Some(TreeChange::Left { tgid, status }) => {
                        let exit = match (status.code(), status.signal()) {
                            (Some(code), _) => ExitStatus::Code(code),
                            (None, Some(signal)) => ExitStatus::Signal(signal),
                            (None, None) => ExitStatus::Code(0),
                        };
                        if tgid == init_pid {
                            init_exit = Some(match exit {
                                ExitStatus::Code(code) => WorldExit::Code(code),
                                ExitStatus::Signal(signal) => WorldExit::Signal(signal),
                            });
                        }
                        if let Some(exec) = open.remove(&tgid) {
                            let time = self.time_of(&event);
                            self.write_exec(exec, Some(time), Some(exit))?;
                        }
                        current.remove(&tgid);
                        parent_of.remove(&tgid);
                    }
                    None => {}
                }
            }
        }
        // Whatever is still open (the monitor gave up) is written as it is.
        for (_, exec) in open.drain() {
            self.write_exec(exec, None, None)?;
        }
        Ok(MonitorReport {
            trace: self.trace,
            init_exit,
            lost,
        })
    }

    fn time_of(&self, event: &ProcEvent) -> Timestamp {
        Timestamp::from_unix_nanos(event.timestamp_ns as i64 + self.clock_offset_ns)
    }

    fn write_exec(
        &mut self,
        exec: OpenExec,
        end: Option<Timestamp>,
        exit: Option<ExitStatus>,
    ) -> Result<(), MonitorError> {
        let world_id = self.trace.world_id.clone();
        let mut span = Span::exec(world_id, Source::Kernel, exec.start)
            .id(exec.id)
            .pid(exec.pid as u32);
        if let Some(parent) = exec.parent {
            span = span.parent(parent);
        }
        if let Some(ppid) = exec.ppid {
            span = span.ppid(ppid as u32);
        }
        if let Some(pid) = exec.world_pid {
            span = span.world_pid(pid);
        }
        if let Some(pid) = exec.world_ppid {
            span = span.world_ppid(pid);
        }
        if let Some(exe) = exec.exe {
            span = span.exe(exe);
        }
        if let Some(argv) = exec.argv {
            span = span.argv(argv);
        }
        if let Some(cwd) = exec.cwd {
            span = span.cwd(cwd);
        }
        if let Some(end) = end {
            span = span.end(end);
        }
        if let Some(exit) = exit {
            span = span.exit(exit);
        }
        self.trace.write(&span.build())
    }

    fn write_loss(&mut self) -> Result<(), MonitorError> {
        let span = Span {
            detail: substrate_trace::Detail::Other {
                kind: "loss".into(),
                detail: Some(serde_json::json!({
                    "source": "proc_connector",
                    "events": "unknown",
                    "reason": "receive buffer overrun",
                })),
            },
            ..Span::world(
                self.trace.world_id.clone(),
                Source::Monitor,
                Timestamp::now(),
                WorldDetail::default(),
            )
            .build()
        };
        self.trace.write(&span)
    }
}

/// What `/proc` still tells of a process that has just exec'd.
fn describe_exec(
    tgid: i32,
    ppid: Option<i32>,
    parent: Option<SpanId>,
    start: Timestamp,
) -> OpenExec {
    let proc = PathBuf::from(format!("/proc/{tgid}"));
    let argv = fs::read(proc.join("cmdline")).ok().map(|bytes| {
        bytes
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .map(<[u8]>::to_vec)
            .collect()
    });
    let os_bytes = |p: PathBuf| {
        use std::os::unix::ffi::OsStringExt;
        fs::read_link(p).ok().map(|p| p.into_os_string().into_vec())
    };
    let status = fs::read_to_string(proc.join("status")).unwrap_or_default();
    // NSpid lists the pid in each pid namespace, outermost first: the last
    // one is the pid inside the world.
    let ns_last = |key: &str, line: &str| {
        line.strip_prefix(key)
            .and_then(|rest| rest.split_whitespace().last()?.parse().ok())
    };
    let world_pid = status.lines().find_map(|l| ns_last("NSpid:", l));
    let world_ppid = ppid.and_then(|ppid| {
        fs::read_to_string(format!("/proc/{ppid}/status"))
            .ok()?
            .lines()
            .find_map(|l| ns_last("NSpid:", l))
    });
    OpenExec {
        id: SpanId::new(),
        parent,
        start,
        pid: tgid,
        ppid,
        world_pid,
        world_ppid,
        exe: os_bytes(proc.join("exe")),
        argv,
        cwd: os_bytes(proc.join("cwd")),
    }
}

fn clock_offset_ns() -> i64 {
    let nanos = |clock| {
        clock_gettime(clock)
            .map(|t| t.tv_sec() * 1_000_000_000 + t.tv_nsec())
            .unwrap_or(0)
    };
    nanos(ClockId::CLOCK_REALTIME) - nanos(ClockId::CLOCK_MONOTONIC)
}
