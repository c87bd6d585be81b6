//! The egress policy of a world made from a bundle (containerd's, CRI's,
//! podman's, `substrate-runtime create`'s): the node's rule, applied at
//! create to what the bundle's annotations ask for.
//!
//! Only the node widens what a world may reach: its policies are files
//! root installs under the config dir (`/etc/substrate`, or
//! `SUBSTRATE_CONFIG_DIR` in the caller's own environment, never the
//! bundle's). A bundle (a pod, through CRI's `pod_annotations`) may:
//!
//! - choose one of them by name, `io.substrate.policy: NAME`, which reads
//!   `<config dir>/policies/NAME.yaml` (a name, never a path);
//! - narrow the chosen one, or without a name the node default
//!   `<config dir>/policy.yaml`, with `io.substrate.policy.inline: YAML`
//!   ([`Policy::narrow`]): what would widen it refuses the world.
//!
//! With neither annotation and no `policy.yaml` the world is not governed
//! (`None`), as every bundle world was before this rule existed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxNamespaceType;
use substrate_net::netns::NetNs;
use substrate_policy::{Policy, PolicyError};

use crate::bundle::Bundle;
use crate::record::WorldEgress;

/// The annotation that names a node policy.
pub const POLICY_ANNOTATION: &str = "io.substrate.policy";
/// The annotation whose value, a policy document, narrows the node's.
pub const INLINE_ANNOTATION: &str = "io.substrate.policy.inline";
/// The node's config dir unless `SUBSTRATE_CONFIG_DIR` names another.
pub const DEFAULT_CONFIG_DIR: &str = "/etc/substrate";
/// The caller's environment variable that names the config dir.
pub const CONFIG_DIR_ENV: &str = "SUBSTRATE_CONFIG_DIR";

/// Where a policy's name may not be longer (a file name's limit, less
/// `.yaml`).
const NAME_MAX: usize = 250;

/// Where the node's policies live: root's, never a bundle's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    dir: PathBuf,
}

impl NodeConfig {
    /// The config dir at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        NodeConfig { dir: dir.into() }
    }

    /// `$SUBSTRATE_CONFIG_DIR`, or `/etc/substrate`.
    pub fn from_env() -> Self {
        Self::new(
            std::env::var_os(CONFIG_DIR_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| DEFAULT_CONFIG_DIR.into()),
        )
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The node default: `<dir>/policy.yaml`.
    pub fn default_policy(&self) -> PathBuf {
        self.dir.join("policy.yaml")
    }

    /// The policy `name` (already checked to be a name): its file.
    fn named_policy(&self, name: &PolicyName) -> PathBuf {
        self.dir.join("policies").join(format!("{}.yaml", name.0))
    }
}

/// Why a bundle's world cannot have the policy its annotations ask for.
/// Each names the annotation, the node's file, and what to fix.
#[derive(Debug, thiserror::Error)]
pub enum BundlePolicyError {
    #[error("annotation {POLICY_ANNOTATION}={name:?}: {reason} (a policy's name is [a-z0-9][a-z0-9._-]*, never a path)")]
    BadName { name: String, reason: &'static str },

    #[error("annotation {POLICY_ANNOTATION}={name:?}: this node has no such policy (no {})", path.display())]
    NoSuchPolicy { name: String, path: PathBuf },

    /// A node policy that cannot be read or parsed (its error names the
    /// file, with the line and column).
    #[error("{}", match name {
        Some(name) => format!("annotation {POLICY_ANNOTATION}={name:?}: node policy"),
        None => "node policy".to_owned(),
    })]
    NodePolicy {
        name: Option<String>,
        #[source]
        source: PolicyError,
    },

    #[error("annotation {INLINE_ANNOTATION}: not a policy document")]
    BadInline {
        #[source]
        source: PolicyError,
    },

    #[error("annotation {INLINE_ANNOTATION} may only narrow the node policy {}", node.display())]
    Widens {
        node: PathBuf,
        #[source]
        source: PolicyError,
    },

    #[error("annotation {INLINE_ANNOTATION}: there is no node policy for it to narrow (no {} and no {POLICY_ANNOTATION} annotation)", path.display())]
    NothingToNarrow { path: PathBuf },

    #[error("an egress policy governs this world, but its spec gives it {0}: it could not be governed (give it a network namespace of its own)")]
    HostNetwork(&'static str),

    #[error("the resolv.conf the spec mounts at /etc/resolv.conf")]
    ResolvConf {
        #[source]
        source: substrate_net::resolver::Error,
    },
}

