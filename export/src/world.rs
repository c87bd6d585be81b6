//! A finished world as the exporter reads it: its record and its spans.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;

use substrate_runtime::monitor::TraceLease;
use substrate_runtime::{WorldId, WorldRecord, WorldStore};
use substrate_trace::{read_spans, Span};

/// Why a world cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    #[error(
        "no such world {id:?} (see `substrate-cli ps`; records are under {})",
        state_dir.display()
    )]
    Unknown { id: String, state_dir: PathBuf },
    #[error(
        "world {id} has not ended: its trace is still being written (or its monitor was lost: \
         `substrate-cli ps` ends such a world's trace); export it once it has ended"
    )]
    Running { id: WorldId },
    #[error("world {id} has no trace (no {}): it ran untraced", path.display())]
    NoTrace { id: WorldId, path: PathBuf },
    #[error("cannot read the trace of world {id} ({})", path.display())]
    Read {
        id: WorldId,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Record(#[from] substrate_runtime::Error),
}

/// A world's record and the spans of its trace.
#[derive(Debug, Clone)]
pub struct WorldTrace {
    pub record: WorldRecord,
    /// One per span id: the last line written of each (a span is written
    /// again when it ends), in file order of their first lines.
    pub spans: Vec<Span>,
    /// Lines of the trace that are not spans (garbage, an unfinished last
    /// line, a newer major version): skipped, as every reader does.
    pub skipped: u64,
}

impl WorldTrace {
    /// Whether the world `id` of `store` can be loaded (it is known, has
    /// ended and has a trace), without reading its trace.
    pub fn check(store: &WorldStore, id: &str) -> Result<WorldRecord, WorldError> {
        let unknown = || WorldError::Unknown {
            id: id.to_owned(),
            state_dir: store.state_dir().to_owned(),
        };
        let id = WorldId::new(id).map_err(|_| unknown())?;
        if !store.has_record(&id) {
            return Err(unknown());
        }
        let record = store.record(&id)?;
        if !has_ended(store, &record) {
            return Err(WorldError::Running { id });
        }
        let path = store.trace_path(&id);
        if !path.exists() {
            return Err(WorldError::NoTrace { id, path });
        }
        Ok(record)
    }

    /// The world `id` of `store`, which must have ended.
    pub fn load(store: &WorldStore, id: &str) -> Result<WorldTrace, WorldError> {
        let record = WorldTrace::check(store, id)?;
        let id = record.id.clone();
        let path = store.trace_path(&id);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(WorldError::NoTrace { id, path })
            }
            Err(source) => return Err(WorldError::Read { id, path, source }),
        };
        let mut reader = read_spans(BufReader::new(file));
        let mut spans: Vec<Span> = Vec::new();
        let mut at: HashMap<substrate_trace::SpanId, usize> = HashMap::new();
        for item in reader.by_ref() {
            match item {
                Ok(span) => match at.get(&span.span_id) {
                    Some(&i) => spans[i] = span,
                    None => {
                        at.insert(span.span_id, spans.len());
                        spans.push(span);
                    }
                },
                Err(substrate_trace::ReadError::Io(source)) => {
                    return Err(WorldError::Read { id, path, source })
                }
                Err(_) => {}
            }
        }
        Ok(WorldTrace {
            record,
            spans,
            skipped: reader.stats().skipped + reader.stats().unfinished,
        })
    }
}

/// Whether the world's trace is closed: no monitor holds its lease, and its
/// chain's end is in the record (or, for a world recorded before traces were
/// chained, it has ended).
fn has_ended(store: &WorldStore, record: &WorldRecord) -> bool {
    !TraceLease::is_taken(&store.world_dir(&record.id))
        && (record.trace_chain.is_some() || record.ended_at.is_some())
}

/// Every world of `store` that has ended and has a trace, oldest first.
pub fn finished_worlds(store: &WorldStore) -> Result<Vec<WorldId>, substrate_runtime::Error> {
    Ok(store
        .records()?
        .into_iter()
        .filter(|r| has_ended(store, r) && store.trace_path(&r.id).is_file())
        .map(|r| r.id)
        .collect())
}
