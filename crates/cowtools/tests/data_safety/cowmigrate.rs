//! CLI tests of cowmigrate: re-chunking and kind conversion keep the snapshot
//! byte-identical; imports into shared stores, exports of their snapshots and
//! shared re-chunking keep every snapshot byte-identical; table lines and the
//! space used are printed; bad requests fail clearly.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;
use cowfmt::device::{Access, Device};
use cowfmt::StoreKind;
use tempfile::TempDir;

fn migrate(args: &[&str]) -> Output {
    run_tool("cowmigrate", args)
}

fn errors(path: &Path, kind: StoreKind) -> usize {
    classic_check(path, kind)
        .findings
        .iter()
        .filter(|f| f.severity == cowfmt::Severity::Error)
        .count()
}

#[test]
fn golden_a_rechunks_and_converts_byte_identical() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let origin = golden_origin(&dir, "a");
    let before = snapshot_image(&origin, &cow);
    let cases = [
        (vec!["--chunk-size", "4s"], "P 4", StoreKind::Persistent),
        (vec!["--chunk-size", "8k"], "P 16", StoreKind::Persistent),
        (vec!["--to", "legacy"], "P 8", StoreKind::Legacy),
        (
            vec!["--chunk-size", "1k", "--to", "legacy"],
            "P 2",
            StoreKind::Legacy,
        ),
    ];
    for (i, (target, table, kind)) in cases.into_iter().enumerate() {
        let out = dir.path().join(format!("out{i}.img"));
        let mut args = vec!["-i", s(&cow), "-o", s(&out), "--origin", s(&origin)];
        args.extend(target);
        let output = migrate(&args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let text = stdout(&output);
        assert!(
            text.contains(&format!(
                "table: 0 32768 snapshot {} {} {table}",
                s(&origin),
                s(&out)
            )),
            "{text}"
        );
        assert!(
            text.contains("space used: before 440/16384 16 (220 KiB of 8 MiB), after "),
            "{text}"
        );
        assert_eq!(errors(&out, kind), 0);
        assert!(before == snapshot_image(&origin, &out), "case {i}");
    }
}

#[test]
fn json_report_has_both_shapes_and_the_table() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let origin = golden_origin(&dir, "a");
    let out = dir.path().join("out.img");
    let json = json_report(
        "cowmigrate",
        &cow,
        &out,
        &["--origin", s(&origin), "--chunk-size", "2k"],
    );
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["mode"], "split");
    assert_eq!(json["factor"], 2);
    assert_eq!(json["from"]["records"], 53);
    assert_eq!(json["to"]["records"], 106);
    assert_eq!(json["to"]["chunk_size"], 4);
    assert_eq!(json["from"]["status"], "440/16384 16");
    assert!(json["to"]["usage"]["sectors_allocated"].is_u64());
    assert_eq!(
        json["table"],
        format!("0 32768 snapshot {} {} P 4", s(&origin), s(&out))
    );
}

#[test]
fn a_larger_chunk_size_without_the_origin_is_refused() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let out = dir.path().join("out.img");
    let output = migrate_into(&cow, &out, &["--chunk-size", "16k"]);
    assert_refused_without_output(&output, 2, "--origin", &["8 -> 32 sectors"], &out);
}

#[test]
fn a_target_is_required() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let output = migrate(&["-i", s(&cow), "-o", s(&dir.path().join("out.img"))]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn an_output_too_small_suggests_size() {
    let dir = tempdir();
    let olds: u64 = 32;
    let cow = build_store(&dir, "cow.img", 1, 35, olds);
    let out = dir.path().join("legacy.img");
    let to_legacy = |size: &str| migrate_into(&cow, &out, &["--to", "legacy", "--size", size]);
    // The input's size: one chunk short of the legacy store with room to move.
    let output = to_legacy("17920");
    assert_refused_without_output(&output, 2, "legacy.img", &["--size", "18432"], &out);

    let output = to_legacy("18432");
    assert_success_says(&output, &["moved data chunk 33 to 35"]);
    assert_eq!(errors(&out, StoreKind::Legacy), 0);
}

#[test]
fn existing_outputs_and_the_input_itself_are_refused() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let before = std::fs::read(&cow).unwrap();
    let output = migrate_into(&cow, &cow, &["--to", "legacy", "--force"]);
    assert_one_line_error(&output, 2, s(&cow));
    assert_eq!(std::fs::read(&cow).unwrap(), before);

    let taken = dir.path().join("taken.img");
    std::fs::write(&taken, b"precious").unwrap();
    let output = migrate_into(&cow, &taken, &["--to", "legacy"]);
    assert_error_says(&output, 2, "taken.img", &["--force"]);
    assert_eq!(std::fs::read(&taken).unwrap(), b"precious");
}

#[test]
fn a_damaged_input_exits_1_and_points_at_cowrepair() {
    let dir = tempdir();
    let cow = build_store(&dir, "cow.img", 8, 64, 10);
    write_area0_record(&cow, 3, 5, 9999);
    let out = dir.path().join("out.img");
    let output = migrate_into(&cow, &out, &["--chunk-size", "2k"]);
    assert_refused_without_output(&output, 1, "cow.img", &["cowrepair"], &out);
}

