//! What a repair keeps of damaged clone metadata: the sizes (from the
//! superblock, else from the caller), every bitset word that can be read,
//! and the region ranges whose words are lost.

use std::ops::Range;

use crate::bitset::DenseBitmap;
use crate::blockdev::BlockDev;
use crate::error::{Error, Result};
use crate::pdata::bitset::read_bitset;
use crate::pdata::btree::Mode;
use crate::pdata::io::BlockSource;

use super::geometry::Geometry;
use super::open::{open_tolerant, TableSizes};

/// The region states read from damaged metadata.
#[derive(Debug, Clone)]
pub struct Salvage {
    /// The sizes the salvage was read with.
    pub geometry: Geometry,
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

/// Reads every readable bitset word of the clone metadata on `device`.
/// The sizes are the superblock's; `sizes` stands in when the superblock's
/// cannot be read (then no bitset root is known and every region is lost).
/// Fails when neither gives sizes, or on an I/O error.
pub fn salvage<D: BlockDev + BlockSource>(
    device: &D,
    sizes: Option<TableSizes>,
) -> Result<Salvage> {
    let opened = open_tolerant(device, None)?;
    let mut problems: Vec<String> = opened.violations.iter().map(|v| v.describe()).collect();
    let root = opened.superblock.as_ref().map(|sb| sb.bitset_root);
    let (geometry, root) = match (opened.geometry, sizes) {
        (Some(geometry), _) => (geometry, root),
        (None, Some(sizes)) => {
            let geometry = Geometry::new(sizes.region_sectors, sizes.target_sectors)
                .map_err(|e| Error::Invalid(format!("the sizes given: {e}")))?;
            (geometry, None)
        }
        (None, None) => {
            return Err(Error::Invalid(format!(
                "{}: the superblock gives no usable region and target sizes ({}); give them with --region-size and --target-size",
                device.path().display(),
                problems.join("; ")
            )))
        }
    };
    let nr_regions = geometry.nr_regions();
    let Some(root) = root else {
        problems.push("no bitset root: every region state is lost".to_string());
        return Ok(Salvage {
            geometry,
            bits: DenseBitmap::new(nr_regions),
            lost: std::iter::once(0..nr_regions).collect(),
            problems,
        });
    };
    let read = read_bitset(device, root, nr_regions, Mode::Tolerant, &mut |_| {})?;
    problems.extend(read.defects.iter().map(|d| d.to_string()));
    Ok(Salvage {
        geometry,
        bits: read.bits,
        lost: read.lost,
        problems,
    })
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
        let salvage = salvage(&MemDev::from_bytes("a", bytes), None).unwrap();
        assert_eq!(salvage.lost, Vec::<Range<u64>>::new());
        assert_eq!(salvage.bits.count_ones(), 74);
        assert!(salvage.problems.is_empty(), "{:?}", salvage.problems);
    }

    #[test]
    fn a_damaged_array_block_loses_only_its_regions() {
        let mut bytes = fixture("c-region8-8388608regions", "final");
        let whole = salvage(&MemDev::from_bytes("c", bytes.clone()), None).unwrap();
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
        let damaged = salvage(&MemDev::from_bytes("c", bytes), None).unwrap();
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
        let refused = salvage(&device, None).unwrap_err().to_string();
        assert!(
            refused.contains("--region-size and --target-size"),
            "{refused}"
        );
        let sizes = TableSizes {
            region_sectors: 128,
            target_sectors: 128 * 1024,
        };
        let salvage = salvage(&device, Some(sizes)).unwrap();
        assert_eq!(salvage.lost, vec![0..1024]);
        assert_eq!(salvage.bits.count_ones(), 0);
    }
}
