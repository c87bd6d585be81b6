//! `substrate-cli ps`: worlds, running and finished.

use anyhow::Result;
use clap::Args;
use serde_json::json;
use substrate_runtime::Runtime;
use substrate_trace::redact::redact_command;

use super::{settle, world_status};

#[derive(Args, Debug)]
pub struct PsArgs {
    /// One JSON object per world (world, status, times, exit, diff, command).
    #[arg(long)]
    json: bool,
}

pub fn ps(args: PsArgs, runtime: &Runtime) -> Result<()> {
    let records = runtime
        .store()
        .records()?
        .into_iter()
        .map(|record| settle(runtime, record))
        .collect::<Result<Vec<_>>>()?;
    if args.json {
        for record in &records {
            let line = json!({
                "world": record.id,
                "status": world_status(runtime, record),
                "created_at": record.created_at,
                "ended_at": record.ended_at,
                "exit": record.exit,
                "diff": record.diff,
                "command": redact_command(&record.command),
            });
            println!("{line}");
        }
        return Ok(());
    }
    let header = Row {
        world: "WORLD".into(),
        status: "STATUS".into(),
        created: "CREATED".into(),
        duration: "DURATION".into(),
        files: "FILES A/C/D".into(),
        command: "COMMAND".into(),
    };
    let rows: Vec<Row> = records
        .iter()
        .map(|record| Row {
            world: record.id.to_string(),
            status: world_status(runtime, record),
            created: record
                .created_at
                .to_datetime()
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
            duration: match (record.started_at, record.ended_at) {
                (Some(start), Some(end)) => start
                    .until(end)
                    .map_or_else(|| "-".into(), |d| format!("{:.2}s", d.as_secs_f64())),
                _ => "-".into(),
            },
            files: record
                .diff
                .as_ref()
                .map(|d| format!("{}/{}/{}", d.added, d.changed, d.deleted))
                .unwrap_or_else(|| "-".into()),
            command: shell_words(&redact_command(&record.command)),
        })
        .collect();
    // Each column as wide as its widest cell: ids run to 64 characters
    // (a containerd or Kubernetes id), and a table must still line up.
    let width = |cell: fn(&Row) -> &str| {
        std::iter::once(&header)
            .chain(&rows)
            .map(|row| cell(row).chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths = [
        width(|r| &r.world),
        width(|r| &r.status),
        width(|r| &r.created),
        width(|r| &r.duration),
        width(|r| &r.files),
    ];
    for row in std::iter::once(&header).chain(&rows) {
        println!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:>w3$}  {:>w4$}  {}",
            row.world,
            row.status,
            row.created,
            row.duration,
            row.files,
            row.command,
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
            w4 = widths[4],
        );
    }
    Ok(())
}

/// One line of the table.
struct Row {
    world: String,
    status: String,
    created: String,
    duration: String,
    files: String,
    command: String,
}

/// The command as one line, quoting arguments with spaces.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty() || a.contains(char::is_whitespace) {
                format!("'{}'", a.replace('\'', "'\\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
