//! `substrate-cli approve WORLD`: answer a running world's `ask`s from
//! another terminal (or a script, with `--verdict`).

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use substrate_runtime::monitor::approval::Verdict;
use substrate_runtime::{Runtime, WorldId};

use super::record;
use crate::approver::{self, Answering};

#[derive(Args, Debug)]
pub struct ApproveArgs {
    /// The world: its id (`--name`, or the w-… id `run` made), as `ps`
    /// lists it.
    world: String,
    /// Answer the next question with this, then exit (without it: ask on
    /// this terminal, question after question, until the world ends).
    #[arg(long, value_enum)]
    verdict: Option<VerdictArg>,
    /// How long to wait for the world's approval socket.
    #[arg(long, default_value = "10", value_name = "SECONDS")]
    wait: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum VerdictArg {
    /// Allow this exec.
    Once,
    /// Allow this file for the rest of the world's life.
    World,
    /// Refuse this exec.
    Deny,
}

pub fn approve(args: ApproveArgs, runtime: &Runtime) -> Result<u8> {
    // A world about to start (`run` starts its approver first) has no
    // record yet: its id names its state dir all the same.
    let id = match record(runtime, &args.world) {
        Ok(record) => record.id,
        Err(e) => WorldId::new(&args.world).map_err(|_| e)?,
    };
    let world_dir = runtime.store().world_dir(&id);
    let answering = match args.verdict {
        Some(verdict) => Answering::Always {
            verdict: match verdict {
                VerdictArg::Once => Verdict::Once,
                VerdictArg::World => Verdict::World,
                VerdictArg::Deny => Verdict::Deny,
            },
            once: true,
        },
        None => {
            if !std::io::stdin().is_terminal() {
                bail!("no terminal to ask on: give --verdict once|world|deny");
            }
            Answering::Prompt(
                std::fs::File::options()
                    .read(true)
                    .write(true)
                    .open("/dev/tty")?,
            )
        }
    };
    let stream = approver::connect(&world_dir, Duration::from_secs(args.wait))?;
    let by = format!("substrate-cli approve ({})", tty_name());
    let answered = approver::serve(stream, answering, &by)?;
    if answered == 0 && args.verdict.is_some() {
        bail!("world {id} ended before it asked anything");
    }
    Ok(0)
}

/// The terminal this process answers from, for the spans.
pub fn tty_name() -> String {
    std::fs::read_link("/proc/self/fd/0")
        .ok()
        .filter(|p| p.starts_with("/dev/pts") || p.starts_with("/dev/tty"))
        .map_or_else(|| "no tty".to_owned(), |p| p.display().to_string())
}
