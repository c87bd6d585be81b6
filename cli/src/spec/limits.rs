//! The resource limits of a CLI world (`--memory`, `--cpus`, `--pids`):
//! defaults an agent's build can live with, each changeable or liftable
//! (`unlimited`), written into `linux.resources`.
//!
//! A world that reaches one fails inside itself: at `pids` a fork or thread
//! gets EAGAIN; at `memory` the kernel's OOM killer kills a process of the
//! world (swap is held to the same limit, so it cannot page out instead);
//! `cpus` throttles the world to that many CPUs' worth of time.

use std::str::FromStr;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxMemory, LinuxPids, LinuxResources};

/// The default process (and thread) limit: room for a parallel build's
/// compilers and their threads, far from a fork bomb's thousands.
pub const DEFAULT_PIDS: i64 = 1024;

/// The default memory limit is half the host's RAM, at most this.
pub const DEFAULT_MEMORY_CAP: u64 = 2 << 30;

/// The CFS period a CPU limit is expressed in (Docker's and runc's).
const CPU_PERIOD_US: u64 = 100_000;

/// Docker's floor: below it a world cannot even start its init.
const MIN_MEMORY: u64 = 6 << 20;

/// One limit as the user gave it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Limit<T> {
    /// The default for this host.
    Default,
    /// Lifted: the world gets no limit of its own (its parent cgroup's
    /// still apply).
    Unlimited,
    Set(T),
}

// Not derived: the derive would ask for `T: Default`.
#[allow(clippy::derivable_impls)]
impl<T> Default for Limit<T> {
    fn default() -> Self {
        Limit::Default
    }
}

/// A byte count: `1073741824`, `512m`, `1g`, `1.5g`, `2GiB`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes(pub u64);

/// A number of CPUs: `1.5` is one and a half CPUs' time per period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cpus(pub f64);

/// A number of processes and threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pids(pub i64);

fn parse_limit<T>(
    s: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Limit<T>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("unlimited") || s.eq_ignore_ascii_case("max") {
        Ok(Limit::Unlimited)
    } else {
        parse(s).map(Limit::Set)
    }
}

impl FromStr for Limit<Bytes> {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_limit(s, |s| {
            let bytes = parse_bytes(s)?;
            if bytes < MIN_MEMORY {
                return Err(format!(
                    "{s} is below the 6 MiB a world needs to start (or say `unlimited`)"
                ));
            }
            Ok(Bytes(bytes))
        })
    }
}

impl FromStr for Limit<Cpus> {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_limit(s, |s| match s.parse::<f64>() {
            Ok(n) if n.is_finite() && n >= 0.01 => Ok(Cpus(n)),
            _ => Err(format!(
                "{s:?} is not a number of CPUs of at least 0.01, e.g. 1.5 (or `unlimited`)"
            )),
        })
    }
}

impl FromStr for Limit<Pids> {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_limit(s, |s| match s.parse::<i64>() {
            Ok(n) if n >= 1 => Ok(Pids(n)),
            _ => Err(format!(
                "{s:?} is not a number of processes of at least 1 (or `unlimited`)"
            )),
        })
    }
}

/// `1073741824`, `512k`, `512m`, `1g`, `1.5g`, `1t`; `b`, `kb`/`kib`, ... as
/// suffixes too; powers of 1024, as Docker's `--memory`.
fn parse_bytes(s: &str) -> Result<u64, String> {
    let lower = s.to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(split);
    let shift = match unit.trim() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "{s:?}: unknown unit (use b, k, m, g or t, e.g. 512m)"
            ))
        }
    };
    let bad = || format!("{s:?} is not a size, e.g. 512m, 2g or 1073741824");
    if number.is_empty() {
        return Err(bad());
    }
    if let Ok(whole) = number.parse::<u64>() {
        return whole
            .checked_shl(shift)
            .filter(|b| b >> shift == whole)
            .ok_or_else(bad);
    }
    let value = number.parse::<f64>().map_err(|_| bad())? * (1u64 << shift) as f64;
    if !value.is_finite() || value >= u64::MAX as f64 {
        return Err(bad());
    }
    Ok(value as u64)
}

