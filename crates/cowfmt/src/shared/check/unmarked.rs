//! Tree blocks and records whose chunk is not marked in use. The main walk
//! leaves the bitmap alone (one random memory access per record is enough); the
//! bitmap pass then counts referenced chunks whose bit is clear, and only when
//! there are some does this second walk name the blocks and records that use
//! them.

use super::misread::Misread;
use super::place::{block, block_location, record_location, record_place};
use super::tree::Context;
use crate::error::Result;
use crate::finding::{Finding, FindingCode, FindingSink};
use crate::shared::header::SharedHeader;
use crate::shared::leaf::Leaf;
use crate::shared::node::Node;
use crate::shared::walk::{walk_tree, BlockAt, TreeVisitor, WalkProblem};

/// Walks the tree again and reports every tree block and every record whose
/// chunk lies in the data range but is not marked in use.
pub(super) fn report_unmarked(
    cx: &Context,
    header: &SharedHeader,
    sink: &mut FindingSink,
) -> Result<()> {
    let mut finder = UnmarkedFinder {
        cx,
        sink,
        misread: Misread::new(),
    };
    walk_tree(
        cx.device,
        &cx.geometry,
        header.root_tree_chunk,
        header.tree_level,
        &mut finder,
    )?;
    Ok(())
}

struct UnmarkedFinder<'c, 's> {
    cx: &'c Context<'c>,
    sink: &'s mut FindingSink,
    misread: Misread,
}

impl UnmarkedFinder<'_, '_> {
    fn unmarked(&self, chunk: u64) -> bool {
        self.cx.geometry.in_data_range(chunk) && !self.cx.bitmap.is_used(chunk)
    }

    fn block(&mut self, at: &BlockAt) {
        if self.unmarked(at.chunk) {
            self.sink.push(Finding::error(
                FindingCode::TreeChunkNotMarked,
                block_location(at),
                format!(
                    "{}: the chunk is not marked in use in the bitmap; the allocator would hand it out and overwrite it",
                    block(at)
                ),
            ));
        }
    }
}

impl TreeVisitor for UnmarkedFinder<'_, '_> {
    fn node(&mut self, at: &BlockAt, node: &Node) -> Result<()> {
        if self.misread.skipping(at) {
            return Ok(());
        }
        self.block(at);
        if self
            .misread
            .node_is_leaf(self.cx.device, &self.cx.geometry, at, node)?
        {
            self.misread.skip_under(at);
        }
        Ok(())
    }

    fn leaf(&mut self, at: &BlockAt, leaf: &Leaf) -> Result<()> {
        if self.misread.skipping(at) {
            return Ok(());
        }
        self.block(at);
        for (i, entry) in leaf.map.iter().enumerate() {
            let origin = leaf.base_chunk.checked_add(u64::from(entry.rchunk));
            for r in leaf.record_range(i) {
                let record = leaf.records[r];
                let chunk = record.chunk;
                if self.unmarked(chunk) {
                    self.sink.push(Finding::error(
                        FindingCode::CowChunkNotMarked,
                        record_location(at, i, r, origin, record),
                        format!(
                            "{}: COW chunk {chunk} is not marked in use in the bitmap; the allocator would hand it out again and overwrite the copy",
                            record_place(at, i, r, origin)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn problem(&mut self, at: &BlockAt, problem: &WalkProblem) -> Result<()> {
        if self.misread.skipping(at) {
            return Ok(());
        }
        if matches!(problem, WalkProblem::BadNode(_) | WalkProblem::BadLeaf(_)) {
            self.block(at);
        }
        Ok(())
    }
}
