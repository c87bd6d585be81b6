//! The JSON form of a span, and the conversions between it and [`Span`].
//!
//! Everything that is bytes in [`Span`] travels as a readable string plus a
//! `_bytes` companion (see [`crate::bytes`]); `kind` and `detail` travel as
//! two fields and become one [`Detail`]; unknown top-level fields are kept in
//! [`Span::extra`]. Unknown fields inside `result` and `detail` are ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bytes::{decode_bytes, decode_list, encode_bytes, encode_list};
use crate::errno::Errno;
use crate::id::SpanId;
use crate::span::{
    Decision, Detail, DnsDetail, ExitStatus, Family, FileDetail, FileOp, NetDetail, NetOp, Outcome,
    PolicyDetail, Process, Source, Span, SpanError, SpanKind, Transport, WorldDetail, SCHEMA_MAJOR,
    SCHEMA_VERSION,
};
use crate::time::Timestamp;

/// Every top-level field this version writes; `extra` never overrides one.
/// `seq` and `prev` are the trace file's chain ([`crate::chain`]), put in
/// front of a span's fields by its writer: they are no field of the span.
const KNOWN_FIELDS: &[&str] = &[
    "seq",
    "prev",
    "v",
    "span_id",
    "parent_span_id",
    "world_id",
    "kind",
    "source",
    "start",
    "end",
    "pid",
    "world_pid",
    "ppid",
    "world_ppid",
    "exe",
    "exe_bytes",
    "argv",
    "argv_bytes",
    "cwd",
    "cwd_bytes",
    "env",
    "env_bytes",
    "result",
    "detail",
];

#[derive(Serialize)]
struct WireOut<'a> {
    v: &'static str,
    span_id: SpanId,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_span_id: Option<SpanId>,
    world_id: &'a str,
    kind: &'a str,
    source: &'a str,
    start: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    end: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    world_pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ppid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    world_ppid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exe: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exe_bytes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    argv: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    argv_bytes: Option<Vec<Option<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cwd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cwd_bytes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env_bytes: Option<Vec<Option<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<WireResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<DetailOut<'a>>,
    #[serde(flatten)]
    extra: ExtraOut<'a>,
}

#[derive(Deserialize)]
struct WireIn {
    /// The chain's fields ([`crate::chain`]): read past, whatever they hold.
    #[serde(default, rename = "seq")]
    _seq: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "prev")]
    _prev: Option<serde::de::IgnoredAny>,
    v: String,
    span_id: String,
    #[serde(default)]
    parent_span_id: Option<String>,
    world_id: String,
    kind: String,
    source: Source,
    start: String,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    pid: Option<u32>,
    #[serde(default)]
    world_pid: Option<u32>,
    #[serde(default)]
    ppid: Option<u32>,
    #[serde(default)]
    world_ppid: Option<u32>,
    #[serde(default)]
    exe: Option<String>,
    #[serde(default)]
    exe_bytes: Option<String>,
    #[serde(default)]
    argv: Option<Vec<String>>,
    #[serde(default)]
    argv_bytes: Option<Vec<Option<String>>>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    cwd_bytes: Option<String>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    env_bytes: Option<Vec<Option<String>>>,
    #[serde(default)]
    result: Option<WireResult>,
    #[serde(default)]
    detail: Option<Value>,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

/// `{"ret":N}` with an optional `errno`, or `{"code":N}`, or `{"signal":N}`.
#[derive(Serialize, Deserialize, Default)]
struct WireResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ret: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    errno: Option<WireErrno>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signal: Option<i32>,
}

