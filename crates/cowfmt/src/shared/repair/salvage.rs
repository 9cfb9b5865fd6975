//! The result of [`analyze`](super::analyze): the leaves and rules that decide
//! every kept record, and the room the output needs.

use std::collections::HashSet;

use crate::bitset::DenseBitmap;
use crate::shared::geometry::{bitmap_chunks_for, Geometry};
use crate::shared::leaf::{LEAF_HEADER_BYTES, MAP_ENTRY_BYTES, RECORD_BYTES};
use crate::shared::node::node_capacity;

use super::reachable::FoundLeaf;
use super::report::RepairReport;

/// What was found, ready to be written by [`Salvage::write`].
#[derive(Debug)]
pub struct Salvage {
    pub(super) report: RepairReport,
    pub(super) geometry: Geometry,
    pub(super) chunk_sectors: u32,
    pub(super) snapmask: u64,
    pub(super) origin_chunks: Option<u64>,
    /// The salvaged leaves, in origin order.
    pub(super) leaves: Vec<FoundLeaf>,
    pub(super) chunk_losers: HashSet<(u64, u32)>,
    pub(super) kept_chunks: DenseBitmap,
    pub(super) kept_bounds: Option<(u64, u64)>,
    pub(super) largest_entry: usize,
    pub(super) found_no_leaf: bool,
}

impl Salvage {
    /// What was found (the output fields are filled by [`Salvage::write`]).
    pub fn report(&self) -> &RepairReport {
        &self.report
    }

    /// Adds a note for the report (what the caller knows about the input).
    pub fn note(&mut self, text: String) {
        self.report.notes.push(text);
    }

    /// Records what happened to the input's journal before the salvage
    /// ([`read_through_journal`](super::read_through_journal)), with its notes.
    pub fn set_journal(&mut self, journal: super::replay::JournalRepair) {
        self.report.notes.extend(journal.notes());
        self.report.journal = Some(journal);
    }

    /// The chunk size in sectors.
    pub fn chunk_sectors(&self) -> u32 {
        self.chunk_sectors
    }

    /// Journal chunks of the output.
    pub fn journal_chunks(&self) -> u64 {
        self.geometry.nr_journal_chunks
    }

    /// The output's snapmask.
    pub fn snapmask(&self) -> u64 {
        self.snapmask
    }

    /// Data chunks the output keeps (where they are).
    pub fn kept_data_chunks(&self) -> u64 {
        self.report.chunks.data_kept
    }

    /// An upper bound on the nodes and leaves the output's tree needs.
    pub fn tree_chunks_needed(&self) -> u64 {
        tree_chunks_bound(
            self.geometry.chunk_bytes as usize,
            self.report.kept_origin_chunks,
            self.report.kept,
            self.largest_entry,
            self.leaves.last().and_then(|l| l.span).map_or(0, |s| s.1),
        )
    }

    /// The smallest output, in bytes, that holds the salvaged store with every
    /// data chunk kept where it is.
    pub fn needed_bytes(&self) -> u64 {
        let cb = self.geometry.chunk_bytes;
        let reserved = 1 + self.geometry.nr_journal_chunks;
        let tree = self.tree_chunks_needed().max(2);
        let kept = self.kept_data_chunks();
        let mut nr = self.kept_bounds.map_or(0, |(_, hi)| hi + 1);
        loop {
            let wanted = reserved + bitmap_chunks_for(nr, cb) + kept + tree;
            if wanted <= nr {
                return nr.saturating_mul(cb);
            }
            nr = wanted;
        }
    }

    /// Why an output of `bytes` cannot hold the salvaged store with its data
    /// chunks where they are, if it cannot.
    pub fn output_problem(&self, bytes: u64) -> Option<String> {
        let g = Geometry::new(bytes, self.chunk_sectors, self.geometry.nr_journal_chunks);
        if let Some((lo, hi)) = self.kept_bounds {
            if lo < g.data_start() {
                return Some(format!(
                    "an output of {bytes} bytes has {} bitmap chunks, so its data range starts at chunk {}, above kept data chunk {lo}; the data chunks keep their numbers, so the output must be no larger than about {} bytes",
                    g.nr_bitmap_chunks,
                    g.data_start(),
                    self.largest_fitting_bytes(lo)
                ));
            }
            if hi >= g.nr_chunks {
                return Some(format!(
                    "an output of {bytes} bytes ends at chunk {}, before kept data chunk {hi}; at least {} bytes are needed",
                    g.nr_chunks,
                    self.needed_bytes()
                ));
            }
        }
        let free = g
            .nr_chunks
            .saturating_sub(g.data_start())
            .saturating_sub(self.kept_data_chunks());
        let tree = self.tree_chunks_needed().max(2);
        (free < tree).then(|| {
            format!(
                "an output of {bytes} bytes leaves {free} free chunks for the new tree, which may need {tree}; at least {} bytes are needed",
                self.needed_bytes()
            )
        })
    }

    /// The largest device whose data range still starts at or below `lowest`.
    fn largest_fitting_bytes(&self, lowest: u64) -> u64 {
        let cb = self.geometry.chunk_bytes;
        let bitmap_room = lowest.saturating_sub(1 + self.geometry.nr_journal_chunks);
        bitmap_room.saturating_mul(cb * 8).saturating_mul(cb)
    }
}

/// An upper bound on the leaves and nodes a bulk load of `entries` origin
/// chunks with `records` records needs: every leaf but the last is filled to
/// within one entry of capacity (or cut where an origin chunk is too far from
/// the leaf's base), and nodes hold `node_capacity` children.
pub(super) fn tree_chunks_bound(
    chunk_bytes: usize,
    entries: u64,
    records: u64,
    largest_entry: usize,
    max_origin: u64,
) -> u64 {
    let usable = (chunk_bytes - LEAF_HEADER_BYTES - MAP_ENTRY_BYTES) as u64;
    let largest = (MAP_ENTRY_BYTES + RECORD_BYTES * largest_entry) as u64;
    let payload = entries * MAP_ENTRY_BYTES as u64 + records * RECORD_BYTES as u64;
    let base_cuts = max_origin >> 32;
    let mut leaves = if usable > largest {
        payload.div_ceil(usable - largest) + 1
    } else {
        entries + 1
    };
    leaves = leaves.min(entries + 1) + base_cuts;
    let cap = node_capacity(chunk_bytes) as u64;
    let mut total = leaves;
    let mut level = leaves;
    loop {
        level = level.div_ceil(cap);
        total += level;
        if level <= 1 {
            return total;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_bound_covers_a_bulk_load() {
        // 4 KiB leaves hold 169 one-record entries: 1000 entries need 6 leaves
        // and one node; the bound may be loose but never below that.
        let b = tree_chunks_bound(4096, 1000, 1000, 1, 5000);
        assert!(b >= 7, "{b}");
        assert!(b <= 20, "{b}");
        assert_eq!(tree_chunks_bound(4096, 0, 0, 0, 0), 2);
    }
}
