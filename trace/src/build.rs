//! Builders: one constructor per kind, each offering only the fields that
//! kind has, redacting argv and env as they are set.
//!
//! ```
//! use substrate_trace::{Errno, FileDetail, FileOp, Source, Span, Timestamp};
//!
//! let exec = Span::exec("w1", Source::Preload, Timestamp::now())
//!     .world_pid(7)
//!     .exe("/usr/bin/curl")
//!     .argv(["curl", "-u", "bob:hunter2", "https://example.com/"])
//!     .build();
//! let open = Span::file(
//!     "w1",
//!     Source::Preload,
//!     Timestamp::now(),
//!     FileDetail::open(FileOp::Openat, "/etc/shadow", 0, None),
//! )
//! .parent(exec.span_id)
//! .failed(-1, Errno(13))
//! .end(Timestamp::now())
//! .build();
//! assert_eq!(exec.process.argv.as_ref().unwrap()[2], b"bob:<redacted>");
//! assert!(open.to_line().unwrap().contains(r#""name":"EACCES""#));
//! ```

use std::collections::BTreeMap;
use std::marker::PhantomData;

use crate::errno::Errno;
use crate::id::SpanId;
use crate::redact::{self, EnvAllowList};
use crate::span::{
    Detail, DnsDetail, ExitStatus, FileDetail, NetDetail, Outcome, PolicyDetail, Process, Source,
    Span, WorldDetail,
};
use crate::time::Timestamp;

/// Marker types naming the kind a [`SpanBuilder`] builds.
pub mod kind {
    /// See [`crate::Span::world`].
    pub struct World;
    /// See [`crate::Span::exec`].
    pub struct Exec;
    /// See [`crate::Span::file`].
    pub struct File;
    /// See [`crate::Span::net`].
    pub struct Net;
    /// See [`crate::Span::dns`].
    pub struct Dns;
    /// See [`crate::Span::policy`].
    pub struct Policy;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::kind::World {}
    impl Sealed for super::kind::Exec {}
    impl Sealed for super::kind::File {}
    impl Sealed for super::kind::Net {}
    impl Sealed for super::kind::Dns {}
    impl Sealed for super::kind::Policy {}
}

/// Kinds whose result is an exit status (a process, the world's init).
pub trait Exits: sealed::Sealed {}
impl Exits for kind::World {}
impl Exits for kind::Exec {}

/// Kinds whose result is a call's return value (a failed `execve` too).
pub trait Returns: sealed::Sealed {}
impl Returns for kind::Exec {}
impl Returns for kind::File {}
impl Returns for kind::Net {}
impl Returns for kind::Dns {}

/// A span being built; `K` is its kind. Finish with [`SpanBuilder::build`].
#[must_use = "a builder does nothing until .build()"]
pub struct SpanBuilder<K> {
    span: Span,
    kind: PhantomData<K>,
}

impl Span {
    fn begin<K>(
        world_id: impl Into<String>,
        source: Source,
        start: Timestamp,
        detail: Detail,
    ) -> SpanBuilder<K> {
        SpanBuilder {
            span: Span {
                span_id: SpanId::new(),
                parent_span_id: None,
                world_id: world_id.into(),
                source,
                start,
                end: None,
                process: Process::default(),
                result: None,
                detail,
                extra: BTreeMap::new(),
            },
            kind: PhantomData,
        }
    }

    /// The world's span: its summary, and (with `.exit`) how its init ended.
    pub fn world(
        world_id: impl Into<String>,
        source: Source,
        start: Timestamp,
        summary: WorldDetail,
    ) -> SpanBuilder<kind::World> {
        Span::begin(world_id, source, start, Detail::World(summary))
    }

    /// A program run; set its exe, argv, cwd and env on the builder.
    pub fn exec(
        world_id: impl Into<String>,
        source: Source,
        start: Timestamp,
    ) -> SpanBuilder<kind::Exec> {
        Span::begin(world_id, source, start, Detail::Exec)
    }

    pub fn file(
        world_id: impl Into<String>,
        source: Source,
        start: Timestamp,
        detail: FileDetail,
    ) -> SpanBuilder<kind::File> {
        Span::begin(world_id, source, start, Detail::File(detail))
    }

