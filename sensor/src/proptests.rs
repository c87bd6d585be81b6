//! Property tests of the proc connector's parser: datagrams are untrusted
//! bytes until their lengths and kinds are checked, and a world decides
//! much of what the events in them say (its pids, its forks and exits).
//!
//! Every property is `proptest_*` (`cargo test proptest_` runs them);
//! `PROPTEST_CASES` sets the cases (256 unless set; `make fuzz` sets it
//! higher). A case that runs past `PROPTEST_TIMEOUT` (20 s, `.cargo/config.toml`) fails with its input.

use proptest::collection::vec;
use proptest::prelude::*;

use crate::proc_connector::{
    parse_datagram, ProcEvent, ProcEventKind, ProcessTree, Received, TreeChange, WireError,
};

const NLMSG_HDRLEN: usize = 16;
const CN_MSG_LEN: usize = 20;
/// `sizeof(struct proc_event)`.
const PROC_EVENT_LEN: usize = 40;

fn pid() -> impl Strategy<Value = i32> {
    prop_oneof![1i32..64, any::<i32>()]
}

fn event_kind() -> impl Strategy<Value = ProcEventKind> {
    let pair = || (pid(), pid());
    prop_oneof![
        (pair(), pair()).prop_map(|((parent_pid, parent_tgid), (child_pid, child_tgid))| {
            ProcEventKind::Fork {
                parent_pid,
                parent_tgid,
                child_pid,
                child_tgid,
            }
        }),
        pair().prop_map(|(pid, tgid)| ProcEventKind::Exec { pid, tgid }),
        (pair(), any::<(u32, u32)>()).prop_map(|((pid, tgid), (ruid, euid))| ProcEventKind::Uid {
            pid,
            tgid,
            ruid,
            euid
        }),
        (pair(), any::<(u32, u32)>()).prop_map(|((pid, tgid), (rgid, egid))| ProcEventKind::Gid {
            pid,
            tgid,
            rgid,
            egid
        }),
        pair().prop_map(|(pid, tgid)| ProcEventKind::Sid { pid, tgid }),
        (pair(), pair()).prop_map(|((pid, tgid), (tracer_pid, tracer_tgid))| {
            ProcEventKind::Ptrace {
                pid,
                tgid,
                tracer_pid,
                tracer_tgid,
            }
        }),
        (pair(), vec(1u8..=255, 0..16)).prop_map(|((pid, tgid), comm)| ProcEventKind::Comm {
            pid,
            tgid,
            comm
        }),
        (pair(), pair()).prop_map(|((pid, tgid), (parent_pid, parent_tgid))| {
            ProcEventKind::Coredump {
                pid,
                tgid,
                parent_pid,
                parent_tgid,
            }
        }),
        (pair(), any::<(i32, i32)>(), pair()).prop_map(
            |((pid, tgid), (exit_code, exit_signal), (parent_pid, parent_tgid))| {
                ProcEventKind::Exit {
                    pid,
                    tgid,
                    exit_code,
                    exit_signal,
                    parent_pid,
                    parent_tgid,
                }
            }
        ),
    ]
}

fn event() -> impl Strategy<Value = ProcEvent> {
    (any::<u64>(), any::<u32>(), event_kind()).prop_map(|(timestamp_ns, cpu, kind)| ProcEvent {
        timestamp_ns,
        cpu,
        kind,
    })
}

fn ints(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_ne_bytes()).collect()
}

