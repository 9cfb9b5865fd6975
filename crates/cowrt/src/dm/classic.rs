//! Classic snapshots as sequences of `dmsetup` and `losetup` commands.
//!
//! A classic snapshot `NAME` is two devices: `NAME-origin` (a
//! `snapshot-origin` over the origin: every write to the origin must go
//! through it) and `NAME` (the `snapshot`). Activation checks the store first
//! ([`precheck`]), gives image files loop devices, creates the origin device,
//! suspends it around the snapshot's creation (as LVM does) and makes the
//! `/dev/mapper` nodes (udev may be absent: runtime.md 3.4). If a step fails,
//! the steps already done are undone.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use cowfmt::device::{Access, Device};
use cowfmt::SECTOR_BYTES;
use serde::Serialize;

use super::device::{
    active_names, block_device, check_name, mapper, remove_with_loops, status_of, table_of, Undo,
};
pub use super::error::DmError;
use super::precheck::{precheck, ClassicKind};
use super::runner::{dmsetup, Runner};
use super::status::{SnapshotState, StatusLine, TargetStatus};
use super::table::{Persistence, SnapshotArgs, Table};

/// What the origin device's name adds to the snapshot's.
const ORIGIN_SUFFIX: &str = "-origin";

/// What to activate.
#[derive(Debug, Clone)]
pub struct ActivateRequest {
    /// The store kind.
    pub kind: ClassicKind,
    /// `PO` instead of `P`: a full store reports Overflow, the snapshot stays
    /// readable (persistent only).
    pub overflow: bool,
    /// The origin: block device or image file.
    pub origin: PathBuf,
    /// The COW device: block device or image file.
    pub cow: PathBuf,
    /// Chunk size in sectors, for an empty COW device (a formatted store's
    /// header decides; a different value is refused).
    pub chunk_sectors: Option<u32>,
    /// The snapshot's device name.
    pub name: String,
}

/// What an activation made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Activation {
    /// `/dev/mapper/NAME-origin`: write to the origin through this device.
    pub origin_device: String,
    /// `/dev/mapper/NAME`: the snapshot.
    pub snapshot_device: String,
    /// The origin device's table.
    pub origin_table: Table,
    /// The snapshot device's table.
    pub snapshot_table: Table,
    /// Loop devices attached for image files.
    pub loops: Vec<String>,
    /// True when the COW device was empty and the kernel formats it.
    pub formatted_by_kernel: bool,
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergeReport {
    /// `/dev/mapper/NAME-origin`, now holding the snapshot's data.
    pub origin_device: String,
    /// Sectors of the COW device in use when the merge started.
    pub allocated_sectors: Option<u64>,
    /// Status polls until the merge was done (0 in a dry run).
    pub polls: u32,
    /// Time waited.
    pub waited: Duration,
}

/// The devices of one classic snapshot, with their status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DmStatus {
    /// The snapshot's name.
    pub name: String,
    /// `NAME`'s status, if the device exists.
    pub snapshot: Option<StatusLine>,
    /// `NAME-origin`'s status, if the device exists.
    pub origin: Option<StatusLine>,
}

/// How a merge waits.
#[derive(Debug, Clone, Copy)]
pub struct MergeWait {
    /// Time between status polls.
    pub interval: Duration,
    /// Give up after this long (the merge goes on in the kernel).
    pub timeout: Duration,
}

fn origin_name(name: &str) -> String {
    format!("{name}{ORIGIN_SUFFIX}")
}

/// The persistence word for `kind`, refusing overflow where the kernel or the
/// kind has none.
fn persistence(kind: ClassicKind, overflow: bool) -> Result<Persistence, DmError> {
    match (kind, overflow) {
        (ClassicKind::Persistent, false) | (ClassicKind::Legacy, false) => {
            Ok(Persistence::Persistent)
        }
        (ClassicKind::Persistent, true) => Ok(Persistence::PersistentOverflow),
        (ClassicKind::Transient, false) => Ok(Persistence::Transient),
        (ClassicKind::Legacy, true) => Err(DmError::BadOptions(
            "--overflow needs --kind persistent: the kernels a legacy store is kept for (before \
             2.6.29) have no overflow mode"
                .to_string(),
        )),
        (ClassicKind::Transient, true) => Err(DmError::BadOptions(
            "--overflow needs --kind persistent: a transient snapshot has no overflow mode"
                .to_string(),
        )),
    }
}

