//! Checking dm-clone metadata: every invariant the walk meets (superblock,
//! geometry, blocks, B-tree structure, array length, bits past the last
//! region, the space map's structures), then the space map's reference
//! counts recomputed from what the superblock reaches (leaked, doubly used
//! or under-counted, over-counted blocks, `nr_allocated`). Findings carry
//! the codes and block locations of [`CloneViolation`]; the figures are the
//! ones the kernel's status line prints.

use super::open::TableSizes;
use super::rules::CloneViolation;
use super::walk::{from_space_map, walk, BlockReached, BlockRole, CloneVisitor, CloneWalk, Policy};
use crate::blockdev::BlockDev;
use crate::error::Result;
use crate::finding::{Finding, Severity};
use crate::pdata::block::BLOCK_SECTORS;
use crate::pdata::space_map;
use crate::progress::Progress;

/// The check of clone metadata: findings and the status figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneCheckReport {
    /// Every violation, in the order found.
    pub violations: Vec<CloneViolation>,
    /// The same as findings, for the tools' rendering.
    pub findings: Vec<Finding>,
    /// The figures, when the superblock could be read.
    pub status: Option<CloneStatus>,
    /// Regions whose hydration state could not be read.
    pub lost_regions: u64,
}

/// The figures of the kernel's status line, as the metadata holds them:
/// `<metadata block sectors> <used>/<total> <region sectors>
/// <hydrated>/<regions>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloneStatus {
    /// Sectors of a metadata block (8).
    pub metadata_block_sectors: u64,
    /// Metadata blocks in use (the space map root's `nr_allocated`).
    pub metadata_used: u64,
    /// Metadata blocks the space map covers.
    pub metadata_total: u64,
    /// Sectors of a region.
    pub region_sectors: u64,
    /// Regions marked hydrated.
    pub hydrated_regions: u64,
    /// Regions of the target.
    pub nr_regions: u64,
}

impl CloneStatus {
    /// The figures as `dmsetup status` prints them (`8 10/1024 8 74/131072`).
    pub fn line(&self) -> String {
        format!(
            "{} {}/{} {} {}/{}",
            self.metadata_block_sectors,
            self.metadata_used,
            self.metadata_total,
            self.region_sectors,
            self.hydrated_regions,
            self.nr_regions
        )
    }
}

impl CloneCheckReport {
    /// Whether some violation is an error.
    pub fn has_errors(&self) -> bool {
        self.violations
            .iter()
            .any(|v| v.severity() == Severity::Error)
    }
}

/// Checks the clone metadata on `device` (`table`: the sizes a table would
/// give). Fails only on I/O errors.
pub fn check(device: &dyn BlockDev, table: Option<TableSizes>) -> Result<CloneCheckReport> {
    let walked = walk(device, table, Policy::Tolerant, &mut ())?;
    Ok(report(walked))
}

/// The superblock alone (the kernel's `sb_check` and the geometry it
/// accepts): no status figures, nothing past block 0.
pub fn check_superblock(
    device: &dyn BlockDev,
    table: Option<TableSizes>,
) -> Result<CloneCheckReport> {
    let opened = super::open::open_tolerant(device, table)?;
    Ok(CloneCheckReport {
        findings: opened
            .violations
            .iter()
            .map(CloneViolation::finding)
            .collect(),
        violations: opened.violations,
        status: None,
        lost_regions: 0,
    })
}

/// [`check`], telling `progress` (array blocks read, array blocks of the
/// bitset) as the walk reaches each array block.
pub fn check_with_progress(
    device: &dyn BlockDev,
    table: Option<TableSizes>,
    progress: &mut Progress,
) -> Result<CloneCheckReport> {
    let opened = super::open::open_tolerant(device, table)?;
    let total = opened.geometry.map_or(0, |g| g.nr_array_blocks());
    let mut counter = ArrayBlocksRead {
        done: 0,
        total,
        progress,
    };
    let walked = walk(device, table, Policy::Tolerant, &mut counter)?;
    Ok(report(walked))
}

/// A visitor telling a progress callback each array block reached.
struct ArrayBlocksRead<'p, 'a> {
    done: u64,
    total: u64,
    progress: &'p mut Progress<'a>,
}

impl CloneVisitor for ArrayBlocksRead<'_, '_> {
    fn block(&mut self, reached: &BlockReached) {
        if let BlockRole::ArrayBlock { .. } = reached.role {
            self.done += 1;
            (self.progress)(self.done, self.total.max(self.done));
        }
    }
}

