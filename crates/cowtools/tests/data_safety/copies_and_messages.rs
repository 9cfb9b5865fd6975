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
