//! The one read-only walk of dm-clone metadata from its superblock: the
//! superblock, the metadata space map's own blocks (index, bitmaps,
//! ref-count tree) and the bitset of hydrated regions (array B-tree nodes,
//! array blocks). Every block reached goes to a [`CloneVisitor`] with its
//! role and place, every defect as a [`CloneViolation`]; the walk keeps the
//! hydration bits, the region ranges whose words were lost and the
//! references each metadata block received, for the checker, the dump,
//! repair and migrate.

use std::ops::Range;

use super::geometry::Geometry;
use super::open::{open_tolerant, TableSizes, TolerantOpen};
use super::rules::{CloneViolation, IndexField};
use super::superblock::CloneSuperblock;
use crate::bitset::DenseBitmap;
use crate::blockdev::BlockDev;
use crate::error::Result;
use crate::finding::Severity;
use crate::pdata::array::{array_max_entries, ArrayBlockDefect, ArrayDefect};
use crate::pdata::bitset::{
    read_bitset_with, BitsetDefect, BitsetRead, BitsetReferences, BITS_PER_WORD,
};
use crate::pdata::block::BLOCK_BYTES;
use crate::pdata::btree::{KeyRange, NodeAt, NodeDefect, WalkDefect, WalkDefectKind};
use crate::pdata::io::BlockSource;
use crate::pdata::space_map::root::SM_ROOT_FIELD_BYTES;
use crate::pdata::space_map::{self, CommittedSpaceMap, SmFinding, SmRoot};

/// How a walk treats defects: `Strict` stops at the first error,
/// `Tolerant` collects every one and keeps what it can read.
pub use crate::pdata::btree::Mode as Policy;

/// What a reached block is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockRole {
    /// Block 0.
    Superblock,
    /// The space map's index block.
    SpaceMapIndex,
    /// A space map bitmap block.
    SpaceMapBitmap {
        /// Its number in the index.
        bitmap: u64,
    },
    /// A node of the space map's ref-count tree.
    RefCountNode,
    /// A node of the bitset's array B-tree.
    ArrayBtreeNode {
        /// The keys (array block indices) its parent allows it.
        keys: KeyRange,
        /// Levels above it (the root is 0).
        depth: u32,
    },
    /// An array block of the bitset.
    ArrayBlock {
        /// Its index in the array (words from `index * 509`).
        index: u64,
    },
}

/// A block the walk reached: where, what, and which block references it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockReached {
    /// The block.
    pub location: u64,
    /// What it is.
    pub role: BlockRole,
    /// The block referencing it, where the walk knows it (the superblock
    /// for the roots, the index for bitmaps).
    pub parent: Option<u64>,
}

/// What the walk tells its caller as it goes.
pub trait CloneVisitor {
    /// A block reached (once per reference), that decoded where the walk
    /// decodes it; a block that fails comes as a violation at its location.
    fn block(&mut self, _reached: &BlockReached) {}

    /// A defect, in the order found.
    fn violation(&mut self, _violation: &CloneViolation) {}
}

impl CloneVisitor for () {}

/// The walk's outcome.
#[derive(Debug, Clone)]
pub struct CloneWalk {
    /// The superblock, its geometry and the metadata blocks.
    pub opened: TolerantOpen,
    /// The committed space map, when the superblock could be read.
    pub space_map: Option<CommittedSpaceMap>,
    /// One bit per region, set when hydrated (lost regions clear); `None`
    /// without a geometry.
    pub bits: Option<DenseBitmap>,
    /// Region ranges whose bitset words were lost, ascending, merged.
    pub lost: Vec<Range<u64>>,
    /// References found per metadata block: the superblock, array B-tree
    /// nodes and array blocks (the space map's own blocks are the space
    /// map's to add).
    pub reachable: Vec<u32>,
    /// Every violation, in the order found (the visitor got the same).
    pub violations: Vec<CloneViolation>,
    /// Whether a strict walk stopped at an error.
    pub stopped: bool,
    /// The set bits of `bits`, counted as they were read.
    hydrated: u64,
}

