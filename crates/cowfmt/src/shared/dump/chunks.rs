//! The bitmap view: every chunk of the device classified (header, bitmap,
//! journal, node, leaf, data, leaked or free) and written as runs of one class
//! and one bitmap state. Memory is a few bits per chunk, whatever the records.

use std::io;

use crate::bitset::DenseBitmap;
use crate::error::{Error, Result};
use crate::shared::bitmap::ChunkBitmap;
use crate::shared::geometry::Geometry;
use crate::shared::leaf::Leaf;
use crate::shared::node::Node;
use crate::shared::walk::BlockAt;

use super::model::{BlockProblem, ChunkClass, ChunkRun, ClassTotals, SharedDumpTail};
use super::source::SharedSource;
use super::walker::{walk, DumpVisitor, Tally};

/// Walks the tree of `source` to learn which chunks are nodes, leaves and data,
/// then hands `on_run` the maximal runs of chunks with the same class and the
/// same state in `bitmap`, from chunk 0 to the end of the device. A chunk
/// referenced as a tree block (even one that does not decode) is a node or leaf
/// by its level; header, bitmap and journal chunks keep their class whatever
/// points at them. The tail carries the totals per class. Errors from `on_run`
/// are returned wrapped in [`Error::Output`].
pub fn stream_chunk_runs(
    source: &SharedSource,
    bitmap: &ChunkBitmap,
    mut on_run: impl FnMut(&ChunkRun) -> io::Result<()>,
) -> Result<SharedDumpTail> {
    let geometry = *source.geometry();
    let mut marks = Marks::new(&geometry);
    walk(source, &mut marks)?;
    let mut totals = ClassTotals::default();
    let mut current: Option<ChunkRun> = None;
    for c in 0..geometry.nr_chunks {
        let class = marks.class_of(&geometry, bitmap, c);
        let used = bitmap.is_used(c);
        match current.as_mut() {
            Some(run) if run.class == class && run.used == used => run.end = c + 1,
            _ => {
                if let Some(run) = current.take() {
                    totals.add(run.class, run.used, run.end - run.start);
                    on_run(&run).map_err(Error::Output)?;
                }
                current = Some(ChunkRun {
                    start: c,
                    end: c + 1,
                    class,
                    used,
                });
            }
        }
    }
    if let Some(run) = current {
        totals.add(run.class, run.used, run.end - run.start);
        on_run(&run).map_err(Error::Output)?;
    }
    let mut tail = marks.tally.finish();
    tail.classes = Some(totals);
    Ok(tail)
}

/// One bit per chunk for each of node, leaf and data.
struct Marks {
    nodes: DenseBitmap,
    leaves: DenseBitmap,
    data: DenseBitmap,
    tally: Tally,
}

impl Marks {
    fn new(geometry: &Geometry) -> Self {
        Marks {
            nodes: DenseBitmap::new(geometry.nr_chunks),
            leaves: DenseBitmap::new(geometry.nr_chunks),
            data: DenseBitmap::new(geometry.nr_chunks),
            tally: Tally::default(),
        }
    }

    fn mark_block(&mut self, at: &BlockAt) {
        let set = if at.level == 0 {
            &mut self.leaves
        } else {
            &mut self.nodes
        };
        if at.chunk < set.len() {
            set.test_and_set(at.chunk);
        }
    }

    fn class_of(&self, geometry: &Geometry, bitmap: &ChunkBitmap, c: u64) -> ChunkClass {
        if c == 0 {
            ChunkClass::Header
        } else if c < geometry.journal_start() {
            ChunkClass::Bitmap
        } else if c < geometry.data_start() {
            ChunkClass::Journal
        } else if self.nodes.get(c) {
            ChunkClass::Node
        } else if self.leaves.get(c) {
            ChunkClass::Leaf
        } else if self.data.get(c) {
            ChunkClass::Data
        } else if bitmap.is_used(c) {
            ChunkClass::Leaked
        } else {
            ChunkClass::Free
        }
    }
}

impl DumpVisitor for Marks {
    fn node(&mut self, at: &BlockAt, _node: &Node) -> Result<()> {
        self.tally.node();
        self.mark_block(at);
        Ok(())
    }

    fn leaf(&mut self, at: &BlockAt, leaf: &Leaf) -> Result<()> {
        self.tally.leaf(leaf);
        self.mark_block(at);
        for r in &leaf.records {
            if r.chunk < self.data.len() {
                self.data.test_and_set(r.chunk);
            }
        }
        Ok(())
    }

    fn damaged(&mut self, at: &BlockAt, problem: BlockProblem) -> Result<()> {
        self.tally.problem(problem);
        self.mark_block(at);
        Ok(())
    }
}
