//! Repair and migration of persistent stores, at the library level: crafted
//! damage must leave exactly the credible records, the output must pass the
//! checker, and the snapshot must read back byte-identical wherever a record
//! survived; a migration must keep the whole snapshot image byte-identical.

use crate::corruption_support::golden_image;

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use cowfmt::finding::Severity;
use cowfmt::persistent::check::{check, CheckOptions, CheckReport};
use cowfmt::persistent::migrate::{self, MigrateMode, MigrateOptions};
use cowfmt::persistent::repair::{
    self, ChunkSizeSource, DropReason, JobError, RepairOptions, RepairReport,
};
use cowfmt::persistent::view::SnapshotView;
use cowfmt::persistent::{ExceptionRecord, Geometry, PersistentStore, StoreWriter};
use cowfmt::{Access, Device, StoreKind};
use proptest::prelude::*;
use tempfile::TempDir;

/// Deterministic bytes: a xorshift stream seeded by `seed`.
fn fill(buf: &mut [u8], seed: u64) {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for piece in buf.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        piece.copy_from_slice(&state.to_le_bytes()[..piece.len()]);
    }
}

/// An origin image of `bytes` random bytes.
fn origin_image(dir: &TempDir, bytes: u64, seed: u64) -> PathBuf {
    let path = dir.path().join("origin.img");
    let mut data = vec![0u8; bytes as usize];
    fill(&mut data, seed);
    std::fs::write(&path, data).unwrap();
    path
}

/// Formats a store of `chunks` chunks and commits one record per origin chunk
/// in `olds`, each data chunk filled from its own seed.
fn build_store(
    dir: &TempDir,
    name: &str,
    chunk_sectors: u32,
    chunks: u64,
    olds: &[u64],
    seed: u64,
) -> PathBuf {
    let path = dir.path().join(name);
    let bytes = chunks * u64::from(chunk_sectors) * 512;
    let device = Device::create_or_extend(&path, bytes).unwrap();
    write_store(device, chunk_sectors, olds, Some(seed));
    path
}

/// Formats `device` as a persistent store of `chunk_sectors` chunks and
/// commits one record for each of `olds`, in order. With a `seed`, each data
/// chunk is filled from it first; without, it keeps what the device held.
fn write_store(device: Device, chunk_sectors: u32, olds: &[u64], seed: Option<u64>) {
    let mut writer = StoreWriter::format(device, chunk_sectors).unwrap();
    let mut data = vec![0u8; chunk_sectors as usize * 512];
    for &old_chunk in olds {
        let new_chunk = writer.allocate().unwrap();
        if let Some(seed) = seed {
            fill(&mut data, seed ^ old_chunk.wrapping_mul(31) ^ new_chunk);
            writer.device().write_chunk(new_chunk, &data).unwrap();
        }
        writer
            .commit(ExceptionRecord {
                old_chunk,
                new_chunk,
            })
            .unwrap();
    }
    writer.finish().unwrap();
}

fn poke(path: &Path, offset: u64, bytes: &[u8]) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.write_all_at(bytes, offset))
        .unwrap();
}

fn poke_record(
    path: &Path,
    chunk_sectors: u32,
    area: u64,
    index: u64,
    old_chunk: u64,
    new_chunk: u64,
) {
    let geometry = Geometry::new(chunk_sectors, 0).unwrap();
    let offset = geometry.area_location(area) * geometry.chunk_bytes() as u64 + index * 16;
    let mut bytes = [0u8; 16];
    ExceptionRecord {
        old_chunk,
        new_chunk,
    }
    .encode(&mut bytes);
    poke(path, offset, &bytes);
}

/// The JUNK pre-fill pattern of the golden images, as `len` bytes.
fn junk(len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len);
    let mut line = 0u64;
    while bytes.len() < len {
        bytes.extend_from_slice(format!("JUNK {line:010x}\n").as_bytes());
        line += 1;
    }
    bytes.truncate(len);
    bytes
}

fn open(path: &Path) -> Device {
    Device::open(path, Access::ReadOnly).unwrap()
}

fn records(path: &Path) -> Vec<ExceptionRecord> {
    let store = PersistentStore::open(open(path), None).unwrap();
    store
        .load()
        .unwrap()
        .records
        .iter()
        .map(|p| p.record)
        .collect()
}

fn check_report(path: &Path, kind: StoreKind) -> CheckReport {
    let options = CheckOptions {
        kind,
        ..CheckOptions::default()
    };
    check(&open(path), &options).unwrap()
}

fn assert_no_errors(path: &Path, kind: StoreKind) {
    let report = check_report(path, kind);
    let errors: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
}

/// The whole snapshot image: every origin chunk through the view.
fn image(view: &SnapshotView<'_>) -> Vec<u8> {
    let mut bytes = vec![0u8; view.size_bytes() as usize];
    view.read_at(&mut bytes, 0).unwrap();
    bytes
}

