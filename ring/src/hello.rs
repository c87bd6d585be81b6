//! The message a traced process sends on the world's span socket.
//!
//! - `Exec`: sent from the preload's constructor in every new program
//!   image, with the image's exe, cwd, argv and env, and its ring (a sealed
//!   memfd as `SCM_RIGHTS`);
//! - `Fork`: sent by a forked child (no exec) with its own new ring, on its
//!   first traced call;
//! - `Doorbell`: "my ring is filling up, drain it", no payload.
//!
//! Layout: a fixed [`HEADER_BYTES`] header (little-endian), then exe, cwd,
//! and the argv and env strings, each NUL-terminated. A sender cuts argv and
//! env to [`MAX_BYTES`] and says so (`TRUNCATED`).

pub const MAGIC: u32 = u32::from_le_bytes(*b"SBHL");
pub const VERSION: u16 = 1;
pub const HEADER_BYTES: usize = 48;
/// The largest message; a receiver refuses anything longer.
pub const MAX_BYTES: usize = 64 * 1024;
/// `flags`: argv or env did not fit.
pub const TRUNCATED: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum HelloKind {
    Exec = 1,
    Fork = 2,
    Doorbell = 3,
}

/// Why a message is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelloError {
    TooShort,
    BadMagic,
    BadVersion(u16),
    BadKind(u16),
    BadLengths,
}

/// A parsed message; everything in it is what the sender claims.
#[derive(Clone, Copy, Debug)]
pub struct Hello<'a> {
    pub kind: HelloKind,
    /// The sender's pid as it sees it (in the world's pid namespace).
    pub pid: u32,
    pub flags: u32,
    /// CLOCK_REALTIME at the sender, in ns.
    pub time_ns: u64,
    pub exe: &'a [u8],
    pub cwd: &'a [u8],
    argc: u32,
    strings: &'a [u8],
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<'a> Hello<'a> {
    pub fn parse(msg: &'a [u8]) -> Result<Hello<'a>, HelloError> {
        if msg.len() < HEADER_BYTES {
            return Err(HelloError::TooShort);
        }
        if u32_at(msg, 0) != MAGIC {
            return Err(HelloError::BadMagic);
        }
        let version = u16_at(msg, 4);
        if version != VERSION {
            return Err(HelloError::BadVersion(version));
        }
        let kind = match u16_at(msg, 6) {
            1 => HelloKind::Exec,
            2 => HelloKind::Fork,
            3 => HelloKind::Doorbell,
            other => return Err(HelloError::BadKind(other)),
        };
        let mut time = [0u8; 8];
        time.copy_from_slice(&msg[16..24]);
        let (argc, envc) = (u32_at(msg, 24), u32_at(msg, 28));
        let (exe_len, cwd_len, strings_len) = (
            u32_at(msg, 32) as usize,
            u32_at(msg, 36) as usize,
            u32_at(msg, 40) as usize,
        );
        let body = &msg[HEADER_BYTES..];
        if exe_len
            .checked_add(cwd_len)
            .and_then(|n| n.checked_add(strings_len))
            != Some(body.len())
        {
            return Err(HelloError::BadLengths);
        }
        let strings = &body[exe_len + cwd_len..];
        let nuls = strings.iter().filter(|&&b| b == 0).count();
        if strings.last().is_some_and(|&b| b != 0)
            || Some(nuls) != (argc as usize).checked_add(envc as usize)
        {
            return Err(HelloError::BadLengths);
        }
        Ok(Hello {
            kind,
            pid: u32_at(msg, 8),
            flags: u32_at(msg, 12),
            time_ns: u64::from_le_bytes(time),
            exe: &body[..exe_len],
            cwd: &body[exe_len..exe_len + cwd_len],
            argc,
            strings,
        })
    }

    fn all(&self) -> impl Iterator<Item = &'a [u8]> {
        let strings = self.strings;
        strings
            .strip_suffix(&[0])
            .map(|s| s.split(|&b| b == 0))
            .into_iter()
            .flatten()
    }

    pub fn argv(&self) -> impl Iterator<Item = &'a [u8]> {
        self.all().take(self.argc as usize)
    }

    pub fn env(&self) -> impl Iterator<Item = &'a [u8]> {
        self.all().skip(self.argc as usize)
    }
}

/// Builds a message in a caller's buffer (the preload has no allocator).
pub struct HelloWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
    argc: u32,
    envc: u32,
    exe_len: u32,
    cwd_len: u32,
    flags: u32,
}

