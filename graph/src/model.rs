//! The graph's model: vertex and edge types, their deterministic ids, and
//! how a span's call maps onto them (docs/graph.md, "Model").
//!
//! Every id is derived from what the vertex stands for — a world's id, a
//! span's id within its world, a path's bytes, an endpoint's address — so
//! that ingesting a span twice writes the same keys again: ingestion is
//! idempotent without reading what is there first.

use indradb::Identifier;
use sha2::{Digest, Sha256};
use substrate_trace::{FileOp, SpanId};
use uuid::Uuid;

/// Vertex types.
pub mod vertex {
    pub const WORLD: &str = "world";
    pub const PROCESS: &str = "process";
    pub const FILE: &str = "file";
    pub const ENDPOINT: &str = "endpoint";
    pub const DECISION: &str = "decision";
}

/// Edge types, all from the acting process (or, for `in_world`, from any
/// vertex that belongs to one world) to what it acted on.
pub mod edge {
    /// process → world; also from an actor whose exec span is not (yet) in
    /// the graph, so that the world's tree finds it.
    pub const IN_WORLD: &str = "in_world";
    /// process → the process (exec span) it was started by.
    pub const CHILD_OF: &str = "child_of";
    /// process → the file it ran (its exe; or the script an interpreter
    /// was given, `as: "script"`).
    pub const EXEC_OF: &str = "exec_of";
    pub const WROTE: &str = "wrote";
    pub const READ: &str = "read";
    pub const DELETED: &str = "deleted";
    /// process → both the old and the new path of a rename.
    pub const RENAMED: &str = "renamed";
    /// process → endpoint (address:port/transport or a unix socket path).
    pub const CONNECTED: &str = "connected";
    /// process → endpoint (a name) it looked up; and that name → each
    /// address it answered in that world.
    pub const RESOLVED: &str = "resolved";
    /// process → decision that the policy made about what it tried.
    pub const DECIDED: &str = "decided";
}

/// Property names.
pub mod prop {
    /// Every vertex's and edge's details, one JSON object (one key in the
    /// store: a property is a key of its own, so fewer are faster).
    pub const DETAILS: &str = "d";
    /// World vertices: how far its trace was ingested (`IngestState`).
    pub const INGEST: &str = "ingest";
    /// World vertices, indexed: the world's id (lists the worlds).
    pub const WORLD: &str = "world";
    /// World vertices, indexed: the suspicious chains found in it, by key.
    pub const CHAINS: &str = "chains";
    /// Process vertices, indexed: the exec span's id (finds a process by
    /// its span alone).
    pub const SPAN: &str = "span";
    /// Endpoint vertices, indexed: the endpoint's key (lists endpoints).
    pub const ENDPOINT: &str = "endpoint";
    /// Decision vertices, indexed: world and subject (finds the decisions
    /// about one thing in one world: denied, then tried again?).
    pub const SUBJECT: &str = "subject";
    /// `connected` edges, indexed: present (true) when an attempt was
    /// blocked (`connections --blocked` across worlds).
    pub const BLOCKED: &str = "blocked";

    /// World vertices, indexed: present (true) when the world has chains of
    /// that kind (`chains --kind` reads only those worlds').
    pub const CHAIN_KINDS: [(&str, &str); 5] = [
        ("download_exec", "chain_download_exec"),
        ("pipe_to_shell", "chain_pipe_to_shell"),
        ("credential_write", "chain_credential_write"),
        ("credential_read", "chain_credential_read"),
        ("denied_then_retried", "chain_denied_then_retried"),
    ];

    /// The property that marks worlds with chains of `kind`.
    pub fn chain_kind(kind: &str) -> Option<&'static str> {
        CHAIN_KINDS
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, p)| *p)
    }

    /// Indexed properties whose value never changes once set (each is
    /// derived from its vertex's or edge's id, or is `true`): setting one
    /// again needs no read of its old index entry. (`chains` changes.)
    pub const UNCHANGING: [&str; 10] = [
        WORLD,
        SPAN,
        ENDPOINT,
        SUBJECT,
        BLOCKED,
        CHAIN_KINDS[0].1,
        CHAIN_KINDS[1].1,
        CHAIN_KINDS[2].1,
        CHAIN_KINDS[3].1,
        CHAIN_KINDS[4].1,
    ];

    /// Properties that are indexed (IndraDB indexes a name on vertices and
    /// edges alike).
    pub const INDEXED: [&str; 11] = [
        WORLD,
        CHAINS,
        SPAN,
        ENDPOINT,
        SUBJECT,
        BLOCKED,
        CHAIN_KINDS[0].1,
        CHAIN_KINDS[1].1,
        CHAIN_KINDS[2].1,
        CHAIN_KINDS[3].1,
        CHAIN_KINDS[4].1,
    ];
}

