//! Migration at the same chunk size (a kind conversion or plain copy): data
//! chunks and areas keep their places.

use crate::device::Device;
use crate::error::Result;
use crate::persistent::header::Header;
use crate::persistent::layout::Geometry;
use crate::persistent::rebuild::BATCH_BYTES;
use crate::persistent::record::ExceptionRecord;
use crate::persistent::store::Metadata;
use crate::persistent::writer::write_all_areas;

/// Same chunk size: every referenced data chunk is copied to the same place, in
/// contiguous runs, then the areas are written from the records.
pub(super) fn copy_in_place(
    input: &Device,
    metadata: &Metadata,
    output: Device,
    geometry: &Geometry,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Device> {
    let chunk_bytes = geometry.chunk_bytes();
    let mut chunks: Vec<u64> = metadata
        .records
        .iter()
        .map(|p| p.record.new_chunk)
        .collect();
    chunks.sort_unstable();
    let total = chunks.len() as u64;
    let per_batch = (BATCH_BYTES / chunk_bytes).max(1);
    let mut buffer = vec![0u8; per_batch * chunk_bytes];
    let mut done = 0u64;
    let mut i = 0;
    while i < chunks.len() {
        let start = chunks[i];
        let mut count = 1;
        while i + count < chunks.len()
            && count < per_batch
            && chunks[i + count] == start + count as u64
        {
            count += 1;
        }
        let bytes = &mut buffer[..count * chunk_bytes];
        let offset = start * chunk_bytes as u64;
        input.read_at(bytes, offset, || {
            format!("data chunks {start}..{}", start + count as u64 - 1)
        })?;
        output.write_at(bytes, offset)?;
        i += count;
        done += count as u64;
        progress(done, total);
    }
    let header = Header {
        valid: u32::from(metadata.header.is_valid()),
        ..Header::new(geometry.chunk_sectors())
    };
    let records: Vec<ExceptionRecord> = metadata.records.iter().map(|p| p.record).collect();
    write_all_areas(&output, geometry, &header, &records)?;
    Ok(output)
}
