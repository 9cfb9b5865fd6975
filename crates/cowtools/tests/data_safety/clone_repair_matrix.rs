//! The repair side of the dm-clone corruption matrix: each structure and
//! field of kernel-written metadata damaged on purpose (the shared damage
//! helpers), then cowrepair: every region state the damage left readable is
//! kept (compared with the fixture's manifest), every lost range is
//! reported and gets the state asked for, and the repaired metadata checks
//! clean.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::common;

use common::clone_damage::{damage_clone, CloneDamage, CloneLayout, Damaged};
use common::*;
use cowfmt::clone::check::check;
use cowfmt::clone::salvage::{salvage, GivenSizes};
use cowfmt::device::{Access, Device};
use tempfile::TempDir;

/// Several array blocks in one leaf: every damage but the tail bits lands.
const MANY_BLOCKS: &str = "a-region8-131072regions";
/// 4 regions: bits past the last region fit in its one word.
const FEW_REGIONS: &str = "d-region2097152-4regions";

/// The fixture a damage is tried on.
fn fixture_for(damage: CloneDamage) -> &'static str {
    match damage {
        CloneDamage::TailBits => FEW_REGIONS,
        _ => MANY_BLOCKS,
    }
}

/// The options a damage needs besides `--lost-regions`: the sizes of a
/// superblock whose own are unusable or wrong, the kind when the magic is
/// gone, the size of a device cut short.
fn options_for(damage: CloneDamage, layout: &CloneLayout, bytes: u64) -> Vec<String> {
    let target = (layout.target_sectors * 512).to_string();
    let region = (layout.region_sectors * 512).to_string();
    let strings = |args: &[&str]| args.iter().map(|a| a.to_string()).collect();
    match damage {
        CloneDamage::Magic => strings(&["--kind", "clone"]),
        CloneDamage::RegionSize | CloneDamage::TargetSizeZero => {
            strings(&["--region-size", &region, "--target-size", &target])
        }
        CloneDamage::TargetSizeDoubled => strings(&["--target-size", &target]),
        CloneDamage::Truncated => strings(&["--size", &bytes.to_string()]),
        _ => Vec::new(),
    }
}

/// Hydrated or not, per region, as the fixture's manifest says.
fn manifest_states(name: &str, nr_regions: u64) -> Vec<bool> {
    let mut states = vec![false; nr_regions as usize];
    for run in kernel_clone_manifest(name)["hydrated"]
        .as_sequence()
        .unwrap()
    {
        let start = run["start"].as_u64().unwrap();
        let count = run["count"].as_u64().unwrap();
        states[start as usize..(start + count) as usize].fill(true);
    }
    states
}

/// Per region, the state of the clone metadata at `path`, which must read
/// without loss and check clean.
fn repaired_states(path: &Path) -> Vec<bool> {
    let device = Device::open(path, Access::ReadOnly).unwrap();
    let checked = check(&device, None).unwrap();
    assert!(checked.violations.is_empty(), "{:?}", checked.violations);
    let read = salvage(&device, &GivenSizes::default()).unwrap();
    assert!(read.lost.is_empty(), "{:?}", read.problems);
    (0..read.bits.len()).map(|r| read.bits.get(r)).collect()
}

fn within(region: u64, ranges: &[Range<u64>]) -> bool {
    ranges.iter().any(|range| range.contains(&region))
}

/// The lost ranges a JSON report lists, with the state each got.
fn decided(report: &serde_json::Value) -> Vec<(Range<u64>, bool)> {
    report["decided"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| {
            let start = run["start"].as_u64().unwrap();
            let count = run["count"].as_u64().unwrap();
            (start..start + count, run["hydrated"].as_bool().unwrap())
        })
        .collect()
}

/// The regions a repair may report lost for `damage`: those at risk, and
/// for an array block used twice, the regions of both indices (which one
/// the block holds cannot be told).
fn may_lose(damage: CloneDamage, case: &Case) -> Vec<Range<u64>> {
    if damage != CloneDamage::DoublyUsedBlock {
        return case.damaged.regions_at_risk.clone();
    }
    let (first, second) = (
        case.layout.regions_of_array_block(0),
        case.layout.regions_of_array_block(1),
    );
    assert_eq!(case.damaged.regions_at_risk, std::slice::from_ref(&second));
    std::iter::once(first.start..second.end).collect()
}

struct Case {
    dir: TempDir,
    input: PathBuf,
    damaged: Damaged,
    layout: CloneLayout,
    name: &'static str,
    bytes: u64,
}

