//! `substrate-cli export`: worlds' traces as OpenTelemetry traces, by the
//! `substrate-export` binary installed beside this one (the exporter is
//! built apart so that this CLI does not compile OpenTelemetry; see
//! `docs/export.md`). The worlds are looked up and settled here first (a
//! world whose monitor was lost gets its trace ended), so that a world this
//! CLI does not know is refused as every command refuses it.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use substrate_runtime::monitor::export;
use substrate_runtime::Runtime;

use super::{record, settle};

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(subcommand)]
    format: Format,
}

#[derive(Subcommand, Debug)]
enum Format {
    /// Send worlds' traces to an OTLP/HTTP collector (Jaeger, Tempo, the
    /// OpenTelemetry Collector): protobuf, POSTed to {endpoint}/v1/traces.
    #[command(
        after_help = "Example: substrate-cli export otlp --endpoint http://localhost:4318 build"
    )]
    Otlp {
        /// The collector's base URL [default: the node's `export.otlp.endpoint`
        /// in /etc/substrate/config.yaml].
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
        /// A header for every request, NAME=VALUE (repeatable).
        #[arg(long = "header", value_name = "NAME=VALUE")]
        headers: Vec<String>,
        /// The worlds [default: every world that has ended].
        worlds: Vec<String>,
    },
    /// Write worlds' traces as OTLP JSON lines (the OpenTelemetry file format).
    #[command(after_help = "Example: substrate-cli export otlp-json build.otlp.jsonl build")]
    OtlpJson {
        /// The file to write (replaced), `-` for standard output.
        file: PathBuf,
        /// The worlds [default: every world that has ended].
        worlds: Vec<String>,
    },
}

/// Runs the exporter; its exit status is the command's.
pub fn export(args: ExportArgs, runtime: &Runtime) -> Result<u8> {
    let exporter = export::binary()?;
    let mut command = Command::new(&exporter);
    let worlds = match args.format {
        Format::Otlp {
            endpoint,
            headers,
            worlds,
        } => {
            command.arg("otlp");
            if let Some(endpoint) = endpoint {
                command.arg("--endpoint").arg(endpoint);
            }
            for header in headers {
                command.arg("--header").arg(header);
            }
            worlds
        }
        Format::OtlpJson { file, worlds } => {
            command.arg("otlp-json").arg(file);
            worlds
        }
    };
    if worlds.is_empty() {
        // Every world: those whose monitor was lost are ended first.
        for found in runtime.store().records()? {
            settle(runtime, found)?;
        }
    } else {
        for world in &worlds {
            record(runtime, world)?;
        }
    }
    command
        .arg("--state-dir")
        .arg(runtime.store().state_dir())
        .arg("--")
        .args(&worlds);
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", exporter.display()))?;
    // Its own failures it has said.
    Ok(match status.code() {
        Some(0) => 0,
        _ => 1,
    })
}
