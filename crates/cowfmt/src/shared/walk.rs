//! A read-only, damage-tolerant walk over the B-tree of a shared store, in key
//! order, for the checker, the dump and repair. It never trusts a chunk number:
//! chunks outside the device or already visited are reported, not followed.

use crate::bitset::DenseBitmap;
use crate::device::Device;
use crate::error::Result;

use super::geometry::Geometry;
use super::leaf::{Leaf, LeafError};
use super::node::{Node, NodeError};

/// Where a tree block sits: its chunk, its level (0 = leaf), the key range its
/// parent gives it, and which entry of which parent points at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockAt {
    /// The COW chunk of the block.
    pub chunk: u64,
    /// 0 for a leaf, `tree_level` for the root.
    pub level: u32,
    /// Lowest origin chunk the block may hold.
    pub lo: u64,
    /// One past the highest origin chunk it may hold (`u64::MAX` for "no bound").
    pub hi: u64,
    /// The parent node's chunk and the entry index, `None` for the root.
    pub parent: Option<(u64, usize)>,
}

impl BlockAt {
    /// The key range as people read it, e.g. "origin chunks 100..200".
    pub fn range_text(&self) -> String {
        if self.hi == u64::MAX {
            format!("origin chunks {}..", self.lo)
        } else {
            format!("origin chunks {}..{}", self.lo, self.hi)
        }
    }
}

/// Why the walk could not read a block; the subtree below it is not visited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkProblem {
    /// The chunk is outside the data range of the device.
    OutOfRange {
        /// What the chunk is instead ("header", "journal", "past the end"...).
        role: &'static str,
    },
    /// The chunk was already visited from another parent (or is a cycle).
    Revisited,
    /// A node that does not decode.
    BadNode(NodeError),
    /// A leaf that does not decode.
    BadLeaf(LeafError),
}

/// What the walk reports to.
pub trait TreeVisitor {
    /// A node decoded at `at`; its children are visited next, in order.
    fn node(&mut self, at: &BlockAt, node: &Node) -> Result<()>;
    /// A leaf decoded at `at`.
    fn leaf(&mut self, at: &BlockAt, leaf: &Leaf) -> Result<()>;
    /// A block that could not be read; nothing below it is visited.
    fn problem(&mut self, at: &BlockAt, problem: &WalkProblem) -> Result<()>;
}

/// Walks the tree rooted at `root` with `levels` node levels above the leaves,
/// depth first in key order. Returns the set of chunks visited as tree blocks.
pub fn walk_tree(
    device: &Device,
    geometry: &Geometry,
    root: u64,
    levels: u32,
    visitor: &mut dyn TreeVisitor,
) -> Result<DenseBitmap> {
    let mut visited = DenseBitmap::new(geometry.nr_chunks);
    let mut buf = vec![0u8; geometry.chunk_bytes as usize];
    let at = BlockAt {
        chunk: root,
        level: levels,
        lo: 0,
        hi: u64::MAX,
        parent: None,
    };
    visit(device, geometry, at, &mut visited, &mut buf, visitor)?;
    Ok(visited)
}

fn visit(
    device: &Device,
    geometry: &Geometry,
    at: BlockAt,
    visited: &mut DenseBitmap,
    buf: &mut Vec<u8>,
    visitor: &mut dyn TreeVisitor,
) -> Result<()> {
    if let Some(role) = geometry.reserved_role(at.chunk) {
        return visitor.problem(&at, &WalkProblem::OutOfRange { role });
    }
    if visited.test_and_set(at.chunk) {
        return visitor.problem(&at, &WalkProblem::Revisited);
    }
    device.read_chunk(at.chunk, buf)?;
    if at.level == 0 {
        return match Leaf::decode(buf) {
            Ok(leaf) => visitor.leaf(&at, &leaf),
            Err(e) => visitor.problem(&at, &WalkProblem::BadLeaf(e)),
        };
    }
    let node = match Node::decode(buf) {
        Ok(node) => node,
        Err(e) => return visitor.problem(&at, &WalkProblem::BadNode(e)),
    };
    visitor.node(&at, &node)?;
    for (i, entry) in node.entries.iter().enumerate() {
        let (lo, hi) = node.child_range(i, at.lo, at.hi);
        let child = BlockAt {
            chunk: entry.chunk,
            level: at.level - 1,
            lo,
            hi,
            parent: Some((at.chunk, i)),
        };
        visit(device, geometry, child, visited, buf, visitor)?;
    }
    Ok(())
}
