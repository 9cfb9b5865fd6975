//! CLI tests of cowcheck: exit codes, text and JSON reports, options, golden
//! images and bad input.

use crate::common;

use std::path::Path;

use common::*;

fn check(args: &[&str], path: &Path) -> std::process::Output {
    let output = tool("cowcheck").args(args).arg(path).output().unwrap();
    assert_no_panic(&output);
    output
}

fn check_json(args: &[&str], path: &Path) -> (Option<i32>, serde_json::Value) {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let output = check(&all, path);
    let json = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", stderr(&output)));
    (output.status.code(), json)
}

fn codes(json: &serde_json::Value) -> Vec<String> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_clean_store_exits_0_with_a_summary_line() {
    let dir = tempdir();
    let path = build_store(&dir, "snap.cow", 8, 2048, 53);
    let output = check(&[], &path);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        stdout(&output),
        format!(
            "{}: persistent store, chunk 8 sectors, 53 records in 1 area, status 440/16384 16: clean\n",
            path.display()
        )
    );
}

#[test]
fn findings_exit_1_one_line_each() {
    let dir = tempdir();
    let path = build_store(&dir, "snap.cow", 8, 64, 10);
    write_area0_record(&path, 3, 5, 9999);
    write_area0_record(&path, 4, 6, 2);
    let output = check(&[], &path);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    let name = path.display().to_string();
    assert!(
        text.contains(&format!(
            "{name}: error: new-chunk-past-end: area 0 (chunk 1) record 3: new_chunk 9999"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("{name}: error: new-chunk-duplicate: ")),
        "{text}"
    );
    let summary = text.lines().last().unwrap();
    assert!(
        summary.starts_with(&format!(
            "{name}: persistent store, chunk 8 sectors, 10 records"
        )),
        "{summary}"
    );
    assert!(summary.contains("errors"), "{summary}");
}

#[test]
fn quiet_prints_nothing() {
    let dir = tempdir();
    let path = build_store(&dir, "snap.cow", 8, 64, 10);
    write_area0_record(&path, 3, 5, 9999);
    let output = check(&["-q"], &path);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty() && output.stderr.is_empty());
    let clean = build_store(&dir, "clean.cow", 8, 64, 10);
    let output = check(&["--quiet"], &clean);
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stdout.is_empty());
}

#[test]
fn json_report_has_the_documented_shape() {
    let dir = tempdir();
    let path = build_store(&dir, "snap.cow", 8, 64, 10);
    write_area0_record(&path, 3, 5, 9999);
    let (code, json) = check_json(&[], &path);
    assert_eq!(code, Some(1));
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["kind"], "persistent");
    assert_eq!(json["clean"], false);
    assert_eq!(json["header"]["magic"], "0x70416e53");
    let finding = &json["findings"][0];
    assert_eq!(finding["severity"], "error");
    assert_eq!(finding["code"], "new-chunk-past-end");
    assert_eq!(finding["area"], 0);
    assert_eq!(finding["record"], 3);
    assert_eq!(finding["new_chunk"], 9999);
    assert!(finding["message"]
        .as_str()
        .unwrap()
        .contains("past the end"));
    assert_eq!(json["summary"]["records"], 10);
    assert_eq!(json["summary"]["errors"], 1);
}

#[test]
fn ignore_non_fatal_exits_0_on_warnings_only() {
    let dir = tempdir();
    let path = build_store(&dir, "snap.cow", 8, 64, 10);
    poke(&path, 100, b"\x01");
    let output = check(&[], &path);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).contains("warning: header-trailing-garbage"));
    assert_eq!(check(&["--ignore-non-fatal"], &path).status.code(), Some(0));
    write_area0_record(&path, 3, 5, 9999);
    assert_eq!(check(&["--ignore-non-fatal"], &path).status.code(), Some(1));
}

