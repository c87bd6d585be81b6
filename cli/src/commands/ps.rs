//! `substrate-cli ps`: worlds, running and finished.

use anyhow::Result;
use clap::Args;
use serde_json::json;
use substrate_runtime::Runtime;

use super::world_status;

#[derive(Args, Debug)]
pub struct PsArgs {
    /// One JSON object per world.
    #[arg(long)]
    json: bool,
}

pub fn ps(args: PsArgs, runtime: &Runtime) -> Result<()> {
    let records = runtime.store().records()?;
    if args.json {
        for record in &records {
            let line = json!({
                "world": record.id,
                "status": world_status(runtime, record),
                "created_at": record.created_at,
                "ended_at": record.ended_at,
                "exit": record.exit,
                "diff": record.diff,
                "command": record.command,
            });
            println!("{line}");
        }
        return Ok(());
    }
    println!(
        "{:<20} {:<14} {:<20} {:>9} {:>15}  COMMAND",
        "WORLD", "STATUS", "CREATED", "DURATION", "FILES A/C/D"
    );
    for record in &records {
        let duration = match (record.started_at, record.ended_at) {
            (Some(start), Some(end)) => start
                .until(end)
                .map_or_else(|| "-".into(), |d| format!("{:.2}s", d.as_secs_f64())),
            _ => "-".into(),
        };
        let files = record
            .diff
            .as_ref()
            .map(|d| format!("{}/{}/{}", d.added, d.changed, d.deleted))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<20} {:<14} {:<20} {:>9} {:>15}  {}",
            record.id,
            world_status(runtime, record),
            record.created_at.to_datetime().format("%Y-%m-%d %H:%M:%S"),
            duration,
            files,
            shell_words(&record.command)
        );
    }
    Ok(())
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
