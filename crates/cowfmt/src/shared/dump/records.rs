//! The logical view: every record of the tree in origin-chunk order, or only
//! the records one snapshot sees.

use std::io;

use crate::error::{Error, Result};
use crate::shared::leaf::Leaf;
use crate::shared::node::Node;
use crate::shared::walk::BlockAt;

use super::model::{BlockProblem, ShareMask, SharedDumpTail, SharedRecord};
use super::source::SharedSource;
use super::walker::{walk, DumpVisitor, Tally};

/// Walks the tree of `source` and hands every record to `on_record`, in walk
/// order: ascending origin chunk in a well-formed tree, and leaf order within
/// one origin chunk. With `snapshot`, only the records whose share mask holds
/// that id are handed over (the tail still counts every record). Blocks that
/// cannot be read are skipped and listed in the tail's `problems`. Errors from
/// `on_record` are returned wrapped in [`Error::Output`].
pub fn stream_exceptions(
    source: &SharedSource,
    snapshot: Option<u32>,
    on_record: impl FnMut(&SharedRecord) -> io::Result<()>,
) -> Result<SharedDumpTail> {
    let mut visitor = RecordVisitor {
        snapshot,
        on_record,
        tally: Tally::default(),
    };
    walk(source, &mut visitor)?;
    Ok(visitor.tally.finish())
}

struct RecordVisitor<F> {
    snapshot: Option<u32>,
    on_record: F,
    tally: Tally,
}

impl<F: FnMut(&SharedRecord) -> io::Result<()>> DumpVisitor for RecordVisitor<F> {
    fn node(&mut self, _at: &BlockAt, _node: &Node) -> Result<()> {
        self.tally.node();
        Ok(())
    }

    fn leaf(&mut self, _at: &BlockAt, leaf: &Leaf) -> Result<()> {
        self.tally.leaf(leaf);
        for record in leaf_records(leaf) {
            if self
                .snapshot
                .is_some_and(|id| !record.snapshots.contains(id))
            {
                continue;
            }
            (self.on_record)(&record).map_err(Error::Output)?;
        }
        Ok(())
    }

    fn damaged(&mut self, _at: &BlockAt, problem: BlockProblem) -> Result<()> {
        self.tally.problem(problem);
        Ok(())
    }
}

/// The records of `leaf` in leaf order, with their origin chunks. A damaged
/// `base_chunk` near the top of the u64 range wraps instead of overflowing.
pub(crate) fn leaf_records(leaf: &Leaf) -> impl Iterator<Item = SharedRecord> + '_ {
    (0..leaf.count()).flat_map(move |i| {
        let origin_chunk = leaf.base_chunk.wrapping_add(u64::from(leaf.map[i].rchunk));
        leaf.records_of(i).iter().map(move |r| SharedRecord {
            origin_chunk,
            cow_chunk: r.chunk,
            snapshots: ShareMask(r.share),
        })
    })
}
