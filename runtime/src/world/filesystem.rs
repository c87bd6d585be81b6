//! A world policy's `filesystem.hidden`, `read_only` and `writable`,
//! enforced by the kernel as mounts in the world's spec (the hardening's
//! own `maskedPaths` and `readonlyPaths`, extended). `deny_read` is not a
//! mount: its globs are decided at open time.
//!
//! - `hidden`: `linux.maskedPaths`. libcontainer covers a directory with an
//!   empty read-only tmpfs and a file with `/dev/null` (a read gets nothing,
//!   a write goes nowhere); a path the rootfs does not have is skipped.
//! - `read_only`: `linux.readonlyPaths`: the path bind-mounted onto itself,
//!   then read-only with every mount below it (Substrate's libcontainer
//!   patch, `third_party/README.md`), so a bind the spec puts under it
//!   (CRI's `/etc/hosts`) is read-only too.
//! - `writable` listed: `root.readonly`, and each entry bind-mounted onto
//!   itself, read-write, from the rootfs as the host sees it (Substrate's
//!   overlay once it is mounted). The binds come before every mount of the
//!   spec, so a mount of the spec at or below an entry stays on top.
//!
//! Both lists are made inside the world's own root (libcontainer does them
//! after `pivot_root`), so a symbolic link in the image can only lead to
//! another path of the world. A bind's source is resolved on the host side,
//! so an entry of `writable` must name a file or directory of the rootfs by
//! its real path: no symbolic link on the way (an image's `/work ->
//! /host/secrets` would otherwise bind the host's directory into the
//! world), no other filesystem, and it must exist; anything else refuses
//! the world, naming the entry. After libcontainer has made the mounts,
//! [`WritableBinds::verify`] checks that each bind is the very file the
//! check saw, so a rootfs changed in between refuses the world too.
//!
//! This only ever narrows the spec: the bundle's own masked and read-only
//! paths stay, a root the bundle made read-only gets no writable binds, and
//! nothing is made writable that the spec's own mounts decide (an entry at
//! or below one of them is that mount's business). A spec whose processes
//! could undo the mounts (`CAP_SYS_ADMIN`: unmount; `CAP_DAC_READ_SEARCH`:
//! `open_by_handle_at` through another mount of the same filesystem; no
//! `process.capabilities` at all: every capability kept) or that has no
//! mount namespace of its own is refused, as `net.rs` refuses
//! `CAP_NET_ADMIN` under an egress policy.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::capabilities::{may_hold, Forbidden, UNDER_MOUNTS};
use oci_spec::runtime::{LinuxNamespaceType, Mount, MountBuilder, Spec};
use rustix::fs::{Mode as FileMode, OFlags, ResolveFlags};
use substrate_policy::filesystem::AbsPath;
use substrate_policy::{FilesystemPolicy, Mode, Policy};

/// Why a policy's filesystem section cannot be enforced on a world's
/// rootfs. Each names the entry (`filesystem.writable[I]`) and the path.
#[derive(Debug, thiserror::Error)]
pub enum FilesystemPolicyError {
    #[error("filesystem.writable[{index}]: {path}: no such file or directory in the world's rootfs (a writable path must exist in the image: create it there, or leave the entry out)")]
    NoSuchPath { index: usize, path: AbsPath },

