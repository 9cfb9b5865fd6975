//! cowdump on dm-clone metadata: every kernel-made fixture dumps the runs and
//! status figures its manifest records, in JSON, YAML and tables; refusals;
//! `mkcow --from-dump` restores a dump into metadata that dumps the same and
//! whose space map checks clean.

use std::path::Path;

use cowfmt::clone::open::open_strict;
use cowfmt::device::{Access, Device};
use cowfmt::pdata::bitset::read_bitset;
use cowfmt::pdata::btree::walk::Mode;
use cowfmt::pdata::space_map::{check, load, SmRoot};

use crate::common::{
    assert_error_says, cowdump, golden_clone_metadata, kernel_clone_image, kernel_clone_manifest,
    kernel_clone_names, mkcow, status_figures, stdout, tempdir,
};

/// The manifest's `hydrated` runs as (start, count).
fn manifest_runs(runs: &serde_yaml::Value) -> Vec<(u64, u64)> {
    runs.as_sequence()
        .map(|runs| {
            runs.iter()
                .map(|r| (r["start"].as_u64().unwrap(), r["count"].as_u64().unwrap()))
                .collect()
        })
        .unwrap_or_default()
}

fn json_dump(path: &Path) -> serde_json::Value {
    cowdump_json(&["--format", "json"], path)
}

/// `cowdump ARGS PATH`, which must succeed, as JSON.
fn cowdump_json(args: &[&str], path: &Path) -> serde_json::Value {
    let output = cowdump(args, path);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        crate::common::stderr(&output)
    );
    serde_json::from_slice(&output.stdout).expect("a JSON dump")
}

#[test]
fn every_kernel_fixture_dumps_the_runs_and_status_its_manifest_records() {
    let dir = tempdir();
    let names = kernel_clone_names();
    assert_eq!(names.len(), 4, "{names:?}");
    for name in names {
        let manifest = kernel_clone_manifest(&name);
        for (image, status, runs) in [
            ("meta-formatted", "formatted", Vec::new()),
            ("meta-final", "final", manifest_runs(&manifest["hydrated"])),
        ] {
            let path = kernel_clone_image(&dir, &name, image);
            let json = json_dump(&path);
            let got: Vec<(u64, u64)> = json["hydrated"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r["start"].as_u64().unwrap(), r["count"].as_u64().unwrap()))
                .collect();
            assert_eq!(got, runs, "{name} {image}");
            let geometry = &manifest["geometry"];
            assert_eq!(json["kind"], "clone");
            assert_eq!(json["format_version"], 1);
            assert_eq!(
                json["region_size"].as_u64(),
                geometry["region_sectors"].as_u64()
            );
            assert_eq!(
                json["target_size"].as_u64(),
                geometry["target_sectors"].as_u64()
            );
            assert_eq!(json["nr_regions"].as_u64(), geometry["nr_regions"].as_u64());
            let hydrated: u64 = runs.iter().map(|r| r.1).sum();
            assert_eq!(json["hydrated_regions"].as_u64(), Some(hydrated), "{name}");
            let line = manifest["status"][status].as_str().unwrap();
            assert_eq!(json["status"], status_figures(line), "{name} {image}");

            let yaml = cowdump(&["--format", "yaml"], &path);
            let yaml: serde_json::Value = serde_yaml::from_slice(&yaml.stdout).unwrap();
            assert_eq!(yaml, json, "{name} {image}: YAML and JSON say the same");
        }
    }
}

#[test]
fn the_table_shows_every_run_and_a_picture_scaled_for_many_regions() {
    let dir = tempdir();
    for name in kernel_clone_names() {
        let manifest = kernel_clone_manifest(&name);
        let path = kernel_clone_image(&dir, &name, "meta-final");
        let text = stdout(&cowdump(&["--format", "table"], &path));
        let runs = manifest_runs(&manifest["hydrated"]);
        assert!(
            text.contains(&format!("({} run", runs.len())),
            "{name}: {text}"
        );
        for (start, count) in &runs {
            assert!(
                text.lines().any(|line| {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    words == [start.to_string(), count.to_string()]
                }),
                "{name}: run {start} {count}: {text}"
            );
        }
        let nr_regions = manifest["geometry"]["nr_regions"].as_u64().unwrap();
        let picture = text.split_once("\nRegions (").expect("a picture").1;
        let rows = picture
            .lines()
            .skip(1)
            .take_while(|l| !l.is_empty())
            .count() as u64;
        if nr_regions > 64 * 64 {
            let scale = nr_regions.div_ceil(64 * 64);
            assert!(
                picture.starts_with(&format!("one character per {scale} regions")),
                "{name}: {picture}"
            );
            assert_eq!(rows, 64, "{name}");
        } else {
            assert!(picture.starts_with("one character per region"), "{name}");
            assert_eq!(rows, nr_regions.div_ceil(64), "{name}");
        }
    }
}

