//! Choosing which scanned leaves rebuild the lost ranges.
//!
//! Leaves reached from the root always stay. A scanned leaf is considered only
//! if its origin chunks reach into a lost range, or if the (credible) bitmap
//! marks its chunk in use: a live leaf nothing reachable points at, as a
//! commit cut short leaves behind. And only if at least half of its records
//! are plausible (see [`Candidate::good`]): a stale leaf the engine freed
//! points at chunks since freed or now used by live records. The rest are
//! taken most credible first: a leaf in a chunk the bitmap marks in use, then
//! the larger share of plausible records, then a using_mask that agrees with the
//! masks, then more records, then the lower chunk. A leaf whose origin chunks
//! overlap those of a leaf already taken is a stale copy and is left out (live
//! leaves never overlap).

use std::cmp::Reverse;
use std::collections::BTreeMap;

use super::reachable::{FoundLeaf, LeafSource, LostBlock};
use super::scan::Candidate;
use super::snapmask::MaskEvidence;

/// The scanned leaves chosen, and why the others were not.
#[derive(Debug, Default)]
pub(super) struct Selection {
    /// Leaves chosen, most credible first.
    pub chosen: Vec<FoundLeaf>,
    /// Their masks.
    pub evidence: MaskEvidence,
    pub overlapping: u64,
    pub implausible: u64,
    pub outside: u64,
    /// Chunks of empty leaves found.
    pub empty: Vec<u64>,
    /// The lowest chunk the chosen leaves use.
    pub lowest_used: Option<u64>,
}

/// Picks the candidates that rebuild `lost`, around the `reached` leaves.
pub(super) fn select(
    candidates: Vec<Candidate>,
    reached: &[FoundLeaf],
    lost: &[LostBlock],
    bitmap_credible: bool,
) -> Selection {
    let mut selection = Selection::default();
    let mut ranked = Vec::new();
    for c in candidates {
        let Some((first, last)) = c.span else {
            selection.empty.push(c.chunk);
            continue;
        };
        if !(touches_lost(lost, first, last) || (bitmap_credible && c.bitmap_used)) {
            selection.outside += 1;
        } else if c.records == 0 || u64::from(c.good) * 2 < u64::from(c.records) {
            selection.implausible += 1;
        } else {
            ranked.push(c);
        }
    }
    ranked.sort_by_key(|c| {
        Reverse((
            bitmap_credible && c.bitmap_used,
            u64::from(c.good) * 1000 / u64::from(c.records),
            c.using_mask_ok,
            c.records,
            Reverse(c.chunk),
        ))
    });
    let mut taken = SpanSet::default();
    for leaf in reached {
        if let Some(span) = leaf.span {
            taken.insert(span);
        }
    }
    for c in ranked {
        let span = c.span.unwrap_or_default();
        if taken.overlaps(span) {
            selection.overlapping += 1;
            continue;
        }
        taken.insert(span);
        selection.evidence.merge(&c.evidence);
        selection.lowest_used = Some(
            selection
                .lowest_used
                .map_or(c.lowest_used, |l| l.min(c.lowest_used)),
        );
        selection.chosen.push(FoundLeaf {
            chunk: c.chunk,
            span: c.span,
            records: c.records,
            source: LeafSource::Scan,
            rank: selection.chosen.len() as u32,
        });
    }
    selection
}

/// Whether `first..=last` meets a lost range (`lost` in key order, disjoint).
fn touches_lost(lost: &[LostBlock], first: u64, last: u64) -> bool {
    let i = lost.partition_point(|b| b.lo <= last);
    i > 0 && lost[i - 1].hi > first
}

/// Disjoint inclusive spans of origin chunks.
#[derive(Debug, Default)]
struct SpanSet {
    by_first: BTreeMap<u64, u64>,
}

impl SpanSet {
    fn insert(&mut self, (first, last): (u64, u64)) {
        self.by_first.insert(first, last);
    }

    fn overlaps(&self, (first, last): (u64, u64)) -> bool {
        self.by_first
            .range(..=last)
            .next_back()
            .is_some_and(|(_, &l)| l >= first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(chunk: u64, span: (u64, u64), good: u32, used: bool) -> Candidate {
        Candidate {
            chunk,
            span: Some(span),
            records: 10,
            good,
            bitmap_used: used,
            using_mask_ok: false,
            evidence: MaskEvidence::default(),
            lowest_used: chunk,
        }
    }

    fn lost(lo: u64, hi: u64) -> LostBlock {
        LostBlock {
            chunk: Some(1),
            level: 0,
            lo,
            hi,
            problem: String::new(),
        }
    }

    #[test]
    fn the_most_credible_of_overlapping_leaves_wins() {
        let reached = [FoundLeaf {
            chunk: 5,
            span: Some((0, 99)),
            records: 3,
            source: LeafSource::Tree,
            rank: 0,
        }];
        let s = select(
            vec![
                candidate(50, (100, 150), 10, false),
                candidate(60, (120, 180), 10, true),
                candidate(70, (190, 199), 4, true),
                candidate(80, (90, 120), 10, true),
                candidate(90, (300, 310), 10, false),
                candidate(95, (181, 185), 10, true),
                candidate(97, (400, 410), 10, true),
            ],
            &reached,
            &[lost(100, 200)],
            true,
        );
        let chosen: Vec<(u64, u32)> = s.chosen.iter().map(|l| (l.chunk, l.rank)).collect();
        assert_eq!(chosen, vec![(60, 0), (95, 1), (97, 2)]);
        assert_eq!(s.overlapping, 2);
        assert_eq!(s.implausible, 1);
        assert_eq!(s.outside, 1);
    }

    #[test]
    fn without_a_credible_bitmap_records_decide() {
        let s = select(
            vec![
                candidate(50, (100, 150), 10, false),
                candidate(60, (120, 180), 9, true),
            ],
            &[],
            &[lost(0, u64::MAX)],
            false,
        );
        assert_eq!(s.chosen.len(), 1);
        assert_eq!(s.chosen[0].chunk, 50);
    }
}
