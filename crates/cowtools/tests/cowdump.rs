//! CLI tests of cowdump: YAML, JSON and table output, runs, hex, golden images
//! and bad input.

mod common;

use common::*;
use cowfmt::persistent::dump::PersistentDump;
use cowfmt::StoreKind;

fn dump_output(args: &[&str], path: &std::path::Path) -> std::process::Output {
    let output = tool("cowdump").args(args).arg(path).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    output
}

#[test]
fn json_is_one_document_equal_to_the_library_dump() {
    let dir = tempdir();
    let path = build_store(&dir, "cow.img", 8, 1024, 300);
    let output = dump_output(&["--format", "json"], &path);
    let parsed: PersistentDump = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(parsed, library_dump(&path, StoreKind::Persistent, false));
    assert!(parsed.tail.runs.is_none());
}

#[test]
fn json_has_the_documented_fields() {
    let dir = tempdir();
    let path = build_store(&dir, "cow.img", 8, 512, 3);
    let output = dump_output(&["--format", "json"], &path);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["kind"], "persistent");
    assert_eq!(json["chunk_size"], 8);
    assert_eq!(json["valid"], true);
    assert_eq!(json["version"], 1);
    assert_eq!(json["device_chunks"], 512);
    assert_eq!(json["exceptions"][0]["old_chunk"], 0);
    assert_eq!(json["exceptions"][0]["new_chunk"], 2);
    assert_eq!(json["exceptions"][2]["new_chunk"], 4);
    assert_eq!(json["exceptions"].as_array().unwrap().len(), 3);
    assert_eq!(json["usage"]["sectors_allocated"], 5 * 8);
    assert_eq!(json["usage"]["total_sectors"], 512 * 8);
    assert_eq!(json["usage"]["metadata_sectors"], 16);
    assert_eq!(json["status"], "40/4096 16");
}

#[test]
fn yaml_is_one_document_equal_to_the_library_dump() {
    let dir = tempdir();
    let path = build_store(&dir, "cow.img", 8, 1024, 300);
    let output = dump_output(&[], &path);
    let text = stdout(&output);
    assert!(
        text.contains("\nexceptions:\n- {old_chunk: 0, new_chunk: 2}\n"),
        "{text}"
    );
    let parsed: PersistentDump = serde_yaml::from_str(&text).unwrap();
    assert_eq!(parsed, library_dump(&path, StoreKind::Persistent, false));
}

#[test]
fn an_empty_store_dumps_an_empty_list() {
    let dir = tempdir();
    let path = build_store(&dir, "cow.img", 8, 64, 0);
    let expected = library_dump(&path, StoreKind::Persistent, true);
    let yaml = dump_output(&["--runs"], &path);
    assert!(stdout(&yaml).contains("exceptions: []\n"));
    assert_eq!(
        serde_yaml::from_slice::<PersistentDump>(&yaml.stdout).unwrap(),
        expected
    );
    let json = dump_output(&["--runs", "--format", "json"], &path);
    assert_eq!(
        serde_json::from_slice::<PersistentDump>(&json.stdout).unwrap(),
        expected
    );
}

#[test]
fn runs_are_added_on_request() {
    let dir = tempdir();
    let path = build_store(&dir, "cow.img", 8, 1024, 300);
    let expected = library_dump(&path, StoreKind::Persistent, true);
    assert!(expected
        .tail
        .runs
        .as_ref()
        .is_some_and(|runs| !runs.is_empty()));
    for format in ["json", "yaml"] {
        let output = dump_output(&["--runs", "--format", format], &path);
        let parsed: PersistentDump = serde_yaml::from_slice(&output.stdout).unwrap();
        assert_eq!(parsed, expected, "{format}");
    }
    let table = stdout(&dump_output(&["--runs", "--format", "table"], &path));
    assert!(
        table.contains("Runs (the kernel's in-memory exceptions)"),
        "{table}"
    );
}

#[test]
fn consecutive_records_form_one_run() {
    let dir = tempdir();
    let path = build_store(&dir, "cow.img", 8, 64, 0);
    for i in 0..5 {
        write_area0_record(&path, i, 10 + i, 2 + i);
    }
    let output = dump_output(&["--runs", "--format", "json"], &path);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        json["runs"],
        serde_json::json!([{"old_chunk": 10, "new_chunk": 2, "count": 5}])
    );
}

