//! The walk from the root: every node whose keys ascend inside its parent's
//! range is followed, every leaf that decodes and fits its parent's range is
//! kept; any other block becomes a lost range (its parent's range for it).
//! Chunk numbers are never trusted: blocks outside the data range or reached
//! twice (the walker's checks) are lost ranges too.

use crate::bitset::DenseBitmap;
use crate::device::Device;
use crate::error::Result;
use crate::shared::geometry::Geometry;
use crate::shared::leaf::Leaf;
use crate::shared::node::{Node, NodeError};
use crate::shared::walk::{walk_tree, BlockAt, TreeVisitor, WalkProblem};

use super::shape::{leaf_span, LEAF_PREFIX};
use super::snapmask::MaskEvidence;

/// Where a salvaged leaf came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LeafSource {
    /// Reached from the root.
    Tree,
    /// Found by the scan.
    Scan,
}

/// A leaf whose records are salvaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FoundLeaf {
    /// Its chunk on the input.
    pub chunk: u64,
    /// First and last origin chunk (`None`: no entries).
    pub span: Option<(u64, u64)>,
    /// Records in it.
    pub records: u32,
    /// Where it came from.
    pub source: LeafSource,
    /// Scanned leaves: 0 for the most credible, then 1, 2...; 0 for reached ones.
    pub rank: u32,
}

/// A tree block that could not be used, with the range its parent gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LostBlock {
    /// Its chunk (`None`: the header names no usable root).
    pub chunk: Option<u64>,
    /// Its level as the parent saw it.
    pub level: u32,
    /// Lowest origin chunk of its range.
    pub lo: u64,
    /// One past the highest (`u64::MAX`: no bound).
    pub hi: u64,
    /// What was wrong.
    pub problem: String,
}

/// What the walk found.
#[derive(Debug)]
pub(super) struct Reached {
    /// Leaves kept, in key order.
    pub leaves: Vec<FoundLeaf>,
    /// Blocks that could not be used, in key order.
    pub lost: Vec<LostBlock>,
    /// Nodes followed and leaves kept.
    pub tree_blocks: DenseBitmap,
    /// Every chunk read as a tree block, used or not.
    pub visited: DenseBitmap,
    /// The COW chunk of every record of the kept leaves.
    pub record_chunks: DenseBitmap,
    /// Nodes followed.
    pub nodes: u64,
    /// Masks of the kept leaves.
    pub evidence: MaskEvidence,
    /// Leaves found above level 0 (the header's tree_level is too large).
    pub leaves_above_level_0: u64,
}

impl Reached {
    /// Nothing reached: the whole key space is lost for `problem`.
    pub(super) fn nothing(geometry: &Geometry, problem: String) -> Self {
        let mut reached = Reached::empty(geometry);
        reached.lost.push(LostBlock {
            chunk: None,
            level: 0,
            lo: 0,
            hi: u64::MAX,
            problem,
        });
        reached
    }

    fn empty(geometry: &Geometry) -> Self {
        Reached {
            leaves: Vec::new(),
            lost: Vec::new(),
            tree_blocks: DenseBitmap::new(geometry.nr_chunks),
            visited: DenseBitmap::new(geometry.nr_chunks),
            record_chunks: DenseBitmap::new(geometry.nr_chunks),
            nodes: 0,
            evidence: MaskEvidence::default(),
            leaves_above_level_0: 0,
        }
    }
}

/// Walks the tree rooted at `root` with `levels` node levels, in key order,
/// with the one tree walker ([`walk_tree`]): its memo and range checks make
/// the lost ranges of blocks outside the data range or reached twice.
pub(super) fn walk(input: &Device, geometry: &Geometry, root: u64, levels: u32) -> Result<Reached> {
    let mut reach = Reach {
        input,
        reached: Reached::empty(geometry),
        buf: vec![0u8; geometry.chunk_bytes as usize],
        follow: false,
    };
    let visited = walk_tree(input, geometry, root, levels, &mut reach)?;
    reach.reached.visited = visited;
    Ok(reach.reached)
}

