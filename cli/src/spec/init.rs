//! The world init: PID 1 of a `substrate-cli run` world unless `--no-init`
//! (`init/world-init.c` says what it does: signals passed on to the
//! command's process group, orphans reaped, the command's status as its
//! own, and the end of the world when its lifeline breaks).
//!
//! It is embedded in this binary (built static by `build.rs`), written once
//! under the state dir, and bind-mounted read-only at [`INIT_PATH`] by the
//! world's spec, so it runs whatever the world's rootfs holds (no libc
//! needed) and the world cannot change it. Its mount point is one of the
//! spec's mounts, which the fs diff leaves out. In the trace it is what it
//! is: the exec span of `/.substrate-init`, the command's parent.

use std::fs;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, FdFlag, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, SFlag};
use nix::sys::statvfs::{statvfs, FsFlags};
use oci_spec::runtime::{MountBuilder, Spec};
use substrate_runtime::{Runtime, WorldId};

/// The init, as `build.rs` built it.
const INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/substrate-init"));

/// Where a world's processes find the init (`/proc/1/exe` in the world).
pub const INIT_PATH: &str = "/.substrate-init";

/// The fd the init reads its lifeline from: the first one
/// `CreateOptions::preserve_fds` passes into the world.
const LIFELINE_FD: RawFd = 3;

/// The PATH a world without one searches, as the init's libc (musl's
/// `execvp`) does.
const DEFAULT_PATH: &str = "/usr/local/bin:/bin:/usr/bin";

/// How the init runs a world's command.
#[derive(Debug, Clone)]
pub struct Init {
    /// The init on the host, the source of its bind mount.
    pub host_path: PathBuf,
    /// The world ends when the `run` that started it does: its init gets
    /// [`Lifeline`]'s read end (a foreground world).
    pub lifeline: bool,
}

impl Init {
    /// Writes the init where worlds take it from (`<state dir>/init/`, on
    /// the first filesystem of the state dir and the runtime root that lets
    /// programs run: a bind mount keeps its source's `noexec`). An existing
    /// copy is replaced only when it differs from this build's, through a
    /// rename, so worlds running the old one are not disturbed.
    pub fn install(runtime: &Runtime, lifeline: bool) -> Result<Init> {
        let candidates = [
            runtime.store().state_dir().join("init"),
            runtime.root().join(".init"),
        ];
        let dir = candidates
            .iter()
            .find(|dir| {
                let fs_of = dir.parent().unwrap_or(dir);
                let _ = fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(fs_of);
                statvfs(fs_of).is_ok_and(|fs| !fs.flags().contains(FsFlags::ST_NOEXEC))
            })
            .with_context(|| {
                format!(
                    "cannot place the world init: {} and {} are on noexec filesystems \
                     (use another --state-dir, or run with --no-init)",
                    candidates[0].display(),
                    candidates[1].display()
                )
            })?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let host_path = dir.join("substrate-init");
        let current = fs::read(&host_path).is_ok_and(|bytes| bytes == INIT)
            && fs::metadata(&host_path).is_ok_and(|m| m.permissions().mode() & 0o7777 == 0o555);
        if !current {
            let temp = dir.join(format!(".substrate-init.{}", std::process::id()));
            let _ = fs::remove_file(&temp);
            let written = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o555)
                .open(&temp)
                .and_then(|mut file| file.write_all(INIT))
                .and_then(|()| fs::rename(&temp, &host_path));
            if let Err(e) = written {
                let _ = fs::remove_file(&temp);
                return Err(e).with_context(|| format!("cannot write {}", host_path.display()));
            }
        }
        Ok(Init {
            host_path,
            lifeline,
        })
    }

    /// Makes the init the world's process, with the command as its
    /// arguments, and mounts it.
    pub fn wrap(&self, spec: &mut Spec) -> Result<()> {
        let mut process = spec.process().clone().unwrap_or_default();
        let mut args = vec![INIT_PATH.to_owned()];
        if self.lifeline {
            args.push(format!("--lifeline={LIFELINE_FD}"));
        }
        args.push("--".to_owned());
        args.extend(process.args().clone().unwrap_or_default());
        process.set_args(Some(args));
        spec.set_process(Some(process));
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        mounts.push(
            MountBuilder::default()
                .destination(INIT_PATH)
                .typ("bind")
                .source(&self.host_path)
                .options(["bind", "ro", "nosuid", "nodev"].map(String::from).to_vec())
                .build()?,
        );
        spec.set_mounts(Some(mounts));
        Ok(())
    }

    /// How many fds from 3 up the world's init is given
    /// (`CreateOptions::preserve_fds`).
    pub fn preserve_fds(&self) -> i32 {
        i32::from(self.lifeline)
    }
}

