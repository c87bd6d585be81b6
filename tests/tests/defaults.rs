//! A CLI world starts from least privilege: the host's secrets, other homes
//! and every credential file are hidden (`--hide` / `--expose` change the
//! list), the environment is PATH, HOME, TERM, LANG and USER plus what
//! `--env` / `--env-pass` add, memory, CPU and processes are limited (and a
//! world that reaches a limit fails inside itself), and Docker's default
//! seccomp profile filters its syscalls.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use substrate_tests::cgroup::{self, Cgroup, Setting, Version};
use substrate_tests::{assert_no_leftovers, unique_id, Bundle, Runtime};

/// `substrate-cli run --name <name> <flags> -- <command>`, run to its end
/// with output captured.
fn run(rt: &Runtime, name: &str, flags: &[&str], command: &[&str]) -> Output {
    run_in(rt, name, flags, command, None)
}

fn run_in(
    rt: &Runtime,
    name: &str,
    flags: &[&str],
    command: &[&str],
    cwd: Option<&Path>,
) -> Output {
    let mut args = vec!["run", "--name", name];
    args.extend(flags);
    args.push("--");
    args.extend(command);
    let mut cli = rt.cli(&args);
    if let Some(cwd) = cwd {
        cli.current_dir(cwd);
    }
    cli.output().expect("spawn substrate-cli")
}

#[track_caller]
fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `run`'s own failure: status 125, one line naming the problem, and no
/// world (no record, nothing left behind).
#[track_caller]
fn refused(rt: &Runtime, name: &str, out: &Output, says: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{stderr}");
    for words in says {
        assert!(stderr.contains(words), "expected {words:?} in: {stderr}");
    }
    assert!(!rt.world_dir(name).exists(), "no record of a refused world");
    assert_no_leftovers(rt.root(), name);
}

/// A directory made for one test under `/home` (a home the world must
/// enumerate), removed when dropped.
struct FakeHome(PathBuf);

impl FakeHome {
    fn new(tag: &str) -> FakeHome {
        let dir = PathBuf::from("/home").join(unique_id(&format!("sbt-{tag}")));
        fs::create_dir_all(&dir).unwrap();
        FakeHome(dir)
    }

    fn put(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.0.join(rel);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, content).unwrap();
        path
    }

    fn path(&self, rel: &str) -> String {
        self.0.join(rel).to_str().unwrap().to_owned()
    }
}

impl Drop for FakeHome {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What a world sees at each of `paths`: `dir N ro|rw` (entries, writable),
/// `chr N` (a character device: /dev/null over a hidden file; N bytes read),
/// `file N` (bytes), `absent`.
const LOOK: &str = r#"for p in "$@"; do
  if [ -d "$p" ]; then
    n=$(ls -A "$p" | wc -l); if touch "$p/.probe" 2>/dev/null; then w=rw; else w=ro; fi
    echo "$p: dir $n $w"
  elif [ -c "$p" ]; then echo "$p: chr $(cat "$p" | wc -c)"
  elif [ -f "$p" ]; then echo "$p: file $(cat "$p" | wc -c)"
  elif [ -e "$p" ] || [ -L "$p" ]; then echo "$p: other"
  else echo "$p: absent"; fi
done"#;

fn look(
    rt: &Runtime,
    name: &str,
    flags: &[&str],
    cwd: Option<&Path>,
    paths: &[String],
) -> std::collections::HashMap<String, String> {
    let mut command = vec!["sh", "-c", LOOK, "look"];
    command.extend(paths.iter().map(String::as_str));
    let out = stdout_ok(&run_in(rt, name, flags, &command, cwd));
    out.lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(p, what)| (p.to_owned(), what.to_owned()))
        .collect()
}

#[track_caller]
fn assert_hidden(seen: &std::collections::HashMap<String, String>, path: &str) {
    let what = seen
        .get(path)
        .map(String::as_str)
        .unwrap_or("not looked at");
    assert!(
        what == "dir 0 ro" || what == "chr 0",
        "{path} must be hidden in the world (an empty read-only dir or /dev/null), it is: {what}"
    );
}

