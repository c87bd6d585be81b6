//! `substrate-runtime`: runc's command line over the Substrate runtime
//! library, so that containerd's runc shim, podman and Docker drive worlds
//! unchanged.

mod commands;
mod logging;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use liboci_cli::{CommonCmd, GlobalOpts, StandardCmd};
use substrate_runtime::{Runtime, DEFAULT_ROOT};

/// What `substrate-runtime --help` says after the commands.
const AFTER_HELP: &str = "\
ID is a world's id (runc's container id): letters, digits, '_', '+', '-', '.'.
Exit status: 1 when the runtime fails (one line on stderr says why); `run`
and `exec` exit with the process's status (128+N for signal N).

Environment (the caller's, never a bundle's):
  SUBSTRATE_ROOTFS=overlay   a plain-directory rootfs gets Substrate's overlay:
                             the bundle is not written, writes are diffed and
                             the preload tracer is injected [default: in-place,
                             as runc]
  SUBSTRATE_STATE_DIR=DIR    where world records and traces are kept
                             [default: /var/lib/substrate]
  SUBSTRATE_CONFIG_DIR=DIR   the node's egress policies: policy.yaml (the
                             default) and policies/NAME.yaml, which a bundle
                             chooses by annotation io.substrate.policy and
                             may narrow by io.substrate.policy.inline
                             [default: /etc/substrate]
  SUBSTRATE_TRACE=off        run worlds untraced
  SUBSTRATE_PRELOAD=PATH|off the preload tracer to inject, or none

Example (podman): podman --runtime /usr/local/bin/substrate-runtime run --rm IMAGE CMD";

#[derive(Parser, Debug)]
#[command(
    name = "substrate-runtime",
    version,
    about = "Substrate's OCI runtime: runc's command line over worlds (containers that are \
             recorded and governed), for containerd, podman and Docker",
    after_help = AFTER_HELP
)]
struct Opts {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    #[command(flatten)]
    Standard(Box<StandardCmd>),
    #[command(flatten)]
    Common(Box<CommonCmd>),
    /// The detached per-world monitor that `create` starts.
    #[command(hide = true)]
    Monitor(commands::monitor::MonitorArgs),
}

fn main() -> ExitCode {
    let _fail_points = substrate_runtime::fail_points();
    let matches = with_our_help(Opts::command()).get_matches();
    let opts = Opts::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let format = match logging::LogFormat::parse(opts.global.log_format.as_deref()) {
        Ok(format) => format,
        Err(e) => return fatal(&e, false),
    };
    if let Err(e) = logging::init(opts.global.log.as_deref(), format, opts.global.debug) {
        return fatal(&e, false);
    }
    let logs_elsewhere = opts
        .global
        .log
        .as_deref()
        .is_some_and(|p| p != std::path::Path::new("/dev/stderr"));
    let runtime = Runtime::new(
        opts.global
            .root
            .clone()
            .unwrap_or_else(|| DEFAULT_ROOT.into()),
    )
    .with_systemd_cgroup(opts.global.systemd_cgroup);
    match commands::run(opts.command, &runtime) {
        Ok(code) => ExitCode::from(code),
        Err(e) => fatal(&e, logs_elsewhere),
    }
}

/// Reports a failure: one plain line on stderr for whoever ran the command
/// (podman and containerd's shims show it), and, when `--log` names a file,
/// the same message as a runc-shaped `error` entry there, which containerd's
/// runc shim reads to say why a call failed. Exit status 1, as runc.
fn fatal(e: &anyhow::Error, logs_elsewhere: bool) -> ExitCode {
    let message = substrate_runtime::one_line(e.as_ref());
    if logs_elsewhere {
        tracing::error!("{message}");
    }
    eprintln!("substrate-runtime: {message}");
    ExitCode::FAILURE
}

/// The id every subcommand but `list`, `features` and `spec` takes.
const ID_HELP: &str = "The world's id (runc's container id)";

/// An argument's id and our description of it.
type ArgHelp = (&'static str, &'static str);