fn store_image(origin: &Path, cow: &Path) -> Vec<u8> {
    let origin = open(origin);
    let store = PersistentStore::open(open(cow), None).unwrap();
    let view = SnapshotView::of_store(&origin, &store).unwrap();
    image(&view)
}

/// Repairs `input` into `<input>.fixed` with `options`; returns the report,
/// the output path and the records analysis kept (with their input places).
fn repair_file(
    input: &Path,
    options: &RepairOptions,
) -> (RepairReport, PathBuf, Vec<ExceptionRecord>) {
    let source = open(input);
    let salvage = repair::analyze(&source, options, &mut |_, _| {}).unwrap();
    let kept: Vec<_> = salvage.kept_records().iter().map(|p| p.record).collect();
    let out = input.with_extension("fixed");
    let output = Device::create_or_extend(&out, source.size_bytes()).unwrap();
    let report = salvage
        .write(&source, output, true, &mut |_, _| {})
        .unwrap();
    (report, out, kept)
}

/// The repaired persistent store at `out` checks clean and its survivors
/// read back identical.
fn assert_clean_survivors(origin: &Path, cow: &Path, out: &Path, kept: &[ExceptionRecord]) {
    assert!(check_report(out, StoreKind::Persistent).is_clean());
    assert_survivors_identical(origin, cow, out, kept);
}

/// As [`assert_clean_survivors`], and the kept records are those of the
/// `expected` old chunks, in order.
fn assert_clean_repair(
    origin: &Path,
    cow: &Path,
    out: &Path,
    kept: &[ExceptionRecord],
    expected: &[u64],
) {
    assert_eq!(
        kept.iter().map(|r| r.old_chunk).collect::<Vec<_>>(),
        expected
    );
    assert_clean_survivors(origin, cow, out, kept);
}

/// The surviving snapshot chunks read back identical: the repaired store shows
/// what the input shows through exactly the kept records.
fn assert_survivors_identical(
    origin: &Path,
    input: &Path,
    output: &Path,
    kept: &[ExceptionRecord],
) {
    let origin_dev = open(origin);
    let input_dev = open(input);
    let chunk = PersistentStore::open(open(output), None)
        .unwrap()
        .geometry()
        .chunk_sectors();
    let expected = SnapshotView::new(&origin_dev, &input_dev, chunk, kept.iter().copied());
    assert!(
        image(&expected) == store_image(origin, output),
        "snapshot images differ"
    );
}

fn reasons(report: &RepairReport) -> Vec<(u64, u64, DropReason)> {
    report
        .dropped
        .iter()
        .map(|d| (d.area, d.index, d.reason))
        .collect()
}

/// 74 records at 1-sector chunks (32 per area): areas 0 and 1 full, 10 in area 2.
fn three_area_store(dir: &TempDir) -> (PathBuf, PathBuf, Vec<u64>) {
    let olds: Vec<u64> = (0..74).map(|i| (i * 37) % 200).collect();
    let cow = build_store(dir, "cow.img", 1, 120, &olds, 7);
    let origin = origin_image(dir, 200 * 512, 3);
    (cow, origin, olds)
}

#[test]
fn clean_golden_stores_keep_every_record() {
    for (name, count) in [("a", 53), ("b2", 257), ("c2", 62)] {
        let dir = tempfile::tempdir().unwrap();
        let cow = golden_image(&dir, name, "cow");
        let origin = golden_image(&dir, name, "origin");
        let (report, out, kept) = repair_file(&cow, &RepairOptions::default());
        assert_eq!(report.kept, count, "{name}");
        assert_eq!(report.dropped_total, 0, "{name}");
        assert_eq!(report.kernel_records, count, "{name}");
        assert_eq!(report.chunk_size_source, ChunkSizeSource::Header);
        assert!(
            !report.header_repaired,
            "{name}: {:?}",
            report.header_problems
        );
        assert_eq!(kept, records(&cow), "{name}");
        assert_eq!(records(&out).len() as u64, count);
        assert_no_errors(&out, StoreKind::Persistent);
        assert!(check_report(&out, StoreKind::Persistent).is_clean());
        assert!(
            store_image(&origin, &cow) == store_image(&origin, &out),
            "{name}"
        );
    }
}

#[test]
fn junk_prefilled_cow_skips_unused_areas_as_space_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cow.img");
    std::fs::write(&path, junk(300 * 512)).unwrap();
    let device = Device::open(&path, Access::ReadWrite).unwrap();
    write_store(device, 1, &[0, 1, 2, 3, 4], None);
    let origin = origin_image(&dir, 64 * 512, 1);
    let (report, out, kept) = repair_file(&path, &RepairOptions::default());
    assert_eq!(report.kept, 5);
    assert_eq!(report.dropped_total, 0);
    assert_eq!(report.recovered_beyond_kernel, 0);
    assert_eq!(
        report.skipped_areas,
        Geometry::new(1, 300 * 512).unwrap().areas_on_device() - 1
    );
    assert!(!report.nothing_salvaged());
    assert_no_errors(&out, StoreKind::Persistent);
    assert_survivors_identical(&origin, &path, &out, &kept);
}

