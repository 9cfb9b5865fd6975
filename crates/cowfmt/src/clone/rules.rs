//! Every invariant of dm-clone metadata as one typed set: the superblock
//! (`sb_check`, the geometry the kernel accepts), the blocks of
//! persistent-data (checksum, own location, inside the device), the
//! bitset (array length, bits past the last region), the B-tree structure,
//! and the metadata space map against what is reachable (counts, leaks,
//! blocks used more often than counted). The checker turns a violation
//! into a finding ([`CloneViolation::finding`]), repair into a reason to
//! drop what it cannot trust, the strict open into a refusal.

use std::ops::Range;

use super::geometry::GeometryError;
use super::superblock::{SuperblockDefect, CLONE_MAGIC, CLONE_METADATA_VERSION};
use crate::finding::{Finding, FindingCode, Location, Severity};
use crate::pdata::block::{BlockDefect, BlockKind};
use crate::pdata::space_map::SmFinding;

/// A field of a space-map index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexField {
    /// `nr_free`: free entries of the bitmap's full capacity.
    NrFree,
    /// `none_free_before`: no entry below it is free.
    NoneFreeBefore,
}

impl IndexField {
    fn name(self) -> &'static str {
        match self {
            IndexField::NrFree => "nr_free",
            IndexField::NoneFreeBefore => "none_free_before",
        }
    }
}

/// One broken invariant of dm-clone metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloneViolation {
    /// The device is shorter than one metadata block.
    DeviceTooSmall {
        /// The device's size.
        bytes: u64,
    },
    /// Block 0 is not a dm-clone superblock.
    Magic {
        /// The magic found.
        found: u64,
    },
    /// A version the kernel does not read.
    Version {
        /// The version found.
        found: u32,
    },
    /// A block's checksum does not match its bytes (the kernel's `-EILSEQ`).
    Checksum {
        /// Where the block was read.
        block: u64,
        /// What it was read as.
        kind: BlockKind,
        /// The checksum stored.
        stored: u32,
        /// The checksum its bytes give.
        computed: u32,
    },
    /// A block names another location (the kernel's `-ENOTBLK`).
    Blocknr {
        /// Where the block was read.
        block: u64,
        /// What it was read as.
        kind: BlockKind,
        /// The location it names.
        found: u64,
    },
    /// Bytes past the superblock's fields are not zero (the kernel writes
    /// them zero and never reads them).
    SuperblockTrailingBytes,
    /// The superblock's region size is one the kernel refuses.
    RegionSize {
        /// Why.
        error: GeometryError,
    },
    /// The superblock's target size is 0.
    TargetSize,
    /// More regions than the kernel tracks.
    RegionCount {
        /// Why.
        error: GeometryError,
    },
    /// The metadata device is too small for the geometry.
    MetadataTooSmall {
        /// Why.
        error: GeometryError,
    },
    /// The superblock's sizes differ from the ones the table gives (the
    /// kernel's "Region and/or target size don't match").
    SizeMismatch {
        /// Region size and target size in the superblock.
        stored: (u64, u64),
        /// Region size and target size of the table.
        table: (u64, u64),
    },
    /// A reference to a block past the metadata device.
    PastDevice {
        /// The block referencing it (0 for the superblock's roots; None for
        /// an array block, whose leaf the array walk does not name).
        from: Option<u64>,
        /// The block referenced.
        block: u64,
        /// The blocks of the device.
        nr_blocks: u64,
    },
    /// The bitset's array holds another number of words than ceil(regions/64).
    ArrayLength {
        /// The words found.
        words: u64,
        /// The words the region count needs.
        expected: u64,
    },
    /// An array block's header does not fit its place in the array.
    ArrayBlock {
        /// The array block.
        block: u64,
        /// Its index in the array.
        index: u64,
        /// What is wrong, as the array walk says it.
        detail: String,
    },
    /// Bits set past the last region in the bitset's last word.
    TailBitsSet {
        /// The word holding them.
        word: u64,
        /// The bits set, as a mask over the word.
        bits: u64,
    },
    /// A B-tree node breaks the structure (header, value size, key order,
    /// keys outside the range the parent gives it, depth).
    Btree {
        /// The node.
        block: u64,
        /// The key range the parent gives it.
        keys: Range<u64>,
        /// What is wrong, starting with the tree, the node and its key
        /// range, as the walker says it.
        detail: String,
    },
    /// A block is counted by the space map but reached from nothing.
    Leaked {
        /// The block.
        block: u64,
        /// Its count in the space map.
        counted: u32,
    },
    /// A block is reached more often than the space map counts: the kernel
    /// may hand it out again and overwrite live metadata.
    UnderCounted {
        /// The block.
        block: u64,
        /// Its count in the space map.
        counted: u32,
        /// How often it is reached.
        reached: u32,
    },
    /// A reachable block counted more often than it is reached.
    OverCounted {
        /// The block.
        block: u64,
        /// Its count in the space map.
        counted: u32,
        /// How often it is reached.
        reached: u32,
    },
    /// The space map root's `nr_allocated` differs from the blocks counted.
    NrAllocated {
        /// The figure stored.
        stored: u64,
        /// The blocks with a count above 0.
        counted: u64,
    },
    /// An index entry's field differs from its bitmap.
    IndexEntry {
        /// The bitmap's index.
        bitmap: u64,
        /// The field.
        field: IndexField,
        /// The value stored.
        stored: u64,
        /// The value its bitmap gives.
        expected: u64,
    },
    /// A ref-count tree entry for a block whose bitmap entry is not 3.
    RefCountTreeStray {
        /// The block the entry counts.
        block: u64,
        /// Its bitmap entry.
        bitmap_entry: u8,
    },
    /// Any other problem of the metadata space map (structure read, or its
    /// counts against what is reachable, as runs of blocks).
    SpaceMap(SmFinding),
    /// A bitmap entry at or past the device's last block is not free.
    BitmapPastDevice {
        /// The first such entry.
        block: u64,
        /// The blocks of the device.
        nr_blocks: u64,
    },
}