/// An identifier of the model (a compile-time constant: never invalid).
pub fn ident(name: &'static str) -> Identifier {
    Identifier::new(name).expect("the model's identifiers are valid")
}

/// A deterministic id: the first 16 bytes of SHA-256 over a namespace, the
/// kind and the parts, as a UUID of version 8 (RFC 9562's custom version).
fn derive(kind: &str, parts: &[&[u8]]) -> Uuid {
    let mut hash = Sha256::new();
    hash.update(b"substrate.graph/v1\0");
    hash.update(kind.as_bytes());
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// A world's vertex.
pub fn world_vertex(world: &str) -> Uuid {
    derive("world", &[world.as_bytes()])
}

/// The vertex of a span of `world`: its process (exec spans), its decision
/// (policy spans), or the actor a span's `parent_span_id` names. Scoped by
/// world: a span id from inside one world cannot name another's process.
pub fn span_vertex(world: &str, span: &SpanId) -> Uuid {
    derive("span", &[world.as_bytes(), span.as_uuid().as_bytes()])
}

/// A file's vertex: one per path, across worlds (who-wrote asks by path).
pub fn file_vertex(path: &[u8]) -> Uuid {
    derive("file", &[path])
}

/// An endpoint's vertex, by its key (`Endpoint::key`).
pub fn endpoint_vertex(key: &str) -> Uuid {
    derive("endpoint", &[key.as_bytes()])
}

/// An address a name answered in `world` (a name's `resolved` edges go to
/// these, one per world, so that a connection's address finds the names
/// its world looked up).
pub fn answer_vertex(world: &str, address: &str) -> Uuid {
    derive("answer", &[world.as_bytes(), address.as_bytes()])
}

/// What a file span did to its path, as an edge type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileEffect {
    Wrote,
    Read,
    Deleted,
    Renamed,
}

impl FileEffect {
    pub fn edge(self) -> &'static str {
        match self {
            FileEffect::Wrote => edge::WROTE,
            FileEffect::Read => edge::READ,
            FileEffect::Deleted => edge::DELETED,
            FileEffect::Renamed => edge::RENAMED,
        }
    }

    /// Whether the effect changes the file (who-wrote, what-changed).
    pub fn changes(self) -> bool {
        !matches!(self, FileEffect::Read)
    }
}

const O_ACCMODE: u32 = 0o3;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;
const O_APPEND: u32 = 0o2000;

/// The effect of a file span's call, from its op and open flags. An open
/// for writing (the preload's account) is a write; the kernel sensor's
/// `write`, `create`, … are what happened to the file. `None`: not a file
/// effect the graph keeps (a kind of op this version does not know).
pub fn file_effect(op: &FileOp, flags: Option<u32>) -> Option<FileEffect> {
    use FileOp::*;
    Some(match op {
        Open | Openat | Fopen => {
            let flags = flags.unwrap_or(0);
            if flags & O_ACCMODE != 0 || flags & (O_CREAT | O_TRUNC | O_APPEND) != 0 {
                FileEffect::Wrote
            } else {
                FileEffect::Read
            }
        }
        Creat | Mkdir | Mkdirat | Chmod | Fchmodat | Truncate | Create | Write | Chown | Link
        | Symlink | Mknod | Metadata => FileEffect::Wrote,
        Unlink | Unlinkat | Rmdir | Delete => FileEffect::Deleted,
        Rename | Renameat => FileEffect::Renamed,
        // An upper-layer file opened to be run: read (the run itself is the
        // exec span's `exec_of`).
        Exec => FileEffect::Read,
        Other(_) => return None,
    })
}

/// Paths whose writes the preload reports but that are no file a world
/// changes: devices, /proc, /sys (`> /dev/null` is an open for writing).
pub fn is_pseudo_path(path: &[u8]) -> bool {
    path.starts_with(b"/dev/") || path.starts_with(b"/proc/") || path.starts_with(b"/sys/")
}

/// Where credentials and code that runs at login live: a write there is
/// suspicious (`chains`, kind `credential_write`).
pub fn is_credential_write_path(path: &[u8]) -> bool {
    is_credential_read_path(path)
        || has_dir(path, &[b"/.git/hooks"])
        || path == b"/etc/profile"
        || path == b"/etc/bash.bashrc"
        || path.starts_with(b"/etc/profile.d/")
        || path == b"/etc/sudoers"
        || path.starts_with(b"/etc/sudoers.d/")
        || path == b"/etc/passwd"
        || RC_FILES.iter().any(|rc| base_name(path) == *rc)
}

