//! Writing the kept records of a damaged store into a fresh one.

use super::header::invalidate_on_loss;
use super::report::{DropReason, RepairReport};
use crate::device::Device;
use crate::error::Error;
use crate::kind::StoreKind;
use crate::persistent::layout::Geometry;
use crate::persistent::rebuild::{
    bytes_needed, check_output, settle_output, JobError, RebuildWriter,
};
use crate::persistent::store::PlacedRecord;
use crate::sparse::Extents;

/// The result of [`analyze`](super::analyze): the records to keep, ready to be written.
#[derive(Debug)]
pub struct Salvage {
    pub(super) report: RepairReport,
    pub(super) geometry: Geometry,
    pub(super) kept: Vec<PlacedRecord>,
    pub(super) invalidate_on_loss: bool,
}

impl Salvage {
    /// What was found so far (the output fields are filled by [`Salvage::write`]).
    pub fn report(&self) -> &RepairReport {
        &self.report
    }

    /// The records that will be kept, in on-disk order, with their input places.
    pub fn kept_records(&self) -> &[PlacedRecord] {
        &self.kept
    }

    /// The chunk size in sectors.
    pub fn chunk_sectors(&self) -> u32 {
        self.geometry.chunk_sectors()
    }

    /// The smallest output device, in bytes, that holds the salvaged store
    /// (with room to move a chunk for a legacy output).
    pub fn needed_bytes(&self) -> u64 {
        let n = self.kept.len() as u64;
        let epa = self.geometry.exceptions_per_area();
        let relocation = self.report.kind == StoreKind::Legacy && n > 0 && n.is_multiple_of(epa);
        bytes_needed(self.geometry.chunk_sectors(), n + u64::from(relocation)).unwrap_or(u64::MAX)
    }

    /// Writes the salvaged store into `output`, reading data chunks from
    /// `input` (the device analysed). `output_zeroed` says the output is known
    /// to hold only zeros, so stale areas and zero data chunks (holes of a
    /// sparse input) need no writing. `progress` gets
    /// (records copied, records to copy).
    pub fn write(
        mut self,
        input: &Device,
        output: Device,
        output_zeroed: bool,
        progress: &mut dyn FnMut(u64, u64),
    ) -> std::result::Result<RepairReport, JobError> {
        let needed = self.needed_bytes();
        let report = &mut self.report;
        if report.nothing_salvaged() {
            return Err(JobError::Damage(format!(
                "{}: nothing could be salvaged ({} records dropped); no output written",
                report.input, report.dropped_total
            )));
        }
        let out_path = output.path().to_path_buf();
        check_output(
            &output,
            needed,
            "the salvaged store",
            self.geometry.chunk_sectors(),
            report.kind,
        )?;
        let mut writer = RebuildWriter::format(output, self.geometry.chunk_sectors())?
            .with_zeroed_output(output_zeroed);
        let chunk_bytes = self.geometry.chunk_bytes() as u64;
        let mut extents = Extents::new(input);
        let mut buffer = vec![0u8; self.geometry.chunk_bytes()];
        let total = self.kept.len() as u64;
        let mut kept = 0u64;
        for (done, placed) in self.kept.iter().enumerate() {
            if done % HINT_RECORDS == 0 {
                hint_ahead(input, &mut extents, &self.geometry, &self.kept[done..]);
            }
            let chunk = placed.record.new_chunk;
            if extents.is_hole(chunk.saturating_mul(chunk_bytes), chunk_bytes) {
                writer.push_zeros(placed.record.old_chunk)?;
                kept += 1;
                progress(done as u64 + 1, total);
                continue;
            }
            match input.read_chunk(chunk, &mut buffer) {
                Ok(()) => {
                    writer.push(placed.record.old_chunk, &buffer)?;
                    kept += 1;
                }
                Err(Error::Read { source, .. }) => report.drop_record(
                    *placed,
                    DropReason::DataUnreadable,
                    format!(
                        "area {} record {}: data chunk {chunk} cannot be read: {source}",
                        placed.area, placed.index
                    ),
                ),
                Err(other) => return Err(other.into()),
            }
            progress(done as u64 + 1, total);
        }
        report.kept = kept;
        report.settle_losses();
        invalidate_on_loss(self.invalidate_on_loss, report);
        let device = writer.finish(report.output_valid)?;
        let settled = settle_output(device, output_zeroed, report.kind)?;
        report.stale_areas_zeroed = settled.stale_areas_zeroed;
        report.relocation = settled.relocation;
        let usage = settled.metadata.usage();
        report.status_after = Some(usage.status_text(report.output_valid));
        report.usage_after = Some(usage);
        report.output = Some(out_path.display().to_string());
        Ok(self.report)
    }
}

/// Records whose data chunks are hinted to the kernel at a time.
const HINT_RECORDS: usize = 256;

/// Hints the data chunks of the next records to the kernel, holes left out
/// (reading ahead a hole only fills the page cache with zeros).
fn hint_ahead(
    input: &Device,
    extents: &mut Extents<'_>,
    geometry: &Geometry,
    upcoming: &[PlacedRecord],
) {
    let chunk_bytes = geometry.chunk_bytes() as u64;
    let mut run: Option<(u64, u64)> = None;
    for placed in upcoming.iter().take(HINT_RECORDS) {
        let chunk = placed.record.new_chunk;
        if extents.is_hole(chunk.saturating_mul(chunk_bytes), chunk_bytes) {
            continue;
        }
        run = match run {
            Some((start, count)) if start + count == chunk => Some((start, count + 1)),
            Some((start, count)) => {
                input.will_need(start * chunk_bytes, count * chunk_bytes);
                Some((chunk, 1))
            }
            None => Some((chunk, 1)),
        };
    }
    if let Some((start, count)) = run {
        input.will_need(start * chunk_bytes, count * chunk_bytes);
    }
}
