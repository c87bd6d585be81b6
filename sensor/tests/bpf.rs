//! The eBPF source on the real kernel: a "world" here is a pid namespace
//! made by `unshare`, held on its stdin until the sensor watches it.
//! These tests need root and a kernel that loads the programs; they fail
//! (never skip) where it does not, since CI's hosts do.

use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use substrate_sensor::bpf::{
    host_state, ExecEvent, KernelEvent, NetCall, NetEvent, SensorError, SockAddr, WorldWatch,
};

/// The tests here register worlds on the host's one sensor; the last-world
/// test needs to know that its world is the last.
static HOST: Mutex<()> = Mutex::new(());

fn host() -> std::sync::MutexGuard<'static, ()> {
    HOST.lock().unwrap_or_else(|e| e.into_inner())
}

/// A shell as pid 1 of a new pid namespace, waiting for a line on stdin.
struct HeldWorld {
    unshare: Child,
    init: i32,
}

impl HeldWorld {
    fn new(script: &str) -> HeldWorld {
        let script = format!("read go; {script}");
        let mut unshare = Command::new("unshare")
            .args([
                "--pid",
                "--fork",
                "--mount-proc",
                "/bin/busybox",
                "sh",
                "-c",
            ])
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("unshare");
        let children = format!("/proc/{0}/task/{0}/children", unshare.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        let init: i32 = loop {
            let text = std::fs::read_to_string(&children).unwrap_or_default();
            if let Some(pid) = text.split_whitespace().next() {
                break pid.parse().unwrap();
            }
            if Instant::now() > deadline {
                let _ = unshare.kill();
                panic!("unshare started no child");
            }
            std::thread::yield_now();
        };
        // The shell must be running (waiting on `read`) before it is
        // watched: its own exec is not what the tests are about.
        let cmdline = format!("/proc/{init}/cmdline");
        while !std::fs::read(&cmdline)
            .unwrap_or_default()
            .starts_with(b"/bin/busybox")
        {
            assert!(Instant::now() < deadline, "the world's shell did not start");
            std::thread::yield_now();
        }
        HeldWorld { unshare, init }
    }

    /// Lets the script run and waits for it to end.
    fn run(mut self) {
        let mut stdin = self.unshare.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
        drop(stdin);
        let status = self.unshare.wait().unwrap();
        assert!(status.success(), "the world's script failed: {status}");
    }
}

/// Everything the world's ring holds once the world has ended.
fn drain(watch: &mut WorldWatch) -> Vec<KernelEvent> {
    let batch = watch.read();
    assert_eq!(batch.malformed, 0, "malformed records");
    assert_eq!(watch.dropped(), 0, "records dropped");
    batch.events
}

fn execs(events: &[KernelEvent]) -> Vec<&ExecEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            KernelEvent::Exec(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn nets(events: &[KernelEvent]) -> Vec<&NetEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            KernelEvent::Net(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn bytes(args: &[&str]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.as_bytes().to_vec()).collect()
}

/// 1,000 short static execs: every one has its exact argv (an empty
/// argument included), exe, cwd and world pids, read in the kernel.
#[test]
fn every_short_static_exec_has_its_argv() {
    let _host = host();
    let world = HeldWorld::new(
        "cd /tmp && i=0; while [ $i -lt 1000 ]; do /bin/busybox true \"n $i\" ''; i=$((i+1)); done",
    );
    let mut watch = WorldWatch::start(world.init).expect("the sensor loads here");
    world.run();
    let events = drain(&mut watch);
    let execs = execs(&events);
    assert_eq!(execs.len(), 1000, "one event per exec");
    for (i, exec) in execs.iter().enumerate() {
        let n = format!("n {i}");
        assert_eq!(exec.argv, bytes(&["/bin/busybox", "true", &n, ""]));
        assert_eq!(exec.argc, 4);
        assert_eq!(exec.filename, b"/bin/busybox");
        let exe = exec.exe.as_deref().expect("exe");
        assert!(
            exe.ends_with(b"/busybox"),
            "exe {}",
            String::from_utf8_lossy(exe)
        );
        assert_eq!(exec.cwd.as_deref(), Some(&b"/tmp"[..]));
        assert_eq!(
            exec.header.world_ppid,
            Some(1),
            "the shell is the world's pid 1"
        );
        assert!(exec.header.world_pid > 1);
        assert!(!exec.argv_truncated && !exec.argv_unreadable);
    }
}

/// A long argv is cut at 4 KiB, and says so and how long it was.
#[test]
fn a_long_argv_is_cut_and_flagged() {
    let _host = host();
    let long = "x".repeat(6000);
    let world = HeldWorld::new(&format!("/bin/busybox true {long}"));
    let mut watch = WorldWatch::start(world.init).unwrap();
    world.run();
    let events = drain(&mut watch);
    let exec = execs(&events)[0].clone();
    assert!(exec.argv_truncated);
    assert_eq!(exec.argv_len as usize, "/bin/busybox\0true\0".len() + 6001);
    assert_eq!(exec.argv[..2], bytes(&["/bin/busybox", "true"])[..]);
    assert!(exec.argv[2].iter().all(|&b| b == b'x'));
}

/// Two worlds at once: each ring holds its own world's execs only.
#[test]
fn two_worlds_keep_their_events_apart() {
    let _host = host();
    let a = HeldWorld::new("for i in 1 2 3; do /bin/busybox true a$i; done");
    let b = HeldWorld::new("for i in 1 2 3 4 5; do /bin/busybox true b$i; done");
    let mut watch_a = WorldWatch::start(a.init).unwrap();
    let mut watch_b = WorldWatch::start(b.init).unwrap();
    let (ta, tb) = (
        std::thread::spawn(|| a.run()),
        std::thread::spawn(|| b.run()),
    );
    ta.join().unwrap();
    tb.join().unwrap();
    let first_args = |events: &[KernelEvent]| -> Vec<String> {
        execs(events)
            .iter()
            .map(|e| String::from_utf8_lossy(&e.argv[2]).into_owned())
            .collect()
    };
    assert_eq!(first_args(&drain(&mut watch_a)), ["a1", "a2", "a3"]);
    assert_eq!(
        first_args(&drain(&mut watch_b)),
        ["b1", "b2", "b3", "b4", "b5"]
    );
}

/// A world that floods its ring (its monitor not reading) loses its own
/// records, counted; another world's ring is its own: nothing lost.
#[test]
fn a_busy_world_cannot_make_another_lose_events() {
    let _host = host();
    let busy = HeldWorld::new(
        "i=0; while [ $i -lt 5000 ]; do /bin/busybox true $i $i $i $i $i $i $i $i; i=$((i+1)); done",
    );
    let quiet =
        HeldWorld::new("i=0; while [ $i -lt 100 ]; do /bin/busybox true q$i; i=$((i+1)); done");
    let mut busy_watch = WorldWatch::start(busy.init).unwrap();
    let mut quiet_watch = WorldWatch::start(quiet.init).unwrap();
    let (tb, tq) = (
        std::thread::spawn(|| busy.run()),
        std::thread::spawn(|| quiet.run()),
    );
    tb.join().unwrap();
    tq.join().unwrap();
    // 5000 records of ~2 KiB do not fit the busy world's 4 MiB ring.
    let busy_batch = busy_watch.read();
    let busy_dropped = busy_watch.dropped();
    assert!(busy_dropped > 0, "the busy ring overflowed");
    assert_eq!(execs(&busy_batch.events).len() as u64 + busy_dropped, 5000);
    let quiet_events = drain(&mut quiet_watch);
    assert_eq!(execs(&quiet_events).len(), 100);
}

/// A second monitor cannot take over a world already watched.
#[test]
fn a_world_is_watched_once() {
    let _host = host();
    let world = HeldWorld::new("true");
    let _watch = WorldWatch::start(world.init).unwrap();
    let second = WorldWatch::start(world.init);
    assert!(
        matches!(second, Err(SensorError::AlreadyWatched)),
        "{second:?}"
    );
    world.run();
}

/// A process in the host's pid namespace is no world the sensor can tell
/// apart from the host.
#[test]
fn the_hosts_pid_namespace_is_not_a_world() {
    let err = WorldWatch::start(std::process::id() as i32).unwrap_err();
    assert!(matches!(err, SensorError::HostPidNamespace), "{err}");
}

/// A connect by a static program (busybox nc): the address and the
/// refusal, from the syscall tracepoints.
#[test]
fn a_static_connect_is_seen_with_its_address_and_result() {
    let _host = host();
    // A TCP port of 127.0.0.1 nothing listens on: this test's own
    // listener, bound and closed.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let world = HeldWorld::new(&format!(
        "/bin/busybox nc 127.0.0.1 {port} </dev/null; true"
    ));
    let mut watch = WorldWatch::start(world.init).unwrap();
    assert!(
        watch.sees_sockets(),
        "socket programs: {:?}",
        watch.sources()
    );
    world.run();
    let events = drain(&mut watch);
    let connects: Vec<_> = nets(&events)
        .into_iter()
        .filter(|n| n.call == NetCall::Connect)
        .collect();
    assert_eq!(connects.len(), 1, "{events:#?}");
    let connect = connects[0];
    assert_eq!(connect.address, SockAddr::Inet(Ipv4Addr::LOCALHOST, port));
    assert_eq!(connect.ret, -(libc::ECONNREFUSED as i64));
    assert_eq!(connect.sock_type, libc::SOCK_STREAM as u16);
    assert!(connect.header.world_pid > 1);
}

