//! Ingest's guarantees with batches that run on from one world's trace into
//! the next: whatever the batch size, the same graph; ingesting again
//! changes nothing; a trace that grows is taken up where it was left; bad
//! lines are skipped and counted in the world they are in.

use std::path::{Path, PathBuf};

use substrate_graph::{store, Graph, GraphDir, IngestOptions};
use substrate_trace::{
    Chain, ExitStatus, FileDetail, FileOp, NetDetail, NetOp, Source, Span, SpanId, Timestamp,
    Transport, WorldDetail,
};

/// A world's trace lines: a shell, `jobs` processes below it that read a
/// path every world reads, write one of their own and one every world
/// writes, and connect; their exec spans after their activity.
fn world_lines(id: &str, jobs: u32, start: i64) -> Vec<String> {
    let mut chain = Chain::start(id);
    let mut lines = Vec::new();
    let mut now = start;
    let mut tick = || {
        now += 1_000_000;
        Timestamp::from_unix_nanos(now)
    };
    let mut push = |span: Span| lines.push(chain.link(&span).unwrap());
    let world_span = SpanId::new();
    let shell = SpanId::new();
    let t0 = tick();
    for job in 0..jobs {
        let me = SpanId::new();
        let pid = 10 + job;
        let started = tick();
        for (op, path) in [
            (FileOp::Openat, "/etc/ld.so.cache".to_owned()),
            (FileOp::Create, format!("/work/{id}/out{job}")),
            (FileOp::Write, format!("/work/{id}/out{job}")),
            (FileOp::Write, "/var/log/build.log".to_owned()),
            (FileOp::Write, "/var/log/build.log".to_owned()),
        ] {
            let detail = match op {
                FileOp::Openat => FileDetail::open(op, path, 0, None),
                _ => FileDetail::new(op, path),
            };
            let at = tick();
            push(
                Span::file(id, Source::Kernel, at, detail)
                    .parent(me)
                    .pid(pid)
                    .build(),
            );
        }
        let at = tick();
        push(
            Span::net(
                id,
                Source::Kernel,
                at,
                NetDetail::ip(
                    NetOp::Connect,
                    substrate_trace::Family::Inet,
                    Transport::Tcp,
                    "10.0.0.9",
                    443,
                ),
            )
            .parent(me)
            .pid(pid)
            .returned(0)
            .build(),
        );
        let end = tick();
        push(
            Span::exec(id, Source::Kernel, started)
                .id(me)
                .parent(shell)
                .pid(pid)
                .exe("/usr/bin/cc")
                .argv(["cc", "-c", "x.c"])
                .cwd("/work")
                .end(end)
                .exit(ExitStatus::Code(0))
                .build(),
        );
    }
    let end = tick();
    push(
        Span::exec(id, Source::Kernel, t0)
            .id(shell)
            .parent(world_span)
            .pid(1)
            .exe("/usr/bin/dash")
            .argv(["sh", "-c", "make"])
            .end(end)
            .exit(ExitStatus::Code(0))
            .build(),
    );
    push(
        Span::world(id, Source::Runtime, t0, WorldDetail::default())
            .id(world_span)
            .end(end)
            .exit(ExitStatus::Code(0))
            .build(),
    );
    lines
}

/// Writes each world's lines as its `trace.jsonl` under `state`.
fn write_traces(state: &Path, worlds: &[(String, Vec<String>)]) -> Vec<(String, PathBuf)> {
    worlds
        .iter()
        .map(|(id, lines)| {
            let dir = state.join("worlds").join(id);
            std::fs::create_dir_all(&dir).unwrap();
            let trace = dir.join("trace.jsonl");
            std::fs::write(
                &trace,
                lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
            )
            .unwrap();
            (id.clone(), trace)
        })
        .collect()
}

