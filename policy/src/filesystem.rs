//! The `filesystem` section: which paths a world may not see, may not
//! write, may write, and may not open.
//!
//! ```yaml
//! filesystem:
//!   hidden: [/srv/secrets]       # absent from the world: every open refused
//!   read_only: [/etc]            # opens that may write refused
//!   writable: [/tmp, /work]      # if listed: the only paths a write may open
//!   deny_read: ["**/.ssh/id_*", /etc/shadow]   # globs, decided at open time
//! ```
//!
//! A path entry is absolute and names itself and everything below it
//! (`/etc` names `/etc/passwd`, not `/etcetera`). It is kept normalized
//! (`/tmp/` is `/tmp`); `.` and `..` are refused, since what `..` names
//! depends on symbolic links the policy cannot see.
//!
//! See [`crate::CompiledPolicy::decide_open`] for how an open is decided.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The filesystem section. Every key is optional; the default section
/// decides nothing (every open allowed, as far as the world's mounts let
/// it).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilesystemPolicy {
    /// Paths the world may not open at all, for reading or writing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hidden: Vec<AbsPath>,
    /// Paths the world may read but not open for writing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub read_only: Vec<AbsPath>,
    /// `None` (the key left out): a write may open any path not hidden,
    /// read-only or denied. A list, even an empty one: only paths under
    /// one of its entries (and not read-only) may be opened for writing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub writable: Option<Vec<AbsPath>>,
    /// Globs over the absolute path of the file being opened: an open of
    /// a path one matches is refused, whether for reading or writing (an
    /// open for writing may read, `O_RDWR`; and one that only writes can
    /// replace a secret).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny_read: Vec<PathGlob>,
}

/// An absolute path without `.` or `..`, normalized (no repeated or
/// trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AbsPath(PathBuf);

/// A glob over absolute paths, as written: `*`, `?` and `[...]` stay
/// within one path component, `**` crosses any number of them,
/// `{a,b}` is either; `\` escapes. It starts with `/` or `**`, since the
/// paths it is matched against are absolute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathGlob(String);

impl FilesystemPolicy {
    /// Whether the section says nothing.
    pub fn is_empty(&self) -> bool {
        *self == FilesystemPolicy::default()
    }

    /// Applies `inline` under `self`, the node's section: `hidden`,
    /// `read_only` and `deny_read` are the node's entries followed by the
    /// inline's (duplicates dropped); `writable` is what both make
    /// writable: with neither listing, `None`; with one listing, its list;
    /// with both, every path under an entry of each (for each pair, the
    /// deeper entry when one is under the other), so no path is writable
    /// that the node does not make writable.
    pub fn narrow(&self, inline: &FilesystemPolicy) -> FilesystemPolicy {
        FilesystemPolicy {
            hidden: union(&self.hidden, &inline.hidden),
            read_only: union(&self.read_only, &inline.read_only),
            writable: match (&self.writable, &inline.writable) {
                (None, None) => None,
                (Some(only), None) | (None, Some(only)) => Some(only.clone()),
                (Some(node), Some(inline)) => {
                    let mut both: Vec<AbsPath> = Vec::new();
                    for node in node {
                        for inline in inline {
                            let deeper = if inline.contains(node.as_path()) {
                                node
                            } else if node.contains(inline.as_path()) {
                                inline
                            } else {
                                continue;
                            };
                            if !both.contains(deeper) {
                                both.push(deeper.clone());
                            }
                        }
                    }
                    Some(both)
                }
            },
            deny_read: union(&self.deny_read, &inline.deny_read),
        }
    }
}

/// `node`'s entries, then those of `inline` that `node` lacks.
fn union<T: Clone + PartialEq>(node: &[T], inline: &[T]) -> Vec<T> {
    let mut all = node.to_vec();
    for entry in inline {
        if !all.contains(entry) {
            all.push(entry.clone());
        }
    }
    all
}

/// Why a path entry is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathProblem {
    Empty,
    Relative,
    Dots,
    Nul,
}

impl fmt::Display for PathProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathProblem::Empty => "an empty path",
            PathProblem::Relative => "not an absolute path (start it with /)",
            PathProblem::Dots => "`.` and `..` are not allowed (what `..` names depends on links)",
            PathProblem::Nul => "a path cannot contain NUL",
        })
    }
}

