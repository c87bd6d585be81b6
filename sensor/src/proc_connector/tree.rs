//! Following one world's process tree from proc connector events alone.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use super::{ProcEvent, ProcEventKind};

/// The thread groups (processes) that descend from a world's init, kept from
/// fork and exit events alone: no `/proc` reads, so a process that lives for a
/// microsecond is still counted.
///
/// Membership is by birth: a fork whose parent is a member adds the child,
/// whoever reaps it later. Threads (`pid != tgid`) are not processes; they
/// are counted only so that a process whose main thread exits first
/// (`pthread_exit` in `main`) stays a member until its last thread is gone.
///
/// Limits, from the kernel: the fork event names the child's `real_parent`,
/// so a child made with `CLONE_PARENT` is attributed to its grandparent; and
/// [`ProcessTree::new`] assumes init has a single thread when the tree is made
/// (true when it is made right after the fork that created init).
#[derive(Debug, Clone)]
pub struct ProcessTree {
    init: i32,
    /// Live members and how many of their threads the events have shown alive.
    live: HashMap<i32, u32>,
    joined: usize,
    complete: bool,
}

/// How one event changed a [`ProcessTree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeChange {
    /// A member forked a new process, now a member.
    Joined { tgid: i32, parent_tgid: i32 },
    /// A member called `execve`.
    Exec { tgid: i32 },
    /// A member's last thread exited. `status` is the kernel's wait status
    /// (`task->exit_code`): exit code in bits 8..16, else the killing signal.
    Left { tgid: i32, status: ExitStatus },
}

impl ProcessTree {
    /// A tree holding only `init_tgid`.
    pub fn new(init_tgid: i32) -> Self {
        Self {
            init: init_tgid,
            live: HashMap::from([(init_tgid, 1)]),
            joined: 0,
            complete: true,
        }
    }

    /// Applies one event; `None` when it does not change membership or is
    /// about a process outside the tree.
    pub fn apply(&mut self, event: &ProcEvent) -> Option<TreeChange> {
        match event.kind {
            ProcEventKind::Fork {
                parent_tgid,
                child_pid,
                child_tgid,
                ..
            } => {
                if child_pid != child_tgid {
                    // A new thread of `child_tgid` (its parent_* fields name the
                    // process's parent, not the creating thread).
                    if let Some(threads) = self.live.get_mut(&child_tgid) {
                        *threads += 1;
                    }
                    return None;
                }
                if !self.live.contains_key(&parent_tgid) || self.live.contains_key(&child_tgid) {
                    return None;
                }
                self.live.insert(child_tgid, 1);
                self.joined += 1;
                Some(TreeChange::Joined {
                    tgid: child_tgid,
                    parent_tgid,
                })
            }
            ProcEventKind::Exec { tgid, .. } if self.live.contains_key(&tgid) => {
                Some(TreeChange::Exec { tgid })
            }
            ProcEventKind::Exit {
                tgid, exit_code, ..
            } => {
                let threads = self.live.get_mut(&tgid)?;
                *threads = threads.saturating_sub(1);
                if *threads > 0 {
                    return None;
                }
                self.live.remove(&tgid);
                Some(TreeChange::Left {
                    tgid,
                    status: ExitStatus::from_raw(exit_code),
                })
            }
            _ => None,
        }
    }

    /// Adds a process that entered the world from outside, such as one
    /// started by `exec` into it (the caller found it by its pid
    /// namespace). Assumed single-threaded, as it is right after its exec.
    /// False if it was a member already.
    pub fn adopt(&mut self, tgid: i32) -> bool {
        if self.live.contains_key(&tgid) {
            return false;
        }
        self.live.insert(tgid, 1);
        self.joined += 1;
        true
    }

    /// Records that events were lost ([`super::Received::Lost`]): from now
    /// on the tree may miss members, or keep some that have left.
    pub fn note_lost(&mut self) {
        self.complete = false;
    }

    /// Whether every event since the tree was made has been applied.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Whether `tgid` is a live member.
    pub fn contains(&self, tgid: i32) -> bool {
        self.live.contains_key(&tgid)
    }

    /// How many members are alive.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// Whether every member, init included, has left.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// The thread-group id of init.
    pub fn init(&self) -> i32 {
        self.init
    }

