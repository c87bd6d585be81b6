//! `substrate-cli gc`: remove the records of old, finished worlds.

use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;
use substrate_runtime::{Runtime, WorldRecord, WorldStatus};
use substrate_trace::Timestamp;

#[derive(Args, Debug)]
pub struct GcArgs {
    /// Remove worlds that ended longer ago than this (e.g. 90s, 30m, 12h, 7d).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    older_than: Option<Duration>,
    /// Keep this many of the most recently created finished worlds.
    #[arg(long, value_name = "N")]
    keep_last: Option<usize>,
    /// Print what would be removed, remove nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Removes every finished world both rules allow (a world still created,
/// running or paused is never a candidate); prints each removed id. Exits 1
/// if any could not be removed.
pub fn gc(args: GcArgs, runtime: &Runtime) -> Result<u8> {
    if args.older_than.is_none() && args.keep_last.is_none() {
        bail!("say what to remove: --older-than DURATION and/or --keep-last N");
    }
    let mut finished: Vec<WorldRecord> = runtime
        .store()
        .records()?
        .into_iter()
        .filter(|record| record.ended_at.is_some() && !is_live(runtime, record))
        .collect();
    // Newest first: `--keep-last` keeps the head.
    finished.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    let now = Timestamp::now();
    let mut failed = false;
    for record in finished.iter().skip(args.keep_last.unwrap_or(0)) {
        let ended = record.ended_at.expect("filtered on ended_at");
        let old_enough = args
            .older_than
            .is_none_or(|age| ended.until(now).is_some_and(|since| since >= age));
        if !old_enough {
            continue;
        }
        if args.dry_run {
            println!("{}", record.id);
            continue;
        }
        match super::rm::remove(runtime, record.id.as_str()) {
            Ok(()) => println!("{}", record.id),
            Err(e) => {
                eprintln!(
                    "substrate-cli: gc {}: {}",
                    record.id,
                    substrate_runtime::one_line(e.as_ref())
                );
                failed = true;
            }
        }
    }
    Ok(u8::from(failed))
}

/// Whether the world's container still exists and has not stopped.
fn is_live(runtime: &Runtime, record: &WorldRecord) -> bool {
    Runtime::new(&record.runtime_root)
        .with_store(runtime.store().clone())
        .world(record.id.as_str())
        .is_ok_and(|world| world.status() != WorldStatus::Stopped)
}
