//! Suspicious chains, found as spans are ingested (docs/graph.md,
//! "chains") and kept on the world's vertex (`chains`, indexed), so that
//! the `chains` query reads them instead of searching.
//!
//! Each batch's spans say what to look at again (`Triggers`); the chains
//! are then read from the graph as the batch left it, so a chain whose
//! parts arrive in different batches (a process's exec span is written
//! when it exits, after its file and network spans) is found when its last
//! part arrives, whatever the order.
//!
//! | kind | what |
//! |---|---|
//! | `download_exec` | a process connected (and got through) and wrote a file, which a process of the same world then ran (as its program, or as the script an interpreter was given) |
//! | `pipe_to_shell` | a shell reading its commands from stdin started beside a downloader (curl, wget, … or any process that connected) by the same parent within 2 s, the two running side by side: `curl … \| sh` |
//! | `credential_write` | a write, delete or rename (tried or done) of a credential path: `~/.ssh`, `~/.aws`, `/etc/shadow`, shell rc files, `.git/hooks`, … |
//! | `credential_read` | a read (tried or done) of a secret: `~/.ssh`, `~/.aws`, `/etc/shadow`, `.netrc`, … |
//! | `denied_then_retried` | a policy denial followed by another decision about the same subject, or a blocked connection followed by another attempt at the same destination, in the same world |

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;

use indradb::Edge;
use serde_json::{json, Map, Value};
use substrate_trace::Timestamp;
use uuid::Uuid;

use crate::error::Result;
use crate::model::{self, edge, prop};
use crate::store::View;

/// Siblings started this close together are taken for a pipeline.
const PIPE_WINDOW_NS: i64 = 2_000_000_000;

/// An exec span of the batch.
pub(crate) struct Exec {
    pub process: Uuid,
    pub parent: Option<Uuid>,
    pub ok: bool,
    /// Its program and the script it was given, absolute.
    pub files: Vec<Vec<u8>>,
    pub stdin_shell: bool,
    pub downloader: bool,
}

/// A connect (or sendto) span of the batch.
pub(crate) struct Connect {
    pub actor: Uuid,
    pub endpoint: Uuid,
    pub key: String,
    pub ok: bool,
    pub blocked: bool,
    /// `{"at", "span", "by"}`.
    pub moment: Value,
}

/// What a batch's spans make worth looking at again.
#[derive(Default)]
pub(crate) struct Triggers {
    pub execs: Vec<Exec>,
    /// (actor, path) of successful writes.
    pub writes: Vec<(Uuid, Vec<u8>)>,
    pub connects: Vec<Connect>,
    /// Subjects decided on (`subject_key`), and whether one was denied.
    pub decisions: BTreeMap<String, bool>,
    /// Chains a single span makes (credential paths).
    pub direct: BTreeMap<String, Value>,
}

impl Triggers {
    pub fn chain(&mut self, key: String, chain: Value) {
        match (self.direct.get_mut(&key), chain) {
            (Some(Value::Object(old)), Value::Object(new)) => crate::details::merge(old, &new),
            (_, chain) => {
                self.direct.insert(key, chain);
            }
        }
    }
}

/// What one world's ingest has learnt of it so far, so that each batch's
/// rules look at the few things that can complete a chain instead of
/// searching the graph (an endpoint's connections span every world; a
/// world's own are here). Learnt batch by batch from a world ingested from
/// its start; read from the graph (`seed`, the world's own vertices only)
/// when an ingest takes up where an earlier one stopped.
#[derive(Default)]
pub(crate) struct Memory {
    /// Files the world's processes wrote.
    written: HashSet<Uuid>,
    /// Files the world's processes ran.
    executed: HashSet<Uuid>,
    /// Processes with a child shell reading stdin.
    shell_parents: HashSet<Uuid>,
    /// Subjects (`subject_key`) the policy denied in the world.
    denied: HashSet<String>,
    /// By endpoint: its key, the first blocked attempt and the last one.
    attempts: HashMap<Uuid, Attempts>,
}

