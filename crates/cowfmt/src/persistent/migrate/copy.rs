//! Migration at the same chunk size (a kind conversion or plain copy): data
//! chunks and areas keep their places.

use crate::device::Device;
use crate::error::Result;
use crate::persistent::header::Header;
use crate::persistent::layout::Geometry;
use crate::persistent::record::ExceptionRecord;
use crate::persistent::store::Metadata;
use crate::persistent::writer::write_all_areas;
use crate::sparse::SparseCopier;

/// Same chunk size: every referenced data chunk is copied to the same place, in
/// contiguous runs that keep the input's holes, then the areas are written
/// from the records.
pub(super) fn copy_in_place(
    input: &Device,
    metadata: &Metadata,
    output: Device,
    geometry: &Geometry,
    output_zeroed: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Device> {
    let chunk_bytes = geometry.chunk_bytes() as u64;
    let mut chunks: Vec<u64> = metadata
        .records
        .iter()
        .map(|p| p.record.new_chunk)
        .collect();
    chunks.sort_unstable();
    let total = chunks.len() as u64;
    let mut copier = SparseCopier::new(input, &output, output_zeroed);
    let mut done = 0u64;
    let mut i = 0;
    while i < chunks.len() {
        let start = chunks[i];
        let mut count = 1;
        while i + count < chunks.len() && chunks[i + count] == start + count as u64 {
            count += 1;
        }
        copier.copy(
            start * chunk_bytes,
            count as u64 * chunk_bytes,
            &mut |bytes| progress(done + bytes / chunk_bytes, total),
        )?;
        i += count;
        done += count as u64;
    }
    let header = Header {
        valid: u32::from(metadata.header.is_valid()),
        ..Header::new(geometry.chunk_sectors())
    };
    let records: Vec<ExceptionRecord> = metadata.records.iter().map(|p| p.record).collect();
    write_all_areas(&output, geometry, &header, &records)?;
    Ok(output)
}
