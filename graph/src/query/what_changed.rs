//! `what-changed SPAN`: every file that process and its descendants
//! changed (wrote, created, deleted, renamed), with who did it.

use serde::Serialize;
use serde_json::Value;

use super::{descendants, find_process, flag, string, strings, Moment, Process};
use crate::error::Result;
use crate::model::edge;
use crate::store::Graph;

#[derive(Debug, Serialize)]
pub struct WhatChanged {
    pub world: String,
    pub process: Process,
    /// Processes looked at: it and its descendants.
    pub processes: usize,
    pub changes: Vec<Changed>,
}

#[derive(Debug, Serialize)]
pub struct Changed {
    pub path: String,
    pub edge: String,
    pub ops: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<String>,
    pub first: Option<Moment>,
    pub last: Option<Moment>,
    /// Who: the process itself or a descendant.
    pub by: Process,
}

impl Graph {
    pub fn what_changed(&self, span: &str, world: Option<&str>) -> Result<WhatChanged> {
        let view = self.view();
        let (id, process) = find_process(&view, span, world)?;
        let world = process.world.clone().unwrap_or_default();
        let members = descendants(&view, id)?;
        let mut changes = Vec::new();
        for &member in &members {
            let mut by: Option<Process> = None;
            // Every edge's details in one scan; the changes among them.
            let mut changed: Vec<(indradb::Edge, Value)> = view
                .out_details(member)?
                .into_iter()
                .filter(|(e, _)| {
                    matches!(e.t.as_str(), edge::WROTE | edge::DELETED | edge::RENAMED)
                })
                .collect();
            changed.sort_by(|a, b| a.0.cmp(&b.0));
            for (e, d) in changed {
                if !flag(&d, "ok") {
                    continue;
                }
                if by.is_none() {
                    by = Some(
                        Process::of(&view, member)?
                            .unwrap_or_else(|| Process::unknown(string(&d, "by"), &world)),
                    );
                }
                let path = match string(&d, "path") {
                    Some(path) => path,
                    None => view
                        .details(e.inbound_id)?
                        .and_then(|f| string(&f, "path"))
                        .unwrap_or_default(),
                };
                changes.push(Changed {
                    path,
                    edge: e.t.as_str().to_owned(),
                    ops: strings(&d, "ops"),
                    to: strings(&d, "to"),
                    from: strings(&d, "from"),
                    first: Moment::of(&d, "first"),
                    last: Moment::of(&d, "last"),
                    by: by.clone().unwrap_or_default(),
                });
            }
        }
        changes.sort_by(|a, b| {
            (&a.path, &a.first.as_ref().map(|m| &m.at), &a.edge).cmp(&(
                &b.path,
                &b.first.as_ref().map(|m| &m.at),
                &b.edge,
            ))
        });
        Ok(WhatChanged {
            world,
            process,
            processes: members.len(),
            changes,
        })
    }
}
