//! `substrate-graph`: the span graph's commands (`substrate-cli graph …`
//! runs this binary; the runtime runs `substrate-graph ingest WORLD` when a
//! world ends). One short function per command over the library.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde::Serialize;
use substrate_graph::{render, store, Graph, GraphDir, IngestOptions, Traces};

// Ingest frees on one thread what another allocated: mimalloc does that
// without glibc's per-free lock (graph/Cargo.toml).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ABOUT: &str = "\
The span graph: every world's trace indexed in IndraDB (RocksDB), and the
questions people ask of it. The graph is an index of the worlds' traces
(`trace.jsonl`): `rebuild` makes it again from them.

Examples:
  graph tree build                     the process tree of world `build`, with files,
                                       connections and policy decisions
  graph tree 01906e2a-8a00-7002-…      the tree below one process (its exec span's id)
  graph who-wrote /etc/passwd          which processes in which worlds changed it
  graph what-changed 01906e2a-…        every file that process and its children changed
  graph connections --blocked          blocked destinations, by world and process
  graph chains --svg > chains.svg      download-then-run, curl | sh, credential
                                       paths, denied-then-retried; as a picture
  graph ingest                         ingest what is new in every world's trace";

#[derive(Parser, Debug)]
#[command(name = "substrate-graph", version, about = ABOUT)]
struct Cli {
    /// Where world records are kept [default: $SUBSTRATE_STATE_DIR, else /var/lib/substrate].
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    /// Where the graph is kept [default: $SUBSTRATE_GRAPH_DIR, else <state dir>/graph].
    #[arg(long, global = true)]
    graph_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Ingest what is new in worlds' traces (every world's, or those named).
    Ingest(IngestArgs),
    /// Make the graph again from every world's trace.
    Rebuild(RebuildArgs),
    /// A world's process tree (or the tree below one process), with the files each
    /// process touched, where it connected, and the policy's decisions.
    Tree(TreeArgs),
    /// Which processes, in which worlds, wrote, created, renamed or deleted PATH, with
    /// their ancestry.
    WhoWrote(WhoWroteArgs),
    /// Every file a process and its descendants changed.
    WhatChanged(WhatChangedArgs),
    /// Destinations worlds' processes connected to, by world and process.
    Connections(ConnectionsArgs),
    /// Suspicious chains: download then run, `curl | sh`, credential paths, denied then
    /// tried again.
    Chains(ChainsArgs),
    /// The worlds in the graph and how far each was ingested.
    Worlds(FormatArgs),
    /// Every vertex and edge with its properties, as JSON (sorted: two dumps of the
    /// same graph are the same bytes).
    Dump,
}

#[derive(Args, Debug)]
struct IngestArgs {
    /// World ids [default: every world with a trace].
    worlds: Vec<String>,
    /// Lines per batch (one atomic write).
    #[arg(long, default_value_t = IngestOptions::default().batch_lines)]
    batch_lines: usize,
    #[command(flatten)]
    format: FormatArgs,
}

#[derive(Args, Debug)]
struct RebuildArgs {
    #[arg(long, default_value_t = IngestOptions::default().batch_lines)]
    batch_lines: usize,
    #[command(flatten)]
    format: FormatArgs,
}

#[derive(Args, Debug)]
struct FormatArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
#[group(multiple = false)]
struct PictureArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Print Graphviz DOT.
    #[arg(long)]
    dot: bool,
    /// Print SVG (DOT rendered by Graphviz's `dot`).
    #[arg(long)]
    svg: bool,
}

#[derive(Args, Debug)]
struct TreeArgs {
    /// A world id, or a process's exec span id.
    target: String,
    /// The world the span is in (else looked up by the span id).
    #[arg(long)]
    world: Option<String>,
    #[command(flatten)]
    format: PictureArgs,
}

#[derive(Args, Debug)]
struct WhoWroteArgs {
    /// The path, as the world saw it (absolute).
    path: OsString,
    #[command(flatten)]
    format: FormatArgs,
}