fn damaged_case(damage: CloneDamage) -> Case {
    let dir = tempdir();
    let name = fixture_for(damage);
    let input = kernel_clone_image(&dir, name, "meta-final");
    let layout = CloneLayout::read(&input);
    let bytes = std::fs::metadata(&input).unwrap().len();
    let damaged = damage_clone(&input, damage);
    Case {
        dir,
        input,
        damaged,
        layout,
        name,
        bytes,
    }
}

/// Repairs one damage with `--lost-regions state` and checks the outcome.
fn repair_and_compare(damage: CloneDamage, state: &str) {
    let case = damaged_case(damage);
    let output = case.dir.path().join("fixed.img");
    let mut args = options_for(damage, &case.layout, case.bytes);
    args.extend(["--lost-regions".to_string(), state.to_string()]);
    args.extend(["--format".to_string(), "json".to_string()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let done = repair_into(&case.input, &output, &args);
    let context = format!("{damage:?}: {}", stderr(&done));
    let report: serde_json::Value =
        serde_json::from_slice(&done.stdout).unwrap_or_else(|_| panic!("{context}"));
    let lost = decided(&report);
    let lost_ranges: Vec<Range<u64>> = lost.iter().map(|(range, _)| range.clone()).collect();
    let expected_exit = if lost.is_empty() { 0 } else { 3 };
    assert_eq!(done.status.code(), Some(expected_exit), "{context}");
    let may_lose = may_lose(damage, &case);
    for region in lost_ranges.iter().flat_map(|range| range.clone()) {
        assert!(
            within(region, &may_lose),
            "{damage:?}: lost region {region} outside the regions at risk {may_lose:?}"
        );
    }
    assert!(
        lost.iter()
            .all(|(_, hydrated)| *hydrated == (state == "hydrated")),
        "{damage:?}: {lost:?}"
    );
    let want = manifest_states(case.name, case.layout.nr_regions);
    let got = repaired_states(&output);
    assert_eq!(got.len(), want.len(), "{damage:?}: region count");
    for region in 0..case.layout.nr_regions {
        let got = got[region as usize];
        if within(region, &lost_ranges) {
            assert_eq!(got, state == "hydrated", "{damage:?}: lost region {region}");
        } else if !within(region, &may_lose) {
            assert_eq!(got, want[region as usize], "{damage:?}: region {region}");
        }
    }
}

#[test]
fn every_damage_keeps_every_undamaged_region_state_and_reports_the_lost_ranges() {
    for damage in CloneDamage::ALL {
        repair_and_compare(damage, "unhydrated");
    }
}

#[test]
fn lost_ranges_take_the_hydrated_state_when_chosen() {
    for damage in [
        CloneDamage::ArrayBlockChecksum,
        CloneDamage::BtreeNodeChecksum,
        CloneDamage::Truncated,
    ] {
        repair_and_compare(damage, "hydrated");
    }
}

#[test]
fn array_damage_loses_exactly_the_regions_of_the_damaged_blocks() {
    for damage in [
        CloneDamage::BtreeNodeChecksum,
        CloneDamage::BtreeValuePastEnd,
        CloneDamage::ArrayBlockChecksum,
        CloneDamage::ArrayBlockMaxEntries,
        CloneDamage::ArrayBlockNrEntries,
        CloneDamage::ArrayBlockValueSize,
        CloneDamage::DoublyUsedBlock,
        CloneDamage::Truncated,
    ] {
        let case = damaged_case(damage);
        let mut args = options_for(damage, &case.layout, case.bytes);
        args.push("--dry-run".to_string());
        args.push("--format=json".to_string());
        args.push("--lost-regions=unhydrated".to_string());
        let done = tool("cowrepair")
            .arg("-i")
            .arg(&case.input)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(done.status.code(), Some(3), "{damage:?}: {}", stderr(&done));
        let report: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap();
        let lost: Vec<Range<u64>> = decided(&report).into_iter().map(|(r, _)| r).collect();
        assert_eq!(lost, may_lose(damage, &case), "{damage:?}");
    }
}

#[test]
fn damage_that_loses_regions_is_refused_without_a_choice_naming_each_range() {
    let case = damaged_case(CloneDamage::ArrayBlockChecksum);
    let output = case.dir.path().join("fixed.img");
    let refused = repair_into(&case.input, &output, &[]);
    let range = &case.damaged.regions_at_risk[0];
    assert_refused_without_output(
        &refused,
        2,
        "a-region8-131072regions-meta-final.img",
        &[&format!("regions {}..{}", range.start, range.end)],
        &output,
    );
}
