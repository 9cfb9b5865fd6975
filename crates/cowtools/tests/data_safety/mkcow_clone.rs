//! CLI tests of `mkcow --kind clone`: every kernel fixture's fresh format
//! byte for byte (the kernel's `meta-formatted.img`), the table line, and
//! the refusals (kernel limits, a metadata device too small, a target that
//! holds data) that leave the target as it was.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::common;

use common::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/kernel-clone")
        .join(name)
}

fn kernel_formatted(name: &str) -> Vec<u8> {
    let xz = fixture(name).join("meta-formatted.img.xz");
    let mut bytes = Vec::new();
    lzma_rs::xz_decompress(
        &mut BufReader::new(std::fs::File::open(xz).unwrap()),
        &mut bytes,
    )
    .unwrap();
    bytes
}

/// A `key: number` of the fixture's manifest.
fn manifest_number(name: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(fixture(name).join("manifest.yaml")).unwrap();
    text.lines()
        .find_map(|line| line.trim().strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("{name}: no {key}"))
        .parse()
        .unwrap()
}

#[test]
fn every_kernel_fixture_is_formatted_byte_for_byte() {
    let dir = tempdir();
    for name in [
        "a-region8-131072regions",
        "b-region128-1024regions",
        "c-region8-8388608regions",
        "d-region2097152-4regions",
    ] {
        let path = dir.path().join(format!("{name}.img"));
        let region = format!("{}", manifest_number(name, "region_sectors") * 512);
        let target = format!("{}", manifest_number(name, "target_sectors") * 512);
        let size = format!("{}", manifest_number(name, "metadata_bytes"));
        let args = [
            "--kind",
            "clone",
            "--region-size",
            &region,
            "--target-size",
            &target,
            "--size",
            &size,
        ];
        let output = mkcow(&args, &path);
        assert_eq!(output.status.code(), Some(0), "{name}: {}", stderr(&output));
        let table = format!(
            "0 {} clone {} <dest> <source> {}",
            manifest_number(name, "target_sectors"),
            path.display(),
            manifest_number(name, "region_sectors")
        );
        assert_eq!(stdout(&output).lines().last(), Some(table.as_str()));
        assert!(
            std::fs::read(&path).unwrap() == kernel_formatted(name),
            "{name}: mkcow's format differs from the kernel's"
        );
    }
}

#[test]
fn refusals_name_the_limit_and_leave_the_target_alone() {
    let dir = tempdir();
    let missing = dir.path().join("missing.img");
    for (args, says) in [
        (
            ["--region-size", "12k", "--target-size", "1G"],
            "not a power of two",
        ),
        (
            ["--region-size", "2G", "--target-size", "4G"],
            "outside the kernel's range",
        ),
        (
            ["--region-size", "4k", "--target-size", "16T"],
            "more than the kernel's limit of 2^31",
        ),
        (
            ["--region-size", "4k", "--target-size", "32G"],
            "needs at least 265",
        ),
    ] {
        let mut all = vec!["--kind", "clone", "--size", "1M"];
        all.extend(args);
        let output = mkcow(&all, &missing);
        assert_error_says(&output, 2, "missing.img", &[says]);
        assert!(!missing.exists(), "{args:?} left a file");
    }
    let output = mkcow(
        &["--kind", "clone", "--size", "4M", "--target-size", "1G"],
        &missing,
    );
    assert_error_says(
        &output,
        2,
        "missing.img",
        &["--region-size and --target-size"],
    );
    let output = mkcow(&["--size", "4M", "--region-size", "4k"], &missing);
    assert_error_says(&output, 2, "", &["apply to dm-clone metadata only"]);
    assert!(!missing.exists());

    let golden = golden_clone_metadata(&dir);
    let before = std::fs::read(&golden).unwrap();
    let args = [
        "--kind",
        "clone",
        "--region-size",
        "4k",
        "--target-size",
        "1G",
    ];
    let output = mkcow(&args, &golden);
    assert_error_says(&output, 2, "d-meta.img", &["use --force"]);
    assert_eq!(std::fs::read(&golden).unwrap(), before);
}
