//! dm-clone as sequences of `dmsetup` and `losetup` commands.
//!
//! A clone `NAME` is one device, `clone <metadata> <dest> <source> <region>`:
//! it reads as the source from the start, copies the source to the
//! destination region by region in the background ("hydration") and sends
//! writes to the destination; the metadata device records which regions are
//! hydrated. Activation checks the devices first (destination at least as
//! long as the source, region size in the kernel's limits, metadata blank or
//! written for the same region size and length), gives image files loop
//! devices (the source's read-only: nothing writes to it) and makes the
//! `/dev/mapper` node. Hydration is steered by messages and watched through
//! the status line.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cowfmt::clone::geometry::{check_region_sectors, Geometry};
use cowfmt::clone::superblock::{read_clone_metadata, CloneMetadata, SuperblockDefect};
use cowfmt::device::{Access, Device};
use cowfmt::probe::own_kinds;
use cowfmt::SECTOR_BYTES;
use serde::Serialize;

use super::device::{
    active_table, block_device, check_name, mapper, remove_with_loops, status_of, Undo,
};
use super::error::{DmError, PrecheckError};
use super::runner::{dmsetup, Runner};
use super::status::{CloneState, CloneUsage, TargetStatus};
use super::table::Table;

/// The feature word that keeps hydration off.
const NO_HYDRATION: &str = "no_hydration";

/// What to activate.
#[derive(Debug, Clone)]
pub struct CloneRequest {
    /// The metadata device: block device or image file.
    pub metadata: PathBuf,
    /// The destination: block device or image file, at least as long as the
    /// source.
    pub dest: PathBuf,
    /// The source: block device or image file; never written.
    pub source: PathBuf,
    /// Region size in sectors.
    pub region_sectors: u32,
    /// Hydrate in the background from the start (else `no_hydration`).
    pub hydration: bool,
    /// The clone's device name.
    pub name: String,
}

/// What an activation made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloneActivation {
    /// `/dev/mapper/NAME`.
    pub device: String,
    /// Its table.
    pub table: Table,
    /// Regions of the clone.
    pub regions: u64,
    /// Loop devices attached for image files.
    pub loops: Vec<String>,
    /// True when the metadata device was blank and the kernel formats it.
    pub new_metadata: bool,
}

/// A clone's table and status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloneStatus {
    /// The clone's name.
    pub name: String,
    /// `/dev/mapper/NAME`.
    pub device: String,
    /// Its table.
    pub table: Table,
    /// What its status line says.
    pub status: CloneState,
    /// Whether background hydration is on (absent when the clone failed).
    pub hydration_enabled: Option<bool>,
    /// Whether every region is hydrated (absent when the clone failed).
    pub complete: Option<bool>,
}

/// A hydration message (`dm-clone.rst`, "Messages").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HydrationMessage {
    /// `enable_hydration`.
    Start,
    /// `disable_hydration`.
    Stop,
    /// `hydration_threshold N`: at most N regions copied at once (0 pauses).
    Threshold(u32),
    /// `hydration_batch_size N`: contiguous regions copied in batches of N.
    BatchSize(u32),
}

impl HydrationMessage {
    /// The message's words.
    pub fn words(self) -> Vec<String> {
        match self {
            HydrationMessage::Start => vec!["enable_hydration".to_string()],
            HydrationMessage::Stop => vec!["disable_hydration".to_string()],
            HydrationMessage::Threshold(n) => {
                vec!["hydration_threshold".to_string(), n.to_string()]
            }
            HydrationMessage::BatchSize(n) => {
                vec!["hydration_batch_size".to_string(), n.to_string()]
            }
        }
    }
}

/// How a wait for hydration polls.
#[derive(Debug, Clone, Copy)]
pub struct HydrationWait {
    /// Time between status polls.
    pub interval: Duration,
    /// Give up after this long (hydration goes on in the kernel).
    pub timeout: Duration,
}

