//! cowrepair on dm-clone metadata: every readable region state kept (the
//! kernel fixtures' manifests), lost regions decided from the source and
//! destination data or as --lost-regions says, and refused otherwise.

use crate::common;

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use common::*;
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
