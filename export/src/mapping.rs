//! A world's spans as OTLP messages (`docs/export.md` is the table).
//!
//! - one trace per world: its id is the first 16 bytes of the SHA-256 of
//!   the world's id and creation time ([`trace_id`]), so exporting a world
//!   again gives the same trace (a backend keeps one copy), and a world
//!   made later under a reused name gives another;
//! - one OTLP span per span id, its 8-byte id the first 8 bytes of the
//!   SHA-256 of the UUID ([`span_id`]; a UUIDv7's own bytes are a time and,
//!   from the monitor, a counter: not 8 that are unique), its parent's the
//!   same of the parent's UUID, exactly as the trace links them;
//! - start and end times as written (an instantaneous event, or a span its
//!   writer never ended, ends when it starts);
//! - status `ERROR` for a failed call (an errno), a non-zero exit, a kill
//!   by a signal, a denied decision or a refusal; `UNSET` otherwise;
//! - attributes after OpenTelemetry's semantic conventions where one names
//!   the thing (`process.*`, `file.*`, `server.*`, `network.*`, `dns.*`),
//!   the rest under `substrate.*`; non-UTF-8 bytes as the trace writes
//!   them (`\xNN`).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind as OtlpKind, status::StatusCode, ResourceSpans, ScopeSpans, Span as OtlpSpan,
    Status,
};
use sha2::{Digest, Sha256};
use substrate_runtime::{WorldRecord, WorldSource};
use substrate_trace::bytes::escape_lossy;
use substrate_trace::{
    Decision, Detail, ExitStatus, Family, NetOp, Outcome, Process, Span, SpanId, Transport,
};

use crate::world::WorldTrace;

/// The instrumentation scope every span is under.
pub const SCOPE_NAME: &str = "substrate";

/// At most this many spans go in one request: a busy world's trace is sent
/// in several (one trace all the same), each well under collectors' usual
/// request limits (a few MiB).
pub const MAX_SPANS_PER_REQUEST: usize = 1000;

/// Nested objects of unknown fields are flattened into dotted keys this
/// deep; deeper ones are one attribute holding their JSON.
const MAX_FLATTEN_DEPTH: usize = 4;

/// The OTLP trace id of a world: the first 16 bytes of
/// SHA-256(`substrate.world/v1:` id `@` created_at), created_at as the
/// record writes it (RFC 3339, nine fractional digits).
pub fn trace_id(record: &WorldRecord) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(b"substrate.world/v1:")
        .chain_update(record.id.as_str().as_bytes())
        .chain_update(b"@")
        .chain_update(record.created_at.to_string().as_bytes())
        .finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    nonzero(&mut id);
    id
}

