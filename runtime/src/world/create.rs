//! `create`: set up a world and leave its init process waiting for `start`.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;

use super::{World, WorldMeta, META_FILE};
use crate::bundle::Bundle;
use crate::error::{Error, Result};
use crate::runtime::{validate_id, Runtime};

/// Standard streams for a world's process; `None` inherits the caller's.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

#[derive(Debug, Default)]
pub struct CreateOptions {
    /// Written with the init pid once it exists (runc `--pid-file`).
    pub pid_file: Option<PathBuf>,
    /// AF_UNIX socket that receives the pty master when `process.terminal`.
    pub console_socket: Option<PathBuf>,
    /// Extra fds, from 3 upwards, passed into the world (runc `--preserve-fds`).
    pub preserve_fds: i32,
    /// Use `MS_MOVE` + chroot instead of pivot_root (for ramfs roots).
    pub no_pivot: bool,
    /// `false` only when the caller stays to wait for the init (`run` in the
    /// foreground); `create` always detaches, as runc's does.
    pub detach: bool,
    pub stdio: Stdio,
}

impl Runtime {
    /// Creates the world `id` from the bundle at `bundle`. On failure nothing
    /// is left behind: no state dir, cgroup or process.
    pub fn create(&self, id: &str, bundle: &Path, options: CreateOptions) -> Result<World> {
        validate_id(id)?;
        let dir = self.world_dir(id);
        if dir.exists() {
            return Err(Error::AlreadyExists { id: id.to_owned() });
        }
        let bundle = Bundle::load(bundle)?;
        let linux = bundle
            .spec
            .linux()
            .as_ref()
            .expect("Bundle::load checked linux is present");
        let meta = WorldMeta {
            rootfs: bundle.rootfs(),
            cgroup_path: libcontainer::utils::get_cgroup_path(linux.cgroups_path(), id),
        };

        match self.build(id, &bundle, options) {
            Ok(container) => {
                let world = World::from_container(container);
                write_meta(&dir, &meta).map_err(|e| self.discard(id, &dir, e))?;
                Ok(world)
            }
            Err(e) => Err(self.discard(id, &dir, e)),
        }
    }

    fn build(
        &self,
        id: &str,
        bundle: &Bundle,
        options: CreateOptions,
    ) -> Result<libcontainer::container::Container> {
        let lc = |e| Error::libcontainer(id, "create", e);
        let CreateOptions {
            pid_file,
            console_socket,
            preserve_fds,
            no_pivot,
            detach,
            stdio,
        } = options;
        let mut builder = ContainerBuilder::new(id.to_owned(), SyscallType::Linux)
            .with_root_path(self.root())
            .map_err(lc)?
            .with_pid_file(pid_file.as_ref())
            .map_err(lc)?
            .with_console_socket(console_socket.as_ref())
            .with_preserved_fds(preserve_fds);
        if let Some(fd) = stdio.stdin {
            builder = builder.with_stdin(fd);
        }
        if let Some(fd) = stdio.stdout {
            builder = builder.with_stdout(fd);
        }
        if let Some(fd) = stdio.stderr {
            builder = builder.with_stderr(fd);
        }
        builder
            .as_init(&bundle.path)
            .with_systemd(self.systemd_cgroup())
            .with_detach(detach)
            .with_no_pivot(no_pivot)
            .build()
            .map_err(lc)
    }

    /// Removes what a failed create left. libcontainer cleans up after a
    /// failure once the init process is being set up, but not after one
    /// before that (console socket, user namespace checks), so the state
    /// dir goes here too; a force delete also takes any cgroup or process.
    fn discard(&self, id: &str, dir: &Path, primary: Error) -> Error {
        if !dir.exists() {
            return primary;
        }
        let cleanup = match self.world(id) {
            Ok(world) => world.delete(true),
            Err(_) => {
                fs::remove_dir_all(dir).map_err(|e| Error::io("cannot remove state dir", dir, e))
            }
        };
        match cleanup {
            Ok(()) => primary,
            Err(cleanup) => Error::WithCleanup {
                primary: Box::new(primary),
                cleanup: Box::new(cleanup),
            },
        }
    }
}

/// Written atomically (temp file + rename) so a reader never sees half of it.
fn write_meta(dir: &Path, meta: &WorldMeta) -> Result<()> {
    let path = dir.join(META_FILE);
    let tmp = dir.join(format!(".{META_FILE}.tmp"));
    let bytes = serde_json::to_vec(meta).expect("WorldMeta serializes");
    fs::write(&tmp, bytes).map_err(|e| Error::io("cannot write world metadata", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| Error::io("cannot write world metadata", &path, e))
}
