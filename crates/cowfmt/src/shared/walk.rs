//! THE read-only walk over the B-tree of a shared store, in key order, for the
//! checker, the dump, repair, migrate and the strict readers (export, merge).
//! It never trusts a chunk number: chunks outside the data range or already
//! visited (the block-reached-twice memo) are reported, not followed, and every
//! block comes with its place ([`BlockAt`]: chunk, level, key range, parent).
//!
//! A [`TreeVisitor`] sees nodes, leaves and problems; it chooses whether to
//! descend into a node ([`TreeVisitor::descend`]) and whether a leaf is read
//! ([`TreeVisitor::leaf_reached`]). Policies: tolerant (every problem is handed
//! to the visitor and the walk goes on) or strict ([`walk_strict`]: the first
//! problem ends the walk with an [`Error::Corrupt`] naming the block).

use std::sync::mpsc;

use crate::bitset::DenseBitmap;
use crate::blockdev::BlockDev;
use crate::error::{Error, Result};

use super::geometry::Geometry;
use super::header::SharedHeader;
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
    /// Whether the children of `node`, just visited at `at`, are walked
    /// (all of them by default).
    fn descend(&mut self, _at: &BlockAt, _node: &Node) -> bool {
        true
    }
    /// A leaf is about to be read at `at` (it passed the range and memo
    /// checks); `false` leaves it unread and [`TreeVisitor::leaf`] is not called.
    fn leaf_reached(&mut self, _at: &BlockAt) -> Result<bool> {
        Ok(true)
    }
}

impl WalkProblem {
    /// The problem as one phrase, e.g. "not a leaf: bad magic ...".
    pub fn describe(&self, geometry: &Geometry) -> String {
        match self {
            WalkProblem::OutOfRange { role } => {
                let what = match *role {
                    "past the end" => "past the end of the device",
                    "header" => "the header",
                    "bitmap" => "a bitmap chunk",
                    "journal" => "a journal chunk",
                    other => other,
                };
                format!(
                    "the chunk is {what}, outside the data range (chunks {}..{})",
                    geometry.data_start(),
                    geometry.nr_chunks
                )
            }
            WalkProblem::Revisited => {
                "the chunk was already reached from another node entry (shared block or cycle)"
                    .to_string()
            }
            WalkProblem::BadNode(e) => format!("not a node: {e}"),
            WalkProblem::BadLeaf(e) => format!("not a leaf: {e}"),
        }
    }
}

/// The place of the root block of a tree with `levels` node levels.
pub fn root_at(root: u64, levels: u32) -> BlockAt {
    BlockAt {
        chunk: root,
        level: levels,
        lo: 0,
        hi: u64::MAX,
        parent: None,
    }
}

/// [`walk_tree`] with the strict policy: the first problem ends the walk with
/// an [`Error::Corrupt`] naming the device and the block, phrased by `describe`
/// (e.g. "the tree reaches this block twice"). For readers that refuse a
/// damaged store instead of reporting on it.
pub fn walk_strict(
    device: &dyn BlockDev,
    geometry: &Geometry,
    root: u64,
    levels: u32,
    visitor: &mut dyn TreeVisitor,
    describe: &dyn Fn(&BlockAt, &WalkProblem) -> String,
) -> Result<DenseBitmap> {
    let mut strict = Strict {
        device,
        visitor,
        describe,
    };
    walk_tree(device, geometry, root, levels, &mut strict)
}

/// A visitor for which every problem is an error.
struct Strict<'a> {
    device: &'a dyn BlockDev,
    visitor: &'a mut dyn TreeVisitor,
    describe: &'a dyn Fn(&BlockAt, &WalkProblem) -> String,
}

impl TreeVisitor for Strict<'_> {
    fn node(&mut self, at: &BlockAt, node: &Node) -> Result<()> {
        self.visitor.node(at, node)
    }

    fn leaf(&mut self, at: &BlockAt, leaf: &Leaf) -> Result<()> {
        self.visitor.leaf(at, leaf)
    }

    fn problem(&mut self, at: &BlockAt, problem: &WalkProblem) -> Result<()> {
        Err(Error::Corrupt {
            path: self.device.path().to_path_buf(),
            chunk: at.chunk,
            detail: (self.describe)(at, problem),
        })
    }

    fn descend(&mut self, at: &BlockAt, node: &Node) -> bool {
        self.visitor.descend(at, node)
    }

    fn leaf_reached(&mut self, at: &BlockAt) -> Result<bool> {
        self.visitor.leaf_reached(at)
    }
}

