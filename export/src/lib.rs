//! Worlds' traces as OpenTelemetry traces: one OTLP trace per world, sent
//! to a collector over OTLP/HTTP (protobuf) or written in the OTLP JSON file
//! format, so that a fleet's worlds show up in Jaeger, Tempo or any OTLP
//! backend. `docs/export.md` documents the mapping; the `substrate-export`
//! binary (`src/main.rs`) is what `substrate-cli export` and a world's
//! monitor (as the world ends, when `/etc/substrate/config.yaml` has an
//! `export` section) run.
//!
//! - [`world`]: a finished world's record and spans, read from the store;
//! - [`mapping`]: those spans as OTLP messages: ids, names, attributes after
//!   OpenTelemetry's semantic conventions, status;
//! - [`http`]: the POST to `{endpoint}/v1/traces`;
//! - [`json`]: the OTLP JSON encoding, one request per line.
//!
//! ## Why not `opentelemetry-otlp`'s exporter
//!
//! The messages are `opentelemetry-proto`'s (prost, with its serde support
//! for the JSON form); the HTTP client is `ureq`, blocking and without an
//! async runtime. `opentelemetry-otlp` 0.33's `SpanExporter` (`http-proto`,
//! `reqwest-blocking-client`) was weighed and left, because:
//!
//! - it reports a refused POST as "HTTP export failed with status code:
//!   500", without the collector's body (logged at debug level only), and
//!   every connection failure as "HTTP export failed: network error",
//!   without its cause: a user could not tell a wrong port from a TLS or
//!   auth problem;
//! - it takes the SDK's `SpanData` (with `SystemTime`s and the SDK's
//!   `Resource` set on the exporter) through an `async fn export`, which
//!   needs an executor to drive it and one exporter state change per world;
//!   replaying finished spans with their own ids and times is more directly
//!   the protobuf message itself, which the JSON file needs anyway;
//! - its blocking client is reqwest's, which runs a tokio runtime on a
//!   thread of its own and brings hyper, h2 and tokio into a binary that
//!   sends one request per world.
//!
//! The wire format is the same: `ExportTraceServiceRequest` as protobuf,
//! `Content-Type: application/x-protobuf`, POSTed to `{endpoint}/v1/traces`
//! (OTLP/HTTP, OTLP spec 1.x); retried on 429, 502, 503 and 504 as the spec
//! says.

pub mod http;
pub mod json;
pub mod mapping;
pub mod world;

pub use http::{Collector, ExportError};
pub use mapping::{requests, span_id, trace_id};
pub use world::{finished_worlds, WorldError, WorldTrace};
