//! CLI tests of cowmigrate: re-chunking and kind conversion keep the snapshot
//! byte-identical; table lines and usage are printed; bad requests fail clearly.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::Output;

use common::*;
use cowfmt::device::{Access, Device};
use cowfmt::persistent::check::{check, CheckOptions};
use cowfmt::StoreKind;

fn migrate(args: &[&str]) -> Output {
    let output = tool("cowmigrate").args(args).output().unwrap();
    assert_no_panic(&output);
    output
}

fn errors(path: &Path, kind: StoreKind) -> usize {
    let device = Device::open(path, Access::ReadOnly).unwrap();
    let options = CheckOptions {
        kind,
        ..CheckOptions::default()
    };
    let report = check(&device, &options).unwrap();
    report
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
    let output = migrate(&[
        "-i",
        s(&cow),
        "-o",
        s(&out),
        "--origin",
        s(&origin),
        "--chunk-size",
        "2k",
        "--format",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
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
    let output = migrate(&["-i", s(&cow), "-o", s(&out), "--chunk-size", "16k"]);
    let text = assert_one_line_error(&output, 2, "--origin");
    assert!(text.contains("8 -> 32 sectors"), "{text}");
    assert!(!out.exists());
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
    let output = migrate(&["-i", s(&cow), "-o", s(&out), "--to", "legacy"]);
    let text = assert_one_line_error(&output, 2, "legacy.img");
    assert!(text.contains("--size"), "{text}");
    assert!(text.contains("18432"), "{text}");
    assert!(!out.exists());

    let output = migrate(&[
        "-i",
        s(&cow),
        "-o",
        s(&out),
        "--to",
        "legacy",
        "--size",
        "18432",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("moved data chunk 33 to 35"),
        "{}",
        stdout(&output)
    );
    assert_eq!(errors(&out, StoreKind::Legacy), 0);
}

#[test]
fn existing_outputs_and_the_input_itself_are_refused() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "a");
    let before = std::fs::read(&cow).unwrap();
    let output = migrate(&["-i", s(&cow), "-o", s(&cow), "--to", "legacy", "--force"]);
    assert_one_line_error(&output, 2, s(&cow));
    assert_eq!(std::fs::read(&cow).unwrap(), before);

    let taken = dir.path().join("taken.img");
    std::fs::write(&taken, b"precious").unwrap();
    let output = migrate(&["-i", s(&cow), "-o", s(&taken), "--to", "legacy"]);
    let text = assert_one_line_error(&output, 2, "taken.img");
    assert!(text.contains("--force"), "{text}");
    assert_eq!(std::fs::read(&taken).unwrap(), b"precious");
}

#[test]
fn a_damaged_input_exits_1_and_points_at_cowrepair() {
    let dir = tempdir();
    let cow = build_store(&dir, "cow.img", 8, 64, 10);
    write_area0_record(&cow, 3, 5, 9999);
    let out = dir.path().join("out.img");
    let output = migrate(&["-i", s(&cow), "-o", s(&out), "--chunk-size", "2k"]);
    let text = assert_one_line_error(&output, 1, "cow.img");
    assert!(text.contains("cowrepair"), "{text}");
    assert!(!out.exists());
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = tempdir();
    let out = dir.path().join("out.img");
    let missing = dir.path().join("missing.img");
    assert_one_line_error(
        &migrate(&["-i", s(&missing), "-o", s(&out), "--to", "legacy"]),
        2,
        "missing.img",
    );
    assert_one_line_error(
        &migrate(&["-i", s(dir.path()), "-o", s(&out), "--to", "legacy"]),
        2,
        s(dir.path()),
    );
    let empty = dir.path().join("empty.img");
    File::create(&empty).unwrap();
    assert_one_line_error(
        &migrate(&["-i", s(&empty), "-o", s(&out), "--to", "legacy"]),
        2,
        "empty.img",
    );
    let junk = dir.path().join("junk.img");
    std::fs::write(&junk, [0x5au8; 8192]).unwrap();
    assert_one_line_error(
        &migrate(&["-i", s(&junk), "-o", s(&out), "--to", "legacy"]),
        2,
        "junk.img",
    );
    assert!(!out.exists());
}

#[test]
fn an_invalidated_store_stays_invalid() {
    let dir = tempdir();
    let cow = golden_cow(&dir, "c");
    let origin = golden_origin(&dir, "c");
    let out = dir.path().join("out.img");
    let output = migrate(&["-i", s(&cow), "-o", s(&out), "--chunk-size", "2k"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("124 records, invalid"),
        "{}",
        stdout(&output)
    );
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(&bytes[4..8], &[0, 0, 0, 0]);
    assert!(snapshot_image(&origin, &cow) == snapshot_image(&origin, &out));
}
