//! The interposed calls. Each one calls the real function, then records
//! what happened; none changes what the caller sees (return value, errno).

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
#[no_mangle]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
    open_traced(FileCall::Open, libc::AT_FDCWD, path, flags, mode)
}

/// # Safety
/// As open(2).
#[no_mangle]
pub unsafe extern "C" fn open64(path: *const c_char, flags: c_int, mode: mode_t) -> c_int {
    open_traced(FileCall::Open, libc::AT_FDCWD, path, flags, mode)
}

/// # Safety
/// As openat(2).
#[no_mangle]
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
#[no_mangle]
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
        #[no_mangle]
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
        #[no_mangle]
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
        #[no_mangle]
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
        #[no_mangle]
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
        #[no_mangle]
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
        #[no_mangle]
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
#[no_mangle]
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
#[no_mangle]
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
#[no_mangle]
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
#[no_mangle]
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
#[no_mangle]
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
#[no_mangle]
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
        #[no_mangle]
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
#[no_mangle]
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
#[no_mangle]
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
#[no_mangle]
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
#[no_mangle]
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
    // FNV-1a; never 0 (the empty mark).
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) | 1;
    let start = (hash as usize) % PEERS.len();
    for i in 0..8 {
        let slot = &PEERS[(start + i) % PEERS.len()];
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
#[no_mangle]
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
#[no_mangle]
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
            let room = rec.b_room();
            let mut used = 0;
            // SAFETY: on success *res is a valid list, ours to read.
            let mut ai = unsafe { *res };
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
            rec.b_len = used as u16;
            rec.arg0 = (used / DNS_ANSWER_BYTES) as u32;
        },
    )
}
