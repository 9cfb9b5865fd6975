//! The repair of clone metadata: the salvage, the decision for every lost
//! region (from `--source`/`--dest` data, else the caller's
//! `--lost-regions`, else a refusal naming the lost ranges), then the
//! writing, into a new output or in place from a verified backup, and the
//! check of what was written.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bitset::DenseBitmap;
use crate::blockdev::BlockDev;
use crate::device::{Access, Device};
use crate::error::{Error, Result};
use crate::repair::in_place::InPlace;
use crate::repair::target::open_for_writing;
use crate::repair::{Finished, RepairError, RepairEvents, RepairRequest, Verdict};

use super::check::report as check_report;
use super::geometry::Geometry;
use super::lost::{apply, decide_by_choice, decide_from_data, DecidedRun, LostRegions, Reason};
use super::salvage::{salvage, GivenSizes, Salvage};
use super::walk::{walk, Policy};
use super::write::write_clone;

/// How lost regions are to be decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LostPolicy {
    /// Not said: a repair with lost regions is refused.
    Unsaid,
    /// From the data: the clone's source device and its destination.
    FromData {
        /// The source (origin) device.
        source: PathBuf,
        /// The destination device.
        dest: PathBuf,
    },
    /// Every lost region as chosen.
    Chosen(LostRegions),
}

/// What a clone repair found and decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloneRepairReport {
    /// Region size in sectors.
    pub region_size: u64,
    /// Target size in sectors.
    pub target_size: u64,
    /// Regions of the target.
    pub nr_regions: u64,
    /// Regions whose state was read.
    pub salvaged_regions: u64,
    /// Regions whose state was lost.
    pub lost_regions: u64,
    /// Regions hydrated in the repaired metadata.
    pub hydrated_regions: u64,
    /// Every run of lost regions, the state given and why.
    pub decided: Vec<DecidedRun>,
    /// The damage met, one sentence each.
    pub problems: Vec<String>,
    /// How the repair was made, where that is worth saying (the sizes
    /// given, the backup read), one sentence each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl CloneRepairReport {
    /// Whether a region's state was set by the caller's choice, not read or
    /// decided from data.
    pub fn states_chosen(&self) -> bool {
        self.decided.iter().any(|run| run.reason == Reason::Chosen)
    }
}

/// The region states a repair writes, and its report.
#[derive(Debug, Clone)]
pub struct ClonePlan {
    /// One bit per region: hydrated.
    pub bits: DenseBitmap,
    /// The sizes written.
    pub geometry: Geometry,
    /// What was found and decided.
    pub report: CloneRepairReport,
}

/// Salvages the metadata on `input` and decides its lost regions by
/// `policy`; each size `given` replaces the superblock's (the target size
/// defaults to the size of `policy`'s source when the superblock's are
/// unusable). Refuses (an `Error::Invalid`) sizes missing, and lost
/// regions when `policy` is `Unsaid`, naming them.
pub fn plan(input: &dyn BlockDev, given: &GivenSizes, policy: &LostPolicy) -> Result<ClonePlan> {
    let given = GivenSizes {
        source_sectors: source_sectors(policy)?,
        ..*given
    };
    let Salvage {
        geometry,
        stored,
        mut bits,
        lost,
        problems,
    } = salvage(input, &given)?;
    let decided = match policy {
        _ if lost.is_empty() => Vec::new(),
        LostPolicy::Unsaid => return Err(Error::Invalid(unsaid(input, &lost))),
        LostPolicy::Chosen(choice) => decide_by_choice(&lost, *choice),
        LostPolicy::FromData { source, dest } => {
            let source = Device::open(source, Access::ReadOnly)?;
            let dest = Device::open(dest, Access::ReadOnly)?;
            decide_from_data(&geometry, &lost, &source, &dest)?
        }
    };
    apply(&mut bits, &decided);
    let lost_regions: u64 = lost.iter().map(|r| r.end - r.start).sum();
    let report = CloneRepairReport {
        region_size: geometry.region_sectors(),
        target_size: geometry.target_sectors(),
        nr_regions: geometry.nr_regions(),
        salvaged_regions: geometry.nr_regions() - lost_regions,
        lost_regions,
        hydrated_regions: bits.count_ones(),
        decided,
        problems,
        notes: sizes_note(&geometry, stored).into_iter().collect(),
    };
    Ok(ClonePlan {
        bits,
        geometry,
        report,
    })
}

/// The note saying the sizes written are not the superblock's `stored`.
fn sizes_note(geometry: &Geometry, stored: Option<(u64, u64)>) -> Option<String> {
    let written = (geometry.region_sectors(), geometry.target_sectors());
    if stored == Some(written) {
        return None;
    }
    let said = match stored {
        Some((region, target)) => {
            format!("the superblock says a region size of {region} and a target size of {target}")
        }
        None => "the superblock gives no sizes".to_string(),
    };
    Some(format!(
        "written with a region size of {} sectors and a target size of {} sectors, as given ({said})",
        written.0, written.1
    ))
}

