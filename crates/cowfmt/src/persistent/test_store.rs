//! A store committed as the kernel would, for the unit tests of the readers.

use std::path::Path;

use super::record::ExceptionRecord;
use super::writer::StoreWriter;
use crate::device::Device;

/// Formats an image of `chunks` 4 KiB chunks at `path` and commits `records`
/// exceptions, record `i` mapping origin chunk `old_chunk(i)`.
pub(crate) fn committed_store(path: &Path, chunks: u64, records: u64, old_chunk: fn(u64) -> u64) {
    let device = Device::create_or_extend(path, chunks * 4096).unwrap();
    let mut writer = StoreWriter::format(device, 8).unwrap();
    for i in 0..records {
        let new_chunk = writer.allocate().unwrap();
        writer
            .commit(ExceptionRecord {
                old_chunk: old_chunk(i),
                new_chunk,
            })
            .unwrap();
    }
    writer.finish().unwrap();
}
