//! The walk over every area location that decides, record by record, which
//! records are credible.

use super::options::RepairOptions;
use super::report::{DamagedArea, DropReason, RepairReport, LISTED_MAX};
use crate::bitset::{DenseBitmap, SparseBitmap};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::persistent::area::parse_area;
use crate::persistent::layout::Geometry;
use crate::persistent::record::{ExceptionRecord, RECORD_BYTES};
use crate::persistent::rules::{RecordRules, RecordViolation};
use crate::persistent::store::PlacedRecord;

/// A fault that makes a record implausible on its own, whatever else is on disk.
type Fault = (DropReason, String);

/// The walk over every area location, deciding record by record.
pub(super) struct Scan {
    geometry: Geometry,
    rules: RecordRules,
    kernel_areas_only: bool,
    used: DenseBitmap,
    mapped: SparseBitmap,
}

impl Scan {
    pub(super) fn new(geometry: Geometry, options: &RepairOptions) -> Self {
        let origin_chunks = options
            .origin_bytes
            .map(|bytes| bytes.div_ceil(geometry.chunk_bytes() as u64));
        Scan {
            geometry,
            rules: RecordRules::new(geometry, origin_chunks, options.kind),
            kernel_areas_only: options.kernel_areas_only,
            used: DenseBitmap::new(geometry.device_chunks()),
            mapped: SparseBitmap::new(),
        }
    }

