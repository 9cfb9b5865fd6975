//! Data-safety cases: copies_and_messages. Sparse copies keep holes (case 7),
//! cowmigrate leaves room to grow (case 9), impossible figures and repeated
//! findings are shown as such (case 10), and an origin offset that overflows
//! is an error (case 15).

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::common::*;

/// Bytes the file at `path` allocates on disk.
fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// An origin chunk whose byte offset does not fit 64 bits at 4 KiB chunks.
const OVERFLOWING_OLD_CHUNK: u64 = 1 << 53;

#[test]
fn case15_an_origin_offset_that_overflows_is_an_error() {
    let dir = tempdir();
    let cow = build_store(&dir, "cow.img", 8, 1024, 10);
    write_area0_record(&cow, 3, OVERFLOWING_OLD_CHUNK, 5);
    let output = tool("cowcheck")
        .args(["--format", "json", s(&cow)])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let findings = json["findings"].as_array().unwrap();
    let overflow = findings
        .iter()
        .find(|f| f["code"] == "old-chunk-overflow")
        .unwrap_or_else(|| panic!("no old-chunk-overflow in {findings:?}"));
    assert_eq!(overflow["severity"], "error");
    assert_eq!(overflow["old_chunk"], OVERFLOWING_OLD_CHUNK);
    assert_eq!(overflow["record"], 3);
}

#[test]
fn case15_cowmigrate_to_shared_refuses_an_overflowing_record() {
    let dir = tempdir();
    let cow = build_store(&dir, "cow.img", 8, 1024, 10);
    write_area0_record(&cow, 3, OVERFLOWING_OLD_CHUNK, 5);
    let out = dir.path().join("shared.img");
    let output = tool("cowmigrate")
        .args(["-q", "-i", s(&cow), "-o", s(&out), "--to", "shared"])
        .output()
        .unwrap();
    assert_error_says(&output, 1, "cow.img", &["does not fit 64 bits"]);
    assert!(!out.exists(), "a refused migration left {}", out.display());
}

/// A persistent store of `chunks` 4 KiB chunks with every data chunk in use.
fn full_store(dir: &tempfile::TempDir, name: &str, chunks: u64) -> std::path::PathBuf {
    use cowfmt::persistent::{ExceptionRecord, StoreWriter};
    let path = dir.path().join(name);
    let device = cowfmt::Device::create_or_extend(&path, chunks * 4096).unwrap();
    let mut writer = StoreWriter::format(device, 8).unwrap();
    let mut old_chunk = 0;
    while let Ok(new_chunk) = writer.allocate() {
        let record = ExceptionRecord {
            old_chunk,
            new_chunk,
        };
        writer.commit(record).unwrap();
        old_chunk += 1;
    }
    writer.finish().unwrap();
    path
}

/// The records of a classic store, (old, new) in on-disk order.
fn records_of(path: &Path, kind: cowfmt::StoreKind) -> Vec<(u64, u64)> {
    library_dump(path, kind, false)
        .exceptions
        .iter()
        .map(|r| (r.old_chunk, r.new_chunk))
        .collect()
}

