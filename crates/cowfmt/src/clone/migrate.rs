//! A region-size change of a dm-clone's hydration bitset: splitting gives
//! every part its region's state; merging hydrates a region only when all
//! of its parts are (a region partly copied must be copied again). The new
//! geometry is refused where the kernel would refuse it; the input is read
//! through [`walk`](super::walk) and must read clean.

use serde::Serialize;

use crate::bitset::DenseBitmap;
use crate::blockdev::BlockDev;
use crate::error::Error;
use crate::finding::Severity;
use crate::job::JobError;

use super::geometry::{Geometry, GeometryError};
use super::walk::{walk, Policy};

/// A clone's sizes and hydration, before or after a region-size change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CloneShape {
    /// Region size in sectors.
    pub region_size: u64,
    /// Target size in sectors.
    pub target_size: u64,
    /// Regions of the target.
    pub nr_regions: u64,
    /// Regions marked hydrated.
    pub hydrated_regions: u64,
}

impl CloneShape {
    /// The shape of `bits` over `geometry`.
    pub fn of(geometry: &Geometry, bits: &DenseBitmap) -> Self {
        CloneShape {
            region_size: geometry.region_sectors(),
            target_size: geometry.target_sectors(),
            nr_regions: geometry.nr_regions(),
            hydrated_regions: bits.count_ones(),
        }
    }
}

/// A region-size change worked out: the new geometry and bits, and what
/// the change did to hydration.
#[derive(Debug, Clone)]
pub struct RegionChange {
    /// The new sizes.
    pub geometry: Geometry,
    /// The new hydration bits.
    pub bits: DenseBitmap,
    /// The input's shape.
    pub from: CloneShape,
    /// The output's shape.
    pub to: CloneShape,
    /// Merged regions left unhydrated because some, not all, of their
    /// parts were hydrated.
    pub partly_hydrated: u64,
}

/// Reads the clone metadata on `input` and works out its change to regions
/// of `region_sectors`. Refuses metadata that does not read clean (damage:
/// repair it first) and a size the kernel would refuse.
pub fn plan(input: &dyn BlockDev, region_sectors: u64) -> Result<RegionChange, JobError> {
    let path = input.path().display().to_string();
    let walked = walk(input, None, Policy::Strict, &mut ())?;
    let problem = walked
        .violations
        .iter()
        .find(|v| v.severity() == Severity::Error);
    if let Some(violation) = problem {
        return Err(JobError::Damage(format!(
            "{path}: the metadata does not read clean ({}: {}); repair it with cowrepair first",
            violation.code(),
            violation.describe()
        )));
    }
    let (Some(geometry), Some(bits)) = (walked.opened.geometry, walked.bits) else {
        return Err(JobError::Damage(format!(
            "{path}: holds no dm-clone superblock (block 0 is blank)"
        )));
    };
    let (new, out, partly_hydrated) = resize(&geometry, &bits, region_sectors).map_err(|e| {
        Error::Invalid(format!(
            "{path}: a region size of {region_sectors} sectors: {e}"
        ))
    })?;
    Ok(RegionChange {
        from: CloneShape::of(&geometry, &bits),
        to: CloneShape::of(&new, &out),
        geometry: new,
        bits: out,
        partly_hydrated,
    })
}

/// The bitset `bits` of `geometry` in regions of `region_sectors` over the
/// same target: the new geometry and its bits.
pub fn change_region_size(
    geometry: &Geometry,
    bits: &DenseBitmap,
    region_sectors: u64,
) -> Result<(Geometry, DenseBitmap), GeometryError> {
    resize(geometry, bits, region_sectors).map(|(new, out, _)| (new, out))
}

