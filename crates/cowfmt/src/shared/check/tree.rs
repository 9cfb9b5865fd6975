//! The B-tree: every node and leaf reached from the root in key order, and every
//! record of every leaf, checked in one walk that reads one chunk at a time.

use super::misread::{Misread, LEAF_HEAD_AS_COUNT};
use super::place::{
    block, block_location, entry_location, record_location, record_place, referrer,
};
use crate::bitset::DenseBitmap;
use crate::device::Device;
use crate::error::Result;
use crate::finding::{Finding, FindingCode, FindingSink, Location};
use crate::progress::Progress;
use crate::shared::bitmap::ChunkBitmap;
use crate::shared::geometry::Geometry;
use crate::shared::header::SharedHeader;
use crate::shared::leaf::{Exception, Leaf, LeafError};
use crate::shared::mask;
use crate::shared::node::{Node, NodeError};
use crate::shared::rules::{
    node_key, EntryAt, EntryViolation, LeafRules, NodeViolation, RecordViolation,
};
use crate::shared::walk::{BlockAt, Tree, TreeVisitor, WalkProblem};

/// How many records ahead the words of the referenced set are requested, so
/// that the random memory accesses of a leaf's records overlap.
const PREFETCH_AHEAD: usize = 32;

/// Leaves between two reports to the progress callback.
const PROGRESS_EVERY_LEAVES: u64 = 256;

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
    /// The chunks of the tree's blocks.
    pub tree: DenseBitmap,
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
    progress: &mut Progress,
) -> Result<TreeOutcome> {
    let chunks = cx.geometry.nr_chunks;
    let mut checker = TreeChecker {
        cx,
        sink,
        progress,
        levels: header.tree_level,
        rules: LeafRules {
            geometry: cx.geometry,
            snapmask: cx.snapmask,
            origin_chunks: cx.origin_chunks,
        },
        misread: Misread::new(),
        outcome: TreeOutcome {
            referenced: DenseBitmap::new(chunks),
            tree: DenseBitmap::new(chunks),
            complete: true,
            nodes: 0,
            leaves: 0,
            records: 0,
            origin_chunks: 0,
            data_chunks: 0,
        },
    };
    Tree::of(cx.device, &cx.geometry, header).walk_ahead(&mut checker)?;
    Ok(checker.outcome)
}

struct TreeChecker<'c, 's, 'p> {
    cx: &'c Context<'c>,
    sink: &'s mut FindingSink,
    progress: &'p mut Progress<'p>,
    levels: u32,
    rules: LeafRules,
    misread: Misread,
    outcome: TreeOutcome,
}

