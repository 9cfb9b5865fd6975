//! CLI tests of cowrepair: exit codes, reports, refusal to overwrite, in-place
//! repair with a backup, and bad input.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::*;
use cowfmt::device::{Access, Device};
use cowfmt::persistent::check::{check, CheckOptions};
use cowfmt::StoreKind;

fn repair(args: &[&str]) -> Output {
    run_tool("cowrepair", args)
}

fn assert_checks_clean(path: &Path, kind: StoreKind) {
    let report = classic_check(path, kind);
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
    let output = repair_into(&cow, &out, &["--origin", s(&origin)]);
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
    let output = repair_into(&cow, &out, &["--format", "json"]);
    // Records were lost: the repair is done, and says so with exit 3.
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
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
    let output = repair_into(&cow, &out, &[]);
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
    let output = repair_into(&cow, &out2, &["--format", "table"]);
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
    let output = repair_into(&cow, &out, &[]);
    assert_error_says(&output, 2, s(&out), &["--force"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");

    let output = repair_into(&cow, &out, &["--force"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_checks_clean(&out, StoreKind::Persistent);
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 8 << 20);
}

#[test]
fn the_input_is_never_the_output() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let before = std::fs::read(&cow).unwrap();
    let output = repair_into(&cow, &cow, &["--force"]);
    assert_error_says(&output, 2, s(&cow), &["same file as"]);
    assert_eq!(std::fs::read(&cow).unwrap(), before);
}

#[test]
fn in_place_needs_a_backup() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let before = std::fs::read(&cow).unwrap();
    let output = repair(&["-i", s(&cow), "--in-place"]);
    assert_error_says(&output, 2, "--backup", &["--in-place"]);
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
    // Records were lost: the repair is done, and says so with exit 3.
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
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
fn nothing_to_salvage_exits_1_and_writes_nothing() {
    let dir = tempdir();
    let out = dir.path().join("out.img");
    let blank = blank_image(&dir, "blank.img", 1 << 20);
    let output = repair_into(&blank, &out, &[]);
    assert_refused_without_output(&output, 1, "blank.img", &["nothing to salvage"], &out);

    let cow = build_store(&dir, "cow.img", 8, 64, 3);
    for index in 0..3 {
        write_area0_record(&cow, index, index, 7000 + index);
    }
    let output = repair_into(&cow, &out, &[]);
    assert_error_says(&output, 1, "cow.img", &["nothing could be salvaged"]);
    assert!(stdout(&output).contains("kept 0 records, dropped 3"));
    assert!(!out.exists());
}

#[test]
fn an_invalidated_store_stays_invalid_unless_marked_valid() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "c");
    let out = dir.path().join("fixed.img");
    let output = repair_into(&cow, &out, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("known to be incomplete"), "{text}");
    assert!(text.contains("status Invalid"), "{text}");
    assert_eq!(valid_flag(&out), 0);

    let marked = dir.path().join("marked.img");
    let output = repair_into(&cow, &marked, &["--mark-valid"]);
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
    let output = repair_into(&cow, &out, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("chunk size 8 sectors (inferred)"), "{text}");
    assert!(text.contains("header repaired"), "{text}");
    assert_checks_clean(&out, StoreKind::Persistent);
    assert!(clean == snapshot_image(&origin, &out));

    let given = dir.path().join("given.img");
    let output = repair_into(&cow, &given, &["--chunk-size", "4k", "--format", "json"]);
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
    let output = repair_into(&cow, &out, &["-s", "16k"]);
    assert_refused_without_output(&output, 2, "small.img", &["--size"], &out);

    let output = repair_into(&cow, &out, &["-s", "256k"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 256 << 10);
    assert_checks_clean(&out, StoreKind::Persistent);
}

#[test]
fn legacy_output_moves_the_chunk_before_a_metadata_area() {
    let dir = tempdir();
    let cow = build_store(&dir, "cow.img", 8, 600, 256);
    let out = dir.path().join("legacy.img");
    let output = repair_into(&cow, &out, &["--kind", "legacy"]);
    assert_success_says(&output, &["moved data chunk 257 to 259"]);
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

/// A shared store (512-byte chunks, 4000 of them, 4 journal chunks) for an
/// origin of 600 chunks, with snapshots 0 and 1 and every origin chunk copied
/// out at least once, committed by the engine: about 900 records in some 60
/// leaves. Returns the COW path, the origin path and the leaves (chunk and
/// records) in key order.
fn build_shared(
    dir: &tempfile::TempDir,
) -> (std::path::PathBuf, std::path::PathBuf, Vec<(u64, u64)>) {
    let path = dir.path().join("shared.img");
    let origin_path = dir.path().join("shared-origin.img");
    shared_copied_twice(&path, 4000, &origin_path, 600);
    let leaves = shared_leaves(&path);
    (path, origin_path, leaves)
}

fn zero_shared_chunk(path: &Path, chunk: u64) {
    poke(path, chunk * 512, &[0u8; 512]);
}

fn assert_shared_checks_clean(path: &Path) {
    use cowfmt::shared::check::{check, CheckOptions};
    let device = Device::open(path, Access::ReadOnly).unwrap();
    let report = check(&device, &CheckOptions::default()).unwrap();
    assert!(report.is_clean(), "{:#?}", report.findings);
}

#[test]
fn a_shared_store_with_a_zeroed_leaf_says_what_was_lost() {
    let dir = tempdir();
    let (cow, origin, leaves) = build_shared(&dir);
    let (leaf, lost) = leaves[leaves.len() / 2];
    zero_shared_chunk(&cow, leaf);
    let before = std::fs::read(&cow).unwrap();
    let out = dir.path().join("fixed.img");
    let output = repair_into(&cow, &out, &["--origin", s(&origin)]);
    // Records were lost: the repair is done, and says so with exit 3.
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert_eq!(
        std::fs::read(&cow).unwrap(),
        before,
        "the input is only read"
    );
    let text = stdout(&output);
    let name = s(&cow);
    assert!(
        text.contains(&format!("{name}: lost: origin chunks ")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "(leaf at chunk {leaf}): leaf: leaf magic is 0x0000"
        )),
        "{text}"
    );
    assert!(
        text.contains("no leaf found in it: its records are lost"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "records in unreadable ranges: unknown, at most {lost}"
        )),
        "{text}"
    );
    assert!(
        text.contains(
            "chunk size 1 sectors (header), journal 4 chunks (header), snapshots 0-1 (header)"
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!("{name}: snapshot 0: kept ")),
        "{text}"
    );
    assert!(
        text.contains("(and an unknown number in unreadable ranges)"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{}: table: 0 600 snapshot {} shared 3 {} 1 1",
            s(&out),
            s(&origin),
            s(&out)
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}: written: shared store, valid", s(&out))),
        "{text}"
    );
    assert_shared_checks_clean(&out);
    assert_eq!(
        std::fs::metadata(&out).unwrap().len(),
        std::fs::metadata(&cow).unwrap().len()
    );
}

