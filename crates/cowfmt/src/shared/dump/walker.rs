//! The walk under every view: tree totals, damaged blocks turned into dump
//! problems, and a guard against a `tree_level` no real tree can have.

use crate::error::Result;
use crate::shared::geometry::Geometry;
use crate::shared::header::MAX_TREE_LEVEL;
use crate::shared::leaf::Leaf;
use crate::shared::node::Node;
use crate::shared::walk::{root_at, BlockAt, Tree, TreeVisitor, WalkProblem};

use super::model::{placement, BlockProblem, SharedDumpTail};
use super::source::SharedSource;

/// What a view does with each block of the walk.
pub(crate) trait DumpVisitor {
    /// A node decoded at `at`.
    fn node(&mut self, at: &BlockAt, node: &Node) -> Result<()>;
    /// A leaf decoded at `at`.
    fn leaf(&mut self, at: &BlockAt, leaf: &Leaf) -> Result<()>;
    /// A block that could not be read, described for the dump.
    fn damaged(&mut self, at: &BlockAt, problem: BlockProblem) -> Result<()>;
}

/// Walks the tree of `source` in key order for `visitor`. A `tree_level` above
/// [`MAX_TREE_LEVEL`] is reported as a damaged root and nothing is walked.
///
/// The leaves are read on a second thread ahead of `visitor`
/// ([`Tree`]): reading the tree and writing the dump overlap.
pub(crate) fn walk(source: &SharedSource, visitor: &mut impl DumpVisitor) -> Result<()> {
    let header = source.header();
    let geometry = source.geometry();
    if header.tree_level > MAX_TREE_LEVEL {
        let at = root_at(header.root_tree_chunk, header.tree_level);
        let text = format!(
            "tree_level {} is deeper than any tree can be (at most {MAX_TREE_LEVEL}); the tree is not walked",
            header.tree_level
        );
        return visitor.damaged(&at, block_problem(&at, text));
    }
    let mut adapter = Adapter { geometry, visitor };
    Tree::of(source.device(), geometry, header)
        .walk_ahead(&mut adapter)
        .map(drop)
}

struct Adapter<'a, V> {
    geometry: &'a Geometry,
    visitor: &'a mut V,
}

impl<V: DumpVisitor> TreeVisitor for Adapter<'_, V> {
    fn node(&mut self, at: &BlockAt, node: &Node) -> Result<()> {
        self.visitor.node(at, node)
    }

    fn leaf(&mut self, at: &BlockAt, leaf: &Leaf) -> Result<()> {
        self.visitor.leaf(at, leaf)
    }

    fn problem(&mut self, at: &BlockAt, problem: &WalkProblem) -> Result<()> {
        let text = problem.describe(self.geometry);
        self.visitor.damaged(at, block_problem(at, text))
    }
}

fn block_problem(at: &BlockAt, problem: String) -> BlockProblem {
    let (hi, parent) = placement(at);
    BlockProblem {
        chunk: at.chunk,
        level: at.level,
        lo: at.lo,
        hi,
        parent,
        problem,
    }
}

/// The totals and problems of a walk, turned into the tail at the end.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    tail: SharedDumpTail,
}

impl Tally {
    /// Counts a node.
    pub(crate) fn node(&mut self) {
        self.tail.nodes += 1;
    }

    /// Counts a leaf, its entries and its records.
    pub(crate) fn leaf(&mut self, leaf: &Leaf) {
        self.tail.leaves += 1;
        self.tail.origin_chunks += leaf.count() as u64;
        self.tail.records += leaf.records.len() as u64;
    }

    /// Keeps a block the walk could not read.
    pub(crate) fn problem(&mut self, problem: BlockProblem) {
        self.tail.problems.push(problem);
    }

    /// The tail.
    pub(crate) fn finish(self) -> SharedDumpTail {
        self.tail
    }
}
