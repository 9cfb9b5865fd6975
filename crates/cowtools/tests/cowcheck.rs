//! CLI tests of cowcheck: exit codes, text and JSON reports, options, golden
//! images and bad input.

mod common;

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
    let text = assert_one_line_error(&output, 2, "snap.cow");
    assert!(text.contains("not a COW store"), "{text}");
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

#[test]
fn shared_stores_are_not_handled_yet() {
    let dir = tempdir();
    let path = blank_image(&dir, "shared.img", 1 << 20);
    write_header(&path, cowfmt::kind::SHARED_MAGIC, 1, 1, 8);
    let text = assert_one_line_error(&check(&[], &path), 2, "shared.img");
    assert!(text.contains("does not handle shared stores"), "{text}");
    let text = assert_one_line_error(&check(&["--kind", "shared"], &path), 2, "shared.img");
    assert!(text.contains("does not handle shared stores"), "{text}");
}

#[test]
fn bad_input_that_cannot_be_checked_exits_2() {
    let dir = tempdir();
    let empty = blank_image(&dir, "empty.cow", 0);
    assert!(assert_one_line_error(&check(&[], &empty), 2, "empty.cow").contains("truncated"));
    let zeros = blank_image(&dir, "zeros.cow", 100);
    assert!(assert_one_line_error(&check(&[], &zeros), 2, "zeros.cow").contains("not formatted"));
    let missing = dir.path().join("missing.cow");
    assert!(assert_one_line_error(&check(&[], &missing), 2, "missing.cow").contains("cannot open"));
    let text = assert_one_line_error(
        &check(&[], dir.path()),
        2,
        &dir.path().display().to_string(),
    );
    assert!(text.contains("is a directory"), "{text}");
}

#[test]
fn usage_errors_exit_2() {
    let dir = tempdir();
    let path = build_store(&dir, "snap.cow", 8, 64, 1);
    assert_eq!(check(&["--format", "xml"], &path).status.code(), Some(2));
    assert_eq!(check(&["--chunk-size", "3k"], &path).status.code(), Some(2));
    assert_eq!(tool("cowcheck").output().unwrap().status.code(), Some(2));
}

#[test]
fn help_has_examples_and_version_works() {
    let output = tool("cowcheck").arg("--help").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("EXAMPLES:"));
    let output = tool("cowcheck").arg("-V").output().unwrap();
    assert!(stdout(&output).starts_with("cowcheck "));
}
