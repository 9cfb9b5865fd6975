//! Counting what the record rules keep and drop, per snapshot and per reason,
//! and which COW chunks the output keeps. A first count finds the data chunks
//! two or more records claim; when there are any, the count is made again with
//! them known, so that every claimant of a contested chunk is dropped (the
//! first reader of a chunk is no likelier to be right than the last).

use std::collections::HashSet;

use crate::bitset::DenseBitmap;
use crate::device::Device;
use crate::error::Result;
use crate::shared::leaf::Exception;
use crate::shared::mask;

use super::filter::{Dropped, RecordRules};
use super::reachable::{FoundLeaf, LeafSource};
use super::report::{DropReason, DroppedRecord, LISTED_MAX};
use super::reread::for_each_leaf;

/// Origin chunks remembered per snapshot to name the ranges it lost.
pub(super) const LOST_ORIGINS_REMEMBERED: usize = 1 << 18;

/// What the rules keep and drop.
#[derive(Debug)]
pub(super) struct Tally {
    /// COW chunks of kept records.
    pub kept_chunks: DenseBitmap,
    /// COW chunks of dropped records (inside the device).
    pub dropped_chunks: DenseBitmap,
    /// Records (leaf chunk, index in the leaf) that lost their COW chunk to an
    /// earlier record, for the writer to replay.
    pub chunk_losers: HashSet<(u64, u32)>,
    pub kept: u64,
    pub kept_origins: u64,
    pub trimmed: u64,
    pub kept_per_snapshot: [u64; 64],
    pub lost_per_snapshot: [u64; 64],
    /// Per snapshot, the origin chunks it lost (at most
    /// [`LOST_ORIGINS_REMEMBERED`] each; `lost_per_snapshot` counts them all).
    pub lost_origins: Vec<Vec<u64>>,
    pub by_reason: [u64; DropReason::ALL.len()],
    pub dropped_total: u64,
    /// Dropped records, at most [`LISTED_MAX`].
    pub listed: Vec<DroppedRecord>,
    /// Lowest and highest kept COW chunk.
    pub kept_bounds: Option<(u64, u64)>,
    /// The most records one origin chunk keeps.
    pub largest_entry: usize,
}

/// Applies `rules` to every record of `leaves` (sorted by origin chunk);
/// `tree_blocks` are the nodes and leaves of the salvaged tree.
pub(super) fn tally(
    input: &Device,
    rules: &RecordRules<'_>,
    leaves: &[FoundLeaf],
    tree_blocks: &DenseBitmap,
) -> Result<Tally> {
    let mut contested = HashSet::new();
    loop {
        let (t, found) = tally_once(input, rules, leaves, tree_blocks, &contested)?;
        if found.is_empty() {
            return Ok(t);
        }
        contested.extend(found);
    }
}

/// One count, with the `contested` chunks dropped from every record that
/// claims them. Returns the tally and the chunks found contested besides.
fn tally_once(
    input: &Device,
    rules: &RecordRules<'_>,
    leaves: &[FoundLeaf],
    tree_blocks: &DenseBitmap,
    contested: &HashSet<u64>,
) -> Result<(Tally, HashSet<u64>)> {
    let n = rules.geometry.nr_chunks;
    let mut t = Tally::new(n);
    let mut claimed = tree_blocks.clone();
    let chunk_bytes = rules.geometry.chunk_bytes as usize;
    let mut order: Vec<&FoundLeaf> = leaves.iter().collect();
    order.sort_by_key(|l| (l.source == LeafSource::Scan, l.rank));
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    let mut losers = HashSet::new();
    let mut found_contested = HashSet::new();
    for_each_leaf(input, chunk_bytes, &order, &mut |found, leaf| {
        for i in 0..leaf.count() {
            let origin = leaf.origin_of(i);
            let range = leaf.record_range(i);
            dropped.clear();
            let mut claim = |chunk: u64, index: u32| {
                let reason = if !contested.is_empty() && contested.contains(&chunk) {
                    DropReason::ChunkUsedTwice
                } else if !claimed.test_and_set(chunk) {
                    return None;
                } else if tree_blocks.get(chunk) {
                    DropReason::ChunkIsTreeBlock
                } else {
                    found_contested.insert(chunk);
                    DropReason::ChunkUsedTwice
                };
                losers.insert((found.chunk, index));
                Some(reason)
            };
            let records = &leaf.records[range.clone()];
            t.trimmed += rules.filter(
                &mut claim,
                origin,
                records,
                range.start as u32,
                &mut kept,
                &mut |d| dropped.push(d),
            );
            t.count_entry(rules, origin, found.chunk, records, &kept, &dropped);
        }
        Ok(())
    })?;
    t.chunk_losers = losers;
    for (a, b) in tree_blocks.set_runs(0, n) {
        for c in a..b {
            claimed.clear(c);
        }
    }
    t.kept_chunks = claimed;
    Ok((t, found_contested))
}

impl Tally {
    fn new(nr_chunks: u64) -> Self {
        Tally {
            kept_chunks: DenseBitmap::new(0),
            dropped_chunks: DenseBitmap::new(nr_chunks),
            chunk_losers: HashSet::new(),
            kept: 0,
            kept_origins: 0,
            trimmed: 0,
            kept_per_snapshot: [0; 64],
            lost_per_snapshot: [0; 64],
            lost_origins: vec![Vec::new(); 64],
            by_reason: [0; DropReason::ALL.len()],
            dropped_total: 0,
            listed: Vec::new(),
            kept_bounds: None,
            largest_entry: 0,
        }
    }

    /// Counts one origin chunk: `records` as read, `kept` and `dropped` as the
    /// rules decided. A snapshot loses the origin chunk when a record of it
    /// carried the snapshot's bit and no kept record does.
    fn count_entry(
        &mut self,
        rules: &RecordRules<'_>,
        origin: u64,
        leaf: u64,
        records: &[Exception],
        kept: &[Exception],
        dropped: &[Dropped],
    ) {
        let mut seen = 0u64;
        for r in kept {
            seen |= r.share;
            self.kept_bounds = Some(match self.kept_bounds {
                Some((lo, hi)) => (lo.min(r.chunk), hi.max(r.chunk)),
                None => (r.chunk, r.chunk),
            });
            for id in mask::ids(r.share) {
                self.kept_per_snapshot[id as usize] += 1;
            }
        }
        if !kept.is_empty() {
            self.kept += kept.len() as u64;
            self.kept_origins += 1;
            self.largest_entry = self.largest_entry.max(kept.len());
        }
        let read = records.iter().fold(0, |m, r| m | r.share);
        for id in mask::ids(read & rules.snapmask & !seen) {
            self.lost_per_snapshot[id as usize] += 1;
            let origins = &mut self.lost_origins[id as usize];
            if origins.len() < LOST_ORIGINS_REMEMBERED {
                origins.push(origin);
            }
        }
        for d in dropped {
            self.dropped_total += 1;
            let reason_index = DropReason::ALL
                .iter()
                .position(|&r| r == d.reason)
                .unwrap_or(0);
            self.by_reason[reason_index] += 1;
            if d.record.chunk < self.dropped_chunks.len() {
                self.dropped_chunks.test_and_set(d.record.chunk);
            }
            if self.listed.len() < LISTED_MAX {
                self.listed.push(DroppedRecord {
                    leaf,
                    origin,
                    share: d.record.share,
                    chunk: d.record.chunk,
                    reason: d.reason,
                    message: d.message(rules, origin, leaf),
                });
            }
        }
    }
}