#[test]
fn options_of_other_kinds_and_blank_metadata_are_refused() {
    let dir = tempdir();
    let name = &kernel_clone_names()[0];
    let path = kernel_clone_image(&dir, name, "meta-final");
    for flag in ["--runs", "--tree", "--bitmap", "--journal"] {
        let output = cowdump(&[flag], &path);
        assert_error_says(
            &output,
            2,
            "meta-final.img",
            &[flag, "is not for dm-clone metadata"],
        );
    }
    let damaged = |name: &str, offset: usize, byte: u8| {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offset] = byte;
        let damaged = dir.path().join(name);
        std::fs::write(&damaged, &bytes).unwrap();
        damaged
    };
    let bad_region_size = damaged("region.img", 172, 7);
    let output = cowdump(&[], &bad_region_size);
    assert_error_says(
        &output,
        2,
        "region.img",
        &["cannot dump dm-clone metadata", "region"],
    );

    let bad_checksum = damaged("csum.img", 4, 0xff);
    let output = cowdump(&["--format", "json"], &bad_checksum);
    assert_eq!(output.status.code(), Some(0));
    let warning = crate::common::stderr(&output);
    assert!(
        warning.contains("warning: ") && warning.contains("checksum"),
        "{warning}"
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["superblock"]["checksum_valid"], false);
    assert_eq!(json["problems"].as_array().map(Vec::len), Some(1), "{json}");
    let runs = manifest_runs(&kernel_clone_manifest(name)["hydrated"]);
    assert_eq!(json["hydrated"].as_array().unwrap().len(), runs.len());
}

/// Checks that the kernel would open the metadata at `path`, its bitset
/// reads without a defect and its space map counts every block reached.
fn assert_metadata_clean(path: &Path) {
    let device = Device::open(path, Access::ReadOnly).unwrap();
    let opened = open_strict(&device, None)
        .unwrap()
        .expect("the kernel opens it");
    let superblock = &opened.superblock;
    let root = SmRoot::decode(&superblock.sm_root);
    let mut reached = vec![0u32; root.nr_blocks as usize];
    reached[0] = 1;
    let read = read_bitset(
        &device,
        superblock.bitset_root,
        opened.geometry.nr_regions(),
        Mode::Strict,
        &mut |block| reached[block as usize] += 1,
    )
    .unwrap();
    assert!(
        read.defects.is_empty() && read.lost.is_empty(),
        "{:?}",
        read.defects
    );
    let loaded = load(&device, root).unwrap();
    assert_eq!(check(&loaded, reached), [], "{}", path.display());
}

/// Dumps `path` to `to` as `format`.
fn dump_to(path: &Path, to: &Path, format: &str) -> Vec<u8> {
    let output = cowdump(
        &["-q", "--format", format, "-o", to.to_str().unwrap()],
        path,
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        crate::common::stderr(&output)
    );
    std::fs::read(to).unwrap()
}

/// Restores the dump `from` into a new file `to` of `bytes`.
fn restore(from: &Path, to: &Path, bytes: u64) -> std::process::Output {
    mkcow(
        &[
            "--size",
            &bytes.to_string(),
            "--from-dump",
            from.to_str().unwrap(),
        ],
        to,
    )
}

