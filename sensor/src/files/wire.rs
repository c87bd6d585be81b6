//! fanotify's event buffer, parsed from bytes with no fd in sight: what
//! `read(2)` on a group made with `FAN_REPORT_DFID_NAME | FAN_REPORT_FID |
//! FAN_REPORT_TARGET_FID` returns.
//!
//! Layouts (native-endian), from `linux/fanotify.h`:
//!
//! ```text
//! fanotify_event_metadata { u32 event_len; u8 vers; u8 reserved; u16 metadata_len;
//!                           u64 mask; s32 fd; s32 pid; }                             24 bytes
//! then up to event_len, info records, each:
//! fanotify_event_info_header { u8 info_type; u8 pad; u16 len; }                      4 bytes
//! fid records (types 1, 2, 3, 10, 12):
//!   header; __kernel_fsid_t fsid (8); file_handle { u32 handle_bytes; s32 handle_type;
//!   u8 f_handle[handle_bytes]; } and, for the types with a name (2, 10, 12), the
//!   entry's name, NUL-terminated; padded to 4 bytes (the header's len counts it).
//! ```
//!
//! Every length is checked against the bytes that hold it before it is
//! used: an event that claims more bytes than the buffer has, a record that
//! claims more than its event, a handle longer than its record, a name
//! without its NUL — each is an error, never a guess.

/// `sizeof(struct fanotify_event_metadata)`.
pub const METADATA_LEN: usize = 24;
/// `sizeof(struct fanotify_event_info_header)`.
const INFO_HEADER_LEN: usize = 4;
/// Info header, fsid, `handle_bytes` and `handle_type`: what precedes a handle's bytes.
const FID_PREFIX_LEN: usize = INFO_HEADER_LEN + 8 + 8;
/// `MAX_HANDLE_SZ`: the kernel never encodes a longer handle.
pub const MAX_HANDLE_LEN: usize = 128;

/// An inode's identity on the watched filesystem: a file handle, as
/// `name_to_handle_at(2)` with `AT_HANDLE_FID` makes it (fanotify's FIDs
/// are those). Stable for the inode's life and never reused by another
/// inode (the filesystems that export handles put a generation in them).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FileHandle {
    /// `file_handle.handle_type`.
    pub handle_type: i32,
    /// `file_handle.f_handle`, at most [`MAX_HANDLE_LEN`] bytes.
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for FileHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:", self.handle_type)?;
        self.bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// Which kind of directory record: see [`InfoRecord::DirEntry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryRole {
    /// `FAN_EVENT_INFO_TYPE_DFID_NAME`: where the event happened.
    Entry,
    /// `FAN_EVENT_INFO_TYPE_OLD_DFID_NAME`: a rename's source.
    Old,
    /// `FAN_EVENT_INFO_TYPE_NEW_DFID_NAME`: a rename's target.
    New,
}

/// One info record of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InfoRecord {
    /// `FAN_EVENT_INFO_TYPE_FID`: the inode the event is about (with
    /// `FAN_REPORT_TARGET_FID`, also the child a directory event is about).
    Object { fsid: [u8; 8], handle: FileHandle },
    /// A directory and a name in it (`"."` when the event is on the
    /// directory itself). The name is the kernel's bytes, without its NUL.
    DirEntry {
        role: EntryRole,
        fsid: [u8; 8],
        dir: FileHandle,
        name: Vec<u8>,
    },
    /// `FAN_EVENT_INFO_TYPE_DFID`: a directory without a name.
    Dir { fsid: [u8; 8], dir: FileHandle },
    /// `FAN_EVENT_INFO_TYPE_PIDFD`: an fd the kernel installed (never asked
    /// for; closed if it ever comes).
    Pidfd(i32),
    /// A record type this parser does not read (`FAN_EVENT_INFO_TYPE_ERROR`, newer ones): skipped.
    Other { info_type: u8 },
}

/// One event as the kernel wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvent {
    /// `FAN_*` bits; several when the kernel merged events on one object.
    pub mask: u64,
    /// An fd on the object, or `FAN_NOFD` (-1): FID groups get none.
    pub fd: i32,
    /// The process (thread group) that caused the event, in the reader's
    /// pid namespace; 0 if it is not visible there.
    pub pid: i32,
    pub records: Vec<InfoRecord>,
}

