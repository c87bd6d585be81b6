//! Property tests of what reads untrusted bytes: trace lines (a world's
//! spans reach `trace.jsonl`, and a trace file can be anyone's), byte
//! fields, timestamps, span ids, and the redaction every span from inside a
//! world goes through.
//!
//! Every property is `proptest_*`, so `cargo test proptest_` runs them all.
//! `PROPTEST_CASES` sets how many cases each runs: 256 unless set (`make
//! test`); `make fuzz` sets it much higher. A case that runs past
//! `PROPTEST_TIMEOUT` (20 s, `.cargo/config.toml`) fails (a hang is killed: proptest runs the cases in a
//! child process it watches), with its input.

use std::collections::BTreeMap;
use std::io::{BufReader, Cursor};

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use serde_json::Value;

use crate::bytes::{decode_bytes, decode_list, encode_bytes, encode_list};
use crate::redact::{self, EnvAllowList};
use crate::*;

/// Bytes that are often UTF-8 (most of what a trace holds) and sometimes not.
fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..max),
        proptest::string::string_regex(&format!(".{{0,{max}}}"))
            .expect("a valid regex")
            .prop_map(String::into_bytes),
    ]
}

/// A JSON value without floats (serde_json does not promise that a float
/// reads back bit for bit), nested a little.
fn json(depth: u32) -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(depth, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Value::from),
            btree_map(".{0,6}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A value of an open enum: a known one, or one this version does not know
/// (never a known name: those read back as their variant).
fn open<T: Clone + std::fmt::Debug + 'static>(
    known: &'static [T],
    other: fn(String) -> T,
) -> impl Strategy<Value = T> {
    prop_oneof![
        proptest::sample::select(known),
        "x-[a-z0-9.]{0,8}".prop_map(other),
    ]
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        any::<i64>(),
        // Around now, where real spans are.
        1_600_000_000_000_000_000i64..1_900_000_000_000_000_000,
    ]
    .prop_map(Timestamp::from_unix_nanos)
}

fn span_id() -> impl Strategy<Value = SpanId> {
    any::<u128>().prop_map(|n| SpanId::from_uuid(uuid::Uuid::from_u128(n)))
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        (any::<i64>(), proptest::option::of(any::<i32>())).prop_map(|(ret, errno)| {
            Outcome::Returned {
                ret,
                errno: errno.map(Errno),
            }
        }),
        any::<i32>().prop_map(|c| Outcome::Exited(ExitStatus::Code(c))),
        any::<i32>().prop_map(|s| Outcome::Exited(ExitStatus::Signal(s))),
    ]
}

fn process() -> impl Strategy<Value = Process> {
    let id = || proptest::option::of(any::<u32>());
    let list = || proptest::option::of(vec(bytes(24), 0..5));
    (
        (id(), id(), id(), id()),
        proptest::option::of(bytes(40)),
        list(),
        proptest::option::of(bytes(40)),
        list(),
    )
        .prop_map(
            |((pid, world_pid, ppid, world_ppid), exe, argv, cwd, env)| Process {
                pid,
                world_pid,
                ppid,
                world_ppid,
                exe,
                argv,
                cwd,
                env,
            },
        )
}

fn counts() -> impl Strategy<Value = BTreeMap<String, u64>> {
    btree_map(".{0,8}", any::<u64>(), 0..4)
}