impl CloneWalk {
    /// Regions marked hydrated.
    pub fn hydrated_regions(&self) -> u64 {
        self.hydrated
    }

    /// Regions whose state was lost.
    pub fn lost_regions(&self) -> u64 {
        self.lost.iter().map(|range| range.end - range.start).sum()
    }
}

/// Walks the clone metadata on `device` (`table`: the sizes a table would
/// give, checked against the superblock's). Fails only on I/O errors.
pub fn walk(
    device: &dyn BlockDev,
    table: Option<TableSizes>,
    policy: Policy,
    visitor: &mut dyn CloneVisitor,
) -> Result<CloneWalk> {
    walk_with_sizes(device, table, None, policy, visitor)
}

/// [`walk`], reading the bitset with `sizes` instead of the superblock's
/// when given (a repair told the sizes by its caller); `opened.geometry`
/// stays the superblock's.
pub fn walk_with_sizes(
    device: &dyn BlockDev,
    table: Option<TableSizes>,
    sizes: Option<Geometry>,
    policy: Policy,
    visitor: &mut dyn CloneVisitor,
) -> Result<CloneWalk> {
    let opened = open_tolerant(device, table)?;
    let device = &DevBlocks(device);
    let mut walker = Walker {
        policy,
        visitor,
        violations: Vec::new(),
        stopped: false,
        reachable: vec![0; opened.nr_blocks as usize],
    };
    for violation in opened.violations.clone() {
        walker.violation(violation);
    }
    let mut space_map = None;
    let mut bitset = None;
    if let Some(superblock) = &opened.superblock {
        walker.reference(0);
        walker.reached(0, BlockRole::Superblock, None);
        if !walker.stopped {
            space_map = Some(walker.space_map(device, superblock)?);
        }
        if let (Some(geometry), false) =
            (sizes.as_ref().or(opened.geometry.as_ref()), walker.stopped)
        {
            bitset = Some(walker.bitset(device, superblock.bitset_root, geometry.nr_regions())?);
        }
    }
    let hydrated = bitset.as_ref().map_or(0, |read| read.ones);
    let (bits, lost) = bitset.map(|read| (read.bits, read.lost)).unzip();
    Ok(CloneWalk {
        opened,
        space_map,
        bits,
        lost: lost.unwrap_or_default(),
        reachable: walker.reachable,
        violations: walker.violations,
        stopped: walker.stopped,
        hydrated,
    })
}

/// A device read as persistent-data blocks.
struct DevBlocks<'a>(&'a dyn BlockDev);

impl BlockSource for DevBlocks<'_> {
    fn nr_blocks(&self) -> u64 {
        self.0.size() / BLOCK_BYTES as u64
    }

    fn read_blocks(&self, first: u64, out: &mut [u8], what: &dyn Fn() -> String) -> Result<()> {
        let offset = first.saturating_mul(BLOCK_BYTES as u64);
        self.0.read_at(out, offset, what)
    }
}

struct Walker<'a> {
    policy: Policy,
    visitor: &'a mut dyn CloneVisitor,
    violations: Vec<CloneViolation>,
    stopped: bool,
    reachable: Vec<u32>,
}

