//! CLI tests of mkcow: formatting, refusals, sizes, table lines and restore.

use crate::common;

use std::os::unix::fs::MetadataExt;

use common::*;
use cowfmt::persistent::dump::PersistentDump;
use cowfmt::StoreKind;

fn header_bytes(chunk_sectors: u32) -> Vec<u8> {
    let mut bytes = b"SnAp".to_vec();
    for field in [1u32, 1, chunk_sectors] {
        bytes.extend_from_slice(&field.to_le_bytes());
    }
    bytes
}

#[test]
fn formats_exactly_as_the_kernel_does() {
    let dir = tempdir();
    let path = dir.path().join("cow.img");
    let output = tool("mkcow")
        .arg("--size")
        .arg("1M")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), 1 << 20);
    assert_eq!(&bytes[..16], header_bytes(8).as_slice());
    assert!(
        bytes[16..].iter().all(|&b| b == 0),
        "header chunk tail and area 0 are zero"
    );
    let text = stdout(&output);
    assert!(text.contains("formatted a persistent store"), "{text}");
    let line = format!(
        "0 <origin-sectors> snapshot <origin> {} P 8",
        path.display()
    );
    assert!(text.lines().any(|l| l == line), "{text}");
}

#[test]
fn size_creates_a_sparse_file_of_that_size() {
    let dir = tempdir();
    let path = dir.path().join("cow.img");
    mkcow_quiet(&["--size", "64M"], &path);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.len(), 64 << 20);
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "only the header and area 0 are allocated: {} blocks",
        meta.blocks()
    );
}

#[test]
fn size_extends_an_existing_blank_file() {
    let dir = tempdir();
    let path = blank_image(&dir, "cow.img", 8192);
    mkcow_quiet(&["--size", "1M"], &path);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 1 << 20);
}

#[test]
fn chunk_size_accepts_suffixes_and_sectors() {
    let dir = tempdir();
    for (arg, sectors) in [("64k", 128u32), ("8s", 8), ("512", 1), ("1M", 2048)] {
        let path = dir.path().join(format!("cow-{arg}.img"));
        mkcow_quiet(&["--size", "16M", "--chunk-size", arg], &path);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..16], header_bytes(sectors).as_slice(), "{arg}");
        assert!(bytes[16..].iter().all(|&b| b == 0));
    }
}

#[test]
fn a_chunk_size_that_is_not_a_power_of_two_is_a_usage_error() {
    let dir = tempdir();
    let path = dir.path().join("cow.img");
    let output = mkcow(&["--size", "1M", "--chunk-size", "12k"], &path);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("power of two"),
        "{}",
        stderr(&output)
    );
    assert!(!path.exists(), "nothing is created on a usage error");
}

#[test]
fn refuses_an_existing_store_without_force() {
    let dir = tempdir();
    let path = build_store(&dir, "cow.img", 8, 512, 10);
    let before = std::fs::read(&path).unwrap();
    let output = tool("mkcow").arg(&path).output().unwrap();
    assert_error_says(
        &output,
        2,
        "cow.img",
        &[
            "already holds a persistent store (SnAp, chunk size 8)",
            "--force",
        ],
    );
    assert_eq!(std::fs::read(&path).unwrap(), before, "nothing was written");
}

#[test]
fn refuses_any_non_zero_first_chunk_without_force() {
    let dir = tempdir();
    let path = blank_image(&dir, "disk.img", 1 << 20);
    poke(&path, 1000, b"\x01");
    let output = tool("mkcow").arg(&path).output().unwrap();
    assert_error_says(
        &output,
        2,
        "disk.img",
        &["chunk 0 is not all zero (first non-zero byte at offset 1000)"],
    );
}

#[test]
fn a_non_zero_byte_past_the_first_chunk_does_not_count() {
    let dir = tempdir();
    let path = blank_image(&dir, "disk.img", 1 << 20);
    poke(&path, 4096, b"\x01");
    tool("mkcow").arg("-q").arg(&path).assert().success();
}

#[test]
fn force_overwrites_an_existing_store() {
    let dir = tempdir();
    let path = build_store(&dir, "cow.img", 16, 512, 100);
    mkcow_quiet(&["--force"], &path);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..16], header_bytes(8).as_slice());
    assert!(
        bytes[16..8192].iter().all(|&b| b == 0),
        "header chunk and area 0 zeroed"
    );
    let dump = library_dump(&path, StoreKind::Persistent, false);
    assert!(dump.exceptions.is_empty());
    assert_eq!(dump.tail.status, format!("16/{} 16", 512 * 16));
}

#[test]
fn origin_fills_in_the_table_line() {
    let dir = tempdir();
    let origin = blank_image(&dir, "origin.img", 16 << 20);
    let cow = dir.path().join("cow.img");
    let output = tool("mkcow")
        .args(["-q", "--size", "4M", "--chunk-size", "16k", "--origin"])
        .arg(&origin)
        .arg(&cow)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        format!(
            "0 32768 snapshot {} {} P 32\n",
            origin.display(),
            cow.display()
        )
    );
}

