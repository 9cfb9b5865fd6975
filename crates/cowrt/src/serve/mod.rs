//! The shared-store daemon behind `cowrt serve` and its clients (`cowrt
//! message`, `status`, `stop`), transport-neutral: the devices it serves live
//! on a [`host::DeviceHost`] (ublk in the real daemon, memory in tests).
//!
//! - [`store`]: opening a store to serve (lock, journal replay, cowcheck);
//! - [`daemon`]: devices, control requests, periodic commit, stop;
//! - [`protocol`]: the socket's one-line requests and replies;
//! - [`client`]: sending a request, and `--freeze` around `create`;
//! - [`rundir`]: `NAME.sock`, `NAME.json`, `NAME.pid`, `NAME.log`;
//! - [`launch`]: the foreground run and the background start;
//! - [`mounts`]: ublk mounts the daemon's namespace must let go of.

pub mod client;
pub mod daemon;
pub mod host;
pub mod launch;
pub mod mounts;
pub mod protocol;
pub mod rundir;
pub mod store;

use std::io;
use std::path::PathBuf;

pub use daemon::{Daemon, DaemonConfig, StatusReport, StopReport};
pub use host::{DeviceHost, DeviceInfo, DeviceSpec, HostError, MemHost};
pub use rundir::{DeviceMap, RunPaths, DEFAULT_RUN_DIR};

/// Why the daemon could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Another daemon holds the store's lock.
    #[error("{path}: the store is in use by another cowrt serve (it holds the store's lock)")]
    InUse {
        /// The COW device.
        path: PathBuf,
    },
    /// A daemon already answers on the name's socket.
    #[error(
        "'{name}' is served already ({socket} answers); stop it first with `cowrt stop {name}`"
    )]
    Served {
        /// The name.
        name: String,
        /// Its socket.
        socket: PathBuf,
    },
    /// cowcheck finds the store damaged.
    #[error("{path}: {reason}")]
    Damaged {
        /// The COW device.
        path: PathBuf,
        /// cowcheck's verdict ([`crate::damage::verdict`]).
        reason: String,
    },
    /// The store could not be opened or served.
    #[error(transparent)]
    Store(#[from] cowfmt::Error),
    /// A device could not be brought up or down.
    #[error(transparent)]
    Host(#[from] HostError),
    /// A run-directory file could not be used.
    #[error(transparent)]
    RunDir(#[from] rundir::RunDirError),
    /// A system call failed.
    #[error("{path}: {action}: {source}")]
    Io {
        /// What it was about.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The error.
        source: io::Error,
    },
    /// `serve --recover` names another store or origin than the device map.
    #[error("{map}: the devices were served for store {map_store} and origin {map_origin}, not store {store} and origin {origin}; give the paths of NAME.json to --recover")]
    RecoverMismatch {
        /// The device map.
        map: PathBuf,
        /// The store the map names.
        map_store: PathBuf,
        /// The origin the map names.
        map_origin: PathBuf,
        /// The store given.
        store: PathBuf,
        /// The origin given.
        origin: PathBuf,
    },
    /// The daemon stopped with errors.
    #[error("{0}")]
    Stopped(String),
}
