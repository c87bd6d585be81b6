//! A world's cgroup statistics as containerd's `Metrics` (the cgroup v1 or
//! v2 message, whichever the host uses), packed for a `StatsResponse`.

use containerd_shim::protos::cgroups::metrics as v1;
use containerd_shim::protos::cgroups_v2::metrics as v2;
use containerd_shim::protos::protobuf::well_known_types::any::Any;
use containerd_shim::protos::protobuf::Message;
use libcgroups::common::CgroupSetup;
use libcgroups::stats::Stats;

/// `Any` with the bare protobuf full name as its type URL: containerd 1.6's
/// typeurl registry looks it up by that exact name.
pub fn to_any(stats: &Stats) -> Result<Any, String> {
    let unified = matches!(
        libcgroups::common::get_cgroup_setup(),
        Ok(CgroupSetup::Unified)
    );
    let (type_url, value) = if unified {
        (
            "io.containerd.cgroups.v2.Metrics",
            v2_metrics(stats).write_to_bytes(),
        )
    } else {
        (
            "io.containerd.cgroups.v1.Metrics",
            v1_metrics(stats).write_to_bytes(),
        )
    };
    Ok(Any {
        type_url: type_url.into(),
        value: value.map_err(|e| e.to_string())?,
        ..Default::default()
    })
}

fn stat(stats: &Stats, key: &str) -> u64 {
    stats.memory.stats.get(key).copied().unwrap_or(0)
}

fn v1_metrics(stats: &Stats) -> v1::Metrics {
    let entry = |d: &libcgroups::stats::MemoryData| v1::MemoryEntry {
        limit: d.limit,
        usage: d.usage,
        max: d.max_usage,
        failcnt: d.fail_count,
        ..Default::default()
    };
    let cpu = &stats.cpu;
    v1::Metrics {
        pids: Some(v1::PidsStat {
            current: stats.pids.current,
            limit: stats.pids.limit,
            ..Default::default()
        })
        .into(),
        cpu: Some(v1::CPUStat {
            usage: Some(v1::CPUUsage {
                total: cpu.usage.usage_total,
                kernel: cpu.usage.usage_kernel,
                user: cpu.usage.usage_user,
                per_cpu: cpu.usage.per_core_usage_total.clone(),
                ..Default::default()
            })
            .into(),
            throttling: Some(v1::Throttle {
                periods: cpu.throttling.periods,
                throttled_periods: cpu.throttling.throttled_periods,
                throttled_time: cpu.throttling.throttled_time,
                ..Default::default()
            })
            .into(),
            ..Default::default()
        })
        .into(),
        memory: Some(v1::MemoryStat {
            cache: stats.memory.cache,
            rss: stat(stats, "rss"),
            mapped_file: stat(stats, "mapped_file"),
            inactive_file: stat(stats, "inactive_file"),
            active_file: stat(stats, "active_file"),
            inactive_anon: stat(stats, "inactive_anon"),
            active_anon: stat(stats, "active_anon"),
            total_inactive_file: stat(stats, "total_inactive_file"),
            total_rss: stat(stats, "total_rss"),
            total_cache: stat(stats, "total_cache"),
            usage: Some(entry(&stats.memory.memory)).into(),
            swap: Some(entry(&stats.memory.memswap)).into(),
            kernel: Some(entry(&stats.memory.kernel)).into(),
            kernel_tcp: Some(entry(&stats.memory.kernel_tcp)).into(),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

fn v2_metrics(stats: &Stats) -> v2::Metrics {
    let cpu = &stats.cpu;
    // libcgroups reports v2 CPU times in nanoseconds.
    let usec = |ns: u64| ns / 1000;
    v2::Metrics {
        pids: Some(v2::PidsStat {
            current: stats.pids.current,
            limit: stats.pids.limit,
            ..Default::default()
        })
        .into(),
        cpu: Some(v2::CPUStat {
            usage_usec: usec(cpu.usage.usage_total),
            user_usec: usec(cpu.usage.usage_user),
            system_usec: usec(cpu.usage.usage_kernel),
            nr_periods: cpu.throttling.periods,
            nr_throttled: cpu.throttling.throttled_periods,
            throttled_usec: usec(cpu.throttling.throttled_time),
            ..Default::default()
        })
        .into(),
        memory: Some(v2::MemoryStat {
            anon: stat(stats, "anon"),
            file: stat(stats, "file"),
            inactive_file: stat(stats, "inactive_file"),
            active_file: stat(stats, "active_file"),
            usage: stats.memory.memory.usage,
            usage_limit: stats.memory.memory.limit,
            max_usage: stats.memory.memory.max_usage,
            swap_usage: stats.memory.memswap.usage,
            swap_limit: stats.memory.memswap.limit,
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}