/// Walks the tree rooted at `root` with `levels` node levels above the leaves,
/// depth first in key order. Returns the set of chunks visited as tree blocks.
pub fn walk_tree(
    device: &dyn BlockDev,
    geometry: &Geometry,
    root: u64,
    levels: u32,
    visitor: &mut dyn TreeVisitor,
) -> Result<DenseBitmap> {
    Tree {
        device,
        geometry,
        root,
        levels,
    }
    .walk(visitor)
}

/// How many bytes of leaves [`Tree::walk_ahead`] reads ahead of its visitor.
const READ_AHEAD_BYTES: u64 = 1 << 20;
/// The most leaves it reads ahead, whatever their size.
const READ_AHEAD_LEAVES: u64 = 64;

/// A tree to walk: the device it is on, the store's geometry, its root and
/// how many node levels are above its leaves.
#[derive(Clone, Copy)]
pub struct Tree<'a> {
    /// The device holding the store.
    pub device: &'a dyn BlockDev,
    /// The store's geometry.
    pub geometry: &'a Geometry,
    /// The root's chunk.
    pub root: u64,
    /// Node levels above the leaves.
    pub levels: u32,
}

impl<'a> Tree<'a> {
    /// The tree `header` names on `device`.
    pub fn of(device: &'a dyn BlockDev, geometry: &'a Geometry, header: &SharedHeader) -> Self {
        Tree {
            device,
            geometry,
            root: header.root_tree_chunk,
            levels: header.tree_level,
        }
    }

    /// Walks the tree depth first in key order, reading each block on this
    /// thread. Returns the set of chunks visited as tree blocks.
    pub fn walk(&self, visitor: &mut dyn TreeVisitor) -> Result<DenseBitmap> {
        let mut inline = Inline {
            visitor,
            buf: vec![0u8; self.geometry.chunk_bytes as usize],
        };
        walk_into(self, &mut inline)
    }

    /// [`Tree::walk`] with the leaves read on a second thread, ahead of
    /// `visitor`, which decodes and looks at them on this one: reading a leaf
    /// (a system call and a copy from the page cache) overlaps looking at the
    /// one before. The leaves travel in a fixed pool of buffers that go back
    /// and forth, so memory stays at [`READ_AHEAD_BYTES`] and nothing is
    /// allocated per leaf. The visitor sees the same blocks in the same order
    /// as with [`Tree::walk`]; the first error of either side ends both.
    /// Without a second thread it walks inline. Every node is descended into
    /// ([`TreeVisitor::descend`] is not asked: the reader runs ahead of it); a
    /// leaf the visitor declines in [`TreeVisitor::leaf_reached`] has been read
    /// but is not decoded.
    pub fn walk_ahead(&self, visitor: &mut dyn TreeVisitor) -> Result<DenseBitmap> {
        let tree = *self;
        let geometry = self.geometry;
        let buffers =
            (READ_AHEAD_BYTES / geometry.chunk_bytes).clamp(2, READ_AHEAD_LEAVES) as usize;
        std::thread::scope(|scope| {
            let (sender, blocks) = mpsc::sync_channel(buffers);
            let (give_back, free) = mpsc::sync_channel(buffers);
            for _ in 0..buffers {
                give_back
                    .send(vec![0u8; geometry.chunk_bytes as usize])
                    .map_err(|_| Error::Invalid("the tree walk's buffer pool is closed".into()))?;
            }
            let reader = std::thread::Builder::new()
                .name("tree-walk".to_string())
                .spawn_scoped(scope, move || {
                    walk_into(&tree, &mut Forward { sender, free })
                });
            let Ok(reader) = reader else {
                return tree.walk(visitor);
            };
            let visited = blocks.iter().try_for_each(|event| match event {
                Event::Node(at, node) => visitor.node(&at, &node),
                Event::Problem(at, problem) => visitor.problem(&at, &problem),
                Event::Leaf(at, buf) => {
                    let seen = match visitor.leaf_reached(&at) {
                        Ok(false) => Ok(()),
                        Err(e) => Err(e),
                        Ok(true) => match Leaf::decode(&buf) {
                            Ok(leaf) => visitor.leaf(&at, &leaf),
                            Err(e) => visitor.problem(&at, &WalkProblem::BadLeaf(e)),
                        },
                    };
                    // The reader may have stopped already; the buffer is not needed then.
                    let _ = give_back.send(buf);
                    seen
                }
            });
            drop(blocks);
            drop(give_back);
            let read = reader.join().unwrap_or_else(|_| {
                Err(Error::Invalid("the tree walk stopped unexpectedly".into()))
            });
            // A visitor error stops the reader (its sends fail): report the visitor's.
            visited.and(read)
        })
    }
}

