//! Property tests of the fanotify event parser and of the translation: a
//! buffer is untrusted bytes until its lengths are checked, and a world
//! decides much of what the events in it say (names, their order, which
//! inodes). Same conventions as `crate::proptests`: every property is
//! `proptest_*`, `PROPTEST_CASES` sets the cases.

use std::collections::HashMap;

use proptest::collection::vec;
use proptest::prelude::*;

use super::translate::{Kind, Lookup, Output, Stat, Translator};
use super::tree::{Ancestry, DirTree};
use super::wire::{
    parse_events, EntryRole, FileHandle, InfoRecord, ParseError, RawEvent, MAX_HANDLE_LEN,
    METADATA_LEN,
};

fn handle() -> impl Strategy<Value = FileHandle> {
    (any::<i32>(), vec(any::<u8>(), 0..=MAX_HANDLE_LEN))
        .prop_map(|(handle_type, bytes)| FileHandle { handle_type, bytes })
}

/// A name as the kernel reports it: 1 to 255 bytes, no NUL.
fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => vec(1u8..=255, 1..16),
        1 => vec(1u8..=255, 1..=255),
        1 => Just(b".".to_vec()),
    ]
}

fn record() -> impl Strategy<Value = InfoRecord> {
    let role = prop_oneof![
        Just(EntryRole::Entry),
        Just(EntryRole::Old),
        Just(EntryRole::New)
    ];
    prop_oneof![
        (any::<[u8; 8]>(), handle()).prop_map(|(fsid, handle)| InfoRecord::Object { fsid, handle }),
        (role, any::<[u8; 8]>(), handle(), name()).prop_map(|(role, fsid, dir, name)| {
            InfoRecord::DirEntry {
                role,
                fsid,
                dir,
                name,
            }
        }),
        (any::<[u8; 8]>(), handle()).prop_map(|(fsid, dir)| InfoRecord::Dir { fsid, dir }),
        any::<i32>().prop_map(InfoRecord::Pidfd),
        // Types this parser skips (FAN_EVENT_INFO_TYPE_ERROR, newer ones),
        // mapped away from the ones it reads rather than filtered.
        any::<u8>().prop_map(|t| InfoRecord::Other {
            info_type: if [1, 2, 3, 4, 10, 12].contains(&t) {
                t + 100
            } else {
                t
            },
        }),
    ]
}

fn event() -> impl Strategy<Value = RawEvent> {
    (
        any::<u64>(),
        prop_oneof![3 => Just(-1i32), 1 => any::<i32>()],
        any::<i32>(),
        vec(record(), 0..4),
    )
        .prop_map(|(mask, fd, pid, records)| RawEvent {
            mask,
            fd,
            pid,
            records,
        })
}

/// A record as `linux/fanotify.h` lays it out, padded to 4 bytes as the
/// kernel pads it: the model the parser is checked against.
fn encode_record(record: &InfoRecord) -> Vec<u8> {
    let fid = |info_type: u8, fsid: &[u8; 8], handle: &FileHandle, name: Option<&[u8]>| {
        let mut r = vec![info_type, 0, 0, 0];
        r.extend_from_slice(fsid);
        r.extend_from_slice(&(handle.bytes.len() as u32).to_ne_bytes());
        r.extend_from_slice(&handle.handle_type.to_ne_bytes());
        r.extend_from_slice(&handle.bytes);
        if let Some(name) = name {
            r.extend_from_slice(name);
            r.push(0);
        }
        r
    };
    let mut r = match record {
        InfoRecord::Object { fsid, handle } => {
            fid(libc::FAN_EVENT_INFO_TYPE_FID, fsid, handle, None)
        }
        InfoRecord::DirEntry {
            role,
            fsid,
            dir,
            name,
        } => {
            let info_type = match role {
                EntryRole::Entry => libc::FAN_EVENT_INFO_TYPE_DFID_NAME,
                EntryRole::Old => libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME,
                EntryRole::New => libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME,
            };
            fid(info_type, fsid, dir, Some(name))
        }
        InfoRecord::Dir { fsid, dir } => fid(libc::FAN_EVENT_INFO_TYPE_DFID, fsid, dir, None),
        InfoRecord::Pidfd(fd) => {
            let mut r = vec![libc::FAN_EVENT_INFO_TYPE_PIDFD, 0, 0, 0];
            r.extend_from_slice(&fd.to_ne_bytes());
            r
        }
        InfoRecord::Other { info_type } => vec![*info_type, 0, 0, 0, 0xee, 0xee, 0xee, 0xee],
    };
    r.resize(r.len().next_multiple_of(4), 0);
    let len = r.len() as u16;
    r[2..4].copy_from_slice(&len.to_ne_bytes());
    r
}

fn encode(event: &RawEvent) -> Vec<u8> {
    let records: Vec<u8> = event.records.iter().flat_map(encode_record).collect();
    let mut e = ((METADATA_LEN + records.len()) as u32)
        .to_ne_bytes()
        .to_vec();
    e.push(libc::FANOTIFY_METADATA_VERSION);
    e.push(0);
    e.extend_from_slice(&(METADATA_LEN as u16).to_ne_bytes());
    e.extend_from_slice(&event.mask.to_ne_bytes());
    e.extend_from_slice(&event.fd.to_ne_bytes());
    e.extend_from_slice(&event.pid.to_ne_bytes());
    e.extend(records);
    e
}