impl CloneViolation {
    /// The finding code the checker reports it under.
    pub fn code(&self) -> FindingCode {
        match self {
            CloneViolation::DeviceTooSmall { .. } => FindingCode::DeviceTooSmall,
            CloneViolation::Magic { .. } => FindingCode::BadMagic,
            CloneViolation::Version { .. } => FindingCode::BadVersion,
            CloneViolation::Checksum { .. } => FindingCode::BlockChecksum,
            CloneViolation::Blocknr { .. } => FindingCode::BlockLocation,
            CloneViolation::SuperblockTrailingBytes => FindingCode::HeaderTrailingGarbage,
            CloneViolation::RegionSize { .. } => FindingCode::BadRegionSize,
            CloneViolation::TargetSize => FindingCode::BadTargetSize,
            CloneViolation::RegionCount { .. } => FindingCode::TooManyRegions,
            CloneViolation::MetadataTooSmall { .. } => FindingCode::DeviceTooSmall,
            CloneViolation::SizeMismatch { .. } => FindingCode::SizeMismatch,
            CloneViolation::PastDevice { .. } => FindingCode::BlockPastEnd,
            CloneViolation::ArrayLength { .. } => FindingCode::ArrayLength,
            CloneViolation::ArrayBlock { .. } => FindingCode::ArrayBlockDamaged,
            CloneViolation::TailBitsSet { .. } => FindingCode::BitsPastLastRegion,
            CloneViolation::Btree { .. } => FindingCode::BtreeDamaged,
            CloneViolation::Leaked { .. } => FindingCode::BlockLeaked,
            CloneViolation::UnderCounted { .. } => FindingCode::BlockUnderCounted,
            CloneViolation::OverCounted { .. } => FindingCode::BlockOverCounted,
            CloneViolation::NrAllocated { .. } => FindingCode::SpaceMapAllocated,
            CloneViolation::IndexEntry { .. } => FindingCode::SpaceMapIndex,
            CloneViolation::RefCountTreeStray { .. } => FindingCode::RefCountTreeStray,
            CloneViolation::BitmapPastDevice { .. } => FindingCode::BitmapBitsPastEnd,
            CloneViolation::SpaceMap(finding) => space_map_code(finding),
        }
    }

    /// Fatal (the kernel refuses or misreads the metadata, or may overwrite
    /// live blocks) or a warning (space wasted, bytes nobody reads).
    pub fn severity(&self) -> Severity {
        match self {
            CloneViolation::SuperblockTrailingBytes
            | CloneViolation::Leaked { .. }
            | CloneViolation::OverCounted { .. }
            | CloneViolation::SpaceMap(SmFinding::Leaked { .. } | SmFinding::OverCounted { .. }) => {
                Severity::Warning
            }
            _ => Severity::Error,
        }
    }