#[test]
fn a_shared_report_in_json_counts_per_snapshot() {
    let dir = tempdir();
    let (cow, _, leaves) = build_shared(&dir);
    let total: u64 = leaves.iter().map(|l| l.1).sum();
    let (leaf, lost) = leaves[3];
    zero_shared_chunk(&cow, leaf);
    let out = dir.path().join("fixed.img");
    let output = repair_into(&cow, &out, &["--format", "json"]);
    // Records were lost: the repair is done, and says so with exit 3.
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["kind"], "shared");
    assert_eq!(json["kept"], total - lost);
    assert_eq!(json["dropped_total"], 0);
    assert_eq!(json["records_unknown"], true);
    assert_eq!(json["unknown_records_at_most"], lost);
    assert_eq!(json["snapmask"], 3);
    assert_eq!(json["snapmask_source"], "header");
    assert_eq!(json["output"], s(&out));
    let ranges = json["lost_ranges"].as_array().unwrap();
    assert_eq!(ranges.len(), 1);
    assert_eq!(ranges[0]["block"], leaf);
    assert_eq!(ranges[0]["level"], 0);
    let per = json["per_snapshot"].as_array().unwrap();
    assert_eq!(per.len(), 2);
    let kept: u64 = per.iter().map(|t| t["kept"].as_u64().unwrap()).sum();
    assert!(kept >= total - lost);
    assert!(per
        .iter()
        .all(|t| t["lost_unknown"] == true && t["lost"] == 0));
    assert_shared_checks_clean(&out);
}

