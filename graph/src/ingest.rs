//! Ingestion of a world's trace into the graph: incremental, idempotent,
//! and whole after a crash at any point.
//!
//! - **Incremental**: the world's vertex keeps how far its trace was read
//!   (`ingest`: byte offset, lines, spans, skipped lines); the next ingest
//!   starts there. A trace shorter than that offset (replaced) is read
//!   again from its start.
//! - **Idempotent**: every vertex id is derived from what it stands for
//!   (`model`), properties are overwritten with what the last line of a
//!   span says, and edge details merge idempotently (`details`): ingesting
//!   a line twice changes nothing.
//! - **Crash-safe**: lines are taken in batches. A batch's vertices, edges
//!   and properties go in one RocksDB write batch (atomic); then the
//!   chains it completes are found (they read what it wrote) and written,
//!   with the new offset, in a second one. A crash before the second
//!   leaves the offset where it was: the next ingest takes the same batch
//!   again, which writes the same keys again.
//! - A line that is not a span (bad JSON, a missing field, a newer major
//!   version, too long, another world's) is skipped and counted, with its
//!   line number; an unfinished last line (no `\n` yet) is left for the
//!   next ingest, unread.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;
use std::time::Instant;

use indradb::{BulkInsertItem, Edge, Json, Vertex};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use substrate_trace::bytes::escape_lossy;
use substrate_trace::{
    Detail, ExitStatus, Family, NetOp, Outcome, Span, Transport, MAX_LINE_BYTES,
};
use uuid::Uuid;

use crate::details::{self, moment};
use crate::detect::{self, Triggers};
use crate::error::{Error, Result};
use crate::model::{self, edge, ident, prop, vertex, FileEffect};
use crate::store::{GraphWriter, View};
use crate::traces::check_world_id;

/// How lines are taken.
#[derive(Clone, Debug)]
pub struct IngestOptions {
    /// Lines per batch (a batch is one atomic write, and what a crash
    /// makes the next ingest take again).
    pub batch_lines: usize,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            batch_lines: 20_000,
        }
    }
}

/// How far a world's trace was ingested (the world vertex's `ingest`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestState {
    /// Bytes of the trace read: every whole line before this offset is in.
    pub offset: u64,
    /// Lines read (the next line's number is this + 1).
    pub lines: u64,
    /// Spans ingested.
    pub spans: u64,
    /// Lines skipped: not spans of this world.
    pub skipped: u64,
}

/// A skipped line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub line: u64,
    pub reason: String,
}

/// What one ingest of one world did.
#[derive(Clone, Debug, Serialize)]
pub struct IngestReport {
    pub world: String,
    /// The offset it started from and the one it reached.
    pub from: u64,
    pub to: u64,
    /// Lines read, spans ingested and lines skipped by this ingest.
    pub lines: u64,
    pub spans: u64,
    pub skipped: u64,
    /// The first skipped lines (at most [`MAX_SKIPPED_LISTED`]).
    pub skipped_lines: Vec<Skipped>,
    /// Bytes of an unfinished last line left for later.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unfinished: Option<u64>,
    /// The trace was shorter than what was ingested: read again from 0.
    pub restarted: bool,
    pub batches: u64,
    /// The world's totals after this ingest.
    pub total: IngestState,
    pub elapsed_ms: f64,
}

pub const MAX_SKIPPED_LISTED: usize = 20;

impl GraphWriter {
    /// Ingests what `world`'s trace at `trace` holds past what was
    /// ingested before.
    pub fn ingest(&self, world: &str, trace: &Path, opts: &IngestOptions) -> Result<IngestReport> {
        self.ingest_many(&[(world, trace)], opts)?
            .pop()
            .expect("one report a world")
    }

