//! This process's ring and its hand-over to the monitor.

use core::ffi::{c_char, c_int};
use core::ptr::{null_mut, NonNull};
use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

use substrate_ring::hello::{HelloKind, HelloWriter, MAX_BYTES};
use substrate_ring::ring::{Pushed, Record, Ring, RING_BYTES};

use crate::sys;

const OFF: u8 = 0;
const ON: u8 = 1;

/// ON once the constructor found glibc and a monitor; OFF for good after
/// any failure to hand a ring over.
static STATE: AtomicU8 = AtomicU8::new(OFF);

/// This process's ring: null before (or between) hand-overs, REGISTERING
/// while one thread makes it.
static RING: AtomicPtr<u8> = AtomicPtr::new(null_mut());
const REGISTERING: *mut u8 = core::ptr::dangling_mut::<u8>();

/// Writes one record, if this process is traced. Never fails the caller.
pub fn record(fill: impl FnOnce(&mut Record)) {
    let Some(ring) = ring() else { return };
    match ring.push(fill) {
        Pushed::Written { doorbell: true } | Pushed::Dropped { doorbell: true } => ring_doorbell(),
        _ => {}
    }
}

/// Whether calls are being recorded (hooks skip their bookkeeping if not).
pub fn on() -> bool {
    STATE.load(Ordering::Relaxed) == ON
}

fn ring() -> Option<Ring> {
    if !on() {
        return None;
    }
    let ptr = RING.load(Ordering::Acquire);
    if ptr == REGISTERING {
        return None;
    }
    if let Some(base) = NonNull::new(ptr) {
        // SAFETY: RING only ever holds a live RING_BYTES mapping.
        return Some(unsafe { Ring::from_raw(base) });
    }
    // A forked child's first traced call: hand over a ring of its own.
    if RING
        .compare_exchange(null_mut(), REGISTERING, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return None;
    }
    let saved = sys::errno();
    let ring = hand_over(HelloKind::Fork, |_| {});
    sys::set_errno(saved);
    match ring {
        Some(ring) => {
            RING.store(ring.as_ptr(), Ordering::Release);
            Some(ring)
        }
        None => {
            STATE.store(OFF, Ordering::Relaxed);
            RING.store(null_mut(), Ordering::Release);
            None
        }
    }
}

/// Makes a ring (a sealed memfd, mapped here), and sends it with a hello
/// that `describe` fills.
fn hand_over(kind: HelloKind, describe: impl FnOnce(&mut HelloWriter<'_>)) -> Option<Ring> {
    // SAFETY: raw calls on fds and a mapping this function owns; every
    // failure path closes/unmaps what it made.
    unsafe {
        let memfd = libc::memfd_create(
            c"substrate-ring".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        );
        if memfd < 0 {
            return None;
        }
        // Sealed, so the monitor's mapping cannot be cut under it (SIGBUS).
        let sized = libc::ftruncate(memfd, RING_BYTES as libc::off_t) == 0
            && libc::fcntl(
                memfd,
                libc::F_ADD_SEALS,
                libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL,
            ) == 0;
        let base = if sized {
            libc::mmap(
                null_mut(),
                RING_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                memfd,
                0,
            )
        } else {
            libc::MAP_FAILED
        };
        if base == libc::MAP_FAILED {
            libc::close(memfd);
            return None;
        }
        let ring = Ring::from_raw(NonNull::new_unchecked(base as *mut u8));
        ring.init();
        let sent = send_hello(kind, memfd, describe);
        libc::close(memfd);
        if !sent {
            libc::munmap(base, RING_BYTES);
            return None;
        }
        Some(ring)
    }
}

fn send_hello(
    kind: HelloKind,
    pass_fd: c_int,
    describe: impl FnOnce(&mut HelloWriter<'_>),
) -> bool {
    let sock = sys::connect_span_socket();
    if sock < 0 {
        return false;
    }
    let sent = if kind == HelloKind::Exec {
        // An exec hello can be large: a scratch mapping, not the stack.
        // SAFETY: anonymous mapping, unmapped below.
        let buf = unsafe {
            libc::mmap(
                null_mut(),
                MAX_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if buf == libc::MAP_FAILED {
            false
        } else {
            // SAFETY: the mapping is MAX_BYTES long and ours.
            let slice = unsafe { core::slice::from_raw_parts_mut(buf as *mut u8, MAX_BYTES) };
            let mut writer = HelloWriter::new(slice);
            describe(&mut writer);
            let msg = writer.finish(kind, sys::getpid(), sys::now_ns());
            let sent = sys::send_with_fd(sock, msg, pass_fd);
            // SAFETY: mapped above.
            unsafe { libc::munmap(buf, MAX_BYTES) };
            sent
        }
    } else {
        let mut buf = [0u8; substrate_ring::hello::HEADER_BYTES];
        let mut writer = HelloWriter::new(&mut buf);
        describe(&mut writer);
        let msg = writer.finish(kind, sys::getpid(), sys::now_ns());
        sys::send_with_fd(sock, msg, pass_fd)
    };
    // SAFETY: our socket.
    unsafe { libc::close(sock) };
    sent
}

fn ring_doorbell() {
    let saved = sys::errno();
    send_hello(HelloKind::Doorbell, -1, |_| {});
    sys::set_errno(saved);
}

/// The constructor (from glue.c, glibc only): announce this program image.
///
/// # Safety
/// argv and envp are the NULL-terminated vectors glibc passes constructors.
#[no_mangle]
pub unsafe extern "C" fn substrate_init(
    argc: c_int,
    argv: *const *const c_char,
    envp: *const *const c_char,
) {
    let saved = sys::errno();
    let mut exe = [0u8; 4096];
    let mut cwd = [0u8; 4096];
    // SAFETY: readlink/getcwd write at most the lengths given.
    let (exe_len, cwd_len) = unsafe {
        let n = libc::readlink(
            c"/proc/self/exe".as_ptr(),
            exe.as_mut_ptr() as *mut c_char,
            exe.len(),
        );
        let m = libc::syscall(libc::SYS_getcwd, cwd.as_mut_ptr(), cwd.len());
        (n.max(0) as usize, if m > 0 { m as usize - 1 } else { 0 })
    };
    let ring = hand_over(HelloKind::Exec, |w| {
        w.exe_and_cwd(&exe[..exe_len], &cwd[..cwd_len]);
        for i in 0..argc.max(0) as usize {
            // SAFETY: argv holds argc entries.
            let arg = unsafe { *argv.add(i) };
            // SAFETY: each entry is a C string.
            w.arg(unsafe { sys::cstr(arg, usize::MAX) }.0);
        }
        let mut i = 0;
        loop {
            // SAFETY: envp is NULL-terminated.
            let entry = unsafe { *envp.add(i) };
            if entry.is_null() {
                break;
            }
            // SAFETY: a C string.
            w.env(unsafe { sys::cstr(entry, usize::MAX) }.0);
            i += 1;
        }
    });
    if let Some(ring) = ring {
        RING.store(ring.as_ptr(), Ordering::Release);
        STATE.store(ON, Ordering::Release);
    }
    sys::set_errno(saved);
}

/// pthread_atfork child handler (from glue.c): the parent's ring is not
/// ours; the first traced call makes one.
#[no_mangle]
pub extern "C" fn substrate_after_fork_child() {
    let old = RING.swap(null_mut(), Ordering::AcqRel);
    if !old.is_null() && old != REGISTERING {
        // SAFETY: the parent's mapping, inherited; the parent keeps its own.
        unsafe { libc::munmap(old as *mut libc::c_void, RING_BYTES) };
    }
    crate::hooks::forget_peers();
}
