//! The walk over every area location that decides, record by record, which
//! records are credible.

use super::options::RepairOptions;
use super::report::{DamagedArea, DropReason, RepairReport, LISTED_MAX};
use crate::bitset::{DenseBitmap, SparseBitmap};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::kind::StoreKind;
use crate::persistent::area::parse_area;
use crate::persistent::layout::Geometry;
use crate::persistent::record::{ExceptionRecord, RECORD_BYTES};
use crate::persistent::store::PlacedRecord;
use crate::persistent::LEGACY_CHUNK_LIMIT;

/// A fault that makes a record implausible on its own, whatever else is on disk.
type Fault = (DropReason, String);

/// The walk over every area location, deciding record by record.
pub(super) struct Scan {
    geometry: Geometry,
    origin_chunks: Option<u64>,
    legacy: bool,
    kernel_areas_only: bool,
    used: DenseBitmap,
    mapped: SparseBitmap,
}

impl Scan {
    pub(super) fn new(geometry: Geometry, options: &RepairOptions) -> Self {
        Scan {
            geometry,
            origin_chunks: options
                .origin_bytes
                .map(|bytes| bytes.div_ceil(geometry.chunk_bytes() as u64)),
            legacy: options.kind == StoreKind::Legacy,
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

    fn fault(&self, area: u64, chunk: u64, record: &ExceptionRecord) -> Option<Fault> {
        let geometry = &self.geometry;
        let (old, new) = (record.old_chunk, record.new_chunk);
        let device_chunks = geometry.device_chunks();
        if new >= device_chunks {
            return Some((
                DropReason::NewChunkPastEnd,
                format!("new_chunk {new} is past the end of the device ({device_chunks} chunks)"),
            ));
        }
        if geometry.is_metadata_chunk(new) {
            let what = match geometry.area_of_chunk(new) {
                None => "the header".to_string(),
                Some(area) => format!("metadata area {area}"),
            };
            return Some((
                DropReason::NewChunkIsMetadata,
                format!("new_chunk {new} is {what}, not a data chunk"),
            ));
        }
        if new <= chunk {
            return Some((
                DropReason::NewChunkBeforeArea,
                format!(
                    "new_chunk {new} lies before area {area} (chunk {chunk}); the kernel allocates an area's data after it"
                ),
            ));
        }
        let chunk_bytes = geometry.chunk_bytes() as u64;
        if old
            .checked_add(1)
            .and_then(|end| end.checked_mul(chunk_bytes))
            .is_none()
        {
            return Some((
                DropReason::OldChunkOverflow,
                format!(
                    "old_chunk {old} times the chunk size ({chunk_bytes} bytes) does not fit 64 bits; no origin is that large"
                ),
            ));
        }
        if let Some(origin_chunks) = self.origin_chunks {
            if old >= origin_chunks {
                return Some((
                    DropReason::OldChunkPastOrigin,
                    format!(
                        "old_chunk {old} is past the end of the origin ({origin_chunks} chunks)"
                    ),
                ));
            }
        }
        if self.legacy && old >= LEGACY_CHUNK_LIMIT {
            return Some((
                DropReason::LegacyChunkTooLarge,
                format!("old_chunk {old} does not fit the 32 bits of a legacy store"),
            ));
        }
        None
    }
}
