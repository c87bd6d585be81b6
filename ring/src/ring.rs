//! The per-process span ring: a bounded multi-producer queue of fixed-size
//! slots in a shared memfd (Vyukov's bounded queue, across processes).
//!
//! Producers are the threads of one traced process; the one consumer is the
//! world's monitor. A producer never waits: when the ring is full the record
//! is dropped and counted in the header, and the monitor turns that count
//! into a loss span.
//!
//! Each slot's sequence word is stored relative to its lap, so a zero-filled
//! memfd is an empty ring: creating one touches only the header page.
//! For the slot of position `pos`, with `base = pos & !(SLOTS - 1)`:
//! `seq == base` free for the producer of `pos`; `base + 1` written;
//! `base + SLOTS` released by the consumer for the next lap.

use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

pub const MAGIC: u32 = u32::from_le_bytes(*b"SBRG");
pub const VERSION: u32 = 1;
/// Slots per ring; a power of two.
pub const SLOTS: u64 = 1024;
pub const SLOT_BYTES: usize = 512;
pub const HEADER_BYTES: usize = 256;
/// The memfd's size.
pub const RING_BYTES: usize = HEADER_BYTES + SLOTS as usize * SLOT_BYTES;
/// Bytes of path, address or name a record carries.
pub const DATA_BYTES: usize = 448;
/// The producer asks the monitor to drain (a "doorbell") once the ring is
/// this full, once per drain; the monitor also drains on a timer.
pub const DOORBELL_FILL: u64 = SLOTS / 4;

const MASK: u64 = SLOTS - 1;

/// What a record describes (`Record::kind`).
pub mod kind {
    pub const FILE: u8 = 1;
    pub const NET: u8 = 2;
    pub const DNS: u8 = 3;
}

/// The libc call a file record describes (`Record::op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FileCall {
    Open = 1,
    Openat,
    Creat,
    Fopen,
    Unlink,
    Unlinkat,
    Rename,
    Renameat,
    Mkdir,
    Mkdirat,
    Rmdir,
    Chmod,
    Fchmodat,
    Truncate,
}

impl FileCall {
    const ALL: [FileCall; 14] = [
        FileCall::Open,
        FileCall::Openat,
        FileCall::Creat,
        FileCall::Fopen,
        FileCall::Unlink,
        FileCall::Unlinkat,
        FileCall::Rename,
        FileCall::Renameat,
        FileCall::Mkdir,
        FileCall::Mkdirat,
        FileCall::Rmdir,
        FileCall::Chmod,
        FileCall::Fchmodat,
        FileCall::Truncate,
    ];

    pub fn from_u8(op: u8) -> Option<FileCall> {
        FileCall::ALL.into_iter().find(|c| *c as u8 == op)
    }
}

/// The libc call a net record describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum NetCall {
    Connect = 1,
    Bind,
    Accept,
    Sendto,
}

impl NetCall {
    pub fn from_u8(op: u8) -> Option<NetCall> {
        [
            NetCall::Connect,
            NetCall::Bind,
            NetCall::Accept,
            NetCall::Sendto,
        ]
        .into_iter()
        .find(|c| *c as u8 == op)
    }
}

/// `Record::truncated` bits: the call's path (or name) did not fit.
pub const TRUNCATED_A: u8 = 1;
pub const TRUNCATED_B: u8 = 2;

/// One traced call, as the preload wrote it. Nothing in it is trusted.
///
/// - file: `a` = path, `b` = new path (rename), `arg0` = open flags,
///   `arg1` = mode, `dirfd` for the `*at` calls;
/// - net: `a` = the `sockaddr` bytes, `arg0` = socket type (`SO_TYPE`);
/// - dns: `a` = the name asked for, `b` = the answers, each
///   [`DNS_ANSWER_BYTES`]: family (`AF_INET`/`AF_INET6`) then 16 address
///   bytes; `ret` = `getaddrinfo`'s return.
#[derive(Clone, Copy, Debug)]
#[repr(C)]
pub struct Record {
    pub kind: u8,
    pub op: u8,
    pub truncated: u8,
    pub _reserved: u8,
    /// `errno` after the call (0 when it succeeded).
    pub errno: i32,
    /// CLOCK_REALTIME when the call started, in ns.
    pub start_ns: u64,
    pub duration_ns: u64,
    pub ret: i64,
    pub arg0: u32,
    pub arg1: u32,
    pub dirfd: i32,
    /// The calling thread, as the world sees it.
    pub tid: u32,
    pub a_len: u16,
    pub b_len: u16,
    pub _reserved2: u32,
    pub data: [u8; DATA_BYTES],
}

