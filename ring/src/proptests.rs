//! Property tests of the consumer side, which reads what a world's
//! processes wrote: hello messages of any bytes, and rings whose shared
//! memory a hostile process scribbles on while the monitor drains it.
//!
//! Every property is `proptest_*` (`cargo test proptest_` runs them);
//! `PROPTEST_CASES` sets the cases (256 unless set; `make fuzz` sets it
//! higher). A case that runs past `PROPTEST_TIMEOUT` (20 s, `.cargo/config.toml`) fails with its input.

use std::collections::VecDeque;
use std::ptr::NonNull;

use proptest::collection::vec;
use proptest::prelude::*;

use crate::hello::{self, Hello, HelloKind, HelloWriter};
use crate::ring::{self, Pushed, Record, Ring, DATA_BYTES, RING_BYTES, SLOTS};

/// A string a C caller can pass (no NUL inside).
fn c_string(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(1u8..=255, 0..max)
}

fn kind() -> impl Strategy<Value = HelloKind> {
    prop_oneof![
        Just(HelloKind::Exec),
        Just(HelloKind::Fork),
        Just(HelloKind::Doorbell)
    ]
}

/// Checks what `Hello::parse` says about `msg` against the layout, and
/// that reading every field of an accepted message stays in bounds.
fn check_parse(msg: &[u8]) -> Result<Option<Hello<'_>>, TestCaseError> {
    let Ok(hello) = Hello::parse(msg) else {
        return Ok(None);
    };
    prop_assert!(msg.len() >= hello::HEADER_BYTES);
    let u32_at = |at: usize| u32::from_le_bytes(msg[at..at + 4].try_into().expect("4 bytes"));
    let (argc, envc) = (u32_at(24) as usize, u32_at(28) as usize);
    prop_assert_eq!(hello.exe.len(), u32_at(32) as usize);
    prop_assert_eq!(hello.cwd.len(), u32_at(36) as usize);
    prop_assert_eq!(
        hello::HEADER_BYTES + hello.exe.len() + hello.cwd.len() + u32_at(40) as usize,
        msg.len()
    );
    let argv: Vec<&[u8]> = hello.argv().collect();
    let env: Vec<&[u8]> = hello.env().collect();
    prop_assert_eq!(argv.len(), argc);
    prop_assert_eq!(env.len(), envc);
    prop_assert!(argv.iter().chain(&env).all(|s| !s.contains(&0)));
    Ok(Some(hello))
}

/// A message the writer made, then bytes of it overwritten.
fn mutated_message() -> impl Strategy<Value = Vec<u8>> {
    (
        c_string(32),
        c_string(32),
        vec(c_string(16), 0..6),
        vec(c_string(16), 0..6),
        kind(),
        vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        // Cut or grown at the end.
        prop_oneof![Just(0isize), -8isize..8],
    )
        .prop_map(|(exe, cwd, argv, env, kind, patches, resize)| {
            let mut buf = vec![0u8; 4096];
            let mut w = HelloWriter::new(&mut buf);
            w.exe_and_cwd(&exe, &cwd);
            argv.iter().for_each(|a| w.arg(a));
            env.iter().for_each(|e| w.env(e));
            let mut msg = w.finish(kind, 1, 2).to_vec();
            for (at, byte) in patches {
                let at = at.index(msg.len());
                msg[at] = byte;
            }
            let len = (msg.len() as isize + resize).max(0) as usize;
            msg.resize(len, 0);
            msg
        })
}

/// 64-byte aligned memory holding one ring, zero-filled as a new memfd is.
struct Memory {
    words: Vec<u64>,
    skip: usize,
}

impl Memory {
    fn new() -> Memory {
        let mut words = vec![0u64; RING_BYTES / 8 + 8];
        let skip = (words.as_mut_ptr() as *mut u8).align_offset(64);
        Memory { words, skip }
    }

    fn ring(&mut self) -> Ring {
        let base = NonNull::new(self.bytes().as_mut_ptr()).expect("a Vec's pointer");
        // SAFETY: `base` points to RING_BYTES bytes, 64-byte aligned (the
        // allocation is RING_BYTES + 64 long and `skip` aligns it), owned by
        // `self`, which outlives every use of the ring in these tests.
        unsafe { Ring::from_raw(base) }
    }

    fn bytes(&mut self) -> &mut [u8] {
        let ptr = self.words.as_mut_ptr() as *mut u8;
        // SAFETY: the Vec holds RING_BYTES + 64 bytes; skip < 64; u8 has no
        // alignment or validity requirement; the borrow is tied to `self`.
        unsafe { std::slice::from_raw_parts_mut(ptr.add(self.skip), RING_BYTES) }
    }
}

/// What a hostile producer can write into its ring's memory: bytes
/// anywhere, the header's words, and slots marked written with records of
/// any content.
#[derive(Clone, Debug)]
enum Scribble {
    Bytes {
        at: usize,
        bytes: Vec<u8>,
    },
    HeaderWord {
        at: usize,
        value: u64,
    },
    Slot {
        index: usize,
        seq: u64,
        record: Vec<u8>,
    },
}

