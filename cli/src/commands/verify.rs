//! `substrate-cli verify`: whether a world's trace and record are whole and
//! unaltered (`WorldStore::verify`), naming the first line that is not.
//! Exits 0 when they are (so far, for a world still running), 1 when not
//! or when there is nothing to check them by, 2 when they cannot be read.

use anyhow::Result;
use clap::Args;
use serde_json::json;
use substrate_runtime::{Runtime, TraceState, Verification};

use super::record;

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The world: its id (`--name`, or the w-… id `run` made), as `ps` lists it.
    world: String,
    /// The verdict as one JSON object.
    #[arg(long)]
    json: bool,
}

/// `verify`'s exit status when the trace or record is not whole.
const NOT_WHOLE: u8 = 1;

pub fn verify(args: VerifyArgs, runtime: &Runtime) -> Result<u8> {
    let record = record(runtime, &args.world)?;
    let verification = runtime.store().verify(&record.id)?;
    if args.json {
        println!("{}", as_json(&verification));
    } else {
        print!("{}", as_text(&verification));
    }
    Ok(if verification.is_whole() {
        0
    } else {
        NOT_WHOLE
    })
}

fn as_text(v: &Verification) -> String {
    let mut text = String::new();
    let (lines, last) = match &v.chain {
        Some(chain) => (chain.lines, chain.last.as_str()),
        None => (0, "-"),
    };
    match (&v.problem, &v.state) {
        (Some(problem), _) => {
            text.push_str(&format!(
                "world {}: NOT whole and unaltered: {problem}\n",
                v.id
            ));
        }
        (None, TraceState::Closed(_)) => text.push_str(&format!(
            "world {}: trace and record whole and unaltered ({lines} lines, last hash {last})\n",
            v.id
        )),
        (None, _) => text.push_str(&format!(
            "world {}: still being written: its {lines} lines so far are whole and unaltered \
             (last hash {last}); verify it again once it has ended\n",
            v.id
        )),
    }
    for line in v.chain.iter().flat_map(|c| &c.cut_by_crash) {
        text.push_str(&format!(
            "note: line {line} was cut short when its writer died; the writer that went on \
             chained over it as it was\n"
        ));
    }
    text
}

fn as_json(v: &Verification) -> serde_json::Value {
    json!({
        "world": v.id.as_str(),
        "whole": v.is_whole(),
        "state": match v.state {
            TraceState::Closed(_) => "closed",
            TraceState::BeingWritten => "being_written",
            TraceState::NoEnd => "no_end",
        },
        "lines": v.chain.as_ref().map(|c| c.lines),
        "last": v.chain.as_ref().map(|c| c.last.as_str()),
        "unfinished_bytes": v.chain.as_ref().and_then(|c| c.unfinished),
        "cut_by_crash": v.chain.as_ref().map(|c| c.cut_by_crash.clone()).unwrap_or_default(),
        "problem": v.problem.as_ref().map(|p| json!({
            "kind": p.kind(),
            "line": p.line(),
            "message": p.to_string(),
        })),
    })
}
