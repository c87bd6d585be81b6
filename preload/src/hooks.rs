//! The interposed calls. Each one calls the real function, then records
//! what happened; none changes what the caller sees (return value, errno).
//!
//! In the unit-test binary the hooks keep their Rust names (no `no_mangle`):
//! exported, they would interpose the test harness's own `open`, `connect`...
//! Tests call them as functions, with an in-memory ring installed.

use core::ffi::{c_char, c_int, c_void};
use core::ptr::{null, null_mut};
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

use libc::{addrinfo, mode_t, off_t, sockaddr, socklen_t};
use substrate_ring::ring::{kind, FileCall, NetCall, Record, DATA_BYTES, DNS_ANSWER_BYTES};

use crate::{sys, tracer};

/// The next definition of a symbol (libc's), looked up once.
macro_rules! real {
    ($name:expr, $ty:ty) => {{
        static PTR: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
        let mut p = PTR.load(Ordering::Relaxed);
        if p.is_null() {
            // SAFETY: dlsym with a NUL-terminated name.
            p = unsafe { libc::dlsym(libc::RTLD_NEXT, concat!($name, "\0").as_ptr().cast()) };
            PTR.store(p, Ordering::Relaxed);
        }
        if p.is_null() {
            None
        } else {
            // SAFETY: the symbol named has this C signature in libc.
            Some(unsafe { core::mem::transmute::<*mut c_void, $ty>(p) })
        }
    }};
}

/// What a hook returns when libc has no such function (it never happens
/// with glibc; musl lacks the fortify variants).
fn missing<R: From<i8>>() -> R {
    sys::set_errno(libc::ENOSYS);
    R::from(-1)
}

/// Calls `call`; when tracing, records it with `describe`. `ret` turns the
/// result into the recorded return value (negative = failed).
#[inline(always)]
fn traced<R: Copy>(
    call: impl FnOnce() -> R,
    ret: impl FnOnce(R) -> i64,
    describe: impl FnOnce(&mut Record, R),
) -> R {
    if !tracer::on() {
        return call();
    }
    let start = sys::now_ns();
    let result = call();
    let err = sys::errno();
    let end = sys::now_ns();
    let ret = ret(result);
    tracer::record(|rec| {
        rec.start_ns = start;
        rec.duration_ns = end.wrapping_sub(start);
        rec.ret = ret;
        rec.errno = if ret < 0 { err } else { 0 };
        rec.arg0 = 0;
        rec.arg1 = 0;
        rec.dirfd = libc::AT_FDCWD;
        rec.tid = 0;
        describe(rec, result);
    });
    sys::set_errno(err);
    result
}

/// Room for one path when a record carries two.
const HALF: usize = DATA_BYTES / 2;

fn file(rec: &mut Record, call: FileCall, dirfd: c_int, path: *const c_char, cap: usize) {
    rec.kind = kind::FILE;
    rec.op = call as u8;
    rec.dirfd = dirfd;
    // SAFETY: path is the caller's C string (or NULL).
    let (bytes, cut) = unsafe { sys::cstr(path, cap) };
    rec.set_a(bytes, cap);
    if cut {
        rec.truncated |= substrate_ring::ring::TRUNCATED_A;
    }
}

fn second_path(rec: &mut Record, path: *const c_char) {
    let room = DATA_BYTES - usize::from(rec.a_len);
    // SAFETY: path is the caller's C string (or NULL).
    let (bytes, cut) = unsafe { sys::cstr(path, room) };
    rec.set_b(bytes);
    if cut {
        rec.truncated |= substrate_ring::ring::TRUNCATED_B;
    }
}

// ---- file calls -----------------------------------------------------------

// open, open64, openat and openat64 are C-variadic: the mode is there only
// with O_CREAT or O_TMPFILE. Rust cannot define a C-variadic function on
// stable, and a C definition would not be exported (rustc's version script
// exports Rust items only), so they are defined with the mode as a third
// fixed argument: on the x86-64 and AArch64 Linux ABIs a variadic argument
// travels exactly like a named one, and when the caller passed none the
// register's value is read but never used.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("open/openat rely on variadic arguments being passed like named ones");

const O_TMPFILE: c_int = libc::O_TMPFILE;

fn has_mode(flags: c_int) -> bool {
    flags & libc::O_CREAT != 0 || flags & O_TMPFILE == O_TMPFILE
}

fn open_traced(
    call: FileCall,
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: mode_t,
) -> c_int {
    let Some(real) = real!(
        "openat",
        unsafe extern "C" fn(c_int, *const c_char, c_int, mode_t) -> c_int
    ) else {
        return missing();
    };
    let mode = if has_mode(flags) { mode } else { 0 };
    traced(
        // SAFETY: the caller's arguments, passed on unchanged (openat with
        // AT_FDCWD is open).
        || unsafe { real(dirfd, path, flags, mode) },
        i64::from,
        |rec, _| {
            file(rec, call, dirfd, path, DATA_BYTES);
            rec.arg0 = flags as u32;
            rec.arg1 = mode;
        },
    )
}

/// # Safety
/// As open(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
    open_traced(FileCall::Open, libc::AT_FDCWD, path, flags, mode)
}

/// # Safety
/// As open(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
    open_traced(FileCall::Open, libc::AT_FDCWD, path, flags, mode)
}

/// # Safety
/// As openat(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn openat(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: mode_t,
) -> c_int {
    open_traced(FileCall::Openat, dirfd, path, flags, mode)
}

/// # Safety
/// As openat(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn openat64(
    dirfd: c_int,
    path: *const c_char,
    flags: c_int,
    mode: mode_t,
) -> c_int {
    open_traced(FileCall::Openat, dirfd, path, flags, mode)
}

macro_rules! fortified_open {
    ($name:ident, $sym:literal) => {
        /// `_FORTIFY_SOURCE`'s checked open: the real one still checks.
        ///
        /// # Safety
        /// As open(2).
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char, flags: c_int) -> c_int {
            let Some(real) = real!($sym, unsafe extern "C" fn(*const c_char, c_int) -> c_int)
            else {
                return missing();
            };
            traced(
                // SAFETY: the caller's arguments, passed on unchanged.
                || unsafe { real(path, flags) },
                i64::from,
                |rec, _| {
                    file(rec, FileCall::Open, libc::AT_FDCWD, path, DATA_BYTES);
                    rec.arg0 = flags as u32;
                },
            )
        }
    };
}
fortified_open!(__open_2, "__open_2");
fortified_open!(__open64_2, "__open64_2");

macro_rules! fortified_openat {
    ($name:ident, $sym:literal) => {
        /// `_FORTIFY_SOURCE`'s checked openat.
        ///
        /// # Safety
        /// As openat(2).
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
            let Some(real) = real!(
                $sym,
                unsafe extern "C" fn(c_int, *const c_char, c_int) -> c_int
            ) else {
                return missing();
            };
            traced(
                // SAFETY: the caller's arguments, passed on unchanged.
                || unsafe { real(dirfd, path, flags) },
                i64::from,
                |rec, _| {
                    file(rec, FileCall::Openat, dirfd, path, DATA_BYTES);
                    rec.arg0 = flags as u32;
                },
            )
        }
    };
}
fortified_openat!(__openat_2, "__openat_2");
fortified_openat!(__openat64_2, "__openat64_2");

macro_rules! creat {
    ($name:ident, $sym:literal) => {
        /// # Safety
        /// As creat(2).
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char, mode: mode_t) -> c_int {
            let Some(real) = real!($sym, unsafe extern "C" fn(*const c_char, mode_t) -> c_int)
            else {
                return missing();
            };
            traced(
                // SAFETY: the caller's arguments, passed on unchanged.
                || unsafe { real(path, mode) },
                i64::from,
                |rec, _| {
                    file(rec, FileCall::Creat, libc::AT_FDCWD, path, DATA_BYTES);
                    rec.arg0 = (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u32;
                    rec.arg1 = mode;
                },
            )
        }
    };
}
creat!(creat, "creat");
creat!(creat64, "creat64");

