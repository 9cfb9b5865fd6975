//! The sizes of a dm-clone: region size and target length (kernel 6.12
//! `dm-clone-target.c`: `parse_region_size`, `validate_nr_regions`), the
//! hydration bitset they give (words, array blocks of 509 words) and the
//! metadata device (`DM_SM_METADATA_MAX_BLOCKS`). Every size the kernel
//! refuses is a [`GeometryError`] whose sentence names the kernel's limit.

use crate::pdata::block::{BLOCK_BYTES, BLOCK_SECTORS};

/// The smallest region the kernel accepts, in sectors (`MIN_REGION_SIZE`, 4 KiB).
pub const MIN_REGION_SECTORS: u64 = 8;
/// The largest region the kernel accepts, in sectors (`MAX_REGION_SIZE`, 1 GiB).
pub const MAX_REGION_SECTORS: u64 = 2_097_152;
/// The most regions the kernel accepts (`validate_nr_regions`: 2^31).
pub const MAX_REGIONS: u64 = 1 << 31;
/// Bits of one bitset word (`BITS_PER_ARRAY_ENTRY`).
pub const BITS_PER_WORD: u64 = 64;
/// le64 words in one array block: (4096 - 24) / 8.
pub const WORDS_PER_ARRAY_BLOCK: u64 = ((BLOCK_BYTES - 24) / 8) as u64;
/// Entries of one B-tree node with 8-byte values (the array B-tree).
pub const ARRAY_BTREE_MAX_ENTRIES: u64 = 252;
/// Entries (2-bit reference counts) of one space-map bitmap block.
pub const ENTRIES_PER_BITMAP: u64 = ((BLOCK_BYTES - 16) * 4) as u64;
/// Bitmap blocks the metadata space map's index block names at most.
pub const MAX_BITMAPS: u64 = 255;
/// The metadata blocks the kernel uses at most (`DM_SM_METADATA_MAX_BLOCKS`,
/// 255 x 16,320 = 4,161,600); blocks past it are never used.
pub const MAX_METADATA_BLOCKS: u64 = MAX_BITMAPS * ENTRIES_PER_BITMAP;
/// Blocks every format holds besides its bitmaps and its bitset: the
/// superblock, the space map's index block and its (empty) ref-count root.
const FIXED_BLOCKS: u64 = 3;

/// A size the kernel refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GeometryError {
    /// The region size is outside the kernel's range.
    #[error(
        "region size {region_sectors} sectors is outside the kernel's range of \
         {MIN_REGION_SECTORS} to {MAX_REGION_SECTORS} sectors (4 KiB to 1 GiB)"
    )]
    RegionSizeRange {
        /// The region size given, in sectors.
        region_sectors: u64,
    },
    /// The region size is not a power of two.
    #[error("region size {region_sectors} sectors is not a power of two, as the kernel requires")]
    RegionSizeNotPowerOfTwo {
        /// The region size given, in sectors.
        region_sectors: u64,
    },
    /// The target has no sectors.
    #[error("the target size is 0 sectors; the kernel refuses a zero-length target")]
    EmptyTarget,
    /// More regions than the kernel tracks.
    #[error(
        "a target of {target_sectors} sectors in regions of {region_sectors} sectors has \
         {nr_regions} regions, more than the kernel's limit of 2^31 (2147483648); \
         use a larger region size"
    )]
    TooManyRegions {
        /// The target size, in sectors.
        target_sectors: u64,
        /// The region size, in sectors.
        region_sectors: u64,
        /// The regions they give.
        nr_regions: u64,
    },
    /// The metadata device cannot hold a fresh format.
    #[error(
        "the metadata device holds {nr_blocks} blocks of 4 KiB; formatting {nr_regions} \
         regions needs at least {needed}"
    )]
    MetadataTooSmall {
        /// The blocks the kernel would use on the device.
        nr_blocks: u64,
        /// The regions to format.
        nr_regions: u64,
        /// The blocks a fresh format needs.
        needed: u64,
    },
}

