//! The B-tree: every node and leaf reached from the root in key order, and every
//! record of every leaf, checked in one walk that reads one chunk at a time.

use super::place::{block, block_location, entry_location, outside, referrer};
use crate::bitset::DenseBitmap;
use crate::device::Device;
use crate::error::Result;
use crate::finding::{Finding, FindingCode, FindingSink, Location};
use crate::shared::bitmap::ChunkBitmap;
use crate::shared::geometry::Geometry;
use crate::shared::header::SharedHeader;
use crate::shared::leaf::{Exception, Leaf, LeafError, LEAF_MAGIC, LEAF_VERSION};
use crate::shared::mask;
use crate::shared::node::{Node, NodeError};
use crate::shared::walk::{walk_tree, BlockAt, TreeVisitor, WalkProblem};

/// A leaf's first four bytes (magic, version 0) read as a node count.
const LEAF_HEAD_AS_COUNT: u32 = LEAF_MAGIC as u32 | (LEAF_VERSION as u32) << 16;

/// What the tree check reads from.
pub(super) struct Context<'a> {
    /// The COW device.
    pub device: &'a Device,
    /// Its layout.
    pub geometry: Geometry,
    /// The allocation bitmap, read once.
    pub bitmap: &'a ChunkBitmap,
    /// The header's snapmask.
    pub snapmask: u64,
    /// Chunks of the origin, when known.
    pub origin_chunks: Option<u64>,
}

/// What the walk found, for the bitmap check and the summary.
pub(super) struct TreeOutcome {
    /// Every chunk the tree references: its blocks and the records' COW chunks.
    pub referenced: DenseBitmap,
    /// False when part of the tree could not be read.
    pub complete: bool,
    /// Nodes read.
    pub nodes: u64,
    /// Leaves read.
    pub leaves: u64,
    /// Records read.
    pub records: u64,
    /// Map entries read.
    pub origin_chunks: u64,
    /// Distinct COW chunks in the data range referenced by records.
    pub data_chunks: u64,
}

/// Walks the tree of `header` and checks every block and record.
pub(super) fn check_tree(
    cx: &Context,
    header: &SharedHeader,
    sink: &mut FindingSink,
) -> Result<TreeOutcome> {
    let chunks = cx.geometry.nr_chunks;
    let mut checker = TreeChecker {
        cx,
        sink,
        levels: header.tree_level,
        tree: DenseBitmap::new(chunks),
        skip_below: None,
        scratch: Vec::new(),
        outcome: TreeOutcome {
            referenced: DenseBitmap::new(chunks),
            complete: true,
            nodes: 0,
            leaves: 0,
            records: 0,
            origin_chunks: 0,
            data_chunks: 0,
        },
    };
    walk_tree(
        cx.device,
        &cx.geometry,
        header.root_tree_chunk,
        header.tree_level,
        &mut checker,
    )?;
    Ok(checker.outcome)
}

struct TreeChecker<'c, 's> {
    cx: &'c Context<'c>,
    sink: &'s mut FindingSink,
    levels: u32,
    /// Tree blocks seen so far (the walk's own set is not visible until it ends).
    tree: DenseBitmap,
    /// Set while the walk is below a block that turned out to be a leaf posing
    /// as a node: everything under it is made of misread bytes.
    skip_below: Option<u32>,
    scratch: Vec<u8>,
    outcome: TreeOutcome,
}

impl TreeVisitor for TreeChecker<'_, '_> {
    fn node(&mut self, at: &BlockAt, node: &Node) -> Result<()> {
        if self.skipping(at) {
            return Ok(());
        }
        self.claim(at);
        if node.entries.len() == LEAF_HEAD_AS_COUNT as usize && self.holds_leaf(at.chunk)? {
            self.leaf_for_node(at);
            self.skip_below = Some(at.level);
            return Ok(());
        }
        self.outcome.nodes += 1;
        self.check_keys(at, node);
        Ok(())
    }

    fn leaf(&mut self, at: &BlockAt, leaf: &Leaf) -> Result<()> {
        if self.skipping(at) {
            return Ok(());
        }
        self.claim(at);
        self.outcome.leaves += 1;
        self.outcome.records += leaf.records.len() as u64;
        self.outcome.origin_chunks += leaf.map.len() as u64;
        self.check_leaf(at, leaf);
        Ok(())
    }