#[test]
fn dump_restore_dump_keeps_every_region_and_the_restored_metadata_checks_clean() {
    let dir = tempdir();
    let mut images: Vec<(String, std::path::PathBuf, u64)> = kernel_clone_names()
        .into_iter()
        .map(|name| {
            let bytes = kernel_clone_manifest(&name)["geometry"]["metadata_bytes"]
                .as_u64()
                .unwrap();
            let path = kernel_clone_image(&dir, &name, "meta-final");
            (name, path, bytes)
        })
        .collect();
    images.push(("golden".into(), golden_clone_metadata(&dir), 4 << 20));
    for (name, path, bytes) in images {
        for format in ["json", "yaml"] {
            let first = dir.path().join(format!("{name}.1.{format}"));
            let original: serde_json::Value =
                serde_yaml::from_slice(&dump_to(&path, &first, format)).unwrap();
            let restored = dir.path().join(format!("{name}-{format}.restored.img"));
            let output = restore(&first, &restored, bytes);
            assert_eq!(
                output.status.code(),
                Some(0),
                "{name}: {}",
                crate::common::stderr(&output)
            );
            let said = stdout(&output);
            let hydrated = original["hydrated_regions"].as_u64().unwrap();
            assert!(
                said.contains(&format!(
                    "restored dm-clone metadata from {}: {hydrated} regions hydrated",
                    first.display()
                )),
                "{said}"
            );
            assert_metadata_clean(&restored);

            let second_path = dir.path().join(format!("{name}.2.{format}"));
            let second_text = dump_to(&restored, &second_path, format);
            let second: serde_json::Value = serde_yaml::from_slice(&second_text).unwrap();
            for field in [
                "kind",
                "region_size",
                "target_size",
                "nr_regions",
                "hydrated_regions",
                "hydrated",
                "lost_regions",
            ] {
                assert_eq!(second[field], original[field], "{name} {format}: {field}");
            }
            let again = dir.path().join(format!("{name}-{format}.again.img"));
            assert_eq!(restore(&second_path, &again, bytes).status.code(), Some(0));
            let third = dump_to(
                &again,
                &dir.path().join(format!("{name}.3.{format}")),
                format,
            );
            assert_eq!(
                third, second_text,
                "{name} {format}: a restored dump restores identically"
            );
            assert_eq!(
                std::fs::read(&again).unwrap(),
                std::fs::read(&restored).unwrap(),
                "{name}"
            );
        }
    }
}

#[test]
fn a_restore_refuses_lost_regions_a_small_target_and_a_clone_dump_on_stdin() {
    let dir = tempdir();
    let name = "c-region8-8388608regions";
    let path = kernel_clone_image(&dir, name, "meta-final");
    let dump = dir.path().join("c.json");
    dump_to(&path, &dump, "json");

    let small = dir.path().join("small.img");
    let output = restore(&dump, &small, 1 << 20);
    assert_error_says(&output, 2, "small.img", &["265"]);
    assert!(!small.exists(), "a refused restore leaves no file");

    let text = std::fs::read_to_string(&dump).unwrap();
    let lost = dir.path().join("lost.json");
    std::fs::write(
        &lost,
        text.replace("\"lost_regions\": 0", "\"lost_regions\": 509"),
    )
    .unwrap();
    let output = restore(&lost, &dir.path().join("lost.img"), 8 << 20);
    assert_error_says(
        &output,
        2,
        "lost.json",
        &["lost the state of 509 regions", "cowrepair"],
    );

    let overlapping = dir.path().join("overlap.json");
    std::fs::write(
        &overlapping,
        text.replacen(
            "{\"start\":",
            "{\"start\":0,\"count\":1000000},{\"start\":",
            1,
        ),
    )
    .unwrap();
    let output = restore(&overlapping, &dir.path().join("overlap.img"), 8 << 20);
    assert_error_says(&output, 2, "overlap.json", &["overlaps"]);

    let output = crate::common::tool("mkcow")
        .args(["--size", "8388608", "--from-dump", "-"])
        .arg(dir.path().join("stdin.img"))
        .write_stdin(text)
        .output()
        .unwrap();
    assert_error_says(&output, 2, "stdin", &["give --kind clone"]);
}

/// `cowdump --blocks --format json [--kind clone]` of `path`, which must
/// succeed.
fn blocks_json(path: &Path, insist: bool) -> serde_json::Value {
    let mut args = vec!["--blocks", "--format", "json"];
    if insist {
        args.extend(["--kind", "clone"]);
    }
    cowdump_json(&args, path)
}

