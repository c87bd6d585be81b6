//! What a new user meets first: help that explains every command and flag,
//! usage errors that are usage errors, no secrets on screen, a sample
//! bundle whose diff shows something, tables that line up, and `doctor`.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use substrate_tests::{bin, unique_id, workspace_root, Runtime};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

// ---- help -------------------------------------------------------------------

/// One entry of a help section: what it names, and what it says about it.
#[derive(Debug)]
struct Entry {
    section: String,
    name: String,
    description: String,
}

/// The entries of clap's help text, section by section ("Commands:",
/// "Arguments:", "Options:" and custom headings). An entry starts two
/// spaces in (six for a flag with no short form); its description follows
/// two or more spaces after the name, or on the lines below, indented
/// deeper.
fn entries(help: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut section: Option<String> = None;
    // Whether lines indented deeper continue the last entry.
    let mut continuing = false;
    for line in help.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            section = line
                .strip_suffix(':')
                .filter(|heading| !heading.contains("  ") && heading.len() < 60)
                .map(str::to_owned);
            continuing = false;
            continue;
        }
        let Some(section) = &section else { continue };
        let indent = line.len() - line.trim_start().len();
        let body = line.trim_start();
        // Long-only flags sit four columns in, under the short ones' `-x, `.
        if indent == 2 || (indent == 6 && body.starts_with("--")) {
            // Flags and arguments, or commands: not the lines of an
            // after-help text (examples, environment).
            continuing = section == "Commands" || body.starts_with(['-', '<', '[']);
            if continuing {
                let (name, description) = match body.find("  ") {
                    Some(at) => (&body[..at], body[at..].trim()),
                    None => (body, ""),
                };
                entries.push(Entry {
                    section: section.clone(),
                    name: name.to_owned(),
                    description: description.to_owned(),
                });
            }
        } else if continuing {
            let last = entries.last_mut().expect("continuing an entry");
            last.description.push(' ');
            last.description.push_str(body);
        }
    }
    entries
}

/// A description with more than clap's own `[default: …]` and
/// `[possible values: …]` in it.
fn says_something(description: &str) -> bool {
    let mut rest = description.to_owned();
    while let (Some(open), Some(close)) = (rest.find('['), rest.find(']')) {
        if close < open {
            break;
        }
        rest.replace_range(open..=close, "");
    }
    rest.chars().filter(|c| c.is_alphabetic()).count() >= 3
}

fn help_of(binary: &str, args: &[&str]) -> String {
    let out = Command::new(bin(binary))
        .args(args)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    ok(&out)
}

/// Asserts every command and argument in `binary`'s help, and in each of
/// its subcommands' help, has a description; returns every help text.
fn assert_every_entry_described(binary: &str) -> String {
    let top = help_of(binary, &[]);
    let top_entries = entries(&top);
    let commands: Vec<&Entry> = top_entries
        .iter()
        .filter(|e| e.section == "Commands" && e.name != "help")
        .collect();
    assert!(commands.len() >= 5, "{binary}: no commands found in {top}");
    let mut all = top.clone();
    let mut undescribed = Vec::new();
    for entry in &top_entries {
        if !says_something(&entry.description) {
            undescribed.push(format!("{binary}: {} {:?}", entry.section, entry.name));
        }
    }
    for command in &commands {
        let help = help_of(binary, &[&command.name]);
        let found = entries(&help);
        assert!(
            found.iter().any(|e| e.name.contains("--help")),
            "{binary} {}: help not parsed: {help}",
            command.name
        );
        for entry in found {
            if !says_something(&entry.description) {
                undescribed.push(format!(
                    "{binary} {}: {} {:?}",
                    command.name, entry.section, entry.name
                ));
            }
        }
        all.push_str(&help);
    }
    assert!(
        undescribed.is_empty(),
        "entries without a description:\n{}",
        undescribed.join("\n")
    );
    all
}