/// Refuses, before the world exists, a command the init could not run, as
/// libcontainer does for a world's process (which it cannot see past the
/// init): `args[0]` looked up in the world's lower layer `root` (the host's
/// `/`, or the rootfs), on the process's PATH, what the spec hides counting
/// as missing. Only a sure miss is refused: a path under one of the spec's
/// mounts, or on another filesystem than the lower's, is left to the init
/// (which exits 127 if it is not there).
pub fn check_command(id: &WorldId, root: &Path, spec: &Spec) -> Result<()> {
    let process = spec.process().clone().unwrap_or_default();
    let mounts = spec.mounts().clone().unwrap_or_default();
    let masked = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default();
    let Some(name) = process.args().as_ref().and_then(|a| a.first()) else {
        bail!("no command: give one after `--`, e.g. substrate-cli run -- sh -c 'echo hi'");
    };
    let refused = |why: String| -> Result<()> {
        bail!(
            "cannot create container {:?}: executable '{name}' {why}",
            id.as_str()
        )
    };
    let path_var = process
        .env()
        .iter()
        .flatten()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH)
        .to_owned();
    let cwd = process.cwd();
    let candidates: Vec<PathBuf> = if name.contains('/') {
        vec![cwd.join(name)]
    } else {
        path_var
            .split(':')
            .filter(|dir| !dir.is_empty())
            .map(|dir| cwd.join(dir).join(name))
            .collect()
    };
    let root_dir =
        fs::File::open(root).with_context(|| format!("cannot open {}", root.display()))?;
    let mut not_runnable = None;
    for candidate in &candidates {
        let mounted = mounts
            .iter()
            .any(|m| m.destination() != Path::new("/") && candidate.starts_with(m.destination()));
        if mounted {
            return Ok(());
        }
        if masked.iter().any(|m| candidate.starts_with(m)) {
            continue;
        }
        match lookup(&root_dir, candidate) {
            Lookup::Runnable | Lookup::Unknown => return Ok(()),
            Lookup::Missing => {}
            Lookup::NotRunnable => {
                not_runnable.get_or_insert(candidate);
            }
        }
    }
    match not_runnable {
        Some(path) => refused(format!(
            "at {} is not a file the world may run (no execute permission)",
            path.display()
        )),
        None if name.contains('/') => refused("not found".into()),
        None => refused("not found in $PATH".into()),
    }
}

enum Lookup {
    Runnable,
    NotRunnable,
    Missing,
    /// Past what this check can see (another filesystem, a loop of links).
    Unknown,
}

/// What `path` is in the tree under `root` (symlinks resolved inside it,
/// never crossing onto another filesystem, as an overlay's lower does not).
fn lookup(root: &fs::File, path: &Path) -> Lookup {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_IN_ROOT
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
    let fd = match nix::fcntl::openat2(root.as_raw_fd(), path, how) {
        Ok(fd) => fd,
        Err(Errno::ENOENT | Errno::ENOTDIR) => return Lookup::Missing,
        Err(_) => return Lookup::Unknown,
    };
    let stat = fstat(fd);
    let _ = nix::unistd::close(fd);
    match stat {
        Ok(st)
            if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
                && st.st_mode & 0o111 != 0 =>
        {
            Lookup::Runnable
        }
        Ok(_) => Lookup::NotRunnable,
        Err(_) => Lookup::Unknown,
    }
}

/// A foreground world's lifeline: a pipe whose write end only this
/// process holds (close-on-exec), and whose read end is fd 3 when the
/// world is created, so `preserve_fds` passes it to the init. When this
/// process is gone, however it ended, the init reads EOF and ends the
/// world (kernel-enforced: nothing has to run after a SIGKILL).
pub struct Lifeline {
    _write: OwnedFd,
    _read: OwnedFd,
}