/// Where the walk puts what it reads. A leaf is handed over unread: the sink
/// reads it (inline) or has it read for the visiting thread.
trait BlockSink {
    /// Takes a node; true when its children are to be walked.
    fn node(&mut self, at: &BlockAt, node: &Node) -> Result<bool>;
    fn leaf(&mut self, at: &BlockAt, device: &dyn BlockDev) -> Result<()>;
    fn problem(&mut self, at: &BlockAt, problem: WalkProblem) -> Result<()>;
}

/// A visitor on the walking thread, with the buffer its leaves are read into.
struct Inline<'a> {
    visitor: &'a mut dyn TreeVisitor,
    buf: Vec<u8>,
}

impl BlockSink for Inline<'_> {
    fn node(&mut self, at: &BlockAt, node: &Node) -> Result<bool> {
        self.visitor.node(at, node)?;
        Ok(self.visitor.descend(at, node))
    }

    fn leaf(&mut self, at: &BlockAt, device: &dyn BlockDev) -> Result<()> {
        if !self.visitor.leaf_reached(at)? {
            return Ok(());
        }
        device.read_chunk(at.chunk, &mut self.buf)?;
        match Leaf::decode(&self.buf) {
            Ok(leaf) => self.visitor.leaf(at, &leaf),
            Err(e) => self.visitor.problem(at, &WalkProblem::BadLeaf(e)),
        }
    }

    fn problem(&mut self, at: &BlockAt, problem: WalkProblem) -> Result<()> {
        self.visitor.problem(at, &problem)
    }
}

/// One block of a walk, sent from the reading thread: a leaf as its raw bytes.
enum Event {
    Node(BlockAt, Node),
    Leaf(BlockAt, Vec<u8>),
    Problem(BlockAt, WalkProblem),
}

/// Reads leaves into buffers from the pool and sends every block to the
/// visiting thread; fails once that thread has stopped.
struct Forward {
    sender: mpsc::SyncSender<Event>,
    free: mpsc::Receiver<Vec<u8>>,
}

impl Forward {
    fn send(&self, event: Event) -> Result<()> {
        self.sender
            .send(event)
            .map_err(|_| Error::Invalid("the tree walk's visitor stopped".into()))
    }
}

impl BlockSink for Forward {
    fn node(&mut self, at: &BlockAt, node: &Node) -> Result<bool> {
        self.send(Event::Node(*at, node.clone()))?;
        Ok(true)
    }

    fn leaf(&mut self, at: &BlockAt, device: &dyn BlockDev) -> Result<()> {
        let mut buf = self
            .free
            .recv()
            .map_err(|_| Error::Invalid("the tree walk's visitor stopped".into()))?;
        device.read_chunk(at.chunk, &mut buf)?;
        self.send(Event::Leaf(*at, buf))
    }

    fn problem(&mut self, at: &BlockAt, problem: WalkProblem) -> Result<()> {
        self.send(Event::Problem(*at, problem))
    }
}

fn walk_into(tree: &Tree<'_>, sink: &mut dyn BlockSink) -> Result<DenseBitmap> {
    let mut visited = DenseBitmap::new(tree.geometry.nr_chunks);
    let mut buf = vec![0u8; tree.geometry.chunk_bytes as usize];
    let at = root_at(tree.root, tree.levels);
    visit(tree.device, tree.geometry, at, &mut visited, &mut buf, sink)?;
    Ok(visited)
}