/// The parser sees what clap prints, both layouts, and what is missing.
#[test]
fn the_help_parser_finds_missing_descriptions() {
    let help = "\
Usage: x [OPTIONS] <COMMAND>

Commands:
  run      
  ps       List worlds
  help     Print this message or the help of the given subcommand(s)

Arguments:
  <WORLD>  

Options:
  -b, --bundle <BUNDLE>
          The bundle directory [default: .]
      --keep
          [default: false]
  -h, --help  Print help

Examples:
  x run -- true
";
    let found: Vec<(String, bool)> = entries(help)
        .into_iter()
        .map(|e| (e.name, says_something(&e.description)))
        .collect();
    let want = [
        ("run", false),
        ("ps", true),
        ("help", true),
        ("<WORLD>", false),
        ("-b, --bundle <BUNDLE>", true),
        ("--keep", false),
        ("-h, --help", true),
    ];
    let want: Vec<(String, bool)> = want.iter().map(|(n, d)| (n.to_string(), *d)).collect();
    assert_eq!(found, want);
}

#[test]
fn every_command_and_flag_of_substrate_cli_has_a_description() {
    let help = assert_every_entry_described("substrate-cli");
    // WORLD is explained where the commands are listed.
    let top = help_of("substrate-cli", &[]);
    assert!(top.contains("WORLD") && top.contains("Examples:"), "{top}");
    for command in ["diff", "inspect", "trace", "rm"] {
        let help = help_of("substrate-cli", &[command]);
        assert!(help.contains("WORLD"), "{command}: {help}");
    }
    assert!(help.contains("doctor"), "{help}");
}

#[test]
fn every_command_and_flag_of_substrate_runtime_has_our_description() {
    let help = assert_every_entry_described("substrate-runtime");
    for youki in [
        "youki",
        "checkpointt",
        "rather then",
        "pivot rool",
        "path ,",
    ] {
        assert!(!help.contains(youki), "{youki:?} in:\n{help}");
    }
}

// ---- usage and setup errors ----------------------------------------------------