/// What a wait for hydration saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HydrationReport {
    /// The last status (every region hydrated, unless a dry run).
    pub usage: Option<CloneUsage>,
    /// Status polls (0 in a dry run).
    pub polls: u32,
    /// Time waited.
    pub waited: Duration,
}

/// Parses a region size: a plain number is sectors (as in the table line),
/// a number with a unit (`32k`, `64s`) is converted.
pub fn parse_region_size(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let sectors = if !text.is_empty() && text.chars().all(|c| c.is_ascii_digit()) {
        text.parse::<u64>()
            .map_err(|_| format!("region size '{text}' is too large"))?
    } else {
        let bytes = cowfmt::units::parse_size(text)?;
        if bytes % SECTOR_BYTES != 0 {
            return Err(format!(
                "region size '{text}' is not a whole number of 512-byte sectors"
            ));
        }
        bytes / SECTOR_BYTES
    };
    u32::try_from(sectors).map_err(|_| format!("region size '{text}' is too large"))
}

/// Refuses a region size dm-clone refuses (cowfmt's `clone::geometry`: a
/// power of two from 8 to 2097152 sectors, 4 KiB to 1 GiB).
pub fn check_region_size(sectors: u32) -> Result<(), DmError> {
    check_region_sectors(u64::from(sectors))
        .map_err(|error| DmError::BadOptions(format!("--region-size {sectors} sectors: {error}")))
}

fn refuse(path: &Path, reason: String) -> DmError {
    DmError::Refused(PrecheckError::Refused {
        path: path.display().to_string(),
        reason,
    })
}

/// The same file or device named twice would be written through two roles.
fn check_distinct(request: &CloneRequest) -> Result<(), DmError> {
    let roles = [
        ("--metadata", &request.metadata),
        ("--dest", &request.dest),
        ("--source", &request.source),
    ];
    let identity = |path: &Path| std::fs::canonicalize(path).unwrap_or_else(|_| path.into());
    for (i, (role, path)) in roles.iter().enumerate() {
        for (other, other_path) in &roles[i + 1..] {
            if identity(path) == identity(other_path) {
                return Err(DmError::BadOptions(format!(
                    "{role} and {other} name the same device ({}); a clone needs three",
                    path.display()
                )));
            }
        }
    }
    Ok(())
}

/// Checks the metadata device: blank and large enough for the kernel's
/// format, or dm-clone metadata the kernel would open for this table.
/// Returns true when blank.
fn check_metadata(path: &Path, geometry: &Geometry) -> Result<bool, DmError> {
    let device = Device::open(path, Access::ReadOnly)?;
    let superblock = match read_clone_metadata(&device)? {
        Err(defect) => return Err(refuse(path, defect.to_string())),
        Ok(CloneMetadata::Blank) => {
            return match geometry.check_metadata_device(device.size_bytes()) {
                Ok(_) => Ok(true),
                Err(error) => Err(refuse(
                    path,
                    format!("is blank and too small: {error}; the kernel could not format it"),
                )),
            }
        }
        Ok(CloneMetadata::Superblock(superblock)) => *superblock,
    };
    match superblock.defect() {
        None => {}
        Some(defect @ SuperblockDefect::Magic { .. }) => {
            let what = own_kinds::probe(&device)?
                .into_iter()
                .next()
                .map(|signature| format!("holds {}, not dm-clone metadata", signature.what))
                .unwrap_or_else(|| defect.to_string());
            return Err(refuse(
                path,
                format!(
                    "{what}; the kernel loads a clone only over its own metadata or a device \
                     whose first 4 KiB are zero"
                ),
            ));
        }
        Some(defect) => {
            return Err(refuse(
                path,
                format!("{defect}; the kernel would refuse to load the clone"),
            ))
        }
    }
    let (region_sectors, sectors) = (geometry.region_sectors(), geometry.target_sectors());
    let region_differs = superblock.region_sectors != region_sectors;
    let length_differs = superblock.target_sectors != sectors;
    if region_differs || length_differs {
        return Err(refuse(
            path,
            format!(
                "the dm-clone metadata is for a {}-sector clone with {}-sector regions, this \
                 table is {sectors} sectors with {region_sectors}-sector regions; the kernel \
                 would refuse it (use the metadata's sizes, or zero its first 4 KiB to start \
                 over, which forgets every hydrated region)",
                superblock.target_sectors, superblock.region_sectors
            ),
        ));
    }
    Ok(false)
}

