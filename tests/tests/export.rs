//! Export of worlds' traces over OTLP (`substrate-cli export`, the
//! `substrate-export` binary, the node's `export` setting): real worlds,
//! and an OTLP/HTTP receiver of the test's own on loopback that decodes
//! what it is sent with `opentelemetry-proto`, as a collector does.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::str::FromStr;
use std::sync::mpsc::{self, Receiver as Channel, RecvTimeoutError};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::Span as OtlpSpan;
use prost::Message;
use serde_json::Value;
use substrate_tests::{unique_id, unused_loopback_port, Runtime};
use substrate_trace::Timestamp;

/// How long a test waits for a request that should come.
const REQUEST_WAIT: Duration = Duration::from_secs(60);

/// One HTTP request as the receiver read it.
#[derive(Debug)]
struct Request {
    method: String,
    path: String,
    /// Names lowercased.
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// An OTLP/HTTP receiver on 127.0.0.1: answers every request with
/// `status` and `answer`, and hands what it read to the test.
struct Receiver {
    port: u16,
    requests: Channel<Request>,
}

impl Receiver {
    fn start(status: u16, answer: &'static str) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (send, requests) = mpsc::channel();
        // Ends with the test's process (it waits in accept).
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some(request) = read_request(&stream) else {
                    continue;
                };
                answer_with(&stream, status, answer);
                if send.send(request).is_err() {
                    return;
                }
            }
        });
        Receiver { port, requests }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The next request, waited for at most [`REQUEST_WAIT`].
    fn next(&self) -> Request {
        match self.requests.recv_timeout(REQUEST_WAIT) {
            Ok(request) => request,
            Err(RecvTimeoutError::Timeout) => {
                panic!("no request reached the receiver in {REQUEST_WAIT:?}")
            }
            Err(RecvTimeoutError::Disconnected) => panic!("the receiver's thread ended"),
        }
    }

    /// The next request, as a collector decodes it.
    fn next_traces(&self) -> (Request, ExportTraceServiceRequest) {
        let request = self.next();
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/v1/traces");
        assert_eq!(
            request.headers.get("content-type").map(String::as_str),
            Some("application/x-protobuf")
        );
        let traces = ExportTraceServiceRequest::decode(request.body.as_slice())
            .expect("the body is an OTLP ExportTraceServiceRequest");
        (request, traces)
    }
}

/// Request line, headers up to the blank line, then Content-Length bytes.
fn read_request(stream: &TcpStream) -> Option<Request> {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut words = line.split_whitespace();
    let method = words.next()?.to_owned();
    let path = words.next()?.to_owned();
    let mut headers = HashMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn answer_with(mut stream: &TcpStream, status: u16, answer: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status} Whatever\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{answer}",
        answer.len()
    );
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn text<'a>(attributes: &'a [KeyValue], key: &str) -> &'a str {
    match attribute(attributes, key) {
        Some(any_value::Value::StringValue(text)) => text,
        other => panic!("{key} is {other:?}, not a string, in {attributes:#?}"),
    }
}

fn int(attributes: &[KeyValue], key: &str) -> i64 {
    match attribute(attributes, key) {
        Some(any_value::Value::IntValue(n)) => *n,
        other => panic!("{key} is {other:?}, not an int, in {attributes:#?}"),
    }
}

fn strings(attributes: &[KeyValue], key: &str) -> Vec<String> {
    match attribute(attributes, key) {
        Some(any_value::Value::ArrayValue(array)) => array
            .values
            .iter()
            .map(|v| match &v.value {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                other => panic!("{key} holds {other:?}"),
            })
            .collect(),
        other => panic!("{key} is {other:?}, not an array, in {attributes:#?}"),
    }
}

/// The world's spans as a reader keeps them: the last line of each id.
fn trace_spans(rt: &Runtime, name: &str) -> BTreeMap<String, Value> {
    rt.spans(name)
        .into_iter()
        .map(|span| (span["span_id"].as_str().unwrap().to_owned(), span))
        .collect()
}

fn nanos(time: &Value) -> u64 {
    let time = Timestamp::from_str(time.as_str().unwrap()).unwrap();
    u64::try_from(time.unix_nanos()).unwrap()
}

fn export(rt: &Runtime, args: &[&str]) -> std::process::Output {
    let mut all = vec!["export"];
    all.extend_from_slice(args);
    rt.cli(&all).output().expect("spawn substrate-cli")
}

/// The one resource and its spans, by their Substrate span id.
fn spans_of(request: &ExportTraceServiceRequest) -> (&[KeyValue], HashMap<String, &OtlpSpan>) {
    let [resource] = &request.resource_spans[..] else {
        panic!("one resource (the world) per request: {request:#?}")
    };
    let [scope] = &resource.scope_spans[..] else {
        panic!("one scope: {resource:#?}")
    };
    assert_eq!(scope.scope.as_ref().unwrap().name, "substrate");
    let by_id = scope
        .spans
        .iter()
        .map(|span| (text(&span.attributes, "substrate.span.id").to_owned(), span))
        .collect::<HashMap<_, _>>();
    assert_eq!(by_id.len(), scope.spans.len(), "span ids are unique");
    let resource = &resource.resource.as_ref().expect("a resource").attributes;
    (resource, by_id)
}