    /// The metadata block the violation is at, where there is one.
    pub fn block(&self) -> Option<u64> {
        match self {
            CloneViolation::Checksum { block, .. }
            | CloneViolation::Blocknr { block, .. }
            | CloneViolation::PastDevice { block, .. }
            | CloneViolation::ArrayBlock { block, .. }
            | CloneViolation::Btree { block, .. }
            | CloneViolation::Leaked { block, .. }
            | CloneViolation::UnderCounted { block, .. }
            | CloneViolation::OverCounted { block, .. }
            | CloneViolation::RefCountTreeStray { block, .. }
            | CloneViolation::BitmapPastDevice { block, .. } => Some(*block),
            CloneViolation::DeviceTooSmall { .. }
            | CloneViolation::Magic { .. }
            | CloneViolation::Version { .. }
            | CloneViolation::SuperblockTrailingBytes
            | CloneViolation::RegionSize { .. }
            | CloneViolation::TargetSize
            | CloneViolation::RegionCount { .. }
            | CloneViolation::SizeMismatch { .. }
            | CloneViolation::NrAllocated { .. } => Some(0),
            CloneViolation::ArrayLength { .. }
            | CloneViolation::TailBitsSet { .. }
            | CloneViolation::IndexEntry { .. }
            | CloneViolation::MetadataTooSmall { .. } => None,
            CloneViolation::SpaceMap(finding) => space_map_block(finding),
        }
    }

    /// One sentence for people, starting with the place.
    pub fn describe(&self) -> String {
        match self {
            CloneViolation::DeviceTooSmall { bytes } => format!(
                "the device is {bytes} bytes long, shorter than one 4096-byte metadata block"
            ),
            CloneViolation::Magic { found } => format!(
                "superblock (block 0): magic {found:#x} at byte 32, expected {CLONE_MAGIC:#x}"
            ),
            CloneViolation::Version { found } => format!(
                "superblock (block 0): metadata version {found}; the kernel reads version \
                 {CLONE_METADATA_VERSION} only"
            ),
            CloneViolation::Checksum {
                block,
                kind,
                stored,
                computed,
            } => format!(
                "block {block} ({kind}): checksum {stored:#010x} does not match its bytes \
                 ({computed:#010x})"
            ),
            CloneViolation::Blocknr { block, kind, found } => {
                format!("block {block} ({kind}): names itself block {found}")
            }
            CloneViolation::SuperblockTrailingBytes => {
                "superblock (block 0): bytes 196..4096 are not zero".to_string()
            }
            CloneViolation::RegionSize { error } | CloneViolation::RegionCount { error } => {
                format!("superblock (block 0): {error}")
            }
            CloneViolation::MetadataTooSmall { error } => error.to_string(),
            CloneViolation::TargetSize => {
                "superblock (block 0): the target size is 0 sectors".to_string()
            }
            CloneViolation::SizeMismatch { stored, table } => format!(
                "superblock (block 0): region size {} and target size {} sectors, but the \
                 table gives {} and {}; the kernel refuses sizes that differ",
                stored.0, stored.1, table.0, table.1
            ),
            CloneViolation::PastDevice {
                from,
                block,
                nr_blocks,
            } => format!(
                "{}: block {block} is past the end of the metadata device ({nr_blocks} blocks)",
                match from {
                    None => "bitset: an array btree leaf".to_string(),
                    Some(0) => "superblock (block 0)".to_string(),
                    Some(f) => format!("block {f}"),
                }
            ),
            CloneViolation::ArrayLength { words, expected } => {
                format!("bitset: the array holds {words} words, the region count needs {expected}")
            }
            CloneViolation::ArrayBlock {
                block,
                index,
                detail,
            } => format!("array block {index} (block {block}): {detail}"),
            CloneViolation::TailBitsSet { word, bits } => {
                format!("bitset word {word}: bits past the last region are set ({bits:#018x})")
            }
            CloneViolation::Btree { detail, .. } => detail.clone(),
            CloneViolation::Leaked { block, counted } => format!(
                "block {block}: the space map counts it {counted} times, but nothing reaches it"
            ),
            CloneViolation::UnderCounted {
                block,
                counted,
                reached,
            } => format!(
                "block {block}: reached {reached} times, but the space map counts it {counted} \
                 times; the kernel may hand it out again"
            ),
            CloneViolation::OverCounted {
                block,
                counted,
                reached,
            } => format!(
                "block {block}: reached {reached} times, but the space map counts it {counted} \
                 times"
            ),
            CloneViolation::NrAllocated { stored, counted } => format!(
                "space map root: nr_allocated is {stored}, the bitmaps count {counted} blocks"
            ),
            CloneViolation::IndexEntry {
                bitmap,
                field,
                stored,
                expected,
            } => format!(
                "space map index entry {bitmap}: {} is {stored}, its bitmap gives {expected}",
                field.name()
            ),
            CloneViolation::RefCountTreeStray {
                block,
                bitmap_entry,
            } => format!(
                "ref-count tree: an entry for block {block}, whose bitmap entry is \
                 {bitmap_entry}, not 3"
            ),
            CloneViolation::BitmapPastDevice { block, nr_blocks } => format!(
                "space map bitmap: entry {block} is past the metadata device ({nr_blocks} \
                 blocks) and not free"
            ),
            CloneViolation::SpaceMap(finding) => finding.to_string(),
        }
    }

