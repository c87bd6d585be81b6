//! The node policy's `limits` on a bundle world (containerd's, CRI's,
//! podman's, `substrate-runtime`'s): ceilings on what the spec's
//! `linux.resources` asks for, applied at create before libcontainer makes
//! the world's cgroup.
//!
//! For each of `memory`, `cpus` and `pids` the policy sets, a spec that
//! asks for no limit (absent, or the spec's "unlimited": -1, 0), or for more
//! than the policy's, gets the policy's; a spec that asks for less keeps its
//! own. Nothing of the bundle raises them: `memory` holds swap too where the
//! kernel accounts it (the spec's `swap` is memory + swap, as on cgroup
//! v1), and the v2 `unified` keys that would write the same files
//! (`memory.max`, `memory.swap.max`, `cpu.max`, `pids.max`, which
//! libcgroups writes after the typed settings) are dropped unless they ask
//! for less. `disk` has nothing to apply to here: a bundle's rootfs is its
//! caller's, written in place (see `egress_of_bundle`).

use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources, Spec};
use substrate_policy::Limits;

/// The CFS period a ceiling is expressed in when the spec gives none
/// (runc's and Docker's).
const DEFAULT_PERIOD_US: u64 = 100_000;
/// The kernel's smallest CFS quota, and its longest period
/// (`kernel/sched/core.c`: `min_cfs_quota_period`, `max_cfs_quota_period`).
const MIN_QUOTA_US: i64 = 1_000;
const MAX_PERIOD_US: u64 = 1_000_000;

/// Lowers `spec`'s `linux.resources` to the node policy's `limits`.
pub(crate) fn apply(spec: &mut Spec, limits: &Limits) {
    if limits.memory.is_none() && limits.cpus.is_none() && limits.pids.is_none() {
        return;
    }
    let linux = spec.linux_mut().get_or_insert_with(Default::default);
    let resources = linux.resources_mut().get_or_insert_with(Default::default);
    lower(resources, limits, swap_accounting());
}

/// Lowers `resources` to `limits`; with `swap_accounting` (the kernel limits
/// a cgroup's swap) its memory + swap too.
fn lower(resources: &mut LinuxResources, limits: &Limits, swap_accounting: bool) {
    if let Some(ceiling) = limits.memory {
        let ceiling = i64::try_from(ceiling).unwrap_or(i64::MAX);
        let mut memory: LinuxMemory = resources.memory().unwrap_or_default();
        let limit = at_most(memory.limit(), ceiling);
        memory.set_limit(Some(limit));
        if swap_accounting {
            // Never below the limit: the kernel (v1's memsw) and libcgroups
            // (v2) refuse that.
            memory.set_swap(Some(at_most(memory.swap(), ceiling).max(limit)));
        }
        resources.set_memory(Some(memory));
    }
    if let Some(cpus) = limits.cpus {
        let mut cpu: LinuxCpu = resources.cpu().clone().unwrap_or_default();
        let (quota, period) = cpu_at_most(cpu.quota(), cpu.period(), cpus.millis());
        cpu.set_quota(Some(quota));
        cpu.set_period(Some(period));
        resources.set_cpu(Some(cpu));
    }
    if let Some(ceiling) = limits.pids {
        let ceiling = i64::try_from(ceiling).unwrap_or(i64::MAX);
        let mut pids = LinuxPids::default();
        pids.set_limit(at_most(resources.pids().map(|p| p.limit()), ceiling));
        resources.set_pids(Some(pids));
    }
    let memory_limit = resources.memory().and_then(|m| m.limit());
    if let Some(unified) = resources.unified_mut() {
        unified.retain(|key, value| unified_within(key, value, limits, memory_limit));
    }
}

/// What the spec asked for (`None`, or 0 or below: no limit), at most
/// `ceiling`.
fn at_most(asked: Option<i64>, ceiling: i64) -> i64 {
    match asked {
        Some(asked) if asked > 0 => asked.min(ceiling),
        _ => ceiling,
    }
}

/// The spec's CPU quota and period, at most `millis` thousandths of a CPU:
/// kept when they ask for no more, else the ceiling in the spec's period
/// (or the default one; or the longest, where the ceiling would be a quota
/// shorter than the kernel allows).
fn cpu_at_most(quota: Option<i64>, period: Option<u64>, millis: u32) -> (i64, u64) {
    let period = period.filter(|&p| p > 0).unwrap_or(DEFAULT_PERIOD_US);
    if let Some(quota) = quota.filter(|&q| q > 0) {
        // quota / period <= millis / 1000, exactly.
        if u128::from(quota as u64) * 1000 <= u128::from(millis) * u128::from(period) {
            return (quota, period);
        }
    }
    let ceiling = quota_for(millis, period);
    if ceiling >= MIN_QUOTA_US {
        (ceiling, period)
    } else {
        (
            quota_for(millis, MAX_PERIOD_US).max(MIN_QUOTA_US),
            MAX_PERIOD_US,
        )
    }
}