/// The target size the source device gives, in sectors, when the data
/// decides lost regions.
fn source_sectors(policy: &LostPolicy) -> Result<Option<u64>> {
    let LostPolicy::FromData { source, .. } = policy else {
        return Ok(None);
    };
    Ok(Some(
        Device::open(source, Access::ReadOnly)?.size_bytes() / crate::SECTOR_BYTES,
    ))
}

/// How a clone repair ended, or why it stopped.
pub type JobResult = Result<Finished<CloneRepairReport>, RepairError<CloneRepairReport>>;

impl CloneRepairReport {
    /// Kept when every region state was read or decided from the data; lost
    /// when some were set by the caller's choice.
    pub fn verdict(&self) -> Verdict {
        Verdict::of(false, self.states_chosen())
    }
}

/// The lost-region policy `request` asks for.
pub fn policy(request: &RepairRequest) -> Result<LostPolicy> {
    match (&request.source, &request.dest, request.lost_regions) {
        (Some(source), Some(dest), None) => Ok(LostPolicy::FromData {
            source: source.clone(),
            dest: dest.clone(),
        }),
        (None, None, Some(choice)) => Ok(LostPolicy::Chosen(choice)),
        (None, None, None) => Ok(LostPolicy::Unsaid),
        (Some(_), Some(_), Some(_)) => Err(Error::Invalid(
            "give either --source and --dest or --lost-regions, not both".to_string(),
        )),
        _ => Err(Error::Invalid(
            "--source and --dest go together: the data decides a lost region by comparing both"
                .to_string(),
        )),
    }
}

/// The sizes `request` gives, replacing the superblock's.
pub fn given_sizes(request: &RepairRequest) -> GivenSizes {
    GivenSizes {
        region_sectors: request.region_size,
        target_sectors: request.target_size,
        source_sectors: None,
    }
}

/// Repairs the clone metadata `input` (opened read-only) as `request` asks:
/// a new output of the input's size (or `request.size`), or the input
/// itself rebuilt from a verified backup (`in_place`), written through
/// [`write_clone`] and checked.
pub fn run(request: &RepairRequest, input: Device, events: &mut dyn RepairEvents) -> JobResult {
    refuse_store_options(request)?;
    let policy = policy(request)?;
    let given = given_sizes(request);
    if request.in_place {
        return in_place(request, input, &given, &policy, events);
    }
    let plan = plan(&input, &given, &policy)?;
    let Some(output) = request.output.as_deref() else {
        return Ok(Finished::dry_run(plan.report));
    };
    let size = request.size.unwrap_or(input.size_bytes());
    let nr_blocks = metadata_blocks(&plan, output, size)?;
    let prepared = open_for_writing(request, output, size, request.size.is_some(), events)?;
    let mut device = prepared.device;
    write(&mut device, &plan, nr_blocks, output)?;
    drop(device);
    prepared.claim.keep();
    finish(plan, output)
}

/// Refuses the options of the COW store kinds, which mean nothing for clone
/// metadata (never ignored silently).
fn refuse_store_options(request: &RepairRequest) -> Result<()> {
    let store_only = [
        (request.chunk_size.is_some(), "--chunk-size"),
        (request.origin.is_some(), "--origin"),
        (request.origin_size.is_some(), "--origin-size"),
        (request.journal_chunks.is_some(), "--journal-chunks"),
        (request.snapshots.is_some(), "--snapshots"),
        (request.snapmask.is_some(), "--snapmask"),
        (request.full_scan, "--full-scan"),
        (request.mark_valid, "--mark-valid"),
        (request.invalidate_on_loss, "--invalidate-on-loss"),
        (request.kernel_areas_only, "--kernel-areas-only"),
    ];
    match store_only.iter().find(|(given, _)| *given) {
        Some((_, flag)) => Err(Error::Invalid(format!(
            "{}: {flag} applies to COW stores, and this is dm-clone metadata (its lost regions take --source/--dest or --lost-regions)",
            request.input.display()
        ))),
        None => Ok(()),
    }
}

/// Copies the input to the backup and verifies the copy, then rebuilds the
/// input from the backup (or finishes an interrupted rebuild from it). A
/// repair the input refuses (lost regions undecided, sizes missing) is
/// refused before the backup is made; what is written is planned from the
/// verified backup.
fn in_place(
    request: &RepairRequest,
    input: Device,
    given: &GivenSizes,
    policy: &LostPolicy,
    events: &mut dyn RepairEvents,
) -> JobResult {
    plan(&input, given, policy)?;
    let job = InPlace::prepare(request, input, events)?;
    let mut plan = plan(&job.backup, given, policy)?;
    let nr_blocks = metadata_blocks(&plan, &request.input, job.target.size_bytes())?;
    let (mut target, _backup, _claim) = job.mark()?;
    write(&mut target, &plan, nr_blocks, &request.input)?;
    drop(target);
    plan.report.notes.push(format!(
        "the region states were read from the verified backup {}",
        request.backup_path().display()
    ));
    finish(plan, &request.input)
}

