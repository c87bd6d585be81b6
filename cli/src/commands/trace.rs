//! `substrate-cli trace`: what ran in a world, as a process tree.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Write};

use anyhow::{Context, Result};
use clap::Args;
use substrate_runtime::Runtime;
use substrate_trace::{read_spans, Detail, ExitStatus, Outcome, Span, SpanId, SpanKind};

use super::record;

#[derive(Args, Debug)]
pub struct TraceArgs {
    /// The world: its id (`--name`, or the w-… id `run` made), as `ps` lists it.
    world: String,
    /// The raw spans, one JSON line each (the schema: docs/trace-spans.md).
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
    let mut calls: HashMap<Option<SpanId>, Vec<&Span>> = HashMap::new();
    let ids: HashSet<SpanId> = spans.iter().map(|s| s.span_id).collect();
    for span in spans.iter().filter(|s| is_call(s)) {
        calls.entry(span.parent_span_id).or_default().push(span);
    }
    for span in spans
        .iter()
        .filter(|s| s.kind() != SpanKind::World && !is_call(s))
    {
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
    // What the world's monitor saw for the world as a whole: its
    // resolver's answers, packets no program's call claimed.
    if let Some(world) = world {
        let world_calls = calls
            .get(&Some(world.span_id))
            .map(Vec::as_slice)
            .unwrap_or_default();
        for line in summarise(world_calls) {
            println!("· {line}");
        }
    }
    let tree = Tree { children, calls };
    tree.print(&roots, &mut std::io::stdout().lock())?;
    Ok(())
}

/// File, socket and lookup calls: shown as a summary under their program.
fn is_call(span: &Span) -> bool {
    matches!(
        span.detail,
        Detail::File(_) | Detail::Net(_) | Detail::Dns(_)
    )
}

struct Tree<'a> {
    children: HashMap<Option<SpanId>, Vec<&'a Span>>,
    calls: HashMap<Option<SpanId>, Vec<&'a Span>>,
}

/// How many paths a summary line names before "+N more".
const SUMMARY_ITEMS: usize = 6;

/// Deeper than this, a span is drawn at this depth with its real depth
/// beside it: a world that execs or forks in a chain thousands deep must
/// not make every line thousands of characters wide.
const MAX_INDENT: usize = 24;

/// A span still to be drawn, with what is drawn before it.
struct Pending<'a> {
    span: &'a Span,
    depth: usize,
    last: bool,
    /// One flag per drawn ancestor level: whether its bar continues.
    bars: Vec<bool>,
}

