//! From what the kernel reports on the upper filesystem to what the world's
//! programs did: overlayfs's own work (copy-up, whiteouts, the work dir) is
//! taken out, and each change is named by its path inside the world.
//!
//! What overlayfs does on the upper filesystem, measured on 6.18 (ext4 and
//! tmpfs alike), and how each is translated:
//!
//! - A program creates a file, dir, symlink, node or link where nothing was:
//!   a CREATE in `upper/` (FAN_ONDIR for a dir). Reported as such, its kind
//!   from a `stat` of the new inode (through its handle).
//! - Copy-up of a regular file (the first write, truncate, chmod, chown,
//!   utimes, link or rename of a lower file): an `O_TMPFILE` in `work/work`
//!   (MODIFY and ATTRIB named `#<inode>` there), then linked into `upper/`
//!   (a CREATE with the same inode). The inode was seen in `work/` first:
//!   not a creation, nothing is reported for it; what the program then does
//!   is (MODIFY → Write, ATTRIB → Chmod...).
//! - Copy-up of a dir, symlink or node: made in `work/work` as `#<hex>`,
//!   then renamed into `upper/`. Nothing is reported for it either.
//! - A deletion of something the lower layers have (or a rename away from
//!   it): a whiteout (a char device 0:0, one inode hard-linked for all) is
//!   linked in `work/work` and renamed into `upper/` — over the upper file
//!   if there was one, or swapped with the upper dir (`RENAME_EXCHANGE`, two
//!   RENAME events) which then goes to `work/` to be emptied and removed.
//!   Reported as one Delete, or Rmdir when the swapped-out thing is a dir
//!   (or, with the lower dirs given, when the lower entry is one).
//! - Creating where a whiteout is: made in `work/work` and renamed into
//!   `upper/` — over the whiteout for a non-dir (then an ATTRIB with no name
//!   on the whiteout, its link count dropping), swapped with it for a dir
//!   (then a RENAME of the whiteout to `work/`). That second event is what
//!   tells a program's creation from a copy-up: the first is held until the
//!   same process's next event, or until the queue is read empty.
//! - A program's rename within `upper/`: one FAN_RENAME event with both
//!   names (fanotify has no cookie; FAN_RENAME is the pair, in one event).
//! - Directories made opaque, impure or redirected, and their times put
//!   back, by overlayfs: ATTRIBs on dirs in `upper/` that no program asked
//!   for. A dir's ATTRIB is therefore reported only when its mode or owner
//!   changed from what was last seen.
//! - Everything else under `work/`: overlay internals, never reported.

use std::collections::HashMap;

use super::tree::{Ancestry, DirTree, Place};
use super::wire::{EntryRole, FileHandle, InfoRecord, RawEvent};
use super::{FileChange, FileEvent};

/// The kinds of inode a `stat` can tell apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
}

/// What a `stat` says of an inode, as far as translation needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stat {
    pub(crate) kind: Kind,
    /// Permission bits (`st_mode & 0o7777`).
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) ino: u64,
    pub(crate) rdev: u64,
}

impl Stat {
    /// Overlayfs's whiteout: a char device 0:0.
    pub(crate) fn is_whiteout(&self) -> bool {
        self.kind == Kind::CharDevice && self.rdev == 0
    }
}

/// What translation asks of the filesystem.
pub(crate) trait Lookup {
    /// The inode `handle` now, or `None` if it is gone.
    fn stat(&mut self, handle: &FileHandle) -> Option<Stat>;
    /// Where the directory `dir` is now (see [`Ancestry`]).
    fn ancestry(&mut self, dir: &FileHandle) -> Option<Ancestry>;
    /// The entry at `path` (in the world) of the lower layers, if they are
    /// known and have one.
    fn lower(&mut self, path: &[u8]) -> Option<Stat>;
}

/// Inodes remembered at most; past that, all but the ones still in
/// `work/` and the whiteouts are forgotten.
const MAX_INODES: usize = 1 << 18;

/// Open-for-write states remembered at most; past that they are forgotten
/// (at worst a Write is reported twice).
const MAX_WRITES: usize = 1 << 14;

/// What is remembered of an inode of the upper filesystem.
#[derive(Clone, Debug, Default)]
struct Inode {
    /// Mode and owner as last seen, to tell a chmod from a chown from a touch.
    attrs: Option<(u32, u32, u32)>,
    /// Seen in the work dir and not (yet) in the upper dir: overlay's.
    in_work: bool,
    /// Has a name in the upper dir: a CREATE of it is a hard link.
    in_world: bool,
    whiteout: bool,
    /// A program's `O_TMPFILE` (no name yet), and whether it was written.
    anonymous: bool,
    anonymous_written: bool,
}

/// Whether a Write was reported for a (process, inode) since its last close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteState {
    /// The process created the file: its close alone is not a write.
    Created,
    Written,
}

/// Something that entered `upper/` from `work/`, waiting for the same
/// process's next event to say what it was.
#[derive(Clone, Debug)]
struct Pending {
    pid: i32,
    /// Where in the output its event goes, to keep the kernel's order when
    /// other processes' events are translated meanwhile.
    at: usize,
    path: Vec<u8>,
    arrival: Arrival,
}

#[derive(Clone, Debug)]
enum Arrival {
    /// A whiteout: a deletion; a dir swapped out right after makes it an Rmdir.
    Whiteout,
    /// Something else: a copy-up, unless a whiteout is replaced right after
    /// (then the program created it).
    Other {
        handle: Option<FileHandle>,
        is_dir: bool,
    },
}

