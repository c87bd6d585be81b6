//! `substrate-export`: worlds' traces to an OTLP collector, or to an OTLP
//! JSON file. Run by `substrate-cli export` and, as a world ends, by its
//! monitor when the node's `config.yaml` names a collector.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use substrate_export::{json, mapping, world, Collector, WorldTrace};
use substrate_runtime::settings::{HeaderName, HeaderValue, NodeSettings, SETTINGS_FILE};
use substrate_runtime::{NodeConfig, WorldStore};

#[derive(Parser, Debug)]
#[command(
    name = "substrate-export",
    version,
    about = "Export worlds' traces as OpenTelemetry traces (OTLP): one trace per world"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send worlds' traces to an OTLP/HTTP collector (protobuf, POST {endpoint}/v1/traces).
    Otlp(OtlpArgs),
    /// Write worlds' traces as OTLP JSON lines (the OpenTelemetry file format).
    OtlpJson(JsonArgs),
}

#[derive(Args, Debug)]
struct Worlds {
    /// Where world records are kept [default: $SUBSTRATE_STATE_DIR, else /var/lib/substrate].
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// The worlds to export [default: every world that has ended].
    worlds: Vec<String>,
}

#[derive(Args, Debug)]
struct OtlpArgs {
    /// The collector's base URL, e.g. http://localhost:4318 [default: the node's
    /// `export.otlp.endpoint`, in config.yaml of the config dir].
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// A header for every request, NAME=VALUE (repeatable). The node's own
    /// headers are only sent to the node's endpoint.
    #[arg(long = "header", value_name = "NAME=VALUE")]
    headers: Vec<String>,
    /// The node's config dir [default: $SUBSTRATE_CONFIG_DIR, else /etc/substrate].
    #[arg(long)]
    config_dir: Option<PathBuf>,
    #[command(flatten)]
    worlds: Worlds,
}

#[derive(Args, Debug)]
struct JsonArgs {
    /// The file to write (replaced), `-` for standard output.
    file: PathBuf,
    #[command(flatten)]
    worlds: Worlds,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Otlp(args) => otlp(args),
        Command::OtlpJson(args) => otlp_json(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "substrate-export: {}",
                substrate_runtime::one_line(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

/// The store, and every world named (each checked before anything is
/// sent) or every world that has ended.
fn worlds(worlds: &Worlds) -> Result<(WorldStore, Vec<String>)> {
    let store = worlds
        .state_dir
        .clone()
        .map(WorldStore::new)
        .unwrap_or_else(WorldStore::from_env);
    let ids: Vec<String> = if worlds.worlds.is_empty() {
        world::finished_worlds(&store)?
            .into_iter()
            .map(String::from)
            .collect()
    } else {
        for id in &worlds.worlds {
            WorldTrace::check(&store, id)?;
        }
        worlds.worlds.clone()
    };
    Ok((store, ids))
}

/// One world's spans, read when they are sent (not all worlds' at once).
fn load(store: &WorldStore, id: &str) -> Result<WorldTrace> {
    let world = WorldTrace::load(store, id)?;
    if world.skipped > 0 {
        eprintln!(
            "substrate-export: world {id}: {} line(s) of its trace are not spans: skipped",
            world.skipped
        );
    }
    Ok(world)
}

fn otlp(args: OtlpArgs) -> Result<()> {
    let (endpoint, mut headers) = match args.endpoint {
        Some(endpoint) => (endpoint, Vec::new()),
        None => {
            let node = args
                .config_dir
                .map(NodeConfig::new)
                .unwrap_or_else(NodeConfig::from_env);
            let settings = NodeSettings::load(&node)?;
            let Some(otlp) = settings.otlp() else {
                bail!(
                    "no collector: pass --endpoint URL, or name one in {} \
                     (export: {{otlp: {{endpoint: URL}}}})",
                    node.dir().join(SETTINGS_FILE).display()
                );
            };
            let headers = otlp
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.as_str().to_owned()))
                .collect();
            (otlp.endpoint.to_string(), headers)
        }
    };
    for header in &args.headers {
        let (name, value) = parse_header(header)?;
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        headers.push((name, value));
    }
    let collector = Collector::new(&endpoint, headers)?;
    let (store, ids) = worlds(&args.worlds)?;
    let host = host_name();
    for id in &ids {
        let world = load(&store, id)?;
        let mut sent = 0;
        for request in mapping::requests(&world, &host) {
            let accepted = collector
                .send(&request)
                .with_context(|| format!("world {id}"))?;
            if accepted.rejected_spans > 0 || !accepted.message.is_empty() {
                eprintln!(
                    "substrate-export: world {id}: the collector dropped {} span(s): {}",
                    accepted.rejected_spans, accepted.message
                );
            }
            sent += request.resource_spans[0].scope_spans[0].spans.len();
        }
        println!(
            "world {id}: {sent} spans sent to {} (trace {})",
            collector.url(),
            hex(&mapping::trace_id(&world.record))
        );
    }
    Ok(())
}

fn otlp_json(args: JsonArgs) -> Result<()> {
    let (store, ids) = worlds(&args.worlds)?;
    let host = host_name();
    let to_stdout = args.file.as_os_str() == "-";
    let mut out: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(
            File::create(&args.file)
                .with_context(|| format!("cannot create {}", args.file.display()))?,
        )
    };
    let mut out = BufWriter::new(&mut out);
    let mut report = Vec::new();
    for id in &ids {
        let world = load(&store, id)?;
        let mut written = 0;
        for request in mapping::requests(&world, &host) {
            writeln!(out, "{}", json::to_line(&request))
                .with_context(|| format!("cannot write {}", args.file.display()))?;
            written += request.resource_spans[0].scope_spans[0].spans.len();
        }
        report.push(format!(
            "world {}: {written} spans written to {} (trace {})",
            world.record.id,
            args.file.display(),
            hex(&mapping::trace_id(&world.record))
        ));
    }
    out.flush()
        .with_context(|| format!("cannot write {}", args.file.display()))?;
    drop(out);
    for line in report {
        // Not into the spans when they go to standard output.
        if to_stdout {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    Ok(())
}

/// `NAME=VALUE`, both checked.
fn parse_header(text: &str) -> Result<(String, String)> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| anyhow!("--header {text:?}: expected NAME=VALUE"))?;
    let name = HeaderName::parse(name.trim()).map_err(|e| anyhow!("--header {text:?}: {e}"))?;
    let value = HeaderValue::parse(value.trim()).map_err(|e| anyhow!("--header: {e}"))?;
    Ok((name.as_str().to_owned(), value.as_str().to_owned()))
}

/// This node's name (`host.name`).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
