//! Times `substrate_fsdiff::diff_upper` on real overlays, side by
//! side: the host's `/` as the lower layer, and an empty directory. The same
//! changes go through both merged dirs, so the ratio shows that the diff's
//! cost follows the upper layer, not the size of the lower.
//!
//! Usage: `substrate-bench-fsdiff [N...]` (default 1000 10000 100000); root.
//! `substrate-bench-fsdiff --upper DIR [--lower DIR]...` times the diff of an
//! existing upper dir instead (for profiling).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use substrate_fsdiff::{diff_upper, DiffOptions, FsDiff};
use tempfile::TempDir;

const RUNS: usize = 5;
const FILES_PER_DIR: usize = 250;
/// Files written straight into directories the host already has (each one
/// a lower lookup), and host files copied up (appended to, or chmod'ed).
const IN_EXISTING_DIRS: usize = 200;
const COPY_UPS: usize = 50;
const GOAL: Duration = Duration::from_millis(500);

#[derive(Clone, Copy)]
enum Lower {
    Host,
    Empty,
}

impl Lower {
    fn name(self) -> &'static str {
        match self {
            Lower::Host => "host /",
            Lower::Empty => "empty dir",
        }
    }
}

/// A temp dir with `upper/`, `work/`, `merged/` (and `lower/` for the empty
/// case); unmounted and removed when dropped, whatever happened.
struct Scene {
    tmp: TempDir,
    lower: PathBuf,
    mounted: bool,
}

impl Scene {
    fn new(lower: Lower) -> Result<Self> {
        // Under /var/tmp: on the root fs (upper and the host lower on one fs),
        // and not a tmpfs.
        let tmp = tempfile::Builder::new()
            .prefix("substrate-bench-fsdiff-")
            .tempdir_in("/var/tmp")
            .context("temp dir in /var/tmp")?;
        for dir in ["upper", "work", "merged"] {
            fs::create_dir(tmp.path().join(dir))?;
        }
        let lower = match lower {
            Lower::Host => PathBuf::from("/"),
            Lower::Empty => {
                let dir = tmp.path().join("lower");
                fs::create_dir(&dir)?;
                dir
            }
        };
        let mut scene = Scene {
            tmp,
            lower,
            mounted: false,
        };
        scene.mount()?;
        Ok(scene)
    }

    fn upper(&self) -> PathBuf {
        self.tmp.path().join("upper")
    }
    fn merged(&self) -> PathBuf {
        self.tmp.path().join("merged")
    }

    fn mount(&mut self) -> Result<()> {
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            self.lower.display(),
            self.upper().display(),
            self.tmp.path().join("work").display()
        );
        mount(
            Some("overlay"),
            &self.merged(),
            Some("overlay"),
            MsFlags::empty(),
            Some(data.as_str()),
        )
        .with_context(|| format!("mount -t overlay -o {data} (run as root)"))?;
        self.mounted = true;
        Ok(())
    }

    fn unmount(&mut self) -> Result<()> {
        if self.mounted {
            umount2(&self.merged(), MntFlags::empty()).context("umount merged")?;
            self.mounted = false;
        }
        Ok(())
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        if self.mounted {
            let _ = umount2(&self.merged(), MntFlags::MNT_DETACH);
        }
    }
}

/// Writes `n` changes through `merged`: small files in new directories,
/// some in directories the host has, and copy-ups of host files in /etc
/// (on the empty lower these are new files).
fn write_changes(merged: &Path, n: usize) -> Result<()> {
    let in_existing = IN_EXISTING_DIRS.min(n / 10);
    let in_new = n - in_existing;
    let dirs = in_new.div_ceil(FILES_PER_DIR).max(1);
    let base = merged.join("opt/substrate-bench");
    let payload = [b'x'; 100];
    for i in 0..in_new {
        let dir = base.join(format!("d{:04}", i % dirs));
        if i < dirs {
            fs::create_dir_all(&dir)?;
        }
        fs::write(dir.join(format!("f{i:06}")), payload)?;
    }
    for (i, dir) in ["etc", "usr/lib", "var/lib"]
        .iter()
        .cycle()
        .take(in_existing)
        .enumerate()
    {
        let dir = merged.join(dir);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(format!("substrate-bench-{i:04}")), payload)?;
    }
    // Copy-ups of the first host files of /etc: appended to, then chmod'ed.
    let mut etc: Vec<PathBuf> = fs::read_dir("/etc")?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| PathBuf::from("etc").join(e.file_name()))
        .collect();
    etc.sort();
    for (i, rel) in etc.iter().take(COPY_UPS * 2).enumerate() {
        let path = merged.join(rel);
        if i % 2 == 0 {
            let mut file = fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .with_context(|| path.display().to_string())?;
            file.write_all(b"# substrate bench\n")?;
        } else if path.exists() {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path)?.permissions().mode();
            fs::set_permissions(&path, fs::Permissions::from_mode((mode ^ 0o001) & 0o7777))?;
        } else {
            fs::write(&path, payload)?;
        }
    }
    Ok(())
}

struct Timing {
    median: Duration,
    min: Duration,
    diff: FsDiff,
}

