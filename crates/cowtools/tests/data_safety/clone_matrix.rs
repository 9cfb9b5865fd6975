//! cowcheck on dm-clone metadata: the kernel's images check clean with the
//! kernel's status figures, a source of another size is the kernel's size
//! mismatch, and the corruption matrix: each structure and field of a
//! kernel-written image damaged on purpose (`common::clone_damage`), and
//! cowcheck exits 1 naming the damage by its code and its block.

use crate::common;

use std::path::Path;

use common::clone_damage::{damage_clone, CloneDamage, CloneLayout, Damaged};
use common::*;

/// Fixture a: 131,072 regions in 5 array blocks under a leaf root.
const A: &str = "a-region8-131072regions";
/// Fixture c: 8,388,608 regions in 258 array blocks under an internal root.
const C: &str = "c-region8-8388608regions";
/// Fixture d: 4 regions, one word with 60 bits past the last region.
const D: &str = "d-region2097152-4regions";

/// `cowcheck ARGS PATH`, which must not panic.
fn cowcheck(args: &[&str], path: &Path) -> std::process::Output {
    let output = tool("cowcheck").args(args).arg(path).output().unwrap();
    assert_no_panic(&output);
    output
}

#[test]
fn every_kernel_image_checks_clean_with_the_kernels_status() {
    let dir = tempdir();
    for name in kernel_clone_names() {
        let manifest = kernel_clone_manifest(&name);
        for which in ["formatted", "final"] {
            let path = kernel_clone_image(&dir, &name, &format!("meta-{which}"));
            let status = status_figures(manifest["status"][which].as_str().unwrap());
            let hydrated = status.split(' ').nth(3).unwrap().to_string();
            let region = status.split(' ').nth(2).unwrap().to_string();
            let text = assert_success_says(
                &cowcheck(&[], &path),
                &[&format!(
                    "clone store, region {region} sectors, {hydrated} regions hydrated, 0 lost, \
                     status {status}: clean"
                )],
            );
            assert_eq!(text.lines().count(), 1, "{text}");
            let json = success_json(&cowcheck(&["--format", "json"], &path));
            assert_eq!(json["kind"], "clone");
            assert_eq!(json["clean"], true);
            assert_eq!(json["findings"], serde_json::json!([]));
            assert_eq!(json["summary"]["status"], status.as_str(), "{name} {which}");
            assert_eq!(json["summary"]["lost_regions"], 0);
            assert_eq!(json["summary"]["errors"], 0);
        }
    }
}

#[test]
fn the_golden_clone_image_checks_clean() {
    let dir = tempdir();
    let path = golden_clone_metadata(&dir);
    assert_success_says(
        &cowcheck(&[], &path),
        &["d-meta.img: clone store, region 64 sectors, 12/512 regions hydrated, 0 lost, status 8 6/1024 64 12/512: clean"],
    );
}

#[test]
fn a_source_of_another_size_is_the_size_mismatch_the_kernel_refuses() {
    let dir = tempdir();
    let path = kernel_clone_image(&dir, A, "meta-final");
    let target_bytes = 131_072 * 4096;
    let source = blank_image(&dir, "source.img", target_bytes);
    assert_success_says(&cowcheck(&["--origin", s(&source)], &path), &["clean"]);
    let short = blank_image(&dir, "short.img", target_bytes - 4096);
    let found = cowcheck(&["--origin", s(&short)], &path);
    assert_eq!(found.status.code(), Some(1), "{}", stderr(&found));
    assert!(
        stdout(&found).contains(
            "error: size-mismatch: superblock (block 0): region size 8 and target size 1048576 \
             sectors, but the table gives 8 and 1048568"
        ),
        "{}",
        stdout(&found)
    );
}