impl Lifeline {
    /// Claims fd 3 for the read end. Called first thing in `run`, before
    /// this process opens anything it keeps (the signal handlers' pipe
    /// among them): a descriptor at 3 then is one inherited from our
    /// caller, which would otherwise be passed into the world.
    pub fn claim() -> Result<Lifeline> {
        let (read, write) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC).context("cannot make the world's lifeline")?;
        let read = if read.as_raw_fd() == LIFELINE_FD {
            nix::fcntl::fcntl(LIFELINE_FD, FcntlArg::F_SETFD(FdFlag::empty()))
                .context("cannot pass the lifeline on")?;
            read
        } else {
            // Without O_CLOEXEC: the world's init inherits it.
            let fd = nix::unistd::dup2(read.as_raw_fd(), LIFELINE_FD)
                .context("cannot pass the lifeline on")?;
            // SAFETY: dup2 just made `fd` (3) a new descriptor of the pipe;
            // nothing else in this process owns that number (see above:
            // whatever held it was inherited and is closed by dup2).
            unsafe { OwnedFd::from_raw_fd(fd) }
        };
        Ok(Lifeline {
            _write: write,
            _read: read,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{Mount, Process};

    /// A directory removed when dropped (no tempfile dependency for one
    /// test).
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir()
                .join(format!("substrate-cli-test-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir(&dir).unwrap();
            TempDir(dir)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn spec(process: Process, mounts: Vec<Mount>, masked: Vec<String>) -> Spec {
        let mut spec = Spec::default();
        spec.set_process(Some(process));
        spec.set_mounts(Some(mounts));
        let mut linux = spec.linux().clone().unwrap_or_default();
        linux.set_masked_paths(Some(masked));
        spec.set_linux(Some(linux));
        spec
    }

    fn process(args: &[&str], env: &[&str], cwd: &str) -> Process {
        let mut process = Process::default();
        process.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
        process.set_env(Some(env.iter().map(|s| s.to_string()).collect()));
        process.set_cwd(cwd.into());
        process
    }

    #[test]
    fn commands_are_found_inside_the_root_only() {
        let root = TempDir::new("commands");
        let bin = root.path().join("bin");
        fs::create_dir(&bin).unwrap();
        fs::write(bin.join("tool"), "").unwrap();
        fs::set_permissions(bin.join("tool"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(bin.join("data"), "").unwrap();
        // An absolute link resolves inside the root, not on the host.
        std::os::unix::fs::symlink("/bin/tool", bin.join("link")).unwrap();
        std::os::unix::fs::symlink("/usr/bin/env", bin.join("host")).unwrap();
        let id = WorldId::new("w-test").unwrap();
        let check = |args: &[&str], env: &[&str]| {
            check_command(
                &id,
                root.path(),
                &spec(process(args, env, "/"), vec![], vec![]),
            )
        };
        check(&["tool"], &["PATH=/usr/bin:/bin"]).unwrap();
        check(&["/bin/tool"], &[]).unwrap();
        check(&["link"], &["PATH=/bin"]).unwrap();
        check(&["tool"], &[]).unwrap();
        let missing = check(&["nope"], &["PATH=/bin"]).unwrap_err().to_string();
        assert_eq!(
            missing,
            "cannot create container \"w-test\": executable 'nope' not found in $PATH"
        );
        assert!(check(&["host"], &["PATH=/bin"]).is_err());
        let data = check(&["data"], &["PATH=/bin"]).unwrap_err().to_string();
        assert!(data.contains("at /bin/data is not a file"), "{data}");
        assert!(check(&["/bin"], &[]).is_err());
        // Under a mount of the spec's: the init will tell.
        let mount = MountBuilder::default()
            .destination("/opt/tools")
            .source("/somewhere")
            .typ("bind")
            .build()
            .unwrap();
        let opt = spec(process(&["/opt/tools/x"], &[], "/"), vec![mount], vec![]);
        check_command(&id, root.path(), &opt).unwrap();
        // Hidden: as good as missing.
        let hidden = spec(
            process(&["tool"], &["PATH=/bin"], "/"),
            vec![],
            vec!["/bin/tool".into()],
        );
        assert!(check_command(&id, root.path(), &hidden).is_err());
    }

    #[test]
    fn the_init_wraps_the_command_and_is_mounted() {
        let init = Init {
            host_path: "/var/lib/substrate/init/substrate-init".into(),
            lifeline: true,
        };
        let mut spec = Spec::default();
        let mut process = spec.process().clone().unwrap();
        process.set_args(Some(vec!["sleep".into(), "30".into()]));
        spec.set_process(Some(process));
        init.wrap(&mut spec).unwrap();
        assert_eq!(
            spec.process().as_ref().unwrap().args().as_ref().unwrap(),
            &["/.substrate-init", "--lifeline=3", "--", "sleep", "30"]
        );
        let mount = spec.mounts().as_ref().unwrap().last().unwrap().clone();
        assert_eq!(mount.destination(), Path::new(INIT_PATH));
        assert_eq!(
            mount.options().as_ref().unwrap(),
            &["bind", "ro", "nosuid", "nodev"]
        );
        assert_eq!(init.preserve_fds(), 1);
    }
}