    #[error("filesystem.writable[{index}]: {path}: a symbolic link in the world's rootfs{}: list the path it leads to", match leads_to {
        Some(target) => format!(" (it leads to {})", target.display()),
        None => String::new(),
    })]
    Symlink {
        index: usize,
        path: AbsPath,
        leads_to: Option<PathBuf>,
    },

    #[error("filesystem.writable[{index}]: {path}: neither a file nor a directory in the world's rootfs")]
    NotFileOrDirectory { index: usize, path: AbsPath },

    #[error("filesystem.writable[{index}]: {path}: on another filesystem than the world's rootfs (something is mounted under {})", rootfs.display())]
    OtherFilesystem {
        index: usize,
        path: AbsPath,
        rootfs: PathBuf,
    },

    #[error("filesystem.writable[{index}]: {path}: cannot open it in the world's rootfs {}", rootfs.display())]
    Open {
        index: usize,
        path: AbsPath,
        rootfs: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("its mounts need a mount namespace of the world's own, which the spec does not give it (linux.namespaces: a \"mount\" entry without a path)")]
    NoMountNamespace,

    #[error("a world whose paths the policy hides or protects cannot hold {name}: {why}; drop it from process.capabilities")]
    Capability {
        name: &'static str,
        why: &'static str,
    },

    #[error("the spec has no process.capabilities, so the world would keep every capability (CAP_SYS_ADMIN among them: it could unmount what hides or protects its paths); list the ones it needs")]
    EveryCapability,

    #[error("cannot open the world's rootfs {}", rootfs.display())]
    Rootfs {
        rootfs: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The world's mount is not what the check saw: the rootfs changed
    /// between the check and libcontainer's mount.
    #[error("filesystem.writable: {}: the world's mount there is not the directory that was checked: the rootfs changed while the world was made", destination.display())]
    Changed { destination: PathBuf },

    #[error("filesystem.writable: {}: cannot check the world's mount there", destination.display())]
    Verify {
        destination: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The section of `policy` to enforce as mounts: `None` without a policy,
/// in `observe` mode (where an open is recorded and allowed, never
/// refused), or when it says nothing of `hidden`, `read_only` and
/// `writable`.
pub(crate) fn enforced(policy: Option<&Policy>) -> Option<FilesystemPolicy> {
    let policy = policy?;
    let section = &policy.filesystem;
    let says_something =
        !section.hidden.is_empty() || !section.read_only.is_empty() || section.writable.is_some();
    (policy.mode() == Mode::Enforce && says_something).then(|| section.clone())
}

/// One writable bind as the check saw it.
#[derive(Debug)]
struct Bind {
    destination: PathBuf,
    dev: u64,
    ino: u64,
}

/// The writable binds [`narrow_spec`] added, to check once libcontainer
/// has made them ([`WritableBinds::verify`]).
#[derive(Debug, Default)]
#[must_use = "the binds must be verified once the world's mounts are made"]
pub(crate) struct WritableBinds(Vec<Bind>);

impl WritableBinds {
    /// Checks, in the mounts of the world whose init is `pid` (created,
    /// not started: nothing of it has run), that each writable bind is the
    /// file the check saw (same device and inode).
    pub(crate) fn verify(&self, pid: i32) -> Result<(), FilesystemPolicyError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let root_path = PathBuf::from(format!("/proc/{pid}/root"));
        let failed = |destination: &Path| {
            let destination = destination.to_owned();
            move |source: std::io::Error| FilesystemPolicyError::Verify {
                destination,
                source,
            }
        };
        let root = rustix::fs::open(
            root_path.as_path(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            FileMode::empty(),
        )
        .map_err(|e| failed(Path::new("/"))(e.into()))?;
        for bind in &self.0 {
            let relative = bind
                .destination
                .strip_prefix("/")
                .unwrap_or(&bind.destination);
            // Mounts are crossed (the bind is one), symbolic links never
            // (the last one included: no O_NOFOLLOW, which would open the
            // link itself): the destination had none when it was checked.
            let fd = rustix::fs::openat2(
                &root,
                relative,
                OFlags::PATH | OFlags::CLOEXEC,
                FileMode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
            )
            .map_err(|e| failed(&bind.destination)(e.into()))?;
            let stat = rustix::fs::fstat(&fd).map_err(|e| failed(&bind.destination)(e.into()))?;
            if (stat.st_dev, stat.st_ino) != (bind.dev, bind.ino) {
                return Err(FilesystemPolicyError::Changed {
                    destination: bind.destination.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Narrows `spec`, the spec of a world whose root filesystem is `rootfs`
/// (as the host sees it, mounted), by `policy`: see the module's doc.
pub(crate) fn narrow_spec(
    spec: &mut Spec,
    policy: &FilesystemPolicy,
    rootfs: &Path,
) -> Result<WritableBinds, FilesystemPolicyError> {
    let mut linux = spec.linux().clone().unwrap_or_default();
    // Without one, libcontainer would mount in the runtime's namespace or
    // another's (it refuses the masked and read-only paths there).
    let own_mount_namespace = linux
        .namespaces()
        .iter()
        .flatten()
        .any(|ns| ns.typ() == LinuxNamespaceType::Mount && ns.path().is_none());
    if !own_mount_namespace {
        return Err(FilesystemPolicyError::NoMountNamespace);
    }
    check_capabilities(spec)?;
    if !policy.hidden.is_empty() {
        let mut masked = linux.masked_paths().clone().unwrap_or_default();
        add_paths(&mut masked, &policy.hidden);
        linux.set_masked_paths(Some(masked));
    }
    if !policy.read_only.is_empty() {
        let mut readonly = linux.readonly_paths().clone().unwrap_or_default();
        add_paths(&mut readonly, &policy.read_only);
        linux.set_readonly_paths(Some(readonly));
    }
    spec.set_linux(Some(linux));

    let Some(writable) = &policy.writable else {
        return Ok(WritableBinds::default());
    };
    // `/` listed: every path may be written; nothing to mount.
    if writable
        .iter()
        .any(|entry| entry.as_path() == Path::new("/"))
    {
        return Ok(WritableBinds::default());
    }
    let mut root = spec.root().clone().unwrap_or_default();
    // A root the bundle made read-only stays wholly read-only: a policy
    // only narrows.
    if root.readonly() == Some(true) {
        return Ok(WritableBinds::default());
    }
    root.set_readonly(Some(true));
    spec.set_root(Some(root));

    let mounts = spec.mounts().clone().unwrap_or_default();
    let closed: Vec<&AbsPath> = policy.hidden.iter().chain(&policy.read_only).collect();
    let mut chosen: Vec<(usize, &AbsPath)> = Vec::new();
    for (index, entry) in writable.iter().enumerate() {
        let path = entry.as_path();
        // Below a hidden or read-only entry it stays hidden or read-only
        // (the masks and read-only paths are made after the binds, over
        // them; skipping the bind only saves a mount).
        let under_closed = closed.iter().any(|c| c.contains(path));
        // On a filesystem the spec mounts (a tmpfs /tmp, /dev, a volume):
        // that mount says whether it is writable.
        let under_mount = mounts.iter().any(|m| {
            let destination = m.destination();
            destination != Path::new("/") && contains(destination, path)
        });
        // Below another entry: that entry's bind makes it writable.
        let nested = writable
            .iter()
            .enumerate()
            .any(|(other, e)| other != index && e.contains(path) && (e != entry || other < index));
        if !(under_closed || under_mount || nested) {
            chosen.push((index, entry));
        }
    }
    if chosen.is_empty() {
        return Ok(WritableBinds::default());
    }

    let rootfs_fd = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        FileMode::empty(),
    )
    .map_err(|e| FilesystemPolicyError::Rootfs {
        rootfs: rootfs.to_owned(),
        source: e.into(),
    })?;
    let mut binds = Vec::with_capacity(chosen.len());
    let mut new_mounts: Vec<Mount> = Vec::with_capacity(chosen.len() + mounts.len());
    for (index, entry) in chosen {
        let fd = open_in_rootfs(&rootfs_fd, rootfs, index, entry)?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| FilesystemPolicyError::Open {
            index,
            path: entry.clone(),
            rootfs: rootfs.to_owned(),
            source: e.into(),
        })?;
        let kind = rustix::fs::FileType::from_raw_mode(stat.st_mode);
        if !matches!(
            kind,
            rustix::fs::FileType::Directory | rustix::fs::FileType::RegularFile
        ) {
            return Err(FilesystemPolicyError::NotFileOrDirectory {
                index,
                path: entry.clone(),
            });
        }
        let relative = entry
            .as_path()
            .strip_prefix("/")
            .expect("an AbsPath is absolute");
        new_mounts.push(writable_bind(entry.as_path(), &rootfs.join(relative)));
        binds.push(Bind {
            destination: entry.as_path().to_owned(),
            dev: stat.st_dev,
            ino: stat.st_ino,
        });
    }
    // Before every mount of the spec: none of them is below-or-at an
    // entry's parent that the bind would need first (those entries were
    // left out), and any below an entry lands on top of its bind.
    new_mounts.extend(mounts);
    spec.set_mounts(Some(new_mounts));
    Ok(WritableBinds(binds))
}

/// Refuses a spec whose processes could hold a capability of
/// [`UNDER_MOUNTS`] (as `net.rs` refuses CAP_NET_ADMIN under an egress
/// policy): a bundle's capabilities are never widened, nor silently
/// narrowed.
fn check_capabilities(spec: &Spec) -> Result<(), FilesystemPolicyError> {
    let Some(process) = spec.process().as_ref() else {
        return Ok(());
    };
    if process.capabilities().is_none() {
        // libcontainer then drops nothing: the world keeps every
        // capability of the runtime.
        return Err(FilesystemPolicyError::EveryCapability);
    }
    for Forbidden {
        capability,
        name,
        why,
    } in UNDER_MOUNTS
    {
        if may_hold(process, capability) {
            return Err(FilesystemPolicyError::Capability { name, why });
        }
    }
    Ok(())
}

/// Opens `entry` in the rootfs without following any symbolic link or
/// crossing a mount: the path the bind's source names is then exactly this
/// file (until [`WritableBinds::verify`] checks it again).
fn open_in_rootfs(
    rootfs_fd: &OwnedFd,
    rootfs: &Path,
    index: usize,
    entry: &AbsPath,
) -> Result<OwnedFd, FilesystemPolicyError> {
    let relative = entry
        .as_path()
        .strip_prefix("/")
        .expect("an AbsPath is absolute");
    // No O_NOFOLLOW: with it a last component that is a link would be
    // opened as the link itself; without it, RESOLVE_NO_SYMLINKS refuses
    // it (ELOOP) as it refuses every other.
    match rustix::fs::openat2(
        rootfs_fd,
        relative,
        OFlags::PATH | OFlags::CLOEXEC,
        FileMode::empty(),
        ResolveFlags::BENEATH
            | ResolveFlags::NO_SYMLINKS
            | ResolveFlags::NO_MAGICLINKS
            | ResolveFlags::NO_XDEV,
    ) {
        Ok(fd) => Ok(fd),
        // A component missing, or a file where a directory should be: with
        // RESOLVE_NO_SYMLINKS, no link came before it (that is ELOOP).
        Err(rustix::io::Errno::NOENT) | Err(rustix::io::Errno::NOTDIR) => {
            Err(FilesystemPolicyError::NoSuchPath {
                index,
                path: entry.clone(),
            })
        }
        Err(rustix::io::Errno::LOOP) => Err(FilesystemPolicyError::Symlink {
            index,
            path: entry.clone(),
            leads_to: leads_to(rootfs_fd, relative),
        }),
        Err(rustix::io::Errno::XDEV) => Err(FilesystemPolicyError::OtherFilesystem {
            index,
            path: entry.clone(),
            rootfs: rootfs.to_owned(),
        }),
        Err(e) => Err(FilesystemPolicyError::Open {
            index,
            path: entry.clone(),
            rootfs: rootfs.to_owned(),
            source: e.into(),
        }),
    }
}

/// Where `relative` leads in the rootfs as the world would see it
/// (symbolic links followed inside it, `RESOLVE_IN_ROOT`), for an error
/// message only; `None` when it leads nowhere.
fn leads_to(rootfs_fd: &OwnedFd, relative: &Path) -> Option<PathBuf> {
    let fd = rustix::fs::openat2(
        rootfs_fd,
        relative,
        OFlags::PATH | OFlags::CLOEXEC,
        FileMode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let rootfs_now = fd_path(rootfs_fd.as_fd())?;
    let target = fd_path(fd.as_fd())?;
    let inside = target.strip_prefix(&rootfs_now).ok()?;
    Some(Path::new("/").join(inside))
}

/// The path the kernel names an open file by (`/proc/thread-self/fd/N`).
fn fd_path(fd: std::os::fd::BorrowedFd<'_>) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/thread-self/fd/{}", fd.as_raw_fd())).ok()
}

/// `destination`, bind-mounted read-write from `source` (the same path in
/// the rootfs), not recursively: nothing the host has mounted below it in
/// the rootfs comes along.
fn writable_bind(destination: &Path, source: &Path) -> Mount {
    MountBuilder::default()
        .destination(destination)
        .typ("bind")
        .source(source)
        .options(vec!["bind".to_owned(), "rw".to_owned()])
        .build()
        .expect("every field of a bind mount is set")
}

/// Appends `entries` to a spec's path list, each once.
fn add_paths(list: &mut Vec<String>, entries: &[AbsPath]) {
    for entry in entries {
        let text = entry.to_string();
        if !list.contains(&text) {
            list.push(text);
        }
    }
}

/// Whether `path` is `entry` or below it, by components (a spec's mount
/// destination may be written unnormalized: `/tmp/`).
fn contains(entry: &Path, path: &Path) -> bool {
    path.starts_with(entry)
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;
    use oci_spec::runtime::Capability;

    fn section(yaml: &str) -> FilesystemPolicy {
        Policy::parse(&format!("version: 1\nfilesystem:\n{yaml}"))
            .unwrap()
            .filesystem
    }

    /// A spec like a bundle's: a tmpfs /tmp, a masked and a read-only path
    /// of its own.
    fn bundle_spec(root_readonly: bool) -> Spec {
        let mut spec = Spec::default();
        let mut root = spec.root().clone().unwrap_or_default();
        root.set_readonly(Some(root_readonly));
        spec.set_root(Some(root));
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        mounts.push(
            MountBuilder::default()
                .destination("/tmp/")
                .typ("tmpfs")
                .source("tmpfs")
                .build()
                .unwrap(),
        );
        spec.set_mounts(Some(mounts));
        let mut linux = spec.linux().clone().unwrap_or_default();
        linux.set_masked_paths(Some(vec!["/proc/kcore".into()]));
        linux.set_readonly_paths(Some(vec!["/proc/sys".into()]));
        spec.set_linux(Some(linux));
        spec
    }

    struct Rootfs(tempfile::TempDir);

    impl Rootfs {
        fn new(dirs: &[&str]) -> Rootfs {
            let dir = tempfile::tempdir().unwrap();
            for d in dirs {
                fs::create_dir_all(dir.path().join(d)).unwrap();
            }
            Rootfs(dir)
        }

        fn path(&self) -> &Path {
            self.0.path()
        }
    }

    fn masked(spec: &Spec) -> Vec<String> {
        spec.linux()
            .as_ref()
            .unwrap()
            .masked_paths()
            .clone()
            .unwrap()
    }

    fn readonly(spec: &Spec) -> Vec<String> {
        spec.linux()
            .as_ref()
            .unwrap()
            .readonly_paths()
            .clone()
            .unwrap()
    }

    fn destinations(spec: &Spec) -> Vec<String> {
        spec.mounts()
            .iter()
            .flatten()
            .map(|m| m.destination().display().to_string())
            .collect()
    }

    #[test]
    fn hidden_and_read_only_extend_the_bundles_own_lists() {
        let rootfs = Rootfs::new(&[]);
        let mut spec = bundle_spec(false);
        let before = destinations(&spec);
        let binds = narrow_spec(
            &mut spec,
            &section("  hidden: [/srv/secrets, /proc/kcore]\n  read_only: [/etc, /etc]\n"),
            rootfs.path(),
        )
        .unwrap();
        assert!(binds.0.is_empty());
        assert_eq!(masked(&spec), ["/proc/kcore", "/srv/secrets"]);
        assert_eq!(readonly(&spec), ["/proc/sys", "/etc"]);
        // Without `writable`, the root and the mounts are the bundle's.
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(false));
        assert_eq!(destinations(&spec), before);
    }

    #[test]
    fn writable_makes_the_root_read_only_and_binds_each_entry_first() {
        let rootfs = Rootfs::new(&["work/out", "var/cache", "etc/app", "srv/data", "tmp/x"]);
        fs::write(rootfs.path().join("notes.txt"), "").unwrap();
        let mut spec = bundle_spec(false);
        let binds = narrow_spec(
            &mut spec,
            &section(
                "  hidden: [/srv]\n  read_only: [/etc]\n  \
                 writable: [/work/out, /work, /var/cache, /notes.txt, /etc/app, /srv/data, /tmp/x, /work]\n",
            ),
            rootfs.path(),
        )
        .unwrap();
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
        // /work/out is under /work (listed twice: once); /etc/app and
        // /srv/data stay read-only and hidden; /tmp/x is on the spec's
        // tmpfs. Each bind comes before the spec's own mounts.
        let mounts = spec.mounts().clone().unwrap();
        let binds_made: Vec<(String, String, Vec<String>)> = mounts
            .iter()
            .take_while(|m| m.typ().as_deref() == Some("bind"))
            .map(|m| {
                (
                    m.destination().display().to_string(),
                    m.source().as_ref().unwrap().display().to_string(),
                    m.options().clone().unwrap(),
                )
            })
            .collect();
        let root = rootfs.path().display();
        assert_eq!(
            binds_made,
            [
                (
                    "/work".into(),
                    format!("{root}/work"),
                    vec!["bind".into(), "rw".into()]
                ),
                (
                    "/var/cache".into(),
                    format!("{root}/var/cache"),
                    vec!["bind".into(), "rw".into()]
                ),
                (
                    "/notes.txt".into(),
                    format!("{root}/notes.txt"),
                    vec!["bind".into(), "rw".into()]
                ),
            ]
        );
        assert_eq!(
            mounts.len(),
            Spec::default().mounts().as_ref().unwrap().len() + 1 + 3
        );
        assert_eq!(binds.0.len(), 3);
        let work = fs::metadata(rootfs.path().join("work")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((binds.0[0].dev, binds.0[0].ino), (work.dev(), work.ino()));
    }

    #[test]
    fn writable_leaves_a_read_only_root_alone_and_slash_changes_nothing() {
        let rootfs = Rootfs::new(&["work"]);
        for (root_readonly, list) in [(true, "[/work]"), (false, "[/work, /]")] {
            let mut spec = bundle_spec(root_readonly);
            let before = destinations(&spec);
            let binds = narrow_spec(
                &mut spec,
                &section(&format!("  writable: {list}\n")),
                rootfs.path(),
            )
            .unwrap();
            assert!(binds.0.is_empty(), "{list}");
            assert_eq!(
                spec.root().as_ref().unwrap().readonly(),
                Some(root_readonly),
                "{list}"
            );
            assert_eq!(destinations(&spec), before, "{list}");
        }
    }

    #[test]
    fn an_empty_writable_list_makes_the_whole_root_read_only() {
        let rootfs = Rootfs::new(&[]);
        let mut spec = bundle_spec(false);
        let before = destinations(&spec);
        let binds = narrow_spec(&mut spec, &section("  writable: []\n"), rootfs.path()).unwrap();
        assert!(binds.0.is_empty());
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
        assert_eq!(destinations(&spec), before);
    }

    fn refusal(rootfs: &Rootfs, yaml: &str) -> String {
        let mut spec = bundle_spec(false);
        match narrow_spec(&mut spec, &section(yaml), rootfs.path()) {
            Ok(binds) => panic!("{yaml}: not refused: {binds:?}"),
            Err(e) => crate::one_line(&e),
        }
    }

    #[test]
    fn a_writable_path_the_rootfs_lacks_refuses_the_world_naming_it() {
        let rootfs = Rootfs::new(&["work"]);
        fs::write(rootfs.path().join("file"), "").unwrap();
        assert_eq!(
            refusal(&rootfs, "  writable: [/work, /nope]\n"),
            "filesystem.writable[1]: /nope: no such file or directory in the world's rootfs \
             (a writable path must exist in the image: create it there, or leave the entry out)"
        );
        assert!(refusal(&rootfs, "  writable: [/file/below]\n")
            .starts_with("filesystem.writable[0]: /file/below: no such file"));
        nix::unistd::mkfifo(&rootfs.path().join("fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(
            refusal(&rootfs, "  writable: [/fifo]\n"),
            "filesystem.writable[0]: /fifo: neither a file nor a directory in the world's rootfs"
        );
    }

    #[test]
    fn a_symlinked_writable_path_is_refused_and_never_leads_out_of_the_rootfs() {
        // The host's directory an image's link names, absolutely and by
        // `..`: never the bind's source.
        let host = tempfile::tempdir().unwrap();
        let rootfs = Rootfs::new(&["real", "real/deeper"]);
        symlink(host.path(), rootfs.path().join("abs")).unwrap();
        symlink("../../../../../../..", rootfs.path().join("up")).unwrap();
        symlink("/real", rootfs.path().join("inside")).unwrap();
        let message = refusal(&rootfs, "  writable: [/abs]\n");
        assert!(
            message
                .starts_with("filesystem.writable[0]: /abs: a symbolic link in the world's rootfs"),
            "{message}"
        );
        assert!(
            !message.contains(&host.path().display().to_string()),
            "{message}"
        );
        let message = refusal(&rootfs, "  writable: [/up/etc]\n");
        assert!(message.contains("a symbolic link"), "{message}");
        // One within the image: where it leads is named.
        assert_eq!(
            refusal(&rootfs, "  writable: [/inside/deeper]\n"),
            "filesystem.writable[0]: /inside/deeper: a symbolic link in the world's rootfs \
             (it leads to /real/deeper): list the path it leads to"
        );
    }

    #[test]
    fn a_spec_without_a_mount_namespace_of_its_own_is_refused() {
        let rootfs = Rootfs::new(&[]);
        for join in [false, true] {
            let mut spec = bundle_spec(false);
            let mut linux = spec.linux().clone().unwrap();
            let mut namespaces = linux.namespaces().clone().unwrap();
            namespaces.retain(|ns| ns.typ() != LinuxNamespaceType::Mount);
            if join {
                namespaces.push(
                    oci_spec::runtime::LinuxNamespaceBuilder::default()
                        .typ(LinuxNamespaceType::Mount)
                        .path("/proc/1/ns/mnt")
                        .build()
                        .unwrap(),
                );
            }
            linux.set_namespaces(Some(namespaces));
            spec.set_linux(Some(linux));
            let error =
                narrow_spec(&mut spec, &section("  hidden: [/srv]\n"), rootfs.path()).unwrap_err();
            assert!(
                matches!(error, FilesystemPolicyError::NoMountNamespace),
                "{error}"
            );
        }
    }

    #[test]
    fn a_world_that_could_undo_its_mounts_is_refused() {
        let rootfs = Rootfs::new(&[]);
        let with = |caps: Option<&[Capability]>| {
            let mut spec = bundle_spec(false);
            let mut process = spec.process().clone().unwrap();
            process.set_capabilities(caps.map(|caps| {
                let set: oci_spec::runtime::Capabilities = caps.iter().copied().collect();
                let mut linux_caps = oci_spec::runtime::LinuxCapabilities::default();
                linux_caps.set_bounding(Some(set));
                linux_caps.set_effective(None);
                linux_caps.set_permitted(None);
                linux_caps.set_inheritable(None);
                linux_caps.set_ambient(None);
                linux_caps
            }));
            spec.set_process(Some(process));
            narrow_spec(&mut spec, &section("  read_only: [/etc]\n"), rootfs.path())
                .map(|_| ())
                .map_err(|e| crate::one_line(&e))
        };
        with(Some(&[Capability::Kill, Capability::Chown])).unwrap();
        let message = with(Some(&[Capability::Kill, Capability::SysAdmin])).unwrap_err();
        assert!(message.contains("cannot hold CAP_SYS_ADMIN"), "{message}");
        let message = with(Some(&[Capability::DacReadSearch])).unwrap_err();
        assert!(
            message.contains("cannot hold CAP_DAC_READ_SEARCH"),
            "{message}"
        );
        let message = with(None).unwrap_err();
        assert!(message.contains("no process.capabilities"), "{message}");
    }

    #[test]
    fn a_bind_that_is_not_the_file_checked_refuses_the_world() {
        use std::os::unix::fs::MetadataExt;
        // This process's own mounts stand in for a world's.
        let pid = std::process::id() as i32;
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("checked")).unwrap();
        fs::create_dir(dir.path().join("swapped")).unwrap();
        symlink(dir.path().join("checked"), dir.path().join("link")).unwrap();
        let checked = fs::metadata(dir.path().join("checked")).unwrap();
        let bind = |name: &str| {
            WritableBinds(vec![Bind {
                destination: dir.path().join(name),
                dev: checked.dev(),
                ino: checked.ino(),
            }])
        };
        bind("checked").verify(pid).unwrap();
        assert!(matches!(
            bind("swapped").verify(pid),
            Err(FilesystemPolicyError::Changed { .. })
        ));
        // A link where the bind was made is never followed.
        assert!(matches!(
            bind("link").verify(pid),
            Err(FilesystemPolicyError::Verify { .. })
        ));
    }

    #[test]
    fn only_an_enforced_policy_that_says_something_is_mounted() {
        let parse = |text: &str| Policy::parse(text).unwrap();
        assert!(enforced(None).is_none());
        assert!(enforced(Some(&parse("version: 1\n"))).is_none());
        assert!(enforced(Some(&parse(
            "version: 1\nfilesystem:\n  deny_read: [/etc/shadow]\n"
        )))
        .is_none());
        assert!(enforced(Some(&parse(
            "version: 1\nmode: observe\nfilesystem:\n  hidden: [/srv]\n"
        )))
        .is_none());
        assert!(enforced(Some(&parse("version: 1\nfilesystem:\n  writable: []\n"))).is_some());
        assert!(enforced(Some(&parse("version: 1\nfilesystem:\n  hidden: [/srv]\n"))).is_some());
    }
}