/// [`change_region_size`], and the merged regions some but not all of
/// whose parts were hydrated.
fn resize(
    geometry: &Geometry,
    bits: &DenseBitmap,
    region_sectors: u64,
) -> Result<(Geometry, DenseBitmap, u64), GeometryError> {
    let new = Geometry::new(region_sectors, geometry.target_sectors())?;
    let mut out = DenseBitmap::new(new.nr_regions());
    let mut partly_hydrated = 0;
    let old_sectors = geometry.region_sectors();
    if region_sectors <= old_sectors {
        let parts = old_sectors / region_sectors;
        for region in 0..new.nr_regions() {
            if bits.get(region / parts) {
                out.test_and_set(region);
            }
        }
    } else {
        let parts = region_sectors / old_sectors;
        for region in 0..new.nr_regions() {
            let first = region * parts;
            let last = (first + parts).min(geometry.nr_regions());
            let hydrated = (first..last).filter(|&old| bits.get(old)).count() as u64;
            if hydrated == last - first {
                out.test_and_set(region);
            } else if hydrated > 0 {
                partly_hydrated += 1;
            }
        }
    }
    Ok((new, out, partly_hydrated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdata::bitset::{read_bitset, set_runs};
    use crate::pdata::btree::walk::Mode;
    use crate::pdata::io::{BlockSource, MemBlocks};

    use super::super::superblock::CloneSuperblock;

    /// The geometry and the bits the kernel left in a fixture's `meta-final`.
    fn kernel_final(name: &str) -> (Geometry, DenseBitmap) {
        let xz = format!(
            "{}/../../testdata/kernel-clone/{name}/meta-final.img.xz",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut bytes = Vec::new();
        let file = std::fs::File::open(&xz).expect(&xz);
        lzma_rs::xz_decompress(&mut std::io::BufReader::new(file), &mut bytes).unwrap();
        let mem = MemBlocks::from_bytes(bytes);
        let sb = CloneSuperblock::decode(&mem.read_block(0, &|| "sb".into()).unwrap());
        let geometry = Geometry::new(sb.region_sectors, sb.target_sectors).unwrap();
        let read = read_bitset(
            &mem,
            sb.bitset_root,
            geometry.nr_regions(),
            Mode::Strict,
            &mut |_| {},
        )
        .unwrap();
        (geometry, read.bits)
    }

    fn runs(bits: &DenseBitmap) -> Vec<(u64, u64)> {
        set_runs(bits).collect()
    }

    #[test]
    fn split_then_merge_gives_the_kernels_bits_back() {
        for (name, smaller) in [
            ("b-region128-1024regions", 8),
            ("d-region2097152-4regions", 1_048_576),
        ] {
            let (geometry, bits) = kernel_final(name);
            let (split, parts) = change_region_size(&geometry, &bits, smaller).unwrap();
            let factor = geometry.region_sectors() / smaller;
            let hydrated_parts = (0..split.nr_regions()).filter(|&r| parts.get(r)).count();
            assert!(
                hydrated_parts as u64 <= bits.count_ones() * factor,
                "{name}"
            );
            assert!(
                hydrated_parts as u64 > (bits.count_ones() - 1) * factor,
                "{name}"
            );
            let (merged, back) =
                change_region_size(&split, &parts, geometry.region_sectors()).unwrap();
            assert_eq!(merged, geometry, "{name}");
            assert_eq!(runs(&back), runs(&bits), "{name}");
        }
    }

    #[test]
    fn a_merged_region_is_hydrated_only_when_all_its_parts_are() {
        let (geometry, bits) = kernel_final("a-region8-131072regions");
        let (merged, out) = change_region_size(&geometry, &bits, 64).unwrap();
        assert_eq!(merged.nr_regions(), 16_384);
        // Of the kernel's runs, only 200..264 covers whole groups of eight.
        assert_eq!(runs(&out), [(25, 8)]);
    }

    #[test]
    fn a_plan_counts_the_merged_regions_that_lose_hydration() {
        let device = crate::clone::kernel_fixture("a-region8-131072regions", "final");
        let change = plan(&device, 64).unwrap();
        assert_eq!(
            (change.from.hydrated_regions, change.to.hydrated_regions),
            (74, 8)
        );
        let (_, bits) = kernel_final("a-region8-131072regions");
        let touched = (0..16_384u64)
            .filter(|group| (group * 8..group * 8 + 8).any(|r| bits.get(r)))
            .count() as u64;
        assert_eq!(change.partly_hydrated, touched - 8);
        assert_eq!(plan(&device, 8).unwrap().partly_hydrated, 0);
    }

    #[test]
    fn a_plan_refuses_metadata_that_does_not_read_clean() {
        let mut bytes = crate::clone::kernel_fixture_bytes("b-region128-1024regions", "final");
        let root = u64::from_le_bytes(bytes[188..196].try_into().unwrap()) as usize;
        bytes[root * crate::pdata::block::BLOCK_BYTES + 64] ^= 1;
        let device = crate::clone::memory_device(&bytes);
        let error = plan(&device, 8).unwrap_err().to_string();
        assert!(
            error.starts_with("meta.img: the metadata does not read clean (block-checksum: "),
            "{error}"
        );
        assert!(error.ends_with("repair it with cowrepair first"), "{error}");
    }

    #[test]
    fn the_kernels_refusals_hold_for_the_new_size() {
        let geometry = Geometry::new(8, 1 << 20).unwrap();
        let bits = DenseBitmap::new(geometry.nr_regions());
        assert!(matches!(
            change_region_size(&geometry, &bits, 4),
            Err(GeometryError::RegionSizeRange { region_sectors: 4 })
        ));
        assert!(matches!(
            change_region_size(&geometry, &bits, 24),
            Err(GeometryError::RegionSizeNotPowerOfTwo { .. })
        ));
    }
}
