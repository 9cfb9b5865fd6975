//! cowmigrate --region-size on dm-clone metadata: every kernel fixture split
//! and merged back gives the kernel's bits; a merged region is hydrated only
//! when all of its parts are; what the kernel would refuse is refused with
//! no output left; every output checks clean.

use std::path::Path;

use cowfmt::clone::check::check;
use cowfmt::clone::walk::{walk, Policy};
use cowfmt::device::{Access, Device};

use crate::common::{
    assert_error_says, assert_refused_without_output, assert_success_says, build_store,
    json_report, kernel_clone_image, kernel_clone_manifest, kernel_clone_names, migrate_into, poke,
    tempdir,
};

/// The hydrated runs `(start, count)` of the manifest of fixture `name`.
fn manifest_runs(name: &str) -> Vec<(u64, u64)> {
    let manifest = kernel_clone_manifest(name);
    let runs = manifest["hydrated"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    runs.iter()
        .map(|r| (r["start"].as_u64().unwrap(), r["count"].as_u64().unwrap()))
        .collect()
}

fn region_sectors(name: &str) -> u64 {
    kernel_clone_manifest(name)["geometry"]["region_sectors"]
        .as_u64()
        .unwrap()
}

/// The region size and hydrated runs of the clone metadata at `path`, which
/// must check clean (library check: every invariant, reference counts).
fn checked_runs(path: &Path) -> (u64, Vec<(u64, u64)>) {
    let device = Device::open(path, Access::ReadOnly).unwrap();
    let report = check(&device, None).unwrap();
    assert!(
        report.violations.is_empty(),
        "{path:?}: {:?}",
        report.violations
    );
    let walked = walk(&device, None, Policy::Strict, &mut ()).unwrap();
    let bits = walked.bits.expect("a geometry");
    let runs = bits
        .set_runs(0, bits.len())
        .into_iter()
        .map(|(start, end)| (start, end - start))
        .collect();
    let region = walked.opened.geometry.unwrap().region_sectors();
    (region, runs)
}

/// `--region-size` in bytes for `sectors`.
fn size_arg(sectors: u64) -> String {
    format!("{}", sectors * 512)
}

/// The runs of regions `factor` times larger: only whole groups stay.
fn merged_runs(runs: &[(u64, u64)], factor: u64, nr_old: u64) -> (Vec<(u64, u64)>, u64) {
    let mut hydrated = vec![false; nr_old as usize];
    for &(start, count) in runs {
        for region in start..start + count {
            hydrated[region as usize] = true;
        }
    }
    let mut merged: Vec<(u64, u64)> = Vec::new();
    let mut partly = 0;
    for (group, parts) in hydrated.chunks(factor as usize).enumerate() {
        let set = parts.iter().filter(|&&h| h).count();
        if set == parts.len() {
            match merged.last_mut() {
                Some((start, count)) if *start + *count == group as u64 => *count += 1,
                _ => merged.push((group as u64, 1)),
            }
        } else if set > 0 {
            partly += 1;
        }
    }
    (merged, partly)
}

#[test]
fn each_kernel_fixture_split_then_merged_gives_its_bits_back() {
    let dir = tempdir();
    for name in kernel_clone_names() {
        let region = region_sectors(&name);
        if region == 8 {
            continue;
        }
        let input = kernel_clone_image(&dir, &name, "meta-final");
        let split = dir.path().join(format!("{name}-split.img"));
        let smaller = region / 4;
        let report = json_report(
            "cowmigrate",
            &input,
            &split,
            &["--region-size", &size_arg(smaller)],
        );
        let runs = manifest_runs(&name);
        let hydrated: u64 = runs.iter().map(|r| r.1).sum();
        assert_eq!(report["from"]["hydrated_regions"], hydrated, "{name}");
        assert_eq!(report["to"]["region_size"], smaller, "{name}");
        assert_eq!(report["partly_hydrated"], 0, "{name}");
        let (got_region, split_runs) = checked_runs(&split);
        assert_eq!(got_region, smaller, "{name}");
        let nr_split = report["to"]["nr_regions"].as_u64().unwrap();
        let expected_split: Vec<(u64, u64)> = runs
            .iter()
            .map(|&(start, count)| (start * 4, (count * 4).min(nr_split - start * 4)))
            .collect();
        assert_eq!(split_runs, expected_split, "{name}: each part inherits");

        let back = dir.path().join(format!("{name}-back.img"));
        let report = json_report(
            "cowmigrate",
            &split,
            &back,
            &["--region-size", &size_arg(region)],
        );
        assert_eq!(report["to"]["hydrated_regions"], hydrated, "{name}");
        assert_eq!(checked_runs(&back), (region, runs), "{name}");
    }
}

#[test]
fn a_merged_region_is_hydrated_only_when_all_its_parts_are() {
    let dir = tempdir();
    for name in kernel_clone_names() {
        if region_sectors(&name) != 8 {
            continue;
        }
        let nr_regions = kernel_clone_manifest(&name)["geometry"]["nr_regions"]
            .as_u64()
            .unwrap();
        let input = kernel_clone_image(&dir, &name, "meta-final");
        let merged = dir.path().join(format!("{name}-64.img"));
        let output = migrate_into(&input, &merged, &["--region-size", "32k"]);
        let (runs, partly) = merged_runs(&manifest_runs(&name), 8, nr_regions);
        assert!(partly > 0, "{name}: the fixture has partly hydrated groups");
        let hydrated: u64 = runs.iter().map(|r| r.1).sum();
        assert_success_says(
            &output,
            &[
                "every 8 regions merged into one",
                &format!("{hydrated} hydrated"),
                &format!("{partly} merged regions left unhydrated"),
                "activate it with region size 64 in the clone table",
            ],
        );
        assert_eq!(checked_runs(&merged), (64, runs.clone()), "{name}");

        let split = dir.path().join(format!("{name}-8.img"));
        let report = json_report("cowmigrate", &merged, &split, &["--region-size", "4k"]);
        assert_eq!(report["to"]["nr_regions"], nr_regions, "{name}");
        let parts: Vec<(u64, u64)> = runs.iter().map(|&(s, c)| (s * 8, c * 8)).collect();
        assert_eq!(checked_runs(&split), (8, parts), "{name}");
    }
}

#[test]
fn region_sizes_the_kernel_refuses_are_refused_with_no_output() {
    let dir = tempdir();
    let input = kernel_clone_image(&dir, "b-region128-1024regions", "meta-final");
    let output = dir.path().join("out.img");
    for (size, says) in [
        ("2k", "a region size of 4 sectors"),
        ("24k", "a region size of 48 sectors"),
        ("2G", "a region size of 4194304 sectors"),
    ] {
        let run = migrate_into(&input, &output, &["--region-size", size]);
        assert_refused_without_output(&run, 2, "meta-final.img", &[says], &output);
    }
    let run = migrate_into(&input, &output, &["--region-size", "4k", "--size", "8k"]);
    assert_refused_without_output(&run, 2, "out.img", &["give a larger --size"], &output);
}

#[test]
fn damaged_metadata_is_refused_until_repaired() {
    let dir = tempdir();
    let input = kernel_clone_image(&dir, "b-region128-1024regions", "meta-final");
    let bytes = std::fs::read(&input).unwrap();
    let root = u64::from_le_bytes(bytes[188..196].try_into().unwrap());
    poke(&input, root * 4096 + 100, &[0xa5]);
    let output = dir.path().join("out.img");
    let run = migrate_into(&input, &output, &["--region-size", "32k"]);
    assert_refused_without_output(
        &run,
        1,
        "meta-final.img",
        &["does not read clean", "repair it with cowrepair first"],
        &output,
    );
}

#[test]
fn options_of_cow_stores_and_a_missing_region_size_are_refused() {
    let dir = tempdir();
    let input = kernel_clone_image(&dir, "b-region128-1024regions", "meta-final");
    let output = dir.path().join("out.img");
    for (extra, says) in [
        (
            &["--to", "legacy"][..],
            "give its new region size with --region-size SIZE",
        ),
        (
            &["--region-size", "32k", "--origin", "/dev/null"],
            "--origin does not apply to dm-clone metadata",
        ),
        (
            &["--region-size", "32k", "--snapshot", "1"],
            "--snapshot does not apply to dm-clone metadata",
        ),
    ] {
        let run = migrate_into(&input, &output, extra);
        assert_refused_without_output(&run, 2, "meta-final.img", &[says], &output);
    }
    let run = migrate_into(
        &input,
        &output,
        &["--region-size", "32k", "--chunk-size", "4k"],
    );
    assert_eq!(run.status.code(), Some(2));
    assert!(!output.exists());

    let cow = build_store(&dir, "cow.img", 8, 64, 3);
    let run = migrate_into(&cow, &output, &["--region-size", "32k"]);
    assert_error_says(
        &run,
        2,
        "cow.img",
        &["--region-size is for dm-clone metadata"],
    );
    assert!(!output.exists());
}

#[test]
fn an_existing_output_is_kept_unless_forced() {
    let dir = tempdir();
    let input = kernel_clone_image(&dir, "b-region128-1024regions", "meta-final");
    let output = dir.path().join("out.img");
    std::fs::write(&output, vec![7u8; 1 << 20]).unwrap();
    let run = migrate_into(&input, &output, &["--region-size", "128k"]);
    assert_error_says(&run, 2, "out.img", &["--force"]);
    assert_eq!(std::fs::read(&output).unwrap(), vec![7u8; 1 << 20]);
    let run = migrate_into(&input, &output, &["--region-size", "128k", "--force"]);
    assert_success_says(&run, &["every 2 regions merged into one"]);
    let (merged, _) = merged_runs(&manifest_runs("b-region128-1024regions"), 2, 1024);
    assert_eq!(checked_runs(&output), (256, merged));
}
