//! CLI tests of cowrepair: exit codes, reports, refusal to overwrite, in-place
//! repair with a backup, and bad input.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::Output;

use common::*;
use cowfmt::device::{Access, Device};
use cowfmt::persistent::check::{check, CheckOptions};
use cowfmt::StoreKind;

fn repair(args: &[&str]) -> Output {
    let output = tool("cowrepair").args(args).output().unwrap();
    assert_no_panic(&output);
    output
}

fn assert_checks_clean(path: &Path, kind: StoreKind) {
    let device = Device::open(path, Access::ReadOnly).unwrap();
    let options = CheckOptions {
        kind,
        ..CheckOptions::default()
    };
    let report = check(&device, &options).unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
}

fn valid_flag(path: &Path) -> u32 {
    let bytes = std::fs::read(path).unwrap();
    u32::from_le_bytes(bytes[4..8].try_into().unwrap())
}

#[test]
fn a_clean_golden_store_keeps_all_53_records() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let origin = golden_origin(&dir, "a");
    let out = dir.path().join("fixed.img");
    let output = repair(&["-i", s(&cow), "-o", s(&out), "--origin", s(&origin)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("kept 53 records, dropped 0"), "{text}");
    assert!(
        text.contains(&format!(
            "table: 0 32768 snapshot {} {} P 8",
            s(&origin),
            s(&out)
        )),
        "{text}"
    );
    assert_checks_clean(&out, StoreKind::Persistent);
    assert_eq!(
        std::fs::metadata(&out).unwrap().len(),
        std::fs::metadata(&cow).unwrap().len()
    );
    assert!(snapshot_image(&origin, &cow) == snapshot_image(&origin, &out));
}

#[test]
fn dropped_records_are_reported_in_json_and_the_input_is_never_written() {
    let dir = tempdir();
    let cow = build_store(&dir, "cow.img", 8, 64, 10);
    write_area0_record(&cow, 3, 5, 9999);
    write_area0_record(&cow, 4, 6, 2);
    let before = std::fs::read(&cow).unwrap();
    let out = dir.path().join("fixed.img");
    let output = repair(&["-i", s(&cow), "-o", s(&out), "--format", "json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(std::fs::read(&cow).unwrap(), before);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["kept"], 8);
    assert_eq!(json["dropped_total"], 2);
    assert_eq!(json["chunk_size"], 8);
    assert_eq!(json["chunk_size_source"], "header");
    assert_eq!(json["output_valid"], true);
    let dropped = json["dropped"].as_array().unwrap();
    assert_eq!(dropped.len(), 2);
    assert_eq!(dropped[0]["area"], 0);
    assert_eq!(dropped[0]["index"], 3);
    assert_eq!(dropped[0]["old_chunk"], 5);
    assert_eq!(dropped[0]["new_chunk"], 9999);
    assert_eq!(dropped[0]["reason"], "new-chunk-past-end");
    assert!(dropped[0]["message"]
        .as_str()
        .unwrap()
        .contains("past the end"));
    assert_eq!(dropped[1]["reason"], "new-chunk-duplicate");
    assert_checks_clean(&out, StoreKind::Persistent);
}

#[test]
fn text_and_table_reports_name_each_dropped_record() {
    let dir = tempdir();
    let cow = build_store(&dir, "cow.img", 8, 64, 10);
    write_area0_record(&cow, 3, 5, 9999);
    let out = dir.path().join("fixed.img");
    let output = repair(&["-i", s(&cow), "-o", s(&out)]);
    let text = stdout(&output);
    assert!(
        text.contains(&format!(
            "{}: dropped: new-chunk-past-end: area 0 (chunk 1) record 3: new_chunk 9999",
            s(&cow)
        )),
        "{text}"
    );
    assert!(text.contains("kept 9 records, dropped 1"), "{text}");
    let out2 = dir.path().join("fixed2.img");
    let output = repair(&["-i", s(&cow), "-o", s(&out2), "--format", "table"]);
    let text = stdout(&output);
    assert!(
        text.contains("new-chunk-past-end") && text.contains("9999") && text.contains("old_chunk"),
        "{text}"
    );
}

#[test]
fn an_existing_output_is_refused_without_force() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let out = dir.path().join("taken.img");
    std::fs::write(&out, b"precious").unwrap();
    let output = repair(&["-i", s(&cow), "-o", s(&out)]);
    let text = assert_one_line_error(&output, 2, s(&out));
    assert!(text.contains("--force"), "{text}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");

    let output = repair(&["-i", s(&cow), "-o", s(&out), "--force"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_checks_clean(&out, StoreKind::Persistent);
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 8 << 20);
}

#[test]
fn the_input_is_never_the_output() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let before = std::fs::read(&cow).unwrap();
    let output = repair(&["-i", s(&cow), "-o", s(&cow), "--force"]);
    let text = assert_one_line_error(&output, 2, s(&cow));
    assert!(text.contains("same file as the input"), "{text}");
    assert_eq!(std::fs::read(&cow).unwrap(), before);
}

#[test]
fn in_place_needs_a_backup() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let before = std::fs::read(&cow).unwrap();
    let output = repair(&["-i", s(&cow), "--in-place"]);
    let text = assert_one_line_error(&output, 2, "--backup");
    assert!(text.contains("--in-place"), "{text}");
    assert_eq!(std::fs::read(&cow).unwrap(), before);
}

