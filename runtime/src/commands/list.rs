use std::io::Write;

use anyhow::{bail, Result};
use liboci_cli::List;
use substrate_runtime::Runtime;

pub fn list(args: List, runtime: &Runtime) -> Result<()> {
    let states: Vec<_> = runtime.worlds()?.iter().map(|w| w.state()).collect();
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for state in &states {
            writeln!(out, "{}", state.id)?;
        }
        return Ok(());
    }
    match args.format.as_str() {
        "json" => writeln!(out, "{}", serde_json::to_string(&states)?)?,
        "table" => {
            writeln!(
                out,
                "{:<20} {:<8} {:<10} {:<40} {:<32} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            )?;
            for s in &states {
                let created = s.created.map(|c| c.to_rfc3339()).unwrap_or_default();
                writeln!(
                    out,
                    "{:<20} {:<8} {:<10} {:<40} {:<32} {}",
                    s.id,
                    s.pid,
                    s.status.to_string(),
                    s.bundle.display(),
                    created,
                    s.owner
                )?;
            }
        }
        other => bail!("invalid --format {other:?}: expected table or json"),
    }
    Ok(())
}