/// A policy's name as an annotation gives it, checked: a file name under
/// `policies/`, which can never leave it.
struct PolicyName(String);

impl PolicyName {
    fn parse(name: &str) -> Result<PolicyName, BundlePolicyError> {
        let bad = |reason| BundlePolicyError::BadName {
            name: name.to_owned(),
            reason,
        };
        let mut chars = name.chars();
        match chars.next() {
            None => return Err(bad("empty")),
            Some(first) if !(first.is_ascii_lowercase() || first.is_ascii_digit()) => {
                return Err(bad("must start with a lower-case letter or a digit"))
            }
            Some(_) => {}
        }
        if name.len() > NAME_MAX {
            return Err(bad("too long"));
        }
        if name.contains('/') {
            return Err(bad("contains '/'"));
        }
        if name.contains("..") {
            return Err(bad("contains '..'"));
        }
        if !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)) {
            return Err(bad("has a character other than a-z, 0-9, '.', '_' and '-'"));
        }
        Ok(PolicyName(name.to_owned()))
    }
}

/// The egress policy of a world made from `bundle`, by the node's rule
/// (see the module's doc): `None` when neither annotation is given and the
/// node has no default policy. The world's network is the spec's (CNI's
/// netns for a pod), so there is no bridge; its resolver forwards to the
/// first nameserver of the file the spec mounts at `/etc/resolv.conf`
/// (CRI's pod resolv.conf), or without one, to the host's.
pub(crate) fn egress_of_bundle(
    bundle: &Bundle,
    node: &NodeConfig,
) -> Result<Option<(WorldEgress, substrate_policy::Policy)>, BundlePolicyError> {
    let annotation = |key: &str| {
        bundle
            .spec
            .annotations()
            .as_ref()
            .and_then(|a| a.get(key))
            .cloned()
    };
    let Some(policy) = policy_of(
        annotation(POLICY_ANNOTATION).as_deref(),
        annotation(INLINE_ANNOTATION).as_deref(),
        node,
    )?
    else {
        return Ok(None);
    };
    check_own_netns(bundle)?;
    let mut unenforced = unenforced_sections(&policy);
    // `memory`, `cpus` and `pids` are ceilings on the spec's resources
    // (`ceilings.rs`); `disk` would size an upper layer of Substrate's own,
    // and a bundle's rootfs is its caller's, written in place.
    if policy.limits.disk.is_some() {
        unenforced.push("limits.disk (a bundle's rootfs is its caller's)");
    }
    if !unenforced.is_empty() {
        tracing::warn!(
            "bundle {}: its policy's {} not enforced yet",
            bundle.path.display(),
            unenforced.join(", ")
        );
    }
    let egress = WorldEgress {
        policy: policy.network.clone(),
        bridge: None,
        dns_upstream: dns_upstream(bundle)?,
    };
    Ok(Some((egress, policy)))
}

/// The node policy `name` chooses (or the node default), narrowed by
/// `inline`.
fn policy_of(
    name: Option<&str>,
    inline: Option<&str>,
    node: &NodeConfig,
) -> Result<Option<Policy>, BundlePolicyError> {
    // The name is checked before anything is read: a bad one reads nothing.
    let name = name.map(PolicyName::parse).transpose()?;
    let inline = inline
        .map(Policy::parse)
        .transpose()
        .map_err(|source| BundlePolicyError::BadInline { source })?;
    let node_error = |name: Option<&PolicyName>| {
        let name = name.map(|n| n.0.clone());
        move |source| BundlePolicyError::NodePolicy { name, source }
    };
    let (path, node_policy) = match &name {
        Some(name) => {
            let path = node.named_policy(name);
            match Policy::load(&path) {
                Err(PolicyError::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    return Err(BundlePolicyError::NoSuchPolicy {
                        name: name.0.clone(),
                        path,
                    })
                }
                loaded => (path, loaded.map_err(node_error(Some(name)))?),
            }
        }
        None => {
            let path = node.default_policy();
            match Policy::load(&path) {
                Err(PolicyError::Read { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    return match inline {
                        Some(_) => Err(BundlePolicyError::NothingToNarrow { path }),
                        None => Ok(None),
                    };
                }
                loaded => (path, loaded.map_err(node_error(None))?),
            }
        }
    };
    match inline {
        None => Ok(Some(node_policy)),
        Some(inline) => node_policy
            .narrow(&inline)
            .map(Some)
            .map_err(|source| BundlePolicyError::Widens { node: path, source }),
    }
}

/// Refuses a governed world that would share the host's network namespace
/// before anything of it exists (its table would govern the host; `connect`
/// checks again, on the namespace the world is in).
fn check_own_netns(bundle: &Bundle) -> Result<(), BundlePolicyError> {
    let network = bundle
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|namespaces| {
            namespaces
                .iter()
                .find(|ns| ns.typ() == LinuxNamespaceType::Network)
        });
    let Some(network) = network else {
        return Err(BundlePolicyError::HostNetwork("no network namespace"));
    };
    let Some(path) = network.path() else {
        return Ok(());
    };
    // Unreadable: libcontainer says why when it joins it.
    let shared = NetNs::open(path).and_then(|netns| netns.is_current());
    if shared.unwrap_or(false) {
        return Err(BundlePolicyError::HostNetwork(
            "the host's network namespace to join",
        ));
    }
    Ok(())
}

