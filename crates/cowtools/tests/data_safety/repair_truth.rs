//! Data-safety cases: repair_truth. A repair never widens what an intact
//! header says, never guesses a chunk size the data does not confirm, and never
//! loses records quietly (cases 4, 5, 13 and 14 of issue 8).

use std::path::{Path, PathBuf};
use std::process::Output;

use cowfmt::device::Device;
use cowfmt::kind::PERSISTENT_MAGIC;
use tempfile::TempDir;

use crate::common::*;

/// cowrepair's exit code for a repair that lost records.
const LOSSY: i32 = 3;

fn repair(args: &[&str]) -> Output {
    tool("cowrepair").args(args).output().unwrap()
}

/// Repairs `input` into `output` with a JSON report and `extra` arguments,
/// requires exit `code`, and returns the report.
fn repair_report(input: &Path, output: &Path, extra: &[&str], code: i32) -> serde_json::Value {
    let mut args = vec!["-i", s(input), "-o", s(output), "--format", "json"];
    args.extend_from_slice(extra);
    let run = repair(&args);
    assert_eq!(run.status.code(), Some(code), "{}", stderr(&run));
    json(&run)
}

fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "JSON report expected ({e}): {}\n{}",
            stdout(output),
            stderr(output)
        )
    })
}

/// The 32-bit field at `offset` of the header of the image at `path`.
fn header_field(path: &Path, offset: usize) -> u32 {
    let bytes = std::fs::read(path).unwrap();
    u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap())
}

/// The leaf chunks of the shared store at `path`, in key order.
fn leaf_chunks(path: &Path) -> Vec<u64> {
    shared_leaves(path)
        .into_iter()
        .map(|(chunk, _)| chunk)
        .collect()
}

/// A shared store of 512-byte chunks with `snapshots` snapshots, each taken
/// before 40 more origin chunks are written, committed by the engine. Its
/// origin is beside it (`shared.origin`).
fn build_shared(dir: &TempDir, snapshots: u32) -> PathBuf {
    let path = dir.path().join("shared.img");
    let origin = Device::create_or_extend(path.with_extension("origin"), 1000 * 512).unwrap();
    let mut store = engine_create(&path, 8000 * 512, origin, 1, 4);
    for s in 0..u64::from(snapshots) {
        store.create_snapshot(None).unwrap();
        for chunk in (s * 23)..(s * 23 + 40) {
            store.origin_write(chunk * 512, &[s as u8; 512]).unwrap();
        }
    }
    store.commit().unwrap();
    path
}

