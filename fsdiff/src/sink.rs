//! Where entries go, in path order: counted, hashed, linked, and the first
//! `max_entries` kept. Nothing here grows with the diff except the kept
//! entries and the inodes of multiply-linked files.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::model::{encode_name, Before, Change, Device, DiffEntry, DiffSummary, FsDiff, Kind};

/// One entry before it is counted: raw bytes for names, the digest unformatted.
#[derive(Debug)]
pub(super) struct Rec {
    pub change: Change,
    pub kind: Kind,
    pub path: Vec<u8>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: Option<u64>,
    pub target: Option<Vec<u8>>,
    pub device: Option<Device>,
    pub sha256: Option<[u8; 32]>,
    pub metadata_only: bool,
    pub renamed_from: Option<Vec<u8>>,
    pub before: Option<Before>,
    /// `(st_dev, st_ino)` of a non-directory with more than one link.
    pub link_key: Option<(u64, u64)>,
}

pub(super) struct Sink {
    max_entries: usize,
    entries: Vec<DiffEntry>,
    added: u64,
    changed: u64,
    deleted: u64,
    hasher: Sha256,
    /// First path of every multiply-linked inode seen so far.
    links: HashMap<(u64, u64), Vec<u8>>,
    record: Vec<u8>,
}

impl Sink {
    pub fn new(max_entries: usize) -> Self {
        Sink {
            max_entries,
            entries: Vec::new(),
            added: 0,
            changed: 0,
            deleted: 0,
            hasher: Sha256::new(),
            links: HashMap::new(),
            record: Vec::with_capacity(512),
        }
    }

    /// Takes the next entry; entries must come in path order.
    pub fn push(&mut self, rec: Rec) {
        let hard_link = rec.link_key.and_then(|key| match self.links.entry(key) {
            Entry::Occupied(first) => Some(first.get().clone()),
            Entry::Vacant(slot) => {
                slot.insert(rec.path.clone());
                None
            }
        });
        match rec.change {
            Change::Added => self.added += 1,
            Change::Changed => self.changed += 1,
            Change::Deleted => self.deleted += 1,
        }
        canonical_record(&rec, hard_link.as_deref(), &mut self.record);
        self.hasher.update(&self.record);
        if self.entries.len() < self.max_entries {
            self.entries.push(to_entry(rec, hard_link));
        }
    }

    pub fn finish(self) -> FsDiff {
        let total = self.added + self.changed + self.deleted;
        let entries_kept = self.entries.len() as u64;
        FsDiff {
            summary: DiffSummary {
                added: self.added,
                changed: self.changed,
                deleted: self.deleted,
                entries_kept,
                truncated: total > entries_kept,
                tree_hash: format!("sha256:{}", hex(&self.hasher.finalize())),
            },
            entries: self.entries,
        }
    }
}

/// The canonical form of an entry that the tree hash covers (see the module doc).
fn canonical_record(rec: &Rec, hard_link: Option<&[u8]>, out: &mut Vec<u8>) {
    out.clear();
    out.push(rec.change.letter() as u8);
    out.push(0);
    out.extend_from_slice(rec.kind.as_str().as_bytes());
    out.push(0);
    out.extend_from_slice(&rec.path);
    out.push(0);
    push_octal(out, rec.mode);
    out.push(0);
    push_decimal(out, rec.uid.into());
    out.push(0);
    push_decimal(out, rec.gid.into());
    out.push(0);
    if let Some(size) = rec.size {
        push_decimal(out, size);
    }
    out.push(0);
    out.extend_from_slice(rec.target.as_deref().unwrap_or_default());
    out.push(0);
    if let Some(dev) = rec.device {
        push_decimal(out, dev.major.into());
        out.push(b':');
        push_decimal(out, dev.minor.into());
    }
    out.push(0);
    if let Some(digest) = &rec.sha256 {
        push_hex(out, digest);
    }
    out.push(0);
    out.push(if rec.metadata_only { b'1' } else { b'0' });
    out.push(0);
    out.extend_from_slice(hard_link.unwrap_or_default());
    out.push(0);
    out.extend_from_slice(rec.renamed_from.as_deref().unwrap_or_default());
    out.push(0);
    if let Some(before) = &rec.before {
        out.extend_from_slice(before.kind.as_str().as_bytes());
        out.push(b':');
        push_octal(out, before.mode);
        out.push(b':');
        push_decimal(out, before.uid.into());
        out.push(b':');
        push_decimal(out, before.gid.into());
        out.push(b':');
        if let Some(size) = before.size {
            push_decimal(out, size);
        }
    }
    out.extend_from_slice(b"\0\n");
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn push_octal(out: &mut Vec<u8>, mut n: u32) {
    let mut digits = [0u8; 11];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n & 7) as u8;
        n >>= 3;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    for b in bytes {
        out.push(HEX_DIGITS[usize::from(b >> 4)]);
        out.push(HEX_DIGITS[usize::from(b & 0xf)]);
    }
}

fn to_entry(rec: Rec, hard_link: Option<Vec<u8>>) -> DiffEntry {
    let (path, path_bytes) = encode_name(&rec.path);
    let (target, target_bytes) = split(rec.target.as_deref());
    let (hard_link, hard_link_bytes) = split(hard_link.as_deref());
    let (renamed_from, renamed_from_bytes) = split(rec.renamed_from.as_deref());
    DiffEntry {
        path,
        path_bytes,
        change: rec.change,
        kind: rec.kind,
        mode: rec.mode,
        uid: rec.uid,
        gid: rec.gid,
        size: rec.size,
        target,
        target_bytes,
        device: rec.device,
        sha256: rec.sha256.map(|d| format!("sha256:{}", hex(&d))),
        metadata_only: rec.metadata_only,
        hard_link,
        hard_link_bytes,
        renamed_from,
        renamed_from_bytes,
        before: rec.before,
    }
}

fn split(name: Option<&[u8]>) -> (Option<String>, Option<String>) {
    match name.map(encode_name) {
        Some((text, bytes)) => (Some(text), bytes),
        None => (None, None),
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = Vec::with_capacity(bytes.len() * 2);
    push_hex(&mut out, bytes);
    // Hex digits are ASCII.
    String::from_utf8(out).unwrap_or_default()
}
