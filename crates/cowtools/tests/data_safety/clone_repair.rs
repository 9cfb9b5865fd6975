//! cowrepair on dm-clone metadata: every readable region state kept (the
//! kernel fixtures' manifests), lost regions decided from the source and
//! destination data or as --lost-regions says, and refused otherwise.

use crate::common;

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use common::*;
use cowfmt::clone::check::check;
use cowfmt::clone::salvage::{salvage, GivenSizes};
use cowfmt::device::{Access, Device};
use tempfile::TempDir;

const FIXTURE: &str = "b-region128-1024regions";
const REGION_BYTES: u64 = 128 * 512;
const NR_REGIONS: u64 = 1024;
/// Fixture b's manifest `hydrated` runs.
const MANIFEST_RUNS: [(u64, u64); 5] = [(2, 1), (7, 1), (9, 2), (20, 4), (1023, 1)];

fn fixture(dir: &TempDir) -> PathBuf {
    let xz = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/kernel-clone")
        .join(FIXTURE)
        .join("meta-final.img.xz");
    let mut bytes = Vec::new();
    let file = std::fs::File::open(&xz).expect("kernel-clone fixture");
    lzma_rs::xz_decompress(&mut std::io::BufReader::new(file), &mut bytes).unwrap();
    let path = dir.path().join("meta.img");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// The fixture with its one array block damaged: every region state lost.
fn damaged(dir: &TempDir) -> PathBuf {
    let path = fixture(dir);
    let bytes = std::fs::read(&path).unwrap();
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let root = u64_at(188) as usize;
    let array_block = u64_at(root * 4096 + 32 + 252 * 8);
    poke(&path, array_block * 4096 + 40, &[0x5a]);
    path
}

/// Asserts that the clone metadata at `path` has no violation at all.
fn assert_checks_clean(path: &Path) {
    let device = Device::open(path, Access::ReadOnly).unwrap();
    let report = check(&device, None).unwrap();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
}

fn hydrated_runs(path: &Path) -> Vec<(u64, u64)> {
    let device = Device::open(path, Access::ReadOnly).unwrap();
    let read = salvage(&device, &GivenSizes::default()).unwrap();
    assert!(read.lost.is_empty(), "{:?}", read.problems);
    let runs = read.bits.set_runs(0, read.bits.len());
    runs.into_iter()
        .map(|(start, end)| (start, end - start))
        .collect()
}

/// A device of the clone's target size with `fill(region)` as the last byte
/// of each region where it is not zero.
fn data_device(dir: &TempDir, name: &str, fill: impl Fn(u64) -> u8) -> PathBuf {
    let path = dir.path().join(name);
    let mut file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(&path)
        .unwrap();
    file.set_len(REGION_BYTES * NR_REGIONS).unwrap();
    for region in 0..NR_REGIONS {
        let byte = fill(region);
        if byte != 0 {
            file.seek(SeekFrom::Start((region + 1) * REGION_BYTES - 1))
                .unwrap();
            file.write_all(&[byte]).unwrap();
        }
    }
    path
}

#[test]
fn undamaged_kernel_metadata_is_rewritten_with_every_region_state() {
    let dir = tempdir();
    let input = fixture(&dir);
    let output = dir.path().join("fixed.img");
    let report = json_report("cowrepair", &input, &output, &["--kind", "clone"]);
    assert_eq!(report["hydrated_regions"], 9);
    assert_eq!(report["lost_regions"], 0);
    assert_eq!(hydrated_runs(&output), MANIFEST_RUNS);
}

#[test]
fn lost_regions_are_refused_by_range_until_the_caller_decides() {
    let dir = tempdir();
    let input = damaged(&dir);
    let output = dir.path().join("fixed.img");
    let refused = repair_into(&input, &output, &["--kind", "clone"]);
    assert_refused_without_output(
        &refused,
        2,
        "meta.img",
        &[
            "the state of 1024 regions is lost (regions 0..1024)",
            "--lost-regions",
        ],
        &output,
    );
}

#[test]
fn lost_regions_take_the_chosen_state_and_the_exit_says_states_were_chosen() {
    let dir = tempdir();
    let input = damaged(&dir);
    let output = dir.path().join("fixed.img");
    let done = repair_into(
        &input,
        &output,
        &["--kind", "clone", "--lost-regions", "hydrated"],
    );
    assert_eq!(done.status.code(), Some(3), "{}", stderr(&done));
    assert!(
        stdout(&done).contains("regions 0..1024 (1024 lost): hydrated: as --lost-regions chose"),
        "{}",
        stdout(&done)
    );
    assert_eq!(hydrated_runs(&output), [(0, NR_REGIONS)]);
}

#[test]
fn lost_regions_are_decided_from_the_source_and_destination_data() {
    let dir = tempdir();
    let input = damaged(&dir);
    let source = data_device(&dir, "source.img", |_| 7);
    let copied = |region: u64| {
        MANIFEST_RUNS
            .iter()
            .any(|&(start, count)| (start..start + count).contains(&region))
    };
    let dest = data_device(&dir, "dest.img", |region| match region {
        5 => 9,
        r if copied(r) => 7,
        _ => 0,
    });
    let output = dir.path().join("fixed.img");
    let done = repair_into(
        &input,
        &output,
        &[
            "--kind",
            "clone",
            "--source",
            s(&source),
            "--dest",
            s(&dest),
        ],
    );
    let text = assert_success_says(
        &done,
        &[
            "regions 5..6 (1 lost): hydrated: the destination holds data the source does not",
            "regions 2..3 (1 lost): hydrated: the destination equals the source",
            "regions 0..2 (2 lost): unhydrated: the destination is all zero and the source is not",
        ],
    );
    assert!(text.contains("1024 lost; 10 hydrated"), "{text}");
    let mut want = MANIFEST_RUNS.to_vec();
    want.insert(1, (5, 1));
    assert_eq!(hydrated_runs(&output), want);
}

#[test]
fn source_without_dest_is_a_usage_error() {
    let dir = tempdir();
    let input = damaged(&dir);
    let output = dir.path().join("fixed.img");
    let refused = repair_into(&input, &output, &["--kind", "clone", "--source", s(&input)]);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(!output.exists());
}

#[test]
fn the_superblock_names_the_kind_without_kind_clone() {
    let dir = tempdir();
    let input = fixture(&dir);
    let output = dir.path().join("fixed.img");
    let report = json_report("cowrepair", &input, &output, &[]);
    assert_eq!(report["hydrated_regions"], 9);
    assert_eq!(hydrated_runs(&output), MANIFEST_RUNS);
}

/// The fixture with its superblock's region size field overwritten (not a
/// power of two): the sizes are unusable, the bitset root is not.
fn region_size_wiped(dir: &TempDir) -> PathBuf {
    let path = fixture(dir);
    poke(&path, 172, &3u64.to_le_bytes());
    path
}

#[test]
fn an_unusable_superblock_size_is_refused_naming_the_options_to_give() {
    let dir = tempdir();
    let input = region_size_wiped(&dir);
    let output = dir.path().join("fixed.img");
    let refused = repair_into(&input, &output, &[]);
    assert_refused_without_output(
        &refused,
        2,
        "meta.img",
        &["no usable region and target sizes", "give --region-size SIZE and --target-size SIZE (or --source SRC, whose size is the target size)"],
        &output,
    );
    let refused = repair_into(
        &input,
        &output,
        &["--kind", "clone", "--region-size", "64k"],
    );
    assert_refused_without_output(
        &refused,
        2,
        "meta.img",
        &["give --target-size SIZE"],
        &output,
    );
}

#[test]
fn sizes_given_for_an_unusable_superblock_keep_every_region_state() {
    let dir = tempdir();
    let input = region_size_wiped(&dir);
    let output = dir.path().join("fixed.img");
    let target = (REGION_BYTES * NR_REGIONS).to_string();
    let done = repair_into(
        &input,
        &output,
        &[
            "--kind",
            "clone",
            "--region-size",
            "64k",
            "--target-size",
            &target,
        ],
    );
    let text = assert_success_says(
        &done,
        &["written with a region size of 128 sectors and a target size of 131072 sectors, as given (the superblock says a region size of 3 and a target size of 131072)", "1024 read, 0 lost; 9 hydrated"],
    );
    assert_eq!(done.status.code(), Some(0), "{text}");
    assert_eq!(hydrated_runs(&output), MANIFEST_RUNS);
}

#[test]
fn the_source_size_stands_for_the_target_size() {
    let dir = tempdir();
    let input = region_size_wiped(&dir);
    let source = data_device(&dir, "source.img", |_| 7);
    let dest = data_device(&dir, "dest.img", |_| 0);
    let output = dir.path().join("fixed.img");
    let done = repair_into(
        &input,
        &output,
        &[
            "--region-size",
            "64k",
            "--source",
            s(&source),
            "--dest",
            s(&dest),
        ],
    );
    assert_success_says(&done, &["a target size of 131072 sectors"]);
    assert_eq!(hydrated_runs(&output), MANIFEST_RUNS);
}

#[test]
fn in_place_rewrites_the_input_from_a_verified_backup_with_the_chosen_lost_states() {
    let dir = tempdir();
    let input = damaged(&dir);
    let damaged_bytes = std::fs::read(&input).unwrap();
    let backup = dir.path().join("meta.bak");
    let done = tool("cowrepair")
        .args(["-i", s(&input), "--in-place", "--backup", s(&backup)])
        .args(["--lost-regions", "unhydrated"])
        .output()
        .unwrap();
    assert_eq!(done.status.code(), Some(3), "{}", stderr(&done));
    assert!(
        stdout(&done).contains("the region states were read from the verified backup"),
        "{}",
        stdout(&done)
    );
    assert_eq!(std::fs::read(&backup).unwrap(), damaged_bytes);
    assert_eq!(hydrated_runs(&input), Vec::<(u64, u64)>::new());
    assert_checks_clean(&input);
}

#[test]
fn in_place_with_lost_regions_undecided_touches_nothing() {
    let dir = tempdir();
    let input = damaged(&dir);
    let damaged_bytes = std::fs::read(&input).unwrap();
    let backup = dir.path().join("meta.bak");
    let refused = tool("cowrepair")
        .args(["-i", s(&input), "--in-place", "--backup", s(&backup)])
        .output()
        .unwrap();
    assert_error_says(
        &refused,
        2,
        "meta.img",
        &["the state of 1024 regions is lost"],
    );
    assert_eq!(std::fs::read(&input).unwrap(), damaged_bytes);
    assert!(
        !backup.exists(),
        "the backup of a refused repair is removed"
    );
}

#[test]
fn a_cut_short_in_place_repair_is_refused_then_finished_from_its_backup() {
    use cowfmt::output::{InRepair, Marker};
    let dir = tempdir();
    let input = fixture(&dir);
    let original = std::fs::read(&input).unwrap();
    let backup = dir.path().join("meta.bak");
    std::fs::write(&backup, &original).unwrap();
    let marker = Marker::InRepair(
        InRepair::of_backup(
            &Device::open(&backup, Access::ReadOnly).unwrap(),
            u32::from_le_bytes(original[..4].try_into().unwrap()),
            s(&backup),
        )
        .unwrap(),
    );
    let target = Device::open(&input, Access::ReadWrite).unwrap();
    marker.write(&target).unwrap();
    target.write_at(&[0xee; 4096], 4 * 4096).unwrap();
    drop(target);
    for (name, args) in [
        ("cowrepair", vec!["-i", s(&input), "-o", "x.img"]),
        ("cowcheck", vec![s(&input)]),
    ] {
        let refused = tool(name)
            .current_dir(dir.path())
            .args(&args)
            .output()
            .unwrap();
        let said = format!("{}{}", stdout(&refused), stderr(&refused));
        assert_ne!(refused.status.code(), Some(0), "{name}: {said}");
        assert!(
            said.contains("a store in repair: an in-place cowrepair from the backup"),
            "{name}: {said}"
        );
        assert!(!dir.path().join("x.img").exists());
    }
    let done = tool("cowrepair")
        .args(["-i", s(&input), "--in-place", "--backup", s(&backup)])
        .output()
        .unwrap();
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    assert_eq!(hydrated_runs(&input), MANIFEST_RUNS);
    assert_eq!(std::fs::read(&backup).unwrap(), original);
}

#[test]
fn options_of_the_cow_stores_are_refused_for_clone_metadata() {
    let dir = tempdir();
    let input = fixture(&dir);
    let output = dir.path().join("fixed.img");
    for option in [
        &["--chunk-size", "8k"][..],
        &["--invalidate-on-loss"],
        &["--origin-size", "1M"],
    ] {
        let refused = repair_into(&input, &output, option);
        assert_refused_without_output(
            &refused,
            2,
            "meta.img",
            &[&format!(
                "{} applies to COW stores, and this is dm-clone metadata",
                option[0]
            )],
            &output,
        );
    }
}