/// `struct proc_event` as `linux/cn_proc.h` lays it out: the model the
/// parser is checked against (written from the header, not from the parser).
fn encode_event(e: &ProcEvent) -> Vec<u8> {
    let (what, data) = match &e.kind {
        ProcEventKind::Fork {
            parent_pid,
            parent_tgid,
            child_pid,
            child_tgid,
        } => (
            libc::PROC_EVENT_FORK,
            ints(&[*parent_pid, *parent_tgid, *child_pid, *child_tgid]),
        ),
        ProcEventKind::Exec { pid, tgid } => (libc::PROC_EVENT_EXEC, ints(&[*pid, *tgid])),
        ProcEventKind::Uid {
            pid,
            tgid,
            ruid,
            euid,
        } => (
            libc::PROC_EVENT_UID,
            ints(&[*pid, *tgid, *ruid as i32, *euid as i32]),
        ),
        ProcEventKind::Gid {
            pid,
            tgid,
            rgid,
            egid,
        } => (
            libc::PROC_EVENT_GID,
            ints(&[*pid, *tgid, *rgid as i32, *egid as i32]),
        ),
        ProcEventKind::Sid { pid, tgid } => (libc::PROC_EVENT_SID, ints(&[*pid, *tgid])),
        ProcEventKind::Ptrace {
            pid,
            tgid,
            tracer_pid,
            tracer_tgid,
        } => (
            libc::PROC_EVENT_PTRACE,
            ints(&[*pid, *tgid, *tracer_pid, *tracer_tgid]),
        ),
        ProcEventKind::Comm { pid, tgid, comm } => {
            let mut data = ints(&[*pid, *tgid]);
            let mut name = [0u8; 16];
            name[..comm.len()].copy_from_slice(comm);
            data.extend_from_slice(&name);
            (libc::PROC_EVENT_COMM, data)
        }
        ProcEventKind::Coredump {
            pid,
            tgid,
            parent_pid,
            parent_tgid,
        } => (
            libc::PROC_EVENT_COREDUMP,
            ints(&[*pid, *tgid, *parent_pid, *parent_tgid]),
        ),
        ProcEventKind::Exit {
            pid,
            tgid,
            exit_code,
            exit_signal,
            parent_pid,
            parent_tgid,
        } => (
            libc::PROC_EVENT_EXIT,
            ints(&[
                *pid,
                *tgid,
                *exit_code,
                *exit_signal,
                *parent_pid,
                *parent_tgid,
            ]),
        ),
    };
    let mut ev = Vec::with_capacity(PROC_EVENT_LEN);
    ev.extend_from_slice(&what.to_ne_bytes());
    ev.extend_from_slice(&e.cpu.to_ne_bytes());
    ev.extend_from_slice(&e.timestamp_ns.to_ne_bytes());
    ev.extend_from_slice(&data);
    ev.resize(ev.len().max(PROC_EVENT_LEN), 0);
    ev
}

/// One netlink message around a `cn_msg` carrying `data`, padded to 4
/// bytes, as `cn_netlink_send_mult` sends it.
fn netlink_message(kind: u16, idx: u32, val: u32, data: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDRLEN + CN_MSG_LEN + data.len();
    let mut m = Vec::with_capacity(len + 3);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&[0; 10]);
    m.extend_from_slice(&idx.to_ne_bytes());
    m.extend_from_slice(&val.to_ne_bytes());
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(&(data.len() as u16).to_ne_bytes());
    m.extend_from_slice(&[0; 2]);
    m.extend_from_slice(data);
    m.resize(len.next_multiple_of(4), 0);
    m
}

fn bare_message(kind: u16, payload: &[u8]) -> Vec<u8> {
    let len = NLMSG_HDRLEN + payload.len();
    let mut m = Vec::new();
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&[0; 10]);
    m.extend_from_slice(payload);
    m.resize(len.next_multiple_of(4), 0);
    m
}

const KNOWN_KINDS: [u32; 9] = [
    libc::PROC_EVENT_FORK,
    libc::PROC_EVENT_EXEC,
    libc::PROC_EVENT_UID,
    libc::PROC_EVENT_GID,
    libc::PROC_EVENT_SID,
    libc::PROC_EVENT_PTRACE,
    libc::PROC_EVENT_COMM,
    libc::PROC_EVENT_COREDUMP,
    libc::PROC_EVENT_EXIT,
];

/// What a datagram can hold, and what the parser must make of it.
#[derive(Clone, Debug)]
enum Part {
    Event(ProcEvent),
    Overrun,
    Noop,
    Ack,
    /// A message of another connector: skipped.
    OtherConnector(Vec<u8>),
    /// An event kind added after this parser: skipped.
    UnknownKind(u32),
}

fn part() -> impl Strategy<Value = Part> {
    prop_oneof![
        6 => event().prop_map(Part::Event),
        1 => Just(Part::Overrun),
        1 => Just(Part::Noop),
        1 => Just(Part::Ack),
        1 => vec(any::<u8>(), 0..40).prop_map(Part::OtherConnector),
        1 => any::<u32>()
            // Mapped away from the known kinds rather than filtered: a
            // million cases would exhaust proptest's rejects.
            .prop_map(|what| Part::UnknownKind(if KNOWN_KINDS.contains(&what) { what | 0x0100_0000 } else { what })),
    ]
}