/// The node count a block starting like a leaf decodes with: its first four
/// bytes are the leaf's magic and version.
const LEAF_PREFIX_COUNT: u32 = u32::from_le_bytes(LEAF_PREFIX);

/// The repair's visitor: follows only nodes whose keys ascend inside their
/// range, keeps the leaves that fit theirs, and loses every other block.
struct Reach<'a> {
    input: &'a Device,
    reached: Reached,
    buf: Vec<u8>,
    /// Whether the node just visited is followed.
    follow: bool,
}

impl Reach<'_> {
    fn lose(&mut self, at: &BlockAt, problem: String) {
        self.reached.lost.push(LostBlock {
            chunk: Some(at.chunk),
            level: at.level,
            lo: at.lo,
            hi: at.hi,
            problem,
        });
    }

    /// A block above the leaves that starts like a leaf is read as one (the
    /// header's tree level is too large).
    fn leaf_above_level_0(&mut self, at: &BlockAt) -> Result<()> {
        self.input.read_chunk(at.chunk, &mut self.buf)?;
        let taken = Leaf::decode(&self.buf)
            .map_err(|e| format!("leaf: {e}"))
            .and_then(|leaf| take_leaf(&leaf, at, &mut self.reached));
        if let Err(problem) = taken {
            self.lose(at, problem);
        }
        Ok(())
    }
}

impl TreeVisitor for Reach<'_> {
    fn node(&mut self, at: &BlockAt, node: &Node) -> Result<()> {
        self.follow = false;
        if node.entries.len() == LEAF_PREFIX_COUNT as usize {
            return self.leaf_above_level_0(at);
        }
        if let Err(problem) = keys_fit(node, at.lo, at.hi) {
            self.lose(at, format!("node: {problem}"));
            return Ok(());
        }
        self.reached.nodes += 1;
        self.reached.tree_blocks.test_and_set(at.chunk);
        self.follow = true;
        Ok(())
    }

    fn descend(&mut self, _at: &BlockAt, _node: &Node) -> bool {
        self.follow
    }

    fn leaf(&mut self, at: &BlockAt, leaf: &Leaf) -> Result<()> {
        if let Err(problem) = take_leaf(leaf, at, &mut self.reached) {
            self.lose(at, problem);
        }
        Ok(())
    }

    fn problem(&mut self, at: &BlockAt, problem: &WalkProblem) -> Result<()> {
        let text = match problem {
            WalkProblem::OutOfRange { role } => {
                format!("chunk {} is {role}, not the data range", at.chunk)
            }
            WalkProblem::Revisited => {
                format!("chunk {} was already reached from another node", at.chunk)
            }
            WalkProblem::BadNode(NodeError::CountTooLarge { count, .. })
                if *count == LEAF_PREFIX_COUNT =>
            {
                return self.leaf_above_level_0(at);
            }
            WalkProblem::BadNode(e) => format!("node: {e}"),
            WalkProblem::BadLeaf(e) => format!("leaf: {e}"),
        };
        self.lose(at, text);
        Ok(())
    }
}

/// Keeps `leaf` if its map can be trusted and fits `at`'s range.
fn take_leaf(leaf: &Leaf, at: &BlockAt, reached: &mut Reached) -> Result<(), String> {
    let span = leaf_span(leaf).map_err(|e| format!("leaf: {e}"))?;
    if let Some((first, last)) = span {
        if first < at.lo || last >= at.hi {
            return Err(format!(
                "leaf: origin chunks {first}..={last} do not fit the range {}..{} its parent gives it",
                at.lo,
                if at.hi == u64::MAX { String::new() } else { at.hi.to_string() }
            ));
        }
    }
    if at.level > 0 {
        reached.leaves_above_level_0 += 1;
    }
    reached.tree_blocks.test_and_set(at.chunk);
    let nr_chunks = reached.record_chunks.len();
    for r in &leaf.records {
        if r.chunk < nr_chunks {
            reached.record_chunks.test_and_set(r.chunk);
        }
    }
    reached.evidence.add_leaf(leaf);
    reached.leaves.push(FoundLeaf {
        chunk: at.chunk,
        span,
        records: leaf.records.len() as u32,
        source: LeafSource::Tree,
        rank: 0,
    });
    Ok(())
}

