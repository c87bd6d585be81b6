//! Where the worlds' traces are: `<state dir>/worlds/<id>/trace.jsonl`
//! (docs/world-record.md). The graph reads them and nothing else of the
//! store, so it does not link the runtime.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Default state dir; `SUBSTRATE_STATE_DIR` overrides it (as the runtime's).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/substrate";

#[derive(Clone, Debug)]
pub struct Traces {
    state_dir: PathBuf,
}

impl Traces {
    pub fn new(state_dir: impl Into<PathBuf>) -> Traces {
        Traces {
            state_dir: state_dir.into(),
        }
    }

    /// `$SUBSTRATE_STATE_DIR`, or `/var/lib/substrate`.
    pub fn from_env() -> Traces {
        Traces::new(
            std::env::var_os("SUBSTRATE_STATE_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
        )
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The trace of `world`, which must exist.
    pub fn trace(&self, world: &str) -> Result<PathBuf> {
        check_world_id(world)?;
        let path = self
            .state_dir
            .join("worlds")
            .join(world)
            .join("trace.jsonl");
        if path.is_file() {
            Ok(path)
        } else {
            Err(Error::NoTrace {
                world: world.to_owned(),
                path,
            })
        }
    }

    /// Every world with a trace, by id.
    pub fn worlds(&self) -> Result<Vec<String>> {
        let dir = self.state_dir.join("worlds");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(Error::Io { path: dir, source }),
        };
        let mut worlds: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().join("trace.jsonl").is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| check_world_id(id).is_ok())
            .collect();
        worlds.sort();
        Ok(worlds)
    }
}

/// A world id as the runtime allows them ([`substrate_trace::world_id_flaw`]):
/// it names a directory, so nothing else.
pub fn check_world_id(id: &str) -> Result<()> {
    match substrate_trace::world_id_flaw(id) {
        Some(reason) => Err(Error::BadWorldId {
            id: id.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}
