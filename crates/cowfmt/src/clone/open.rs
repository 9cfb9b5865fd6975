//! Opening dm-clone metadata at its superblock, with two policies.
//!
//! Strict ([`open_strict`]): what the kernel refuses when a clone table is
//! loaded, in its order: a device shorter than a block, then `sb_check`
//! (block number, magic, checksum, version), then the sizes the table's
//! constructor refuses (region size range, power of two, zero target,
//! region count), then sizes that differ from the table's. The first one
//! is the refusal. Tolerant ([`open_tolerant`]): every violation of the
//! superblock is collected and whatever can be decoded is kept, for the
//! checker, the dump and repair.

use super::geometry::{metadata_blocks, Geometry};
use super::rules::CloneViolation;
use super::superblock::{read_clone_metadata, CloneMetadata, CloneSuperblock};
use crate::blockdev::BlockDev;
use crate::error::Result;
use crate::finding::Severity;

/// The region size and target length a table gives, in sectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSizes {
    /// Region size.
    pub region_sectors: u64,
    /// Target length.
    pub target_sectors: u64,
}

/// Clone metadata the kernel would open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedClone {
    /// The superblock.
    pub superblock: CloneSuperblock,
    /// Its sizes.
    pub geometry: Geometry,
    /// The metadata blocks the kernel uses on the device.
    pub nr_blocks: u64,
}

/// Why the kernel would not open the metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Block 0 is all zero: the kernel formats it on first activation; there
    /// is nothing to read.
    #[error("block 0 is all zero: no dm-clone metadata yet (the kernel formats it on activation)")]
    Blank,
    /// The first violation the kernel stops at.
    #[error("{}", .0.describe())]
    Violation(CloneViolation),
}

/// The superblock as far as it can be read, and every violation of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TolerantOpen {
    /// The superblock, when block 0 could be read and is not all zero.
    pub superblock: Option<CloneSuperblock>,
    /// Its sizes, when the kernel would accept them.
    pub geometry: Option<Geometry>,
    /// The metadata blocks the kernel uses on the device.
    pub nr_blocks: u64,
    /// Every violation found, in the kernel's order.
    pub violations: Vec<CloneViolation>,
}

impl TolerantOpen {
    /// Whether block 0 is all zero (metadata the kernel has not formatted).
    pub fn is_blank(&self) -> bool {
        self.superblock.is_none() && self.violations.is_empty()
    }
}

/// Opens the metadata on `device` as the kernel loads a table: the first
/// violation it refuses (`table` given: the sizes must equal the table's).
/// I/O errors are the outer error.
pub fn open_strict(
    device: &dyn BlockDev,
    table: Option<TableSizes>,
) -> Result<std::result::Result<OpenedClone, Refusal>> {
    let opened = open_tolerant(device, table)?;
    let refused = opened
        .violations
        .into_iter()
        .find(|v| v.severity() == Severity::Error);
    if let Some(violation) = refused {
        return Ok(Err(Refusal::Violation(violation)));
    }
    // Without an error, a superblock always has its geometry; no superblock
    // and no error is an all-zero block 0.
    Ok(match (opened.superblock, opened.geometry) {
        (Some(superblock), Some(geometry)) => Ok(OpenedClone {
            superblock,
            geometry,
            nr_blocks: opened.nr_blocks,
        }),
        _ => Err(Refusal::Blank),
    })
}

/// Reads the superblock of `device` and collects every violation of it.
pub fn open_tolerant(device: &dyn BlockDev, table: Option<TableSizes>) -> Result<TolerantOpen> {
    let nr_blocks = metadata_blocks(device.size());
    let mut opened = TolerantOpen {
        superblock: None,
        geometry: None,
        nr_blocks,
        violations: Vec::new(),
    };
    let superblock = match read_clone_metadata(device)? {
        Err(defect) => {
            opened.violations.push(defect.into());
            return Ok(opened);
        }
        Ok(CloneMetadata::Blank) => return Ok(opened),
        Ok(CloneMetadata::Superblock(superblock)) => *superblock,
    };
    opened.violations = superblock_violations(&superblock);
    match Geometry::new(superblock.region_sectors, superblock.target_sectors) {
        Ok(geometry) => opened.geometry = Some(geometry),
        Err(error) => opened.violations.push(error.into()),
    }
    opened.violations.extend(table_mismatch(&superblock, table));
    opened.superblock = Some(superblock);
    Ok(opened)
}

/// The superblock's sizes against the table's, when a table is given.
fn table_mismatch(
    superblock: &CloneSuperblock,
    table: Option<TableSizes>,
) -> Option<CloneViolation> {
    let table = table?;
    let stored = (superblock.region_sectors, superblock.target_sectors);
    let given = (table.region_sectors, table.target_sectors);
    (stored != given).then_some(CloneViolation::SizeMismatch {
        stored,
        table: given,
    })
}