#[test]
fn case_4_an_intact_header_snapmask_wins_over_damaged_records() {
    let dir = tempdir();
    let cow = build_shared(&dir, 16);
    assert_eq!(header_field(&cow, 24), 0xffff, "16 snapshots");
    let leaves = leaf_chunks(&cow);
    assert!(leaves.len() >= 4, "{leaves:?}");
    for &leaf in &leaves[1..3] {
        // The last record of a leaf fills the end of its chunk: its share mask
        // is the first 8 of its 16 bytes.
        poke(&cow, (leaf + 1) * 512 - 16, &[0xff; 8]);
    }
    let out = dir.path().join("fixed.img");
    let report = repair_report(&cow, &out, &[], LOSSY);
    let snapshots: Vec<u64> = report["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_u64().unwrap())
        .collect();
    assert_eq!(snapshots, (0..16).collect::<Vec<u64>>(), "{report:#}");
    assert_eq!(report["snapmask"], 0xffff);
    assert_eq!(report["snapmask_source"], "header");
    assert_eq!(report["bits_outside_snapmask"], !0xffffu64);
    assert_eq!(
        report["dropped_by_reason"][0]["reason"],
        "mask-outside-snapmask"
    );
    assert_eq!(report["dropped_by_reason"][0]["count"], 2);
    assert!(
        report["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("snapshots 16-63 outside")),
        "{report:#}"
    );
    assert_eq!(header_field(&out, 24), 0xffff, "the output's snapmask");
    assert_eq!(header_field(&out, 28), 0, "the snapmask's high half");
    let check = tool("cowcheck")
        .args(["--kind", "shared", s(&out)])
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
}

#[test]
fn case_5_a_lost_shared_leaf_is_a_loud_loss() {
    let dir = tempdir();
    let cow = build_shared(&dir, 2);
    let leaves = leaf_chunks(&cow);
    let leaf = leaves[leaves.len() / 2];
    poke(&cow, leaf * 512, &[0u8; 512]);
    let out = dir.path().join("fixed.img");
    let report = repair_report(&cow, &out, &[], LOSSY);
    assert_eq!(report["records_lost"], true);
    assert_eq!(report["dropped_total"], 0);
    let unknown = report["read_through_unknown"].as_array().unwrap();
    assert_eq!(unknown.len(), 1, "{report:#}");
    let lost = &report["lost_ranges"][0]["range"];
    assert_eq!(&unknown[0], lost, "{report:#}");
    assert!(lost["lo"].as_u64().unwrap() < lost["hi"].as_u64().unwrap());
    assert_eq!(report["output_valid"], true);
    assert_eq!(header_field(&out, 4), 1);

    let text_out = dir.path().join("fixed-text.img");
    let output = repair_into(&cow, &text_out, &[]);
    assert_eq!(output.status.code(), Some(LOSSY));
    let text = stdout(&output);
    assert!(
        text.contains(&format!(
            "{}: lost: every snapshot may read the origin now at origin chunks {}..{}",
            s(&cow),
            lost["lo"],
            lost["hi"]
        )),
        "{text}"
    );

    let invalid = dir.path().join("invalid.img");
    let report = repair_report(&cow, &invalid, &["--invalidate-on-loss"], LOSSY);
    assert_eq!(report["output_valid"], false);
    assert_eq!(header_field(&invalid, 4), 0, "valid=0 in the header");
}

#[test]
fn case_5_dropped_shared_records_name_each_snapshots_lost_ranges() {
    let dir = tempdir();
    let cow = build_shared(&dir, 2);
    let out = dir.path().join("fixed.img");
    // An origin of 30 chunks: every record past it is dropped.
    let report = repair_report(&cow, &out, &["--origin-size", "15360"], LOSSY);
    assert!(report["dropped_total"].as_u64().unwrap() > 0);
    let first = &report["per_snapshot"][0];
    assert_eq!(first["id"], 0);
    // Snapshot 0 saw origin chunks 0..63 copied, snapshot 1 chunks 23..63.
    assert_eq!(
        first["read_through"],
        serde_json::json!([{"lo": 30, "hi": 63}]),
        "{report:#}"
    );
    assert_eq!(first["lost"], 33);
    assert_eq!(first["read_through_complete"], true);
    let second = &report["per_snapshot"][1];
    assert_eq!(
        second["read_through"],
        serde_json::json!([{"lo": 30, "hi": 63}])
    );
    assert_eq!(second["lost"], 33);
}

#[test]
fn a_lossless_repair_still_exits_0() {
    let dir = tempdir();
    let cow = build_store(&dir, "cow.img", 8, 2048, 600);
    let out = dir.path().join("fixed.img");
    let output = repair_into(&cow, &out, &["--invalidate-on-loss"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(header_field(&out, 4), 1);
    let shared = build_shared(&dir, 2);
    let out = dir.path().join("fixed-shared.img");
    let report = repair_report(&shared, &out, &[], 0);
    assert_eq!(report["records_lost"], false);
}

#[test]
fn case_5_persistent_losses_exit_3_and_name_the_origin_ranges() {
    let dir = tempdir();
    let cow = build_store(&dir, "cow.img", 8, 2048, 600);
    // Record 5 of area 0 now maps origin chunk 777 to record 4's data chunk:
    // dropped, and origin chunk 777 reads through to the origin.
    write_area0_record(&cow, 5, 777, 6);
    let out = dir.path().join("fixed.img");
    let report = repair_report(&cow, &out, &[], LOSSY);
    assert_eq!(report["records_lost"], true);
    assert_eq!(report["dropped_total"], 1);
    assert_eq!(
        report["read_through"],
        serde_json::json!([{"lo": 777, "hi": 778}])
    );
    assert_eq!(report["read_through_complete"], true);
    assert_eq!(report["read_through_unknown"], false);
    assert_eq!(report["output_valid"], true);

    let dry = repair(&["-i", s(&cow), "--dry-run"]);
    assert_eq!(dry.status.code(), Some(LOSSY), "{}", stderr(&dry));
    assert!(
        stdout(&dry).contains(&format!(
            "{}: lost: the snapshot reads the origin now at origin chunks 777..778",
            s(&cow)
        )),
        "{}",
        stdout(&dry)
    );

    let invalid = dir.path().join("invalid.img");
    let output = repair_into(&cow, &invalid, &["--invalidate-on-loss"]);
    assert_eq!(output.status.code(), Some(LOSSY), "{}", stderr(&output));
    assert_eq!(header_field(&invalid, 4), 0, "valid=0 in the header");
    assert!(
        stdout(&output).contains(&format!(
            "{}: written: persistent store, invalid",
            s(&invalid)
        )),
        "{}",
        stdout(&output)
    );
}

#[test]
fn case_5_a_zeroed_persistent_area_is_a_loss_of_unknown_records() {
    let dir = tempdir();
    let cow = build_store(&dir, "cow.img", 8, 2048, 600);
    // Area 1 (chunk 258) zeroed: the kernel stops there; area 2 is recovered.
    poke(&cow, 258 * 4096, &[0u8; 4096]);
    let out = dir.path().join("fixed.img");
    let report = repair_report(&cow, &out, &[], LOSSY);
    assert_eq!(report["kept"], 600 - 256);
    assert_eq!(report["dropped_total"], 0);
    assert_eq!(report["missing_records"], 256);
    assert_eq!(report["read_through_unknown"], true);
}

/// A 600-record store of 4 KiB chunks whose header is wiped, whose area 0 is
/// zeroed, and whose header chunk holds 31 records that read as area 0 of a
/// store of 1-sector chunks.
fn record_like_header_chunk(dir: &TempDir) -> PathBuf {
    let cow = build_store(dir, "cow.img", 8, 2048, 600);
    let area0 = std::fs::read(&cow).unwrap()[4096..4096 + 31 * 16].to_vec();
    write_header(&cow, 0, 0, 0, 0);
    poke(&cow, 512, &area0);
    poke(&cow, 4096, &[0u8; 4096]);
    cow
}

#[test]
fn case_13_two_plausible_chunk_sizes_stop_the_repair() {
    let dir = tempdir();
    let cow = record_like_header_chunk(&dir);
    let out = dir.path().join("fixed.img");
    let output = repair_into(&cow, &out, &[]);
    let text = assert_error_says(&output, 1, s(&cow), &["--chunk-size"]);
    assert!(
        text.contains("1 sectors (31 records in 1 of the first 4 areas"),
        "{text}"
    );
    assert!(
        text.contains("8 sectors (344 records in 2 of the first 4 areas"),
        "{text}"
    );
    assert!(!out.exists(), "nothing is written");

    let report = repair_report(&cow, &out, &["--chunk-size", "4k"], LOSSY);
    assert_eq!(report["kept"], 344);
    let expected = library_dump(
        &build_store(&dir, "intact.img", 8, 2048, 600),
        cowfmt::StoreKind::Persistent,
        false,
    );
    let repaired = library_dump(&out, cowfmt::StoreKind::Persistent, false);
    let olds = |d: &cowfmt::persistent::dump::PersistentDump| -> Vec<u64> {
        d.exceptions.iter().map(|e| e.old_chunk).collect()
    };
    assert_eq!(olds(&repaired), olds(&expected)[256..].to_vec());
}

#[test]
fn an_inferred_chunk_size_is_reported_with_its_evidence() {
    let dir = tempdir();
    let cow = build_store(&dir, "cow.img", 8, 2048, 600);
    write_header(&cow, 0, 0, 0, 0);
    let out = dir.path().join("fixed.img");
    let report = repair_report(&cow, &out, &[], 0);
    assert_eq!(report["chunk_size"], 8);
    assert_eq!(report["chunk_size_source"], "inferred");
    assert_eq!(report["kept"], 600);
    assert_eq!(report["chunk_size_evidence"][0]["credible_records"], 600);
    assert!(
        report["notes"].as_array().unwrap().iter().any(|n| n
            .as_str()
            .unwrap()
            .contains("inferred as 8 sectors: 600 records in 3 of the first 4 areas land on the data chunks after their area, with no collision; no other chunk size reads a credible record")),
        "{report:#}"
    );
}

#[test]
fn case_14_a_header_chunk_size_that_reads_nothing_is_caught() {
    for wrong in [1u32, 2, 4] {
        let dir = tempdir();
        let cow = build_store(&dir, "cow.img", 8, 2048, 600);
        write_header(&cow, PERSISTENT_MAGIC, 1, 1, wrong);

        let check = tool("cowcheck")
            .args(["--format", "json", s(&cow)])
            .output()
            .unwrap();
        assert_eq!(
            check.status.code(),
            Some(1),
            "chunk size {wrong}: {}",
            stdout(&check)
        );
        let findings = json(&check)["findings"].clone();
        let finding = findings
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["code"] == "chunk-size-reads-nothing")
            .unwrap_or_else(|| panic!("chunk size {wrong}: {findings:#}"));
        assert_eq!(finding["severity"], "error");
        let message = finding["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("chunk size {wrong} sectors leaves the areas empty, but under 8 sectors 600 records")),
            "{message}"
        );

        let out = dir.path().join("fixed.img");
        let output = repair_into(&cow, &out, &[]);
        assert_error_says(&output, 1, s(&cow), &["--chunk-size 8s"]);
        assert!(!out.exists(), "no empty store is written");

        let report = repair_report(&cow, &out, &["--chunk-size", "8s"], 0);
        assert_eq!(report["kept"], 600);
    }
}

#[test]
fn a_sound_empty_store_checks_clean_and_repairs_to_an_empty_store() {
    let dir = tempdir();
    let cow = build_store(&dir, "cow.img", 8, 2048, 0);
    let check = tool("cowcheck").arg(s(&cow)).output().unwrap();
    assert_eq!(check.status.code(), Some(0), "{}", stdout(&check));
    let out = dir.path().join("fixed.img");
    let output = repair_into(&cow, &out, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[test]
fn garbage_records_are_lost_at_unknown_origin_chunks_not_at_their_old_chunks() {
    let dir = tempdir();
    let cow = build_store(&dir, "cow.img", 8, 2048, 600);
    // Area 1 is chunk 258: 64 bytes of 0xff over its records 10..13, and a
    // partial overwrite of record 20's new_chunk (its old_chunk left intact).
    let area1 = 258 * 4096;
    poke(&cow, area1 + 160, &[0xff; 64]);
    poke(&cow, area1 + 20 * 16 + 8, &[0xff; 8]);
    let out = dir.path().join("fixed.img");
    let report = repair_report(&cow, &out, &[], LOSSY);
    assert_eq!(report["dropped_total"], 5, "{report:#}");
    assert_eq!(report["dropped_origin_unknown"], 5, "{report:#}");
    assert_eq!(report["read_through"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["read_through_complete"], false);
    assert_eq!(report["read_through_unknown"], true);

    let dry = repair(&["-i", s(&cow), "--dry-run"]);
    assert_eq!(dry.status.code(), Some(LOSSY), "{}", stderr(&dry));
    let text = stdout(&dry);
    assert!(
        text.contains(&format!(
            "{}: lost: 5 dropped records too damaged to name the origin chunks they mapped; the snapshot reads the origin there now, at origin chunks unknown",
            s(&cow)
        )),
        "{text}"
    );
    assert!(
        !text.contains("reads the origin now at origin chunks"),
        "{text}"
    );
}

#[test]
fn a_lost_shared_leaf_leaves_every_snapshots_read_through_incomplete() {
    let dir = tempdir();
    let cow = build_shared(&dir, 2);
    let leaves = leaf_chunks(&cow);
    poke(&cow, leaves[leaves.len() / 2] * 512, &[0u8; 512]);
    let out = dir.path().join("fixed.img");
    let report = repair_report(&cow, &out, &[], LOSSY);
    let snapshots = report["per_snapshot"].as_array().unwrap();
    assert_eq!(snapshots.len(), 2, "{report:#}");
    for t in snapshots {
        assert_eq!(t["lost_unknown"], true, "{report:#}");
        assert_eq!(t["read_through_complete"], false, "{report:#}");
    }

    let text = stdout(&repair(&["-i", s(&cow), "--dry-run"]));
    assert!(!text.contains("more not listed"), "{text}");
}

#[test]
fn case_4_two_damaged_leaves_are_no_reason_to_widen_the_snapmask() {
    let dir = tempdir();
    let cow = build_shared(&dir, 16);
    let leaves = leaf_chunks(&cow);
    assert!(
        leaves.len() > 8,
        "two leaves must be under 1 in 4: {leaves:?}"
    );
    for &leaf in &leaves[1..3] {
        poke(&cow, (leaf + 1) * 512 - 16, &[0xff; 8]);
    }
    let out = dir.path().join("fixed.img");
    let report = repair_report(&cow, &out, &[], LOSSY);
    let notes = report["notes"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().contains("snapshots 16-63 outside")),
        "{report:#}"
    );
    assert!(
        notes
            .iter()
            .all(|n| !n.as_str().unwrap().contains("repair again")),
        "{report:#}"
    );
}