/// Where secrets are kept: reading them is the first half of taking them
/// (`chains`, kind `credential_read`). Not rc files or hooks: every shell
/// reads those.
pub fn is_credential_read_path(path: &[u8]) -> bool {
    has_dir(
        path,
        &[b"/.ssh", b"/.aws", b"/.gnupg", b"/.kube", b"/.docker"],
    ) || path == b"/etc/shadow"
        || path == b"/etc/gshadow"
        || path.ends_with(b"/.netrc")
        || path.ends_with(b"/.git-credentials")
        || path.ends_with(b"/.pgpass")
}

const RC_FILES: [&[u8]; 11] = [
    b".bashrc",
    b".bash_profile",
    b".bash_login",
    b".bash_logout",
    b".profile",
    b".zshrc",
    b".zprofile",
    b".zshenv",
    b".zlogin",
    b".kshrc",
    b".cshrc",
];

/// Whether `path` has one of `dirs` (each `/name`, `/a/b`) as whole
/// components: followed by `/` or at its end. (Every file span asks, so it
/// looks only where a `/` is, and allocates nothing.)
fn has_dir(path: &[u8], dirs: &[&[u8]]) -> bool {
    path.iter().enumerate().any(|(i, &b)| {
        b == b'/'
            && dirs.iter().any(|dir| {
                path[i..].starts_with(dir)
                    && path.get(i + dir.len()).is_none_or(|&next| next == b'/')
            })
    })
}