/// The name is written for people and ignored when read: it is derived from
/// the number.
#[derive(Serialize, Deserialize)]
struct WireErrno {
    number: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum DetailOut<'a> {
    World(&'a WorldDetail),
    File(FileWire),
    Net(NetWire),
    Dns(DnsWire),
    Policy(PolicyWire),
    Other(&'a Value),
}

#[derive(Serialize, Deserialize)]
struct FileWire {
    op: FileOp,
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path_bytes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    new_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    new_path_bytes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    flags: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<u32>,
}

#[derive(Serialize, Deserialize)]
struct NetWire {
    op: NetOp,
    family: Family,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    transport: Option<Transport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address_bytes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
}

#[derive(Serialize, Deserialize)]
struct DnsWire {
    query: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    query_bytes: Option<String>,
    #[serde(default)]
    answers: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct PolicyWire {
    rule: String,
    decision: Decision,
    subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    subject_bytes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// [`Span::extra`] without the keys a known field already writes.
struct ExtraOut<'a>(&'a BTreeMap<String, Value>);

impl Serialize for ExtraOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(
            self.0
                .iter()
                .filter(|(k, _)| !KNOWN_FIELDS.contains(&k.as_str())),
        )
    }
}

fn split_bytes(bytes: Option<&Vec<u8>>) -> (Option<String>, Option<String>) {
    match bytes {
        Some(b) => {
            let (text, exact) = encode_bytes(b);
            (Some(text), exact)
        }
        None => (None, None),
    }
}

#[allow(clippy::type_complexity)]
fn split_list(items: Option<&Vec<Vec<u8>>>) -> (Option<Vec<String>>, Option<Vec<Option<String>>>) {
    match items {
        Some(items) => {
            let (texts, exact) = encode_list(items);
            (Some(texts), exact)
        }
        None => (None, None),
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = &self.process;
        let (exe, exe_bytes) = split_bytes(p.exe.as_ref());
        let (cwd, cwd_bytes) = split_bytes(p.cwd.as_ref());
        let (argv, argv_bytes) = split_list(p.argv.as_ref());
        let (env, env_bytes) = split_list(p.env.as_ref());
        let kind = self.detail.kind();
        let detail = match &self.detail {
            Detail::World(w) => Some(DetailOut::World(w)),
            Detail::Exec => None,
            Detail::File(f) => {
                let (path, path_bytes) = encode_bytes(&f.path);
                let (new_path, new_path_bytes) = split_bytes(f.new_path.as_ref());
                Some(DetailOut::File(FileWire {
                    op: f.op.clone(),
                    path,
                    path_bytes,
                    new_path,
                    new_path_bytes,
                    flags: f.flags,
                    mode: f.mode,
                }))
            }
            Detail::Net(n) => {
                let (address, address_bytes) = split_bytes(n.address.as_ref());
                Some(DetailOut::Net(NetWire {
                    op: n.op.clone(),
                    family: n.family.clone(),
                    transport: n.transport.clone(),
                    address,
                    address_bytes,
                    port: n.port,
                }))
            }
            Detail::Dns(d) => {
                let (query, query_bytes) = encode_bytes(&d.query);
                Some(DetailOut::Dns(DnsWire {
                    query,
                    query_bytes,
                    answers: d.answers.clone(),
                }))
            }
            Detail::Policy(pd) => {
                let (subject, subject_bytes) = encode_bytes(&pd.subject);
                Some(DetailOut::Policy(PolicyWire {
                    rule: pd.rule.clone(),
                    decision: pd.decision.clone(),
                    subject,
                    subject_bytes,
                    reason: pd.reason.clone(),
                }))
            }
            Detail::Other { detail, .. } => detail.as_ref().map(DetailOut::Other),
        };
        WireOut {
            v: SCHEMA_VERSION,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            world_id: &self.world_id,
            kind: kind.as_str(),
            source: self.source.as_str(),
            start: self.start,
            end: self.end,
            pid: p.pid,
            world_pid: p.world_pid,
            ppid: p.ppid,
            world_ppid: p.world_ppid,
            exe,
            exe_bytes,
            argv,
            argv_bytes,
            cwd,
            cwd_bytes,
            env,
            env_bytes,
            result: self.result.map(result_out),
            detail,
            extra: ExtraOut(&self.extra),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        let wire = WireIn::deserialize(d)?;
        span_from_wire(wire).map_err(serde::de::Error::custom)
    }
}

/// One line (no newline, size already checked) to a span, telling a newer
/// major version apart from garbage even when the new shape does not parse.
pub(crate) fn parse_line(line: &[u8]) -> Result<Span, SpanError> {
    match serde_json::from_slice::<WireIn>(line) {
        Ok(wire) => span_from_wire(wire),
        Err(err) => {
            #[derive(Deserialize)]
            struct Probe {
                v: Option<String>,
            }
            if let Ok(Probe { v: Some(v) }) = serde_json::from_slice::<Probe>(line) {
                check_version(&v)?;
            }
            Err(SpanError::Json(err))
        }
    }
}

/// Accepts `1`, `1.N` and `1.N.anything`; refuses any other major.
fn check_version(v: &str) -> Result<(), SpanError> {
    let mut parts = v.split('.');
    let major = parts.next().and_then(|m| m.parse::<u32>().ok());
    let minor_ok = parts.next().is_none_or(|m| m.parse::<u32>().is_ok());
    match major {
        Some(SCHEMA_MAJOR) if minor_ok => Ok(()),
        Some(_) if minor_ok => Err(SpanError::UnsupportedVersion {
            found: v.to_owned(),
        }),
        _ => Err(SpanError::Field {
            field: "v",
            reason: format!("{v:?} is not a major.minor version"),
        }),
    }
}

fn field<E: std::fmt::Display>(field: &'static str) -> impl FnOnce(E) -> SpanError {
    move |e| SpanError::Field {
        field,
        reason: e.to_string(),
    }
}

fn result_out(outcome: Outcome) -> WireResult {
    match outcome {
        Outcome::Returned { ret, errno } => WireResult {
            ret: Some(ret),
            errno: errno.map(|e| WireErrno {
                number: e.0,
                name: e.name().map(str::to_owned),
            }),
            ..WireResult::default()
        },
        Outcome::Exited(ExitStatus::Code(code)) => WireResult {
            code: Some(code),
            ..WireResult::default()
        },
        Outcome::Exited(ExitStatus::Signal(signal)) => WireResult {
            signal: Some(signal),
            ..WireResult::default()
        },
    }
}

fn result_in(r: WireResult) -> Result<Outcome, SpanError> {
    match (r.ret, r.code, r.signal) {
        (Some(ret), None, None) => Ok(Outcome::Returned {
            ret,
            errno: r.errno.map(|e| Errno(e.number)),
        }),
        (None, Some(code), None) => Ok(Outcome::Exited(ExitStatus::Code(code))),
        (None, None, Some(signal)) => Ok(Outcome::Exited(ExitStatus::Signal(signal))),
        _ => Err(SpanError::Field {
            field: "result",
            reason: "needs exactly one of ret, code, signal".into(),
        }),
    }
}

fn detail_in<T: serde::de::DeserializeOwned>(
    kind: &str,
    detail: Option<Value>,
) -> Result<T, SpanError> {
    let detail = detail.ok_or_else(|| SpanError::Field {
        field: "detail",
        reason: format!("a {kind} span needs one"),
    })?;
    serde_json::from_value(detail).map_err(field("detail"))
}

fn span_from_wire(w: WireIn) -> Result<Span, SpanError> {
    check_version(&w.v)?;
    let span_id = w.span_id.parse().map_err(field("span_id"))?;
    let parent_span_id = w
        .parent_span_id
        .map(|p| p.parse::<SpanId>())
        .transpose()
        .map_err(field("parent_span_id"))?;
    if w.world_id.is_empty() {
        return Err(SpanError::Field {
            field: "world_id",
            reason: "empty".into(),
        });
    }
    let start = w.start.parse().map_err(field("start"))?;
    let end = w
        .end
        .map(|e| e.parse::<Timestamp>())
        .transpose()
        .map_err(field("end"))?;
    let result = w.result.map(result_in).transpose()?;

    let detail = match SpanKind::parse(&w.kind) {
        SpanKind::World => Detail::World(match w.detail {
            Some(d) => serde_json::from_value(d).map_err(field("detail"))?,
            None => WorldDetail::default(),
        }),
        SpanKind::Exec => Detail::Exec,
        SpanKind::File => {
            let f: FileWire = detail_in(&w.kind, w.detail)?;
            Detail::File(FileDetail {
                op: f.op,
                path: decode_bytes(&f.path, f.path_bytes.as_deref()),
                new_path: f
                    .new_path
                    .map(|p| decode_bytes(&p, f.new_path_bytes.as_deref())),
                flags: f.flags,
                mode: f.mode,
            })
        }
        SpanKind::Net => {
            let n: NetWire = detail_in(&w.kind, w.detail)?;
            Detail::Net(NetDetail {
                op: n.op,
                family: n.family,
                transport: n.transport,
                address: n
                    .address
                    .map(|a| decode_bytes(&a, n.address_bytes.as_deref())),
                port: n.port,
            })
        }
        SpanKind::Dns => {
            let d: DnsWire = detail_in(&w.kind, w.detail)?;
            Detail::Dns(DnsDetail {
                query: decode_bytes(&d.query, d.query_bytes.as_deref()),
                answers: d.answers,
            })
        }
        SpanKind::Policy => {
            let p: PolicyWire = detail_in(&w.kind, w.detail)?;
            Detail::Policy(PolicyDetail {
                rule: p.rule,
                decision: p.decision,
                subject: decode_bytes(&p.subject, p.subject_bytes.as_deref()),
                reason: p.reason,
            })
        }
        SpanKind::Other(kind) => Detail::Other {
            kind,
            detail: w.detail,
        },
    };

    let process = Process {
        pid: w.pid,
        world_pid: w.world_pid,
        ppid: w.ppid,
        world_ppid: w.world_ppid,
        exe: w.exe.map(|e| decode_bytes(&e, w.exe_bytes.as_deref())),
        argv: w.argv.map(|a| decode_list(&a, w.argv_bytes.as_deref())),
        cwd: w.cwd.map(|c| decode_bytes(&c, w.cwd_bytes.as_deref())),
        env: w.env.map(|e| decode_list(&e, w.env_bytes.as_deref())),
    };

    Ok(Span {
        span_id,
        parent_span_id,
        world_id: w.world_id,
        source: w.source,
        start,
        end,
        process,
        result,
        detail,
        extra: w.extra,
    })
}