#[test]
fn kind_legacy_labels_the_dump() {
    let dir = tempdir();
    let path = build_store(&dir, "cow.img", 8, 64, 2);
    let output = dump_output(&["--kind", "legacy", "--format", "json"], &path);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["kind"], "legacy");
}

#[test]
fn table_format_shows_sections_and_aligned_exceptions() {
    let dir = tempdir();
    let path = build_store(&dir, "cow.img", 8, 1024, 12);
    let text = stdout(&dump_output(&["--format", "table"], &path));
    for section in [
        "Header",
        "Geometry",
        "Exceptions (on-disk order)",
        "Areas",
        "Usage",
        "112/8192 16",
    ] {
        assert!(text.contains(section), "{section}: {text}");
    }
    let lines: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Exceptions"))
        .skip(1)
        .take(13)
        .collect();
    assert!(
        lines[0].contains("index") && lines[0].contains("old_chunk"),
        "{lines:?}"
    );
    assert!(
        lines.iter().all(|l| l.len() == lines[0].len()),
        "fixed width: {lines:?}"
    );
    let fields: Vec<&str> = lines[12].split_whitespace().collect();
    assert_eq!(fields, ["11", &scattered_old_chunk(11).to_string(), "13"]);
    assert!(text.contains("(12 exceptions)"));
}

#[test]
fn output_goes_to_a_file_with_o() {
    let dir = tempdir();
    let path = build_store(&dir, "cow.img", 8, 64, 5);
    let out = dir.path().join("dump.json");
    let output = tool("cowdump")
        .args(["--format", "json", "-o"])
        .arg(&out)
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(output.stdout.is_empty());
    let parsed: PersistentDump =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(parsed.exceptions.len(), 5);
}

#[test]
fn hex_prints_one_chunk() {
    let dir = tempdir();
    let path = build_store(&dir, "cow.img", 8, 64, 2);
    let text = stdout(&dump_output(&["--hex", "0"], &path));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "000000000000  53 6e 41 70 01 00 00 00  01 00 00 00 08 00 00 00  |SnAp............|"
    );
    assert_eq!(lines.last(), Some(&"000000001000"));
    let area = stdout(&dump_output(&["--hex", "1"], &path));
    assert!(
        area.starts_with(
            "000000001000  00 00 00 00 00 00 00 00  02 00 00 00 00 00 00 00  |................|"
        ),
        "{area}"
    );
}

#[test]
fn hex_past_the_end_is_an_error() {
    let dir = tempdir();
    let path = build_store(&dir, "cow.img", 8, 64, 2);
    let output = tool("cowdump")
        .args(["--hex", "64"])
        .arg(&path)
        .output()
        .unwrap();
    let text = assert_one_line_error(&output, 2, "cow.img");
    assert!(
        text.contains("chunk 64 is past the end of the device (64 chunks"),
        "{text}"
    );
}

#[test]
fn golden_images_report_the_manifest_counts_and_status() {
    let dir = tempdir();
    for name in ["a", "b2", "c", "c2"] {
        let path = golden_cow(&dir, name);
        let expected = golden_expected(name);
        let output = dump_output(&["--format", "json"], &path);
        let dump: PersistentDump = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(
            dump.exceptions.len() as u64,
            expected["exceptions_count"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            dump.tail.status,
            expected["kernel_status_if_reloaded"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            dump.head.valid,
            expected["header"]["valid"].as_u64() == Some(1),
            "{name}"
        );
        let manifest_records: Vec<(u64, u64)> = expected["exceptions"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["old_chunk"].as_u64().unwrap(),
                    e["new_chunk"].as_u64().unwrap(),
                )
            })
            .collect();
        let dumped: Vec<(u64, u64)> = dump
            .exceptions
            .iter()
            .map(|r| (r.old_chunk, r.new_chunk))
            .collect();
        assert_eq!(dumped, manifest_records, "{name}");
    }
}