/// Checks a region size as the table's constructor does: the range first,
/// then a power of two.
pub fn check_region_sectors(region_sectors: u64) -> Result<(), GeometryError> {
    if !(MIN_REGION_SECTORS..=MAX_REGION_SECTORS).contains(&region_sectors) {
        return Err(GeometryError::RegionSizeRange { region_sectors });
    }
    if !region_sectors.is_power_of_two() {
        return Err(GeometryError::RegionSizeNotPowerOfTwo { region_sectors });
    }
    Ok(())
}

/// A region size and a target length the kernel accepts, and the bitset
/// they give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    region_sectors: u64,
    target_sectors: u64,
    nr_regions: u64,
}

impl Geometry {
    /// The geometry of a clone of `target_sectors` in regions of
    /// `region_sectors`, or the kernel's reason to refuse it.
    pub fn new(region_sectors: u64, target_sectors: u64) -> Result<Self, GeometryError> {
        check_region_sectors(region_sectors)?;
        if target_sectors == 0 {
            return Err(GeometryError::EmptyTarget);
        }
        let nr_regions = target_sectors.div_ceil(region_sectors);
        if nr_regions > MAX_REGIONS {
            return Err(GeometryError::TooManyRegions {
                target_sectors,
                region_sectors,
                nr_regions,
            });
        }
        Ok(Geometry {
            region_sectors,
            target_sectors,
            nr_regions,
        })
    }

    /// The region size, in sectors.
    pub fn region_sectors(&self) -> u64 {
        self.region_sectors
    }

    /// The target length, in sectors.
    pub fn target_sectors(&self) -> u64 {
        self.target_sectors
    }

    /// The regions: ceil(target / region); the last may be partial.
    pub fn nr_regions(&self) -> u64 {
        self.nr_regions
    }

    /// The le64 words of the bitset: ceil(regions / 64).
    pub fn nr_words(&self) -> u64 {
        self.nr_regions.div_ceil(BITS_PER_WORD)
    }

    /// The bits of the last word past the last region (they must be zero).
    pub fn tail_bits(&self) -> u64 {
        self.nr_words() * BITS_PER_WORD - self.nr_regions
    }

    /// The array blocks the bitset needs: ceil(words / 509).
    pub fn nr_array_blocks(&self) -> u64 {
        self.nr_words().div_ceil(WORDS_PER_ARRAY_BLOCK)
    }

    /// The array blocks holding 509 words.
    pub fn full_array_blocks(&self) -> u64 {
        self.nr_words() / WORDS_PER_ARRAY_BLOCK
    }

    /// The words of the last, partial array block (0 when every block is full).
    pub fn tail_block_words(&self) -> u64 {
        self.nr_words() % WORDS_PER_ARRAY_BLOCK
    }

    /// The array blocks of a fresh format: one per index. Linux 6.12
    /// allocates a new block for every full block (the 3.x kernels shared
    /// one); the kernel-made fixtures in testdata/kernel-clone show it.
    pub fn fresh_array_blocks(&self) -> u64 {
        self.nr_array_blocks()
    }

    /// The array B-tree nodes of a fresh format: exact while the kernel's
    /// sequential inserts leave one leaf (up to 252 array blocks) or a root
    /// split beneath into two leaves, the right one filling (up to 378);
    /// past that, [`Geometry::array_btree_nodes_at_most`].
    pub fn fresh_array_btree_nodes(&self) -> u64 {
        match self.nr_array_blocks() {
            0..=ARRAY_BTREE_MAX_ENTRIES => 1,
            n if n <= ARRAY_BTREE_MAX_ENTRIES / 2 * 3 => 3,
            _ => self.array_btree_nodes_at_most(),
        }
    }

    /// The most nodes a valid array B-tree over the array blocks can have:
    /// every node but the root holds at least a third of 252 entries.
    pub fn array_btree_nodes_at_most(&self) -> u64 {
        btree_nodes_at_most(self.nr_array_blocks(), ARRAY_BTREE_MAX_ENTRIES)
    }

    /// The metadata blocks a fresh format of this geometry uses on a device
    /// of `nr_blocks` usable blocks (the kernel status's "used" figure): the
    /// superblock, the index block, the ref-count root, the bitmaps, the
    /// array B-tree ([`Geometry::fresh_array_btree_nodes`]: an upper bound
    /// past 378 array blocks) and the array blocks.
    pub fn fresh_metadata_blocks(&self, nr_blocks: u64) -> u64 {
        FIXED_BLOCKS
            + nr_blocks.div_ceil(ENTRIES_PER_BITMAP)
            + self.fresh_array_btree_nodes()
            + self.fresh_array_blocks()
    }

