//! Where world records live: `<state dir>/worlds/<id>/` holds `world.json`,
//! `diff.json` and the overlay's `upper/` and `work/` dirs, kept after the
//! container is gone until `substrate-cli rm`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::id::WorldId;
use crate::record::{write_replacing, UpperOwner, WorldRecord};
use substrate_fsdiff::FsDiff;

/// Default state dir; `SUBSTRATE_STATE_DIR` overrides it.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/substrate";

#[derive(Debug, Clone)]
pub struct WorldStore {
    dir: PathBuf,
}

impl WorldStore {
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        WorldStore {
            dir: state_dir.into(),
        }
    }

    /// `$SUBSTRATE_STATE_DIR`, or `/var/lib/substrate`.
    pub fn from_env() -> Self {
        Self::new(
            std::env::var_os("SUBSTRATE_STATE_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
        )
    }

    pub fn state_dir(&self) -> &Path {
        &self.dir
    }

    pub fn world_dir(&self, id: &WorldId) -> PathBuf {
        self.dir.join("worlds").join(id)
    }

    /// Makes the world's dir, private to root all the way down from the
    /// state dir (0700: no other host user can reach its upper layer).
    pub(crate) fn create_world_dir(&self, id: &WorldId) -> Result<PathBuf> {
        let worlds = self.dir.join("worlds");
        for dir in [&self.dir, &worlds] {
            private_dir(dir)?;
        }
        let dir = worlds.join(id);
        private_dir(&dir)?;
        Ok(dir)
    }

    pub fn upper_dir(&self, id: &WorldId) -> PathBuf {
        self.world_dir(id).join("upper")
    }

    pub fn work_dir(&self, id: &WorldId) -> PathBuf {
        self.world_dir(id).join("work")
    }

    /// The mount point of a world whose lower is not the bundle's own rootfs
    /// (the host's `/`): the overlay is mounted here, in the world's private
    /// mount namespace only.
    pub fn rootfs_dir(&self, id: &WorldId) -> PathBuf {
        self.world_dir(id).join("rootfs")
    }

    /// What the world's processes see at `/.substrate` (the span socket,
    /// the preload library's mount point, the world's `ld.so.preload`).
    pub fn inject_dir(&self, id: &WorldId) -> PathBuf {
        self.world_dir(id).join("inject")
    }

    pub fn record_path(&self, id: &WorldId) -> PathBuf {
        self.world_dir(id).join("world.json")
    }

    /// The world's spans, one JSON line each (`docs/trace-spans.md`).
    pub fn trace_path(&self, id: &WorldId) -> PathBuf {
        self.world_dir(id).join("trace.jsonl")
    }

    pub fn diff_path(&self, id: &WorldId) -> PathBuf {
        self.world_dir(id).join("diff.json")
    }

    /// An exclusive lock on the world's dir (flock(2)), held until dropped,
    /// for read-modify-write of its record and for its removal (a world's
    /// monitor may be finishing its record while its owner removes it);
    /// `None` when the dir is gone (removed: there is no record to change).
    pub(crate) fn lock(&self, id: &WorldId) -> Result<Option<nix::fcntl::Flock<fs::File>>> {
        let dir = self.world_dir(id);
        let file = match fs::File::open(&dir) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("cannot open world dir", &dir, e)),
        };
        nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
            .map(Some)
            .map_err(|(_, errno)| Error::io("cannot lock world dir", dir, errno.into()))
    }

    /// Adds how the world's init ended to its record, if it has none yet.
    pub fn add_exit(
        &self,
        id: &WorldId,
        exit: Option<substrate_trace::ExitStatus>,
    ) -> Result<Option<WorldRecord>> {
        // Checked under the lock: a world being removed has none.
        let Some(_lock) = self.lock(id)? else {
            return Ok(None);
        };
        if !self.has_record(id) {
            return Ok(None);
        }
        let mut record = self.record(id)?;
        if record.exit.is_none() && exit.is_some() {
            record.exit = exit;
            self.save_record(&record)?;
        }
        Ok(Some(record))
    }

    /// Puts where the world's trace chain ends into its record (the trace
    /// was closed); returns the record as it is now, `None` without one.
    pub fn add_trace_chain(
        &self,
        id: &WorldId,
        end: substrate_trace::ChainEnd,
    ) -> Result<Option<WorldRecord>> {
        let Some(_lock) = self.lock(id)? else {
            return Ok(None);
        };
        if !self.has_record(id) {
            return Ok(None);
        }
        let mut record = self.record(id)?;
        record.trace_chain = Some(end);
        self.save_record(&record)?;
        Ok(Some(record))
    }

    pub fn has_record(&self, id: &WorldId) -> bool {
        self.record_path(id).exists()
    }

    pub fn record(&self, id: &WorldId) -> Result<WorldRecord> {
        let path = self.record_path(id);
        if !path.exists() {
            return Err(Error::NoRecord { id: id.to_string() });
        }
        WorldRecord::load(&path)
    }

    pub fn save_record(&self, record: &WorldRecord) -> Result<()> {
        record.save(&self.record_path(&record.id))
    }

    pub fn diff(&self, id: &WorldId) -> Result<FsDiff> {
        let path = self.diff_path(id);
        if !self.has_record(id) {
            return Err(Error::NoRecord { id: id.to_string() });
        }
        let bytes = fs::read(&path).map_err(|e| Error::io("cannot read world diff", &path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Record {
            path,
            reason: e.to_string(),
        })
    }

    pub(crate) fn save_diff(&self, id: &WorldId, diff: &FsDiff) -> Result<()> {
        let bytes = serde_json::to_vec(diff).expect("FsDiff serializes");
        write_replacing(&self.diff_path(id), &bytes, true)
    }

    /// Every world with a record, oldest first.
    pub fn records(&self) -> Result<Vec<WorldRecord>> {
        let worlds = self.dir.join("worlds");
        let entries = match fs::read_dir(&worlds) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("cannot read world store", worlds, e)),
        };
        let mut records: Vec<WorldRecord> = entries
            .flatten()
            .filter_map(|entry| WorldRecord::load(&entry.path().join("world.json")).ok())
            .collect();
        records.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(records)
    }

    /// Where the empty filesystem images worlds' upper layers start from
    /// are kept (see `upper_fs`).
    pub(crate) fn templates_dir(&self) -> PathBuf {
        self.dir.join("templates")
    }

    /// Deletes the files of a finished world's upper layer (if Substrate
    /// owns it), keeping record and diff, and notes it in the record.
    pub fn discard_upper(&self, id: &WorldId) -> Result<()> {
        // Under the lock, as every change to the record: the world's
        // monitor may be adding the exit meanwhile (a read-modify-write
        // beside it would lose that).
        let Some(_lock) = self.lock(id)? else {
            return Ok(());
        };
        if !self.has_record(id) {
            return Ok(());
        }
        let mut record = self.record(id)?;
        match &mut record.upper {
            Some(upper) if upper.owner == UpperOwner::World && upper.kept => {
                crate::upper_fs::remove(&self.world_dir(id))?;
                for dir in [
                    self.upper_dir(id),
                    self.work_dir(id),
                    self.rootfs_dir(id),
                    crate::upper_fs::mount_point(&self.world_dir(id)),
                ] {
                    remove_dir_if_exists(&dir)?;
                }
                upper.kept = false;
                self.save_record(&record)
            }
            _ => Ok(()),
        }
    }

    /// Deletes everything kept about the world (its upper filesystem
    /// unmounted first).
    pub fn remove(&self, id: &WorldId) -> Result<()> {
        let dir = self.world_dir(id);
        // Not while the world's monitor finishes its record in it.
        let Some(_lock) = self.lock(id)? else {
            return Ok(());
        };
        crate::upper_fs::remove(&dir)?;
        remove_dir_if_exists(&dir)
    }
}

/// Makes `dir` (and any missing parent) and leaves it mode 0700: what a
/// world wrote (a setuid binary in its upper layer, a record naming its
/// secrets) must be out of every other host user's reach, as containerd's
/// and podman's state is.
pub(crate) fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io("cannot make private", dir, e))
}

pub(crate) fn remove_dir_if_exists(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("cannot remove", dir, e)),
    }
}
