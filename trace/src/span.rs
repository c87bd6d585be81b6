//! The span model: one record of something a world did, as every writer
//! makes it and every reader gets it. The JSON form is in `docs/trace-spans.md`
//! and in [`crate::wire`].

use std::collections::BTreeMap;
use std::time::Duration;

use crate::errno::Errno;
use crate::id::SpanId;
use crate::redact::{self, EnvAllowList};
use crate::time::Timestamp;

/// The schema version this crate writes, `major.minor`.
pub const SCHEMA_VERSION: &str = "1.1";
/// Lines of this major version are read; lines of another are refused with
/// [`SpanError::UnsupportedVersion`].
pub const SCHEMA_MAJOR: u32 = 1;
/// Lines of a newer minor version are read: their unknown fields are kept in
/// [`Span::extra`], their unknown kinds and enum values come back as `Other`.
pub const SCHEMA_MINOR: u32 = 1;

/// The longest span line, without its `\n`, that is written or read. The
/// monitor refuses longer events; a writer that meets [`SpanError::TooLarge`]
/// should shorten what it can (argv, env) and try again.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// What goes wrong with one span line.
#[derive(Debug, thiserror::Error)]
pub enum SpanError {
    #[error("span line is {len} bytes, over the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error(
        "span schema version {found:?} is not supported: this reader reads \
         version {SCHEMA_MAJOR}.x; upgrade substrate to read this trace"
    )]
    UnsupportedVersion { found: String },
    #[error("not a span: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid span field `{field}`: {reason}")]
    Field { field: &'static str, reason: String },
}

/// Declares a string-valued enum that reads values it does not know into
/// `Other(String)`, so that a newer minor version's values never fail a read.
macro_rules! open_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this version of the crate does not know; never one
            /// of the names above (parsing maps those to their variant).
            Other(String),
        }

        impl $name {
            /// Every value this crate knows.
            pub const KNOWN: &'static [$name] = &[$($name::$variant),*];

            /// The JSON text of the value.
            pub fn as_str(&self) -> &str {
                match self {
                    $( $name::$variant => $text, )*
                    $name::Other(text) => text,
                }
            }

            /// The value of a JSON text; unknown texts give `Other`.
            pub fn parse(text: &str) -> $name {
                match text {
                    $( $text => $name::$variant, )*
                    other => $name::Other(other.to_owned()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> $name {
                $name::parse(text)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$name, D::Error> {
                let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                Ok($name::parse(&text))
            }
        }
    };
}

open_enum! {
    /// What a span records (JSON field `kind`).
    pub enum SpanKind {
        /// The whole world, from create to the end of its init; written last.
        World = "world",
        /// One program image run by one process.
        Exec = "exec",
        File = "file",
        Net = "net",
        Dns = "dns",
        /// A policy decision.
        Policy = "policy",
    }
}

open_enum! {
    /// Who produced a span (JSON field `source`).
    pub enum Source {
        /// The LD_PRELOAD library inside the world.
        Preload = "preload",
        /// A kernel event source (proc connector, fanotify, ...): the only
        /// witness of what static binaries and raw syscalls do.
        Kernel = "kernel",
        /// The host-side monitor itself (e.g. the nftables log).
        Monitor = "monitor",
        /// The runtime (world lifecycle, policy broker).
        Runtime = "runtime",
    }
}

open_enum! {
    /// The call a file span records: the libc symbol that was called.
    pub enum FileOp {
        Open = "open",
        Openat = "openat",
        Creat = "creat",
        Fopen = "fopen",
        Unlink = "unlink",
        Unlinkat = "unlinkat",
        Rename = "rename",
        Renameat = "renameat",
        Mkdir = "mkdir",
        Mkdirat = "mkdirat",
        Rmdir = "rmdir",
        Chmod = "chmod",
        Fchmodat = "fchmodat",
        Truncate = "truncate",
        // What the kernel sensor saw happen to a file (fanotify on the
        // world's upper filesystem), whatever call did it.
        /// A regular file was made.
        Create = "create",
        /// Written or truncated (once per process and file until closed).
        Write = "write",
        Delete = "delete",
        Chown = "chown",
        Link = "link",
        Symlink = "symlink",
        /// A fifo, socket or device node was made.
        Mknod = "mknod",
        /// Times or xattrs changed, or a mode/owner change not told apart.
        Metadata = "metadata",
        /// A file of the upper layer was opened to be run.
        Exec = "exec",
    }
}

open_enum! {
    /// The call a net span records.
    pub enum NetOp {
        Connect = "connect",
        Bind = "bind",
        /// Seen by the kernel sensor only (libc's `listen` is not traced).
        Listen = "listen",
        Accept = "accept",
        Sendto = "sendto",
    }
}

open_enum! {
    /// Address family of a socket.
    pub enum Family {
        /// AF_INET
        Inet = "inet",
        /// AF_INET6
        Inet6 = "inet6",
        /// AF_UNIX
        Unix = "unix",
    }
}

open_enum! {
    /// Transport of an inet/inet6 socket.
    pub enum Transport {
        Tcp = "tcp",
        Udp = "udp",
    }
}

open_enum! {
    /// A policy decision.
    pub enum Decision {
        Allow = "allow",
        Deny = "deny",
        Ask = "ask",
    }
}

/// One span. Build one with [`Span::exec`], [`Span::file`], ... (they redact
/// and they only offer the fields a kind has); read them with
/// [`crate::read_spans`] or [`Span::from_line`].
#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub world_id: String,
    pub source: Source,
    pub start: Timestamp,
    /// `None` while the span is open (written at its start) and for
    /// instantaneous events.
    pub end: Option<Timestamp>,
    pub process: Process,
    pub result: Option<Outcome>,
    /// What kind of span this is and its kind-specific fields.
    pub detail: Detail,
    /// Top-level fields this version does not know (from a newer minor
    /// version), kept so that a span read and written again loses nothing.
    /// Keys that name a known field are ignored when writing.
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Who did it. `pid` and `ppid` are in the host's pid namespace (the monitor
/// stamps them from the kernel); `world_pid` and `world_ppid` are what the
/// process sees inside the world. Bytes are exact; see `crate::bytes` for
/// their JSON form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Process {
    pub pid: Option<u32>,
    pub world_pid: Option<u32>,
    pub ppid: Option<u32>,
    pub world_ppid: Option<u32>,
    pub exe: Option<Vec<u8>>,
    pub argv: Option<Vec<Vec<u8>>>,
    pub cwd: Option<Vec<u8>>,
    /// `KEY=value` entries, values redacted (see [`crate::redact`]).
    pub env: Option<Vec<Vec<u8>>>,
}

/// How a process or world ended. In a span it is written as the span's
/// `result`; a world record (`world.json`) writes it as `{"code": N}` or
/// `{"signal": N}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    /// As a shell reports it: the code, or 128 + the signal number.
    pub fn shell_status(self) -> i32 {
        match self {
            ExitStatus::Code(code) => code,
            ExitStatus::Signal(signal) => 128 + signal,
        }
    }
}