/// Checks that keys 1.. ascend strictly inside `lo..hi` (key 0 is never read).
fn keys_fit(node: &Node, lo: u64, hi: u64) -> Result<(), String> {
    let mut previous: Option<u64> = None;
    for (i, entry) in node.entries.iter().enumerate().skip(1) {
        if entry.key < lo || entry.key >= hi {
            return Err(format!(
                "key {} of entry {i} is outside the range {lo}..{} its parent gives it",
                entry.key,
                if hi == u64::MAX {
                    String::new()
                } else {
                    hi.to_string()
                }
            ));
        }
        if previous.is_some_and(|p| entry.key <= p) {
            return Err(format!(
                "key {} of entry {i} does not ascend (previous {})",
                entry.key,
                previous.unwrap_or(0)
            ));
        }
        previous = Some(entry.key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::leaf::Exception;

    /// A device of `chunk_sectors` chunks with a leaf of two records at
    /// chunk `at`, walked as the root of a tree of `levels` node levels.
    fn walk_a_leaf_as_root(chunk_sectors: u32, levels: u32) -> Reached {
        let dir = tempfile::tempdir().unwrap();
        let chunk_bytes = u64::from(chunk_sectors) * 512;
        let device = Device::create_or_extend(dir.path().join("s.img"), 64 * chunk_bytes).unwrap();
        let geometry = Geometry::new(device.size_bytes(), chunk_sectors, 1);
        let at = geometry.data_start() + 2;
        let mut leaf = Leaf::new(100);
        leaf.insert_entry(
            0,
            0,
            Exception {
                share: 1,
                chunk: at + 1,
            },
        );
        leaf.insert_entry(
            1,
            5,
            Exception {
                share: 1,
                chunk: at + 2,
            },
        );
        let mut bytes = vec![0u8; chunk_bytes as usize];
        leaf.encode(&mut bytes);
        device.write_at(&bytes, at * chunk_bytes).unwrap();
        walk(&device, &geometry, at, levels).unwrap()
    }

    #[test]
    fn a_leaf_above_level_0_is_kept_whether_or_not_it_decodes_as_a_node() {
        // 4 KiB chunks: a leaf's prefix is too large a node count; 128 KiB
        // chunks: it is a node count that fits.
        for chunk_sectors in [8, 256] {
            let reached = walk_a_leaf_as_root(chunk_sectors, 1);
            assert_eq!(reached.lost, Vec::new(), "chunk {chunk_sectors}s");
            assert_eq!(reached.leaves.len(), 1, "chunk {chunk_sectors}s");
            assert_eq!(reached.leaves[0].span, Some((100, 105)));
            assert_eq!(reached.leaves_above_level_0, 1);
            assert_eq!(reached.nodes, 0);
        }
    }

    #[test]
    fn a_root_outside_the_data_range_or_a_leaf_out_of_range_is_a_lost_range() {
        let reached = walk_a_leaf_as_root(8, 0);
        assert_eq!(reached.leaves_above_level_0, 0);
        assert_eq!(reached.leaves.len(), 1);
        let dir = tempfile::tempdir().unwrap();
        let device = Device::create_or_extend(dir.path().join("s.img"), 64 * 4096).unwrap();
        let geometry = Geometry::new(device.size_bytes(), 8, 1);
        let reached = walk(&device, &geometry, 0, 1).unwrap();
        assert_eq!(reached.lost.len(), 1);
        assert_eq!(
            reached.lost[0].problem,
            "chunk 0 is header, not the data range"
        );
    }
}