#[test]
fn golden_b2_with_its_junk_keeps_all_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let cow = golden_image(&dir, "b2", "cow");
    let origin = golden_image(&dir, "b2", "origin");
    let (report, out, _) = repair_file(&cow, &RepairOptions::default());
    assert_eq!((report.kept, report.dropped_total), (257, 0));
    assert!(store_image(&origin, &cow) == store_image(&origin, &out));
}

#[test]
fn record_past_the_end_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let olds: Vec<u64> = (0..10).map(|i| i * 3).collect();
    let cow = build_store(&dir, "cow.img", 8, 64, &olds, 1);
    let origin = origin_image(&dir, 64 * 4096, 2);
    poke_record(&cow, 8, 0, 3, olds[3], 99_999);
    let (report, out, kept) = repair_file(&cow, &RepairOptions::default());
    assert_eq!(reasons(&report), vec![(0, 3, DropReason::NewChunkPastEnd)]);
    assert_eq!(report.dropped[0].new_chunk, 99_999);
    assert!(
        report.dropped[0].message.contains("past the end"),
        "{}",
        report.dropped[0].message
    );
    let expected: Vec<u64> = olds.iter().copied().filter(|&o| o != olds[3]).collect();
    assert_eq!(
        kept.iter().map(|r| r.old_chunk).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(
        records(&out)
            .iter()
            .map(|r| r.old_chunk)
            .collect::<Vec<_>>(),
        expected
    );
    assert_eq!(
        records(&out)
            .iter()
            .map(|r| r.new_chunk)
            .collect::<Vec<_>>(),
        (2..11).collect::<Vec<_>>()
    );
    assert_clean_survivors(&origin, &cow, &out, &kept);
}

#[test]
fn duplicates_keep_the_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let olds: Vec<u64> = (0..10).map(|i| i * 5).collect();
    let cow = build_store(&dir, "cow.img", 8, 64, &olds, 1);
    let origin = origin_image(&dir, 64 * 4096, 2);
    poke_record(&cow, 8, 0, 5, olds[5], 4);
    poke_record(&cow, 8, 0, 6, olds[1], 8);
    let (report, out, kept) = repair_file(&cow, &RepairOptions::default());
    assert_eq!(
        reasons(&report),
        vec![
            (0, 5, DropReason::NewChunkDuplicate),
            (0, 6, DropReason::OldChunkDuplicate)
        ]
    );
    assert_eq!(kept.len(), 8);
    assert_eq!(
        kept[1],
        ExceptionRecord {
            old_chunk: olds[1],
            new_chunk: 3
        }
    );
    assert_eq!(
        kept[2],
        ExceptionRecord {
            old_chunk: olds[2],
            new_chunk: 4
        }
    );
    assert_clean_survivors(&origin, &cow, &out, &kept);
}

#[test]
fn records_on_metadata_or_before_their_area_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let olds: Vec<u64> = (0..40).collect();
    let cow = build_store(&dir, "cow.img", 1, 80, &olds, 1);
    let origin = origin_image(&dir, 64 * 512, 2);
    poke_record(&cow, 1, 0, 3, 3, 34);
    poke_record(&cow, 1, 1, 2, 34, 20);
    let (report, out, kept) = repair_file(&cow, &RepairOptions::default());
    assert_eq!(
        reasons(&report),
        vec![
            (0, 3, DropReason::NewChunkIsMetadata),
            (1, 2, DropReason::NewChunkBeforeArea)
        ]
    );
    assert!(
        report.dropped[0].message.contains("metadata area 1"),
        "{}",
        report.dropped[0].message
    );
    assert_eq!(kept.len(), 38);
    assert_no_errors(&out, StoreKind::Persistent);
    assert_survivors_identical(&origin, &cow, &out, &kept);
}

#[test]
fn zeroed_middle_area_loses_only_its_own_records() {
    let dir = tempfile::tempdir().unwrap();
    let (cow, origin, olds) = three_area_store(&dir);
    poke(&cow, 34 * 512, &[0u8; 512]);
    let (report, out, kept) = repair_file(&cow, &RepairOptions::default());
    assert_eq!(report.kernel_records, 32);
    assert_eq!(report.kept, 42);
    assert_eq!(report.recovered_beyond_kernel, 10);
    assert_eq!(report.dropped_total, 0);
    let expected: Vec<u64> = olds[..32].iter().chain(&olds[64..]).copied().collect();
    assert_clean_repair(&origin, &cow, &out, &kept, &expected);

    let only_kernel = RepairOptions {
        kernel_areas_only: true,
        ..RepairOptions::default()
    };
    let salvage = repair::analyze(&open(&cow), &only_kernel, &mut |_, _| {}).unwrap();
    assert_eq!(salvage.report().kept, 32);
    assert_eq!(salvage.report().recovered_beyond_kernel, 0);
}

