//! The record rules, applied to each origin chunk's records:
//!
//! 1. the origin chunk lies inside the origin (when its size is known);
//! 2. the COW chunk lies in the data range;
//! 3. the share mask is not zero;
//! 4. the share mask stays inside the snapmask;
//! 5. a snapshot bit that two or more records of the origin chunk carry (after
//!    rules 1 to 4) is uncertain: nothing tells which copy the snapshot read,
//!    so the bit is removed from every one of them, and a record left with no
//!    bit goes;
//! 6. the COW chunk is neither a node or leaf of the salvaged tree nor claimed
//!    by any other record: when two or more records claim one data chunk,
//!    nothing tells which one it belongs to, so all of them go (a repaired
//!    store must never serve one snapshot another chunk's data). The tally
//!    finds the contested chunks, then counts again with them known, and
//!    remembers which records lost their chunk; the writer replays that.
//!
//! Rules 1 to 5 depend only on the records of one origin chunk, so the tally
//! and the writer keep exactly the same records, whatever the order in which
//! leaves are read. Rule 6 is one bitmap test per record in the tally and none
//! in the writer.

use crate::shared::geometry::Geometry;
use crate::shared::leaf::Exception;
use crate::shared::mask;
use crate::shared::rules::{self, LeafRules, RecordViolation};

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
                "snapshots {} are named by another record of this origin chunk too, so which copy they read is uncertain",
                mask::describe(self.bits)
            ),
            DropReason::ChunkUsedTwice => format!(
                "COW chunk {c} is claimed by another record too; which one it belongs to is uncertain, so neither keeps it"
            ),
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
    /// kept records whose mask was trimmed.
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
        let uncertain = self.uncertain_bits(origin, records);
        let mut trimmed = 0;
        for (i, &record) in records.iter().enumerate() {
            let mut reject = |reason, bits| {
                dropped(Dropped {
                    record,
                    reason,
                    bits,
                })
            };
            if let Some((reason, bits)) = self.fault(origin, record) {
                reject(reason, bits);
                continue;
            }
            let share = record.share & !uncertain;
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
            kept.push(Exception {
                share,
                chunk: record.chunk,
            });
        }
        trimmed
    }

    /// Why rules 1 to 4 drop `record` of `origin`, with the offending bits:
    /// the store's record rules ([`crate::shared::rules`]), as drop reasons.
    fn fault(&self, origin: u64, record: Exception) -> Option<(DropReason, u64)> {
        if self.origin_chunks.is_some_and(|n| origin >= n) {
            return Some((DropReason::OriginPastEnd, 0));
        }
        if let Some(violation) = rules::cow_chunk(self.geometry, record.chunk) {
            return Some(drop_reason(violation));
        }
        let leaf_rules = LeafRules {
            geometry: *self.geometry,
            snapmask: self.snapmask,
            origin_chunks: self.origin_chunks,
        };
        if leaf_rules.share_ok(record.share, 0) {
            return None;
        }
        leaf_rules
            .share_violations(record.share, 0)
            .first()
            .map(|&violation| drop_reason(violation))
    }

    /// The snapshot bits two or more of `records` carry once rules 1 to 4
    /// have dropped theirs (rule 5).
    pub(super) fn uncertain_bits(&self, origin: u64, records: &[Exception]) -> u64 {
        let (mut seen, mut twice) = (0u64, 0u64);
        for r in records.iter().filter(|&&r| self.fault(origin, r).is_none()) {
            twice |= seen & r.share;
            seen |= r.share;
        }
        twice
    }
}