    /// The finding the checker reports.
    pub fn finding(&self) -> Finding {
        let mut location = Location {
            chunk: self.block(),
            ..Location::default()
        };
        if let CloneViolation::Btree { keys, .. } = self {
            location.key_lo = Some(keys.start);
            location.key_hi = Some(keys.end);
        }
        Finding {
            severity: self.severity(),
            code: self.code(),
            message: self.describe(),
            location,
        }
    }

    /// The violation of a block read at `block` that its validator refused.
    pub fn from_block_defect(block: u64, defect: BlockDefect) -> Self {
        match defect {
            BlockDefect::Blocknr { kind, found, .. } => {
                CloneViolation::Blocknr { block, kind, found }
            }
            BlockDefect::Checksum {
                kind,
                stored,
                computed,
            } => CloneViolation::Checksum {
                block,
                kind,
                stored,
                computed,
            },
        }
    }
}

/// The finding code of a space map problem.
fn space_map_code(finding: &SmFinding) -> FindingCode {
    match finding {
        SmFinding::PastDevice { .. } => FindingCode::DeviceTooSmall,
        SmFinding::PointerPastEnd { .. } => FindingCode::BlockPastEnd,
        SmFinding::Index { .. } | SmFinding::NrFree { .. } | SmFinding::NoneFreeBefore { .. } => {
            FindingCode::SpaceMapIndex
        }
        SmFinding::Bitmap { defect, .. } => match defect {
            BlockDefect::Blocknr { .. } => FindingCode::BlockLocation,
            BlockDefect::Checksum { .. } => FindingCode::BlockChecksum,
        },
        SmFinding::EntryPastEnd { .. } => FindingCode::BitmapBitsPastEnd,
        SmFinding::RefCountNotOverflow { .. }
        | SmFinding::RefCountMissing { .. }
        | SmFinding::RefCountTooSmall { .. } => FindingCode::RefCountTreeStray,
        SmFinding::RefCountTree(_) => FindingCode::BtreeDamaged,
        SmFinding::NrAllocated { .. } => FindingCode::SpaceMapAllocated,
        SmFinding::Leaked { .. } => FindingCode::BlockLeaked,
        SmFinding::UnderCounted { .. } => FindingCode::BlockUnderCounted,
        SmFinding::OverCounted { .. } => FindingCode::BlockOverCounted,
    }
}

/// The metadata block a space map problem is at (the first of a run).
fn space_map_block(finding: &SmFinding) -> Option<u64> {
    match finding {
        SmFinding::PointerPastEnd { location, .. }
        | SmFinding::Index { location, .. }
        | SmFinding::Bitmap { location, .. } => Some(*location),
        SmFinding::EntryPastEnd { block, .. }
        | SmFinding::RefCountNotOverflow { block, .. }
        | SmFinding::RefCountMissing { block }
        | SmFinding::RefCountTooSmall { block, .. } => Some(*block),
        SmFinding::RefCountTree(defect) => Some(defect.at.location),
        SmFinding::Leaked { blocks, .. }
        | SmFinding::UnderCounted { blocks, .. }
        | SmFinding::OverCounted { blocks, .. } => Some(blocks.start),
        SmFinding::PastDevice { .. }
        | SmFinding::NrFree { .. }
        | SmFinding::NoneFreeBefore { .. }
        | SmFinding::NrAllocated { .. } => None,
    }
}

impl From<SuperblockDefect> for CloneViolation {
    fn from(defect: SuperblockDefect) -> Self {
        let kind = BlockKind::CloneSuperblock;
        match defect {
            SuperblockDefect::TooShort { bytes } => CloneViolation::DeviceTooSmall { bytes },
            SuperblockDefect::Magic { found } => CloneViolation::Magic { found },
            SuperblockDefect::Blocknr { blocknr } => CloneViolation::Blocknr {
                block: 0,
                kind,
                found: blocknr,
            },
            SuperblockDefect::Checksum { stored, computed } => CloneViolation::Checksum {
                block: 0,
                kind,
                stored,
                computed,
            },
            SuperblockDefect::Version { version } => CloneViolation::Version { found: version },
        }
    }
}

