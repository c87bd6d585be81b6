//! `verify`: whether a world's trace and record are whole and unaltered.
//!
//! The trace's hash chain is checked line by line
//! ([`substrate_trace::chain`]), against the end its record keeps once the
//! trace is closed; then the record's account of how the world ended (its
//! exit, its fs diff totals) against the world span, the trace's own last
//! word on it. Nothing is changed: a world whose monitor was lost is ended
//! by whoever calls [`crate::Runtime::end_unmonitored`] first.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader};

use substrate_trace::{
    read_spans, verify_chain, Broken, ChainCheck, ChainEnd, Detail, Outcome, SpanKind,
};

use crate::error::{Error, Result};
use crate::id::WorldId;
use crate::monitor::TraceLease;
use crate::record::WorldRecord;
use crate::store::WorldStore;

/// Where a world's trace is in its life, as its record and its lease say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceState {
    /// Closed: the record holds where its chain ends.
    Closed(ChainEnd),
    /// A monitor began it and has not closed it (it writes it now, or it
    /// was lost): the lines so far are checked, nothing is said of the
    /// rest.
    BeingWritten,
    /// The record holds no chain end and no monitor writes the trace: a
    /// world recorded before traces were chained, or one never traced.
    NoEnd,
}

/// What is not whole or not as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A line of the trace (the first one that is not as written).
    Trace(Broken),
    /// The record says otherwise than the world span (at `line`).
    Record {
        line: u64,
        field: &'static str,
        record: String,
        trace: String,
    },
    /// The record in the world's dir is another world's.
    OtherWorld { found: WorldId },
    /// There is nothing to check the trace's end by (see
    /// [`TraceState::NoEnd`]).
    NoEnd,
}

impl Problem {
    /// The line of the trace the problem is at, when it is at one.
    pub fn line(&self) -> Option<u64> {
        match self {
            Problem::Trace(broken) => Some(broken.line()),
            Problem::Record { line, .. } => Some(*line),
            Problem::OtherWorld { .. } | Problem::NoEnd => None,
        }
    }
}

impl Problem {
    /// A name for what is wrong, for machines: [`Broken::kind`] for the
    /// trace's, else `record_altered`, `other_world` or `no_end`.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::Trace(broken) => broken.kind(),
            Problem::Record { .. } => "record_altered",
            Problem::OtherWorld { .. } => "other_world",
            Problem::NoEnd => "no_end",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Trace(broken) => broken.fmt(f),
            Problem::Record {
                line,
                field,
                record,
                trace,
            } => write!(
                f,
                "the record was altered: its `{field}` is {record}, the world span \
                 (line {line}) says {trace}"
            ),
            Problem::OtherWorld { found } => {
                write!(f, "the record in the world's dir is world {found}'s")
            }
            Problem::NoEnd => write!(
                f,
                "its record holds no end of the trace's chain (`trace_chain`): recorded \
                 before traces were chained, or never traced; it cannot be verified"
            ),
        }
    }
}

/// What `verify` found.
#[derive(Clone, Debug)]
pub struct Verification {
    pub id: WorldId,
    pub state: TraceState,
    /// The chain as checked; `None` when there is no trace file.
    pub chain: Option<ChainCheck>,
    /// The first thing found not whole or not as written; `None`: the
    /// trace and record are whole and unaltered (so far, for a trace
    /// still [`TraceState::BeingWritten`]).
    pub problem: Option<Problem>,
}

impl Verification {
    pub fn is_whole(&self) -> bool {
        self.problem.is_none()
    }
}