/// What is wrong with bytes that claim to be fanotify events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A structure runs past the end of the bytes that contain it.
    #[error("{what} at byte {offset} needs {need} bytes, only {have} are there")]
    Short {
        what: &'static str,
        offset: usize,
        need: usize,
        have: usize,
    },
    /// A field holds a value no kernel writes (a length shorter than its
    /// own header, an unknown metadata version, a handle longer than
    /// `MAX_HANDLE_SZ`, a name without its NUL).
    #[error("{what} at byte {offset} is {value}, which no kernel writes")]
    Invalid {
        what: &'static str,
        offset: usize,
        value: u64,
    },
}

/// What one buffer held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The events that parsed, in order.
    pub events: Vec<RawEvent>,
    /// Every fd the buffer hands over (an event's `fd` or a pidfd record,
    /// when not negative), including those of events that failed to parse:
    /// the reader owns them and must close them.
    pub fds: Vec<i32>,
    /// Why events were skipped. An event whose records are garbled is
    /// skipped alone (its length still frames the next one); a garbled
    /// event header ends the buffer.
    pub errors: Vec<ParseError>,
}

fn take<const N: usize>(
    buf: &[u8],
    at: usize,
    what: &'static str,
    base: usize,
) -> Result<[u8; N], ParseError> {
    at.checked_add(N)
        .and_then(|end| buf.get(at..end))
        .and_then(|s| s.try_into().ok())
        .ok_or(ParseError::Short {
            what,
            offset: base + at,
            need: N,
            have: buf.len().saturating_sub(at),
        })
}

fn u16_at(buf: &[u8], at: usize, what: &'static str, base: usize) -> Result<u16, ParseError> {
    take::<2>(buf, at, what, base).map(u16::from_ne_bytes)
}

fn u32_at(buf: &[u8], at: usize, what: &'static str, base: usize) -> Result<u32, ParseError> {
    take::<4>(buf, at, what, base).map(u32::from_ne_bytes)
}

fn i32_at(buf: &[u8], at: usize, what: &'static str, base: usize) -> Result<i32, ParseError> {
    take::<4>(buf, at, what, base).map(i32::from_ne_bytes)
}

fn u64_at(buf: &[u8], at: usize, what: &'static str, base: usize) -> Result<u64, ParseError> {
    take::<8>(buf, at, what, base).map(u64::from_ne_bytes)
}

/// An event's framing: its length and the fixed fields, checked.
struct Header {
    event_len: usize,
    metadata_len: usize,
    mask: u64,
    fd: i32,
    pid: i32,
}

fn header(buf: &[u8], at: usize) -> Result<Header, ParseError> {
    let have = buf.len() - at;
    if have < METADATA_LEN {
        return Err(ParseError::Short {
            what: "event metadata",
            offset: at,
            need: METADATA_LEN,
            have,
        });
    }
    let event_len = u32_at(buf, at, "event length", 0)? as usize;
    let version = take::<1>(buf, at + 4, "metadata version", 0)?[0];
    let metadata_len = u16_at(buf, at + 6, "metadata length", 0)? as usize;
    if version != libc::FANOTIFY_METADATA_VERSION {
        return Err(ParseError::Invalid {
            what: "metadata version",
            offset: at + 4,
            value: version.into(),
        });
    }
    if metadata_len < METADATA_LEN {
        return Err(ParseError::Invalid {
            what: "metadata length",
            offset: at + 6,
            value: metadata_len as u64,
        });
    }
    if event_len < metadata_len {
        return Err(ParseError::Invalid {
            what: "event length (shorter than its metadata)",
            offset: at,
            value: event_len as u64,
        });
    }
    if event_len > have {
        return Err(ParseError::Short {
            what: "event",
            offset: at,
            need: event_len,
            have,
        });
    }
    Ok(Header {
        event_len,
        metadata_len,
        mask: u64_at(buf, at + 8, "mask", 0)?,
        fd: i32_at(buf, at + 16, "fd", 0)?,
        pid: i32_at(buf, at + 20, "pid", 0)?,
    })
}

/// A file handle at `at` of `record` (which starts at `base` in the buffer):
/// the handle and the bytes after it.
fn handle_in(record: &[u8], base: usize) -> Result<([u8; 8], FileHandle, &[u8]), ParseError> {
    if record.len() < FID_PREFIX_LEN {
        return Err(ParseError::Short {
            what: "file handle record",
            offset: base,
            need: FID_PREFIX_LEN,
            have: record.len(),
        });
    }
    let fsid = take::<8>(record, INFO_HEADER_LEN, "fsid", base)?;
    let len = u32_at(record, INFO_HEADER_LEN + 8, "handle length", base)? as usize;
    let handle_type = i32_at(record, INFO_HEADER_LEN + 12, "handle type", base)?;
    if len > MAX_HANDLE_LEN {
        return Err(ParseError::Invalid {
            what: "handle length",
            offset: base + INFO_HEADER_LEN + 8,
            value: len as u64,
        });
    }
    let bytes = record
        .get(FID_PREFIX_LEN..FID_PREFIX_LEN + len)
        .ok_or(ParseError::Short {
            what: "file handle",
            offset: base + FID_PREFIX_LEN,
            need: len,
            have: record.len().saturating_sub(FID_PREFIX_LEN),
        })?;
    let handle = FileHandle {
        handle_type,
        bytes: bytes.to_vec(),
    };
    Ok((fsid, handle, &record[FID_PREFIX_LEN + len..]))
}

