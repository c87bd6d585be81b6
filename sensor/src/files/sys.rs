//! The system calls of the file watch that neither std nor nix wrap:
//! `fanotify_init`, `fanotify_mark`, `name_to_handle_at`,
//! `open_by_handle_at`, and taking ownership of an fd the kernel put in an
//! event. Every `unsafe` block of the module is here, each with its reason.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

use super::wire::{FileHandle, MAX_HANDLE_LEN};

/// `fanotify_init(flags, event_f_flags)`: a new group.
pub(crate) fn fanotify_init(flags: u32, event_f_flags: u32) -> Result<OwnedFd, Errno> {
    // SAFETY: fanotify_init takes no pointers; it returns a new fd or -1.
    let raw = unsafe { libc::fanotify_init(flags, event_f_flags) };
    if raw < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `raw` is a valid fd fanotify_init just returned and nothing
    // else owns, so the OwnedFd becomes its one owner.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// `fanotify_mark(group, flags, mask, AT_FDCWD, path)`.
pub(crate) fn fanotify_mark(
    group: BorrowedFd<'_>,
    flags: u32,
    mask: u64,
    path: &Path,
) -> Result<(), Errno> {
    let path = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `path` is a NUL-terminated string that outlives the call,
    // which only reads it; `group` is an open fd borrowed for the call.
    let rc = unsafe {
        libc::fanotify_mark(
            group.as_raw_fd(),
            flags,
            mask,
            libc::AT_FDCWD,
            path.as_ptr(),
        )
    };
    if rc < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// `fanotify_mark` on the object `fd` is open on itself (no path).
pub(crate) fn fanotify_mark_fd(
    group: BorrowedFd<'_>,
    flags: u32,
    mask: u64,
    fd: BorrowedFd<'_>,
) -> Result<(), Errno> {
    // SAFETY: a null pathname makes the kernel mark what `fd` is open on;
    // both fds are borrowed for the call.
    let rc = unsafe {
        libc::fanotify_mark(
            group.as_raw_fd(),
            flags,
            mask,
            fd.as_raw_fd(),
            std::ptr::null(),
        )
    };
    if rc < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// A `struct file_handle` with room for any handle, 4-byte aligned as the
/// kernel's struct is (`u32 handle_bytes; s32 handle_type; u8 f_handle[]`).
#[repr(C)]
struct HandleBuffer {
    handle_bytes: u32,
    handle_type: i32,
    f_handle: [u8; MAX_HANDLE_LEN],
}

impl HandleBuffer {
    fn empty() -> Self {
        HandleBuffer {
            handle_bytes: MAX_HANDLE_LEN as u32,
            handle_type: 0,
            f_handle: [0; MAX_HANDLE_LEN],
        }
    }

    fn from_handle(handle: &FileHandle) -> Result<Self, Errno> {
        let mut buffer = Self::empty();
        let len = handle.bytes.len();
        buffer
            .f_handle
            .get_mut(..len)
            .ok_or(Errno::EINVAL)?
            .copy_from_slice(&handle.bytes);
        buffer.handle_bytes = len as u32;
        buffer.handle_type = handle.handle_type;
        Ok(buffer)
    }

    fn as_mut_ptr(&mut self) -> *mut libc::file_handle {
        (self as *mut Self).cast()
    }
}

/// `name_to_handle_at(dir, path, AT_HANDLE_FID | flags)`: the handle of
/// `path` relative to `dir` as fanotify reports it (`AT_HANDLE_FID`: an
/// identifier, which need not be openable — fanotify's FIDs are those).
/// A final symlink is not followed unless `flags` has `AT_SYMLINK_FOLLOW`
/// (this call knows no `AT_SYMLINK_NOFOLLOW`: EINVAL).
pub(super) fn handle_at(dir: BorrowedFd<'_>, path: &CStr, flags: i32) -> Result<FileHandle, Errno> {
    let mut buffer = HandleBuffer::empty();
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `path` is NUL-terminated and outlives the call; `buffer` is a
    // `struct file_handle` whose `handle_bytes` says how many bytes follow
    // its header (MAX_HANDLE_SZ, all ours), so the kernel writes inside it;
    // `mount_id` is a valid `int` to write.
    let rc = unsafe {
        libc::name_to_handle_at(
            dir.as_raw_fd(),
            path.as_ptr(),
            buffer.as_mut_ptr(),
            &mut mount_id,
            flags | libc::AT_HANDLE_FID,
        )
    };
    if rc < 0 {
        return Err(Errno::last());
    }
    let len = (buffer.handle_bytes as usize).min(MAX_HANDLE_LEN);
    Ok(FileHandle {
        handle_type: buffer.handle_type,
        bytes: buffer.f_handle[..len].to_vec(),
    })
}

/// `open_by_handle_at(mount, handle, flags)`. `mount` must be an fd opened
/// without `O_PATH` (measured on 6.18: an `O_PATH` mount fd gives EBADF).
/// Needs `CAP_DAC_READ_SEARCH`.
pub(super) fn open_by_handle(
    mount: BorrowedFd<'_>,
    handle: &FileHandle,
    flags: i32,
) -> Result<OwnedFd, Errno> {
    let mut buffer = HandleBuffer::from_handle(handle)?;
    // SAFETY: `buffer` is a `struct file_handle` whose `handle_bytes`
    // matches the bytes that follow its header; the kernel only reads it.
    // `mount` is an open fd borrowed for the call.
    let raw = unsafe { libc::open_by_handle_at(mount.as_raw_fd(), buffer.as_mut_ptr(), flags) };
    if raw < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `raw` is a valid fd open_by_handle_at just returned and
    // nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Closes an fd the kernel installed in our table for an event (an event's
/// `fd`, a pidfd record): it is ours, and nothing else knows its number.
/// Only for fds parsed from a buffer this process just read from its own
/// fanotify group, never from bytes of any other origin.
pub(super) fn close_event_fd(fd: RawFd) {
    if fd < 0 {
        return;
    }
    // SAFETY: the kernel created `fd` for this process with the event we
    // just read, and no other code has seen its number, so it is open and
    // this OwnedFd is its only owner; dropping it closes it once.
    drop(unsafe { OwnedFd::from_raw_fd(fd) });
}
