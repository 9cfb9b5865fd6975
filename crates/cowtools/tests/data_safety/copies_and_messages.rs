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
    let text = assert_one_line_error(&output, 1, "cow.img");
    assert!(text.contains("does not fit 64 bits"), "{text}");
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

#[test]
fn case9_to_legacy_of_a_full_store_fits_without_size() {
    let dir = tempdir();
    let cow = full_store(&dir, "full.img", 600);
    let before = records_of(&cow, cowfmt::StoreKind::Persistent);
    assert!(before.len() > 500, "{}", before.len());
    let out = dir.path().join("legacy.img");
    let output = tool("cowmigrate")
        .args(["-q", "-i", s(&cow), "-o", s(&out), "--to", "legacy"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    tool("cowcheck")
        .args(["--kind", "legacy", s(&out)])
        .assert()
        .code(0);
    let after: Vec<u64> = records_of(&out, cowfmt::StoreKind::Legacy)
        .iter()
        .map(|r| r.0)
        .collect();
    let expected: Vec<u64> = before.iter().map(|r| r.0).collect();
    assert_eq!(after, expected);
    assert!(std::fs::metadata(&out).unwrap().len() > std::fs::metadata(&cow).unwrap().len());
}
