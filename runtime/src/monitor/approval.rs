//! Approvers: who settles an exec a policy rule says `ask` about.
//!
//! The exec waits in the kernel (its fanotify permission event held, see
//! `substrate_sensor::gate`) while the world's monitor asks whoever is
//! connected to the world's approval socket, `approve.sock` in its state
//! dir (root's alone: the dir is 0700 and no world sees it):
//! `substrate-cli run` on a terminal, `substrate-cli approve WORLD` from
//! another one. The first answer settles it; with none within the policy's
//! `ask.timeout`, its `ask.default` does (deny unless it says allow).
//!
//! The protocol is JSON lines. The monitor sends every question to every
//! approver (the pending ones when one connects):
//! `{"ask": 1, "pid": 123, "on": "exec", "subject": "/usr/bin/curl",
//! "rule": "commands.rules[0]", "reason": "...", "timeout_ms": 60000}`,
//! and `{"settled": 1, "verdict": "once", "by": "..."}` once it is settled.
//! An approver answers `{"answer": 1, "verdict": "once" | "world" | "deny",
//! "by": "who"}`: `once` allows this exec, `world` allows this file for the
//! rest of the world's life, `deny` refuses it.
//!
//! The socket is served on a thread of its own: an ask never holds the
//! gate's thread, so the world's other execs and opens go on.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use serde::{Deserialize, Serialize};
use substrate_policy::ask::Unanswered;
use substrate_policy::AskPolicy;
use substrate_sensor::gate::{Answer, Request};

/// The socket's name in the world's state dir.
pub const SOCKET_NAME: &str = "approve.sock";

/// What an approver may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// This exec runs.
    Once,
    /// This file runs, now and for the rest of the world's life.
    World,
    /// This exec is refused.
    Deny,
}

/// A message from the monitor to an approver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToApprover {
    Ask {
        ask: u64,
        pid: i32,
        on: String,
        subject: String,
        rule: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        timeout_ms: u64,
    },
    Settled {
        settled: u64,
        verdict: Verdict,
        by: String,
    },
}

/// An approver's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FromApprover {
    pub answer: u64,
    pub verdict: Verdict,
    /// Who answered, as the approver says (the monitor adds the uid and
    /// pid the kernel gives for the connection).
    #[serde(default)]
    pub by: String,
}

/// How an ask was settled, for its `policy` span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settlement {
    /// `once`, `world`, `deny`, or `timeout` (then `effective` says what
    /// the policy's `ask.default` did).
    pub answer: String,
    /// Who answered: the approver's name and its uid and pid, or
    /// `ask.default` on a timeout.
    pub by: String,
    pub waited_ms: u64,
}

/// An exec waiting for an answer, handed over by the gate's thread.
pub(super) struct Pending<T> {
    pub request: Request,
    /// What the gate's owner records once the ask is settled.
    pub decided: T,
    pub on: &'static str,
    pub rule: String,
    pub reason: Option<String>,
}

/// The files approvers allowed for the rest of the world's life.
pub(super) type AllowedForWorld = Arc<Mutex<HashSet<PathBuf>>>;

/// The approval socket and the thread that serves it.
pub(super) struct Approvals<T: Send + 'static> {
    asks: mpsc::Sender<Pending<T>>,
    /// Written to when an ask is sent; read by the thread's poll.
    wake: OwnedFd,
    stop: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
    pub allowed_for_world: AllowedForWorld,
}