#[test]
fn in_place_backs_up_verifies_and_rebuilds() {
    let dir = tempdir();
    let cow = build_store(&dir, "cow.img", 8, 64, 10);
    write_area0_record(&cow, 3, 5, 9999);
    let before = std::fs::read(&cow).unwrap();
    let backup = dir.path().join("cow.bak");
    let output = repair(&["-i", s(&cow), "--in-place", "--backup", s(&backup)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(std::fs::read(&backup).unwrap(), before);
    assert_checks_clean(&cow, StoreKind::Persistent);
    assert_eq!(
        library_dump(&cow, StoreKind::Persistent, false)
            .exceptions
            .len(),
        9
    );
    assert!(stdout(&output).contains("kept 9 records, dropped 1"));

    std::fs::write(&cow, &before).unwrap();
    let output = repair(&["-i", s(&cow), "--in-place", "--backup", s(&backup)]);
    assert_one_line_error(&output, 2, s(&backup));
    assert_eq!(
        std::fs::read(&cow).unwrap(),
        before,
        "a refused backup leaves the input alone"
    );
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = tempdir();
    let out = dir.path().join("out.img");
    let missing = dir.path().join("missing.img");
    assert_one_line_error(
        &repair(&["-i", s(&missing), "-o", s(&out)]),
        2,
        "missing.img",
    );
    assert_one_line_error(
        &repair(&["-i", s(dir.path()), "-o", s(&out)]),
        2,
        s(dir.path()),
    );
    let empty = dir.path().join("empty.img");
    File::create(&empty).unwrap();
    assert_one_line_error(&repair(&["-i", s(&empty), "-o", s(&out)]), 2, "empty.img");
    assert!(!out.exists());
}

#[test]
fn nothing_to_salvage_exits_1_and_writes_nothing() {
    let dir = tempdir();
    let out = dir.path().join("out.img");
    let blank = blank_image(&dir, "blank.img", 1 << 20);
    let output = repair(&["-i", s(&blank), "-o", s(&out)]);
    let text = assert_one_line_error(&output, 1, "blank.img");
    assert!(text.contains("nothing to salvage"), "{text}");
    assert!(!out.exists());

    let cow = build_store(&dir, "cow.img", 8, 64, 3);
    for index in 0..3 {
        write_area0_record(&cow, index, index, 7000 + index);
    }
    let output = repair(&["-i", s(&cow), "-o", s(&out)]);
    let text = assert_one_line_error(&output, 1, "cow.img");
    assert!(text.contains("nothing could be salvaged"), "{text}");
    assert!(stdout(&output).contains("kept 0 records, dropped 3"));
    assert!(!out.exists());
}

#[test]
fn an_invalidated_store_stays_invalid_unless_marked_valid() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "c");
    let out = dir.path().join("fixed.img");
    let output = repair(&["-i", s(&cow), "-o", s(&out)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("known to be incomplete"), "{text}");
    assert!(text.contains("status Invalid"), "{text}");
    assert_eq!(valid_flag(&out), 0);

    let marked = dir.path().join("marked.img");
    let output = repair(&["-i", s(&cow), "-o", s(&marked), "--mark-valid"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(valid_flag(&marked), 1);
    assert_checks_clean(&marked, StoreKind::Persistent);
}

#[test]
fn a_wiped_header_is_inferred_and_said() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let origin = golden_origin(&dir, "a");
    let clean = snapshot_image(&origin, &cow);
    write_header(&cow, 0, 0, 0, 0);
    let out = dir.path().join("fixed.img");
    let output = repair(&["-i", s(&cow), "-o", s(&out)]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("chunk size 8 sectors (inferred)"), "{text}");
    assert!(text.contains("header repaired"), "{text}");
    assert_checks_clean(&out, StoreKind::Persistent);
    assert!(clean == snapshot_image(&origin, &out));

    let given = dir.path().join("given.img");
    let output = repair(&[
        "-i",
        s(&cow),
        "-o",
        s(&given),
        "--chunk-size",
        "4k",
        "--format",
        "json",
    ]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["chunk_size_source"], "option");
    assert_eq!(json["kept"], 53);
}

#[test]
fn dry_run_writes_nothing_and_size_must_fit() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let output = repair(&["-i", s(&cow), "--dry-run"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).contains("nothing written (dry run)"));

    let out = dir.path().join("small.img");
    let output = repair(&["-i", s(&cow), "-o", s(&out), "-s", "16k"]);
    let text = assert_one_line_error(&output, 2, "small.img");
    assert!(text.contains("--size"), "{text}");
    assert!(!out.exists());

    let output = repair(&["-i", s(&cow), "-o", s(&out), "-s", "256k"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 256 << 10);
    assert_checks_clean(&out, StoreKind::Persistent);
}

#[test]
fn legacy_output_moves_the_chunk_before_a_metadata_area() {
    let dir = tempdir();
    let cow = build_store(&dir, "cow.img", 8, 600, 256);
    let out = dir.path().join("legacy.img");
    let output = repair(&["-i", s(&cow), "-o", s(&out), "--kind", "legacy"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("moved data chunk 257 to 259"),
        "{}",
        stdout(&output)
    );
    let device = Device::open(&out, Access::ReadOnly).unwrap();
    let options = CheckOptions {
        kind: StoreKind::Legacy,
        ..CheckOptions::default()
    };
    assert!(!check(&device, &options).unwrap().has_errors());

    let output = repair(&[
        "-i",
        s(&cow),
        "-o",
        s(&dir.path().join("x.img")),
        "--kind",
        "shared",
    ]);
    assert_eq!(output.status.code(), Some(2));
}
