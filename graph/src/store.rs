//! The graph's store: IndraDB over RocksDB in one directory, its options,
//! and who may open it how.
//!
//! One writer at a time: RocksDB allows one process to open a store for
//! writing, so writers (`ingest`, `rebuild`) take an exclusive `flock` on
//! `<dir>/lock` first and wait for each other (a world ending while
//! another's ingest runs waits its turn). Readers (the queries) open the
//! store read-only, which RocksDB allows beside a writer, take no lock and
//! see what was written when they opened it.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indradb::{
    Database, Datastore, Edge, Identifier, Json, RocksdbDatastore, Transaction, WriteConfig,
};
use rocksdb::{BlockBasedOptions, Cache, DBCompressionType, Options};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::model::{ident, prop};

/// Where the graph lives: `$SUBSTRATE_GRAPH_DIR`, else `<state dir>/graph`
/// (`/var/lib/substrate/graph`).
#[derive(Clone, Debug)]
pub struct GraphDir {
    path: PathBuf,
}

/// Overrides where the graph is kept.
pub const GRAPH_DIR_ENV: &str = "SUBSTRATE_GRAPH_DIR";

impl GraphDir {
    pub fn new(path: impl Into<PathBuf>) -> GraphDir {
        GraphDir { path: path.into() }
    }

    /// `$SUBSTRATE_GRAPH_DIR`, else `graph/` in the state dir.
    pub fn from_env(state_dir: &Path) -> GraphDir {
        match std::env::var_os(GRAPH_DIR_ENV).filter(|v| !v.is_empty()) {
            Some(dir) => GraphDir::new(dir),
            None => GraphDir::new(state_dir.join("graph")),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn db(&self) -> PathBuf {
        self.path.join("db")
    }

    fn lock(&self) -> PathBuf {
        self.path.join("lock")
    }

    fn store_error(&self) -> impl Fn(indradb::Error) -> Error + '_ {
        move |source| Error::Store {
            dir: self.path.clone(),
            source,
        }
    }
}

/// RocksDB's options for the graph, tuned for what it does (docs/graph.md,
/// "Tuning"; IndraDB gives every column family these, patched: it gave
/// them RocksDB's defaults): IndraDB's own (level compaction, 4 levels,
/// a compaction at 8 files in level 0), plus
///
/// - a bloom filter per table: most reads are point reads of a property or
///   of whether a vertex exists, and misses (a file nobody wrote) are
///   common; without it each miss reads a block of every file it may be in;
/// - one block cache for every column family, index and filter blocks in
///   it (level 0's pinned): a query touches a few keys each of many tables,
///   and a one-shot query process reads only the index blocks it needs;
/// - tables of at most 16 MiB: a table's index block must fit in one of
///   the cache's 64 shards (1 MiB each), or it is read and decompressed
///   again for every key looked up in the table (a store compacted into
///   IndraDB's 64 MiB tables answered `tree` in 78 ms instead of 3);
/// - LZ4 at every level: a compaction with Zstandard at the last level
///   took twice the CPU, which ingest competes for, for 16% less disk;
/// - dynamic level sizes (RocksDB's advice when data keeps growing: the
///   slowdown users saw as IndraDB's stores grew, indradb#115, came from
///   levels far from their targets, which this keeps near);
/// - 64 MiB memtables and a write-ahead log bounded at 128 MiB (memtables
///   flushed when it exceeds that): fewer, larger flushes, so fewer files
///   in level 0 for a read to look through and fewer compactions, at the
///   cost of a query that opens the store during a large ingest
///   replaying up to that much log (an ingest that leaves more than 8 MiB
///   flushes).
pub fn options() -> Options {
    let mut opts = RocksdbDatastore::get_options(Some(512));
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_write_buffer_size(64 << 20);
    opts.set_max_write_buffer_number(3);
    opts.set_max_total_wal_size(128 << 20);
    opts.set_target_file_size_base(16 << 20);
    opts.set_level_compaction_dynamic_level_bytes(true);
    opts.set_max_background_jobs(2);
    opts.set_bytes_per_sync(1 << 20);
    opts.set_compression_type(DBCompressionType::Lz4);
    let mut table = BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    if let Ok(cache) = Cache::new_lru_cache(64 << 20) {
        table.set_block_cache(&cache);
    }
    opts.set_block_based_table_factory(&table);
    opts
}

// Queries read on every core, each thread through a view of its own.
const _: () = {
    const fn sync<T: Sync>() {}
    sync::<Graph>();
};

/// The graph, open for reading.
pub struct Graph {
    db: Database<RocksdbDatastore>,
    dir: GraphDir,
}

/// The graph, open for writing: holds the writers' lock until dropped.
pub struct GraphWriter {
    graph: Graph,
    lock: File,
}

impl std::ops::Deref for GraphWriter {
    type Target = Graph;
    fn deref(&self) -> &Graph {
        &self.graph
    }
}

/// How long a writer waits for another to finish.
pub const LOCK_WAIT: Duration = Duration::from_secs(120);

impl Graph {
    /// Opens the graph read-only; [`Error::Empty`] when nothing was ever
    /// ingested into it.
    pub fn open(dir: &GraphDir) -> Result<Graph> {
        if !dir.db().join("CURRENT").exists() {
            return Err(Error::Empty {
                dir: dir.path.clone(),
            });
        }
        let db =
            RocksdbDatastore::new_db_read_only(dir.db(), &options()).map_err(dir.store_error())?;
        Ok(Graph {
            db,
            dir: dir.clone(),
        })
    }

