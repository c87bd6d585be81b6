//! The world record: `world.json`, what Substrate keeps about a world after
//! its container is gone. The schema is documented in `docs/world-record.md`;
//! readers ignore fields they do not know, writers only add fields within a
//! schema version.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::WorldId;
use substrate_fsdiff::{DiffOptions, DiffSummary};
pub use substrate_trace::ExitStatus;
use substrate_trace::Timestamp;

pub const RECORD_SCHEMA: &str = "substrate.world/v1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorldRecord {
    pub schema: String,
    pub id: WorldId,
    /// Where the world's definition came from.
    pub source: WorldSource,
    /// The runtime state root (`--root`) that held its container, so its
    /// live status can be looked up while it exists.
    pub runtime_root: PathBuf,
    /// The read-only layers under the world's rootfs, top-most first.
    pub lower: Vec<PathBuf>,
    /// The layer that received the world's writes; `None` for a world whose
    /// rootfs was written in place (no diff).
    #[serde(default)]
    pub upper: Option<UpperLayer>,
    /// Mount destinations the runtime created in the rootfs; the diff skips
    /// these directories (their contents belong to the mounted filesystems).
    #[serde(default)]
    pub mountpoints: Vec<PathBuf>,
    /// Whether the preload tracer was injected (file, net and DNS spans);
    /// without it the trace holds what the kernel reports.
    #[serde(default)]
    pub preload: bool,
    pub command: Vec<String>,
    /// `KEY=value`, with values of secret-looking keys replaced by
    /// [`REDACTED`].
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub created_at: Timestamp,
    #[serde(default)]
    pub started_at: Option<Timestamp>,
    #[serde(default)]
    pub ended_at: Option<Timestamp>,
    /// How the world's init ended, when whoever waited for it told us.
    #[serde(default)]
    pub exit: Option<ExitStatus>,
    /// Totals and tree hash of the fs diff (the entries are in `diff.json`).
    #[serde(default)]
    pub diff: Option<DiffSummary>,
    /// The limits the world ran into (pids, memory, cpu, disk), with how
    /// often; empty when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits_hit: Vec<crate::world::LimitHit>,
    /// What network the world had.
    #[serde(default)]
    pub network: WorldNetwork,
    /// The egress policy its network was governed by, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<WorldEgress>,
    /// The policy its monitor enforced (`network` aside: that is `egress`),
    /// when it had one: see [`crate::CreateOptions::policy`].
    #[serde(default, alias = "commands", skip_serializing_if = "Option::is_none")]
    pub policy: Option<substrate_policy::Policy>,
    /// Where the hash chain of its `trace.jsonl` ends (its line count and
    /// the hash of its last line), once its trace was closed; `None` while
    /// it is written, for an untraced world and for worlds recorded before
    /// traces were chained. `substrate-cli verify` checks the trace by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_chain: Option<substrate_trace::ChainEnd>,
}

/// A world's egress policy and what enforces it, as its caller (never its
/// bundle) decided: the caller's options at create, and the record after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorldEgress {
    /// The network section in force: the node's, narrowed by the world's.
    pub policy: substrate_policy::network::NetworkPolicy,
    /// The bridge a [`WorldNetwork::Bridge`] world joins, as
    /// `NAME,V4/LEN,V6/LEN` (see [`substrate_net::link::Bridge`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bridge: Option<String>,
    /// Where the world's resolver forwards the names it allows; `None`:
    /// the first nameserver of the host's `/etc/resolv.conf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_upstream: Option<std::net::SocketAddr>,
}

impl WorldEgress {
    /// How the world's table is built and read: its log group, and the nets
    /// no allow entry but one within them reaches — the host's own
    /// addresses, and the bridge's subnets, where the host and the other
    /// worlds are.
    pub fn table_options(&self) -> Result<substrate_net::egress::EgressOptions> {
        let mut protected: Vec<ipnet::IpNet> = substrate_net::link::host_addresses()
            .map_err(|e| Error::Network {
                what: "cannot list the host's addresses".into(),
                source: Box::new(e),
            })?
            .into_iter()
            .map(ipnet::IpNet::from)
            .collect();
        // Whatever network the world has: other worlds are on the bridge.
        protected.extend(self.bridge()?.protected());
        Ok(substrate_net::egress::EgressOptions {
            log_group: crate::world::LOG_GROUP,
            protected: substrate_net::protected::Protected::new(protected),
        })
    }

    /// The bridge this world joins (the default one unless named).
    pub fn bridge(&self) -> Result<substrate_net::link::Bridge> {
        match &self.bridge {
            None => Ok(substrate_net::link::Bridge::default()),
            Some(text) => text.parse().map_err(|e| Error::Network {
                what: "bad bridge".into(),
                source: Box::new(e),
            }),
        }
    }
}

