//! Substrate's span model: every span, whoever witnessed it (the LD_PRELOAD
//! library in a world, the host-side monitor, the kernel event source, the
//! runtime), as the monitor and the runtime write it and every reader
//! (`substrate-cli trace`, the graph indexer) reads it.
//!
//! A trace is JSON lines, one [`Span`] per line, schema version
//! [`SCHEMA_VERSION`]; `docs/trace-spans.md` documents every field (its
//! examples are checked against the builders by a test). The LD_PRELOAD
//! library does not link this crate: it writes binary records into a
//! `substrate-ring` ring, which the monitor turns into spans here. Redaction
//! ([`redact`]) works on raw bytes, since paths, argv and env need not be
//! UTF-8.
//!
//! - write: build with [`Span::exec`], [`Span::file`], ... (argv and env are
//!   redacted as they are set), then [`Span::to_line`];
//! - read: [`read_spans`] over a `BufRead`, or [`Span::from_line`];
//! - chain: a trace file's lines are hash-chained ([`chain`]): write each
//!   span's line with [`Chain::link`], check a file with [`verify_chain`].

pub mod build;
pub mod bytes;
pub mod chain;
mod errno;
mod id;
mod read;
pub mod redact;
mod span;
mod time;
mod wire;

pub use build::SpanBuilder;
pub use chain::{verify_chain, Broken, Chain, ChainCheck, ChainEnd};
pub use errno::Errno;
pub use id::{world_id_flaw, SpanId, SpanIdError};
pub use read::{read_spans, ReadError, ReadStats, SpanReader};
pub use redact::{EnvAllowList, REDACTED};
pub use span::{
    fopen_flags, Decision, Detail, DnsDetail, ExitStatus, Family, FileDetail, FileOp, FsTotals,
    NetDetail, NetOp, Outcome, PolicyDetail, Process, Source, Span, SpanError, SpanKind, Transport,
    WorldDetail, MAX_LINE_BYTES, SCHEMA_MAJOR, SCHEMA_MINOR, SCHEMA_VERSION,
};
pub use time::{Timestamp, TimestampError};

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