/// Our one-line description of each subcommand and each of its arguments,
/// in place of liboci-cli's (which speak of youki and have typos). `None`
/// hides a subcommand.
const SUBCOMMANDS: &[(&str, Option<&str>, &[ArgHelp])] = &[
    (
        "create",
        Some("Create a world from an OCI bundle, ready to `start`; a monitor process traces it"),
        &[
            ("bundle", "The bundle directory, holding config.json and the rootfs"),
            ("console_socket", "A Unix socket to send the pty master to (for process.terminal)"),
            ("pid_file", "Write the world's init pid to this file"),
            ("no_pivot", "Enter the rootfs by moving it over / instead of pivot_root (for a rootfs on a ramdisk)"),
            ("no_new_keyring", "Accepted for runc compatibility; ignored"),
            ("preserve_fds", "Pass N more open fds into the world, from fd 3 (after $LISTEN_FDS)"),
            ("container_id", ID_HELP),
        ],
    ),
    ("start", Some("Start a created world's process"), &[("container_id", ID_HELP)]),
    ("state", Some("Print a world's state as the OCI runtime spec's JSON"), &[("container_id", ID_HELP)]),
    (
        "kill",
        Some("Send a signal to a world's init (--all: to every process in it)"),
        &[
            ("container_id", ID_HELP),
            ("signal", "The signal, by name or number: TERM, SIGKILL, 9"),
            ("all", "Send it to every process in the world, not only its init"),
        ],
    ),
    (
        "delete",
        Some("Delete a stopped world: its processes, cgroup, mounts and state dir"),
        &[
            ("container_id", ID_HELP),
            ("force", "Kill the world first (SIGKILL) if it is still running"),
        ],
    ),
    // Not supported (no CRIU integration): not offered.
    ("checkpointt", None, &[]),
    (
        "events",
        Some("Print a world's resource use as JSON lines, one per interval, until it stops"),
        &[
            ("interval", "Seconds between two samples"),
            ("stats", "Print one sample and exit"),
            ("container_id", ID_HELP),
        ],
    ),
    (
        "exec",
        Some("Run another process in a running world (traced as the world's own)"),
        &[
            ("console_socket", "A Unix socket to send the pty master to (with --tty)"),
            ("cwd", "The process's working directory in the world"),
            ("env", "Set KEY=VALUE in the process's environment; repeatable"),
            ("tty", "Give the process a pseudo-terminal"),
            ("user", "Run the process as UID[:GID]"),
            ("additional_gids", "Add a supplementary group id; repeatable"),
            ("process", "Read the process (the runtime spec's process object) from this JSON file"),
            ("detach", "Return at once, leaving the process running"),
            ("pid_file", "Write the process's pid to this file"),
            ("process_label", "Accepted for runc compatibility; the world's SELinux label is used"),
            ("apparmor", "Accepted for runc compatibility; the world's AppArmor profile is used"),
            ("no_new_privs", "Set no_new_privs: the process cannot gain privileges (setuid)"),
            ("cap", "Add a capability to the process (CAP_NET_ADMIN); repeatable"),
            ("preserve_fds", "Pass N more open fds into the process, from fd 3"),
            ("ignore_paused", "Run the process even if the world is paused"),
            ("cgroup", "Put the process in this sub-cgroup of the world's cgroup"),
            ("container_id", ID_HELP),
            ("command", "The command and its arguments"),
        ],
    ),
    (
        "features",
        Some("Print what this runtime supports, as runc's `features` JSON"),
        &[],
    ),
    (
        "list",
        Some("List the worlds under --root"),
        &[
            ("format", "table, or json (each world's state)"),
            ("quiet", "Print only the ids"),
        ],
    ),
    ("pause", Some("Freeze every process in a world"), &[("container_id", ID_HELP)]),
    (
        "ps",
        Some("Show a world's processes (ps(1)'s lines for them, or their pids as JSON)"),
        &[
            ("format", "table (ps(1)'s own columns), or json (the pids)"),
            ("container_id", ID_HELP),
            ("ps_options", "Options for ps(1) [default: -ef]"),
        ],
    ),
    ("resume", Some("Thaw a paused world"), &[("container_id", ID_HELP)]),
    (
        "run",
        Some("Create a world and start it; wait for it and delete it unless --detach"),
        &[
            ("bundle", "The bundle directory, holding config.json and the rootfs"),
            ("console_socket", "A Unix socket to send the pty master to (for process.terminal)"),
            ("pid_file", "Write the world's init pid to this file"),
            ("no_subreaper", "Do not make this process a subreaper of the world's orphans"),
            ("no_pivot", "Enter the rootfs by moving it over / instead of pivot_root (for a rootfs on a ramdisk)"),
            ("no_new_keyring", "Accepted for runc compatibility; ignored"),
            ("preserve_fds", "Pass N more open fds into the world, from fd 3 (after $LISTEN_FDS)"),
            ("keep", "Keep the world's state dir and cgroup after it exits (until `delete`)"),
            ("container_id", ID_HELP),
            ("detach", "Start the world and return; a monitor process traces it"),
        ],
    ),
    (
        "update",
        Some("Change a running world's resource limits"),
        &[
            ("resources", "Read the limits (the runtime spec's linux.resources object) from this JSON file, or - for stdin; the flags below are then ignored"),
            ("blkio_weight", "Block I/O weight, 10 to 1000"),
            ("cpu_period", "CPU period, in microseconds"),
            ("cpu_quota", "CPU time the world may use per period, in microseconds"),
            ("cpu_rt_period", "Real-time CPU period, in microseconds"),
            ("cpu_rt_runtime", "Real-time CPU time per period, in microseconds"),
            ("cpu_share", "CPU shares, relative to other cgroups"),
            ("cpuset_cpus", "CPUs the world may run on: a list with ranges, e.g. 0-3,7"),
            ("cpuset_mems", "Memory nodes the world may use, in the same form"),
            ("memory", "Memory limit, in bytes"),
            ("memory_reservation", "Memory soft limit, in bytes"),
            ("memory_swap", "Memory plus swap limit, in bytes; -1 for unlimited swap"),
            ("pids_limit", "Limit on processes and threads"),
            ("l3_cache_schema", "Intel RDT L3 cache schema: refused (RDT is not managed)"),
            ("mem_bw_schema", "Intel RDT memory bandwidth schema: refused (RDT is not managed)"),
            ("container_id", ID_HELP),
        ],
    ),
    (
        "spec",
        Some("Write a default config.json into a bundle directory"),
        &[
            ("bundle", "The bundle directory [default: .]"),
            ("rootless", "Write one for a rootless container (a user namespace mapping your ids)"),
        ],
    ),
];