#[test]
fn a_lone_leak_is_a_warning_that_ignore_non_fatal_lets_pass() {
    let dir = tempdir();
    let path = kernel_clone_image(&dir, A, "meta-final");
    let damaged = damage_clone(&path, CloneDamage::LeakedBlock);
    let found = cowcheck(&[], &path);
    assert_eq!(found.status.code(), Some(1));
    let text = stdout(&found);
    let leaked = damaged.names.unwrap();
    assert!(
        text.contains(&format!(
            "warning: block-leaked: space map: blocks {leaked}.."
        )),
        "{text}"
    );
    assert!(text.contains(": 1 warning"), "{text}");
    assert_eq!(
        cowcheck(&["--ignore-non-fatal"], &path).status.code(),
        Some(0)
    );
}

#[test]
fn all_zero_metadata_is_not_checked_but_named_as_unformatted() {
    let dir = tempdir();
    let zero = blank_image(&dir, "zero.img", 1 << 20);
    assert_error_says(
        &cowcheck(&["--kind", "clone"], &zero),
        2,
        "zero.img",
        &["holds no dm-clone metadata: block 0 is all zero"],
    );
}

#[test]
fn super_block_only_reads_the_superblock_alone() {
    let dir = tempdir();
    let path = kernel_clone_image(&dir, A, "meta-final");
    damage_clone(&path, CloneDamage::ArrayBlockChecksum);
    assert_success_says(
        &cowcheck(&["--super-block-only"], &path),
        &["clone store, superblock only: clean"],
    );
    damage_clone(&path, CloneDamage::Version);
    let found = cowcheck(&["--super-block-only"], &path);
    assert_eq!(found.status.code(), Some(1), "{}", stderr(&found));
    let text = stdout(&found);
    assert!(
        text.contains("error: bad-version: superblock (block 0)"),
        "{text}"
    );
    assert!(!text.contains("block-checksum"), "{text}");
}

/// What cowcheck must say of a damage: the finding code and the place the
/// finding's message names.
fn expected(
    damage: CloneDamage,
    layout: &CloneLayout,
    damaged: &Damaged,
) -> (&'static str, String) {
    use CloneDamage as D;
    let block = damaged.block;
    let names = damaged.names.unwrap_or(u64::MAX);
    let array = layout.damaged_array_index();
    match damage {
        D::SuperblockChecksum => ("block-checksum", "block 0 (clone superblock)".into()),
        D::SuperblockBlocknr => (
            "block-location",
            "block 0 (clone superblock): names itself block 7".into(),
        ),
        D::Magic => ("bad-magic", "superblock (block 0): magic 0x1".into()),
        D::Version => (
            "bad-version",
            "superblock (block 0): metadata version 2".into(),
        ),
        D::RegionSize => (
            "bad-region-size",
            "superblock (block 0): region size 12".into(),
        ),
        D::TargetSizeZero => (
            "bad-target-size",
            "superblock (block 0): the target size is 0".into(),
        ),
        D::TargetSizeDoubled => (
            "btree-damaged",
            format!(
                "array btree node {} (keys {}..",
                layout.bitset_root,
                layout.array_blocks.len()
            ),
        ),
        D::SmNrBlocks => (
            "device-too-small",
            format!(
                "space map root: it covers {} blocks",
                layout.file_blocks + 1
            ),
        ),
        D::SmNrAllocated => (
            "space-map-allocated",
            format!(
                "space map root: nr_allocated is {}",
                layout.nr_allocated + 1
            ),
        ),
        D::SmIndexRoot => (
            "block-past-end",
            format!("superblock (block 0): block {names} is past the end"),
        ),
        D::IndexEntryNrFree => (
            "space-map-index",
            "space map index entry 0: nr_free is 3".into(),
        ),
        D::BitmapChecksum => (
            "block-checksum",
            format!("block {block} (space map bitmap)"),
        ),
        D::BitmapEntryFree => (
            "block-under-counted",
            format!(
                "space map: blocks {names}..{} are referenced 1 times but counted 0",
                names + 1
            ),
        ),
        D::RefCountNodeChecksum => ("block-checksum", format!("block {block} (btree node)")),
        D::RefCountNodeHeader => (
            "btree-damaged",
            format!("space map ref-count btree node {block}"),
        ),
        D::BtreeNodeChecksum => ("block-checksum", format!("block {block} (btree node)")),
        D::BtreeNodeHeader => (
            "btree-damaged",
            format!("array btree node {block} (keys 0..)"),
        ),
        D::BtreeKeys => (
            "btree-damaged",
            format!("array btree node {block} (keys 0..)"),
        ),
        D::BtreeValuePastEnd => ("block-past-end", format!("block {names} is past the end")),
        D::ArrayBlockChecksum => ("block-checksum", format!("block {block} (array block)")),
        D::ArrayBlockMaxEntries => (
            "array-block-damaged",
            format!("array block {array} (block {block}): max_entries is 3"),
        ),
        D::ArrayBlockNrEntries => (
            "array-block-damaged",
            format!("array block {array} (block {block}): nr_entries 510 is above max_entries"),
        ),
        D::ArrayBlockValueSize => (
            "array-block-damaged",
            format!("array block {array} (block {block}): value_size is 4"),
        ),
        D::TailBits => (
            "bits-past-last-region",
            format!("bitset word {}", layout.nr_regions.div_ceil(64) - 1),
        ),
        D::LeakedBlock => (
            "block-leaked",
            format!(
                "space map: blocks {names}..{} are counted 1 but nothing",
                names + 1
            ),
        ),
        D::DoublyUsedBlock => (
            "block-under-counted",
            format!(
                "space map: blocks {names}..{} are referenced 2 times",
                names + 1
            ),
        ),
        D::Truncated => (
            "device-too-small",
            format!(
                "space map root: it covers {} blocks, the device has {block}",
                layout.nr_blocks
            ),
        ),
    }
}

