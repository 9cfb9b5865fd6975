//! A read-only, damage-tolerant walk over the B-tree of a shared store, in key
//! order, for the checker, the dump and repair. It never trusts a chunk number:
//! chunks outside the device or already visited are reported, not followed.

use std::sync::mpsc;

use crate::bitset::DenseBitmap;
use crate::device::Device;
use crate::error::{Error, Result};

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
    let mut inline = Inline {
        visitor,
        buf: vec![0u8; geometry.chunk_bytes as usize],
    };
    walk_into(device, geometry, root, levels, &mut inline)
}

/// How many bytes of leaves [`walk_tree_ahead`] reads ahead of its visitor.
const READ_AHEAD_BYTES: u64 = 1 << 20;
/// The most leaves it reads ahead, whatever their size.
const READ_AHEAD_LEAVES: u64 = 64;

/// [`walk_tree`] with the leaves read on a second thread, ahead of `visitor`,
/// which decodes and looks at them on this one: reading a leaf (a system call
/// and a copy from the page cache) overlaps looking at the one before. The
/// leaves travel in a fixed pool of buffers that go back and forth, so memory
/// stays at [`READ_AHEAD_BYTES`] and nothing is allocated per leaf. The
/// visitor sees the same blocks in the same order as with [`walk_tree`]; the
/// first error of either side ends both. Without a second thread it walks
/// inline.
pub fn walk_tree_ahead(
    device: &Device,
    geometry: &Geometry,
    root: u64,
    levels: u32,
    visitor: &mut dyn TreeVisitor,
) -> Result<DenseBitmap> {
    let buffers = (READ_AHEAD_BYTES / geometry.chunk_bytes).clamp(2, READ_AHEAD_LEAVES) as usize;
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
                walk_into(
                    device,
                    geometry,
                    root,
                    levels,
                    &mut Forward { sender, free },
                )
            });
        let Ok(reader) = reader else {
            return walk_tree(device, geometry, root, levels, visitor);
        };
        let visited = blocks.iter().try_for_each(|event| match event {
            Event::Node(at, node) => visitor.node(&at, &node),
            Event::Problem(at, problem) => visitor.problem(&at, &problem),
            Event::Leaf(at, buf) => {
                let seen = match Leaf::decode(&buf) {
                    Ok(leaf) => visitor.leaf(&at, &leaf),
                    Err(e) => visitor.problem(&at, &WalkProblem::BadLeaf(e)),
                };
                // The reader may have stopped already; the buffer is not needed then.
                let _ = give_back.send(buf);
                seen
            }
        });
        drop(blocks);
        drop(give_back);
        let read = reader
            .join()
            .unwrap_or_else(|_| Err(Error::Invalid("the tree walk stopped unexpectedly".into())));
        // A visitor error stops the reader (its sends fail): report the visitor's.
        visited.and(read)
    })
}

/// Where the walk puts what it reads. A leaf is handed over unread: the sink
/// reads it (inline) or has it read for the visiting thread.
trait BlockSink {
    fn node(&mut self, at: &BlockAt, node: &Node) -> Result<()>;
    fn leaf(&mut self, at: &BlockAt, device: &Device) -> Result<()>;
    fn problem(&mut self, at: &BlockAt, problem: WalkProblem) -> Result<()>;
}

/// A visitor on the walking thread, with the buffer its leaves are read into.
struct Inline<'a> {
    visitor: &'a mut dyn TreeVisitor,
    buf: Vec<u8>,
}

impl BlockSink for Inline<'_> {
    fn node(&mut self, at: &BlockAt, node: &Node) -> Result<()> {
        self.visitor.node(at, node)
    }

    fn leaf(&mut self, at: &BlockAt, device: &Device) -> Result<()> {
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
    fn node(&mut self, at: &BlockAt, node: &Node) -> Result<()> {
        self.send(Event::Node(*at, node.clone()))
    }

    fn leaf(&mut self, at: &BlockAt, device: &Device) -> Result<()> {
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

fn walk_into(
    device: &Device,
    geometry: &Geometry,
    root: u64,
    levels: u32,
    sink: &mut dyn BlockSink,
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
    visit(device, geometry, at, &mut visited, &mut buf, sink)?;
    Ok(visited)
}

/// Visits the block at `at` and everything below it; `buf` holds nodes.
fn visit(
    device: &Device,
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
    sink.node(&at, &node)?;
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
