//! The line `run` prints on stderr when the world has ended.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use serde_json::json;
use substrate_runtime::{ExitStatus, WorldRecord};

use crate::commands::exit_text;

/// One human line (coloured on a terminal, plain when piped), or with
/// `json` one JSON object, for machines.
/// `spans` counts the trace's spans by kind (`None`: the world was not
/// traced).
pub fn print(
    record: &WorldRecord,
    exit: ExitStatus,
    elapsed: Duration,
    spans: Option<&BTreeMap<String, u64>>,
    json: bool,
) {
    let diff = record.diff.as_ref();
    let (added, changed, deleted) = diff.map_or((0, 0, 0), |d| (d.added, d.changed, d.deleted));
    if json {
        let line = json!({
            "world": record.id,
            "exit": exit,
            "status": exit.shell_status(),
            "duration_ms": elapsed.as_millis() as u64,
            "diff": diff,
            "limits_hit": record.limits_hit,
            "spans": spans,
            "record": record.id,
        });
        eprintln!("{line}");
        return;
    }
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let paint = |code: &str, text: String| {
        if colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text
        }
    };
    let status = match exit {
        ExitStatus::Code(0) => paint("32", exit_text(exit)),
        _ => paint("31", exit_text(exit)),
    };
    let files = format!(
        "{} added, {} changed, {} deleted",
        paint("32", added.to_string()),
        paint("33", changed.to_string()),
        paint("31", deleted.to_string()),
    );
    let traced = match spans {
        None => "untraced".to_owned(),
        Some(spans) => {
            // Programs first: what most people look for.
            let order = ["exec", "file", "net", "dns"];
            let mut parts: Vec<String> = order
                .iter()
                .filter_map(|k| spans.get(*k).map(|n| format!("{n} {k}")))
                .collect();
            parts.extend(
                spans
                    .iter()
                    .filter(|(k, _)| !order.contains(&k.as_str()) && *k != "world")
                    .map(|(k, n)| format!("{n} {k}")),
            );
            format!("traced: {}", parts.join(", "))
        }
    };
    let limits = if record.limits_hit.is_empty() {
        String::new()
    } else {
        let hits: Vec<String> = record
            .limits_hit
            .iter()
            .map(|hit| match hit.limit {
                substrate_runtime::Limit::Pids => format!("pids ({} forks refused)", hit.count),
                substrate_runtime::Limit::Memory => format!("memory ({} OOM kills)", hit.count),
                substrate_runtime::Limit::Cpu => format!("cpu ({} periods throttled)", hit.count),
                substrate_runtime::Limit::Disk => "disk (full)".to_owned(),
                substrate_runtime::Limit::WallTime => "wall_time (stopped)".to_owned(),
                substrate_runtime::Limit::CpuSeconds => "budget.cpu_seconds (stopped)".to_owned(),
            })
            .collect();
        format!("; limits hit: {}", paint("33", hits.join(", ")))
    };
    eprintln!(
        "world {}: {status} in {:.2}s; files: {files}{limits}; {traced} (substrate-cli diff|trace {})",
        paint("1", record.id.to_string()),
        elapsed.as_secs_f64(),
        record.id
    );
}
