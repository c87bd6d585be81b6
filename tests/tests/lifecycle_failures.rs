//! A failure at each step of a world's life — create, monitor, start, wait —
//! leaves nothing behind, on each of the three paths that run worlds:
//! `substrate-cli run`, `substrate-runtime` (`run`, `create`, `run
//! --detach`) and the shim under containerd. The failures are injected with
//! fail points (`FAILPOINTS`), at the
//! library's one sequence that all three paths share. Fail points exist in
//! debug builds only, which is what `cargo test` builds and runs.

use std::process::Output;

use substrate_tests::containerd::{Containerd, IMAGE, RUNTIME};
use substrate_tests::{assert_no_leftovers, processes_mentioning, unique_id, Bundle, Runtime};

/// The steps, by fail point, and whether the world's process had started
/// when it failed (then its record stays: something ran).
const STEPS: [(&str, bool); 4] = [
    ("world.create", false),
    ("run.monitor", false),
    ("world.start", false),
    ("run.wait", true),
];

fn fail_at(point: &str) -> String {
    format!("{point}=return")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A command that would run for minutes, recognisable by `marker` on the
/// host: a world that was not cleaned up leaves it running.
fn long_running(marker: &str) -> [String; 3] {
    [
        "sh".into(),
        "-c".into(),
        format!("sleep 300; echo {marker}"),
    ]
}

fn assert_no_world_processes(marker: &str) {
    substrate_tests::wait_until(&format!("no process of {marker}"), || {
        processes_mentioning(marker).is_empty()
    });
}

/// What is left of the world's record: gone when nothing ran, kept (with
/// its fs diff, and no exit, since none was seen) when its process did.
fn assert_record(rt: &Runtime, id: &str, started: bool) {
    if !started {
        assert!(
            !rt.world_dir(id).exists(),
            "a world whose process never ran keeps no record: {}",
            rt.world_dir(id).display()
        );
        return;
    }
    let record = rt.record(id);
    assert!(
        record["diff"].is_object(),
        "a world that ran keeps its diff: {record}"
    );
}

#[test]
fn cli_run_cleans_up_after_a_failure_at_each_step() {
    let rt = Runtime::new();
    for (point, started) in STEPS {
        let id = unique_id("clifail");
        let [sh, c, script] = long_running(&id);
        let out = rt
            .cli(&["run", "--name", &id, "--", &sh, &c, &script])
            .env("FAILPOINTS", fail_at(point))
            .output()
            .expect("substrate-cli");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(125), "{point}: {err}");
        assert!(
            err.contains(&format!("injected failure at {point}")),
            "{point}: the error names the step: {err}"
        );
        assert!(
            !err.contains("cleaning up"),
            "{point}: cleanup failed: {err}"
        );
        assert_no_leftovers(rt.root(), &id);
        assert_no_world_processes(&id);
        assert_record(&rt, &id, started);
    }
}

#[test]
fn runtime_run_cleans_up_after_a_failure_at_each_step() {
    let rt = Runtime::overlay();
    for (point, started) in STEPS {
        let id = unique_id("rtfail");
        let bundle = Bundle::new(&id, &long_running(&id).each_ref().map(String::as_str));
        let out = rt
            .cmd(&["run", "--bundle", bundle.path_str(), &id])
            .env("FAILPOINTS", fail_at(point))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("substrate-runtime");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{point}: {err}");
        assert!(
            err.contains(&format!("injected failure at {point}")),
            "{point}: {err}"
        );
        assert!(
            !err.contains("cleaning up"),
            "{point}: cleanup failed: {err}"
        );
        assert_no_leftovers(rt.root(), &id);
        assert_no_world_processes(&id);
        assert_record(&rt, &id, started);
    }
}

/// `create` hands the world to a detached monitor process: when the step
/// after it fails, that process goes too (`leftovers` looks for it).
#[test]
fn runtime_create_and_detached_run_clean_up_their_monitor() {
    let rt = Runtime::overlay();
    for (args, point) in [
        (&["create"][..], "world.create"),
        (&["create"][..], "run.monitor"),
        (&["run", "--detach"][..], "world.start"),
    ] {
        let id = unique_id("rtdetached");
        let bundle = Bundle::new(&id, &long_running(&id).each_ref().map(String::as_str));
        let mut argv = args.to_vec();
        argv.extend(["--bundle", bundle.path_str(), &id]);
        let out = rt
            .cmd(&argv)
            .env("FAILPOINTS", fail_at(point))
            .stdin(std::process::Stdio::null())
            .output()
            .expect("substrate-runtime");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?} {point}: {err}");
        assert!(
            err.contains(&format!("injected failure at {point}")),
            "{args:?} {point}: {err}"
        );
        assert_no_leftovers(rt.root(), &id);
        assert_no_world_processes(&id);
        assert_record(&rt, &id, false);
    }
}

/// Under containerd the steps are RPCs: Create (the world made in the
/// shim's helper, then its monitor attached in the shim) and Start. `ctr run
/// --rm` fails, and neither the shim nor containerd's cleanup leaves a
/// mount, state dir, cgroup, world process, record or shim behind. (Waiting
/// is the shim's reaper, not a step that can fail.)
#[test]
fn shim_cleans_up_after_a_failure_at_each_step() {
    for point in ["world.create", "run.monitor", "world.start"] {
        let ctd = Containerd::start_failing(&fail_at(point));
        let id = unique_id("shimfail");
        let [sh, c, script] = long_running(&id);
        let out = ctd.ctr(&[
            "run",
            "--rm",
            "--runtime",
            RUNTIME,
            IMAGE,
            &id,
            &sh,
            &c,
            &script,
        ]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{point}: ctr run should fail");
        assert!(
            err.contains(&format!("injected failure at {point}")),
            "{point}: ctr reports the step: {err}\n{}",
            ctd.log_tail()
        );
        ctd.assert_clean(&id);
        assert_no_world_processes(&id);
        assert!(
            !ctd.world(&id).exists(),
            "{point}: a world whose process never ran keeps no record"
        );
        // containerd deletes a task whose start failed; the shim has no
        // container left and exits.
        let _ = ctd.ctr(&["containers", "rm", &id]);
        substrate_tests::wait_until(&format!("{point}: the shim to exit"), || {
            ctd.shim_pids().is_empty()
        });
    }
}