/// The fds a reader must close for `events`.
fn fds_of(events: &[RawEvent]) -> Vec<i32> {
    let mut fds = Vec::new();
    for event in events {
        if event.fd >= 0 {
            fds.push(event.fd);
        }
        for record in &event.records {
            if let InfoRecord::Pidfd(fd) = record {
                if *fd >= 0 {
                    fds.push(*fd);
                }
            }
        }
    }
    fds
}

/// What holds of any parse: errors name offsets inside the buffer, each
/// event took at least its metadata's bytes.
fn check(buf: &[u8]) -> Result<super::wire::Parsed, TestCaseError> {
    let parsed = parse_events(buf);
    prop_assert!(parsed.events.len() * METADATA_LEN <= buf.len());
    prop_assert!(parsed.fds.iter().all(|&fd| fd >= 0));
    for error in &parsed.errors {
        let offset = match error {
            ParseError::Short { offset, .. } | ParseError::Invalid { offset, .. } => *offset,
        };
        prop_assert!(offset <= buf.len(), "{:?} in {} bytes", error, buf.len());
    }
    Ok(parsed)
}

/// A filesystem for translation with answers drawn from the handle: any
/// kind, some inodes gone, whiteouts among them.
struct AnyFs;

impl Lookup for AnyFs {
    fn stat(&mut self, handle: &FileHandle) -> Option<Stat> {
        let n = handle.bytes.first().copied().unwrap_or(0);
        let kind = match n % 8 {
            0 => return None,
            1 | 2 => Kind::File,
            3 => Kind::Dir,
            4 => Kind::Symlink,
            5 => Kind::CharDevice,
            6 => Kind::Fifo,
            _ => Kind::BlockDevice,
        };
        Some(Stat {
            kind,
            mode: (u32::from(n) * 7) & 0o7777,
            uid: u32::from(n / 3),
            gid: u32::from(n / 5),
            ino: u64::from(n),
            rdev: u64::from(n % 3 == 0) * 5,
        })
    }
    fn ancestry(&mut self, dir: &FileHandle) -> Option<Ancestry> {
        let n = dir.bytes.first().copied().unwrap_or(0);
        (n % 3 == 0).then(|| {
            vec![
                (small(2), b"upper".to_vec()),
                (dir.clone(), vec![b'a' + n % 26]),
            ]
        })
    }
    fn lower(&mut self, path: &[u8]) -> Option<Stat> {
        (path.len() % 2 == 0).then_some(Stat {
            kind: Kind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            ino: 1,
            rdev: 0,
        })
    }
}

fn small(n: u8) -> FileHandle {
    FileHandle {
        handle_type: 1,
        bytes: vec![n],
    }
}

/// Events over a few inodes, names and processes, so that they meet:
/// creations, renames between the roots, merges, overflows.
fn world_event() -> impl Strategy<Value = RawEvent> {
    let h = || (0u8..12).prop_map(small);
    let name = || {
        prop_oneof![
            Just(b".".to_vec()),
            Just(b"#5".to_vec()),
            vec(b'a'..=b'c', 1..3)
        ]
    };
    let entry = (h(), name());
    let masks = prop_oneof![
        Just(libc::FAN_CREATE),
        Just(libc::FAN_MODIFY),
        Just(libc::FAN_CLOSE_WRITE),
        Just(libc::FAN_ATTRIB),
        Just(libc::FAN_DELETE),
        Just(libc::FAN_OPEN_EXEC),
        Just(libc::FAN_RENAME),
        Just(libc::FAN_Q_OVERFLOW),
        any::<u64>(),
    ];
    (
        masks,
        any::<bool>(),
        1i32..4,
        proptest::option::of(entry),
        proptest::option::of((h(), name())),
        proptest::option::of(h()),
    )
        .prop_map(|(mask, ondir, pid, entry, other, object)| {
            let mut records = Vec::new();
            let rename = mask & libc::FAN_RENAME != 0;
            if let Some((dir, name)) = entry {
                let role = if rename {
                    EntryRole::Old
                } else {
                    EntryRole::Entry
                };
                records.push(InfoRecord::DirEntry {
                    role,
                    fsid: [0; 8],
                    dir,
                    name,
                });
            }
            if let (true, Some((dir, name))) = (rename, other) {
                records.push(InfoRecord::DirEntry {
                    role: EntryRole::New,
                    fsid: [0; 8],
                    dir,
                    name,
                });
            }
            if let Some(handle) = object {
                records.push(InfoRecord::Object {
                    fsid: [0; 8],
                    handle,
                });
            }
            RawEvent {
                mask: mask | if ondir { libc::FAN_ONDIR } else { 0 },
                fd: -1,
                pid,
                records,
            }
        })
}

