//! The queries (`substrate-cli graph …`), one file each. Each returns a
//! typed answer that `render` prints as text, JSON, DOT or SVG.

pub mod chains;
pub mod connections;
pub mod tree;
pub mod what_changed;
pub mod who_wrote;
pub mod worlds;

use std::str::FromStr;

use serde::Serialize;
use serde_json::Value;
use substrate_trace::SpanId;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{self, edge, prop};
use crate::store::View;

/// A process as answers show it: its exec span's fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Process {
    pub span: Option<String>,
    pub world: Option<String>,
    pub exe: Option<String>,
    pub argv: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub world_pid: Option<u64>,
    pub start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    pub result: Value,
    /// The span it was started by (its parent's exec span, or the world's).
    #[serde(skip)]
    pub parent: Option<String>,
}

impl Process {
    /// The process vertex `id`'s, `None` when its exec span is not in the
    /// graph.
    pub fn of(view: &View<'_>, id: Uuid) -> Result<Option<Process>> {
        Ok(view.details(id)?.map(|d| Process::from_details(&d)))
    }

    fn from_details(d: &Value) -> Process {
        let s = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_owned);
        Process {
            span: s("span"),
            world: s("world"),
            exe: s("exe"),
            argv: d
                .get("argv")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            cwd: s("cwd"),
            pid: d.get("pid").and_then(Value::as_u64),
            world_pid: d.get("world_pid").and_then(Value::as_u64),
            start: s("start"),
            end: s("end"),
            result: d.get("result").cloned().unwrap_or(Value::Null),
            parent: s("parent"),
        }
    }

    /// Who did something whose exec span is not in the graph: its span id.
    pub fn unknown(span: Option<String>, world: &str) -> Process {
        Process {
            span,
            world: Some(world.to_owned()),
            ..Process::default()
        }
    }

    /// `curl -sO http://…` (argv, else the exe, else the span id).
    pub fn label(&self) -> String {
        if !self.argv.is_empty() {
            self.argv.join(" ")
        } else if let Some(exe) = &self.exe {
            exe.clone()
        } else {
            format!("span {}", self.span.as_deref().unwrap_or("?"))
        }
    }
}

/// The process vertex of `span`: in `world` if given, else wherever the
/// graph has it (by the indexed span id).
pub(crate) fn find_process(
    view: &View<'_>,
    span: &str,
    world: Option<&str>,
) -> Result<(Uuid, Process)> {
    let unknown = || Error::UnknownSpan {
        span: span.to_owned(),
        world: world.map(str::to_owned),
    };
    let id = SpanId::from_str(span).map_err(|_| unknown())?;
    let candidates: Vec<Uuid> = match world {
        Some(world) => vec![model::span_vertex(world, &id)],
        None => view.vertices_with(prop::SPAN, Some(&Value::String(id.to_string())))?,
    };
    for candidate in candidates {
        if let Some(process) = Process::of(view, candidate)? {
            return Ok((candidate, process));
        }
    }
    Err(unknown())
}

/// The processes `id` descends from, nearest first (through `child_of`, up
/// to the world's init), at most 64.
pub(crate) fn ancestry(view: &View<'_>, id: Uuid) -> Result<Vec<Process>> {
    let mut out = Vec::new();
    let mut current = id;
    while out.len() < 64 {
        let Some(parent) = view
            .out_edges(current, edge::CHILD_OF)?
            .first()
            .map(|e| e.inbound_id)
        else {
            break;
        };
        match Process::of(view, parent)? {
            Some(p) => out.push(p),
            None => break,
        }
        current = parent;
    }
    Ok(out)
}

/// `id` and every process below it (through `child_of`), breadth first.
pub(crate) fn descendants(view: &View<'_>, id: Uuid) -> Result<Vec<Uuid>> {
    let mut out = vec![id];
    let mut i = 0;
    while i < out.len() {
        for e in view.in_edges(out[i], edge::CHILD_OF)? {
            if !out.contains(&e.outbound_id) {
                out.push(e.outbound_id);
            }
        }
        i += 1;
    }
    Ok(out)
}

/// The names `world` looked up that answered `address`.
pub(crate) fn names_of(view: &View<'_>, world: &str, address: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for e in view.in_edges(model::answer_vertex(world, address), edge::RESOLVED)? {
        if let Some(name) = view
            .details(e.outbound_id)?
            .and_then(|d| string(&d, "name"))
        {
            names.push(name);
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// A `{"at", "span"}` moment of an edge's details.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Moment {
    pub at: String,
    pub span: String,
}

impl Moment {
    pub(crate) fn of(d: &Value, field: &str) -> Option<Moment> {
        let m = d.get(field)?;
        Some(Moment {
            at: m.get("at")?.as_str()?.to_owned(),
            span: m.get("span")?.as_str()?.to_owned(),
        })
    }
}

pub(crate) fn strings(d: &Value, field: &str) -> Vec<String> {
    d.get(field)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn string(d: &Value, field: &str) -> Option<String> {
    d.get(field).and_then(Value::as_str).map(str::to_owned)
}

pub(crate) fn flag(d: &Value, field: &str) -> bool {
    d.get(field).and_then(Value::as_bool).unwrap_or(false)
}
