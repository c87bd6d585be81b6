//! `substrate-cli`: run a command in a new world and see what it did.

mod approver;
mod commands;
mod spec;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use substrate_runtime::{Runtime, WorldStore, DEFAULT_ROOT};

/// What `substrate-cli --help` says after the commands.
const EXAMPLES: &str = "\
WORLD, in the commands that take one, is a world's id: the --name given to
`run`, or the id it made (w-0193a5f0c2d14e7b), as `substrate-cli ps` lists it.

Examples:
  substrate-cli doctor                         can worlds run on this host?
  substrate-cli run -- sh -c 'echo hi > /tmp/x; rm -f /etc/motd'
                                               a command in a world over this host's /
  substrate-cli run --name build -- make       the same, with a name to find it by
  substrate-cli ps                             every world, running and finished
  substrate-cli diff build                     what it added (A), changed (C), deleted (D)
  substrate-cli trace build                    what ran in it, as a process tree
  substrate-cli verify build                   are its trace and record whole and unaltered?
  substrate-cli graph tree build               its process tree from the span graph, with files,
                                               connections and policy decisions
  substrate-cli export otlp --endpoint http://localhost:4318 build
                                               its trace to an OpenTelemetry collector
  substrate-cli rm build                       its record, trace and files gone";

#[derive(Parser, Debug)]
#[command(
    name = "substrate-cli",
    version,
    about = "Run commands in recorded worlds: containers whose file changes and \
             processes are kept, to diff, trace and inspect",
    after_help = EXAMPLES
)]
struct Cli {
    /// Runtime state root (substrate-runtime's --root).
    #[arg(long, global = true, default_value = DEFAULT_ROOT)]
    root: PathBuf,
    /// Where world records are kept [default: $SUBSTRATE_STATE_DIR, else /var/lib/substrate].
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a command in a new world, then record its diff and trace.
    #[command(long_about = RUN_ABOUT)]
    Run(commands::run::RunArgs),
    /// Stop a running world: SIGTERM to its command, SIGKILL after --timeout.
    #[command(after_help = "Example: substrate-cli stop --timeout 5 build")]
    Stop(commands::stop::StopArgs),
    /// Send a signal to a running world's command [default: SIGKILL].
    #[command(after_help = "Example: substrate-cli kill build TERM")]
    Kill(commands::kill::KillArgs),
    /// List worlds, running and finished: status, times, files changed, command.
    Ps(commands::ps::PsArgs),
    /// Show what a world added (A), changed (C) and deleted (D), as `docker diff` does.
    #[command(after_help = "Example: substrate-cli diff build")]
    Diff(commands::diff::DiffArgs),
    /// Print a world's record (docs/world-record.md) as JSON, with its live status.
    #[command(after_help = "Example: substrate-cli inspect build")]
    Inspect(commands::inspect::InspectArgs),
    /// Remove finished worlds: their records, traces, diffs and files.
    #[command(after_help = "Example: substrate-cli rm build test-1")]
    Rm(commands::rm::RmArgs),
    /// Remove the records of old finished worlds, by age or by count.
    #[command(after_help = "Example: substrate-cli gc --older-than 7d --keep-last 20")]
    Gc(commands::gc::GcArgs),
    /// Show what ran in a world: its process tree with argv, exit, time, files, network.
    #[command(after_help = "Example: substrate-cli trace build")]
    Trace(commands::trace::TraceArgs),
    /// Check that a world's trace and record are whole and unaltered (its hash chain).
    #[command(
        after_help = "Exit status: 0 whole and unaltered (so far, for a running world), \
                      1 not, naming the first line that is not, 2 cannot be read.\n\n\
                      Example: substrate-cli verify build"
    )]
    Verify(commands::verify::VerifyArgs),
    /// Export worlds' traces as OpenTelemetry traces: to an OTLP collector, or an OTLP JSON file.
    #[command(long_about = EXPORT_ABOUT)]
    Export(commands::export::ExportArgs),
    /// Answer a running world's `ask`s: allow once, for the world, or deny.
    #[command(after_help = "Example: substrate-cli approve build --verdict once")]
    Approve(commands::approve::ApproveArgs),
    /// Work with policies: suggest one from recorded worlds.
    Policy(commands::policy::PolicyArgs),
    /// Query the span graph: process trees, who wrote a path, what a process changed,
    /// connections, suspicious chains (`substrate-cli graph --help`).
    #[command(after_help = "Example: substrate-cli graph who-wrote /etc/passwd")]
    Graph(commands::graph::GraphArgs),
    /// Check this host: kernel, cgroups, tools and dirs a world needs.
    #[command(long_about = commands::doctor::ABOUT)]
    Doctor(commands::doctor::DoctorArgs),
}