/// The documented default hide-list's fixed entries (README, "A CLI
/// world's defaults").
const HOST_HIDDEN: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/security/opasswd",
    "/etc/kubernetes",
    "/var/lib/substrate",
    "/run/substrate",
    "/var/lib/containerd",
    "/run/containerd",
    "/var/lib/docker",
    "/run/docker",
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/var/lib/containers",
    "/run/containers",
    "/run/podman",
    "/run/crio",
    "/var/lib/kubelet",
    "/run/user",
];

/// Credentials hidden in every home.
const CREDENTIALS: &[&str] = &[
    ".ssh/id_rsa",
    ".gnupg/private-keys-v1.d/k.key",
    ".aws/credentials",
    ".azure/accessTokens.json",
    ".config/gcloud/credentials.db",
    ".kube/config",
    ".docker/config.json",
    ".config/containers/auth.json",
    ".npmrc",
    ".pypirc",
    ".netrc",
    ".git-credentials",
    ".config/git/credentials",
    ".config/gh/hosts.yml",
    ".cargo/credentials.toml",
    ".gem/credentials",
    ".vault-token",
    ".password-store/x.gpg",
    ".local/share/keyrings/login.keyring",
    ".terraform.d/credentials.tfrc.json",
];

/// The path of a credential fixture that the hide-list names: the file
/// itself, or the directory holding it.
fn hidden_entry(home: &FakeHome, credential: &str) -> String {
    let listed = [
        ".ssh",
        ".gnupg",
        ".aws",
        ".azure",
        ".config/gcloud",
        ".kube",
        ".config/gh",
        ".password-store",
        ".local/share/keyrings",
    ];
    match listed
        .iter()
        .find(|l| credential.starts_with(&format!("{l}/")))
    {
        Some(dir) => home.path(dir),
        None => home.path(credential),
    }
}

fn exists(path: &str) -> bool {
    fs::symlink_metadata(path).is_ok()
}

#[test]
fn host_secrets_homes_credentials_and_state_are_hidden() {
    let rt = Runtime::new();
    let project_home = FakeHome::new("proj");
    let other_home = FakeHome::new("other");
    project_home.put("project/README", "the project\n");
    project_home.put(".bashrc", "# not a credential\n");
    other_home.put("notes.txt", "someone else's\n");
    for credential in CREDENTIALS {
        project_home.put(credential, "SECRET\n");
        other_home.put(credential, "SECRET\n");
    }
    let cwd = project_home.0.join("project");

    let mut expect_hidden: Vec<String> = HOST_HIDDEN
        .iter()
        .filter(|p| exists(p))
        .map(|p| p.to_string())
        .collect();
    for entry in fs::read_dir("/etc/ssh").into_iter().flatten().flatten() {
        let name = entry.file_name().into_string().unwrap();
        if name.starts_with("ssh_host_") && name.ends_with("_key") {
            expect_hidden.push(format!("/etc/ssh/{name}"));
        }
    }
    // Every home but the working directory's, whole.
    if Path::new("/root").is_dir() {
        expect_hidden.push("/root".into());
    }
    for entry in fs::read_dir("/home").unwrap().flatten() {
        // Other tests' homes come and go.
        let ours = entry.path() == other_home.0;
        let theirs = entry.file_name().to_string_lossy().starts_with("sbt-");
        if entry.path().is_dir() && entry.path() != project_home.0 && (ours || !theirs) {
            expect_hidden.push(entry.path().to_str().unwrap().to_owned());
        }
    }
    // The state dir and runtime root in use, though not the default ones.
    expect_hidden.push(rt.state_dir().to_str().unwrap().to_owned());
    expect_hidden.push(rt.root().to_str().unwrap().to_owned());
    // Credentials in the working directory's home (the rest of it stays).
    expect_hidden.extend(CREDENTIALS.iter().map(|c| hidden_entry(&project_home, c)));
    // Sanity: the host itself has them.
    assert!(fs::read_to_string(project_home.path(".ssh/id_rsa")).unwrap() == "SECRET\n");

    let visible = [
        project_home.path("project/README"),
        project_home.path(".bashrc"),
        "/etc/passwd".to_owned(),
    ];
    let mut paths = expect_hidden.clone();
    paths.extend(visible.iter().cloned());
    let name = unique_id("hidden");
    let seen = look(&rt, &name, &[], Some(&cwd), &paths);
    for path in &expect_hidden {
        assert_hidden(&seen, path);
    }
    assert_eq!(seen[&visible[0]], "file 12", "the project is readable");
    assert!(seen[&visible[1]].starts_with("file "), "{seen:?}");
    assert!(seen["/etc/passwd"].starts_with("file "), "{seen:?}");
    if Path::new("/etc/shadow")
        .metadata()
        .is_ok_and(|m| m.len() > 0)
    {
        assert_hidden(&seen, "/etc/shadow");
    }
    eprintln!("{} paths hidden and checked", expect_hidden.len());
    assert_no_leftovers(rt.root(), &name);

    // The host still has every one of them.
    assert_eq!(
        fs::read_to_string(other_home.path("notes.txt")).unwrap(),
        "someone else's\n"
    );
}

