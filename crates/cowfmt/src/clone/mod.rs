//! dm-clone metadata: the fourth store kind. The superblock is this
//! module's; everything past it (space map, array B-tree, bitset) is
//! persistent-data, read and written through the kind-neutral `pdata`.
//!
//! - [`superblock`]: the one codec of block 0 and the kernel's `sb_check`;
//! - [`geometry`]: region size, region count, bitset words and array blocks,
//!   the metadata blocks a format needs, each kernel limit as a typed refusal;
//! - [`rules`]: every invariant of clone metadata as one enum of violations,
//!   with finding codes;
//! - [`dump`]: what `cowdump` shows and `mkcow --from-dump` reads back;
//! - [`open`]: the superblock opened strictly (what the kernel refuses, in
//!   its order) or tolerantly (every violation collected);
//! - [`walk`]: the one read-only walk from the superblock through the space
//!   map and the bitset, block by block, with a visitor;
//! - [`check`]: every invariant, reference counts recomputed from the walk;
//! - [`salvage`]: every readable bitset word of damaged metadata and the
//!   region ranges that are lost;
//! - [`lost`]: the state of lost regions, decided from the data or as the
//!   caller chose, with the reason of each run;
//! - [`repair`]: a repair planned: salvage, decisions, the states to write;
//! - [`migrate`]: a region-size change of the hydration bitset;
//! - [`write`]: the one writer of fresh metadata holding a hydration bitset.

pub mod check;
pub mod dump;
pub mod geometry;
pub mod lost;
pub mod migrate;
pub mod open;
pub mod repair;
pub mod rules;
pub mod salvage;
pub mod superblock;
pub mod walk;
pub mod write;

#[cfg(test)]
mod write_tests;

/// The metadata the 6.12 kernel wrote in golden image d
/// (`testdata/golden/d-clone-partial-hydration/meta.img.xz`), unpacked.
#[cfg(test)]
pub(crate) fn golden_metadata() -> Vec<u8> {
    crate::test_images::golden_clone()
}

/// A kernel-made fixture of `testdata/kernel-clone` (`which`: `formatted`
/// or `final`) on a memory device.
#[cfg(test)]
pub(crate) fn kernel_fixture(name: &str, which: &str) -> crate::memdev::MemDev {
    memory_device(&kernel_fixture_bytes(name, which))
}

/// `bytes` on a memory device.
#[cfg(test)]
pub(crate) fn memory_device(bytes: &[u8]) -> crate::memdev::MemDev {
    use crate::blockdev::BlockDev as _;
    let device = crate::memdev::MemDev::new("meta.img", bytes.len() as u64);
    device.write_at(bytes, 0).unwrap();
    device
}

/// The manifest of every kernel-made fixture, by name, sorted.
#[cfg(test)]
pub(crate) fn kernel_manifests() -> Vec<(String, serde_yaml::Value)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/kernel-clone");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("kernel-clone fixtures")
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let text = std::fs::read_to_string(format!("{dir}/{name}/manifest.yaml")).unwrap();
            (name, serde_yaml::from_str(&text).unwrap())
        })
        .collect()
}

/// The metadata image `which` (`formatted` or `final`) of kernel fixture
/// `name` (`testdata/kernel-clone/<name>/meta-<which>.img.xz`), unpacked.
#[cfg(test)]
pub(crate) fn kernel_fixture_bytes(name: &str, which: &str) -> Vec<u8> {
    crate::test_images::kernel_clone(name, which)
}