macro_rules! fopen {
    ($name:ident, $sym:literal) => {
        /// `b` holds the mode string; the monitor turns it into flags.
        ///
        /// # Safety
        /// As fopen(3).
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(
            path: *const c_char,
            mode: *const c_char,
        ) -> *mut libc::FILE {
            let Some(real) = real!(
                $sym,
                unsafe extern "C" fn(*const c_char, *const c_char) -> *mut libc::FILE
            ) else {
                sys::set_errno(libc::ENOSYS);
                return null_mut();
            };
            traced(
                // SAFETY: the caller's arguments, passed on unchanged.
                || unsafe { real(path, mode) },
                |f| if f.is_null() { -1 } else { 0 },
                |rec, _| {
                    file(rec, FileCall::Fopen, libc::AT_FDCWD, path, DATA_BYTES - 16);
                    second_path(rec, mode);
                },
            )
        }
    };
}
fopen!(fopen, "fopen");
fopen!(fopen64, "fopen64");

macro_rules! one_path {
    ($name:ident, $call:expr) => {
        /// # Safety
        /// As the libc function of this name.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char) -> c_int {
            let Some(real) = real!(
                stringify!($name),
                unsafe extern "C" fn(*const c_char) -> c_int
            ) else {
                return missing();
            };
            traced(
                // SAFETY: the caller's argument, passed on unchanged.
                || unsafe { real(path) },
                i64::from,
                |rec, _| file(rec, $call, libc::AT_FDCWD, path, DATA_BYTES),
            )
        }
    };
}
one_path!(unlink, FileCall::Unlink);
one_path!(rmdir, FileCall::Rmdir);

macro_rules! path_and_mode {
    ($name:ident, $call:expr) => {
        /// # Safety
        /// As the libc function of this name.
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char, mode: mode_t) -> c_int {
            let Some(real) = real!(
                stringify!($name),
                unsafe extern "C" fn(*const c_char, mode_t) -> c_int
            ) else {
                return missing();
            };
            traced(
                // SAFETY: the caller's arguments, passed on unchanged.
                || unsafe { real(path, mode) },
                i64::from,
                |rec, _| {
                    file(rec, $call, libc::AT_FDCWD, path, DATA_BYTES);
                    rec.arg1 = mode;
                },
            )
        }
    };
}
path_and_mode!(mkdir, FileCall::Mkdir);
path_and_mode!(chmod, FileCall::Chmod);

/// # Safety
/// As unlinkat(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn unlinkat(dirfd: c_int, path: *const c_char, flags: c_int) -> c_int {
    let Some(real) = real!(
        "unlinkat",
        unsafe extern "C" fn(c_int, *const c_char, c_int) -> c_int
    ) else {
        return missing();
    };
    traced(
        // SAFETY: the caller's arguments, passed on unchanged.
        || unsafe { real(dirfd, path, flags) },
        i64::from,
        |rec, _| {
            file(rec, FileCall::Unlinkat, dirfd, path, DATA_BYTES);
            rec.arg0 = flags as u32;
        },
    )
}

/// # Safety
/// As mkdirat(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn mkdirat(dirfd: c_int, path: *const c_char, mode: mode_t) -> c_int {
    let Some(real) = real!(
        "mkdirat",
        unsafe extern "C" fn(c_int, *const c_char, mode_t) -> c_int
    ) else {
        return missing();
    };
    traced(
        // SAFETY: the caller's arguments, passed on unchanged.
        || unsafe { real(dirfd, path, mode) },
        i64::from,
        |rec, _| {
            file(rec, FileCall::Mkdirat, dirfd, path, DATA_BYTES);
            rec.arg1 = mode;
        },
    )
}

/// # Safety
/// As fchmodat(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn fchmodat(
    dirfd: c_int,
    path: *const c_char,
    mode: mode_t,
    flags: c_int,
) -> c_int {
    let Some(real) = real!(
        "fchmodat",
        unsafe extern "C" fn(c_int, *const c_char, mode_t, c_int) -> c_int
    ) else {
        return missing();
    };
    traced(
        // SAFETY: the caller's arguments, passed on unchanged.
        || unsafe { real(dirfd, path, mode, flags) },
        i64::from,
        |rec, _| {
            file(rec, FileCall::Fchmodat, dirfd, path, DATA_BYTES);
            rec.arg0 = flags as u32;
            rec.arg1 = mode;
        },
    )
}

/// # Safety
/// As rename(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn rename(from: *const c_char, to: *const c_char) -> c_int {
    let Some(real) = real!(
        "rename",
        unsafe extern "C" fn(*const c_char, *const c_char) -> c_int
    ) else {
        return missing();
    };
    traced(
        // SAFETY: the caller's arguments, passed on unchanged.
        || unsafe { real(from, to) },
        i64::from,
        |rec, _| {
            file(rec, FileCall::Rename, libc::AT_FDCWD, from, HALF);
            second_path(rec, to);
        },
    )
}

/// # Safety
/// As renameat(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn renameat(
    fromfd: c_int,
    from: *const c_char,
    tofd: c_int,
    to: *const c_char,
) -> c_int {
    let Some(real) = real!(
        "renameat",
        unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char) -> c_int
    ) else {
        return missing();
    };
    traced(
        // SAFETY: the caller's arguments, passed on unchanged.
        || unsafe { real(fromfd, from, tofd, to) },
        i64::from,
        |rec, _| {
            file(rec, FileCall::Renameat, fromfd, from, HALF);
            second_path(rec, to);
        },
    )
}

/// # Safety
/// As renameat2(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn renameat2(
    fromfd: c_int,
    from: *const c_char,
    tofd: c_int,
    to: *const c_char,
    flags: u32,
) -> c_int {
    let Some(real) = real!(
        "renameat2",
        unsafe extern "C" fn(c_int, *const c_char, c_int, *const c_char, u32) -> c_int
    ) else {
        return missing();
    };
    traced(
        // SAFETY: the caller's arguments, passed on unchanged.
        || unsafe { real(fromfd, from, tofd, to, flags) },
        i64::from,
        |rec, _| {
            file(rec, FileCall::Renameat, fromfd, from, HALF);
            second_path(rec, to);
            rec.arg0 = flags;
        },
    )
}

macro_rules! truncate {
    ($name:ident) => {
        /// # Safety
        /// As truncate(2).
        #[cfg_attr(not(test), no_mangle)]
        pub unsafe extern "C" fn $name(path: *const c_char, length: off_t) -> c_int {
            let Some(real) = real!(
                stringify!($name),
                unsafe extern "C" fn(*const c_char, off_t) -> c_int
            ) else {
                return missing();
            };
            traced(
                // SAFETY: the caller's arguments, passed on unchanged.
                || unsafe { real(path, length) },
                i64::from,
                |rec, _| file(rec, FileCall::Truncate, libc::AT_FDCWD, path, DATA_BYTES),
            )
        }
    };
}
truncate!(truncate);
truncate!(truncate64);

// ---- sockets --------------------------------------------------------------

/// Only addresses a person asks about: IP peers and unix sockets.
fn interesting(addr: *const sockaddr, len: socklen_t) -> bool {
    if addr.is_null() || (len as usize) < core::mem::size_of::<libc::sa_family_t>() {
        return false;
    }
    // SAFETY: at least the family is readable.
    let family = c_int::from(unsafe { (*addr).sa_family });
    matches!(family, libc::AF_INET | libc::AF_INET6 | libc::AF_UNIX)
}

fn net(rec: &mut Record, call: NetCall, fd: c_int, addr: *const sockaddr, len: socklen_t) {
    rec.kind = kind::NET;
    rec.op = call as u8;
    let len = (len as usize).min(core::mem::size_of::<libc::sockaddr_storage>());
    if !addr.is_null() {
        // SAFETY: the caller gave `len` readable bytes at addr.
        let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, len) };
        rec.set_a(bytes, DATA_BYTES);
    }
    let mut sotype: c_int = 0;
    let mut optlen = core::mem::size_of::<c_int>() as socklen_t;
    // SAFETY: getsockopt writes an int into sotype.
    unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            &mut sotype as *mut c_int as *mut c_void,
            &mut optlen,
        )
    };
    rec.arg0 = sotype as u32;
}

