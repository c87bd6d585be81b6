//! `substrate-cli trace`: what ran in a world, as a process tree.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;

use anyhow::{Context, Result};
use clap::Args;
use substrate_runtime::Runtime;
use substrate_trace::{read_spans, Detail, ExitStatus, Outcome, Span, SpanId, SpanKind};

use super::record;

#[derive(Args, Debug)]
pub struct TraceArgs {
    world: String,
    /// The raw spans, one JSON line each.
    #[arg(long, conflicts_with = "flat")]
    json: bool,
    /// One line per span in start order, without the tree.
    #[arg(long)]
    flat: bool,
}

pub fn trace(args: TraceArgs, runtime: &Runtime) -> Result<()> {
    let record = record(runtime, &args.world)?;
    let path = runtime.store().trace_path(&record.id);
    let file = File::open(&path).with_context(|| format!("world {} has no trace", record.id))?;
    let mut reader = read_spans(BufReader::new(file));
    let mut spans: Vec<Span> = Vec::new();
    for span in reader.by_ref() {
        match span {
            Ok(span) => spans.push(span),
            Err(e) if e.is_fatal() => return Err(e).context(format!("reading {}", path.display())),
            Err(_) => {}
        }
    }
    let stats = reader.stats();
    if stats.skipped > 0 {
        eprintln!(
            "substrate-cli: {} unreadable line(s) in {} skipped",
            stats.skipped,
            path.display()
        );
    }
    spans.sort_by_key(|s| s.start);
    if args.json {
        for span in &spans {
            println!("{}", span.to_line()?);
        }
        return Ok(());
    }
    if args.flat {
        for span in spans.iter().filter(|s| s.kind() != SpanKind::World) {
            println!("{}", describe(span));
        }
        return Ok(());
    }
    let mut children: HashMap<Option<SpanId>, Vec<&Span>> = HashMap::new();
    let ids: std::collections::HashSet<SpanId> = spans.iter().map(|s| s.span_id).collect();
    for span in spans.iter().filter(|s| s.kind() != SpanKind::World) {
        // A span whose parent is not in the trace hangs from the root.
        let parent = span.parent_span_id.filter(|p| ids.contains(p));
        children.entry(parent).or_default().push(span);
    }
    let world = spans.iter().find(|s| s.kind() == SpanKind::World);
    match world {
        Some(world) => println!("world {}: {}", record.id, describe(world)),
        None => println!(
            "world {} (still running, or ended without its world span)",
            record.id
        ),
    }
    let mut roots: Vec<&Span> = children.get(&None).cloned().unwrap_or_default();
    if let Some(world) = world {
        roots.extend(
            children
                .get(&Some(world.span_id))
                .cloned()
                .unwrap_or_default(),
        );
    }
    roots.sort_by_key(|s| s.start);
    print_tree(&roots, &children, "");
    Ok(())
}

fn print_tree(spans: &[&Span], children: &HashMap<Option<SpanId>, Vec<&Span>>, prefix: &str) {
    for (i, span) in spans.iter().enumerate() {
        let last = i + 1 == spans.len();
        println!(
            "{prefix}{}{}",
            if last { "└─ " } else { "├─ " },
            describe(span)
        );
        let mut kids = children
            .get(&Some(span.span_id))
            .cloned()
            .unwrap_or_default();
        kids.sort_by_key(|s| s.start);
        let deeper = format!("{prefix}{}", if last { "   " } else { "│  " });
        print_tree(&kids, children, &deeper);
    }
}

/// `argv [pid N] exit … 12ms (source)` for a process, totals for the world.
fn describe(span: &Span) -> String {
    let duration = span
        .duration()
        .map(|d| format!(" {:.1}ms", d.as_secs_f64() * 1000.0))
        .unwrap_or_default();
    let result = match &span.result {
        Some(Outcome::Exited(ExitStatus::Code(code))) => format!(" exit {code}"),
        Some(Outcome::Exited(ExitStatus::Signal(signal))) => format!(" killed by signal {signal}"),
        Some(Outcome::Returned { ret, errno }) => match errno {
            Some(errno) => format!(" -> {ret} {}", errno.name().unwrap_or("errno")),
            None => format!(" -> {ret}"),
        },
        None => String::new(),
    };
    match &span.detail {
        Detail::World(world) => {
            let spans: Vec<String> = world
                .spans
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            let files = world
                .fs
                .as_ref()
                .map(|f| format!("; files A {} C {} D {}", f.added, f.changed, f.deleted))
                .unwrap_or_default();
            format!(
                "{}{duration}; spans: {}{files}",
                result.trim_start(),
                spans.join(", ")
            )
        }
        _ => {
            let argv = span
                .process
                .argv
                .as_ref()
                .map(|argv| {
                    argv.iter()
                        .map(|a| String::from_utf8_lossy(a).into_owned())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .or_else(|| {
                    span.process
                        .exe
                        .as_ref()
                        .map(|e| String::from_utf8_lossy(e).into_owned())
                })
                .unwrap_or_else(|| format!("({})", span.kind().as_str()));
            let pid = match (span.process.world_pid, span.process.pid) {
                (Some(world), Some(host)) => format!(" [pid {world}, host {host}]"),
                (None, Some(host)) => format!(" [host pid {host}]"),
                _ => String::new(),
            };
            format!("{argv}{pid}{result}{duration} ({})", span.source.as_str())
        }
    }
}