    /// Ingests each world's trace (`(world, trace)`, each world once), in
    /// order: a report or an error for each (an error of the whole store,
    /// after: the flush that keeps the log short). The next world's lines are
    /// read, parsed and made into graph items on one thread while the
    /// world before is written on this one, so both cores work when
    /// worlds are small (a world of ~1000 spans is one batch).
    pub fn ingest_many(
        &self,
        worlds: &[(&str, &Path)],
        opts: &IngestOptions,
    ) -> Result<Vec<Result<IngestReport>>> {
        let batch_lines = opts.batch_lines.max(1);
        let mut results: Vec<Option<Result<IngestReport>>> = worlds.iter().map(|_| None).collect();
        // What this ingest wrote, across worlds: a file or endpoint vertex
        // many worlds share is written once.
        let mut run = Run::new(false);
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Msg>(1);
            scope.spawn(move || {
                for (i, &(world, trace)) in worlds.iter().enumerate() {
                    let (file, begun) = match self.begin(world, trace) {
                        Ok(b) => b,
                        Err(e) => {
                            if tx.send(Msg::Begin(i, Err(e))).is_err() {
                                return;
                            }
                            continue;
                        }
                    };
                    let mut lines = Lines {
                        next: begun.state.lines + 1,
                        buf: Vec::new(),
                    };
                    let mut cwd = Cwd {
                        known: HashMap::new(),
                        fresh: begun.fresh,
                    };
                    if tx.send(Msg::Begin(i, Ok(begun))).is_err() {
                        return;
                    }
                    let mut reader = BufReader::with_capacity(1 << 20, file);
                    loop {
                        let prepared =
                            self.prepare(world, &mut reader, &mut lines, batch_lines, &mut cwd);
                        let last = !matches!(&prepared, Ok(Some(p)) if !p.at_end);
                        let msg = match prepared {
                            Ok(Some(p)) => Msg::Batch(i, Ok(Box::new(p))),
                            Ok(None) => break,
                            Err(e) => Msg::Batch(i, Err(e)),
                        };
                        if tx.send(msg).is_err() {
                            return;
                        }
                        if last {
                            break;
                        }
                    }
                }
            });
            let mut current: Option<Ingesting> = None;
            for msg in rx {
                match msg {
                    Msg::Begin(i, begun) => {
                        if let Some(done) = current.take() {
                            let index = done.index;
                            results[index] = Some(Ok(done.finish()));
                        }
                        let world = worlds[i].0;
                        let started = begun.and_then(|begun| {
                            let memory = if begun.fresh {
                                detect::Memory::default()
                            } else {
                                detect::Memory::seed(&self.view(), world)?
                            };
                            Ok(Ingesting {
                                index: i,
                                world,
                                begun,
                                memory,
                            })
                        });
                        match started {
                            Ok(ingesting) => {
                                run.fresh = ingesting.begun.fresh;
                                current = Some(ingesting);
                            }
                            Err(e) => results[i] = Some(Err(e)),
                        }
                    }
                    Msg::Batch(i, prepared) => {
                        // Batches of a world that failed are dropped.
                        let Some(ingesting) = current.as_mut().filter(|c| c.index == i) else {
                            continue;
                        };
                        if let Err(e) =
                            prepared.and_then(|p| self.take_batch(ingesting, *p, &mut run))
                        {
                            results[i] = Some(Err(e));
                            current = None;
                        }
                    }
                }
            }
            if let Some(done) = current.take() {
                let index = done.index;
                results[index] = Some(Ok(done.finish()));
            }
        });
        self.flush_if_log_large()?;
        Ok(results
            .into_iter()
            .zip(worlds)
            .map(|(r, (world, _))| {
                r.unwrap_or_else(|| {
                    Err(Error::Corrupt {
                        what: format!("world {world:?}'s ingest"),
                        reason: "ended without a report".into(),
                    })
                })
            })
            .collect())
    }

    /// Where `world`'s ingest starts: its state, its trace open there.
    fn begin(&self, world: &str, trace: &Path) -> Result<(File, Begun)> {
        check_world_id(world)?;
        let started = Instant::now();
        let wv = model::world_vertex(world);
        let mut state: IngestState = match self.view().vertex_prop(wv, prop::INGEST)? {
            Some(v) => serde_json::from_value(v).map_err(|e| Error::Corrupt {
                what: format!("world {world:?}'s ingest state"),
                reason: e.to_string(),
            })?,
            None => IngestState::default(),
        };
        let io = |source| Error::Io {
            path: trace.to_owned(),
            source,
        };
        let mut file = File::open(trace).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut report = IngestReport {
            world: world.to_owned(),
            from: state.offset,
            to: state.offset,
            lines: 0,
            spans: 0,
            skipped: 0,
            skipped_lines: Vec::new(),
            unfinished: None,
            restarted: false,
            batches: 0,
            total: state.clone(),
            elapsed_ms: 0.0,
        };
        if len < state.offset {
            state = IngestState::default();
            report.restarted = true;
            report.from = 0;
        }
        file.seek(SeekFrom::Start(state.offset)).map_err(io)?;
        let fresh = state.offset == 0 && !report.restarted;
        Ok((
            file,
            Begun {
                state,
                report,
                started,
                fresh,
            },
        ))
    }

    /// A batch written, the chains it completes found, and the world's
    /// state moved past it.
    fn take_batch(&self, ingesting: &mut Ingesting<'_>, p: Prepared, run: &mut Run) -> Result<()> {
        let world = ingesting.world;
        let triggers = self.write_batch(p.batch, run)?;
        crate::fail_point("graph.ingest.batch_written");
        ingesting.memory.learn(&triggers);
        let chains = detect::chains(&self.view(), world, &triggers, &ingesting.memory)?;
        let Begun { state, report, .. } = &mut ingesting.begun;
        state.offset += p.consumed;
        state.lines += p.read;
        state.spans += p.spans;
        state.skipped += p.skipped;
        self.write_state(world, state, chains)?;
        report.batches += 1;
        report.lines += p.read;
        report.spans += p.spans;
        report.skipped += p.skipped;
        for skipped in p.skipped_lines {
            if report.skipped_lines.len() < MAX_SKIPPED_LISTED {
                report.skipped_lines.push(skipped);
            }
        }
        if p.unfinished.is_some() {
            report.unfinished = p.unfinished;
        }
        Ok(())
    }

    /// A batch's vertices, edges and properties, in one write.
    fn write_batch(&self, batch: Batch, run: &mut Run) -> Result<Triggers> {
        let view = self.view();
        let mut items = Vec::with_capacity(
            batch.vertices.len() + batch.vprops.len() + batch.fixed.len() + 2 * batch.edges.len(),
        );
        for (id, t) in &batch.vertices {
            if run.vertices.insert(*id) {
                items.push(BulkInsertItem::Vertex(Vertex::with_id(*id, ident(t))));
            }
        }
        for ((id, name), value) in batch.fixed {
            if run.fixed.insert((id, name)) {
                items.push(BulkInsertItem::VertexProperty(
                    id,
                    ident(name),
                    Json::new(value),
                ));
            }
        }
        for ((id, name), value) in batch.vprops {
            items.push(BulkInsertItem::VertexProperty(
                id,
                ident(name),
                Json::new(value),
            ));
        }
        let d = ident(prop::DETAILS);
        for (e, mut details) in batch.edges {
            if !details.is_empty() {
                // Merged with what is stored, if anything can be.
                let stored = !run.fresh || run.edges.contains(&e);
                if stored {
                    if let Some(Value::Object(old)) = view.edge_details(&e)? {
                        let mut merged = old;
                        details::merge(&mut merged, &details);
                        details = merged;
                    }
                }
                run.edges.insert(e.clone());
                items.push(BulkInsertItem::EdgeProperty(
                    e.clone(),
                    d,
                    Json::new(Value::Object(details)),
                ));
            }
            items.push(BulkInsertItem::Edge(e));
        }
        for e in batch.blocked {
            items.push(BulkInsertItem::EdgeProperty(
                e,
                ident(prop::BLOCKED),
                Json::new(Value::Bool(true)),
            ));
        }
        drop(view);
        self.database()
            .bulk_insert(items)
            .map_err(self.store_error())?;
        run.forget_if_large();
        Ok(batch.triggers)
    }

    /// The world's ingest state and the chains a batch completed, in one
    /// write after the batch's own.
    fn write_state(
        &self,
        world: &str,
        state: &IngestState,
        chains: BTreeMap<String, Value>,
    ) -> Result<()> {
        let wv = model::world_vertex(world);
        let mut items = vec![BulkInsertItem::VertexProperty(
            wv,
            ident(prop::INGEST),
            Json::new(serde_json::to_value(state).expect("plain struct")),
        )];
        if !chains.is_empty() {
            let old = self.view().vertex_prop(wv, prop::CHAINS)?;
            let mut all = match old {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            let before = all.clone();
            for (key, chain) in chains {
                match (all.get_mut(&key), chain) {
                    (Some(Value::Object(old)), Value::Object(new)) if detect::merges(&new) => {
                        details::merge(old, &new)
                    }
                    (_, chain) => {
                        all.insert(key, chain);
                    }
                }
            }
            if all != before {
                let kinds: HashSet<&str> = all
                    .values()
                    .filter_map(|c| c.get("kind").and_then(Value::as_str))
                    .collect();
                for kind in kinds {
                    if let Some(name) = prop::chain_kind(kind) {
                        items.push(BulkInsertItem::VertexProperty(
                            wv,
                            ident(name),
                            Json::new(Value::Bool(true)),
                        ));
                    }
                }
                items.push(BulkInsertItem::VertexProperty(
                    wv,
                    ident(prop::CHAINS),
                    Json::new(Value::Object(all)),
                ));
            }
        }
        self.database()
            .bulk_insert(items)
            .map_err(self.store_error())
    }

    /// Flushes memtables once the write-ahead log holds more than a few
    /// MiB, so that a query's open (which replays it) stays quick; small
    /// ingests (a world's end) leave it to grow.
    fn flush_if_log_large(&self) -> Result<()> {
        let db = self.dir().path().join("db");
        let log_bytes: u64 = std::fs::read_dir(&db)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        if log_bytes > 8 << 20 {
            self.flush()?;
        }
        Ok(())
    }
}

