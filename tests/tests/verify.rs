//! A world's record is tamper-evident: its `trace.jsonl` is hash-chained,
//! the chain's end is in its `world.json`, and `substrate-cli verify WORLD`
//! says whether both are whole and unaltered, naming the first line that is
//! not (exit 1); and no process in any world can write its own trace or
//! record (nor any file under the state dir) to begin with.

use std::fs;
use std::path::Path;
use std::process::Output;

use serde_json::Value;
use substrate_tests::{processes_mentioning, unique_id, wait_until, Bundle, Runtime};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `substrate-cli verify WORLD` (`--json` too): its exit code, its text,
/// and its JSON verdict (which must agree with the text's exit code).
fn verify(rt: &Runtime, id: &str) -> (i32, String, Value) {
    let out = rt.cli(&["verify", id]).output().expect("substrate-cli");
    let code = out.status.code().expect("an exit code");
    let json_out = rt
        .cli(&["verify", "--json", id])
        .output()
        .expect("substrate-cli");
    assert_eq!(
        json_out.status.code(),
        Some(code),
        "{}",
        text(&json_out.stderr)
    );
    let verdict: Value = serde_json::from_slice(&json_out.stdout)
        .unwrap_or_else(|e| panic!("verify --json: {e}: {}", text(&json_out.stdout)));
    assert_eq!(verdict["whole"], code == 0, "{verdict}");
    (code, text(&out.stdout) + &text(&out.stderr), verdict)
}

/// Asserts `verify` fails naming line `line` as `kind`.
fn assert_names(rt: &Runtime, id: &str, line: usize, kind: &str, what: &str) {
    let (code, says, verdict) = verify(rt, id);
    assert_eq!(code, 1, "{what}: {says}");
    assert_eq!(verdict["problem"]["line"], line, "{what}: {verdict}");
    assert_eq!(verdict["problem"]["kind"], kind, "{what}: {verdict}");
    assert!(says.contains(&format!("line {line}")), "{what}: {says}");
}

fn run_ok(rt: &Runtime, args: &[&str]) -> Output {
    let out = rt.cli(args).output().expect("substrate-cli");
    assert!(
        out.status.success(),
        "substrate-cli {args:?}: {}",
        text(&out.stderr)
    );
    out
}

