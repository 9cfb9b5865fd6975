//! Every cowcheck invariant of the persistent store, broken on purpose.

use cowfmt::persistent::check::{check, CheckOptions, CheckReport};
use cowfmt::persistent::{ExceptionRecord, StoreWriter};
use cowfmt::{Device, FindingCode, Severity, StoreKind};

const CHUNK: u64 = 4096;

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl Fixture {
    /// A store of `chunks` 4 KiB chunks holding `records` exceptions (old = 10 * i).
    fn new(chunks: u64, records: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.cow");
        let device = Device::create_or_extend(&path, chunks * CHUNK).unwrap();
        let mut writer = StoreWriter::format(device, 8).unwrap();
        for i in 0..records {
            let new_chunk = writer.allocate().unwrap();
            writer
                .commit(ExceptionRecord {
                    old_chunk: 10 * i,
                    new_chunk,
                })
                .unwrap();
        }
        writer.finish().unwrap();
        Fixture { _dir: dir, path }
    }

    fn poke(&self, offset: u64, bytes: &[u8]) {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .unwrap();
        file.write_all_at(bytes, offset).unwrap();
    }

    fn set_record(&self, area_chunk: u64, index: u64, old: u64, new: u64) {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&old.to_le_bytes());
        bytes[8..].copy_from_slice(&new.to_le_bytes());
        self.poke(area_chunk * CHUNK + index * 16, &bytes);
    }

    fn check_with(&self, options: CheckOptions) -> CheckReport {
        let device = Device::open(&self.path, cowfmt::Access::ReadOnly).unwrap();
        check(&device, &options).unwrap()
    }

    fn check(&self) -> CheckReport {
        self.check_with(CheckOptions::default())
    }
}

fn codes(report: &CheckReport) -> Vec<FindingCode> {
    report.findings.iter().map(|f| f.code).collect()
}

fn only(report: &CheckReport, code: FindingCode) -> &cowfmt::Finding {
    assert_eq!(codes(report), vec![code], "{:#?}", report.findings);
    &report.findings[0]
}

#[test]
fn a_clean_store_has_no_findings() {
    let fixture = Fixture::new(2048, 600);
    let report = fixture.check();
    assert!(report.is_clean(), "{:#?}", report.findings);
    assert_eq!(report.summary.records, 600);
    assert_eq!(report.summary.areas_read, 3);
}

#[test]
fn new_chunk_past_the_end() {
    let fixture = Fixture::new(2048, 20);
    fixture.set_record(1, 17, 170, 99_999);
    let report = fixture.check();
    // Record 17's own data chunk (19) is now used by nobody.
    assert_eq!(
        codes(&report),
        vec![FindingCode::NewChunkPastEnd, FindingCode::AllocationHole]
    );
    assert!(report.findings[1]
        .message
        .starts_with("data chunk 19 is below"));
    let finding = report.findings[0].clone();
    assert_eq!(finding.severity, Severity::Error);
    assert_eq!(
        finding.message,
        "area 0 (chunk 1) record 17: new_chunk 99999 is past the end of the device (2048 chunks)"
    );
    assert_eq!(finding.location.area, Some(0));
    assert_eq!(finding.location.record, Some(17));
}

#[test]
fn new_chunk_on_metadata() {
    let fixture = Fixture::new(2048, 20);
    fixture.set_record(1, 19, 190, 258);
    let report = fixture.check();
    let finding = only(&report, FindingCode::NewChunkIsMetadata);
    assert!(
        finding.message.contains("metadata area 1"),
        "{}",
        finding.message
    );
}

#[test]
fn new_chunk_used_twice() {
    let fixture = Fixture::new(2048, 20);
    fixture.set_record(1, 5, 50, 3);
    let report = fixture.check();
    assert_eq!(
        codes(&report),
        vec![FindingCode::NewChunkDuplicate, FindingCode::AllocationHole]
    );
    assert!(report.findings[1].message.starts_with("data chunk 7 is"));
}

#[test]
fn old_chunk_mapped_twice() {
    let fixture = Fixture::new(2048, 20);
    fixture.set_record(1, 5, 0, 7);
    only(&fixture.check(), FindingCode::OldChunkDuplicate);
}

#[test]
fn old_chunk_past_the_origin() {
    let fixture = Fixture::new(2048, 20);
    let options = CheckOptions {
        origin_bytes: Some(100 * CHUNK),
        ..CheckOptions::default()
    };
    let report = fixture.check_with(options);
    // old chunks are 0, 10, ..., 190: 100..190 are past an origin of 100
    // chunks; a wrong origin is called out once, the rest counted.
    let codes: Vec<FindingCode> = report.findings.iter().map(|f| f.code).collect();
    assert_eq!(
        codes,
        [
            FindingCode::OldChunkPastOrigin,
            FindingCode::FindingsSuppressed
        ]
    );
    assert_eq!(report.findings[0].location.old_chunk, Some(100));
    let rest = &report.findings[1];
    assert_eq!(rest.location.count, Some(9));
    assert!(rest.message.contains("--origin"), "{}", rest.message);
    // A partial last chunk (190 chunks and one sector) still counts as a chunk.
    let report = fixture.check_with(CheckOptions {
        origin_bytes: Some(190 * CHUNK + 512),
        ..CheckOptions::default()
    });
    assert!(report.is_clean(), "{:#?}", report.findings);
}