pub const DNS_ANSWER_BYTES: usize = 17;

impl Record {
    /// The first byte string, if its length is within the record.
    pub fn a(&self) -> Option<&[u8]> {
        self.data.get(..usize::from(self.a_len))
    }

    /// The second byte string, right after the first.
    pub fn b(&self) -> Option<&[u8]> {
        let start = usize::from(self.a_len);
        self.data.get(start..start + usize::from(self.b_len))
    }

    /// Sets `a` to `bytes`, cut to `cap` bytes (and to what fits).
    pub fn set_a(&mut self, bytes: &[u8], cap: usize) {
        let n = bytes.len().min(cap).min(DATA_BYTES);
        self.data[..n].copy_from_slice(&bytes[..n]);
        self.a_len = n as u16;
        if n < bytes.len() {
            self.truncated |= TRUNCATED_A;
        }
    }

    /// Sets `b` (after `a`) to `bytes`, cut to what fits.
    pub fn set_b(&mut self, bytes: &[u8]) {
        let start = usize::from(self.a_len).min(DATA_BYTES);
        let n = bytes.len().min(DATA_BYTES - start);
        self.data[start..start + n].copy_from_slice(&bytes[..n]);
        self.b_len = n as u16;
        if n < bytes.len() {
            self.truncated |= TRUNCATED_B;
        }
    }

    /// The room left after `a`, for a `b` filled in place.
    pub fn b_room(&mut self) -> &mut [u8] {
        let start = usize::from(self.a_len).min(DATA_BYTES);
        &mut self.data[start..]
    }
}

#[repr(C, align(64))]
struct Header {
    magic: u32,
    version: u32,
    slots: u32,
    slot_bytes: u32,
    /// 1 from the doorbell a producer rings until the consumer drains: one
    /// doorbell per drain, however many producers see the ring filling.
    doorbell: AtomicU32,
    _pad0: [u8; 44],
    /// Next position a producer takes.
    head: AtomicU64,
    _pad1: [u8; 56],
    /// Next position the consumer reads; written by the consumer only, read
    /// by producers to decide on a doorbell.
    tail: AtomicU64,
    _pad2: [u8; 56],
    /// Records dropped because the ring was full.
    dropped: AtomicU64,
    _pad3: [u8; 56],
}

#[repr(C)]
struct Slot {
    seq: AtomicU64,
    record: UnsafeCell<Record>,
}

const _: () = assert!(core::mem::size_of::<Header>() == HEADER_BYTES);
const _: () = assert!(core::mem::size_of::<Slot>() == SLOT_BYTES);
const _: () = assert!(SLOTS.is_power_of_two());

/// What [`Ring::push`] did, and whether the caller should now ring the
/// doorbell (ask the monitor to drain).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    Written {
        doorbell: bool,
    },
    /// The ring was full: dropped and counted.
    Dropped {
        doorbell: bool,
    },
}

/// Why a consumer refuses a ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    BadMagic,
    BadVersion(u32),
    BadGeometry,
}

/// A ring in memory this process maps (`RING_BYTES`, shared).
#[derive(Clone, Copy, Debug)]
pub struct Ring {
    base: NonNull<u8>,
}

// SAFETY: a Ring is a pointer into shared memory that is only accessed
// through atomics and slots reserved by those atomics; that is what lets
// many threads (and processes) use it at once.
unsafe impl Send for Ring {}
// SAFETY: as for Send.
unsafe impl Sync for Ring {}