impl<'b> HelloWriter<'b> {
    /// `buf` must hold at least [`HEADER_BYTES`]; what does not fit in it
    /// is cut (and flagged).
    pub fn new(buf: &'b mut [u8]) -> HelloWriter<'b> {
        let len = HEADER_BYTES.min(buf.len());
        HelloWriter {
            buf,
            len,
            argc: 0,
            envc: 0,
            exe_len: 0,
            cwd_len: 0,
            flags: 0,
        }
    }

    fn append(&mut self, bytes: &[u8], nul: bool) -> bool {
        let need = bytes.len() + usize::from(nul);
        if self.len + need > self.buf.len().min(MAX_BYTES) {
            self.flags |= TRUNCATED;
            return false;
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        if nul {
            self.buf[self.len] = 0;
            self.len += 1;
        }
        true
    }

    /// Exe then cwd come first, before any argument.
    pub fn exe_and_cwd(&mut self, exe: &[u8], cwd: &[u8]) {
        if self.append(exe, false) {
            self.exe_len = exe.len() as u32;
        }
        if self.append(cwd, false) {
            self.cwd_len = cwd.len() as u32;
        }
    }

    /// Arguments, then environment entries (an argument after an entry is
    /// refused: the reader tells them apart by count).
    pub fn arg(&mut self, arg: &[u8]) {
        if self.envc == 0 && self.flags & TRUNCATED == 0 && self.append(arg, true) {
            self.argc += 1;
        }
    }

    pub fn env(&mut self, entry: &[u8]) {
        if self.flags & TRUNCATED == 0 && self.append(entry, true) {
            self.envc += 1;
        }
    }

    /// Writes the header; returns the message.
    pub fn finish(self, kind: HelloKind, pid: u32, time_ns: u64) -> &'b [u8] {
        if self.buf.len() < HEADER_BYTES {
            return &[];
        }
        let strings = self.len - HEADER_BYTES - self.exe_len as usize - self.cwd_len as usize;
        let h = &mut self.buf[..HEADER_BYTES];
        h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        h[4..6].copy_from_slice(&VERSION.to_le_bytes());
        h[6..8].copy_from_slice(&(kind as u16).to_le_bytes());
        h[8..12].copy_from_slice(&pid.to_le_bytes());
        h[12..16].copy_from_slice(&self.flags.to_le_bytes());
        h[16..24].copy_from_slice(&time_ns.to_le_bytes());
        h[24..28].copy_from_slice(&self.argc.to_le_bytes());
        h[28..32].copy_from_slice(&self.envc.to_le_bytes());
        h[32..36].copy_from_slice(&self.exe_len.to_le_bytes());
        h[36..40].copy_from_slice(&self.cwd_len.to_le_bytes());
        h[40..44].copy_from_slice(&(strings as u32).to_le_bytes());
        h[44..48].copy_from_slice(&0u32.to_le_bytes());
        &self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut buf = [0u8; 512];
        let mut w = HelloWriter::new(&mut buf);
        w.exe_and_cwd(b"/bin/sh", b"/tmp");
        w.arg(b"sh");
        w.arg(b"-c");
        w.arg(b"");
        w.env(b"PATH=/bin");
        let msg = w.finish(HelloKind::Exec, 7, 99).to_vec();
        let hello = Hello::parse(&msg).unwrap();
        assert_eq!(hello.kind, HelloKind::Exec);
        assert_eq!((hello.pid, hello.time_ns, hello.flags), (7, 99, 0));
        assert_eq!(hello.exe, b"/bin/sh");
        assert_eq!(hello.cwd, b"/tmp");
        assert_eq!(hello.argv().collect::<Vec<_>>(), [&b"sh"[..], b"-c", b""]);
        assert_eq!(hello.env().collect::<Vec<_>>(), [&b"PATH=/bin"[..]]);
    }

    #[test]
    fn what_does_not_fit_is_cut_and_flagged() {
        let mut buf = [0u8; 80];
        let mut w = HelloWriter::new(&mut buf);
        w.exe_and_cwd(b"/x", b"/");
        w.arg(&[b'a'; 20]);
        w.arg(&[b'b'; 20]);
        w.env(b"K=v");
        let msg = w.finish(HelloKind::Exec, 1, 0).to_vec();
        let hello = Hello::parse(&msg).unwrap();
        assert_eq!(hello.flags, TRUNCATED);
        assert_eq!(hello.argv().count(), 1);
        assert_eq!(hello.env().count(), 0);
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(Hello::parse(b"").unwrap_err(), HelloError::TooShort);
        assert_eq!(Hello::parse(&[0u8; 64]).unwrap_err(), HelloError::BadMagic);
        let mut buf = [0u8; 128];
        let mut w = HelloWriter::new(&mut buf);
        w.arg(b"x");
        let good = w.finish(HelloKind::Exec, 1, 0).to_vec();
        let mut bad = good.clone();
        bad[6] = 9;
        assert_eq!(Hello::parse(&bad).unwrap_err(), HelloError::BadKind(9));
        let mut bad = good.clone();
        bad[24] = 5; // argc beyond the strings
        assert_eq!(Hello::parse(&bad).unwrap_err(), HelloError::BadLengths);
        let mut bad = good.clone();
        bad[40] = 0xff; // strings_len beyond the message
        assert_eq!(Hello::parse(&bad).unwrap_err(), HelloError::BadLengths);
        // Every truncation of a good message is refused, never a panic.
        for n in 0..good.len() {
            assert!(Hello::parse(&good[..n]).is_err());
        }
    }
}