fn write_lines(path: &Path, lines: &[&str]) {
    fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

/// A finished world verifies; an edited line, a deleted line and a
/// truncated file are each caught and named; put back, it verifies again.
#[test]
fn verify_catches_an_edited_line_a_deleted_line_and_a_truncated_file() {
    let rt = Runtime::new();
    let id = unique_id("verify");
    rt.cli_run_ok(
        &id,
        "echo a > /tmp/a; ls / > /dev/null; cat /etc/hostname > /dev/null",
    );

    let record = rt.record(&id);
    let path = rt.world_dir(&id).join("trace.jsonl");
    let original = fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = original.lines().collect();
    assert!(lines.len() >= 4, "a trace of a few spans: {original}");
    assert_eq!(record["trace_chain"]["lines"], lines.len(), "{record}");
    for (i, line) in lines.iter().enumerate() {
        let span: Value = serde_json::from_str(line).unwrap();
        assert_eq!(span["seq"], i + 1, "{line}");
        assert_eq!(span["prev"].as_str().map(str::len), Some(64), "{line}");
    }
    let (code, says, verdict) = verify(&rt, &id);
    assert_eq!(code, 0, "{says}");
    assert!(says.contains("whole and unaltered"), "{says}");
    assert_eq!(verdict["state"], "closed", "{verdict}");
    assert_eq!(verdict["lines"], lines.len(), "{verdict}");
    assert_eq!(verdict["last"], record["trace_chain"]["last"], "{verdict}");

    // An edited line: one character of its span id, still JSON.
    let mut edited = lines.clone();
    let target = 1;
    let at = edited[target].find(r#""span_id":""#).unwrap() + r#""span_id":""#.len();
    let flipped = if &edited[target][at..at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    let changed = format!(
        "{}{flipped}{}",
        &edited[target][..at],
        &edited[target][at + 1..]
    );
    assert_ne!(changed, edited[target]);
    edited[target] = &changed;
    write_lines(&path, &edited);
    assert_names(&rt, &id, target + 1, "altered", "an edited line");

    // The last line edited: the record holds its hash.
    let mut edited = lines.clone();
    let last = edited.len() - 1;
    let changed = edited[last].replacen(r#""source":"runtime""#, r#""source":"monitor""#, 1);
    assert_ne!(changed, edited[last], "the world span is the runtime's");
    edited[last] = &changed;
    write_lines(&path, &edited);
    assert_names(&rt, &id, last + 1, "altered", "the last line edited");

    // A deleted line.
    let mut deleted = lines.clone();
    deleted.remove(2);
    write_lines(&path, &deleted);
    assert_names(&rt, &id, 3, "missing", "a deleted line");

    // Truncated in the middle of line 3, and after line 2.
    let cut = lines[0].len() + lines[1].len() + 2 + lines[2].len() / 2;
    fs::write(&path, &original.as_bytes()[..cut]).unwrap();
    assert_names(&rt, &id, 3, "truncated", "a file cut mid-line");
    write_lines(&path, &lines[..2]);
    assert_names(&rt, &id, 3, "truncated", "a file cut after line 2");
    fs::write(&path, "").unwrap();
    assert_names(&rt, &id, 1, "truncated", "an emptied file");

    // A line added after the trace was closed.
    write_lines(&path, &[&lines[..], &[lines[0]]].concat());
    assert_names(&rt, &id, lines.len() + 1, "appended", "an appended line");

    // The record altered: how the world ended, as the world span says it.
    fs::write(&path, &original).unwrap();
    let record_path = rt.world_dir(&id).join("world.json");
    let record_text = fs::read_to_string(&record_path).unwrap();
    let mut altered: Value = serde_json::from_str(&record_text).unwrap();
    assert_eq!(altered["exit"]["code"], 0, "{altered}");
    altered["exit"]["code"] = 1.into();
    fs::write(&record_path, serde_json::to_vec(&altered).unwrap()).unwrap();
    let (code, says, verdict) = verify(&rt, &id);
    assert_eq!(code, 1, "{says}");
    assert_eq!(verdict["problem"]["kind"], "record_altered", "{verdict}");
    assert_eq!(verdict["problem"]["line"], lines.len(), "{verdict}");

    // Put back: whole again (what failed was the change, nothing else).
    fs::write(&record_path, record_text).unwrap();
    let (code, says, _) = verify(&rt, &id);
    assert_eq!(code, 0, "{says}");
}

/// A world that still runs: its lines so far are checked and verify says
/// it is still being written; once stopped, its trace is closed and whole.
#[test]
fn verify_of_a_running_world_checks_the_lines_so_far() {
    let rt = Runtime::new();
    let id = unique_id("verify-running");
    let out = run_ok(
        &rt,
        &[
            "run",
            "-d",
            "--name",
            &id,
            "--",
            "sh",
            "-c",
            "ls / > /dev/null; exec sleep 3031",
        ],
    );
    assert_eq!(text(&out.stdout), format!("{id}\n"));
    rt.wait_running(&id);
    let path = rt.world_dir(&id).join("trace.jsonl");
    // The `ls` has ended (its span is written once its grace period is
    // over): there are lines to check, the first with one after it.
    wait_until("two lines in the trace", || {
        fs::read_to_string(&path).is_ok_and(|t| t.lines().count() >= 2)
    });
    let (code, says, verdict) = verify(&rt, &id);
    assert_eq!(code, 0, "{says}");
    assert!(says.contains("still being written"), "{says}");
    assert_eq!(verdict["state"], "being_written", "{verdict}");
    assert!(verdict["lines"].as_u64().unwrap() >= 1, "{verdict}");
    assert!(rt.record(&id).get("trace_chain").is_none());

    // An edit of a line already written is seen while it runs. Made in
    // place (one byte of line 1's span id), so that lines the monitor
    // appends meanwhile stay as they are.
    let written = fs::read(&path).unwrap();
    let key = br#""span_id":""#;
    let at = written.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    let was = written[at];
    let poke = |byte: u8| {
        use std::os::unix::fs::FileExt;
        let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&[byte], at as u64).unwrap();
    };
    poke(if was == b'0' { b'1' } else { b'0' });
    let (code, says, verdict) = verify(&rt, &id);
    assert_eq!(code, 1, "{says}");
    assert_eq!(verdict["problem"]["line"], 1, "{verdict}");
    poke(was);
    let (code, says, _) = verify(&rt, &id);
    assert_eq!(code, 0, "{says}");

    run_ok(&rt, &["stop", &id]);
    // `stop` returns once the record has the world's end; its monitor then
    // writes the world span and closes the trace.
    wait_until("the trace to be closed", || {
        rt.record(&id)["trace_chain"].is_object()
    });
    let record = rt.record(&id);
    assert!(
        record["trace_chain"]["lines"].as_u64().unwrap() >= 2,
        "{record}"
    );
    let (code, says, verdict) = verify(&rt, &id);
    assert_eq!(code, 0, "{says}");
    assert_eq!(verdict["state"], "closed", "{verdict}");
}

/// A world whose monitor was SIGKILLed is ended by `verify` (as by any
/// command that looks at it): the `loss` span and the world span written
/// then continue the lost monitor's chain, and the whole trace verifies.
#[test]
fn a_trace_continued_after_its_monitor_was_lost_is_one_chain() {
    let rt = Runtime::new();
    let id = unique_id("verify-lost");
    run_ok(
        &rt,
        &[
            "run",
            "-d",
            "--name",
            &id,
            "--",
            "sh",
            "-c",
            "ls / > /dev/null; exec sleep 3032",
        ],
    );
    rt.wait_running(&id);
    let path = rt.world_dir(&id).join("trace.jsonl");
    wait_until("two lines in the trace", || {
        fs::read_to_string(&path).is_ok_and(|t| t.lines().count() >= 2)
    });
    let monitors = processes_mentioning(&format!("monitor {id}"));
    assert_eq!(monitors.len(), 1, "one monitor process: {monitors:?}");
    let monitor = nix::unistd::Pid::from_raw(monitors[0]);
    nix::sys::signal::kill(monitor, nix::sys::signal::Signal::SIGKILL).unwrap();
    // Gone: a zombie or reaped (its lease's lock is released by then).
    wait_until("the monitor to be gone", || {
        let stat = fs::read_to_string(format!("/proc/{monitor}/stat")).unwrap_or_default();
        stat.is_empty()
            || stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'))
    });
    let written = fs::read_to_string(&path).unwrap().lines().count();

    let (code, says, verdict) = verify(&rt, &id);
    assert_eq!(code, 0, "{says}");
    assert!(says.contains("its monitor was lost"), "{says}");
    assert_eq!(verdict["state"], "closed", "{verdict}");
    let spans = rt.spans(&id);
    let [.., loss, world] = spans.as_slice() else {
        panic!("{spans:#?}");
    };
    assert_eq!(loss["kind"], "loss", "{loss}");
    assert_eq!(world["kind"], "world", "{world}");
    assert!(spans.len() >= written + 2, "{spans:#?}");
    assert_eq!(verdict["lines"], spans.len(), "{verdict}");
    // The lines the lost monitor wrote are in the one chain: an edit of
    // its first line is named.
    let original = fs::read_to_string(&path).unwrap();
    let first = original.lines().next().unwrap();
    let edited = first.replacen(r#""kind":"#, r#""kind" :"#, 1);
    assert_ne!(edited, first);
    fs::write(&path, original.replacen(first, &edited, 1)).unwrap();
    assert_names(
        &rt,
        &id,
        1,
        "altered",
        "the lost monitor's first line edited",
    );
}

/// What a probe inside a world tries, as a POSIX `sh` script (host shell or
/// busybox): every mount whose source is under the state dir or the
/// runtime root (`$1`, `$2`: their names), opened for writing and
/// remounted read-write; the world's own trace and record at their host
/// paths (`$3`, `$4`); and every open file of every process it can see
/// that points into either dir, or into `/.substrate`, asked whether it is
/// open for writing. Prints `BREACH: …` for anything that got through,
/// `PROBED n` and `FDS n` for how much it looked at, and `DONE`.
const PROBE: &str = r#"
state="$1"; root="$2"; marker=probe-mark-$$
echo "MARKER $marker"
mounts=0
while read -r _id _parent _dev src mp _rest; do
  case "$src" in *"$state"*|*"$root"*) ;; *) continue ;; esac
  mounts=$((mounts + 1))
  if [ -d "$mp" ]; then
    touch "$mp/.$marker" 2>/dev/null && echo "BREACH: created $mp/.$marker"
    for f in "$mp"/* "$mp"/.[!.]*; do
      [ -f "$f" ] || continue
      (: >> "$f") 2>/dev/null && echo "BREACH: opened $f for writing"
    done
  else
    (: >> "$mp") 2>/dev/null && echo "BREACH: opened $mp for writing"
  fi
  mount -o remount,bind,rw "$mp" 2>/dev/null && echo "BREACH: remounted $mp read-write"
done < /proc/self/mountinfo
for f in "$3" "$4"; do
  (echo "$marker" >> "$f") 2>/dev/null && echo "BREACH: appended to $f"
done
fds=0
for fd in /proc/[0-9]*/fd/*; do
  target=$(readlink "$fd" 2>/dev/null) || continue
  fds=$((fds + 1))
  case "$target" in *"$state"*|*"$root"*|/.substrate*) ;; *) continue ;; esac
  pid=${fd#/proc/}; pid=${pid%%/*}; n=${fd##*/}
  flags=$(sed -n 's/^flags:[[:space:]]*//p' "/proc/$pid/fdinfo/$n")
  [ -n "$flags" ] || continue
  [ $((flags & 3)) -ne 0 ] && echo "BREACH: $fd -> $target is open for writing (flags $flags)"
done
echo "PROBED $mounts"
echo "FDS $fds"
echo DONE
"#;

/// The probe's findings, asserted clean; returns how many mounts it tried.
fn assert_probe_found_nothing(what: &str, out: &Output) -> u64 {
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "{what}: {stdout}{}",
        text(&out.stderr)
    );
    assert!(
        stdout.contains("DONE"),
        "{what}: the probe did not finish: {stdout}"
    );
    let breaches: Vec<&str> = stdout.lines().filter(|l| l.starts_with("BREACH")).collect();
    assert!(breaches.is_empty(), "{what}: {breaches:#?}");
    let count = |key: &str| -> u64 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{what}: no {key}: {stdout}"))
    };
    // Its own stdin, stdout and stderr at least.
    assert!(count("FDS ") >= 3, "{what}: {stdout}");
    count("PROBED ")
}