/// What a world's export must hold, span for span, against its trace.
fn assert_is_the_trace(request: &ExportTraceServiceRequest, rt: &Runtime, name: &str) {
    let (resource, spans) = spans_of(request);
    assert_eq!(text(resource, "container.id"), name);
    assert_eq!(text(resource, "service.name"), "substrate");
    assert!(!text(resource, "host.name").is_empty());

    let trace = trace_spans(rt, name);
    assert_eq!(spans.len(), trace.len(), "every span of the trace, once");
    let trace_id = &spans.values().next().unwrap().trace_id;
    assert_eq!(trace_id.len(), 16);
    assert_ne!(trace_id, &vec![0; 16]);
    for (id, span) in &trace {
        let otlp = spans
            .get(id)
            .unwrap_or_else(|| panic!("span {id} not sent"));
        assert_eq!(&otlp.trace_id, trace_id, "one trace per world");
        assert_eq!(otlp.span_id.len(), 8);
        // Parent links as the trace has them.
        match span["parent_span_id"].as_str() {
            Some(parent) => {
                let parent = spans
                    .get(parent)
                    .unwrap_or_else(|| panic!("parent {parent} of {id} not sent"));
                assert_eq!(otlp.parent_span_id, parent.span_id, "{span}");
            }
            None => assert!(otlp.parent_span_id.is_empty(), "{span}"),
        }
        let start = nanos(&span["start"]);
        assert_eq!(otlp.start_time_unix_nano, start, "{span}");
        let end = if span["end"].is_null() {
            start
        } else {
            nanos(&span["end"])
        };
        assert_eq!(otlp.end_time_unix_nano, end, "{span}");
        assert_eq!(
            text(&otlp.attributes, "substrate.span.kind"),
            span["kind"].as_str().unwrap()
        );
        if let Some(pid) = span["pid"].as_i64() {
            assert_eq!(int(&otlp.attributes, "process.pid"), pid, "{span}");
        }
        if let Some(argv) = span["argv"].as_array() {
            let argv: Vec<&str> = argv.iter().map(|a| a.as_str().unwrap()).collect();
            assert_eq!(strings(&otlp.attributes, "process.command_args"), argv);
            assert_eq!(
                text(&otlp.attributes, "process.command_line"),
                argv.join(" ")
            );
        }
        if let Some(path) = span["detail"]["path"].as_str() {
            assert_eq!(text(&otlp.attributes, "file.path"), path, "{span}");
        }
    }
    let world = trace.values().find(|s| s["kind"] == "world").unwrap();
    let world = spans[world["span_id"].as_str().unwrap()];
    assert_eq!(world.name, "world");
    assert!(world.parent_span_id.is_empty());
}

