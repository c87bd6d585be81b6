//! The diff's data types, as they travel in JSON.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// What [`diff_upper`](super::diff_upper) reports and how much work it may do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiffOptions {
    /// Keep at most this many entries (the first ones in path order). Totals
    /// and the tree hash always cover every entry.
    pub max_entries: usize,
    /// Hash regular files up to this size; larger files get no `sha256`.
    /// 0 = never hash.
    pub hash_max_bytes: u64,
    /// World paths of directories the runtime created as mount points
    /// (`/proc`, `/dev`, ...): such an entry is not reported when it is a
    /// directory; what lies beneath it still is.
    pub exclude: Vec<PathBuf>,
}

impl DiffOptions {
    pub const DEFAULT_MAX_ENTRIES: usize = 10_000;
    pub const DEFAULT_HASH_MAX_BYTES: u64 = 16 << 20;
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            max_entries: Self::DEFAULT_MAX_ENTRIES,
            hash_max_bytes: Self::DEFAULT_HASH_MAX_BYTES,
            exclude: Vec::new(),
        }
    }
}

/// A world's filesystem diff: exact totals and hash, and the first entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsDiff {
    pub summary: DiffSummary,
    /// Sorted by path (component by component, bytes within a component), at
    /// most `max_entries` of them.
    pub entries: Vec<DiffEntry>,
}

impl FsDiff {
    /// The kept entries as `docker diff` prints them: `A /path`. Control
    /// characters in names are escaped as `\xNN` so that a name cannot forge
    /// a line.
    pub fn docker_lines(&self) -> impl Iterator<Item = String> + '_ {
        self.entries.iter().map(|entry| {
            let mut line = String::with_capacity(entry.path.len() + 2);
            line.push(entry.change.letter());
            line.push(' ');
            for c in entry.path.chars() {
                if c.is_control() {
                    let _ = write!(line, "\\x{:02x}", c as u32);
                } else {
                    line.push(c);
                }
            }
            line
        })
    }
}

/// Totals over the whole diff, whether or not its entries were all kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffSummary {
    pub added: u64,
    pub changed: u64,
    pub deleted: u64,
    /// `entries.len()`.
    pub entries_kept: u64,
    /// True when entries were left out because of `max_entries`.
    pub truncated: bool,
    /// `sha256:<hex>` of the canonical form of every entry (see the module
    /// doc): equal for equal changes, whatever `max_entries` was.
    pub tree_hash: String,
}

impl DiffSummary {
    pub fn total(&self) -> u64 {
        self.added + self.changed + self.deleted
    }
}

/// `docker diff`'s letters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Change {
    /// The path did not exist in the lower layers.
    #[serde(rename = "A")]
    Added,
    /// The path existed in the lower layers and was modified or replaced.
    #[serde(rename = "C")]
    Changed,
    /// The path existed in the lower layers and no longer exists.
    #[serde(rename = "D")]
    Deleted,
}

impl Change {
    pub fn letter(self) -> char {
        match self {
            Change::Added => 'A',
            Change::Changed => 'C',
            Change::Deleted => 'D',
        }
    }
}

/// File type of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

impl Kind {
    /// The kind of a raw `st_mode`.
    pub fn from_mode(mode: u32) -> Kind {
        match mode & libc::S_IFMT {
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            libc::S_IFIFO => Kind::Fifo,
            libc::S_IFSOCK => Kind::Socket,
            libc::S_IFCHR => Kind::CharDevice,
            libc::S_IFBLK => Kind::BlockDevice,
            _ => Kind::File,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
            Kind::CharDevice => "char_device",
            Kind::BlockDevice => "block_device",
        }
    }
}

/// Device number of a character or block device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub major: u32,
    pub minor: u32,
}

/// What the lower layers had at a changed (`C`) path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Before {
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// One changed path.
///
/// For `A` and `C` the attributes are the path's new state; for `D` they are
/// those of the entry the lower layers had (no `sha256`: deleted content is
/// not read).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffEntry {
    /// World-absolute path; bytes that are not UTF-8 are written `\xNN`.
    pub path: String,
    /// The exact path bytes, base64, present only when the path is not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_bytes: Option<String>,
    pub change: Change,
    pub kind: Kind,
    /// Permission bits, setuid/setgid/sticky included (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Regular files: size in bytes (the apparent size: a sparse file's holes count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Symlinks: the target, as `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_bytes: Option<String>,
    /// Character and block devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<Device>,
    /// Regular files of `A`/`C` entries up to `hash_max_bytes`: `sha256:<hex>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// `C` only: the content (file data, symlink target, device number,
    /// directory listing) is that of the lower entry; only metadata changed.
    pub metadata_only: bool,
    /// The first path, in path order, that shares this entry's inode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_link_bytes: Option<String>,
    /// Directories renamed with `redirect_dir=on`: where the directory was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_from_bytes: Option<String>,
    /// `C` only: the lower entry this one replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Before>,
}

impl DiffEntry {
    /// The exact path.
    pub fn path_os(&self) -> PathBuf {
        decode_name(&self.path, self.path_bytes.as_deref()).into()
    }

    /// The exact symlink target.
    pub fn target_os(&self) -> Option<PathBuf> {
        let target = self.target.as_deref()?;
        Some(decode_name(target, self.target_bytes.as_deref()).into())
    }

    /// The exact path of the first hard link.
    pub fn hard_link_os(&self) -> Option<PathBuf> {
        let link = self.hard_link.as_deref()?;
        Some(decode_name(link, self.hard_link_bytes.as_deref()).into())
    }

    /// The exact former path of a renamed directory.
    pub fn renamed_from_os(&self) -> Option<PathBuf> {
        let from = self.renamed_from.as_deref()?;
        Some(decode_name(from, self.renamed_from_bytes.as_deref()).into())
    }
}

/// A name as JSON carries it: the readable form, and the exact bytes
/// (base64) only when they are not UTF-8 — the convention every Substrate
/// record shares (`substrate_trace::bytes`).
pub fn encode_name(bytes: &[u8]) -> (String, Option<String>) {
    substrate_trace::bytes::encode_bytes(bytes)
}

/// The exact bytes of a name from its two JSON fields. A `bytes` field that
/// is not valid base64 falls back to the readable form.
pub fn decode_name(text: &str, bytes: Option<&str>) -> OsString {
    OsString::from_vec(substrate_trace::bytes::decode_bytes(text, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let (text, bytes) = encode_name(b"/etc/motd");
        assert_eq!((text.as_str(), bytes), ("/etc/motd", None));

        let raw = b"/tmp/caf\xe9-\xff\xfe.txt";
        let (text, bytes) = encode_name(raw);
        assert_eq!(text, "/tmp/caf\\xe9-\\xff\\xfe.txt");
        let decoded = decode_name(&text, bytes.as_deref());
        assert_eq!(decoded.into_vec(), raw.to_vec());
    }

    #[test]
    fn change_letters_in_json() {
        assert_eq!(serde_json::to_string(&Change::Added).unwrap(), "\"A\"");
        assert_eq!(
            serde_json::to_string(&Kind::CharDevice).unwrap(),
            "\"char_device\""
        );
    }
}