impl Ring {
    /// # Safety
    /// `base` must point to a mapping of at least [`RING_BYTES`] bytes,
    /// 64-byte aligned, that outlives every use of the returned value.
    pub unsafe fn from_raw(base: NonNull<u8>) -> Ring {
        Ring { base }
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    fn header(&self) -> &Header {
        // SAFETY: from_raw's contract: the mapping holds a Header at offset 0.
        unsafe { &*(self.base.as_ptr() as *const Header) }
    }

    fn slot(&self, pos: u64) -> &Slot {
        let index = (pos & MASK) as usize;
        // SAFETY: index < SLOTS, so the slot lies within RING_BYTES.
        unsafe { &*(self.base.as_ptr().add(HEADER_BYTES + index * SLOT_BYTES) as *const Slot) }
    }

    /// Producer: stamps the header of a fresh, zero-filled ring.
    pub fn init(&self) {
        let header = self.base.as_ptr() as *mut Header;
        // SAFETY: the ring is not shared yet; plain writes to its header.
        unsafe {
            (*header).magic = MAGIC;
            (*header).version = VERSION;
            (*header).slots = SLOTS as u32;
            (*header).slot_bytes = SLOT_BYTES as u32;
        }
    }

    /// Producer: reserves a slot, lets `fill` write the record in place,
    /// publishes it. Never blocks; lock-free, so safe in signal handlers
    /// and vfork children.
    pub fn push(&self, fill: impl FnOnce(&mut Record)) -> Pushed {
        let header = self.header();
        let mut pos = header.head.load(Ordering::Relaxed);
        // Bounded: a producer gives up rather than spin against others.
        let mut tries = 0;
        let slot = loop {
            let slot = self.slot(pos);
            let seq = slot.seq.load(Ordering::Acquire);
            let diff = seq.wrapping_sub(pos & !MASK) as i64;
            if diff == 0 {
                match header.head.compare_exchange_weak(
                    pos,
                    pos + 1,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break slot,
                    Err(now) => pos = now,
                }
            } else if diff < 0 {
                header.dropped.fetch_add(1, Ordering::Relaxed);
                return Pushed::Dropped {
                    doorbell: self.take_doorbell(),
                };
            } else {
                pos = header.head.load(Ordering::Relaxed);
            }
            tries += 1;
            if tries > 1000 {
                header.dropped.fetch_add(1, Ordering::Relaxed);
                return Pushed::Dropped { doorbell: false };
            }
        };
        // SAFETY: the CAS above made this slot ours until we publish it.
        let record = unsafe { &mut *slot.record.get() };
        record.truncated = 0;
        record.a_len = 0;
        record.b_len = 0;
        fill(record);
        slot.seq.store((pos & !MASK) + 1, Ordering::Release);
        let fill = (pos + 1).wrapping_sub(header.tail.load(Ordering::Relaxed));
        Pushed::Written {
            doorbell: fill >= DOORBELL_FILL && self.take_doorbell(),
        }
    }

    /// `true` for the one producer that gets to ring until the next drain.
    fn take_doorbell(&self) -> bool {
        let doorbell = &self.header().doorbell;
        doorbell.load(Ordering::Relaxed) == 0 && doorbell.swap(1, Ordering::AcqRel) == 0
    }

    /// Consumer: checks what the producer wrote in the header.
    pub fn check(&self) -> Result<(), RingError> {
        // SAFETY: the header lies within the mapping; volatile because the
        // producer may be writing it.
        let (magic, version, slots, slot_bytes) = unsafe {
            let h = self.base.as_ptr() as *const Header;
            (
                core::ptr::read_volatile(&(*h).magic),
                core::ptr::read_volatile(&(*h).version),
                core::ptr::read_volatile(&(*h).slots),
                core::ptr::read_volatile(&(*h).slot_bytes),
            )
        };
        if magic != MAGIC {
            return Err(RingError::BadMagic);
        }
        if version != VERSION {
            return Err(RingError::BadVersion(version));
        }
        if u64::from(slots) != SLOTS || slot_bytes as usize != SLOT_BYTES {
            return Err(RingError::BadGeometry);
        }
        Ok(())
    }

    /// Consumer: hands up to `max` published records to `each`, in order,
    /// starting at `*tail` (the consumer's own copy: the shared one is only
    /// advice for producers). Returns how many were read.
    pub fn drain(&self, tail: &mut u64, max: usize, mut each: impl FnMut(Record)) -> usize {
        // Producers that see the ring filling from now on ring again.
        self.header().doorbell.store(0, Ordering::Release);
        let mut read = 0;
        while read < max {
            let slot = self.slot(*tail);
            let base = *tail & !MASK;
            if slot.seq.load(Ordering::Acquire) != base + 1 {
                break;
            }
            // SAFETY: the slot lies within the mapping (see `read_record`).
            let record = unsafe { read_record(slot.record.get()) };
            slot.seq.store(base + SLOTS, Ordering::Release);
            *tail += 1;
            self.header().tail.store(*tail, Ordering::Relaxed);
            each(record);
            read += 1;
        }
        read
    }

    /// Records dropped because the ring was full, since it was made.
    pub fn dropped(&self) -> u64 {
        self.header().dropped.load(Ordering::Relaxed)
    }
}

/// Copies a record out of its slot: the fixed fields, then only the data
/// bytes its lengths say are used (a volatile copy of all 512 bytes was the
/// monitor's largest cost per record). Volatile reads throughout, because a
/// hostile producer may still be writing the slot: what is read is a
/// snapshot whose lengths and bytes are checked like any untrusted input.
///
/// # Safety
///
/// `src` must point at a `Record` inside a live mapping.
unsafe fn read_record(src: *const Record) -> Record {
    use core::ptr::{addr_of, read_volatile};
    // SAFETY: every field pointer is within `*src`, which the caller
    // vouches for; the reads are of plain integers (any bits are valid).
    unsafe {
        let a_len = read_volatile(addr_of!((*src).a_len));
        let b_len = read_volatile(addr_of!((*src).b_len));
        let mut record = Record {
            kind: read_volatile(addr_of!((*src).kind)),
            op: read_volatile(addr_of!((*src).op)),
            truncated: read_volatile(addr_of!((*src).truncated)),
            _reserved: 0,
            errno: read_volatile(addr_of!((*src).errno)),
            start_ns: read_volatile(addr_of!((*src).start_ns)),
            duration_ns: read_volatile(addr_of!((*src).duration_ns)),
            ret: read_volatile(addr_of!((*src).ret)),
            arg0: read_volatile(addr_of!((*src).arg0)),
            arg1: read_volatile(addr_of!((*src).arg1)),
            dirfd: read_volatile(addr_of!((*src).dirfd)),
            tid: read_volatile(addr_of!((*src).tid)),
            a_len,
            b_len,
            _reserved2: 0,
            data: [0; DATA_BYTES],
        };
        let used = (usize::from(a_len) + usize::from(b_len)).min(DATA_BYTES);
        let data = addr_of!((*src).data).cast::<u8>();
        for (i, byte) in record.data[..used].iter_mut().enumerate() {
            *byte = read_volatile(data.add(i));
        }
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Mem(Vec<u64>);

    fn ring() -> (Mem, Ring) {
        let mut mem = Mem(vec![0u64; RING_BYTES / 8 + 8]);
        // Align to 64 by skipping up to 7 words.
        let ptr = mem.0.as_mut_ptr() as *mut u8;
        let skip = ptr.align_offset(64);
        // SAFETY: within the Vec, which outlives the test's use.
        let ring = unsafe { Ring::from_raw(NonNull::new(ptr.add(skip)).unwrap()) };
        ring.init();
        (mem, ring)
    }

    #[test]
    fn records_come_out_in_order_and_the_full_ring_drops() {
        let (_mem, ring) = ring();
        assert_eq!(ring.check(), Ok(()));
        for i in 0..SLOTS + 5 {
            let pushed = ring.push(|r| {
                r.kind = kind::FILE;
                r.ret = i as i64;
                r.set_a(b"/etc/passwd", DATA_BYTES);
            });
            if i < SLOTS {
                // One doorbell, when the ring reaches DOORBELL_FILL.
                assert_eq!(
                    pushed,
                    Pushed::Written {
                        doorbell: i + 1 == DOORBELL_FILL
                    }
                );
            } else {
                assert_eq!(pushed, Pushed::Dropped { doorbell: false });
            }
        }
        assert_eq!(ring.dropped(), 5);
        let mut tail = 0;
        let mut seen = Vec::new();
        ring.drain(&mut tail, usize::MAX, |r| seen.push(r.ret));
        assert_eq!(seen, (0..SLOTS as i64).collect::<Vec<_>>());
        // Drained: the next producer to see the ring filling rings again.
        for _ in 0..DOORBELL_FILL - 1 {
            assert_eq!(ring.push(|_| {}), Pushed::Written { doorbell: false });
        }
        assert_eq!(ring.push(|_| {}), Pushed::Written { doorbell: true });
        ring.drain(&mut tail, usize::MAX, |_| {});
        // Laps: the released slots are free again.
        for lap in 0..3 {
            for i in 0..SLOTS {
                assert!(matches!(
                    ring.push(|r| r.ret = (lap * 10_000 + i) as i64),
                    Pushed::Written { .. }
                ));
            }
            let mut n = 0;
            ring.drain(&mut tail, usize::MAX, |r| {
                assert_eq!(r.ret, (lap * 10_000 + n) as i64);
                n += 1;
            });
            assert_eq!(n, SLOTS);
        }
    }

    #[test]
    fn many_threads_lose_nothing_the_consumer_keeps_up_with() {
        let (_mem, ring) = ring();
        let threads = 4;
        let per_thread = 50_000u64;
        let consumed = std::thread::scope(|s| {
            for t in 0..threads {
                s.spawn(move || {
                    for i in 0..per_thread {
                        while matches!(
                            ring.push(|r| r.ret = (t * per_thread + i) as i64),
                            Pushed::Dropped { .. }
                        ) {
                            std::thread::yield_now();
                        }
                    }
                });
            }
            let mut tail = 0;
            let mut seen = vec![false; (threads * per_thread) as usize];
            let mut count = 0;
            while count < seen.len() {
                count += ring.drain(&mut tail, 256, |r| {
                    assert!(!std::mem::replace(&mut seen[r.ret as usize], true));
                });
            }
            count
        });
        assert_eq!(consumed as u64, threads * per_thread);
    }

    #[test]
    fn a_scribbled_ring_is_refused_or_bounded() {
        let (_mem, ring) = ring();
        // SAFETY: test memory; a hostile producer overwriting the header.
        unsafe { core::ptr::write_bytes(ring.as_ptr(), 0xff, 16) };
        assert_eq!(ring.check(), Err(RingError::BadMagic));
        // Every slot claiming "written" forever: drain stops at `max`.
        for pos in 0..SLOTS {
            ring.slot(pos).seq.store(1, Ordering::Relaxed);
        }
        let mut tail = 0;
        assert_eq!(ring.drain(&mut tail, 10, |_| {}), 10);
    }

    #[test]
    fn strings_are_cut_to_the_record() {
        let (_mem, ring) = ring();
        ring.push(|r| {
            r.set_a(&[b'a'; 300], 224);
            r.set_b(&[b'b'; 300]);
        });
        let mut tail = 0;
        ring.drain(&mut tail, 1, |r| {
            assert_eq!(r.a().unwrap().len(), 224);
            assert_eq!(r.b().unwrap().len(), DATA_BYTES - 224);
            assert_eq!(r.truncated, TRUNCATED_A | TRUNCATED_B);
        });
        let bogus = Record {
            a_len: 400,
            b_len: 400,
            ..unsafe_zeroed()
        };
        assert!(bogus.a().is_some());
        assert!(bogus.b().is_none());
    }

    fn unsafe_zeroed() -> Record {
        // SAFETY: Record is plain integers and bytes; all-zero is valid.
        unsafe { core::mem::zeroed() }
    }
}
