//! The proc connector on the real kernel: fork, exec and exit of a process
//! tree, static binaries included. Every test has its own subscription and
//! follows only its own tree, so tests run in parallel with each other and
//! with whatever else the machine runs. The connector reports every process
//! on the machine, so each subscription gets a receive buffer that load
//! cannot fill while a test reads: a lost event is a failure, except in the
//! one test that makes the kernel drop events on purpose.

use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use substrate_sensor::proc_connector::{
    ProcEvent, ProcEventKind, ProcEvents, ProcessTree, Received, TreeChange,
};

/// The receive buffer every test asks for. The kernel doubles it to 64 MiB,
/// and charges about 830 bytes per event: some 80 000 events between two
/// reads. The busiest thing the suite does, 10 000 execs in one world,
/// makes 30 000 events in about 20 seconds.
const RECEIVE_BUFFER: usize = 32 << 20;

/// A subscription with [`RECEIVE_BUFFER`], as granted: root's
/// SO_RCVBUFFORCE, not a request that net.core.rmem_max capped.
fn subscribe() -> ProcEvents {
    let events = ProcEvents::subscribe_with_receive_buffer(RECEIVE_BUFFER).expect("subscribe");
    assert_eq!(events.receive_buffer().unwrap(), 2 * RECEIVE_BUFFER);
    events
}

/// What one tree did, in the order the kernel reported it.
#[derive(Debug, Default)]
struct Record {
    changes: Vec<(TreeChange, ProcEvent)>,
}

impl Record {
    fn joined(&self) -> Vec<(i32, i32)> {
        self.changes
            .iter()
            .filter_map(|(c, _)| match *c {
                TreeChange::Joined { tgid, parent_tgid } => Some((tgid, parent_tgid)),
                _ => None,
            })
            .collect()
    }
    fn execs(&self) -> Vec<i32> {
        self.changes
            .iter()
            .filter_map(|(c, _)| match *c {
                TreeChange::Exec { tgid } => Some(tgid),
                _ => None,
            })
            .collect()
    }
    fn left(&self, tgid: i32) -> Option<std::process::ExitStatus> {
        self.changes.iter().find_map(|(c, _)| match *c {
            TreeChange::Left { tgid: t, status } if t == tgid => Some(status),
            _ => None,
        })
    }
}

/// Spawns `argv` and follows its tree until every member has left. A lost
/// event fails the test.
fn follow(events: &mut ProcEvents, argv: &[&str]) -> (Record, ProcessTree, Child) {
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .spawn()
        .expect("spawn");
    let mut tree = ProcessTree::new(child.id() as i32);
    let mut record = Record::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !tree.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out with {} members left: {record:#?}",
            tree.len()
        );
        let batch = events
            .next_events(Some(left))
            .unwrap_or_else(|e| panic!("{e}"));
        for item in batch {
            match item {
                Received::Event(e) => {
                    if let Some(change) = tree.apply(&e) {
                        record.changes.push((change, e));
                    }
                }
                Received::Lost => panic!(
                    "events lost with a {}-byte receive buffer, following {argv:?}: {record:#?}",
                    events.receive_buffer().unwrap()
                ),
            }
        }
    }
    assert!(tree.is_complete());
    child.wait().expect("wait");
    (record, tree, child)
}

