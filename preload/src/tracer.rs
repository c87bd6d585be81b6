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
            let msg = write_hello(slice, kind, describe);
            let sent = sys::send_with_fd(sock, msg, pass_fd);
            // SAFETY: mapped above.
            unsafe { libc::munmap(buf, MAX_BYTES) };
            sent
        }
    } else {
        let mut buf = [0u8; substrate_ring::hello::HEADER_BYTES];
        let msg = write_hello(&mut buf, kind, describe);
        sys::send_with_fd(sock, msg, pass_fd)
    };
    // SAFETY: our socket.
    unsafe { libc::close(sock) };
    sent
}

/// A hello from this process, now, built in `buf` (cut to it).
fn write_hello(
    buf: &mut [u8],
    kind: HelloKind,
    describe: impl FnOnce(&mut HelloWriter<'_>),
) -> &[u8] {
    let mut writer = HelloWriter::new(buf);
    describe(&mut writer);
    writer.finish(kind, sys::getpid(), sys::now_ns())
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
    let (exe, cwd) = exe_and_cwd(&mut exe, &mut cwd);
    // SAFETY: argv and envp as glibc passes them: describe_exec's contract.
    let ring = hand_over(HelloKind::Exec, |w| unsafe {
        describe_exec(w, exe, cwd, argc, argv, envp)
    });
    if let Some(ring) = ring {
        RING.store(ring.as_ptr(), Ordering::Release);
        STATE.store(ON, Ordering::Release);
    }
    sys::set_errno(saved);
}

/// This process's executable and working directory, read into the buffers
/// (empty when unknown, silently cut to the buffers).
fn exe_and_cwd<'e, 'c>(exe: &'e mut [u8; 4096], cwd: &'c mut [u8; 4096]) -> (&'e [u8], &'c [u8]) {
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
    (&exe[..exe_len], &cwd[..cwd_len])
}

/// An exec hello's body: exe and cwd, the `argc` entries of `argv`, then
/// `envp`'s entries, each as the bytes it holds (no encoding assumed; a
/// NULL entry of argv is an empty argument, a NULL envp no environment).
///
/// # Safety
/// `argv` holds `argc` entries, each NULL or a C string; `envp` is NULL or
/// a NULL-terminated vector of C strings.
unsafe fn describe_exec(
    w: &mut HelloWriter<'_>,
    exe: &[u8],
    cwd: &[u8],
    argc: c_int,
    argv: *const *const c_char,
    envp: *const *const c_char,
) {
    w.exe_and_cwd(exe, cwd);
    for i in 0..argc.max(0) as usize {
        // SAFETY: argv holds argc entries.
        let arg = unsafe { *argv.add(i) };
        // SAFETY: each entry is a C string.
        w.arg(unsafe { sys::cstr(arg, usize::MAX) }.0);
    }
    if envp.is_null() {
        // A constructor run by dlopen gets glibc's __environ, which is NULL
        // after clearenv().
        return;
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

/// An in-memory ring installed as this process's, for tests of the tracer
/// and of the hooks.
#[cfg(test)]
pub mod testing {
    use super::*;
    use std::alloc::{alloc_zeroed, dealloc, Layout};
    use std::sync::{Mutex, MutexGuard};
    use std::vec::Vec;

    /// The tracer's state is process-wide: one test at a time uses it.
    static LOCK: Mutex<()> = Mutex::new(());

    pub fn exclusive() -> MutexGuard<'static, ()> {
        LOCK.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub const REGISTERING: *mut u8 = super::REGISTERING;

    /// Sets this process's ring pointer as it is (REGISTERING, a mapping...).
    pub fn set_ring(ptr: *mut u8) {
        RING.store(ptr, Ordering::Release);
    }

    const LAYOUT: Layout = match Layout::from_size_align(RING_BYTES, 64) {
        Ok(layout) => layout,
        Err(_) => panic!("ring layout"),
    };

    /// A zero-filled ring on the heap, installed as after a hand-over (the
    /// hooks' peer table cleared); uninstalled when dropped.
    pub struct TestRing {
        pub ring: Ring,
        tail: u64,
        _exclusive: MutexGuard<'static, ()>,
    }

    impl TestRing {
        /// Tracing on, into this ring.
        pub fn on() -> TestRing {
            TestRing::install(ON)
        }

        /// The ring installed but tracing off, as in a process whose
        /// hand-over failed.
        pub fn off() -> TestRing {
            TestRing::install(OFF)
        }

        fn install(state: u8) -> TestRing {
            let exclusive = exclusive();
            // SAFETY: LAYOUT's size is not zero.
            let base = NonNull::new(unsafe { alloc_zeroed(LAYOUT) }).expect("out of memory");
            // SAFETY: RING_BYTES, 64-byte aligned, freed only by drop, after
            // it is no longer installed.
            let ring = unsafe { Ring::from_raw(base) };
            ring.init();
            crate::hooks::forget_peers();
            RING.store(base.as_ptr(), Ordering::Release);
            STATE.store(state, Ordering::Release);
            TestRing {
                ring,
                tail: 0,
                _exclusive: exclusive,
            }
        }

        /// What was written since the last drain, in order.
        pub fn drain(&mut self) -> Vec<Record> {
            let mut records = Vec::new();
            self.ring
                .drain(&mut self.tail, usize::MAX, |r| records.push(r));
            records
        }

        /// The one record written since the last drain.
        pub fn one(&mut self) -> Record {
            let mut records = self.drain();
            assert_eq!(records.len(), 1, "records written: {records:?}");
            records.remove(0)
        }
    }

    impl Drop for TestRing {
        fn drop(&mut self) {
            STATE.store(OFF, Ordering::Release);
            RING.store(null_mut(), Ordering::Release);
            // SAFETY: allocated by install with LAYOUT, and no longer
            // installed.
            unsafe { dealloc(self.ring.as_ptr(), LAYOUT) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{exclusive, TestRing};
    use super::*;
    use std::ffi::CString;
    use std::vec;
    use std::vec::Vec;

    use substrate_ring::hello::{Hello, HEADER_BYTES, TRUNCATED};
    use substrate_ring::ring::{DOORBELL_FILL, SLOTS};

    /// A C vector (NULL-terminated) of the given strings.
    struct CVec {
        _strings: Vec<CString>,
        ptrs: Vec<*const c_char>,
    }

    fn cvec(items: &[&[u8]]) -> CVec {
        let strings: Vec<CString> = items.iter().map(|s| CString::new(*s).unwrap()).collect();
        let mut ptrs: Vec<*const c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(core::ptr::null());
        CVec {
            _strings: strings,
            ptrs,
        }
    }

    /// An exec hello as substrate_init builds it (a MAX_BYTES buffer).
    fn exec_hello(
        exe: &[u8],
        cwd: &[u8],
        argc: c_int,
        argv: *const *const c_char,
        envp: *const *const c_char,
    ) -> Vec<u8> {
        let mut buf = vec![0u8; MAX_BYTES];
        let mut w = HelloWriter::new(&mut buf);
        // SAFETY: the vectors come from cvec (or are NULL), argc within them.
        unsafe { describe_exec(&mut w, exe, cwd, argc, argv, envp) };
        w.finish(HelloKind::Exec, 42, 7).to_vec()
    }

    #[test]
    fn argv_and_env_go_into_the_hello_byte_for_byte() {
        let argv = cvec(&[b"sh", b"-c", b"", b"caf\xc3\xa9 \xff\xfe\x80"]);
        let envp = cvec(&[b"PATH=/bin", b"LANG=\xe9t\xe9", b"EMPTY="]);
        let msg = exec_hello(
            b"/bin/sh",
            b"/w\xff",
            4,
            argv.ptrs.as_ptr(),
            envp.ptrs.as_ptr(),
        );
        // The body exactly: exe, cwd, then each string NUL-terminated.
        let body: &[u8] = b"/bin/sh/w\xff\
            sh\0-c\0\0caf\xc3\xa9 \xff\xfe\x80\0\
            PATH=/bin\0LANG=\xe9t\xe9\0EMPTY=\0";
        assert_eq!(&msg[HEADER_BYTES..], body);
        assert_eq!(msg.len(), HEADER_BYTES + body.len());
        let hello = Hello::parse(&msg).unwrap();
        assert_eq!(
            (hello.kind, hello.pid, hello.time_ns, hello.flags),
            (HelloKind::Exec, 42, 7, 0)
        );
        assert_eq!((hello.exe, hello.cwd), (&b"/bin/sh"[..], &b"/w\xff"[..]));
        assert_eq!(
            hello.argv().collect::<Vec<_>>(),
            [&b"sh"[..], b"-c", b"", b"caf\xc3\xa9 \xff\xfe\x80"]
        );
        assert_eq!(
            hello.env().collect::<Vec<_>>(),
            [&b"PATH=/bin"[..], b"LANG=\xe9t\xe9", b"EMPTY="]
        );
    }

    #[test]
    fn argc_bounds_argv_and_a_null_argument_is_empty() {
        let argv = cvec(&[b"a", b"b", b"not-counted"]);
        let envp = cvec(&[]);
        let msg = exec_hello(b"", b"", 2, argv.ptrs.as_ptr(), envp.ptrs.as_ptr());
        let hello = Hello::parse(&msg).unwrap();
        assert_eq!(hello.argv().collect::<Vec<_>>(), [&b"a"[..], b"b"]);
        assert_eq!(hello.env().count(), 0);
        // A NULL inside argc: an empty argument, the others kept.
        let mut with_null = cvec(&[b"x", b"y"]);
        with_null.ptrs[0] = core::ptr::null();
        let msg = exec_hello(b"", b"", 2, with_null.ptrs.as_ptr(), envp.ptrs.as_ptr());
        assert_eq!(&msg[HEADER_BYTES..], b"\0y\0");
        // A negative argc: no argument.
        let msg = exec_hello(b"", b"", -1, argv.ptrs.as_ptr(), envp.ptrs.as_ptr());
        assert_eq!(msg.len(), HEADER_BYTES);
    }

    #[test]
    fn a_null_envp_is_no_environment() {
        let argv = cvec(&[b"prog"]);
        let msg = exec_hello(b"/p", b"/", 1, argv.ptrs.as_ptr(), core::ptr::null());
        assert_eq!(&msg[HEADER_BYTES..], b"/p/prog\0");
        let hello = Hello::parse(&msg).unwrap();
        assert_eq!(hello.env().count(), 0);
    }

    #[test]
    fn a_hello_is_cut_at_max_bytes_and_flagged() {
        // exe + cwd + two arguments that end the message exactly at MAX_BYTES.
        let (exe, cwd) = (&b"/e"[..], &b"/c"[..]);
        let room = MAX_BYTES - HEADER_BYTES - exe.len() - cwd.len();
        let first = vec![b'a'; room / 2 - 1];
        let second = vec![b'b'; room - first.len() - 2];
        let argv = cvec(&[&first, &second]);
        let envp = cvec(&[b"K=v"]);
        let msg = exec_hello(exe, cwd, 2, argv.ptrs.as_ptr(), core::ptr::null());
        assert_eq!(msg.len(), MAX_BYTES);
        let hello = Hello::parse(&msg).unwrap();
        assert_eq!(hello.flags, 0);
        assert_eq!(hello.argv().count(), 2);
        // One more entry does not fit: dropped whole, flagged.
        let msg = exec_hello(exe, cwd, 2, argv.ptrs.as_ptr(), envp.ptrs.as_ptr());
        assert_eq!(msg.len(), MAX_BYTES);
        let hello = Hello::parse(&msg).unwrap();
        assert_eq!(hello.flags, TRUNCATED);
        assert_eq!((hello.argv().count(), hello.env().count()), (2, 0));
        // An argument longer than a message: nothing after it either.
        let huge = vec![b'x'; MAX_BYTES];
        let argv = cvec(&[b"first", &huge, b"third"]);
        let msg = exec_hello(exe, cwd, 3, argv.ptrs.as_ptr(), envp.ptrs.as_ptr());
        let hello = Hello::parse(&msg).unwrap();
        assert_eq!(hello.flags, TRUNCATED);
        assert_eq!(hello.argv().collect::<Vec<_>>(), [&b"first"[..]]);
        assert_eq!(hello.env().count(), 0);
    }

    #[test]
    fn fork_and_doorbell_hellos_are_a_bare_header_from_this_process() {
        for kind in [HelloKind::Fork, HelloKind::Doorbell] {
            let mut buf = [0u8; HEADER_BYTES];
            let before = sys::now_ns();
            let msg = write_hello(&mut buf, kind, |_| {}).to_vec();
            let after = sys::now_ns();
            assert_eq!(msg.len(), HEADER_BYTES);
            let hello = Hello::parse(&msg).unwrap();
            assert_eq!(hello.kind, kind);
            assert_eq!(hello.pid, std::process::id());
            assert!((before..=after).contains(&hello.time_ns));
            assert_eq!((hello.flags, hello.exe, hello.cwd), (0, &[][..], &[][..]));
        }
    }

    #[test]
    fn exe_and_cwd_are_this_process() {
        use std::os::unix::ffi::OsStrExt;
        let (mut exe, mut cwd) = ([0u8; 4096], [0u8; 4096]);
        let (exe, cwd) = exe_and_cwd(&mut exe, &mut cwd);
        let real_exe = std::fs::read_link("/proc/self/exe").unwrap();
        assert_eq!(exe, real_exe.as_os_str().as_bytes());
        assert_eq!(cwd, std::env::current_dir().unwrap().as_os_str().as_bytes());
    }

    fn push(n: u64, from: i64) {
        for i in 0..n {
            record(|r| r.ret = from + i as i64);
        }
    }

    fn rets(records: &[Record]) -> Vec<i64> {
        records.iter().map(|r| r.ret).collect()
    }

    #[test]
    fn records_wrap_around_the_ring_in_order() {
        let mut t = TestRing::on();
        push(1000, 0);
        assert_eq!(rets(&t.drain()), (0..1000).collect::<Vec<_>>());
        // Positions 1000..1100: the last 24 slots, then the first 76 again.
        push(100, 1000);
        assert_eq!(rets(&t.drain()), (1000..1100).collect::<Vec<_>>());
        assert_eq!(t.ring.dropped(), 0);
        // A full lap more, starting mid-ring.
        push(SLOTS, 5000);
        assert_eq!(
            rets(&t.drain()),
            (5000..5000 + SLOTS as i64).collect::<Vec<_>>()
        );
        assert_eq!(t.drain().len(), 0);
    }

    #[test]
    fn a_full_ring_drops_and_counts() {
        let mut t = TestRing::on();
        push(SLOTS, 0);
        assert_eq!(t.ring.dropped(), 0);
        push(7, 100_000);
        assert_eq!(t.ring.dropped(), 7);
        // What was in the ring is kept, what came after is gone.
        assert_eq!(rets(&t.drain()), (0..SLOTS as i64).collect::<Vec<_>>());
        push(1, 200_000);
        assert_eq!(rets(&t.drain()), [200_000]);
        assert_eq!(t.ring.dropped(), 7);
    }

    #[test]
    fn the_doorbell_leaves_errno_alone() {
        let _t = TestRing::on();
        // Records up to the one that rings (a hello on the span socket,
        // which fails outside a world): errno stays what it was.
        for i in 0..DOORBELL_FILL + 1 {
            sys::set_errno(1000 + i as c_int);
            record(|_| {});
            assert_eq!(sys::errno(), 1000 + i as c_int);
        }
    }

    #[test]
    fn tracing_off_writes_nothing() {
        let mut t = TestRing::off();
        let mut called = false;
        record(|_| called = true);
        assert!(!called);
        assert!(!on());
        assert_eq!(t.drain().len(), 0);
    }

    #[test]
    fn a_ring_being_handed_over_is_not_reentered() {
        // A traced call while this thread (from a signal handler) or another
        // one makes the ring: it goes unrecorded, the hand-over undisturbed.
        let _t = TestRing::on();
        RING.store(REGISTERING, Ordering::Release);
        let mut called = false;
        record(|_| called = true);
        assert!(!called);
        assert_eq!(RING.load(Ordering::Acquire), REGISTERING);
        assert!(on());
    }

    #[test]
    fn a_failed_fork_hand_over_turns_tracing_off_and_keeps_errno() {
        if std::path::Path::new(substrate_ring::SOCKET_PATH).exists() {
            // In a world: the hand-over would succeed.
            return;
        }
        let _t = TestRing::on();
        RING.store(null_mut(), Ordering::Release);
        sys::set_errno(4321);
        let mut called = false;
        record(|_| called = true);
        assert!(!called);
        assert_eq!(sys::errno(), 4321);
        assert!(!on());
        assert!(RING.load(Ordering::Acquire).is_null());
    }

    #[test]
    fn a_forked_child_unmaps_the_parents_ring() {
        let _exclusive = exclusive();
        // SAFETY: a fresh anonymous mapping, given to the tracer as a ring.
        let base = unsafe {
            libc::mmap(
                null_mut(),
                RING_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        RING.store(base as *mut u8, Ordering::Release);
        substrate_after_fork_child();
        assert!(RING.load(Ordering::Acquire).is_null());
        // SAFETY: msync only asks whether the range is mapped.
        let mapped = unsafe { libc::msync(base, RING_BYTES, libc::MS_ASYNC) } == 0;
        assert!(!mapped);
        assert_eq!(sys::errno(), libc::ENOMEM);
        // A ring being made is the parent's thread's business: left alone.
        RING.store(REGISTERING, Ordering::Release);
        substrate_after_fork_child();
        assert!(RING.load(Ordering::Acquire).is_null());
    }
}
