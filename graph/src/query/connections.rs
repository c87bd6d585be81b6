//! `connections [--blocked] [--world W]`: where worlds' processes
//! connected (and sent datagrams), with the egress policy's verdicts.

use std::collections::HashMap;

use indradb::Edge;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{flag, names_of, string, strings, Moment, Process};
use crate::error::{Error, Result};
use crate::model::{self, edge, prop};
use crate::store::{Graph, View};

#[derive(Debug, Serialize)]
pub struct Connections {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub world: Option<String>,
    pub blocked_only: bool,
    pub connections: Vec<Destination>,
}

/// One process's attempts at one destination.
#[derive(Debug, Serialize)]
pub struct Destination {
    pub world: String,
    pub process: Process,
    /// `10.0.0.2:8080/tcp`, `[fd00::2]:443/tcp`, `unix:/run/x.sock`.
    pub endpoint: String,
    pub family: Option<String>,
    pub address: Option<String>,
    pub port: Option<u64>,
    pub transport: Option<String>,
    /// Names this world looked up that answered with the address.
    pub names: Vec<String>,
    /// The egress policy's verdicts (`allow`, `deny`; `none`: no policy
    /// logged it) and the rules that gave them.
    pub verdicts: Vec<String>,
    pub rules: Vec<String>,
    pub blocked: bool,
    /// An attempt got through (connected, or a non-blocking connect was
    /// under way).
    pub ok: bool,
    pub errnos: Vec<String>,
    pub first: Option<Moment>,
    pub last: Option<Moment>,
}

impl Graph {
    pub fn connections(&self, world: Option<&str>, blocked_only: bool) -> Result<Connections> {
        let view = self.view();
        let edges: Vec<Edge> = match world {
            Some(w) => {
                let wv = model::world_vertex(w);
                if view.vertex_type(wv)?.is_none() {
                    return Err(Error::UnknownWorld {
                        world: w.to_owned(),
                    });
                }
                let mut edges = view.out_edges(wv, edge::CONNECTED)?;
                for member in view.in_edges(wv, edge::IN_WORLD)? {
                    edges.extend(view.out_edges(member.outbound_id, edge::CONNECTED)?);
                }
                edges
            }
            None if blocked_only => view.edges_with(prop::BLOCKED)?,
            None => {
                let mut edges = Vec::new();
                for ev in view.vertices_with(prop::ENDPOINT, None)? {
                    edges.extend(view.in_edges(ev, edge::CONNECTED)?);
                }
                edges
            }
        };
        let mut processes: HashMap<Uuid, Option<Process>> = HashMap::new();
        let mut endpoints: HashMap<Uuid, Value> = HashMap::new();
        let mut out = Vec::new();
        for e in edges {
            let d = view.edge_details(&e)?.unwrap_or(Value::Null);
            let blocked = flag(&d, "blocked");
            if blocked_only && !blocked {
                continue;
            }
            let w = string(&d, "world").unwrap_or_default();
            if world.is_some_and(|world| world != w) {
                continue;
            }
            out.push(destination(
                &view,
                &e,
                d,
                w,
                blocked,
                &mut processes,
                &mut endpoints,
            )?);
        }
        out.sort_by(|a, b| {
            (&a.world, &a.process.start, &a.process.span, &a.endpoint).cmp(&(
                &b.world,
                &b.process.start,
                &b.process.span,
                &b.endpoint,
            ))
        });
        Ok(Connections {
            world: world.map(str::to_owned),
            blocked_only,
            connections: out,
        })
    }
}

fn destination(
    view: &View<'_>,
    e: &Edge,
    d: Value,
    world: String,
    blocked: bool,
    processes: &mut HashMap<Uuid, Option<Process>>,
    endpoints: &mut HashMap<Uuid, Value>,
) -> Result<Destination> {
    let process = match processes.get(&e.outbound_id) {
        Some(p) => p.clone(),
        None => {
            let p = Process::of(view, e.outbound_id)?;
            processes.insert(e.outbound_id, p.clone());
            p
        }
    }
    .unwrap_or_else(|| Process::unknown(string(&d, "by"), &world));
    let ep = match endpoints.get(&e.inbound_id) {
        Some(v) => v.clone(),
        None => {
            let v = view.details(e.inbound_id)?.unwrap_or(Value::Null);
            endpoints.insert(e.inbound_id, v.clone());
            v
        }
    };
    let address = string(&ep, "address");
    let names = match &address {
        Some(a) => names_of(view, &world, a)?,
        None => Vec::new(),
    };
    Ok(Destination {
        endpoint: string(&d, "endpoint")
            .or_else(|| string(&ep, "key"))
            .unwrap_or_default(),
        family: string(&ep, "family"),
        address,
        port: ep.get("port").and_then(Value::as_u64),
        transport: string(&ep, "transport"),
        names,
        verdicts: strings(&d, "verdicts"),
        rules: strings(&d, "rules"),
        blocked,
        ok: flag(&d, "ok"),
        errnos: strings(&d, "errnos"),
        first: Moment::of(&d, "first"),
        last: Moment::of(&d, "last"),
        process,
        world,
    })
}