fn detail() -> impl Strategy<Value = Detail> {
    let world = (
        proptest::option::of(any::<u64>()),
        proptest::option::of(any::<(u64, u64, u64)>()),
        counts(),
        counts(),
        any::<u64>(),
    )
        .prop_map(|(duration_ns, fs, spans, rejected, lost)| {
            Detail::World(WorldDetail {
                duration_ns,
                fs: fs.map(|(added, changed, deleted)| FsTotals {
                    added,
                    changed,
                    deleted,
                }),
                spans,
                rejected,
                lost,
            })
        });
    let file = (
        open(FileOp::KNOWN, FileOp::Other),
        bytes(64),
        proptest::option::of(bytes(64)),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(|(op, path, new_path, flags, mode)| {
            Detail::File(FileDetail {
                op,
                path,
                new_path,
                flags,
                mode,
            })
        });
    let net = (
        open(NetOp::KNOWN, NetOp::Other),
        open(Family::KNOWN, Family::Other),
        proptest::option::of(open(Transport::KNOWN, Transport::Other)),
        proptest::option::of(bytes(40)),
        proptest::option::of(any::<u16>()),
    )
        .prop_map(|(op, family, transport, address, port)| {
            Detail::Net(NetDetail {
                op,
                family,
                transport,
                address,
                port,
            })
        });
    let dns = (bytes(64), vec(".{0,20}", 0..4))
        .prop_map(|(query, answers)| Detail::Dns(DnsDetail { query, answers }));
    let policy = (
        ".{0,16}",
        open(Decision::KNOWN, Decision::Other),
        bytes(64),
        proptest::option::of(".{0,16}"),
    )
        .prop_map(|(rule, decision, subject, reason)| {
            Detail::Policy(PolicyDetail {
                rule,
                decision,
                subject,
                reason,
            })
        });
    // A `null` detail reads back as none (JSON has one null): not made (a
    // map, not a filter: a million cases would exhaust proptest's rejects).
    let other = (
        "x-[a-z]{0,8}",
        proptest::option::of(json(2).prop_map(|v| if v.is_null() { Value::from(0) } else { v })),
    )
        .prop_map(|(kind, detail)| Detail::Other { kind, detail });
    prop_oneof![world, Just(Detail::Exec), file, net, dns, policy, other]
}

/// Any span the model can hold whose JSON form is one line: what a writer
/// can write.
fn span() -> impl Strategy<Value = Span> {
    (
        (span_id(), proptest::option::of(span_id()), ".{1,16}"),
        open(Source::KNOWN, Source::Other),
        (timestamp(), proptest::option::of(timestamp())),
        process(),
        proptest::option::of(outcome()),
        detail(),
        // Unknown top-level fields of a newer minor version.
        btree_map("x_[a-z]{0,8}", json(2), 0..3),
    )
        .prop_map(
            |(
                (span_id, parent_span_id, world_id),
                source,
                (start, end),
                process,
                result,
                detail,
                extra,
            )| {
                Span {
                    span_id,
                    parent_span_id,
                    world_id,
                    source,
                    start,
                    end,
                    process,
                    result,
                    detail,
                    extra,
                }
            },
        )
}

/// A JSON object shaped like a span line: most fields right, a few missing
/// or of the wrong type, and fields of a newer version: what a hostile or
/// newer writer can put on a line, reaching further into the reader than
/// random bytes do.
fn span_like_line() -> impl Strategy<Value = Vec<u8>> {
    let text = |re: &'static str| re.prop_map(Value::from).boxed();
    let base64 = || text("[A-Za-z0-9+/]{0,12}={0,2}");
    let time = || timestamp().prop_map(|t| Value::from(t.to_string())).boxed();
    let id = || span_id().prop_map(|i| Value::from(i.to_string())).boxed();
    let u32s = || any::<u32>().prop_map(Value::from).boxed();
    let texts = || vec(".{0,6}", 0..4).prop_map(Value::from).boxed();
    let companions = || {
        vec(proptest::option::of("[A-Za-z0-9+/]{0,8}={0,2}"), 0..4)
            .prop_map(|v| {
                Value::from(
                    v.into_iter()
                        .map(|e| e.map_or(Value::Null, Value::from))
                        .collect::<Vec<_>>(),
                )
            })
            .boxed()
    };
    let result = prop_oneof![
        any::<i64>().prop_map(|r| serde_json::json!({"ret": r})),
        (any::<i64>(), any::<i32>(), ".{0,6}")
            .prop_map(|(r, e, n)| serde_json::json!({"ret": r, "errno": {"number": e, "name": n}})),
        any::<i32>().prop_map(|c| serde_json::json!({"code": c})),
        any::<i32>().prop_map(|s| serde_json::json!({"signal": s})),
        (any::<i32>(), any::<i32>()).prop_map(|(c, s)| serde_json::json!({"code": c, "signal": s})),
    ]
    .boxed();
    let open_text = |known: Vec<&'static str>| {
        prop_oneof![4 => proptest::sample::select(known), 1 => Just("x-new")].prop_map(Value::from)
    };
    let file_ops: Vec<&str> = FileOp::KNOWN.iter().map(|o| o.as_str()).collect();
    let net_ops: Vec<&str> = NetOp::KNOWN.iter().map(|o| o.as_str()).collect();
    let families: Vec<&str> = Family::KNOWN.iter().map(|o| o.as_str()).collect();
    let decisions: Vec<&str> = Decision::KNOWN.iter().map(|o| o.as_str()).collect();
    // A kind and a detail of that kind (or of another, or none).
    let kind_detail = prop_oneof![
        (any::<u64>(), counts(), counts(), any::<u64>()).prop_map(|(d, s, r, l)| ("world", serde_json::json!({"duration_ns": d, "spans": s, "rejected": r, "lost": l, "fs": {"added": 1, "changed": 2, "deleted": 3}}))),
        json(1).prop_map(|d| ("exec", d)),
        (open_text(file_ops), ".{0,12}", base64(), any::<u32>(), any::<u32>()).prop_map(|(op, path, b, flags, mode)| ("file", serde_json::json!({"op": op, "path": path, "path_bytes": b, "flags": flags, "mode": mode, "new_path": "/x"}))),
        (open_text(net_ops), open_text(families), any::<u16>(), ".{0,12}").prop_map(|(op, family, port, address)| ("net", serde_json::json!({"op": op, "family": family, "port": port, "transport": "tcp", "address": address}))),
        (".{0,12}", base64(), vec(".{0,6}", 0..3)).prop_map(|(q, b, a)| ("dns", serde_json::json!({"query": q, "query_bytes": b, "answers": a}))),
        (".{0,6}", open_text(decisions), ".{0,12}").prop_map(|(r, d, s)| ("policy", serde_json::json!({"rule": r, "decision": d, "subject": s, "reason": "why"}))),
        json(2).prop_map(|d| ("x-new", d)),
        json(2).prop_map(|d| ("file", d)),
    ]
    .prop_map(|(kind, detail)| (Value::from(kind), detail))
    .boxed();

    // (name, right values, required)
    let fields: Vec<(&'static str, BoxedStrategy<Value>, bool)> = vec![
        (
            "v",
            prop_oneof![
                Just("1.1"),
                Just("1"),
                Just("1.0.7"),
                Just("1.9"),
                Just("2.0"),
                Just("one")
            ]
            .prop_map(Value::from)
            .boxed(),
            true,
        ),
        ("span_id", id(), true),
        ("parent_span_id", id(), false),
        ("world_id", text(".{1,8}"), true),
        (
            "source",
            open_text(Source::KNOWN.iter().map(|s| s.as_str()).collect()).boxed(),
            true,
        ),
        ("start", time(), true),
        ("end", time(), false),
        ("pid", u32s(), false),
        ("world_pid", u32s(), false),
        ("ppid", u32s(), false),
        ("exe", text(".{0,8}"), false),
        ("exe_bytes", base64(), false),
        ("cwd", text(".{0,8}"), false),
        ("argv", texts(), false),
        ("argv_bytes", companions(), false),
        ("env", texts(), false),
        ("env_bytes", companions(), false),
        ("result", result, false),
    ];
    let each: Vec<BoxedStrategy<Option<(String, Value)>>> = fields
        .into_iter()
        .map(|(name, value, required)| {
            let present = value.prop_map(move |v| Some((name.to_owned(), v)));
            let wrong = json(1).prop_map(move |v| Some((name.to_owned(), v)));
            if required {
                prop_oneof![40 => present, 1 => Just(None), 1 => wrong].boxed()
            } else {
                prop_oneof![20 => present, 20 => Just(None), 1 => wrong].boxed()
            }
        })
        .collect();
    (
        each,
        kind_detail,
        // Fields of a newer minor version.
        btree_map("[a-z_]{0,6}", json(1), 0..2),
        prop_oneof![20 => Just(false), 1 => Just(true)],
    )
        .prop_map(|(fields, (kind, detail), extra, no_detail)| {
            let mut object: serde_json::Map<String, Value> = extra.into_iter().collect();
            object.extend(fields.into_iter().flatten());
            object.insert("kind".into(), kind);
            if !no_detail {
                object.insert("detail".into(), detail);
            }
            serde_json::to_vec(&Value::Object(object)).expect("a JSON value serializes")
        })
}