    /// Opens the graph for writing, creating it if need be, once no other
    /// writer holds it (waiting up to `wait`).
    pub fn open_writer(dir: &GraphDir, wait: Duration) -> Result<GraphWriter> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { path, source }
        };
        std::fs::create_dir_all(&dir.path).map_err(io(&dir.path))?;
        let lock_path = dir.lock();
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        let started = Instant::now();
        loop {
            match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(rustix::io::Errno::WOULDBLOCK) if started.elapsed() < wait => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    return Err(Error::Busy {
                        dir: dir.path.clone(),
                        lock: lock_path,
                        waited_s: wait.as_secs(),
                    })
                }
                Err(e) => return Err(io(&lock_path)(e.into())),
            }
        }
        Graph::open_locked(dir, lock)
    }

    fn open_locked(dir: &GraphDir, lock: File) -> Result<GraphWriter> {
        let mut db = RocksdbDatastore::new_db_with_options(dir.db(), &options())
            .map_err(dir.store_error())?;
        db.datastore.configure_writes(WriteConfig {
            unchanging: prop::UNCHANGING.into_iter().map(ident).collect(),
        });
        let graph = Graph {
            db,
            dir: dir.clone(),
        };
        for name in prop::INDEXED {
            // Recorded in the store: a no-op once done.
            graph
                .db
                .index_property(ident(name))
                .map_err(dir.store_error())?;
        }
        Ok(GraphWriter { graph, lock })
    }

    pub fn dir(&self) -> &GraphDir {
        &self.dir
    }

    pub(crate) fn database(&self) -> &Database<RocksdbDatastore> {
        &self.db
    }

    pub(crate) fn store_error(&self) -> impl Fn(indradb::Error) -> Error + '_ {
        self.dir.store_error()
    }

    /// A consistent view for reading many keys.
    pub fn view(&self) -> View<'_> {
        View {
            txn: self.db.datastore.transaction(),
            store: &self.db.datastore,
            dir: &self.dir,
        }
    }

    /// Bytes the store takes on disk.
    pub fn disk_bytes(&self) -> u64 {
        fn walk(path: &Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(path) else {
                return 0;
            };
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.dir.db())
    }
}