/// Ingests every world in one `ingest_many`, in batches of `batch_lines`;
/// the reports.
fn ingest(
    graph: &Path,
    traces: &[(String, PathBuf)],
    batch_lines: usize,
) -> Vec<substrate_graph::IngestReport> {
    let writer = Graph::open_writer(&GraphDir::new(graph), store::LOCK_WAIT).unwrap();
    let found: Vec<(&str, &Path)> = traces
        .iter()
        .map(|(w, t)| (w.as_str(), t.as_path()))
        .collect();
    writer
        .ingest_many(&found, &IngestOptions { batch_lines })
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// The whole graph as JSON; without each world's ingest state (how far
/// its trace was read: a trace with lines another has not differs there).
fn dump(graph: &Path) -> String {
    let mut dump = Graph::open(&GraphDir::new(graph)).unwrap().dump().unwrap();
    for vertex in dump["vertices"].as_array_mut().unwrap() {
        vertex[2].as_object_mut().unwrap().remove("ingest");
    }
    dump.to_string()
}

#[test]
fn batches_across_worlds_make_the_graph_one_world_at_a_time_does() {
    let tmp = tempfile::tempdir().unwrap();
    let worlds: Vec<(String, Vec<String>)> = (0..4)
        .map(|i| {
            let id = format!("w{i}");
            let lines = world_lines(
                &id,
                3 + i,
                1_800_000_000_000_000_000 + i as i64 * 1_000_000_000,
            );
            (id, lines)
        })
        .collect();
    let traces = write_traces(&tmp.path().join("state"), &worlds);
    let lines: Vec<u64> = worlds.iter().map(|(_, l)| l.len() as u64).collect();

    // One world at a time, each in one batch: what the graph must hold.
    let alone = tmp.path().join("alone");
    for trace in &traces {
        ingest(&alone, std::slice::from_ref(trace), 1_000_000);
    }
    let expected = dump(&alone);

    // Every world in one batch; and batches of 7 lines, which end inside
    // worlds and hold the end of one and the start of the next.
    for batch_lines in [1_000_000, 7, 1] {
        let graph = tmp.path().join(format!("batch{batch_lines}"));
        let reports = ingest(&graph, &traces, batch_lines);
        assert_eq!(dump(&graph), expected, "batches of {batch_lines} lines");
        for (report, lines) in reports.iter().zip(&lines) {
            assert_eq!(report.lines, *lines);
            assert_eq!(report.total.lines, *lines);
            assert_eq!(report.skipped, 0);
        }
        // Again: nothing new, nothing changed.
        let again = ingest(&graph, &traces, batch_lines);
        assert!(again.iter().all(|r| r.lines == 0 && r.batches == 0));
        assert_eq!(dump(&graph), expected);
    }
}

#[test]
fn a_grown_trace_is_taken_up_where_it_was_left_and_bad_lines_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let full: Vec<(String, Vec<String>)> = (0..3)
        .map(|i| {
            let id = format!("w{i}");
            let lines = world_lines(&id, 4, 1_800_000_000_000_000_000 + i as i64 * 1_000_000_000);
            (id, lines)
        })
        .collect();
    let whole = tmp.path().join("whole");
    let traces = write_traces(&tmp.path().join("state-whole"), &full);
    ingest(&whole, &traces, 5);
    let expected = dump(&whole);

    // The first half of each world's lines, then a bad line, a line of
    // another world and an unfinished one in the middle world.
    let half: Vec<(String, Vec<String>)> = full
        .iter()
        .map(|(id, lines)| (id.clone(), lines[..lines.len() / 2].to_vec()))
        .collect();
    let traces = write_traces(&state, &half);
    let middle = &traces[1].1;
    let mut text = std::fs::read_to_string(middle).unwrap();
    text.push_str("{not json\n");
    text.push_str(&format!("{}\n", full[0].1[0]));
    std::fs::write(middle, &text).unwrap();
    let graph = tmp.path().join("graph");
    let first = ingest(&graph, &traces, 5);
    assert_eq!(first[1].skipped, 2);
    assert_eq!(first[1].skipped_lines.len(), 2);
    assert_eq!(first[0].skipped + first[2].skipped, 0);

    // The rest of each world's lines (the middle one's after its bad
    // lines, and an unfinished last line left for later).
    for ((_, trace), (_, lines)) in traces.iter().zip(&full) {
        let mut text = std::fs::read_to_string(trace).unwrap();
        for line in &lines[lines.len() / 2..] {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(trace, text).unwrap();
    }
    std::fs::write(
        middle,
        format!("{}{{\"unfinished", std::fs::read_to_string(middle).unwrap()),
    )
    .unwrap();
    let second = ingest(&graph, &traces, 5);
    for (report, (_, lines)) in second.iter().zip(&full) {
        assert_eq!(report.lines as usize, lines.len() - lines.len() / 2);
        assert_eq!(report.skipped, 0);
    }
    assert_eq!(second[1].unfinished, Some(12));
    assert_eq!(second[1].total.skipped, 2);
    assert_eq!(dump(&graph), expected);
}