/// The drop reason of a broken record rule, with the offending snapshot bits.
fn drop_reason(violation: RecordViolation) -> (DropReason, u64) {
    match violation {
        RecordViolation::ShareMaskEmpty => (DropReason::MaskEmpty, 0),
        RecordViolation::ShareMaskOutsideSnapmask { unknown } => {
            (DropReason::MaskOutsideSnapmask, unknown)
        }
        RecordViolation::ShareMasksOverlap { overlap } => (DropReason::MaskOverlap, overlap),
        RecordViolation::CowChunkOutOfRange => (DropReason::ChunkOutsideDataRange, 0),
        RecordViolation::CowChunkDuplicate => (DropReason::ChunkUsedTwice, 0),
        RecordViolation::CowChunkIsTree => (DropReason::ChunkIsTreeBlock, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(share: u64, chunk: u64) -> Exception {
        Exception { share, chunk }
    }

    fn rules(geometry: &Geometry) -> RecordRules<'_> {
        RecordRules {
            geometry,
            snapmask: 0b1_1111,
            origin_chunks: Some(1000),
        }
    }

    /// Runs the rules over `records` of origin chunk 7 with `claimed` chunks
    /// taken already: the kept records, the reasons of the dropped ones, the
    /// trimmed count and the indexes the claim was asked about.
    fn run(
        rules: &RecordRules<'_>,
        records: &[Exception],
        claimed: &[u64],
    ) -> (Vec<Exception>, Vec<DropReason>, u64, Vec<u32>) {
        let mut asked = Vec::new();
        let mut claim = |chunk: u64, index: u32| {
            asked.push(index);
            match claimed.contains(&chunk) {
                false => None,
                true if chunk == 50 => Some(DropReason::ChunkIsTreeBlock),
                true => Some(DropReason::ChunkUsedTwice),
            }
        };
        let mut kept = Vec::new();
        let mut reasons = Vec::new();
        let trimmed = rules.filter(&mut claim, 7, records, 20, &mut kept, &mut |d| {
            reasons.push(d.reason)
        });
        (kept, reasons, trimmed, asked)
    }

    #[test]
    fn each_rule_drops_with_its_reason() {
        let geometry = Geometry::new(512 * 100, 1, 2);
        let records = [
            rec(0b1, 10),
            rec(0b10, 2),
            rec(0b10, 500),
            rec(0b100, 50),
            rec(0, 11),
            rec(0b100_0000, 12),
            rec(0b1000, 13),
        ];
        let (kept, reasons, trimmed, asked) = run(&rules(&geometry), &records, &[50, 13]);
        assert_eq!(kept, vec![rec(0b1, 10)]);
        assert_eq!(trimmed, 0);
        assert_eq!(
            reasons,
            vec![
                DropReason::ChunkOutsideDataRange,
                DropReason::ChunkOutsideDataRange,
                DropReason::ChunkIsTreeBlock,
                DropReason::MaskEmpty,
                DropReason::MaskOutsideSnapmask,
                DropReason::ChunkUsedTwice,
            ]
        );
        assert_eq!(asked, vec![20, 23, 26]);
        let past_end = RecordRules {
            origin_chunks: Some(7),
            ..rules(&geometry)
        };
        let (kept, reasons, _, _) = run(&past_end, &[rec(1, 20)], &[]);
        assert!(kept.is_empty());
        assert_eq!(reasons, vec![DropReason::OriginPastEnd]);
    }

    #[test]
    fn overlapping_bits_are_removed_from_every_record_that_has_them() {
        let geometry = Geometry::new(512 * 100, 1, 2);
        // 0x8, 0x4, 0x10 with the middle one damaged to 0x18: snapshots 3 and
        // 4 cannot tell which copy they read; snapshot 2's bit is gone.
        let (kept, reasons, trimmed, asked) = run(
            &rules(&geometry),
            &[rec(0b1000, 10), rec(0b1_1000, 11), rec(0b1_0000, 12)],
            &[],
        );
        assert!(kept.is_empty());
        assert_eq!(reasons, vec![DropReason::MaskOverlap; 3]);
        assert_eq!(trimmed, 0);
        assert!(asked.is_empty());
        // Records that keep a bit no other record has stay, trimmed.
        let (kept, reasons, trimmed, _) = run(
            &rules(&geometry),
            &[rec(0b101, 10), rec(0b110, 11), rec(0b1000, 12)],
            &[],
        );
        assert_eq!(kept, vec![rec(0b1, 10), rec(0b10, 11), rec(0b1000, 12)]);
        assert!(reasons.is_empty());
        assert_eq!(trimmed, 2);
        // A record dropped by an earlier rule does not make bits uncertain.
        let (kept, _, trimmed, _) = run(
            &rules(&geometry),
            &[rec(0b1, 2), rec(0b1, 10), rec(0b100_0001, 11)],
            &[],
        );
        assert_eq!(kept, vec![rec(0b1, 10)]);
        assert_eq!(trimmed, 0);
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
