//! `substrate-cli policy`: check a policy file, explain its decision for a
//! command, and suggest the narrowest policy that would have allowed what
//! recorded worlds did.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::BufReader;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use substrate_policy::{Action, ExecQuery, Mode, Policy};
use substrate_runtime::Runtime;
use substrate_trace::{read_spans, Detail, NetOp, Outcome, Span};

use super::record;

#[derive(Args, Debug)]
pub struct PolicyArgs {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Validate a policy file: every key and value, with the line and
    /// column of the first mistake; says which sections are enforced today.
    #[command(after_help = "Example: substrate-cli policy check policy.yaml")]
    Check {
        /// The policy (YAML: docs/policy.md).
        file: PathBuf,
    },
    /// Print the decision a policy makes for a command, and the rule that
    /// makes it (the command is looked up on PATH, as exec does).
    #[command(after_help = "Example: substrate-cli policy explain policy.yaml -- git push origin")]
    Explain {
        file: PathBuf,
        /// The command and its arguments (after `--`).
        #[arg(required = true, trailing_var_arg = true)]
        command: Vec<String>,
    },
    /// Propose the narrowest policy that would have allowed what these
    /// recorded worlds did (commands run, paths written, hosts reached), as
    /// commented YAML for a person to review.
    #[command(after_help = "Example: substrate-cli policy suggest build test-1 > policy.yaml")]
    Suggest {
        /// The worlds (ids, as `ps` lists them).
        #[arg(required = true)]
        worlds: Vec<String>,
    },
}

pub fn policy(args: PolicyArgs, runtime: &Runtime) -> Result<u8> {
    match args.command {
        PolicyCommand::Check { file } => {
            let policy = Policy::load(&file)?;
            policy.compile()?;
            println!(
                "{}: a valid policy (version {})",
                file.display(),
                policy.version
            );
            Ok(0)
        }
        PolicyCommand::Explain { file, command } => {
            let policy = Policy::load(&file)?;
            let compiled = policy.compile()?;
            let exe = on_path(&command[0])
                .with_context(|| format!("{:?}: not found on PATH", command[0]))?;
            let sha256 = compiled
                .needs_sha256()
                .then(|| file_sha256(&exe))
                .transpose()?;
            let argv: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
            let decision = compiled.decide_exec(&ExecQuery {
                exe: &exe,
                argv: &argv,
                sha256,
                written_by_world: false,
            });
            println!(
                "{}: {} by {}{}{}",
                exe.display(),
                action_name(decision.action),
                decision.rule,
                decision
                    .reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                match decision.mode {
                    Mode::Observe => " [observe: allowed, recorded as would-be]",
                    Mode::Enforce => "",
                }
            );
            Ok(match decision.action {
                Action::Allow => 0,
                Action::Ask => 2,
                Action::Deny => 1,
            })
        }
        PolicyCommand::Suggest { worlds } => {
            let mut seen = Observed::default();
            for world in &worlds {
                seen.read_world(runtime, world)?;
            }
            print!("{}", seen.suggest(&worlds));
            Ok(0)
        }
    }
}

/// What recorded worlds did, as a policy needs it.
#[derive(Default)]
struct Observed {
    /// Executables run: how often, and one command line.
    commands: BTreeMap<PathBuf, (u64, String)>,
    /// Files created, written, renamed, deleted.
    written: BTreeSet<PathBuf>,
    /// Destinations (`ADDRESS:PORT/PROTO`) reached, by attempts.
    reached: BTreeMap<String, u64>,
    /// Destinations refused while recorded, with the rule.
    blocked: BTreeMap<String, String>,
    /// Names answered, with the addresses they resolved to.
    names: BTreeMap<String, BTreeSet<IpAddr>>,
    /// Names refused while recorded.
    refused_names: BTreeSet<String>,
}

/// Substrate's own init, which every CLI world runs first: not the world's.
const INIT: &str = "/.substrate-init";

impl Observed {
    fn read_world(&mut self, runtime: &Runtime, world: &str) -> Result<()> {
        let record = record(runtime, world)?;
        let path = runtime.store().trace_path(&record.id);
        let file =
            File::open(&path).with_context(|| format!("world {} has no trace", record.id))?;
        for span in read_spans(BufReader::new(file)) {
            match span {
                Ok(span) => self.add(&span),
                Err(e) if e.is_fatal() => {
                    return Err(e).context(format!("reading {}", path.display()))
                }
                Err(_) => {}
            }
        }
        Ok(())
    }