#[derive(Default)]
struct Attempts {
    key: String,
    first_blocked: Option<Value>,
    last: Option<Value>,
}

fn at_of(m: &Value) -> &str {
    m.get("at").and_then(Value::as_str).unwrap_or("")
}

impl Attempts {
    fn add(&mut self, blocked: Option<&Value>, last: &Value) {
        if let Some(b) = blocked {
            if self
                .first_blocked
                .as_ref()
                .is_none_or(|f| at_of(b) < at_of(f))
            {
                self.first_blocked = Some(b.clone());
            }
        }
        if self.last.as_ref().is_none_or(|l| at_of(last) > at_of(l)) {
            self.last = Some(last.clone());
        }
    }
}

impl Memory {
    /// What the graph holds of `world` (its vertices' edges).
    pub fn seed(view: &View<'_>, world: &str) -> Result<Memory> {
        let mut memory = Memory::default();
        let wv = model::world_vertex(world);
        let mut members: Vec<Uuid> = view
            .in_edges(wv, edge::IN_WORLD)?
            .into_iter()
            .map(|e| e.outbound_id)
            .collect();
        members.push(wv);
        for member in members {
            for e in view.all_out_edges(member)? {
                match e.t.as_str() {
                    edge::WROTE | edge::RENAMED | edge::EXEC_OF | edge::CONNECTED => {
                        let Some(d) = view.edge_details(&e)? else {
                            continue;
                        };
                        let ok = d.get("ok") == Some(&Value::Bool(true));
                        match e.t.as_str() {
                            edge::WROTE | edge::RENAMED if ok => {
                                memory.written.insert(e.inbound_id);
                            }
                            edge::EXEC_OF if ok => {
                                memory.executed.insert(e.inbound_id);
                            }
                            edge::CONNECTED => {
                                let by = d.get("by").cloned().unwrap_or(Value::Null);
                                let with_by = |field: &str| {
                                    d.get(field).cloned().map(|mut m| {
                                        m["by"] = by.clone();
                                        m
                                    })
                                };
                                let attempts = memory.attempts.entry(e.inbound_id).or_default();
                                attempts.key = text(&d, "endpoint").as_str().unwrap_or("").into();
                                if let Some(last) = with_by("last") {
                                    attempts.add(with_by("first_blocked").as_ref(), &last);
                                }
                            }
                            _ => {}
                        }
                    }
                    edge::DECIDED => {
                        if let Some(d) = view.details(e.inbound_id)? {
                            if d.get("decision").and_then(Value::as_str) == Some("deny") {
                                let subject = text(&d, "subject");
                                memory
                                    .denied
                                    .insert(subject_key(world, subject.as_str().unwrap_or("")));
                            }
                        }
                    }
                    edge::CHILD_OF => {
                        if let Some(p) = proc(view, member)? {
                            if model::reads_script_from_stdin(p.exe.as_deref(), &p.argv) {
                                memory.shell_parents.insert(e.inbound_id);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(memory)
    }

    /// What a batch adds.
    pub fn learn(&mut self, triggers: &Triggers) {
        for (_, path) in &triggers.writes {
            self.written.insert(model::file_vertex(path));
        }
        for exec in &triggers.execs {
            if exec.ok {
                for file in &exec.files {
                    self.executed.insert(model::file_vertex(file));
                }
            }
            if exec.stdin_shell {
                self.shell_parents.extend(exec.parent);
            }
        }
        for (key, denied) in &triggers.decisions {
            if *denied {
                self.denied.insert(key.clone());
            }
        }
        for c in &triggers.connects {
            let attempts = self.attempts.entry(c.endpoint).or_default();
            attempts.key.clone_from(&c.key);
            attempts.add(c.blocked.then_some(&c.moment), &c.moment);
        }
    }
}

/// Whether a chain merges with what is stored under its key (one entry
/// per process and path, its first and last time) rather than replacing it
/// (chains worked out again from the whole graph each time).
pub(crate) fn merges(chain: &Map<String, Value>) -> bool {
    matches!(
        chain.get("kind").and_then(Value::as_str),
        Some("credential_write" | "credential_read")
    )
}

/// The indexed key of a decision: its world and subject.
pub(crate) fn subject_key(world: &str, subject: &str) -> String {
    format!("{world}\n{subject}")
}

/// What the graph holds of a process, for the rules.
struct Proc {
    span: Option<String>,
    start: Option<Timestamp>,
    /// `None` while it runs (or when its end was lost).
    end: Option<Timestamp>,
    exe: Option<Vec<u8>>,
    argv: Vec<Vec<u8>>,
}

fn proc(view: &View<'_>, id: Uuid) -> Result<Option<Proc>> {
    let Some(d) = view.details(id)? else {
        return Ok(None);
    };
    let s = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_owned);
    Ok(Some(Proc {
        span: s("span"),
        start: s("start").and_then(|t| Timestamp::from_str(&t).ok()),
        end: s("end").and_then(|t| Timestamp::from_str(&t).ok()),
        exe: s("exe").map(String::into_bytes),
        argv: d
            .get("argv")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(|s| s.as_bytes().to_vec())
                    .collect()
            })
            .unwrap_or_default(),
    }))
}

fn at(d: &Value, field: &str) -> String {
    d.get(field)
        .and_then(|m| m.get("at"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

fn text(d: &Value, field: &str) -> Value {
    d.get(field).cloned().unwrap_or(Value::Null)
}

/// Whether a destination is one something could be downloaded from: not a
/// name server (port 53: a lookup is no download) nor a unix socket.
fn remote(key: &str) -> bool {
    !key.starts_with("unix:") && !key.ends_with(":53/udp") && !key.ends_with(":53/tcp")
}

/// The remote endpoints `actor` connected to in `world`: (key, got
/// through, blocked).
fn endpoints(view: &View<'_>, world: &str, actor: Uuid) -> Result<Vec<(String, bool, bool)>> {
    let mut out = Vec::new();
    for e in view.out_edges(actor, edge::CONNECTED)? {
        let Some(d) = view.edge_details(&e)? else {
            continue;
        };
        if d.get("world").and_then(Value::as_str) != Some(world) {
            continue;
        }
        let key = d
            .get("endpoint")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        if !remote(&key) {
            continue;
        }
        let ok = d.get("ok").and_then(Value::as_bool).unwrap_or(false);
        let blocked = d.get("blocked").and_then(Value::as_bool).unwrap_or(false);
        out.push((key, ok, blocked));
    }
    Ok(out)
}

/// The chains the batch's spans complete, by key.
pub(crate) fn chains(
    view: &View<'_>,
    world: &str,
    triggers: &Triggers,
    memory: &Memory,
) -> Result<BTreeMap<String, Value>> {
    let mut found = triggers.direct.clone();
    download_exec(view, world, triggers, memory, &mut found)?;
    pipe_to_shell(view, world, triggers, memory, &mut found)?;
    denied_then_retried(view, world, triggers, memory, &mut found)?;
    Ok(found)
}

fn download_exec(
    view: &View<'_>,
    world: &str,
    triggers: &Triggers,
    memory: &Memory,
    found: &mut BTreeMap<String, Value>,
) -> Result<()> {
    // Most worlds never run a file they wrote: nothing to look at.
    if memory.executed.is_empty() || memory.written.is_empty() {
        return Ok(());
    }
    // (writer, file) pairs to look at.
    let mut pairs: BTreeSet<(Uuid, Uuid)> = BTreeSet::new();
    for exec in triggers.execs.iter().filter(|e| e.ok) {
        for file in &exec.files {
            let fv = model::file_vertex(file);
            if memory.written.contains(&fv) {
                for e in view.in_edges(fv, edge::WROTE)? {
                    pairs.insert((e.outbound_id, fv));
                }
            }
        }
    }
    for (actor, path) in &triggers.writes {
        let fv = model::file_vertex(path);
        if memory.executed.contains(&fv) {
            pairs.insert((*actor, fv));
        }
    }
    let connected: BTreeSet<Uuid> = triggers
        .connects
        .iter()
        .filter(|c| c.ok)
        .map(|c| c.actor)
        .collect();
    for actor in connected {
        for e in view.out_edges(actor, edge::WROTE)? {
            if memory.executed.contains(&e.inbound_id) {
                pairs.insert((actor, e.inbound_id));
            }
        }
    }
    for (writer, fv) in pairs {
        let Some(wrote) = view.edge_details(&Edge::new(writer, model::ident(edge::WROTE), fv))?
        else {
            continue;
        };
        if wrote.get("world").and_then(Value::as_str) != Some(world)
            || wrote.get("ok") != Some(&Value::Bool(true))
        {
            continue;
        }
        let written = at(&wrote, "first");
        let runs: Vec<Value> = view
            .in_edges(fv, edge::EXEC_OF)?
            .iter()
            .filter_map(|e| view.edge_details(e).transpose())
            .collect::<Result<_>>()?;
        let runs: Vec<Value> = runs
            .into_iter()
            .filter(|d| {
                d.get("world").and_then(Value::as_str) == Some(world)
                    && d.get("ok") == Some(&Value::Bool(true))
                    && at(d, "first") > written
            })
            .collect();
        if runs.is_empty() {
            continue;
        }
        let got_through: Vec<String> = endpoints(view, world, writer)?
            .into_iter()
            .filter(|(_, ok, _)| *ok)
            .map(|(key, _, _)| key)
            .collect();
        if got_through.is_empty() {
            continue;
        }
        let path = wrote
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        for run in runs {
            let executor = text(&run, "by");
            let key = format!(
                "download_exec|{}|{}|{}",
                text(&wrote, "by").as_str().unwrap_or("-"),
                path,
                executor.as_str().unwrap_or("-")
            );
            found.insert(
                key,
                json!({
                    "kind": "download_exec",
                    "world": world,
                    "downloader": text(&wrote, "by"),
                    "endpoints": got_through,
                    "path": path,
                    "written": text(&wrote, "first"),
                    "executor": executor,
                    "executed": text(&run, "first"),
                    "as": text(&run, "as"),
                }),
            );
        }
    }
    Ok(())
}

fn pipe_to_shell(
    view: &View<'_>,
    world: &str,
    triggers: &Triggers,
    memory: &Memory,
    found: &mut BTreeMap<String, Value>,
) -> Result<()> {
    // Parents whose children to look at: those of a shell reading stdin,
    // and those of a downloader or a process that connected (its exec
    // span comes after its connections: it is written when it ends) that
    // have such a shell.
    let connected: HashSet<Uuid> = triggers.connects.iter().map(|c| c.actor).collect();
    let mut parents: BTreeSet<Uuid> = BTreeSet::new();
    for exec in &triggers.execs {
        let Some(parent) = exec.parent else {
            continue;
        };
        let fetcher = exec.downloader || connected.contains(&exec.process);
        if exec.stdin_shell || (fetcher && memory.shell_parents.contains(&parent)) {
            parents.insert(parent);
        }
    }
    // A connection that arrives after both exec spans (the monitor's
    // sources are not in lockstep) changes what the chain says.
    if !memory.shell_parents.is_empty() {
        for actor in &connected {
            for e in view.out_edges(*actor, edge::CHILD_OF)? {
                if memory.shell_parents.contains(&e.inbound_id) {
                    parents.insert(e.inbound_id);
                }
            }
        }
    }
    for parent in parents {
        let mut shells = Vec::new();
        let mut fetchers = Vec::new();
        for e in view.in_edges(parent, edge::CHILD_OF)? {
            let child = e.outbound_id;
            let Some(p) = proc(view, child)? else {
                continue;
            };
            if model::reads_script_from_stdin(p.exe.as_deref(), &p.argv) {
                shells.push(p);
                continue;
            }
            let eps = endpoints(view, world, child)?;
            if model::is_downloader(p.exe.as_deref(), &p.argv) || !eps.is_empty() {
                fetchers.push((p, eps));
            }
        }
        for shell in &shells {
            for (fetcher, eps) in &fetchers {
                let (Some(a), Some(b)) = (shell.start, fetcher.start) else {
                    continue;
                };
                // A pipeline's commands are started together and run
                // side by side; `curl …; sh` runs one after the other.
                let overlap =
                    shell.end.is_none_or(|end| b < end) && fetcher.end.is_none_or(|end| a < end);
                if !overlap || (a.unix_nanos() - b.unix_nanos()).abs() > PIPE_WINDOW_NS {
                    continue;
                }
                let key = format!(
                    "pipe_to_shell|{}|{}",
                    fetcher.span.as_deref().unwrap_or("-"),
                    shell.span.as_deref().unwrap_or("-")
                );
                found.insert(
                    key,
                    json!({
                        "kind": "pipe_to_shell",
                        "world": world,
                        "downloader": fetcher.span,
                        "shell": shell.span,
                        "endpoints": eps.iter().map(|e| e.0.clone()).collect::<Vec<_>>(),
                        "ok": eps.iter().any(|e| e.1),
                        "blocked": eps.iter().any(|e| e.2),
                        "first": {"at": b.to_string(), "span": fetcher.span},
                    }),
                );
            }
        }
    }
    Ok(())
}

fn denied_then_retried(
    view: &View<'_>,
    world: &str,
    triggers: &Triggers,
    memory: &Memory,
    found: &mut BTreeMap<String, Value>,
) -> Result<()> {
    for key in triggers
        .decisions
        .keys()
        .filter(|k| memory.denied.contains(*k))
    {
        let mut decisions: Vec<Value> = Vec::new();
        for id in view.vertices_with(prop::SUBJECT, Some(&Value::String(key.clone())))? {
            decisions.extend(view.details(id)?);
        }
        decisions.sort_by_key(|d| text(d, "at").as_str().unwrap_or("").to_owned());
        let Some(first_deny) = decisions
            .iter()
            .position(|d| d.get("decision").and_then(Value::as_str) == Some("deny"))
        else {
            continue;
        };
        let denied = &decisions[first_deny];
        let Some(retried) = decisions[first_deny + 1..]
            .iter()
            .find(|d| text(d, "at").as_str() > text(denied, "at").as_str())
        else {
            continue;
        };
        let subject = text(denied, "subject");
        let summary = |d: &Value| {
            json!({
                "at": text(d, "at"),
                "span": text(d, "span"),
                "by": text(d, "by"),
                "decision": text(d, "decision"),
                "rule": text(d, "rule"),
            })
        };
        found.insert(
            format!(
                "denied_then_retried|policy|{}",
                subject.as_str().unwrap_or("")
            ),
            json!({
                "kind": "denied_then_retried",
                "world": world,
                "what": "policy",
                "subject": subject,
                "denied": summary(denied),
                "retried": summary(retried),
                "attempts": decisions.len() - first_deny,
                "denials": decisions[first_deny..]
                    .iter()
                    .filter(|d| d.get("decision").and_then(Value::as_str) == Some("deny"))
                    .count(),
            }),
        );
    }
    let endpoints: BTreeSet<Uuid> = triggers.connects.iter().map(|c| c.endpoint).collect();
    for ev in endpoints {
        let Some(attempts) = memory.attempts.get(&ev) else {
            continue;
        };
        let (Some(denied), Some(retried)) = (&attempts.first_blocked, &attempts.last) else {
            continue;
        };
        if at_of(retried) > at_of(denied) {
            found.insert(
                format!("denied_then_retried|connect|{}", attempts.key),
                json!({
                    "kind": "denied_then_retried",
                    "world": world,
                    "what": "connect",
                    "endpoint": attempts.key,
                    "denied": denied,
                    "retried": retried,
                }),
            );
        }
    }
    Ok(())
}
