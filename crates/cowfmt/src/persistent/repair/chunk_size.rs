//! Settling the chunk size of a damaged store: given, from the header, or
//! inferred from where area 0 looks plausible.

use super::options::RepairOptions;
use super::report::{ChunkSizeSource, RepairReport};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::kind::PERSISTENT_MAGIC;
use crate::persistent::header::{validate_chunk_size, Header, DISK_VERSION, MAX_CHUNK_SECTORS};
use crate::persistent::layout::Geometry;
use crate::persistent::rebuild::JobError;
use crate::persistent::record::{ExceptionRecord, RECORD_BYTES};

/// Bytes read at a time while scoring a candidate chunk size.
const SCORE_WINDOW: usize = 64 * 1024;

/// Settles the chunk size: the caller's, else the header's when the header is
/// sound, else the one under which area 0 looks most plausible.
pub(super) fn choose_chunk_size(
    input: &Device,
    header: &Header,
    options: &RepairOptions,
    report: &mut RepairReport,
) -> std::result::Result<u32, JobError> {
    let field_usable = validate_chunk_size(u64::from(header.chunk_size)).is_ok()
        && input.size_bytes() >= 2 * u64::from(header.chunk_size) * crate::SECTOR_BYTES;
    if let Some(sectors) = options.chunk_size {
        validate_chunk_size(u64::from(sectors)).map_err(|e| Error::format(input.path(), e))?;
        report.chunk_size_source = ChunkSizeSource::Option;
        if field_usable && header.chunk_size != sectors {
            report.header_problems.push(format!(
                "chunk size field says {} sectors; {sectors} sectors were given and used",
                header.chunk_size
            ));
        }
        return Ok(sectors);
    }
    let identity_sound = header.magic == PERSISTENT_MAGIC && header.version == DISK_VERSION;
    if identity_sound && field_usable {
        if score_area_zero(input, header.chunk_size).0 == 0 {
            if let Some(other) = infer_chunk_size(input, None)? {
                report.notes.push(format!(
                    "area 0 is empty under the header's chunk size of {} sectors, but looks plausible under {other} sectors; if the chunk size field is damaged, give --chunk-size {other}s",
                    header.chunk_size
                ));
            }
        }
        return Ok(header.chunk_size);
    }
    let preferred = field_usable.then_some(header.chunk_size);
    match infer_chunk_size(input, preferred)? {
        Some(sectors) => {
            report.chunk_size_source = ChunkSizeSource::Inferred;
            report.inferred_chunk_size = Some(sectors);
            if field_usable && header.chunk_size != sectors {
                report.header_problems.push(format!(
                    "chunk size field says {} sectors, but area 0 is where a {sectors}-sector chunk puts it",
                    header.chunk_size
                ));
            }
            report.notes.push(format!(
                "the chunk size was inferred as {sectors} sectors from where area 0 looks plausible"
            ));
            Ok(sectors)
        }
        None if field_usable => {
            report.notes.push(format!(
                "no plausible area 0 was found at any chunk size; the header's {} sectors were used",
                header.chunk_size
            ));
            Ok(header.chunk_size)
        }
        None if report.header_problems.is_empty() => Err(JobError::Damage(format!(
            "{}: the device has {} bytes, too small for a header and area 0 with the header's chunk size of {} sectors; nothing to salvage",
            input.path().display(),
            input.size_bytes(),
            header.chunk_size
        ))),
        None => Err(JobError::Damage(format!(
            "{}: the header is unusable ({}) and no plausible area 0 was found at any chunk size; nothing to salvage unless --chunk-size is given",
            input.path().display(),
            report.header_problems.join("; ")
        ))),
    }
}

/// Tries every power-of-two chunk size and returns the one under which area 0
/// holds the longest run of plausible records (ascending new_chunk from 2, on
/// data chunks of the device); ties go to `preferred`, then to the smallest.
fn infer_chunk_size(input: &Device, preferred: Option<u32>) -> Result<Option<u32>> {
    let mut best: Option<(u64, u64, u32)> = None;
    let mut sectors = 1u64;
    while sectors <= MAX_CHUNK_SECTORS {
        let candidate = sectors as u32;
        let (run, exact) = score_area_zero(input, candidate);
        let better = match best {
            None => run > 0,
            Some((best_run, best_exact, best_sectors)) => {
                (run, exact) > (best_run, best_exact)
                    || ((run, exact) == (best_run, best_exact)
                        && preferred == Some(candidate)
                        && preferred != Some(best_sectors))
            }
        };
        if better {
            best = Some((run, exact, candidate));
        }
        sectors <<= 1;
    }
    Ok(best.map(|(_, _, sectors)| sectors))
}

/// The plausible run at the start of area 0 under `chunk_sectors`, and how
/// many of its records sit exactly where the kernel's allocator puts them.
fn score_area_zero(input: &Device, chunk_sectors: u32) -> (u64, u64) {
    let Ok(geometry) = Geometry::new(chunk_sectors, input.size_bytes()) else {
        return (0, 0);
    };
    if !geometry.holds_first_area() {
        return (0, 0);
    }
    let chunk_bytes = geometry.chunk_bytes();
    let base = geometry.area_location(0) * chunk_bytes as u64;
    let window = chunk_bytes.min(SCORE_WINDOW);
    let mut buffer = vec![0u8; window];
    let (mut run, mut exact, mut previous) = (0u64, 0u64, 1u64);
    let mut offset = 0usize;
    while offset < chunk_bytes {
        if input
            .read_at(&mut buffer, base + offset as u64, || "area 0".to_string())
            .is_err()
        {
            break;
        }
        for raw in buffer.chunks_exact(RECORD_BYTES) {
            let new_chunk = ExceptionRecord::decode(raw).new_chunk;
            if new_chunk <= previous
                || new_chunk >= geometry.device_chunks()
                || geometry.is_metadata_chunk(new_chunk)
            {
                return (run, exact);
            }
            if new_chunk == geometry.nth_data_chunk(run) {
                exact += 1;
            }
            run += 1;
            previous = new_chunk;
        }
        offset += window;
    }
    (run, exact)
}