#[test]
fn junk_overwritten_area_is_dropped_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (cow, origin, olds) = three_area_store(&dir);
    poke(&cow, 34 * 512, &junk(512));
    let (report, out, kept) = repair_file(&cow, &RepairOptions::default());
    assert_eq!(report.damaged_areas.len(), 1);
    assert_eq!(report.damaged_areas[0].area, 1);
    assert_eq!(report.damaged_areas[0].records, 32);
    assert_eq!(report.damaged_areas[0].plausible, 0);
    assert!(report.dropped.is_empty());
    assert_eq!(report.dropped_total, 32);
    assert_eq!(report.kept, 42);
    assert_eq!(
        report.recovered_beyond_kernel, 0,
        "area 2 is still read by the kernel after a full-looking junk area"
    );
    let expected: Vec<u64> = olds[..32].iter().chain(&olds[64..]).copied().collect();
    assert_clean_repair(&origin, &cow, &out, &kept, &expected);
}

#[test]
fn lost_terminator_drops_the_garbage_after_the_last_record() {
    for records_before in [10u64, 2] {
        let dir = tempfile::tempdir().unwrap();
        let olds: Vec<u64> = (0..records_before).map(|i| i * 2).collect();
        let cow = build_store(&dir, "cow.img", 1, 80, &olds, 1);
        let origin = origin_image(&dir, 64 * 512, 2);
        poke(
            &cow,
            512 + records_before * 16,
            &junk((32 - records_before as usize) * 16),
        );
        let (report, out, kept) = repair_file(&cow, &RepairOptions::default());
        assert_eq!(report.kept, records_before);
        assert_eq!(
            report.kernel_records, 32,
            "the kernel reads the garbage as records"
        );
        assert_eq!(report.dropped_total, 32 - records_before);
        assert!(report
            .dropped
            .iter()
            .all(|d| d.reason == DropReason::NewChunkPastEnd));
        assert_eq!(report.dropped[0].index, records_before);
        assert_clean_repair(&origin, &cow, &out, &kept, &olds);
    }
}

#[test]
fn premature_terminator_recovers_the_records_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let (cow, origin, olds) = three_area_store(&dir);
    poke(&cow, 512 + 20 * 16, &[0u8; 16]);
    let (report, out, kept) = repair_file(&cow, &RepairOptions::default());
    assert_eq!(report.kernel_records, 20);
    assert_eq!(report.kept, 73);
    assert_eq!(report.recovered_beyond_kernel, 53);
    let expected: Vec<u64> = olds[..20].iter().chain(&olds[21..]).copied().collect();
    assert_clean_repair(&origin, &cow, &out, &kept, &expected);
}

#[test]
fn damaged_header_fields_are_inferred() {
    let cases: [(&str, usize, &[u8]); 4] = [
        ("magic", 0, b"XXXX"),
        ("chunk size not a power of two", 12, &12u32.to_le_bytes()),
        ("version", 8, &7u32.to_le_bytes()),
        ("whole header wiped", 0, &[0u8; 16]),
    ];
    for (what, offset, bytes) in cases {
        let dir = tempfile::tempdir().unwrap();
        let cow = golden_image(&dir, "a", "cow");
        let origin = golden_image(&dir, "a", "origin");
        let before = store_image(&origin, &cow);
        poke(&cow, offset as u64, bytes);
        let (report, out, kept) = repair_file(&cow, &RepairOptions::default());
        assert_eq!(report.chunk_size, 8, "{what}");
        assert_eq!(
            report.chunk_size_source,
            ChunkSizeSource::Inferred,
            "{what}"
        );
        assert_eq!(report.inferred_chunk_size, Some(8), "{what}");
        assert!(report.header_repaired, "{what}");
        assert!(!report.header_problems.is_empty(), "{what}");
        assert_eq!(report.kept, 53, "{what}");
        assert_eq!(kept.len(), 53);
        assert!(report.output_valid, "{what}");
        assert!(
            check_report(&out, StoreKind::Persistent).is_clean(),
            "{what}"
        );
        assert!(before == store_image(&origin, &out), "{what}");
    }
}