/// Damages a fresh copy of `fixture` with `damage` and asserts that cowcheck
/// (text and JSON) exits 1 and names it.
fn assert_named(fixture: &str, damage: CloneDamage) {
    let dir = tempdir();
    let path = kernel_clone_image(&dir, fixture, "meta-final");
    let layout = CloneLayout::read(&path);
    let damaged = damage_clone(&path, damage);
    let (code, place) = expected(damage, &layout, &damaged);
    let kind: &[&str] = match damage {
        CloneDamage::Magic => &["--kind", "clone"],
        _ => &[],
    };
    let found = cowcheck(kind, &path);
    let text = stdout(&found);
    assert_eq!(
        found.status.code(),
        Some(1),
        "{fixture} {damage:?}: {text}{}",
        stderr(&found)
    );
    let named = text
        .lines()
        .any(|line| line.contains(&format!(": {code}: ")) && line.contains(&place));
    assert!(
        named,
        "{fixture} {damage:?}: no `{code}` naming `{place}` in:\n{text}"
    );
    let summary = text.lines().last().unwrap();
    assert!(
        summary.contains("clone store") && !summary.ends_with("clean"),
        "{summary}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&cowcheck(&[kind, &["--format", "json"]].concat(), &path).stdout)
            .unwrap();
    assert_eq!(json["clean"], false);
    let findings = json["findings"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["code"] == code && f["message"].as_str().unwrap().contains(&place)),
        "{fixture} {damage:?}: {findings:?}"
    );
}

#[test]
fn each_damage_of_an_image_with_a_leaf_root_is_named() {
    for damage in CloneDamage::ALL {
        match damage {
            CloneDamage::TailBits => assert_named(D, damage),
            _ => assert_named(A, damage),
        }
    }
}

#[test]
fn each_damage_of_an_image_with_an_internal_root_is_named() {
    for damage in CloneDamage::ALL {
        if damage != CloneDamage::TailBits {
            assert_named(C, damage);
        }
    }
}