    pub fn net(
        world_id: impl Into<String>,
        source: Source,
        start: Timestamp,
        detail: NetDetail,
    ) -> SpanBuilder<kind::Net> {
        Span::begin(world_id, source, start, Detail::Net(detail))
    }

    pub fn dns(
        world_id: impl Into<String>,
        source: Source,
        start: Timestamp,
        detail: DnsDetail,
    ) -> SpanBuilder<kind::Dns> {
        Span::begin(world_id, source, start, Detail::Dns(detail))
    }

    /// A decision; its subject is redacted as a command line
    /// ([`redact::redact_command_line`]).
    pub fn policy(
        world_id: impl Into<String>,
        source: Source,
        start: Timestamp,
        mut detail: PolicyDetail,
    ) -> SpanBuilder<kind::Policy> {
        if let std::borrow::Cow::Owned(subject) = redact::redact_command_line(&detail.subject) {
            detail.subject = subject;
        }
        Span::begin(world_id, source, start, Detail::Policy(detail))
    }
}

impl<K> SpanBuilder<K> {
    /// Use this id instead of a new one (e.g. one handed out earlier so that
    /// children could name this span as their parent).
    pub fn id(mut self, id: SpanId) -> Self {
        self.span.span_id = id;
        self
    }

    pub fn parent(mut self, parent: SpanId) -> Self {
        self.span.parent_span_id = Some(parent);
        self
    }

    pub fn end(mut self, end: Timestamp) -> Self {
        self.span.end = Some(end);
        self
    }

    /// Host pid.
    pub fn pid(mut self, pid: u32) -> Self {
        self.span.process.pid = Some(pid);
        self
    }

    /// Pid inside the world.
    pub fn world_pid(mut self, pid: u32) -> Self {
        self.span.process.world_pid = Some(pid);
        self
    }

    /// Host parent pid.
    pub fn ppid(mut self, pid: u32) -> Self {
        self.span.process.ppid = Some(pid);
        self
    }

    /// Parent pid inside the world.
    pub fn world_ppid(mut self, pid: u32) -> Self {
        self.span.process.world_ppid = Some(pid);
        self
    }

    pub fn build(self) -> Span {
        self.span
    }
}

impl SpanBuilder<kind::Exec> {
    pub fn exe(mut self, exe: impl Into<Vec<u8>>) -> Self {
        self.span.process.exe = Some(exe.into());
        self
    }

    /// The argv, redacted ([`redact::redact_argv`]).
    pub fn argv<I>(mut self, argv: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Vec<u8>>,
    {
        let mut argv: Vec<Vec<u8>> = argv.into_iter().map(Into::into).collect();
        redact::redact_argv_in_place(&mut argv);
        self.span.process.argv = Some(argv);
        self
    }

    pub fn cwd(mut self, cwd: impl Into<Vec<u8>>) -> Self {
        self.span.process.cwd = Some(cwd.into());
        self
    }

    /// `KEY=value` entries, values redacted unless the key is in the
    /// default [`EnvAllowList`].
    pub fn env<I>(self, env: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Vec<u8>>,
    {
        self.env_allowing(env, EnvAllowList::standard())
    }

    /// `KEY=value` entries, values redacted unless `allow` allows the key.
    pub fn env_allowing<I>(mut self, env: I, allow: &EnvAllowList) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Vec<u8>>,
    {
        let env = env
            .into_iter()
            .map(|entry| {
                let entry: Vec<u8> = entry.into();
                match redact::redact_env_entry(&entry, allow) {
                    std::borrow::Cow::Owned(new) => new,
                    std::borrow::Cow::Borrowed(_) => entry,
                }
            })
            .collect();
        self.span.process.env = Some(env);
        self
    }
}

impl<K: Exits> SpanBuilder<K> {
    pub fn exit(mut self, status: ExitStatus) -> Self {
        self.span.result = Some(Outcome::Exited(status));
        self
    }
}

impl<K: Returns> SpanBuilder<K> {
    /// The call succeeded and returned `ret`.
    pub fn returned(mut self, ret: i64) -> Self {
        self.span.result = Some(Outcome::Returned { ret, errno: None });
        self
    }

    /// The call failed: it returned `ret` and set `errno`.
    pub fn failed(mut self, ret: i64, errno: Errno) -> Self {
        self.span.result = Some(Outcome::Returned {
            ret,
            errno: Some(errno),
        });
        self
    }
}