#[test]
fn records_out_of_allocation_order() {
    let fixture = Fixture::new(2048, 3);
    fixture.set_record(1, 0, 0, 3);
    fixture.set_record(1, 1, 10, 2);
    let report = fixture.check();
    let finding = only(&report, FindingCode::AllocationOutOfOrder);
    assert_eq!(finding.severity, Severity::Warning);
}

#[test]
fn a_crash_hole() {
    let fixture = Fixture::new(2048, 10);
    fixture.set_record(1, 9, 90, 20);
    let report = fixture.check();
    let finding = only(&report, FindingCode::AllocationHole);
    assert!(
        finding
            .message
            .starts_with("data chunks 11..19 (9 chunks) are"),
        "{}",
        finding.message
    );
}

#[test]
fn garbage_after_the_terminator() {
    let fixture = Fixture::new(2048, 10);
    fixture.poke(CHUNK + 16 * 12 + 3, &[1]);
    let finding = only(&fixture.check(), FindingCode::GarbageAfterTerminator).clone();
    assert_eq!(finding.location.record, Some(12));
    assert_eq!(finding.location.offset, Some(CHUNK + 16 * 12 + 3));
}

#[test]
fn the_terminator_itself_overwritten() {
    // A lost terminator makes the kernel read on into the zeros that follow: the
    // record is what it reads, so it is judged like any other record.
    let fixture = Fixture::new(2048, 10);
    fixture.set_record(1, 10, 5, 1_000_000);
    only(&fixture.check(), FindingCode::NewChunkPastEnd);
}

#[test]
fn an_area_overwritten_by_data() {
    // Area 1 (chunk 258) follows a full area 0 and is overwritten by a pattern.
    let fixture = Fixture::new(2048, 300);
    let junk: Vec<u8> = (0..CHUNK)
        .map(|i| b"JUNK 0000000102\n"[(i % 16) as usize])
        .collect();
    fixture.poke(258 * CHUNK, &junk);
    let report = fixture.check();
    assert_eq!(report.findings[0].code, FindingCode::AreaGarbage);
    assert!(report.findings[0].message.starts_with("area 1 (chunk 258)"));
}

#[test]
fn a_full_last_area_with_no_room_for_the_next() {
    // 256 records fill area 0 on a device that ends right after its data.
    let fixture = Fixture::new(259, 256);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&fixture.path)
        .unwrap()
        .set_len(258 * CHUNK)
        .unwrap();
    only(&fixture.check(), FindingCode::AreaPastEnd);
}

#[test]
fn header_fields() {
    let fixture = Fixture::new(64, 1);
    fixture.poke(4, &0u32.to_le_bytes());
    only(&fixture.check(), FindingCode::Invalidated);
    fixture.poke(4, &7u32.to_le_bytes());
    only(&fixture.check(), FindingCode::ValidFlagUnusual);
    fixture.poke(4, &1u32.to_le_bytes());
    fixture.poke(8, &2u32.to_le_bytes());
    only(&fixture.check(), FindingCode::BadVersion);
    fixture.poke(8, &1u32.to_le_bytes());
    fixture.poke(100, &[1]);
    only(&fixture.check(), FindingCode::HeaderTrailingGarbage);
    fixture.poke(100, &[0]);
    assert!(fixture.check().is_clean());
}

#[test]
fn bad_chunk_size_with_and_without_a_fallback() {
    let fixture = Fixture::new(64, 5);
    fixture.poke(12, &12u32.to_le_bytes());
    let report = fixture.check();
    only(&report, FindingCode::BadChunkSize);
    assert_eq!(report.summary.records, 0, "areas cannot be located");
    let report = fixture.check_with(CheckOptions {
        chunk_size_fallback: Some(8),
        ..CheckOptions::default()
    });
    only(&report, FindingCode::BadChunkSize);
    assert_eq!(report.summary.records, 5);
}

#[test]
fn wrong_magic_is_an_error_only_when_the_kind_is_insisted_on() {
    let fixture = Fixture::new(64, 5);
    fixture.poke(0, b"JUNK");
    let device = Device::open(&fixture.path, cowfmt::Access::ReadOnly).unwrap();
    let err = check(&device, &CheckOptions::default()).unwrap_err();
    assert!(err.to_string().contains("not a COW store"), "{err}");
    let report = fixture.check_with(CheckOptions {
        kind_forced: true,
        ..CheckOptions::default()
    });
    only(&report, FindingCode::BadMagic);
    assert_eq!(report.summary.records, 5);
}

#[test]
fn legacy_limits() {
    // 256 records fill area 0 exactly: max(new)+1 = 258 is area 1.
    let fixture = Fixture::new(1024, 256);
    let legacy = CheckOptions {
        kind: StoreKind::Legacy,
        ..CheckOptions::default()
    };
    assert!(fixture.check().is_clean());
    only(
        &fixture.check_with(legacy.clone()),
        FindingCode::LegacyNextOnMetadata,
    );

    let fixture = Fixture::new(1024, 3);
    fixture.set_record(1, 1, 1 << 33, 3);
    assert!(fixture.check().is_clean());
    only(
        &fixture.check_with(legacy),
        FindingCode::LegacyChunkTooLarge,
    );
}

#[test]
fn device_too_small_for_the_header_chunk_size() {
    let fixture = Fixture::new(64, 0);
    fixture.poke(12, &(1u32 << 20).to_le_bytes());
    only(&fixture.check(), FindingCode::DeviceTooSmall);
}

#[test]
fn status_line_in_the_summary() {
    let fixture = Fixture::new(2048, 53);
    let report = fixture.check();
    assert_eq!(report.summary.status.as_deref(), Some("440/16384 16"));
}
