//! A CLI world's life from the outside: its init (PID 1 of every
//! `substrate-cli run` world unless `--no-init`) passes Ctrl-C and other
//! signals on to the command, reaps orphans and exits with the command's
//! status; `stop` and `kill` end a world, `run -d` leaves one running on its
//! own, and a foreground world does not outlive its `substrate-cli run`.

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use substrate_tests::{
    assert_no_leftovers, base_bundles, bin, processes_mentioning, unique_id, wait_until, Runtime,
};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `substrate-cli run --name id ARGS...`, to completion.
fn run(rt: &Runtime, id: &str, args: &[&str]) -> Output {
    let mut full = vec!["run", "--name", id];
    full.extend_from_slice(args);
    rt.cli(&full).output().expect("substrate-cli")
}

/// A foreground `substrate-cli run` left running: in a process group of
/// its own (as a shell's job is), its output in files (a world's init
/// would hold a pipe open).
fn spawn_run(rt: &Runtime, id: &str, args: &[&str], dir: &Path) -> Child {
    let mut full = vec!["run", "--name", id];
    full.extend_from_slice(args);
    rt.cli(&full)
        .stdout(fs::File::create(dir.join("stdout")).unwrap())
        .stderr(fs::File::create(dir.join("stderr")).unwrap())
        .process_group(0)
        .spawn()
        .expect("substrate-cli")
}

/// Live processes whose command line is exactly `command` (a `run` naming
/// it in its own arguments is not one).
fn running(command: &str) -> Vec<i32> {
    let argv: Vec<u8> = command
        .split(' ')
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    processes_mentioning(command)
        .into_iter()
        .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == argv))
        .collect()
}

/// Waits until the world runs and the init has started `command` (so the
/// init is set up to pass signals on).
fn wait_for_command(rt: &Runtime, id: &str, command: &str) {
    rt.wait_running(id);
    wait_until(&format!("{command} to run"), || {
        !running(command).is_empty()
    });
}

