//! Data-safety cases: restore. `mkcow --from-dump` reads a dump as a stream
//! of records (case 6): its memory does not grow with the dump, and it checks
//! and refuses exactly what it did when it read the whole dump at once.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use cowfmt::StoreKind;

use crate::common::{
    assert_error_says, assert_one_line_error, assert_refused_without_output, assert_success_says,
    build_store, library_dump, stderr, stdout, tempdir, text_file, tool,
};

fn cowdump(store: &Path, format: &str, out: &Path) {
    tool("cowdump")
        .args(["--format", format, "-o"])
        .arg(out)
        .arg(store)
        .assert()
        .success();
}

fn restore(dump: &Path, target: &Path, extra: &[&str]) -> Output {
    tool("mkcow")
        .args(extra)
        .arg("--from-dump")
        .arg(dump)
        .arg(target)
        .output()
        .unwrap()
}

/// `mkcow --from-dump` under a data limit (RLIMIT_DATA, which counts heap and
/// anonymous mappings) of `kib`, through the shell's `ulimit -d`.
fn restore_limited(kib: u64, dump: &Path, target: &Path, size: &str) -> Output {
    let mkcow = assert_cmd::cargo::cargo_bin("mkcow");
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -d {kib} && exec \"$0\" \"$@\""))
        .arg(&mkcow)
        .args(["-q", "--size", size, "--from-dump"])
        .arg(dump)
        .arg(target)
        .output()
        .unwrap()
}

