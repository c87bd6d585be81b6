//! An approver for a world's `ask`s (see `substrate_runtime::monitor::approval`):
//! connects to the world's approval socket and answers each question,
//! either with one verdict given in advance (`approve --verdict`) or by
//! asking a person on a terminal (`approve` on a tty, and `run` on one).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use substrate_runtime::monitor::approval::{FromApprover, ToApprover, Verdict, SOCKET_NAME};

/// How questions are answered.
pub enum Answering {
    /// Every question with this verdict; `once` returns after the first.
    Always { verdict: Verdict, once: bool },
    /// A person at this terminal: the prompt is written to it and the
    /// answer read from it.
    Prompt(File),
}

/// Connects to the approval socket of the world whose state dir is
/// `world_dir`, waiting up to `wait` for it to appear (the world's monitor
/// makes it as the world starts).
pub fn connect(world_dir: &Path, wait: Duration) -> Result<UnixStream> {
    let path = world_dir.join(SOCKET_NAME);
    let deadline = Instant::now() + wait;
    loop {
        match UnixStream::connect(&path) {
            Ok(stream) => return Ok(stream),
            Err(e) if Instant::now() >= deadline => {
                return Err(e).with_context(|| {
                    format!(
                        "{}: the world takes no answers (is it running, with a policy that asks?)",
                        path.display()
                    )
                })
            }
            // The socket appears while the world starts: its monitor binds
            // it before the world's first exec.
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Answers the world's questions until it ends (its monitor closes the
/// socket) or, with `Always { once: true }`, after the first answer. `by`
/// names the approver in the spans. Returns how many questions were
/// answered.
pub fn serve(stream: UnixStream, answering: Answering, by: &str) -> Result<u64> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut answered = 0;
    let mut queue: Vec<ToApprover> = Vec::new();
    loop {
        let mut line = String::new();
        if queue.is_empty() {
            if reader.read_line(&mut line)? == 0 {
                return Ok(answered);
            }
            match serde_json::from_str::<ToApprover>(&line) {
                Ok(message) => queue.push(message),
                Err(_) => continue,
            }
        }
        let message = queue.remove(0);
        let ToApprover::Ask {
            ask,
            pid,
            on,
            subject,
            rule,
            reason,
            timeout_ms,
        } = message
        else {
            continue;
        };
        let verdict = match &answering {
            Answering::Always { verdict, .. } => Some(*verdict),
            Answering::Prompt(tty) => {
                let question = format!(
                    "\r\nsubstrate: pid {pid} wants to {on} {subject}\r\n  {rule}{}\r\n  \
                     allow [o]nce, for this [w]orld, or [d]eny? ({}s) ",
                    reason
                        .as_deref()
                        .map(|r| format!(": {r}"))
                        .unwrap_or_default(),
                    timeout_ms.div_ceil(1000)
                );
                prompt(tty, &mut reader, &mut queue, ask, &question)?
            }
        };
        let Some(verdict) = verdict else {
            continue;
        };
        let mut answer = serde_json::to_vec(&FromApprover {
            answer: ask,
            verdict,
            by: by.to_owned(),
        })?;
        answer.push(b'\n');
        writer.write_all(&answer)?;
        answered += 1;
        if let Answering::Always { once: true, .. } = answering {
            return Ok(answered);
        }
    }
}

/// Asks the person at `tty` about question `ask`: their verdict, or `None`
/// when it was settled meanwhile (by another approver, or its timeout).
/// Other questions that arrive meanwhile are queued.
fn prompt(
    tty: &File,
    reader: &mut BufReader<UnixStream>,
    queue: &mut Vec<ToApprover>,
    ask: u64,
    question: &str,
) -> Result<Option<Verdict>> {
    let mut out = tty;
    out.write_all(question.as_bytes())?;
    out.flush()?;
    let mut input = BufReader::new(tty);
    loop {
        let (tty_ready, socket_ready) = {
            let mut fds = [
                PollFd::new(tty.as_fd(), PollFlags::POLLIN),
                PollFd::new(reader.get_ref().as_fd(), PollFlags::POLLIN),
            ];
            poll(&mut fds, PollTimeout::NONE)?;
            let ready = |fd: &PollFd| fd.revents().is_some_and(|r| !r.is_empty());
            (
                ready(&fds[0]),
                ready(&fds[1]) || !reader.buffer().is_empty(),
            )
        };
        if socket_ready {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                out.write_all(b"\r\n(the world ended)\r\n")?;
                return Ok(None);
            }
            match serde_json::from_str::<ToApprover>(&line) {
                Ok(ToApprover::Settled {
                    settled,
                    verdict,
                    by,
                }) if settled == ask => {
                    let verdict = match verdict {
                        Verdict::Deny => "denied",
                        Verdict::Once | Verdict::World => "allowed",
                    };
                    out.write_all(format!("\r\n({verdict} by {by})\r\n").as_bytes())?;
                    return Ok(None);
                }
                Ok(other @ ToApprover::Ask { .. }) => queue.push(other),
                _ => {}
            }
        }
        if tty_ready {
            let mut line = String::new();
            if input.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            match line.trim().to_ascii_lowercase().as_str() {
                "o" | "once" | "y" | "yes" => return Ok(Some(Verdict::Once)),
                "w" | "world" => return Ok(Some(Verdict::World)),
                "d" | "deny" | "n" | "no" => return Ok(Some(Verdict::Deny)),
                _ => out.write_all(b"  [o]nce, [w]orld or [d]eny? ")?,
            }
        }
    }
}