/// When the last world goes, the programs go with it: nothing stays
/// pinned (this binary's tests run one at a time, and `cargo test` runs one
/// binary at a time: no other world is watched meanwhile).
#[test]
fn nothing_stays_loaded_after_the_last_world() {
    let _host = host();
    let world = HeldWorld::new("true");
    let watch = WorldWatch::start(world.init).unwrap();
    let during = host_state();
    assert_eq!(during.worlds, 1, "{during:?}");
    assert!(!during.pinned.is_empty(), "{during:?}");
    world.run();
    drop(watch);
    let after = host_state();
    assert_eq!(after.worlds, 0, "{after:?}");
    assert!(after.pinned.is_empty(), "{after:?}");
}

/// What a monitor killed while it loaded the programs left (a build's dir
/// without its `map_worlds`) is swept by the next registration, whatever
/// build it was: it would keep its links' programs attached, and block its
/// build's next load.
#[test]
fn a_half_made_load_is_swept() {
    let _host = host();
    // The first registration mounts the sensor's bpffs.
    let world = HeldWorld::new("true");
    drop(WorldWatch::start(world.init).unwrap());
    world.run();
    let stale = std::path::Path::new(substrate_sensor::bpf::SENSOR_DIR)
        .join("bpf")
        .join("0000000000000000");
    std::fs::create_dir(&stale).unwrap();
    let world = HeldWorld::new("true");
    let watch = WorldWatch::start(world.init).unwrap();
    assert!(!stale.exists(), "{} is still there", stale.display());
    world.run();
    drop(watch);
}