/// A span's `result`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// What a call returned; `errno` only when it failed. Calls that return
    /// a pointer record 0 for success and -1 for NULL; `getaddrinfo` records
    /// its `EAI_*` code.
    Returned { ret: i64, errno: Option<Errno> },
    /// How a process (exec span) or the world's init (world span) ended.
    Exited(ExitStatus),
}

/// A span's kind and its kind-specific fields (JSON `kind` and `detail`).
#[derive(Clone, Debug, PartialEq)]
pub enum Detail {
    World(WorldDetail),
    /// Exec spans keep their argv, exe, cwd and env in [`Span::process`].
    Exec,
    File(FileDetail),
    Net(NetDetail),
    Dns(DnsDetail),
    Policy(PolicyDetail),
    /// A kind this version does not know (a newer minor version's), with
    /// its `detail` as it was.
    Other {
        kind: String,
        detail: Option<serde_json::Value>,
    },
}

impl Detail {
    pub fn kind(&self) -> SpanKind {
        match self {
            Detail::World(_) => SpanKind::World,
            Detail::Exec => SpanKind::Exec,
            Detail::File(_) => SpanKind::File,
            Detail::Net(_) => SpanKind::Net,
            Detail::Dns(_) => SpanKind::Dns,
            Detail::Policy(_) => SpanKind::Policy,
            Detail::Other { kind, .. } => SpanKind::parse(kind),
        }
    }
}

