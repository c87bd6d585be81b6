//! OOM kills in a container's cgroup, as `TaskOOM` events: one thread per
//! shim waits on every container's notification at once.
//!
//! - cgroup v1: an eventfd registered on `memory.oom_control` through
//!   `cgroup.event_control` (the kernel signals it at each OOM);
//! - cgroup v2: inotify on `memory.events`, whose `oom_kill` count rises.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use containerd_shim::protos::events::task::TaskOOM;
use libcgroups::common::CgroupSetup;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

use crate::publisher::Publisher;

enum Watch {
    V1 {
        id: String,
        eventfd: EventFd,
        _control: File,
    },
    V2 {
        id: String,
        inotify: Inotify,
        events: PathBuf,
        kills: u64,
    },
}

impl Watch {
    fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match self {
            Watch::V1 { eventfd, .. } => eventfd.as_fd(),
            Watch::V2 { inotify, .. } => inotify.as_fd(),
        }
    }
}

pub struct OomWatcher {
    epoll: Epoll,
    watches: Mutex<HashMap<u64, Watch>>,
    next: Mutex<u64>,
}

impl OomWatcher {
    pub fn start(publisher: Arc<Publisher>) -> std::io::Result<Arc<OomWatcher>> {
        let watcher = Arc::new(OomWatcher {
            epoll: Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?,
            watches: Mutex::default(),
            next: Mutex::new(0),
        });
        let this = Arc::clone(&watcher);
        std::thread::spawn(move || this.run(&publisher));
        Ok(watcher)
    }

    /// Watches container `id`'s cgroup (`cgroup` relative to the roots).
    pub fn watch(&self, id: &str, cgroup: &Path) -> std::io::Result<()> {
        let relative = cgroup.strip_prefix("/").unwrap_or(cgroup);
        let watch = match libcgroups::common::get_cgroup_setup() {
            Ok(CgroupSetup::Unified) => {
                let root = libcgroups::v2::util::get_unified_mount_point()
                    .map_err(std::io::Error::other)?;
                let events = root.join(relative).join("memory.events");
                let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
                inotify.add_watch(&events, AddWatchFlags::IN_MODIFY)?;
                Watch::V2 {
                    id: id.into(),
                    inotify,
                    kills: oom_kills(&events),
                    events,
                }
            }
            _ => {
                let root = libcgroups::v1::util::get_subsystem_mount_point(
                    &libcgroups::v1::ControllerType::Memory,
                )
                .map_err(std::io::Error::other)?;
                let dir = root.join(relative);
                let control = File::open(dir.join("memory.oom_control"))?;
                let eventfd = EventFd::from_value_and_flags(
                    0,
                    EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK,
                )?;
                let mut registration = fs::OpenOptions::new()
                    .write(true)
                    .open(dir.join("cgroup.event_control"))?;
                // One write: the kernel parses "<eventfd> <oom_control fd>"
                // from a single buffer.
                let line = format!("{} {}", eventfd.as_fd().as_raw_fd(), control.as_raw_fd());
                registration.write_all(line.as_bytes())?;
                Watch::V1 {
                    id: id.into(),
                    eventfd,
                    _control: control,
                }
            }
        };
        let token = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            *next += 1;
            *next
        };
        self.epoll
            .add(watch.fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))?;
        self.watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token, watch);
        Ok(())
    }

    /// Stops watching container `id` (its cgroup is going away).
    pub fn forget(&self, id: &str) {
        let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
        let tokens: Vec<u64> = watches
            .iter()
            .filter(
                |(_, w)| matches!(w, Watch::V1 { id: i, .. } | Watch::V2 { id: i, .. } if i == id),
            )
            .map(|(t, _)| *t)
            .collect();
        for token in tokens {
            if let Some(watch) = watches.remove(&token) {
                let _ = self.epoll.delete(watch.fd());
            }
        }
    }

    fn run(&self, publisher: &Publisher) {
        let mut events = [EpollEvent::empty(); 16];
        loop {
            let n = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            };
            for event in &events[..n] {
                let container = {
                    let mut watches = self.watches.lock().unwrap_or_else(|p| p.into_inner());
                    match watches.get_mut(&event.data()) {
                        Some(Watch::V1 { id, eventfd, .. }) => {
                            eventfd.read().ok().map(|_| id.clone())
                        }
                        Some(Watch::V2 {
                            id,
                            inotify,
                            events,
                            kills,
                        }) => {
                            let _ = inotify.read_events();
                            let now = oom_kills(events);
                            (now > std::mem::replace(kills, now)).then(|| id.clone())
                        }
                        None => None,
                    }
                };
                if let Some(container_id) = container {
                    publisher.publish(&TaskOOM {
                        container_id,
                        ..Default::default()
                    });
                }
            }
        }
    }
}

fn oom_kills(events: &Path) -> u64 {
    fs::read_to_string(events)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
        .unwrap_or(0)
}