    /// The metadata blocks the bitset uses at most: the B-tree at its most
    /// nodes and one block per index.
    pub fn diverged_bitset_blocks(&self) -> u64 {
        self.array_btree_nodes_at_most() + self.nr_array_blocks()
    }

    /// Checks that a metadata device of `device_bytes` can hold a fresh
    /// format; returns the blocks the kernel would use on it.
    pub fn check_metadata_device(&self, device_bytes: u64) -> Result<u64, GeometryError> {
        let nr_blocks = metadata_blocks(device_bytes);
        let needed = self.fresh_metadata_blocks(nr_blocks);
        if nr_blocks < needed {
            return Err(GeometryError::MetadataTooSmall {
                nr_blocks,
                nr_regions: self.nr_regions,
                needed,
            });
        }
        Ok(nr_blocks)
    }

    /// The region holding `sector` of the target.
    pub fn region_of(&self, sector: u64) -> u64 {
        sector / self.region_sectors
    }

    /// The sectors of region `region` (the last region may be short).
    pub fn region_len(&self, region: u64) -> u64 {
        let start = region * self.region_sectors;
        self.target_sectors
            .saturating_sub(start)
            .min(self.region_sectors)
    }
}

/// The metadata blocks the kernel uses on a device of `device_bytes`:
/// whole 4 KiB blocks, at most [`MAX_METADATA_BLOCKS`].
pub fn metadata_blocks(device_bytes: u64) -> u64 {
    (device_bytes / (BLOCK_SECTORS * 512)).min(MAX_METADATA_BLOCKS)
}