/// A line the reader can meet: a span, one shaped like a span, garbage,
/// blank, or over the length limit.
fn any_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => span().prop_map(|s| s.to_line().map(String::into_bytes).unwrap_or_default()),
        8 => span_like_line(),
        4 => vec(any::<u8>().prop_map(|b| if b == b'\n' { b' ' } else { b }), 0..64),
        2 => "[ \t\r]{0,3}".prop_map(String::into_bytes),
        1 => (0usize..3).prop_map(|extra| vec![b'x'; MAX_LINE_BYTES + extra]),
    ]
}

/// Parses a line; when it is a span, writing and reading it again gives
/// the same span (the reader's output is something the writer can write).
fn check_line(line: &[u8]) -> Result<(), TestCaseError> {
    let Ok(span) = Span::from_line(line) else {
        return Ok(());
    };
    match span.to_line() {
        Ok(again) => {
            let reread = Span::from_line(again.as_bytes())
                .map_err(|e| TestCaseError::fail(format!("{e}: {again}")))?;
            prop_assert_eq!(&reread, &span, "{}", again);
        }
        Err(SpanError::TooLarge { .. }) => {}
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "cannot write a read span: {e}"
            )))
        }
    }
    Ok(())
}

proptest! {

    #[test]
    fn proptest_span_from_line_on_any_bytes(line in vec(any::<u8>(), 0..4096)) {
        check_line(&line)?;
    }

    #[test]
    fn proptest_span_from_line_on_span_shaped_json(line in span_like_line()) {
        check_line(&line)?;
    }

    #[test]
    fn proptest_span_round_trips(span in span()) {
        match span.to_line() {
            Ok(line) => {
                prop_assert!(!line.contains('\n'));
                let back = Span::from_line(line.as_bytes())
                    .map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
                prop_assert_eq!(&back, &span, "{}", line);
                // serde's own entry point reads the same.
                let via_serde: Span = serde_json::from_str(&line)
                    .map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
                prop_assert_eq!(via_serde, span);
            }
            Err(SpanError::TooLarge { len, .. }) => prop_assert!(len > MAX_LINE_BYTES),
            Err(e) => return Err(TestCaseError::fail(format!("a span did not write: {e}"))),
        }
    }

    /// Lines of any sort, read through buffers of any size: every line is
    /// accounted for, each span is what `Span::from_line` reads, and the
    /// buffer size changes nothing.
    #[test]
    fn proptest_read_spans_accounts_for_every_line(
        lines in vec(any_line(), 0..12),
        ends_with_newline in any::<bool>(),
        capacity in 1usize..300,
    ) {
        let mut input = lines.join(&b'\n');
        if ends_with_newline && !lines.is_empty() {
            input.push(b'\n');
        }
        let whole = read_all(BufReader::new(Cursor::new(&input)));
        let chunked = read_all(BufReader::with_capacity(capacity, Cursor::new(&input)));
        prop_assert_eq!(&whole, &chunked);
        let (items, stats) = whole;

        let newlines = input.iter().filter(|&&b| b == b'\n').count() as u64;
        let unfinished = u64::from(!input.is_empty() && input.last() != Some(&b'\n'));
        prop_assert_eq!(stats.lines, newlines + unfinished);
        prop_assert_eq!(stats.unfinished, unfinished);
        let spans = items.iter().filter(|i| matches!(i, Item::Span(_))).count() as u64;
        let skipped = items.iter().filter(|i| matches!(i, Item::Skipped(_))).count() as u64;
        prop_assert_eq!(stats.spans, spans);
        prop_assert_eq!(stats.skipped, skipped);
        prop_assert!(stats.unsupported_version <= stats.skipped);
        prop_assert_eq!(items.len() as u64, spans + skipped + unfinished);

        // Each complete line: a blank one is skipped silently, the others
        // give what Span::from_line gives.
        let mut expected = Vec::new();
        let complete: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
        let complete = &complete[..complete.len() - 1];
        for (i, line) in complete.iter().enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let number = i as u64 + 1;
            expected.push(match Span::from_line(line) {
                Ok(span) => Item::Span(Box::new(span)),
                Err(_) => Item::Skipped(number),
            });
        }
        if unfinished == 1 {
            expected.push(Item::Unfinished(stats.lines));
        }
        prop_assert_eq!(items, expected);
    }

    /// What the writer writes, one per line, the reader reads back in order.
    #[test]
    fn proptest_written_traces_read_back(spans in vec(span(), 0..8)) {
        let spans: Vec<Span> = spans.into_iter().filter(|s| s.to_line().is_ok()).collect();
        let mut file = Vec::new();
        for span in &spans {
            file.extend_from_slice(span.to_line().expect("filtered").as_bytes());
            file.push(b'\n');
        }
        let read: Vec<Span> = read_spans(Cursor::new(&file))
            .collect::<Result<_, _>>()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(read, spans);
    }

    #[test]
    fn proptest_timestamps_parse_any_text_and_round_trip(
        text in prop_oneof![".{0,40}", "[0-9T:.Zz+ -]{0,40}"],
        nanos in any::<i64>(),
    ) {
        let _ = text.parse::<Timestamp>();
        let t = Timestamp::from_unix_nanos(nanos);
        let written = t.to_string();
        prop_assert_eq!(written.len(), 30, "{}", written);
        prop_assert_eq!(written.parse::<Timestamp>(), Ok(t));
        // The hand-written formatter writes what chrono does.
        prop_assert_eq!(
            &written,
            &t.to_datetime().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
        );
    }

    #[test]
    fn proptest_span_ids_parse_any_text(text in ".{0,40}", n in any::<u128>()) {
        let _ = text.parse::<SpanId>();
        let id = SpanId::from_uuid(uuid::Uuid::from_u128(n));
        prop_assert_eq!(id.to_string().parse::<SpanId>(), Ok(id));
    }

    #[test]
    fn proptest_byte_fields_decode_anything_and_round_trip(
        raw in bytes(64),
        text in ".{0,16}",
        companion in prop_oneof![".{0,24}", "[A-Za-z0-9+/=]{0,24}"],
        items in vec(bytes(16), 0..5),
        companions in vec(proptest::option::of("[A-Za-z0-9+/=]{0,12}"), 0..6),
    ) {
        let _ = decode_bytes(&text, Some(&companion));
        let texts: Vec<String> = items.iter().map(|i| String::from_utf8_lossy(i).into_owned()).collect();
        prop_assert_eq!(decode_list(&texts, Some(&companions)).len(), texts.len());

        let (readable, exact) = encode_bytes(&raw);
        prop_assert_eq!(exact.is_some(), std::str::from_utf8(&raw).is_err());
        prop_assert_eq!(decode_bytes(&readable, exact.as_deref()), raw);
        let (readables, exacts) = encode_list(&items);
        prop_assert_eq!(decode_list(&readables, exacts.as_deref()), items);
    }

    /// Redaction scans argv, env and command lines from inside a world:
    /// anything goes in, it ends, and redacting again changes nothing.
    #[test]
    fn proptest_redaction_takes_any_bytes_and_is_idempotent(
        argv in vec(bytes(48), 0..6),
        env in vec(bytes(32), 0..6),
        command_line in bytes(128),
        allow in vec("[A-Z_]{0,6}\\*?", 0..3),
    ) {
        let allow = EnvAllowList::new(&allow);
        let mut span = Span {
            span_id: SpanId::from_uuid(uuid::Uuid::nil()),
            parent_span_id: None,
            world_id: "w".into(),
            source: Source::Preload,
            start: Timestamp::from_unix_nanos(0),
            end: None,
            process: Process {
                argv: Some(argv),
                env: Some(env),
                ..Process::default()
            },
            result: None,
            detail: Detail::Policy(PolicyDetail {
                rule: "r".into(),
                decision: Decision::Allow,
                subject: command_line.clone(),
                reason: None,
            }),
            extra: BTreeMap::new(),
        };
        span.redact(&allow);
        let once = span.clone();
        span.redact(&allow);
        prop_assert_eq!(span, once);

        let _ = redact::redact_bytes(&command_line);
        let once = redact::redact_command_line(&command_line).into_owned();
        prop_assert_eq!(redact::redact_command_line(&once).into_owned(), once);
    }
}

#[derive(Debug, PartialEq)]
enum Item {
    Span(Box<Span>),
    /// A line skipped with an error, by number.
    Skipped(u64),
    /// The unfinished last line, by number.
    Unfinished(u64),
}

fn read_all<R: std::io::BufRead>(reader: R) -> (Vec<Item>, ReadStats) {
    let mut reader = read_spans(reader);
    let items = reader
        .by_ref()
        .map(|item| match item {
            Ok(span) => Item::Span(Box::new(span)),
            Err(ReadError::Line { line, .. }) => Item::Skipped(line),
            Err(ReadError::Unfinished { line, .. }) => Item::Unfinished(line),
            Err(ReadError::Io(e)) => panic!("reading memory failed: {e}"),
        })
        .collect();
    (items, reader.stats())
}