/// The NUL-terminated name at the start of `rest` (which starts at `base`).
fn name_in(rest: &[u8], base: usize) -> Result<Vec<u8>, ParseError> {
    match rest.iter().position(|&b| b == 0) {
        Some(0) => Err(ParseError::Invalid {
            what: "entry name length",
            offset: base,
            value: 0,
        }),
        Some(end) => Ok(rest[..end].to_vec()),
        None => Err(ParseError::Invalid {
            what: "entry name without a NUL, length",
            offset: base,
            value: rest.len() as u64,
        }),
    }
}

fn record(record: &[u8], info_type: u8, base: usize) -> Result<InfoRecord, ParseError> {
    let role = match info_type {
        libc::FAN_EVENT_INFO_TYPE_FID => {
            let (fsid, handle, _padding) = handle_in(record, base)?;
            return Ok(InfoRecord::Object { fsid, handle });
        }
        libc::FAN_EVENT_INFO_TYPE_DFID => {
            let (fsid, dir, _padding) = handle_in(record, base)?;
            return Ok(InfoRecord::Dir { fsid, dir });
        }
        libc::FAN_EVENT_INFO_TYPE_PIDFD => {
            if record.len() < INFO_HEADER_LEN + 4 {
                return Err(ParseError::Short {
                    what: "pidfd record",
                    offset: base,
                    need: INFO_HEADER_LEN + 4,
                    have: record.len(),
                });
            }
            return i32_at(record, INFO_HEADER_LEN, "pidfd", base).map(InfoRecord::Pidfd);
        }
        libc::FAN_EVENT_INFO_TYPE_DFID_NAME => EntryRole::Entry,
        libc::FAN_EVENT_INFO_TYPE_OLD_DFID_NAME => EntryRole::Old,
        libc::FAN_EVENT_INFO_TYPE_NEW_DFID_NAME => EntryRole::New,
        info_type => return Ok(InfoRecord::Other { info_type }),
    };
    let (fsid, dir, rest) = handle_in(record, base)?;
    let name_at = base + record.len() - rest.len();
    Ok(InfoRecord::DirEntry {
        role,
        fsid,
        dir,
        name: name_in(rest, name_at)?,
    })
}

/// The info records of the event `event` (which starts at `base`), after its
/// metadata. Pidfds are pushed to `fds` as they are met, even when a later
/// record is garbled.
fn records(
    event: &[u8],
    metadata_len: usize,
    base: usize,
    fds: &mut Vec<i32>,
) -> Result<Vec<InfoRecord>, ParseError> {
    let mut out = Vec::new();
    let mut at = metadata_len;
    while at < event.len() {
        if event.len() - at < INFO_HEADER_LEN {
            return Err(ParseError::Short {
                what: "info header",
                offset: base + at,
                need: INFO_HEADER_LEN,
                have: event.len() - at,
            });
        }
        let info_type = take::<1>(event, at, "info type", base)?[0];
        let len = u16_at(event, at + 2, "info length", base)? as usize;
        if len < INFO_HEADER_LEN {
            return Err(ParseError::Invalid {
                what: "info record length",
                offset: base + at + 2,
                value: len as u64,
            });
        }
        let body = event.get(at..at + len).ok_or(ParseError::Short {
            what: "info record",
            offset: base + at,
            need: len,
            have: event.len() - at,
        })?;
        let parsed = record(body, info_type, base + at)?;
        if let InfoRecord::Pidfd(fd) = parsed {
            if fd >= 0 {
                fds.push(fd);
            }
        }
        out.push(parsed);
        at += len;
    }
    Ok(out)
}