/// Activates a clone (see the module documentation).
pub fn activate(
    runner: &mut dyn Runner,
    request: &CloneRequest,
) -> Result<CloneActivation, DmError> {
    check_name(&request.name, "")?;
    check_region_size(request.region_sectors)?;
    check_distinct(request)?;
    let source_bytes = Device::open(&request.source, Access::ReadOnly)?.size_bytes();
    let sectors = source_bytes / SECTOR_BYTES;
    if sectors == 0 {
        return Err(refuse(
            &request.source,
            "is shorter than one sector: nothing to clone".to_string(),
        ));
    }
    let dest_sectors = Device::open(&request.dest, Access::ReadOnly)?.size_bytes() / SECTOR_BYTES;
    if dest_sectors < sectors {
        return Err(refuse(
            &request.dest,
            format!(
                "has {dest_sectors} sectors, fewer than the source's {sectors}: the destination \
                 must hold the whole source"
            ),
        ));
    }
    let geometry = Geometry::new(u64::from(request.region_sectors), sectors).map_err(|error| {
        DmError::BadOptions(format!(
            "--region-size {} sectors: {error}",
            request.region_sectors
        ))
    })?;
    let regions = geometry.nr_regions();
    let new_metadata = check_metadata(&request.metadata, &geometry)?;
    let mut steps = Undo::new(runner);
    match activate_steps(&mut steps, request, sectors) {
        Ok((table, loops)) => Ok(CloneActivation {
            device: mapper(&request.name),
            table,
            regions,
            loops,
            new_metadata,
        }),
        Err(error) => {
            steps.roll_back();
            Err(error)
        }
    }
}

fn activate_steps(
    steps: &mut Undo<'_>,
    request: &CloneRequest,
    sectors: u64,
) -> Result<(Table, Vec<String>), DmError> {
    let mut loops = Vec::new();
    let metadata = block_device(steps, &request.metadata, false, &mut loops)?;
    let dest = block_device(steps, &request.dest, false, &mut loops)?;
    let source = block_device(steps, &request.source, true, &mut loops)?;
    let table = Table::Clone {
        sectors,
        metadata,
        dest,
        source,
        region_sectors: request.region_sectors,
        features: match request.hydration {
            true => Vec::new(),
            false => vec![NO_HYDRATION.to_string()],
        },
        core_args: Vec::new(),
    };
    steps.run(
        dmsetup::create(&request.name, &table),
        Some(dmsetup::remove(&request.name)),
    )?;
    steps.run(dmsetup::mknodes(), None)?;
    Ok((table, loops))
}

/// The clone's table, or why `name` is not an active clone.
fn clone_table(runner: &mut dyn Runner, name: &str) -> Result<Table, DmError> {
    match active_table(runner, name)? {
        None => Err(DmError::NoDevice(name.to_string())),
        Some(table @ Table::Clone { .. }) => Ok(table),
        Some(other) => Err(DmError::WrongTarget {
            name: name.to_string(),
            found: other.to_string(),
            expected: "a clone",
        }),
    }
}

/// Whether `name` is an active clone (false when it is absent or another
/// target).
pub fn is_clone(runner: &mut dyn Runner, name: &str) -> Result<bool, DmError> {
    Ok(matches!(
        active_table(runner, name)?,
        Some(Table::Clone { .. })
    ))
}

