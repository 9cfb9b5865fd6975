//! What is wrong with a damaged store's header, and whether the output is
//! marked valid (never more valid than the input, and invalid on loss when
//! asked).

use super::options::RepairOptions;
use super::report::RepairReport;
use crate::device::Device;
use crate::error::{FormatError, Result};
use crate::kind::PERSISTENT_MAGIC;
use crate::persistent::header::{validate_chunk_size, Header, DISK_VERSION, HEADER_BYTES};
use crate::persistent::layout::Geometry;

/// What is wrong with the header's fields, one sentence each.
pub(super) fn header_problems(header: &Header) -> Vec<String> {
    let mut problems = Vec::new();
    match header.magic {
        PERSISTENT_MAGIC => {}
        0 => problems.push("magic is 0: the header was wiped".to_string()),
        other => problems.push(format!(
            "magic is {other:#010x}, expected {PERSISTENT_MAGIC:#010x} (\"SnAp\")"
        )),
    }
    if header.version != DISK_VERSION {
        problems.push(format!(
            "version is {}, expected {DISK_VERSION}",
            header.version
        ));
    }
    if let Err(FormatError::BadChunkSize { sectors, why }) =
        validate_chunk_size(u64::from(header.chunk_size))
    {
        problems.push(format!("chunk size {sectors} sectors {why}"));
    }
    if header.magic == PERSISTENT_MAGIC && header.valid > 1 {
        problems.push(format!("valid is {}, expected 0 or 1", header.valid));
    }
    problems
}

/// Notes a header chunk whose bytes after the header are not zero.
pub(super) fn check_header_tail(
    input: &Device,
    geometry: &Geometry,
    report: &mut RepairReport,
) -> Result<()> {
    let mut chunk = vec![0u8; geometry.chunk_bytes()];
    input.read_chunk(0, &mut chunk)?;
    if let Some(pos) = chunk[HEADER_BYTES..].iter().position(|&b| b != 0) {
        report.header_problems.push(format!(
            "byte {} of the header chunk is not zero (the kernel writes 16 header bytes, then zeros)",
            HEADER_BYTES + pos
        ));
    }
    Ok(())
}

/// Settles whether the output is marked valid, noting why.
pub(super) fn decide_validity(options: &RepairOptions, report: &mut RepairReport) {
    report.output_valid = match report.input_valid {
        Some(true) => true,
        Some(false) if options.mark_valid => {
            report.notes.push(
                "the input was invalidated (valid=0); the output is marked valid as asked, although its data may be incomplete".to_string(),
            );
            true
        }
        Some(false) => {
            report.notes.push(
                "the input is marked invalid (valid=0): the kernel stopped updating it, so its data is known to be incomplete; the output stays invalid unless it is explicitly marked valid".to_string(),
            );
            false
        }
        None => {
            report.notes.push(
                "the header's valid flag cannot be trusted (its magic is damaged); the output is marked valid".to_string(),
            );
            true
        }
    };
}

/// Marks the output invalid when records were lost and the caller prefers no
/// data to wrong data (the kernel then refuses to serve the snapshot).
pub(super) fn invalidate_on_loss(asked: bool, report: &mut RepairReport) {
    if asked && report.records_lost && report.output_valid {
        report.output_valid = false;
        report.notes.push(
            "records were lost, so the output is marked invalid as asked: the kernel refuses to serve the snapshot rather than read the origin where they were".to_string(),
        );
    }
}