#[test]
fn golden_images_check_as_the_kernel_left_them() {
    let dir = tempdir();
    for name in ["a", "b2", "c2"] {
        let path = golden_cow(&dir, name);
        let (code, json) = check_json(&[], &path);
        assert_eq!(code, Some(0), "{name}: {json}");
        assert_eq!(json["clean"], true, "{name}");
        assert_eq!(
            json["summary"]["status"],
            golden_expected(name)["kernel_status_if_reloaded"]
                .as_str()
                .unwrap(),
            "{name}"
        );
    }
    let path = golden_cow(&dir, "c");
    let (code, json) = check_json(&[], &path);
    assert_eq!(code, Some(1));
    assert_eq!(codes(&json), ["invalidated"]);
    assert_eq!(json["summary"]["status"], "Invalid");
    assert_eq!(check(&["--ignore-non-fatal"], &path).status.code(), Some(0));
}

#[test]
fn origin_size_checks_old_chunks() {
    let dir = tempdir();
    let path = build_store(&dir, "snap.cow", 8, 64, 3);
    // old chunks are 0, 7919 and 15838.
    assert_eq!(
        check(&["--origin-size", "64M"], &path).status.code(),
        Some(0)
    );
    let (code, json) = check_json(&["--origin-size", "32M"], &path);
    assert_eq!(code, Some(1));
    assert_eq!(codes(&json), ["old-chunk-past-origin"]);
    let origin = blank_image(&dir, "origin.img", 32 << 20);
    let (code, json) = check_json(&["--origin", origin.to_str().unwrap()], &path);
    assert_eq!(code, Some(1));
    assert_eq!(codes(&json), ["old-chunk-past-origin"]);
    let output = check(
        &["--origin-size", "1M", "--origin", origin.to_str().unwrap()],
        &path,
    );
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn super_block_only_reads_only_the_header() {
    let dir = tempdir();
    let path = build_store(&dir, "snap.cow", 8, 64, 10);
    write_area0_record(&path, 3, 5, 9999);
    let output = check(&["--super-block-only"], &path);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stdout(&output).contains("header only: clean"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn kind_legacy_is_reported() {
    let dir = tempdir();
    let path = build_store(&dir, "snap.cow", 8, 64, 10);
    let output = check(&["--kind", "legacy"], &path);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains(": legacy store, chunk 8 sectors"));
}

#[test]
fn wrong_magic_is_exit_2_unless_the_kind_is_forced() {
    let dir = tempdir();
    let path = build_store(&dir, "snap.cow", 8, 64, 10);
    write_header(&path, 0xdead_beef, 1, 1, 8);
    let output = check(&[], &path);
    assert_error_says(&output, 2, "snap.cow", &["not a COW store"]);
    let (code, json) = check_json(&["--kind", "persistent"], &path);
    assert_eq!(code, Some(1));
    assert_eq!(codes(&json), ["bad-magic"]);
}

#[test]
fn absurd_chunk_sizes_are_findings() {
    let dir = tempdir();
    for chunk_size in [3u32, 1 << 30, 0] {
        let path = build_store(&dir, &format!("cs{chunk_size}.cow"), 8, 64, 10);
        write_header(&path, cowfmt::kind::PERSISTENT_MAGIC, 1, 1, chunk_size);
        let (code, json) = check_json(&[], &path);
        assert_eq!(code, Some(1), "{chunk_size}");
        assert_eq!(codes(&json), ["bad-chunk-size"], "{chunk_size}");
        let (code, json) = check_json(&["--chunk-size", "4k"], &path);
        assert_eq!(code, Some(1));
        assert_eq!(codes(&json), ["bad-chunk-size"]);
        assert_eq!(
            json["summary"]["records"], 10,
            "read with the given chunk size"
        );
    }
}

#[test]
fn a_truncated_store_is_a_finding() {
    let dir = tempdir();
    let short = blank_image(&dir, "short.cow", 100);
    write_header(&short, cowfmt::kind::PERSISTENT_MAGIC, 1, 1, 8);
    let (code, json) = check_json(&[], &short);
    assert_eq!(code, Some(1));
    assert_eq!(codes(&json), ["device-too-small"]);
    let cut = build_store(&dir, "cut.cow", 8, 600, 256);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(258 * 4096)
        .unwrap();
    let output = check(&[], &cut);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("error: area-past-end: area 1 (chunk 258)"),
        "{}",
        stdout(&output)
    );
}

/// A shared store (4 KiB chunks, 1024 of them, 16 journal chunks) for a 1 MiB
/// origin, with snapshots 0 and 1 and five origin chunks written, committed by
/// the engine: 5 records. Returns the COW path and the chunk of its only leaf.
fn build_shared(dir: &tempfile::TempDir, name: &str) -> (std::path::PathBuf, u64) {
    let path = dir.path().join(name);
    let origin =
        cowfmt::Device::create_or_extend(dir.path().join(format!("{name}.origin")), 256 * 4096)
            .unwrap();
    let mut store = engine_create(&path, 1024 * 4096, origin, 8, 16);
    store.create_snapshot(None).unwrap();
    for chunk in [3u64, 7, 8] {
        store.origin_write(chunk * 4096, &[1; 4096]).unwrap();
    }
    store.create_snapshot(None).unwrap();
    for chunk in [7u64, 100] {
        store.origin_write(chunk * 4096, &[2; 4096]).unwrap();
    }
    store.commit().unwrap();
    let root = store.header().root_tree_chunk;
    drop(store);
    let mut node = vec![0u8; 4096];
    std::fs::File::open(&path)
        .and_then(|f| std::os::unix::fs::FileExt::read_exact_at(&f, &mut node, root * 4096))
        .unwrap();
    let leaf = u64::from_le_bytes(node[16..24].try_into().unwrap());
    (path, leaf)
}

#[test]
fn a_clean_shared_store_exits_0_with_a_summary_line() {
    let dir = tempdir();
    let (path, _) = build_shared(&dir, "shared.img");
    let output = check(&[], &path);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    // 1 + 1 bitmap + 16 journal + leaf + root + 5 data chunks.
    assert_eq!(
        stdout(&output),
        format!(
            "{0}: info: the journal has 16 chunks, fewer than the 69 a journaled commit needs: the store commits in place, not crash-safe (a journal of 69 chunks or more makes every commit atomic)\n\
             {0}: shared store, chunk 8 sectors, 2 snapshots, 5 records of 4 origin chunks in 1 leaf and 1 node (tree level 1), 25/1024 chunks used: clean\n",
            path.display()
        )
    );
    let (code, json) = check_json(&["--origin-size", "1M"], &path);
    assert_eq!(code, Some(0));
    assert_eq!(json["kind"], "shared");
    assert_eq!(json["clean"], true);
    assert_eq!(json["header"]["magic"], "0x55378008");
    assert_eq!(json["header"]["snapmask"], 3);
    assert_eq!(json["header"]["tree_level"], 1);
    let summary = &json["summary"];
    assert_eq!(summary["records"], 5);
    assert_eq!(summary["origin_chunks"], 4);
    assert_eq!(summary["leaves"], 1);
    assert_eq!(summary["nodes"], 1);
    assert_eq!(summary["snapshots"], 2);
    assert_eq!(summary["used_chunks"], 25);
    assert_eq!(summary["free_chunks"], 1024 - 25);
    assert_eq!(summary["leaked_chunks"], 0);
    assert_eq!(summary["errors"], 0);
}

#[test]
fn a_damaged_shared_store_exits_1_with_located_findings() {
    let dir = tempdir();
    let (path, leaf) = build_shared(&dir, "shared.img");
    // Map entry 0 is origin chunk 3: its one record is the first of the records
    // packed at the end of the leaf (5 records of 16 bytes).
    let record0 = leaf * 4096 + 4096 - 5 * 16;
    poke(&path, record0, &0u64.to_le_bytes());
    poke(&path, leaf * 4096 + 16, &0u64.to_le_bytes());
    let output = check(&[], &path);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains(&format!(
            "{}: error: share-mask-empty: leaf at chunk {leaf} (level 0, origin chunks 0..): entry 0 (origin chunk 3) record 0: share mask 0x0 is empty",
            path.display()
        )),
        "{text}"
    );
    assert!(
        text.lines().last().unwrap().ends_with(": 1 error"),
        "{text}"
    );
    let (code, json) = check_json(&[], &path);
    assert_eq!(code, Some(1));
    assert_eq!(codes(&json), ["share-mask-empty"]);
    let finding = &json["findings"][0];
    assert_eq!(finding["severity"], "error");
    assert_eq!(finding["chunk"], leaf);
    assert_eq!(finding["level"], 0);
    assert_eq!(finding["key_lo"], 0);
    assert!(finding.get("key_hi").is_none());
    assert_eq!(finding["entry"], 0);
    assert_eq!(finding["record"], 0);
    assert_eq!(finding["old_chunk"], 3);
    assert_eq!(finding["mask"], 0);
    assert_eq!(json["summary"]["errors"], 1);
    assert_eq!(check(&["--ignore-non-fatal"], &path).status.code(), Some(1));
    // The header alone is fine.
    let output = check(&["--super-block-only"], &path);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stdout(&output).ends_with("2 snapshots, header only: clean\n"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_leak_alone_is_not_fatal() {
    let dir = tempdir();
    let (path, _) = build_shared(&dir, "shared.img");
    // Mark chunks 500 and 501 in use: bitmap chunk 1, byte 62, bits 4 and 5.
    poke(&path, 4096 + 62, &[0b0011_0000]);
    let output = check(&[], &path);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output)
            .contains("warning: chunk-leaked: chunks 500..502 (2 chunks) are marked in use"),
        "{}",
        stdout(&output)
    );
    assert!(
        stdout(&output).ends_with(": 1 warning\n"),
        "{}",
        stdout(&output)
    );
    assert_eq!(check(&["--ignore-non-fatal"], &path).status.code(), Some(0));
    let (code, json) = check_json(&["--ignore-non-fatal"], &path);
    assert_eq!(code, Some(0));
    assert_eq!(codes(&json), ["chunk-leaked"]);
    assert_eq!(json["findings"][0]["chunk"], 500);
    assert_eq!(json["findings"][0]["count"], 2);
    assert_eq!(json["summary"]["leaked_chunks"], 2);
}