/// # Safety
/// As connect(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    if !interesting(addr, len) || !tracer::on() {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { sys::raw_connect(fd, addr, len) as c_int };
    }
    traced(
        // SAFETY: the caller's arguments, passed on unchanged.
        || unsafe { sys::raw_connect(fd, addr, len) as c_int },
        i64::from,
        |rec, _| net(rec, NetCall::Connect, fd, addr, len),
    )
}

/// # Safety
/// As bind(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    let Some(real) = real!(
        "bind",
        unsafe extern "C" fn(c_int, *const sockaddr, socklen_t) -> c_int
    ) else {
        return missing();
    };
    if !interesting(addr, len) {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real(fd, addr, len) };
    }
    traced(
        // SAFETY: the caller's arguments, passed on unchanged.
        || unsafe { real(fd, addr, len) },
        i64::from,
        |rec, _| net(rec, NetCall::Bind, fd, addr, len),
    )
}

fn record_accepted(
    rec: &mut Record,
    listener: c_int,
    fd: c_int,
    addr: *const sockaddr,
    lenp: *const socklen_t,
) {
    if fd >= 0 && !addr.is_null() && !lenp.is_null() {
        // SAFETY: the kernel filled *lenp bytes at addr (cut to its size).
        net(rec, NetCall::Accept, fd, addr, unsafe { *lenp });
        return;
    }
    // The caller did not ask for the peer: ask the kernel.
    // SAFETY: a zeroed sockaddr_storage is valid to fill.
    let mut peer: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
    let mut len = core::mem::size_of::<libc::sockaddr_storage>() as socklen_t;
    let known = fd >= 0
        // SAFETY: getpeername fills at most len bytes of peer.
        && unsafe { libc::getpeername(fd, &mut peer as *mut _ as *mut sockaddr, &mut len) } == 0;
    let (addr, len) = if known {
        (&peer as *const _ as *const sockaddr, len)
    } else {
        (null(), 0)
    };
    net(
        rec,
        NetCall::Accept,
        if fd >= 0 { fd } else { listener },
        addr,
        len,
    );
}

/// # Safety
/// As accept(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, lenp: *mut socklen_t) -> c_int {
    let Some(real) = real!(
        "accept",
        unsafe extern "C" fn(c_int, *mut sockaddr, *mut socklen_t) -> c_int
    ) else {
        return missing();
    };
    traced(
        // SAFETY: the caller's arguments, passed on unchanged.
        || unsafe { real(fd, addr, lenp) },
        i64::from,
        |rec, new| record_accepted(rec, fd, new, addr, lenp),
    )
}

/// # Safety
/// As accept4(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    lenp: *mut socklen_t,
    flags: c_int,
) -> c_int {
    let Some(real) = real!(
        "accept4",
        unsafe extern "C" fn(c_int, *mut sockaddr, *mut socklen_t, c_int) -> c_int
    ) else {
        return missing();
    };
    traced(
        // SAFETY: the caller's arguments, passed on unchanged.
        || unsafe { real(fd, addr, lenp, flags) },
        i64::from,
        |rec, new| record_accepted(rec, fd, new, addr, lenp),
    )
}

/// Peers this process already sent datagrams to (hashes of their
/// addresses; 0 = empty). Lock-free; full = every send recorded.
static PEERS: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];

pub fn forget_peers() {
    for peer in &PEERS {
        peer.store(0, Ordering::Relaxed);
    }
}

/// `true` the first time this process sends to `addr`.
fn new_peer(addr: *const sockaddr, len: socklen_t) -> bool {
    // SAFETY: the caller gave len readable bytes.
    let bytes = unsafe { core::slice::from_raw_parts(addr as *const u8, (len as usize).min(128)) };
    first_send(&PEERS, bytes)
}

/// FNV-1a of an address; never 0 (the empty mark).
fn peer_hash(addr: &[u8]) -> u64 {
    addr.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) | 1
}

/// Records `addr` in `peers`: `true` the first time, `false` once seen. An
/// address whose 8 probe slots are all taken by others is always new.
fn first_send<const N: usize>(peers: &[AtomicU64; N], addr: &[u8]) -> bool {
    let hash = peer_hash(addr);
    let start = (hash as usize) % N;
    for i in 0..8 {
        let slot = &peers[(start + i) % N];
        match slot.compare_exchange(0, hash, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(seen) if seen == hash => return false,
            Err(_) => {}
        }
    }
    true
}

/// # Safety
/// As sendto(2).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    len: usize,
    flags: c_int,
    addr: *const sockaddr,
    addrlen: socklen_t,
) -> isize {
    let Some(real) = real!(
        "sendto",
        unsafe extern "C" fn(
            c_int,
            *const c_void,
            usize,
            c_int,
            *const sockaddr,
            socklen_t,
        ) -> isize
    ) else {
        sys::set_errno(libc::ENOSYS);
        return -1;
    };
    if !interesting(addr, addrlen) || !tracer::on() || !new_peer(addr, addrlen) {
        // SAFETY: the caller's arguments, passed on unchanged.
        return unsafe { real(fd, buf, len, flags, addr, addrlen) };
    }
    traced(
        // SAFETY: the caller's arguments, passed on unchanged.
        || unsafe { real(fd, buf, len, flags, addr, addrlen) },
        |n| n as i64,
        |rec, _| net(rec, NetCall::Sendto, fd, addr, addrlen),
    )
}

// ---- name lookups ---------------------------------------------------------

/// # Safety
/// As getaddrinfo(3).
#[cfg_attr(not(test), no_mangle)]
pub unsafe extern "C" fn getaddrinfo(
    node: *const c_char,
    service: *const c_char,
    hints: *const addrinfo,
    res: *mut *mut addrinfo,
) -> c_int {
    let Some(real) = real!(
        "getaddrinfo",
        unsafe extern "C" fn(
            *const c_char,
            *const c_char,
            *const addrinfo,
            *mut *mut addrinfo,
        ) -> c_int
    ) else {
        return libc::EAI_SYSTEM;
    };
    traced(
        // SAFETY: the caller's arguments, passed on unchanged.
        || unsafe { real(node, service, hints, res) },
        i64::from,
        |rec, ret| {
            rec.kind = kind::DNS;
            rec.op = 1;
            // SAFETY: node is a C string or NULL.
            let (name, _) = unsafe { sys::cstr(node, 255) };
            rec.set_a(name, 255);
            if ret != 0 || res.is_null() {
                return;
            }
            // SAFETY: on success *res is a valid list, ours to read.
            let used = unsafe { dns_answers(rec.b_room(), *res) };
            rec.b_len = used as u16;
            rec.arg0 = (used / DNS_ANSWER_BYTES) as u32;
        },
    )
}