/// A world's summary, on the world span written when the world ends; its
/// exit is the span's `result`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorldDetail {
    /// From create to the end of the init, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ns: Option<u64>,
    /// The fs diff's totals; `None` when no diff was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs: Option<FsTotals>,
    /// How many spans of each kind the world's trace holds (by kind name).
    #[serde(default)]
    pub spans: BTreeMap<String, u64>,
    /// Input from inside the world the monitor refused (garbage, forged or
    /// oversized messages, bad rings or records), by reason. (1.1)
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rejected: BTreeMap<String, u64>,
    /// Events known to be lost (dropped by full rings); each loss also has
    /// a `loss` span. (1.1)
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lost: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Exact fs diff totals, by `docker diff` letter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FsTotals {
    /// A
    pub added: u64,
    /// C
    pub changed: u64,
    /// D
    pub deleted: u64,
}

/// A file call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDetail {
    pub op: FileOp,
    /// The path the call named, made absolute by the writer when it could
    /// (against the cwd or the dirfd).
    pub path: Vec<u8>,
    /// The second path: where `rename`/`renameat` moved `path` to.
    pub new_path: Option<Vec<u8>>,
    /// `open(2)` flags as the call passed them (Linux generic values); for
    /// `fopen` the equivalent flags ([`fopen_flags`]).
    pub flags: Option<u32>,
    /// Permission bits (`open`/`creat`/`mkdir`/`chmod`).
    pub mode: Option<u32>,
}

impl FileDetail {
    /// A call on one path with no flags or mode (unlink, rmdir, truncate...).
    pub fn new(op: FileOp, path: impl Into<Vec<u8>>) -> FileDetail {
        FileDetail {
            op,
            path: path.into(),
            new_path: None,
            flags: None,
            mode: None,
        }
    }

    /// An open-like call.
    pub fn open(op: FileOp, path: impl Into<Vec<u8>>, flags: u32, mode: Option<u32>) -> FileDetail {
        FileDetail {
            flags: Some(flags),
            mode,
            ..FileDetail::new(op, path)
        }
    }

    /// A rename-like call.
    pub fn rename(op: FileOp, from: impl Into<Vec<u8>>, to: impl Into<Vec<u8>>) -> FileDetail {
        FileDetail {
            new_path: Some(to.into()),
            ..FileDetail::new(op, from)
        }
    }

    pub fn with_mode(self, mode: u32) -> FileDetail {
        FileDetail {
            mode: Some(mode),
            ..self
        }
    }
}

/// The `open(2)` flags `fopen(3)` uses for a mode string (glibc: `+`, and the
/// `e` = O_CLOEXEC and `x` = O_EXCL extensions; `b` and others ignored).
/// Linux generic flag values.
pub fn fopen_flags(mode: &[u8]) -> u32 {
    const O_WRONLY: u32 = 0o1;
    const O_RDWR: u32 = 0o2;
    const O_CREAT: u32 = 0o100;
    const O_EXCL: u32 = 0o200;
    const O_TRUNC: u32 = 0o1000;
    const O_APPEND: u32 = 0o2000;
    const O_CLOEXEC: u32 = 0o2_000_000;
    let plus = mode.contains(&b'+');
    let access = if plus { O_RDWR } else { O_WRONLY };
    let mut flags = match mode.first() {
        Some(b'w') => access | O_CREAT | O_TRUNC,
        Some(b'a') => access | O_CREAT | O_APPEND,
        _ if plus => O_RDWR,
        _ => 0,
    };
    for &c in mode.iter().skip(1) {
        match c {
            b'e' => flags |= O_CLOEXEC,
            b'x' => flags |= O_EXCL,
            _ => {}
        }
    }
    flags
}

/// A socket call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetDetail {
    pub op: NetOp,
    pub family: Family,
    pub transport: Option<Transport>,
    /// The peer (connect, sendto, accept) or local (bind) address: an IP
    /// address as text, or a unix socket's path (bytes; an abstract socket's
    /// name starts with a NUL byte).
    pub address: Option<Vec<u8>>,
    pub port: Option<u16>,
}

impl NetDetail {
    pub fn new(op: NetOp, family: Family) -> NetDetail {
        NetDetail {
            op,
            family,
            transport: None,
            address: None,
            port: None,
        }
    }

    /// An inet/inet6 endpoint.
    pub fn ip(
        op: NetOp,
        family: Family,
        transport: Transport,
        address: &str,
        port: u16,
    ) -> NetDetail {
        NetDetail {
            transport: Some(transport),
            address: Some(address.as_bytes().to_vec()),
            port: Some(port),
            ..NetDetail::new(op, family)
        }
    }
}