fn scribble() -> impl Strategy<Value = Scribble> {
    let slot_bytes = ring::SLOT_BYTES;
    prop_oneof![
        (0..RING_BYTES, vec(any::<u8>(), 1..64))
            .prop_map(|(at, bytes)| Scribble::Bytes { at, bytes }),
        // magic, version, slots, slot_bytes, doorbell, head, tail, dropped.
        (
            prop::sample::select(vec![0usize, 4, 8, 12, 16, 64, 128, 192]),
            any::<u64>()
        )
            .prop_map(|(at, value)| Scribble::HeaderWord { at, value }),
        (
            0..SLOTS as usize,
            prop_oneof![Just(1u64), Just(SLOTS + 1), any::<u64>()],
            vec(any::<u8>(), 0..slot_bytes - 8),
        )
            .prop_map(|(index, seq, record)| Scribble::Slot { index, seq, record }),
    ]
}

fn apply(memory: &mut Memory, scribbles: &[Scribble]) {
    let bytes = memory.bytes();
    for s in scribbles {
        match s {
            Scribble::Bytes { at, bytes: b } => {
                let end = (at + b.len()).min(RING_BYTES);
                bytes[*at..end].copy_from_slice(&b[..end - at]);
            }
            Scribble::HeaderWord { at, value } => {
                let width = if *at < 64 { 4 } else { 8 };
                bytes[*at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
            }
            Scribble::Slot { index, seq, record } => {
                let at = ring::HEADER_BYTES + index * ring::SLOT_BYTES;
                bytes[at..at + 8].copy_from_slice(&seq.to_le_bytes());
                bytes[at + 8..at + 8 + record.len()].copy_from_slice(record);
            }
        }
    }
}

/// What the monitor reads of a record: its strings, within the record.
fn read_record(record: &Record) -> Result<(), TestCaseError> {
    if let Some(a) = record.a() {
        prop_assert_eq!(a.len(), usize::from(record.a_len));
        prop_assert!(a.len() <= DATA_BYTES);
    } else {
        prop_assert!(usize::from(record.a_len) > DATA_BYTES);
    }
    if let Some(b) = record.b() {
        prop_assert_eq!(b.len(), usize::from(record.b_len));
        prop_assert!(usize::from(record.a_len) + b.len() <= DATA_BYTES);
    }
    let _ = ring::FileCall::from_u8(record.op);
    let _ = ring::NetCall::from_u8(record.op);
    Ok(())
}

/// A producer's operation in the model test.
#[derive(Clone, Debug)]
enum Op {
    Push {
        a: Vec<u8>,
        b: Vec<u8>,
        cap: usize,
        times: usize,
    },
    Drain {
        max: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (vec(any::<u8>(), 0..600), vec(any::<u8>(), 0..600), 0usize..600)
            .prop_map(|(a, b, cap)| Op::Push { a, b, cap, times: 1 }),
        // Many pushes in a row, to fill the ring and lap it.
        1 => (1usize..1200).prop_map(|times| Op::Push { a: b"/x".to_vec(), b: Vec::new(), cap: 8, times }),
        2 => (0usize..1500).prop_map(|max| Op::Drain { max }),
    ]
}

proptest! {

    #[test]
    fn proptest_hello_parse_on_any_bytes(msg in vec(any::<u8>(), 0..512)) {
        check_parse(&msg)?;
    }

    /// Bytes with a valid magic, version and kind, so that the lengths and
    /// counts get read.
    #[test]
    fn proptest_hello_parse_on_any_header(
        kind in 0u16..5,
        counts in any::<[u32; 5]>(),
        small in any::<[u8; 5]>(),
        use_small in any::<bool>(),
        body in vec(prop_oneof![Just(0u8), any::<u8>()], 0..256),
    ) {
        let mut msg = Vec::new();
        msg.extend_from_slice(&hello::MAGIC.to_le_bytes());
        msg.extend_from_slice(&hello::VERSION.to_le_bytes());
        msg.extend_from_slice(&kind.to_le_bytes());
        msg.extend_from_slice(&[0; 16]);
        for (big, small) in counts.iter().zip(small) {
            let n = if use_small { u32::from(small) } else { *big };
            msg.extend_from_slice(&n.to_le_bytes());
        }
        msg.extend_from_slice(&[0; 4]);
        msg.extend_from_slice(&body);
        check_parse(&msg)?;
    }

    #[test]
    fn proptest_hello_parse_on_mutated_messages(msg in mutated_message()) {
        check_parse(&msg)?;
    }

    /// What the writer writes the reader reads back: all of it, or (cut to
    /// the buffer, and flagged) a prefix of the arguments and environment.
    #[test]
    fn proptest_hello_round_trips(
        exe in vec(any::<u8>(), 0..64),
        cwd in vec(any::<u8>(), 0..64),
        argv in vec(c_string(40), 0..12),
        env in vec(c_string(40), 0..12),
        kind in kind(),
        pid in any::<u32>(),
        time_ns in any::<u64>(),
        size in prop_oneof![0usize..hello::HEADER_BYTES + 600, Just(hello::MAX_BYTES + 100)],
    ) {
        let mut buf = vec![0u8; size];
        let mut w = HelloWriter::new(&mut buf);
        w.exe_and_cwd(&exe, &cwd);
        argv.iter().for_each(|a| w.arg(a));
        env.iter().for_each(|e| w.env(e));
        let msg = w.finish(kind, pid, time_ns).to_vec();
        if size < hello::HEADER_BYTES {
            prop_assert!(msg.is_empty());
            return Ok(());
        }
        let hello = check_parse(&msg)?.ok_or_else(|| TestCaseError::fail("the writer's message was refused"))?;
        prop_assert!(msg.len() <= hello::MAX_BYTES);
        prop_assert_eq!(hello.kind, kind);
        prop_assert_eq!((hello.pid, hello.time_ns), (pid, time_ns));
        prop_assert!(hello.exe == exe.as_slice() || hello.exe.is_empty());
        prop_assert!(hello.cwd == cwd.as_slice() || hello.cwd.is_empty());
        let got_argv: Vec<&[u8]> = hello.argv().collect();
        let got_env: Vec<&[u8]> = hello.env().collect();
        let want_argv: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
        let want_env: Vec<&[u8]> = env.iter().map(Vec::as_slice).collect();
        if hello.flags & hello::TRUNCATED == 0 {
            prop_assert_eq!(hello.exe, exe.as_slice());
            prop_assert_eq!(hello.cwd, cwd.as_slice());
            prop_assert_eq!(got_argv, want_argv);
            prop_assert_eq!(got_env, want_env);
        } else {
            prop_assert!(want_argv.starts_with(&got_argv));
            prop_assert!(want_env.starts_with(&got_env));
            prop_assert!(got_env.is_empty() || got_argv.len() == argv.len());
        }
    }

    /// A ring whose memory the producer scribbled on: the consumer's header
    /// check and drain never fault or panic, a drain reads at most `max`
    /// records and advances its tail by what it read, and every record's
    /// strings stay inside it.
    #[test]
    fn proptest_ring_drain_on_scribbled_memory(
        init in any::<bool>(),
        scribbles in vec(scribble(), 0..24),
        tail in prop_oneof![0u64..4 * SLOTS, 0u64..1 << 40],
        maxes in vec(0usize..3 * SLOTS as usize, 1..4),
    ) {
        let mut memory = Memory::new();
        let ring = memory.ring();
        if init {
            ring.init();
        }
        apply(&mut memory, &scribbles);
        let _ = ring.check();
        let _ = ring.dropped();
        let mut tail = tail;
        for max in maxes {
            let before = tail;
            let mut records = Vec::new();
            let read = ring.drain(&mut tail, max, |r| records.push(r));
            prop_assert!(read <= max);
            prop_assert_eq!(read, records.len());
            prop_assert_eq!(tail, before + read as u64);
            for record in &records {
                read_record(record)?;
            }
        }
    }

    /// The ring against a queue: records come out in the order they went
    /// in, as they were written, and what a full ring dropped is counted.
    #[test]
    fn proptest_ring_is_a_fifo_that_counts_its_drops(ops in vec(op(), 1..24)) {
        let mut memory = Memory::new();
        let ring = memory.ring();
        ring.init();
        prop_assert_eq!(ring.check(), Ok(()));
        let mut model: VecDeque<(Vec<u8>, Vec<u8>, i64)> = VecDeque::new();
        let mut dropped = 0u64;
        let mut tail = 0u64;
        let mut n = 0i64;
        for op in ops {
            match op {
                Op::Push { a, b, cap, times } => {
                    for _ in 0..times {
                        n += 1;
                        let pushed = ring.push(|r| {
                            r.ret = n;
                            r.set_a(&a, cap);
                            r.set_b(&b);
                        });
                        let a_len = a.len().min(cap).min(DATA_BYTES);
                        let b_len = b.len().min(DATA_BYTES - a_len);
                        match pushed {
                            Pushed::Written { .. } => {
                                prop_assert!(model.len() < SLOTS as usize);
                                model.push_back((a[..a_len].to_vec(), b[..b_len].to_vec(), n));
                            }
                            Pushed::Dropped { .. } => {
                                prop_assert_eq!(model.len(), SLOTS as usize);
                                dropped += 1;
                            }
                        }
                    }
                }
                Op::Drain { max } => {
                    let mut out = Vec::new();
                    let read = ring.drain(&mut tail, max, |r| out.push(r));
                    prop_assert_eq!(read, max.min(model.len()));
                    for record in out {
                        let (a, b, ret) = model.pop_front().expect("counted above");
                        prop_assert_eq!(record.ret, ret);
                        prop_assert_eq!(record.a(), Some(a.as_slice()));
                        prop_assert_eq!(record.b(), Some(b.as_slice()));
                    }
                }
            }
            prop_assert_eq!(ring.dropped(), dropped);
        }
    }
}