/// The first nameserver of the file the spec bind-mounts at
/// `/etc/resolv.conf` (relative sources are the bundle's); `None` without
/// such a mount, or when that file names no nameserver (the host's then).
fn dns_upstream(bundle: &Bundle) -> Result<Option<SocketAddr>, BundlePolicyError> {
    let Some(source) = bundle
        .spec
        .mounts()
        .iter()
        .flatten()
        // The last mount there is the one the world sees.
        .rev()
        .filter(|m| m.destination() == Path::new("/etc/resolv.conf"))
        .find_map(|m| m.source().as_ref())
    else {
        return Ok(None);
    };
    let path = bundle.path.join(source);
    match substrate_net::resolver::host_upstream(&path) {
        Ok(upstream) => Ok(Some(upstream)),
        Err(substrate_net::resolver::Error::NoNameserver { .. }) => {
            tracing::warn!(
                "{}: no nameserver: the world's resolver forwards to the host's",
                path.display()
            );
            Ok(None)
        }
        Err(source) => Err(BundlePolicyError::ResolvConf { source }),
    }
}

/// The parts of `policy` that say something no part of Substrate enforces
/// for this process's worlds: callers say so, so that no one takes them for
/// enforced. Every section is enforced for a monitored world — `network`
/// by the egress table; `mode`, `commands`, `exec`, `budget.max_execs` and
/// `filesystem.deny_read` by the monitor's policy gate (fanotify permission
/// events); `filesystem`'s other keys as mounts in the world's spec
/// (`world/filesystem.rs`); `limits.wall_time` and `budget.cpu_seconds` by
/// the monitor, which stops the world (`monitor/limits.rs`); `limits`'
/// others as cgroup limits. A world run untraced (`SUBSTRATE_TRACE=off`,
/// the benchmarks' anchor) has no monitor: what the monitor enforces is
/// not.
pub fn unenforced_sections(policy: &substrate_policy::Policy) -> Vec<&'static str> {
    if crate::inject::tracing_enabled() {
        return Vec::new();
    }
    let mut sections = Vec::new();
    if !policy.commands.is_empty() {
        sections.push("commands");
    }
    if !policy.exec.is_default() {
        sections.push("exec");
    }
    if !policy.filesystem.deny_read.is_empty() {
        sections.push("filesystem.deny_read");
    }
    if policy.limits.wall_time.is_some() {
        sections.push("limits.wall_time");
    }
    if !policy.budget.is_empty() {
        sections.push("budget");
    }
    sections
}

#[cfg(test)]
mod tests {
    use std::fs;

    use substrate_policy::network::{Entry, Verdict};

    use super::*;

    struct Node {
        dir: tempfile::TempDir,
    }

    impl Node {
        fn new() -> Node {
            let dir = tempfile::tempdir().unwrap();
            fs::create_dir(dir.path().join("policies")).unwrap();
            Node { dir }
        }

        fn config(&self) -> NodeConfig {
            NodeConfig::new(self.dir.path())
        }

        fn default_policy(&self, text: &str) -> &Self {
            fs::write(self.dir.path().join("policy.yaml"), text).unwrap();
            self
        }

