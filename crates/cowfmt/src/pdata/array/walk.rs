//! Reading a dm-array of a known length: its B-tree (keys `0..n` dense, each
//! value the le64 location of an array block) is walked first, then the
//! array blocks are read in windows, each window's blocks in sorted runs of
//! consecutive locations, and delivered in index order. Every block but the
//! last must be full; the last holds `len % max_entries` values, or is full.
//! One block may stand for several indices (its reference count says how
//! many): it is read once per window and delivered for each.

use crate::error::Result;
use crate::pdata::btree::{self, Mode, Node, NodeAt, Revisit, TreeSpec, WalkDefect};
use crate::pdata::io::{in_windows, BlockSource, BlockWindow};

use super::block::{array_max_entries, ArrayBlock, ArrayBlockDefect};

/// Array blocks read together (1 MiB).
const WINDOW_BLOCKS: usize = 256;

/// The name of the array's B-tree in messages.
pub const ARRAY_BTREE: &str = "array btree";

/// What is wrong with an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ArrayDefect {
    /// The array's B-tree is damaged.
    #[error(transparent)]
    Btree(#[from] WalkDefect),
    /// No array block is reachable for these indices (`start..end`).
    #[error("array blocks {start}..{end} are missing from the array btree")]
    Missing {
        /// First index missing.
        start: u64,
        /// First index present again (or the block count).
        end: u64,
    },
    /// The B-tree holds an index past the array's last block.
    #[error("array btree holds block index {index}, the array has {nr_blocks} blocks")]
    Extra {
        /// The index.
        index: u64,
        /// Blocks the array's length needs.
        nr_blocks: u64,
    },
    /// An array block points past the end of the metadata device.
    #[error("array block {index} is at block {location}, past the end of the metadata device ({nr_blocks} blocks)")]
    PastEnd {
        /// Index of the array block.
        index: u64,
        /// Where the tree says it is.
        location: u64,
        /// Blocks of the metadata device.
        nr_blocks: u64,
    },
    /// An array block is invalid.
    #[error("array block {index} (block {location}): {defect}")]
    Block {
        /// Index of the array block.
        index: u64,
        /// Its location.
        location: u64,
        /// What is wrong.
        defect: ArrayBlockDefect,
    },
    /// An array block holds the wrong number of values.
    #[error("array block {index} (block {location}) holds {found} values, expected {expected}")]
    NrEntries {
        /// Index of the array block.
        index: u64,
        /// Its location.
        location: u64,
        /// `nr_entries` stored.
        found: u32,
        /// What the array's length gives.
        expected: u32,
    },
}

impl ArrayDefect {
    /// The array-block indices whose values this defect loses (empty for a
    /// defect that loses no value by itself, as a B-tree node's: its lost
    /// indices come as [`ArrayDefect::Missing`]).
    pub fn lost_blocks(&self) -> std::ops::Range<u64> {
        match *self {
            ArrayDefect::Missing { start, end } => start..end,
            ArrayDefect::PastEnd { index, .. }
            | ArrayDefect::Block { index, .. }
            | ArrayDefect::NrEntries { index, .. } => index..index + 1,
            ArrayDefect::Btree(_) | ArrayDefect::Extra { .. } => 0..0,
        }
    }
}

/// What the array walk tells its caller.
pub trait ArrayVisitor {
    /// A node of the array's B-tree, first reach (every block reference
    /// counts for the space map check).
    fn btree_node(&mut self, _location: u64) {}

    /// The same first reach with its place (key range, depth); by default
    /// [`ArrayVisitor::btree_node`].
    fn btree_node_at(&mut self, at: &NodeAt) {
        self.btree_node(at.location);
    }

    /// A node of the array's B-tree reached again (not walked again).
    fn btree_revisit(&mut self, _location: u64) {}

    /// Every reference the B-tree's leaves make to an array block, in
    /// index order, before any is read (also those past the array's end or
    /// repeating an index).
    fn reference(&mut self, _index: u64, _location: u64) {}

    /// The values of array block `index` (array indices from
    /// `index * max_entries`), in index order.
    fn block(&mut self, index: u64, block: &ArrayBlock);

    /// A defect.
    fn defect(&mut self, defect: ArrayDefect);
}

/// How the array walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ArraySummary {
    /// Array blocks delivered.
    pub blocks: u64,
    /// Defects reported.
    pub defects: u64,
    /// Whether a strict walk stopped at a defect.
    pub stopped: bool,
}