/// What the reading thread tells the writing one.
enum Msg {
    /// World `i` starts (or could not).
    Begin(usize, Result<Begun>),
    /// A batch of world `i` (or why there is none).
    Batch(usize, Result<Box<Prepared>>),
}

/// A world's ingest, started.
struct Begun {
    state: IngestState,
    report: IngestReport,
    started: Instant,
    /// Nothing of the world was ingested before ([`Run::fresh`]).
    fresh: bool,
}

/// The world being written.
struct Ingesting<'w> {
    index: usize,
    world: &'w str,
    begun: Begun,
    memory: detect::Memory,
}

impl Ingesting<'_> {
    fn finish(self) -> IngestReport {
        let Begun {
            state,
            mut report,
            started,
            ..
        } = self.begun;
        report.to = state.offset;
        report.total = state;
        report.elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
        report
    }
}

/// A batch read, parsed and made into graph items, ready to be written.
struct Prepared {
    batch: Batch,
    /// Bytes of the trace it covers.
    consumed: u64,
    read: u64,
    spans: u64,
    skipped: u64,
    skipped_lines: Vec<Skipped>,
    unfinished: Option<u64>,
    at_end: bool,
}

/// Where lines are read.
struct Lines {
    /// The next line's number.
    next: u64,
    buf: Vec<u8>,
}

