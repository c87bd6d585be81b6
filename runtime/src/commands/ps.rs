use std::process::Command;

use anyhow::{bail, Context, Result};
use liboci_cli::Ps;
use substrate_runtime::Runtime;

/// `--format json` prints the pids; `table` runs `ps` with the given options
/// and keeps the header and the world's rows, as runc does.
pub fn ps(args: Ps, runtime: &Runtime) -> Result<()> {
    let pids = runtime.world(&args.container_id)?.pids()?;
    match args.format.as_str() {
        "json" => println!("{}", serde_json::to_string(&pids)?),
        "table" => {
            let ps_args = if args.ps_options.is_empty() {
                vec!["-ef".to_owned()]
            } else {
                args.ps_options
            };
            let output = Command::new("ps")
                .args(&ps_args)
                .output()
                .context("cannot run ps")?;
            if !output.status.success() {
                bail!(
                    "ps {}: {}",
                    ps_args.join(" "),
                    String::from_utf8_lossy(&output.stderr).trim()
                );
            }
            let text = String::from_utf8_lossy(&output.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            let pid_column = header
                .split_whitespace()
                .position(|h| h == "PID")
                .context("ps output has no PID column")?;
            println!("{header}");
            for line in lines {
                let pid = line
                    .split_whitespace()
                    .nth(pid_column)
                    .and_then(|p| p.parse::<i32>().ok());
                if pid.is_some_and(|p| pids.contains(&p)) {
                    println!("{line}");
                }
            }
        }
        other => bail!("invalid --format {other:?}: expected table or json"),
    }
    Ok(())
}
