//! CLI tests of cowdump: YAML, JSON and table output, runs, hex, golden images
//! and bad input, for persistent and shared stores.

use crate::common;

use common::*;
use cowfmt::persistent::dump::PersistentDump;
use cowfmt::shared::dump::{
    BitmapDump, ChunkClass, SharedDump, SharedSource, SnapshotDump, TreeBody, TreeDump,
};
use cowfmt::{Access, Device, StoreKind};

fn dump_output(args: &[&str], path: &std::path::Path) -> std::process::Output {
    let output = tool("cowdump").args(args).arg(path).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    output
}

/// Runs `cowdump --format json -o DIR/dump.json PATH`, which must succeed and
/// print nothing; returns what it wrote to the file.
fn json_dump_to_file(dir: &tempfile::TempDir, path: &std::path::Path) -> Vec<u8> {
    let out = dir.path().join("dump.json");
    let output = cowdump(&["--format", "json", "-o", s(&out)], path);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(output.stdout.is_empty());
    std::fs::read(&out).unwrap()
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

/// The table dump of the store at `path`, which must show every one of
/// `sections`.
fn table_with_sections(path: &std::path::Path, sections: &[&str]) -> String {
    let text = stdout(&dump_output(&["--format", "table"], path));
    for section in sections {
        assert!(text.contains(section), "{section}: {text}");
    }
    text
}

/// The lines of a table dump after its "Exceptions" heading.
fn exception_rows(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .skip_while(|l| !l.starts_with("Exceptions"))
        .skip(1)
}

#[test]
fn table_format_shows_sections_and_aligned_exceptions() {
    let dir = tempdir();
    let path = build_store(&dir, "cow.img", 8, 1024, 12);
    let text = table_with_sections(
        &path,
        &[
            "Header",
            "Geometry",
            "Exceptions (on-disk order)",
            "Areas",
            "Usage",
            "112/8192 16",
        ],
    );
    let lines: Vec<&str> = exception_rows(&text).take(13).collect();
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
    let parsed: PersistentDump = serde_json::from_slice(&json_dump_to_file(&dir, &path)).unwrap();
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
    let output = cowdump(&["--hex", "64"], &path);
    assert_error_says(
        &output,
        2,
        "cow.img",
        &["chunk 64 is past the end of the device (64 chunks"],
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
    let output = cowdump(&["--format", "json"], &path);
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
        let output = cowdump(&["-q", "--runs", "--format", format], &path);
        let parsed: PersistentDump = serde_yaml::from_slice(&output.stdout).unwrap();
        assert_eq!(parsed, expected, "{format}");
    }
    let quiet = cowdump(&["-q", "--format", "json"], &path);
    assert!(quiet.stderr.is_empty());
}

#[test]
fn kind_that_disagrees_with_the_header_is_an_error() {
    let dir = tempdir();
    let path = build_store(&dir, "cow.img", 8, 64, 1);
    let output = cowdump(&["--kind", "shared"], &path);
    assert_error_says(&output, 2, "cow.img", &["--kind shared"]);
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
    assert_error_says(
        &output,
        2,
        &dir.path().display().to_string(),
        &["is a directory"],
    );
}

// Shared stores.

/// Chunk bytes of the shared test stores.
const SHARED_CHUNK: u64 = 512;

/// A shared store written by the engine: snapshots 0 and 1, origin writes before
/// and after the second, and a snapshot write, so that masks differ and the tree
/// has node levels.
fn build_shared(dir: &tempfile::TempDir, name: &str) -> std::path::PathBuf {
    let origin_path = dir.path().join(format!("{name}.origin"));
    let cow_path = dir.path().join(name);
    std::fs::write(&origin_path, vec![5u8; 1500 * SHARED_CHUNK as usize]).unwrap();
    let origin = Device::open(&origin_path, Access::ReadWrite).unwrap();
    let mut store = engine_create(&cow_path, 8192 * SHARED_CHUNK, origin, 1, 4);
    let data = vec![9u8; SHARED_CHUNK as usize];
    let first = store.create_snapshot(None).unwrap();
    for c in (0..1500).step_by(3) {
        store.origin_write(c * SHARED_CHUNK, &data).unwrap();
    }
    store.create_snapshot(None).unwrap();
    for c in (0..1500).step_by(2) {
        store.origin_write(c * SHARED_CHUNK, &data).unwrap();
    }
    store
        .snapshot_write(first, 3 * SHARED_CHUNK, &data)
        .unwrap();
    store.commit().unwrap();
    cow_path
}

fn shared_source(path: &std::path::Path) -> SharedSource {
    SharedSource::open(Device::open(path, Access::ReadOnly).unwrap()).unwrap()
}

fn json_of(output: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap()
}

fn yaml_of(output: &std::process::Output) -> serde_json::Value {
    serde_yaml::from_slice(&output.stdout).unwrap()
}

#[test]
fn shared_json_has_the_documented_fields() {
    let dir = tempdir();
    let path = build_shared(&dir, "shared.img");
    let output = dump_output(&["--format", "json"], &path);
    let json = json_of(&output);
    let library = shared_source(&path);
    let header = library.header();
    assert_eq!(json["format_version"], 1);
    assert_eq!(json["kind"], "shared");
    assert_eq!(json["magic"], "0x55378008");
    assert_eq!(json["chunk_size"], 1);
    assert_eq!(json["valid"], true);
    assert_eq!(json["version"], 1);
    assert_eq!(json["snapshots"], serde_json::json!([0, 1]));
    assert_eq!(json["tree_level"], header.tree_level);
    assert!(header.tree_level >= 2, "the store should have node levels");
    assert_eq!(json["root_tree_chunk"], header.root_tree_chunk);
    assert_eq!(json["journal_chunks"], 4);
    let exceptions = json["exceptions"].as_array().unwrap();
    let first = &exceptions[0];
    assert_eq!(first.as_object().unwrap().len(), 3, "{first}");
    assert!(first["origin_chunk"].is_u64() && first["cow_chunk"].is_u64());
    assert!(first["snapshots"].is_array());
    let origins: Vec<u64> = exceptions
        .iter()
        .map(|e| e["origin_chunk"].as_u64().unwrap())
        .collect();
    assert!(origins.windows(2).all(|w| w[0] <= w[1]), "origin order");
    let parsed: SharedDump = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(parsed, SharedDump::of(&library).unwrap());
    assert_eq!(parsed.exceptions.len() as u64, parsed.tail.records);
    let text = stdout(&output);
    assert!(
        text.contains("\n    {\"origin_chunk\":0,\"cow_chunk\":"),
        "one record per line: {}",
        &text[..600.min(text.len())]
    );
}

#[test]
fn shared_yaml_and_json_describe_the_same_data_in_every_view() {
    let dir = tempdir();
    let path = build_shared(&dir, "shared.img");
    for view in [&[][..], &["--snapshot", "1"], &["--tree"], &["--bitmap"]] {
        let json = dump_output(&[view, &["--format", "json"]].concat(), &path);
        let yaml = dump_output(&[view, &["--format", "yaml"]].concat(), &path);
        assert_eq!(json_of(&json), yaml_of(&yaml), "{view:?}");
        assert_eq!(
            dump_output(view, &path).stdout,
            yaml.stdout,
            "YAML is the default"
        );
    }
    let library = shared_source(&path);
    let yaml = dump_output(&[], &path);
    assert!(stdout(&yaml).contains("\nexceptions:\n- {origin_chunk: 0, cow_chunk: "));
    assert_eq!(
        serde_yaml::from_slice::<SharedDump>(&yaml.stdout).unwrap(),
        SharedDump::of(&library).unwrap()
    );
    let tree = dump_output(&["--tree", "--format", "json"], &path);
    assert_eq!(
        serde_json::from_slice::<TreeDump>(&tree.stdout).unwrap(),
        TreeDump::of(&library).unwrap()
    );
    let bitmap = dump_output(&["--bitmap"], &path);
    assert_eq!(
        serde_yaml::from_slice::<BitmapDump>(&bitmap.stdout).unwrap(),
        BitmapDump::of(&library).unwrap()
    );
}

#[test]
fn shared_snapshot_view_lists_what_it_sees() {
    let dir = tempdir();
    let path = build_shared(&dir, "shared.img");
    let all: SharedDump =
        serde_json::from_slice(&dump_output(&["--format", "json"], &path).stdout).unwrap();
    for id in [0u32, 1] {
        let output = dump_output(&["--snapshot", &id.to_string(), "--format", "json"], &path);
        let json = json_of(&output);
        assert_eq!(json["snapshot"], id);
        let seen: SnapshotDump = serde_json::from_value(json).unwrap();
        let want: Vec<(u64, u64)> = all
            .exceptions
            .iter()
            .filter(|r| r.snapshots.contains(id))
            .map(|r| (r.origin_chunk, r.cow_chunk))
            .collect();
        let got: Vec<(u64, u64)> = seen
            .exceptions
            .iter()
            .map(|r| (r.origin_chunk, r.cow_chunk))
            .collect();
        assert_eq!(got, want, "snapshot {id}");
        assert!(!got.is_empty());
    }
}

#[test]
fn shared_snapshot_that_does_not_exist_exits_2_naming_the_existing_ones() {
    let dir = tempdir();
    let path = build_shared(&dir, "shared.img");
    for id in ["2", "63", "64"] {
        let output = cowdump(&["--snapshot", id, "--format", "json"], &path);
        assert_error_says(
            &output,
            2,
            "shared.img",
            &[
                &format!("snapshot {id} does not exist"),
                "the snapshots are 0-1",
            ],
        );
        assert!(output.stdout.is_empty(), "no partial dump");
    }
}

#[test]
fn shared_tree_lists_every_block() {
    let dir = tempdir();
    let path = build_shared(&dir, "shared.img");
    let tree: TreeDump =
        serde_json::from_slice(&dump_output(&["--tree", "--format", "json"], &path).stdout)
            .unwrap();
    let root = &tree.tree[0];
    assert_eq!(root.chunk, tree.head.root_tree_chunk);
    assert_eq!((root.lo, root.hi, root.parent), (0, None, None));
    let leaves: Vec<_> = tree
        .tree
        .iter()
        .filter(|b| matches!(b.body, TreeBody::Leaf { .. }))
        .collect();
    let nodes = tree.tree.len() - leaves.len();
    assert_eq!(leaves.len() as u64, tree.tail.leaves);
    assert_eq!(nodes as u64, tree.tail.nodes);
    for pair in leaves.windows(2) {
        assert_eq!(pair[0].hi, Some(pair[1].lo), "leaf ranges tile the keys");
    }
    assert_eq!(leaves.last().unwrap().hi, None);
    let table = stdout(&dump_output(&["--tree", "--format", "table"], &path));
    assert!(table.contains("Tree (walk order)"), "{table}");
    let root_line = format!(
        "chunk {}  level {}  node  origin chunks 0..",
        root.chunk, root.level
    );
    assert!(table.contains(&root_line), "{root_line}: {table}");
    assert!(table.contains(&format!("({} blocks)", tree.tree.len())));
}

#[test]
fn shared_bitmap_view_finds_a_leaked_chunk() {
    let dir = tempdir();
    let path = build_shared(&dir, "shared.img");
    // Mark the last chunk of the device (bit 8191 of bitmap chunk 1) in use.
    poke(&path, SHARED_CHUNK + 8191 / 8, &[0x80]);
    let json = json_of(&dump_output(&["--bitmap", "--format", "json"], &path));
    let runs = json["bitmap"].as_array().unwrap();
    assert_eq!(
        runs[0],
        serde_json::json!({"start": 0, "end": 1, "class": "header", "used": true})
    );
    assert_eq!(
        runs.last().unwrap(),
        &serde_json::json!({"start": 8191, "end": 8192, "class": "leaked", "used": true})
    );
    assert_eq!(json["classes"]["leaked"], 1);
    assert_eq!(json["classes"]["unmarked"], 0);
    let covered: u64 = runs
        .iter()
        .map(|r| r["end"].as_u64().unwrap() - r["start"].as_u64().unwrap())
        .sum();
    assert_eq!(covered, 8192);
    let dump: BitmapDump = serde_json::from_value(json).unwrap();
    assert!(dump.bitmap.iter().any(|r| r.class == ChunkClass::Data));
    let table = stdout(&dump_output(&["--bitmap", "--format", "table"], &path));
    assert!(
        table.contains("Chunks by class") && table.contains("leaked"),
        "{table}"
    );
}

#[test]
fn shared_tables_show_every_section() {
    let dir = tempdir();
    let path = build_shared(&dir, "shared.img");
    let text = table_with_sections(
        &path,
        &[
            "Header",
            "0x55378008",
            "Geometry",
            "Chunks (from the bitmap)",
            "Exceptions (origin order)",
            "Tree totals",
        ],
    );
    let lines: Vec<&str> = exception_rows(&text)
        .take_while(|l| !l.starts_with('('))
        .collect();
    assert!(lines[0].contains("origin_chunk") && lines[0].contains("snapshots"));
    let dump = SharedDump::of(&shared_source(&path)).unwrap();
    assert_eq!(lines.len() - 1, dump.exceptions.len());
    let first: Vec<&str> = lines[1].split_whitespace().collect();
    let r = dump.exceptions[0];
    assert_eq!(
        first,
        [
            r.origin_chunk.to_string(),
            r.cow_chunk.to_string(),
            cowfmt::shared::mask::describe(r.snapshots.0)
        ]
    );
    let snap = stdout(&dump_output(
        &["--snapshot", "0", "--format", "table"],
        &path,
    ));
    assert!(snap.contains("Snapshot 0 (origin order)"), "{snap}");
}

#[test]
fn shared_damage_is_dumped_with_a_warning() {
    let dir = tempdir();
    let path = build_shared(&dir, "shared.img");
    let tree = TreeDump::of(&shared_source(&path)).unwrap();
    let leaf = tree
        .tree
        .iter()
        .find(|b| matches!(b.body, TreeBody::Leaf { .. }))
        .unwrap();
    poke(&path, leaf.chunk * SHARED_CHUNK, &[0, 0]);
    poke(&path, 4, &0u32.to_le_bytes());
    for format in ["json", "yaml", "table"] {
        for view in ["--tree", "--bitmap", "--quiet"] {
            let output = cowdump(&["--format", format, view], &path);
            assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
            assert_no_panic(&output);
            if view == "--quiet" {
                assert!(output.stderr.is_empty());
            } else {
                let text = stderr(&output);
                assert!(
                    text.contains("warning")
                        && text.contains(&format!("chunk {} (level 0", leaf.chunk))
                        && text.contains("leaf magic is 0x0000"),
                    "{text}"
                );
            }
        }
    }
    let json = json_of(&dump_output(&["--format", "json", "-q"], &path));
    assert_eq!(json["valid"], false);
    assert_eq!(json["valid_raw"], 0);
    assert_eq!(json["problems"].as_array().unwrap().len(), 1);
    assert_eq!(json["problems"][0]["chunk"], leaf.chunk);
    let tree = json_of(&dump_output(&["--tree", "--format", "json", "-q"], &path));
    let damaged: Vec<&serde_json::Value> = tree["tree"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "damaged")
        .collect();
    assert_eq!(damaged.len(), 1);
    assert_eq!(damaged[0]["chunk"], leaf.chunk);
    let yaml = yaml_of(&dump_output(&["--tree", "-q"], &path));
    assert_eq!(
        yaml, tree,
        "the hand-written YAML tree reads as the JSON one"
    );
}

#[test]
fn shared_hex_and_output_file() {
    let dir = tempdir();
    let path = build_shared(&dir, "shared.img");
    let text = stdout(&dump_output(&["--hex", "0"], &path));
    assert!(
        text.starts_with("000000000000  08 80 37 55 01 00 00 00  01 00 00 00 01 00 00 00"),
        "{text}"
    );
    assert_eq!(text.lines().last(), Some("000000000200"));
    let output = cowdump(&["--hex", "8192"], &path);
    let text = assert_one_line_error(&output, 2, "shared.img");
    assert!(text.contains("chunk 8192 is past the end of the device (8192 chunks of 512 bytes)"));
    let parsed: SharedDump = serde_json::from_slice(&json_dump_to_file(&dir, &path)).unwrap();
    assert_eq!(parsed, SharedDump::of(&shared_source(&path)).unwrap());
}

#[test]
fn flags_of_the_other_kind_are_refused() {
    let dir = tempdir();
    let shared = build_shared(&dir, "shared.img");
    let output = tool("cowdump").arg("--runs").arg(&shared).output().unwrap();
    assert_error_says(
        &output,
        2,
        "shared.img",
        &["--runs is for persistent and legacy stores"],
    );
    let persistent = build_store(&dir, "cow.img", 8, 64, 1);
    for flag in [&["--tree"][..], &["--bitmap"], &["--snapshot", "0"]] {
        let output = tool("cowdump")
            .args(flag)
            .arg(&persistent)
            .output()
            .unwrap();
        let text = assert_one_line_error(&output, 2, "cow.img");
        assert!(
            text.contains(&format!(
                "{} is for shared stores, and this is a persistent store",
                flag[0]
            )),
            "{text}"
        );
    }
    let output = cowdump(&["--tree", "--bitmap"], &shared);
    assert_eq!(output.status.code(), Some(2), "one view at a time");
}

#[test]
fn bad_shared_headers_and_truncated_images_are_one_line_errors() {
    let dir = tempdir();
    let path = build_shared(&dir, "shared.img");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(3 * SHARED_CHUNK)
        .unwrap();
    assert_bad_input(&path, "the header describes 512-byte chunks with 1 bitmap and 4 journal chunks: the device has 1536 bytes, at least 3072 are needed");
    let short = build_shared(&dir, "short.img");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&short)
        .unwrap()
        .set_len(20)
        .unwrap();
    assert_bad_input(&short, "truncated");
    let odd = build_shared(&dir, "odd.img");
    poke(&odd, 12, &3u32.to_le_bytes());
    assert_bad_input(&odd, "chunk size 3 sectors is not a power of two");
    let version = build_shared(&dir, "version.img");
    poke(&version, 8, &7u32.to_le_bytes());
    assert_bad_input(&version, "version 7");
    let level = build_shared(&dir, "level.img");
    poke(&level, 32, &u32::MAX.to_le_bytes());
    let output = cowdump(&["--tree"], &level);
    assert_eq!(output.status.code(), Some(0));
    assert!(stderr(&output).contains("tree_level 4294967295 is deeper than any tree can be"));
}

#[test]
fn shared_dump_restores_with_mkcow_to_the_same_records() {
    let dir = tempdir();
    let path = build_shared(&dir, "shared.img");
    for format in ["json", "yaml"] {
        let dump = dir.path().join(format!("dump.{format}"));
        dump_output(&["--format", format, "-o", s(&dump)], &path);
        let restored = blank_image(&dir, &format!("restored-{format}.img"), 8192 * SHARED_CHUNK);
        let output = mkcow(&["-q", "--from-dump", s(&dump)], &restored);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let before = SharedDump::of(&shared_source(&path)).unwrap();
        let after = SharedDump::of(&shared_source(&restored)).unwrap();
        assert_eq!(after.exceptions, before.exceptions, "{format}");
        assert_eq!(after.head.snapshots, before.head.snapshots);
        assert_eq!(after.tail.records, before.tail.records);
    }
}