#[test]
fn an_area_past_the_end_is_a_warning_in_the_dump() {
    let dir = tempdir();
    let path = build_store(&dir, "cow.img", 8, 600, 256);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(258 * 4096)
        .unwrap();
    let output = tool("cowdump")
        .args(["--format", "json"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let text = stderr(&output);
    assert!(
        text.contains("warning") && text.contains("area 1 (chunk 258) lies past the end"),
        "{text}"
    );
    let dump: PersistentDump = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(dump.exceptions.len(), 256);
    assert_eq!(dump.tail.problems.len(), 1);
    assert_eq!(
        dump.tail.status,
        cowfmt::persistent::dump::UNLOADABLE_STATUS
    );
    let expected = library_dump(&path, StoreKind::Persistent, true);
    for format in ["json", "yaml"] {
        let output = tool("cowdump")
            .args(["-q", "--runs", "--format", format])
            .arg(&path)
            .output()
            .unwrap();
        let parsed: PersistentDump = serde_yaml::from_slice(&output.stdout).unwrap();
        assert_eq!(parsed, expected, "{format}");
    }
    let quiet = tool("cowdump")
        .args(["-q", "--format", "json"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(quiet.stderr.is_empty());
}

#[test]
fn shared_stores_are_not_handled_yet() {
    let dir = tempdir();
    let path = blank_image(&dir, "shared.img", 1 << 20);
    write_header(&path, cowfmt::kind::SHARED_MAGIC, 1, 1, 8);
    let output = tool("cowdump").arg(&path).output().unwrap();
    let text = assert_one_line_error(&output, 2, "shared.img");
    assert!(text.contains("does not handle shared stores"), "{text}");
}

#[test]
fn kind_that_disagrees_with_the_header_is_an_error() {
    let dir = tempdir();
    let path = build_store(&dir, "cow.img", 8, 64, 1);
    let output = tool("cowdump")
        .args(["--kind", "shared"])
        .arg(&path)
        .output()
        .unwrap();
    let text = assert_one_line_error(&output, 2, "cow.img");
    assert!(text.contains("--kind shared"), "{text}");
}

fn assert_bad_input(path: &std::path::Path, expected: &str) {
    let name = path.file_name().unwrap().to_str().unwrap();
    let output = tool("cowdump").arg(path).output().unwrap();
    let text = assert_one_line_error(&output, 2, name);
    assert!(text.contains(expected), "{expected}: {text}");
    assert!(output.stdout.is_empty(), "no partial dump");
}

#[test]
fn bad_input_is_one_clear_line_and_exit_2() {
    let dir = tempdir();
    assert_bad_input(&blank_image(&dir, "empty.img", 0), "truncated");
    assert_bad_input(&blank_image(&dir, "zeros.img", 100), "not formatted");
    let short = blank_image(&dir, "short.img", 100);
    write_header(&short, cowfmt::kind::PERSISTENT_MAGIC, 1, 1, 8);
    assert_bad_input(&short, "needs a header and an area");
    let no_area = build_store(&dir, "no-area.img", 8, 64, 0);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&no_area)
        .unwrap()
        .set_len(4096)
        .unwrap();
    assert_bad_input(&no_area, "needs a header and an area");
    let magic = build_store(&dir, "magic.img", 8, 64, 0);
    write_header(&magic, 0xdead_beef, 1, 1, 8);
    assert_bad_input(&magic, "not a COW store");
    let three = build_store(&dir, "three.img", 8, 64, 0);
    write_header(&three, cowfmt::kind::PERSISTENT_MAGIC, 1, 1, 3);
    assert_bad_input(&three, "chunk size 3 sectors is not a power of two");
    let huge = build_store(&dir, "huge.img", 8, 64, 0);
    write_header(&huge, cowfmt::kind::PERSISTENT_MAGIC, 1, 1, 1 << 30);
    assert_bad_input(&huge, "larger than the kernel's limit");
    let version = build_store(&dir, "version.img", 8, 64, 0);
    write_header(&version, cowfmt::kind::PERSISTENT_MAGIC, 1, 2, 8);
    assert_bad_input(&version, "version 2");
    assert_bad_input(&dir.path().join("missing.img"), "cannot open");
    let output = tool("cowdump").arg(dir.path()).output().unwrap();
    let text = assert_one_line_error(&output, 2, &dir.path().display().to_string());
    assert!(text.contains("is a directory"), "{text}");
}

#[test]
fn help_has_examples_and_version_works() {
    let output = tool("cowdump").arg("--help").output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("EXAMPLES:"));
    let output = tool("cowdump").arg("--version").output().unwrap();
    assert!(stdout(&output).starts_with("cowdump "));
}
