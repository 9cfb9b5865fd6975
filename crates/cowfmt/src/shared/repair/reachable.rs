//! The walk from the root: every node whose keys ascend inside its parent's
//! range is followed, every leaf that decodes and fits its parent's range is
//! kept; any other block becomes a lost range (its parent's range for it).
//! Chunk numbers are never trusted: blocks outside the data range or reached
//! twice are lost ranges too.

use crate::bitset::DenseBitmap;
use crate::device::Device;
use crate::error::Result;
use crate::shared::geometry::Geometry;
use crate::shared::leaf::Leaf;
use crate::shared::node::Node;

use super::shape::{leaf_span, starts_like_leaf};
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

struct Frame {
    chunk: u64,
    level: u32,
    lo: u64,
    hi: u64,
}

/// Walks the tree rooted at `root` with `levels` node levels, in key order.
pub(super) fn walk(input: &Device, geometry: &Geometry, root: u64, levels: u32) -> Result<Reached> {
    let mut reached = Reached::empty(geometry);
    let mut buf = vec![0u8; geometry.chunk_bytes as usize];
    let mut stack = vec![Frame {
        chunk: root,
        level: levels,
        lo: 0,
        hi: u64::MAX,
    }];
    while let Some(at) = stack.pop() {
        let lose = |problem: String| LostBlock {
            chunk: Some(at.chunk),
            level: at.level,
            lo: at.lo,
            hi: at.hi,
            problem,
        };
        if let Some(role) = geometry.reserved_role(at.chunk) {
            reached.lost.push(lose(format!(
                "chunk {} is {role}, not the data range",
                at.chunk
            )));
            continue;
        }
        if reached.visited.test_and_set(at.chunk) {
            reached.lost.push(lose(format!(
                "chunk {} was already reached from another node",
                at.chunk
            )));
            continue;
        }
        input.read_chunk(at.chunk, &mut buf)?;
        if starts_like_leaf(&buf) || at.level == 0 {
            match take_leaf(&buf, &at, &mut reached) {
                Ok(()) => {}
                Err(problem) => reached.lost.push(lose(problem)),
            }
            continue;
        }
        let node = match Node::decode(&buf) {
            Ok(node) => node,
            Err(e) => {
                reached.lost.push(lose(format!("node: {e}")));
                continue;
            }
        };
        if let Err(problem) = keys_fit(&node, at.lo, at.hi) {
            reached.lost.push(lose(format!("node: {problem}")));
            continue;
        }
        reached.nodes += 1;
        reached.tree_blocks.test_and_set(at.chunk);
        for i in (0..node.entries.len()).rev() {
            let (lo, hi) = node.child_range(i, at.lo, at.hi);
            stack.push(Frame {
                chunk: node.entries[i].chunk,
                level: at.level - 1,
                lo,
                hi,
            });
        }
    }
    Ok(reached)
}

/// Keeps the leaf in `buf` if it decodes and fits `at`'s range.
fn take_leaf(buf: &[u8], at: &Frame, reached: &mut Reached) -> Result<(), String> {
    let leaf = Leaf::decode(buf).map_err(|e| format!("leaf: {e}"))?;
    let span = leaf_span(&leaf).map_err(|e| format!("leaf: {e}"))?;
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
    reached.evidence.add_leaf(&leaf);
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