/// Visits the block at `at` and everything below it; `buf` holds nodes.
fn visit(
    device: &dyn BlockDev,
    geometry: &Geometry,
    at: BlockAt,
    visited: &mut DenseBitmap,
    buf: &mut Vec<u8>,
    sink: &mut dyn BlockSink,
) -> Result<()> {
    if let Some(role) = geometry.reserved_role(at.chunk) {
        return sink.problem(&at, WalkProblem::OutOfRange { role });
    }
    if visited.test_and_set(at.chunk) {
        return sink.problem(&at, WalkProblem::Revisited);
    }
    if at.level == 0 {
        return sink.leaf(&at, device);
    }
    device.read_chunk(at.chunk, buf)?;
    let node = match Node::decode(buf) {
        Ok(node) => node,
        Err(e) => return sink.problem(&at, WalkProblem::BadNode(e)),
    };
    if !sink.node(&at, &node)? {
        return Ok(());
    }
    for (i, entry) in node.entries.iter().enumerate() {
        let (lo, hi) = node.child_range(i, at.lo, at.hi);
        let child = BlockAt {
            chunk: entry.chunk,
            level: at.level - 1,
            lo,
            hi,
            parent: Some((at.chunk, i)),
        };
        visit(device, geometry, child, visited, buf, sink)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memdev::MemDev;
    use crate::shared::format::format_store;

    /// What a walk showed, and how the visitor steers it.
    #[derive(Default)]
    struct Seen {
        descend: bool,
        read_leaves: bool,
        nodes: Vec<u64>,
        reached: Vec<u64>,
        leaves: Vec<u64>,
    }

    impl TreeVisitor for Seen {
        fn node(&mut self, at: &BlockAt, _node: &Node) -> Result<()> {
            self.nodes.push(at.chunk);
            Ok(())
        }
        fn leaf(&mut self, at: &BlockAt, _leaf: &Leaf) -> Result<()> {
            self.leaves.push(at.chunk);
            Ok(())
        }
        fn problem(&mut self, _at: &BlockAt, problem: &WalkProblem) -> Result<()> {
            Err(Error::Invalid(format!("{problem:?}")))
        }
        fn descend(&mut self, _at: &BlockAt, _node: &Node) -> bool {
            self.descend
        }
        fn leaf_reached(&mut self, at: &BlockAt) -> Result<bool> {
            self.reached.push(at.chunk);
            Ok(self.read_leaves)
        }
    }

    fn store() -> (MemDev, Geometry, u64, u32) {
        let device = MemDev::new("walk.img", 1 << 20);
        let header = format_store(&device, 8, 2).unwrap();
        let geometry = Geometry::new(1 << 20, header.chunk_size, 2);
        (device, geometry, header.root_tree_chunk, header.tree_level)
    }

    #[test]
    fn the_visitor_chooses_what_is_descended_into_and_read() {
        let (device, geometry, root, levels) = store();
        let mut all = Seen {
            descend: true,
            read_leaves: true,
            ..Seen::default()
        };
        walk_tree(&device, &geometry, root, levels, &mut all).unwrap();
        assert_eq!((all.nodes.len(), all.leaves.len()), (1, 1));
        assert_eq!(all.reached, all.leaves);
        let mut unread = Seen {
            descend: true,
            ..Seen::default()
        };
        walk_tree(&device, &geometry, root, levels, &mut unread).unwrap();
        assert_eq!((unread.reached.len(), unread.leaves.len()), (1, 0));
        let mut shallow = Seen::default();
        walk_tree(&device, &geometry, root, levels, &mut shallow).unwrap();
        assert_eq!((shallow.nodes.len(), shallow.reached.len()), (1, 0));
    }

    #[test]
    fn the_strict_walk_ends_at_the_first_problem_naming_the_block() {
        let (device, geometry, _, levels) = store();
        let mut seen = Seen::default();
        let past_end = geometry.nr_chunks + 5;
        let error = walk_strict(&device, &geometry, past_end, levels, &mut seen, &|at, p| {
            format!(
                "{} ({}): {}",
                at.range_text(),
                at.level,
                p.describe(&geometry)
            )
        })
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "walk.img: chunk {past_end}: origin chunks 0.. ({levels}): the chunk is past the end of the device, outside the data range (chunks {}..{})",
                geometry.data_start(),
                geometry.nr_chunks
            )
        );
    }
}