/// Builds both overlays for `n`, then times their diffs alternately (after a
/// warm-up of each), so that both see the same machine.
fn measure(n: usize) -> Result<(Timing, Timing)> {
    let mut scenes = Vec::new();
    for lower in [Lower::Host, Lower::Empty] {
        let mut scene = Scene::new(lower).with_context(|| lower.name())?;
        write_changes(&scene.merged(), n).with_context(|| lower.name())?;
        scene.unmount()?;
        scenes.push(scene);
    }
    let options = DiffOptions::default();
    let diff_of =
        |scene: &Scene| diff_upper(&scene.upper(), std::slice::from_ref(&scene.lower), &options);
    let diffs = [diff_of(&scenes[0])?, diff_of(&scenes[1])?];
    let mut times = [Vec::new(), Vec::new()];
    for _ in 0..RUNS {
        for (i, scene) in scenes.iter().enumerate() {
            let start = Instant::now();
            let again = diff_of(scene)?;
            times[i].push(start.elapsed());
            if again.summary != diffs[i].summary {
                bail!("two diffs of the same upper differ");
            }
        }
    }
    let [host, empty] = diffs;
    let [mut host_times, mut empty_times] = times;
    host_times.sort();
    empty_times.sort();
    let timing = |times: Vec<Duration>, diff| Timing {
        median: times[RUNS / 2],
        min: times[0],
        diff,
    };
    Ok((timing(host_times, host), timing(empty_times, empty)))
}

/// How many cores' worth of CPU this machine gives two busy threads right
/// now (a shared host may give fewer than it has).
fn effective_parallelism() -> f64 {
    fn spin() -> Duration {
        let start = Instant::now();
        let mut x = 0u64;
        for i in 0..200_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        std::hint::black_box(x);
        start.elapsed()
    }
    let one = spin();
    let two = std::thread::scope(|s| {
        let start = Instant::now();
        let a = s.spawn(spin);
        let b = s.spawn(spin);
        let _ = (a.join(), b.join());
        start.elapsed()
    });
    2.0 * one.as_secs_f64() / two.as_secs_f64()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `--upper DIR [--lower DIR]...`: time an existing upper dir.
fn time_existing(args: &[String]) -> Result<()> {
    let mut upper = None;
    let mut lowers = Vec::new();
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let value = args.next().context("flag without a value")?;
        match flag.as_str() {
            "--upper" => upper = Some(PathBuf::from(value)),
            "--lower" => lowers.push(PathBuf::from(value)),
            _ => bail!("unknown flag {flag}"),
        }
    }
    let upper = upper.context("--upper DIR")?;
    let options = DiffOptions::default();
    let diff = diff_upper(&upper, &lowers, &options)?;
    let mut times = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        diff_upper(&upper, &lowers, &options)?;
        times.push(start.elapsed());
    }
    times.sort();
    println!(
        "{} entries: median {:.1} ms, min {:.1} ms",
        diff.summary.total(),
        ms(times[RUNS / 2]),
        ms(times[0])
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a.starts_with("--")) {
        return time_existing(&args);
    }
    let sizes: Vec<usize> = match args.iter().map(|a| a.parse()).collect() {
        Ok(sizes) if !Vec::<usize>::is_empty(&sizes) => sizes,
        Ok(_) => vec![1_000, 10_000, 100_000],
        Err(e) => bail!("usage: substrate-bench-fsdiff [N...]: {e}"),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "fsdiff: diff_upper over an overlay's upper dir; median (min) of {RUNS} runs after a warm-up"
    );
    println!(
        "cpu: {cores} cores; two busy threads get {:.1} cores' worth right now",
        effective_parallelism()
    );
    println!(
        "changes: N files of 100 B ({FILES_PER_DIR} per new dir, up to {IN_EXISTING_DIRS} in existing dirs), \
         {COPY_UPS} appends + {COPY_UPS} chmods of /etc files; default options (max_entries 10000, hash up to 16 MiB)"
    );
    println!();
    println!(
        "{:>8} | {:>8} | {:>19} | {:>19} | {:>10} | {:>13}",
        "N", "entries", "lower = host / (ms)", "lower = empty (ms)", "host/empty", "per entry (us)"
    );
    println!("{}", "-".repeat(94));
    let mut goal_met = true;
    for &n in &sizes {
        let (host, empty) = measure(n).with_context(|| format!("N={n}"))?;
        let s = &host.diff.summary;
        println!(
            "{:>8} | {:>8} | {:>8.1} ({:>7.1}) | {:>8.1} ({:>7.1}) | {:>10.2} | {:>13.2}",
            n,
            s.total(),
            ms(host.median),
            ms(host.min),
            ms(empty.median),
            ms(empty.min),
            host.median.as_secs_f64() / empty.median.as_secs_f64(),
            host.median.as_secs_f64() * 1e6 / s.total() as f64,
        );
        if n >= 100_000 && host.median.max(empty.median) > GOAL {
            goal_met = false;
        }
    }
    println!();
    if sizes.iter().any(|&n| n >= 100_000) {
        println!(
            "goal: 100k changed files in <= {} ms: {}",
            GOAL.as_millis(),
            if goal_met { "met" } else { "MISSED" }
        );
    }
    Ok(())
}
