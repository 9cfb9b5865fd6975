//! Why a device-mapper job failed, for every kind.

use std::time::Duration;

use super::runner::RunError;
use super::status::{SnapshotState, StatusError};
use super::table::TableError;

/// Why a store (or a clone's devices) was refused before activation.
#[derive(Debug, thiserror::Error)]
pub enum PrecheckError {
    /// The store is not what was asked for, or is damaged.
    #[error("{path}: {reason}")]
    Refused {
        /// The device refused.
        path: String,
        /// Why, in one sentence (with cowcheck's findings when it ran).
        reason: String,
    },
    /// The check could not run.
    #[error(transparent)]
    Check(#[from] cowfmt::Error),
}

/// Why a device-mapper job failed.
#[derive(Debug, thiserror::Error)]
pub enum DmError {
    /// A name device-mapper would refuse or that would clash.
    #[error("device name '{name}': {problem}")]
    BadName {
        /// The name.
        name: String,
        /// What is wrong.
        problem: String,
    },
    /// Options that do not go together.
    #[error("{0}")]
    BadOptions(String),
    /// The store was refused before activation.
    #[error("refused: {0}")]
    Refused(#[from] PrecheckError),
    /// A device could not be opened or sized.
    #[error(transparent)]
    Device(#[from] cowfmt::Error),
    /// A command failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The kernel printed a table line cowrt does not understand.
    #[error(transparent)]
    Table(#[from] TableError),
    /// The kernel printed a status line cowrt does not understand.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// Neither `NAME` nor `NAME-origin` exists.
    #[error("no device '{0}' or '{0}-origin' is active")]
    NotActive(String),
    /// `NAME` does not exist.
    #[error("no device '{0}' is active")]
    NoDevice(String),
    /// `NAME` is not what the job needs.
    #[error("device '{name}' is {found}, expected {expected}")]
    WrongTarget {
        /// The device.
        name: String,
        /// Its table's target.
        found: String,
        /// What was needed.
        expected: &'static str,
    },
    /// The merge stopped.
    #[error("merging '{name}' failed: the origin reports {state:?}")]
    MergeFailed {
        /// The snapshot.
        name: String,
        /// What the origin reported.
        state: SnapshotState,
    },
    /// The merge did not finish in time.
    #[error("merging '{name}' is not done after {waited:?}: the kernel goes on; run `cowrt dm merge {name}` again to wait")]
    MergeTimeout {
        /// The snapshot.
        name: String,
        /// Time waited.
        waited: Duration,
    },
    /// The clone's metadata failed while hydrating.
    #[error("hydrating '{name}' failed: the clone reports {state} (dmesg says why)")]
    HydrationFailed {
        /// The clone.
        name: String,
        /// What it reported: `Fail` or `Error`.
        state: &'static str,
    },
    /// Hydration stopped making progress, or was off, or did not end in time.
    #[error("hydrating '{name}' is not done after {:.1} s ({hydrated}/{total} regions): {why}", waited.as_secs_f64())]
    HydrationStalled {
        /// The clone.
        name: String,
        /// Time waited.
        waited: Duration,
        /// Regions hydrated at the end.
        hydrated: u64,
        /// Regions in all.
        total: u64,
        /// Why the wait ended.
        why: &'static str,
    },
}