fn name_of(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// A world the probe runs in.
struct ProbedWorld<'a> {
    what: &'a str,
    /// `substrate-cli run --bundle`; without, the host's `/`.
    bundle: Option<&'a Bundle>,
    /// More flags of `substrate-cli run`.
    flags: &'a [&'a str],
    /// Run by `substrate-runtime run` on a bundle of its own instead.
    runtime: bool,
    /// The fewest mounts from the state dir the world has.
    fewest: u64,
}

impl<'a> ProbedWorld<'a> {
    fn cli(what: &'a str, flags: &'a [&'a str], fewest: u64) -> Self {
        ProbedWorld {
            what,
            bundle: None,
            flags,
            runtime: false,
            fewest,
        }
    }
}

/// Nothing under the state dir is writable from inside a world, of any
/// kind (over the host's `/`, of a bundle, governed by an egress policy,
/// made by `substrate-runtime`): neither the paths bind-mounted into it
/// from there (`/.substrate`, the init, `/etc/ld.so.preload`, a governed
/// world's `/etc/resolv.conf`), nor its own trace and record at their host
/// paths, nor any open file; after the probe, the world's trace and record
/// verify, and the record holds nothing the probe tried to write.
#[test]
fn no_process_in_a_world_can_write_its_trace_or_record() {
    // Worlds of `substrate-runtime` get the preload tracer (its mounts from
    // the state dir) with Substrate's overlay.
    let rt = Runtime::overlay();
    let (state, root) = (name_of(rt.state_dir()), name_of(rt.root()));
    let cli_bundle = Bundle::new("verify-probe", &["true"]);
    let worlds = [
        // /.substrate, /etc/ld.so.preload, the init at /.substrate-init.
        ProbedWorld::cli("a CLI world over the host's /", &[], 3),
        ProbedWorld {
            bundle: Some(&cli_bundle),
            ..ProbedWorld::cli("a CLI world of a bundle", &[], 3)
        },
        // And its /etc/resolv.conf, naming its resolver.
        ProbedWorld::cli(
            "a CLI world with an egress policy",
            &["--allow", "192.0.2.1:443"],
            4,
        ),
        ProbedWorld {
            runtime: true,
            ..ProbedWorld::cli("a substrate-runtime world", &[], 2)
        },
    ];
    for ProbedWorld {
        what,
        bundle,
        flags,
        runtime,
        fewest,
    } in worlds
    {
        let id = unique_id("verify-probe");
        let trace = rt.world_dir(&id).join("trace.jsonl");
        let record = rt.world_dir(&id).join("world.json");
        let (trace_arg, record_arg) = (
            trace.to_str().unwrap().to_owned(),
            record.to_str().unwrap().to_owned(),
        );
        let probe = [
            "sh",
            "-c",
            PROBE,
            "probe",
            &state,
            &root,
            &trace_arg,
            &record_arg,
        ];
        let out = if runtime {
            let bundle = Bundle::new(&id, &probe);
            rt.run(&["run", "--bundle", bundle.path_str(), &id])
        } else {
            let mut args = vec!["run", "--name", &id];
            if let Some(bundle) = bundle {
                args.extend(["--bundle", bundle.path_str()]);
            }
            args.extend(flags);
            args.push("--");
            args.extend(probe);
            rt.cli(&args).output().expect("substrate-cli")
        };
        let probed = assert_probe_found_nothing(what, &out);
        assert!(
            probed >= fewest,
            "{what}: only {probed} mounts from the state dir tried: {}",
            text(&out.stdout)
        );

        // The trace is as its monitor wrote it (the probe's own commands
        // are in it, the marker in their argv: the chain tells the two
        // apart), and the record holds nothing the probe wrote.
        wait_until("the trace to be closed", || {
            rt.record(&id)["trace_chain"].is_object()
        });
        let (code, says, verdict) = verify(&rt, &id);
        assert_eq!(code, 0, "{what}: {says}");
        assert_eq!(verdict["state"], "closed", "{what}: {verdict}");
        let stdout = text(&out.stdout);
        let marker = stdout
            .lines()
            .find_map(|l| l.strip_prefix("MARKER "))
            .unwrap_or_else(|| panic!("{what}: no marker: {stdout}"));
        let content = fs::read_to_string(&record).unwrap();
        assert!(
            !content.contains(marker),
            "{what}: {} was written",
            record.display()
        );
        let leftovers: Vec<_> = walk(rt.state_dir())
            .into_iter()
            .filter(|entry| name_of(entry).starts_with(".probe-"))
            .collect();
        assert!(leftovers.is_empty(), "{what}: {leftovers:?}");
    }
}

/// Every path under `dir` (not following symlinks; unreadable dirs skipped).
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(path.clone());
            }
            found.push(path);
        }
    }
    found
}