impl Walker<'_> {
    fn violation(&mut self, violation: CloneViolation) {
        self.visitor.violation(&violation);
        if self.policy == Policy::Strict && violation.severity() == Severity::Error {
            self.stopped = true;
        }
        self.violations.push(violation);
    }

    fn reached(&mut self, location: u64, role: BlockRole, parent: Option<u64>) {
        self.visitor.block(&BlockReached {
            location,
            role,
            parent,
        });
    }

    fn reference(&mut self, location: u64) {
        if let Some(count) = self.reachable.get_mut(location as usize) {
            *count += 1;
        }
    }

    /// Loads the space map; its own blocks go to the visitor, what is wrong
    /// with its structures to the violations.
    fn space_map(
        &mut self,
        device: &dyn BlockSource,
        superblock: &CloneSuperblock,
    ) -> Result<CommittedSpaceMap> {
        let field: &[u8; SM_ROOT_FIELD_BYTES] = &superblock.sm_root;
        let loaded = space_map::load(device, SmRoot::decode(field))?;
        let index_block = loaded.root.index_block;
        let bitmaps: Vec<u64> = loaded.index.as_ref().map_or(Vec::new(), |index| {
            index.entries.iter().map(|entry| entry.blocknr).collect()
        });
        let bad: Vec<u64> = loaded
            .findings
            .iter()
            .filter_map(unreadable_block)
            .collect();
        for &location in &loaded.own_blocks {
            if bad.contains(&location) {
                continue;
            }
            let (role, parent) = if location == index_block {
                (BlockRole::SpaceMapIndex, Some(0))
            } else if let Some(bitmap) = bitmaps.iter().position(|&b| b == location) {
                let bitmap = bitmap as u64;
                (BlockRole::SpaceMapBitmap { bitmap }, Some(index_block))
            } else {
                (BlockRole::RefCountNode, None)
            };
            self.reached(location, role, parent);
        }
        for finding in &loaded.findings {
            self.violation(from_space_map(finding.clone()));
        }
        Ok(loaded)
    }

    /// Reads the bitset of `nr_regions` bits at `root`: its bits, how many
    /// are set and the region ranges lost (its defects are the walk's
    /// violations).
    fn bitset(
        &mut self,
        device: &dyn BlockSource,
        root: u64,
        nr_regions: u64,
    ) -> Result<BitsetRead> {
        let nr_blocks = self.reachable.len() as u64;
        let policy = self.policy;
        let mut references = References { walker: self, root };
        let mut read = read_bitset_with(device, root, nr_regions, policy, &mut references)?;
        for defect in std::mem::take(&mut read.defects) {
            if let BitsetDefect::Array(ArrayDefect::Btree(WalkDefect {
                at,
                kind: WalkDefectKind::Node(_),
                ..
            })) = defect
            {
                self.reference(at.location);
            }
            self.violation(from_bitset(defect, root, nr_regions, nr_blocks));
        }
        self.stopped |= read.stopped;
        Ok(read)
    }
}

/// The bitset's references, into the walk's counts and the visitor.
struct References<'w, 'a> {
    walker: &'w mut Walker<'a>,
    root: u64,
}

impl BitsetReferences for References<'_, '_> {
    fn btree_node(&mut self, at: &NodeAt) {
        let parent = (at.location == self.root && at.depth == 0).then_some(0);
        let role = BlockRole::ArrayBtreeNode {
            keys: at.range,
            depth: at.depth,
        };
        self.walker.reference(at.location);
        self.walker.reached(at.location, role, parent);
    }

    fn btree_revisit(&mut self, location: u64) {
        self.walker.reference(location);
    }

    fn array_block(&mut self, index: u64, location: u64) {
        self.walker.reference(location);
        self.walker
            .reached(location, BlockRole::ArrayBlock { index }, None);
    }
}

/// The block a space map finding says could not be read as what it is.
fn unreadable_block(finding: &SmFinding) -> Option<u64> {
    match finding {
        SmFinding::Index { location, .. } | SmFinding::Bitmap { location, .. } => Some(*location),
        SmFinding::RefCountTree(defect) => Some(defect.at.location),
        _ => None,
    }
}

/// A space map problem as a clone violation (the typed variants where one
/// fits exactly).
pub(crate) fn from_space_map(finding: SmFinding) -> CloneViolation {
    match finding {
        SmFinding::Bitmap {
            location, defect, ..
        } => CloneViolation::from_block_defect(location, defect),
        SmFinding::Index {
            location,
            defect: space_map::IndexDefect::Block(defect),
        } => CloneViolation::from_block_defect(location, defect),
        SmFinding::PointerPastEnd {
            location,
            nr_blocks,
            ..
        } => CloneViolation::PastDevice {
            from: Some(0),
            block: location,
            nr_blocks,
        },
        SmFinding::NrFree {
            bitmap,
            stored,
            counted,
        } => CloneViolation::IndexEntry {
            bitmap: bitmap as u64,
            field: IndexField::NrFree,
            stored: u64::from(stored),
            expected: u64::from(counted),
        },
        SmFinding::NoneFreeBefore {
            bitmap,
            stored,
            first_free,
        } => CloneViolation::IndexEntry {
            bitmap: bitmap as u64,
            field: IndexField::NoneFreeBefore,
            stored: u64::from(stored),
            expected: u64::from(first_free),
        },
        SmFinding::NrAllocated { stored, counted } => {
            CloneViolation::NrAllocated { stored, counted }
        }
        SmFinding::RefCountTree(defect) => from_walk_defect(defect),
        other => CloneViolation::SpaceMap(other),
    }
}