fn clone_state(runner: &mut dyn Runner, name: &str) -> Result<CloneState, DmError> {
    match status_of(runner, name)?.status {
        TargetStatus::Clone { state } => Ok(state),
        other => Err(DmError::WrongTarget {
            name: name.to_string(),
            found: format!("{other:?}"),
            expected: "a clone",
        }),
    }
}

/// The table and status of clone `name`.
pub fn status(runner: &mut dyn Runner, name: &str) -> Result<CloneStatus, DmError> {
    let table = clone_table(runner, name)?;
    let state = clone_state(runner, name)?;
    let usage = match &state {
        CloneState::Active(usage) => Some(usage),
        _ => None,
    };
    Ok(CloneStatus {
        name: name.to_string(),
        device: mapper(name),
        table,
        hydration_enabled: usage.map(CloneUsage::hydration_enabled),
        complete: usage.map(CloneUsage::is_complete),
        status: state,
    })
}

/// Sends `message` to clone `name`. When the kernel refuses it, says whether
/// `name` is missing or not a clone.
pub fn message(
    runner: &mut dyn Runner,
    name: &str,
    message: HydrationMessage,
) -> Result<(), DmError> {
    check_name(name, "")?;
    match runner.run(&dmsetup::message(name, &message.words())) {
        Ok(_) => Ok(()),
        Err(error) => {
            clone_table(runner, name)?;
            Err(error.into())
        }
    }
}

/// Polls the status of clone `name` until every region is hydrated; calls
/// `progress` with each status that differs from the one before. Fails when
/// the clone fails, when hydration is off or paused (threshold 0) with
/// regions left, or after `wait.timeout`. A dry run does not wait.
pub fn wait_hydrated(
    runner: &mut dyn Runner,
    name: &str,
    wait: HydrationWait,
    progress: &mut dyn FnMut(&CloneUsage),
) -> Result<HydrationReport, DmError> {
    let started = Instant::now();
    if runner.is_dry_run() {
        return Ok(HydrationReport {
            usage: None,
            polls: 0,
            waited: Duration::ZERO,
        });
    }
    clone_table(runner, name)?;
    let mut polls = 0;
    let mut last: Option<CloneUsage> = None;
    loop {
        polls += 1;
        let failed = |state| DmError::HydrationFailed {
            name: name.to_string(),
            state,
        };
        let usage = match clone_state(runner, name)? {
            CloneState::Active(usage) => usage,
            CloneState::Fail => return Err(failed("Fail")),
            CloneState::Error => return Err(failed("Error")),
        };
        if last.as_ref() != Some(&usage) {
            progress(&usage);
        }
        if usage.is_complete() {
            return Ok(HydrationReport {
                usage: Some(usage),
                polls,
                waited: started.elapsed(),
            });
        }
        let stalled = |why| DmError::HydrationStalled {
            name: name.to_string(),
            waited: started.elapsed(),
            hydrated: usage.hydrated_regions,
            total: usage.total_regions,
            why,
        };
        if !usage.hydration_enabled() {
            return Err(stalled(
                "hydration is off; start it with `cowrt dm hydrate NAME start`",
            ));
        }
        if usage.core_arg("hydration_threshold") == Some(0) && usage.hydrating_regions == 0 {
            return Err(stalled(
                "hydration is paused (threshold 0); raise it with `cowrt dm hydrate NAME \
                 threshold N`",
            ));
        }
        if started.elapsed() >= wait.timeout {
            return Err(stalled(
                "timed out; the kernel goes on, run the wait again to follow it",
            ));
        }
        last = Some(usage);
        std::thread::sleep(wait.interval);
    }
}

/// Removes clone `name`, then detaches the loop devices its table names
/// unless `keep_loops`. Returns the loop devices detached.
pub fn deactivate(
    runner: &mut dyn Runner,
    name: &str,
    keep_loops: bool,
) -> Result<Vec<String>, DmError> {
    clone_table(runner, name)?;
    remove_with_loops(runner, &[name.to_string()], keep_loops)
}

#[cfg(test)]
mod tests;