impl GraphWriter {
    /// The store removed and made again, empty (for `rebuild`), without
    /// letting go of the lock: no other writer sees half a store.
    pub fn emptied(self) -> Result<GraphWriter> {
        let GraphWriter { graph, lock } = self;
        let dir = graph.dir.clone();
        drop(graph);
        let db = dir.db();
        match std::fs::remove_dir_all(&db) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::Io { path: db, source }),
        }
        Graph::open_locked(&dir, lock)
    }

    /// Memtables to files: the next open replays no log. Then waits for
    /// the compactions that are due ([`GraphWriter::settle`]).
    pub fn flush(&self) -> Result<()> {
        self.graph
            .db
            .datastore
            .flush()
            .map_err(self.graph.store_error())?;
        self.settle()
    }

    /// Waits (up to [`SETTLE_WAIT`]) for the flushes and compactions under
    /// way or due to finish before the writer lets go of the store: closed
    /// now, RocksDB would abandon them, and short ingests one after another
    /// would each start them again and finish none, while level 0's files
    /// piled up for every query's reads to look through (until RocksDB
    /// stopped writes at 24 of them).
    pub fn settle(&self) -> Result<()> {
        self.graph
            .db
            .datastore
            .wait_for_compactions(SETTLE_WAIT)
            .map_err(self.graph.store_error())?;
        Ok(())
    }
}

/// How long a writer waits for compactions before it closes the store
/// anyway (they start again with the next writer).
pub const SETTLE_WAIT: Duration = Duration::from_secs(300);

/// A value read from the store, without copying it (it is the only
/// reference to what was just parsed).
fn owned(value: Json) -> Value {
    Arc::try_unwrap(value.0).unwrap_or_else(|shared| (*shared).clone())
}

/// Reads of the store, through one IndraDB transaction.
pub struct View<'a> {
    txn: <RocksdbDatastore as Datastore>::Transaction<'a>,
    store: &'a RocksdbDatastore,
    dir: &'a GraphDir,
}