#[test]
fn expose_and_hide_change_the_list() {
    let rt = Runtime::new();
    let project_home = FakeHome::new("proj");
    let other_home = FakeHome::new("other");
    let cwd = project_home.0.join("project");
    project_home.put("project/secret.txt", "mine\n");
    project_home.put("project/private/key", "mine\n");
    project_home.put(".npmrc", "//registry:_authToken=x\n");
    other_home.put("notes.txt", "theirs\n");
    other_home.put(".ssh/id_rsa", "SECRET\n");

    let name = unique_id("expose");
    let other = other_home.path("");
    let other = other.trim_end_matches('/');
    let npmrc = project_home.path(".npmrc");
    let secret = project_home.path("project/secret.txt");
    let private = project_home.path("project/private");
    let seen = look(
        &rt,
        &name,
        &[
            "--expose",
            &format!("{other}/"),
            "--expose",
            &npmrc,
            "--hide",
            &secret,
            "--hide",
            &private,
        ],
        Some(&cwd),
        &[
            other_home.path("notes.txt"),
            other_home.path(".ssh"),
            npmrc.clone(),
            secret.clone(),
            private.clone(),
        ],
    );
    assert_eq!(
        seen[&other_home.path("notes.txt")],
        "file 7",
        "exposed home"
    );
    assert_hidden(&seen, &other_home.path(".ssh"));
    assert_eq!(seen[&npmrc], "file 24", "exposed credential");
    assert_hidden(&seen, &secret);
    assert_hidden(&seen, &private);
    assert_no_leftovers(rt.root(), &name);

    // Only entries of the default list can be exposed.
    let name = unique_id("expose-bad");
    let out = run(&rt, &name, &["--expose", "/etc/passwd"], &["true"]);
    refused(
        &rt,
        &name,
        &out,
        &["--expose /etc/passwd: not hidden", "/etc/shadow"],
    );
    let out = run(&rt, &name, &["--hide", "relative/path"], &["true"]);
    refused(&rt, &name, &out, &["--hide relative/path", "absolute"]);
    // A working directory the world could not see.
    let ssh = other_home.path(".ssh");
    let out = run_in(&rt, &name, &[], &["true"], Some(Path::new(&ssh)));
    refused(&rt, &name, &out, &[&format!("--expose {ssh}")]);
}

