//! `substrate-cli diff`: what a world added, changed and deleted.

use anyhow::Result;
use clap::Args;
use substrate_fsdiff::diff_upper;
use substrate_runtime::Runtime;

use super::record;

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The world: its id (`--name`, or the w-… id `run` made), as `ps` lists it.
    world: String,
    /// The whole diff (entries and summary) as JSON.
    #[arg(long)]
    json: bool,
}

pub fn diff(args: DiffArgs, runtime: &Runtime) -> Result<()> {
    let record = record(runtime, &args.world)?;
    // A world that has not finished has no diff.json yet: read its upper
    // layer as it is now.
    let diff = match (&record.diff, &record.upper) {
        (Some(_), _) => runtime.store().diff(&record.id)?,
        (None, Some(upper)) => diff_upper(&upper.path, &record.lower, &record.diff_options())?,
        (None, None) => anyhow::bail!(
            "world {} has no diff: its rootfs was written in place (run it with an overlay: \
             SUBSTRATE_ROOTFS=overlay for substrate-runtime, or substrate-cli run)",
            record.id
        ),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&diff)?);
        return Ok(());
    }
    for line in diff.docker_lines() {
        println!("{line}");
    }
    if diff.summary.truncated {
        eprintln!(
            "(first {} of {} entries; totals A {} C {} D {}; --json for the summary)",
            diff.summary.entries_kept,
            diff.summary.added + diff.summary.changed + diff.summary.deleted,
            diff.summary.added,
            diff.summary.changed,
            diff.summary.deleted
        );
    }
    Ok(())
}