#[test]
fn given_chunk_size_wins_and_a_wrong_valid_field_is_only_noted() {
    let dir = tempfile::tempdir().unwrap();
    let cow = golden_image(&dir, "a", "cow");
    poke(&cow, 12, &16u32.to_le_bytes());
    // A sound header is never overruled, but its chunk size reads nothing
    // while 8 sectors reads the records: the repair stops and names it.
    match repair::analyze(&open(&cow), &RepairOptions::default(), &mut |_, _| {}) {
        Err(JobError::Damage(message)) => {
            assert!(message.contains("give --chunk-size 8s"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let given = RepairOptions {
        chunk_size: Some(8),
        ..RepairOptions::default()
    };
    let salvage = repair::analyze(&open(&cow), &given, &mut |_, _| {}).unwrap();
    assert_eq!(salvage.chunk_sectors(), 8);
    assert_eq!(salvage.report().chunk_size_source, ChunkSizeSource::Option);
    assert_eq!(salvage.report().kept, 53);
    assert!(salvage.report().header_repaired);
}

#[test]
fn invalidated_store_stays_invalid_unless_marked_valid() {
    let dir = tempfile::tempdir().unwrap();
    let cow = golden_image(&dir, "c", "cow");
    let origin = golden_image(&dir, "c", "origin");
    let (report, out, _) = repair_file(&cow, &RepairOptions::default());
    assert_eq!(report.input_valid, Some(false));
    assert!(!report.output_valid);
    assert_eq!(report.kept, 62);
    assert!(report
        .notes
        .iter()
        .any(|n| n.contains("known to be incomplete")));
    assert_eq!(report.status_after.as_deref(), Some("Invalid"));
    assert_eq!(
        PersistentStore::open(open(&out), None)
            .unwrap()
            .header()
            .valid,
        0
    );
    assert_no_errors(&out, StoreKind::Persistent);
    assert!(store_image(&origin, &cow) == store_image(&origin, &out));

    let marked = RepairOptions {
        mark_valid: true,
        ..RepairOptions::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let cow = golden_image(&dir, "c", "cow");
    let (report, out, _) = repair_file(&cow, &marked);
    assert!(report.output_valid);
    assert_eq!(
        PersistentStore::open(open(&out), None)
            .unwrap()
            .header()
            .valid,
        1
    );
    assert!(check_report(&out, StoreKind::Persistent).is_clean());
}

#[test]
fn records_past_the_origin_are_dropped_when_its_size_is_known() {
    let dir = tempfile::tempdir().unwrap();
    let olds = [1u64, 50, 2, 99, 3];
    let cow = build_store(&dir, "cow.img", 8, 64, &olds, 1);
    let options = RepairOptions {
        origin_bytes: Some(50 * 4096 + 100),
        ..RepairOptions::default()
    };
    let (report, out, kept) = repair_file(&cow, &options);
    assert_eq!(
        reasons(&report),
        vec![(0, 3, DropReason::OldChunkPastOrigin)]
    );
    assert_eq!(
        kept.iter().map(|r| r.old_chunk).collect::<Vec<_>>(),
        vec![1, 50, 2, 3]
    );
    assert!(check_report(&out, StoreKind::Persistent).is_clean());
}

#[test]
fn legacy_repair_moves_the_last_chunk_off_the_reload_hazard() {
    let dir = tempfile::tempdir().unwrap();
    let olds: Vec<u64> = (0..64).collect();
    let cow = build_store(&dir, "cow.img", 1, 120, &olds, 1);
    let origin = origin_image(&dir, 64 * 512, 2);
    let options = RepairOptions {
        kind: StoreKind::Legacy,
        ..RepairOptions::default()
    };
    let (report, out, kept) = repair_file(&cow, &options);
    let relocation = report.relocation.expect("moved");
    assert_eq!(
        (
            relocation.from_chunk,
            relocation.metadata_chunk,
            relocation.to_chunk
        ),
        (66, 67, 68)
    );
    assert_no_errors(&out, StoreKind::Legacy);
    assert!(!check_report(&cow, StoreKind::Legacy).findings.is_empty());
    assert_survivors_identical(&origin, &cow, &out, &kept);
}

#[test]
fn nothing_to_salvage_is_damage_and_a_shared_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let blank = dir.path().join("blank.img");
    File::create(&blank).unwrap().set_len(1 << 20).unwrap();
    let err =
        repair::analyze(&open(&blank), &RepairOptions::default(), &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, JobError::Damage(_)), "{err}");
    assert!(err.to_string().contains("blank.img"), "{err}");

    poke(&blank, 0, &0x5537_8008u32.to_le_bytes());
    let err =
        repair::analyze(&open(&blank), &RepairOptions::default(), &mut |_, _| {}).unwrap_err();
    assert!(matches!(err, JobError::Failed(_)), "{err}");

    let cow = build_store(&dir, "cow.img", 1, 80, &[1, 2, 3], 1);
    for index in 0..3 {
        poke_record(&cow, 1, 0, index, index, 5000 + index);
    }
    let salvage = repair::analyze(&open(&cow), &RepairOptions::default(), &mut |_, _| {}).unwrap();
    assert!(salvage.report().nothing_salvaged());
    let out = Device::create_or_extend(dir.path().join("out.img"), 80 * 512).unwrap();
    let err = salvage
        .write(&open(&cow), out, true, &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(err, JobError::Damage(_)), "{err}");
}

#[test]
fn rebuilding_onto_a_used_device_zeroes_its_stale_areas() {
    let dir = tempfile::tempdir().unwrap();
    let (cow, _, _) = three_area_store(&dir);
    let small = build_store(&dir, "small.img", 1, 120, &[1, 2, 3], 9);
    let used = dir.path().join("used.img");
    std::fs::copy(&cow, &used).unwrap();
    let source = open(&small);
    let salvage = repair::analyze(&source, &RepairOptions::default(), &mut |_, _| {}).unwrap();
    let output = Device::open(&used, Access::ReadWrite).unwrap();
    let report = salvage
        .write(&source, output, false, &mut |_, _| {})
        .unwrap();
    assert_eq!(report.stale_areas_zeroed, 2);
    let again = repair::analyze(&open(&used), &RepairOptions::default(), &mut |_, _| {}).unwrap();
    assert_eq!(again.report().kept, 3);
}

fn migrate_file(
    input: &Path,
    origin: Option<&Path>,
    options: &MigrateOptions,
    size: Option<u64>,
) -> Result<(migrate::MigrateReport, PathBuf), JobError> {
    let store = PersistentStore::open(open(input), None)?;
    let origin_dev = origin.map(open);
    let plan = migrate::plan(&store, options, origin_dev.as_ref().map(Device::size_bytes))?;
    let out = input.with_extension(format!("{}-{}", plan.to_chunk_size, plan.to_kind));
    let bytes = size.unwrap_or(store.device().size_bytes());
    let output = Device::create_or_extend(&out, bytes)?;
    let report = migrate::migrate(
        &store,
        &plan,
        origin_dev.as_ref(),
        output,
        true,
        &mut |_, _| {},
    )?;
    Ok((report, out))
}

fn to_chunk(sectors: u32) -> MigrateOptions {
    MigrateOptions {
        from_kind: StoreKind::Persistent,
        to_kind: None,
        chunk_size: Some(sectors),
    }
}

fn to_kind(kind: StoreKind) -> MigrateOptions {
    MigrateOptions {
        from_kind: StoreKind::Persistent,
        to_kind: Some(kind),
        chunk_size: None,
    }
}

#[test]
fn golden_a_migrates_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let cow = golden_image(&dir, "a", "cow");
    let origin = golden_image(&dir, "a", "origin");
    let before = store_image(&origin, &cow);

    let (report, out) = migrate_file(&cow, Some(&origin), &to_chunk(4), None).unwrap();
    assert_eq!(
        (report.mode, report.factor, report.to.records),
        (MigrateMode::Split, 2, 106)
    );
    assert_eq!(report.to.chunk_size, 4);
    assert!(check_report(&out, StoreKind::Persistent).is_clean());
    assert!(before == store_image(&origin, &out));

    let (report, out) = migrate_file(&cow, Some(&origin), &to_chunk(16), None).unwrap();
    assert_eq!((report.mode, report.factor), (MigrateMode::Merge, 2));
    assert!(report.to.records <= 53);
    assert_eq!(report.pieces_from_origin, 2 * report.to.records - 53);
    assert!(check_report(&out, StoreKind::Persistent).is_clean());
    assert!(before == store_image(&origin, &out));

    let (report, out) =
        migrate_file(&cow, Some(&origin), &to_kind(StoreKind::Legacy), None).unwrap();
    assert_eq!(report.mode, MigrateMode::Copy);
    assert_eq!(report.relocation, None);
    assert_eq!(report.to.status, report.from.status);
    assert_eq!(records(&out), records(&cow));
    assert!(check_report(&out, StoreKind::Legacy).is_clean());
    assert!(before == store_image(&origin, &out));
}

#[test]
fn a_larger_chunk_size_needs_the_origin() {
    let dir = tempfile::tempdir().unwrap();
    let cow = golden_image(&dir, "a", "cow");
    let store = PersistentStore::open(open(&cow), None).unwrap();
    let plan = migrate::plan(&store, &to_chunk(16), None).unwrap();
    assert!(plan.needs_origin);
    let output = Device::create_or_extend(dir.path().join("out.img"), 8 << 20).unwrap();
    let err = migrate::migrate(&store, &plan, None, output, true, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("origin"), "{err}");
}

#[test]
fn legacy_conversion_moves_the_last_chunk_and_needs_room_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let olds: Vec<u64> = (0..32).map(|i| 63 - i).collect();
    let cow = build_store(&dir, "cow.img", 1, 35, &olds, 5);
    let origin = origin_image(&dir, 64 * 512, 6);
    let store = PersistentStore::open(open(&cow), None).unwrap();
    let plan = migrate::plan(&store, &to_kind(StoreKind::Legacy), None).unwrap();
    assert_eq!(plan.needed_bytes, 36 * 512);
    let err = migrate_file(&cow, None, &to_kind(StoreKind::Legacy), None).unwrap_err();
    assert!(err.to_string().contains("needs at least 18432"), "{err}");

    let (report, out) =
        migrate_file(&cow, None, &to_kind(StoreKind::Legacy), Some(36 * 512)).unwrap();
    let relocation = report.relocation.expect("moved");
    assert_eq!(
        (
            relocation.from_chunk,
            relocation.to_chunk,
            relocation.metadata_chunk
        ),
        (33, 35, 34)
    );
    assert_eq!(
        (relocation.area, relocation.index, relocation.old_chunk),
        (0, 31, 32)
    );
    assert_no_errors(&out, StoreKind::Legacy);
    assert!(check_report(&out, StoreKind::Legacy).is_clean());
    assert!(check_report(&out, StoreKind::Persistent).is_clean());
    assert!(store_image(&origin, &cow) == store_image(&origin, &out));

    let (report, out) = migrate_file(&out, None, &to_kind(StoreKind::Persistent), None).unwrap();
    assert_eq!(report.relocation, None);
    assert!(store_image(&origin, &cow) == store_image(&origin, &out));
}

#[test]
fn legacy_limits_and_damaged_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cow = build_store(&dir, "big.img", 8, 64, &[1 << 32], 1);
    let store = PersistentStore::open(open(&cow), None).unwrap();
    let err = migrate::plan(&store, &to_kind(StoreKind::Legacy), None).unwrap_err();
    assert!(err.to_string().contains("32 bits"), "{err}");

    let cow = build_store(&dir, "bad.img", 8, 64, &[1, 2, 3], 1);
    poke_record(&cow, 8, 0, 1, 2, 9999);
    let store = PersistentStore::open(open(&cow), None).unwrap();
    let err = migrate::plan(&store, &to_chunk(4), None).unwrap_err();
    assert!(matches!(err, JobError::Damage(_)), "{err}");
    assert!(err.to_string().contains("cowrepair"), "{err}");
}