#[test]
fn follows_fork_exec_and_exit_of_a_tree() {
    let mut events = subscribe();
    let mut stranger = Command::new("/bin/sleep").arg("0.2").spawn().unwrap();
    let stranger_pid = stranger.id() as i32;
    let (record, tree, child) = follow(
        &mut events,
        &[
            "/bin/sh",
            "-c",
            r#"/bin/true; (exit 3); /bin/sh -c 'kill -TERM $$'; exec /bin/true"#,
        ],
    );
    stranger.wait().unwrap();
    let root = child.id() as i32;

    // Three children, all forked by the root: /bin/true, the subshell, the inner sh.
    let joined = record.joined();
    assert_eq!(joined.len(), 3, "{record:#?}");
    assert!(
        joined.iter().all(|&(_, parent)| parent == root),
        "{joined:?}"
    );
    assert!(joined.iter().all(|&(tgid, _)| tgid != stranger_pid));
    assert_eq!(tree.joined(), 3);
    let (true_pid, subshell, inner_sh) = (joined[0].0, joined[1].0, joined[2].0);

    // The root execs twice (sh, then `exec /bin/true`); the subshell never does.
    let execs = record.execs();
    assert_eq!(execs, vec![root, true_pid, inner_sh, root], "{record:#?}");

    // exit_code is the raw wait status.
    assert_eq!(record.left(true_pid).unwrap().code(), Some(0));
    assert_eq!(record.left(subshell).unwrap().code(), Some(3));
    assert_eq!(
        record.left(inner_sh).unwrap().signal(),
        Some(15),
        "{record:#?}"
    );
    assert_eq!(record.left(root).unwrap().code(), Some(0));
    assert!(record.left(stranger_pid).is_none());

    // Per process: joined, then exec, then left; kernel timestamps never go back.
    for pid in [true_pid, subshell, inner_sh] {
        let kinds: Vec<_> = record
            .changes
            .iter()
            .filter(|(c, _)| match *c {
                TreeChange::Joined { tgid, .. }
                | TreeChange::Exec { tgid }
                | TreeChange::Left { tgid, .. } => tgid == pid,
            })
            .collect();
        assert!(matches!(
            kinds.first(),
            Some((TreeChange::Joined { .. }, _))
        ));
        assert!(matches!(kinds.last(), Some((TreeChange::Left { .. }, _))));
        assert!(kinds
            .windows(2)
            .all(|w| w[0].1.timestamp_ns <= w[1].1.timestamp_ns));
    }
    // The child's Left comes before the root's next exec: sh waits for it.
    let pos = |f: &dyn Fn(&TreeChange) -> bool| record.changes.iter().position(|(c, _)| f(c));
    let true_left = pos(&|c| matches!(c, TreeChange::Left { tgid, .. } if *tgid == true_pid));
    let root_exec2 = record
        .changes
        .iter()
        .rposition(|(c, _)| *c == TreeChange::Exec { tgid: root });
    assert!(true_left < root_exec2);
}

#[test]
fn a_burst_of_200_short_lived_processes_is_counted() {
    let mut events = subscribe();
    let (record, _tree, _child) = follow(
        &mut events,
        &["/bin/sh", "-c", "for i in $(seq 200); do /bin/true; done"],
    );
    // The $(seq) subshell and 200 /bin/true; each execs once, as does the root.
    assert_eq!(record.joined().len(), 201);
    assert_eq!(record.execs().len(), 202);
    let exits = record
        .changes
        .iter()
        .filter(|(c, _)| matches!(c, TreeChange::Left { status, .. } if status.success()))
        .count();
    assert_eq!(exits, 202);
}

#[test]
fn a_static_binary_exec_is_seen() {
    let mut events = subscribe();
    let (record, _tree, child) = follow(
        &mut events,
        &[
            "/bin/busybox",
            "sh",
            "-c",
            "/bin/busybox true; exec /bin/busybox true",
        ],
    );
    let root = child.id() as i32;
    let joined = record.joined();
    assert_eq!(joined.len(), 1, "{record:#?}");
    let applet = joined[0].0;
    // busybox is static: no LD_PRELOAD could see these, the kernel does.
    assert_eq!(record.execs(), vec![root, applet, root], "{record:#?}");
    assert_eq!(record.left(applet).unwrap().code(), Some(0));
    assert_eq!(record.left(root).unwrap().code(), Some(0));
}

