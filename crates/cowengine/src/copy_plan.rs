//! The copy-outs of a run of origin chunks, planned leaf by leaf
//! ([`SharedStore::plan_copy_outs`]): one tree descent serves every chunk a
//! leaf covers, the chunks the snapshots already have are skipped by walking
//! the leaf's map, the data chunks of a leaf's copy-outs are allocated
//! together (so a run of origin chunks is copied in one read and one write),
//! and each record goes straight into the leaf while it has room.

use cowfmt::blockdev::BlockDev;
use cowfmt::error::Result;
use cowfmt::shared::leaf::Exception;

use crate::store::{CopyData, SharedStore};

/// The most copy-outs allocated together.
const MAX_GROUP: usize = 1024;

/// Buffers of [`SharedStore::plan_copy_outs`], kept between calls.
#[derive(Debug, Default)]
pub(crate) struct PlanScratch {
    /// `(origin chunk, snapshots that need its copy)` of one leaf's range.
    needs: Vec<(u64, u64)>,
    /// The data chunks allocated for them, in the same order.
    chunks: Vec<u64>,
}

impl<D: BlockDev> SharedStore<D> {
    /// Records the copy-outs of origin chunks `at..end` for the snapshots
    /// that still see the origin there, without moving data, and appends
    /// `(origin chunk, COW chunk)` to `plans` in origin order: the caller
    /// copies each before any commit. Stops where the changes so far approach
    /// the journal's transaction bound ([`SharedStore::wants_commit`]) and
    /// returns the first chunk not planned (`end` when every one was).
    ///
    /// The same records as [`SharedStore::plan_copy_out`] on each chunk in
    /// turn; on an error the records made so far stay, each in `plans`.
    pub fn plan_copy_outs(
        &mut self,
        at: u64,
        end: u64,
        plans: &mut Vec<(u64, u64)>,
    ) -> Result<u64> {
        if at >= end {
            return Ok(at);
        }
        self.check_origin_chunk(end - 1)?;
        let mut scratch = std::mem::take(&mut self.plan_scratch);
        let result = self.plan_with(&mut scratch, at, end, plans);
        self.plan_scratch = scratch;
        result
    }

    fn plan_with(
        &mut self,
        s: &mut PlanScratch,
        at: u64,
        end: u64,
        plans: &mut Vec<(u64, u64)>,
    ) -> Result<u64> {
        let snapmask = self.header.snapmask;
        let mut next = at;
        while next < end {
            if self.wants_commit() {
                return Ok(next);
            }
            if snapmask == 0 {
                return Ok(end);
            }
            let (leaf, upper) = self.tree.leaf_span(next)?;
            let stop = self.needs_in_leaf(leaf, next, end.min(upper), snapmask, &mut s.needs)?;
            if let Some(stopped) = self.record_needs(s, leaf, upper, plans)? {
                return Ok(stopped);
            }
            next = stop;
        }
        Ok(end)
    }

    /// Lists in `needs` the origin chunks from `from` on (before `to`, at
    /// most [`MAX_GROUP`] of them) that some snapshot of `snapmask` still
    /// sees on the origin, reading the records from the leaf at `leaf_chunk`,
    /// which covers them all; returns where the listing stopped.
    fn needs_in_leaf(
        &mut self,
        leaf_chunk: u64,
        from: u64,
        to: u64,
        snapmask: u64,
        needs: &mut Vec<(u64, u64)>,
    ) -> Result<u64> {
        needs.clear();
        let leaf = self.tree.cache.leaf(leaf_chunk)?;
        let count = leaf.count();
        let mut i = leaf.find(from).unwrap_or_else(|i| i);
        for origin in from..to {
            if needs.len() == MAX_GROUP {
                return Ok(origin);
            }
            while i < count && leaf.origin_of(i) < origin {
                i += 1;
            }
            let covered = if i < count && leaf.origin_of(i) == origin {
                leaf.records_of(i).iter().fold(0, |m, r| m | r.share)
            } else {
                0
            };
            let need = snapmask & !covered;
            if need != 0 {
                needs.push((origin, need));
            }
        }
        Ok(to)
    }

    /// Records the copy-outs listed in `s.needs`, which the leaf at `leaf`
    /// (keys below `upper`) covers; returns the chunk it stopped at, if it
    /// stopped at the transaction bound.
    fn record_needs(
        &mut self,
        s: &mut PlanScratch,
        leaf: u64,
        upper: u64,
        plans: &mut Vec<(u64, u64)>,
    ) -> Result<Option<u64>> {
        let n = s.needs.len();
        if n == 0 {
            return Ok(None);
        }
        // Splits may take a few chunks per leaf filled; a store this close
        // to full goes one chunk at a time, as `plan_copy_out` does, so that
        // it runs out at the same chunk.
        let room = n as u64 + (n as u64 / 8 + 2) * self.tree.insert_reserve();
        if self.tree.alloc.free_chunks() < room {
            for &(origin, _) in &s.needs {
                if self.wants_commit() {
                    return Ok(Some(origin));
                }
                if let Some(chunk) = self.copy_out_to(origin, CopyData::No)? {
                    plans.push((origin, chunk));
                }
            }
            return Ok(None);
        }
        s.chunks.clear();
        for _ in 0..n {
            match self.tree.alloc_chunk() {
                Ok(c) => s.chunks.push(c),
                Err(e) => {
                    self.give_back(&s.chunks);
                    return Err(e);
                }
            }
        }
        let mut used = 0;
        let result = self.insert_needs(s, leaf, upper, plans, &mut used);
        self.give_back(&s.chunks[used..]);
        result
    }

    /// Inserts the record of each of `s.needs` (naming `s.chunks`), counting
    /// in `used` the chunks recorded.
    fn insert_needs(
        &mut self,
        s: &PlanScratch,
        mut leaf: u64,
        mut upper: u64,
        plans: &mut Vec<(u64, u64)>,
        used: &mut usize,
    ) -> Result<Option<u64>> {
        for (k, (&(origin, share), &chunk)) in s.needs.iter().zip(&s.chunks).enumerate() {
            if self.wants_commit() {
                return Ok(Some(origin));
            }
            let record = Exception { share, chunk };
            if !(origin < upper && self.tree.insert_if_room(leaf, origin, record)?) {
                let run_goes_on = s.needs.get(k + 1).is_some_and(|&(o, _)| o == origin + 1);
                let target = if run_goes_on {
                    self.tree.prepare_insert_in_run(origin)?
                } else {
                    self.tree.prepare_insert(origin)?
                };
                crate::btree::add_record(self.tree.cache.leaf_mut(target)?, origin, record);
                (leaf, upper) = self.tree.leaf_span(origin)?;
            }
            plans.push((origin, chunk));
            *used += 1;
        }
        Ok(None)
    }

    /// Returns data chunks allocated but never recorded.
    fn give_back(&mut self, chunks: &[u64]) {
        for &c in chunks.iter().rev() {
            self.tree.alloc.unalloc(c);
        }
    }
}