impl View<'_> {
    fn err(&self, source: indradb::Error) -> Error {
        Error::Store {
            dir: self.dir.path.clone(),
            source,
        }
    }

    /// Edges of type `t` out of `id` (which need not be a vertex: an actor
    /// whose exec span is not in the graph still has its edges).
    pub fn out_edges(&self, id: Uuid, t: &'static str) -> Result<Vec<Edge>> {
        let t = ident(t);
        let iter = self
            .txn
            .range_edges(Edge::new(id, t, Uuid::nil()))
            .map_err(|e| self.err(e))?;
        self.while_from(iter, |edge| edge.outbound_id == id && edge.t == t)
    }

    /// Every edge out of `id`, of any type (one seek).
    pub fn all_out_edges(&self, id: Uuid) -> Result<Vec<Edge>> {
        let iter = self
            .txn
            .range_edges(Edge::new(id, Identifier::default(), Uuid::nil()))
            .map_err(|e| self.err(e))?;
        self.while_from(iter, |edge| edge.outbound_id == id)
    }

    /// The edges of a range scan, up to the first that is not `within`
    /// (the scan runs in key order: the rest are not either).
    fn while_from(
        &self,
        iter: indradb::DynIter<'_, Edge>,
        within: impl Fn(&Edge) -> bool,
    ) -> Result<Vec<Edge>> {
        let mut edges = Vec::new();
        for edge in iter {
            let edge = edge.map_err(|e| self.err(e))?;
            if !within(&edge) {
                break;
            }
            edges.push(edge);
        }
        Ok(edges)
    }

    /// The details (`d`) of every edge out of `id` whose type is one of
    /// `types`, in one scan (the others' are not parsed).
    pub fn out_details(&self, id: Uuid, types: &[&str]) -> Result<HashMap<Edge, Value>> {
        let d = ident(prop::DETAILS);
        let props = self
            .store
            .edge_properties_out_of(id, |t| types.contains(&t.as_str()))
            .map_err(|e| self.err(e))?;
        Ok(props
            .into_iter()
            .filter(|(_, name, _)| *name == d)
            .map(|(edge, _, value)| (edge, owned(value)))
            .collect())
    }

    /// Edges of type `t` into `id`, as stored (outbound: the actor).
    pub fn in_edges(&self, id: Uuid, t: &'static str) -> Result<Vec<Edge>> {
        let t = ident(t);
        let iter = self
            .txn
            .range_reversed_edges(Edge::new(id, t, Uuid::nil()))
            .map_err(|e| self.err(e))?;
        let edges = self.while_from(iter, |edge| edge.outbound_id == id && edge.t == t)?;
        Ok(edges.into_iter().map(|edge| edge.reversed()).collect())
    }

    /// The vertex's type, `None` when there is no such vertex.
    pub fn vertex_type(&self, id: Uuid) -> Result<Option<Identifier>> {
        let mut iter = self
            .txn
            .specific_vertices(vec![id])
            .map_err(|e| self.err(e))?;
        match iter.next() {
            Some(v) => Ok(Some(v.map_err(|e| self.err(e))?.t)),
            None => Ok(None),
        }
    }

    pub fn vertex_prop(&self, id: Uuid, name: &'static str) -> Result<Option<Value>> {
        let vertex = indradb::Vertex::with_id(id, ident(prop::DETAILS));
        let value = self
            .txn
            .vertex_property(&vertex, ident(name))
            .map_err(|e| self.err(e))?;
        Ok(value.map(owned))
    }

    /// A vertex's details (`d`).
    pub fn details(&self, id: Uuid) -> Result<Option<Value>> {
        self.vertex_prop(id, prop::DETAILS)
    }

    /// An edge's details (`d`).
    pub fn edge_details(&self, edge: &Edge) -> Result<Option<Value>> {
        let value = self
            .txn
            .edge_property(edge, ident(prop::DETAILS))
            .map_err(|e| self.err(e))?;
        Ok(value.map(owned))
    }

    /// Vertices whose indexed property `name` is present (`value: None`)
    /// or equals `value`.
    pub fn vertices_with(&self, name: &'static str, value: Option<&Value>) -> Result<Vec<Uuid>> {
        let name = ident(name);
        let iter = match value {
            None => self.txn.vertex_ids_with_property(name),
            Some(v) => self
                .txn
                .vertex_ids_with_property_value(name, &Json::new(v.clone())),
        }
        .map_err(|e| self.err(e))?;
        let Some(iter) = iter else {
            return Ok(Vec::new());
        };
        iter.map(|r| r.map_err(|e| self.err(e))).collect()
    }

    /// Every vertex (`[id, type, {properties}]`) and edge (`[out, type,
    /// in, {properties}]`), sorted.
    pub fn everything(&self) -> Result<(Vec<Value>, Vec<Value>)> {
        let mut vertices = Vec::new();
        for v in self.txn.all_vertices().map_err(|e| self.err(e))? {
            let v = v.map_err(|e| self.err(e))?;
            let mut props = serde_json::Map::new();
            for p in self
                .txn
                .all_vertex_properties_for_vertex(&v)
                .map_err(|e| self.err(e))?
            {
                let (name, value) = p.map_err(|e| self.err(e))?;
                props.insert(name.to_string(), (*value.0).clone());
            }
            vertices.push(serde_json::json!([v.id, v.t.as_str(), props]));
        }
        let mut edges = Vec::new();
        for e in self.txn.all_edges().map_err(|e| self.err(e))? {
            let e = e.map_err(|e| self.err(e))?;
            let mut props = serde_json::Map::new();
            for p in self
                .txn
                .all_edge_properties_for_edge(&e)
                .map_err(|e| self.err(e))?
            {
                let (name, value) = p.map_err(|e| self.err(e))?;
                props.insert(name.to_string(), (*value.0).clone());
            }
            edges.push(serde_json::json!([
                e.outbound_id,
                e.t.as_str(),
                e.inbound_id,
                props
            ]));
        }
        let key = |v: &Value| v.to_string();
        vertices.sort_by_key(key);
        edges.sort_by_key(key);
        Ok((vertices, edges))
    }

    /// Edges whose indexed property `name` is present.
    pub fn edges_with(&self, name: &'static str) -> Result<Vec<Edge>> {
        let iter = self
            .txn
            .edges_with_property(ident(name))
            .map_err(|e| self.err(e))?;
        let Some(iter) = iter else {
            return Ok(Vec::new());
        };
        iter.map(|r| r.map_err(|e| self.err(e))).collect()
    }
}
