//! `tree WORLD|SPAN`: the process tree of a world (or below one process),
//! each process with the files it touched, where it connected, the names it
//! looked up and the policy's decisions about what it tried.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;

use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;
use substrate_trace::SpanId;
use uuid::Uuid;

use super::{find_process, flag, names_of, string, strings, Moment, Process};
use crate::error::{Error, Result};
use crate::model::{self, edge};
use crate::store::{Graph, View};

#[derive(Debug, Serialize)]
pub struct Tree {
    pub world: String,
    pub root: Node,
}

/// A node: the world (its root), a process, or an actor whose exec span
/// is not in the graph (`unknown`: lost, or still running when ingested).
#[derive(Debug, Serialize)]
pub struct Node {
    pub kind: &'static str,
    #[serde(flatten)]
    pub process: Process,
    pub files: Vec<FileUse>,
    pub connections: Vec<Connection>,
    pub lookups: Vec<Lookup>,
    pub decisions: Vec<Decision>,
    pub children: Vec<Node>,
}

#[derive(Clone, Debug, Serialize)]
pub struct FileUse {
    pub path: String,
    /// `wrote`, `read`, `deleted`, `renamed`.
    pub edge: String,
    pub ops: Vec<String>,
    pub ok: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errnos: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<String>,
    pub first: Option<Moment>,
    pub last: Option<Moment>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Connection {
    pub endpoint: String,
    pub verdicts: Vec<String>,
    pub blocked: bool,
    pub ok: bool,
    pub names: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errnos: Vec<String>,
    pub first: Option<Moment>,
    pub last: Option<Moment>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Lookup {
    pub name: String,
    pub answers: Vec<String>,
    pub verdicts: Vec<String>,
    pub first: Option<Moment>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Decision {
    pub span: Option<String>,
    pub at: Option<String>,
    pub decision: Option<String>,
    pub rule: Option<String>,
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Graph {
    /// The tree of world `target`, or below the process whose exec span is
    /// `target` (in `world`, if given).
    pub fn tree(&self, target: &str, world: Option<&str>) -> Result<Tree> {
        let view = self.view();
        let is_world = world.is_none()
            && crate::traces::check_world_id(target).is_ok()
            && view.vertex_type(model::world_vertex(target))?.is_some();
        if is_world {
            return world_tree(self, &view, target);
        }
        if SpanId::from_str(target).is_err() {
            return Err(match world {
                Some(world) => Error::UnknownSpan {
                    span: target.to_owned(),
                    world: Some(world.to_owned()),
                },
                None => Error::NotWorldOrSpan {
                    what: target.to_owned(),
                },
            });
        }
        let (id, process) = find_process(&view, target, world)?;
        let world = process.world.clone().unwrap_or_default();
        let mut children: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        let mut members = vec![id];
        let mut i = 0;
        while i < members.len() {
            for e in view.in_edges(members[i], edge::CHILD_OF)? {
                children.entry(members[i]).or_default().push(e.outbound_id);
                members.push(e.outbound_id);
            }
            i += 1;
        }
        let root = node(
            &view,
            id,
            "process",
            Some(process),
            &children,
            &mut HashMap::new(),
            &mut HashMap::new(),
            &mut HashSet::new(),
        )?;
        Ok(Tree { world, root })
    }
}

fn world_tree(graph: &Graph, view: &View<'_>, world: &str) -> Result<Tree> {
    let wv = model::world_vertex(world);
    let details = view.details(wv)?;
    let world_span = details.as_ref().and_then(|d| string(d, "span"));
    let world_actor = world_span
        .as_deref()
        .and_then(|s| SpanId::from_str(s).ok())
        .map(|s| model::span_vertex(world, &s));
    let members: Vec<Uuid> = view
        .in_edges(wv, edge::IN_WORLD)?
        .into_iter()
        .map(|e| e.outbound_id)
        .collect();
    let member_set: HashSet<Uuid> = members.iter().copied().collect();
    // Each member's exec span and activities, read on every core: the
    // reads are independent, and a world has dozens of processes.
    // The world's own actors' activities with them (no exec span).
    let own: Vec<Uuid> = std::iter::once(wv).chain(world_actor).collect();
    let fetched: Vec<(Uuid, bool, Option<Process>, Node)> = own
        .iter()
        .map(|&a| (a, false))
        .chain(
            members
                .iter()
                .filter(|&&m| Some(m) != world_actor)
                .map(|&m| (m, true)),
        )
        .collect::<Vec<_>>()
        .par_iter()
        .map(|&(m, member)| {
            let view = graph.view();
            let process = if member { Process::of(&view, m)? } else { None };
            let mut acts = empty_node();
            activities(&view, m, &mut acts)?;
            Ok((m, member, process, acts))
        })
        .collect::<Result<_>>()?;
    let mut children: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
    let mut processes: HashMap<Uuid, Process> = HashMap::new();
    let mut acts: HashMap<Uuid, Node> = HashMap::new();
    let mut own_acts = Vec::new();
    for (m, member, process, node) in fetched {
        if !member {
            own_acts.push(node);
            continue;
        }
        acts.insert(m, node);
        // The parent from the exec span's own `parent_span_id`: no read.
        let parent = match process {
            Some(p) => {
                let parent = p
                    .parent
                    .as_deref()
                    .and_then(|s| SpanId::from_str(s).ok())
                    .map(|s| model::span_vertex(world, &s));
                processes.insert(m, p);
                parent
            }
            None => None,
        };
        let parent = parent.filter(|p| member_set.contains(p) && Some(*p) != world_actor);
        children.entry(parent.unwrap_or(wv)).or_default().push(m);
    }
    let mut seen = HashSet::new();
    let mut root = Node {
        kind: "world",
        process: Process {
            span: world_span,
            world: Some(world.to_owned()),
            start: details.as_ref().and_then(|d| string(d, "start")),
            end: details.as_ref().and_then(|d| string(d, "end")),
            result: details
                .as_ref()
                .and_then(|d| d.get("result").cloned())
                .unwrap_or(Value::Null),
            ..Process::default()
        },
        files: Vec::new(),
        connections: Vec::new(),
        lookups: Vec::new(),
        decisions: Vec::new(),
        children: Vec::new(),
    };
    // What the world itself did (spans without a parent, or whose parent
    // is the world span: the monitor's, the resolver's).
    for node in own_acts {
        root.files.extend(node.files);
        root.connections.extend(node.connections);
        root.lookups.extend(node.lookups);
        root.decisions.extend(node.decisions);
        sort_activities(&mut root);
    }
    for child in children.get(&wv).cloned().unwrap_or_default() {
        let process = processes.remove(&child);
        let kind = if process.is_some() {
            "process"
        } else {
            "unknown"
        };
        let process = process.unwrap_or_else(|| Process::unknown(None, world));
        root.children.push(node(
            view,
            child,
            kind,
            Some(process),
            &children,
            &mut processes,
            &mut acts,
            &mut seen,
        )?);
    }
    sort_children(&mut root.children);
    Ok(Tree {
        world: world.to_owned(),
        root,
    })
}

/// A node with nothing in it yet.
fn empty_node() -> Node {
    Node {
        kind: "process",
        process: Process::default(),
        files: Vec::new(),
        connections: Vec::new(),
        lookups: Vec::new(),
        decisions: Vec::new(),
        children: Vec::new(),
    }
}

/// The node of `id` and its subtree; `known` and `acts` hold processes and
/// activities read before (`world_tree`), the others are read here.
#[allow(clippy::too_many_arguments)]
fn node(
    view: &View<'_>,
    id: Uuid,
    kind: &'static str,
    process: Option<Process>,
    children: &HashMap<Uuid, Vec<Uuid>>,
    known: &mut HashMap<Uuid, Process>,
    acts: &mut HashMap<Uuid, Node>,
    seen: &mut HashSet<Uuid>,
) -> Result<Node> {
    seen.insert(id);
    let mut this = match acts.remove(&id) {
        Some(node) => node,
        None => {
            let mut node = empty_node();
            activities(view, id, &mut node)?;
            node
        }
    };
    this.kind = kind;
    this.process = process.unwrap_or_default();
    for &child in children.get(&id).map(Vec::as_slice).unwrap_or_default() {
        if seen.contains(&child) {
            continue;
        }
        let process = match known.remove(&child) {
            Some(p) => Some(p),
            None => Process::of(view, child)?,
        };
        let kind = if process.is_some() {
            "process"
        } else {
            "unknown"
        };
        this.children.push(node(
            view, child, kind, process, children, known, acts, seen,
        )?);
    }
    sort_children(&mut this.children);
    Ok(this)
}

fn sort_children(children: &mut [Node]) {
    children.sort_by(|a, b| {
        (a.process.start.as_deref(), a.process.span.as_deref())
            .cmp(&(b.process.start.as_deref(), b.process.span.as_deref()))
    });
}

/// The files, connections, lookups and decisions of `actor`, into `node`.
fn activities(view: &View<'_>, actor: Uuid, node: &mut Node) -> Result<()> {
    let mut endpoint_keys: BTreeMap<Uuid, Option<Value>> = BTreeMap::new();
    // Every activity edge has details: one scan finds them all.
    let types = [
        edge::WROTE,
        edge::READ,
        edge::DELETED,
        edge::RENAMED,
        edge::CONNECTED,
        edge::RESOLVED,
        edge::DECIDED,
    ];
    for (e, d) in view.out_details(actor, &types)? {
        let t = e.t.as_str();
        match t {
            edge::WROTE | edge::READ | edge::DELETED | edge::RENAMED => {
                let path = match string(&d, "path") {
                    Some(path) => path,
                    None => view
                        .details(e.inbound_id)?
                        .and_then(|f| string(&f, "path"))
                        .unwrap_or_default(),
                };
                node.files.push(FileUse {
                    path,
                    edge: t.to_owned(),
                    ops: strings(&d, "ops"),
                    ok: flag(&d, "ok"),
                    errnos: strings(&d, "errnos"),
                    to: strings(&d, "to"),
                    from: strings(&d, "from"),
                    first: Moment::of(&d, "first"),
                    last: Moment::of(&d, "last"),
                });
            }
            edge::CONNECTED => {
                let address = view
                    .details(e.inbound_id)?
                    .and_then(|ep| string(&ep, "address"));
                let names = match (&address, string(&d, "world")) {
                    (Some(a), Some(w)) => names_of(view, &w, a)?,
                    _ => Vec::new(),
                };
                node.connections.push(Connection {
                    endpoint: string(&d, "endpoint").unwrap_or_default(),
                    verdicts: strings(&d, "verdicts"),
                    blocked: flag(&d, "blocked"),
                    ok: flag(&d, "ok"),
                    names,
                    errnos: strings(&d, "errnos"),
                    first: Moment::of(&d, "first"),
                    last: Moment::of(&d, "last"),
                });
            }
            edge::RESOLVED => {
                let name = match endpoint_keys.get(&e.inbound_id) {
                    Some(v) => v.clone(),
                    None => {
                        let v = view.details(e.inbound_id)?;
                        endpoint_keys.insert(e.inbound_id, v.clone());
                        v
                    }
                };
                node.lookups.push(Lookup {
                    name: name.and_then(|n| string(&n, "name")).unwrap_or_default(),
                    answers: strings(&d, "answers"),
                    verdicts: strings(&d, "verdicts"),
                    first: Moment::of(&d, "first"),
                });
            }
            edge::DECIDED => {
                let d = view.details(e.inbound_id)?.unwrap_or(Value::Null);
                node.decisions.push(Decision {
                    span: string(&d, "span"),
                    at: string(&d, "at"),
                    decision: string(&d, "decision"),
                    rule: string(&d, "rule"),
                    subject: string(&d, "subject"),
                    reason: string(&d, "reason"),
                });
            }
            _ => {}
        }
    }
    sort_activities(node);
    Ok(())
}

/// A node's activities in their order (stable: equal keys keep theirs).
fn sort_activities(node: &mut Node) {
    node.files
        .sort_by(|a, b| (&a.path, &a.edge).cmp(&(&b.path, &b.edge)));
    node.connections.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
    node.lookups.sort_by(|a, b| a.name.cmp(&b.name));
    node.decisions
        .sort_by(|a, b| (&a.at, &a.span).cmp(&(&b.at, &b.span)));
}
