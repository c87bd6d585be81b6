//! `WorldId`: the one way to name a world on disk.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A world's id, which names its state dir under the runtime root and its
/// record dir in the world store. Only [`WorldId::new`] makes one, and it
/// follows runc's rule (`^[\w+\-.]+$`, not `.` or `..`, at most 1024 bytes):
/// a `WorldId` joined to a directory can never name anything outside it.
///
/// Read from JSON (a world record) it is checked the same way.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorldId(String);

impl WorldId {
    pub fn new(id: impl Into<String>) -> Result<WorldId> {
        let id = id.into();
        match substrate_trace::world_id_flaw(&id) {
            Some(reason) => Err(Error::InvalidId { id, reason }),
            None => Ok(WorldId(id)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for WorldId {
    type Error = Error;

    fn try_from(id: String) -> Result<WorldId> {
        WorldId::new(id)
    }
}

impl From<WorldId> for String {
    fn from(id: WorldId) -> String {
        id.0
    }
}

impl AsRef<str> for WorldId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::path::Path> for WorldId {
    fn as_ref(&self) -> &std::path::Path {
        self.0.as_ref()
    }
}

impl fmt::Display for WorldId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runc_rules() {
        for good in ["a", "my-ctr_1", "x.y+z", "0123456789abcdef", "..."] {
            assert_eq!(WorldId::new(good).unwrap().as_str(), good);
        }
        for bad in ["", ".", "..", "a/b", "a b", "../x", "é", "a\0b", "/"] {
            assert!(WorldId::new(bad).is_err(), "{bad:?}");
        }
        assert!(WorldId::new("a".repeat(1024)).is_ok());
        assert!(WorldId::new("a".repeat(1025)).is_err());
    }

    #[test]
    fn ids_read_from_json_are_checked() {
        let id: WorldId = serde_json::from_str(r#""w-1""#).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""w-1""#);
        let err = serde_json::from_str::<WorldId>(r#""../../etc""#).unwrap_err();
        assert!(err.to_string().contains("invalid container id"), "{err}");
    }

    #[test]
    fn a_world_id_stays_inside_the_directory_it_is_joined_to() {
        let dir = std::path::Path::new("/var/lib/substrate/worlds");
        for id in ["a", "...", "x.y+z"] {
            let path = dir.join(WorldId::new(id).unwrap());
            assert_eq!(path.parent(), Some(dir), "{id}");
        }
    }
}