/// Activates a classic snapshot (see the module documentation).
pub fn activate(runner: &mut dyn Runner, request: &ActivateRequest) -> Result<Activation, DmError> {
    check_name(&request.name, ORIGIN_SUFFIX)?;
    let persistence = persistence(request.kind, request.overflow)?;
    let origin_bytes = Device::open(&request.origin, Access::ReadOnly)?.size_bytes();
    let checked = {
        let cow = Device::open(&request.cow, Access::ReadOnly)?;
        precheck(request.kind, &cow, origin_bytes, request.chunk_sectors)?
    };
    let mut steps = Undo::new(runner);
    let result = activate_steps(
        &mut steps,
        request,
        persistence,
        origin_bytes,
        checked.chunk_sectors,
    );
    match result {
        Ok((origin_table, snapshot_table, loops)) => Ok(Activation {
            origin_device: mapper(&origin_name(&request.name)),
            snapshot_device: mapper(&request.name),
            origin_table,
            snapshot_table,
            loops,
            formatted_by_kernel: checked.empty && request.kind != ClassicKind::Transient,
        }),
        Err(error) => {
            steps.roll_back();
            Err(error)
        }
    }
}

fn activate_steps(
    steps: &mut Undo<'_>,
    request: &ActivateRequest,
    persistence: Persistence,
    origin_bytes: u64,
    chunk_sectors: u32,
) -> Result<(Table, Table, Vec<String>), DmError> {
    let mut loops = Vec::new();
    let origin = block_device(steps, &request.origin, false, &mut loops)?;
    let cow = block_device(steps, &request.cow, false, &mut loops)?;
    let sectors = origin_bytes / SECTOR_BYTES;
    let origin_table = Table::SnapshotOrigin {
        sectors,
        origin: origin.clone(),
    };
    let snapshot_table = Table::Snapshot {
        sectors,
        snapshot: SnapshotArgs {
            origin,
            cow,
            persistence,
            chunk_sectors,
        },
    };
    let origin_name = origin_name(&request.name);
    steps.run(
        dmsetup::create(&origin_name, &origin_table),
        Some(dmsetup::remove(&origin_name)),
    )?;
    steps.run(
        dmsetup::suspend(&origin_name),
        Some(dmsetup::resume(&origin_name)),
    )?;
    steps.run(
        dmsetup::create(&request.name, &snapshot_table),
        Some(dmsetup::remove(&request.name)),
    )?;
    steps.forget(&dmsetup::resume(&origin_name));
    steps.run(dmsetup::resume(&origin_name), None)?;
    steps.run(dmsetup::mknodes(), None)?;
    Ok((origin_table, snapshot_table, loops))
}

/// The status of `NAME` and `NAME-origin`, whichever exist.
pub fn status(runner: &mut dyn Runner, name: &str) -> Result<DmStatus, DmError> {
    check_name(name, ORIGIN_SUFFIX)?;
    let names = active_names(runner)?;
    let origin = origin_name(name);
    let mut line = |device: &str| -> Result<Option<StatusLine>, DmError> {
        match names.iter().any(|n| n == device) {
            true => status_of(runner, device).map(Some),
            false => Ok(None),
        }
    };
    let snapshot = line(name)?;
    let origin = line(&origin)?;
    if snapshot.is_none() && origin.is_none() {
        return Err(DmError::NotActive(name.to_string()));
    }
    Ok(DmStatus {
        name: name.to_string(),
        snapshot,
        origin,
    })
}

/// Removes `NAME` and then `NAME-origin` (whichever exist), then detaches the
/// loop devices their tables name unless `keep_loops`. Returns the loop
/// devices detached.
pub fn deactivate(
    runner: &mut dyn Runner,
    name: &str,
    keep_loops: bool,
) -> Result<Vec<String>, DmError> {
    check_name(name, ORIGIN_SUFFIX)?;
    let names = active_names(runner)?;
    let devices: Vec<String> = [name.to_string(), origin_name(name)]
        .into_iter()
        .filter(|d| names.contains(d))
        .collect();
    if devices.is_empty() {
        return Err(DmError::NotActive(name.to_string()));
    }
    remove_with_loops(runner, &devices, keep_loops)
}

