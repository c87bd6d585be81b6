//! Companion binaries a world's end starts (`substrate-export`,
//! `substrate-graph`): built apart so that nothing linking the runtime pays
//! for what they link, installed beside this executable, and started
//! detached so that the world's end never waits for them.

use std::ffi::OsStr;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::id::WorldId;
use crate::store::WorldStore;

/// Starts what reads a world's closed trace once it has a record: the
/// export (when the node names a collector) and the graph's ingest. The
/// monitor calls it as it closes the trace, and so does the runtime when it
/// closes the trace of a world whose monitor was lost.
///
/// Under the world dir's lock, which `delete` holds while it removes the
/// dir: the companions' logs are made in it before the removal (and go
/// with the rest), or not at all. Made while the removal ran, a log left
/// the dir not empty and `delete` failed.
pub(crate) fn world_ended(store: &WorldStore, id: &WorldId) {
    let _lock = match store.lock(id) {
        Ok(Some(lock)) if store.has_record(id) => lock,
        // Removed meanwhile: no trace to read.
        Ok(_) => return,
        Err(e) => {
            tracing::warn!("world {id}: not exported nor ingested: {e}");
            return;
        }
    };
    super::export::world_ended(store, id);
    super::graph::world_ended(store, id);
}

/// Where `name` is looked for: beside this executable (the build tree's
/// `target/<profile>/`, `make install`'s `bin/`), as the preload library is
/// (`inject::preload_library`).
pub fn beside_this_executable(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(name)))
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Starts `binary` with `args`, detached: its own process group (signals
/// for the caller's group, a ^C after `run` returned, are not its
/// business), stdin closed, stdout and stderr appended to `log` (0600).
/// Reaped by a thread named `reaper` where this process outlives it (the
/// shim); a process that exits first leaves it to init.
pub(crate) fn start_detached<I, S>(
    binary: &Path,
    args: I,
    log: &Path,
    reaper: &str,
) -> Result<(), String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let cannot_open = |e: std::io::Error| format!("cannot open {}: {e}", log.display());
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)
        .map_err(cannot_open)?;
    let err = out.try_clone().map_err(cannot_open)?;
    let mut child = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let _ = std::thread::Builder::new()
        .name(reaper.into())
        .spawn(move || child.wait());
    Ok(())
}
