//! `diff-rchar UPPER LOWER LIMIT...`: runs `diff_upper(UPPER, [LOWER])` once
//! per `hash_max_bytes` LIMIT and prints, a line each, the bytes each run
//! read as the kernel counts them (`rchar`, proc(5)). A process of its own,
//! because /proc/self/io counts a whole process: `tests/fsdiff.rs` runs
//! other tests' diffs at the same time.

use std::fs;
use std::path::{Path, PathBuf};

use substrate_fsdiff::{diff_upper, DiffOptions};

/// This process's `rchar`, and how many bytes reading it took (which the
/// next reading includes).
fn rchar() -> (u64, u64) {
    let io = fs::read_to_string("/proc/self/io").expect("/proc/self/io");
    let rchar = io
        .lines()
        .find_map(|l| l.strip_prefix("rchar: "))
        .expect("rchar in /proc/self/io")
        .parse()
        .expect("rchar is a number");
    (rchar, io.len() as u64)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [upper, lower, limits @ ..] = &args[..] else {
        eprintln!("usage: diff-rchar UPPER LOWER LIMIT...");
        std::process::exit(2);
    };
    for limit in limits {
        let options = DiffOptions {
            hash_max_bytes: limit.parse().expect("a limit in bytes"),
            ..Default::default()
        };
        let (before, reading) = rchar();
        diff_upper(Path::new(upper), &[PathBuf::from(lower)], &options).expect("diff_upper");
        let (after, _) = rchar();
        println!("{}", after - before - reading);
    }
}
