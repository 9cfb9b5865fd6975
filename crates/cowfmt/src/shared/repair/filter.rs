//! The record rules, applied to each origin chunk's records in leaf order:
//!
//! 1. the origin chunk lies inside the origin (when its size is known);
//! 2. the COW chunk lies in the data range;
//! 3. the share mask is not zero;
//! 4. the share mask stays inside the snapmask;
//! 5. bits an earlier kept record of the same origin chunk has are cleared (the
//!    engine reads the first record with a snapshot's bit, so every snapshot
//!    keeps reading what it read before); a record left with no bit goes;
//! 6. the COW chunk is neither a node or leaf of the salvaged tree nor used by
//!    an earlier kept record: the tally takes the leaves reached from the root
//!    first, in origin order, then the scanned leaves, most credible first, and
//!    remembers which records lost their chunk; the writer, which reads the
//!    leaves in origin order, replays that.
//!
//! Rules 1 to 5 depend only on the record and the records before it in its
//! entry, so the tally and the writer keep exactly the same records. Rule 6 is
//! one bitmap test per record in the tally and none in the writer.

use crate::shared::geometry::Geometry;
use crate::shared::leaf::Exception;
use crate::shared::mask;

use super::report::DropReason;

/// What the rules weigh records against.
pub(super) struct RecordRules<'a> {
    pub geometry: &'a Geometry,
    pub snapmask: u64,
    pub origin_chunks: Option<u64>,
}

/// A record the rules dropped, with what a message needs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dropped {
    pub record: Exception,
    pub reason: DropReason,
    /// For mask reasons, the offending bits.
    pub bits: u64,
}

impl Dropped {
    /// One sentence for people, starting with the place.
    pub(super) fn message(&self, rules: &RecordRules<'_>, origin: u64, leaf: u64) -> String {
        let c = self.record.chunk;
        let what = match self.reason {
            DropReason::OriginPastEnd => format!(
                "past the end of the origin ({} chunks)",
                rules.origin_chunks.unwrap_or(0)
            ),
            DropReason::ChunkOutsideDataRange => format!(
                "COW chunk {c} is {}, not the data range {}..{}",
                rules.geometry.reserved_role(c).unwrap_or("outside"),
                rules.geometry.data_start(),
                rules.geometry.nr_chunks
            ),
            DropReason::ChunkIsTreeBlock => format!("COW chunk {c} is a node or leaf of the tree"),
            DropReason::MaskEmpty => "the share mask is 0".to_string(),
            DropReason::MaskOutsideSnapmask => format!(
                "share mask {:#x} names snapshots {} that do not exist",
                self.record.share,
                mask::describe(self.bits)
            ),
            DropReason::MaskOverlap => format!(
                "snapshots {} already read an earlier record of this origin chunk",
                mask::describe(self.bits)
            ),
            DropReason::ChunkUsedTwice => {
                format!("COW chunk {c} is already used by an earlier record")
            }
        };
        format!(
            "origin chunk {origin} (leaf at chunk {leaf}): record {{share {:#x}, chunk {c}}}: {what}",
            self.record.share
        )
    }
}