/// A B-tree walk defect as a clone violation at its node and key range.
fn from_walk_defect(defect: WalkDefect) -> CloneViolation {
    let at = defect.at;
    if let WalkDefectKind::Node(NodeDefect::Block(block)) = defect.kind {
        return CloneViolation::from_block_defect(at.location, block);
    }
    CloneViolation::Btree {
        block: at.location,
        keys: at.range.start..at.range.end.unwrap_or(u64::MAX),
        detail: defect.to_string(),
    }
}

/// A bitset defect as a clone violation (`root`: the array B-tree's root,
/// `nr_regions`: the bits, `nr_blocks`: the metadata device's blocks).
fn from_bitset(defect: BitsetDefect, root: u64, nr_regions: u64, nr_blocks: u64) -> CloneViolation {
    let per_block = u64::from(array_max_entries(8));
    let nr_words = nr_regions.div_ceil(BITS_PER_WORD);
    match defect {
        BitsetDefect::BitsPastEnd { mask, .. } => CloneViolation::TailBitsSet {
            word: nr_words - 1,
            bits: mask,
        },
        BitsetDefect::Array(defect) => match defect {
            ArrayDefect::Btree(defect) => from_walk_defect(defect),
            ArrayDefect::Missing { start, end } => CloneViolation::Btree {
                block: root,
                keys: start..end,
                detail: format!("array btree node {root} (keys {start}..{end}): {defect}"),
            },
            ArrayDefect::Extra { index, .. } => CloneViolation::ArrayLength {
                words: (index + 1) * per_block,
                expected: nr_words,
            },
            ArrayDefect::PastEnd { location, .. } => CloneViolation::PastDevice {
                from: None,
                block: location,
                nr_blocks,
            },
            ArrayDefect::Block {
                location,
                defect: ArrayBlockDefect::Block(block),
                ..
            } => CloneViolation::from_block_defect(location, block),
            ArrayDefect::Block {
                index, location, ..
            }
            | ArrayDefect::NrEntries {
                index, location, ..
            } => CloneViolation::ArrayBlock {
                block: location,
                index,
                detail: defect.to_string(),
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clone::{golden_metadata, kernel_fixture, kernel_manifests, memory_device};
    use crate::pdata::bitset::set_runs;

    /// Every block reached and every violation, in order.
    #[derive(Default)]
    struct Record {
        blocks: Vec<BlockReached>,
        violations: Vec<CloneViolation>,
    }

    impl CloneVisitor for Record {
        fn block(&mut self, reached: &BlockReached) {
            self.blocks.push(*reached);
        }
        fn violation(&mut self, violation: &CloneViolation) {
            self.violations.push(violation.clone());
        }
    }

    fn runs(manifest: &serde_yaml::Value) -> Vec<(u64, u64)> {
        manifest["hydrated"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|run| {
                let field = |name: &str| run[name].as_u64().unwrap();
                (field("start"), field("count"))
            })
            .collect()
    }

    #[test]
    fn every_kernel_fixture_walks_clean_to_its_manifest_runs() {
        let manifests = kernel_manifests();
        assert_eq!(manifests.len(), 4);
        for (name, manifest) in manifests {
            for (which, want) in [("formatted", Vec::new()), ("final", runs(&manifest))] {
                let device = kernel_fixture(&name, which);
                let walked = walk(&device, None, Policy::Strict, &mut ()).unwrap();
                assert!(
                    walked.violations.is_empty(),
                    "{name} {which}: {:?}",
                    walked.violations
                );
                assert!(!walked.stopped && walked.lost.is_empty(), "{name} {which}");
                let bits = walked.bits.as_ref().unwrap();
                assert_eq!(
                    bits.len(),
                    manifest["geometry"]["nr_regions"].as_u64().unwrap()
                );
                assert_eq!(set_runs(bits).collect::<Vec<_>>(), want, "{name} {which}");
                assert_eq!(
                    walked.hydrated_regions(),
                    bits.count_ones(),
                    "{name} {which}"
                );
            }
        }
    }

    #[test]
    fn the_visitor_sees_every_block_of_a_fresh_format_with_its_role() {
        let device = kernel_fixture("a-region8-131072regions", "formatted");
        let mut record = Record::default();
        let walked = walk(&device, None, Policy::Tolerant, &mut record).unwrap();
        let mut seen: Vec<(u64, BlockRole, Option<u64>)> = record
            .blocks
            .iter()
            .map(|b| (b.location, b.role, b.parent))
            .collect();
        seen.sort_by_key(|&(location, ..)| location);
        let mut want = vec![
            (0, BlockRole::Superblock, None),
            (1, BlockRole::SpaceMapIndex, Some(0)),
            (2, BlockRole::RefCountNode, None),
            (3, BlockRole::SpaceMapBitmap { bitmap: 0 }, Some(1)),
            (
                4,
                BlockRole::ArrayBtreeNode {
                    keys: KeyRange::ALL,
                    depth: 0,
                },
                Some(0),
            ),
        ];
        want.extend((0..5).map(|index| (5 + index, BlockRole::ArrayBlock { index }, None)));
        assert_eq!(seen, want);
        assert!(record.violations.is_empty());
        let referenced: Vec<(usize, u32)> = walked
            .reachable
            .iter()
            .enumerate()
            .filter(|&(_, &count)| count > 0)
            .map(|(location, &count)| (location, count))
            .collect();
        assert_eq!(walked.reachable.len(), 1024);
        assert_eq!(referenced, [0, 4, 5, 6, 7, 8, 9].map(|b| (b, 1)));
    }

    #[test]
    fn the_golden_image_walks_to_the_regions_the_kernel_hydrated() {
        let device = memory_device(&golden_metadata());
        let walked = walk(&device, None, Policy::Strict, &mut ()).unwrap();
        assert!(walked.violations.is_empty(), "{:?}", walked.violations);
        assert_eq!(walked.hydrated_regions(), 12, "status: 12/512 hydrated");
    }

    #[test]
    fn a_damaged_array_block_loses_its_regions_and_a_strict_walk_stops_at_it() {
        let mut bytes = Vec::new();
        let device = kernel_fixture("a-region8-131072regions", "final");
        let walked = walk(&device, None, Policy::Tolerant, &mut ()).unwrap();
        let mut record = Record::default();
        walk(&device, None, Policy::Tolerant, &mut record).unwrap();
        let first_array_block = record
            .blocks
            .iter()
            .find(|b| b.role == BlockRole::ArrayBlock { index: 1 })
            .unwrap()
            .location;
        bytes.resize(device.size() as usize, 0);
        device.read_at(&mut bytes, 0, &String::new).unwrap();
        bytes[first_array_block as usize * BLOCK_BYTES + 100] ^= 1;
        let damaged = memory_device(&bytes);
        let tolerant = walk(&damaged, None, Policy::Tolerant, &mut ()).unwrap();
        assert_eq!(tolerant.lost, vec![(509 * 64)..(2 * 509 * 64)]);
        assert_eq!(tolerant.violations.len(), 1);
        assert!(matches!(
            tolerant.violations[0],
            CloneViolation::Checksum { block, .. } if block == first_array_block
        ));
        let bits = tolerant.bits.as_ref().unwrap();
        let whole = walked.bits.as_ref().unwrap();
        for region in (0..131_072).filter(|r| !(509 * 64..2 * 509 * 64).contains(r)) {
            assert_eq!(bits.get(region), whole.get(region), "region {region}");
        }
        let strict = walk(&damaged, None, Policy::Strict, &mut ()).unwrap();
        assert!(strict.stopped);
    }
}