/// The most nodes of a valid B-tree of `entries` entries whose nodes hold
/// `max_entries` at most and, but for the root, a third of it at least.
fn btree_nodes_at_most(entries: u64, max_entries: u64) -> u64 {
    let least = max_entries / 3;
    let (mut nodes, mut level) = (0, entries);
    while level > max_entries {
        level = level.div_ceil(least);
        nodes += level;
    }
    nodes + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_region_limits_in_its_order() {
        assert_eq!(check_region_sectors(8), Ok(()));
        assert_eq!(check_region_sectors(2_097_152), Ok(()));
        assert_eq!(
            check_region_sectors(4),
            Err(GeometryError::RegionSizeRange { region_sectors: 4 })
        );
        assert_eq!(
            check_region_sectors(4_194_304).unwrap_err().to_string(),
            "region size 4194304 sectors is outside the kernel's range of 8 to 2097152 \
             sectors (4 KiB to 1 GiB)"
        );
        assert_eq!(
            Geometry::new(24, 1024).unwrap_err().to_string(),
            "region size 24 sectors is not a power of two, as the kernel requires"
        );
        assert_eq!(Geometry::new(8, 0), Err(GeometryError::EmptyTarget));
    }

    #[test]
    fn the_region_count_limit_is_two_to_the_31() {
        let at_limit = Geometry::new(8, 8 << 31).unwrap();
        assert_eq!(at_limit.nr_regions(), MAX_REGIONS);
        assert_eq!(at_limit.nr_words(), 1 << 25);
        assert_eq!(at_limit.nr_array_blocks(), 65_923);
        let error = Geometry::new(8, (8 << 31) + 1).unwrap_err();
        assert_eq!(
            error.to_string(),
            "a target of 17179869185 sectors in regions of 8 sectors has 2147483649 regions, \
             more than the kernel's limit of 2^31 (2147483648); use a larger region size"
        );
    }

    #[test]
    fn the_golden_geometry_needs_one_partial_array_block() {
        let golden = Geometry::new(64, 32_768).unwrap();
        assert_eq!(
            (
                golden.nr_regions(),
                golden.nr_words(),
                golden.tail_bits(),
                golden.nr_array_blocks(),
                golden.full_array_blocks(),
                golden.tail_block_words(),
                golden.fresh_array_blocks()
            ),
            (512, 8, 0, 1, 0, 8, 1)
        );
        assert_eq!(golden.fresh_metadata_blocks(1024), 6);
        assert_eq!(golden.check_metadata_device(4 << 20), Ok(1024));
    }

    #[test]
    fn every_full_array_block_is_its_own_and_a_partial_tail_adds_one() {
        let exact = Geometry::new(8, 8 * 64 * 509 * 3).unwrap();
        assert_eq!(
            (
                exact.full_array_blocks(),
                exact.tail_block_words(),
                exact.fresh_array_blocks()
            ),
            (3, 0, 3)
        );
        let partial = Geometry::new(8, 8 * (64 * 509 * 2 + 65)).unwrap();
        assert_eq!(
            (
                partial.full_array_blocks(),
                partial.tail_block_words(),
                partial.tail_bits(),
                partial.fresh_array_blocks()
            ),
            (2, 2, 63, 3)
        );
    }

    /// `key: value` of the first line of `text` holding `key:`.
    fn manifest_value<'a>(text: &'a str, key: &str) -> &'a str {
        text.lines()
            .find_map(|line| line.trim().strip_prefix(&format!("{key}:")))
            .unwrap_or_else(|| panic!("no {key} in the manifest"))
            .trim()
            .trim_matches('"')
    }

    #[test]
    fn the_kernels_fresh_formats_use_the_blocks_we_compute() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/kernel-clone");
        let mut seen = Vec::new();
        for entry in std::fs::read_dir(root).unwrap() {
            let dir = entry.unwrap().path();
            let Ok(manifest) = std::fs::read_to_string(dir.join("manifest.yaml")) else {
                continue;
            };
            let number = |key| manifest_value(&manifest, key).parse::<u64>().unwrap();
            let geometry =
                Geometry::new(number("region_sectors"), number("target_sectors")).unwrap();
            assert_eq!(geometry.nr_regions(), number("nr_regions"));
            assert_eq!(geometry.nr_words(), number("bitset_words"));
            let status = manifest_value(&manifest, "formatted");
            let (used, total) = status.split(' ').nth(4).unwrap().split_once('/').unwrap();
            let nr_blocks = geometry
                .check_metadata_device(number("metadata_bytes"))
                .unwrap();
            assert_eq!(nr_blocks.to_string(), total, "{}", dir.display());
            assert_eq!(
                geometry.fresh_metadata_blocks(nr_blocks).to_string(),
                used,
                "{}",
                dir.display()
            );
            seen.push(used.parse::<u64>().unwrap());
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![6, 6, 10, 265]);
    }

    #[test]
    fn the_last_region_may_be_short() {
        let geometry = Geometry::new(64, 100).unwrap();
        assert_eq!(geometry.nr_regions(), 2);
        assert_eq!((geometry.region_len(0), geometry.region_len(1)), (64, 36));
        assert_eq!(geometry.region_of(99), 1);
    }

    #[test]
    fn the_metadata_device_cap_and_a_device_too_small() {
        assert_eq!(MAX_METADATA_BLOCKS, 4_161_600);
        assert_eq!(metadata_blocks(1 << 40), MAX_METADATA_BLOCKS);
        assert_eq!(metadata_blocks(4096 * 5 + 4095), 5);
        let geometry = Geometry::new(64, 32_768).unwrap();
        assert_eq!(
            geometry
                .check_metadata_device(4096 * 5)
                .unwrap_err()
                .to_string(),
            "the metadata device holds 5 blocks of 4 KiB; formatting 512 regions needs at least 6"
        );
    }

    #[test]
    fn a_btree_past_one_node_is_bounded_by_thirds() {
        assert_eq!(btree_nodes_at_most(1, 252), 1);
        assert_eq!(btree_nodes_at_most(252, 252), 1);
        assert_eq!(btree_nodes_at_most(253, 252), 5);
        let at_limit = Geometry::new(8, 8 << 31).unwrap();
        assert_eq!(at_limit.array_btree_nodes_at_most(), 785 + 10 + 1);
        assert_eq!(
            at_limit.fresh_metadata_blocks(MAX_METADATA_BLOCKS),
            3 + 255 + 796 + 65_923
        );
        assert!(at_limit.diverged_bitset_blocks() < MAX_METADATA_BLOCKS);
    }
}