impl AbsPath {
    /// Checks and normalizes `text`.
    pub fn parse(text: &str) -> Result<AbsPath, String> {
        Self::check(text).map_err(|problem| format!("{text:?}: {problem}"))
    }

    fn check(text: &str) -> Result<AbsPath, PathProblem> {
        if text.is_empty() {
            return Err(PathProblem::Empty);
        }
        if text.contains('\0') {
            return Err(PathProblem::Nul);
        }
        if !text.starts_with('/') {
            return Err(PathProblem::Relative);
        }
        // `Path::components` drops `.` silently except at the start; look
        // at the text.
        if text.split('/').any(|part| part == "." || part == "..") {
            return Err(PathProblem::Dots);
        }
        Ok(AbsPath(Path::new(text).components().collect()))
    }

    pub fn as_path(&self) -> &Path {
        &self.0
    }

    /// The path's bytes, as the engine compares them.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_os_str().as_bytes()
    }

    /// Whether `path` (normalized) is this path or below it.
    pub fn contains(&self, path: &Path) -> bool {
        contains(self.as_bytes(), path.as_os_str().as_bytes())
    }
}

/// Whether the normalized path `path` is `entry` or below it.
pub(crate) fn contains(entry: &[u8], path: &[u8]) -> bool {
    match path.strip_prefix(entry) {
        Some(rest) => rest.is_empty() || rest[0] == b'/' || entry == b"/",
        None => false,
    }
}

impl fmt::Display for AbsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.display().fmt(f)
    }
}

impl Serialize for AbsPath {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Read from a YAML string: always UTF-8.
        serializer.serialize_str(&self.0.to_string_lossy())
    }
}

impl<'de> Deserialize<'de> for AbsPath {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AbsPathVisitor;

        impl Visitor<'_> for AbsPathVisitor {
            type Value = AbsPath;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an absolute path")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<AbsPath, E> {
                AbsPath::parse(text).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(AbsPathVisitor)
    }
}

impl PathGlob {
    /// Checks `text` as a glob over absolute paths.
    pub fn parse(text: &str) -> Result<PathGlob, String> {
        if !(text.starts_with('/') || text.starts_with("**")) {
            return Err(format!(
                "{text:?}: paths are absolute: start the glob with / or **/"
            ));
        }
        path_glob(text)?;
        Ok(PathGlob(text.to_owned()))
    }

    /// The glob as written.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// The directory every path the glob matches is under: its leading
    /// components without a wildcard or escape (`/root/.ssh` for
    /// `/root/.ssh/id_*`, `/` for `**/.env`).
    pub fn literal_prefix(&self) -> PathBuf {
        let mut prefix = PathBuf::from("/");
        let components: Vec<&str> = self.0.split('/').filter(|c| !c.is_empty()).collect();
        // The last component names the files themselves, not a directory.
        for component in components.iter().take(components.len().saturating_sub(1)) {
            if component.contains(['*', '?', '[', '{', '\\']) {
                break;
            }
            prefix.push(component);
        }
        prefix
    }
}

/// Compiles `text` the one way a path glob is read.
pub(crate) fn path_glob(text: &str) -> Result<globset::Glob, String> {
    globset::GlobBuilder::new(text)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|error| format!("{text:?}: {}", error.kind()))
}

impl fmt::Display for PathGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for PathGlob {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PathGlob {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PathGlobVisitor;

        impl Visitor<'_> for PathGlobVisitor {
            type Value = PathGlob;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a glob over absolute paths")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<PathGlob, E> {
                PathGlob::parse(text).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(PathGlobVisitor)
    }
}

/// `path` as the engine compares it: absolute and normalized, borrowed
/// when it already is; `None` when it is relative or has `..` (the
/// monitor passes the path of the file actually opened, which is neither;
/// anything else is decided as unresolved).
pub(crate) fn resolved(path: &Path) -> Option<std::borrow::Cow<'_, [u8]>> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.first() != Some(&b'/') {
        return None;
    }
    if is_normal(bytes) {
        return Some(std::borrow::Cow::Borrowed(bytes));
    }
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => return None,
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    Some(std::borrow::Cow::Owned(
        normal.into_os_string().as_bytes().to_vec(),
    ))
}