#[test]
fn splitting_leaves_out_pieces_past_the_end_of_the_origin() {
    let dir = tempfile::tempdir().unwrap();
    let cow = build_store(&dir, "cow.img", 8, 64, &[0, 4, 2], 1);
    let origin = origin_image(&dir, 4 * 4096 + 1024, 2);
    let before = store_image(&origin, &cow);
    let (report, out) = migrate_file(&cow, Some(&origin), &to_chunk(2), None).unwrap();
    assert_eq!(report.pieces_past_origin, 3);
    assert_eq!(report.to.records, 9);
    assert!(before == store_image(&origin, &out));
}

/// A random store: origin of `origin_chunks` chunks (trimmed by `trim`
/// sectors), records for a random subset of them, in random order.
fn random_store(
    dir: &TempDir,
    chunk_sectors: u32,
    origin_chunks: u64,
    trim: u64,
    picks: &[u64],
    seed: u64,
) -> (PathBuf, PathBuf) {
    let mut olds = Vec::new();
    for &pick in picks {
        let old = pick % origin_chunks;
        if !olds.contains(&old) {
            olds.push(old);
        }
    }
    let geometry = Geometry::new(chunk_sectors, 0).unwrap();
    let chunks = migrate::chunks_needed(&geometry, olds.len() as u64) + 3;
    let cow = build_store(dir, "cow.img", chunk_sectors, chunks, &olds, seed);
    let bytes = origin_chunks * u64::from(chunk_sectors) * 512 - trim * 512;
    let origin = origin_image(dir, bytes, seed.rotate_left(17));
    (cow, origin)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn migrations_keep_the_snapshot_image(
        shift in 1u32..4,
        origin_chunks in 4u64..80,
        trim_seed in 0u64..8,
        picks in proptest::collection::vec(0u64..1000, 0..60),
        seed in any::<u64>(),
    ) {
        let chunk_sectors = 1u32 << shift;
        let trim = trim_seed % u64::from(chunk_sectors);
        let dir = tempfile::tempdir().unwrap();
        let (cow, origin) = random_store(&dir, chunk_sectors, origin_chunks, trim, &picks, seed);
        let before = store_image(&origin, &cow);
        let room = Some(4 * std::fs::metadata(&cow).unwrap().len() + (1 << 16));
        let targets = [
            (to_chunk(chunk_sectors / 2), StoreKind::Persistent),
            (to_chunk(chunk_sectors * 2), StoreKind::Persistent),
            (to_kind(StoreKind::Legacy), StoreKind::Legacy),
            (to_kind(StoreKind::Persistent), StoreKind::Persistent),
        ];
        for (options, kind) in targets {
            let (report, out) = migrate_file(&cow, Some(&origin), &options, room).unwrap();
            prop_assert!(before == store_image(&origin, &out), "{:?}", report.mode);
            let errors = check_report(&out, kind).findings.into_iter().filter(|f| f.severity == Severity::Error).count();
            prop_assert_eq!(errors, 0);
            if kind == StoreKind::Legacy {
                let (back, again) = migrate_file(&out, Some(&origin), &to_kind(StoreKind::Persistent), room).unwrap();
                prop_assert!(before == store_image(&origin, &again), "{:?}", back.mode);
            }
        }
    }

    #[test]
    fn repair_of_an_undamaged_random_store_keeps_everything(
        shift in 0u32..4,
        origin_chunks in 2u64..200,
        picks in proptest::collection::vec(0u64..1000, 0..150),
        seed in any::<u64>(),
    ) {
        let chunk_sectors = 1u32 << shift;
        let dir = tempfile::tempdir().unwrap();
        let (cow, origin) = random_store(&dir, chunk_sectors, origin_chunks, 0, &picks, seed);
        let (report, out, kept) = repair_file(&cow, &RepairOptions::default());
        prop_assert_eq!(report.dropped_total, 0);
        prop_assert_eq!(&kept, &records(&cow));
        prop_assert!(check_report(&out, StoreKind::Persistent).is_clean());
        prop_assert!(store_image(&origin, &cow) == store_image(&origin, &out));
    }
}