impl<T: Send + 'static> Approvals<T> {
    /// Binds `approve.sock` in `world_dir` and serves it. `settle` is called
    /// on the serving thread with each settled ask's `decided`, whether it
    /// was allowed, and how it was settled.
    pub(super) fn start(
        world_dir: &Path,
        policy: &AskPolicy,
        settle: impl FnMut(T, bool, Settlement) + Send + 'static,
    ) -> io::Result<Approvals<T>> {
        let path = world_dir.join(SOCKET_NAME);
        // A socket left by an earlier monitor of this world is stale.
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        let (wake_read, wake) = nix::unistd::pipe2(nix::fcntl::OFlag::O_NONBLOCK)?;
        let (stop_read, stop) = nix::unistd::pipe()?;
        let (asks, asked) = mpsc::channel();
        let allowed_for_world = AllowedForWorld::default();
        let mut server = Server {
            listener,
            approvers: BTreeMap::new(),
            next_approver: 0,
            pending: BTreeMap::new(),
            next_ask: 1,
            timeout: policy.timeout(),
            unanswered: policy.unanswered(),
            allowed_for_world: Arc::clone(&allowed_for_world),
            settle: Box::new(settle),
        };
        let thread = std::thread::Builder::new()
            .name("approvals".into())
            .spawn(move || server.serve(&asked, &wake_read, &stop_read))?;
        Ok(Approvals {
            asks,
            wake,
            stop: Some(stop),
            thread: Some(thread),
            allowed_for_world,
        })
    }

    /// Hands `pending` to the approvers. It is answered by the serving
    /// thread (denied there if the thread is gone).
    pub(super) fn ask(&self, pending: Pending<T>) {
        if self.asks.send(pending).is_ok() {
            let _ = nix::unistd::write(&self.wake, &[1]);
        }
    }
}

impl<T: Send + 'static> Drop for Approvals<T> {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Waiting<T> {
    pending: Pending<T>,
    since: Instant,
    deadline: Instant,
}

struct Approver {
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    /// The kernel's word on who connected.
    peer: String,
}

type Settle<T> = Box<dyn FnMut(T, bool, Settlement) + Send>;

struct Server<T> {
    listener: UnixListener,
    approvers: BTreeMap<u64, Approver>,
    next_approver: u64,
    pending: BTreeMap<u64, Waiting<T>>,
    next_ask: u64,
    timeout: Duration,
    unanswered: Unanswered,
    allowed_for_world: AllowedForWorld,
    settle: Settle<T>,
}