#[test]
fn blocks_lists_every_block_the_kernel_allocated_each_referenced_from_a_listed_one() {
    let dir = tempdir();
    for name in kernel_clone_names() {
        let manifest = kernel_clone_manifest(&name);
        for (image, status) in [("meta-formatted", "formatted"), ("meta-final", "final")] {
            let path = kernel_clone_image(&dir, &name, image);
            let json = blocks_json(&path, false);
            let rows = json["blocks"].as_array().unwrap();
            let mut listed: Vec<u64> = rows.iter().map(|r| r["block"].as_u64().unwrap()).collect();
            listed.sort_unstable();
            listed.dedup();
            let used = status_figures(manifest["status"][status].as_str().unwrap());
            let used = used
                .split_whitespace()
                .nth(1)
                .unwrap()
                .split('/')
                .next()
                .unwrap();
            assert_eq!(
                listed.len().to_string(),
                used,
                "{name} {image}: every block in use"
            );
            let metadata_bytes = manifest["geometry"]["metadata_bytes"].as_u64().unwrap();
            assert_eq!(json["nr_blocks"].as_u64(), Some(metadata_bytes / 4096));
            for row in rows {
                assert_eq!(row["checksum"], "ok", "{name} {image}: {row}");
                assert!(row.get("problems").is_none(), "{name} {image}: {row}");
                let from = &row["referenced_from"];
                if row["type"] == "superblock" {
                    assert!(from.is_null());
                    continue;
                }
                let parent = from.as_u64().unwrap_or_else(|| panic!("{name}: {row}"));
                assert!(listed.binary_search(&parent).is_ok(), "{name}: {row}");
            }
            let arrays = rows.iter().filter(|r| r["type"] == "array_block").count() as u64;
            let words = manifest["geometry"]["bitset_words"].as_u64().unwrap();
            assert_eq!(arrays, words.div_ceil(509), "{name} {image}");
            assert_eq!(json["bad_blocks"], 0);
            let yaml = cowdump(&["--blocks", "--format", "yaml"], &path);
            let yaml: serde_json::Value = serde_yaml::from_slice(&yaml.stdout).unwrap();
            assert_eq!(yaml, json, "{name} {image}: YAML and JSON say the same");
        }
    }
}

#[test]
fn blocks_as_a_table_streams_one_line_per_block_and_the_counts() {
    let dir = tempdir();
    let path = kernel_clone_image(&dir, "c-region8-8388608regions", "meta-final");
    let text = stdout(&cowdump(&["--blocks", "--format", "table"], &path));
    let json = blocks_json(&path, false);
    let listed = json["blocks_listed"].as_u64().unwrap();
    assert!(
        text.contains(&format!("({listed} blocks listed, 0 bad, 0 with problems)")),
        "{text}"
    );
    let root = json["blocks"][4]["block"].as_u64().unwrap();
    let leaves: Vec<&serde_json::Value> = json["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "array_btree_node" && r["depth"] == 1)
        .collect();
    assert_eq!(leaves.len(), 2, "fixture c has two leaves");
    for leaf in leaves {
        assert_eq!(leaf["referenced_from"].as_u64(), Some(root));
        let line = format!("{}  array_btree_node  ok", leaf["block"]);
        assert!(text.contains(&line), "{line}: {text}");
    }
    let last = "array block 257: regions 8372032..8388608";
    assert!(text.contains(last), "{text}");
}

#[test]
fn blocks_of_another_kind_are_refused() {
    let dir = tempdir();
    let cow = crate::common::build_store(&dir, "cow.img", 8, 64, 3);
    let output = cowdump(&["--blocks"], &cow);
    assert_error_says(
        &output,
        2,
        "cow.img",
        &["--blocks is for dm-clone metadata"],
    );
}

#[test]
fn blocks_name_each_damage_at_its_block() {
    use crate::common::clone_damage::{damage_clone, CloneDamage};
    let dir = tempdir();
    for damage in CloneDamage::ALL {
        let fixture = match damage {
            CloneDamage::TailBits => "d-region2097152-4regions",
            _ => "a-region8-131072regions",
        };
        let case = tempdir();
        let path = kernel_clone_image(&case, fixture, "meta-final");
        let damaged = damage_clone(&path, damage);
        let json = blocks_json(&path, true);
        let rows = json["blocks"].as_array().unwrap();
        let with_problems = json["blocks_with_problems"].as_u64().unwrap();
        let elsewhere = json["problems"].as_array().unwrap().len();
        assert!(
            with_problems > 0 || elsewhere > 0,
            "{damage:?} {damaged:?}: {json}"
        );
        let checksum = matches!(
            damage,
            CloneDamage::SuperblockChecksum
                | CloneDamage::BitmapChecksum
                | CloneDamage::RefCountNodeChecksum
                | CloneDamage::BtreeNodeChecksum
                | CloneDamage::ArrayBlockChecksum
        );
        if checksum {
            let bad = rows.iter().find(|r| r["block"] == damaged.block).unwrap();
            assert_eq!(bad["checksum"], "bad", "{damage:?}: {bad}");
            let problems = bad["problems"].as_array().unwrap();
            assert!(
                problems
                    .iter()
                    .any(|p| p.as_str().unwrap().starts_with("block-checksum: ")),
                "{damage:?}: {bad}"
            );
            assert_eq!(json["bad_blocks"], 1, "{damage:?}");
        }
    }
    drop(dir);
}