/// Parses a buffer `read(2)` returned. Never panics, whatever the bytes.
pub fn parse_events(buf: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    let mut at = 0;
    while at < buf.len() {
        let header = match header(buf, at) {
            Ok(h) => h,
            Err(error) => {
                parsed.errors.push(error);
                break;
            }
        };
        if header.fd >= 0 {
            parsed.fds.push(header.fd);
        }
        let event = &buf[at..at + header.event_len];
        match records(event, header.metadata_len, at, &mut parsed.fds) {
            Ok(records) => parsed.events.push(RawEvent {
                mask: header.mask,
                fd: header.fd,
                pid: header.pid,
                records,
            }),
            Err(error) => parsed.errors.push(error),
        }
        at += header.event_len;
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(event_len: u32, mask: u64, fd: i32, pid: i32) -> Vec<u8> {
        let mut m = event_len.to_ne_bytes().to_vec();
        m.push(libc::FANOTIFY_METADATA_VERSION);
        m.push(0);
        m.extend_from_slice(&(METADATA_LEN as u16).to_ne_bytes());
        m.extend_from_slice(&mask.to_ne_bytes());
        m.extend_from_slice(&fd.to_ne_bytes());
        m.extend_from_slice(&pid.to_ne_bytes());
        m
    }

    /// A CREATE as 6.18 writes it on ext4 (bytes taken from a real read).
    fn create_event() -> Vec<u8> {
        let mut dir_record = vec![libc::FAN_EVENT_INFO_TYPE_DFID_NAME, 0, 36, 0];
        dir_record.extend_from_slice(&[7; 8]);
        dir_record.extend_from_slice(&8u32.to_ne_bytes());
        dir_record.extend_from_slice(&1i32.to_ne_bytes());
        dir_record.extend_from_slice(&[0x0c, 0, 0, 0, 0xc4, 0x5b, 0x91, 0xcd]);
        dir_record.extend_from_slice(b"new.txt\0");
        let mut fid_record = vec![libc::FAN_EVENT_INFO_TYPE_FID, 0, 28, 0];
        fid_record.extend_from_slice(&[7; 8]);
        fid_record.extend_from_slice(&8u32.to_ne_bytes());
        fid_record.extend_from_slice(&1i32.to_ne_bytes());
        fid_record.extend_from_slice(&[0x11, 0, 0, 0, 0x1f, 0x59, 0x8f, 0xbd]);
        let len = METADATA_LEN + dir_record.len() + fid_record.len();
        let mut e = metadata(len as u32, libc::FAN_CREATE, -1, 2652);
        e.extend(dir_record);
        e.extend(fid_record);
        e
    }

    #[test]
    fn a_create_parses_to_its_directory_name_and_object() {
        let parsed = parse_events(&create_event());
        assert_eq!(parsed.errors, []);
        assert_eq!(parsed.fds, []);
        let [event] = &parsed.events[..] else {
            panic!("{parsed:?}")
        };
        assert_eq!(
            (event.mask, event.pid, event.fd),
            (libc::FAN_CREATE, 2652, -1)
        );
        match &event.records[..] {
            [InfoRecord::DirEntry {
                role, dir, name, ..
            }, InfoRecord::Object { handle, .. }] => {
                assert_eq!(*role, EntryRole::Entry);
                assert_eq!(dir.bytes, [0x0c, 0, 0, 0, 0xc4, 0x5b, 0x91, 0xcd]);
                assert_eq!(name, b"new.txt");
                assert_eq!(handle.bytes, [0x11, 0, 0, 0, 0x1f, 0x59, 0x8f, 0xbd]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_event_longer_than_the_buffer_is_short() {
        let mut e = create_event();
        e.truncate(e.len() - 1);
        let parsed = parse_events(&e);
        assert_eq!(parsed.events, []);
        assert!(matches!(
            parsed.errors[..],
            [ParseError::Short { what: "event", .. }]
        ));
    }

    #[test]
    fn a_record_longer_than_its_event_is_skipped_with_the_event_alone() {
        let mut first = create_event();
        first[METADATA_LEN + 2] = 200; // the directory record's length
        let mut buf = first;
        buf.extend(create_event());
        let parsed = parse_events(&buf);
        assert_eq!(parsed.events.len(), 1);
        assert!(matches!(
            parsed.errors[..],
            [ParseError::Short {
                what: "info record",
                ..
            }]
        ));
    }

    #[test]
    fn fds_are_collected_even_from_garbled_events() {
        let mut e = metadata((METADATA_LEN + 4) as u32, libc::FAN_MODIFY, 9, 1);
        e.extend_from_slice(&[libc::FAN_EVENT_INFO_TYPE_FID, 0, 2, 0]); // length < header
        let parsed = parse_events(&e);
        assert_eq!(parsed.fds, [9]);
        assert_eq!(parsed.events, []);
        assert_eq!(parsed.errors.len(), 1);
    }
}
