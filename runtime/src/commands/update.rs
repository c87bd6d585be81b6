use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use liboci_cli::Update;
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
use substrate_runtime::{load_resources, Runtime};

/// `--resources FILE` (or `-` for stdin) gives an OCI `LinuxResources`
/// document; the individual flags set one field each, as runc's do.
pub fn update(args: Update, runtime: &Runtime) -> Result<()> {
    if args.l3_cache_schema.is_some() || args.mem_bw_schema.is_some() {
        bail!("--l3-cache-schema and --mem-bw-schema need Intel RDT, which this runtime does not manage");
    }
    let world = runtime.world(&args.container_id)?;
    let resources = match &args.resources {
        Some(path) if path == Path::new("-") => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("cannot read resources from stdin")?;
            load_resources(path, Some(&bytes))?
        }
        Some(path) => load_resources(path, None)?,
        None => resources_from_flags(&args),
    };
    world.update(&resources)?;
    Ok(())
}

fn resources_from_flags(args: &Update) -> LinuxResources {
    let mut resources = LinuxResources::default();

    let mut cpu = LinuxCpu::default();
    cpu.set_shares(args.cpu_share);
    cpu.set_period(args.cpu_period);
    cpu.set_quota(args.cpu_quota.map(|q| q as i64));
    cpu.set_realtime_period(args.cpu_rt_period);
    cpu.set_realtime_runtime(args.cpu_rt_runtime.map(|r| r as i64));
    cpu.set_cpus(args.cpuset_cpus.clone());
    cpu.set_mems(args.cpuset_mems.clone());
    if cpu != LinuxCpu::default() {
        resources.set_cpu(Some(cpu));
    }

    let mut memory = LinuxMemory::default();
    memory.set_limit(args.memory.map(|m| m as i64));
    memory.set_reservation(args.memory_reservation.map(|m| m as i64));
    memory.set_swap(args.memory_swap);
    if memory != LinuxMemory::default() {
        resources.set_memory(Some(memory));
    }

    if let Some(limit) = args.pids_limit {
        let mut pids = LinuxPids::default();
        pids.set_limit(limit);
        resources.set_pids(Some(pids));
    }

    if let Some(weight) = args.blkio_weight {
        let mut blkio = LinuxBlockIo::default();
        blkio.set_weight(Some(weight as u16));
        resources.set_block_io(Some(blkio));
    }
    resources
}
