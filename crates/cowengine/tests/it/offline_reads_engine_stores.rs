//! Stores written by the engine, read by cowfmt's offline jobs: the checker
//! finds nothing wrong with a deep, many-snapshot store (before and after
//! deletes), and the dump lists exactly the records the engine holds. Moved
//! here from cowfmt's shared_check and shared_dump tests when the engine
//! became its own crate.

use cowengine::{CopyData, CreateOptions, SharedStore};
use cowfmt::shared::check::{check, CheckOptions};
use cowfmt::shared::dump::{BitmapDump, SharedDump, SharedSource, SnapshotDump};
use cowfmt::{Access, Device};

/// Chunk size of the checked store: 512 bytes.
const CHUNK_SECTORS: u64 = 1;
const CHUNK_BYTES: u64 = 512;

#[test]
fn an_engine_store_with_many_snapshots_and_a_deep_tree_is_clean() {
    let dir = tempfile::tempdir().unwrap();
    let origin_chunks = 3000u64;
    let origin =
        Device::create_or_extend(dir.path().join("origin.img"), origin_chunks * CHUNK_BYTES)
            .unwrap();
    let cow = Device::create_or_extend(dir.path().join("cow.img"), 40_000 * CHUNK_BYTES).unwrap();
    let options = CreateOptions {
        chunk_sectors: CHUNK_SECTORS,
        journal_chunks: 8,
    };
    let mut store = SharedStore::create(cow, origin, &options).unwrap();
    let first = store.create_snapshot(None).unwrap();
    for i in 0..origin_chunks / 2 {
        store
            .origin_write(((i * 7) % origin_chunks) * CHUNK_BYTES, &[i as u8; 100])
            .unwrap();
    }
    let second = store.create_snapshot(None).unwrap();
    for i in 0..origin_chunks {
        store
            .copy_out((i * 13) % origin_chunks, CopyData::No)
            .unwrap();
    }
    let child = store.create_snapshot_of(first).unwrap();
    for i in 0..200 {
        store
            .snapshot_write(child, i * 11 * CHUNK_BYTES, &[7; 512])
            .unwrap();
        store
            .snapshot_write(second, i * 5 * CHUNK_BYTES + 3, &[9; 64])
            .unwrap();
    }
    let extra = store.create_snapshot(Some(40)).unwrap();
    store
        .origin_write(0, &vec![1; 64 * CHUNK_BYTES as usize])
        .unwrap();
    store.commit().unwrap();
    let header = store.header();
    assert!(
        header.tree_level >= 2,
        "the tree should have grown: {header:?}"
    );
    drop(store);

    let check_path = |options: &CheckOptions| {
        let device = Device::open(dir.path().join("cow.img"), cowfmt::Access::ReadOnly).unwrap();
        check(&device, options).unwrap()
    };
    let options = CheckOptions {
        origin_bytes: Some(origin_chunks * CHUNK_BYTES),
        ..CheckOptions::default()
    };
    let report = check_path(&options);
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(report.summary.snapshots, 4);
    assert_eq!(report.summary.origin_chunks, origin_chunks);
    assert!(report.summary.records > origin_chunks);
    assert_eq!(report.summary.data_chunks, report.summary.records);

    let cow = Device::open(dir.path().join("cow.img"), cowfmt::Access::ReadWrite).unwrap();
    let origin = Device::open(dir.path().join("origin.img"), cowfmt::Access::ReadWrite).unwrap();
    let mut store = SharedStore::open(cow, origin).unwrap();
    store.delete_snapshot(first).unwrap();
    store.delete_snapshot(extra).unwrap();
    store.commit().unwrap();
    drop(store);
    let report = check_path(&options);
    assert!(report.is_clean(), "after deletes: {:#?}", report.findings);
    assert_eq!(report.summary.snapshots, 2);
}

#[test]
fn a_store_written_by_the_engine_dumps_as_the_engine_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let chunk_bytes = 512u64;
    let origin_chunks = 2000u64;
    let origin_path = dir.path().join("origin.img");
    let cow_path = dir.path().join("cow.img");
    std::fs::write(
        &origin_path,
        vec![7u8; (origin_chunks * chunk_bytes) as usize],
    )
    .unwrap();
    let cow = Device::create_or_extend(&cow_path, 8192 * chunk_bytes).unwrap();
    let origin = Device::open(&origin_path, Access::ReadWrite).unwrap();
    let options = CreateOptions {
        chunk_sectors: 1,
        journal_chunks: 4,
    };
    let mut store = SharedStore::create(cow, origin, &options).unwrap();
    let data = vec![1u8; chunk_bytes as usize];
    let first = store.create_snapshot(None).unwrap();
    for c in (0..origin_chunks).step_by(3) {
        store.origin_write(c * chunk_bytes, &data).unwrap();
    }
    let second = store.create_snapshot(None).unwrap();
    for c in (0..origin_chunks).step_by(2) {
        store.origin_write(c * chunk_bytes, &data).unwrap();
    }
    store.snapshot_write(first, 9 * chunk_bytes, &data).unwrap();
    store.commit().unwrap();
    let expected: Vec<(u64, u64, u64)> = store
        .exceptions()
        .unwrap()
        .into_iter()
        .flat_map(|(origin, records)| records.into_iter().map(move |r| (origin, r.chunk, r.share)))
        .collect();
    let header = store.header();
    drop(store);
    assert!(
        header.tree_level >= 2,
        "the test wants a tree with node levels"
    );
    let source = SharedSource::open(Device::open(&cow_path, Access::ReadOnly).unwrap()).unwrap();
    let dump = SharedDump::of(&source).unwrap();
    let dumped: Vec<(u64, u64, u64)> = dump
        .exceptions
        .iter()
        .map(|r| (r.origin_chunk, r.cow_chunk, r.snapshots.0))
        .collect();
    assert_eq!(dumped, expected);
    assert!(dumped.windows(2).all(|w| w[0].0 <= w[1].0), "origin order");
    assert_eq!(dump.head.snapshots.ids(), [first, second]);
    assert!(dump.tail.problems.is_empty());
    let bitmap = BitmapDump::of(&source).unwrap();
    let totals = bitmap.tail.classes.unwrap();
    assert_eq!((totals.leaked, totals.unmarked), (0, 0), "{totals:?}");
    assert_eq!(totals.data, expected.len() as u64);
    assert_eq!(
        bitmap.head.used_chunks,
        totals.header + totals.bitmap + totals.journal + totals.node + totals.leaf + totals.data
    );
    let seen_by_second = SnapshotDump::of(&source, second).unwrap();
    let want: Vec<(u64, u64)> = expected
        .iter()
        .filter(|r| r.2 & (1 << second) != 0)
        .map(|r| (r.0, r.1))
        .collect();
    let got: Vec<(u64, u64)> = seen_by_second
        .exceptions
        .iter()
        .map(|r| (r.origin_chunk, r.cow_chunk))
        .collect();
    assert_eq!(got, want);
}