/// The limits a world gets, once the defaults are resolved for this host.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    pub memory: Option<u64>,
    pub cpus: Option<f64>,
    pub pids: Option<i64>,
}

/// What the host offers, which sizes the defaults.
#[derive(Clone, Copy, Debug)]
pub struct Host {
    pub memory: u64,
    pub cpus: usize,
    /// The kernel accounts swap per cgroup (`memory.memsw.*` on v1,
    /// `memory.swap.max` on v2): the memory limit can hold swap too.
    pub swap_accounting: bool,
}

impl Host {
    pub fn probe() -> Result<Host> {
        let meminfo =
            std::fs::read_to_string("/proc/meminfo").context("cannot read /proc/meminfo")?;
        let memory = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib << 10)
            .context("/proc/meminfo has no MemTotal")?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Host {
            memory,
            cpus,
            swap_accounting: swap_accounting(),
        })
    }
}

/// Whether a cgroup's swap can be limited here: v1 has
/// `memory.memsw.limit_in_bytes` only with swap accounting on; v2 has
/// `memory.swap.max` in non-root cgroups unless it is off
/// (`swapaccount=0`, `cgroup.memory=noswap`).
fn swap_accounting() -> bool {
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory");
    if v1.join("memory.limit_in_bytes").exists() {
        return v1.join("memory.memsw.limit_in_bytes").exists();
    }
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return false;
    };
    entries
        .flatten()
        .any(|e| e.path().join("memory.swap.max").exists())
}

impl Limits {
    /// `memory`, `cpus` and `pids` as given, the defaults filled in for
    /// `host`: memory half the RAM up to 2 GiB, CPUs all but one (the host
    /// keeps a CPU for itself and for the monitor tracing the world), 1024
    /// processes.
    pub fn resolve(
        memory: Limit<Bytes>,
        cpus: Limit<Cpus>,
        pids: Limit<Pids>,
        host: &Host,
    ) -> Result<Limits> {
        let memory = match memory {
            Limit::Default => Some((host.memory / 2).min(DEFAULT_MEMORY_CAP)),
            Limit::Unlimited => None,
            Limit::Set(Bytes(b)) => Some(b),
        };
        let cpus = match cpus {
            Limit::Default => Some(host.cpus.saturating_sub(1).max(1) as f64),
            Limit::Unlimited => None,
            Limit::Set(Cpus(n)) if n > host.cpus as f64 => bail!(
                "--cpus {n}: this host has {} CPUs (use at most that, or `unlimited`)",
                host.cpus
            ),
            Limit::Set(Cpus(n)) => Some(n),
        };
        let pids = match pids {
            Limit::Default => Some(DEFAULT_PIDS),
            Limit::Unlimited => None,
            Limit::Set(Pids(n)) => Some(n),
        };
        if let Some(memory) = memory {
            if i64::try_from(memory).is_err() {
                bail!("--memory {memory}: too large (say `unlimited`)");
            }
        }
        Ok(Limits { memory, cpus, pids })
    }

    /// Writes these limits into `resources`, replacing what it had for
    /// memory, CPU quota and pids (other settings are kept).
    pub fn apply(&self, resources: &mut LinuxResources, host: &Host) {
        resources.set_memory(self.memory.map(|bytes| {
            let mut memory = LinuxMemory::default();
            let bytes = bytes as i64;
            memory.set_limit(Some(bytes));
            if host.swap_accounting {
                // memory + swap (v1's memsw; v2 gets swap.max = 0).
                memory.set_swap(Some(bytes));
            }
            memory
        }));
        let mut cpu = resources.cpu().clone().unwrap_or_default();
        match self.cpus {
            Some(n) => {
                cpu.set_quota(Some((n * CPU_PERIOD_US as f64).round() as i64));
                cpu.set_period(Some(CPU_PERIOD_US));
            }
            None => {
                cpu.set_quota(None);
                cpu.set_period(None);
            }
        }
        resources.set_cpu(Some(cpu));
        resources.set_pids(self.pids.map(|n| {
            let mut pids = LinuxPids::default();
            pids.set_limit(n);
            pids
        }));
    }
}

