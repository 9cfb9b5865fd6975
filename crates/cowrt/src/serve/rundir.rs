//! The files of a served store in the run directory (default `/run/cowrt`):
//! `NAME.sock` (the control socket), `NAME.json` (the device map), `NAME.pid`
//! and `NAME.log` (the background daemon's output).

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The run directory `cowrt` uses when none is given.
pub const DEFAULT_RUN_DIR: &str = "/run/cowrt";

/// Why a name or a run-directory file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// The store's name cannot name files and devices.
    #[error("'{0}' is not a usable name: use letters, digits, '.', '_' and '-' (at most 64, not starting with '.' or '-')")]
    BadName(String),
    /// A file could not be read or written.
    #[error("{path}: {action}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The error.
        source: io::Error,
    },
    /// The device map is not what `cowrt serve` writes.
    #[error("{path}: not a cowrt device map: {detail}")]
    BadMap {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// The run-directory paths of one served store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPaths {
    dir: PathBuf,
    name: String,
}

impl RunPaths {
    /// The paths of store `name` in `dir`; refuses a name that is not a plain
    /// file name (it also names the devices, `NAME-sID`).
    pub fn new(dir: impl Into<PathBuf>, name: &str) -> Result<Self, RunDirError> {
        let usable = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with(['.', '-'])
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !usable {
            return Err(RunDirError::BadName(name.to_string()));
        }
        Ok(RunPaths {
            dir: dir.into(),
            name: name.to_string(),
        })
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file(&self, extension: &str) -> PathBuf {
        self.dir.join(format!("{}.{extension}", self.name))
    }

    /// `NAME.sock`.
    pub fn socket(&self) -> PathBuf {
        self.file("sock")
    }

    /// `NAME.json`.
    pub fn map(&self) -> PathBuf {
        self.file("json")
    }

    /// `NAME.pid`.
    pub fn pid(&self) -> PathBuf {
        self.file("pid")
    }

    /// `NAME.log`.
    pub fn log(&self) -> PathBuf {
        self.file("log")
    }

    /// Creates the run directory if it is missing.
    pub fn create_dir(&self) -> Result<(), RunDirError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| RunDirError::Io {
            path: self.dir.clone(),
            action: "cannot create the run directory",
            source,
        })
    }

    /// Writes `text` to `path` whole: to a temporary file renamed over it, so
    /// a reader never sees half of it.
    pub fn write_atomic(path: &Path, text: &str) -> Result<(), RunDirError> {
        let temporary = path.with_extension("tmp");
        std::fs::write(&temporary, text)
            .and_then(|()| std::fs::rename(&temporary, path))
            .map_err(|source| RunDirError::Io {
                path: path.to_path_buf(),
                action: "cannot write",
                source,
            })
    }

    /// The daemon's pid from `NAME.pid`, if the file is there.
    pub fn read_pid(&self) -> Result<Option<u32>, RunDirError> {
        let path = self.pid();
        match std::fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| RunDirError::BadMap {
                    path,
                    detail: format!("'{}' is not a process id", text.trim()),
                }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(RunDirError::Io {
                path,
                action: "cannot read",
                source,
            }),
        }
    }

    /// Removes the socket, the device map and the pid file (not the log).
    pub fn remove_files(&self) {
        for path in [self.socket(), self.map(), self.pid()] {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// One device in the map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedDevice {
    /// `NAME` for the origin, `NAME-sID` for a snapshot.
    pub name: String,
    /// The snapshot id; absent for the origin.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub snapshot: Option<u32>,
    /// The ublk device id (`/dev/ublkbN`'s N).
    pub id: u32,
    /// The block device node.
    pub path: PathBuf,
}

/// `NAME.json`: which device serves what, for scripts and `serve --recover`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceMap {
    /// The store's name.
    pub name: String,
    /// The COW device of the store.
    pub store: PathBuf,
    /// The origin.
    pub origin: PathBuf,
    /// The daemon's process id (absent for a daemon served inside a test).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub pid: Option<u32>,
    /// The devices that are up: the origin first, then snapshots by id.
    pub devices: Vec<MappedDevice>,
}

impl DeviceMap {
    /// The device serving the origin (`None`) or snapshot `id`.
    pub fn device(&self, snapshot: Option<u32>) -> Option<&MappedDevice> {
        self.devices.iter().find(|d| d.snapshot == snapshot)
    }

    /// Reads `NAME.json`.
    pub fn read(path: &Path) -> Result<Self, RunDirError> {
        let text = std::fs::read_to_string(path).map_err(|source| RunDirError::Io {
            path: path.to_path_buf(),
            action: "cannot read the device map",
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| RunDirError::BadMap {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
    }

    /// Whether `store` and `origin` are the paths this map was written for,
    /// compared canonicalized (as given when a path cannot be resolved).
    pub fn serves(&self, store: &Path, origin: &Path) -> bool {
        let same = |a: &Path, b: &Path| {
            let resolve = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
            resolve(a) == resolve(b)
        };
        same(&self.store, store) && same(&self.origin, origin)
    }

    /// Writes `NAME.json` whole.
    pub fn write(&self, path: &Path) -> Result<(), RunDirError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| RunDirError::BadMap {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        RunPaths::write_atomic(path, &(text + "\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_be_plain_file_names() {
        let paths = RunPaths::new("/run/cowrt", "home.v1_x-2").unwrap();
        assert_eq!(paths.socket(), Path::new("/run/cowrt/home.v1_x-2.sock"));
        assert_eq!(paths.map(), Path::new("/run/cowrt/home.v1_x-2.json"));
        assert_eq!(paths.pid(), Path::new("/run/cowrt/home.v1_x-2.pid"));
        assert_eq!(paths.log(), Path::new("/run/cowrt/home.v1_x-2.log"));
        for bad in ["", "a/b", "..", "-x", ".x", "a b", &"n".repeat(65)] {
            let error = RunPaths::new("/run/cowrt", bad).unwrap_err().to_string();
            assert!(error.contains("is not a usable name"), "{bad}: {error}");
        }
    }

    #[test]
    fn the_map_reads_back_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let paths = RunPaths::new(dir.path(), "s").unwrap();
        let map = DeviceMap {
            name: "s".to_string(),
            store: "/dev/vdb".into(),
            origin: "/dev/vdc".into(),
            pid: Some(42),
            devices: vec![
                MappedDevice {
                    name: "s".to_string(),
                    snapshot: None,
                    id: 1,
                    path: "/dev/ublkb1".into(),
                },
                MappedDevice {
                    name: "s-s0".to_string(),
                    snapshot: Some(0),
                    id: 0,
                    path: "/dev/ublkb0".into(),
                },
            ],
        };
        map.write(&paths.map()).unwrap();
        let back = DeviceMap::read(&paths.map()).unwrap();
        assert_eq!(back, map);
        assert_eq!(back.device(Some(0)).unwrap().id, 0);
        assert_eq!(back.device(None).unwrap().path, Path::new("/dev/ublkb1"));
        assert!(back.device(Some(3)).is_none());

        std::fs::write(paths.map(), "{}").unwrap();
        let error = DeviceMap::read(&paths.map()).unwrap_err().to_string();
        assert!(
            error.contains("not a cowrt device map: missing field"),
            "{error}"
        );
        assert_eq!(paths.read_pid().unwrap(), None);
        std::fs::write(paths.pid(), "77\n").unwrap();
        assert_eq!(paths.read_pid().unwrap(), Some(77));
    }
}
