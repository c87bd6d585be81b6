//! `finish`: the world's fs diff and the end of its record.

use std::fs;
use std::path::PathBuf;

use substrate_trace::Timestamp;

use super::World;
use crate::error::{Error, Result};
use crate::record::{ExitStatus, UpperOwner, WorldRecord};
use substrate_fsdiff::diff_upper;

impl World {
    /// Computes the fs diff from the world's upper layer, writes it to
    /// `diff.json`, and completes `world.json` with the end time, the diff
    /// summary and `exit` when the caller waited for the init and knows it.
    /// Run once the init has exited (a world killed with SIGKILL included);
    /// later calls return the record as it is unless they bring the exit.
    pub fn finish(&self, exit: Option<ExitStatus>) -> Result<Option<WorldRecord>> {
        let id = self.id();
        if !self.store.has_record(id) {
            // Created before worlds had records, or its record was removed.
            return Ok(None);
        }
        // While its cgroup exists (a monitor's finish comes before delete):
        // the limits the world ran into.
        self.note_limits()?;
        // The world's monitor (with the exit status) and `delete` may both
        // finish a world at once; one at a time, the second sees the diff.
        // And its owner may be removing the record meanwhile (a world that
        // never started keeps none): then there is nothing to finish.
        let Some(_lock) = self.store.lock(id)? else {
            return Ok(None);
        };
        if !self.store.has_record(id) {
            return Ok(None);
        }
        let mut record = self.store.record(id)?;
        if record.ended_at.is_some() && (exit.is_none() || record.exit.is_some()) {
            return Ok(Some(record));
        }
        let upper = match &record.upper {
            Some(upper) if !upper.path.exists() => match upper.owner {
                // Made at create right after the record: a create killed in
                // between. Nothing was written, so the diff is empty.
                UpperOwner::World => {
                    fs::create_dir_all(&upper.path)
                        .map_err(|e| Error::io("cannot create upper dir", &upper.path, e))?;
                    Some(upper.path.clone())
                }
                // Its owner removed it before we could read it.
                UpperOwner::Adopted => {
                    tracing::warn!(
                        "world {id}: adopted upper {} is gone; no diff recorded",
                        upper.path.display()
                    );
                    None
                }
            },
            Some(upper) => Some(upper.path.clone()),
            // Written in place: there is no diff to take.
            None => None,
        };
        if record.ended_at.is_none() {
            if let Some(upper) = upper {
                self.take_diff(&upper, &mut record)?;
            }
            if let Some(started_at) = self.meta().and_then(|m| m.started_at) {
                record.started_at = Some(started_at);
            }
            record.ended_at = Some(Timestamp::now());
        }
        if exit.is_some() {
            record.exit = exit;
        }
        self.store.save_record(&record)?;
        Ok(Some(record))
    }

    fn take_diff(&self, upper: &std::path::Path, record: &mut WorldRecord) -> Result<()> {
        let id = self.id();
        let options = record.diff_options();
        let lowers: Vec<PathBuf> = record.lower.clone();
        let diff = diff_upper(upper, &lowers, &options).map_err(|source| Error::Diff {
            id: id.to_string(),
            source,
        })?;
        self.store.save_diff(id, &diff)?;
        record.diff = Some(diff.summary);
        Ok(())
    }

    /// Notes when the world started (`start` calls it); `finish` moves it
    /// into the record.
    pub(crate) fn note_start(&self) -> Result<()> {
        match self.meta() {
            Some(mut meta) => {
                meta.started_at = Some(Timestamp::now());
                self.save_meta(&meta)
            }
            None => Ok(()),
        }
    }
}
