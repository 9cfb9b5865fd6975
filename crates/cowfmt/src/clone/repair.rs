//! The repair of clone metadata before anything is written: the salvage, the
//! decision for every lost region (from `--source`/`--dest` data, else the
//! caller's `--lost-regions`, else a refusal naming the lost ranges), the
//! region states to write and the report.

use std::ops::Range;
use std::path::PathBuf;

use serde::Serialize;

use crate::bitset::DenseBitmap;
use crate::blockdev::BlockDev;
use crate::device::{Access, Device};
use crate::error::{Error, Result};
use crate::pdata::io::BlockSource;

use crate::repair::target::open_for_writing;
use crate::repair::{refused, Finished, RepairError, RepairEvents, RepairRequest, Verdict};

use super::lost::{apply, decide_by_choice, decide_from_data, DecidedRun, LostRegions, Reason};
use super::open::TableSizes;
use super::salvage::{salvage, Salvage};
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
    /// The salvage's sizes.
    pub geometry: super::geometry::Geometry,
    /// What was found and decided.
    pub report: CloneRepairReport,
}

/// Salvages the metadata on `input` and decides its lost regions by
/// `policy`; `sizes` stand in for a superblock without them. Refuses (an
/// `Error::Invalid` naming the lost ranges) when regions are lost and
/// `policy` is `Unsaid`.
pub fn plan<D: BlockDev + BlockSource>(
    input: &D,
    sizes: Option<TableSizes>,
    policy: &LostPolicy,
) -> Result<ClonePlan> {
    let Salvage {
        geometry,
        mut bits,
        lost,
        problems,
    } = salvage(input, sizes)?;
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
    };
    Ok(ClonePlan {
        bits,
        geometry,
        report,
    })
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

/// Repairs the clone metadata `input` (opened read-only) as `request` asks:
/// a new output of the input's size (or `request.size`), written through
/// [`write_clone`] and read back.
pub fn run(request: &RepairRequest, input: Device, events: &mut dyn RepairEvents) -> JobResult {
    if request.in_place {
        return Err(refused(format!(
            "{}: clone metadata is repaired into a new output (-o NEW); --in-place is not supported for it",
            request.input.display()
        )));
    }
    let plan = plan(&input, None, &policy(request)?)?;
    let Some(output) = request.output.as_deref() else {
        return Ok(Finished::dry_run(plan.report));
    };
    let size = request.size.unwrap_or(input.size_bytes());
    let nr_blocks = plan
        .geometry
        .check_metadata_device(size)
        .map_err(|e| Error::Invalid(format!("{}: {e}", output.display())))?;
    let prepared = open_for_writing(request, output, size, request.size.is_some(), events)?;
    let mut device = prepared.device;
    write_clone(&mut device, &plan.geometry, nr_blocks, &plan.bits)
        .map_err(|e| Error::Invalid(format!("{}: {e}", output.display())))?;
    let back = salvage(&device, None)?;
    prepared.claim.keep();
    let mut finished = Finished::written(plan.report, output, &[]);
    let words = plan.geometry.nr_words();
    if !back.lost.is_empty() || (0..words).any(|w| back.bits.word(w) != plan.bits.word(w)) {
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
        let before = salvage(&MemDev::from_bytes("a", bytes.clone()), None).unwrap();
        bytes[first * BLOCK_BYTES + 64] ^= 1;
        let kept = set_runs(&before.bits)
            .filter(|&(s, _)| s >= 32576)
            .collect();
        (MemDev::from_bytes("meta-a", bytes), kept)
    }

    #[test]
    fn lost_regions_are_refused_until_the_caller_says_how_to_decide_them() {
        let (device, _) = damaged_a();
        let refused = plan(&device, None, &LostPolicy::Unsaid)
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
        let plan = plan(&device, None, &LostPolicy::Chosen(LostRegions::Unhydrated)).unwrap();
        assert_eq!(set_runs(&plan.bits).collect::<Vec<_>>(), kept);
        assert_eq!(plan.report.lost_regions, 32576);
        assert_eq!(plan.report.salvaged_regions, 131072 - 32576);
        assert!(plan.report.states_chosen());
        let hydrated =
            super::plan(&device, None, &LostPolicy::Chosen(LostRegions::Hydrated)).unwrap();
        let mut want = vec![(0, 32576)];
        want.extend(kept);
        assert_eq!(set_runs(&hydrated.bits).collect::<Vec<_>>(), want);
    }

    #[test]
    fn undamaged_metadata_needs_no_decision() {
        let device = MemDev::from_bytes("b", fixture("b-region128-1024regions", "final"));
        let plan = plan(&device, None, &LostPolicy::Unsaid).unwrap();
        assert_eq!(
            (plan.report.lost_regions, plan.report.hydrated_regions),
            (0, 9)
        );
        assert!(plan.report.decided.is_empty());
    }
}