        fn policy(&self, name: &str, text: &str) -> &Self {
            fs::write(
                self.dir
                    .path()
                    .join("policies")
                    .join(format!("{name}.yaml")),
                text,
            )
            .unwrap();
            self
        }

        fn policy_of(
            &self,
            name: Option<&str>,
            inline: Option<&str>,
        ) -> Result<Option<Policy>, BundlePolicyError> {
            policy_of(name, inline, &self.config())
        }

        fn refusal(&self, name: Option<&str>, inline: Option<&str>) -> String {
            match self.policy_of(name, inline) {
                Ok(policy) => panic!("{name:?} {inline:?}: not refused: {policy:?}"),
                Err(e) => crate::one_line(&e),
            }
        }
    }

    const WEB: &str = "version: 1\nnetwork:\n  allow: [10.1.0.0/16, \"*.example.com:443/tcp\"]\n  deny: [10.1.9.0/24]\n";

    fn entries(texts: &[&str]) -> Vec<Entry> {
        texts.iter().map(|t| Entry::parse(t).unwrap()).collect()
    }

    #[test]
    fn without_annotations_or_a_node_default_a_world_is_not_governed() {
        let node = Node::new();
        node.policy("web", WEB);
        assert_eq!(node.policy_of(None, None).unwrap(), None);
        // Nor does a config dir that does not exist govern anything.
        let missing = NodeConfig::new("/nonexistent/substrate");
        assert_eq!(policy_of(None, None, &missing).unwrap(), None);
    }

    #[test]
    fn without_a_name_the_node_default_governs() {
        let node = Node::new();
        node.default_policy(WEB);
        let policy = node.policy_of(None, None).unwrap().unwrap();
        assert_eq!(policy, Policy::parse(WEB).unwrap());
    }

    #[test]
    fn a_name_chooses_a_node_policy_over_the_default() {
        let node = Node::new();
        node.default_policy("version: 1\n").policy("web", WEB);
        let policy = node.policy_of(Some("web"), None).unwrap().unwrap();
        assert_eq!(policy, Policy::parse(WEB).unwrap());
        node.policy("a.b_c-1", "version: 1\nnetwork:\n  default: allow\n");
        let policy = node.policy_of(Some("a.b_c-1"), None).unwrap().unwrap();
        assert_eq!(policy.network.default, Verdict::Allow);
    }

    #[test]
    fn an_inline_policy_narrows_the_chosen_one() {
        let node = Node::new();
        node.policy("web", WEB);
        let policy = node
            .policy_of(
                Some("web"),
                Some("version: 1\nnetwork:\n  allow: [10.1.2.3:8080/tcp, api.example.com:443/tcp]\n  deny: [10.1.2.4]\n  egress_bytes: 1m\n"),
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            policy.network.allow,
            entries(&["10.1.2.3:8080/tcp", "api.example.com:443/tcp"])
        );
        // The node's deny entries stay, before the inline's.
        assert_eq!(policy.network.deny, entries(&["10.1.9.0/24", "10.1.2.4"]));
        assert_eq!(policy.network.egress_bytes, Some(1 << 20));
    }

    #[test]
    fn an_inline_policy_narrows_the_node_default_without_a_name() {
        let node = Node::new();
        node.default_policy(WEB);
        let policy = node
            .policy_of(None, Some("version: 1\nnetwork:\n  allow: [10.1.0.7]\n"))
            .unwrap()
            .unwrap();
        assert_eq!(policy.network.allow, entries(&["10.1.0.7"]));
    }

    #[test]
    fn a_widening_inline_policy_is_refused_naming_the_entry() {
        let node = Node::new();
        node.policy("web", WEB).default_policy(WEB);
        let path = node.dir.path().join("policies/web.yaml");
        assert_eq!(
            node.refusal(
                Some("web"),
                Some("version: 1\nnetwork:\n  allow: [10.1.2.3, 10.2.0.1:80]\n")
            ),
            format!(
                "annotation io.substrate.policy.inline may only narrow the node policy {}: \
                 allow entry \"10.2.0.1:80\" is not within the node policy",
                path.display()
            )
        );
        let message = node.refusal(None, Some("version: 1\nnetwork:\n  default: allow\n"));
        assert!(
            message
                .ends_with("default: allow is not within the node policy, whose default is deny"),
            "{message}"
        );
        assert!(message.contains("policy.yaml"), "{message}");
        // A name under a wildcard the node allows only on 443 is not
        // allowed on every port.
        let message = node.refusal(
            Some("web"),
            Some("version: 1\nnetwork:\n  allow: [api.example.com]\n"),
        );
        assert!(message.contains("\"api.example.com\""), "{message}");
    }

