//! Inferring the journal size when the header cannot say it. The journal lies
//! between the bitmap and the first chunk the allocator hands out: mkcow's
//! first tree block (the empty leaf of a fresh store) is allocated right after
//! it, so the lowest tree block found anywhere on the device (leaf or node,
//! reached or scanned, even empty) marks where the journal ended. The journal
//! also ends at or before the lowest chunk the salvaged tree uses (its leaves
//! and their records) and, the journal being always marked in use, at or
//! before the first chunk a credible bitmap marks free. When no tree block was
//! found at all, mkcow's default size is taken if it fits below those bounds;
//! else the journal ends at the lowest bound.
//! Any size up to the bounds keeps every salvaged record, so a wrong guess
//! costs journal space, not data.

use crate::shared::geometry::{default_journal_chunks, Geometry};

/// What the device shows about where the journal ended (chunks at or after
/// the journal's start).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct JournalClues {
    /// The lowest chunk the salvaged tree uses: its blocks and records.
    pub lowest_used: Option<u64>,
    /// The lowest chunk found holding a tree block, used or not.
    pub lowest_tree_block: Option<u64>,
    /// The first chunk a credible bitmap marks free.
    pub first_free: Option<u64>,
}

/// The journal size, and one sentence saying how it was decided.
pub(super) fn infer(device_bytes: u64, geometry: &Geometry, clues: &JournalClues) -> (u64, String) {
    let start = geometry.journal_start();
    let limit = geometry.nr_chunks.saturating_sub(start + 2);
    let bound = [clues.lowest_used, clues.first_free]
        .into_iter()
        .flatten()
        .map(|c| c.saturating_sub(start))
        .fold(limit, u64::min);
    let ends_at = |chunks: u64| start + chunks;
    let (chunks, how) = match clues.lowest_tree_block {
        Some(block) if block.saturating_sub(start) <= bound => (
            block.saturating_sub(start),
            format!("the journal was taken to end at chunk {block}, the lowest tree block found"),
        ),
        Some(_) => (
            bound,
            format!(
                "the journal was taken to end at chunk {}, below the lowest tree block found, where the first chunk in use (or marked free) lies",
                ends_at(bound)
            ),
        ),
        None => {
            let default = default_journal_chunks(device_bytes, geometry.chunk_bytes);
            if default <= bound {
                (default, "the journal was given mkcow's default size".to_string())
            } else {
                (
                    bound,
                    format!(
                        "the journal was taken to end at chunk {}, where the first chunk in use (or marked free) lies",
                        ends_at(bound)
                    ),
                )
            }
        }
    };
    (chunks.min(u64::from(u32::MAX)), how)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clues(used: Option<u64>, block: Option<u64>, free: Option<u64>) -> JournalClues {
        JournalClues {
            lowest_used: used,
            lowest_tree_block: block,
            first_free: free,
        }
    }

    #[test]
    fn the_lowest_tree_block_ends_the_journal() {
        let g = Geometry::new(8 << 20, 8, 0);
        assert_eq!(g.journal_start(), 2);
        assert_eq!(infer(8 << 20, &g, &clues(None, Some(18), Some(20))).0, 16);
        // A record or a free chunk below it bounds the journal.
        assert_eq!(infer(8 << 20, &g, &clues(Some(10), Some(18), None)).0, 8);
        assert_eq!(infer(8 << 20, &g, &clues(None, Some(18), Some(12))).0, 10);
    }

    #[test]
    fn without_a_tree_block_the_default_when_it_fits() {
        let g = Geometry::new(64 << 20, 8, 0);
        assert_eq!(g.journal_start(), 2);
        assert_eq!(infer(64 << 20, &g, &clues(Some(5000), None, None)).0, 2048);
        assert_eq!(infer(64 << 20, &g, &clues(Some(6), None, None)).0, 4);
        assert_eq!(infer(64 << 20, &g, &clues(None, None, None)).0, 2048);
        assert_eq!(infer(64 << 20, &g, &clues(Some(1), None, None)).0, 0);
    }
}