/// The OTLP span id of a span: the first 8 bytes of the SHA-256 of its
/// UUID's 16 bytes.
pub fn span_id(id: &SpanId) -> [u8; 8] {
    let digest = Sha256::digest(id.as_uuid().as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    nonzero(&mut out);
    out
}

/// All zeros is OTLP's "invalid id": never made (one chance in 2^64).
fn nonzero(id: &mut [u8]) {
    if id.iter().all(|&b| b == 0) {
        if let Some(last) = id.last_mut() {
            *last = 1;
        }
    }
}

/// The world's spans as OTLP requests: one resource (the world), one scope,
/// at most [`MAX_SPANS_PER_REQUEST`] spans each; none for a world without
/// spans. `host` is the node's name (`host.name`).
pub fn requests(world: &WorldTrace, host: &str) -> Vec<ExportTraceServiceRequest> {
    let trace = trace_id(&world.record);
    let resource = resource(&world.record, host);
    let scope = InstrumentationScope {
        name: SCOPE_NAME.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    };
    let spans: Vec<OtlpSpan> = world.spans.iter().map(|s| span(s, &trace)).collect();
    spans
        .chunks(MAX_SPANS_PER_REQUEST)
        .map(|chunk| ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource.clone()),
                scope_spans: vec![ScopeSpans {
                    scope: Some(scope.clone()),
                    spans: chunk.to_vec(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        })
        .collect()
}

/// The world as an OTLP resource: `service.name` `substrate`, the world as
/// the container, the node as the host.
fn resource(record: &WorldRecord, host: &str) -> Resource {
    let mut attrs = Attributes::default();
    attrs.string("service.name", "substrate");
    attrs.string("container.id", record.id.as_str());
    attrs.string("container.runtime.name", "substrate");
    if let Some(command) = record.command.first() {
        attrs.string("container.command", command.as_str());
        attrs.strings("container.command_args", record.command.clone());
        attrs.string("container.command_line", record.command.join(" "));
    }
    attrs.string("host.name", host);
    attrs.string(
        "substrate.world.source",
        match record.source {
            WorldSource::Host => "host",
            WorldSource::Bundle { .. } => "bundle",
            WorldSource::Rootfs { .. } => "rootfs",
        },
    );
    Resource {
        attributes: attrs.0,
        ..Default::default()
    }
}

/// One span.
fn span(span: &Span, trace: &[u8; 16]) -> OtlpSpan {
    let mut attrs = Attributes::default();
    let mut status = SpanStatus::default();
    attrs.string("substrate.span.id", span.span_id.to_string());
    attrs.string("substrate.span.kind", span.kind().as_str());
    attrs.string("substrate.span.source", span.source.as_str());
    process(&span.process, &mut attrs);
    let (name, kind) = detail(span, &mut attrs, &mut status);
    outcome(span, &mut attrs, &mut status);
    for (key, value) in &span.extra {
        extra(key, value, &mut attrs, &mut status);
    }
    let start = unix_nanos(span.start);
    let end = span.end.map(unix_nanos).unwrap_or(start);
    OtlpSpan {
        trace_id: trace.to_vec(),
        span_id: span_id(&span.span_id).to_vec(),
        parent_span_id: span
            .parent_span_id
            .map(|p| span_id(&p).to_vec())
            .unwrap_or_default(),
        name,
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: attrs.0,
        status: status.into_status(),
        ..Default::default()
    }
}

fn unix_nanos(time: substrate_trace::Timestamp) -> u64 {
    u64::try_from(time.unix_nanos()).unwrap_or(0)
}

/// Who did it: the host's pid is `process.pid` (what the kernel stamped),
/// the world's own view `process.vpid`.
fn process(process: &Process, attrs: &mut Attributes) {
    if let Some(pid) = process.pid {
        attrs.int("process.pid", pid.into());
    }
    if let Some(pid) = process.world_pid {
        attrs.int("process.vpid", pid.into());
    }
    if let Some(ppid) = process.ppid {
        attrs.int("process.parent_pid", ppid.into());
    }
    if let Some(ppid) = process.world_ppid {
        attrs.int("substrate.process.parent_vpid", ppid.into());
    }
    if let Some(exe) = &process.exe {
        attrs.string("process.executable.path", escape_lossy(exe));
        attrs.string("process.executable.name", escape_lossy(base_name(exe)));
    }
    if let Some(argv) = &process.argv {
        let args: Vec<String> = argv.iter().map(|a| escape_lossy(a)).collect();
        if let Some(first) = args.first() {
            attrs.string("process.command", first.as_str());
        }
        attrs.string("process.command_line", args.join(" "));
        attrs.strings("process.command_args", args);
    }
    if let Some(cwd) = &process.cwd {
        attrs.string("process.working_directory", escape_lossy(cwd));
    }
    for entry in process.env.iter().flatten() {
        let entry = escape_lossy(entry);
        let (key, value) = entry.split_once('=').unwrap_or((&entry, ""));
        attrs.string(format!("process.environment_variable.{key}"), value);
    }
}

fn base_name(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

/// The kind's own fields; returns the span's name and OTLP kind.
fn detail(span: &Span, attrs: &mut Attributes, status: &mut SpanStatus) -> (String, OtlpKind) {
    match &span.detail {
        Detail::World(world) => {
            if let Some(ns) = world.duration_ns {
                attrs.int("substrate.world.duration_ns", saturating(ns));
            }
            if let Some(fs) = world.fs {
                attrs.int("substrate.world.fs.added", saturating(fs.added));
                attrs.int("substrate.world.fs.changed", saturating(fs.changed));
                attrs.int("substrate.world.fs.deleted", saturating(fs.deleted));
            }
            for (kind, n) in &world.spans {
                attrs.int(format!("substrate.world.spans.{kind}"), saturating(*n));
            }
            for (reason, n) in &world.rejected {
                attrs.int(format!("substrate.world.rejected.{reason}"), saturating(*n));
            }
            if world.lost > 0 {
                attrs.int("substrate.world.lost", saturating(world.lost));
            }
            ("world".into(), OtlpKind::Internal)
        }
        Detail::Exec => {
            let program = span
                .process
                .exe
                .as_deref()
                .or_else(|| span.process.argv.as_ref()?.first().map(Vec::as_slice))
                .map(|p| escape_lossy(base_name(p)));
            let name = match program {
                Some(program) if !program.is_empty() => format!("exec {program}"),
                _ => "exec".into(),
            };
            (name, OtlpKind::Internal)
        }
        Detail::File(file) => {
            attrs.string("file.path", escape_lossy(&file.path));
            attrs.string("substrate.file.operation", file.op.as_str());
            if let Some(new_path) = &file.new_path {
                attrs.string("substrate.file.new_path", escape_lossy(new_path));
            }
            if let Some(flags) = file.flags {
                attrs.int("substrate.file.flags", flags.into());
            }
            if let Some(mode) = file.mode {
                // The semantic conventions' form: octal, as text.
                attrs.string("file.mode", format!("{mode:04o}"));
            }
            (format!("file {}", file.op), OtlpKind::Internal)
        }
        Detail::Net(net) => {
            attrs.string("substrate.net.operation", net.op.as_str());
            attrs.string("substrate.net.family", net.family.as_str());
            match &net.family {
                Family::Inet => attrs.string("network.type", "ipv4"),
                Family::Inet6 => attrs.string("network.type", "ipv6"),
                Family::Unix => attrs.string("network.transport", "unix"),
                Family::Other(_) => {}
            }
            match &net.transport {
                Some(Transport::Tcp) => attrs.string("network.transport", "tcp"),
                Some(Transport::Udp) => attrs.string("network.transport", "udp"),
                Some(Transport::Other(other)) => attrs.string("network.transport", other.as_str()),
                None => {}
            }
            // connect and sendto name the server; accept the client;
            // bind and listen the world's own (server) address.
            let (role, kind) = match &net.op {
                NetOp::Connect | NetOp::Sendto => (Some("server"), OtlpKind::Client),
                NetOp::Accept => (Some("client"), OtlpKind::Server),
                NetOp::Bind | NetOp::Listen => (Some("server"), OtlpKind::Internal),
                NetOp::Other(_) => (None, OtlpKind::Internal),
            };
            let side = match &net.op {
                NetOp::Bind | NetOp::Listen => "network.local",
                _ => "network.peer",
            };
            if let Some(address) = &net.address {
                let address = escape_lossy(address);
                if let Some(role) = role {
                    attrs.string(format!("{role}.address"), address.as_str());
                }
                attrs.string(format!("{side}.address"), address);
            }
            if let Some(port) = net.port {
                if let Some(role) = role {
                    attrs.int(format!("{role}.port"), port.into());
                }
                attrs.int(format!("{side}.port"), port.into());
            }
            (format!("net {}", net.op), kind)
        }
        Detail::Dns(dns) => {
            attrs.string("dns.question.name", escape_lossy(&dns.query));
            if !dns.answers.is_empty() {
                attrs.strings("dns.answers", dns.answers.clone());
            }
            ("dns lookup".into(), OtlpKind::Client)
        }
        Detail::Policy(policy) => {
            attrs.string("substrate.policy.rule", policy.rule.as_str());
            attrs.string("substrate.policy.decision", policy.decision.as_str());
            attrs.string("substrate.policy.subject", escape_lossy(&policy.subject));
            if let Some(reason) = &policy.reason {
                attrs.string("substrate.policy.reason", reason.as_str());
            }
            if policy.decision == Decision::Deny {
                status.error(match &policy.reason {
                    Some(reason) => format!("denied by {}: {reason}", policy.rule),
                    None => format!("denied by {}", policy.rule),
                });
            }
            (format!("policy {}", policy.decision), OtlpKind::Internal)
        }
        Detail::Other { kind, detail } => {
            if let Some(detail) = detail {
                attrs.json(format!("substrate.{kind}"), detail, 0);
            }
            (kind.clone(), OtlpKind::Internal)
        }
    }
}

/// The span's `result`.
fn outcome(span: &Span, attrs: &mut Attributes, status: &mut SpanStatus) {
    match span.result {
        Some(Outcome::Exited(ExitStatus::Code(code))) => {
            attrs.int("process.exit.code", code.into());
            if code != 0 {
                status.error(format!("exited with status {code}"));
            }
        }
        Some(Outcome::Exited(ExitStatus::Signal(signal))) => {
            attrs.int("substrate.process.exit.signal", signal.into());
            let name = signal_name(signal);
            attrs.string("error.type", name.as_str());
            status.error(format!("killed by {name}"));
        }
        Some(Outcome::Returned { ret, errno }) => {
            attrs.int("substrate.call.return", ret);
            if let Some(errno) = errno {
                let name = errno
                    .name()
                    .map(str::to_owned)
                    .unwrap_or_else(|| errno.0.to_string());
                attrs.int("substrate.call.errno", errno.0.into());
                attrs.string("error.type", name.as_str());
                status.error(name);
            } else if matches!(span.detail, Detail::Dns(_)) && ret != 0 {
                // getaddrinfo's own code (EAI_*), not an errno.
                attrs.string("error.type", ret.to_string());
                status.error(format!("getaddrinfo returned {ret}"));
            }
        }
        None => {}
    }
}

fn signal_name(signal: i32) -> String {
    substrate_runtime::Signal::try_from(signal)
        .map(|s| s.as_str().to_owned())
        .unwrap_or_else(|_| format!("signal {signal}"))
}

/// A top-level field this crate does not model (`docs/trace-spans.md`: the
/// sensor's, the egress policy's, the monitor's notes): `substrate.<key>`,
/// nested objects flattened. A refusal (`refused_by`, an egress or
/// resolver verdict that refused) makes the span an error.
fn extra(key: &str, value: &serde_json::Value, attrs: &mut Attributes, status: &mut SpanStatus) {
    match key {
        // The exec's user, from the sensor.
        "uid" if value.is_u64() => {
            attrs.int("process.user.id", value.as_i64().unwrap_or(-1));
            return;
        }
        "refused_by" => {
            if let Some(by) = value.as_str() {
                status.error(format!("refused by {by}"));
            }
        }
        "egress" if value["verdict"] == "deny" => status.error("denied by the egress policy"),
        "resolver" if matches!(value["verdict"].as_str(), Some("refused" | "not_admitted")) => {
            status.error("refused by the world's resolver")
        }
        _ => {}
    }
    attrs.json(format!("substrate.{key}"), value, 0);
}

fn saturating(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A span's status: the first error said wins.
#[derive(Default)]
struct SpanStatus(Option<String>);

impl SpanStatus {
    fn error(&mut self, message: impl Into<String>) {
        if self.0.is_none() {
            self.0 = Some(message.into());
        }
    }

    fn into_status(self) -> Option<Status> {
        self.0.map(|message| Status {
            message,
            code: StatusCode::Error as i32,
        })
    }
}

/// Attributes as they are added; a key is never added twice.
#[derive(Default)]
struct Attributes(Vec<KeyValue>);

impl Attributes {
    fn add(&mut self, key: String, value: any_value::Value) {
        if self.0.iter().any(|kv| kv.key == key) {
            return;
        }
        self.0.push(KeyValue {
            key,
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        });
    }

    fn string(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.add(key.into(), any_value::Value::StringValue(value.into()));
    }

    fn int(&mut self, key: impl Into<String>, value: i64) {
        self.add(key.into(), any_value::Value::IntValue(value));
    }

    fn strings(&mut self, key: impl Into<String>, values: Vec<String>) {
        let values = values
            .into_iter()
            .map(|v| AnyValue {
                value: Some(any_value::Value::StringValue(v)),
            })
            .collect();
        self.add(
            key.into(),
            any_value::Value::ArrayValue(ArrayValue { values }),
        );
    }

    /// A JSON value: scalars as themselves, lists of strings or of integers
    /// as arrays, objects flattened into `key.field` down to
    /// [`MAX_FLATTEN_DEPTH`]; anything else as its JSON text.
    fn json(&mut self, key: String, value: &serde_json::Value, depth: usize) {
        use serde_json::Value as J;
        let scalar = |value: &J| -> Option<any_value::Value> {
            Some(match value {
                J::Bool(b) => any_value::Value::BoolValue(*b),
                J::Number(n) => match n.as_i64() {
                    Some(i) => any_value::Value::IntValue(i),
                    None => any_value::Value::DoubleValue(n.as_f64()?),
                },
                J::String(s) => any_value::Value::StringValue(s.clone()),
                _ => return None,
            })
        };
        match value {
            J::Null => {}
            J::Object(fields) if depth < MAX_FLATTEN_DEPTH => {
                for (field, value) in fields {
                    self.json(format!("{key}.{field}"), value, depth + 1);
                }
            }
            J::Array(items) => {
                let values: Option<Vec<any_value::Value>> = items.iter().map(scalar).collect();
                match values {
                    // OTLP arrays are of one type.
                    Some(values)
                        if values.windows(2).all(|w| {
                            std::mem::discriminant(&w[0]) == std::mem::discriminant(&w[1])
                        }) =>
                    {
                        let values = values
                            .into_iter()
                            .map(|v| AnyValue { value: Some(v) })
                            .collect();
                        self.add(key, any_value::Value::ArrayValue(ArrayValue { values }));
                    }
                    _ => self.string(key, value.to_string()),
                }
            }
            other => match scalar(other) {
                Some(scalar) => self.add(key, scalar),
                None => self.string(key, other.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use substrate_trace::{FileDetail, FileOp, NetDetail, PolicyDetail, Source, Timestamp};

    const EXAMPLES: &str = include_str!("../../docs/trace-spans.md");

    /// The documented example lines (`docs/trace-spans.md`), as spans.
    fn examples() -> Vec<Span> {
        let block = EXAMPLES
            .split("```json\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("the examples block");
        block
            .lines()
            .map(|line| Span::from_line(line.as_bytes()).expect("an example span"))
            .collect()
    }

    fn attr<'a>(span: &'a OtlpSpan, key: &str) -> Option<&'a any_value::Value> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    fn text<'a>(span: &'a OtlpSpan, key: &str) -> &'a str {
        match attr(span, key) {
            Some(any_value::Value::StringValue(s)) => s,
            other => panic!("{key}: {other:?} in {span:#?}"),
        }
    }

    fn int(span: &OtlpSpan, key: &str) -> i64 {
        match attr(span, key) {
            Some(any_value::Value::IntValue(i)) => *i,
            other => panic!("{key}: {other:?} in {span:#?}"),
        }
    }

    fn record(id: &str) -> WorldRecord {
        serde_json::from_value(serde_json::json!({
            "schema": "substrate.world/v1",
            "id": id,
            "source": {"kind": "host"},
            "runtime_root": "/run/substrate",
            "lower": ["/"],
            "command": ["sh", "-c", "curl https://example.com"],
            "env": [],
            "cwd": "/",
            "created_at": "2024-07-01T12:00:00.000000000Z",
        }))
        .expect("a record")
    }

    fn exported(spans: Vec<Span>) -> Vec<OtlpSpan> {
        let world = WorldTrace {
            record: record("w-4f1c"),
            spans,
            skipped: 0,
        };
        let requests = requests(&world, "node-1");
        assert_eq!(requests.len(), 1);
        let [resource] = &requests[0].resource_spans[..] else {
            panic!("one resource")
        };
        let [scope] = &resource.scope_spans[..] else {
            panic!("one scope")
        };
        scope.spans.clone()
    }

    #[test]
    fn ids_are_derived_deterministically_and_differ() {
        let a = record("w-1");
        assert_eq!(trace_id(&a), trace_id(&a.clone()));
        assert_ne!(trace_id(&a), trace_id(&record("w-2")));
        // The same name, made again later, is another world.
        let mut later = record("w-1");
        later.created_at = Timestamp::from_unix_nanos(later.created_at.unix_nanos() + 1);
        assert_ne!(trace_id(&a), trace_id(&later));
        let one = SpanId::new();
        assert_eq!(span_id(&one), span_id(&one));
        assert_ne!(span_id(&one), span_id(&SpanId::new()));
        assert_ne!(span_id(&one), [0; 8]);
    }

    #[test]
    fn every_documented_example_maps_with_its_links_times_and_status() {
        let spans = examples();
        let out = exported(spans.clone());
        assert_eq!(out.len(), spans.len());
        let trace = trace_id(&record("w-4f1c"));
        for (span, otlp) in spans.iter().zip(&out) {
            assert_eq!(otlp.trace_id, trace);
            assert_eq!(otlp.span_id, span_id(&span.span_id));
            assert_eq!(
                otlp.parent_span_id,
                span.parent_span_id
                    .map(|p| span_id(&p).to_vec())
                    .unwrap_or_default()
            );
            assert_eq!(otlp.start_time_unix_nano as i64, span.start.unix_nanos());
            let end = span.end.unwrap_or(span.start);
            assert_eq!(otlp.end_time_unix_nano as i64, end.unix_nanos());
            assert_eq!(text(otlp, "substrate.span.id"), span.span_id.to_string());
        }
        let names: Vec<&str> = out.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "world",
                "exec curl",
                "file openat",
                "file rename",
                "net connect",
                "net bind",
                "dns lookup",
                "policy deny"
            ]
        );
        let status = |s: &OtlpSpan| s.status.as_ref().map(|s| (s.code, s.message.clone()));
        let error = StatusCode::Error as i32;

        let world = &out[0];
        assert_eq!(status(world), None);
        assert_eq!(int(world, "process.exit.code"), 0);
        assert_eq!(int(world, "substrate.world.fs.added"), 3);
        assert_eq!(int(world, "substrate.world.spans.file"), 40);
        assert_eq!(int(world, "substrate.world.rejected.forged_pid"), 1);
        assert_eq!(int(world, "substrate.world.lost"), 7);

        let exec = &out[1];
        assert_eq!(status(exec), Some((error, "killed by SIGTERM".into())));
        assert_eq!(int(exec, "process.pid"), 4242);
        assert_eq!(int(exec, "process.vpid"), 7);
        assert_eq!(int(exec, "process.parent_pid"), 4100);
        assert_eq!(text(exec, "process.executable.path"), "/usr/bin/curl");
        assert_eq!(text(exec, "process.executable.name"), "curl");
        assert_eq!(text(exec, "process.working_directory"), "/work/\\xff");
        assert_eq!(
            text(exec, "process.command_line"),
            "curl -H Authorization: Bearer <redacted> https://example.com/caf\\xe9"
        );
        let Some(any_value::Value::ArrayValue(args)) = attr(exec, "process.command_args") else {
            panic!("command args")
        };
        assert_eq!(args.values.len(), 4);
        assert_eq!(
            text(exec, "process.environment_variable.GITHUB_TOKEN"),
            "<redacted>"
        );
        assert_eq!(int(exec, "substrate.process.exit.signal"), 15);

        let open = &out[2];
        assert_eq!(text(open, "file.path"), "/etc/hosts");
        assert_eq!(int(open, "substrate.call.return"), 3);
        assert_eq!(status(open), None);
        let rename = &out[3];
        assert_eq!(status(rename), Some((error, "EXDEV".into())));
        assert_eq!(text(rename, "error.type"), "EXDEV");
        assert_eq!(text(rename, "substrate.file.new_path"), "/tmp/\\xfeb");

        let connect = &out[4];
        assert_eq!(connect.kind, OtlpKind::Client as i32);
        assert_eq!(text(connect, "server.address"), "2606:2800:220:1::1");
        assert_eq!(int(connect, "server.port"), 443);
        assert_eq!(text(connect, "network.transport"), "tcp");
        assert_eq!(text(connect, "network.type"), "ipv6");
        assert_eq!(status(connect), Some((error, "ECONNREFUSED".into())));
        let bind = &out[5];
        assert_eq!(text(bind, "network.transport"), "unix");
        assert_eq!(text(bind, "network.local.address"), "\0abstract\\xff");

        let dns = &out[6];
        assert_eq!(text(dns, "dns.question.name"), "example.com");
        let Some(any_value::Value::ArrayValue(answers)) = attr(dns, "dns.answers") else {
            panic!("answers")
        };
        assert_eq!(answers.values.len(), 2);

        let policy = &out[7];
        assert_eq!(text(policy, "substrate.policy.rule"), "net.allow[0]");
        assert_eq!(text(policy, "substrate.policy.decision"), "deny");
        assert_eq!(
            status(policy),
            Some((
                error,
                "denied by net.allow[0]: host not in allow-list".into()
            ))
        );
    }

    #[test]
    fn unknown_fields_and_kinds_are_kept_under_substrate() {
        let start = Timestamp::from_unix_nanos(1_000);
        let mut connect = Span::net(
            "w-4f1c",
            Source::Preload,
            start,
            NetDetail::ip(NetOp::Connect, Family::Inet, Transport::Tcp, "10.0.0.1", 80),
        )
        .build();
        connect.extra.insert(
            "egress".into(),
            serde_json::json!({"verdict": "deny", "rule": "default"}),
        );
        connect.extra.insert("uid".into(), serde_json::json!(1000));
        let mut loss = Span::file(
            "w-4f1c",
            Source::Monitor,
            start,
            FileDetail::new(FileOp::Write, "/x"),
        )
        .build();
        loss.detail = Detail::Other {
            kind: "loss".into(),
            detail: Some(
                serde_json::json!({"source": "preload", "events": 3, "deep": {"a": [1, "b"]}}),
            ),
        };
        let deny = Span::policy(
            "w-4f1c",
            Source::Runtime,
            start,
            PolicyDetail {
                rule: "commands.deny[0]".into(),
                decision: Decision::Deny,
                subject: b"rm -rf /".to_vec(),
                reason: None,
            },
        )
        .build();
        let out = exported(vec![connect, loss, deny]);
        assert_eq!(text(&out[0], "substrate.egress.verdict"), "deny");
        assert_eq!(text(&out[0], "substrate.egress.rule"), "default");
        assert_eq!(int(&out[0], "process.user.id"), 1000);
        assert_eq!(
            out[0].status.as_ref().map(|s| s.message.as_str()),
            Some("denied by the egress policy")
        );
        assert_eq!(out[1].name, "loss");
        assert_eq!(text(&out[1], "substrate.loss.source"), "preload");
        assert_eq!(int(&out[1], "substrate.loss.events"), 3);
        // A list of mixed types is its JSON.
        assert_eq!(text(&out[1], "substrate.loss.deep.a"), "[1,\"b\"]");
        assert_eq!(
            out[2].status.as_ref().map(|s| s.message.as_str()),
            Some("denied by commands.deny[0]")
        );
    }

    #[test]
    fn a_busy_world_is_sent_in_several_requests_of_one_trace() {
        let start = Timestamp::from_unix_nanos(1_000);
        let spans: Vec<Span> = (0..MAX_SPANS_PER_REQUEST + 1)
            .map(|i| {
                Span::file(
                    "w-4f1c",
                    Source::Kernel,
                    start,
                    FileDetail::new(FileOp::Write, format!("/f{i}")),
                )
                .build()
            })
            .collect();
        let world = WorldTrace {
            record: record("w-4f1c"),
            spans,
            skipped: 0,
        };
        let requests = requests(&world, "node-1");
        let sizes: Vec<usize> = requests
            .iter()
            .map(|r| r.resource_spans[0].scope_spans[0].spans.len())
            .collect();
        assert_eq!(sizes, [MAX_SPANS_PER_REQUEST, 1]);
        assert_eq!(
            requests[0].resource_spans[0].resource,
            requests[1].resource_spans[0].resource
        );
    }
}