/// The quota of `millis` thousandths of a CPU in `period` µs (rounded down:
/// never more than the policy's).
fn quota_for(millis: u32, period: u64) -> i64 {
    let quota = u128::from(millis) * u128::from(period) / 1000;
    i64::try_from(quota).unwrap_or(i64::MAX)
}

/// Whether the v2 `unified` entry `key: value` stays under `limits`: the
/// keys of the limits the policy sets only when they ask for no more than
/// it (`memory_limit`: the world's memory limit as lowered), every other
/// key as it is.
fn unified_within(key: &str, value: &str, limits: &Limits, memory_limit: Option<i64>) -> bool {
    let number = |text: &str| text.trim().parse::<u64>().ok();
    match key {
        "memory.max" => match limits.memory {
            Some(ceiling) => number(value).is_some_and(|v| v <= ceiling),
            None => true,
        },
        // v2's swap alone, beside memory.max.
        "memory.swap.max" => match limits.memory {
            Some(ceiling) => number(value).is_some_and(|swap| {
                let limit = memory_limit.map_or(ceiling, |l| l.max(0) as u64);
                swap.saturating_add(limit) <= ceiling
            }),
            None => true,
        },
        "pids.max" => match limits.pids {
            Some(ceiling) => number(value).is_some_and(|v| v <= ceiling),
            None => true,
        },
        // "QUOTA PERIOD", or "QUOTA" with the default period.
        "cpu.max" => match limits.cpus {
            Some(cpus) => {
                let mut fields = value.split_whitespace();
                let quota = fields.next().and_then(number);
                let period = match fields.next() {
                    Some(period) => number(period),
                    None => Some(DEFAULT_PERIOD_US),
                };
                match (quota, period) {
                    (Some(quota), Some(period)) if period > 0 => {
                        u128::from(quota) * 1000 <= u128::from(cpus.millis()) * u128::from(period)
                    }
                    _ => false,
                }
            }
            None => true,
        },
        _ => true,
    }
}