impl Tree<'_> {
    /// Draws the tree depth-first with a stack of its own (no recursion:
    /// the depth is the world's to choose). Spans come from inside the
    /// world, so a parent link may form a cycle: each span is drawn once.
    fn print(&self, roots: &[&Span], out: &mut impl Write) -> std::io::Result<()> {
        let mut drawn: HashSet<SpanId> = HashSet::new();
        let mut stack: Vec<Pending> = roots
            .iter()
            .enumerate()
            .rev()
            .map(|(i, span)| Pending {
                span,
                depth: 0,
                last: i + 1 == roots.len(),
                bars: Vec::new(),
            })
            .collect();
        while let Some(Pending {
            span,
            depth,
            last,
            bars,
        }) = stack.pop()
        {
            if !drawn.insert(span.span_id) {
                continue;
            }
            let prefix: String = bars
                .iter()
                .map(|&bar| if bar { "│  " } else { "   " })
                .collect();
            let beyond = if depth > MAX_INDENT {
                format!("[depth {depth}] ")
            } else {
                String::new()
            };
            writeln!(
                out,
                "{prefix}{}{beyond}{}",
                if last { "└─ " } else { "├─ " },
                describe(span)
            )?;
            let mut kids: Vec<&Span> = self
                .children
                .get(&Some(span.span_id))
                .map(|kids| {
                    kids.iter()
                        .copied()
                        .filter(|kid| !drawn.contains(&kid.span_id))
                        .collect()
                })
                .unwrap_or_default();
            kids.sort_by_key(|s| s.start);
            let mut deeper = bars;
            if deeper.len() < MAX_INDENT {
                deeper.push(!last);
            }
            let bar = if kids.is_empty() { "   " } else { "│  " };
            let calls = self
                .calls
                .get(&Some(span.span_id))
                .map(Vec::as_slice)
                .unwrap_or_default();
            let deeper_prefix: String = deeper
                .iter()
                .map(|&bar| if bar { "│  " } else { "   " })
                .collect();
            for line in summarise(calls) {
                writeln!(out, "{deeper_prefix}{bar}· {line}")?;
            }
            for (i, kid) in kids.iter().enumerate().rev() {
                stack.push(Pending {
                    span: kid,
                    depth: depth + 1,
                    last: i + 1 == kids.len(),
                    bars: deeper.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Distinct items in the order first seen, each found in O(1).
#[derive(Default)]
struct Distinct {
    items: Vec<String>,
    seen: HashSet<String>,
}

impl Distinct {
    fn push(&mut self, item: String) {
        if self.seen.insert(item.clone()) {
            self.items.push(item);
        }
    }
}

/// What a program's calls add up to: files written, files read (a count),
/// connections and lookups.
fn summarise(calls: &[&Span]) -> Vec<String> {
    let mut written = Distinct::default();
    let mut failed = 0;
    let mut read = 0;
    let mut net = Distinct::default();
    let mut dns = Distinct::default();
    for span in calls {
        let ok = !matches!(span.result, Some(Outcome::Returned { errno: Some(_), .. }));
        match &span.detail {
            Detail::File(_) if !ok => failed += 1,
            Detail::File(file) if writes(file) => {
                written.push(format!("{} {}", file.op, lossy(&file.path)))
            }
            Detail::File(_) => read += 1,
            Detail::Net(_) => net.push(call_text(span)),
            Detail::Dns(_) => dns.push(call_text(span)),
            _ => {}
        }
    }
    let mut lines = Vec::new();
    let mut list = |label: &str, items: Vec<String>| {
        if items.is_empty() {
            return;
        }
        let more = items.len().saturating_sub(SUMMARY_ITEMS);
        let mut line = format!(
            "{label}: {}",
            items
                .into_iter()
                .take(SUMMARY_ITEMS)
                .collect::<Vec<_>>()
                .join(", ")
        );
        if more > 0 {
            line.push_str(&format!(" (+{more} more)"));
        }
        lines.push(line);
    };
    list("wrote", written.items);
    list("net", net.items);
    list("dns", dns.items);
    match (read, failed) {
        (0, 0) => {}
        (read, 0) => lines.push(format!("read {read} file(s)")),
        (read, failed) => lines.push(format!("read {read} file(s); {failed} file call(s) failed")),
    }
    lines
}

const O_ACCMODE: u32 = 0o3;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;
const O_APPEND: u32 = 0o2000;

/// Whether a file call changes the filesystem (or opens to write).
pub(crate) fn writes(file: &substrate_trace::FileDetail) -> bool {
    use substrate_trace::FileOp;
    match file.op {
        FileOp::Open | FileOp::Openat | FileOp::Fopen => file
            .flags
            .is_some_and(|f| f & O_ACCMODE != 0 || f & (O_CREAT | O_TRUNC | O_APPEND) != 0),
        FileOp::Exec => false,
        _ => true,
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One call in words: `openat /etc/hostname`, `connect 10.0.0.1:443/tcp`,
/// `dns example.com -> 1.2.3.4`; a lookup or connection the world's lack
/// of a network refused says so.
fn call_text(span: &Span) -> String {
    let text = call_words(span);
    let field = |object: &str, key: &str| {
        span.extra
            .get(object)
            .and_then(|v| v.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_owned)
    };
    if span.extra.get("refused_by").and_then(|v| v.as_str()) == Some("network") {
        return format!("{text} [refused: the world has no network]");
    }
    // What the egress table decided (net), what the world's resolver did
    // (dns), and the rule.
    match (field("egress", "verdict"), field("egress", "rule")) {
        (Some(verdict), Some(rule)) if verdict == "deny" => {
            return format!("{text} [refused by egress policy: {rule}]")
        }
        (Some(_), Some(rule)) => return format!("{text} [allowed: {rule}]"),
        _ => {}
    }
    match field("resolver", "verdict").as_deref() {
        Some("refused") => format!(
            "{text} [refused by egress policy: {}]",
            field("resolver", "reason").unwrap_or_default()
        ),
        Some("not_admitted") => format!(
            "{text} [answer {} not admitted: {}]",
            field("resolver", "address").unwrap_or_default(),
            field("resolver", "reason").unwrap_or_default()
        ),
        Some("failed") => format!(
            "{text} [failed: {}]",
            field("resolver", "reason").unwrap_or_default()
        ),
        _ => text,
    }
}

fn call_words(span: &Span) -> String {
    match &span.detail {
        Detail::File(file) => match &file.new_path {
            Some(to) => format!("{} {} -> {}", file.op, lossy(&file.path), lossy(to)),
            None => format!("{} {}", file.op, lossy(&file.path)),
        },
        Detail::Net(net) => {
            let address = net.address.as_deref().map(lossy).unwrap_or_default();
            let endpoint = match (net.port, &net.transport) {
                (Some(port), Some(t)) => format!("{address}:{port}/{t}"),
                (Some(port), None) => format!("{address}:{port}"),
                _ => format!("{address} ({})", net.family),
            };
            format!("{} {endpoint}", net.op)
        }
        Detail::Dns(dns) => match &span.result {
            Some(Outcome::Returned { ret, .. }) if *ret != 0 => {
                format!("{} -> failed ({})", lossy(&dns.query), eai_name(*ret))
            }
            // The world's resolver's account of a name it did not answer.
            _ if dns.answers.is_empty() && span.result.is_none() => lossy(&dns.query),
            _ => format!("{} -> {}", lossy(&dns.query), dns.answers.join(" ")),
        },
        _ => String::new(),
    }
}

/// getaddrinfo(3)'s error codes (glibc's values).
fn eai_name(code: i64) -> String {
    match code {
        -2 => "EAI_NONAME".into(),
        -3 => "EAI_AGAIN".into(),
        -4 => "EAI_FAIL".into(),
        -5 => "EAI_NODATA".into(),
        -6 => "EAI_FAMILY".into(),
        -8 => "EAI_SERVICE".into(),
        -10 => "EAI_MEMORY".into(),
        -11 => "EAI_SYSTEM".into(),
        other => format!("error {other}"),
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
            let lost = if world.lost > 0 {
                format!("; {} event(s) lost", world.lost)
            } else {
                String::new()
            };
            let rejected: u64 = world.rejected.values().sum();
            let rejected = if rejected > 0 {
                let reasons: Vec<String> = world
                    .rejected
                    .iter()
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect();
                format!("; rejected from inside the world: {}", reasons.join(", "))
            } else {
                String::new()
            };
            format!(
                "{}{duration}; spans: {}{files}{lost}{rejected}",
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
            let pid = pid_text(span.process.world_pid, span.process.pid);
            let argv = if is_call(span) { call_text(span) } else { argv };
            format!("{argv}{pid}{result}{duration} ({})", span.source.as_str())
        }
    }
}

/// A process's pids, each named by whose view it is: `[pid 2, host pid
/// 4242]` (the world's pid namespace, then the host's), `[host pid 4242]`
/// when only the host's is known, `[pid 2]` when only the world's is.
fn pid_text(world: Option<u32>, host: Option<u32>) -> String {
    match (world, host) {
        (Some(world), Some(host)) => format!(" [pid {world}, host pid {host}]"),
        (None, Some(host)) => format!(" [host pid {host}]"),
        (Some(world), None) => format!(" [pid {world}]"),
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use substrate_trace::{Source, Timestamp};

    fn exec(n: i64, id: SpanId, parent: Option<SpanId>) -> Span {
        let mut span = Span::exec("w", Source::Kernel, Timestamp::from_unix_nanos(n)).id(id);
        if let Some(parent) = parent {
            span = span.parent(parent);
        }
        span.build()
    }

    fn tree_of(spans: &[Span]) -> Tree<'_> {
        let mut children: HashMap<Option<SpanId>, Vec<&Span>> = HashMap::new();
        for span in spans {
            children.entry(span.parent_span_id).or_default().push(span);
        }
        Tree {
            children,
            calls: HashMap::new(),
        }
    }

    /// A world that execs in a chain 100,000 deep: every span is drawn
    /// once, without recursion, and no line grows with the depth.
    #[test]
    fn a_deep_exec_chain_is_drawn_in_bounded_width() {
        let ids: Vec<SpanId> = (0..100_000).map(|_| SpanId::new()).collect();
        let spans: Vec<Span> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| exec(i as i64, id, i.checked_sub(1).map(|p| ids[p])))
            .collect();
        let tree = tree_of(&spans);
        let mut out = Vec::new();
        tree.print(&[&spans[0]], &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), spans.len());
        let widest = text.lines().map(|l| l.chars().count()).max().unwrap();
        assert!(widest < 200, "a line {widest} characters wide");
        assert!(text.lines().last().unwrap().contains("[depth 99999]"));
    }

    #[test]
    fn pids_say_whose_they_are() {
        assert_eq!(pid_text(Some(2), Some(4242)), " [pid 2, host pid 4242]");
        assert_eq!(pid_text(None, Some(4242)), " [host pid 4242]");
        assert_eq!(pid_text(Some(2), None), " [pid 2]");
        assert_eq!(pid_text(None, None), "");
    }

    /// Parent links come from inside the world: a cycle ends.
    #[test]
    fn a_parent_cycle_is_drawn_once() {
        let (a, b) = (SpanId::new(), SpanId::new());
        let spans = vec![exec(1, a, Some(b)), exec(2, b, Some(a))];
        let tree = tree_of(&spans);
        let mut out = Vec::new();
        tree.print(&[&spans[0]], &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 2);
    }
}