#[derive(Args, Debug)]
struct WhatChangedArgs {
    /// A process's exec span id.
    span: String,
    #[arg(long)]
    world: Option<String>,
    #[command(flatten)]
    format: FormatArgs,
}

#[derive(Args, Debug)]
struct ConnectionsArgs {
    /// Only destinations an attempt to was blocked.
    #[arg(long)]
    blocked: bool,
    /// Only this world's.
    #[arg(long)]
    world: Option<String>,
    #[command(flatten)]
    format: FormatArgs,
}

#[derive(Args, Debug)]
struct ChainsArgs {
    /// Only this world's.
    #[arg(long)]
    world: Option<String>,
    /// Only this kind: download_exec, pipe_to_shell, credential_write,
    /// credential_read, denied_then_retried.
    #[arg(long)]
    kind: Option<String>,
    #[command(flatten)]
    format: PictureArgs,
}

/// Set by `substrate-cli graph` so that help and errors name it.
const CALLER_ENV: &str = "SUBSTRATE_GRAPH_AS";

fn main() -> ExitCode {
    let _fail_points = substrate_graph::fail_points();
    // Leaked once: clap takes the name as a `&'static str`.
    let name: &'static str = match std::env::var(CALLER_ENV) {
        Ok(name) => Box::leak(name.into_boxed_str()),
        Err(_) => "substrate-graph",
    };
    let command = Cli::command().name(name).bin_name(name);
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let causes: Vec<String> = e.chain().map(ToString::to_string).collect();
            eprintln!("{name}: {}", causes.join(": "));
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let traces = cli
        .state_dir
        .map(Traces::new)
        .unwrap_or_else(Traces::from_env);
    let dir = cli
        .graph_dir
        .map(GraphDir::new)
        .unwrap_or_else(|| GraphDir::from_env(traces.state_dir()));
    match cli.command {
        Command::Ingest(args) => ingest(&traces, &dir, args),
        Command::Rebuild(args) => rebuild(&traces, &dir, args),
        Command::Tree(args) => {
            let tree = read(&dir, |g| g.tree(&args.target, args.world.as_deref()))?;
            picture(&args.format, &tree, render::tree_text, render::tree_dot)
        }
        Command::WhoWrote(args) => {
            let answer = read(&dir, |g| g.who_wrote(args.path.as_bytes()))?;
            print(args.format.json, &answer, render::who_wrote_text)
        }
        Command::WhatChanged(args) => {
            let answer = read(&dir, |g| g.what_changed(&args.span, args.world.as_deref()))?;
            print(args.format.json, &answer, render::what_changed_text)
        }
        Command::Connections(args) => {
            let answer = read(&dir, |g| g.connections(args.world.as_deref(), args.blocked))?;
            print(args.format.json, &answer, render::connections_text)
        }
        Command::Chains(args) => {
            let answer = read(&dir, |g| {
                g.chains(args.world.as_deref(), args.kind.as_deref())
            })?;
            picture(
                &args.format,
                &answer,
                render::chains_text,
                render::chains_dot,
            )
        }
        Command::Dump => {
            print_json(&read(&dir, Graph::dump)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Worlds(format) => {
            let answer = read(&dir, Graph::worlds)?;
            print(format.json, &answer, render::worlds_text)
        }
    }
}

/// `query` on the graph opened read-only; again, once, on a store error: a
/// read-only open sees the files of the moment it opened, and a writer's
/// compaction may remove one of them under it.
fn read<T>(
    dir: &GraphDir,
    query: impl Fn(&Graph) -> substrate_graph::Result<T>,
) -> substrate_graph::Result<T> {
    match query(&Graph::open(dir)?) {
        Err(substrate_graph::Error::Store { .. }) => query(&Graph::open(dir)?),
        other => other,
    }
}

fn ingest(traces: &Traces, dir: &GraphDir, args: IngestArgs) -> Result<ExitCode> {
    let worlds = if args.worlds.is_empty() {
        traces.worlds()?
    } else {
        args.worlds
    };
    let writer = Graph::open_writer(dir, store::LOCK_WAIT)?;
    let opts = IngestOptions {
        batch_lines: args.batch_lines,
    };
    let mut reports = Vec::new();
    let mut failed = false;
    let mut found = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for world in worlds.iter().filter(|w| seen.insert(*w)) {
        match traces.trace(world) {
            Ok(trace) => found.push((world.as_str(), trace)),
            Err(e) => {
                failed = true;
                eprintln!("world {world}: not ingested: {e}");
            }
        }
    }
    let found: Vec<(&str, &Path)> = found.iter().map(|(w, t)| (*w, t.as_path())).collect();
    for (result, (world, _)) in writer.ingest_many(&found, &opts)?.into_iter().zip(&found) {
        match result {
            Ok(report) => {
                if !args.format.json {
                    println!("{}", report_line(&report));
                }
                reports.push(report);
            }
            Err(e) => {
                failed = true;
                eprintln!("world {world}: not ingested: {e}");
            }
        }
    }
    if args.format.json {
        print_json(&serde_json::json!({ "reports": reports }))?;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn rebuild(traces: &Traces, dir: &GraphDir, args: RebuildArgs) -> Result<ExitCode> {
    let writer = Graph::open_writer(dir, store::LOCK_WAIT)?.emptied()?;
    let opts = IngestOptions {
        batch_lines: args.batch_lines,
    };
    let mut reports = Vec::new();
    let mut failed = false;
    let mut found = Vec::new();
    for world in traces.worlds()? {
        let trace = traces.trace(&world)?;
        found.push((world, trace));
    }
    let found: Vec<(&str, &Path)> = found
        .iter()
        .map(|(w, t)| (w.as_str(), t.as_path()))
        .collect();
    for (result, (world, _)) in writer.ingest_many(&found, &opts)?.into_iter().zip(&found) {
        match result {
            Ok(report) => reports.push(report),
            Err(e) => {
                failed = true;
                eprintln!("world {world}: not ingested: {e}");
            }
        }
    }
    writer.flush()?;
    if args.format.json {
        print_json(&serde_json::json!({ "reports": reports }))?;
    } else {
        let spans: u64 = reports.iter().map(|r| r.spans).sum();
        let skipped: u64 = reports.iter().map(|r| r.skipped).sum();
        println!(
            "rebuilt from {} worlds' traces: {spans} spans, {skipped} lines skipped",
            reports.len()
        );
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn report_line(r: &substrate_graph::IngestReport) -> String {
    let mut line = format!(
        "world {}: {} spans from {} lines ({} skipped) in {:.0} ms",
        r.world, r.spans, r.lines, r.skipped, r.elapsed_ms
    );
    for s in &r.skipped_lines {
        line.push_str(&format!("\n  line {} skipped: {}", s.line, s.reason));
    }
    if let Some(n) = r.unfinished {
        line.push_str(&format!(
            "\n  an unfinished last line ({n} bytes) left for later"
        ));
    }
    if r.restarted {
        line.push_str(
            "\n  the trace was shorter than what was read before: read again from its start",
        );
    }
    line
}

fn print_json<T: Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).context("writing JSON")?;
    writeln!(out)?;
    Ok(())
}

fn print<T: Serialize>(json: bool, value: &T, text: fn(&T) -> String) -> Result<ExitCode> {
    if json {
        print_json(value)?;
    } else {
        print!("{}", text(value));
    }
    Ok(ExitCode::SUCCESS)
}

fn picture<T: Serialize>(
    format: &PictureArgs,
    value: &T,
    text: fn(&T) -> String,
    dot: fn(&T) -> String,
) -> Result<ExitCode> {
    if format.json {
        print_json(value)?;
    } else if format.dot {
        print!("{}", dot(value));
    } else if format.svg {
        print!("{}", render::svg(&dot(value))?);
    } else {
        print!("{}", text(value));
    }
    Ok(ExitCode::SUCCESS)
}
