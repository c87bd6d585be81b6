//! The few things the tracer needs from the system, without libc symbols
//! that it interposes or that musl lacks.

use core::ffi::{c_char, c_int, c_long};

pub fn errno() -> c_int {
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() }
}

pub fn set_errno(value: c_int) {
    // SAFETY: as for errno().
    unsafe { *libc::__errno_location() = value }
}

/// CLOCK_REALTIME in ns (vDSO: no system call).
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// The bytes of a C string, up to `cap` of them, and whether it was longer.
///
/// # Safety
/// `s` is NULL or a NUL-terminated string.
pub unsafe fn cstr<'a>(s: *const c_char, cap: usize) -> (&'a [u8], bool) {
    if s.is_null() {
        return (&[], false);
    }
    let mut n = 0;
    // SAFETY: the caller's contract; we stop at the NUL or at cap.
    while n < cap && unsafe { *s.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: the first n bytes were just read.
    let bytes = unsafe { core::slice::from_raw_parts(s as *const u8, n) };
    // SAFETY: when n == cap, byte n exists (the string goes on, or ends there).
    let cut = n == cap && unsafe { *s.add(n) } != 0;
    (bytes, cut)
}

/// `connect(2)` as a system call: `connect` itself is interposed.
///
/// # Safety
/// `addr` points to `len` readable bytes.
pub unsafe fn raw_connect(fd: c_int, addr: *const libc::sockaddr, len: libc::socklen_t) -> c_long {
    // SAFETY: the caller's contract.
    unsafe { libc::syscall(libc::SYS_connect, fd, addr, len) }
}

pub fn getpid() -> u32 {
    // SAFETY: no preconditions.
    unsafe { libc::syscall(libc::SYS_getpid) as u32 }
}

/// Connects a SOCK_SEQPACKET socket to the world's span socket; -1 when
/// there is none (not in a world, monitor gone).
pub fn connect_span_socket() -> c_int {
    // SAFETY: plain socket calls on a socket we own; the address is a
    // local, fully initialised sockaddr_un.
    unsafe {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return -1;
        }
        // Never hang a program on a stuck monitor.
        let timeout = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            &timeout as *const _ as *const libc::c_void,
            core::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        let mut addr: libc::sockaddr_un = core::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let path = substrate_ring::SOCKET_PATH.as_bytes();
        for (dst, &src) in addr.sun_path.iter_mut().zip(path) {
            *dst = src as c_char;
        }
        let len = (core::mem::size_of::<libc::sa_family_t>() + path.len() + 1) as libc::socklen_t;
        if raw_connect(fd, &addr as *const _ as *const libc::sockaddr, len) < 0 {
            libc::close(fd);
            return -1;
        }
        fd
    }
}

/// Sends `msg` (and `pass_fd` as SCM_RIGHTS when >= 0) on `fd`.
pub fn send_with_fd(fd: c_int, msg: &[u8], pass_fd: c_int) -> bool {
    // Room for one SCM_RIGHTS fd, aligned as cmsghdr wants.
    #[repr(C, align(8))]
    struct Control([u8; 24]);
    let mut control = Control([0; 24]);
    let mut iov = libc::iovec {
        iov_base: msg.as_ptr() as *mut libc::c_void,
        iov_len: msg.len(),
    };
    // SAFETY: msghdr/cmsghdr are built over live, correctly sized buffers.
    unsafe {
        let mut hdr: libc::msghdr = core::mem::zeroed();
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        if pass_fd >= 0 {
            let space = libc::CMSG_SPACE(core::mem::size_of::<c_int>() as u32) as usize;
            hdr.msg_control = control.0.as_mut_ptr() as *mut libc::c_void;
            hdr.msg_controllen = space;
            let cmsg = libc::CMSG_FIRSTHDR(&hdr);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(core::mem::size_of::<c_int>() as u32) as usize;
            core::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut c_int, pass_fd);
        }
        libc::sendmsg(fd, &hdr, libc::MSG_NOSIGNAL) == msg.len() as isize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(s: &core::ffi::CStr, cap: usize) -> (&[u8], bool) {
        // SAFETY: a C string.
        unsafe { cstr(s.as_ptr(), cap) }
    }

    #[test]
    fn cstr_reads_up_to_the_nul_or_the_cap() {
        assert_eq!(cut(c"abc", usize::MAX), (&b"abc"[..], false));
        // Exactly cap bytes: all of it, not cut.
        assert_eq!(cut(c"abc", 3), (&b"abc"[..], false));
        // One more: cut, and said so.
        assert_eq!(cut(c"abcd", 3), (&b"abc"[..], true));
        assert_eq!(cut(c"a", 0), (&b""[..], true));
        assert_eq!(cut(c"", 0), (&b""[..], false));
        // Bytes as they are: no UTF-8 assumed.
        assert_eq!(
            cut(c"/tmp/\xff\xfe\x80caf\xc3\xa9", 64),
            (&b"/tmp/\xff\xfe\x80caf\xc3\xa9"[..], false)
        );
        // SAFETY: NULL is allowed.
        assert_eq!(unsafe { cstr(core::ptr::null(), 8) }, (&b""[..], false));
    }

    #[test]
    fn errno_is_set_and_read_back() {
        set_errno(12345);
        assert_eq!(errno(), 12345);
        set_errno(0);
        assert_eq!(errno(), 0);
    }
}