/// `run --help`'s opening: what it does, with examples.
const RUN_ABOUT: &str = "\
Run a command in a new world, then record its diff and trace.

The command is what follows `--` (or the first word that is not a flag).
Without --bundle or --rootfs the world's lower layer is this host's own /,
read-only: every write lands in the world's upper layer, shown by
`substrate-cli diff`. The command's output streams here; `run` exits with
its status (128+N for signal N; 125 when Substrate itself fails) and prints
a one-line summary on stderr.

Examples:
  substrate-cli run -- sh -c 'echo hi > /tmp/x'
  substrate-cli run --name build --memory 4g --cpus 2 -- make -j2
  substrate-cli run --bundle target/bundles/busybox -- sh -c 'touch /hello'
  substrate-cli run --keep -- make install     (--keep: the files stay to look at)";

/// `export --help`'s opening.
const EXPORT_ABOUT: &str = "\
Export worlds' traces as OpenTelemetry traces: one trace per world, its
processes, files, network and decisions as spans with their parent links,
attributes named after OpenTelemetry's semantic conventions (docs/export.md).

`otlp` sends them to an OTLP/HTTP collector (Jaeger, Tempo, the OpenTelemetry
Collector); `otlp-json` writes the OTLP JSON file format. Without WORLDs,
every world that has ended. A node whose /etc/substrate/config.yaml names a
collector (export: {otlp: {endpoint: URL}}) exports each world as it ends.

The exporter is the substrate-export binary, installed beside substrate-cli
(`cargo build -p substrate-export`; `make build` and `make install` do).

Examples:
  substrate-cli export otlp --endpoint http://localhost:4318 build
  substrate-cli export otlp-json worlds.otlp.jsonl";

/// `run`'s own failures exit with this (as `docker run`), so they are told
/// apart from the command's exit statuses.
const RUN_FAILED: u8 = 125;

fn main() -> ExitCode {
    // Output piped into `head` ends quietly, as other command-line tools do,
    // instead of a panic on EPIPE. (`run` catches SIGPIPE again to pass it
    // on to the world.)
    // SAFETY: restoring the default disposition of SIGPIPE, before any
    // thread exists, installs no handler code.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
    let _fail_points = substrate_runtime::fail_points();
    let cli = Cli::parse();
    let store = cli
        .state_dir
        .map(WorldStore::new)
        .unwrap_or_else(WorldStore::from_env);
    let runtime = Runtime::new(cli.root).with_store(store);
    let (result, failure) = match cli.command {
        Command::Run(args) => (commands::run::run(args, &runtime), RUN_FAILED),
        Command::Stop(args) => (commands::stop::stop(args, &runtime), 1),
        Command::Kill(args) => (commands::kill::kill(args, &runtime), 1),
        Command::Approve(args) => (commands::approve::approve(args, &runtime), 1),
        Command::Ps(args) => (commands::ps::ps(args, &runtime).map(|()| 0), 1),
        Command::Diff(args) => (commands::diff::diff(args, &runtime).map(|()| 0), 1),
        Command::Inspect(args) => (commands::inspect::inspect(args, &runtime).map(|()| 0), 1),
        Command::Rm(args) => (commands::rm::rm(args, &runtime), 1),
        Command::Gc(args) => (commands::gc::gc(args, &runtime), 1),
        Command::Trace(args) => (commands::trace::trace(args, &runtime).map(|()| 0), 1),
        Command::Verify(args) => (commands::verify::verify(args, &runtime), 2),
        Command::Export(args) => (commands::export::export(args, &runtime), 1),
        Command::Doctor(args) => (commands::doctor::doctor(args, &runtime), 1),
        Command::Policy(args) => (commands::policy::policy(args, &runtime), 1),
        Command::Graph(args) => (commands::graph::graph(args, &runtime), 1),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("substrate-cli: {}", substrate_runtime::one_line(e.as_ref()));
            ExitCode::from(failure)
        }
    }
}
