//! Where each directory of the upper filesystem is, kept from the events
//! themselves: a directory's parent handle and name, updated as the events
//! that create, rename and remove directories are translated, so that an
//! event is placed where its directory was when it happened, not where it
//! is when the event is read. Overlayfs moves directories between `work/`
//! and `upper/` (and swaps two with `RENAME_EXCHANGE`) in one system call;
//! a path cache would lose track, parent links do not.
//!
//! A directory the tree has not met (made before the watch began, or whose
//! making went unread) is asked of the kernel once, as it is at that
//! moment, with its ancestors.

use std::collections::HashMap;

use super::wire::FileHandle;

/// Deeper than any real tree; a walk this long is a cycle (which only a
/// lost event could make) and places nothing.
const MAX_DEPTH: usize = 4096;

/// Directories kept at most; past that all but the roots are forgotten and
/// asked of the kernel again when met.
const MAX_DIRS: usize = 1 << 18;

/// Where an event's directory is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// In the upper dir: the path inside the world, `/`-rooted.
    Upper(Vec<u8>),
    /// In the overlay's work dir: overlay internals.
    Work,
    /// Elsewhere on the upper filesystem (its root, `lost+found`): not
    /// seen by the world.
    Elsewhere,
    /// Gone before it could be placed.
    Unknown,
}

#[derive(Clone, Debug)]
enum Node {
    /// The upper filesystem's root.
    Layer,
    Upper,
    Work,
    Child {
        parent: FileHandle,
        name: Vec<u8>,
    },
}

enum Walk {
    Placed(Place),
    Missing(FileHandle),
}

/// A directory's ancestry as the kernel reports it now: `(handle, name)`
/// from the filesystem root's child down to the directory.
pub(crate) type Ancestry = Vec<(FileHandle, Vec<u8>)>;

#[derive(Debug)]
pub(crate) struct DirTree {
    layer: FileHandle,
    nodes: HashMap<FileHandle, Node>,
}

impl DirTree {
    pub(crate) fn new(layer: FileHandle, upper: FileHandle, work: FileHandle) -> Self {
        let mut nodes = HashMap::new();
        nodes.insert(layer.clone(), Node::Layer);
        nodes.insert(upper, Node::Upper);
        nodes.insert(work, Node::Work);
        DirTree { layer, nodes }
    }

    /// `dir` is now `name` in `parent`.
    pub(crate) fn set(&mut self, dir: &FileHandle, parent: &FileHandle, name: &[u8]) {
        if let Some(Node::Layer | Node::Upper | Node::Work) = self.nodes.get(dir) {
            return; // the roots do not move while a world runs
        }
        if self.nodes.len() >= MAX_DIRS {
            self.nodes.retain(|_, n| !matches!(n, Node::Child { .. }));
        }
        self.nodes.insert(
            dir.clone(),
            Node::Child {
                parent: parent.clone(),
                name: name.to_vec(),
            },
        );
    }

    /// `dir` was removed.
    pub(crate) fn remove(&mut self, dir: &FileHandle) {
        if let Some(Node::Child { .. }) = self.nodes.get(dir) {
            self.nodes.remove(dir);
        }
    }

    /// Where `dir` is; a directory not met yet is looked up with
    /// `ancestry` (the kernel's view now), once.
    pub(crate) fn place(
        &mut self,
        dir: &FileHandle,
        ancestry: &mut dyn FnMut(&FileHandle) -> Option<Ancestry>,
    ) -> Place {
        match self.walk(dir) {
            Walk::Placed(place) => place,
            Walk::Missing(missing) => {
                let Some(chain) = ancestry(&missing) else {
                    return Place::Unknown;
                };
                self.learn(&missing, chain);
                match self.walk(dir) {
                    Walk::Placed(place) => place,
                    Walk::Missing(_) => Place::Unknown,
                }
            }
        }
    }