/// What network a world has, as its caller (never its bundle) decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorldNetwork {
    /// What its spec gives it: a network namespace its caller or CNI set
    /// up, or the host's.
    #[default]
    Spec,
    /// A network namespace of its own with only the loopback, up: nothing
    /// outside the world is reachable (`substrate-cli run --net none`).
    LoopbackOnly,
    /// A network namespace of its own joined to the host bridge by a veth
    /// pair, NATed to the host's uplink, and governed by its egress table
    /// (`substrate-cli run --net bridge`).
    Bridge,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorldSource {
    /// An OCI bundle directory.
    Bundle { path: PathBuf },
    /// A root filesystem directory, run with Substrate's default spec.
    Rootfs { path: PathBuf },
    /// The host's own root filesystem, read-only under the world's upper.
    Host,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpperLayer {
    pub path: PathBuf,
    /// `world`: Substrate made this upper and may delete it. `adopted`: the
    /// caller (podman, containerd) owns it; Substrate only reads it.
    pub owner: UpperOwner,
    /// False once `rm` or a run without `--keep` has discarded the layer's
    /// contents (the diff stays).
    #[serde(default = "yes")]
    pub kept: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpperOwner {
    World,
    Adopted,
}

pub use substrate_trace::REDACTED;

/// Replaces the value of every variable whose name looks like it holds a
/// secret, and any secret inside the other values (a `Bearer` token, URL
/// userinfo), by the rules every Substrate record shares
/// (`substrate_trace::redact`), so records can be shared without leaking
/// credentials.
pub fn redact_env(env: &[String]) -> Vec<String> {
    substrate_trace::redact::redact_environment(env)
}

/// Environment variables that size a world's diff (see `DiffOptions`).
pub const DIFF_MAX_ENTRIES_ENV: &str = "SUBSTRATE_DIFF_MAX_ENTRIES";
pub const DIFF_HASH_MAX_BYTES_ENV: &str = "SUBSTRATE_DIFF_HASH_MAX_BYTES";

impl WorldRecord {
    /// How this world's diff is taken: the runtime's mount points left out,
    /// and the entry and hash limits from the environment when set.
    pub fn diff_options(&self) -> DiffOptions {
        let from_env = |name: &str| std::env::var(name).ok().and_then(|v| v.trim().parse().ok());
        let defaults = DiffOptions::default();
        DiffOptions {
            max_entries: from_env(DIFF_MAX_ENTRIES_ENV)
                .map(|n: u64| n as usize)
                .unwrap_or(defaults.max_entries),
            hash_max_bytes: from_env(DIFF_HASH_MAX_BYTES_ENV).unwrap_or(defaults.hash_max_bytes),
            exclude: self.mountpoints.clone(),
        }
    }

    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).map_err(|e| Error::io("cannot read world record", path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Record {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).expect("WorldRecord serializes");
        write_replacing(path, &bytes, true)
    }
}

/// Writes `bytes` to `path` so that a reader, or the file after a crash, is
/// either the old content or the new, never part of one: a temp file in the
/// same directory, renamed over the target. With `durable`, the temp file is
/// fsync'd before the rename (else a crash can leave the new name on an
/// empty file), and the directory after it when the name is new (else the
/// file itself can vanish in a crash).
pub(crate) fn write_replacing(path: &Path, bytes: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    // One temp file per write: two threads of one process (a world's
    // monitor and its owner) may replace the same file at once, and a
    // shared temp name let one rename the other's away (ENOENT).
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let existed = durable && path.exists();
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if durable && !existed {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("cannot write", path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_looking_values_are_redacted() {
        let env: Vec<String> = [
            "PATH=/bin",
            "GITHUB_TOKEN=ghp_x",
            "DB_PASSWORD=hunter2",
            "OPENAI_API_KEY=sk-1",
            "AWS_SECRET_ACCESS_KEY=abc",
            "EMPTY",
            "HOME=/root",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            redact_env(&env),
            [
                "PATH=/bin",
                "GITHUB_TOKEN=<redacted>",
                "DB_PASSWORD=<redacted>",
                "OPENAI_API_KEY=<redacted>",
                "AWS_SECRET_ACCESS_KEY=<redacted>",
                "EMPTY",
                "HOME=/root",
            ]
        );
    }

    #[test]
    fn exit_statuses_read_like_a_shell() {
        assert_eq!(ExitStatus::Code(3).shell_status(), 3);
        assert_eq!(ExitStatus::Signal(9).shell_status(), 137);
        assert_eq!(
            serde_json::to_string(&ExitStatus::Signal(9)).unwrap(),
            r#"{"signal":9}"#
        );
    }

    #[test]
    fn atomic_write_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("world.json");
        write_replacing(&path, b"first", true).unwrap();
        write_replacing(&path, b"second", true).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
