//! `exec`: start another process inside a running world.

use std::fs;
use std::path::PathBuf;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::unistd::Pid;
use oci_spec::runtime::{Process, Spec};

use super::{Stdio, World};
use crate::bundle::describe_io;
use crate::error::{Error, Result};
use crate::runtime::{ensure_single_threaded, Runtime};
use crate::state::WorldStatus;

/// What to run and how, as runc's `exec` flags say it. A `process` file
/// (OCI `process` JSON) replaces `args`, `env`, `cwd`, `user` and `tty`.
#[derive(Debug, Default)]
pub struct ExecOptions {
    pub process: Option<PathBuf>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<PathBuf>,
    pub user: Option<u32>,
    pub group: Option<u32>,
    pub additional_gids: Vec<u32>,
    pub tty: bool,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: i32,
    pub no_new_privs: bool,
    pub capabilities: Vec<String>,
    pub detach: bool,
    pub ignore_paused: bool,
    pub sub_cgroup: Option<String>,
    pub stdio: Stdio,
}

impl World {
    /// Starts a process in this world and returns its host pid. The caller
    /// is its parent and must wait for it unless `detach` was set.
    pub fn exec(&self, runtime: &Runtime, options: ExecOptions) -> Result<Pid> {
        ensure_single_threaded("exec into a world")?;
        let id = self.id().to_string();
        match self.status() {
            WorldStatus::Running | WorldStatus::Created => {}
            WorldStatus::Paused if options.ignore_paused => {}
            _ => return Err(self.incorrect_status("exec into it")),
        }
        // What governs the world, an exec may not undo: its process is
        // refused a capability the world could not hold either.
        let forbidden = runtime
            .store()
            .record(self.id())
            .map(|record| super::capabilities::forbidden_in(&record))
            .unwrap_or_default();
        if let Some(forbidden) = forbidden.iter().find(|f| {
            options.capabilities.iter().any(|cap| {
                cap.eq_ignore_ascii_case(f.name)
                    || format!("CAP_{cap}").eq_ignore_ascii_case(f.name)
            })
        }) {
            return Err(Error::UnsupportedConfig {
                path: PathBuf::from("--cap"),
                reason: format!(
                    "world {id} is governed: a process in it cannot hold {}: {}",
                    forbidden.name, forbidden.why
                ),
            });
        }
        let process_file = match &options.process {
            Some(path) => {
                let process = check_process_file(path)?;
                if let Some(forbidden) = forbidden
                    .iter()
                    .find(|f| super::capabilities::may_hold(&process, f.capability))
                {
                    return Err(Error::UnsupportedConfig {
                        path: path.clone(),
                        reason: format!(
                            "world {id} is governed: a process in it cannot hold {}: {}; \
                             drop it from capabilities (a process without that list \
                             keeps them all)",
                            forbidden.name, forbidden.why
                        ),
                    });
                }
                Some(path.clone())
            }
            None if options.args.is_empty() => {
                return Err(Error::ProcessFile {
                    path: PathBuf::from("-"),
                    reason: "no --process file and no command given".into(),
                })
            }
            // libcontainer takes a terminal only from a process file; write
            // one derived from the world's own process, as runc does for `-t`.
            None if options.tty => Some(self.tty_process_file(&options)?),
            None => None,
        };
        let lc = |e| Error::libcontainer(&id, "exec into", e);
        let ExecOptions {
            args,
            env,
            cwd,
            user,
            group,
            additional_gids,
            console_socket,
            pid_file,
            preserve_fds,
            no_new_privs,
            capabilities,
            detach,
            ignore_paused,
            sub_cgroup,
            stdio,
            ..
        } = options;
        let builder = ContainerBuilder::new(id.clone(), SyscallType::Linux)
            .with_root_path(runtime.root())
            .map_err(lc)?
            .with_console_socket(console_socket.as_ref())
            .with_pid_file(pid_file.as_ref())
            .map_err(lc)?
            .with_preserved_fds(preserve_fds);
        stdio
            .apply(builder)
            .as_tenant()
            .with_detach(detach)
            .with_cwd(cwd.as_ref())
            .with_env(env.into_iter().collect())
            .with_process(process_file.as_ref())
            .with_no_new_privs(no_new_privs)
            .with_container_args(args)
            .with_additional_gids(additional_gids)
            .with_user(user)
            .with_group(group)
            .with_capabilities(capabilities)
            .with_ignore_paused(ignore_paused)
            .with_sub_cgroup(sub_cgroup)
            .build()
            .map_err(lc)
    }

    fn tty_process_file(&self, options: &ExecOptions) -> Result<PathBuf> {
        let config = self.bundle().join("config.json");
        let spec = Spec::load(&config).map_err(|e| Error::Bundle {
            path: self.bundle().to_owned(),
            reason: format!("config.json: {e}"),
        })?;
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_args(Some(options.args.clone()));
        process.set_terminal(Some(true));
        if let Some(cwd) = &options.cwd {
            process.set_cwd(cwd.clone());
        }
        let mut env = process.env().clone().unwrap_or_default();
        for (key, value) in &options.env {
            env.retain(|e| e.split_once('=').map(|(k, _)| k) != Some(key.as_str()));
            env.push(format!("{key}={value}"));
        }
        process.set_env(Some(env));
        let path = self
            .state_dir()
            .join(format!("exec-{}.json", std::process::id()));
        let bytes = serde_json::to_vec(&process).expect("Process serializes");
        fs::write(&path, bytes)
            .map_err(|e| Error::io("cannot write exec process file", &path, e))?;
        Ok(path)
    }
}

/// A process file is parsed here so that a bad one is reported by its path
/// and the JSON error, before any process is started.
fn check_process_file(path: &PathBuf) -> Result<Process> {
    let bad = |reason: String| Error::ProcessFile {
        path: path.clone(),
        reason,
    };
    let bytes = fs::read(path).map_err(|e| bad(describe_io(&e)))?;
    let process: Process =
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("malformed: {e}")))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(bad("args: empty (nothing to run)".into()));
    }
    Ok(process)
}
