//! `who-wrote PATH`: which processes, in which worlds, wrote, created,
//! renamed or deleted a path, each with its ancestry.

use serde::Serialize;
use serde_json::Value;

use super::{ancestry, flag, string, strings, Moment, Process};
use crate::error::Result;
use crate::model::{self, edge};
use crate::store::Graph;

#[derive(Debug, Serialize)]
pub struct WhoWrote {
    pub path: String,
    pub changes: Vec<Change>,
}

/// What one process did to the path (all its calls of one kind).
#[derive(Debug, Serialize)]
pub struct Change {
    pub world: String,
    /// `wrote` (created, written, truncated, chmod…: see `ops`),
    /// `deleted`, `renamed` (`to`: renamed away; `from`: renamed here).
    pub edge: String,
    pub ops: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<String>,
    pub first: Option<Moment>,
    pub last: Option<Moment>,
    pub process: Process,
    /// Its parent, the parent's parent, … up to the world's init.
    pub ancestry: Vec<Process>,
}

impl Graph {
    pub fn who_wrote(&self, path: &[u8]) -> Result<WhoWrote> {
        let view = self.view();
        let path = model::normalize_slashes(path);
        let fv = model::file_vertex(&path);
        let mut changes = Vec::new();
        for t in [edge::WROTE, edge::DELETED, edge::RENAMED] {
            for e in view.in_edges(fv, t)? {
                let d = view.edge_details(&e)?.unwrap_or(Value::Null);
                // Calls that failed changed nothing.
                if !flag(&d, "ok") {
                    continue;
                }
                let world = string(&d, "world").unwrap_or_default();
                let process = Process::of(&view, e.outbound_id)?
                    .unwrap_or_else(|| Process::unknown(string(&d, "by"), &world));
                changes.push(Change {
                    edge: t.to_owned(),
                    ops: strings(&d, "ops"),
                    to: strings(&d, "to"),
                    from: strings(&d, "from"),
                    first: Moment::of(&d, "first"),
                    last: Moment::of(&d, "last"),
                    ancestry: ancestry(&view, e.outbound_id)?,
                    process,
                    world,
                });
            }
        }
        changes.sort_by(|a, b| {
            (&a.first.as_ref().map(|m| &m.at), &a.world, &a.edge).cmp(&(
                &b.first.as_ref().map(|m| &m.at),
                &b.world,
                &b.edge,
            ))
        });
        Ok(WhoWrote {
            path: substrate_trace::bytes::escape_lossy(&path),
            changes,
        })
    }
}
