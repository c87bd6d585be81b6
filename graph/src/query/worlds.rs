//! `worlds`: the worlds in the graph and how far each was ingested.

use serde::Serialize;
use serde_json::Value;

use super::string;
use crate::error::Result;
use crate::ingest::IngestState;
use crate::model::prop;
use crate::store::Graph;

#[derive(Debug, Serialize)]
pub struct Worlds {
    pub worlds: Vec<WorldEntry>,
    /// Bytes the store takes on disk.
    pub disk_bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct WorldEntry {
    pub world: String,
    /// Whether its world span (its end) was ingested.
    pub ended: bool,
    pub start: Option<String>,
    pub end: Option<String>,
    pub result: Value,
    pub ingest: IngestState,
    pub chains: usize,
}

impl Graph {
    /// Every vertex and edge with its properties, sorted: the whole graph
    /// as JSON (for comparing two graphs: an ingest done twice, a rebuild).
    pub fn dump(&self) -> Result<Value> {
        let view = self.view();
        let (vertices, edges) = view.everything()?;
        Ok(serde_json::json!({"vertices": vertices, "edges": edges}))
    }

    pub fn worlds(&self) -> Result<Worlds> {
        let view = self.view();
        let mut worlds = Vec::new();
        for wv in view.vertices_with(prop::WORLD, None)? {
            let Some(Value::String(world)) = view.vertex_prop(wv, prop::WORLD)? else {
                continue;
            };
            let d = view.details(wv)?;
            let ingest = view
                .vertex_prop(wv, prop::INGEST)?
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default();
            let chains = match view.vertex_prop(wv, prop::CHAINS)? {
                Some(Value::Object(m)) => m.len(),
                _ => 0,
            };
            worlds.push(WorldEntry {
                ended: d.is_some(),
                start: d.as_ref().and_then(|d| string(d, "start")),
                end: d.as_ref().and_then(|d| string(d, "end")),
                result: d
                    .as_ref()
                    .and_then(|d| d.get("result").cloned())
                    .unwrap_or(Value::Null),
                world,
                ingest,
                chains,
            });
        }
        worlds.sort_by(|a, b| a.world.cmp(&b.world));
        Ok(Worlds {
            worlds,
            disk_bytes: self.disk_bytes(),
        })
    }
}