/// One piece of random damage: 8 bytes in the header (place 0) or in area
/// 0..3 (places 1..4), either a small number (a plausible-looking chunk) or
/// anything.
fn damage_strategy() -> impl Strategy<Value = (u64, u64, bool)> {
    (0u64..5, 0u64..505, any::<u64>(), any::<bool>()).prop_map(|(place, at, value, small)| {
        let chunk = if place == 0 { 0 } else { 1 + (place - 1) * 33 };
        (chunk * 512 + at, value, small)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn repair_of_randomly_damaged_stores_always_checks_clean(
        count in 0u64..110,
        damage in proptest::collection::vec(damage_strategy(), 1..12),
        legacy in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let olds: Vec<u64> = (0..count).map(|i| (i * 13 + seed % 7) % 150).collect();
        let cow = build_store(&dir, "cow.img", 1, 160, &olds, seed);
        let origin = origin_image(&dir, 150 * 512, seed);
        for (offset, value, small) in damage {
            let value = if small { value % 200 } else { value };
            poke(&cow, offset, &value.to_le_bytes());
        }
        let options = RepairOptions {
            kind: if legacy { StoreKind::Legacy } else { StoreKind::Persistent },
            origin_bytes: Some(150 * 512),
            ..RepairOptions::default()
        };
        let source = open(&cow);
        let salvage = match repair::analyze(&source, &options, &mut |_, _| {}) {
            Ok(salvage) => salvage,
            Err(JobError::Damage(_)) => return Ok(()),
            Err(other) => panic!("{other}"),
        };
        let kept: Vec<_> = salvage.kept_records().iter().map(|p| p.record).collect();
        let out = dir.path().join("fixed.img");
        let size = salvage.needed_bytes().max(source.size_bytes());
        let output = Device::create_or_extend(&out, size).unwrap();
        match salvage.write(&source, output, true, &mut |_, _| {}) {
            Ok(report) => {
                prop_assert_eq!(report.kept, kept.len() as u64);
                let kind = options.kind;
                let errors: Vec<_> = check_report(&out, kind).findings.into_iter().filter(|f| f.severity == Severity::Error).collect();
                prop_assert!(errors.is_empty(), "{:#?}", errors);
                assert_survivors_identical(&origin, &cow, &out, &kept);
            }
            Err(JobError::Damage(_)) => prop_assert!(kept.is_empty()),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn repair_never_panics_on_random_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..6000),
        header in proptest::option::of((any::<u32>(), 0u32..4, 0u32..3, 0u32..70)),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("random.img");
        let mut bytes = bytes;
        if let Some((valid, version, shift, chunk)) = header {
            if bytes.len() >= 16 {
                bytes[..4].copy_from_slice(b"SnAp");
                bytes[4..8].copy_from_slice(&valid.to_le_bytes());
                bytes[8..12].copy_from_slice(&version.to_le_bytes());
                let chunk = if shift == 0 { chunk } else { 1 << (chunk % 4) };
                bytes[12..16].copy_from_slice(&chunk.to_le_bytes());
            }
        }
        std::fs::write(&path, &bytes).unwrap();
        let source = open(&path);
        if let Ok(salvage) = repair::analyze(&source, &RepairOptions::default(), &mut |_, _| {}) {
            let out = dir.path().join("out.img");
            let size = salvage.needed_bytes().max(source.size_bytes());
            let output = Device::create_or_extend(&out, size).unwrap();
            if salvage.write(&source, output, true, &mut |_, _| {}).is_ok() {
                prop_assert!(!check_report(&out, StoreKind::Persistent).has_errors());
            }
        }
    }
}
