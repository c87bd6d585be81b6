//! `what-changed SPAN`: every file that process and its descendants
//! changed (wrote, created, deleted, renamed), with who did it.

use rayon::prelude::*;
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
        // Each member's changes (its change edges' details, in one scan)
        // and, if it has any, its exec span: read on every core.
        type Fetched = (Vec<(indradb::Edge, Value)>, Option<Process>);
        let fetched: Vec<Fetched> = members
            .par_iter()
            .map(|&member| {
                let view = self.view();
                let mut changed: Vec<(indradb::Edge, Value)> = view
                    .out_details(member, &[edge::WROTE, edge::DELETED, edge::RENAMED])?
                    .into_iter()
                    .filter(|(_, d)| flag(d, "ok"))
                    .collect();
                changed.sort_by(|a, b| a.0.cmp(&b.0));
                let process = if changed.is_empty() {
                    None
                } else {
                    Process::of(&view, member)?
                };
                Ok((changed, process))
            })
            .collect::<Result<_>>()?;
        let mut changes = Vec::new();
        for (changed, process) in fetched {
            let mut process = process;
            let mut by: Option<Process> = None;
            for (e, d) in changed {
                if by.is_none() {
                    by = Some(
                        process
                            .take()
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