proptest! {
    #[test]
    fn proptest_parse_events_on_any_bytes(buf in vec(any::<u8>(), 0..1024)) {
        check(&buf)?;
    }

    /// What the kernel writes, parsed to exactly the events it holds, with
    /// every fd it hands over.
    #[test]
    fn proptest_parse_events_reads_what_the_kernel_writes(events in vec(event(), 0..6)) {
        let buf: Vec<u8> = events.iter().flat_map(encode).collect();
        let parsed = check(&buf)?;
        prop_assert_eq!(parsed.errors, []);
        prop_assert_eq!(&parsed.fds, &fds_of(&events));
        prop_assert_eq!(parsed.events, events);
    }

    /// A buffer cut inside an event: the events before the cut, and an
    /// error for the rest — never a guess at the cut one.
    #[test]
    fn proptest_parse_events_rejects_a_cut_event(
        events in vec(event(), 1..5),
        which in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let encoded: Vec<Vec<u8>> = events.iter().map(encode).collect();
        let which = which.index(events.len());
        let mut buf: Vec<u8> = encoded[..which].concat();
        let whole = buf.len();
        let event = &encoded[which];
        buf.extend_from_slice(&event[..1 + cut.index(event.len() - 1)]);
        let parsed = check(&buf)?;
        prop_assert_eq!(&parsed.events[..], &events[..which]);
        prop_assert!(
            matches!(parsed.errors[..], [ParseError::Short { offset, .. } | ParseError::Invalid { offset, .. }] if offset >= whole),
            "{:?}", parsed.errors
        );
    }

    /// An event or record length that lies (past the buffer or its event,
    /// or shorter than the header that holds it): that event is rejected,
    /// the ones before it are read.
    #[test]
    fn proptest_parse_events_rejects_lying_lengths(
        events in vec(event().prop_filter("a record to lie about", |e| !e.records.is_empty()), 1..4),
        which in any::<prop::sample::Index>(),
        lie in 0u8..4,
        amount in 1u16..300,
    ) {
        let encoded: Vec<Vec<u8>> = events.iter().map(encode).collect();
        let which = which.index(events.len());
        let mut event = encoded[which].clone();
        let event_len = event.len();
        match lie {
            // The event claims bytes the buffer does not have.
            0 => {
                let claimed = (event_len + usize::from(amount)) as u32;
                event[..4].copy_from_slice(&claimed.to_ne_bytes());
            }
            // The event claims less than its own metadata.
            1 => {
                let claimed = (usize::from(amount) % METADATA_LEN) as u32;
                event[..4].copy_from_slice(&claimed.to_ne_bytes());
            }
            // Its first record claims bytes its event does not have.
            2 => {
                let claimed = (event_len - METADATA_LEN) as u16 + amount;
                event[METADATA_LEN + 2..METADATA_LEN + 4].copy_from_slice(&claimed.to_ne_bytes());
            }
            // Its first record claims less than a record header.
            _ => {
                let claimed = amount % 4;
                event[METADATA_LEN + 2..METADATA_LEN + 4].copy_from_slice(&claimed.to_ne_bytes());
            }
        }
        let mut buf: Vec<u8> = encoded[..which].concat();
        buf.extend_from_slice(&event);
        let parsed = check(&buf)?;
        prop_assert_eq!(&parsed.events[..], &events[..which]);
        prop_assert!(!parsed.errors.is_empty());
    }

    /// Well-framed buffers with bytes overwritten and cut: errors, never
    /// panics.
    #[test]
    fn proptest_parse_events_on_mutated_buffers(
        events in vec(event(), 1..5),
        patches in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in proptest::option::of(any::<prop::sample::Index>()),
    ) {
        let mut buf: Vec<u8> = events.iter().flat_map(encode).collect();
        for (at, byte) in patches {
            let at = at.index(buf.len());
            buf[at] = byte;
        }
        if let Some(cut) = cut {
            buf.truncate(cut.index(buf.len()));
        }
        check(&buf)?;
    }

    /// Translation fed any events about a few inodes (a world decides its
    /// names, their order, what it renames where): it never panics, and
    /// what it reports is a path inside the world.
    #[test]
    fn proptest_translation_takes_any_events(events in vec(world_event(), 0..40)) {
        let mut translator = Translator::new(DirTree::new(small(1), small(2), small(3)));
        let mut fs = AnyFs;
        let mut out = Output::default();
        let mut overflows = 0;
        for event in &events {
            translator.event(event, &mut fs, &mut out);
            overflows += u32::from(event.mask & libc::FAN_Q_OVERFLOW != 0);
        }
        translator.drained(&mut fs, &mut out);
        prop_assert_eq!(out.overflows, overflows);
        let pids: HashMap<i32, ()> = events.iter().map(|e| (e.pid, ())).collect();
        for e in &out.events {
            prop_assert!(e.path.starts_with(b"/"), "{:?}", e);
            prop_assert!(pids.contains_key(&e.pid));
            prop_assert_eq!(e.new_path.is_some(), e.op == super::FileChange::Rename);
            if let Some(new_path) = &e.new_path {
                prop_assert!(new_path.starts_with(b"/"));
            }
        }
    }
}