#[test]
fn quiet_prints_only_the_table_line() {
    let dir = tempdir();
    let path = dir.path().join("cow.img");
    let output = mkcow(&["-q", "--size", "1M"], &path);
    assert_eq!(stdout(&output).lines().count(), 1);
    assert!(stdout(&output).contains(" snapshot "));
    assert!(output.stderr.is_empty());
}

#[test]
fn legacy_prints_the_p_syntax_note() {
    let dir = tempdir();
    let path = dir.path().join("cow.img");
    let output = mkcow(&["--kind", "legacy", "--size", "1M"], &path);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.contains("formatted a legacy store"), "{text}");
    assert!(
        text.contains("'P' is the only store type mainline kernels accept"),
        "{text}"
    );
    assert!(text.contains(" P 8"), "{text}");
}

#[test]
fn legacy_refuses_two_to_the_32_chunks() {
    let dir = tempdir();
    let path = dir.path().join("huge.img");
    let output = mkcow(
        &["--kind", "legacy", "--chunk-size", "512", "--size", "2T"],
        &path,
    );
    assert_error_says(&output, 2, "huge.img", &["2^32"]);
    assert!(!path.exists(), "nothing is created when refused");
}

#[test]
fn a_target_too_small_for_header_and_area_is_refused() {
    let dir = tempdir();
    for bytes in [0u64, 100, 4096] {
        let path = blank_image(&dir, &format!("small-{bytes}.img"), bytes);
        let output = tool("mkcow").arg(&path).output().unwrap();
        assert_error_says(&output, 2, &format!("small-{bytes}.img"), &["too small"]);
    }
}

fn cowdump(path: &std::path::Path, format: &str, out: &std::path::Path) {
    tool("cowdump")
        .args(["--format", format, "-o"])
        .arg(out)
        .arg(path)
        .assert()
        .success();
}