fn encode(part: &Part) -> (Vec<u8>, Option<Received>) {
    let done = libc::NLMSG_DONE as u16;
    let proc_msg = |data: &[u8]| netlink_message(done, libc::CN_IDX_PROC, libc::CN_VAL_PROC, data);
    match part {
        Part::Event(e) => (proc_msg(&encode_event(e)), Some(Received::Event(e.clone()))),
        Part::Overrun => (
            bare_message(libc::NLMSG_OVERRUN as u16, &[]),
            Some(Received::Lost),
        ),
        Part::Noop => (bare_message(libc::NLMSG_NOOP as u16, &[]), None),
        Part::Ack => (
            bare_message(libc::NLMSG_ERROR as u16, &ints(&[0, 0, 0, 0, 0])),
            None,
        ),
        Part::OtherConnector(data) => (
            netlink_message(done, libc::CN_W1_IDX, libc::CN_W1_VAL, data),
            None,
        ),
        Part::UnknownKind(what) => {
            let mut ev = what.to_ne_bytes().to_vec();
            ev.resize(PROC_EVENT_LEN, 0);
            (proc_msg(&ev), None)
        }
    }
}

/// Everything a parse can say, checked for what holds of any input: an
/// error names an offset inside the datagram.
fn check(buf: &[u8]) -> Result<Option<Vec<Received>>, TestCaseError> {
    match parse_datagram(buf) {
        Ok(received) => {
            // At least 16 bytes per item.
            prop_assert!(received.len() * NLMSG_HDRLEN <= buf.len());
            Ok(Some(received))
        }
        Err(WireError::Short { offset, .. }) => {
            prop_assert!(offset <= buf.len(), "offset {} of {}", offset, buf.len());
            Ok(None)
        }
        Err(WireError::Netlink { errno }) => {
            prop_assert!(errno != 0);
            Ok(None)
        }
    }
}

proptest! {

    #[test]
    fn proptest_parse_datagram_on_any_bytes(buf in vec(any::<u8>(), 0..512)) {
        check(&buf)?;
    }

    /// What the kernel sends, parsed to exactly the events it carries.
    #[test]
    fn proptest_parse_datagram_reads_what_the_kernel_writes(parts in vec(part(), 0..8)) {
        let mut buf = Vec::new();
        let mut want = Vec::new();
        for part in &parts {
            let (bytes, received) = encode(part);
            buf.extend(bytes);
            want.extend(received);
        }
        prop_assert_eq!(check(&buf)?, Some(want));
    }

    /// Well-framed datagrams with bytes overwritten (lengths, kinds, ids,
    /// payloads): errors, never panics, and no read past the end.
    #[test]
    fn proptest_parse_datagram_on_mutated_datagrams(
        parts in vec(part(), 1..6),
        patches in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut buf: Vec<u8> = parts.iter().flat_map(|p| encode(p).0).collect();
        for (at, byte) in patches {
            let at = at.index(buf.len());
            buf[at] = byte;
        }
        if let Some(cut) = cut {
            buf.truncate(cut.index(buf.len()));
        }
        check(&buf)?;
    }

    /// The process tree, fed any events (a world controls its forks, exits
    /// and their order): it never panics, init is a member until it exits,
    /// and every change it reports is about a process it kept.
    #[test]
    fn proptest_process_tree_takes_any_events(
        init in 1i32..8,
        events in vec(event(), 0..48),
        adopt in vec(1i32..16, 0..4),
    ) {
        let mut tree = ProcessTree::new(init);
        for tgid in adopt {
            let member = tree.contains(tgid);
            prop_assert_eq!(tree.adopt(tgid), !member);
        }
        for event in &events {
            let len = tree.len();
            match tree.apply(event) {
                Some(TreeChange::Joined { tgid, parent_tgid }) => {
                    prop_assert!(tree.contains(tgid) && tree.contains(parent_tgid));
                    prop_assert_eq!(tree.len(), len + 1);
                }
                Some(TreeChange::Exec { tgid }) => prop_assert!(tree.contains(tgid)),
                Some(TreeChange::Left { tgid, .. }) => {
                    prop_assert!(!tree.contains(tgid));
                    prop_assert_eq!(tree.len() + 1, len);
                }
                None => prop_assert_eq!(tree.len(), len),
            }
        }
        prop_assert!(tree.len() <= 1 + tree.joined());
    }
}