#[test]
fn an_invalidated_store_stays_invalid() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "c");
    let origin = golden_origin(&dir, "c");
    let out = dir.path().join("out.img");
    let output = migrate_into(&cow, &out, &["--chunk-size", "2k"]);
    assert_success_says(&output, &["124 records, invalid"]);
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[4..8], &[0, 0, 0, 0]);
    assert!(snapshot_image(&origin, &cow) == snapshot_image(&origin, &out));
}

/// Deterministic bytes: a xorshift stream seeded by `seed`.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An origin of 96 chunks of 4 KiB and a shared store of `snapshots`
/// snapshots built through the engine, with origin writes between creations
/// and a few snapshot writes.
fn engine_shared_store(dir: &TempDir, snapshots: u32) -> (PathBuf, PathBuf) {
    let origin = dir.path().join("shared-origin.img");
    std::fs::write(&origin, random_bytes(96 * 4096, 1)).unwrap();
    let cow = dir.path().join("shared.img");
    let origin_dev = Device::open(&origin, Access::ReadWrite).unwrap();
    let mut store = engine_create(&cow, 8 << 20, origin_dev, 8, 2);
    let mut seed = 7u64;
    for id in 0..snapshots {
        store.create_snapshot(Some(id)).unwrap();
        for _ in 0..5 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let chunk = (seed >> 33) % 96;
            store
                .origin_write(chunk * 4096, &random_bytes(4096, seed))
                .unwrap();
        }
        if id % 4 == 1 {
            store
                .snapshot_write(id, u64::from(id) * 1000, &random_bytes(700, u64::from(id)))
                .unwrap();
        }
    }
    store.commit().unwrap();
    (cow, origin)
}

#[test]
fn classic_stores_import_into_a_shared_store_and_export_back() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let origin = golden_origin(&dir, "a");
    let before = snapshot_image(&origin, &cow);
    let twin = dir.path().join("twin.img");
    std::fs::copy(&cow, &twin).unwrap();
    let shared = dir.path().join("shared.img");
    let output = migrate(&[
        "-i",
        s(&cow),
        s(&twin),
        "-o",
        s(&shared),
        "--to",
        "shared",
        "--ids",
        "3,7",
        "--origin",
        s(&origin),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(text.contains("snapshot 3 <- "), "{text}");
    assert!(
        text.contains("106 chunk copies stored as 53 data chunks (53 identical copies shared)"),
        "{text}"
    );
    assert!(
        text.contains("space used: before 440 KiB in 2 stores, after 292 KiB (73 of 129 chunks"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "table for snapshot 7: 0 32768 snapshot {} shared 3 {} 8 7",
            s(&origin),
            s(&shared)
        )),
        "{text}"
    );
    assert_eq!(std::fs::metadata(&shared).unwrap().len(), 129 * 4096);
    for (id, image) in engine_images(&shared, &origin) {
        assert!(image == before, "snapshot {id}");
    }

    for (id, to, table) in [("3", "persistent", "P 8"), ("7", "legacy", "P 8")] {
        let out = dir.path().join(format!("export{id}.img"));
        let output = migrate_into(
            &shared,
            &out,
            &["--to", to, "--snapshot", id, "--origin", s(&origin)],
        );
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let text = stdout(&output);
        assert!(
            text.contains(&format!("exported snapshot {id} of ")),
            "{text}"
        );
        assert!(text.contains("space used: before 292 KiB"), "{text}");
        assert!(
            text.contains(", after 440/1032 16 (220 KiB of 516 KiB)"),
            "{text}"
        );
        assert!(text.contains(table), "{text}");
        let kind = if to == "legacy" {
            StoreKind::Legacy
        } else {
            StoreKind::Persistent
        };
        assert_eq!(errors(&out, kind), 0);
        assert!(snapshot_image(&origin, &out) == before, "export {id}");
    }
}

#[test]
fn shared_stores_rechunk_and_compact_with_every_snapshot_byte_identical() {
    let dir = tempdir();
    let (shared, origin) = engine_shared_store(&dir, 24);
    let before = engine_images(&shared, &origin);
    assert_eq!(before.len(), 24);
    let cases = [
        (
            vec!["--chunk-size", "16k"],
            "every 4 chunks merged into one",
            32,
        ),
        (vec!["--chunk-size", "1k"], "each chunk split into 4", 2),
        (vec!["--to", "shared"], "compacted", 8),
    ];
    for (i, (target, how, chunk)) in cases.into_iter().enumerate() {
        let out = dir.path().join(format!("out{i}.img"));
        let mut args = vec!["-i", s(&shared), "-o", s(&out), "--origin", s(&origin)];
        args.extend(target);
        let output = migrate(&args);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let text = stdout(&output);
        assert!(text.contains(how), "{text}");
        assert!(text.contains("space used: before "), "{text}");
        assert!(
            text.contains(&format!(
                "now shared store, chunk {chunk} sectors, snapshots 0-23"
            )),
            "{text}"
        );
        assert!(engine_images(&out, &origin) == before, "case {i}");
    }
}