/// Writes the distinct IPv4 and IPv6 addresses of the `getaddrinfo` list
/// `ai` into `room`, [`DNS_ANSWER_BYTES`] each (family, then the address
/// bytes, zero-padded), as many as fit. Returns the bytes used.
///
/// # Safety
/// `ai` is NULL or a valid `addrinfo` list.
unsafe fn dns_answers(room: &mut [u8], mut ai: *const addrinfo) -> usize {
    let mut used = 0;
    while !ai.is_null() && used + DNS_ANSWER_BYTES <= room.len() {
        // SAFETY: ai is a node of that list.
        let (family, addr) = unsafe { ((*ai).ai_family, (*ai).ai_addr) };
        let mut answer = [0u8; DNS_ANSWER_BYTES];
        answer[0] = family as u8;
        let ok = match family {
            // SAFETY: the family says which sockaddr this is.
            libc::AF_INET if !addr.is_null() => unsafe {
                let a = &*(addr as *const libc::sockaddr_in);
                answer[1..5].copy_from_slice(&a.sin_addr.s_addr.to_ne_bytes());
                true
            },
            // SAFETY: as above.
            libc::AF_INET6 if !addr.is_null() => unsafe {
                let a = &*(addr as *const libc::sockaddr_in6);
                answer[1..17].copy_from_slice(&a.sin6_addr.s6_addr);
                true
            },
            _ => false,
        };
        // One answer per address (glibc repeats it per socket type).
        if ok && !room[..used].chunks(DNS_ANSWER_BYTES).any(|c| c == answer) {
            room[used..used + DNS_ANSWER_BYTES].copy_from_slice(&answer);
            used += DNS_ANSWER_BYTES;
        }
        // SAFETY: as above.
        ai = unsafe { (*ai).ai_next };
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracer::testing::{self, TestRing};
    use std::ffi::{CStr, CString};
    use std::os::unix::ffi::OsStrExt;
    use std::path::PathBuf;
    use std::sync::atomic::AtomicU32;
    use std::vec::Vec;
    use std::{format, vec};
    use substrate_ring::ring::{SLOTS, TRUNCATED_A, TRUNCATED_B};

    /// A fresh directory, removed with what is in it when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("substrate-preload-test-{}-{n}", std::process::id()));
            std::fs::create_dir(&path).unwrap();
            TempDir(path)
        }

        /// `name` in this directory, as a C string.
        fn c(&self, name: &str) -> CString {
            CString::new(self.0.join(name).as_os_str().as_bytes()).unwrap()
        }

        /// The directory opened (O_PATH is enough for the *at calls).
        fn fd(&self) -> c_int {
            let path = self.c("");
            // SAFETY: a C string; libc's own open (the hooks are not
            // exported in tests).
            let fd = unsafe { libc::open(path.as_ptr(), libc::O_DIRECTORY | libc::O_CLOEXEC) };
            assert!(fd >= 0);
            fd
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// What a file record says, to compare whole.
    #[derive(Debug, PartialEq)]
    struct File<'a> {
        op: FileCall,
        dirfd: c_int,
        a: &'a [u8],
        b: &'a [u8],
        ret: i64,
        errno: c_int,
        arg0: u32,
        arg1: u32,
        truncated: u8,
    }

    fn file_of(r: &Record) -> File<'_> {
        assert_eq!(r.kind, kind::FILE);
        File {
            op: FileCall::from_u8(r.op).unwrap(),
            dirfd: r.dirfd,
            a: r.a().unwrap(),
            b: r.b().unwrap(),
            ret: r.ret,
            errno: r.errno,
            arg0: r.arg0,
            arg1: r.arg1,
            truncated: r.truncated,
        }
    }

    /// The record of a call on `a` that returned `ret` (0 or more: no errno).
    fn want(op: FileCall, dirfd: c_int, a: &[u8], ret: i64, errno: c_int) -> File<'_> {
        File {
            op,
            dirfd,
            a,
            b: b"",
            ret,
            errno,
            arg0: 0,
            arg1: 0,
            truncated: 0,
        }
    }

    const CWD: c_int = libc::AT_FDCWD;
    const NOWHERE: &CStr = c"/nonexistent-substrate-test/x";

    #[test]
    fn the_open_family_records_path_flags_mode_and_dirfd() {
        let mut t = TestRing::on();
        let dir = TempDir::new();
        let dfd = dir.fd();
        let f = dir.c("f");
        let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC;

        // A success leaves errno as it was; the record has the fd.
        sys::set_errno(999);
        let before = sys::now_ns();
        // SAFETY: valid arguments (here and below).
        let fd = unsafe { open(f.as_ptr(), flags, 0o640) };
        let after = sys::now_ns();
        assert!(fd >= 0);
        assert_eq!(sys::errno(), 999);
        let r = t.one();
        assert!(r.start_ns >= before && r.start_ns + r.duration_ns <= after);
        assert_eq!(
            file_of(&r),
            File {
                arg0: flags as u32,
                arg1: 0o640,
                ..want(FileCall::Open, CWD, f.as_bytes(), fd.into(), 0)
            }
        );
        // SAFETY: our fd.
        unsafe { libc::close(fd) };

        // No O_CREAT: whatever the mode register held is not recorded.
        // SAFETY: as above.
        let fd = unsafe { open64(f.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC, 0o7777) };
        assert!(fd >= 0);
        assert_eq!(
            file_of(&t.one()),
            File {
                arg0: (libc::O_RDONLY | libc::O_CLOEXEC) as u32,
                ..want(FileCall::Open, CWD, f.as_bytes(), fd.into(), 0)
            }
        );
        // SAFETY: our fd.
        unsafe { libc::close(fd) };

        // A relative path stays as given, with the dirfd it is relative to.
        // SAFETY: as above.
        let fd = unsafe { openat(dfd, c"f".as_ptr(), libc::O_RDONLY, 0) };
        assert!(fd >= 0);
        assert_eq!(
            file_of(&t.one()),
            want(FileCall::Openat, dfd, b"f", fd.into(), 0)
        );
        // SAFETY: our fd.
        unsafe { libc::close(fd) };

        // Relative to the cwd: AT_FDCWD, the path unresolved; a failure
        // keeps its errno, in the record and for the caller.
        sys::set_errno(0);
        // SAFETY: as above.
        let ret = unsafe { openat64(CWD, c"no/such-relative".as_ptr(), libc::O_RDONLY, 0) };
        assert_eq!((ret, sys::errno()), (-1, libc::ENOENT));
        assert_eq!(
            file_of(&t.one()),
            want(FileCall::Openat, CWD, b"no/such-relative", -1, libc::ENOENT)
        );

        // O_TMPFILE carries a mode (whether or not this filesystem has it).
        let tmpfile = libc::O_TMPFILE | libc::O_RDWR;
        // SAFETY: as above.
        let fd = unsafe { openat(dfd, c".".as_ptr(), tmpfile, 0o600) };
        let err = sys::errno();
        let r = t.one();
        assert_eq!((r.arg0, r.arg1, r.ret), (tmpfile as u32, 0o600, fd.into()));
        assert_eq!(r.errno, if fd < 0 { err } else { 0 });
        if fd >= 0 {
            // SAFETY: our fd.
            unsafe { libc::close(fd) };
        }

        // _FORTIFY_SOURCE's variants.
        // SAFETY: as above.
        let fds = unsafe {
            [
                __open_2(f.as_ptr(), libc::O_RDONLY),
                __open64_2(f.as_ptr(), libc::O_RDONLY),
                __openat_2(dfd, c"f".as_ptr(), libc::O_RDONLY),
                __openat64_2(dfd, c"f".as_ptr(), libc::O_RDONLY),
            ]
        };
        let records = t.drain();
        let got: Vec<File> = records.iter().map(file_of).collect();
        assert_eq!(
            got,
            [
                want(FileCall::Open, CWD, f.as_bytes(), fds[0].into(), 0),
                want(FileCall::Open, CWD, f.as_bytes(), fds[1].into(), 0),
                want(FileCall::Openat, dfd, b"f", fds[2].into(), 0),
                want(FileCall::Openat, dfd, b"f", fds[3].into(), 0),
            ]
        );
        for fd in fds.into_iter().chain([dfd]) {
            assert!(fd >= 0);
            // SAFETY: our fds.
            unsafe { libc::close(fd) };
        }

        // creat is open with fixed flags and a mode.
        let c = dir.c("c");
        // SAFETY: as above.
        let (fd, fd64) = unsafe { (creat(c.as_ptr(), 0o600), creat64(c.as_ptr(), 0o604)) };
        assert!(fd >= 0 && fd64 >= 0);
        let creat_flags = (libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC) as u32;
        let records = t.drain();
        let got: Vec<File> = records.iter().map(file_of).collect();
        assert_eq!(
            got,
            [
                File {
                    arg0: creat_flags,
                    arg1: 0o600,
                    ..want(FileCall::Creat, CWD, c.as_bytes(), fd.into(), 0)
                },
                File {
                    arg0: creat_flags,
                    arg1: 0o604,
                    ..want(FileCall::Creat, CWD, c.as_bytes(), fd64.into(), 0)
                },
            ]
        );
        // SAFETY: our fds.
        unsafe { (libc::close(fd), libc::close(fd64)) };
    }

    #[test]
    fn fopen_records_the_path_and_the_mode_string() {
        let mut t = TestRing::on();
        let dir = TempDir::new();
        let f = dir.c("f");
        // SAFETY: valid arguments.
        let file = unsafe { fopen(f.as_ptr(), c"w".as_ptr()) };
        assert!(!file.is_null());
        assert_eq!(
            file_of(&t.one()),
            File {
                b: b"w",
                ..want(FileCall::Fopen, CWD, f.as_bytes(), 0, 0)
            }
        );
        // SAFETY: the FILE fopen returned.
        unsafe { libc::fclose(file) };
        // SAFETY: valid arguments.
        let file = unsafe { fopen64(NOWHERE.as_ptr(), c"r+e".as_ptr()) };
        assert!(file.is_null());
        assert_eq!(sys::errno(), libc::ENOENT);
        assert_eq!(
            file_of(&t.one()),
            File {
                b: b"r+e",
                ..want(FileCall::Fopen, CWD, NOWHERE.to_bytes(), -1, libc::ENOENT)
            }
        );
        // A long path leaves the mode string its 16 bytes.
        let long = path(DATA_BYTES);
        // SAFETY: valid arguments.
        let file = unsafe { fopen(long.as_ptr(), c"r".as_ptr()) };
        assert!(file.is_null());
        let r = t.one();
        assert_eq!(r.a().unwrap(), &long.as_bytes()[..DATA_BYTES - 16]);
        assert_eq!((r.b().unwrap(), r.truncated), (&b"r"[..], TRUNCATED_A));
    }

    #[test]
    fn directory_rename_unlink_and_truncate_calls_are_recorded() {
        let mut t = TestRing::on();
        let dir = TempDir::new();
        let dfd = dir.fd();
        let (d, d2, f) = (dir.c("d"), dir.c("d2"), dir.c("f"));
        std::fs::write(dir.0.join("f"), b"0123456789").unwrap();
        // SAFETY: valid arguments throughout.
        let rets = unsafe {
            [
                mkdir(d.as_ptr(), 0o700),
                chmod(d.as_ptr(), 0o755),
                mkdirat(dfd, c"e".as_ptr(), 0o750),
                fchmodat(dfd, c"e".as_ptr(), 0o700, 0),
                rename(d.as_ptr(), d2.as_ptr()),
                renameat(dfd, c"e".as_ptr(), dfd, c"e2".as_ptr()),
                renameat2(dfd, c"e2".as_ptr(), dfd, c"e3".as_ptr(), 0),
                unlinkat(dfd, c"e3".as_ptr(), libc::AT_REMOVEDIR),
                rmdir(d2.as_ptr()),
                truncate(f.as_ptr(), 3),
                truncate64(f.as_ptr(), 2),
                unlink(f.as_ptr()),
            ]
        };
        assert_eq!(rets, [0; 12]);
        assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 0);
        let records = t.drain();
        let got: Vec<File> = records.iter().map(file_of).collect();
        let ok = |op, dirfd, a| want(op, dirfd, a, 0, 0);
        assert_eq!(
            got,
            [
                File {
                    arg1: 0o700,
                    ..ok(FileCall::Mkdir, CWD, d.as_bytes())
                },
                File {
                    arg1: 0o755,
                    ..ok(FileCall::Chmod, CWD, d.as_bytes())
                },
                File {
                    arg1: 0o750,
                    ..ok(FileCall::Mkdirat, dfd, b"e")
                },
                File {
                    arg1: 0o700,
                    ..ok(FileCall::Fchmodat, dfd, b"e")
                },
                File {
                    b: d2.as_bytes(),
                    ..ok(FileCall::Rename, CWD, d.as_bytes())
                },
                File {
                    b: b"e2",
                    ..ok(FileCall::Renameat, dfd, b"e")
                },
                File {
                    b: b"e3",
                    ..ok(FileCall::Renameat, dfd, b"e2")
                },
                File {
                    arg0: libc::AT_REMOVEDIR as u32,
                    ..ok(FileCall::Unlinkat, dfd, b"e3")
                },
                ok(FileCall::Rmdir, CWD, d2.as_bytes()),
                ok(FileCall::Truncate, CWD, f.as_bytes()),
                ok(FileCall::Truncate, CWD, f.as_bytes()),
                ok(FileCall::Unlink, CWD, f.as_bytes()),
            ]
        );

        // Failures: the caller's result and errno, recorded as they are.
        let flags = libc::RENAME_NOREPLACE;
        // SAFETY: valid C strings.
        let failed = unsafe {
            [
                (FileCall::Unlink, {
                    sys::set_errno(0);
                    (unlink(NOWHERE.as_ptr()), sys::errno())
                }),
                (FileCall::Rmdir, {
                    sys::set_errno(0);
                    (rmdir(NOWHERE.as_ptr()), sys::errno())
                }),
                (FileCall::Truncate, {
                    sys::set_errno(0);
                    (truncate64(NOWHERE.as_ptr(), 0), sys::errno())
                }),
            ]
        };
        let records = t.drain();
        assert_eq!(records.len(), failed.len());
        for ((op, (ret, err)), r) in failed.into_iter().zip(&records) {
            assert_eq!((ret, err), (-1, libc::ENOENT));
            assert_eq!(
                file_of(r),
                want(op, CWD, NOWHERE.to_bytes(), -1, libc::ENOENT)
            );
        }
        // renameat2's flags go into arg0, the second dirfd nowhere.
        // SAFETY: valid arguments.
        let ret = unsafe { renameat2(dfd, NOWHERE.as_ptr(), CWD, c"y".as_ptr(), flags) };
        let err = sys::errno();
        assert_eq!(ret, -1);
        assert_eq!(
            file_of(&t.one()),
            File {
                b: b"y",
                arg0: flags,
                ..want(FileCall::Renameat, dfd, NOWHERE.to_bytes(), -1, err)
            }
        );
        // SAFETY: our fd.
        unsafe { libc::close(dfd) };
    }

    #[test]
    fn tracing_off_changes_nothing_and_records_nothing() {
        let mut t = TestRing::off();
        let dir = TempDir::new();
        let d = dir.c("d");
        sys::set_errno(999);
        // SAFETY: valid arguments.
        assert_eq!(unsafe { mkdir(d.as_ptr(), 0o700) }, 0);
        assert_eq!(sys::errno(), 999);
        // SAFETY: valid arguments.
        assert_eq!(unsafe { unlink(NOWHERE.as_ptr()) }, -1);
        assert_eq!(sys::errno(), libc::ENOENT);
        assert!(dir.0.join("d").is_dir());
        assert_eq!(t.drain().len(), 0);
    }

    /// A record as `Ring::push` hands it to a hook.
    fn fresh() -> Record {
        // SAFETY: Record is integers and bytes; all-zero is valid.
        unsafe { core::mem::zeroed() }
    }

    fn path(len: usize) -> CString {
        CString::new((0..len).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>()).unwrap()
    }

    #[test]
    fn paths_are_captured_up_to_their_cap() {
        // A path of exactly the record's room: whole, not truncated.
        let p = path(DATA_BYTES);
        let mut rec = fresh();
        file(&mut rec, FileCall::Open, CWD, p.as_ptr(), DATA_BYTES);
        assert_eq!((rec.a().unwrap(), rec.truncated), (p.as_bytes(), 0));
        assert_eq!(
            (rec.kind, rec.op, rec.dirfd),
            (kind::FILE, FileCall::Open as u8, CWD)
        );
        // One byte more: cut to the room, flagged.
        let p = path(DATA_BYTES + 1);
        let mut rec = fresh();
        file(&mut rec, FileCall::Unlinkat, 7, p.as_ptr(), DATA_BYTES);
        assert_eq!(rec.a().unwrap(), &p.as_bytes()[..DATA_BYTES]);
        assert_eq!((rec.truncated, rec.dirfd), (TRUNCATED_A, 7));
        // Any bytes, as they are; a NULL path is empty (the call fails).
        let mut rec = fresh();
        file(
            &mut rec,
            FileCall::Open,
            -100,
            c"caf\xc3\xa9/\xff\xfe\x80".as_ptr(),
            DATA_BYTES,
        );
        assert_eq!(rec.a().unwrap(), b"caf\xc3\xa9/\xff\xfe\x80");
        let mut rec = fresh();
        file(&mut rec, FileCall::Unlink, CWD, null(), DATA_BYTES);
        assert_eq!((rec.a_len, rec.truncated), (0, 0));
    }

    #[test]
    fn two_paths_share_the_record() {
        // Both long: half each, both flagged.
        let (from, to) = (path(300), path(301));
        let mut rec = fresh();
        file(&mut rec, FileCall::Rename, CWD, from.as_ptr(), HALF);
        second_path(&mut rec, to.as_ptr());
        assert_eq!(rec.a().unwrap(), &from.as_bytes()[..HALF]);
        assert_eq!(rec.b().unwrap(), &to.as_bytes()[..DATA_BYTES - HALF]);
        assert_eq!(rec.truncated, TRUNCATED_A | TRUNCATED_B);
        // A short first path leaves the rest to the second.
        let to = path(DATA_BYTES - 5);
        let mut rec = fresh();
        file(&mut rec, FileCall::Rename, CWD, c"/a/b".as_ptr(), HALF);
        second_path(&mut rec, to.as_ptr());
        assert_eq!(
            (rec.a().unwrap(), rec.b().unwrap()),
            (&b"/a/b"[..], to.as_bytes())
        );
        assert_eq!(rec.truncated, 0);
        let to = path(DATA_BYTES - 3);
        second_path(&mut rec, to.as_ptr());
        assert_eq!(rec.b().unwrap(), &to.as_bytes()[..DATA_BYTES - 4]);
        assert_eq!(rec.truncated, TRUNCATED_B);
        // fopen keeps 16 bytes for the mode string.
        let p = path(DATA_BYTES);
        let mut rec = fresh();
        file(&mut rec, FileCall::Fopen, CWD, p.as_ptr(), DATA_BYTES - 16);
        second_path(&mut rec, c"rb+ce".as_ptr());
        assert_eq!(rec.a().unwrap(), &p.as_bytes()[..DATA_BYTES - 16]);
        assert_eq!(
            (rec.b().unwrap(), rec.truncated),
            (&b"rb+ce"[..], TRUNCATED_A)
        );
    }

    #[test]
    fn an_oversized_path_stays_in_its_slot() {
        let mut t = TestRing::on();
        let long = path(5000);
        // SAFETY: valid arguments.
        let (a, b) = unsafe {
            (
                open(long.as_ptr(), libc::O_RDONLY, 0),
                unlink(c"/x".as_ptr()),
            )
        };
        assert_eq!((a, b), (-1, -1));
        let records = t.drain();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].a().unwrap(), &long.as_bytes()[..DATA_BYTES]);
        assert_eq!(
            (records[0].truncated, records[0].errno),
            (TRUNCATED_A, libc::ENAMETOOLONG)
        );
        assert_eq!(
            file_of(&records[1]),
            want(FileCall::Unlink, CWD, b"/x", -1, libc::ENOENT)
        );
    }

    #[test]
    fn a_reused_slot_keeps_nothing_of_its_last_record() {
        let mut t = TestRing::on();
        // A lap of records with every field set, drained: the next lap
        // writes over them.
        for _ in 0..SLOTS {
            crate::tracer::record(|r| {
                (r.dirfd, r.arg0, r.arg1, r.tid, r.errno) = (5, 7, 7, 9, 3);
                r.set_a(b"stale", DATA_BYTES);
                r.set_b(b"stale");
                r.truncated = TRUNCATED_A | TRUNCATED_B;
            });
        }
        assert_eq!(t.drain().len(), SLOTS as usize);
        let c = socket(libc::SOCK_STREAM);
        let (nowhere, nlen) = unix_addr(NOWHERE.to_bytes());
        // SAFETY: all-zero is valid hints.
        let mut hints: addrinfo = unsafe { core::mem::zeroed() };
        hints.ai_flags = libc::AI_NUMERICHOST;
        let mut res: *mut addrinfo = null_mut();
        // SAFETY: valid arguments; the list is freed right after.
        unsafe {
            unlink(NOWHERE.as_ptr());
            connect(c, sa(&nowhere), nlen);
            assert_eq!(getaddrinfo(c"::1".as_ptr(), null(), &hints, &mut res), 0);
            libc::freeaddrinfo(res);
            libc::close(c);
        }
        let records = t.drain();
        assert_eq!(records.len(), 3);
        assert_eq!(
            file_of(&records[0]),
            want(FileCall::Unlink, CWD, NOWHERE.to_bytes(), -1, libc::ENOENT)
        );
        let mut v6 = [0u8; DNS_ANSWER_BYTES];
        (v6[0], v6[16]) = (libc::AF_INET6 as u8, 1);
        let fields = |r: &Record| (r.dirfd, r.arg1, r.tid, r.truncated, r.b().unwrap().to_vec());
        assert_eq!(fields(&records[0]), (CWD, 0, 0, 0, vec![]));
        assert_eq!(fields(&records[1]), (CWD, 0, 0, 0, vec![]));
        assert_eq!(fields(&records[2]), (CWD, 0, 0, 0, v6.to_vec()));
        assert_eq!((records[2].errno, records[2].arg0), (0, 1));
    }

    #[test]
    fn a_mode_is_there_with_o_creat_or_o_tmpfile_only() {
        assert!(has_mode(libc::O_CREAT));
        assert!(has_mode(libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY));
        assert!(has_mode(libc::O_TMPFILE | libc::O_RDWR));
        // O_TMPFILE includes O_DIRECTORY's bit: neither half alone.
        assert!(!has_mode(libc::O_DIRECTORY));
        assert!(!has_mode(libc::O_TMPFILE & !libc::O_DIRECTORY));
        assert!(!has_mode(libc::O_RDWR | libc::O_TRUNC | libc::O_APPEND));
    }

    // ---- sockets ----------------------------------------------------------

    fn unix_addr(path: &[u8]) -> (libc::sockaddr_un, socklen_t) {
        // SAFETY: all-zero is a valid sockaddr_un.
        let mut addr: libc::sockaddr_un = unsafe { core::mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        assert!(
            path.len() < addr.sun_path.len(),
            "TMPDIR too long for a socket path"
        );
        for (dst, &src) in addr.sun_path.iter_mut().zip(path) {
            *dst = src as c_char;
        }
        let len = core::mem::size_of::<libc::sa_family_t>() + path.len() + 1;
        (addr, len as socklen_t)
    }

    fn bytes_of<T>(value: &T, len: socklen_t) -> &[u8] {
        assert!(len as usize <= core::mem::size_of::<T>());
        // SAFETY: len bytes are within the value (checked).
        unsafe { core::slice::from_raw_parts(value as *const T as *const u8, len as usize) }
    }

    fn socket(ty: c_int) -> c_int {
        // SAFETY: no preconditions.
        let fd = unsafe { libc::socket(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0);
        fd
    }

    fn sa(addr: &libc::sockaddr_un) -> *const sockaddr {
        addr as *const _ as *const sockaddr
    }

    /// What a net record says: (op, a, socket type, ret, errno).
    fn net_of(r: &Record) -> (NetCall, Vec<u8>, u32, i64, c_int) {
        assert_eq!(r.kind, kind::NET);
        let op = NetCall::from_u8(r.op).unwrap();
        (op, r.a().unwrap().to_vec(), r.arg0, r.ret, r.errno)
    }

    #[test]
    fn only_ip_and_unix_addresses_are_interesting() {
        let (un, len) = unix_addr(b"/s");
        assert!(interesting(sa(&un), len));
        // SAFETY: all-zero is valid for these.
        let (mut v4, mut v6, mut nl): (libc::sockaddr_in, libc::sockaddr_in6, libc::sockaddr_nl) =
            unsafe { core::mem::zeroed() };
        v4.sin_family = libc::AF_INET as libc::sa_family_t;
        v6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        nl.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let ptr = |p: *const u8| p as *const sockaddr;
        assert!(interesting(ptr(&v4 as *const _ as _), 16));
        assert!(interesting(ptr(&v6 as *const _ as _), 28));
        assert!(!interesting(ptr(&nl as *const _ as _), 12));
        // The family needs its two bytes; no address, nothing to say.
        assert!(interesting(sa(&un), 2));
        assert!(!interesting(sa(&un), 1));
        assert!(!interesting(null(), 16));
    }

    #[test]
    fn connect_and_bind_record_the_address_and_socket_type() {
        let mut t = TestRing::on();
        let dir = TempDir::new();
        let server = dir.c("srv.sock");
        let (addr, len) = unix_addr(server.as_bytes());

        let s = socket(libc::SOCK_DGRAM);
        // SAFETY: a valid address of len bytes.
        assert_eq!(unsafe { bind(s, sa(&addr), len) }, 0);
        assert_eq!(
            net_of(&t.one()),
            (
                NetCall::Bind,
                bytes_of(&addr, len).to_vec(),
                libc::SOCK_DGRAM as u32,
                0,
                0
            )
        );

        // No one listens at a stream path: the caller's error, recorded.
        let c = socket(libc::SOCK_STREAM);
        let (nowhere, nlen) = unix_addr(dir.c("none.sock").as_bytes());
        // SAFETY: as above.
        let ret = unsafe { connect(c, sa(&nowhere), nlen) };
        assert_eq!((ret, sys::errno()), (-1, libc::ENOENT));
        assert_eq!(
            net_of(&t.one()),
            (
                NetCall::Connect,
                bytes_of(&nowhere, nlen).to_vec(),
                libc::SOCK_STREAM as u32,
                -1,
                libc::ENOENT
            )
        );

        // Not an address a person asks about: passed on, not recorded.
        // SAFETY: all-zero is valid.
        let mut nl: libc::sockaddr_nl = unsafe { core::mem::zeroed() };
        nl.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        let nl_len = core::mem::size_of::<libc::sockaddr_nl>() as socklen_t;
        let c2 = socket(libc::SOCK_STREAM);
        // SAFETY: as above.
        let (ret, err) = unsafe { (connect(c, &nl as *const _ as _, nl_len), sys::errno()) };
        // SAFETY: the same call, libc's.
        let (want_ret, want_err) = unsafe {
            (
                libc::connect(c2, &nl as *const _ as _, nl_len),
                sys::errno(),
            )
        };
        assert_eq!((ret, err), (want_ret, want_err));
        assert_eq!(ret, -1);
        // SAFETY: as above.
        unsafe { bind(c2, &nl as *const _ as _, nl_len) };
        assert_eq!(t.drain().len(), 0);
        // SAFETY: our fds.
        unsafe { (libc::close(s), libc::close(c), libc::close(c2)) };
    }

    #[test]
    fn sendto_records_each_peer_once_per_process() {
        let mut t = TestRing::on();
        let dir = TempDir::new();
        let (one, two) = (dir.c("one.sock"), dir.c("two.sock"));
        let (a1, l1) = unix_addr(one.as_bytes());
        let (a2, l2) = unix_addr(two.as_bytes());
        let (r1, r2, s) = (
            socket(libc::SOCK_DGRAM),
            socket(libc::SOCK_DGRAM),
            socket(libc::SOCK_DGRAM),
        );
        // SAFETY: valid addresses (libc's bind: not under test here).
        unsafe {
            assert_eq!(libc::bind(r1, sa(&a1), l1), 0);
            assert_eq!(libc::bind(r2, sa(&a2), l2), 0);
        }
        let send = |addr: &libc::sockaddr_un, len| {
            // SAFETY: a 3-byte buffer and a valid address.
            unsafe { sendto(s, b"abc".as_ptr().cast(), 3, 0, sa(addr), len) }
        };
        assert_eq!(
            [send(&a1, l1), send(&a1, l1), send(&a2, l2), send(&a1, l1)],
            [3; 4]
        );
        let sent: Vec<_> = t.drain().iter().map(net_of).collect();
        let dgram = libc::SOCK_DGRAM as u32;
        assert_eq!(
            sent,
            [
                (NetCall::Sendto, bytes_of(&a1, l1).to_vec(), dgram, 3, 0),
                (NetCall::Sendto, bytes_of(&a2, l2).to_vec(), dgram, 3, 0),
            ]
        );
        // No address (a connected socket): not recorded.
        // SAFETY: as above.
        unsafe { libc::connect(s, sa(&a1), l1) };
        // SAFETY: a 1-byte buffer, no address.
        let sent = unsafe { sendto(s, b"x".as_ptr().cast(), 1, 0, null(), 0) };
        assert_eq!(sent, 1);
        assert_eq!(t.drain().len(), 0);
        // A forked child has sent to no one yet. (The child handler would
        // unmap a ring, not free this heap one: it sees one being made.)
        let ring = t.ring.as_ptr();
        testing::set_ring(testing::REGISTERING);
        crate::tracer::substrate_after_fork_child();
        testing::set_ring(ring);
        assert_eq!(send(&a1, l1), 3);
        assert_eq!(t.one().a().unwrap(), bytes_of(&a1, l1));
        // SAFETY: our fds.
        unsafe { (libc::close(r1), libc::close(r2), libc::close(s)) };
    }

    #[test]
    fn accept_records_the_peer_given_or_asked_for() {
        let mut t = TestRing::on();
        let dir = TempDir::new();
        let (server, client) = (dir.c("srv.sock"), dir.c("cli.sock"));
        let (sa_s, ls) = unix_addr(server.as_bytes());
        let (sa_c, lc) = unix_addr(client.as_bytes());
        let l = socket(libc::SOCK_STREAM);
        // SAFETY: valid addresses; libc's own calls.
        unsafe {
            assert_eq!(libc::bind(l, sa(&sa_s), ls), 0);
            assert_eq!(libc::listen(l, 4), 0);
        }
        let stream = libc::SOCK_STREAM as u32;

        // An unnamed client, no address asked for: the hook asks the kernel.
        let c1 = socket(libc::SOCK_STREAM);
        // SAFETY: as above.
        assert_eq!(unsafe { libc::connect(c1, sa(&sa_s), ls) }, 0);
        // SAFETY: NULL address and length are allowed.
        let fd1 = unsafe { accept(l, null_mut(), null_mut()) };
        assert!(fd1 >= 0);
        let unnamed = (libc::AF_UNIX as libc::sa_family_t).to_ne_bytes().to_vec();
        assert_eq!(
            net_of(&t.one()),
            (NetCall::Accept, unnamed, stream, fd1.into(), 0)
        );

        // A named client, the caller's buffer: what the kernel put there.
        let c2 = socket(libc::SOCK_STREAM);
        // SAFETY: as above.
        unsafe {
            assert_eq!(libc::bind(c2, sa(&sa_c), lc), 0);
            assert_eq!(libc::connect(c2, sa(&sa_s), ls), 0);
        }
        // SAFETY: all-zero is valid.
        let mut peer: libc::sockaddr_storage = unsafe { core::mem::zeroed() };
        let mut plen = core::mem::size_of::<libc::sockaddr_storage>() as socklen_t;
        // SAFETY: a buffer of plen bytes.
        let fd2 = unsafe { accept4(l, &mut peer as *mut _ as _, &mut plen, libc::SOCK_CLOEXEC) };
        assert!(fd2 >= 0);
        assert_eq!(plen, lc);
        let r = t.one();
        assert_eq!(
            net_of(&r),
            (
                NetCall::Accept,
                bytes_of(&sa_c, lc).to_vec(),
                stream,
                fd2.into(),
                0
            )
        );

        // A socket that does not listen: the failure, the listener's type.
        let idle = socket(libc::SOCK_STREAM);
        // SAFETY: as above.
        let ret = unsafe { accept(idle, null_mut(), null_mut()) };
        assert_eq!((ret, sys::errno()), (-1, libc::EINVAL));
        assert_eq!(
            net_of(&t.one()),
            (NetCall::Accept, vec![], stream, -1, libc::EINVAL)
        );
        for fd in [l, c1, c2, fd1, fd2, idle] {
            // SAFETY: our fds.
            unsafe { libc::close(fd) };
        }
    }

    #[test]
    fn accept_keeps_errno_when_the_peer_is_already_gone() {
        // A TCP peer that reset before accept: accept succeeds, the hook's
        // own getpeername fails (ENOTCONN); the caller's errno must not
        // show it.
        let mut t = TestRing::on();
        // SAFETY: all-zero is valid; then a loopback address, port 0.
        let mut addr: libc::sockaddr_in = unsafe { core::mem::zeroed() };
        addr.sin_family = libc::AF_INET as libc::sa_family_t;
        addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let mut len = core::mem::size_of::<libc::sockaddr_in>() as socklen_t;
        let ip = |ty| {
            // SAFETY: no preconditions.
            let fd = unsafe { libc::socket(libc::AF_INET, ty | libc::SOCK_CLOEXEC, 0) };
            assert!(fd >= 0);
            fd
        };
        let (l, c) = (ip(libc::SOCK_STREAM), ip(libc::SOCK_STREAM));
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: libc's calls on our sockets, with buffers of the sizes given.
        unsafe {
            let a = &mut addr as *mut libc::sockaddr_in as *mut sockaddr;
            assert_eq!(libc::bind(l, a, len), 0);
            assert_eq!(libc::listen(l, 1), 0);
            assert_eq!(libc::getsockname(l, a, &mut len), 0);
            assert_eq!(libc::connect(c, a, len), 0);
            let size = core::mem::size_of::<libc::linger>() as socklen_t;
            let opt = &linger as *const libc::linger as *const c_void;
            assert_eq!(
                libc::setsockopt(c, libc::SOL_SOCKET, libc::SO_LINGER, opt, size),
                0
            );
            // Closed with linger 0: a reset, now.
            libc::close(c);
        }
        sys::set_errno(999);
        // SAFETY: NULL address and length are allowed.
        let fd = unsafe { accept(l, null_mut(), null_mut()) };
        assert!(fd >= 0);
        assert_eq!(sys::errno(), 999);
        // The peer was unknown: no address, the call still recorded.
        let stream = libc::SOCK_STREAM as u32;
        assert_eq!(
            net_of(&t.one()),
            (NetCall::Accept, vec![], stream, fd.into(), 0)
        );
        // SAFETY: our fds.
        unsafe { (libc::close(fd), libc::close(l)) };
    }

    #[test]
    fn a_peer_is_new_once_until_its_probes_are_full() {
        let peers: [AtomicU64; 64] = [const { AtomicU64::new(0) }; 64];
        assert!(first_send(&peers, b"\x01\x00/a"));
        assert!(!first_send(&peers, b"\x01\x00/a"));
        assert!(first_send(&peers, b"\x01\x00/b"));
        assert!(!first_send(&peers, b"\x01\x00/b"));
        let used: Vec<u64> = peers
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .filter(|&h| h != 0)
            .collect();
        assert_eq!(used.len(), 2);
        // A full table: every address is new every time (8 probes).
        let tiny: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];
        for i in 0..8u8 {
            assert!(first_send(&tiny, &[i]));
        }
        assert!(first_send(&tiny, b"another"));
        assert!(first_send(&tiny, b"another"));
        assert!(!first_send(&tiny, &[3]));
    }

    #[test]
    fn the_peer_hash_is_fnv1a_and_never_zero() {
        // FNV-1a 64 test vectors, with the low bit set.
        assert_eq!(peer_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(peer_hash(b"a"), 0xaf63_dc4c_8601_ec8d);
        assert_eq!(peer_hash(b"foobar"), 0x8594_4171_f739_67e9);
        assert_eq!(peer_hash(b"foobar") & 1, 1);
    }

    // ---- name lookups -----------------------------------------------------

    #[test]
    fn getaddrinfo_records_the_name_and_each_address_once() {
        let mut t = TestRing::on();
        // SAFETY: all-zero is valid hints.
        let mut hints: addrinfo = unsafe { core::mem::zeroed() };
        hints.ai_flags = libc::AI_NUMERICHOST;
        let mut res: *mut addrinfo = null_mut();
        // SAFETY: valid arguments; the list is freed below.
        let ret = unsafe { getaddrinfo(c"127.0.0.1".as_ptr(), null(), &hints, &mut res) };
        assert_eq!(ret, 0);
        // glibc answers once per socket type: one address all the same.
        let mut listed = 0;
        let mut ai = res;
        while !ai.is_null() {
            listed += 1;
            // SAFETY: a node of the list.
            ai = unsafe { (*ai).ai_next };
        }
        assert!(listed > 1);
        // SAFETY: getaddrinfo's list.
        unsafe { libc::freeaddrinfo(res) };
        let r = t.one();
        let mut answer = [0u8; DNS_ANSWER_BYTES];
        answer[..5].copy_from_slice(&[libc::AF_INET as u8, 127, 0, 0, 1]);
        assert_eq!(
            (r.kind, r.op, r.ret, r.errno, r.arg0),
            (kind::DNS, 1, 0, 0, 1)
        );
        assert_eq!(
            (r.a().unwrap(), r.b().unwrap()),
            (&b"127.0.0.1"[..], &answer[..])
        );

        // A failure: getaddrinfo's code, no answer.
        // SAFETY: as above; nothing to free on failure.
        let ret = unsafe { getaddrinfo(c"not-an-address".as_ptr(), null(), &hints, &mut res) };
        assert_eq!(ret, libc::EAI_NONAME);
        let r = t.one();
        assert_eq!((r.ret, r.arg0, r.b_len), (libc::EAI_NONAME.into(), 0, 0));
        assert_eq!(r.a().unwrap(), b"not-an-address");
    }

    #[test]
    fn dns_answers_are_distinct_and_bounded_by_the_room() {
        // SAFETY: all-zero is valid for these.
        let (mut v4a, mut v4b, mut v6): (libc::sockaddr_in, libc::sockaddr_in, libc::sockaddr_in6) =
            unsafe { core::mem::zeroed() };
        v4a.sin_addr.s_addr = u32::from_ne_bytes([10, 0, 0, 1]);
        v4b.sin_addr.s_addr = u32::from_ne_bytes([10, 0, 0, 2]);
        v6.sin6_addr.s6_addr = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9];
        let (mut un, _) = unix_addr(b"/s");
        // A list: v4a, v4a again, a unix one, v4 without an address, v6, v4b.
        let nodes: [(c_int, *mut sockaddr); 6] = [
            (libc::AF_INET, &mut v4a as *mut _ as _),
            (libc::AF_INET, &mut v4a as *mut _ as _),
            (libc::AF_UNIX, &mut un as *mut _ as _),
            (libc::AF_INET, null_mut()),
            (libc::AF_INET6, &mut v6 as *mut _ as _),
            (libc::AF_INET, &mut v4b as *mut _ as _),
        ];
        // SAFETY: all-zero is a valid addrinfo.
        let mut list: Vec<addrinfo> = vec![unsafe { core::mem::zeroed() }; nodes.len()];
        for (i, (family, addr)) in nodes.into_iter().enumerate() {
            list[i].ai_family = family;
            list[i].ai_addr = addr;
        }
        for i in 0..list.len() - 1 {
            let next: *mut addrinfo = &mut list[i + 1];
            list[i].ai_next = next;
        }
        let mut expect = Vec::new();
        expect.extend_from_slice(&[libc::AF_INET as u8, 10, 0, 0, 1]);
        expect.extend_from_slice(&[0; 12]);
        expect.push(libc::AF_INET6 as u8);
        expect.extend_from_slice(&v6.sin6_addr.s6_addr);
        expect.extend_from_slice(&[libc::AF_INET as u8, 10, 0, 0, 2]);
        expect.extend_from_slice(&[0; 12]);

        let mut room = [0xaau8; 3 * DNS_ANSWER_BYTES];
        // SAFETY: the list above, alive.
        let used = unsafe { dns_answers(&mut room, list.as_ptr()) };
        assert_eq!((used, &room[..]), (3 * DNS_ANSWER_BYTES, &expect[..]));
        // Room for two and a bit: two, the rest untouched.
        let mut room = [0xaau8; 2 * DNS_ANSWER_BYTES + 16];
        // SAFETY: as above.
        let used = unsafe { dns_answers(&mut room, list.as_ptr()) };
        assert_eq!(used, 2 * DNS_ANSWER_BYTES);
        assert_eq!(&room[..used], &expect[..used]);
        assert_eq!(&room[used..], &[0xaa; 16]);
        // SAFETY: NULL is an empty list.
        assert_eq!(unsafe { dns_answers(&mut room, null()) }, 0);
    }
}