/// The metadata blocks of an output of `size` bytes at `path`, refused when
/// it cannot hold the plan's bitset.
fn metadata_blocks(plan: &ClonePlan, path: &Path, size: u64) -> Result<u64> {
    plan.geometry
        .check_metadata_device(size)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}

/// Writes the plan's metadata on `device` (the superblock last).
fn write(device: &mut Device, plan: &ClonePlan, nr_blocks: u64, path: &Path) -> Result<()> {
    write_clone(device, &plan.geometry, nr_blocks, &plan.bits)
        .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    Ok(())
}

/// Checks the metadata written at `output` (the library checker) and that
/// it reads back the region states written, then ends the job.
fn finish(plan: ClonePlan, output: &Path) -> JobResult {
    let device = Device::open(output, Access::ReadOnly)?;
    let walked = walk(&device, None, Policy::Tolerant, &mut ())?;
    let words = plan.geometry.nr_words();
    let reads_back = walked.lost.is_empty()
        && walked.bits.as_ref().is_some_and(|bits| {
            bits.len() == plan.bits.len() && (0..words).all(|w| bits.word(w) == plan.bits.word(w))
        });
    let checked = check_report(walked);
    let mut finished = Finished::written(plan.report, output, &checked.findings);
    if !reads_back && finished.problems.is_none() {
        finished.problems = Some(format!(
            "{}: the repaired metadata does not read back the region states written",
            output.display()
        ));
    }
    Ok(finished)
}

fn unsaid(input: &dyn BlockDev, lost: &[Range<u64>]) -> String {
    let count: u64 = lost.iter().map(|r| r.end - r.start).sum();
    let ranges: Vec<String> = lost
        .iter()
        .map(|r| format!("{}..{}", r.start, r.end))
        .collect();
    format!(
        "{}: the state of {count} region{} is lost (regions {}); give --source SRC --dest DST to decide each from the data, or --lost-regions hydrated|unhydrated; nothing was written",
        input.path().display(),
        if count == 1 { "" } else { "s" },
        ranges.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clone::kernel_fixture_bytes as fixture;
    use crate::memdev::MemDev;
    use crate::pdata::bitset::set_runs;
    use crate::pdata::block::BLOCK_BYTES;

    /// Fixture a with its first array block damaged: regions 0..32576 lost.
    fn damaged_a() -> (MemDev, Vec<(u64, u64)>) {
        let mut bytes = fixture("a-region8-131072regions", "final");
        let root = u64::from_le_bytes(bytes[188..196].try_into().unwrap()) as usize;
        let value = root * BLOCK_BYTES + 32 + 252 * 8;
        let first = u64::from_le_bytes(bytes[value..value + 8].try_into().unwrap()) as usize;
        let before = salvage(
            &MemDev::from_bytes("a", bytes.clone()),
            &GivenSizes::default(),
        )
        .unwrap();
        bytes[first * BLOCK_BYTES + 64] ^= 1;
        let kept = set_runs(&before.bits)
            .filter(|&(s, _)| s >= 32576)
            .collect();
        (MemDev::from_bytes("meta-a", bytes), kept)
    }

    #[test]
    fn lost_regions_are_refused_until_the_caller_says_how_to_decide_them() {
        let (device, _) = damaged_a();
        let refused = plan(&device, &GivenSizes::default(), &LostPolicy::Unsaid)
            .unwrap_err()
            .to_string();
        assert!(
            refused.starts_with(
                "meta-a: the state of 32576 regions is lost (regions 0..32576); give --source"
            ),
            "{refused}"
        );
    }

    #[test]
    fn a_choice_keeps_every_undamaged_state_and_marks_the_lost_range() {
        let (device, kept) = damaged_a();
        let plan = plan(
            &device,
            &GivenSizes::default(),
            &LostPolicy::Chosen(LostRegions::Unhydrated),
        )
        .unwrap();
        assert_eq!(set_runs(&plan.bits).collect::<Vec<_>>(), kept);
        assert_eq!(plan.report.lost_regions, 32576);
        assert_eq!(plan.report.salvaged_regions, 131072 - 32576);
        assert!(plan.report.states_chosen());
        let hydrated = super::plan(
            &device,
            &GivenSizes::default(),
            &LostPolicy::Chosen(LostRegions::Hydrated),
        )
        .unwrap();
        let mut want = vec![(0, 32576)];
        want.extend(kept);
        assert_eq!(set_runs(&hydrated.bits).collect::<Vec<_>>(), want);
    }

    #[test]
    fn undamaged_metadata_needs_no_decision() {
        let device = MemDev::from_bytes("b", fixture("b-region128-1024regions", "final"));
        let plan = plan(&device, &GivenSizes::default(), &LostPolicy::Unsaid).unwrap();
        assert_eq!(
            (plan.report.lost_regions, plan.report.hydrated_regions),
            (0, 9)
        );
        assert!(plan.report.decided.is_empty());
    }
}
