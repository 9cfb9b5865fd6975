//! What a repair keeps of damaged clone metadata: the sizes (from the
//! superblock, else from the caller), every bitset word that can be read,
//! and the region ranges whose words are lost. It reads through
//! [`super::walk`], the one walk of clone metadata, tolerantly.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::bitset::DenseBitmap;
use crate::blockdev::BlockDev;
use crate::error::{Error, Result};
use crate::pdata::bitset::BITS_PER_WORD;

use super::geometry::Geometry;
use super::open::{open_tolerant, TableSizes};
use super::walk::{walk_with_sizes, BlockReached, BlockRole, CloneVisitor, Policy};

/// The region states read from damaged metadata.
#[derive(Debug, Clone)]
pub struct Salvage {
    /// The sizes the salvage was read with.
    pub geometry: Geometry,
    /// The region and target sizes the superblock holds, when it could be
    /// read (usable or not).
    pub stored: Option<(u64, u64)>,
    /// One bit per region: hydrated as read; the regions of `lost` are clear.
    pub bits: DenseBitmap,
    /// Region ranges whose state could not be read, ascending, merged.
    pub lost: Vec<Range<u64>>,
    /// Every defect met, one sentence each.
    pub problems: Vec<String>,
}

impl Salvage {
    /// How many regions are lost.
    pub fn lost_regions(&self) -> u64 {
        self.lost.iter().map(|r| r.end - r.start).sum()
    }
}

/// The sizes a caller gives, in sectors: each replaces the superblock's;
/// the source's size stands in for a target size when neither it nor
/// usable superblock sizes are there.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GivenSizes {
    /// The region size (`--region-size`).
    pub region_sectors: Option<u64>,
    /// The target size (`--target-size`).
    pub target_sectors: Option<u64>,
    /// The size of the clone's source device (`--source`).
    pub source_sectors: Option<u64>,
}

impl GivenSizes {
    /// The sizes to read and write with: each given one, else the usable
    /// superblock's `stored`, else (the target) the source's; `Err` names
    /// the options still to give.
    fn resolve(&self, stored: Option<Geometry>) -> std::result::Result<TableSizes, String> {
        let region = self.region_sectors.or(stored.map(|g| g.region_sectors()));
        let target = self
            .target_sectors
            .or(stored.map(|g| g.target_sectors()))
            .or(self.source_sectors);
        let region_option = "--region-size SIZE";
        let target_option = "--target-size SIZE (or --source SRC, whose size is the target size)";
        match (region, target) {
            (Some(region_sectors), Some(target_sectors)) => Ok(TableSizes {
                region_sectors,
                target_sectors,
            }),
            (None, None) => Err(format!("{region_option} and {target_option}")),
            (None, Some(_)) => Err(region_option.to_string()),
            (Some(_), None) => Err(target_option.to_string()),
        }
    }
}

/// Reads every readable bitset word of the clone metadata on `device`.
/// The sizes are the superblock's, each replaced by the one `given` holds
/// (the bitset root is still the superblock's). Fails when a size is
/// neither usable in the superblock nor given, when the sizes given are
/// ones the kernel refuses, or on an I/O error.
pub fn salvage(device: &dyn BlockDev, given: &GivenSizes) -> Result<Salvage> {
    let stored = open_tolerant(device, None)?;
    let sizes = given.resolve(stored.geometry).map_err(|missing| {
        let found: Vec<String> = stored.violations.iter().map(|v| v.describe()).collect();
        let found = if found.is_empty() {
            "block 0 holds no superblock".to_string()
        } else {
            found.join("; ")
        };
        Error::Invalid(format!(
            "{}: the superblock gives no usable region and target sizes ({found}); give {missing}",
            device.path().display()
        ))
    })?;
    let geometry = Geometry::new(sizes.region_sectors, sizes.target_sectors).map_err(|e| {
        Error::Invalid(format!(
            "{}: the sizes given (region {} sectors, target {} sectors): {e}",
            device.path().display(),
            sizes.region_sectors,
            sizes.target_sectors
        ))
    })?;
    let mut places = ArrayPlaces::default();
    let walked = walk_with_sizes(device, None, Some(geometry), Policy::Tolerant, &mut places)?;
    let mut problems: Vec<String> = walked.violations.iter().map(|v| v.describe()).collect();
    let nr_regions = geometry.nr_regions();
    let (mut bits, mut lost) = match walked.bits {
        Some(bits) => (bits, walked.lost),
        None => {
            problems.push("no bitset root: every region state is lost".to_string());
            (
                DenseBitmap::new(nr_regions),
                std::iter::once(0..nr_regions).collect(),
            )
        }
    };
    for (location, indices) in places.shared() {
        problems.push(format!(
            "array block {location} is reached as array blocks {}: the states of their regions cannot be told apart and are lost",
            indices.iter().map(u64::to_string).collect::<Vec<_>>().join(" and ")
        ));
        for index in indices {
            let start = index * REGIONS_PER_ARRAY_BLOCK;
            let regions = start.min(nr_regions)..(start + REGIONS_PER_ARRAY_BLOCK).min(nr_regions);
            regions.clone().for_each(|region| bits.clear(region));
            lost.push(regions);
        }
    }
    let lost = merged(lost);
    Ok(Salvage {
        geometry,
        stored: stored
            .superblock
            .map(|sb| (sb.region_sectors, sb.target_sectors)),
        bits,
        lost,
        problems,
    })
}