/// Waits at most `limit` for `child`; its status and how long it took.
fn wait_within(child: &mut Child, limit: Duration) -> (ExitStatus, Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// An RFC 3339 UTC time as the trace writes it
/// (`2026-11-29T04:25:34.179690676Z`).
fn unix_time(rfc3339: &str) -> SystemTime {
    let field = |range: std::ops::Range<usize>| -> i64 { rfc3339[range].parse().unwrap() };
    let (year, month, day) = (field(0..4), field(5..7), field(8..10));
    let seconds = field(11..13) * 3600 + field(14..16) * 60 + field(17..19);
    let fraction = rfc3339[19..].trim_start_matches('.').trim_end_matches('Z');
    let nanos: u64 = format!("{fraction:0<9}")[..9].parse().unwrap();
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard
    // Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    UNIX_EPOCH + Duration::new((days * 86_400 + seconds) as u64, nanos as u32)
}

fn exit_code(record: &Value) -> Value {
    record["exit"]["code"].clone()
}

// ---- the init ----------------------------------------------------------------

/// How soon a world Ctrl-C stops counts as stopped by it: well under
/// `run`'s grace before it kills (2 s), so that a world killed after the
/// grace fails; how fast it is, a loaded host aside, is `make bench`'s
/// business, not a test's.
const PROMPTLY: Duration = Duration::from_secs(1);

/// Ctrl-C in a terminal sends SIGINT to the foreground process group: the
/// `run` passes it on to the init, the init to the command, and `sleep`
/// (which has no handler, and is not PID 1) dies at once: 130, as a shell
/// reports a SIGINT. Without the init, PID 1 ignored it and was killed 2 s
/// later (137).
#[test]
fn ctrl_c_stops_a_plain_program_at_once_with_130() {
    let rt = Runtime::new();
    let id = unique_id("ctrlc");
    let out = tempfile::tempdir().unwrap();
    let mut cli = spawn_run(&rt, &id, &["--", "sleep", "3011"], out.path());
    wait_for_command(&rt, &id, "sleep 3011");

    let sent = SystemTime::now();
    kill(Pid::from_raw(-(cli.id() as i32)), Signal::SIGINT).unwrap();
    let (status, took) = wait_within(&mut cli, Duration::from_secs(5));
    let stderr = fs::read_to_string(out.path().join("stderr")).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    // When the command and the init ended, as the trace has it: the signal
    // path alone, apart from the world's teardown after it.
    let spans = rt.spans(&id);
    let ended = |pid: i64| {
        let span = spans
            .iter()
            .find(|s| s["kind"] == "exec" && s["world_pid"] == pid)
            .expect("an exec span");
        unix_time(span["end"].as_str().expect("an end"))
            .duration_since(sent)
            .unwrap_or_default()
    };
    let (command, init) = (ended(2), ended(1));
    assert!(
        took < PROMPTLY,
        "Ctrl-C took {took:?} to end the run (the command ended {command:?} after it, \
         the init {init:?}): {stderr}"
    );
    assert!(init < PROMPTLY, "{init:?}");
    assert_eq!(exit_code(&rt.record(&id)), 130);
    assert!(running("sleep 3011").is_empty());
    assert_no_leftovers(rt.root(), &id);
}

/// The same through a real terminal: `script` gives the run a pty, and the
/// ^C typed into it is the line discipline's SIGINT.
#[test]
fn ctrl_c_typed_in_a_terminal_stops_the_world() {
    let rt = Runtime::new();
    let id = unique_id("pty");
    let command = format!(
        "{} --root {} run --name {id} -- sleep 3012",
        bin("substrate-cli").display(),
        rt.root().display()
    );
    let mut script = Command::new("script")
        .args(["-q", "-e", "-f", "-c", &command, "/dev/null"])
        .env("SUBSTRATE_STATE_DIR", rt.state_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (bsdutils)");
    wait_for_command(&rt, &id, "sleep 3012");

    script.stdin.as_mut().unwrap().write_all(b"\x03").unwrap();
    let (status, took) = wait_within(&mut script, Duration::from_secs(5));
    assert_eq!(status.code(), Some(130));
    assert!(took < PROMPTLY, "^C took {took:?}");
    assert_eq!(exit_code(&rt.record(&id)), 130);
    assert_no_leftovers(rt.root(), &id);
}

/// The command's status is the world's, and `run`'s: a code as it is, a
/// signal N as 128+N (the init cannot die of the command's signal: it is
/// PID 1).
#[test]
fn exit_statuses_pass_through_the_init() {
    let rt = Runtime::new();
    for (script, code) in [
        ("exit 0", 0),
        ("exit 7", 7),
        ("kill -TERM $$", 143),
        ("kill -KILL $$", 137),
        ("exec false", 1),
    ] {
        let id = unique_id("status");
        let out = run(&rt, &id, &["--", "sh", "-c", script]);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{script}: {}",
            text(&out.stderr)
        );
        assert_eq!(exit_code(&rt.record(&id)), code, "{script}");
    }
}

/// Orphans are reparented to PID 1. The init reaps them; a PID 1 that
/// never waits (the command itself, with `--no-init`, once it has exec'd
/// `sleep`) leaves them zombies — which shows that the check sees them.
#[test]
fn orphans_are_reaped_by_the_init() {
    let rt = Runtime::new();
    let count_zombies = "sleep 0.8; n=0; for s in /proc/[0-9]*/stat; do \
         read -r l < \"$s\" || continue; case \"${l##*) }\" in Z*) n=$((n+1));; esac; \
         done; echo zombies=$n";
    let script =
        format!("(sleep 0.1 &); (sleep 0.1 &); (sleep 0.1 &); ({count_zombies}) & exec sleep 1.5");
    let with_init = run(&rt, &unique_id("reap"), &["--", "sh", "-c", &script]);
    assert!(with_init.status.success(), "{}", text(&with_init.stderr));
    assert_eq!(text(&with_init.stdout), "zombies=0\n");

    let without = run(
        &rt,
        &unique_id("noreap"),
        &["--no-init", "--", "sh", "-c", &script],
    );
    assert!(without.status.success(), "{}", text(&without.stderr));
    assert_eq!(text(&without.stdout), "zombies=3\n");
}

/// The init is PID 1 and the command its child; `--no-init` makes the
/// command PID 1.
#[test]
fn no_init_makes_the_command_pid_1() {
    let rt = Runtime::new();
    let out = run(
        &rt,
        &unique_id("pid"),
        &["--", "sh", "-c", "echo $$; tr '\\0' ' ' < /proc/1/cmdline"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("2"));
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("/.substrate-init --lifeline=3 -- sh -c "),
        "{stdout}"
    );

    let out = run(
        &rt,
        &unique_id("noinit"),
        &["--no-init", "--", "sh", "-c", "echo $$"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "1\n");
}

/// The init is what it is in the trace (the exec span of /.substrate-init,
/// the command's parent) and nowhere else: the record names the command,
/// the diff holds no mount point of it.
#[test]
fn the_init_is_named_in_the_trace_and_absent_from_record_and_diff() {
    let rt = Runtime::new();
    let id = unique_id("named");
    // Long enough for the monitor to read the init's argv from /proc
    // (a process gone before that has an exec span without argv).
    let script = "echo hi > /tmp/x; sleep 0.3";
    rt.cli_run_ok(&id, script);
    let record = rt.record(&id);
    assert_eq!(record["command"], serde_json::json!(["sh", "-c", script]));
    assert_eq!(record["diff"]["added"], 1, "{record}");
    let diff = rt.cli(&["diff", &id]).output().unwrap();
    assert_eq!(text(&diff.stdout), "A /tmp/x\n");

    let spans = rt.spans(&id);
    let world = spans.iter().find(|s| s["kind"] == "world").unwrap();
    let init = spans
        .iter()
        .find(|s| s["kind"] == "exec" && s["world_pid"] == 1)
        .expect("the init's exec span");
    assert_eq!(init["argv"][0], "/.substrate-init");
    assert_eq!(init["parent_span_id"], world["span_id"]);
    let command = spans
        .iter()
        .find(|s| s["kind"] == "exec" && s["world_pid"] == 2)
        .expect("the command's exec span");
    assert_eq!(command["argv"][0], "sh");
    assert_eq!(command["parent_span_id"], init["span_id"]);
}

/// The init needs nothing from the world: it runs in a busybox rootfs with
/// no libc, and in a user's bundle.
#[test]
fn the_init_runs_in_a_rootfs_without_libc_and_in_a_bundle() {
    let rt = Runtime::new();
    let bundles = base_bundles();
    let rootfs = bundles.rootfs();
    let busybox = bundles.busybox();
    for origin in [
        ["--rootfs", rootfs.to_str().unwrap()],
        ["--bundle", busybox.to_str().unwrap()],
    ] {
        let id = unique_id("nolibc");
        let out = run(
            &rt,
            &id,
            &[origin[0], origin[1], "--", "sh", "-c", "echo $$; exit 5"],
        );
        assert_eq!(
            out.status.code(),
            Some(5),
            "{origin:?}: {}",
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), "2\n", "{origin:?}");
        assert_no_leftovers(rt.root(), &id);
    }
}

/// A command the world cannot run is refused before the world exists (as
/// libcontainer refuses one without an init in front of it): 125, one line,
/// no record. It is looked up in the world's own rootfs: bash is on this
/// host, not in the busybox rootfs.
#[test]
fn a_command_not_in_the_world_is_refused_before_it_exists() {
    let rt = Runtime::new();
    let rootfs = base_bundles().rootfs();
    for (args, name) in [
        (vec!["--", "no-such-command-here"], "no-such-command-here"),
        (
            vec!["--rootfs", rootfs.to_str().unwrap(), "--", "bash"],
            "bash",
        ),
    ] {
        let id = unique_id("missing");
        let out = run(&rt, &id, &args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(125), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!("executable '{name}' not found in $PATH")),
            "{stderr}"
        );
        assert!(
            !rt.world_dir(&id).exists(),
            "a record of a world that never ran"
        );
        assert_no_leftovers(rt.root(), &id);
    }
}

