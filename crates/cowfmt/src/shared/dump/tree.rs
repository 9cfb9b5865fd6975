//! The tree view: every node and leaf in walk order, with its key range, fill
//! and contents; damaged blocks in their place with the reason.

use std::io;

use crate::error::{Error, Result};
use crate::shared::leaf::Leaf;
use crate::shared::node::{Node, NODE_ENTRY_BYTES, NODE_HEADER_BYTES};
use crate::shared::walk::BlockAt;

use super::model::{
    fill_percent, placement, BlockProblem, NodeChild, ShareMask, SharedDumpTail, TreeBlock,
    TreeBody,
};
use super::records::leaf_records;
use super::source::SharedSource;
use super::walker::{walk, DumpVisitor, Tally};

/// Walks the tree of `source` and hands every block to `on_block` in walk order
/// (depth first, children in key order). A block that cannot be read is handed
/// over as [`TreeBody::Damaged`] and also listed in the tail's `problems`.
/// Errors from `on_block` are returned wrapped in [`Error::Output`].
pub fn stream_tree(
    source: &SharedSource,
    on_block: impl FnMut(&TreeBlock) -> io::Result<()>,
) -> Result<SharedDumpTail> {
    let mut visitor = BlockVisitor {
        chunk_bytes: source.geometry().chunk_bytes,
        on_block,
        tally: Tally::default(),
    };
    walk(source, &mut visitor)?;
    Ok(visitor.tally.finish())
}

struct BlockVisitor<F> {
    chunk_bytes: u64,
    on_block: F,
    tally: Tally,
}

impl<F: FnMut(&TreeBlock) -> io::Result<()>> BlockVisitor<F> {
    fn emit(&mut self, at: &BlockAt, body: TreeBody) -> Result<()> {
        let (hi, parent) = placement(at);
        let block = TreeBlock {
            chunk: at.chunk,
            level: at.level,
            lo: at.lo,
            hi,
            parent,
            body,
        };
        (self.on_block)(&block).map_err(Error::Output)
    }
}

impl<F: FnMut(&TreeBlock) -> io::Result<()>> DumpVisitor for BlockVisitor<F> {
    fn node(&mut self, at: &BlockAt, node: &Node) -> Result<()> {
        self.tally.node();
        let bytes_used = (NODE_HEADER_BYTES + NODE_ENTRY_BYTES * node.entries.len()) as u64;
        let body = TreeBody::Node {
            entries: node.entries.len() as u64,
            bytes_used,
            fill_percent: fill_percent(bytes_used, self.chunk_bytes),
            children: node
                .entries
                .iter()
                .map(|e| NodeChild {
                    key: e.key,
                    chunk: e.chunk,
                })
                .collect(),
        };
        self.emit(at, body)
    }

    fn leaf(&mut self, at: &BlockAt, leaf: &Leaf) -> Result<()> {
        self.tally.leaf(leaf);
        let bytes_used = leaf.bytes_used() as u64;
        let exceptions = leaf_records(leaf).collect();
        let body = TreeBody::Leaf {
            entries: leaf.count() as u64,
            records: leaf.records.len() as u64,
            bytes_used,
            fill_percent: fill_percent(bytes_used, self.chunk_bytes),
            base_chunk: leaf.base_chunk,
            using_mask: ShareMask(leaf.stored_using_mask),
            exceptions,
        };
        self.emit(at, body)
    }

    fn damaged(&mut self, at: &BlockAt, problem: BlockProblem) -> Result<()> {
        let body = TreeBody::Damaged {
            problem: problem.problem.clone(),
        };
        self.tally.problem(problem);
        self.emit(at, body)
    }
}