/// The dm-array of `len` values of `value_size` bytes rooted at `root`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArraySpec {
    /// The array B-tree's root.
    pub root: u64,
    /// Values in the array.
    pub len: u64,
    /// Bytes of each value.
    pub value_size: u32,
}

impl ArraySpec {
    /// Values per array block.
    pub fn max_entries(&self) -> u32 {
        array_max_entries(self.value_size)
    }

    /// Array blocks the length needs.
    pub fn nr_blocks(&self) -> u64 {
        self.len.div_ceil(u64::from(self.max_entries()))
    }

    /// Values array block `index` must hold.
    pub fn entries_of(&self, index: u64) -> u32 {
        let max = u64::from(self.max_entries());
        (self.len - index * max).min(max) as u32
    }
}

/// Collects the array btree's leaves: one (index, location) per array block.
struct Refs<'a> {
    refs: Vec<(u64, u64)>,
    visitor: &'a mut dyn ArrayVisitor,
    defects: u64,
}

impl btree::Visitor for Refs<'_> {
    fn node(&mut self, at: &NodeAt, _node: &Node) {
        self.visitor.btree_node_at(at);
    }
    fn leaf(&mut self, _at: &NodeAt, node: &Node) {
        for i in 0..node.len() {
            self.refs.push((node.keys[i], node.value_u64(i)));
        }
    }
    fn revisit(&mut self, at: &NodeAt) -> Revisit {
        self.visitor.btree_revisit(at.location);
        Revisit::Skip
    }
    fn defect(&mut self, defect: WalkDefect) {
        self.defects += 1;
        self.visitor.defect(defect.into());
    }
}

/// Walks the array `spec` in `source`, delivering every readable array
/// block in index order. Fails only when the source cannot be read.
pub fn walk_array(
    source: &dyn BlockSource,
    spec: ArraySpec,
    mode: Mode,
    visitor: &mut dyn ArrayVisitor,
) -> Result<ArraySummary> {
    let tree = TreeSpec {
        name: ARRAY_BTREE,
        leaf_value_size: 8,
    };
    let mut refs = Refs {
        refs: Vec::new(),
        visitor,
        defects: 0,
    };
    let walked = btree::walk(source, tree, spec.root, mode, &mut refs)?;
    let Refs {
        mut refs,
        visitor,
        defects,
    } = refs;
    let summary = ArraySummary {
        defects,
        stopped: walked.stopped,
        ..ArraySummary::default()
    };
    if summary.stopped {
        return Ok(summary);
    }
    let mut reader = Reader {
        source,
        spec,
        mode,
        visitor,
        summary,
        blocks: BlockWindow::default(),
    };
    refs.sort_unstable_by_key(|&(index, _)| index);
    for &(index, location) in &refs {
        reader.visitor.reference(index, location);
    }
    let present = reader.dense(&mut refs);
    if !reader.summary.stopped {
        in_windows(&present, WINDOW_BLOCKS, |window| {
            reader.window(window)?;
            Ok(reader.summary.stopped)
        })?;
    }
    Ok(reader.summary)
}

struct Reader<'a> {
    source: &'a dyn BlockSource,
    spec: ArraySpec,
    mode: Mode,
    visitor: &'a mut dyn ArrayVisitor,
    summary: ArraySummary,
    blocks: BlockWindow,
}