/// A name lookup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsDetail {
    /// The name asked for.
    pub query: Vec<u8>,
    /// The addresses (and canonical names) the answer held, in its order.
    pub answers: Vec<String>,
}

/// A policy decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyDetail {
    /// The rule that decided (its name or path in the policy).
    pub rule: String,
    pub decision: Decision,
    /// What was decided on: a command line, a path, a `host[:port]`.
    pub subject: Vec<u8>,
    /// Why, in words, when the broker says.
    pub reason: Option<String>,
}

impl Span {
    pub fn kind(&self) -> SpanKind {
        self.detail.kind()
    }

    /// `end - start`, when the span has ended.
    pub fn duration(&self) -> Option<Duration> {
        self.start.until(self.end?)
    }

    /// Applies every redaction rule to the fields that can carry secrets:
    /// argv, env (keys kept, values of keys not in `allow` replaced) and a
    /// policy subject (as a command line). Paths, addresses and DNS names
    /// are left alone. Idempotent; builders already do it, the monitor does
    /// it again on spans from inside the world.
    pub fn redact(&mut self, allow: &EnvAllowList) {
        if let Some(argv) = &mut self.process.argv {
            redact::redact_argv_in_place(argv);
        }
        if let Some(env) = &mut self.process.env {
            for entry in env.iter_mut() {
                if let std::borrow::Cow::Owned(new) = redact::redact_env_entry(entry, allow) {
                    *entry = new;
                }
            }
        }
        if let Detail::Policy(policy) = &mut self.detail {
            if let std::borrow::Cow::Owned(new) = redact::redact_command_line(&policy.subject) {
                policy.subject = new;
            }
        }
    }

    /// The span as one JSON line, without a newline (none is inside either:
    /// JSON strings escape control characters). Append `\n` and write both
    /// in one `write` call.
    pub fn to_line(&self) -> Result<String, SpanError> {
        let line = serde_json::to_string(self)?;
        if line.len() > MAX_LINE_BYTES {
            return Err(SpanError::TooLarge {
                len: line.len(),
                max: MAX_LINE_BYTES,
            });
        }
        Ok(line)
    }

    /// One span from one line (a trailing `\n` or `\r\n` is allowed).
    pub fn from_line(line: &[u8]) -> Result<Span, SpanError> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > MAX_LINE_BYTES {
            return Err(SpanError::TooLarge {
                len: line.len(),
                max: MAX_LINE_BYTES,
            });
        }
        crate::wire::parse_line(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_enums_keep_unknown_values() {
        assert_eq!(SpanKind::parse("exec"), SpanKind::Exec);
        assert_eq!(SpanKind::parse("gpu"), SpanKind::Other("gpu".into()));
        assert_eq!(SpanKind::Other("gpu".into()).as_str(), "gpu");
        assert_eq!(
            serde_json::to_string(&Source::Kernel).unwrap(),
            r#""kernel""#
        );
        let op: FileOp = serde_json::from_str(r#""statx""#).unwrap();
        assert_eq!(op, FileOp::Other("statx".into()));
        for kind in SpanKind::KNOWN {
            assert_eq!(&SpanKind::parse(kind.as_str()), kind);
        }
    }

    #[test]
    fn fopen_modes_map_to_open_flags() {
        assert_eq!(fopen_flags(b"r"), 0);
        assert_eq!(fopen_flags(b"rb"), 0);
        assert_eq!(fopen_flags(b"r+"), 0o2);
        assert_eq!(fopen_flags(b"rb+"), 0o2);
        assert_eq!(fopen_flags(b"w"), 0o1 | 0o100 | 0o1000);
        assert_eq!(fopen_flags(b"w+"), 0o2 | 0o100 | 0o1000);
        assert_eq!(fopen_flags(b"a"), 0o1 | 0o100 | 0o2000);
        assert_eq!(fopen_flags(b"a+e"), 0o2 | 0o100 | 0o2000 | 0o2_000_000);
        assert_eq!(fopen_flags(b"wx"), 0o1 | 0o100 | 0o1000 | 0o200);
    }

    #[test]
    fn shell_status_of_exits() {
        assert_eq!(ExitStatus::Code(3).shell_status(), 3);
        assert_eq!(ExitStatus::Signal(9).shell_status(), 137);
    }
}