#[test]
fn case9_to_shared_leaves_free_chunks_without_size() {
    let dir = tempdir();
    let cow = full_store(&dir, "full.img", 300);
    let out = dir.path().join("shared.img");
    let output = tool("cowmigrate")
        .args(["-i", s(&cow), "-o", s(&out), "--to", "shared"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(!text.contains("no free chunk"), "{text}");
    let check = tool("cowcheck")
        .args(["--format", "json", s(&out)])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
    let json: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let free = json["summary"]["free_chunks"].as_u64().unwrap();
    let records = json["summary"]["records"].as_u64().unwrap();
    assert!(
        free >= records / 4,
        "{free} free chunks for {records} records"
    );
}

/// Migrates a full store of `chunks` 4 KiB chunks to legacy without a size,
/// requires exit 0, an output that checks clean as either kind, and the same
/// records in the same order; returns the input, the output and the records.
fn full_store_to_legacy(
    dir: &tempfile::TempDir,
    chunks: u64,
) -> (std::path::PathBuf, std::path::PathBuf, usize) {
    let cow = full_store(dir, "full.img", chunks);
    let before = records_of(&cow, cowfmt::StoreKind::Persistent);
    let out = dir.path().join("legacy.img");
    let output = tool("cowmigrate")
        .args(["-q", "-i", s(&cow), "-o", s(&out), "--to", "legacy"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    for kind in [&[][..], &["--kind", "legacy"][..]] {
        let check = tool("cowcheck").args(kind).arg(&out).output().unwrap();
        assert_eq!(check.status.code(), Some(0), "{kind:?}: {}", stdout(&check));
    }
    let after: Vec<u64> = records_of(&out, cowfmt::StoreKind::Legacy)
        .iter()
        .map(|r| r.0)
        .collect();
    let expected: Vec<u64> = before.iter().map(|r| r.0).collect();
    assert_eq!(after, expected);
    (cow, out, before.len())
}

#[test]
fn case9_to_legacy_of_a_full_store_fits_without_size() {
    let dir = tempdir();
    let (cow, out, records) = full_store_to_legacy(&dir, 600);
    assert!(records > 500, "{records}");
    assert!(std::fs::metadata(&out).unwrap().len() > std::fs::metadata(&cow).unwrap().len());
}

/// A store of `records` records over a 256 MiB sparse image, with data
/// written only in every 100th data chunk: the rest are holes.
fn sparse_store(dir: &tempfile::TempDir, records: u64) -> std::path::PathBuf {
    let cow = build_store(dir, "sparse.img", 8, 65536, records);
    for (i, record) in library_dump(&cow, cowfmt::StoreKind::Persistent, false)
        .exceptions
        .iter()
        .enumerate()
        .step_by(100)
    {
        poke(&cow, record.new_chunk * 4096, &[(i % 250 + 1) as u8; 4096]);
    }
    cow
}

/// For each record of the store at `path`, its origin chunk and the bytes of
/// its data chunk, in on-disk order.
fn copies_of(path: &Path, chunk_bytes: u64) -> Vec<(u64, Vec<u8>)> {
    let file = std::fs::File::open(path).unwrap();
    library_dump(path, cowfmt::StoreKind::Persistent, false)
        .exceptions
        .iter()
        .map(|r| {
            let mut bytes = vec![0u8; chunk_bytes as usize];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut bytes, r.new_chunk * chunk_bytes)
                .unwrap();
            (r.old_chunk, bytes)
        })
        .collect()
}

/// The most a sparse output may allocate beyond its input.
const SLACK: u64 = 256 << 10;

#[test]
fn case7_repair_of_a_sparse_store_stays_sparse_and_byte_identical() {
    let dir = tempdir();
    let cow = sparse_store(&dir, 40_000);
    let out = dir.path().join("repaired.img");
    tool("cowrepair")
        .args(["-q", "-i", s(&cow), "-o", s(&out)])
        .assert()
        .code(0);
    assert_sparse(&out, &cow, 1);
    assert_eq!(copies_of(&out, 4096), copies_of(&cow, 4096));
}

/// Runs cowmigrate quietly with `args`, expecting success.
fn cowmigrate(args: &[&str]) {
    tool("cowmigrate").arg("-q").args(args).assert().code(0);
}

/// Asserts that `output` allocates at most `factor` times what `input` does,
/// plus [`SLACK`]: its holes were not written.
fn assert_sparse(output: &Path, input: &Path, factor: u64) {
    assert!(
        allocated(output) <= allocated(input) * factor + SLACK,
        "{} allocates {} bytes for the input's {}",
        output.display(),
        allocated(output),
        allocated(input)
    );
}

#[test]
fn case7_migrations_of_a_sparse_store_stay_sparse_and_byte_identical() {
    let dir = tempdir();
    let cow = sparse_store(&dir, 40_000);
    let legacy = dir.path().join("legacy.img");
    cowmigrate(&["-i", s(&cow), "-o", s(&legacy), "--to", "legacy"]);
    assert_sparse(&legacy, &cow, 1);
    assert_eq!(copies_of(&legacy, 4096), copies_of(&cow, 4096));

    let small = dir.path().join("2k.img");
    cowmigrate(&["-i", s(&cow), "-o", s(&small), "--chunk-size", "2k"]);
    // 2 KiB chunks and areas each take a whole 4 KiB block of the file system.
    assert_sparse(&small, &cow, 4);
    let halves: Vec<(u64, Vec<u8>)> = copies_of(&cow, 4096)
        .into_iter()
        .flat_map(|(old, bytes)| {
            let (a, b) = bytes.split_at(2048);
            [(old * 2, a.to_vec()), (old * 2 + 1, b.to_vec())]
        })
        .collect();
    assert_eq!(copies_of(&small, 2048), halves);

    let shared = dir.path().join("shared.img");
    cowmigrate(&["-i", s(&cow), "-o", s(&shared), "--to", "shared"]);
    // The shared store adds its bitmap, journal and leaves; a dense copy
    // would take 160 MB.
    assert_sparse(&shared, &cow, 2);
    let back = dir.path().join("back.img");
    cowmigrate(&[
        "-i",
        s(&shared),
        "-o",
        s(&back),
        "--to",
        "persistent",
        "--snapshot",
        "0",
    ]);
    assert_sparse(&back, &cow, 1);
    let mut exported = copies_of(&back, 4096);
    let mut original = copies_of(&cow, 4096);
    exported.sort();
    original.sort();
    assert_eq!(exported, original);
}

#[test]
fn case7_in_place_repair_keeps_the_holes_of_the_input() {
    let dir = tempdir();
    let cow = sparse_store(&dir, 40_000);
    let copies = copies_of(&cow, 4096);
    let before = allocated(&cow);
    tool("cowrepair")
        .args(["-q", "-i", s(&cow), "--in-place", "--backup"])
        .arg(dir.path().join("backup.img"))
        .assert()
        .code(0);
    assert!(
        allocated(&cow) <= before + SLACK,
        "the repaired input allocates {} bytes, {before} before",
        allocated(&cow)
    );
    assert_eq!(copies_of(&cow, 4096), copies);
}

#[test]
fn case7_the_in_place_backup_keeps_holes() {
    let dir = tempdir();
    let cow = sparse_store(&dir, 40_000);
    let before = std::fs::read(&cow).unwrap();
    let backup = dir.path().join("backup.img");
    tool("cowrepair")
        .args(["-q", "-i", s(&cow), "--in-place", "--backup", s(&backup)])
        .assert()
        .code(0);
    assert_sparse(&backup, &cow, 1);
    assert!(
        std::fs::read(&backup).unwrap() == before,
        "the backup differs"
    );
}

#[test]
fn case10_a_garbage_area_gives_an_unknown_status_not_a_saturated_one() {
    let dir = tempdir();
    let cow = build_store(&dir, "cow.img", 8, 1024, 10);
    poke(&cow, 4096, &[0xff; 4096]);
    let check = tool("cowcheck").arg(s(&cow)).output().unwrap();
    let text = stdout(&check);
    assert!(!text.contains("18446744073709551615"), "{text}");
    assert!(text.contains("status unknown/8192 "), "{text}");
    let dump = tool("cowdump")
        .args(["--format", "json", s(&cow)])
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&dump.stdout).unwrap();
    assert!(
        json["usage"]["sectors_allocated"].is_null(),
        "{}",
        json["usage"]
    );
    let status = json["status"].as_str().unwrap();
    assert!(status.starts_with("unknown/8192 "), "{status}");
}

#[test]
fn case10_a_wrong_origin_is_called_out_once() {
    let dir = tempdir();
    let cow = build_store(&dir, "cow.img", 8, 4096, 1200);
    let origin = blank_image(&dir, "origin.img", 4 << 20);
    let output = tool("cowcheck")
        .args(["--origin", s(&origin), s(&cow)])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    let past: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(": old-chunk-past-origin: "))
        .collect();
    assert_eq!(past.len(), 1, "{text}");
    let rest = text
        .lines()
        .find(|l| l.contains("findings-suppressed"))
        .unwrap_or_else(|| panic!("no count in {text}"));
    assert!(
        rest.contains("... and ") && rest.contains("more old-chunk-past-origin findings"),
        "{rest}"
    );
    assert!(rest.contains("--origin"), "{rest}");
    assert!(text.lines().count() < 10, "{text}");
}

#[test]
fn case9_to_legacy_of_a_store_whose_last_area_is_full_checks_clean() {
    let dir = tempdir();
    // 516 chunks: the header, areas 0 and 1 full (256 data chunks each), and
    // the zeroed area 2 at chunk 515: full, its last data chunk just before an
    // area, as the pre-2.6.29 reload hazard needs (chunk 514 moves to 516).
    let (_, _, records) = full_store_to_legacy(&dir, 516);
    assert_eq!(records, 512);
}