#[test]
fn a_shared_store_is_never_written_in_place_without_a_backup() {
    let dir = tempdir();
    let (cow, _, leaves) = build_shared(&dir);
    zero_shared_chunk(&cow, leaves[1].0);
    let before = std::fs::read(&cow).unwrap();
    let output = repair_into(&cow, &cow, &["--force"]);
    assert_error_says(&output, 2, s(&cow), &["same file as"]);
    let output = repair(&["-i", s(&cow), "--in-place"]);
    assert_one_line_error(&output, 2, "--backup");
    assert_eq!(std::fs::read(&cow).unwrap(), before);

    let backup = dir.path().join("shared.bak");
    let output = repair(&["-i", s(&cow), "--in-place", "--backup", s(&backup)]);
    // Records were lost: the repair is done, and says so with exit 3.
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert_eq!(std::fs::read(&backup).unwrap(), before);
    assert_shared_checks_clean(&cow);
    assert!(
        stdout(&output).contains("verified backup"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_shared_store_with_a_wiped_header_is_recognised_and_rebuilt() {
    let dir = tempdir();
    let (cow, _, leaves) = build_shared(&dir);
    let total: u64 = leaves.iter().map(|l| l.1).sum();
    zero_shared_chunk(&cow, 0);
    let out = dir.path().join("fixed.img");
    let output = repair_into(&cow, &out, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("repaired as one"), "{text}");
    assert!(
        text.contains("chunk size 1 sectors (inferred), journal 4 chunks (inferred), snapshots 0-1 (inferred)"),
        "{text}"
    );
    assert!(text.contains(&format!("kept {total} records")), "{text}");
    assert!(text.contains("header repaired: magic is 0"), "{text}");
    assert_shared_checks_clean(&out);

    let given = dir.path().join("given.img");
    let json = json_report(
        "cowrepair",
        &cow,
        &given,
        &[
            "--kind",
            "shared",
            "--snapshots",
            "0-1,5",
            "--chunk-size",
            "512",
            "--journal-chunks",
            "4",
        ],
    );
    assert_eq!(json["snapmask"], 0b100011);
    assert_eq!(json["snapmask_source"], "option");
    assert_eq!(json["chunk_size_source"], "option");
    assert_eq!(json["journal_source"], "option");
    assert_eq!(json["kept"], total);
    assert_shared_checks_clean(&given);
}

#[test]
fn a_shared_dry_run_writes_nothing_and_sizes_must_fit() {
    let dir = tempdir();
    let (cow, _, leaves) = build_shared(&dir);
    zero_shared_chunk(&cow, leaves[2].0);
    let output = repair(&["-i", s(&cow), "--dry-run", "--format", "table"]);
    // Records were lost: the repair is done, and says so with exit 3.
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("nothing written (dry run)"), "{text}");
    assert!(text.contains("lost in unreadable ranges"), "{text}");

    let out = dir.path().join("small.img");
    let output = repair_into(&cow, &out, &["-s", "64k"]);
    assert_refused_without_output(&output, 2, "small.img", &["--size"], &out);
}

#[test]
fn kind_and_shared_flags_must_match_the_store() {
    let dir = tempdir();
    let (cow, _, _) = build_shared(&dir);
    let out = dir.path().join("x.img");
    let output = repair_into(&cow, &out, &["--kind", "persistent"]);
    assert_error_says(&output, 2, s(&cow), &["shared store"]);
    let output = repair_into(&cow, &out, &["--kernel-areas-only"]);
    assert_one_line_error(&output, 2, "--kernel-areas-only");

    let persistent = build_store(&dir, "cow.img", 8, 64, 10);
    let output = repair_into(&persistent, &out, &["--snapshots", "0"]);
    assert_error_says(&output, 2, "--snapshots", &["shared stores only"]);
    let output = repair(&["-i", s(&cow), "--dry-run", "--snapshots", "64"]);
    assert_eq!(output.status.code(), Some(2));
    for (flag, value, expected) in [
        ("--snapshots", "1,0-2", "names snapshot 1 again"),
        ("--snapmask", "0", "names no snapshot"),
        ("--snapmask", "0xzz", "is not a snapmask"),
    ] {
        let output = repair(&["-i", s(&cow), "--dry-run", flag, value]);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}");
        assert!(stderr(&output).contains(expected), "{}", stderr(&output));
    }
    assert!(!out.exists());
}

#[test]
fn the_origin_is_never_the_output_nor_the_backup() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let origin = golden_origin(&dir, "a");
    let before = std::fs::read(&origin).unwrap();
    let cases = [
        vec![
            "-i",
            s(&cow),
            "-o",
            s(&origin),
            "--origin",
            s(&origin),
            "-f",
        ],
        vec![
            "-i",
            s(&cow),
            "--in-place",
            "--backup",
            s(&origin),
            "--origin",
            s(&origin),
            "-f",
        ],
    ];
    for args in cases {
        let output = tool("cowrepair").args(&args).output().unwrap();
        assert_origin_untouched(&output, &origin, &before);
    }
}

#[test]
fn a_refusal_without_dry_run_does_not_claim_a_dry_run() {
    let dir = tempdir();
    let path = blank_image(&dir, "lost.img", 1 << 20);
    write_header(&path, 0x7041_6e53, 1, 1, 8);
    write_area0_record(&path, 0, 5, 99_999);
    let out = dir.path().join("out.img");
    let output = tool("cowrepair")
        .args(["-i", s(&path), "-o", s(&out)])
        .output()
        .unwrap();
    assert_error_says(&output, 1, "lost.img", &["nothing could be salvaged"]);
    assert!(!stdout(&output).contains("dry run"), "{}", stdout(&output));
    assert!(!out.exists());
}

#[test]
fn an_overlapping_mask_is_reported_in_the_text_report() {
    let dir = tempdir();
    let (cow, _, leaves) = build_shared(&dir);
    // The leftmost leaf starts with origin chunk 0, which has the records of
    // snapshot 1 (newest, first) and snapshot 0; widen the first to both.
    let leaf = leaves[0].0 * 512;
    let bytes = std::fs::read(&cow).unwrap();
    let at = u32::from_le_bytes(bytes[leaf as usize + 24..][..4].try_into().unwrap());
    poke(&cow, leaf + u64::from(at), &3u64.to_le_bytes());
    let out = dir.path().join("fixed.img");
    let output = repair_into(&cow, &out, &[]);
    // Records were lost: the repair is done, and says so with exit 3.
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains(
            "1 kept record lost snapshot bits another record of the same origin chunk also had"
        ),
        "{text}"
    );
    assert!(text.contains("1 mask-overlap"), "{text}");
}
