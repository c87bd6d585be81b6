//! Decision time of the compiled policy (issue 15's goal: at most 1 µs per
//! decision at 100 rules).
//!
//! `cargo bench -p substrate-policy --bench decide`; the medians are in
//! `target/criterion/*/new/estimates.json`.
//!
//! - `decide_exec/{10,100,1000}/{no_match,last_rule}`: a commands section
//!   of that many rules, mixing every matcher kind (exe, name, argv,
//!   sha256, command_line glob, regex), for an exec no rule matches and one
//!   only the last rule matches;
//! - `decide_open/100/{no_match,last_glob}`: 100 `deny_read` globs of
//!   several shapes, for a read no glob matches and one only the last
//!   matches.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use substrate_policy::{Action, CompiledPolicy, ExecQuery, OpenQuery, Policy};

/// `count` rules, the matcher kinds in turn.
fn commands_policy(count: usize) -> CompiledPolicy {
    let mut yaml = String::from("version: 1\ncommands:\n  default: allow\n  rules:\n");
    for i in 0..count {
        let matcher = match i % 6 {
            0 => format!("{{ exe: /opt/bin/tool{i} }}"),
            1 => format!("{{ name: tool{i} }}"),
            2 => format!("{{ argv: [tool{i}, sub] }}"),
            3 => format!("{{ command_line: \"tool{i} --flag *\" }}"),
            4 => format!("{{ regex: \"^tool{i} .*--x\" }}"),
            _ => format!("{{ sha256: \"{:064x}\" }}", i),
        };
        yaml.push_str(&format!(
            "    - match: {matcher}\n      action: deny\n      reason: rule {i}\n"
        ));
    }
    Policy::parse(&yaml).unwrap().compile().unwrap()
}

fn decide_exec(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide_exec");
    for count in [10, 100, 1000] {
        // Every count here leaves a command_line glob last.
        assert_eq!((count - 1) % 6, 3);
        let policy = commands_policy(count);
        let last = format!("tool{}", count - 1);
        let cases: [(&str, &str, Vec<&str>); 2] = [
            ("no_match", "/usr/bin/ls", vec!["ls", "-la", "/work/src"]),
            (
                "last_rule",
                "/usr/bin/other",
                vec![last.as_str(), "--flag", "x"],
            ),
        ];
        for (name, exe, argv) in &cases {
            let query = ExecQuery {
                exe: Path::new(exe),
                argv: argv.as_slice(),
                sha256: Some([7; 32]),
                written_by_world: false,
            };
            let expected = if *name == "no_match" {
                Action::Allow
            } else {
                Action::Deny
            };
            assert_eq!(policy.decide_exec(&query).action, expected, "{name}");
            group.bench_with_input(
                BenchmarkId::new(count.to_string(), name),
                &query,
                |b, query| b.iter(|| policy.decide_exec(black_box(query))),
            );
        }
    }
    group.finish();
}

fn decide_open(c: &mut Criterion) {
    let mut yaml = String::from("version: 1\nfilesystem:\n  deny_read:\n");
    for i in 0..100 {
        let glob = match i % 4 {
            0 => format!("/data/d{i}/**"),
            1 => format!("**/*.secret{i}"),
            2 => format!("**/keys{i}/id_*"),
            _ => format!("/etc/file{i}"),
        };
        yaml.push_str(&format!("    - \"{glob}\"\n"));
    }
    let policy = Policy::parse(&yaml).unwrap().compile().unwrap();
    let mut group = c.benchmark_group("decide_open");
    for (name, path, expected) in [
        ("no_match", "/work/src/main.rs", Action::Allow),
        ("last_glob", "/etc/file99", Action::Deny),
    ] {
        let query = OpenQuery {
            path: Path::new(path),
            write: false,
        };
        assert_eq!(policy.decide_open(&query).action, expected, "{name}");
        group.bench_with_input(BenchmarkId::new("100", name), &query, |b, query| {
            b.iter(|| policy.decide_open(black_box(query)))
        });
    }
    group.finish();
}

criterion_group!(benches, decide_exec, decide_open);
criterion_main!(benches);
