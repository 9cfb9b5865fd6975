//! Ranges of origin chunks, as repair reports name what a snapshot lost: the
//! origin chunks that now read through to the origin.

use serde::Serialize;

/// A range of origin chunks `lo..hi` (`hi` null: no upper bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OriginRange {
    /// First origin chunk.
    pub lo: u64,
    /// One past the last, or `None` for "to the end".
    pub hi: Option<u64>,
}

impl OriginRange {
    /// The range of `lo..hi`, `u64::MAX` meaning no bound.
    pub fn new(lo: u64, hi: u64) -> Self {
        OriginRange {
            lo,
            hi: (hi != u64::MAX).then_some(hi),
        }
    }

    /// As people read it: "origin chunks 100..200" or "origin chunks 100..".
    pub fn text(&self) -> String {
        match self.hi {
            Some(hi) => format!("origin chunks {}..{hi}", self.lo),
            None => format!("origin chunks {}..", self.lo),
        }
    }
}

/// The origin chunks of `chunks` (in any order, repeats allowed) as ascending,
/// non-touching ranges; at most `limit` ranges, with whether all fitted.
pub fn ranges_of(chunks: &mut Vec<u64>, limit: usize) -> (Vec<OriginRange>, bool) {
    chunks.sort_unstable();
    chunks.dedup();
    let mut ranges: Vec<OriginRange> = Vec::new();
    let mut open: Option<(u64, u64)> = None;
    for &c in chunks.iter() {
        open = match open {
            Some((lo, hi)) if hi == c => Some((lo, c.saturating_add(1))),
            Some((lo, hi)) => {
                if ranges.len() == limit {
                    return (ranges, false);
                }
                ranges.push(OriginRange::new(lo, hi));
                Some((c, c.saturating_add(1)))
            }
            None => Some((c, c.saturating_add(1))),
        };
    }
    if let Some((lo, hi)) = open {
        if ranges.len() == limit {
            return (ranges, false);
        }
        ranges.push(OriginRange::new(lo, hi));
    }
    (ranges, true)
}

/// The ranges as one phrase: "origin chunks 5..7, origin chunks 9..10".
pub fn ranges_text(ranges: &[OriginRange]) -> String {
    ranges
        .iter()
        .map(OriginRange::text)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_coalesce_into_ranges() {
        let mut chunks = vec![9, 5, 6, 5, 20, 7];
        let (ranges, all) = ranges_of(&mut chunks, 10);
        assert!(all);
        assert_eq!(
            ranges,
            vec![
                OriginRange::new(5, 8),
                OriginRange::new(9, 10),
                OriginRange::new(20, 21)
            ]
        );
        assert_eq!(
            ranges_text(&ranges[..2]),
            "origin chunks 5..8, origin chunks 9..10"
        );
        let (ranges, all) = ranges_of(&mut chunks, 2);
        assert!(!all);
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges_of(&mut Vec::new(), 0), (vec![], true));
    }
}