/// Merges snapshot `NAME` back into its origin: with `NAME-origin`
/// suspended, removes `NAME` (its exceptions are on the COW device) and loads
/// `snapshot-merge` on `NAME-origin`; waits until only metadata is left, then
/// loads `NAME-origin` as a plain `linear` map of the origin. The origin reads
/// as the snapshot from the moment it resumes. A dry run prints the commands
/// and does not wait.
pub fn merge(runner: &mut dyn Runner, name: &str, wait: MergeWait) -> Result<MergeReport, DmError> {
    check_name(name, ORIGIN_SUFFIX)?;
    let origin = origin_name(name);
    let names = active_names(runner)?;
    for device in [name, origin.as_str()] {
        if !names.iter().any(|n| n == device) {
            return Err(DmError::NotActive(name.to_string()));
        }
    }
    let (sectors, snapshot) = match table_of(runner, name)? {
        Table::Snapshot { sectors, snapshot } if snapshot.persistence != Persistence::Transient => {
            (sectors, snapshot)
        }
        other => {
            return Err(DmError::WrongTarget {
                name: name.to_string(),
                found: other.to_string(),
                expected: "a persistent snapshot (P or PO): a transient one has nothing on disk \
                           to merge",
            })
        }
    };
    let allocated_sectors = match status_of(runner, name)?.status {
        TargetStatus::Snapshot {
            state: SnapshotState::Active {
                allocated_sectors, ..
            },
        } => Some(allocated_sectors),
        TargetStatus::Snapshot {
            state: state @ (SnapshotState::Invalid | SnapshotState::MergeFailed),
        } => {
            return Err(DmError::MergeFailed {
                name: name.to_string(),
                state,
            })
        }
        _ => None,
    };
    let origin_dev = snapshot.origin.clone();
    let merge_table = Table::SnapshotMerge { sectors, snapshot };
    while_suspended(
        runner,
        &origin,
        &[dmsetup::remove(name), dmsetup::load(&origin, &merge_table)],
    )?;
    let started = Instant::now();
    let mut polls = 0;
    if !runner.is_dry_run() {
        loop {
            polls += 1;
            let state = match status_of(runner, &origin)?.status {
                TargetStatus::SnapshotMerge { state } => state,
                _ => SnapshotState::Unknown,
            };
            if state.merge_done() {
                break;
            }
            if !matches!(state, SnapshotState::Active { .. }) {
                return Err(DmError::MergeFailed {
                    name: name.to_string(),
                    state,
                });
            }
            if started.elapsed() >= wait.timeout {
                return Err(DmError::MergeTimeout {
                    name: name.to_string(),
                    waited: started.elapsed(),
                });
            }
            std::thread::sleep(wait.interval);
        }
    }
    let linear = Table::Linear {
        sectors,
        device: origin_dev,
        offset: 0,
    };
    while_suspended(runner, &origin, &[dmsetup::load(&origin, &linear)])?;
    Ok(MergeReport {
        origin_device: mapper(&origin),
        allocated_sectors,
        polls,
        waited: started.elapsed(),
    })
}

/// Suspends `origin`, runs `steps`, resumes it. If a step (or the resume)
/// fails, the origin is resumed all the same (best effort: its own failure
/// is not reported) and the step's error is returned: a failed merge never
/// leaves the origin suspended.
fn while_suspended(
    runner: &mut dyn Runner,
    origin: &str,
    steps: &[super::runner::Command],
) -> Result<(), DmError> {
    let resume = dmsetup::resume(origin);
    let suspended = runner.run(&dmsetup::suspend(origin));
    let done = suspended
        .and_then(|_| steps.iter().try_for_each(|step| runner.run(step).map(drop)))
        .and_then(|()| runner.run(&resume).map(drop));
    if done.is_err() {
        let _ = runner.run(&resume);
    }
    Ok(done?)
}

#[cfg(test)]
mod tests;
