//! Reading a damaged store, never writing to it, and deciding what to keep.

use super::chunk_size::choose_chunk_size;
use super::credibility::Scan;
use super::header::{check_header_tail, decide_validity, header_problems, invalidate_on_loss};
use super::options::RepairOptions;
use super::report::{ChunkSizeSource, RepairReport, ReportHead};
use super::salvage::Salvage;
use crate::device::Device;
use crate::error::{Error, FormatError};
use crate::kind::{PERSISTENT_MAGIC, SHARED_MAGIC};
use crate::persistent::layout::Geometry;
use crate::persistent::open;
use crate::persistent::rebuild::JobError;

/// Reads the damaged store on `input` (never writing to it) and decides what
/// to keep. `progress` gets (areas scanned, areas on the device).
pub fn analyze(
    input: &Device,
    options: &RepairOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> std::result::Result<Salvage, JobError> {
    if !options.kind.is_snap_v1() {
        return Err(Error::Invalid(format!(
            "{}: repair handles persistent and legacy stores, not {}",
            input.path().display(),
            options.kind
        ))
        .into());
    }
    let header = open::read_header(input)?;
    if header.magic == SHARED_MAGIC {
        return Err(Error::format(
            input.path(),
            FormatError::WrongMagic {
                kind: "persistent",
                found: header.magic,
                expected: PERSISTENT_MAGIC,
            },
        )
        .into());
    }
    let mut report = RepairReport {
        head: ReportHead::new(
            options.kind,
            input.path().display().to_string(),
            0,
            ChunkSizeSource::Header,
        ),
        inferred_chunk_size: None,
        chunk_size_evidence: Vec::new(),
        header_repaired: false,
        header_problems: header_problems(&header),
        input_valid: (header.magic == PERSISTENT_MAGIC).then_some(header.is_valid()),
        output_valid: true,
        device_chunks: 0,
        areas_scanned: 0,
        kernel_records: 0,
        kept: 0,
        recovered_beyond_kernel: 0,
        dropped_total: 0,
        dropped: Vec::new(),
        dropped_unlisted: 0,
        damaged_areas: Vec::new(),
        skipped_areas: 0,
        unreadable_areas: Vec::new(),
        relocation: None,
        stale_areas_zeroed: 0,
        usage_after: None,
        status_after: None,
        missing_records: 0,
        records_lost: false,
        read_through: Vec::new(),
        read_through_complete: true,
        read_through_unknown: false,
        dropped_origin_unknown: 0,
        notes: Vec::new(),
        lost_old_chunks: Vec::new(),
        lost_old_chunks_overflow: false,
    };
    let chunk_sectors = choose_chunk_size(input, &header, options, &mut report)?;
    let geometry = Geometry::new(chunk_sectors, input.size_bytes())
        .map_err(|e| Error::format(input.path(), e))?;
    if !geometry.holds_first_area() {
        return Err(JobError::Damage(format!(
            "{}: the device has {} bytes, too small for a header and area 0 with {}-byte chunks; nothing to salvage",
            input.path().display(),
            input.size_bytes(),
            geometry.chunk_bytes()
        )));
    }
    report.chunk_size = chunk_sectors;
    report.device_chunks = geometry.device_chunks();
    check_header_tail(input, &geometry, &mut report)?;
    report.header_repaired = !report.header_problems.is_empty();
    decide_validity(options, &mut report);
    let kept = Scan::new(geometry, options).run(input, &mut report, progress)?;
    report.kept = kept.len() as u64;
    if report.recovered_beyond_kernel > 0 {
        report.notes.push(format!(
            "{} record{} were recovered from areas the kernel does not read; they are credible, but if this device held an earlier snapshot they may be stale",
            report.recovered_beyond_kernel,
            if report.recovered_beyond_kernel == 1 { "" } else { "s" }
        ));
    }
    report.settle_losses();
    invalidate_on_loss(options.invalidate_on_loss, &mut report);
    Ok(Salvage {
        report,
        geometry,
        kept,
        invalidate_on_loss: options.invalidate_on_loss,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;
    use crate::device::Access;
    use crate::origin_range::OriginRange;
    use crate::persistent::repair::report::DropReason;
    use crate::persistent::test_store::committed_store;

    #[test]
    fn only_origin_chunks_no_kept_record_maps_read_through() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cow.img");
        committed_store(&path, 256, 10, |i| 100 + i);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let record = |old: u64, new: u64| [old.to_le_bytes(), new.to_le_bytes()].concat();
        // Record 3 takes record 2's data chunk: dropped, origin chunk 999 lost.
        file.write_all_at(&record(999, 4), 4096 + 3 * 16).unwrap();
        // Record 4 maps record 0's origin chunk again: dropped, but 100 is kept.
        file.write_all_at(&record(100, 6), 4096 + 4 * 16).unwrap();
        let input = Device::open(&path, Access::ReadOnly).unwrap();
        let options = RepairOptions {
            invalidate_on_loss: true,
            ..RepairOptions::default()
        };
        let salvage = analyze(&input, &options, &mut |_, _| {}).unwrap();
        let report = salvage.report();
        assert_eq!(report.dropped_total, 2);
        assert_eq!(report.read_through, vec![OriginRange::new(999, 1000)]);
        assert!(report.read_through_complete);
        assert!(!report.read_through_unknown);
        assert!(report.records_lost);
        assert!(!report.output_valid, "invalid on loss, as asked");
    }

    #[test]
    fn garbage_records_name_no_read_through_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cow.img");
        committed_store(&path, 256, 10, |i| 100 + i);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let record = |old: u64, new: u64| [old.to_le_bytes(), new.to_le_bytes()].concat();
        // Record 3 is all 0xff: past the end of the device, its old_chunk garbage.
        file.write_all_at(&record(u64::MAX, u64::MAX), 4096 + 3 * 16)
            .unwrap();
        // Record 4 keeps a sound new_chunk, but its origin offset overflows.
        file.write_all_at(&record(u64::MAX - 1, 6), 4096 + 4 * 16)
            .unwrap();
        // Record 5 takes record 2's data chunk: its origin chunk 999 is credible.
        file.write_all_at(&record(999, 4), 4096 + 5 * 16).unwrap();
        let input = Device::open(&path, Access::ReadOnly).unwrap();
        let salvage = analyze(&input, &RepairOptions::default(), &mut |_, _| {}).unwrap();
        let report = salvage.report();
        let reasons: Vec<DropReason> = report.dropped.iter().map(|d| d.reason).collect();
        assert_eq!(
            reasons,
            vec![
                DropReason::NewChunkPastEnd,
                DropReason::OldChunkOverflow,
                DropReason::NewChunkDuplicate
            ]
        );
        assert_eq!(report.read_through, vec![OriginRange::new(999, 1000)]);
        assert_eq!(report.dropped_origin_unknown, 2);
        assert!(!report.read_through_complete);
        assert!(report.read_through_unknown);
    }
}