/// The working dirs of the world's processes, to make relative paths
/// absolute: learnt from exec spans as they are read; looked up in the
/// graph for processes of an earlier ingest.
pub(crate) struct Cwd {
    known: HashMap<Uuid, Vec<u8>>,
    fresh: bool,
}

impl Cwd {
    fn of(&mut self, view: &View<'_>, actor: Uuid) -> Result<Option<Vec<u8>>> {
        if let Some(cwd) = self.known.get(&actor) {
            return Ok(Some(cwd.clone()));
        }
        if self.fresh {
            return Ok(None);
        }
        let cwd = view.details(actor)?.and_then(|d| {
            d.get("cwd")
                .and_then(Value::as_str)
                .map(|s| s.as_bytes().to_vec())
        });
        if let Some(cwd) = &cwd {
            self.known.insert(actor, cwd.clone());
        }
        Ok(cwd)
    }
}

impl GraphWriter {
    /// The next batch: up to `batch_lines` lines, parsed (in parallel) and
    /// made into graph items. `None` at the end of the trace.
    fn prepare<R: BufRead>(
        &self,
        world: &str,
        reader: &mut R,
        lines: &mut Lines,
        batch_lines: usize,
        cwd: &mut Cwd,
    ) -> Result<Option<Prepared>> {
        let mut raw: Vec<(u64, RawLine)> = Vec::with_capacity(batch_lines.min(65_536));
        let mut consumed = 0u64;
        let mut at_end = false;
        let mut unfinished = None;
        while raw.len() < batch_lines {
            let next = next_line(reader, &mut lines.buf).map_err(|source| Error::Io {
                path: format!("trace of world {world}").into(),
                source,
            })?;
            match next {
                Next::Eof => {
                    at_end = true;
                    break;
                }
                Next::Unfinished(n) => {
                    unfinished = Some(n);
                    at_end = true;
                    break;
                }
                Next::Line { bytes, too_long } => {
                    consumed += bytes;
                    let text = if too_long {
                        RawLine::TooLong(bytes - 1)
                    } else {
                        RawLine::Text(std::mem::take(&mut lines.buf))
                    };
                    raw.push((lines.next, text));
                    lines.next += 1;
                }
            }
        }
        if raw.is_empty() {
            return Ok(None);
        }
        let parsed: Vec<(u64, Option<Result<Span, String>>)> = raw
            .into_par_iter()
            .map(|(number, raw)| (number, parse(raw)))
            .collect();
        let view = self.view();
        let mut p = Prepared {
            batch: Batch::new(world),
            consumed,
            read: 0,
            spans: 0,
            skipped: 0,
            skipped_lines: Vec::new(),
            unfinished,
            at_end,
        };
        for (number, span) in parsed {
            p.read += 1;
            let reason = match span {
                None => continue,
                Some(Ok(span)) if span.world_id == world => {
                    p.spans += 1;
                    p.batch.add(&view, cwd, span)?;
                    continue;
                }
                Some(Ok(span)) => format!("a span of world {:?}", span.world_id),
                Some(Err(reason)) => reason,
            };
            p.skipped += 1;
            if p.skipped_lines.len() < MAX_SKIPPED_LISTED {
                p.skipped_lines.push(Skipped {
                    line: number,
                    reason,
                });
            }
        }
        Ok(Some(p))
    }
}

/// What one ingest has written so far, so that later batches neither read
/// back nor write again what earlier ones did.
struct Run {
    /// The world had nothing ingested when this ingest started: an edge
    /// not written by this ingest holds nothing to merge with (what a
    /// crashed ingest left past the offset is of lines this one takes
    /// again, so it may be overwritten).
    fresh: bool,
    /// Edges with details written by this ingest (stored: read back to
    /// merge).
    edges: HashSet<Edge>,
    /// Vertices and fixed properties written by this ingest.
    vertices: HashSet<Uuid>,
    fixed: HashSet<(Uuid, &'static str)>,
}

/// Past this many remembered keys an ingest reads back instead (memory).
const RUN_MEMORY: usize = 4_000_000;

impl Run {
    fn new(fresh: bool) -> Run {
        Run {
            fresh,
            edges: HashSet::new(),
            vertices: HashSet::new(),
            fixed: HashSet::new(),
        }
    }