fn parse_dump(path: &std::path::Path) -> PersistentDump {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

#[test]
fn restore_round_trips_through_json_and_yaml() {
    let dir = tempdir();
    let source = build_store(&dir, "source.img", 8, 1024, 300);
    for format in ["json", "yaml"] {
        let dump_path = dir.path().join(format!("dump.{format}"));
        cowdump(&source, format, &dump_path);
        let target = dir.path().join(format!("restored-{format}.img"));
        let output = tool("mkcow")
            .args(["--size", "4M", "--from-dump"])
            .arg(&dump_path)
            .arg(&target)
            .output()
            .unwrap();
        assert_success_says(&output, &["restored 300 exceptions in 2 areas"]);
        let again = dir.path().join(format!("again.{format}"));
        cowdump(&target, format, &again);
        assert_eq!(parse_dump(&again), parse_dump(&dump_path), "{format}");
        assert_eq!(
            library_dump(&target, StoreKind::Persistent, true),
            library_dump(&source, StoreKind::Persistent, true)
        );
    }
}

#[test]
fn restore_detects_the_syntax_without_an_extension() {
    let dir = tempdir();
    let source = build_store(&dir, "source.img", 8, 256, 20);
    for format in ["json", "yaml"] {
        let dump_path = dir.path().join(format!("dump-{format}"));
        cowdump(&source, format, &dump_path);
        let target = blank_image(&dir, &format!("blank-{format}.img"), 256 * 4096);
        tool("mkcow")
            .arg("-q")
            .arg("--from-dump")
            .arg(&dump_path)
            .arg(&target)
            .assert()
            .success();
        assert_eq!(
            library_dump(&target, StoreKind::Persistent, false).exceptions,
            library_dump(&source, StoreKind::Persistent, false).exceptions
        );
    }
}

#[test]
fn restore_over_an_existing_store_needs_force_and_leaves_data_alone() {
    let dir = tempdir();
    let store = build_store(&dir, "cow.img", 8, 512, 40);
    poke(&store, 2 * 4096, b"DATA");
    let dump_path = dir.path().join("dump.yaml");
    cowdump(&store, "yaml", &dump_path);
    write_area0_record(&store, 5, 1, 0);
    let output = tool("mkcow")
        .arg("--from-dump")
        .arg(&dump_path)
        .arg(&store)
        .output()
        .unwrap();
    assert_error_says(&output, 2, "cow.img", &["use --force to overwrite"]);
    tool("mkcow")
        .args(["-q", "--force", "--from-dump"])
        .arg(&dump_path)
        .arg(&store)
        .assert()
        .success();
    assert_eq!(
        library_dump(&store, StoreKind::Persistent, false),
        parse_dump(&dump_path)
    );
    let bytes = std::fs::read(&store).unwrap();
    assert_eq!(&bytes[2 * 4096..2 * 4096 + 4], b"DATA");
}

#[test]
fn restore_keeps_the_valid_flag_and_chunk_size() {
    let dir = tempdir();
    let golden = golden_cow(&dir, "c");
    let dump_path = dir.path().join("c.json");
    cowdump(&golden, "json", &dump_path);
    let target = dir.path().join("restored.img");
    tool("mkcow")
        .args(["-q", "--size", "256k", "--from-dump"])
        .arg(&dump_path)
        .arg(&target)
        .assert()
        .success();
    let golden_bytes = std::fs::read(&golden).unwrap();
    let restored = std::fs::read(&target).unwrap();
    assert_eq!(
        &restored[..16],
        &golden_bytes[..16],
        "valid=0 and chunk size 8 kept"
    );
    assert_eq!(
        &restored[4096..8192],
        &golden_bytes[4096..8192],
        "area 0 identical"
    );
}

fn write_dump_with(
    dir: &tempfile::TempDir,
    edit: impl FnOnce(&mut PersistentDump),
) -> std::path::PathBuf {
    let source = build_store(dir, "source.img", 8, 512, 10);
    let mut dump = library_dump(&source, StoreKind::Persistent, false);
    edit(&mut dump);
    let path = dir.path().join("edited.json");
    std::fs::write(&path, serde_json::to_string(&dump).unwrap()).unwrap();
    path
}

fn assert_restore_refused(edit: impl FnOnce(&mut PersistentDump), expected: &str) {
    let dir = tempdir();
    let dump_path = write_dump_with(&dir, edit);
    let target = dir.path().join("target.img");
    let output = tool("mkcow")
        .args(["--size", "2M", "--from-dump"])
        .arg(&dump_path)
        .arg(&target)
        .output()
        .unwrap();
    assert_error_says(&output, 2, "edited.json", &[expected]);
    assert!(!target.exists(), "nothing is created for an unusable dump");
}

#[test]
fn restore_refuses_a_new_chunk_past_the_end() {
    assert_restore_refused(
        |d| d.exceptions[3].new_chunk = 99_999,
        "exception 3 (old_chunk 23757, new_chunk 99999): new_chunk is past the end",
    );
}

#[test]
fn restore_refuses_a_new_chunk_on_metadata() {
    assert_restore_refused(|d| d.exceptions[0].new_chunk = 258, "is metadata area 1");
    assert_restore_refused(|d| d.exceptions[0].new_chunk = 1, "is metadata area 0");
}

#[test]
fn restore_refuses_duplicates() {
    assert_restore_refused(
        |d| d.exceptions[4].new_chunk = d.exceptions[2].new_chunk,
        "new_chunk is already used",
    );
    assert_restore_refused(
        |d| d.exceptions[4].old_chunk = d.exceptions[2].old_chunk,
        "old_chunk is already mapped",
    );
}

#[test]
fn restore_refuses_a_bad_chunk_size() {
    assert_restore_refused(|d| d.head.chunk_size = 3, "not a power of two");
}

#[test]
fn restore_refuses_a_file_that_is_not_a_dump() {
    let dir = tempdir();
    for (name, text) in [
        ("junk.yaml", "just: [text"),
        ("junk.json", "{\"x\": 1}"),
        ("empty", ""),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let output = tool("mkcow")
            .args(["--size", "1M", "--from-dump"])
            .arg(&path)
            .arg(dir.path().join("t.img"))
            .output()
            .unwrap();
        assert_error_says(&output, 2, name, &["not a usable cowdump dump"]);
    }
    let output = tool("mkcow")
        .args(["--size", "1M", "--from-dump"])
        .arg(dir.path().join("missing.yaml"))
        .arg(dir.path().join("t.img"))
        .output()
        .unwrap();
    assert_one_line_error(&output, 2, "missing.yaml");
}

#[test]
fn restore_refuses_a_target_too_small_for_the_areas() {
    let dir = tempdir();
    let source = build_store(&dir, "source.img", 8, 1024, 300);
    let dump_path = dir.path().join("dump.json");
    cowdump(&source, "json", &dump_path);
    let target = blank_image(&dir, "small.img", 200 * 4096);
    let output = tool("mkcow")
        .arg("--from-dump")
        .arg(&dump_path)
        .arg(&target)
        .output()
        .unwrap();
    assert_error_says(&output, 2, "dump.json", &["past the end"]);
    assert!(std::fs::read(&target).unwrap().iter().all(|&b| b == 0));
}

#[test]
fn restore_needs_only_chunk_size_valid_and_exceptions() {
    let dir = tempdir();
    let dump_path = text_file(&dir, "hand.yaml", "chunk_size: 16\nvalid: true\nexceptions:\n- {old_chunk: 7, new_chunk: 2}\n- {old_chunk: 3, new_chunk: 3}\n");
    let target = dir.path().join("cow.img");
    tool("mkcow")
        .args(["-q", "--size", "1M", "--from-dump"])
        .arg(&dump_path)
        .arg(&target)
        .assert()
        .success();
    let dump = library_dump(&target, StoreKind::Persistent, false);
    assert_eq!(dump.head.chunk_size, 16);
    let records: Vec<(u64, u64)> = dump
        .exceptions
        .iter()
        .map(|r| (r.old_chunk, r.new_chunk))
        .collect();
    assert_eq!(records, [(7, 2), (3, 3)]);
    assert_eq!(dump.tail.status, "64/2048 32");
}

#[test]
fn restore_refuses_another_dump_format_version() {
    assert_restore_refused(
        |d| d.head.format_version = 2,
        "format_version 2 is not supported",
    );
}
