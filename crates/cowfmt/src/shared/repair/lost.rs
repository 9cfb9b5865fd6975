//! Describing the lost ranges: for each tree block that could not be used, the
//! leaves the scan recovered inside its range and the parts no leaf covers.

use std::collections::HashSet;

use super::reachable::{FoundLeaf, LeafSource, LostBlock};
use super::report::{LostRange, OriginRange, LISTED_MAX};

/// Unresolved parts listed per lost range; the rest are counted.
pub(super) const UNRESOLVED_LISTED: usize = 100;

/// The lost ranges as the report lists them, with the total number of
/// unresolved parts (listed or not).
pub(super) fn describe(lost: &[LostBlock], leaves: &[FoundLeaf]) -> (Vec<LostRange>, u64) {
    let mut spans: Vec<(u64, u64, LeafSource, u64, u32)> = leaves
        .iter()
        .filter_map(|l| l.span.map(|(a, b)| (a, b, l.source, l.chunk, l.records)))
        .collect();
    spans.sort_unstable_by_key(|s| s.0);
    let scanned: HashSet<u64> = leaves
        .iter()
        .filter(|l| l.source == LeafSource::Scan)
        .map(|l| l.chunk)
        .collect();
    let recovered_chunk = |chunk: u64| scanned.contains(&chunk);
    let mut out = Vec::new();
    let mut unresolved_total = 0;
    for block in lost.iter().take(LISTED_MAX) {
        let mut range = LostRange {
            range: OriginRange::new(block.lo, block.hi),
            block: block.chunk,
            level: block.level,
            problem: block.problem.clone(),
            recovered_leaves: 0,
            recovered_records: 0,
            unresolved: Vec::new(),
        };
        let start = spans.partition_point(|s| s.1 < block.lo);
        let mut at = block.lo;
        let mut gaps = Vec::new();
        for &(first, last, source, _, records) in spans[start..].iter() {
            if first >= block.hi {
                break;
            }
            if source == LeafSource::Scan {
                range.recovered_leaves += 1;
                range.recovered_records += u64::from(records);
            }
            if first > at {
                gaps.push(OriginRange::new(at, first));
            }
            at = at.max(last.saturating_add(1));
        }
        if at < block.hi {
            gaps.push(OriginRange::new(at, block.hi));
        }
        if block.chunk.is_some_and(recovered_chunk) {
            gaps.clear();
        }
        unresolved_total += gaps.len() as u64;
        gaps.truncate(UNRESOLVED_LISTED);
        range.unresolved = gaps;
        out.push(range);
    }
    for block in lost.iter().skip(LISTED_MAX) {
        if !block.chunk.is_some_and(recovered_chunk) {
            unresolved_total += 1;
        }
    }
    (out, unresolved_total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(chunk: u64, a: u64, b: u64, source: LeafSource) -> FoundLeaf {
        FoundLeaf {
            chunk,
            span: Some((a, b)),
            records: 3,
            source,
            rank: 0,
        }
    }

    #[test]
    fn gaps_between_recovered_leaves_are_unresolved() {
        let lost = [LostBlock {
            chunk: Some(40),
            level: 1,
            lo: 100,
            hi: 200,
            problem: "node: node count is 0".into(),
        }];
        let leaves = [
            leaf(1, 0, 99, LeafSource::Tree),
            leaf(2, 100, 120, LeafSource::Scan),
            leaf(3, 150, 160, LeafSource::Scan),
            leaf(4, 200, 300, LeafSource::Tree),
        ];
        let (ranges, total) = describe(&lost, &leaves);
        assert_eq!(total, 2);
        let r = &ranges[0];
        assert_eq!((r.recovered_leaves, r.recovered_records), (2, 6));
        assert_eq!(
            r.unresolved,
            vec![OriginRange::new(121, 150), OriginRange::new(161, 200)]
        );
    }

    #[test]
    fn a_block_recovered_by_the_scan_is_resolved() {
        let lost = [LostBlock {
            chunk: Some(7),
            level: 0,
            lo: 0,
            hi: u64::MAX,
            problem: String::new(),
        }];
        let (ranges, total) = describe(&lost, &[leaf(7, 5, 9, LeafSource::Scan)]);
        assert_eq!(total, 0);
        assert!(ranges[0].unresolved.is_empty());
        let (ranges, total) = describe(&lost, &[]);
        assert_eq!(total, 1);
        assert_eq!(ranges[0].unresolved, vec![OriginRange::new(0, u64::MAX)]);
        assert_eq!(ranges[0].unresolved[0].hi, None);
    }
}