/// Whether an absolute path has no empty, `.` or `..` component and no
/// trailing `/` (the root aside).
fn is_normal(bytes: &[u8]) -> bool {
    if bytes == b"/" {
        return true;
    }
    bytes[1..]
        .split(|&b| b == b'/')
        .all(|part| !part.is_empty() && part != b"." && part != b"..")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_globs_literal_prefix_is_the_directory_before_its_first_wildcard() {
        for (glob, prefix) in [
            ("/root/.ssh/id_*", "/root/.ssh"),
            ("**/.env", "/"),
            ("/etc/shadow", "/etc"),
            ("/home/*/.aws/credentials", "/home"),
            ("/srv/{a,b}/key", "/srv"),
            ("/srv/a\\*b/key", "/srv"),
        ] {
            assert_eq!(
                PathGlob::parse(glob).unwrap().literal_prefix(),
                Path::new(prefix),
                "{glob}"
            );
        }
    }

    use super::*;

    fn abs(text: &str) -> AbsPath {
        AbsPath::parse(text).unwrap()
    }

    #[test]
    fn paths_are_absolute_and_normalized() {
        assert_eq!(abs("/tmp/").as_path(), Path::new("/tmp"));
        assert_eq!(abs("//srv///secrets").as_path(), Path::new("/srv/secrets"));
        assert_eq!(abs("/").as_path(), Path::new("/"));
        assert_eq!(AbsPath::check(""), Err(PathProblem::Empty));
        assert_eq!(AbsPath::check("tmp"), Err(PathProblem::Relative));
        assert_eq!(AbsPath::check("/a/../etc"), Err(PathProblem::Dots));
        assert_eq!(AbsPath::check("/a/./b"), Err(PathProblem::Dots));
        assert_eq!(AbsPath::check("/a\0b"), Err(PathProblem::Nul));
    }

    #[test]
    fn an_entry_contains_itself_and_what_is_below() {
        let etc = abs("/etc");
        assert!(etc.contains(Path::new("/etc")));
        assert!(etc.contains(Path::new("/etc/passwd")));
        assert!(!etc.contains(Path::new("/etcetera")));
        assert!(!etc.contains(Path::new("/")));
        assert!(abs("/").contains(Path::new("/anything")));
    }

    #[test]
    fn globs_must_name_absolute_paths() {
        assert!(PathGlob::parse("**/.ssh/id_*").is_ok());
        assert!(PathGlob::parse("/etc/shadow").is_ok());
        assert!(PathGlob::parse(".ssh/id_*").is_err());
        assert!(PathGlob::parse("/etc/[").is_err());
    }

    #[test]
    fn resolving_query_paths() {
        let r = |text: &str| resolved(Path::new(text)).map(|bytes| bytes.into_owned());
        assert_eq!(r("/etc/passwd").as_deref(), Some(&b"/etc/passwd"[..]));
        assert_eq!(r("/").as_deref(), Some(&b"/"[..]));
        assert_eq!(r("//etc/./passwd/").as_deref(), Some(&b"/etc/passwd"[..]));
        assert_eq!(r("/etc/../etc/shadow"), None);
        assert_eq!(r("etc/shadow"), None);
        assert_eq!(r(""), None);
    }

    #[test]
    fn narrowing_writable_keeps_what_both_make_writable() {
        let list = |texts: &[&str]| Some(texts.iter().map(|t| abs(t)).collect::<Vec<_>>());
        let with = |writable| FilesystemPolicy {
            writable,
            ..FilesystemPolicy::default()
        };
        let narrow = |node, inline| with(node).narrow(&with(inline)).writable;
        assert_eq!(narrow(None, None), None);
        assert_eq!(narrow(list(&["/tmp"]), None), list(&["/tmp"]));
        assert_eq!(narrow(None, list(&["/tmp"])), list(&["/tmp"]));
        assert_eq!(
            narrow(list(&["/work", "/tmp"]), list(&["/work/out", "/"])),
            list(&["/work/out", "/work", "/tmp"])
        );
        // Both list, nothing in common: nothing writable (not everything).
        assert_eq!(narrow(list(&["/tmp"]), list(&["/work"])), list(&[]));
    }
}
