//! A region-size change of a dm-clone's hydration bitset: splitting gives
//! every part its region's state; merging hydrates a region only when all
//! of its parts are (a region partly copied must be copied again). The new
//! geometry is refused where the kernel would refuse it.

use crate::bitset::DenseBitmap;

use super::geometry::{Geometry, GeometryError};

/// The bitset `bits` of `geometry` in regions of `region_sectors` over the
/// same target: the new geometry and its bits.
pub fn change_region_size(
    geometry: &Geometry,
    bits: &DenseBitmap,
    region_sectors: u64,
) -> Result<(Geometry, DenseBitmap), GeometryError> {
    let new = Geometry::new(region_sectors, geometry.target_sectors())?;
    let mut out = DenseBitmap::new(new.nr_regions());
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
            if (first..last).all(|old| bits.get(old)) {
                out.test_and_set(region);
            }
        }
    }
    Ok((new, out))
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