/// Regions whose bits one array block holds (509 words).
const REGIONS_PER_ARRAY_BLOCK: u64 = 509 * BITS_PER_WORD;

/// The array indices each array block was reached under.
#[derive(Default)]
struct ArrayPlaces(BTreeMap<u64, Vec<u64>>);

impl ArrayPlaces {
    /// The array blocks reached under more than one index, with those.
    fn shared(self) -> impl Iterator<Item = (u64, Vec<u64>)> {
        self.0.into_iter().filter(|(_, indices)| indices.len() > 1)
    }
}

impl CloneVisitor for ArrayPlaces {
    fn block(&mut self, reached: &BlockReached) {
        if let BlockRole::ArrayBlock { index } = reached.role {
            self.0.entry(reached.location).or_default().push(index);
        }
    }
}

/// `ranges` sorted, empty ones dropped, overlapping and touching ones merged.
fn merged(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.retain(|range| !range.is_empty());
    ranges.sort_by_key(|range| range.start);
    let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match out.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => out.push(range),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clone::kernel_fixture_bytes as fixture;
    use crate::memdev::MemDev;
    use crate::pdata::bitset::set_runs;
    use crate::pdata::block::BLOCK_BYTES;

    fn bitset_root(bytes: &[u8]) -> usize {
        u64::from_le_bytes(bytes[188..196].try_into().unwrap()) as usize
    }

    #[test]
    fn undamaged_metadata_salvages_every_region_and_loses_none() {
        let bytes = fixture("a-region8-131072regions", "final");
        let salvage = salvage(&MemDev::from_bytes("a", bytes), &GivenSizes::default()).unwrap();
        assert_eq!(salvage.lost, Vec::<Range<u64>>::new());
        assert_eq!(salvage.bits.count_ones(), 74);
        assert!(salvage.problems.is_empty(), "{:?}", salvage.problems);
    }

    #[test]
    fn a_damaged_array_block_loses_only_its_regions() {
        let mut bytes = fixture("c-region8-8388608regions", "final");
        let whole = salvage(
            &MemDev::from_bytes("c", bytes.clone()),
            &GivenSizes::default(),
        )
        .unwrap();
        let leaf = bitset_root(&bytes);
        let root_node = &bytes[leaf * BLOCK_BYTES..];
        assert_eq!(
            u32::from_le_bytes(root_node[4..8].try_into().unwrap()),
            1,
            "internal root"
        );
        let child =
            u64::from_le_bytes(root_node[32 + 252 * 8..32 + 253 * 8].try_into().unwrap()) as usize;
        let first_array = u64::from_le_bytes(
            bytes[child * BLOCK_BYTES + 32 + 252 * 8..][..8]
                .try_into()
                .unwrap(),
        ) as usize;
        bytes[first_array * BLOCK_BYTES + 100] ^= 0xff;
        let damaged = salvage(&MemDev::from_bytes("c", bytes), &GivenSizes::default()).unwrap();
        let per_block = 509 * 64;
        assert_eq!(damaged.lost, vec![0..per_block]);
        assert_eq!(damaged.lost_regions(), per_block);
        assert!(!damaged.problems.is_empty());
        let kept: Vec<_> = set_runs(&whole.bits)
            .filter(|&(s, _)| s >= per_block)
            .collect();
        let after: Vec<_> = set_runs(&damaged.bits).collect();
        assert_eq!(after, kept);
    }

    #[test]
    fn a_superblock_without_sizes_needs_them_given_and_loses_every_region() {
        let mut bytes = fixture("b-region128-1024regions", "final");
        bytes[..BLOCK_BYTES].fill(0xaa);
        let device = MemDev::from_bytes("b", bytes);
        let refused = salvage(&device, &GivenSizes::default())
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("give --region-size SIZE and --target-size SIZE"),
            "{refused}"
        );
        let region_only = GivenSizes {
            region_sectors: Some(128),
            ..GivenSizes::default()
        };
        let refused = salvage(&device, &region_only).unwrap_err().to_string();
        assert!(
            refused.ends_with(
                "give --target-size SIZE (or --source SRC, whose size is the target size)"
            ),
            "{refused}"
        );
        let sizes = GivenSizes {
            region_sectors: Some(128),
            target_sectors: Some(128 * 1024),
            source_sectors: None,
        };
        let salvage = salvage(&device, &sizes).unwrap();
        assert_eq!(salvage.lost, vec![0..1024]);
        assert_eq!(salvage.bits.count_ones(), 0);
    }
}