/// Our descriptions of the global flags (liboci-cli's name youki).
const GLOBAL_ARGS: &[ArgHelp] = &[
    ("log", "Write log lines to this file instead of stderr (containerd's runc shim reads errors from it)"),
    ("debug", "Log at debug level"),
    ("log_format", "Log line format: text (default), or json (runc's {level, msg, time})"),
    ("root", "Where worlds' runtime state is kept [default: /run/substrate]"),
    ("systemd_cgroup", "Manage cgroups through systemd (cgroupsPath is slice:prefix:name) instead of the cgroup filesystem"),
];

/// `cmd` with our help text on every subcommand and argument. The order of
/// subcommands and arguments is kept (positional arguments are matched by
/// it).
fn with_our_help(cmd: clap::Command) -> clap::Command {
    let describe = |texts: &'static [ArgHelp]| {
        move |arg: clap::Arg| match texts.iter().find(|(id, _)| arg.get_id() == *id) {
            Some((_, text)) => arg.help(*text),
            None => arg,
        }
    };
    cmd.mut_args(describe(GLOBAL_ARGS)).mut_subcommands(|sub| {
        match SUBCOMMANDS
            .iter()
            .find(|(name, ..)| sub.get_name() == *name)
        {
            Some((_, None, _)) => sub.hide(true),
            Some((_, Some(about), args)) => sub
                .about(*about)
                .long_about(None::<&str>)
                .mut_args(describe(args)),
            None => sub,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every visible subcommand and argument has our text, and none of
    /// liboci-cli's is left.
    #[test]
    fn every_subcommand_and_argument_has_our_help() {
        let cmd = with_our_help(Opts::command());
        cmd.clone().debug_assert();
        for arg in cmd.get_arguments() {
            assert!(
                GLOBAL_ARGS.iter().any(|(id, _)| arg.get_id() == *id)
                    || ["help", "version"].contains(&arg.get_id().as_str()),
                "global {} has liboci-cli's help",
                arg.get_id()
            );
        }
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            let (_, _, args) = SUBCOMMANDS
                .iter()
                .find(|(name, ..)| sub.get_name() == *name)
                .unwrap_or_else(|| panic!("{} has no help of ours", sub.get_name()));
            for arg in sub.get_arguments().filter(|a| a.get_id() != "help") {
                assert!(
                    args.iter().any(|(id, _)| arg.get_id() == *id),
                    "{} {} has liboci-cli's help",
                    sub.get_name(),
                    arg.get_id()
                );
            }
        }
    }
}