    fn forget_if_large(&mut self) {
        if self.edges.len() + self.vertices.len() + self.fixed.len() > RUN_MEMORY {
            *self = Run::new(false);
        }
    }
}

enum RawLine {
    Text(Vec<u8>),
    /// Over the limit: its length (without `\n`), not held.
    TooLong(u64),
}

/// `None`: a blank line, skipped silently (as the trace reader does).
fn parse(raw: RawLine) -> Option<Result<Span, String>> {
    match raw {
        RawLine::TooLong(len) => Some(Err(format!(
            "line is {len} bytes, over the limit of {MAX_LINE_BYTES} bytes"
        ))),
        RawLine::Text(text) => {
            if text.iter().all(u8::is_ascii_whitespace) {
                return None;
            }
            Some(Span::from_line(&text).map_err(|e| e.to_string()))
        }
    }
}

enum Next {
    Eof,
    /// Bytes at the end without a `\n`.
    Unfinished(u64),
    /// A line of `bytes` bytes with its `\n`, in the buffer unless longer
    /// than [`MAX_LINE_BYTES`].
    Line {
        bytes: u64,
        too_long: bool,
    },
}

/// The next line, never holding more than [`MAX_LINE_BYTES`] + 1 bytes of
/// it.
fn next_line<R: BufRead>(reader: &mut R, buf: &mut Vec<u8>) -> std::io::Result<Next> {
    buf.clear();
    let mut bytes = 0u64;
    let mut too_long = false;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(if bytes == 0 {
                Next::Eof
            } else {
                Next::Unfinished(bytes)
            });
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let n = chunk.len();
        if !too_long {
            if buf.len() + n > MAX_LINE_BYTES + 1 {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        bytes += n as u64;
        reader.consume(n);
        if done {
            return Ok(Next::Line { bytes, too_long });
        }
    }
}

/// What one batch adds to the graph, merged in memory first.
pub(crate) struct Batch {
    world: String,
    wv: Uuid,
    vertices: HashMap<Uuid, &'static str>,
    /// Overwritten: the last line of a span says it all.
    vprops: HashMap<(Uuid, &'static str), Value>,
    /// Never change once written (a file's path, an endpoint's address, a
    /// process's span id): written once per ingest.
    fixed: HashMap<(Uuid, &'static str), Value>,
    /// Merged (`details::merge`) with each other and what is stored.
    edges: HashMap<Edge, Map<String, Value>>,
    blocked: HashSet<Edge>,
    triggers: Triggers,
}

impl Batch {
    fn new(world: &str) -> Batch {
        let wv = model::world_vertex(world);
        let mut batch = Batch {
            world: world.to_owned(),
            wv,
            vertices: HashMap::new(),
            vprops: HashMap::new(),
            fixed: HashMap::new(),
            edges: HashMap::new(),
            blocked: HashSet::new(),
            triggers: Triggers::default(),
        };
        batch.vertices.insert(wv, vertex::WORLD);
        batch
            .fixed
            .insert((wv, prop::WORLD), Value::String(world.to_owned()));
        batch
    }

    fn edge(&mut self, from: Uuid, t: &'static str, to: Uuid, details: Map<String, Value>) {
        let e = Edge::new(from, ident(t), to);
        match self.edges.get_mut(&e) {
            Some(old) => details::merge(old, &details),
            None => {
                self.edges.insert(e, details);
            }
        }
    }

    /// The vertex a span's `parent_span_id` names: the process it happened
    /// in (or the world span); the world itself when it names none.
    fn actor(&mut self, span: &Span) -> (Uuid, Value) {
        match &span.parent_span_id {
            Some(parent) => {
                let id = model::span_vertex(&self.world, parent);
                if id != self.wv {
                    self.edge(id, edge::IN_WORLD, self.wv, Map::new());
                }
                (id, Value::String(parent.to_string()))
            }
            None => (self.wv, Value::Null),
        }
    }

    fn add(&mut self, view: &View<'_>, cwd: &mut Cwd, span: Span) -> Result<()> {
        let at = span.start.to_string();
        let id = span.span_id.to_string();
        match &span.detail {
            Detail::World(detail) => {
                let d = json!({
                    "world": self.world,
                    "span": id,
                    "start": at,
                    "end": span.end.map(|t| t.to_string()),
                    "result": result(&span.result),
                    "fs": detail.fs.as_ref().map(|fs| json!({"added": fs.added, "changed": fs.changed, "deleted": fs.deleted})),
                    "spans": detail.spans,
                    "lost": detail.lost,
                });
                self.vprops.insert((self.wv, prop::DETAILS), d);
            }
            Detail::Exec => self.add_exec(cwd, &span, &at, &id),
            Detail::File(file) => {
                let (actor, by) = self.actor(&span);
                let Some(effect) = model::file_effect(&file.op, file.flags) else {
                    return Ok(());
                };
                let cwd = if file.path.starts_with(b"/")
                    && file.new_path.as_ref().is_none_or(|p| p.starts_with(b"/"))
                {
                    None
                } else {
                    cwd.of(view, actor)?
                };
                let path = model::absolute(&file.path, cwd.as_deref());
                if model::is_pseudo_path(&path) {
                    return Ok(());
                }
                let ok = succeeded(&span.result);
                let op = file.op.as_str().to_owned();
                let mut d = Map::new();
                d.insert("world".into(), Value::String(self.world.clone()));
                d.insert("by".into(), by.clone());
                d.insert("ops".into(), json!([op]));
                d.insert("first".into(), moment(&at, &id));
                d.insert("last".into(), moment(&at, &id));
                d.insert("ok".into(), Value::Bool(ok));
                if let Some(errno) = errno(&span.result) {
                    d.insert("errnos".into(), json!([errno]));
                }
                let new_path = file
                    .new_path
                    .as_ref()
                    .map(|p| model::absolute(p, cwd.as_deref()));
                let fv = self.file(&path);
                let shown = escape_lossy(&path);
                d.insert("path".into(), Value::String(shown.clone()));
                match (&new_path, effect) {
                    (Some(to), FileEffect::Renamed) => {
                        let tv = self.file(to);
                        let mut from_d = d.clone();
                        d.insert("to".into(), json!([escape_lossy(to)]));
                        from_d.insert("path".into(), Value::String(escape_lossy(to)));
                        from_d.insert("from".into(), json!([shown]));
                        self.edge(actor, edge::RENAMED, fv, d);
                        self.edge(actor, edge::RENAMED, tv, from_d);
                    }
                    _ => self.edge(actor, effect.edge(), fv, d),
                }
                let mut chain_paths = vec![path.clone()];
                chain_paths.extend(new_path.clone());
                for p in &chain_paths {
                    let kind = if effect.changes() && model::is_credential_write_path(p) {
                        "credential_write"
                    } else if effect == FileEffect::Read && model::is_credential_read_path(p) {
                        "credential_read"
                    } else {
                        continue;
                    };
                    self.triggers.chain(
                        format!("{kind}|{}|{}", by.as_str().unwrap_or("-"), escape_lossy(p)),
                        json!({
                            "kind": kind,
                            "world": self.world,
                            "process": by,
                            "path": escape_lossy(p),
                            "ops": [op],
                            "ok": ok,
                            "first": moment(&at, &id),
                            "last": moment(&at, &id),
                        }),
                    );
                }
                if effect == FileEffect::Wrote && ok {
                    self.triggers.writes.push((actor, path));
                    if let Some(to) = new_path {
                        self.triggers.writes.push((actor, to));
                    }
                } else if effect == FileEffect::Renamed && ok {
                    if let Some(to) = new_path {
                        self.triggers.writes.push((actor, to));
                    }
                }
            }
            Detail::Net(net) => {
                if !matches!(net.op, NetOp::Connect | NetOp::Sendto) {
                    return Ok(());
                }
                let Some(address) = &net.address else {
                    return Ok(());
                };
                let (actor, by) = self.actor(&span);
                let address = escape_lossy(address);
                let transport = net.transport.as_ref().map(Transport::as_str);
                let key = match (&net.family, net.port) {
                    (Family::Unix, _) => format!("unix:{address}"),
                    (Family::Inet6, Some(port)) => {
                        format!("[{address}]:{port}/{}", transport.unwrap_or("ip"))
                    }
                    (_, Some(port)) => format!("{address}:{port}/{}", transport.unwrap_or("ip")),
                    (_, None) => address.clone(),
                };
                let ev = model::endpoint_vertex(&key);
                self.vertices.insert(ev, vertex::ENDPOINT);
                self.fixed.insert(
                    (ev, prop::DETAILS),
                    json!({
                        "key": key,
                        "family": net.family.as_str(),
                        "address": address,
                        "port": net.port,
                        "transport": transport,
                    }),
                );
                self.fixed
                    .insert((ev, prop::ENDPOINT), Value::String(key.clone()));
                let egress = span.extra.get("egress");
                let verdict = egress
                    .and_then(|e| e.get("verdict"))
                    .and_then(Value::as_str)
                    .unwrap_or("none")
                    .to_owned();
                let blocked = verdict == "deny" || span.extra.contains_key("refused_by");
                let ok = !blocked && connect_succeeded(&span.result);
                let mut d = Map::new();
                d.insert("world".into(), Value::String(self.world.clone()));
                d.insert("by".into(), by);
                d.insert("endpoint".into(), Value::String(key.clone()));
                d.insert("ops".into(), json!([net.op.as_str()]));
                d.insert("verdicts".into(), json!([verdict]));
                if let Some(rule) = egress.and_then(|e| e.get("rule")).and_then(Value::as_str) {
                    d.insert("rules".into(), json!([rule]));
                }
                if let Some(refused) = span.extra.get("refused_by").and_then(Value::as_str) {
                    d.insert("refused_by".into(), json!([refused]));
                }
                d.insert("first".into(), moment(&at, &id));
                d.insert("last".into(), moment(&at, &id));
                d.insert("ok".into(), Value::Bool(ok));
                d.insert("blocked".into(), Value::Bool(blocked));
                if blocked {
                    d.insert("first_blocked".into(), moment(&at, &id));
                }
                if let Some(errno) = errno(&span.result) {
                    d.insert("errnos".into(), json!([errno]));
                }
                let e = Edge::new(actor, ident(edge::CONNECTED), ev);
                if blocked {
                    self.blocked.insert(e);
                }
                let moment = json!({"at": at, "span": id, "by": d.get("by").cloned().unwrap_or(Value::Null)});
                self.edge(actor, edge::CONNECTED, ev, d);
                self.triggers.connects.push(detect::Connect {
                    actor,
                    endpoint: ev,
                    key,
                    ok,
                    blocked,
                    moment,
                });
            }
            Detail::Dns(dns) => {
                let (actor, by) = self.actor(&span);
                let name = escape_lossy(&dns.query);
                let key = format!("name:{name}");
                let nv = model::endpoint_vertex(&key);
                self.vertices.insert(nv, vertex::ENDPOINT);
                self.fixed.insert(
                    (nv, prop::DETAILS),
                    json!({"key": key, "family": "name", "name": name}),
                );
                self.fixed.insert((nv, prop::ENDPOINT), Value::String(key));
                let resolver = span.extra.get("resolver");
                let verdict = resolver
                    .and_then(|r| r.get("verdict"))
                    .and_then(Value::as_str)
                    .unwrap_or("lookup");
                let answers: Vec<String> = dns
                    .answers
                    .iter()
                    .take(details::MAX_LIST)
                    .cloned()
                    .collect();
                // name → each address it answered, in this world: what
                // names a connection's address (`query::names_of`).
                // (Not for an address looked up as itself: getaddrinfo of
                // an IP literal names nothing.)
                let literal = name.parse::<std::net::IpAddr>().is_ok();
                for answer in answers
                    .iter()
                    .filter(|a| !literal && a.parse::<std::net::IpAddr>().is_ok())
                {
                    let av = model::answer_vertex(&self.world, answer);
                    self.vertices.insert(av, vertex::ENDPOINT);
                    self.fixed.insert(
                        (av, prop::DETAILS),
                        json!({"key": format!("ip:{answer}"), "family": "ip", "address": answer, "world": self.world}),
                    );
                    self.edge(nv, edge::RESOLVED, av, Map::new());
                }
                let mut d = Map::new();
                d.insert("world".into(), Value::String(self.world.clone()));
                d.insert("by".into(), by);
                d.insert("answers".into(), json!(answers));
                d.insert("verdicts".into(), json!([verdict]));
                d.insert("first".into(), moment(&at, &id));
                d.insert("last".into(), moment(&at, &id));
                d.insert(
                    "ok".into(),
                    Value::Bool(succeeded(&span.result) && verdict != "refused"),
                );
                self.edge(actor, edge::RESOLVED, nv, d);
            }
            Detail::Policy(policy) => {
                let (actor, by) = self.actor(&span);
                let dv = model::span_vertex(&self.world, &span.span_id);
                let subject = escape_lossy(&policy.subject);
                let enforcement = span.extra.get("enforcement");
                let field = |name: &str| {
                    enforcement
                        .and_then(|e| e.get(name))
                        .cloned()
                        .unwrap_or(Value::Null)
                };
                self.vertices.insert(dv, vertex::DECISION);
                self.vprops.insert(
                    (dv, prop::DETAILS),
                    json!({
                        "span": id,
                        "world": self.world,
                        "by": by,
                        "at": at,
                        "rule": policy.rule,
                        "decision": policy.decision.as_str(),
                        "subject": subject,
                        "reason": policy.reason,
                        "effective": field("effective"),
                        "on": field("on"),
                    }),
                );
                let key = detect::subject_key(&self.world, &subject);
                self.fixed
                    .insert((dv, prop::SUBJECT), Value::String(key.clone()));
                let mut d = Map::new();
                d.insert("world".into(), Value::String(self.world.clone()));
                d.insert("by".into(), by);
                self.edge(actor, edge::DECIDED, dv, d);
                let denied = policy.decision == substrate_trace::Decision::Deny;
                *self.triggers.decisions.entry(key).or_insert(false) |= denied;
            }
            // A kind this version does not know (`loss`, a newer minor's).
            Detail::Other { .. } => {}
        }
        Ok(())
    }

    fn add_exec(&mut self, cwd: &mut Cwd, span: &Span, at: &str, id: &str) {
        let pv = model::span_vertex(&self.world, &span.span_id);
        let p = &span.process;
        let argv: Vec<Vec<u8>> = p.argv.clone().unwrap_or_default();
        let parent = span.parent_span_id.as_ref().map(|s| s.to_string());
        let d = json!({
            "span": id,
            "world": self.world,
            "parent": parent,
            "exe": p.exe.as_deref().map(escape_lossy),
            "argv": argv.iter().map(|a| escape_lossy(a)).collect::<Vec<_>>(),
            "cwd": p.cwd.as_deref().map(escape_lossy),
            "pid": p.pid,
            "world_pid": p.world_pid,
            "start": at,
            "end": span.end.map(|t| t.to_string()),
            "result": result(&span.result),
            "source": span.source.as_str(),
        });
        self.vertices.insert(pv, vertex::PROCESS);
        self.vprops.insert((pv, prop::DETAILS), d);
        self.fixed
            .insert((pv, prop::SPAN), Value::String(id.to_owned()));
        self.edge(pv, edge::IN_WORLD, self.wv, Map::new());
        let mut parent_vertex = None;
        if let Some(parent) = &span.parent_span_id {
            let parent = model::span_vertex(&self.world, parent);
            parent_vertex = Some(parent);
            self.edge(pv, edge::CHILD_OF, parent, Map::new());
        }
        if let Some(dir) = &p.cwd {
            cwd.known.insert(pv, dir.clone());
        }
        let ok = succeeded(&span.result);
        let exec_of = |batch: &mut Batch, path: &[u8], role: &str| {
            let fv = batch.file(path);
            let mut d = Map::new();
            d.insert("world".into(), Value::String(batch.world.clone()));
            d.insert("by".into(), Value::String(id.to_owned()));
            d.insert("as".into(), json!([role]));
            d.insert("first".into(), moment(at, id));
            d.insert("last".into(), moment(at, id));
            d.insert("ok".into(), Value::Bool(ok));
            batch.edge(pv, edge::EXEC_OF, fv, d);
        };
        let exe = p
            .exe
            .as_deref()
            .map(|e| model::absolute(e, p.cwd.as_deref()));
        if let Some(exe) = &exe {
            exec_of(self, exe, "exe");
        }
        let script = model::script_operand(p.exe.as_deref(), &argv)
            .map(|s| model::absolute(&s, p.cwd.as_deref()));
        if let Some(script) = &script {
            exec_of(self, script, "script");
        }
        self.triggers.execs.push(detect::Exec {
            process: pv,
            parent: parent_vertex,
            ok,
            files: exe.into_iter().chain(script).collect(),
            stdin_shell: model::reads_script_from_stdin(p.exe.as_deref(), &argv),
            downloader: model::is_downloader(p.exe.as_deref(), &argv),
        });
    }

    fn file(&mut self, path: &[u8]) -> Uuid {
        let fv = model::file_vertex(path);
        if self.vertices.insert(fv, vertex::FILE).is_none() {
            self.fixed
                .insert((fv, prop::DETAILS), json!({"path": escape_lossy(path)}));
        }
        fv
    }
}

/// A span's `result` as the graph keeps it.
fn result(result: &Option<Outcome>) -> Value {
    match result {
        None => Value::Null,
        Some(Outcome::Exited(ExitStatus::Code(code))) => json!({"code": code}),
        Some(Outcome::Exited(ExitStatus::Signal(signal))) => json!({"signal": signal}),
        Some(Outcome::Returned { ret, errno: None }) => json!({"ret": ret}),
        Some(Outcome::Returned {
            ret,
            errno: Some(errno),
        }) => {
            json!({"ret": ret, "errno": errno.name().map(str::to_owned).unwrap_or_else(|| errno.0.to_string())})
        }
    }
}

fn errno(result: &Option<Outcome>) -> Option<String> {
    match result {
        Some(Outcome::Returned {
            errno: Some(errno), ..
        }) => Some(
            errno
                .name()
                .map(str::to_owned)
                .unwrap_or_else(|| errno.0.to_string()),
        ),
        _ => None,
    }
}

/// The call succeeded (or the span does not say it failed).
fn succeeded(result: &Option<Outcome>) -> bool {
    match result {
        Some(Outcome::Returned { ret, errno }) => errno.is_none() && *ret >= 0,
        _ => true,
    }
}

/// A connect that went through: it returned 0, or was started (a
/// non-blocking connect's EINPROGRESS, EALREADY, EISCONN).
fn connect_succeeded(result: &Option<Outcome>) -> bool {
    match result {
        Some(Outcome::Returned {
            errno: Some(errno), ..
        }) => matches!(errno.0, 106 | 114 | 115),
        other => succeeded(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn lines_are_bounded_and_unfinished_ones_left() {
        let long = vec![b'x'; MAX_LINE_BYTES + 10];
        let mut input = b"a\n\nbc\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\nlast");
        let mut reader = BufReader::with_capacity(16, Cursor::new(input));
        let mut buf = Vec::new();
        let mut seen = Vec::new();
        loop {
            match next_line(&mut reader, &mut buf).unwrap() {
                Next::Eof => break,
                Next::Unfinished(n) => {
                    seen.push(format!("unfinished {n}"));
                    break;
                }
                Next::Line { bytes, too_long } => seen.push(format!(
                    "{bytes} {too_long} {}",
                    String::from_utf8_lossy(&buf).len()
                )),
            }
        }
        assert_eq!(
            seen,
            [
                "2 false 2",
                "1 false 1",
                "3 false 3",
                &format!("{} true 0", MAX_LINE_BYTES + 11),
                "unfinished 4"
            ]
        );
    }
}