impl RecordRules<'_> {
    /// Applies the rules to the records of `origin`, the first of which is
    /// record `first` of its leaf: kept records (masks possibly trimmed) go to
    /// `kept`, in order; every other record to `dropped`. `claim(chunk,
    /// index)` answers rule 6 for a record that passed the others: `None` when
    /// the record takes its chunk, else why it cannot. Returns the number of
    /// trimmed masks.
    pub(super) fn filter<C, D>(
        &self,
        claim: &mut C,
        origin: u64,
        records: &[Exception],
        first: u32,
        kept: &mut Vec<Exception>,
        dropped: &mut D,
    ) -> u64
    where
        C: FnMut(u64, u32) -> Option<DropReason>,
        D: FnMut(Dropped),
    {
        kept.clear();
        let mut seen = 0u64;
        let mut trimmed = 0;
        for (i, &record) in records.iter().enumerate() {
            let mut reject = |reason, bits| {
                dropped(Dropped {
                    record,
                    reason,
                    bits,
                })
            };
            if self.origin_chunks.is_some_and(|n| origin >= n) {
                reject(DropReason::OriginPastEnd, 0);
                continue;
            }
            if !self.geometry.in_data_range(record.chunk) {
                reject(DropReason::ChunkOutsideDataRange, 0);
                continue;
            }
            if record.share == 0 {
                reject(DropReason::MaskEmpty, 0);
                continue;
            }
            let outside = record.share & !self.snapmask;
            if outside != 0 {
                reject(DropReason::MaskOutsideSnapmask, outside);
                continue;
            }
            let share = record.share & !seen;
            if share == 0 {
                reject(DropReason::MaskOverlap, record.share);
                continue;
            }
            if let Some(reason) = claim(record.chunk, first + i as u32) {
                reject(reason, 0);
                continue;
            }
            if share != record.share {
                trimmed += 1;
            }
            seen |= share;
            kept.push(Exception {
                share,
                chunk: record.chunk,
            });
        }
        trimmed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitset::DenseBitmap;

    fn rec(share: u64, chunk: u64) -> Exception {
        Exception { share, chunk }
    }

    #[test]
    fn each_rule_drops_with_its_reason() {
        let geometry = Geometry::new(512 * 100, 1, 2);
        let rules = RecordRules {
            geometry: &geometry,
            snapmask: 0b111,
            origin_chunks: Some(1000),
        };
        let mut claimed = DenseBitmap::new(100);
        claimed.test_and_set(50);
        let mut asked = Vec::new();
        let mut claim = |chunk: u64, index: u32| {
            asked.push(index);
            match (chunk, claimed.test_and_set(chunk)) {
                (_, false) => None,
                (50, true) => Some(DropReason::ChunkIsTreeBlock),
                (_, true) => Some(DropReason::ChunkUsedTwice),
            }
        };
        let mut kept = Vec::new();
        let mut reasons = Vec::new();
        let records = [
            rec(0b1, 10),
            rec(0b1, 2),
            rec(0b1, 500),
            rec(0b10, 50),
            rec(0, 11),
            rec(0b1000, 12),
            rec(0b1, 13),
            rec(0b11, 14),
            rec(0b100, 10),
        ];
        let trimmed = rules.filter(&mut claim, 7, &records, 20, &mut kept, &mut |d| {
            reasons.push(d.reason)
        });
        assert_eq!(kept, vec![rec(0b1, 10), rec(0b10, 14)]);
        assert_eq!(trimmed, 1);
        assert_eq!(
            reasons,
            vec![
                DropReason::ChunkOutsideDataRange,
                DropReason::ChunkOutsideDataRange,
                DropReason::ChunkIsTreeBlock,
                DropReason::MaskEmpty,
                DropReason::MaskOutsideSnapmask,
                DropReason::MaskOverlap,
                DropReason::ChunkUsedTwice,
            ]
        );
        assert_eq!(asked, vec![20, 23, 27, 28]);
        let mut none = |_: Dropped| {};
        let mut yes = |_: u64, _: u32| None;
        rules.filter(&mut yes, 1000, &[rec(1, 20)], 0, &mut kept, &mut none);
        assert!(kept.is_empty());
    }

    #[test]
    fn messages_name_the_place_and_the_cause() {
        let geometry = Geometry::new(512 * 100, 1, 2);
        let rules = RecordRules {
            geometry: &geometry,
            snapmask: 0b1,
            origin_chunks: None,
        };
        let d = Dropped {
            record: rec(0b101, 3),
            reason: DropReason::ChunkOutsideDataRange,
            bits: 0,
        };
        assert_eq!(
            d.message(&rules, 9, 40),
            "origin chunk 9 (leaf at chunk 40): record {share 0x5, chunk 3}: COW chunk 3 is journal, not the data range 4..100"
        );
    }
}