impl WorldStore {
    /// Checks world `id`'s trace and record (see the module doc).
    pub fn verify(&self, id: &WorldId) -> Result<Verification> {
        // Before the record: a monitor puts the chain's end into the record
        // before it gives its lease back, so a trace found without a lease
        // has its end in the record read after.
        let being_written = TraceLease::is_taken(&self.world_dir(id));
        let record = self.record(id)?;
        let state = match (&record.trace_chain, being_written) {
            (Some(end), _) => TraceState::Closed(end.clone()),
            (None, true) => TraceState::BeingWritten,
            (None, false) => TraceState::NoEnd,
        };
        let mut verification = Verification {
            id: id.clone(),
            state,
            chain: None,
            problem: None,
        };
        if record.id != *id {
            verification.problem = Some(Problem::OtherWorld {
                found: record.id.clone(),
            });
            return Ok(verification);
        }
        let path = self.trace_path(id);
        let end = match &verification.state {
            TraceState::Closed(end) => Some(end),
            TraceState::BeingWritten => None,
            TraceState::NoEnd => {
                verification.problem = Some(Problem::NoEnd);
                return Ok(verification);
            }
        };
        let chain = match File::open(&path) {
            Ok(file) => verify_chain(BufReader::new(file), id.as_str(), end),
            // A closed trace that is gone is a trace cut to nothing.
            Err(e) if e.kind() == io::ErrorKind::NotFound && end.is_some() => {
                verify_chain(io::empty(), id.as_str(), end)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(verification),
            Err(e) => return Err(Error::io("cannot read the trace", &path, e)),
        }
        .map_err(|e| Error::io("cannot read the trace", &path, e))?;
        verification.problem = chain.broken.clone().map(Problem::Trace);
        verification.chain = Some(chain);
        if verification.problem.is_none() && end.is_some() {
            verification.problem = record_against_world_span(&record, &path)?;
        }
        Ok(verification)
    }
}

/// Whether the record's account of the world's end is the world span's:
/// its exit and its fs diff totals, where the world span has them.
fn record_against_world_span(
    record: &WorldRecord,
    path: &std::path::Path,
) -> Result<Option<Problem>> {
    let file = File::open(path).map_err(|e| Error::io("cannot read the trace", path, e))?;
    let mut reader = read_spans(BufReader::new(file));
    let mut world = None;
    while let Some(span) = reader.next() {
        match span {
            Ok(span) if span.kind() == SpanKind::World => {
                world = Some((reader.stats().lines, span))
            }
            Ok(_) => {}
            Err(e) if e.is_fatal() => {
                return Err(Error::io(
                    "cannot read the trace",
                    path,
                    io::Error::other(e.to_string()),
                ))
            }
            Err(_) => {}
        }
    }
    let Some((line, span)) = world else {
        return Ok(None);
    };
    let problem = |field, record: String, trace: String| {
        Some(Problem::Record {
            line,
            field,
            record,
            trace,
        })
    };
    // The record may know an exit the monitor did not see (a lost
    // monitor's), never another one, nor none when it saw one.
    if let Some(Outcome::Exited(exit)) = span.result {
        if record.exit != Some(exit) {
            return Ok(problem("exit", json(&record.exit), json(&exit)));
        }
    }
    if let Detail::World(detail) = &span.detail {
        if let Some(fs) = detail.fs {
            let recorded = record
                .diff
                .as_ref()
                .map(|d| (d.added, d.changed, d.deleted));
            if recorded != Some((fs.added, fs.changed, fs.deleted)) {
                return Ok(problem(
                    "diff",
                    match recorded {
                        Some((a, c, d)) => format!("{a} added, {c} changed, {d} deleted"),
                        None => "null".into(),
                    },
                    format!(
                        "{} added, {} changed, {} deleted",
                        fs.added, fs.changed, fs.deleted
                    ),
                ));
            }
        }
    }
    Ok(None)
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::TraceFile;
    use std::fs;
    use substrate_trace::{ExitStatus, Timestamp};

    const ID: &str = "w-verify";

    /// A store with world `ID`'s record (no trace yet).
    fn store() -> (tempfile::TempDir, WorldStore, WorldId) {
        let dir = tempfile::tempdir().unwrap();
        let store = WorldStore::new(dir.path());
        let id = WorldId::new(ID).unwrap();
        store.create_world_dir(&id).unwrap();
        let record: WorldRecord = serde_json::from_value(serde_json::json!({
            "schema": crate::record::RECORD_SCHEMA,
            "id": ID,
            "source": {"kind": "host"},
            "runtime_root": "/run/substrate-test",
            "lower": ["/"],
            "command": ["true"],
            "env": [],
            "cwd": "/",
            "created_at": "2024-07-01T12:00:00.000000000Z",
            "exit": {"code": 3},
        }))
        .unwrap();
        store.save_record(&record).unwrap();
        (dir, store, id)
    }

    /// The trace as a monitor writes it: a few spans, then the world span
    /// (init exited 3), its chain's end in the record.
    fn write_trace(store: &WorldStore, id: &WorldId) {
        let lease = TraceLease::acquire(&store.world_dir(id)).unwrap();
        let mut trace = TraceFile::open(&store.trace_path(id), id.as_str(), lease).unwrap();
        for n in 0..3 {
            trace.write_loss(serde_json::json!({ "n": n })).unwrap();
        }
        trace
            .write_world_span(Timestamp::now(), Some(ExitStatus::Code(3)), None)
            .unwrap();
        let end = trace.chain_end().unwrap();
        store.add_trace_chain(id, end).unwrap();
        trace.close().unwrap();
    }

    fn lines(store: &WorldStore, id: &WorldId) -> Vec<String> {
        fs::read_to_string(store.trace_path(id))
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_trace_as_the_monitor_writes_it_is_whole() {
        let (_dir, store, id) = store();
        write_trace(&store, &id);
        let verification = store.verify(&id).unwrap();
        assert_eq!(verification.problem, None);
        let end = store.record(&id).unwrap().trace_chain.unwrap();
        assert_eq!(end.lines, 4);
        assert_eq!(verification.state, TraceState::Closed(end));
        assert_eq!(verification.chain.unwrap().lines, 4);
    }

    #[test]
    fn an_edited_deleted_or_truncated_trace_names_its_line() {
        let (_dir, store, id) = store();
        write_trace(&store, &id);
        let original = lines(&store, &id);
        let path = store.trace_path(&id);
        let write = |lines: &[String]| {
            fs::write(
                &path,
                lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
            )
            .unwrap()
        };
        let problem_line = || store.verify(&id).unwrap().problem.and_then(|p| p.line());

        let mut edited = original.clone();
        edited[1] = edited[1].replace(r#""n":1"#, r#""n":7"#);
        assert_ne!(edited, original);
        write(&edited);
        assert_eq!(problem_line(), Some(2));

        let mut deleted = original.clone();
        deleted.remove(2);
        write(&deleted);
        assert_eq!(problem_line(), Some(3));

        write(&original[..2]);
        assert_eq!(problem_line(), Some(3));

        fs::remove_file(&path).unwrap();
        assert_eq!(problem_line(), Some(1));

        write(&original);
        assert_eq!(store.verify(&id).unwrap().problem, None);
    }

    #[test]
    fn an_altered_record_disagrees_with_the_world_span() {
        let (_dir, store, id) = store();
        write_trace(&store, &id);
        let mut record = store.record(&id).unwrap();
        record.exit = Some(ExitStatus::Code(0));
        store.save_record(&record).unwrap();
        let problem = store.verify(&id).unwrap().problem.unwrap();
        assert!(
            matches!(
                problem,
                Problem::Record {
                    line: 4,
                    field: "exit",
                    ..
                }
            ),
            "{problem}"
        );

        record.exit = Some(ExitStatus::Code(3));
        record.trace_chain.as_mut().unwrap().lines = 3;
        store.save_record(&record).unwrap();
        let problem = store.verify(&id).unwrap().problem.unwrap();
        assert_eq!(
            problem,
            Problem::Trace(Broken::EndAltered { line: 3 }),
            "{problem}"
        );
    }

    #[test]
    fn a_trace_being_written_is_checked_as_far_as_it_goes() {
        let (_dir, store, id) = store();
        let lease = TraceLease::acquire(&store.world_dir(&id)).unwrap();
        let mut trace = TraceFile::open(&store.trace_path(&id), id.as_str(), lease).unwrap();
        trace.write_loss(serde_json::json!({})).unwrap();
        trace.flush().unwrap();
        // Half a line more, as a write in progress would leave.
        let mut bytes = fs::read(store.trace_path(&id)).unwrap();
        bytes.extend_from_slice(br#"{"seq":2,"pr"#);
        fs::write(store.trace_path(&id), &bytes).unwrap();
        let verification = store.verify(&id).unwrap();
        assert_eq!(verification.state, TraceState::BeingWritten);
        assert_eq!(verification.problem, None);
        let chain = verification.chain.unwrap();
        assert_eq!((chain.lines, chain.unfinished), (1, Some(12)));
        drop(trace);
    }

    #[test]
    fn a_trace_continued_after_a_lost_monitor_is_one_chain() {
        let (_dir, store, id) = store();
        let lease = TraceLease::acquire(&store.world_dir(&id)).unwrap();
        let mut trace = TraceFile::open(&store.trace_path(&id), id.as_str(), lease).unwrap();
        trace.write_loss(serde_json::json!({})).unwrap();
        trace.flush().unwrap();
        // The monitor dies in the middle of its second line.
        drop(trace);
        let mut bytes = fs::read(store.trace_path(&id)).unwrap();
        bytes.extend_from_slice(br#"{"seq":2,"prev":"ab"#);
        fs::write(store.trace_path(&id), &bytes).unwrap();
        // Whoever ends it (`end_unmonitored`) goes on from there.
        let lease = TraceLease::of_lost_monitor(&store.world_dir(&id))
            .unwrap()
            .expect("a lost monitor's lease");
        let mut trace = TraceFile::open(&store.trace_path(&id), id.as_str(), lease).unwrap();
        trace
            .write_world_span(Timestamp::now(), Some(ExitStatus::Code(3)), None)
            .unwrap();
        store
            .add_trace_chain(&id, trace.chain_end().unwrap())
            .unwrap();
        trace.close().unwrap();
        let verification = store.verify(&id).unwrap();
        assert_eq!(verification.problem, None, "{:?}", verification.problem);
        assert_eq!(verification.chain.unwrap().cut_by_crash, vec![2]);
        assert_eq!(lines(&store, &id).len(), 3);
    }

    #[test]
    fn a_record_without_a_chain_end_cannot_be_verified() {
        let (_dir, store, id) = store();
        fs::write(store.trace_path(&id), "{}\n").unwrap();
        let verification = store.verify(&id).unwrap();
        assert_eq!(verification.state, TraceState::NoEnd);
        assert_eq!(verification.problem, Some(Problem::NoEnd));
    }
}