    fn add(&mut self, span: &Span) {
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        let failed = matches!(span.result, Some(Outcome::Returned { errno: Some(_), .. }));
        match &span.detail {
            Detail::Exec => {
                let Some(exe) = span.process.exe.as_deref().map(text) else {
                    return;
                };
                if exe == INIT {
                    return;
                }
                let command_line = span
                    .process
                    .argv
                    .as_deref()
                    .map(|argv| argv.iter().map(|a| text(a)).collect::<Vec<_>>().join(" "))
                    .unwrap_or_default();
                let entry = self
                    .commands
                    .entry(PathBuf::from(exe))
                    .or_insert((0, command_line));
                entry.0 += 1;
            }
            Detail::File(file) if !failed && super::trace::writes(file) => {
                self.written.insert(PathBuf::from(text(&file.path)));
                if let Some(to) = &file.new_path {
                    self.written.insert(PathBuf::from(text(to)));
                }
            }
            Detail::Net(net) if matches!(net.op, NetOp::Connect | NetOp::Sendto) => {
                let (Some(address), Some(port)) = (&net.address, net.port) else {
                    return;
                };
                let Ok(ip) = text(address).parse::<IpAddr>() else {
                    return;
                };
                if ip.is_loopback() {
                    return;
                }
                let transport = net
                    .transport
                    .as_ref()
                    .map(|t| format!("/{t}"))
                    .unwrap_or_default();
                let destination = match ip {
                    IpAddr::V6(_) => format!("[{ip}]:{port}{transport}"),
                    IpAddr::V4(_) => format!("{ip}:{port}{transport}"),
                };
                let egress = span.extra.get("egress");
                let verdict = egress
                    .and_then(|e| e.get("verdict"))
                    .and_then(|v| v.as_str());
                match verdict {
                    Some("deny") => {
                        let rule = egress
                            .and_then(|e| e.get("rule"))
                            .and_then(|r| r.as_str())
                            .unwrap_or_default();
                        self.blocked.insert(destination, rule.to_owned());
                    }
                    // Allowed by a world's table, or (an ungoverned world)
                    // a call that did not fail outright.
                    Some(_) => *self.reached.entry(destination).or_default() += 1,
                    None if !failed || !span.extra.contains_key("refused_by") => {
                        *self.reached.entry(destination).or_default() += 1
                    }
                    None => {}
                }
            }
            Detail::Dns(dns) => {
                let name = text(&dns.query).trim_end_matches('.').to_ascii_lowercase();
                let resolver = span.extra.get("resolver");
                let verdict = resolver
                    .and_then(|r| r.get("verdict"))
                    .and_then(|v| v.as_str());
                match verdict {
                    Some("refused") => {
                        self.refused_names.insert(name);
                    }
                    _ => {
                        let addresses: BTreeSet<IpAddr> =
                            dns.answers.iter().filter_map(|a| a.parse().ok()).collect();
                        if !addresses.is_empty() {
                            self.names.entry(name).or_default().extend(addresses);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// The suggested policy, as commented YAML.
    fn suggest(&self, worlds: &[String]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Suggested by `substrate-cli policy suggest {}`: the narrowest policy that\n\
             # allows what these worlds did. Review every line before using it.",
            worlds.join(" ")
        );
        out.push_str("version: 1\nmode: enforce\n");

        out.push_str("commands:\n  default: deny\n");
        if self.commands.is_empty() {
            out.push_str("  rules: []\n");
        } else {
            out.push_str("  rules:\n");
            for (exe, (count, example)) in &self.commands {
                let _ = writeln!(
                    out,
                    "    # ran {count} time{}, e.g. {}",
                    if *count == 1 { "" } else { "s" },
                    one_line(example)
                );
                let _ = writeln!(
                    out,
                    "    - match: {{ exe: {} }}",
                    quote(&exe.to_string_lossy())
                );
                out.push_str("      action: allow\n");
            }
        }

        let ran_written: Vec<&PathBuf> = self
            .commands
            .keys()
            .filter(|exe| self.written.contains(*exe))
            .collect();
        out.push_str("exec:\n");
        if ran_written.is_empty() {
            out.push_str("  allow_written: false   # no world ran a file it had written\n");
        } else {
            let _ = writeln!(
                out,
                "  # the worlds ran files they had written: {}",
                ran_written
                    .iter()
                    .map(|p| p.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            out.push_str("  allow_written: true\n");
        }

        out.push_str("filesystem:\n");
        let writable = writable_dirs(&self.written);
        if writable.is_empty() {
            out.push_str("  writable: []   # no world wrote a file\n");
        } else {
            out.push_str("  writable:\n");
            for (dir, files) in &writable {
                let _ = writeln!(
                    out,
                    "    - {}   # {} file{}, e.g. {}",
                    quote(&dir.to_string_lossy()),
                    files.len(),
                    if files.len() == 1 { "" } else { "s" },
                    one_line(&files[0].to_string_lossy())
                );
            }
        }

        out.push_str("network:\n  default: deny\n");
        let allow = self.network_allow();
        if allow.is_empty() {
            out.push_str("  allow: []   # no world reached anything\n");
        } else {
            out.push_str("  allow:\n");
            for (entry, note) in &allow {
                let _ = writeln!(out, "    - {}   # {note}", quote(entry));
            }
        }
        if !self.blocked.is_empty() || !self.refused_names.is_empty() {
            out.push_str("  # Refused while recorded (allow them only if they were needed):\n");
            for (destination, rule) in &self.blocked {
                let _ = writeln!(
                    out,
                    "  #   - {}   # refused by: {}",
                    quote(destination),
                    one_line(rule)
                );
            }
            for name in &self.refused_names {
                let _ = writeln!(out, "  #   - {}   # name refused", quote(name));
            }
        }
        out
    }

    /// Allow entries for what was reached: a destination whose address an
    /// answered name resolved to is allowed by that name (with its port),
    /// the rest by address.
    fn network_allow(&self) -> BTreeMap<String, String> {
        let mut allow: BTreeMap<String, String> = BTreeMap::new();
        for (destination, attempts) in &self.reached {
            let Some((address, port)) = split_destination(destination) else {
                continue;
            };
            let name = self
                .names
                .iter()
                .find(|(_, addresses)| addresses.contains(&address))
                .map(|(name, _)| name);
            let entry = match name {
                Some(name) => format!("{name}:{port}"),
                None => destination.clone(),
            };
            let note = allow.entry(entry).or_default();
            let count: u64 = note
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
                + attempts;
            *note = format!("{count} attempt{}", if count == 1 { "" } else { "s" });
        }
        allow
    }
}

/// `ADDRESS:PORT/PROTO` → the address and `PORT/PROTO`.
fn split_destination(destination: &str) -> Option<(IpAddr, &str)> {
    let (address, port) = match destination.strip_prefix('[') {
        Some(rest) => {
            let (address, rest) = rest.split_once(']')?;
            (address, rest.strip_prefix(':')?)
        }
        None => destination.split_once(':')?,
    };
    Some((address.parse().ok()?, port))
}

/// The directories to make writable for `written`: each file's parent,
/// at most three levels deep (`/home/me/project`), without one inside
/// another; with the files each covers.
fn writable_dirs(written: &BTreeSet<PathBuf>) -> BTreeMap<PathBuf, Vec<PathBuf>> {
    let mut dirs: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for file in written {
        let parent = file.parent().unwrap_or(Path::new("/"));
        let dir: PathBuf = parent.components().take(4).collect();
        dirs.entry(dir).or_default().push(file.clone());
    }
    let mut merged: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for (dir, files) in dirs {
        match merged.keys().find(|kept| dir.starts_with(kept)).cloned() {
            Some(kept) => merged.get_mut(&kept).expect("found").extend(files),
            None => {
                merged.insert(dir, files);
            }
        }
    }
    merged
}

/// A YAML double-quoted scalar.
fn quote(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(quoted, "\\u{:04x}", c as u32);
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Text for a comment: one line, at most 80 characters.
fn one_line(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(80)
        .collect();
    if text.chars().count() > 80 {
        format!("{line}…")
    } else {
        line
    }
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Allow => "allowed",
        Action::Ask => "asked",
        Action::Deny => "denied",
    }
}

/// `name` as exec finds it: a path as given, else the first executable
/// on PATH; then with symlinks resolved, as the kernel names what it runs.
fn on_path(name: &str) -> Option<PathBuf> {
    let found = if name.contains('/') {
        Some(PathBuf::from(name))
    } else {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join(name))
            .find(|path| {
                use std::os::unix::fs::PermissionsExt;
                path.metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
    }?;
    std::fs::canonicalize(found).ok()
}

fn file_sha256(path: &Path) -> Result<[u8; 32]> {
    use sha2::{Digest, Sha256};
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher.finalize().into())
}