/// What translation produced, with what it could not.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub(crate) events: Vec<FileEvent>,
    pub(crate) overflows: u32,
    pub(crate) unplaced: u32,
}

/// An event's records, sorted out.
#[derive(Default)]
struct Parts<'a> {
    entry: Option<(&'a FileHandle, &'a [u8])>,
    old: Option<(&'a FileHandle, &'a [u8])>,
    new: Option<(&'a FileHandle, &'a [u8])>,
    object: Option<&'a FileHandle>,
}

impl<'a> Parts<'a> {
    fn of(event: &'a RawEvent) -> Self {
        let mut parts = Parts::default();
        for record in &event.records {
            match record {
                InfoRecord::Object { handle, .. } => parts.object = Some(handle),
                InfoRecord::DirEntry {
                    role, dir, name, ..
                } => {
                    let entry = Some((dir, name.as_slice()));
                    match role {
                        EntryRole::Entry => parts.entry = entry,
                        EntryRole::Old => parts.old = entry,
                        EntryRole::New => parts.new = entry,
                    }
                }
                InfoRecord::Dir { dir, .. } => parts.entry = Some((dir, b".")),
                InfoRecord::Pidfd(_) | InfoRecord::Other { .. } => {}
            }
        }
        // An event on a directory itself names it "." in itself.
        if let Some((dir, b".")) = parts.entry {
            parts.object = parts.object.or(Some(dir));
        }
        parts
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if name == b"." {
        return dir.to_vec();
    }
    let mut path = dir.to_vec();
    if path.last() != Some(&b'/') {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

/// `#<decimal>`: the name the kernel gives an `O_TMPFILE`'s dentry.
fn tmpfile_number(name: &[u8]) -> Option<u64> {
    let digits = name.strip_prefix(b"#")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

fn creation(stat: Option<Stat>, is_dir: bool) -> FileChange {
    match stat.map(|s| s.kind) {
        _ if is_dir => FileChange::Mkdir,
        Some(Kind::Dir) => FileChange::Mkdir,
        Some(Kind::Symlink) => FileChange::Symlink,
        Some(Kind::Fifo | Kind::Socket | Kind::CharDevice | Kind::BlockDevice) => FileChange::Mknod,
        Some(Kind::File) | None => FileChange::Create,
    }
}

/// The translation's state: see the module doc.
#[derive(Debug)]
pub(crate) struct Translator {
    tree: DirTree,
    inodes: HashMap<FileHandle, Inode>,
    writes: HashMap<(i32, FileHandle), WriteState>,
    /// At most one per process.
    pending: Vec<Pending>,
}

impl Translator {
    pub(crate) fn new(tree: DirTree) -> Self {
        Translator {
            tree,
            inodes: HashMap::new(),
            writes: HashMap::new(),
            pending: Vec::new(),
        }
    }

    /// Remembers what `handle` looks like now, as the base its next ATTRIB
    /// is compared with.
    pub(crate) fn note_attrs(&mut self, handle: &FileHandle, stat: Stat) {
        self.inode(handle).attrs = Some((stat.mode, stat.uid, stat.gid));
    }

    fn inode(&mut self, handle: &FileHandle) -> &mut Inode {
        if self.inodes.len() >= MAX_INODES && !self.inodes.contains_key(handle) {
            self.inodes.retain(|_, i| i.in_work || i.whiteout);
        }
        self.inodes.entry(handle.clone()).or_default()
    }

    fn place(&mut self, dir: &FileHandle, lookup: &mut dyn Lookup) -> Place {
        self.tree.place(dir, &mut |d| lookup.ancestry(d))
    }

    fn is_whiteout(&mut self, handle: &FileHandle, lookup: &mut dyn Lookup) -> bool {
        if self.inodes.get(handle).is_some_and(|i| i.whiteout) {
            return true;
        }
        let whiteout = lookup.stat(handle).is_some_and(|s| s.is_whiteout());
        if whiteout {
            self.inode(handle).whiteout = true;
        }
        whiteout
    }

    fn emit(out: &mut Output, pid: i32, op: FileChange, path: Vec<u8>, is_dir: bool) {
        out.events.push(FileEvent {
            pid,
            op,
            path,
            new_path: None,
            is_dir,
        });
    }

    /// Translates one event.
    pub(crate) fn event(&mut self, event: &RawEvent, lookup: &mut dyn Lookup, out: &mut Output) {
        if event.mask & libc::FAN_Q_OVERFLOW != 0 {
            out.overflows += 1;
            // A close may be among the lost: report writes again rather
            // than miss one.
            self.writes.clear();
            self.flush_all(lookup, out);
            return;
        }
        let parts = Parts::of(event);
        if self.resolve_pending(event, &parts, lookup, out) {
            return;
        }
        if event.mask & libc::FAN_RENAME != 0 {
            self.rename(event, &parts, lookup, out);
            return;
        }
        let Some((dir, name)) = parts.entry else {
            // No name: link-count changes (ATTRIB) and events on inodes
            // without a parent. What they mean was said by named events.
            return;
        };
        let is_dir = event.mask & libc::FAN_ONDIR != 0;
        let path = match self.place(dir, lookup) {
            Place::Upper(dir_path) => join(&dir_path, name),
            Place::Work => {
                self.in_work(event, &parts, is_dir);
                return;
            }
            Place::Elsewhere => return,
            Place::Unknown => {
                out.unplaced += 1;
                return;
            }
        };
        let change = Change {
            pid: event.pid,
            dir,
            name,
            object: parts.object,
            path,
            is_dir,
        };
        // The kernel merges events on the same entry by the same process;
        // each bit is taken in the order a program does these things.
        let mask = event.mask;
        if mask & libc::FAN_CREATE != 0 {
            self.created(&change, lookup, out);
        }
        if mask & libc::FAN_MODIFY != 0 {
            self.modified(&change, lookup, out);
        }
        if mask & libc::FAN_CLOSE_WRITE != 0 {
            self.closed(&change, lookup, out);
        }
        if mask & libc::FAN_ATTRIB != 0 {
            self.attrib(&change, lookup, out);
        }
        if mask & libc::FAN_OPEN_EXEC != 0 {
            Self::emit(
                out,
                change.pid,
                FileChange::ExecOpen,
                change.path.clone(),
                is_dir,
            );
        }
        if mask & libc::FAN_DELETE != 0 {
            self.deleted(&change, lookup, out);
        }
    }

    /// The queue was read empty: nothing more will come to complete what
    /// is pending.
    pub(crate) fn drained(&mut self, lookup: &mut dyn Lookup, out: &mut Output) {
        self.flush_all(lookup, out);
    }

    /// The caller stops reading with events still queued: what is pending
    /// goes first in the next output.
    pub(crate) fn carry_over(&mut self) {
        for pending in &mut self.pending {
            pending.at = 0;
        }
    }

    fn flush_all(&mut self, lookup: &mut dyn Lookup, out: &mut Output) {
        // Last first: inserting one does not move where the earlier go.
        self.pending.sort_by_key(|p| p.at);
        while let Some(pending) = self.pending.pop() {
            self.settle(pending, lookup, out);
        }
    }

    /// Puts the event of `pending` where it belongs in `out`.
    fn emit_pending(&mut self, out: &mut Output, pending: &Pending, op: FileChange, is_dir: bool) {
        let at = pending.at.min(out.events.len());
        out.events.insert(
            at,
            FileEvent {
                pid: pending.pid,
                op,
                path: pending.path.clone(),
                new_path: None,
                is_dir,
            },
        );
        // Those registered at the same place went there before this one
        // (settled last first) or after it (pending still): stay put.
        for other in &mut self.pending {
            if other.at > at {
                other.at += 1;
            }
        }
    }

    /// A pending entry whose partner did not come.
    fn settle(&mut self, pending: Pending, lookup: &mut dyn Lookup, out: &mut Output) {
        match &pending.arrival {
            Arrival::Whiteout => {
                // Nothing of the upper layer was swapped out: what was
                // deleted lived in the lower layers only.
                let is_dir = lookup
                    .lower(&pending.path)
                    .is_some_and(|s| s.kind == Kind::Dir);
                let op = if is_dir {
                    FileChange::Rmdir
                } else {
                    FileChange::Delete
                };
                self.emit_pending(out, &pending, op, is_dir);
            }
            Arrival::Other { handle, .. } => {
                // A copy-up: the world had this already.
                if let Some(handle) = handle {
                    self.copied_up(handle, &pending.path, lookup);
                }
            }
        }
    }

    fn copied_up(&mut self, handle: &FileHandle, path: &[u8], lookup: &mut dyn Lookup) {
        // The lower entry is what the file looked like before the program
        // touched it; the copy may already carry its chmod.
        let before = lookup.lower(path).or_else(|| lookup.stat(handle));
        let inode = self.inode(handle);
        inode.in_work = false;
        inode.in_world = true;
        if let Some(stat) = before {
            inode.attrs = Some((stat.mode, stat.uid, stat.gid));
        }
    }

    /// Whether `event` completes what its process has pending (and is then
    /// consumed); otherwise the pending entry is settled first.
    fn resolve_pending(
        &mut self,
        event: &RawEvent,
        parts: &Parts<'_>,
        lookup: &mut dyn Lookup,
        out: &mut Output,
    ) -> bool {
        let Some(index) = self.pending.iter().position(|p| p.pid == event.pid) else {
            return false;
        };
        let pending = self.pending.swap_remove(index);
        let path = &pending.path;
        let is_dir = event.mask & libc::FAN_ONDIR != 0;
        match &pending.arrival {
            Arrival::Whiteout => {
                // The upper dir at `path`, swapped out to be emptied.
                if is_dir && self.leaves_for_work(event, parts, path, lookup) {
                    self.emit_pending(out, &pending, FileChange::Rmdir, true);
                    self.rename(event, parts, lookup, out);
                    return true;
                }
            }
            Arrival::Other {
                handle,
                is_dir: true,
            } => {
                // The whiteout at `path`, swapped out: a program's mkdir.
                let whiteout_left = !is_dir
                    && self.leaves_for_work(event, parts, path, lookup)
                    && parts.object.is_some_and(|o| self.is_whiteout(o, lookup));
                if whiteout_left {
                    self.emit_pending(out, &pending, FileChange::Mkdir, true);
                    if let Some(handle) = handle {
                        if let Some(stat) = lookup.stat(handle) {
                            self.note_attrs(handle, stat);
                        }
                        self.inode(handle).in_world = true;
                    }
                    self.rename(event, parts, lookup, out);
                    return true;
                }
            }
            Arrival::Other {
                handle,
                is_dir: false,
            } => {
                // The whiteout at `path`, overwritten (its link count
                // drops: an ATTRIB with no name): a program's creation.
                let overwritten = parts.object.filter(|o| Some(*o) != handle.as_ref());
                let whiteout_replaced = event.mask & libc::FAN_ATTRIB != 0
                    && parts.entry.is_none()
                    && event.mask & libc::FAN_RENAME == 0
                    && overwritten
                        .is_some_and(|o| self.is_whiteout(o, lookup) || lookup.stat(o).is_none());
                if whiteout_replaced {
                    let stat = handle.as_ref().and_then(|h| lookup.stat(h));
                    let op = creation(stat, false);
                    self.emit_pending(out, &pending, op.clone(), false);
                    if let Some(handle) = handle {
                        let inode = self.inode(handle);
                        inode.in_work = false;
                        inode.in_world = true;
                        if let Some(stat) = stat {
                            inode.attrs = Some((stat.mode, stat.uid, stat.gid));
                        }
                        if op == FileChange::Create {
                            self.note_write(pending.pid, handle, WriteState::Created);
                        }
                    }
                    return true;
                }
            }
        }
        self.settle(pending, lookup, out);
        false
    }

    /// Whether `event` renames `path` of the upper dir into the work dir.
    fn leaves_for_work(
        &mut self,
        event: &RawEvent,
        parts: &Parts<'_>,
        path: &[u8],
        lookup: &mut dyn Lookup,
    ) -> bool {
        if event.mask & libc::FAN_RENAME == 0 {
            return false;
        }
        let (Some((old_dir, old_name)), Some((new_dir, _))) = (parts.old, parts.new) else {
            return false;
        };
        let from = match self.place(old_dir, lookup) {
            Place::Upper(dir) => join(&dir, old_name),
            _ => return false,
        };
        from == path && self.place(new_dir, lookup) == Place::Work
    }

    fn note_write(&mut self, pid: i32, handle: &FileHandle, state: WriteState) {
        if self.writes.len() >= MAX_WRITES {
            self.writes.clear();
        }
        self.writes.insert((pid, handle.clone()), state);
    }

    /// An event in the work dir: overlay's, remembered so that what comes
    /// out of it is not taken for a program's doing.
    fn in_work(&mut self, event: &RawEvent, parts: &Parts<'_>, is_dir: bool) {
        let (Some((dir, name)), Some(object)) = (parts.entry, parts.object) else {
            return;
        };
        if name == b"." {
            return;
        }
        if is_dir {
            if event.mask & libc::FAN_DELETE != 0 {
                self.tree.remove(object);
            } else if event.mask & libc::FAN_CREATE != 0 {
                self.tree.set(object, dir, name);
            }
            return;
        }
        if event.mask & libc::FAN_DELETE != 0 {
            // Removed from work: a cleaned-up temp or a swapped-out file.
            // The shared whiteout keeps its other names; it is stat'ed again
            // when met.
            self.inodes.remove(object);
            return;
        }
        // A copy-up's tmpfile is closed in work after it was linked into
        // upper: that late event does not make it overlay's again.
        let inode = self.inode(object);
        if !inode.in_world {
            inode.in_work = true;
        }
    }

    fn created(&mut self, c: &Change<'_>, lookup: &mut dyn Lookup, out: &mut Output) {
        let Some(handle) = c.object else {
            Self::emit(
                out,
                c.pid,
                creation(None, c.is_dir),
                c.path.clone(),
                c.is_dir,
            );
            return;
        };
        if c.is_dir {
            self.tree.set(handle, c.dir, c.name);
            if let Some(stat) = lookup.stat(handle) {
                self.note_attrs(handle, stat);
            }
            self.inode(handle).in_world = true;
            Self::emit(out, c.pid, FileChange::Mkdir, c.path.clone(), true);
            return;
        }
        let known = self.inodes.get(handle).cloned().unwrap_or_default();
        if known.in_work {
            // Overlay's copy-up, its tmpfile linked in: not a creation.
            self.copied_up(handle, &c.path, lookup);
            return;
        }
        if known.anonymous {
            // A program's O_TMPFILE given a name: the file appears now,
            // with what was written to it.
            let inode = self.inode(handle);
            inode.anonymous = false;
            inode.in_world = true;
            Self::emit(out, c.pid, FileChange::Create, c.path.clone(), false);
            if known.anonymous_written {
                Self::emit(out, c.pid, FileChange::Write, c.path.clone(), false);
            }
            return;
        }
        let stat = lookup.stat(handle);
        if stat.is_some_and(|s| s.is_whiteout()) {
            // A whiteout made in place: a deletion.
            self.inode(handle).whiteout = true;
            let is_dir = lookup.lower(&c.path).is_some_and(|s| s.kind == Kind::Dir);
            let op = if is_dir {
                FileChange::Rmdir
            } else {
                FileChange::Delete
            };
            Self::emit(out, c.pid, op, c.path.clone(), is_dir);
            return;
        }
        let op = if known.in_world {
            FileChange::Link
        } else {
            creation(stat, false)
        };
        let inode = self.inode(handle);
        inode.in_world = true;
        if let Some(stat) = stat {
            inode.attrs = Some((stat.mode, stat.uid, stat.gid));
        }
        if op == FileChange::Create {
            self.note_write(c.pid, handle, WriteState::Created);
        }
        Self::emit(out, c.pid, op, c.path.clone(), false);
    }

    /// Whether the entry is a program's `O_TMPFILE` (named `#<inode>` by the
    /// kernel, not linked anywhere yet): its writes are reported when it is
    /// linked, as part of its creation.
    fn anonymous(&mut self, c: &Change<'_>, lookup: &mut dyn Lookup) -> bool {
        let Some(handle) = c.object else {
            return false;
        };
        if let Some(inode) = self.inodes.get(handle) {
            if inode.anonymous || inode.in_world {
                return inode.anonymous;
            }
        }
        let Some(number) = tmpfile_number(c.name) else {
            return false;
        };
        let anonymous = lookup.stat(handle).is_none_or(|s| s.ino == number);
        if anonymous {
            self.inode(handle).anonymous = true;
        }
        anonymous
    }

    fn modified(&mut self, c: &Change<'_>, lookup: &mut dyn Lookup, out: &mut Output) {
        let Some(handle) = c.object else {
            Self::emit(out, c.pid, FileChange::Write, c.path.clone(), c.is_dir);
            return;
        };
        if self.anonymous(c, lookup) {
            self.inode(handle).anonymous_written = true;
            return;
        }
        if self.writes.get(&(c.pid, handle.clone())) != Some(&WriteState::Written) {
            self.note_write(c.pid, handle, WriteState::Written);
            Self::emit(out, c.pid, FileChange::Write, c.path.clone(), c.is_dir);
        }
    }

    /// A close of a file opened for writing: a Write if none was reported
    /// since the last close (writes through `mmap` make no MODIFY), unless
    /// the process created the file and wrote nothing.
    fn closed(&mut self, c: &Change<'_>, lookup: &mut dyn Lookup, out: &mut Output) {
        let Some(handle) = c.object else {
            return;
        };
        if self.anonymous(c, lookup) {
            return;
        }
        if self.writes.remove(&(c.pid, handle.clone())).is_none() {
            Self::emit(out, c.pid, FileChange::Write, c.path.clone(), c.is_dir);
        }
    }

    fn attrib(&mut self, c: &Change<'_>, lookup: &mut dyn Lookup, out: &mut Output) {
        let Some(handle) = c.object else {
            if !c.is_dir {
                Self::emit(out, c.pid, FileChange::Metadata, c.path.clone(), false);
            }
            return;
        };
        if self.anonymous(c, lookup) {
            return;
        }
        let before = self.inodes.get(handle).and_then(|i| i.attrs);
        let Some(now) = lookup.stat(handle) else {
            if !c.is_dir {
                Self::emit(out, c.pid, FileChange::Metadata, c.path.clone(), false);
            }
            return;
        };
        self.note_attrs(handle, now);
        let mut told = false;
        if let Some((mode, uid, gid)) = before {
            if (uid, gid) != (now.uid, now.gid) {
                let op = FileChange::Chown {
                    uid: now.uid,
                    gid: now.gid,
                };
                Self::emit(out, c.pid, op, c.path.clone(), c.is_dir);
                told = true;
            }
            if mode != now.mode {
                let op = FileChange::Chmod { mode: now.mode };
                Self::emit(out, c.pid, op, c.path.clone(), c.is_dir);
                told = true;
            }
        }
        // Times, xattrs, or a change not seen in time. On a dir, overlay's
        // own xattrs and times look the same: not reported.
        if !told && !c.is_dir {
            Self::emit(out, c.pid, FileChange::Metadata, c.path.clone(), false);
        }
    }

    fn deleted(&mut self, c: &Change<'_>, lookup: &mut dyn Lookup, out: &mut Output) {
        if let Some(handle) = c.object {
            if c.is_dir {
                self.tree.remove(handle);
            } else if self.is_whiteout(handle, lookup) {
                // Overlay cleaning up a whiteout it had swapped in.
                return;
            }
            self.inodes.remove(handle);
        }
        let op = if c.is_dir {
            FileChange::Rmdir
        } else {
            FileChange::Delete
        };
        Self::emit(out, c.pid, op, c.path.clone(), c.is_dir);
    }

    fn rename(
        &mut self,
        event: &RawEvent,
        parts: &Parts<'_>,
        lookup: &mut dyn Lookup,
        out: &mut Output,
    ) {
        let (Some((old_dir, old_name)), Some((new_dir, new_name))) = (parts.old, parts.new) else {
            return;
        };
        let is_dir = event.mask & libc::FAN_ONDIR != 0;
        let pid = event.pid;
        let from = self.place(old_dir, lookup);
        let to = self.place(new_dir, lookup);
        if let (true, Some(handle)) = (is_dir, parts.object) {
            self.tree.set(handle, new_dir, new_name);
        }
        match (from, to) {
            (Place::Upper(a), Place::Upper(b)) => {
                let whiteout = !is_dir && parts.object.is_some_and(|o| self.is_whiteout(o, lookup));
                if whiteout {
                    return; // swapped by overlay in a rename over a deleted name
                }
                out.events.push(FileEvent {
                    pid,
                    op: FileChange::Rename,
                    path: join(&a, old_name),
                    new_path: Some(join(&b, new_name)),
                    is_dir,
                });
            }
            (Place::Work, Place::Upper(b)) => {
                let path = join(&b, new_name);
                let whiteout = !is_dir && parts.object.is_some_and(|o| self.is_whiteout(o, lookup));
                if let Some(object) = parts.object {
                    if let Some(inode) = self.inodes.get_mut(object) {
                        inode.in_work = false;
                    }
                }
                let arrival = if whiteout {
                    Arrival::Whiteout
                } else {
                    Arrival::Other {
                        handle: parts.object.cloned(),
                        is_dir,
                    }
                };
                self.pending.push(Pending {
                    pid,
                    at: out.events.len(),
                    path,
                    arrival,
                });
            }
            (Place::Upper(_), Place::Work) => {
                if let (false, Some(object)) = (is_dir, parts.object) {
                    self.inode(object).in_work = true;
                }
            }
            // Moved in or out by someone outside the world (the host).
            (Place::Elsewhere, Place::Upper(b)) => {
                let path = join(&b, new_name);
                let stat = parts.object.and_then(|o| lookup.stat(o));
                Self::emit(out, pid, creation(stat, is_dir), path, is_dir);
            }
            (Place::Upper(a), Place::Elsewhere) => {
                let op = if is_dir {
                    FileChange::Rmdir
                } else {
                    FileChange::Delete
                };
                Self::emit(out, pid, op, join(&a, old_name), is_dir);
            }
            (Place::Unknown, _) | (_, Place::Unknown) => out.unplaced += 1,
            _ => {}
        }
    }
}

/// A named event in the upper dir, placed.
struct Change<'a> {
    pid: i32,
    dir: &'a FileHandle,
    name: &'a [u8],
    object: Option<&'a FileHandle>,
    /// The entry's path in the world (the dir's own for `"."`).
    path: Vec<u8>,
    is_dir: bool,
}

#[cfg(test)]
mod tests {
    //! The event sequences measured on 6.18 (see the module doc), replayed
    //! against a filesystem whose answers are given.

    use super::*;

    fn h(n: u8) -> FileHandle {
        FileHandle {
            handle_type: 1,
            bytes: vec![n; 8],
        }
    }

    const LAYER: u8 = 1;
    const UPPER: u8 = 2;
    const WORK: u8 = 3;
    const WORK_WORK: u8 = 4;
    const WHITEOUT: u8 = 5;
    const PID: i32 = 700;

    #[derive(Default)]
    struct Fs {
        stats: HashMap<FileHandle, Stat>,
        lowers: HashMap<Vec<u8>, Stat>,
    }

    impl Lookup for Fs {
        fn stat(&mut self, handle: &FileHandle) -> Option<Stat> {
            self.stats.get(handle).copied()
        }
        fn ancestry(&mut self, dir: &FileHandle) -> Option<Ancestry> {
            (*dir == h(WORK_WORK)).then(|| {
                vec![
                    (h(WORK), b"work".to_vec()),
                    (h(WORK_WORK), b"work".to_vec()),
                ]
            })
        }
        fn lower(&mut self, path: &[u8]) -> Option<Stat> {
            self.lowers.get(path).copied()
        }
    }

    fn stat(kind: Kind, mode: u32) -> Stat {
        Stat {
            kind,
            mode,
            uid: 0,
            gid: 0,
            ino: 99,
            rdev: 0,
        }
    }

    fn fs() -> Fs {
        let mut fs = Fs::default();
        fs.stats.insert(h(WHITEOUT), stat(Kind::CharDevice, 0));
        fs
    }

    fn entry(dir: u8, name: &str) -> InfoRecord {
        InfoRecord::DirEntry {
            role: EntryRole::Entry,
            fsid: [0; 8],
            dir: h(dir),
            name: name.as_bytes().to_vec(),
        }
    }

    fn moved(role: EntryRole, dir: u8, name: &str) -> InfoRecord {
        InfoRecord::DirEntry {
            role,
            fsid: [0; 8],
            dir: h(dir),
            name: name.as_bytes().to_vec(),
        }
    }

    fn object(n: u8) -> InfoRecord {
        InfoRecord::Object {
            fsid: [0; 8],
            handle: h(n),
        }
    }

    fn ev(mask: u64, records: Vec<InfoRecord>) -> RawEvent {
        RawEvent {
            mask,
            fd: -1,
            pid: PID,
            records,
        }
    }

    fn rename(mask: u64, from: (u8, &str), to: (u8, &str), obj: u8) -> RawEvent {
        ev(
            libc::FAN_RENAME | mask,
            vec![
                moved(EntryRole::Old, from.0, from.1),
                moved(EntryRole::New, to.0, to.1),
                object(obj),
            ],
        )
    }

    fn run(fs: &mut Fs, events: &[RawEvent]) -> Vec<(FileChange, String, Option<String>)> {
        let tree = DirTree::new(h(LAYER), h(UPPER), h(WORK));
        let mut t = Translator::new(tree);
        let mut out = Output::default();
        for e in events {
            t.event(e, fs, &mut out);
        }
        t.drained(fs, &mut out);
        assert_eq!(out.unplaced, 0);
        out.events
            .into_iter()
            .map(|e| {
                assert_eq!(e.pid, PID);
                (
                    e.op,
                    String::from_utf8(e.path).unwrap(),
                    e.new_path.map(|p| String::from_utf8(p).unwrap()),
                )
            })
            .collect()
    }

    fn op(change: FileChange, path: &str) -> (FileChange, String, Option<String>) {
        (change, path.to_owned(), None)
    }

    const ONDIR: u64 = libc::FAN_ONDIR;

    /// `echo more >> a.txt` with a.txt in the lower layer (ext4, 6.18).
    #[test]
    fn a_copy_up_then_append_is_one_write() {
        let mut fs = fs();
        fs.stats.insert(h(18), stat(Kind::File, 0o644));
        let events = [
            ev(libc::FAN_ATTRIB | ONDIR, vec![entry(UPPER, ".")]),
            ev(
                libc::FAN_MODIFY | libc::FAN_ATTRIB,
                vec![entry(WORK_WORK, "#18"), object(18)],
            ),
            ev(libc::FAN_ATTRIB, vec![object(18)]),
            ev(libc::FAN_CREATE, vec![entry(UPPER, "a.txt"), object(18)]),
            ev(libc::FAN_ATTRIB | ONDIR, vec![entry(UPPER, ".")]),
            ev(
                libc::FAN_CLOSE_WRITE,
                vec![entry(WORK_WORK, "#18"), object(18)],
            ),
            ev(
                libc::FAN_MODIFY | libc::FAN_CLOSE_WRITE,
                vec![entry(UPPER, "a.txt"), object(18)],
            ),
        ];
        assert_eq!(run(&mut fs, &events), [op(FileChange::Write, "/a.txt")]);
    }

    /// `rm del.txt` (lower only), then `echo z > del.txt`.
    #[test]
    fn a_whiteout_is_a_delete_and_a_creation_over_it_a_create() {
        let mut fs = fs();
        fs.stats.insert(h(27), stat(Kind::File, 0o644));
        let events = [
            ev(
                libc::FAN_CREATE,
                vec![entry(WORK_WORK, "#102de"), object(WHITEOUT)],
            ),
            ev(
                libc::FAN_CREATE,
                vec![entry(WORK_WORK, "#102df"), object(WHITEOUT)],
            ),
            rename(0, (WORK_WORK, "#102df"), (UPPER, "del.txt"), WHITEOUT),
            ev(
                libc::FAN_CREATE,
                vec![entry(WORK_WORK, "#102da"), object(27)],
            ),
            rename(0, (WORK_WORK, "#102da"), (UPPER, "del.txt"), 27),
            ev(libc::FAN_ATTRIB, vec![object(WHITEOUT)]),
            ev(libc::FAN_MODIFY, vec![entry(UPPER, "del.txt"), object(27)]),
            ev(
                libc::FAN_CLOSE_WRITE,
                vec![entry(UPPER, "del.txt"), object(27)],
            ),
        ];
        assert_eq!(
            run(&mut fs, &events),
            [
                op(FileChange::Delete, "/del.txt"),
                op(FileChange::Create, "/del.txt"),
                op(FileChange::Write, "/del.txt"),
            ]
        );
    }

    /// `rm -r ldir` with ldir/x in the lower layer, then `mkdir ldir`.
    #[test]
    fn removing_a_lower_tree_and_making_the_dir_again() {
        let mut fs = fs();
        fs.stats.insert(h(30), stat(Kind::Dir, 0o755));
        fs.stats.insert(h(31), stat(Kind::Dir, 0o755));
        fs.stats.insert(h(32), stat(Kind::Dir, 0o755));
        let events = [
            // copy-up of ldir
            ev(
                libc::FAN_CREATE | ONDIR,
                vec![entry(WORK_WORK, "#102d6"), object(30)],
            ),
            ev(libc::FAN_ATTRIB | ONDIR, vec![entry(30, ".")]),
            rename(ONDIR, (WORK_WORK, "#102d6"), (UPPER, "ldir"), 30),
            ev(libc::FAN_ATTRIB | ONDIR, vec![entry(UPPER, ".")]),
            // whiteout of x
            ev(libc::FAN_ATTRIB, vec![object(WHITEOUT)]),
            ev(
                libc::FAN_CREATE,
                vec![entry(WORK_WORK, "#102d7"), object(WHITEOUT)],
            ),
            rename(0, (WORK_WORK, "#102d7"), (30, "x"), WHITEOUT),
            // a fresh opaque ldir swapped with the old one, emptied in work
            ev(
                libc::FAN_CREATE | ONDIR,
                vec![entry(WORK_WORK, "#102d8"), object(31)],
            ),
            ev(libc::FAN_ATTRIB | ONDIR, vec![entry(31, ".")]),
            rename(ONDIR, (WORK_WORK, "#102d8"), (UPPER, "ldir"), 31),
            rename(ONDIR, (UPPER, "ldir"), (WORK_WORK, "#102d8"), 30),
            ev(libc::FAN_DELETE, vec![entry(30, "x"), object(WHITEOUT)]),
            ev(
                libc::FAN_DELETE | ONDIR,
                vec![entry(WORK_WORK, "#102d8"), object(30)],
            ),
            // the whiteout of ldir, swapped with the opaque one
            ev(
                libc::FAN_CREATE,
                vec![entry(WORK_WORK, "#102d9"), object(WHITEOUT)],
            ),
            rename(0, (WORK_WORK, "#102d9"), (UPPER, "ldir"), WHITEOUT),
            rename(ONDIR, (UPPER, "ldir"), (WORK_WORK, "#102d9"), 31),
            ev(
                libc::FAN_DELETE | ONDIR,
                vec![entry(WORK_WORK, "#102d9"), object(31)],
            ),
            // mkdir ldir: made in work, swapped with the whiteout
            ev(
                libc::FAN_CREATE | ONDIR,
                vec![entry(WORK_WORK, "#102db"), object(32)],
            ),
            ev(libc::FAN_ATTRIB | ONDIR, vec![entry(32, ".")]),
            rename(ONDIR, (WORK_WORK, "#102db"), (UPPER, "ldir"), 32),
            rename(0, (UPPER, "ldir"), (WORK_WORK, "#102db"), WHITEOUT),
            ev(libc::FAN_ATTRIB, vec![object(WHITEOUT)]),
            ev(
                libc::FAN_DELETE,
                vec![entry(WORK_WORK, "#102db"), object(WHITEOUT)],
            ),
        ];
        assert_eq!(
            run(&mut fs, &events),
            [
                op(FileChange::Delete, "/ldir/x"),
                op(FileChange::Rmdir, "/ldir"),
                op(FileChange::Mkdir, "/ldir"),
            ]
        );
    }

    /// `rmdir edir`, an empty dir of the lower layer only: the whiteout has
    /// no partner; the lower layer says it was a dir.
    #[test]
    fn a_lone_whiteout_over_a_lower_dir_is_an_rmdir() {
        let mut fs = fs();
        fs.lowers.insert(b"/edir".to_vec(), stat(Kind::Dir, 0o755));
        let events = [
            ev(
                libc::FAN_CREATE,
                vec![entry(WORK_WORK, "#102e9"), object(WHITEOUT)],
            ),
            rename(0, (WORK_WORK, "#102e9"), (UPPER, "edir"), WHITEOUT),
        ];
        assert_eq!(run(&mut fs, &events), [op(FileChange::Rmdir, "/edir")]);
    }

    /// The kernel merged the events of a quick create, write, delete.
    #[test]
    fn merged_create_and_delete_are_both_reported() {
        let mut fs = fs();
        let events = [ev(
            libc::FAN_CREATE | libc::FAN_MODIFY | libc::FAN_CLOSE_WRITE | libc::FAN_DELETE,
            vec![entry(UPPER, "gone"), object(40)],
        )];
        assert_eq!(
            run(&mut fs, &events),
            [
                op(FileChange::Create, "/gone"),
                op(FileChange::Write, "/gone"),
                op(FileChange::Delete, "/gone"),
            ]
        );
    }

    #[test]
    fn writes_are_coalesced_until_the_close() {
        let mut fs = fs();
        fs.stats.insert(h(41), stat(Kind::File, 0o644));
        let write = || ev(libc::FAN_MODIFY, vec![entry(UPPER, "big"), object(41)]);
        let close = ev(libc::FAN_CLOSE_WRITE, vec![entry(UPPER, "big"), object(41)]);
        let events = [write(), write(), write(), close.clone(), write(), close];
        assert_eq!(
            run(&mut fs, &events),
            [op(FileChange::Write, "/big"), op(FileChange::Write, "/big")]
        );
    }

    /// A chmod of a lower file: copy-up, then the chmod, in one call; the
    /// lower layer gives the mode before.
    #[test]
    fn a_chmod_after_a_copy_up_is_a_chmod() {
        let mut fs = fs();
        fs.stats.insert(h(23), stat(Kind::File, 0o600));
        fs.lowers
            .insert(b"/dir/b.txt".to_vec(), stat(Kind::File, 0o644));
        let events = [
            ev(
                libc::FAN_CREATE | ONDIR,
                vec![entry(WORK_WORK, "#1"), object(50)],
            ),
            rename(ONDIR, (WORK_WORK, "#1"), (UPPER, "dir"), 50),
            ev(
                libc::FAN_MODIFY | libc::FAN_ATTRIB,
                vec![entry(WORK_WORK, "#23"), object(23)],
            ),
            ev(
                libc::FAN_ATTRIB | libc::FAN_CREATE,
                vec![entry(50, "b.txt"), object(23)],
            ),
        ];
        assert_eq!(
            run(&mut fs, &events),
            [op(FileChange::Chmod { mode: 0o600 }, "/dir/b.txt")]
        );
    }

    #[test]
    fn a_rename_in_the_upper_dir_is_one_rename() {
        let mut fs = fs();
        let events = [rename(0, (UPPER, "n1"), (UPPER, "n2"), 60)];
        assert_eq!(
            run(&mut fs, &events),
            [(FileChange::Rename, "/n1".to_owned(), Some("/n2".to_owned()))]
        );
    }

    /// A program's `O_TMPFILE`, written, then linked as `linked`.
    #[test]
    fn a_linked_tmpfile_is_a_create_with_its_write() {
        let mut fs = fs();
        fs.stats.insert(
            h(14),
            Stat {
                ino: 14,
                ..stat(Kind::File, 0o644)
            },
        );
        let events = [
            ev(
                libc::FAN_MODIFY | libc::FAN_CLOSE_WRITE,
                vec![entry(UPPER, "#14"), object(14)],
            ),
            ev(libc::FAN_ATTRIB, vec![object(14)]),
            ev(libc::FAN_CREATE, vec![entry(UPPER, "linked"), object(14)]),
        ];
        assert_eq!(
            run(&mut fs, &events),
            [
                op(FileChange::Create, "/linked"),
                op(FileChange::Write, "/linked")
            ]
        );
    }
}
