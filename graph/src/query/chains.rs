//! `chains`: the suspicious chains found as worlds were ingested
//! (`detect`), with the processes they name.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::Serialize;
use serde_json::Value;
use substrate_trace::SpanId;

use super::Process;
use crate::error::Result;
use crate::model::{self, prop};
use crate::store::{Graph, View};

#[derive(Debug, Serialize)]
pub struct Chains {
    pub chains: Vec<Chain>,
}

#[derive(Debug, Serialize)]
pub struct Chain {
    /// `download_exec`, `pipe_to_shell`, `credential_write`,
    /// `credential_read`, `denied_then_retried`.
    pub kind: String,
    pub world: String,
    /// When it started (its first step).
    pub at: String,
    /// What was found, as stored (span ids name its processes).
    pub detail: Value,
    /// The processes it names, by span id.
    pub processes: BTreeMap<String, Process>,
}

impl Graph {
    /// Every chain, or those of `world` / of `kind`.
    pub fn chains(&self, world: Option<&str>, kind: Option<&str>) -> Result<Chains> {
        let view = self.view();
        let worlds = match (world, kind.and_then(prop::chain_kind)) {
            (Some(w), _) => vec![model::world_vertex(w)],
            (None, Some(marked)) => view.vertices_with(marked, None)?,
            (None, None) => view.vertices_with(prop::CHAINS, None)?,
        };
        let mut chains = Vec::new();
        for wv in worlds {
            let Some(Value::Object(found)) = view.vertex_prop(wv, prop::CHAINS)? else {
                continue;
            };
            for (_, chain) in found {
                let k = chain
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                if kind.is_some_and(|kind| kind != k) {
                    continue;
                }
                let w = chain
                    .get("world")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                let processes = processes(&view, &w, &chain)?;
                chains.push(Chain {
                    at: first_at(&chain),
                    kind: k,
                    world: w,
                    detail: chain,
                    processes,
                });
            }
        }
        chains.sort_by(|a, b| (&a.world, &a.at, &a.kind).cmp(&(&b.world, &b.at, &b.kind)));
        Ok(Chains { chains })
    }
}

/// The time a chain starts: its first step's.
fn first_at(chain: &Value) -> String {
    for field in ["written", "first", "denied"] {
        if let Some(at) = chain
            .get(field)
            .and_then(|m| m.get("at"))
            .and_then(Value::as_str)
        {
            return at.to_owned();
        }
    }
    String::new()
}

/// The span ids a chain names (`downloader`, `executor`, `shell`,
/// `process`, `denied.by`, `retried.by`), looked up.
fn processes(view: &View<'_>, world: &str, chain: &Value) -> Result<BTreeMap<String, Process>> {
    let mut spans: Vec<&str> = Vec::new();
    for field in ["downloader", "executor", "shell", "process"] {
        spans.extend(chain.get(field).and_then(Value::as_str));
    }
    for field in ["denied", "retried"] {
        spans.extend(
            chain
                .get(field)
                .and_then(|m| m.get("by"))
                .and_then(Value::as_str),
        );
    }
    let mut out = BTreeMap::new();
    for span in spans {
        let Ok(id) = SpanId::from_str(span) else {
            continue;
        };
        if let Some(p) = Process::of(view, model::span_vertex(world, &id))? {
            out.insert(span.to_owned(), p);
        }
    }
    Ok(out)
}
