//! Tiny timing helper for bench/lifecycle.sh (compiled there with plain
//! `rustc -O`; it is not a workspace member).
//!
//!   timeit CMD ARGS... [';;' CMD ARGS...]...
//!
//! Runs the commands one after another, each with stdin and stdout on
//! /dev/null and stderr inherited, and stops at the first that fails (exit
//! status 1 after naming it on stderr). On success prints one line:
//! `TOTAL_NS STEP1_NS STEP2_NS ...`, measured with CLOCK_MONOTONIC around the
//! spawn and wait of each command, so every runtime pays the same overhead.

use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let steps: Vec<&[String]> = args.split(|a| a == ";;").filter(|s| !s.is_empty()).collect();
    if steps.is_empty() {
        eprintln!("usage: timeit CMD ARGS... [';;' CMD ARGS...]...");
        return ExitCode::from(2);
    }
    let mut times = Vec::with_capacity(steps.len());
    let start = Instant::now();
    for step in &steps {
        let t0 = Instant::now();
        let status = Command::new(&step[0])
            .args(&step[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        let elapsed = t0.elapsed().as_nanos();
        match status {
            Ok(s) if s.success() => times.push(elapsed),
            Ok(s) => {
                eprintln!("timeit: `{}` failed: {s}", step.join(" "));
                return ExitCode::FAILURE;
            }
            Err(e) => {
                eprintln!("timeit: cannot run {}: {e}", step[0]);
                return ExitCode::FAILURE;
            }
        }
    }
    let total = start.elapsed().as_nanos();
    let parts: Vec<String> = times.iter().map(|t| t.to_string()).collect();
    println!("{total} {}", parts.join(" "));
    ExitCode::SUCCESS
}