#[test]
fn json_report_of_an_import() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let shared = dir.path().join("shared.img");
    let json = json_report(
        "cowmigrate",
        &cow,
        &shared,
        &["--to", "shared", "--size", "1M", "--journal-size", "0"],
    );
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["job"], "import");
    assert_eq!(json["inputs"][0]["snapshot"], 0);
    assert_eq!(json["inputs"][0]["shape"]["status"], "440/16384 16");
    assert_eq!(json["copies"], 53);
    assert_eq!(json["stored"], 53);
    assert_eq!(json["to"]["journal_chunks"], 0);
    assert_eq!(json["to"]["device_bytes"], 1 << 20);
    assert_eq!(json["space_before"], 440 * 512);
    assert_eq!(json["space_after"], json["to"]["used_bytes"]);
    assert_eq!(json["tables"][0]["snapshot"], 0);
    assert_eq!(
        json["tables"][0]["table"],
        format!(
            "0 <origin-sectors> snapshot <origin> shared 3 {} 8 0",
            s(&shared)
        )
    );
}

#[test]
fn bad_shared_migrations_fail_in_one_line() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let out = dir.path().join("out.img");
    let small = build_store(&dir, "small.img", 4, 64, 10);

    let text = assert_one_line_error(
        &migrate(&["-i", s(&cow), s(&small), "-o", s(&out), "--to", "shared"]),
        2,
        "small.img",
    );
    assert!(text.contains("chunk size"), "{text}");
    let text = assert_one_line_error(
        &migrate_into(&cow, &out, &["--to", "shared", "--ids", "1,2"]),
        2,
        "cowmigrate",
    );
    assert!(
        text.contains("2 snapshot ids were given for 1 input"),
        "{text}"
    );
    assert_one_line_error(
        &migrate(&["-i", s(&cow), s(&small), "-o", s(&out), "--to", "legacy"]),
        2,
        "--to shared",
    );
    assert!(!out.exists());

    let invalid = golden_cow(&dir, "c");
    let text = assert_one_line_error(
        &migrate_into(&invalid, &out, &["--to", "shared"]),
        1,
        "c.img",
    );
    assert!(text.contains("invalid"), "{text}");

    let (shared, origin) = engine_shared_store(&dir, 3);
    let text = assert_one_line_error(
        &migrate_into(&shared, &out, &["--to", "persistent"]),
        2,
        "shared.img",
    );
    assert!(text.contains("--snapshot ID (snapshots: 0-2)"), "{text}");
    assert_one_line_error(
        &migrate_into(&shared, &out, &["--to", "legacy", "--snapshot", "9"]),
        2,
        "snapshot 9 does not exist",
    );
    let text = assert_one_line_error(
        &migrate_into(&shared, &out, &["--chunk-size", "64k"]),
        2,
        "--origin",
    );
    assert!(text.contains("8 -> 128 sectors"), "{text}");
    assert_one_line_error(
        &migrate(&["-i", s(&shared), s(&cow), "-o", s(&out), "--to", "shared"]),
        2,
        "shared.img",
    );
    let text = assert_one_line_error(
        &migrate_into(
            &shared,
            &out,
            &["--to", "shared", "--size", "64k", "--origin", s(&origin)],
        ),
        2,
        "out.img",
    );
    assert!(text.contains("give a larger --size"), "{text}");
    assert!(!out.exists());

    // A leaf pointer aimed at the header: the store is damaged (exit 1).
    let damaged = dir.path().join("damaged.img");
    std::fs::copy(&shared, &damaged).unwrap();
    let header = std::fs::read(&damaged).unwrap();
    let root = u64::from_le_bytes(header[16..24].try_into().unwrap());
    poke(&damaged, root * 4096 + 16, &0u64.to_le_bytes());
    let text = assert_one_line_error(
        &migrate_into(&damaged, &out, &["--to", "shared"]),
        1,
        "damaged.img",
    );
    assert!(text.contains("damaged"), "{text}");
}

#[test]
fn the_origin_is_never_the_output_even_with_force() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let origin = golden_origin(&dir, "a");
    let before = std::fs::read(&origin).unwrap();
    for target in [vec!["--chunk-size", "8k"], vec!["--to", "shared"]] {
        let mut args = vec![
            "-i",
            s(&cow),
            "-o",
            s(&origin),
            "--origin",
            s(&origin),
            "-f",
        ];
        args.extend(target);
        let output = migrate(&args);
        assert_origin_untouched(&output, &origin, &before);
    }
}

#[test]
fn an_origin_shorter_than_the_records_is_blamed_not_the_store() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let short = blank_image(&dir, "short-origin.img", 8192);
    let out = dir.path().join("shared.img");
    let output = migrate_into(&cow, &out, &["--to", "shared", "--origin", s(&short)]);
    let text = assert_error_says(
        &output,
        1,
        s(&cow),
        &["past the end of the origin", "is --origin the device"],
    );
    assert!(!text.contains("cowrepair"), "{text}");
}