impl Reader<'_> {
    fn defect(&mut self, defect: ArrayDefect) -> bool {
        self.summary.defects += 1;
        self.visitor.defect(defect);
        self.summary.stopped = self.mode == Mode::Strict;
        self.summary.stopped
    }

    /// Reports gaps and extra indices among `refs` (sorted by index) and
    /// returns the references to read, one per index below the block count.
    fn dense(&mut self, refs: &mut Vec<(u64, u64)>) -> Vec<(u64, u64)> {
        let nr_blocks = self.spec.nr_blocks();
        refs.dedup_by_key(|&mut (index, _)| index);
        let mut next = 0;
        let mut present = Vec::with_capacity(refs.len());
        for &(index, location) in refs.iter() {
            if index >= nr_blocks {
                if self.defect(ArrayDefect::Extra { index, nr_blocks }) {
                    return present;
                }
                continue;
            }
            if index > next
                && self.defect(ArrayDefect::Missing {
                    start: next,
                    end: index,
                })
            {
                return present;
            }
            present.push((index, location));
            next = index + 1;
        }
        if next < nr_blocks {
            self.defect(ArrayDefect::Missing {
                start: next,
                end: nr_blocks,
            });
        }
        present
    }

    /// Reads the array blocks of `window` (in index order) in sorted runs and
    /// delivers them in index order.
    fn window(&mut self, window: &[(u64, u64)]) -> Result<()> {
        let nr_blocks = self.source.nr_blocks();
        let locations = window.iter().map(|&(_, location)| location);
        self.blocks.read(self.source, locations, "array blocks")?;
        for &(index, location) in window {
            let Some(bytes) = self.blocks.get(location) else {
                let defect = ArrayDefect::PastEnd {
                    index,
                    location,
                    nr_blocks,
                };
                if self.defect(defect) {
                    return Ok(());
                }
                continue;
            };
            let defect = match ArrayBlock::decode(location, bytes, self.spec.value_size) {
                Ok(block) if block.nr_entries() == self.spec.entries_of(index) => {
                    self.summary.blocks += 1;
                    self.visitor.block(index, &block);
                    continue;
                }
                Ok(block) => ArrayDefect::NrEntries {
                    index,
                    location,
                    found: block.nr_entries(),
                    expected: self.spec.entries_of(index),
                },
                Err(defect) => ArrayDefect::Block {
                    index,
                    location,
                    defect,
                },
            };
            if self.defect(defect) {
                return Ok(());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pdata::alloc::BumpAllocator;
    use crate::pdata::array::build::{build, build_filled};
    use crate::pdata::array::encode_array_block;
    use crate::pdata::block::{BlockDefect, BlockKind};
    use crate::pdata::btree::NodeKind;
    use crate::pdata::io::{BlockTarget, MemBlocks};

    #[derive(Default)]
    struct Seen {
        words: Vec<u64>,
        indices: Vec<u64>,
        references: Vec<(u64, u64)>,
        btree_nodes: Vec<u64>,
        defects: Vec<ArrayDefect>,
    }

    impl ArrayVisitor for Seen {
        fn btree_node(&mut self, location: u64) {
            self.btree_nodes.push(location);
        }
        fn reference(&mut self, index: u64, location: u64) {
            self.references.push((index, location));
        }
        fn block(&mut self, index: u64, block: &ArrayBlock) {
            self.indices.push(index);
            self.words.extend(block.words());
        }
        fn defect(&mut self, defect: ArrayDefect) {
            self.defects.push(defect);
        }
    }

    fn spec(root: u64, len: u64) -> ArraySpec {
        ArraySpec {
            root,
            len,
            value_size: 8,
        }
    }

    fn built(len: u64, nr_blocks: u64) -> (MemBlocks, u64, BumpAllocator) {
        let mut mem = MemBlocks::zeroed(nr_blocks);
        let mut alloc = BumpAllocator::new(1, nr_blocks);
        let values = (0..len as usize).map(|i| (i as u64 * 5).to_le_bytes());
        let root = build(&mut alloc, &mut mem, 8, values).unwrap();
        (mem, root, alloc)
    }

    fn read(mem: &MemBlocks, spec: ArraySpec, mode: Mode) -> (Seen, ArraySummary) {
        let mut seen = Seen::default();
        let summary = walk_array(mem, spec, mode, &mut seen).unwrap();
        (seen, summary)
    }

    #[test]
    fn values_come_back_in_index_order_for_one_and_many_leaves() {
        for (len, nr_blocks) in [
            (0, 8),
            (1, 8),
            (509, 8),
            (2 * 509 + 12, 8),
            (253 * 509 + 1, 400),
        ] {
            let (mem, root, alloc) = built(len, nr_blocks);
            let (seen, summary) = read(&mem, spec(root, len), Mode::Strict);
            assert!(seen.defects.is_empty(), "{len}: {:?}", seen.defects);
            let want: Vec<u64> = (0..len).map(|i| i * 5).collect();
            assert_eq!(seen.words, want, "{len}");
            assert_eq!(summary.blocks, len.div_ceil(509));
            assert!(alloc.counts()[1..].iter().all(|&c| c == 1));
        }
    }

    #[test]
    fn a_fresh_array_is_laid_out_as_the_kernel_formats_it() {
        // Kernel fixture a: root leaf at 4, four full blocks 5..8, tail 9 (12 words).
        let mut mem = MemBlocks::zeroed(16);
        let mut alloc = BumpAllocator::new(4, 16);
        let root = build_filled(&mut alloc, &mut mem, 4 * 509 + 12, &0u64.to_le_bytes()).unwrap();
        assert_eq!(root, 4);
        let (seen, _) = read(&mem, spec(4, 4 * 509 + 12), Mode::Strict);
        assert_eq!(seen.references, [(0, 5), (1, 6), (2, 7), (3, 8), (4, 9)]);
        assert_eq!(seen.btree_nodes, [4]);
        assert!(seen.words.iter().all(|&w| w == 0));
        assert_eq!(alloc.next(), 10);
    }

    #[test]
    fn one_block_standing_for_several_indices_is_read_for_each() {
        let mut mem = MemBlocks::zeroed(8);
        let full: Vec<u8> = (0..509u64).flat_map(|w| w.to_le_bytes()).collect();
        mem.write_blocks(5, &encode_array_block(5, 8, &full)[..])
            .unwrap();
        mem.write_blocks(6, &encode_array_block(6, 8, &full[..8])[..])
            .unwrap();
        let mut leaf = Node::new(NodeKind::Leaf, 8);
        for (key, location) in [(0u64, 5u64), (1, 5), (2, 6)] {
            leaf.push(key, &location.to_le_bytes());
        }
        mem.write_blocks(4, &leaf.encode(4)[..]).unwrap();
        let (seen, _) = read(&mem, spec(4, 2 * 509 + 1), Mode::Strict);
        assert!(seen.defects.is_empty());
        assert_eq!(seen.indices, [0, 1, 2]);
        assert_eq!(seen.references, [(0, 5), (1, 5), (2, 6)]);
        assert_eq!(seen.words.len(), 2 * 509 + 1);
    }

    #[test]
    fn a_damaged_block_loses_its_index_only_when_tolerant() {
        let (mut mem, root, _) = built(3 * 509, 8);
        let (seen, _) = read(&mem, spec(root, 3 * 509), Mode::Strict);
        let location = seen.references[1].1;
        mem.bytes_mut()[location as usize * 4096 + 100] ^= 1;
        let (seen, summary) = read(&mem, spec(root, 3 * 509), Mode::Tolerant);
        assert_eq!(seen.indices, [0, 2]);
        assert!(matches!(
            seen.defects[..],
            [ArrayDefect::Block {
                index: 1,
                defect: ArrayBlockDefect::Block(BlockDefect::Checksum {
                    kind: BlockKind::ArrayBlock,
                    ..
                }),
                ..
            }]
        ));
        assert_eq!(seen.defects[0].lost_blocks(), 1..2);
        assert_eq!(summary.defects, 1);
        let (seen, summary) = read(&mem, spec(root, 3 * 509), Mode::Strict);
        assert_eq!(seen.indices, [0]);
        assert!(summary.stopped);
    }

    #[test]
    fn a_length_other_than_the_trees_is_named() {
        let (mem, root, _) = built(2 * 509 + 12, 8);
        let (seen, _) = read(&mem, spec(root, 2 * 509 + 13), Mode::Tolerant);
        assert_eq!(
            seen.defects[0].to_string(),
            format!(
                "array block 2 (block {}) holds 12 values, expected 13",
                seen.references[2].1
            )
        );
        let (seen, _) = read(&mem, spec(root, 509 + 1), Mode::Tolerant);
        assert_eq!(
            seen.references.len(),
            3,
            "the extra block is referenced too"
        );
        assert!(matches!(
            seen.defects[..],
            [
                ArrayDefect::Extra {
                    index: 2,
                    nr_blocks: 2
                },
                ArrayDefect::NrEntries {
                    index: 1,
                    found: 509,
                    expected: 1,
                    ..
                }
            ]
        ));
        let (seen, _) = read(&mem, spec(root, 5 * 509), Mode::Tolerant);
        assert_eq!(seen.defects[0], ArrayDefect::Missing { start: 3, end: 5 });
        assert_eq!(
            seen.defects[0].to_string(),
            "array blocks 3..5 are missing from the array btree"
        );
    }

    #[test]
    fn a_block_past_the_device_is_named() {
        let mut mem = MemBlocks::zeroed(8);
        let mut leaf = Node::new(NodeKind::Leaf, 8);
        leaf.push(0, &99u64.to_le_bytes());
        mem.write_blocks(4, &leaf.encode(4)[..]).unwrap();
        let (seen, _) = read(&mem, spec(4, 3), Mode::Tolerant);
        assert_eq!(
            seen.defects,
            [ArrayDefect::PastEnd {
                index: 0,
                location: 99,
                nr_blocks: 8
            }]
        );
    }
}