/// Every check of the kernel's `sb_check` the superblock fails, in its
/// order, and bytes past the fields that are not zero.
fn superblock_violations(superblock: &CloneSuperblock) -> Vec<CloneViolation> {
    let mut violations: Vec<CloneViolation> =
        superblock.defects().into_iter().map(Into::into).collect();
    if !superblock.tail_zero {
        violations.push(CloneViolation::SuperblockTrailingBytes);
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clone::superblock::METADATA_BLOCK_BYTES;
    use crate::finding::FindingCode;
    use crate::memdev::MemDev;

    fn golden_device() -> MemDev {
        let bytes = crate::clone::golden_metadata();
        let device = MemDev::new("meta.img", bytes.len() as u64);
        device.write_at(&bytes, 0).unwrap();
        device
    }

    fn rewrite(device: &MemDev, change: impl FnOnce(&mut CloneSuperblock)) {
        let mut block = [0u8; METADATA_BLOCK_BYTES];
        device.read_at(&mut block, 0, &String::new).unwrap();
        let mut superblock = CloneSuperblock::decode(&block);
        change(&mut superblock);
        superblock.encode(&mut block);
        device.write_at(&block, 0).unwrap();
    }

    const GOLDEN_TABLE: TableSizes = TableSizes {
        region_sectors: 64,
        target_sectors: 32_768,
    };

    #[test]
    fn the_kernels_metadata_opens_strictly_with_its_table() {
        let device = golden_device();
        let opened = open_strict(&device, Some(GOLDEN_TABLE)).unwrap().unwrap();
        assert_eq!(
            (
                opened.geometry.nr_regions(),
                opened.superblock.bitset_root,
                opened.nr_blocks
            ),
            (512, 12, 1024)
        );
        let tolerant = open_tolerant(&device, None).unwrap();
        assert!(tolerant.violations.is_empty());
        assert!(!tolerant.is_blank());
    }

    #[test]
    fn strict_refuses_in_the_kernels_order_and_tolerant_sees_all() {
        let device = golden_device();
        rewrite(&device, |sb| {
            sb.version = 2;
            sb.region_sectors = 48;
        });
        device.write_at(&[1], 8).unwrap();
        let refusal = open_strict(&device, None).unwrap().unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "block 0 (clone superblock): names itself block 1"
        );
        let codes: Vec<FindingCode> = open_tolerant(&device, Some(GOLDEN_TABLE))
            .unwrap()
            .violations
            .iter()
            .map(CloneViolation::code)
            .collect();
        assert_eq!(
            codes,
            vec![
                FindingCode::BlockLocation,
                FindingCode::BlockChecksum,
                FindingCode::BadVersion,
                FindingCode::BadRegionSize,
                FindingCode::SizeMismatch
            ]
        );
    }

    #[test]
    fn sizes_the_table_refuses_or_that_differ_from_it() {
        let device = golden_device();
        let other = TableSizes {
            region_sectors: 64,
            target_sectors: 65_536,
        };
        assert_eq!(
            open_strict(&device, Some(other))
                .unwrap()
                .unwrap_err()
                .to_string(),
            "superblock (block 0): region size 64 and target size 32768 sectors, but the table \
             gives 64 and 65536; the kernel refuses sizes that differ"
        );
        rewrite(&device, |sb| sb.target_sectors = 64 << 32);
        let refusal = open_strict(&device, None).unwrap().unwrap_err();
        assert!(
            matches!(&refusal, Refusal::Violation(v) if v.code() == FindingCode::TooManyRegions),
            "{refusal}"
        );
    }

    #[test]
    fn trailing_bytes_warn_but_do_not_refuse() {
        let device = golden_device();
        let mut block = [0u8; METADATA_BLOCK_BYTES];
        device.read_at(&mut block, 0, &String::new).unwrap();
        block[300] = 7;
        let csum =
            crate::pdata::block::checksum(crate::pdata::block::BlockKind::CloneSuperblock, &block);
        block[..4].copy_from_slice(&csum.to_le_bytes());
        device.write_at(&block, 0).unwrap();
        assert!(!CloneSuperblock::decode(&block).tail_zero);
        assert!(open_strict(&device, None).unwrap().is_ok());
        assert_eq!(
            open_tolerant(&device, None).unwrap().violations,
            vec![CloneViolation::SuperblockTrailingBytes]
        );
    }

    #[test]
    fn blank_short_and_foreign_devices() {
        let blank = MemDev::new("blank", 1 << 20);
        assert_eq!(open_strict(&blank, None).unwrap(), Err(Refusal::Blank));
        assert!(open_tolerant(&blank, None).unwrap().is_blank());
        let short = MemDev::new("short", 100);
        assert_eq!(
            open_strict(&short, None).unwrap().unwrap_err().to_string(),
            "the device is 100 bytes long, shorter than one 4096-byte metadata block"
        );
        let foreign = MemDev::new("foreign", 1 << 20);
        foreign.write_at(b"SnAp", 0).unwrap();
        let refusal = open_strict(&foreign, None).unwrap().unwrap_err();
        assert_eq!(
            refusal.to_string(),
            "superblock (block 0): magic 0x0 at byte 32, expected 0x8af27f64"
        );
    }
}
