//! What a repair job tells its caller while it runs: lines for people, and
//! how far each phase got. The library never prints; the caller renders.

use std::path::Path;

use crate::kind::StoreKind;
use crate::probe::Coverage;
use crate::progress::Progress;

/// A phase of a repair that reports progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Reading the damaged store (steps: the job's own; total told as it goes).
    Scanning,
    /// Copying the kept data into the output (total: the steps to copy).
    Copying(u64),
    /// Copying the input to the in-place repair's backup (total: bytes).
    BackingUp(u64),
    /// Comparing the backup with the input (total: bytes).
    VerifyingCopy(u64),
    /// Checking the written persistent store (total told as it goes).
    VerifyingStore,
    /// Checking the written shared store (tree blocks, no known total).
    VerifyingTree,
}

/// Something a repair says at once, before its report.
#[derive(Debug, Clone, Copy)]
pub enum Notice<'a> {
    /// The search for foreign signatures on `path` looked for this crate's
    /// kinds only.
    Coverage {
        /// The device searched.
        path: &'a Path,
        /// Which search ran.
        coverage: &'a Coverage,
    },
    /// `path` (an output or a backup) held `what`, which `--force` overwrites.
    Overwritten {
        /// The output or backup.
        path: &'a Path,
        /// What it held.
        what: &'a str,
    },
    /// The input holds a foreign signature and is repaired as a store of
    /// `kind` anyway, because the caller insisted.
    TreatedAsStore {
        /// The input.
        path: &'a Path,
        /// What it holds.
        what: &'a str,
        /// The kind it is repaired as.
        kind: StoreKind,
        /// Whether it is rewritten in place.
        in_place: bool,
    },
}

/// The caller's side of a running repair.
pub trait RepairEvents {
    /// Says `notice` now.
    fn notice(&mut self, notice: Notice<'_>);
    /// A phase starts.
    fn begin(&mut self, phase: Phase);
    /// The current phase got `done` of `total` steps (`total` 0: unknown).
    fn advance(&mut self, done: u64, total: u64);
    /// The current phase ended.
    fn end(&mut self);
}

/// Runs `job` as `phase` of `events`: begins it, passes the job a progress
/// callback that advances it, and ends it.
pub fn in_phase<T>(
    events: &mut dyn RepairEvents,
    phase: Phase,
    job: impl FnOnce(&mut Progress) -> T,
) -> T {
    events.begin(phase);
    let result = job(&mut |done, total| events.advance(done, total));
    events.end();
    result
}