    pub(super) fn run(
        mut self,
        input: &Device,
        report: &mut RepairReport,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Vec<PlacedRecord>> {
        let geometry = self.geometry;
        let areas = geometry.areas_on_device();
        let chunk_bytes = geometry.chunk_bytes() as u64;
        let mut buffer = vec![0u8; geometry.chunk_bytes()];
        let mut kept = Vec::new();
        let mut in_view = true;
        let epa = geometry.exceptions_per_area();
        let mut last_kept_area = None;
        let mut short_areas: Vec<(u64, u64)> = Vec::new();
        for area in 0..areas {
            if self.kernel_areas_only && !in_view {
                break;
            }
            let chunk = geometry.area_location(area);
            if area % 64 == 0 {
                for ahead in area..(area + 64).min(areas) {
                    input.will_need(geometry.area_location(ahead) * chunk_bytes, chunk_bytes);
                }
            }
            report.areas_scanned += 1;
            progress(area + 1, areas);
            match input.read_chunk(chunk, &mut buffer) {
                Ok(()) => {}
                Err(Error::Read { .. }) => {
                    report.unreadable_areas.push(area);
                    in_view = false;
                    continue;
                }
                Err(other) => return Err(other),
            }
            let parse = parse_area(&buffer);
            if in_view {
                report.kernel_records += parse.entries as u64;
            }
            let visible = if in_view { parse.entries } else { 0 };
            let limit = if self.kernel_areas_only {
                parse.entries
            } else {
                buffer.len() / RECORD_BYTES
            };
            let kept_before = kept.len();
            let present = self.area(area, chunk, &buffer, limit, visible, report, &mut kept);
            if kept.len() > kept_before {
                last_kept_area = Some(area);
            }
            short_areas.push((area, epa.saturating_sub(present)));
            in_view = in_view && parse.full;
        }
        if let Some(last) = last_kept_area {
            report.missing_records = short_areas
                .iter()
                .take_while(|(area, _)| *area < last)
                .map(|(_, missing)| missing)
                .sum();
        }
        let mapped = &self.mapped;
        report.lost_old_chunks.retain(|&old| !mapped.get(old));
        Ok(kept)
    }

    /// Decides the records in the first `limit` slots of one area; the first
    /// `visible` of them are in the kernel's view. Returns the slots that hold
    /// a credible record or a dropped one (junk areas hold none).
    #[allow(clippy::too_many_arguments)]
    fn area(
        &mut self,
        area: u64,
        chunk: u64,
        bytes: &[u8],
        limit: usize,
        visible: usize,
        report: &mut RepairReport,
        kept: &mut Vec<PlacedRecord>,
    ) -> u64 {
        let slots = || {
            bytes
                .chunks_exact(RECORD_BYTES)
                .take(limit)
                .map(ExceptionRecord::decode)
                .enumerate()
                .filter(|(_, record)| !record.is_terminator())
        };
        let (mut present, mut plausible, mut leading) = (0u64, 0u64, 0u64);
        let mut leading_open = true;
        for (index, record) in slots() {
            present += 1;
            let fine = self.fault(area, chunk, &record).is_none();
            if fine {
                plausible += 1;
            }
            leading_open = leading_open && fine && index as u64 == leading;
            if leading_open {
                leading += 1;
            }
        }
        let junk =
            present > 0 && plausible * 8 < present && !(plausible > 0 && leading == plausible);
        if junk {
            if visible > 0 {
                report.dropped_total += present;
                let message = format!(
                    "area {area} (chunk {chunk}): {plausible} of its {present} records look plausible; the kernel reads this area, but it was overwritten, so all of them were dropped"
                );
                if report.damaged_areas.len() < LISTED_MAX {
                    report.damaged_areas.push(DamagedArea {
                        area,
                        chunk,
                        records: present,
                        plausible,
                        message,
                    });
                }
                return present;
            }
            report.skipped_areas += 1;
            return 0;
        }
        for (index, record) in slots() {
            let placed = PlacedRecord {
                area,
                index: index as u64,
                record,
            };
            let place = format!("area {area} (chunk {chunk}) record {index}");
            let (old, new) = (record.old_chunk, record.new_chunk);
            if let Some((reason, why)) = self.fault(area, chunk, &record) {
                report.drop_record(placed, reason, format!("{place}: {why}"));
            } else if self.used.get(new) {
                report.drop_record(
                    placed,
                    DropReason::NewChunkDuplicate,
                    format!("{place}: new_chunk {new} is already used by an earlier record"),
                );
            } else if self.mapped.get(old) {
                report.drop_record(
                    placed,
                    DropReason::OldChunkDuplicate,
                    format!("{place}: old_chunk {old} is already mapped by an earlier record (the first is kept)"),
                );
            } else {
                self.used.test_and_set(new);
                self.mapped.test_and_set(old);
                if index >= visible {
                    report.recovered_beyond_kernel += 1;
                }
                kept.push(placed);
            }
        }
        present
    }

    /// What makes `record` of `area` (at `chunk`) implausible on its own: the
    /// store's record rules ([`RecordRules`]) as drop reasons, and the
    /// repair's own rule that an area's data lies after the area.
    fn fault(&self, area: u64, chunk: u64, record: &ExceptionRecord) -> Option<Fault> {
        let (old, new) = (record.old_chunk, record.new_chunk);
        if let Some(fault) = self.rules.new_chunk(new).and_then(fault_of) {
            return Some(fault);
        }
        if new <= chunk {
            return Some((
                DropReason::NewChunkBeforeArea,
                format!(
                    "new_chunk {new} lies before area {area} (chunk {chunk}); the kernel allocates an area's data after it"
                ),
            ));
        }
        if let Some(fault) = self.rules.old_chunk(old).and_then(fault_of) {
            return Some(fault);
        }
        self.rules.legacy_limit(old, 0).map(|_| {
            (
                DropReason::LegacyChunkTooLarge,
                format!("old_chunk {old} does not fit the 32 bits of a legacy store"),
            )
        })
    }
}

/// The drop reason of a broken record rule, with the rule's own sentence;
/// `None` for the allocation order, which a salvage does not hold records to.
fn fault_of(violation: RecordViolation) -> Option<Fault> {
    let reason = match violation {
        RecordViolation::NewChunkPastEnd { .. } => DropReason::NewChunkPastEnd,
        RecordViolation::NewChunkIsMetadata { .. } => DropReason::NewChunkIsMetadata,
        RecordViolation::NewChunkDuplicate { .. } => DropReason::NewChunkDuplicate,
        RecordViolation::AllocationOutOfOrder { .. } => return None,
        RecordViolation::OldChunkOverflow { .. } => DropReason::OldChunkOverflow,
        RecordViolation::OldChunkPastOrigin { .. } => DropReason::OldChunkPastOrigin,
        RecordViolation::OldChunkDuplicate { .. } => DropReason::OldChunkDuplicate,
        RecordViolation::LegacyChunkTooLarge { .. } => DropReason::LegacyChunkTooLarge,
    };
    Some((reason, violation.describe()))
}