/// A persistent dump of `records` records in `format`, written as cowdump
/// lays it out, with new chunks past the first metadata areas.
fn persistent_dump(dir: &Path, format: &str, records: u64) -> PathBuf {
    let path = dir.join(format!("big.{format}"));
    let mut text = String::with_capacity(records as usize * 48);
    // 4 KiB chunks, 256 records an area: data chunks skip every 257th chunk.
    let new_chunk = |i: u64| 2 + i + i / 256;
    match format {
        "yaml" => {
            text.push_str(
                "format_version: 1\nkind: persistent\nchunk_size: 8\nvalid: true\nexceptions:\n",
            );
            for i in 0..records {
                let _ = writeln!(
                    text,
                    "- {{old_chunk: {}, new_chunk: {}}}",
                    i * 3 + 1,
                    new_chunk(i)
                );
            }
            text.push_str("status: 1/1 1\n");
        }
        _ => {
            text.push_str("{\n  \"format_version\": 1,\n  \"kind\": \"persistent\",\n  \"chunk_size\": 8,\n  \"valid\": true,\n  \"exceptions\": [\n");
            for i in 0..records {
                let comma = if i + 1 < records { "," } else { "" };
                let _ = writeln!(
                    text,
                    "    {{\"old_chunk\":{},\"new_chunk\":{}}}{comma}",
                    i * 3 + 1,
                    new_chunk(i)
                );
            }
            text.push_str("  ],\n  \"status\": \"1/1 1\"\n}\n");
        }
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_restore_does_not_hold_the_dump_in_memory() {
    // 600,000 records: 28-30 MB of text, 9.6 MB of records. A reader that
    // holds the text or the records does not fit in 24 MiB of data; the
    // streaming restore needs a few MiB and its bitmaps.
    let dir = tempdir();
    for format in ["yaml", "json"] {
        let dump = persistent_dump(dir.path(), format, 600_000);
        let target = dir.path().join(format!("limited-{format}.img"));
        let output = restore_limited(24 << 10, &dump, &target, "3G");
        assert_eq!(
            output.status.code(),
            Some(0),
            "{format}: {}",
            stderr(&output)
        );
        let restored = library_dump(&target, StoreKind::Persistent, false);
        assert_eq!(restored.exceptions.len(), 600_000, "{format}");
        assert_eq!(restored.exceptions[599_999].old_chunk, 599_999 * 3 + 1);
        std::fs::remove_file(&dump).unwrap();
    }
}

#[test]
fn a_large_restore_round_trips_exactly_in_both_formats() {
    let dir = tempdir();
    let source = build_store(&dir, "source.img", 8, 40_000, 30_000);
    for format in ["yaml", "json"] {
        let dump = dir.path().join(format!("dump.{format}"));
        cowdump(&source, format, &dump);
        let target = dir.path().join(format!("restored-{format}.img"));
        let output = restore(&dump, &target, &["--size", &(40_000u64 * 4096).to_string()]);
        assert_success_says(&output, &["restored 30000 exceptions in 118 areas"]);
        let again = dir.path().join(format!("again.{format}"));
        cowdump(&target, format, &again);
        assert_eq!(
            std::fs::read(&again).unwrap(),
            std::fs::read(&dump).unwrap(),
            "the dump of the restored store is the dump ({format})"
        );
    }
}

/// A shared dump of `origins` origin chunks, two records each (snapshots 0-1
/// and 2-63 of 64), in `format`, laid out as cowdump writes it.
fn shared_dump(dir: &Path, format: &str, origins: u64) -> PathBuf {
    let path = dir.join(format!("shared.{format}"));
    let late: Vec<String> = (2..64).map(|id| id.to_string()).collect();
    let mut text = String::new();
    let ids_yaml = |ids: &[String]| ids.join(", ");
    let ids_json = |ids: &[String]| ids.join(",");
    let all: Vec<String> = (0..64).map(|id| id.to_string()).collect();
    let early = ["0".to_string(), "1".to_string()];
    if format == "yaml" {
        let _ = writeln!(
            text,
            "format_version: 1\nkind: shared\nchunk_size: 8\nvalid: true\nsnapshots: [{}]\njournal_chunks: 4\nexceptions:",
            ids_yaml(&all)
        );
        for i in 0..origins {
            let _ = writeln!(
                text,
                "- {{origin_chunk: {}, cow_chunk: {}, snapshots: [{}]}}",
                i * 5,
                100 + 2 * i,
                ids_yaml(&early)
            );
            let _ = writeln!(
                text,
                "- {{origin_chunk: {}, cow_chunk: {}, snapshots: [{}]}}",
                i * 5,
                101 + 2 * i,
                ids_yaml(&late)
            );
        }
        text.push_str("nodes: 1\n");
    } else {
        let _ = writeln!(
            text,
            "{{\n  \"format_version\": 1,\n  \"kind\": \"shared\",\n  \"chunk_size\": 8,\n  \"valid\": true,\n  \"snapshots\": [{}],\n  \"journal_chunks\": 4,\n  \"exceptions\": [",
            ids_json(&all)
        );
        for i in 0..origins {
            let _ = writeln!(
                text,
                "    {{\"origin_chunk\":{},\"cow_chunk\":{},\"snapshots\":[{}]}},",
                i * 5,
                100 + 2 * i,
                ids_json(&early)
            );
            let comma = if i + 1 < origins { "," } else { "" };
            let _ = writeln!(
                text,
                "    {{\"origin_chunk\":{},\"cow_chunk\":{},\"snapshots\":[{}]}}{comma}",
                i * 5,
                101 + 2 * i,
                ids_json(&late)
            );
        }
        text.push_str("  ],\n  \"nodes\": 1\n}\n");
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_large_shared_restore_round_trips_in_both_formats() {
    let dir = tempdir();
    for format in ["yaml", "json"] {
        let dump = shared_dump(dir.path(), format, 20_000);
        let target = dir.path().join(format!("shared-{format}.img"));
        let output = restore(&dump, &target, &["--size", "256M"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert!(
            stdout(&output).contains("restored a shared store")
                && stdout(&output).contains("40000 records of 20000 origin chunks"),
            "{}",
            stdout(&output)
        );
        let again = dir.path().join(format!("again-{format}.json"));
        cowdump(&target, "json", &again);
        let again: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&again).unwrap()).unwrap();
        let records = again["exceptions"].as_array().unwrap();
        assert_eq!(records.len(), 40_000);
        assert_eq!(records[39_999]["origin_chunk"], 19_999 * 5);
        assert_eq!(records[39_999]["cow_chunk"], 101 + 2 * 19_999);
        assert_eq!(records[39_999]["snapshots"].as_array().unwrap().len(), 62);
        assert_eq!(again["snapshots"].as_array().unwrap().len(), 64);
    }
}

#[test]
fn yaml_and_json_errors_name_the_file_the_line_and_the_record() {
    let dir = tempdir();
    let cases = [
        (
            "bad.yaml",
            "chunk_size: 8\nvalid: true\nexceptions:\n- {old_chunk: 1, new_chunk: 2}\n- {old_chunk: 2, new_chunk: x}\n",
            ["exceptions[1] at line 5", "expected u64"],
        ),
        (
            "missing.yaml",
            "chunk_size: 8\nvalid: true\nexceptions:\n- {old_chunk: 1, new_chunk: 2}\n- {old_chunk: 2}\n",
            ["exceptions[1] at line 5", "missing field `new_chunk`"],
        ),
        (
            "bad.json",
            "{\"chunk_size\":8,\"valid\":true,\"exceptions\":[\n{\"old_chunk\":1,\"new_chunk\":2},\n{\"old_chunk\":2,\"new_chunk\":\"x\"}]}",
            ["exceptions[1]: invalid type: string \"x\", expected u64", "line 3"],
        ),
        (
            "ids.yaml",
            "kind: shared\nchunk_size: 8\nvalid: true\nsnapshots: [0]\nexceptions:\n- {origin_chunk: 1, cow_chunk: 90, snapshots: [64]}\n",
            ["exceptions[0] at line 6", "snapshot id 64 is out of range (0-63)"],
        ),
        (
            "syntax.yaml",
            "chunk_size: 8\nvalid: true\nexceptions:\n- {old_chunk: 1, new_chunk: 2\n",
            ["not a usable cowdump dump", "line 5"],
        ),
    ];
    for (name, text, expected) in cases {
        let dump = dir.path().join(name);
        std::fs::write(&dump, text).unwrap();
        let target = dir.path().join(format!("{name}.img"));
        let output = restore(&dump, &target, &["--size", "64M"]);
        let message = assert_one_line_error(&output, 2, name);
        for part in expected {
            assert!(message.contains(part), "{name}: {message}");
        }
        assert!(
            !target.exists(),
            "{name}: nothing is created for an unusable dump"
        );
    }
}

#[test]
fn records_out_of_order_and_duplicates_are_handled_as_before() {
    let dir = tempdir();
    // Persistent: the records keep the dump's order, whatever it is.
    let dump = text_file(&dir, "order.yaml", "chunk_size: 8\nvalid: true\nexceptions:\n- {old_chunk: 90, new_chunk: 5}\n- {old_chunk: 3, new_chunk: 2}\n- {old_chunk: 40, new_chunk: 9}\n");
    let target = dir.path().join("order.img");
    let output = restore(&dump, &target, &["-q", "--size", "4M"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let pairs: Vec<(u64, u64)> = library_dump(&target, StoreKind::Persistent, false)
        .exceptions
        .iter()
        .map(|r| (r.old_chunk, r.new_chunk))
        .collect();
    assert_eq!(pairs, [(90, 5), (3, 2), (40, 9)]);
    // Duplicates: the first named, the others counted, nothing written.
    let dump = text_file(&dir, "twice.json", "{\"chunk_size\":8,\"valid\":true,\"exceptions\":[{\"old_chunk\":1,\"new_chunk\":2},{\"old_chunk\":1,\"new_chunk\":3},{\"old_chunk\":4,\"new_chunk\":2},{\"old_chunk\":1,\"new_chunk\":6}]}");
    let target = dir.path().join("twice.img");
    let output = restore(&dump, &target, &["--size", "4M"]);
    assert_refused_without_output(&output, 2, "twice.json", &["exception 1 (old_chunk 1, new_chunk 3): old_chunk is already mapped by an earlier exception (2 more exceptions are unusable)"], &target);
    // Shared: origin chunks must ascend; a COW chunk is used once.
    for (name, records, expected) in [
        ("down.json", "{\"origin_chunk\":7,\"cow_chunk\":40,\"snapshots\":[0]},{\"origin_chunk\":3,\"cow_chunk\":41,\"snapshots\":[0]}", "exception 1 (origin_chunk 3, cow_chunk 41): origin chunks must ascend, but it follows origin chunk 7"),
        ("cow.json", "{\"origin_chunk\":3,\"cow_chunk\":40,\"snapshots\":[0]},{\"origin_chunk\":5,\"cow_chunk\":40,\"snapshots\":[0]}", "data chunk 40 is used twice"),
    ] {
        let dump = dir.path().join(name);
        std::fs::write(
            &dump,
            format!("{{\"kind\":\"shared\",\"chunk_size\":1,\"valid\":true,\"snapshots\":[0],\"journal_chunks\":0,\"exceptions\":[{records}]}}"),
        )
        .unwrap();
        let output = restore(&dump, &dir.path().join(format!("{name}.img")), &["--size", "64K"]);
        let message = assert_one_line_error(&output, 2, name);
        assert!(message.contains(expected), "{name}: {message}");
    }
}

#[test]
fn a_dump_whose_kind_comes_after_its_records_is_read_again() {
    let dir = tempdir();
    let dump = text_file(&dir, "late-kind.yaml", "chunk_size: 1\nvalid: true\nsnapshots: [0, 1]\njournal_chunks: 0\nexceptions:\n- {origin_chunk: 3, cow_chunk: 40, snapshots: [0, 1]}\nkind: shared\n");
    let target = dir.path().join("late.img");
    let output = restore(&dump, &target, &["--size", "64K"]);
    assert_success_says(&output, &["1 records of 1 origin chunks"]);
    let output = tool("mkcow")
        .args(["--size", "64K", "--from-dump", "-"])
        .arg(dir.path().join("stdin.img"))
        .write_stdin(std::fs::read(&dump).unwrap())
        .output()
        .unwrap();
    assert_error_says(
        &output,
        2,
        "stdin",
        &["missing field `old_chunk`", "give --kind"],
    );
    let output = tool("mkcow")
        .args([
            "-q",
            "--kind",
            "shared",
            "--size",
            "64K",
            "--from-dump",
            "-",
        ])
        .arg(dir.path().join("stdin.img"))
        .write_stdin(std::fs::read(&dump).unwrap())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}
