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
//! - **Crash-safe**: lines are taken in batches, which run on from one
//!   world's trace into the next. A batch's vertices, edges and properties
//!   go in one RocksDB write batch (atomic); then, for each world it holds
//!   lines of, the chains they complete are found (they read what it
//!   wrote) and written, with the world's new offset, in a write of their
//!   own. A crash before a world's leaves its offset where it was: the next
//!   ingest takes those lines again, which writes the same keys again.
//! - A line that is not a span (bad JSON, a missing field, a newer major
//!   version, too long, another world's) is skipped and counted, with its
//!   line number; an unfinished last line (no `\n` yet) is left for the
//!   next ingest, unread.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::Path;
use std::time::Instant;

use indradb::{BulkInsertItem, Edge, Json, PreparedInsert, Vertex};
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
    /// Lines per batch, across worlds (a batch is one atomic write, and
    /// what a crash makes the next ingest take again).
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
    /// after: the flush that keeps the log short).
    ///
    /// A pipeline of three threads, each about a third of the work: one
    /// reads the worlds' lines, parses them (on every core) and makes them
    /// into graph items, in batches of up to `batch_lines` lines that run
    /// on from one world into the next (a world of ~1000 spans is a
    /// fraction of one); the next makes each batch into RocksDB records,
    /// sorted; this one writes each batch in one write, then moves each of
    /// its worlds' state past it. Every core works, and a large batch is
    /// cheaper to write than many small ones: its keys, sorted, land in
    /// RocksDB's memtables near each other.
    pub fn ingest_many(
        &self,
        worlds: &[(&str, &Path)],
        opts: &IngestOptions,
    ) -> Result<Vec<Result<IngestReport>>> {
        let batch_lines = opts.batch_lines.max(1);
        let mut results: Vec<Option<Result<IngestReport>>> = worlds.iter().map(|_| None).collect();
        std::thread::scope(|scope| {
            let (gathered_tx, gathered_rx) = std::sync::mpsc::sync_channel::<Gathering>(1);
            let (tx, rx) = std::sync::mpsc::sync_channel::<Prepared>(1);
            // What the writer wrote, told back to the reading thread.
            let (written_tx, written_rx) = std::sync::mpsc::channel::<Written>();
            scope.spawn(move || self.read_worlds(worlds, batch_lines, &gathered_tx, written_rx));
            scope.spawn(move || {
                for gathering in gathered_rx {
                    if tx.send(self.seal(gathering)).is_err() {
                        return;
                    }
                }
            });
            let mut ingesting: HashMap<usize, Ingesting> = HashMap::new();
            for prepared in rx {
                self.take_batch(prepared, worlds, &mut ingesting, &mut results, &written_tx);
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

    /// A batch written; then, world by world, the chains its lines complete
    /// found and the world's state moved past them. A world's state is
    /// written after the batch, so a crash between the two leaves its
    /// offset before lines the store holds: the next ingest takes them
    /// again, which writes the same keys again.
    fn take_batch<'w>(
        &self,
        prepared: Prepared,
        worlds: &[(&'w str, &Path)],
        ingesting: &mut HashMap<usize, Ingesting<'w>>,
        results: &mut [Option<Result<IngestReport>>],
        written_tx: &std::sync::mpsc::Sender<Written>,
    ) {
        let Prepared {
            insert,
            merge,
            written,
            parts,
        } = prepared;
        let mut write_error = match insert.and_then(|insert| self.write_batch(insert, merge)) {
            Ok(()) => {
                // The reading thread may be gone (it sent its last batch):
                // nothing is left to skip then.
                let _ = written_tx.send(written);
                crate::fail_point("graph.ingest.batch_written");
                None
            }
            Err(e) => Some(e),
        };
        // A failed write's error goes to the first of its worlds, and is
        // named to the others: (that world, the error).
        let mut shared: Option<(String, String)> = None;
        for part in parts {
            match part {
                Part::Begin(i, begun) => match self.start(worlds[i].0, *begun) {
                    Ok(started) => {
                        ingesting.insert(i, started);
                    }
                    Err(e) => results[i] = Some(Err(e)),
                },
                Part::Lines(i, lines) => {
                    // Lines of a world that failed are dropped.
                    let Some(world) = ingesting.get_mut(&i) else {
                        continue;
                    };
                    let taken = if let Some(e) = write_error.take() {
                        shared = Some((world.world.to_owned(), e.to_string()));
                        Err(e)
                    } else if let Some((first, reason)) = &shared {
                        Err(Error::SharedWrite {
                            world: first.clone(),
                            reason: reason.clone(),
                        })
                    } else {
                        self.take_lines(world, *lines)
                    };
                    if let Err(e) = taken {
                        results[i] = Some(Err(e));
                        ingesting.remove(&i);
                    }
                }
                Part::End(i, unfinished) => {
                    if let Some(mut done) = ingesting.remove(&i) {
                        if unfinished.is_some() {
                            done.begun.report.unfinished = unfinished;
                        }
                        results[i] = Some(Ok(done.finish()));
                    }
                }
                Part::Failed(i, e) => {
                    ingesting.remove(&i);
                    results[i] = Some(Err(e));
                }
            }
        }
    }

    /// A world's ingest started on this thread: what the chains' rules
    /// remember of it.
    fn start<'w>(&self, world: &'w str, begun: Begun) -> Result<Ingesting<'w>> {
        let memory = if begun.fresh {
            detect::Memory::default()
        } else {
            detect::Memory::seed(&self.view(), world)?
        };
        Ok(Ingesting {
            world,
            begun,
            memory,
        })
    }

    /// A world's lines of the batch just written: the chains they complete
    /// found, and the world's state moved past them.
    fn take_lines(&self, ingesting: &mut Ingesting<'_>, p: PartLines) -> Result<()> {
        let world = ingesting.world;
        ingesting.memory.learn(&p.triggers);
        let chains = detect::chains(&self.view(), world, &p.triggers, &ingesting.memory)?;
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

    /// A batch's vertices, edges and properties, in one write: what the
    /// reading thread made of them, and the details of edges that may
    /// already hold some, merged with what they hold (read now, after
    /// every earlier batch is written).
    fn write_batch(
        &self,
        insert: PreparedInsert,
        merge: Vec<(Edge, Map<String, Value>)>,
    ) -> Result<()> {
        let view = self.view();
        let d = ident(prop::DETAILS);
        let mut more = Vec::with_capacity(merge.len());
        for (e, mut details) in merge {
            if let Some(Value::Object(old)) = view.edge_details(&e)? {
                let mut merged = old;
                details::merge(&mut merged, &details);
                details = merged;
            }
            more.push(BulkInsertItem::EdgeProperty(
                e,
                d,
                Json::new(Value::Object(details)),
            ));
        }
        drop(view);
        self.database()
            .datastore
            .write_prepared(insert, more)
            .map_err(self.store_error())
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
    /// ingests (a world's end) leave it to grow. Either way, waits for the
    /// compactions that are due ([`GraphWriter::settle`]).
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
            self.flush()
        } else {
            self.settle()
        }
    }
}

/// A world's ingest, started.
struct Begun {
    state: IngestState,
    report: IngestReport,
    started: Instant,
    /// Nothing of the world was ingested before ([`Sent::fresh`]).
    fresh: bool,
}

/// A world being written.
struct Ingesting<'w> {
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

/// A batch read, parsed and made into graph items, ready to be written:
/// what the reading thread sends the writing one.
struct Prepared {
    /// Its items as RocksDB records (made on the reading thread), or why
    /// they could not be made.
    insert: Result<PreparedInsert>,
    /// Edges whose details may merge with stored ones (`Sent::may_hold`).
    merge: Vec<(Edge, Map<String, Value>)>,
    /// What `insert` writes that later batches need not write again.
    written: Written,
    /// What happens to each world, in order, once the batch is written.
    parts: Vec<Part>,
}

/// Lines of an ingest's first batch (at most).
const FIRST_BATCH_LINES: usize = 2_000;

/// A batch being made.
#[derive(Default)]
struct Gathering {
    plain: Vec<BulkInsertItem>,
    merge: Vec<(Edge, Map<String, Value>)>,
    written: Written,
    parts: Vec<Part>,
    /// Lines read into it.
    lines: usize,
}

impl Gathering {
    /// A world's lines, into the batch.
    fn add(&mut self, index: usize, mut read: ReadLines, sent: &mut Sent) {
        read.batch.items(sent, self);
        self.lines += read.lines.read as usize;
        read.lines.triggers = std::mem::take(&mut read.batch.triggers);
        self.parts.push(Part::Lines(index, Box::new(read.lines)));
    }
}

/// What a batch does to one world once written.
enum Part {
    /// World `i` starts.
    Begin(usize, Box<Begun>),
    /// Lines of world `i`.
    Lines(usize, Box<PartLines>),
    /// World `i` is read to its end, but for an unfinished last line of
    /// this many bytes, if any, not in a batch (none read before it).
    End(usize, Option<u64>),
    /// World `i` could not be started or read on.
    Failed(usize, Error),
}

/// A world's lines in a batch: what they ask the chains' rules to look
/// at, and how far they move the world's state.
struct PartLines {
    triggers: Triggers,
    /// Bytes of the trace they cover.
    consumed: u64,
    read: u64,
    spans: u64,
    skipped: u64,
    skipped_lines: Vec<Skipped>,
    unfinished: Option<u64>,
}

/// A world's lines read: its graph items, and what they are.
struct ReadLines {
    batch: Batch,
    lines: PartLines,
    /// The trace was read to its end (or to an unfinished last line).
    at_end: bool,
}

/// Where lines are read.
struct Lines {
    /// The next line's number.
    next: u64,
    buf: Vec<u8>,
    /// Bytes of an unfinished last line found where no line was left.
    unfinished: Option<u64>,
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
    /// The reading thread's work: each world's lines, parsed and made into
    /// graph items, gathered into batches of `batch_lines` lines. The
    /// first batches are smaller ([`FIRST_BATCH_LINES`], each next one
    /// twice as large): the other threads have nothing to do until the
    /// first is read, and an ingest of a few worlds would be one batch that
    /// each thread takes in turn.
    fn read_worlds(
        &self,
        worlds: &[(&str, &Path)],
        batch_lines: usize,
        tx: &std::sync::mpsc::SyncSender<Gathering>,
        written: std::sync::mpsc::Receiver<Written>,
    ) {
        let mut sent = Sent::new(written);
        let mut gathering = Gathering::default();
        let mut limit = batch_lines.min(FIRST_BATCH_LINES);
        for (i, &(world, trace)) in worlds.iter().enumerate() {
            let (file, begun) = match self.begin(world, trace) {
                Ok(b) => b,
                Err(e) => {
                    gathering.parts.push(Part::Failed(i, e));
                    continue;
                }
            };
            let mut lines = Lines {
                next: begun.state.lines + 1,
                buf: Vec::new(),
                unfinished: None,
            };
            let mut cwd = Cwd {
                known: HashMap::new(),
                fresh: begun.fresh,
            };
            sent.start_world(begun.fresh);
            gathering.parts.push(Part::Begin(i, Box::new(begun)));
            let mut reader = BufReader::with_capacity(1 << 20, file);
            loop {
                let room = limit.saturating_sub(gathering.lines).max(1);
                let ended = match self.read_lines(world, &mut reader, &mut lines, room, &mut cwd) {
                    Ok(Some(read)) => {
                        let at_end = read.at_end;
                        gathering.add(i, read, &mut sent);
                        if at_end {
                            gathering.parts.push(Part::End(i, None));
                        }
                        at_end
                    }
                    Ok(None) => {
                        gathering.parts.push(Part::End(i, lines.unfinished));
                        true
                    }
                    Err(e) => {
                        gathering.parts.push(Part::Failed(i, e));
                        true
                    }
                };
                if gathering.lines >= limit {
                    if tx.send(std::mem::take(&mut gathering)).is_err() {
                        return;
                    }
                    limit = (limit * 2).min(batch_lines);
                }
                if ended {
                    break;
                }
            }
        }
        if !gathering.parts.is_empty() {
            let _ = tx.send(gathering);
        }
    }

    /// A batch gathered, made into RocksDB records (the second thread's
    /// work).
    fn seal(&self, gathering: Gathering) -> Prepared {
        let Gathering {
            plain,
            merge,
            written,
            parts,
            ..
        } = gathering;
        let insert = self
            .database()
            .datastore
            .prepare_insert(plain)
            .map_err(self.store_error());
        Prepared {
            insert,
            merge,
            written,
            parts,
        }
    }

    /// A world's next lines: up to `max_lines`, parsed (in parallel) and
    /// made into graph items. `None` at the end of the trace (with
    /// `lines.unfinished` set if an unfinished line is all there is).
    fn read_lines<R: BufRead>(
        &self,
        world: &str,
        reader: &mut R,
        lines: &mut Lines,
        max_lines: usize,
        cwd: &mut Cwd,
    ) -> Result<Option<ReadLines>> {
        let batch_lines = max_lines;
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
            lines.unfinished = unfinished;
            return Ok(None);
        }
        let parsed: Vec<(u64, Option<Result<Span, String>>)> = raw
            .into_par_iter()
            .map(|(number, raw)| (number, parse(raw)))
            .collect();
        let view = self.view();
        let mut batch = Batch::new(world);
        let mut part = PartLines {
            triggers: Triggers::default(),
            consumed,
            read: 0,
            spans: 0,
            skipped: 0,
            skipped_lines: Vec::new(),
            unfinished,
        };
        for (number, span) in parsed {
            part.read += 1;
            let reason = match span {
                None => continue,
                Some(Ok(span)) if span.world_id == world => {
                    part.spans += 1;
                    batch.add(&view, cwd, span)?;
                    continue;
                }
                Some(Ok(span)) => format!("a span of world {:?}", span.world_id),
                Some(Err(reason)) => reason,
            };
            part.skipped += 1;
            if part.skipped_lines.len() < MAX_SKIPPED_LISTED {
                part.skipped_lines.push(Skipped {
                    line: number,
                    reason,
                });
            }
        }
        Ok(Some(ReadLines {
            batch,
            lines: part,
            at_end,
        }))
    }
}

/// What the reading thread knows of what this ingest has written, so that
/// later batches neither write again what earlier ones did nor read back
/// what cannot be there.
struct Sent {
    /// Vertices and fixed properties the writer wrote (told through
    /// `written`: skipped only once written, so that a batch that failed
    /// to be written leaves nothing unwritten for the next world).
    vertices: HashSet<Uuid>,
    fixed: HashSet<(Uuid, &'static str)>,
    written: std::sync::mpsc::Receiver<Written>,
    /// The world had nothing ingested when this ingest started: an edge
    /// not sent by this ingest holds nothing to merge with (what a crashed
    /// ingest left past the offset is of lines this one takes again, so it
    /// may be overwritten).
    fresh: bool,
    /// Edges of this world with details, sent in an earlier batch: their
    /// details are merged with what is stored (the writer reads them after
    /// every earlier batch is written). Every edge with details starts at
    /// a vertex of one world (its actor, or the name of one world's
    /// answer), so a world's set is all it needs.
    edges: HashSet<Edge>,
}

/// What one batch wrote that later ones need not write again.
#[derive(Default)]
struct Written {
    vertices: Vec<Uuid>,
    fixed: Vec<(Uuid, &'static str)>,
}

/// Past this many remembered keys an ingest writes (vertices) or reads
/// back (edges) instead (memory).
const RUN_MEMORY: usize = 4_000_000;

impl Sent {
    fn new(written: std::sync::mpsc::Receiver<Written>) -> Sent {
        Sent {
            vertices: HashSet::new(),
            fixed: HashSet::new(),
            written,
            fresh: false,
            edges: HashSet::new(),
        }
    }

    fn start_world(&mut self, fresh: bool) {
        self.fresh = fresh;
        self.edges.clear();
    }

    /// Learns what the writer has written since it was last asked.
    fn learn(&mut self) {
        while let Ok(written) = self.written.try_recv() {
            self.vertices.extend(written.vertices);
            self.fixed.extend(written.fixed);
        }
        if self.vertices.len() + self.fixed.len() > RUN_MEMORY {
            self.vertices.clear();
            self.fixed.clear();
        }
    }

    /// The edge may hold details already, to merge with; remembered as
    /// sent.
    fn may_hold(&mut self, edge: &Edge) -> bool {
        if !self.fresh {
            return true;
        }
        if self.edges.len() >= RUN_MEMORY {
            // From here on, every edge is read back.
            self.fresh = false;
            self.edges.clear();
            return true;
        }
        !self.edges.insert(edge.clone())
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

    /// The batch's items, into `into`: those that need no read of the
    /// store, the edges whose details may merge with stored ones, and what
    /// the items write that later batches need not write again.
    fn items(&mut self, sent: &mut Sent, into: &mut Gathering) {
        sent.learn();
        let Gathering {
            plain,
            merge,
            written,
            ..
        } = into;
        plain.reserve(
            self.vertices.len() + self.vprops.len() + self.fixed.len() + 2 * self.edges.len(),
        );
        for (id, t) in self.vertices.drain() {
            if !sent.vertices.contains(&id) {
                written.vertices.push(id);
                plain.push(BulkInsertItem::Vertex(Vertex::with_id(id, ident(t))));
            }
        }
        for ((id, name), value) in self.fixed.drain() {
            if !sent.fixed.contains(&(id, name)) {
                written.fixed.push((id, name));
                plain.push(BulkInsertItem::VertexProperty(
                    id,
                    ident(name),
                    Json::new(value),
                ));
            }
        }
        for ((id, name), value) in self.vprops.drain() {
            plain.push(BulkInsertItem::VertexProperty(
                id,
                ident(name),
                Json::new(value),
            ));
        }
        let d = ident(prop::DETAILS);
        for (e, details) in self.edges.drain() {
            if !details.is_empty() {
                if sent.may_hold(&e) {
                    merge.push((e.clone(), details));
                } else {
                    plain.push(BulkInsertItem::EdgeProperty(
                        e.clone(),
                        d,
                        Json::new(Value::Object(details)),
                    ));
                }
            }
            plain.push(BulkInsertItem::Edge(e));
        }
        for e in self.blocked.drain() {
            plain.push(BulkInsertItem::EdgeProperty(
                e,
                ident(prop::BLOCKED),
                Json::new(Value::Bool(true)),
            ));
        }
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