#[test]
fn a_world_is_one_otlp_trace_with_its_spans_links_and_times() {
    let rt = Runtime::new();
    let name = unique_id("export");
    rt.cli_run_ok(
        &name,
        "echo hi > /tmp/x; cat /etc/hostname >/dev/null; exit 0",
    );
    let receiver = Receiver::start(200, "");
    let out = export(
        &rt,
        &[
            "otlp",
            "--endpoint",
            &receiver.endpoint(),
            "--header",
            "x-tenant=fleet-1",
            &name,
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (request, traces) = receiver.next_traces();
    assert_eq!(
        request.headers.get("x-tenant").map(String::as_str),
        Some("fleet-1")
    );
    assert_is_the_trace(&traces, &rt, &name);
    let trace = trace_spans(&rt, &name);
    assert!(
        stdout.contains(&format!("world {name}: {} spans sent to", trace.len())),
        "{stdout}"
    );

    // The program the command ran: its span, named after it, with its
    // argv, pid and exit.
    let (_, spans) = spans_of(&traces);
    let cat = trace
        .values()
        .find(|s| s["kind"] == "exec" && s["argv"][0] == "cat")
        .unwrap_or_else(|| panic!("cat's exec span: {trace:#?}"));
    let otlp = spans[cat["span_id"].as_str().unwrap()];
    assert_eq!(otlp.name, "exec cat");
    assert_eq!(
        strings(&otlp.attributes, "process.command_args"),
        ["cat", "/etc/hostname"]
    );
    assert_eq!(
        int(&otlp.attributes, "process.pid"),
        cat["pid"].as_i64().unwrap()
    );
    assert_eq!(int(&otlp.attributes, "process.exit.code"), 0);
    assert!(otlp.status.is_none(), "{otlp:#?}");
    // The file the command wrote, under the shell that wrote it.
    let created = spans
        .values()
        .find(|s| {
            s.name.starts_with("file ")
                && attribute(&s.attributes, "file.path")
                    == Some(&any_value::Value::StringValue("/tmp/x".into()))
        })
        .unwrap_or_else(|| panic!("a file span of /tmp/x: {spans:#?}"));
    assert!(spans
        .values()
        .any(|s| s.span_id == created.parent_span_id && s.name.starts_with("exec ")));

    // Exported again: the same trace (a backend keeps one copy).
    let out = export(&rt, &["otlp", "--endpoint", &receiver.endpoint(), &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, again) = receiver.next_traces();
    assert_eq!(again, traces);
}

#[test]
fn a_failed_world_is_an_error_in_its_trace() {
    let rt = Runtime::new();
    let name = unique_id("export-fail");
    let out = rt
        .cli(&["run", "--name", &name, "--", "sh", "-c", "exit 7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    let receiver = Receiver::start(200, "");
    let out = export(&rt, &["otlp", "--endpoint", &receiver.endpoint(), &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, traces) = receiver.next_traces();
    let (_, spans) = spans_of(&traces);
    let world = spans.values().find(|s| s.name == "world").unwrap();
    assert_eq!(int(&world.attributes, "process.exit.code"), 7);
    let status = world.status.as_ref().expect("an error status");
    assert_eq!(status.code, 2, "STATUS_CODE_ERROR");
    assert_eq!(status.message, "exited with status 7");
}

#[test]
fn a_refused_or_unreachable_collector_fails_the_export_saying_why() {
    let rt = Runtime::new();
    let name = unique_id("export-refused");
    rt.cli_run_ok(&name, "true");

    let receiver = Receiver::start(500, "tenant fleet-1 is over its quota");
    let out = export(&rt, &["otlp", "--endpoint", &receiver.endpoint(), &name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("HTTP 500"), "{stderr}");
    assert!(
        stderr.contains("tenant fleet-1 is over its quota"),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("world {name}")), "{stderr}");
    // It was sent, once: a 500 is not retried.
    receiver.next_traces();

    let port = unused_loopback_port();
    let out = export(
        &rt,
        &[
            "otlp",
            "--endpoint",
            &format!("http://127.0.0.1:{port}"),
            &name,
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot send the spans to http://127.0.0.1:{port}/v1/traces"
        )),
        "{stderr}"
    );
    assert!(
        stderr.to_lowercase().contains("connection refused"),
        "{stderr}"
    );

    let out = export(
        &rt,
        &["otlp", "--endpoint", &receiver.endpoint(), "no-such-world"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no such world \"no-such-world\""),
        "{stderr}"
    );

    // Without --endpoint, the node's settings; without those, an error
    // that says where to put one.
    let out = export(&rt, &["otlp", &name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no collector: pass --endpoint URL"),
        "{stderr}"
    );
    std::fs::create_dir_all(rt.config_dir()).unwrap();
    std::fs::write(
        rt.config_dir().join("config.yaml"),
        "export:\n  otlp:\n    endpiont: http://127.0.0.1:1\n",
    )
    .unwrap();
    let out = export(&rt, &["otlp", &name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("config.yaml:3:5: export.otlp: unknown field `endpiont`"),
        "{stderr}"
    );
}

#[test]
fn the_otlp_json_file_reads_back_as_what_a_collector_is_sent() {
    let rt = Runtime::new();
    let names = [unique_id("export-json"), unique_id("export-json")];
    for name in &names {
        rt.cli_run_ok(name, "ls / >/dev/null");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("worlds.otlp.jsonl");
    let out = export(
        &rt,
        &["otlp-json", file.to_str().unwrap(), &names[0], &names[1]],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "one line per world: {text}");

    let receiver = Receiver::start(200, "");
    for (name, line) in names.iter().zip(&lines) {
        // The OTLP JSON encoding: camelCase, hex ids, 64-bit integers as
        // strings, enums as numbers.
        let json: Value = serde_json::from_str(line).unwrap();
        let span = &json["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"].as_str().unwrap().len(), 32, "{span}");
        assert_eq!(span["spanId"].as_str().unwrap().len(), 16, "{span}");
        assert!(span["startTimeUnixNano"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok());
        assert!(span["kind"].is_number(), "{span}");

        let from_file: ExportTraceServiceRequest = serde_json::from_str(line).unwrap();
        assert_is_the_trace(&from_file, &rt, name);
        let out = export(&rt, &["otlp", "--endpoint", &receiver.endpoint(), name]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (_, sent) = receiver.next_traces();
        assert_eq!(from_file, sent);
    }
}

#[test]
fn the_node_exports_each_world_as_it_ends() {
    let rt = Runtime::new();
    let receiver = Receiver::start(200, "");
    std::fs::create_dir_all(rt.config_dir()).unwrap();
    std::fs::write(
        rt.config_dir().join("config.yaml"),
        format!(
            "export:\n  otlp:\n    endpoint: {}\n    headers:\n      x-api-key: s3cret\n",
            receiver.endpoint()
        ),
    )
    .unwrap();
    let name = unique_id("export-node");
    rt.cli_run_ok(&name, "echo hi > /tmp/x");
    let (request, traces) = receiver.next_traces();
    assert_eq!(
        request.headers.get("x-api-key").map(String::as_str),
        Some("s3cret")
    );
    assert_is_the_trace(&traces, &rt, &name);
    // The exporter says what it did in the world's export.log.
    let log = rt.world_dir(&name).join("export.log");
    substrate_tests::wait_until("the exporter's report in export.log", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("spans sent to"))
    });
}