/// The report of a tolerant walk: its violations, then the space map's
/// counts against the references it found.
pub fn report(walked: CloneWalk) -> CloneCheckReport {
    let CloneWalk {
        opened,
        space_map,
        bits,
        lost,
        reachable,
        mut violations,
        ..
    } = walked;
    if let Some(loaded) = &space_map {
        let structural = loaded.findings.len();
        let counted = space_map::check(loaded, reachable);
        violations.extend(counted.into_iter().skip(structural).map(from_space_map));
    }
    let status = match (&opened.superblock, &opened.geometry, &space_map) {
        (Some(superblock), Some(geometry), Some(loaded)) => Some(CloneStatus {
            metadata_block_sectors: BLOCK_SECTORS,
            metadata_used: loaded.root.nr_allocated,
            metadata_total: loaded.root.nr_blocks,
            region_sectors: superblock.region_sectors,
            hydrated_regions: bits.as_ref().map_or(0, |b| b.count_ones()),
            nr_regions: geometry.nr_regions(),
        }),
        _ => None,
    };
    CloneCheckReport {
        findings: violations.iter().map(CloneViolation::finding).collect(),
        violations,
        status,
        lost_regions: lost.iter().map(|range| range.end - range.start).sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clone::superblock::CloneSuperblock;
    use crate::clone::{golden_metadata, kernel_fixture, kernel_manifests, memory_device};
    use crate::finding::FindingCode;
    use crate::pdata::block::{seal, BlockKind, BLOCK_BYTES};
    use crate::pdata::space_map::Bitmap;

    fn status_figures(line: &str) -> String {
        line.split_whitespace()
            .skip(3)
            .take(4)
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn every_kernel_image_checks_clean_with_the_kernels_status_figures() {
        for (name, manifest) in kernel_manifests() {
            for which in ["formatted", "final"] {
                let report = check(&kernel_fixture(&name, which), None).unwrap();
                assert!(
                    report.violations.is_empty(),
                    "{name} {which}: {:?}",
                    report.violations
                );
                let want = status_figures(manifest["status"][which].as_str().unwrap());
                assert_eq!(report.status.unwrap().line(), want, "{name} {which}");
            }
        }
        let golden = check(&memory_device(&golden_metadata()), None).unwrap();
        assert!(golden.violations.is_empty(), "{:?}", golden.violations);
        let status = golden.status.unwrap();
        assert_eq!((status.hydrated_regions, status.nr_regions), (12, 512));
    }

    /// Fixture `name` (formatted) as bytes.
    fn bytes_of(name: &str) -> Vec<u8> {
        let device = kernel_fixture(name, "formatted");
        let mut bytes = vec![0; device.size() as usize];
        device.read_at(&mut bytes, 0, &String::new).unwrap();
        bytes
    }

    fn block(bytes: &mut [u8], location: u64) -> &mut [u8] {
        let at = location as usize * BLOCK_BYTES;
        &mut bytes[at..at + BLOCK_BYTES]
    }

    fn put_u32(block: &mut [u8], at: usize, value: u32) {
        block[at..at + 4].copy_from_slice(&value.to_le_bytes());
    }

    fn put_u64(block: &mut [u8], at: usize, value: u64) {
        block[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }

    fn superblock(bytes: &mut [u8], change: impl FnOnce(&mut CloneSuperblock)) {
        let block: &mut [u8; BLOCK_BYTES] = block(bytes, 0).try_into().unwrap();
        let mut superblock = CloneSuperblock::decode(block);
        change(&mut superblock);
        superblock.encode(block);
    }

    /// Changes block `location` of `kind` and seals it again.
    fn resealed(bytes: &mut [u8], location: u64, kind: BlockKind, change: impl FnOnce(&mut [u8])) {
        let block = block(bytes, location);
        change(block);
        seal(kind, location, block);
    }

    fn found(bytes: &[u8]) -> Vec<(FindingCode, Option<u64>)> {
        let report = check(&memory_device(bytes), None).unwrap();
        report
            .findings
            .iter()
            .map(|f| (f.code, f.location.chunk))
            .collect()
    }

    /// Fixture a formatted: 0 superblock, 1 index, 2 ref-count leaf,
    /// 3 bitmap, 4 array btree leaf (keys 0..5 -> 5..9), 5..9 array blocks.
    const A: &str = "a-region8-131072regions";
    /// Fixture d formatted: 4 regions, 4 btree leaf -> 5 array block of 1 word.
    const D: &str = "d-region2097152-4regions";

    #[test]
    fn each_damage_is_named_with_its_code_and_block() {
        type Damage = fn(&mut Vec<u8>);
        let cases: [(&str, &str, Damage, FindingCode, Option<u64>); 19] = [
            (
                "superblock csum",
                A,
                |b| block(b, 0)[60] ^= 1,
                FindingCode::BlockChecksum,
                Some(0),
            ),
            (
                "superblock blocknr",
                A,
                |b| superblock(b, |s| s.blocknr = 7),
                FindingCode::BlockLocation,
                Some(0),
            ),
            (
                "magic",
                A,
                |b| superblock(b, |s| s.magic = 1),
                FindingCode::BadMagic,
                Some(0),
            ),
            (
                "version",
                A,
                |b| superblock(b, |s| s.version = 2),
                FindingCode::BadVersion,
                Some(0),
            ),
            (
                "region size",
                A,
                |b| superblock(b, |s| s.region_sectors = 12),
                FindingCode::BadRegionSize,
                Some(0),
            ),
            (
                "target size",
                A,
                |b| superblock(b, |s| s.target_sectors = 0),
                FindingCode::BadTargetSize,
                Some(0),
            ),
            (
                "sm root index",
                A,
                |b| {
                    superblock(b, |s| {
                        s.sm_root[16..24].copy_from_slice(&5000u64.to_le_bytes())
                    })
                },
                FindingCode::BlockPastEnd,
                Some(5000),
            ),
            (
                "index entry nr_free",
                A,
                |b| resealed(b, 1, BlockKind::SmIndex, |k| put_u32(k, 24, 3)),
                FindingCode::SpaceMapIndex,
                None,
            ),
            (
                "bitmap entry: leaked block",
                A,
                |b| {
                    resealed(b, 3, BlockKind::SmBitmap, |k| {
                        let mut bitmap = Bitmap::decode(3, k).unwrap();
                        bitmap.set(100, 1);
                        k.copy_from_slice(&bitmap.encode(3)[..]);
                    })
                },
                FindingCode::BlockLeaked,
                Some(100),
            ),
            (
                "bitmap entry: live block free",
                A,
                |b| {
                    resealed(b, 3, BlockKind::SmBitmap, |k| {
                        let mut bitmap = Bitmap::decode(3, k).unwrap();
                        bitmap.set(7, 0);
                        k.copy_from_slice(&bitmap.encode(3)[..]);
                    })
                },
                FindingCode::BlockUnderCounted,
                Some(7),
            ),
            (
                "ref-count tree",
                A,
                |b| block(b, 2)[40] ^= 1,
                FindingCode::BlockChecksum,
                Some(2),
            ),
            (
                "btree node csum",
                A,
                |b| block(b, 4)[40] ^= 1,
                FindingCode::BlockChecksum,
                Some(4),
            ),
            (
                "btree node header",
                A,
                |b| resealed(b, 4, BlockKind::BtreeNode, |k| put_u32(k, 16, 400)),
                FindingCode::BtreeDamaged,
                Some(4),
            ),
            (
                "btree keys",
                A,
                |b| resealed(b, 4, BlockKind::BtreeNode, |k| put_u64(k, 40, 9)),
                FindingCode::BtreeDamaged,
                Some(4),
            ),
            (
                "btree value: doubly used block",
                A,
                |b| {
                    resealed(b, 4, BlockKind::BtreeNode, |k| {
                        put_u64(k, 32 + 252 * 8 + 8, 5)
                    })
                },
                FindingCode::BlockUnderCounted,
                Some(5),
            ),
            (
                "array block csum",
                A,
                |b| block(b, 6)[100] ^= 1,
                FindingCode::BlockChecksum,
                Some(6),
            ),
            (
                "array block header",
                A,
                |b| resealed(b, 6, BlockKind::ArrayBlock, |k| put_u32(k, 8, 3)),
                FindingCode::ArrayBlockDamaged,
                Some(6),
            ),
            (
                "tail bits",
                D,
                |b| resealed(b, 5, BlockKind::ArrayBlock, |k| put_u64(k, 24, 1 << 10)),
                FindingCode::BitsPastLastRegion,
                None,
            ),
            (
                "truncated device",
                A,
                |b| b.truncate(8 * BLOCK_BYTES),
                FindingCode::BlockPastEnd,
                Some(9),
            ),
        ];
        for (what, name, damage, code, at) in cases {
            let mut bytes = bytes_of(name);
            assert!(found(&bytes).is_empty(), "{what}: clean before");
            damage(&mut bytes);
            let found = found(&bytes);
            assert!(found.contains(&(code, at)), "{what}: {found:?}");
        }
    }
}
