//! The writer against the kernel: a fresh format of every kernel fixture's
//! geometry equals the kernel's `meta-formatted` image byte for byte, and
//! a written bitset reads back whole with a space map that checks clean.

use crate::bitset::DenseBitmap;
use crate::pdata::bitset::{read_bitset, set_runs};
use crate::pdata::btree::walk::Mode;
use crate::pdata::io::{BlockSource, MemBlocks};
use crate::pdata::space_map::{check, load, SmRoot};

use super::geometry::{Geometry, GeometryError};
use super::superblock::CloneSuperblock;
use super::write::{format_clone, write_clone, CloneWriteError};

const FIXTURES: [&str; 4] = [
    "a-region8-131072regions",
    "b-region128-1024regions",
    "c-region8-8388608regions",
    "d-region2097152-4regions",
];

fn kernel_formatted(name: &str) -> MemBlocks {
    MemBlocks::from_bytes(crate::test_images::kernel_clone(name, "formatted"))
}

/// A `key: number` of the fixture's manifest.
fn manifest_number(name: &str, key: &str) -> u64 {
    crate::test_images::kernel_clone_manifest(name)
        .lines()
        .find_map(|line| line.trim().strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("{name}: no {key} in the manifest"))
        .parse()
        .unwrap()
}

fn geometry_of(name: &str) -> Geometry {
    Geometry::new(
        manifest_number(name, "region_sectors"),
        manifest_number(name, "target_sectors"),
    )
    .unwrap()
}

/// The superblock, space map and bitset of `mem` read back: the bits, and
/// the space map's findings against what the bitset reaches.
fn read_back(mem: &MemBlocks) -> (DenseBitmap, usize) {
    let superblock = CloneSuperblock::decode(&mem.read_block(0, &|| "sb".into()).unwrap());
    assert_eq!(superblock.defects(), []);
    let sm_root = SmRoot::decode(&superblock.sm_root);
    let nr_regions = superblock
        .target_sectors
        .div_ceil(superblock.region_sectors);
    let mut reach = vec![0u32; sm_root.nr_blocks as usize];
    reach[0] = 1;
    let read = read_bitset(
        mem,
        superblock.bitset_root,
        nr_regions,
        Mode::Strict,
        &mut |block| reach[block as usize] += 1,
    )
    .unwrap();
    assert!(read.defects.is_empty() && read.lost.is_empty());
    let loaded = load(mem, sm_root).unwrap();
    (read.bits, check(&loaded, reach).len())
}

#[test]
fn a_fresh_format_is_the_kernels_byte_for_byte() {
    for name in FIXTURES {
        let want = kernel_formatted(name);
        let geometry = geometry_of(name);
        let nr_blocks = geometry
            .check_metadata_device(manifest_number(name, "metadata_bytes"))
            .unwrap();
        let mut mem = MemBlocks::zeroed(want.nr_blocks());
        format_clone(&mut mem, &geometry, nr_blocks).unwrap();
        crate::test_images::assert_same_blocks(name, mem.bytes(), want.bytes());
    }
}

#[test]
fn written_bits_read_back_and_the_space_map_checks_clean() {
    for (region_sectors, target_sectors, runs) in [
        (8, 1 << 20, vec![(0, 1), (200, 64), (131_071, 1)]),
        (
            8,
            (258 * 509 * 64) * 8,
            vec![(5, 40_000), (8_000_000, 1_000)],
        ),
        (
            8,
            2_000 * 509 * 64 * 8,
            vec![(1, 3), (60_000_000, 5_000_000)],
        ),
        (2_097_152, 7 << 20, vec![(1, 1), (3, 1)]),
    ] {
        let geometry = Geometry::new(region_sectors, target_sectors).unwrap();
        let mut bits = DenseBitmap::new(geometry.nr_regions());
        for (start, count) in &runs {
            for region in *start..start + count {
                bits.test_and_set(region);
            }
        }
        let nr_blocks = geometry.check_metadata_device(64 << 20).unwrap();
        let mut mem = MemBlocks::zeroed(nr_blocks);
        write_clone(&mut mem, &geometry, nr_blocks, &bits).unwrap();
        let (read, findings) = read_back(&mem);
        assert_eq!(findings, 0, "{geometry:?}");
        assert_eq!(set_runs(&read).collect::<Vec<_>>(), runs, "{geometry:?}");
    }
}

#[test]
fn refusals_name_the_mismatch() {
    let geometry = Geometry::new(8, 1 << 20).unwrap();
    let mut mem = MemBlocks::zeroed(1024);
    let short = DenseBitmap::new(geometry.nr_regions() - 1);
    assert!(matches!(
        write_clone(&mut mem, &geometry, 1024, &short),
        Err(CloneWriteError::BitsLength {
            expected: 131_072,
            found: 131_071
        })
    ));
    assert!(matches!(
        format_clone(&mut mem, &geometry, 9),
        Err(CloneWriteError::Geometry(GeometryError::MetadataTooSmall {
            needed: 10,
            ..
        }))
    ));
    assert!(
        mem.bytes().iter().all(|&b| b == 0),
        "a refusal writes nothing"
    );
}
