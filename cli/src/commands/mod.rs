//! One file per subcommand.

pub mod approve;
pub mod diff;
pub mod doctor;
pub mod export;
pub mod gc;
pub mod graph;
pub mod inspect;
pub mod kill;
pub mod policy;
pub mod ps;
pub mod rm;
pub mod run;
pub mod stop;
pub mod trace;
pub mod verify;

use anyhow::{bail, Result};
use substrate_runtime::{Runtime, WorldId, WorldRecord, WorldStatus};

use crate::spec::RunNotes;

/// A world's status as `ps` shows it: the container's while it exists,
/// else how its record ended.
pub fn world_status(runtime: &Runtime, record: &WorldRecord) -> String {
    let live = Runtime::new(&record.runtime_root)
        .with_store(runtime.store().clone())
        .world(record.id.as_str());
    match (live.map(|w| w.status()), record.exit) {
        (Ok(WorldStatus::Stopped), Some(exit)) | (Err(_), Some(exit)) => exit_text(exit),
        (Ok(status), _) => status.to_string(),
        (Err(_), None) if record.ended_at.is_some() => "ended".into(),
        (Err(_), None) => "lost".into(),
    }
}

pub fn exit_text(exit: substrate_runtime::ExitStatus) -> String {
    match exit {
        substrate_runtime::ExitStatus::Code(code) => format!("exited {code}"),
        substrate_runtime::ExitStatus::Signal(signal) => {
            let name = nix::sys::signal::Signal::try_from(signal)
                .map(|s| s.as_str().to_owned())
                .unwrap_or_else(|_| format!("signal {signal}"));
            format!("killed {name}")
        }
    }
}

/// The record of `id`, settled (see [`settle`]), or an error that says the
/// world is unknown.
pub fn record(runtime: &Runtime, id: &str) -> Result<WorldRecord> {
    match WorldId::new(id) {
        Ok(id) if runtime.store().has_record(&id) => settle(runtime, runtime.store().record(&id)?),
        _ => bail!(
            "no such world {id:?} (see `substrate-cli ps`; records are under {})",
            runtime.store().state_dir().display()
        ),
    }
}

/// A world whose monitor died before it finished the world's trace (its
/// `run` or `run -d` monitor was SIGKILLed, OOM-killed) is ended by the
/// first command that looks at it: what still runs is killed, the trace
/// gets a `loss` span and its world span, the record its end and diff
/// (`Runtime::end_unmonitored`); a world substrate-cli made then goes as a
/// finished one does (container, cgroup, upper unless `--keep`). Returns
/// the record as it is now; any other world's, unchanged.
pub fn settle(runtime: &Runtime, record: WorldRecord) -> Result<WorldRecord> {
    let live = Runtime::new(&record.runtime_root).with_store(runtime.store().clone());
    if !live.end_unmonitored(&record.id)? {
        return Ok(record);
    }
    eprintln!(
        "substrate-cli: world {}: its monitor was lost; the world was stopped and its \
         trace ended with a `loss` span",
        record.id
    );
    if let Ok(world) = live.world(record.id.as_str()) {
        let notes = RunNotes::of(world.state().annotations.as_ref());
        if notes.detached || notes.owner.is_some() {
            world.delete(true)?;
        }
    }
    Ok(runtime.store().record(&record.id)?)
}