    /// Walks up from `dir` to a root, or to the first directory not known.
    fn walk(&self, dir: &FileHandle) -> Walk {
        let mut names: Vec<&[u8]> = Vec::new();
        let mut current = dir;
        for _ in 0..MAX_DEPTH {
            match self.nodes.get(current) {
                Some(Node::Layer) => return Walk::Placed(Place::Elsewhere),
                Some(Node::Work) => return Walk::Placed(Place::Work),
                Some(Node::Upper) => {
                    let mut path = Vec::new();
                    for name in names.iter().rev() {
                        path.push(b'/');
                        path.extend_from_slice(name);
                    }
                    if path.is_empty() {
                        path.push(b'/');
                    }
                    return Walk::Placed(Place::Upper(path));
                }
                Some(Node::Child { parent, name }) => {
                    names.push(name);
                    current = parent;
                }
                None => return Walk::Missing(current.clone()),
            }
        }
        Walk::Placed(Place::Unknown)
    }

    /// Records the ancestry the kernel gave for `dir`, keeping what the
    /// tree already knew (learnt from events, so closer to their time).
    fn learn(&mut self, dir: &FileHandle, chain: Ancestry) {
        if chain.last().map(|(h, _)| h) != Some(dir) {
            return; // renamed while it was looked up: wrong somewhere
        }
        let mut parent = self.layer.clone();
        for (handle, name) in chain {
            if !self.nodes.contains_key(&handle) {
                self.set(&handle, &parent, &name);
            }
            parent = handle;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> FileHandle {
        FileHandle {
            handle_type: 1,
            bytes: vec![n; 8],
        }
    }

    fn tree() -> DirTree {
        DirTree::new(h(1), h(2), h(3))
    }

    fn never(_: &FileHandle) -> Option<Ancestry> {
        None
    }

    #[test]
    fn directories_are_placed_by_their_parents() {
        let mut t = tree();
        t.set(&h(10), &h(2), b"etc");
        t.set(&h(11), &h(10), b"ssl");
        assert_eq!(t.place(&h(2), &mut never), Place::Upper(b"/".to_vec()));
        assert_eq!(
            t.place(&h(11), &mut never),
            Place::Upper(b"/etc/ssl".to_vec())
        );
        t.set(&h(12), &h(3), b"#102e0");
        assert_eq!(t.place(&h(12), &mut never), Place::Work);
        assert_eq!(t.place(&h(99), &mut never), Place::Unknown);
    }

    /// Overlayfs swaps a fresh opaque directory with the one being removed
    /// (`RENAME_EXCHANGE` between `work/` and `upper/`): both land right.
    #[test]
    fn an_exchange_moves_each_directory_alone() {
        let mut t = tree();
        t.set(&h(10), &h(2), b"ldir");
        t.set(&h(11), &h(10), b"sub");
        t.set(&h(20), &h(3), b"#c");
        t.set(&h(20), &h(2), b"ldir");
        t.set(&h(10), &h(3), b"#c");
        assert_eq!(t.place(&h(20), &mut never), Place::Upper(b"/ldir".to_vec()));
        assert_eq!(t.place(&h(11), &mut never), Place::Work);
    }

    #[test]
    fn unknown_directories_are_learnt_from_the_kernel() {
        let mut t = tree();
        let mut asked = 0;
        let mut ancestry = |dir: &FileHandle| {
            asked += 1;
            (*dir == h(11)).then(|| {
                vec![
                    (h(2), b"upper".to_vec()),
                    (h(10), b"a".to_vec()),
                    (h(11), b"b".to_vec()),
                ]
            })
        };
        assert_eq!(
            t.place(&h(11), &mut ancestry),
            Place::Upper(b"/a/b".to_vec())
        );
        assert_eq!(t.place(&h(10), &mut ancestry), Place::Upper(b"/a".to_vec()));
        assert_eq!(asked, 1);
    }

    #[test]
    fn a_cycle_places_nothing() {
        let mut t = tree();
        t.set(&h(10), &h(11), b"a");
        t.set(&h(11), &h(10), b"b");
        assert_eq!(t.place(&h(10), &mut never), Place::Unknown);
    }
}