    #[test]
    fn an_inline_policy_without_a_node_policy_is_refused() {
        let node = Node::new();
        let message = node.refusal(None, Some("version: 1\nnetwork:\n  allow: [10.0.0.1]\n"));
        assert!(
            message.contains("there is no node policy for it to narrow")
                && message.contains("policy.yaml"),
            "{message}"
        );
        // Even one that allows nothing: it would govern the world on the
        // bundle's word alone.
        node.refusal(None, Some("version: 1\n"));
    }

    #[test]
    fn a_bad_inline_policy_is_refused_with_its_line_and_column() {
        let node = Node::new();
        node.default_policy(WEB);
        assert_eq!(
            node.refusal(None, Some("version: 1\nnetwork:\n  allow: [10.1.2.3/8]\n")),
            "annotation io.substrate.policy.inline: not a policy document: 3:11: \
             network.allow[0]: \"10.1.2.3/8\": host bits are set (did you mean 10.0.0.0/8?)"
        );
        // The inline's own mistakes are told even without a node policy.
        let bare = Node::new();
        let message = bare.refusal(None, Some("network: {}\n"));
        assert!(message.contains("missing field `version`"), "{message}");
    }

    #[test]
    fn names_are_names_never_paths() {
        let node = Node::new();
        // A policy outside policies/ that a path could reach.
        node.default_policy(WEB);
        fs::write(node.dir.path().join("secret.yaml"), WEB).unwrap();
        for (name, reason) in [
            ("../secret", "must start with"),
            ("web/../../secret", "contains '/'"),
            ("a/b", "contains '/'"),
            ("a..b", "contains '..'"),
            ("web..", "contains '..'"),
            ("/etc/substrate/policy", "must start with"),
            ("", "empty"),
            (".hidden", "must start with"),
            ("Web", "must start with"),
            ("web policy", "has a character"),
            ("wéb", "has a character"),
            ("web\0", "has a character"),
        ] {
            let message = node.refusal(Some(name), None);
            assert!(
                message.starts_with(&format!("annotation io.substrate.policy={name:?}: "))
                    && message.contains(reason),
                "{name:?}: {message}"
            );
        }
        let long = "a".repeat(NAME_MAX + 1);
        assert!(node.refusal(Some(&long), None).contains("too long"));
    }

    #[test]
    fn a_missing_named_policy_is_refused_naming_it() {
        let node = Node::new();
        node.default_policy(WEB);
        let path = node.dir.path().join("policies/nope.yaml");
        assert_eq!(
            node.refusal(Some("nope"), None),
            format!(
                "annotation io.substrate.policy=\"nope\": this node has no such policy (no {})",
                path.display()
            )
        );
    }

    #[test]
    fn a_node_policy_that_does_not_parse_is_refused_with_its_line_and_column() {
        let node = Node::new();
        node.policy("web", "version: 1\nnetwork:\n  alow: []\n");
        let message = node.refusal(Some("web"), None);
        let path = node.dir.path().join("policies/web.yaml");
        assert!(
            message.starts_with(&format!(
                "annotation io.substrate.policy=\"web\": node policy: {}:3:3: network: unknown field `alow`",
                path.display()
            )),
            "{message}"
        );
        node.default_policy("version: 2\n");
        let message = node.refusal(None, None);
        assert!(
            message.starts_with(&format!(
                "node policy: {}:1:10: version: unsupported version 2",
                node.dir.path().join("policy.yaml").display()
            )),
            "{message}"
        );
    }

    #[test]
    fn the_config_dir_comes_from_the_callers_environment() {
        // Read by the caller only: the variable's name and default.
        assert_eq!(CONFIG_DIR_ENV, "SUBSTRATE_CONFIG_DIR");
        assert_eq!(
            NodeConfig::new(DEFAULT_CONFIG_DIR).default_policy(),
            Path::new("/etc/substrate/policy.yaml")
        );
    }
}
