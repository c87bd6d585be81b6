//! Export of a world's trace as the world ends, when the node says where
//! to (`export.otlp` in `<config dir>/config.yaml`: [`crate::settings`]).
//!
//! The exporter is a binary of its own, `substrate-export` (the `export/`
//! crate), installed beside this one: nothing that links the runtime pays
//! for OpenTelemetry. The world's end does not wait for the collector: the
//! exporter is started detached (its own process group, stdin and stdout
//! closed) and reads the world's closed trace and record from the store.
//! What it says, success or failure, is appended to the world's
//! `export.log`; a failure to start it is logged here. Neither fails the
//! world: its trace stays in the store, to export again with
//! `substrate-cli export otlp WORLD`.
//!
//! The collector's headers (often credentials) are not put on the
//! exporter's command line, where any user of the host could read them:
//! it reads them from the settings file itself (`--config-dir`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::id::WorldId;
use crate::settings::NodeSettings;
use crate::store::WorldStore;
use crate::world::NodeConfig;

/// The exporter's file name.
pub const BINARY: &str = "substrate-export";

/// The exporter's log in a world's dir.
pub const LOG_FILE: &str = "export.log";

/// The exporter is not where it is looked for.
#[derive(Debug, thiserror::Error)]
#[error(
    "{BINARY} is not installed: there is no {} (it is built apart, so that \
     nothing else pays for OpenTelemetry: `cargo build -p substrate-export`, \
     which `make build` and `make release` do; `make install` installs it)",
    path.display()
)]
pub struct NoExporter {
    /// Where it was looked for.
    pub path: PathBuf,
}

/// `substrate-export` beside this executable (the build tree's
/// `target/<profile>/`, `make install`'s `bin/`), as the preload library is
/// found (`inject::preload_library`).
pub fn binary() -> Result<PathBuf, NoExporter> {
    let path = super::companion::beside_this_executable(BINARY);
    if path.is_file() {
        Ok(path)
    } else {
        Err(NoExporter { path })
    }
}

/// Starts the export of world `id`, whose trace was just closed, if the
/// node's settings name a collector. Never fails the world: what goes wrong
/// is logged.
pub(crate) fn world_ended(store: &WorldStore, id: &WorldId) {
    let node = NodeConfig::from_env();
    let settings = match NodeSettings::load(&node) {
        Ok(settings) => settings,
        Err(e) => {
            tracing::warn!("world {id}: trace not exported: {}", crate::one_line(&e));
            return;
        }
    };
    if settings.otlp().is_none() {
        return;
    }
    if let Err(e) = start(store, id, node.dir()) {
        tracing::warn!("world {id}: trace not exported: {e}");
    }
}

fn start(store: &WorldStore, id: &WorldId, config_dir: &Path) -> Result<(), String> {
    let exporter = binary().map_err(|e| e.to_string())?;
    let args: [&OsStr; 7] = [
        "otlp".as_ref(),
        "--state-dir".as_ref(),
        store.state_dir().as_os_str(),
        "--config-dir".as_ref(),
        config_dir.as_os_str(),
        "--".as_ref(),
        id.as_str().as_ref(),
    ];
    let log = store.world_dir(id).join(LOG_FILE);
    super::companion::start_detached(&exporter, args, &log, "export-reaper")
}