impl From<GeometryError> for CloneViolation {
    fn from(error: GeometryError) -> Self {
        match error {
            GeometryError::RegionSizeRange { .. }
            | GeometryError::RegionSizeNotPowerOfTwo { .. } => CloneViolation::RegionSize { error },
            GeometryError::EmptyTarget => CloneViolation::TargetSize,
            GeometryError::TooManyRegions { .. } => CloneViolation::RegionCount { error },
            GeometryError::MetadataTooSmall { .. } => CloneViolation::MetadataTooSmall { error },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clone::geometry::Geometry;

    #[test]
    fn block_defects_keep_their_place_and_kind() {
        let defect = BlockDefect::Checksum {
            kind: BlockKind::ArrayBlock,
            stored: 1,
            computed: 2,
        };
        let violation = CloneViolation::from_block_defect(37, defect);
        assert_eq!(violation.code(), FindingCode::BlockChecksum);
        assert_eq!(
            violation.describe(),
            "block 37 (array block): checksum 0x00000001 does not match its bytes (0x00000002)"
        );
        let moved = CloneViolation::from_block_defect(
            5,
            BlockDefect::Blocknr {
                kind: BlockKind::SmBitmap,
                found: 9,
                expected: 5,
            },
        );
        assert_eq!(moved.code().as_str(), "block-location");
        assert_eq!(moved.finding().location.chunk, Some(5));
    }

    #[test]
    fn superblock_defects_map_to_their_codes() {
        let cases = [
            (SuperblockDefect::TooShort { bytes: 10 }, "device-too-small"),
            (SuperblockDefect::Magic { found: 1 }, "bad-magic"),
            (SuperblockDefect::Blocknr { blocknr: 3 }, "block-location"),
            (
                SuperblockDefect::Checksum {
                    stored: 1,
                    computed: 2,
                },
                "block-checksum",
            ),
            (SuperblockDefect::Version { version: 2 }, "bad-version"),
        ];
        for (defect, code) in cases {
            let violation = CloneViolation::from(defect);
            assert_eq!(violation.code().as_str(), code, "{defect:?}");
            assert_eq!(violation.severity(), Severity::Error);
        }
    }

    #[test]
    fn geometry_refusals_name_the_kernels_limit() {
        let violation = CloneViolation::from(Geometry::new(12, 100).unwrap_err());
        assert_eq!(violation.code(), FindingCode::BadRegionSize);
        assert_eq!(
            violation.describe(),
            "superblock (block 0): region size 12 sectors is not a power of two, as the kernel \
             requires"
        );
        let too_many = CloneViolation::from(Geometry::new(8, 8 << 32).unwrap_err());
        assert_eq!(too_many.code().as_str(), "too-many-regions");
        assert_eq!(
            CloneViolation::from(Geometry::new(8, 0).unwrap_err()).code(),
            FindingCode::BadTargetSize
        );
    }

    #[test]
    fn a_btree_violation_carries_its_key_range() {
        let violation = CloneViolation::Btree {
            block: 37,
            keys: 0..251,
            detail: "array btree node 37 (keys 0..251): keys are not ascending at entry 4"
                .to_string(),
        };
        assert_eq!(
            violation.describe(),
            "array btree node 37 (keys 0..251): keys are not ascending at entry 4"
        );
        let finding = violation.finding();
        assert_eq!(
            (
                finding.location.chunk,
                finding.location.key_lo,
                finding.location.key_hi
            ),
            (Some(37), Some(0), Some(251))
        );
        assert_eq!(finding.code.as_str(), "btree-damaged");
    }

    #[test]
    fn space_map_violations_tell_the_dangerous_from_the_wasteful() {
        let leaked = CloneViolation::Leaked {
            block: 9,
            counted: 1,
        };
        let under = CloneViolation::UnderCounted {
            block: 9,
            counted: 1,
            reached: 2,
        };
        assert_eq!(leaked.severity(), Severity::Warning);
        assert_eq!(under.severity(), Severity::Error);
        assert_eq!(under.code().as_str(), "block-under-counted");
        assert_eq!(
            CloneViolation::IndexEntry {
                bitmap: 0,
                field: IndexField::NrFree,
                stored: 5,
                expected: 16314
            }
            .describe(),
            "space map index entry 0: nr_free is 5, its bitmap gives 16314"
        );
        assert_eq!(
            CloneViolation::TailBitsSet {
                word: 7,
                bits: 1 << 63
            }
            .code()
            .as_str(),
            "bits-past-last-region"
        );
    }
}