/// `resources` already limits memory, CPU or pids (a bundle's own).
pub fn has_own(resources: &LinuxResources) -> (bool, bool, bool) {
    let memory = resources
        .memory()
        .as_ref()
        .is_some_and(|m| m.limit().is_some());
    let cpu = resources
        .cpu()
        .as_ref()
        .is_some_and(|c| c.quota().is_some());
    let pids = resources.pids().is_some();
    (memory, cpu, pids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Host {
        Host {
            memory: 16 << 30,
            cpus: 8,
            swap_accounting: true,
        }
    }

    #[test]
    fn sizes_parse_as_docker_reads_them() {
        let mem = |s: &str| s.parse::<Limit<Bytes>>();
        assert_eq!(mem("512m"), Ok(Limit::Set(Bytes(512 << 20))));
        assert_eq!(mem("1g"), Ok(Limit::Set(Bytes(1 << 30))));
        assert_eq!(mem("1G"), Ok(Limit::Set(Bytes(1 << 30))));
        assert_eq!(mem("2GiB"), Ok(Limit::Set(Bytes(2 << 30))));
        assert_eq!(mem("1.5g"), Ok(Limit::Set(Bytes(3 << 29))));
        assert_eq!(mem("1073741824"), Ok(Limit::Set(Bytes(1 << 30))));
        assert_eq!(mem("unlimited"), Ok(Limit::Unlimited));
        for bad in ["", "g", "12q", "-1g", "1m", "99999999999999t", "1..2g"] {
            assert!(mem(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cpus_and_pids_parse() {
        assert_eq!("1.5".parse::<Limit<Cpus>>(), Ok(Limit::Set(Cpus(1.5))));
        assert_eq!("max".parse::<Limit<Cpus>>(), Ok(Limit::Unlimited));
        assert!("0".parse::<Limit<Cpus>>().is_err());
        assert!("NaN".parse::<Limit<Cpus>>().is_err());
        assert_eq!("100".parse::<Limit<Pids>>(), Ok(Limit::Set(Pids(100))));
        assert!("0".parse::<Limit<Pids>>().is_err());
        assert!("-5".parse::<Limit<Pids>>().is_err());
    }

    #[test]
    fn defaults_follow_the_host() {
        let l = Limits::resolve(Limit::Default, Limit::Default, Limit::Default, &host()).unwrap();
        assert_eq!(l.memory, Some(2 << 30));
        assert_eq!(l.cpus, Some(7.0));
        assert_eq!(l.pids, Some(1024));
        let small = Host {
            memory: 1 << 30,
            cpus: 1,
            swap_accounting: false,
        };
        let l = Limits::resolve(Limit::Default, Limit::Default, Limit::Default, &small).unwrap();
        assert_eq!(l.memory, Some(512 << 20));
        assert_eq!(l.cpus, Some(1.0));
    }

    #[test]
    fn limits_go_into_resources_with_swap_held_to_memory() {
        let l = Limits::resolve(
            Limit::Set(Bytes(512 << 20)),
            Limit::Set(Cpus(1.5)),
            Limit::Set(Pids(100)),
            &host(),
        )
        .unwrap();
        let mut resources = LinuxResources::default();
        l.apply(&mut resources, &host());
        let memory = resources.memory().unwrap();
        assert_eq!(memory.limit(), Some(512 << 20));
        assert_eq!(memory.swap(), Some(512 << 20));
        let cpu = resources.cpu().clone().unwrap();
        assert_eq!((cpu.quota(), cpu.period()), (Some(150_000), Some(100_000)));
        assert_eq!(resources.pids().unwrap().limit(), 100);

        let lifted = Limits::resolve(
            Limit::Unlimited,
            Limit::Unlimited,
            Limit::Unlimited,
            &host(),
        )
        .unwrap();
        lifted.apply(&mut resources, &host());
        assert!(resources.memory().is_none());
        assert!(resources.pids().is_none());
        assert_eq!(resources.cpu().clone().unwrap().quota(), None);
    }

    #[test]
    fn more_cpus_than_the_host_is_an_error() {
        let e = Limits::resolve(
            Limit::Default,
            Limit::Set(Cpus(9.0)),
            Limit::Default,
            &host(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("8 CPUs"), "{e}");
    }
}
