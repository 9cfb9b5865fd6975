//! Property tests: random exception sets written through the writer read back
//! exactly, at every chunk size and across area boundaries.

use cowfmt::persistent::check::{check, CheckOptions};
use cowfmt::persistent::writer::write_all_areas;
use cowfmt::persistent::{ExceptionRecord, Geometry, Header, PersistentStore, StoreWriter};
use cowfmt::{Access, Device};
use proptest::prelude::*;

fn image(dir: &tempfile::TempDir, bytes: u64) -> Device {
    Device::create_or_extend(dir.path().join("cow.img"), bytes).unwrap()
}

/// Distinct origin chunks in a random order derived from `seed`.
fn origin_chunks(count: usize, seed: u64) -> Vec<u64> {
    let mut chunks: Vec<u64> = (0..count as u64).map(|i| i * 3 + (seed % 3)).collect();
    let mut state = seed | 1;
    for i in (1..chunks.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunks.swap(i, (state % (i as u64 + 1)) as usize);
    }
    chunks
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn writer_records_read_back(
        chunk_shift in 0u32..4,
        extra_chunks in 0u64..200,
        fill in 0.0f64..1.0,
        seed in any::<u64>(),
    ) {
        let chunk_sectors = 1u32 << chunk_shift;
        let chunk_bytes = chunk_sectors as u64 * 512;
        let chunks = 3 + extra_chunks + (chunk_sectors as u64 * 32) * 2;
        let dir = tempfile::tempdir().unwrap();
        let mut writer = StoreWriter::format(image(&dir, chunks * chunk_bytes), chunk_sectors).unwrap();
        let capacity = writer.geometry().data_capacity();
        let count = (capacity as f64 * fill) as usize;
        let mut written = Vec::new();
        for old_chunk in origin_chunks(count, seed) {
            let new_chunk = writer.allocate().unwrap();
            writer.commit(ExceptionRecord { old_chunk, new_chunk }).unwrap();
            written.push(ExceptionRecord { old_chunk, new_chunk });
        }
        let device = writer.finish().unwrap();
        let store = PersistentStore::open(device, None).unwrap();
        let metadata = store.load().unwrap();
        let read: Vec<_> = metadata.records.iter().map(|p| p.record).collect();
        prop_assert_eq!(&read, &written);
        let epa = store.geometry().exceptions_per_area();
        prop_assert_eq!(metadata.state.current_area, written.len() as u64 / epa);
        prop_assert_eq!(metadata.state.current_committed, written.len() as u64 % epa);
        let report = check(store.device(), &CheckOptions::default()).unwrap();
        prop_assert!(report.is_clean(), "{:?}", report.findings);
    }

    #[test]
    fn reopened_writer_continues_where_the_kernel_would(
        first in 0usize..80,
        second in 0usize..80,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = StoreWriter::format(image(&dir, 200 * 512), 1).unwrap();
        let mut old = 0;
        for _ in 0..first {
            let new_chunk = writer.allocate().unwrap();
            writer.commit(ExceptionRecord { old_chunk: old, new_chunk }).unwrap();
            old += 1;
        }
        drop(writer.finish().unwrap());
        let device = Device::open(dir.path().join("cow.img"), Access::ReadWrite).unwrap();
        let mut writer = StoreWriter::open(device).unwrap();
        for _ in 0..second {
            let new_chunk = writer.allocate().unwrap();
            writer.commit(ExceptionRecord { old_chunk: old, new_chunk }).unwrap();
            old += 1;
        }
        let store = PersistentStore::open(writer.finish().unwrap(), None).unwrap();
        let metadata = store.load().unwrap();
        prop_assert_eq!(metadata.records.len(), first + second);
        let geometry = store.geometry();
        for (i, placed) in metadata.records.iter().enumerate() {
            prop_assert_eq!(placed.record.new_chunk, geometry.nth_data_chunk(i as u64));
        }
        prop_assert!(check(store.device(), &CheckOptions::default()).unwrap().is_clean());
    }

    #[test]
    fn write_all_areas_matches_the_incremental_writer(count in 0usize..150) {
        let dir_a = tempfile::tempdir().unwrap();
        let dir_b = tempfile::tempdir().unwrap();
        let bytes = 256 * 512;
        let mut writer = StoreWriter::format(image(&dir_a, bytes), 1).unwrap();
        let mut records = Vec::new();
        for old_chunk in 0..count.min(writer.geometry().data_capacity() as usize) as u64 {
            let new_chunk = writer.allocate().unwrap();
            writer.commit(ExceptionRecord { old_chunk, new_chunk }).unwrap();
            records.push(ExceptionRecord { old_chunk, new_chunk });
        }
        drop(writer.finish().unwrap());
        let device = image(&dir_b, bytes);
        let geometry = Geometry::new(1, bytes).unwrap();
        write_all_areas(&device, &geometry, &Header::new(1), &records).unwrap();
        let a = std::fs::read(dir_a.path().join("cow.img")).unwrap();
        let b = std::fs::read(dir_b.path().join("cow.img")).unwrap();
        prop_assert!(a == b, "images differ");
    }
}

#[test]
fn fresh_store_is_byte_exact_with_the_kernel_format() {
    let dir = tempfile::tempdir().unwrap();
    let device = image(&dir, 64 * 4096);
    std::fs::write(dir.path().join("cow.img"), vec![0xa5u8; 64 * 4096]).unwrap();
    drop(StoreWriter::format(device, 8).unwrap().finish().unwrap());
    let bytes = std::fs::read(dir.path().join("cow.img")).unwrap();
    assert_eq!(&bytes[..16], b"SnAp\x01\0\0\0\x01\0\0\0\x08\0\0\0");
    assert!(bytes[16..2 * 4096].iter().all(|&b| b == 0));
    assert!(
        bytes[2 * 4096..].iter().all(|&b| b == 0xa5),
        "data chunks untouched"
    );
}