impl TreeVisitor for TreeChecker<'_, '_, '_> {
    fn node(&mut self, at: &BlockAt, node: &Node) -> Result<()> {
        if self.misread.skipping(at) {
            return Ok(());
        }
        self.claim(at);
        if self
            .misread
            .node_is_leaf(self.cx.device, &self.cx.geometry, at, node)?
        {
            self.leaf_for_node(at);
            self.misread.skip_under(at);
            return Ok(());
        }
        self.outcome.nodes += 1;
        self.check_keys(at, node);
        self.prefetch_children(node);
        Ok(())
    }

    fn leaf(&mut self, at: &BlockAt, leaf: &Leaf) -> Result<()> {
        if self.misread.skipping(at) {
            return Ok(());
        }
        self.claim(at);
        self.outcome.leaves += 1;
        if self.outcome.leaves.is_multiple_of(PROGRESS_EVERY_LEAVES) {
            (self.progress)(self.outcome.nodes + self.outcome.leaves, 0);
        }
        self.outcome.records += leaf.records.len() as u64;
        self.outcome.origin_chunks += leaf.map.len() as u64;
        self.check_leaf(at, leaf);
        Ok(())
    }

    fn problem(&mut self, at: &BlockAt, problem: &WalkProblem) -> Result<()> {
        if self.misread.skipping(at) {
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
                        self.cx.geometry.where_outside(at.chunk),
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
                if leaf_like
                    && self
                        .misread
                        .holds_leaf(self.cx.device, &self.cx.geometry, at.chunk)?
                {
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
                    LeafError::BadMagic { .. }
                        if self
                            .misread
                            .holds_node(self.cx.device, &self.cx.geometry, at.chunk)? =>
                    {
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

impl TreeChecker<'_, '_, '_> {
    /// Records `at` as a tree block: it must not also be a record's COW chunk.
    /// Whether it is marked in use is left to the bitmap pass (see `unmarked`).
    fn claim(&mut self, at: &BlockAt) {
        let chunk = at.chunk;
        self.outcome.tree.test_and_set(chunk);
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
    }

    /// Starts loading the words the children of a node will be claimed in.
    fn prefetch_children(&self, node: &Node) {
        for entry in &node.entries {
            self.outcome.tree.prefetch(entry.chunk);
            self.outcome.referenced.prefetch(entry.chunk);
        }
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
            if let Some(violation) = node_key(key, previous, (at.lo, at.hi)) {
                let text = match violation {
                    NodeViolation::OutsideRange => format!(
                        "{}: entry {i} has key {key}, not strictly inside the node's range; lookups near it go to the wrong child",
                        block(at)
                    ),
                    NodeViolation::OutOfOrder { previous } => format!(
                        "{}: entry {i} has key {key}, not above entry {}'s key {previous}; lookups between them go to the wrong child",
                        block(at),
                        i - 1
                    ),
                };
                let location = Location {
                    old_chunk: Some(key),
                    ..entry_location(at, i)
                };
                self.sink
                    .push(Finding::error(violation.code(), location, text));
            }
            previous = Some(key);
        }
    }

    /// Every map entry and record of a leaf. The loop only evaluates the
    /// invariants; a broken one sends the entry or record to a cold reporting
    /// function, so that a clean record costs a few instructions and one random
    /// memory access (the referenced set).
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
        for record in leaf.records.iter().take(PREFETCH_AHEAD) {
            self.outcome.referenced.prefetch(record.chunk);
        }
        let mut using = 0u64;
        let mut previous: Option<u32> = None;
        for (i, entry) in leaf.map.iter().enumerate() {
            let origin = leaf.base_chunk.checked_add(u64::from(entry.rchunk));
            let records = leaf.record_range(i);
            let entry_at = EntryAt {
                rchunk: entry.rchunk,
                previous,
                origin,
                range: (at.lo, at.hi),
                records: records.len(),
            };
            if !self.rules.entry_ok(&entry_at) {
                self.report_entry(at, leaf, i, &entry_at);
            }
            previous = Some(entry.rchunk);
            let mut seen = 0u64;
            for r in records {
                if let Some(ahead) = leaf.records.get(r + PREFETCH_AHEAD) {
                    self.outcome.referenced.prefetch(ahead.chunk);
                }
                let record = leaf.records[r];
                let share = record.share;
                using |= share;
                let share_ok = self.rules.share_ok(share, seen);
                let chunk = if !self.cx.geometry.in_data_range(record.chunk) {
                    ChunkUse::OutOfRange
                } else if self.outcome.referenced.test_and_set(record.chunk) {
                    ChunkUse::Repeated
                } else {
                    self.outcome.data_chunks += 1;
                    ChunkUse::First
                };
                if !share_ok || chunk != ChunkUse::First {
                    let record_at = RecordAt {
                        entry: i,
                        index: r,
                        origin,
                        record,
                    };
                    self.report_record(at, &record_at, seen, chunk);
                }
                seen |= share;
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

    /// Reports what is wrong with map entry `i`: order, key range, origin size,
    /// no record.
    #[cold]
    #[inline(never)]
    fn report_entry(&mut self, at: &BlockAt, leaf: &Leaf, i: usize, entry: &EntryAt) {
        let (rchunk, origin) = (entry.rchunk, entry.origin);
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
        for violation in self.rules.entry_violations(entry) {
            let text = match violation {
                EntryViolation::OutOfOrder { previous } => format!(
                    "{}: not above the previous entry's rchunk {previous}; the map must be sorted by strictly increasing rchunk",
                    place()
                ),
                EntryViolation::PastOrigin { origin_chunks } => format!(
                    "{}: past the end of the origin ({origin_chunks} chunks)",
                    place()
                ),
                EntryViolation::OutsideKeyRange => format!(
                    "{}: outside the leaf's key range (base_chunk {}); lookups never find its records",
                    place(),
                    leaf.base_chunk
                ),
                EntryViolation::NoRecord => format!(
                    "{}: no record (its offset equals the next entry's); every map entry holds at least one",
                    place()
                ),
            };
            self.sink
                .push(Finding::error(violation.code(), location(), text));
        }
    }

    /// Reports what is wrong with a record: its share mask against snapmask and
    /// the masks `seen` before it in its entry, and how its COW chunk is used.
    #[cold]
    #[inline(never)]
    fn report_record(
        &mut self,
        at: &BlockAt,
        record_at: &RecordAt,
        seen: u64,
        chunk_use: ChunkUse,
    ) {
        let RecordAt {
            entry,
            index,
            origin,
            record,
        } = *record_at;
        let Exception { share, chunk } = record;
        let snapmask = self.cx.snapmask;
        let place = || record_place(at, entry, index, origin);
        let location = || record_location(at, entry, index, origin, record);
        let chunk_violation = match chunk_use {
            ChunkUse::First => None,
            ChunkUse::OutOfRange => Some(RecordViolation::CowChunkOutOfRange),
            ChunkUse::Repeated if self.outcome.tree.get(chunk) => {
                Some(RecordViolation::CowChunkIsTree)
            }
            ChunkUse::Repeated => Some(RecordViolation::CowChunkDuplicate),
        };
        let violations = self.rules.share_violations(share, seen);
        for violation in violations.into_iter().chain(chunk_violation) {
            let text = match violation {
                RecordViolation::ShareMaskEmpty => format!(
                    "{}: share mask 0x0 is empty; no snapshot reads COW chunk {chunk}",
                    place()
                ),
                RecordViolation::ShareMaskOutsideSnapmask { unknown } => format!(
                    "{}: share mask {share:#x} names snapshot(s) {} that do not exist (snapmask {snapmask:#x})",
                    place(),
                    mask::describe(unknown)
                ),
                RecordViolation::ShareMasksOverlap { overlap } => format!(
                    "{}: share mask {share:#x} overlaps an earlier record of the same origin chunk in snapshot(s) {}; those snapshots see two versions",
                    place(),
                    mask::describe(overlap)
                ),
                RecordViolation::CowChunkOutOfRange => format!(
                    "{}: COW chunk {chunk} is {}, not a data chunk",
                    place(),
                    self.cx.geometry.where_outside(chunk)
                ),
                RecordViolation::CowChunkIsTree => format!(
                    "{}: COW chunk {chunk} is a node or leaf of the tree; the snapshot data and the tree block overwrite each other",
                    place()
                ),
                RecordViolation::CowChunkDuplicate => format!(
                    "{}: COW chunk {chunk} is already used by another record; two copies share one chunk",
                    place()
                ),
            };
            self.sink
                .push(Finding::error(violation.code(), location(), text));
        }
    }
}

/// How a record's COW chunk is used, as found by the walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkUse {
    /// In the data range and referenced here first.
    First,
    /// The header, bitmap or journal, or past the end.
    OutOfRange,
    /// Already referenced by a tree block or an earlier record.
    Repeated,
}

/// A record and where it sits in its leaf.
#[derive(Debug, Clone, Copy)]
struct RecordAt {
    entry: usize,
    index: usize,
    origin: Option<u64>,
    record: Exception,
}