    fn problem(&mut self, at: &BlockAt, problem: &WalkProblem) -> Result<()> {
        if self.skipping(at) {
            return Ok(());
        }
        match problem {
            WalkProblem::OutOfRange { .. } => {
                self.outcome.complete = false;
                self.sink.push(Finding::error(
                    FindingCode::TreeChunkOutOfRange,
                    block_location(at),
                    format!(
                        "{} points at chunk {}, which is {}, for the {} of {} (level {}); that part of the tree cannot be read",
                        referrer(at),
                        at.chunk,
                        outside(&self.cx.geometry, at.chunk),
                        if at.level == 0 { "leaf" } else { "node" },
                        at.range_text(),
                        at.level
                    ),
                ));
            }
            WalkProblem::Revisited => self.sink.push(Finding::error(
                FindingCode::TreeChunkReused,
                block_location(at),
                format!(
                    "{} points at chunk {} for {} (level {}), but that tree block was already reached from elsewhere (two parents, or a cycle); one of the two key ranges reads the wrong block",
                    referrer(at),
                    at.chunk,
                    at.range_text(),
                    at.level
                ),
            )),
            WalkProblem::BadNode(error) => {
                self.claim(at);
                self.outcome.complete = false;
                let leaf_like = matches!(error, NodeError::CountTooLarge { count, .. } if *count == LEAF_HEAD_AS_COUNT);
                if leaf_like && self.holds_leaf(at.chunk)? {
                    self.leaf_for_node(at);
                } else {
                    self.sink.push(Finding::error(
                        FindingCode::NodeBadCount,
                        block_location(at),
                        format!("{}: {error}; {} cannot be read", block(at), at.range_text()),
                    ));
                }
            }
            WalkProblem::BadLeaf(error) => {
                self.claim(at);
                self.outcome.complete = false;
                let code = match error {
                    LeafError::BadMagic { .. } if self.holds_node(at.chunk)? => {
                        self.node_for_leaf(at);
                        return Ok(());
                    }
                    LeafError::BadMagic { .. } => FindingCode::LeafBadMagic,
                    LeafError::BadVersion { .. } => FindingCode::LeafBadVersion,
                    LeafError::CountTooLarge { .. } => FindingCode::LeafBadCount,
                    LeafError::BadOffset { .. } | LeafError::OffsetsOutOfOrder { .. } => {
                        FindingCode::LeafBadOffsets
                    }
                    LeafError::BadSentinel { .. } => FindingCode::LeafBadSentinel,
                };
                self.sink.push(Finding::error(
                    code,
                    block_location(at),
                    format!("{}: {error}; its records cannot be read", block(at)),
                ));
            }
        }
        Ok(())
    }
}

impl TreeChecker<'_, '_> {
    /// Whether `at` lies under a block whose subtree is being ignored.
    fn skipping(&mut self, at: &BlockAt) -> bool {
        match self.skip_below {
            Some(level) if at.level < level => true,
            Some(_) => {
                self.skip_below = None;
                false
            }
            None => false,
        }
    }