/// An unknown flag before `--` is clap's usage error (exit 2), and no world
/// is made; what follows `--`, or the first word that is not a flag, is
/// the command with all its flags.
///
/// Needs `run`'s command argument without `allow_hyphen_values`
/// (cli/src/commands/run.rs): until then `--bogus` runs as the command.
#[test]
fn an_unknown_flag_before_the_command_is_a_usage_error() {
    let rt = Runtime::new();
    let name = unique_id("bogus");
    let out = rt
        .cli(&["run", "--name", &name, "--bogus", "--", "true"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unexpected argument '--bogus'"), "{stderr}");
    assert!(!rt.world_dir(&name).exists(), "a world was made");

    // After `--`, and after the first word that is not a flag, flags are
    // the command's.
    let after_dashes = unique_id("dashes");
    let out = rt
        .cli(&["run", "--name", &after_dashes, "--", "echo", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(ok(&out), "--bogus\n");
    let bare = unique_id("bare");
    let out = rt
        .cli(&["run", "--name", &bare, "echo", "-n", "--x"])
        .output()
        .unwrap();
    assert_eq!(ok(&out), "--x");
}

/// A world whose command cannot be run fails with one clean sentence:
/// one line, no word twice in a row, the container named once.
///
/// Needs libcontainer's exec error without its doubled prefix
/// (third_party/libcontainer-0.7.0/src/process/channel.rs and error.rs):
/// until then it reads "exec process failed with error error in
/// executing process : executable …".
#[test]
fn a_command_that_cannot_run_fails_with_one_clean_sentence() {
    let rt = Runtime::new();
    let name = unique_id("nocmd");
    let out = rt
        .cli(&["run", "--name", &name, "--", "no-such-command-here"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    let line = stderr.trim_end();
    assert_eq!(line.lines().count(), 1, "{stderr}");
    assert!(line.starts_with("substrate-cli: "), "{line}");
    assert!(line.contains("'no-such-command-here' not found"), "{line}");
    let words: Vec<String> = line
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    for pair in words.windows(2) {
        assert_ne!(pair[0], pair[1], "a word twice in a row: {line}");
    }
    assert_eq!(line.matches("container").count(), 1, "{line}");
    assert!(!line.contains(" : "), "{line}");
}

// ---- secrets ------------------------------------------------------------------

const URL: &str = "https://user:pw@x.invalid/?token=abc";
const REDACTED_URL: &str = "https://user:<redacted>@x.invalid/?token=<redacted>";

/// Runs a world whose command line holds a URL with a password and a
/// token, with `DEBIAN_FRONTEND` and a secret in its environment.
fn world_with_secrets(rt: &Runtime) -> String {
    let name = unique_id("secrets");
    let out = rt
        .cli(&[
            "run",
            "--name",
            &name,
            "--env",
            "DEBIAN_FRONTEND=noninteractive",
            "--env",
            "API_TOKEN=s3cret",
            "--",
            "sh",
            "-c",
            "true",
            "sh",
            URL,
        ])
        .output()
        .unwrap();
    ok(&out);
    name
}

#[track_caller]
fn assert_no_secret(what: &str, shown: &str) {
    for secret in [":pw@", "token=abc", "s3cret"] {
        assert!(!shown.contains(secret), "{what} shows {secret:?}:\n{shown}");
    }
}

/// `ps`, `ps --json`, `inspect` and the trace show a command line's URL
/// with its password and token redacted, by the trace's rules; the
/// environment keeps ordinary values such as DEBIAN_FRONTEND.
#[test]
fn ps_inspect_and_trace_redact_command_lines_and_keep_ordinary_env() {
    let rt = Runtime::new();
    let name = world_with_secrets(&rt);

    let ps = ok(&rt.cli(&["ps"]).output().unwrap());
    assert_no_secret("ps", &ps);
    let line = ps
        .lines()
        .find(|l| l.starts_with(&name))
        .expect("our world");
    assert!(
        line.ends_with(&format!("sh -c true sh {REDACTED_URL}")),
        "{line}"
    );

    let ps_json = ok(&rt.cli(&["ps", "--json"]).output().unwrap());
    assert_no_secret("ps --json", &ps_json);
    let world: Value = ps_json
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|w| w["world"] == name.as_str())
        .expect("our world");
    assert_eq!(world["command"][4], REDACTED_URL);

    let inspect = ok(&rt.cli(&["inspect", &name]).output().unwrap());
    assert_no_secret("inspect", &inspect);
    let record: Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(record["command"][4], REDACTED_URL);
    let env: Vec<&str> = record["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(env.contains(&"DEBIAN_FRONTEND=noninteractive"), "{env:?}");
    assert!(env.contains(&"API_TOKEN=<redacted>"), "{env:?}");

    let trace = ok(&rt.cli(&["trace", &name]).output().unwrap());
    assert_no_secret("trace", &trace);
    let spans = rt.spans(&name);
    let sh = spans
        .iter()
        .find(|s| s["kind"] == "exec" && s["argv"][0] == "sh")
        .expect("the exec span of sh");
    assert_eq!(sh["argv"][4], REDACTED_URL, "{sh}");
    let env = sh["env"].to_string();
    assert!(env.contains("DEBIAN_FRONTEND=noninteractive"), "{env}");
    assert!(env.contains("API_TOKEN=<redacted>"), "{env}");
}

/// The record itself (`world.json`) stores the command and env redacted
/// by the same rules.
///
/// Needs the record built with `substrate_trace::redact::redact_command`
/// and `redact_environment` (runtime/src/world/create.rs `new_record`).
#[test]
fn the_record_stores_no_secrets() {
    let rt = Runtime::new();
    let name = world_with_secrets(&rt);
    let record = rt.record(&name);
    assert_no_secret("world.json", &record.to_string());
    assert_eq!(record["command"][4], REDACTED_URL);
    let env = record["env"].to_string();
    assert!(env.contains("DEBIAN_FRONTEND=noninteractive"), "{env}");
}

// ---- the sample bundle ------------------------------------------------------------

/// The bundle `make bundles` builds takes writes, and its world's diff
/// shows them (its root was read-only: every write failed, every diff was
/// empty). Built afresh: the tests' shared copy may predate this.
#[test]
fn the_sample_bundle_is_writable_and_its_diff_shows_the_writes() {
    let out_dir = tempfile::tempdir().unwrap();
    let status = Command::new("bash")
        .arg(workspace_root().join("bundles/build.sh"))
        .arg(out_dir.path())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "bundles/build.sh failed");
    let bundle = out_dir.path().join("busybox");
    let config: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["root"]["readonly"], false, "{config}");

    let rt = Runtime::new();
    let name = unique_id("sample");
    let out = rt
        .cli(&[
            "run",
            "--bundle",
            bundle.to_str().unwrap(),
            "--name",
            &name,
            "--",
            "sh",
            "-c",
            "echo hi > /root/hello && echo x > /tmp/t && rm /etc/hostname && cat /root/hello",
        ])
        .output()
        .unwrap();
    assert_eq!(ok(&out), "hi\n");
    let diff = ok(&rt.cli(&["diff", &name]).output().unwrap());
    for line in ["A /root/hello", "A /tmp/t", "D /etc/hostname"] {
        assert!(diff.lines().any(|l| l == line), "no {line:?} in:\n{diff}");
    }
    assert!(rt.record(&name)["diff"]["added"].as_u64().unwrap() >= 2);
    // The bundle itself is untouched: the world wrote to its upper layer.
    let rootfs = bundle.join("rootfs");
    assert!(!rootfs.join("root/hello").exists());
    assert!(rootfs.join("etc/hostname").exists());
}

// ---- cosmetics -----------------------------------------------------------------------

/// Every pid in `trace` is named by whose it is: `[pid 2, host pid 4242]`,
/// `[host pid 4242]` or `[pid 2]`.
#[test]
fn trace_names_each_pid_by_its_namespace() {
    let rt = Runtime::new();
    let name = unique_id("pids");
    rt.cli_run_ok(&name, "ls / > /dev/null; true");
    let trace = ok(&rt.cli(&["trace", &name, "--flat"]).output().unwrap());
    let mut seen = 0;
    for line in trace.lines() {
        let Some(start) = line.find(" [") else {
            continue;
        };
        let Some(len) = line[start + 2..].find(']') else {
            continue;
        };
        let inside = &line[start + 2..start + 2 + len];
        if !inside.contains("pid") && !inside.contains("host") {
            continue;
        }
        seen += 1;
        let number = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
        let well_formed = match inside.split_once(", ") {
            Some((world, host)) => {
                world.strip_prefix("pid ").is_some_and(number)
                    && host.strip_prefix("host pid ").is_some_and(number)
            }
            None => {
                inside.strip_prefix("pid ").is_some_and(number)
                    || inside.strip_prefix("host pid ").is_some_and(number)
            }
        };
        assert!(well_formed, "{inside:?} in {line:?}");
    }
    assert!(seen >= 2, "no pids in:\n{trace}");
}

/// `ps` keeps its columns lined up when an id is 64 characters long (a
/// containerd or Kubernetes id).
#[test]
fn ps_columns_line_up_with_64_character_ids() {
    let rt = Runtime::new();
    let short = unique_id("ps");
    let long = format!("{:x<64}", unique_id("ps64-"));
    assert_eq!(long.len(), 64);
    for name in [&short, &long] {
        ok(&rt
            .cli(&["run", "--name", name, "--", "true"])
            .output()
            .unwrap());
    }
    let ps = ok(&rt.cli(&["ps"]).output().unwrap());
    let header = ps.lines().next().unwrap();
    let column = |heading: &str| header.find(heading).expect(heading);
    let (status, created) = (column("STATUS"), column("CREATED"));
    for name in [&short, &long] {
        let row = ps.lines().find(|l| l.starts_with(name.as_str())).unwrap();
        assert!(
            row[status..].starts_with("exited 0") && row[..status].ends_with(' '),
            "STATUS not under its heading:\n{ps}"
        );
        assert!(
            row[created..].starts_with(|c: char| c.is_ascii_digit()),
            "CREATED not under its heading:\n{ps}"
        );
        assert!(row.ends_with("  true"), "{row}");
    }
}

// ---- doctor -------------------------------------------------------------------------

/// The status word of each check line of `doctor`'s report, and the lines.
fn doctor(rt: &Runtime, preload: Option<&str>) -> (Option<i32>, Vec<String>) {
    let mut cmd = rt.cli(&["doctor"]);
    if let Some(preload) = preload {
        cmd.env("SUBSTRATE_PRELOAD", preload);
    }
    let child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    // Its scratch dir (where it mounted, in a namespace of its own) is gone.
    let scratch = std::env::temp_dir().join(format!(".substrate-doctor-{pid}"));
    assert!(!scratch.exists(), "{} left behind", scratch.display());
    let lines = text(&out.stdout).lines().map(str::to_owned).collect();
    (out.status.code(), lines)
}

#[test]
fn doctor_passes_on_this_host() {
    let rt = Runtime::new();
    let (code, lines) = doctor(&rt, None);
    let report = lines.join("\n");
    assert_eq!(code, Some(0), "{report}");
    let (summary, checks) = lines.split_last().unwrap();
    assert!(
        summary.starts_with("doctor: ") && summary.contains("none failed"),
        "{report}"
    );
    for line in checks {
        let status = line.split_whitespace().next().unwrap();
        assert!(["ok", "note", "warn"].contains(&status), "{line}");
    }
    for check in [
        "user",
        "kernel",
        "namespaces",
        "overlay",
        "upper layer",
        "cgroups",
        "seccomp",
        "process events",
        "preload",
        "state dir",
        "runtime root",
        "fanotify",
        "bpf",
        "landlock",
        "runc",
        "containerd",
        "podman",
    ] {
        assert!(
            checks
                .iter()
                .any(|l| l[5..].trim_start().starts_with(check)),
            "no {check} check in:\n{report}"
        );
    }
    // What a world needs is there, for real.
    for needed in ["overlay", "upper layer", "preload", "process events"] {
        let line = checks
            .iter()
            .find(|l| l[5..].trim_start().starts_with(needed))
            .unwrap();
        assert!(line.starts_with("ok "), "{line}");
    }
    // It mounted nothing the host can see.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(".substrate-doctor"), "{mountinfo}");
}

#[test]
fn doctor_fails_with_a_clear_line_when_the_preload_library_is_missing() {
    let rt = Runtime::new();
    let missing = Path::new("/nonexistent/libsubstrate_preload.so");
    let (code, lines) = doctor(&rt, Some(missing.to_str().unwrap()));
    let report = lines.join("\n");
    assert_eq!(code, Some(1), "{report}");
    let failed: Vec<&String> = lines.iter().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(failed.len(), 1, "{report}");
    let line = failed[0];
    for part in [
        "preload",
        missing.to_str().unwrap(),
        "SUBSTRATE_PRELOAD",
        "make build",
    ] {
        assert!(line.contains(part), "{part:?} not in {line:?}");
    }
    assert!(
        lines
            .last()
            .unwrap()
            .contains("the default world cannot run here"),
        "{report}"
    );
}

// ---- no network ----------------------------------------------------------------------

/// A CLI world has no network (loopback only), and its trace says so where
/// a reader would otherwise see only failures: a name lookup that failed
/// and a connection that got ENETUNREACH are marked `"refused_by":
/// "network"`, and `trace` prints it; what works (the loopback) is not
/// marked. The record says what network the world had.
#[test]
fn a_world_without_a_network_says_so_in_its_trace() {
    let rt = Runtime::new();
    let name = unique_id("nonet");
    let script = r#"
import socket
try:
    socket.getaddrinfo("example.com", 80)
except OSError:
    pass
s = socket.socket()
try:
    s.connect(("192.0.2.1", 80))
except OSError:
    pass
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
socket.create_connection(server.getsockname()).close()
print("done")
"#;
    let out = rt
        .cli(&["run", "--name", &name, "--", "python3", "-c", script])
        .output()
        .unwrap();
    assert_eq!(ok(&out), "done\n");
    assert_eq!(rt.record(&name)["network"], "loopback_only");
    let spans = rt.spans(&name);
    let refused = |span: &&Value| span["refused_by"] == "network";
    let dns: Vec<&Value> = spans.iter().filter(|s| s["kind"] == "dns").collect();
    assert!(
        dns.iter()
            .any(|s| s["detail"]["query"] == "example.com" && refused(s)),
        "{dns:#?}"
    );
    let net: Vec<&Value> = spans
        .iter()
        .filter(|s| s["kind"] == "net" && s["detail"]["op"] == "connect")
        .collect();
    let to = |address: &str| {
        net.iter()
            .find(|s| s["detail"]["address"] == address)
            .unwrap_or_else(|| panic!("no connect to {address}: {net:#?}"))
    };
    assert!(refused(to("192.0.2.1")), "{net:#?}");
    assert!(!refused(to("127.0.0.1")), "{net:#?}");
    let trace = ok(&rt.cli(&["trace", &name]).output().unwrap());
    // The lookup's EAI_* code depends on the host's resolv.conf; the mark
    // does not.
    // (A summary line lists its calls with ", " between them.)
    let lookup = trace
        .lines()
        .flat_map(|l| l.split(", "))
        .find(|call| call.contains("example.com -> failed (EAI_"))
        .unwrap_or_else(|| panic!("no failed lookup in:\n{trace}"));
    assert!(
        lookup.ends_with(") [refused: the world has no network]"),
        "{lookup}"
    );
    assert!(
        trace.contains("connect 192.0.2.1:80/tcp [refused: the world has no network]"),
        "{trace}"
    );
}