/// Whether a cgroup's swap can be limited here: v1 has
/// `memory.memsw.limit_in_bytes` only with swap accounting on; v2 has
/// `memory.swap.max` in non-root cgroups unless it is off (`swapaccount=0`,
/// `cgroup.memory=noswap`). As `substrate-cli` decides it for its worlds.
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use substrate_policy::Policy;

    use super::*;

    fn limits(yaml: &str) -> Limits {
        Policy::parse(&format!("version: 1\nlimits:\n{yaml}"))
            .unwrap()
            .limits
    }

    fn resources(json: serde_json::Value) -> LinuxResources {
        serde_json::from_value(json).unwrap()
    }

    fn lowered(json: serde_json::Value, yaml: &str, swap_accounting: bool) -> serde_json::Value {
        let mut resources = resources(json);
        lower(&mut resources, &limits(yaml), swap_accounting);
        serde_json::to_value(resources).unwrap()
    }

    const MIB: i64 = 1 << 20;

    #[test]
    fn an_absent_or_unlimited_or_larger_limit_is_lowered_to_the_policys() {
        let yaml = "  memory: 64m\n  pids: 32\n";
        for spec in [
            serde_json::json!({}),
            serde_json::json!({"memory": {"limit": -1}, "pids": {"limit": -1}}),
            serde_json::json!({"memory": {"limit": 0}, "pids": {"limit": 0}}),
            serde_json::json!({"memory": {"limit": 1 << 30}, "pids": {"limit": 4096}}),
        ] {
            let out = lowered(spec.clone(), yaml, false);
            assert_eq!(out["memory"]["limit"], 64 * MIB, "{spec}");
            assert_eq!(out["pids"]["limit"], 32, "{spec}");
            assert!(out["memory"].get("swap").is_none(), "{spec}: {out}");
        }
    }

    #[test]
    fn a_smaller_limit_is_kept() {
        let out = lowered(
            serde_json::json!({"memory": {"limit": 16 * MIB, "reservation": 8 * MIB}, "pids": {"limit": 8}}),
            "  memory: 64m\n  pids: 32\n",
            false,
        );
        assert_eq!(out["memory"]["limit"], 16 * MIB);
        // What the policy does not limit is the spec's.
        assert_eq!(out["memory"]["reservation"], 8 * MIB);
        assert_eq!(out["pids"]["limit"], 8);
    }

    #[test]
    fn what_the_policy_does_not_limit_is_left_alone() {
        let spec = serde_json::json!({"memory": {"limit": 1 << 30}, "cpu": {"shares": 512}});
        assert_eq!(
            lowered(spec.clone(), "  pids: 10\n", true)["memory"],
            spec["memory"]
        );
        let mut resources = resources(spec.clone());
        lower(&mut resources, &Limits::default(), true);
        assert_eq!(serde_json::to_value(resources).unwrap(), spec);
    }

    #[test]
    fn swap_is_held_to_the_memory_ceiling_where_the_kernel_accounts_it() {
        let yaml = "  memory: 64m\n";
        // No swap asked: memory + swap is the ceiling.
        let out = lowered(serde_json::json!({}), yaml, true);
        assert_eq!(out["memory"]["swap"], 64 * MIB);
        // Unlimited or larger: lowered.
        for swap in [-1, 1 << 30] {
            let out = lowered(
                serde_json::json!({"memory": {"limit": 16 * MIB, "swap": swap}}),
                yaml,
                true,
            );
            assert_eq!(out["memory"]["limit"], 16 * MIB);
            assert_eq!(out["memory"]["swap"], 64 * MIB, "{swap}");
        }
        // Smaller: kept, but never below the limit.
        let out = lowered(
            serde_json::json!({"memory": {"limit": 16 * MIB, "swap": 32 * MIB}}),
            yaml,
            true,
        );
        assert_eq!(out["memory"]["swap"], 32 * MIB);
        let out = lowered(
            serde_json::json!({"memory": {"swap": 32 * MIB}}),
            yaml,
            true,
        );
        assert_eq!(out["memory"]["limit"], 64 * MIB);
        assert_eq!(out["memory"]["swap"], 64 * MIB);
    }

    #[test]
    fn cpus_are_a_quota_in_the_specs_period() {
        // 0.5 CPU.
        assert_eq!(cpu_at_most(None, None, 500), (50_000, 100_000));
        assert_eq!(
            cpu_at_most(Some(-1), Some(200_000), 500),
            (100_000, 200_000)
        );
        assert_eq!(
            cpu_at_most(Some(150_000), Some(100_000), 500),
            (50_000, 100_000)
        );
        // Asking for less (or exactly as much) keeps the spec's.
        assert_eq!(
            cpu_at_most(Some(20_000), Some(100_000), 500),
            (20_000, 100_000)
        );
        assert_eq!(cpu_at_most(Some(50_000), None, 500), (50_000, 100_000));
        // 1.5 CPUs.
        assert_eq!(cpu_at_most(None, Some(10_000), 1500), (15_000, 10_000));
        // A ceiling shorter than the kernel's smallest quota: the longest
        // period instead.
        assert_eq!(cpu_at_most(None, Some(10_000), 5), (5_000, 1_000_000));
        assert_eq!(cpu_at_most(None, None, 1), (1_000, 1_000_000));
        let out = lowered(
            serde_json::json!({"cpu": {"shares": 512, "quota": 400_000, "period": 100_000}}),
            "  cpus: 1.5\n",
            false,
        );
        assert_eq!(out["cpu"]["quota"], 150_000);
        assert_eq!(out["cpu"]["period"], 100_000);
        assert_eq!(out["cpu"]["shares"], 512);
    }

    #[test]
    fn unified_keys_may_not_raise_a_ceiling() {
        let unified: HashMap<String, String> = [
            ("memory.max", "max"),
            ("memory.swap.max", "max"),
            ("pids.max", "1000"),
            ("cpu.max", "max 100000"),
            ("memory.high", "max"),
            ("io.weight", "50"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let out = lowered(
            serde_json::json!({ "unified": unified }),
            "  memory: 64m\n  pids: 32\n  cpus: 0.5\n",
            true,
        );
        let mut kept: Vec<&str> = out["unified"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        kept.sort();
        assert_eq!(kept, ["io.weight", "memory.high"]);
        // Asking for less through them is kept.
        let limits = limits("  memory: 64m\n  pids: 32\n  cpus: 0.5\n");
        let mem = Some(32 * MIB);
        assert!(unified_within("memory.max", "16777216", &limits, mem));
        assert!(!unified_within("memory.max", "134217728", &limits, mem));
        assert!(unified_within("memory.swap.max", "33554432", &limits, mem));
        assert!(!unified_within("memory.swap.max", "33554433", &limits, mem));
        assert!(unified_within("pids.max", "32", &limits, mem));
        assert!(!unified_within("pids.max", "33", &limits, mem));
        assert!(unified_within("cpu.max", "25000 100000", &limits, mem));
        assert!(unified_within("cpu.max", "50000", &limits, mem));
        assert!(!unified_within("cpu.max", "50001", &limits, mem));
        assert!(!unified_within("cpu.max", "max", &limits, mem));
        // Keys of limits the policy does not set are the spec's.
        assert!(unified_within("pids.max", "max", &Limits::default(), mem));
    }

    #[test]
    fn a_spec_without_resources_gets_them() {
        let mut spec = Spec::default();
        spec.set_linux(None);
        apply(&mut spec, &limits("  pids: 7\n"));
        let pids = spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| *r.pids());
        assert_eq!(pids.map(|p| p.limit()), Some(7));
        // Nothing to lower: the spec is left as it is.
        let mut spec = Spec::default();
        spec.set_linux(None);
        apply(&mut spec, &limits("  disk: 1g\n  wall_time: 60\n"));
        assert!(spec.linux().is_none());
    }
}