#[test]
fn threads_do_not_join_the_tree() {
    let mut events = subscribe();
    // A process with three threads besides its main one, which exits last.
    let mut child = Command::new("/usr/bin/perl")
        .args([
            "-Mthreads",
            "-e",
            "my @t = map { threads->create(sub { select(undef, undef, undef, 0.05) }) } 1..3; \
             $_->join for @t;",
        ])
        .spawn()
        .expect("spawn perl");
    let root = child.id() as i32;
    let mut tree = ProcessTree::new(root);
    let (mut thread_forks, mut thread_exits, mut changes) = (Vec::new(), Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !tree.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out: {changes:?}");
        for item in events.next_events(Some(left)).unwrap() {
            let Received::Event(e) = item else {
                panic!("events lost")
            };
            match e.kind {
                ProcEventKind::Fork {
                    child_pid,
                    child_tgid,
                    ..
                } if child_tgid == root && child_pid != root => thread_forks.push(e.clone()),
                ProcEventKind::Exit { pid, tgid, .. } if tgid == root && pid != root => {
                    thread_exits.push(e.clone())
                }
                _ => {}
            }
            if let Some(change) = tree.apply(&e) {
                changes.push(change);
            }
        }
    }
    child.wait().unwrap();
    assert_eq!(thread_forks.len(), 3, "{thread_forks:#?}");
    assert_eq!(thread_exits.len(), 3, "{thread_exits:#?}");
    // A thread's "parent" is its process's parent (real_parent), not the
    // process; a thread's exit_signal is -1.
    for fork in &thread_forks {
        let ProcEventKind::Fork { parent_tgid, .. } = fork.kind else {
            unreachable!()
        };
        assert_eq!(parent_tgid, std::process::id() as i32);
    }
    for exit in &thread_exits {
        let ProcEventKind::Exit { exit_signal, .. } = exit.kind else {
            unreachable!()
        };
        assert_eq!(exit_signal, -1);
    }
    // No thread joined; the process left once, after its threads.
    assert_eq!(tree.joined(), 0);
    assert!(
        matches!(
            changes.as_slice(),
            [TreeChange::Exec { .. }, TreeChange::Left { tgid, status }]
                if *tgid == root && status.success()
        ),
        "{changes:?}"
    );
}

#[test]
fn dropping_one_subscription_leaves_the_others_listening() {
    let mut kept = subscribe();
    drop(ProcEvents::subscribe().expect("subscribe"));
    let (record, _tree, child) = follow(&mut kept, &["/bin/true"]);
    assert_eq!(record.execs(), vec![child.id() as i32]);
}

#[test]
fn an_overrun_is_reported_and_the_socket_recovers() {
    // The smallest buffer: 4 KiB asked, 8 KiB granted, room for about ten
    // events. 50 processes make 150 at least, and nobody reads meanwhile:
    // the kernel must drop events.
    let mut events = ProcEvents::subscribe_with_receive_buffer(4096).expect("subscribe");
    assert_eq!(events.receive_buffer().unwrap(), 8192);
    let status = Command::new("/bin/sh")
        .args(["-c", "for i in $(seq 50); do /bin/true; done"])
        .status()
        .unwrap();
    assert!(status.success());
    // From now on the buffer is big enough that nothing overruns it again.
    // (What the kernel dropped stays dropped, and it delivers nothing more
    // until the queue has been read empty.)
    events.set_receive_buffer(RECEIVE_BUFFER).unwrap();
    assert_eq!(events.receive_buffer().unwrap(), 2 * RECEIVE_BUFFER);

    // The overrun is reported first, then the events queued before it. All
    // of that was queued when the loop above ended.
    let mut read = events.next_events(Some(Duration::ZERO)).unwrap();
    assert_eq!(read.first(), Some(&Received::Lost), "{read:#?}");
    // Read empty: an empty answer means a read found the queue empty, and
    // the kernel delivers again.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let batch = events.next_events(Some(Duration::ZERO)).unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "the queue never emptied");
        read.extend(batch);
    }
    let lost = read.iter().filter(|r| **r == Received::Lost).count();
    assert_eq!(lost, 1, "one overrun, reported once: {read:#?}");
    assert!(
        read.len() > 1,
        "the events queued before the overrun: {read:#?}"
    );

    // Still subscribed: a new process is seen in full.
    let (record, _tree, child) = follow(&mut events, &["/bin/true"]);
    assert_eq!(record.execs(), vec![child.id() as i32], "{record:#?}");
}