    /// How many processes joined since the tree was made (init not counted).
    pub fn joined(&self) -> usize {
        self.joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: ProcEventKind) -> ProcEvent {
        ProcEvent {
            timestamp_ns: 0,
            cpu: 0,
            kind,
        }
    }
    fn fork(parent: i32, pid: i32, tgid: i32) -> ProcEvent {
        ev(ProcEventKind::Fork {
            parent_pid: parent,
            parent_tgid: parent,
            child_pid: pid,
            child_tgid: tgid,
        })
    }
    fn exit(pid: i32, tgid: i32, code: i32) -> ProcEvent {
        ev(ProcEventKind::Exit {
            pid,
            tgid,
            exit_code: code,
            exit_signal: libc::SIGCHLD,
            parent_pid: 1,
            parent_tgid: 1,
        })
    }
    fn exec(tgid: i32) -> ProcEvent {
        ev(ProcEventKind::Exec { pid: tgid, tgid })
    }

    #[test]
    fn follows_descendants_and_ignores_strangers() {
        let mut t = ProcessTree::new(100);
        assert_eq!(t.apply(&exec(100)), Some(TreeChange::Exec { tgid: 100 }));
        assert_eq!(
            t.apply(&fork(100, 101, 101)),
            Some(TreeChange::Joined {
                tgid: 101,
                parent_tgid: 100
            })
        );
        assert_eq!(
            t.apply(&fork(101, 102, 102)),
            Some(TreeChange::Joined {
                tgid: 102,
                parent_tgid: 101
            })
        );
        // A stranger and its child.
        assert_eq!(t.apply(&fork(1, 200, 200)), None);
        assert_eq!(t.apply(&fork(200, 201, 201)), None);
        assert_eq!(t.apply(&exec(200)), None);
        assert_eq!(t.apply(&exit(200, 200, 0)), None);
        assert!(!t.contains(200) && !t.contains(201));
        assert_eq!((t.len(), t.joined()), (3, 2));
        // A grandchild outlives its parent: still a member.
        let Some(TreeChange::Left { tgid: 101, status }) = t.apply(&exit(101, 101, 3 << 8)) else {
            panic!()
        };
        assert_eq!(status.code(), Some(3));
        assert!(t.contains(102));
        let Some(TreeChange::Left { status, .. }) = t.apply(&exit(102, 102, libc::SIGKILL)) else {
            panic!()
        };
        assert_eq!(status.signal(), Some(libc::SIGKILL));
        t.apply(&exit(100, 100, 0));
        assert!(t.is_empty() && t.is_complete());
        t.note_lost();
        assert!(!t.is_complete());
    }

    #[test]
    fn threads_are_not_processes_but_keep_theirs_alive() {
        let mut t = ProcessTree::new(100);
        // Thread 105 of 100: the kernel names 100's parent as parent.
        assert_eq!(t.apply(&fork(1, 105, 100)), None);
        assert_eq!(t.len(), 1);
        // A thread of a member forks: the child's parent is the member.
        assert!(t.apply(&fork(100, 106, 106)).is_some());
        // The main thread exits first; the process lives on in 105.
        assert_eq!(t.apply(&exit(100, 100, 0)), None);
        assert!(t.contains(100));
        assert!(matches!(
            t.apply(&exit(105, 100, 0)),
            Some(TreeChange::Left { tgid: 100, .. })
        ));
        // A second exit for a gone process changes nothing.
        assert_eq!(t.apply(&exit(100, 100, 0)), None);
    }

    #[test]
    fn a_reused_pid_is_not_a_member_again() {
        let mut t = ProcessTree::new(100);
        t.apply(&fork(100, 101, 101));
        t.apply(&exit(101, 101, 0));
        assert_eq!(t.apply(&fork(1, 101, 101)), None);
        assert!(!t.contains(101));
    }

    #[test]
    fn an_adopted_process_is_a_member_with_its_children() {
        let mut tree = ProcessTree::new(100);
        assert!(
            tree.apply(&exec(300)).is_none(),
            "a stranger's exec is ignored"
        );
        assert!(tree.adopt(300));
        assert!(!tree.adopt(300), "adopting twice changes nothing");
        assert_eq!(tree.apply(&exec(300)), Some(TreeChange::Exec { tgid: 300 }));
        assert!(matches!(
            tree.apply(&fork(300, 301, 301)),
            Some(TreeChange::Joined {
                tgid: 301,
                parent_tgid: 300
            })
        ));
        assert!(matches!(
            tree.apply(&exit(300, 300, 0)),
            Some(TreeChange::Left { tgid: 300, .. })
        ));
        assert!(tree.contains(301) && tree.contains(100));
    }
}