// ---- stop, kill, run -d --------------------------------------------------------

/// `run -d` prints the id and returns; the world runs on, monitored by a
/// process of its own.
fn run_detached(rt: &Runtime, id: &str, command: &[&str]) {
    let mut args = vec!["run", "-d", "--name", id, "--"];
    args.extend_from_slice(command);
    let start = Instant::now();
    let out = rt.cli(&args).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), format!("{id}\n"));
    assert!(start.elapsed() < Duration::from_secs(5));
    rt.wait_running(id);
}

fn cli_ok(rt: &Runtime, args: &[&str]) -> String {
    let out = rt.cli(args).output().unwrap();
    assert!(
        out.status.success(),
        "substrate-cli {args:?}: {}",
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `stop`: SIGTERM, passed on to the command by the init; the world's
/// monitor records the exit (143), the diff and the last span; the
/// container, its cgroup, its monitor and its upper layer go.
#[test]
fn stop_ends_a_detached_world_and_leaves_nothing_behind() {
    let rt = Runtime::new();
    let id = unique_id("stop");
    run_detached(&rt, &id, &["sh", "-c", "echo hi > /tmp/x; exec sleep 3021"]);
    wait_until("the write", || !running("sleep 3021").is_empty());
    let ps = cli_ok(&rt, &["ps"]);
    assert!(
        ps.lines()
            .any(|l| l.starts_with(&id) && l.contains("running")),
        "{ps}"
    );

    let start = Instant::now();
    cli_ok(&rt, &["stop", &id]);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let record = rt.record(&id);
    assert_eq!(exit_code(&record), 143, "{record}");
    assert!(record["ended_at"].is_string(), "{record}");
    assert_eq!(record["diff"]["added"], 1, "{record}");
    assert_eq!(record["upper"]["kept"], false, "{record}");
    let spans = rt.spans(&id);
    let last = spans.last().unwrap();
    assert_eq!(last["kind"], "world", "the world span closes the trace");
    assert_eq!(last["result"]["code"], 143);
    assert!(running("sleep 3021").is_empty());
    assert_no_leftovers(rt.root(), &id);
    let ps = cli_ok(&rt, &["ps"]);
    assert!(
        ps.lines()
            .any(|l| l.starts_with(&id) && l.contains("exited 143")),
        "{ps}"
    );
    // Stopping it again is not an error; it is gone.
    cli_ok(&rt, &["stop", &id]);
}

/// A command that ignores SIGTERM is killed once the timeout has passed.
#[test]
fn stop_kills_after_the_timeout() {
    let rt = Runtime::new();
    let id = unique_id("stubborn");
    run_detached(&rt, &id, &["sh", "-c", "trap '' TERM; sleep 3022"]);
    wait_until("sleep 3022 to run", || !running("sleep 3022").is_empty());
    let start = Instant::now();
    cli_ok(&rt, &["stop", "--timeout", "1", &id]);
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(rt.record(&id)["exit"]["signal"], 9, "{}", rt.record(&id));
    assert!(running("sleep 3022").is_empty());
    assert_no_leftovers(rt.root(), &id);
}

/// `kill WORLD SIGNAL` reaches the command (through the init); `kill WORLD`
/// is SIGKILL. A world that is not running, or a bad signal, is an error
/// that says so.
#[test]
fn kill_signals_the_command() {
    let rt = Runtime::new();
    let id = unique_id("usr1");
    run_detached(
        &rt,
        &id,
        &[
            "sh",
            "-c",
            "trap 'echo got > /tmp/usr1; exit 3' USR1; while :; do sleep 0.051; done",
        ],
    );
    // The trap is set once the loop runs.
    wait_until("the loop to run", || !running("sleep 0.051").is_empty());
    let bad = rt.cli(&["kill", &id, "NOPE"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        text(&bad.stderr).contains("invalid signal \"NOPE\""),
        "{}",
        text(&bad.stderr)
    );

    cli_ok(&rt, &["kill", &id, "USR1"]);
    wait_until("the world to exit", || rt.record(&id)["exit"]["code"] == 3);
    let gone = rt.cli(&["kill", &id]).output().unwrap();
    assert_eq!(gone.status.code(), Some(1));
    assert!(
        text(&gone.stderr).contains("is not running"),
        "{}",
        text(&gone.stderr)
    );
    // stop finishes an exited detached world: container and upper go.
    cli_ok(&rt, &["stop", &id]);
    assert_eq!(rt.record(&id)["diff"]["added"], 1);
    assert_no_leftovers(rt.root(), &id);

    let id = unique_id("sigkill");
    run_detached(&rt, &id, &["sleep", "3023"]);
    cli_ok(&rt, &["kill", &id]);
    wait_until("the world to exit", || rt.record(&id)["exit"].is_object());
    assert_eq!(rt.record(&id)["exit"]["signal"], 9);
    cli_ok(&rt, &["stop", &id]);
    assert_no_leftovers(rt.root(), &id);
}

/// `stop` of a world running in the foreground elsewhere: its `run` gets
/// the command's status and finishes the world; `stop` returns once it
/// has.
#[test]
fn stop_ends_a_foreground_world_through_its_run() {
    let rt = Runtime::new();
    let id = unique_id("fgstop");
    let out = tempfile::tempdir().unwrap();
    let mut cli = spawn_run(&rt, &id, &["--", "sleep", "3024"], out.path());
    wait_for_command(&rt, &id, "sleep 3024");
    cli_ok(&rt, &["stop", &id]);
    let (status, _) = wait_within(&mut cli, Duration::from_secs(5));
    assert_eq!(status.code(), Some(143));
    assert_eq!(exit_code(&rt.record(&id)), 143);
    assert_no_leftovers(rt.root(), &id);
}

// ---- a foreground world and its run --------------------------------------------

/// `substrate-cli run` killed with SIGKILL (it cannot pass anything on):
/// the world's init sees its lifeline break and ends the world within a
/// second; the run's guardian removes what is left (container, cgroup,
/// upper layer) and the record ends, with its diff.
#[test]
fn a_foreground_world_ends_with_its_run_killed() {
    for (marker, extra) in [("sleep 3031", None), ("sleep 3032", Some("--no-init"))] {
        let rt = Runtime::new();
        let id = unique_id("orphan");
        let out = tempfile::tempdir().unwrap();
        let mut args: Vec<&str> = extra.into_iter().collect();
        args.extend(["--", "sh", "-c"]);
        let script = format!("echo hi > /tmp/x; exec {marker}");
        args.push(&script);
        let mut cli = spawn_run(&rt, &id, &args, out.path());
        wait_for_command(&rt, &id, marker);
        // And until `run` has noted the start (just after the init is let
        // go): a world killed before that counts as never started, and its
        // record goes with it.
        let meta = rt.root().join(&id).join("substrate.json");
        wait_until("the start to be noted", || {
            fs::read_to_string(&meta).is_ok_and(|m| m.contains("\"started_at\":\""))
        });

        cli.kill().unwrap();
        let killed = Instant::now();
        cli.wait().unwrap();
        while !running(marker).is_empty() {
            assert!(
                killed.elapsed() < Duration::from_secs(1),
                "{extra:?}: the world outlived its run by a second"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_no_leftovers(rt.root(), &id);
        wait_until("the guardian to end the record", || {
            rt.record(&id)["ended_at"].is_string()
        });
        let record = rt.record(&id);
        assert_eq!(record["diff"]["added"], 1, "{record}");
        assert_eq!(record["upper"]["kept"], false, "{record}");
        // The run's monitor died with it: its trace does not stop in
        // silence.
        assert_trace_ends_with_lost_monitor(&rt, &id);
    }
}

/// The world's trace ends as a lost monitor's does: a `loss` span that
/// says so, then the world span (waited for: whoever ends it may still be
/// writing).
fn assert_trace_ends_with_lost_monitor(rt: &Runtime, id: &str) {
    wait_until("the trace's world span", || {
        rt.spans(id).last().is_some_and(|s| s["kind"] == "world")
    });
    let spans = rt.spans(id);
    let [.., loss, world] = spans.as_slice() else {
        panic!("{spans:#?}");
    };
    assert_eq!(loss["kind"], "loss", "{spans:#?}");
    assert_eq!(loss["detail"]["reason"], "monitor lost", "{loss}");
    assert_eq!(loss["source"], "monitor", "{loss}");
    assert_eq!(world["kind"], "world", "{world}");
    // Its counts are of the whole trace: the spans the monitor wrote
    // before it died (exec spans are written at exit: those of processes
    // still running were lost with it, as the loss span says) and the loss.
    let mut counts = serde_json::Map::new();
    for span in &spans[..spans.len() - 1] {
        let kind = span["kind"].as_str().unwrap().to_owned();
        let n = counts.get(&kind).and_then(Value::as_u64).unwrap_or(0);
        counts.insert(kind, (n + 1).into());
    }
    assert_eq!(
        world["detail"]["spans"],
        Value::Object(counts),
        "{spans:#?}"
    );
    assert!(
        !rt.world_dir(id).join("monitor.lock").exists(),
        "the lost monitor's lease is given back"
    );
}

/// A detached world whose monitor is SIGKILLed does not run on untraced:
/// the next command that looks at it (`ps` here) kills it, ends its trace
/// with a `loss` span and its world span, finishes its record (diff
/// included) and removes it as `stop` would. Once, however many look.
#[test]
fn a_detached_world_whose_monitor_is_killed_is_ended_by_the_next_command() {
    let rt = Runtime::new();
    let id = unique_id("lostmon");
    run_detached(&rt, &id, &["sh", "-c", "echo hi > /tmp/x; exec sleep 3041"]);
    wait_until("sleep 3041 to run", || !running("sleep 3041").is_empty());
    let monitors: Vec<i32> = processes_mentioning(&format!("monitor {id}"));
    assert_eq!(monitors.len(), 1, "one monitor process: {monitors:?}");
    let monitor = nix::unistd::Pid::from_raw(monitors[0]);
    nix::sys::signal::kill(monitor, nix::sys::signal::Signal::SIGKILL).unwrap();
    // Gone means a zombie or reaped: a dying process's cmdline is empty
    // before its files (the lease's lock among them; the kernel sensor's
    // fanotify group and ring take a while) are released, which is only
    // done once it is a zombie.
    wait_until("the monitor to be gone", || {
        let stat = std::fs::read_to_string(format!("/proc/{monitor}/stat")).unwrap_or_default();
        stat.is_empty()
            || stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'))
    });
    // The world itself still runs: nothing has looked at it yet.
    assert!(!running("sleep 3041").is_empty());

    let ps = rt.cli(&["ps"]).output().unwrap();
    assert!(ps.status.success(), "{}", text(&ps.stderr));
    assert!(
        text(&ps.stderr).contains(&format!("world {id}: its monitor was lost")),
        "{}",
        text(&ps.stderr)
    );
    assert!(
        running("sleep 3041").is_empty(),
        "the untraced world runs on"
    );
    let record = rt.record(&id);
    assert!(record["ended_at"].is_string(), "{record}");
    assert_eq!(record["diff"]["added"], 1, "{record}");
    assert_eq!(record["upper"]["kept"], false, "{record}");
    assert_trace_ends_with_lost_monitor(&rt, &id);
    assert_no_leftovers(rt.root(), &id);
    // Its closed trace goes into the graph as a monitored world's does
    // (the world's processes' spans were lost with the monitor).
    let graph_log = rt.world_dir(&id).join("graph.log");
    wait_until("the graph's ingest of the world", || {
        std::fs::read_to_string(&graph_log).is_ok_and(|log| log.contains(&format!("world {id}: ")))
    });
    let tree = rt.cli(&["graph", "tree", &id, "--json"]).output().unwrap();
    assert!(tree.status.success(), "{}", text(&tree.stderr));
    let tree: Value = serde_json::from_slice(&tree.stdout).unwrap();
    let world_span = rt.spans(&id).last().unwrap()["span_id"].clone();
    assert_eq!(tree["root"]["kind"], "world", "{tree:#}");
    assert_eq!(tree["root"]["span"], world_span, "{tree:#}");
    // Ended once: the next command finds nothing more to do.
    let spans = rt.spans(&id).len();
    let again = rt.cli(&["inspect", &id]).output().unwrap();
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(!text(&again.stderr).contains("monitor was lost"));
    assert_eq!(rt.spans(&id).len(), spans);
}

#[test]
fn trace_times_read_as_unix_times() {
    assert_eq!(unix_time("1970-01-01T00:00:00Z"), UNIX_EPOCH);
    assert_eq!(
        unix_time("2026-11-29T04:25:34.179690676Z"),
        UNIX_EPOCH + Duration::new(1_795_926_334, 179_690_676)
    );
    assert_eq!(
        unix_time("2024-02-29T23:59:59.5Z"),
        UNIX_EPOCH + Duration::new(1_709_251_199, 500_000_000)
    );
}