#[test]
fn the_environment_is_five_variables_plus_what_is_asked_for() {
    let rt = Runtime::new();
    let name = unique_id("env");
    let caller = |cmd: &mut Command| {
        cmd.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("HOME", "/root")
            .env("TERM", "dumb")
            .env("LANG", "C.UTF-8")
            .env("USER", "root")
            .env("AWS_SECRET_ACCESS_KEY", "leak")
            .env("GITHUB_TOKEN", "leak")
            .env("PASSED", "passed value")
            .env("SSH_AUTH_SOCK", "/tmp/agent");
    };
    let mut cli = rt.cli(&[
        "run",
        "--name",
        &name,
        "--env-pass",
        "PASSED",
        "--env",
        "SET=a=b",
        "--env",
        "TERM=xterm",
        "--",
        "/usr/bin/env",
    ]);
    caller(&mut cli);
    let out = stdout_ok(&cli.output().unwrap());
    let mut env: Vec<&str> = out
        .lines()
        // The runtime injects the tracer, whatever the environment.
        .filter(|l| *l != "LD_PRELOAD=/.substrate/libsubstrate_preload.so")
        .collect();
    env.sort();
    assert_eq!(
        env,
        [
            "HOME=/root",
            "LANG=C.UTF-8",
            "PASSED=passed value",
            "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
            "SET=a=b",
            "TERM=xterm",
            "USER=root",
        ]
    );
    let record = rt.record(&name)["env"].to_string();
    assert!(
        !record.contains("leak") && !record.contains("SSH_AUTH_SOCK"),
        "{record}"
    );
    assert_no_leftovers(rt.root(), &name);

    // Variables the caller lacks are simply not there; PATH falls back.
    let bare = unique_id("env-bare");
    let mut cli = rt.cli(&["run", "--name", &bare, "--", "/usr/bin/env"]);
    cli.env_remove("TERM")
        .env_remove("LANG")
        .env_remove("USER")
        .env_remove("PATH")
        .env("HOME", "/nowhere");
    let out = stdout_ok(&cli.output().unwrap());
    assert!(
        out.contains("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"),
        "{out}"
    );
    assert!(out.contains("HOME=/nowhere\n"), "{out}");
    assert!(!out.contains("TERM=") && !out.contains("LANG="), "{out}");

    // An unset --env-pass is an error that names it; so is --env without =.
    let name = unique_id("env-bad");
    let out = run(
        &rt,
        &name,
        &["--env-pass", "SUBSTRATE_TEST_UNSET_VAR"],
        &["true"],
    );
    refused(
        &rt,
        &name,
        &out,
        &["--env-pass SUBSTRATE_TEST_UNSET_VAR", "not set"],
    );
    let out = run(&rt, &name, &["--env", "NOEQUALS"], &["true"]);
    refused(
        &rt,
        &name,
        &out,
        &["--env \"NOEQUALS\"", "--env-pass NOEQUALS"],
    );

    // --help states the rule.
    let help = rt.cli(&["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("only PATH, HOME, TERM, LANG and USER from this environment"),
        "{help}"
    );
}

/// Runs a world that waits on its stdin and calls `inspect` with its
/// cgroup while it runs.
fn while_running(rt: &Runtime, name: &str, flags: &[&str], inspect: impl FnOnce(&Cgroup)) {
    let mut args = vec!["run", "--name", name];
    args.extend(flags);
    args.extend(["--", "sh", "-c", "echo ready; read line"]);
    let mut child = rt
        .cli(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n", "the world started");
    inspect(&Cgroup::at(format!("substrate/{name}")));
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_leftovers(rt.root(), name);
}

fn host_memory() -> i64 {
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap();
    let kib: i64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// The memory + swap limit equals the memory limit, where the kernel
/// accounts swap per cgroup.
#[track_caller]
fn assert_no_swap_beyond(cg: &Cgroup, memory: i64) {
    match cgroup::version() {
        Version::V1 => {
            let memsw = cg.dir("memory").join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                let value = fs::read_to_string(&memsw).unwrap();
                assert_eq!(value.trim(), memory.to_string(), "memsw = memory");
            }
        }
        Version::V2 => {
            let swap = cg.dir("memory").join("memory.swap.max");
            if swap.exists() {
                assert_eq!(fs::read_to_string(&swap).unwrap().trim(), "0");
            }
        }
    }
}

#[test]
fn default_limits_are_set_and_the_flags_change_or_lift_them() {
    let rt = Runtime::new();
    let cpus = std::thread::available_parallelism().unwrap().get() as i64;
    let memory = (host_memory() / 2).min(2 << 30);
    let name = unique_id("limits");
    while_running(&rt, &name, &[], |cg| {
        cg.assert_setting(Setting::MemoryLimit, memory);
        assert_no_swap_beyond(cg, memory);
        cg.assert_setting(Setting::PidsLimit, 1024);
        cg.assert_setting(Setting::CpuQuota, (cpus - 1).max(1) * 100_000);
        cg.assert_setting(Setting::CpuPeriod, 100_000);
    });

    let name = unique_id("limits-set");
    while_running(
        &rt,
        &name,
        &["--memory", "512m", "--cpus", "0.5", "--pids", "100"],
        |cg| {
            cg.assert_setting(Setting::MemoryLimit, 512 << 20);
            assert_no_swap_beyond(cg, 512 << 20);
            cg.assert_setting(Setting::PidsLimit, 100);
            cg.assert_setting(Setting::CpuQuota, 50_000);
        },
    );

    let name = unique_id("limits-lifted");
    while_running(
        &rt,
        &name,
        &[
            "--memory",
            "unlimited",
            "--cpus",
            "unlimited",
            "--pids",
            "unlimited",
        ],
        |cg| {
            cg.assert_setting(Setting::MemoryLimit, -1);
            cg.assert_setting(Setting::PidsLimit, -1);
            cg.assert_setting(Setting::CpuQuota, -1);
        },
    );

    // Nonsense is refused before any world exists.
    for (flag, value) in [
        ("--memory", "12q"),
        ("--memory", "1m"),
        ("--cpus", "0"),
        ("--pids", "0"),
    ] {
        let name = unique_id("limits-bad");
        let out = run(&rt, &name, &[flag, value], &["true"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {value}");
        assert!(stderr.contains(value), "{flag} {value}: {stderr}");
        assert!(!rt.world_dir(&name).exists());
    }
    let name = unique_id("limits-bad");
    let too_many = (cpus + 1).to_string();
    let out = run(&rt, &name, &["--cpus", &too_many], &["true"]);
    refused(&rt, &name, &out, &[&format!("this host has {cpus} CPUs")]);
}

/// Forks until the kernel refuses, then reports how many it made and the
/// errno: the children wait, so each one holds its pid.
const FORK_UNTIL_REFUSED: &str = r#"
import errno, os, signal, sys
limit = int(sys.argv[1])
made = 0
try:
    while made < limit:
        pid = os.fork()
        if pid == 0:
            signal.pause()
            os._exit(0)
        made += 1
    print("made", made, "none refused")
except OSError as e:
    print("made", made, "then", errno.errorcode[e.errno])
"#;

#[test]
fn a_fork_bomb_gets_eagain_at_the_pids_limit() {
    let rt = Runtime::new();
    let name = unique_id("forkbomb");
    let out = run(
        &rt,
        &name,
        &["--pids", "64"],
        &["/usr/bin/python3", "-c", FORK_UNTIL_REFUSED, "5000"],
    );
    let stdout = stdout_ok(&out);
    let words: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(words.len(), 4, "{stdout}");
    let made: i64 = words[1].parse().unwrap();
    assert_eq!(words[3], "EAGAIN", "{stdout}");
    // 64 with python itself; nothing else of the world's counts.
    assert!((50..64).contains(&made), "{stdout}");
    assert_no_leftovers(rt.root(), &name);

    // The default limit holds a thread bomb too (threads are tasks).
    let name = unique_id("threadbomb");
    let out = run(
        &rt,
        &name,
        &[],
        &[
            "/usr/bin/python3",
            "-c",
            "import threading\n\
             threading.stack_size(64 * 1024)\n\
             stop = threading.Event()\n\
             n = 0\n\
             try:\n\
             \x20   while n < 5000:\n\
             \x20       threading.Thread(target=stop.wait).start()\n\
             \x20       n += 1\n\
             except RuntimeError as e:\n\
             \x20   print(n, e)\n\
             stop.set()\n",
        ],
    );
    let stdout = stdout_ok(&out);
    let made: i64 = stdout.split_whitespace().next().unwrap().parse().unwrap();
    assert!((1000..1024).contains(&made), "{stdout}");
    assert!(stdout.contains("can't start new thread"), "{stdout}");
    assert_no_leftovers(rt.root(), &name);
}

#[test]
fn a_memory_hog_is_oom_killed_inside_the_world() {
    let rt = Runtime::new();
    let name = unique_id("oom");
    // The hog is killed; the world's shell goes on and reports it.
    let out = run(
        &rt,
        &name,
        &["--memory", "64m"],
        &[
            "sh",
            "-c",
            "/usr/bin/python3 -c 'x = b\"\\x01\" * (512 << 20); print(\"survived\")'; echo hog status $?",
        ],
    );
    let stdout = stdout_ok(&out);
    assert_eq!(stdout, "hog status 137\n", "SIGKILL by the OOM killer");
    assert_no_leftovers(rt.root(), &name);

    // When the hog is the world's own process, the world ends with it
    // (PID 1: without the init, which would report it as 137).
    let name = unique_id("oom-init");
    let out = run(
        &rt,
        &name,
        &["--memory", "64m", "--no-init"],
        &["/usr/bin/python3", "-c", "x = b'\\x01' * (512 << 20)"],
    );
    assert_eq!(out.status.code(), Some(137), "{:?}", out);
    assert_eq!(rt.record(&name)["exit"], serde_json::json!({"signal": 9}));
    assert_no_leftovers(rt.root(), &name);
}

#[test]
fn the_cpu_limit_throttles_a_busy_world() {
    let rt = Runtime::new();
    let name = unique_id("cpu");
    // Two seconds of wall time spinning get at most half a CPU's time.
    let out = run(
        &rt,
        &name,
        &["--cpus", "0.5"],
        &[
            "/usr/bin/python3",
            "-c",
            "import os, time\n\
             t = time.monotonic()\n\
             while time.monotonic() - t < 2: pass\n\
             c = os.times(); print(c.user + c.system)\n",
        ],
    );
    let used: f64 = stdout_ok(&out).trim().parse().unwrap();
    assert!(used <= 1.3, "used {used} s of CPU in 2 s at --cpus 0.5");
    assert_no_leftovers(rt.root(), &name);
}

/// Calls Docker's profile refuses, and calls it allows, made raw (so no
/// library falls back or hides the errno). Prints `name result` lines.
const SYSCALLS: &str = r#"
import ctypes, errno, os, socket
libc = ctypes.CDLL(None, use_errno=True)
arch = os.uname().machine
NR = {
    "x86_64": {"clone": 56, "add_key": 248, "keyctl": 250, "bpf": 321, "clone3": 435,
               "io_uring_setup": 425, "personality": 135, "unshare": 272, "ptrace": 101},
    "aarch64": {"clone": 220, "add_key": 217, "keyctl": 219, "bpf": 280, "clone3": 435,
                "io_uring_setup": 425, "personality": 92, "unshare": 97, "ptrace": 117},
}[arch]
def call(name, *args):
    r = libc.syscall(NR[name], *[ctypes.c_long(a) for a in args])
    return "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]
def clone(flags):
    pid = libc.syscall(NR["clone"], ctypes.c_long(flags | 17), 0, 0, 0, 0)
    if pid == 0:
        os._exit(0)
    if pid < 0:
        return errno.errorcode[ctypes.get_errno()]
    os.waitpid(pid, 0)
    return "ok"
def sock(family, kind):
    try:
        socket.socket(family, kind).close()
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
print("clone", clone(0))
print("clone-newuser", clone(0x10000000))
print("unshare-newuser", call("unshare", 0x10000000))
print("clone3", call("clone3", 0, 0))
print("add_key", call("add_key", 0, 0, 0, 0, 0))
print("keyctl", call("keyctl", 0, 0, 0, 0, 0))
print("bpf", call("bpf", 0, 0, 0))
print("io_uring_setup", call("io_uring_setup", 1, 0))
print("personality-query", call("personality", 0xffffffff))
print("personality-noaslr", call("personality", 0x0040000))
print("socket-unix", sock(socket.AF_UNIX, socket.SOCK_STREAM))
print("socket-inet", sock(socket.AF_INET, socket.SOCK_DGRAM))
print("socket-vsock", sock(40, socket.SOCK_STREAM))
print("socket-alg", sock(38, socket.SOCK_SEQPACKET))
for line in open("/proc/self/status"):
    if line.startswith("Seccomp:"):
        print("seccomp", line.split()[1])
"#;

fn syscalls(rt: &Runtime, name: &str, flags: &[&str]) -> std::collections::HashMap<String, String> {
    let out = stdout_ok(&run(rt, name, flags, &["/usr/bin/python3", "-c", SYSCALLS]));
    assert_no_leftovers(rt.root(), name);
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[test]
fn seccomp_refuses_what_docker_refuses_and_ordinary_work_runs() {
    let rt = Runtime::new();
    let confined = syscalls(&rt, &unique_id("seccomp"), &[]);
    let expect = [
        ("seccomp", "2"),
        ("clone", "ok"),
        ("clone-newuser", "EPERM"),
        ("unshare-newuser", "EPERM"),
        ("clone3", "ENOSYS"),
        ("add_key", "EPERM"),
        ("keyctl", "EPERM"),
        ("bpf", "EPERM"),
        ("io_uring_setup", "EPERM"),
        ("personality-query", "ok"),
        ("personality-noaslr", "EPERM"),
        ("socket-unix", "ok"),
        ("socket-inet", "ok"),
        ("socket-vsock", "EPERM"),
        ("socket-alg", "EPERM"),
    ];
    for (call, result) in expect {
        assert_eq!(
            confined.get(call).map(String::as_str),
            Some(result),
            "{call}: {confined:?}"
        );
    }

    // Without the filter the same calls get through (or fail for another
    // reason): it is the filter that refuses them.
    let unconfined = syscalls(&rt, &unique_id("unconfined"), &["--seccomp", "unconfined"]);
    assert_eq!(unconfined["seccomp"], "0");
    assert_eq!(unconfined["clone-newuser"], "ok", "{unconfined:?}");
    assert_eq!(unconfined["unshare-newuser"], "ok", "{unconfined:?}");
    assert_eq!(unconfined["personality-noaslr"], "ok", "{unconfined:?}");
    assert_ne!(unconfined["keyctl"], "EPERM", "{unconfined:?}");

    // Ordinary work: a shell pipeline, threads and subprocesses, a C build.
    let name = unique_id("seccomp-work");
    let mut script = String::from(
        "set -e; ls / | sort | head -1 > /tmp/first; cat /tmp/first; \
         /usr/bin/python3 -c 'import subprocess, threading; t = threading.Thread(target=print, args=(\"thread\",)); t.start(); t.join(); print(subprocess.run([\"echo\", \"child\"], capture_output=True, text=True).stdout.strip())'",
    );
    let gcc = Path::new("/usr/bin/gcc").exists();
    if gcc {
        script.push_str(
            "; printf '#include <stdio.h>\\nint main(void){puts(\"built\");return 0;}\\n' > /tmp/h.c; gcc -o /tmp/h /tmp/h.c; /tmp/h",
        );
    }
    let out = stdout_ok(&run(&rt, &name, &[], &["sh", "-c", &script]));
    let mut expect = String::from("bin\nthread\nchild\n");
    if gcc {
        expect.push_str("built\n");
    }
    assert_eq!(out, expect);
    assert_no_leftovers(rt.root(), &name);
}

#[test]
fn bundle_and_rootfs_worlds_get_the_filter_and_limits() {
    let rt = Runtime::new();
    let base = substrate_tests::base_bundles();
    let name = unique_id("rootfs-defaults");
    let out = stdout_ok(&run(
        &rt,
        &name,
        &["--rootfs", base.rootfs().to_str().unwrap(), "--pids", "77"],
        &["sh", "-c", "grep Seccomp: /proc/self/status; echo $HOME"],
    ));
    assert!(out.starts_with("Seccomp:\t2\n"), "{out}");
    assert_no_leftovers(rt.root(), &name);

    // A bundle without a filter or limits of its own gets both; --hide and
    // --env apply to it too.
    let name = unique_id("bundle-defaults");
    let mut bundle = Bundle::new(&name, &["true"]);
    bundle.edit(|c| {
        c["root"]["readonly"] = false.into();
        if let Some(linux) = c["linux"].as_object_mut() {
            linux.remove("seccomp");
            if let Some(resources) = linux.get_mut("resources").and_then(|r| r.as_object_mut()) {
                resources.remove("pids");
            }
        }
    });
    let mut child = rt
        .cli(&[
            "run",
            "--bundle",
            bundle.path_str(),
            "--name",
            &name,
            "--pids",
            "88",
            "--hide",
            "/etc/passwd",
            "--env",
            "FROM_FLAG=1",
            "--",
            "sh",
            "-c",
            "grep Seccomp: /proc/self/status; wc -c < /etc/passwd; echo $FROM_FLAG; echo ready; read line",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.ends_with("ready\n") {
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
    }
    let cg = Cgroup::of_world(&name);
    let pids = cg.read(Setting::PidsLimit);
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(seen, "Seccomp:\t2\n0\n1\nready\n");
    assert_eq!(pids.unwrap(), "88");
    assert_no_leftovers(rt.root(), &name);
}