impl<T> Server<T> {
    fn serve(&mut self, asked: &mpsc::Receiver<Pending<T>>, wake: &OwnedFd, stop: &OwnedFd) {
        loop {
            let wait = self
                .pending
                .values()
                .map(|w| w.deadline.saturating_duration_since(Instant::now()))
                .min()
                .map_or(PollTimeout::NONE, |d| {
                    PollTimeout::try_from(d.as_millis().min(60_000) as i32 + 1)
                        .unwrap_or(PollTimeout::MAX)
                });
            let ids: Vec<u64> = self.approvers.keys().copied().collect();
            let ready = {
                let mut fds = vec![
                    PollFd::new(stop.as_fd(), PollFlags::POLLIN),
                    PollFd::new(wake.as_fd(), PollFlags::POLLIN),
                    PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
                ];
                for id in &ids {
                    fds.push(PollFd::new(
                        self.approvers[id].stream.as_fd(),
                        PollFlags::POLLIN,
                    ));
                }
                match poll(&mut fds, wait) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => {
                        tracing::error!("approvals: poll: {e}");
                        break;
                    }
                }
                fds.iter()
                    .map(|fd| fd.revents().is_some_and(|r| !r.is_empty()))
                    .collect::<Vec<bool>>()
            };
            if ready[0] {
                break;
            }
            if ready[1] {
                let mut drain = [0u8; 64];
                while nix::unistd::read(wake.as_raw_fd(), &mut drain).is_ok_and(|n| n > 0) {}
                while let Ok(pending) = asked.try_recv() {
                    self.open(pending);
                }
            }
            if ready[2] {
                self.accept();
            }
            for (id, ready) in ids.iter().zip(&ready[3..]) {
                if *ready {
                    self.read_answers(*id);
                }
            }
            self.expire();
        }
        // The world is over (or the monitor stops): nothing is left
        // waiting.
        let ids: Vec<u64> = self.pending.keys().copied().collect();
        for id in ids {
            self.settle(id, Verdict::Deny, "the monitor stopped".into(), "stopped");
        }
    }

    fn open(&mut self, pending: Pending<T>) {
        let id = self.next_ask;
        self.next_ask += 1;
        let now = Instant::now();
        let waiting = Waiting {
            pending,
            since: now,
            deadline: now + self.timeout,
        };
        let question = self.question(id, &waiting);
        self.pending.insert(id, waiting);
        self.broadcast(&question);
    }

    fn question(&self, id: u64, waiting: &Waiting<T>) -> ToApprover {
        ToApprover::Ask {
            ask: id,
            pid: waiting.pending.request.pid,
            on: waiting.pending.on.to_owned(),
            subject: waiting.pending.request.path.to_string_lossy().into_owned(),
            rule: waiting.pending.rule.clone(),
            reason: waiting.pending.reason.clone(),
            timeout_ms: waiting
                .deadline
                .saturating_duration_since(Instant::now())
                .as_millis() as u64,
        }
    }

    fn broadcast(&mut self, message: &ToApprover) {
        let mut line = serde_json::to_vec(message).expect("a message serializes");
        line.push(b'\n');
        self.approvers
            .retain(|_, approver| approver.stream.write_all(&line).is_ok());
    }

    fn accept(&mut self) {
        while let Ok((stream, _)) = self.listener.accept() {
            let peer =
                nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
                    .map_or_else(
                        |_| "unknown peer".to_owned(),
                        |c| format!("uid {} pid {}", c.uid(), c.pid()),
                    );
            // A slow or half-written approver must not hold the monitor
            // (and with it every ask's timeout): it is dropped instead.
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
            let Ok(reader) = stream.try_clone().map(BufReader::new) else {
                continue;
            };
            let id = self.next_approver;
            self.next_approver += 1;
            let mut approver = Approver {
                stream,
                reader,
                peer,
            };
            let questions: Vec<ToApprover> = self
                .pending
                .iter()
                .map(|(id, waiting)| self.question(*id, waiting))
                .collect();
            let mut alive = true;
            for question in questions {
                let mut line = serde_json::to_vec(&question).expect("a message serializes");
                line.push(b'\n');
                alive &= approver.stream.write_all(&line).is_ok();
            }
            if alive {
                self.approvers.insert(id, approver);
            }
        }
    }

    fn read_answers(&mut self, approver_id: u64) {
        let Some(approver) = self.approvers.get_mut(&approver_id) else {
            return;
        };
        let mut line = String::new();
        // One line per wake-up (poll said readable; half a line times out
        // and drops the approver).
        let read = approver.reader.read_line(&mut line);
        let peer = approver.peer.clone();
        match read {
            Ok(0) | Err(_) => {
                self.approvers.remove(&approver_id);
            }
            Ok(_) => match serde_json::from_str::<FromApprover>(&line) {
                Ok(answer) if self.pending.contains_key(&answer.answer) => {
                    let by = match answer.by.trim() {
                        "" => peer,
                        name => format!("{name} ({peer})"),
                    };
                    let label = match answer.verdict {
                        Verdict::Once => "once",
                        Verdict::World => "world",
                        Verdict::Deny => "deny",
                    };
                    self.settle(answer.answer, answer.verdict, by, label);
                }
                // An answer to a settled ask, or a line that is not one:
                // ignored.
                _ => {}
            },
        }
    }

    fn expire(&mut self) {
        let now = Instant::now();
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let verdict = match self.unanswered {
                Unanswered::Allow => Verdict::Once,
                Unanswered::Deny => Verdict::Deny,
            };
            self.settle(id, verdict, "ask.default".into(), "timeout");
        }
    }

    fn settle(&mut self, id: u64, verdict: Verdict, by: String, answer: &str) {
        let Some(waiting) = self.pending.remove(&id) else {
            return;
        };
        let allowed = verdict != Verdict::Deny;
        if verdict == Verdict::World {
            if let Ok(mut allowed) = self.allowed_for_world.lock() {
                allowed.insert(waiting.pending.request.path.clone());
            }
        }
        let settlement = Settlement {
            answer: answer.to_owned(),
            by: by.clone(),
            waited_ms: waiting.since.elapsed().as_millis() as u64,
        };
        let Pending {
            request, decided, ..
        } = waiting.pending;
        // Recorded before the kernel is answered: the world cannot end
        // (and its monitor close the trace) before its decision is there.
        (self.settle)(decided, allowed, settlement);
        if let Err(e) = request.answer(if allowed { Answer::Allow } else { Answer::Deny }) {
            tracing::error!("answering the kernel: {e}");
        }
        self.broadcast(&ToApprover::Settled {
            settled: id,
            verdict,
            by,
        });
    }
}