/// The last path component.
pub fn base_name(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Shells: a shell given no script and no `-c` reads its commands from
/// stdin (`curl … | sh`).
const SHELLS: [&[u8]; 8] = [
    b"sh", b"bash", b"dash", b"zsh", b"ksh", b"ash", b"mksh", b"fish",
];

/// Interpreters whose first operand is a script they run.
const INTERPRETERS: [&[u8]; 6] = [b"python", b"python3", b"perl", b"ruby", b"node", b"php"];

/// Programs whose business is fetching from the network.
const DOWNLOADERS: [&[u8]; 7] = [
    b"curl", b"wget", b"fetch", b"aria2c", b"nc", b"ncat", b"socat",
];

fn program(exe: Option<&[u8]>, argv: &[Vec<u8>]) -> Vec<u8> {
    // busybox applets: the program is argv[0]'s name.
    let exe_name = exe.map(base_name).unwrap_or_default();
    if exe_name.is_empty() || exe_name == b"busybox" {
        argv.first()
            .map(|a| base_name(a).to_vec())
            .unwrap_or_default()
    } else {
        exe_name.to_vec()
    }
}

pub fn is_shell(exe: Option<&[u8]>, argv: &[Vec<u8>]) -> bool {
    let name = program(exe, argv);
    SHELLS.contains(&name.as_slice())
}

pub fn is_downloader(exe: Option<&[u8]>, argv: &[Vec<u8>]) -> bool {
    let name = program(exe, argv);
    DOWNLOADERS.contains(&name.as_slice())
}

/// A shell that reads its commands from stdin: no `-c`, no script operand
/// (`sh`, `bash -s`, `sh -`, `bash -x`).
pub fn reads_script_from_stdin(exe: Option<&[u8]>, argv: &[Vec<u8>]) -> bool {
    if !is_shell(exe, argv) {
        return false;
    }
    for arg in argv.iter().skip(1) {
        if arg.as_slice() == b"-s" || arg.as_slice() == b"-" {
            return true;
        }
        if arg.starts_with(b"-") {
            if arg.len() > 1 && arg[1] != b'-' && arg.contains(&b'c') {
                return false;
            }
            continue;
        }
        if arg.starts_with(b"+") {
            continue;
        }
        return false;
    }
    true
}

/// The script a shell or interpreter was given to run (its first operand),
/// if any: `sh /tmp/x`, `python3 run.py`.
pub fn script_operand(exe: Option<&[u8]>, argv: &[Vec<u8>]) -> Option<Vec<u8>> {
    let name = program(exe, argv);
    let interpreter = SHELLS.contains(&name.as_slice())
        || INTERPRETERS.contains(&name.as_slice())
        || name.starts_with(b"python3.");
    if !interpreter {
        return None;
    }
    for arg in argv.iter().skip(1) {
        if arg.starts_with(b"-") || arg.starts_with(b"+") {
            if arg.len() > 1 && arg[1] != b'-' && (arg.contains(&b'c') || arg.contains(&b'm')) {
                // `-c CMD`, `python -m module`: no script file.
                return None;
            }
            continue;
        }
        return Some(arg.clone());
    }
    None
}

/// `path` made absolute against `cwd` (lexically: `.` and `..` folded, no
/// symlinks followed; the graph keys files by the path named).
pub fn absolute(path: &[u8], cwd: Option<&[u8]>) -> Vec<u8> {
    let joined = if path.starts_with(b"/") {
        path.to_vec()
    } else if let Some(cwd) = cwd.filter(|c| c.starts_with(b"/")) {
        [cwd, b"/", path].concat()
    } else {
        return normalize_slashes(path);
    };
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in joined.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = Vec::with_capacity(joined.len());
    for part in parts {
        out.push(b'/');
        out.extend_from_slice(part);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// A path as a query names it: trailing slashes dropped.
pub fn normalize_slashes(path: &[u8]) -> Vec<u8> {
    let mut p = path.to_vec();
    while p.len() > 1 && p.ends_with(b"/") {
        p.pop();
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<Vec<u8>> {
        args.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        assert_eq!(world_vertex("w-1"), world_vertex("w-1"));
        assert_ne!(world_vertex("w-1"), world_vertex("w-2"));
        assert_ne!(file_vertex(b"/a"), endpoint_vertex("/a"));
        let span = SpanId::new();
        assert_ne!(span_vertex("a", &span), span_vertex("b", &span));
        assert_eq!(file_vertex(b"/a").get_version_num(), 8);
    }

    #[test]
    fn open_flags_decide_read_or_write() {
        assert_eq!(file_effect(&FileOp::Open, Some(0)), Some(FileEffect::Read));
        assert_eq!(
            file_effect(&FileOp::Open, Some(0o1101)),
            Some(FileEffect::Wrote)
        );
        assert_eq!(
            file_effect(&FileOp::Openat, Some(0o2)),
            Some(FileEffect::Wrote)
        );
        assert_eq!(
            file_effect(&FileOp::Delete, None),
            Some(FileEffect::Deleted)
        );
        assert_eq!(
            file_effect(&FileOp::Renameat, None),
            Some(FileEffect::Renamed)
        );
        assert_eq!(file_effect(&FileOp::Other("statx".into()), None), None);
    }

    #[test]
    fn credential_paths() {
        for p in [
            "/root/.ssh/authorized_keys",
            "/home/a/.aws/credentials",
            "/etc/shadow",
            "/root/.bashrc",
            "/src/.git/hooks/pre-commit",
            "/root/.ssh",
        ] {
            assert!(is_credential_write_path(p.as_bytes()), "{p}");
        }
        for p in [
            "/tmp/ssh",
            "/root/.bashrc.d/x",
            "/etc/shadow-",
            "/src/git/hooks/x",
            "/root/.sshx/id_rsa",
            "/src/.git/hooksy",
        ] {
            assert!(!is_credential_write_path(p.as_bytes()), "{p}");
        }
        assert!(is_credential_read_path(b"/root/.ssh/id_rsa"));
        assert!(is_credential_read_path(b"/home/a/.kube"));
        assert!(is_credential_write_path(b"/src/.git/hooks"));
        assert!(!is_credential_read_path(b"/root/.bashrc"));
        assert!(!is_credential_read_path(b"/root/x.ssh/id_rsa"));
    }

    #[test]
    fn shells_reading_stdin() {
        let sh = Some(&b"/usr/bin/dash"[..]);
        assert!(reads_script_from_stdin(sh, &argv(&["sh"])));
        assert!(reads_script_from_stdin(sh, &argv(&["sh", "-s", "--", "x"])));
        assert!(reads_script_from_stdin(sh, &argv(&["bash", "-x"])));
        assert!(!reads_script_from_stdin(sh, &argv(&["sh", "-c", "ls"])));
        assert!(!reads_script_from_stdin(sh, &argv(&["sh", "-ec", "ls"])));
        assert!(!reads_script_from_stdin(sh, &argv(&["sh", "/tmp/x"])));
        assert!(!reads_script_from_stdin(
            Some(b"/usr/bin/cat"),
            &argv(&["cat"])
        ));
        assert!(reads_script_from_stdin(
            Some(b"/bin/busybox"),
            &argv(&["sh"])
        ));
    }

    #[test]
    fn scripts_given_to_interpreters() {
        let sh = Some(&b"/bin/sh"[..]);
        assert_eq!(
            script_operand(sh, &argv(&["sh", "/tmp/x", "a"])),
            Some(b"/tmp/x".to_vec())
        );
        assert_eq!(script_operand(sh, &argv(&["sh", "-c", "x"])), None);
        assert_eq!(
            script_operand(
                Some(b"/usr/bin/python3.11"),
                &argv(&["python3", "-u", "r.py"])
            ),
            Some(b"r.py".to_vec())
        );
        assert_eq!(
            script_operand(Some(b"/usr/bin/ls"), &argv(&["ls", "/"])),
            None
        );
    }

    #[test]
    fn paths_made_absolute() {
        assert_eq!(absolute(b"x", Some(b"/tmp")), b"/tmp/x");
        assert_eq!(absolute(b"../x/./y", Some(b"/a/b")), b"/a/x/y");
        assert_eq!(absolute(b"/a//b/", None), b"/a/b");
        assert_eq!(absolute(b"x", None), b"x");
        assert_eq!(absolute(b"/..", None), b"/");
    }
}