#[test]
fn shared_origin_size_checks_origin_chunks() {
    let dir = tempdir();
    let (path, _) = build_shared(&dir, "shared.img");
    // Origin chunk 100 is the highest with records.
    assert_eq!(
        check(&["--origin-size", "404k"], &path).status.code(),
        Some(0)
    );
    let (code, json) = check_json(&["--origin-size", "400k"], &path);
    assert_eq!(code, Some(1));
    assert_eq!(codes(&json), ["old-chunk-past-origin"]);
    assert_eq!(json["findings"][0]["old_chunk"], 100);
}

#[test]
fn shared_stores_are_found_by_magic_and_kind_insists() {
    let dir = tempdir();
    let (path, _) = build_shared(&dir, "shared.img");
    // --kind shared on a persistent store: its magic is damage, not "not a store".
    let snap = build_store(&dir, "snap.cow", 8, 64, 10);
    let (code, json) = check_json(&["--kind", "shared"], &snap);
    assert_eq!(code, Some(1));
    assert_eq!(json["kind"], "shared");
    assert_eq!(codes(&json)[0], "bad-magic");
    // --kind persistent on a shared store: likewise, from the persistent side.
    let (code, json) = check_json(&["--kind", "persistent"], &path);
    assert_eq!(code, Some(1));
    assert_eq!(codes(&json)[0], "bad-magic");
    // A header with nothing behind it.
    let bare = blank_image(&dir, "bare.img", 1 << 20);
    write_header(&bare, cowfmt::kind::SHARED_MAGIC, 1, 1, 8);
    let (code, json) = check_json(&[], &bare);
    assert_eq!(code, Some(1));
    assert_eq!(json["kind"], "shared");
    assert!(
        codes(&json).contains(&"bad-tree-level".to_string()),
        "{json}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempdir();
    let path = build_store(&dir, "snap.cow", 8, 64, 1);
    assert_eq!(check(&["--format", "xml"], &path).status.code(), Some(2));
    assert_eq!(check(&["--chunk-size", "3k"], &path).status.code(), Some(2));
    assert_eq!(tool("cowcheck").output().unwrap().status.code(), Some(2));
}