    /// Records `at` as a tree block: it must not also be a record's COW chunk,
    /// and it must be marked in use.
    fn claim(&mut self, at: &BlockAt) {
        let chunk = at.chunk;
        self.tree.test_and_set(chunk);
        if self.outcome.referenced.test_and_set(chunk) {
            self.sink.push(Finding::error(
                FindingCode::CowChunkIsTree,
                block_location(at),
                format!(
                    "{}: the chunk is also the COW chunk of an earlier record; the snapshot data and the tree block overwrite each other",
                    block(at)
                ),
            ));
        }
        if !self.cx.bitmap.is_used(chunk) {
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

    fn read_scratch(&mut self, chunk: u64) -> Result<&[u8]> {
        self.scratch
            .resize(self.cx.geometry.chunk_bytes as usize, 0);
        self.cx.device.read_chunk(chunk, &mut self.scratch)?;
        Ok(&self.scratch)
    }

    /// Whether the chunk decodes as a leaf.
    fn holds_leaf(&mut self, chunk: u64) -> Result<bool> {
        Ok(Leaf::decode(self.read_scratch(chunk)?).is_ok())
    }

    /// Whether the chunk decodes as a node whose children all lie in the data range.
    fn holds_node(&mut self, chunk: u64) -> Result<bool> {
        let geometry = self.cx.geometry;
        Ok(Node::decode(self.read_scratch(chunk)?)
            .is_ok_and(|node| node.entries.iter().all(|e| geometry.in_data_range(e.chunk))))
    }

    fn leaf_for_node(&mut self, at: &BlockAt) {
        self.outcome.complete = false;
        self.sink.push(Finding::error(
            FindingCode::TreeDepthMismatch,
            block_location(at),
            format!(
                "{}: {} expects a node at level {} (tree_level {}), but the chunk holds a leaf; the tree is shallower here than the header says and lookups in {} go wrong",
                block(at),
                referrer(at),
                at.level,
                self.levels,
                at.range_text()
            ),
        ));
    }

    fn node_for_leaf(&mut self, at: &BlockAt) {
        self.sink.push(Finding::error(
            FindingCode::TreeDepthMismatch,
            block_location(at),
            format!(
                "{}: {} expects a leaf (tree_level {}), but the chunk holds a node; the tree is deeper here than the header says and lookups in {} go wrong",
                block(at),
                referrer(at),
                self.levels,
                at.range_text()
            ),
        ));
    }

    /// Keys above entry 0 strictly increase inside the node's range (entry 0's
    /// key is never read).
    fn check_keys(&mut self, at: &BlockAt, node: &Node) {
        let mut previous: Option<u64> = None;
        for (i, entry) in node.entries.iter().enumerate().skip(1) {
            let key = entry.key;
            if key <= at.lo || key >= at.hi {
                self.sink.push(Finding::error(
                    FindingCode::NodeKeyOutOfRange,
                    Location {
                        old_chunk: Some(key),
                        ..entry_location(at, i)
                    },
                    format!(
                        "{}: entry {i} has key {key}, not strictly inside the node's range; lookups near it go to the wrong child",
                        block(at)
                    ),
                ));
            } else if let Some(previous) = previous.filter(|&p| key <= p) {
                self.sink.push(Finding::error(
                    FindingCode::NodeKeysOutOfOrder,
                    Location {
                        old_chunk: Some(key),
                        ..entry_location(at, i)
                    },
                    format!(
                        "{}: entry {i} has key {key}, not above entry {}'s key {previous}; lookups between them go to the wrong child",
                        block(at),
                        i - 1
                    ),
                ));
            }
            previous = Some(key);
        }
    }

    fn check_leaf(&mut self, at: &BlockAt, leaf: &Leaf) {
        if leaf.stored_sentinel_rchunk != 0 {
            self.sink.push(Finding::warning(
                FindingCode::LeafSentinelRchunk,
                entry_location(at, leaf.map.len()),
                format!(
                    "{}: the sentinel (map entry {}) has rchunk {}, not 0",
                    block(at),
                    leaf.map.len(),
                    leaf.stored_sentinel_rchunk
                ),
            ));
        }
        let mut using = 0u64;
        let mut previous: Option<u32> = None;
        for (i, entry) in leaf.map.iter().enumerate() {
            let origin = leaf.base_chunk.checked_add(u64::from(entry.rchunk));
            self.check_entry(at, leaf, i, origin, previous);
            previous = Some(entry.rchunk);
            let mut seen = 0u64;
            for r in leaf.record_range(i) {
                let record = leaf.records[r];
                using |= record.share;
                self.check_record(at, i, r, origin, record, &mut seen);
            }
        }
        let stored = leaf.stored_using_mask;
        if stored != 0 && stored != using {
            self.sink.push(Finding::error(
                FindingCode::UsingMaskMismatch,
                Location {
                    mask: Some(stored),
                    ..block_location(at)
                },
                format!(
                    "{}: using_mask is {stored:#x}, but the OR of its share masks is {using:#x} (0 would also be accepted)",
                    block(at)
                ),
            ));
        }
    }

    /// One map entry: order, key range, origin size, at least one record.
    fn check_entry(
        &mut self,
        at: &BlockAt,
        leaf: &Leaf,
        i: usize,
        origin: Option<u64>,
        previous: Option<u32>,
    ) {
        let rchunk = leaf.map[i].rchunk;
        let place = || {
            let origin = origin.map_or_else(|| "overflows".to_string(), |o| o.to_string());
            format!(
                "{}: entry {i} (rchunk {rchunk}, origin chunk {origin})",
                block(at)
            )
        };
        let location = || Location {
            old_chunk: origin,
            ..entry_location(at, i)
        };
        if let Some(previous) = previous.filter(|&p| rchunk <= p) {
            self.sink.push(Finding::error(
                FindingCode::LeafMapOutOfOrder,
                location(),
                format!(
                    "{}: not above the previous entry's rchunk {previous}; the map must be sorted by strictly increasing rchunk",
                    place()
                ),
            ));
        }
        match origin {
            Some(o) if o >= at.lo && o < at.hi => {
                if let Some(limit) = self.cx.origin_chunks.filter(|&limit| o >= limit) {
                    self.sink.push(Finding::error(
                        FindingCode::OldChunkPastOrigin,
                        location(),
                        format!("{}: past the end of the origin ({limit} chunks)", place()),
                    ));
                }
            }
            _ => self.sink.push(Finding::error(
                FindingCode::LeafEntryOutOfRange,
                location(),
                format!(
                    "{}: outside the leaf's key range (base_chunk {}); lookups never find its records",
                    place(),
                    leaf.base_chunk
                ),
            )),
        }
        if leaf.record_range(i).is_empty() {
            self.sink.push(Finding::error(
                FindingCode::LeafEmptyEntry,
                location(),
                format!(
                    "{}: no record (its offset equals the next entry's); every map entry holds at least one",
                    place()
                ),
            ));
        }
    }

    /// One record: its share mask against snapmask and its siblings, its COW
    /// chunk against the data range, every other reference and the bitmap.
    #[inline]
    fn check_record(
        &mut self,
        at: &BlockAt,
        entry: usize,
        index: usize,
        origin: Option<u64>,
        record: Exception,
        seen: &mut u64,
    ) {
        let Exception { share, chunk } = record;
        let snapmask = self.cx.snapmask;
        let place = || {
            let origin = origin.map_or_else(|| "overflows".to_string(), |o| o.to_string());
            format!(
                "{}: entry {entry} (origin chunk {origin}) record {index}",
                block(at)
            )
        };
        let location = || Location {
            entry: Some(entry as u64),
            record: Some(index as u64),
            old_chunk: origin,
            new_chunk: Some(chunk),
            mask: Some(share),
            ..entry_location(at, entry)
        };
        if share == 0 {
            self.sink.push(Finding::error(
                FindingCode::ShareMaskEmpty,
                location(),
                format!(
                    "{}: share mask 0x0 is empty; no snapshot reads COW chunk {chunk}",
                    place()
                ),
            ));
        } else if share & !snapmask != 0 {
            self.sink.push(Finding::error(
                FindingCode::ShareMaskOutsideSnapmask,
                location(),
                format!(
                    "{}: share mask {share:#x} names snapshot(s) {} that do not exist (snapmask {snapmask:#x})",
                    place(),
                    mask::describe(share & !snapmask)
                ),
            ));
        }
        if share & *seen != 0 {
            self.sink.push(Finding::error(
                FindingCode::ShareMasksOverlap,
                location(),
                format!(
                    "{}: share mask {share:#x} overlaps an earlier record of the same origin chunk in snapshot(s) {}; those snapshots see two versions",
                    place(),
                    mask::describe(share & *seen)
                ),
            ));
        }
        *seen |= share;
        if !self.cx.geometry.in_data_range(chunk) {
            self.sink.push(Finding::error(
                FindingCode::CowChunkOutOfRange,
                location(),
                format!(
                    "{}: COW chunk {chunk} is {}, not a data chunk",
                    place(),
                    outside(&self.cx.geometry, chunk)
                ),
            ));
        } else if self.outcome.referenced.test_and_set(chunk) {
            let (code, what) = if self.tree.get(chunk) {
                (FindingCode::CowChunkIsTree, "a node or leaf of the tree; the snapshot data and the tree block overwrite each other")
            } else {
                (
                    FindingCode::CowChunkDuplicate,
                    "already used by another record; two copies share one chunk",
                )
            };
            self.sink.push(Finding::error(
                code,
                location(),
                format!("{}: COW chunk {chunk} is {what}", place()),
            ));
        } else {
            self.outcome.data_chunks += 1;
            if !self.cx.bitmap.is_used(chunk) {
                self.sink.push(Finding::error(
                    FindingCode::CowChunkNotMarked,
                    location(),
                    format!(
                        "{}: COW chunk {chunk} is not marked in use in the bitmap; the allocator would hand it out again and overwrite the copy",
                        place()
                    ),
                ));
            }
        }
    }
}
