//! Settling the output's snapmask: the caller's; else the intact header's,
//! never widened (records naming other snapshots are dropped, and the bits
//! are reported); else inferred from the masks found.
//!
//! A snapshot is *proven* by the records when a leaf whose stored `using_mask`
//! agrees with its masks carries it (the engine writes that field, and a
//! corrupted record mask breaks the agreement), or when records in at least two
//! leaves carry it. Bits outside an intact header's snapmask that many leaves
//! carry (16, or one leaf in 4) get a suggestion of the `--snapmask` that
//! keeps them, for when the header really lost them. To
//! infer a snapmask from nothing, a bit needs a confirming leaf or at least two
//! records: a single corrupted mask names no snapshot.

use super::report::Source;
use super::shape::mask_facts;
use crate::shared::leaf::Leaf;
use crate::shared::mask;

/// Which snapshot bits the salvaged leaves carry, and how strongly.
#[derive(Debug, Clone)]
pub(super) struct MaskEvidence {
    leaves: [u32; 64],
    records: [u64; 64],
    confirmed: u64,
    leaves_read: u64,
}

impl Default for MaskEvidence {
    fn default() -> Self {
        MaskEvidence {
            leaves: [0; 64],
            records: [0; 64],
            confirmed: 0,
            leaves_read: 0,
        }
    }
}

impl MaskEvidence {
    /// Adds the masks of one salvaged leaf.
    pub(super) fn add_leaf(&mut self, leaf: &Leaf) {
        let (or, confirmed) = mask_facts(leaf);
        self.leaves_read += 1;
        if confirmed {
            self.confirmed |= or;
        }
        for id in mask::ids(or) {
            self.leaves[id as usize] += 1;
        }
        for r in &leaf.records {
            for id in mask::ids(r.share) {
                self.records[id as usize] += 1;
            }
        }
    }

    /// Adds another set of evidence.
    pub(super) fn merge(&mut self, other: &MaskEvidence) {
        self.confirmed |= other.confirmed;
        self.leaves_read += other.leaves_read;
        for id in 0..64 {
            self.leaves[id] += other.leaves[id];
            self.records[id] += other.records[id];
        }
    }

    /// Bits that a confirming leaf, or records in two leaves, carry.
    fn proven(&self) -> u64 {
        (0..64u32)
            .filter(|&id| self.leaves[id as usize] >= 2)
            .fold(self.confirmed, |m, id| m | mask::bit(id))
    }

    /// Proven bits carried by many leaves: at least [`WIDE_LEAVES`], or one in
    /// [`WIDE_SHARE`] of the leaves read. Only these are worth a header that
    /// lost them; a few damaged records are not.
    fn widely_carried(&self) -> u64 {
        (0..64u32)
            .filter(|&id| {
                let leaves = u64::from(self.leaves[id as usize]);
                leaves >= WIDE_LEAVES || leaves * WIDE_SHARE >= self.leaves_read
            })
            .fold(0, |m, id| m | mask::bit(id))
            & self.proven()
    }

    /// The fewest leaves any of `bits` appears in.
    fn fewest_leaves(&self, bits: u64) -> u32 {
        mask::ids(bits)
            .map(|id| self.leaves[id as usize])
            .min()
            .unwrap_or(0)
    }

    /// Bits that a confirming leaf, or at least two records, carry.
    fn plausible(&self) -> u64 {
        (0..64u32)
            .filter(|&id| self.records[id as usize] >= 2)
            .fold(self.confirmed, |m, id| m | mask::bit(id))
    }

    /// Bits any record carries.
    fn union(&self) -> u64 {
        (0..64u32)
            .filter(|&id| self.records[id as usize] > 0)
            .fold(0, |m, id| m | mask::bit(id))
    }
}

/// Leaves that carry a bit outside an intact header's snapmask before the
/// repair suggests widening it, whatever the share of leaves.
const WIDE_LEAVES: u64 = 16;
/// Or one leaf in this many of the leaves read.
const WIDE_SHARE: u64 = 4;

/// The snapmask decided, where it came from, and what to say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SnapmaskChoice {
    pub mask: u64,
    pub source: Source,
    pub notes: Vec<String>,
    /// Snapshot bits records carry outside an intact header's snapmask.
    pub outside: u64,
}

/// Settles the snapmask from the caller's, the header's (`None` when the
/// header cannot be trusted) and the evidence of the salvaged leaves.
pub(super) fn settle(
    option: Option<u64>,
    header: Option<u64>,
    evidence: &MaskEvidence,
) -> SnapmaskChoice {
    let mut choice = SnapmaskChoice {
        mask: 0,
        source: Source::Option,
        notes: Vec::new(),
        outside: 0,
    };
    if let Some(given) = option {
        choice.mask = given;
        if let Some(stored) = header.filter(|&h| h != given) {
            choice.notes.push(format!(
                "the header's snapmask names snapshots {}; snapshots {} were given and used",
                mask::describe(stored),
                mask::describe(given)
            ));
        }
        return choice;
    }
    if let Some(stored) = header {
        choice.mask = stored;
        choice.source = Source::Header;
        choice.outside = evidence.union() & !stored;
        if choice.outside != 0 {
            choice
                .notes
                .push(outside_note(stored, choice.outside, evidence));
        }
        return choice;
    }
    choice.mask = evidence.plausible();
    choice.source = Source::Inferred;
    let weak = evidence.union() & !choice.mask;
    choice.notes.push(format!(
        "the snapshots were inferred from the share masks found ({}); snapshots with no record cannot be seen this way, give --snapshots if there are more",
        mask::describe(choice.mask)
    ));
    if weak != 0 {
        choice.notes.push(format!(
            "bits {} appear in a single record each and were not taken as snapshots",
            mask::describe(weak)
        ));
    }
    choice
}

/// Says which bits records carry outside the header's snapmask, and the
/// `--snapmask` to give if the header really lost them, when many leaves
/// carry them.
fn outside_note(stored: u64, outside: u64, evidence: &MaskEvidence) -> String {
    let wide = evidence.widely_carried() & !stored;
    let mut note = format!(
        "records name snapshots {} outside the header's snapmask {stored:#x}; the intact header wins, so those bits are not snapshots of the output and their records are dropped",
        mask::describe(outside)
    );
    if wide != 0 {
        note.push_str(&format!(
            "; snapshots {} appear in at least {} of the {} leaves read: if the header really lost them, repair again with --snapmask {:#x}",
            mask::describe(wide),
            evidence.fewest_leaves(wide),
            evidence.leaves_read,
            stored | wide
        ));
    }
    note
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::leaf::Exception;

    fn leaf(masks: &[u64], stored_using: bool) -> Leaf {
        let mut l = Leaf::new(0);
        for (i, &share) in masks.iter().enumerate() {
            l.insert_entry(
                i,
                i as u32,
                Exception {
                    share,
                    chunk: 100 + i as u64,
                },
            );
        }
        if stored_using {
            l.stored_using_mask = l.using_mask();
        }
        l
    }

    #[test]
    fn option_wins() {
        let e = MaskEvidence::default();
        let c = settle(Some(0b101), Some(0b1), &e);
        assert_eq!((c.mask, c.source), (0b101, Source::Option));
        assert_eq!(c.notes.len(), 1);
    }

    #[test]
    fn an_intact_header_is_never_widened() {
        let mut e = MaskEvidence::default();
        e.add_leaf(&leaf(&[0b1, 0b100], true));
        let c = settle(None, Some(0b1), &e);
        assert_eq!((c.mask, c.source, c.outside), (0b1, Source::Header, 0b100));
        assert!(
            c.notes[0].contains("repair again with --snapmask 0x5"),
            "{:?}",
            c.notes
        );

        let mut e = MaskEvidence::default();
        e.add_leaf(&leaf(&[0b1, u64::MAX], false));
        let mut other = MaskEvidence::default();
        other.add_leaf(&leaf(&[0b1, u64::MAX], false));
        e.merge(&other);
        let c = settle(None, Some(0xffff), &e);
        assert_eq!((c.mask, c.source), (0xffff, Source::Header));
        assert_eq!(c.outside, !0xffffu64);
        assert!(
            c.notes[0].contains("snapshots 16-63 outside"),
            "{:?}",
            c.notes
        );

        let mut e = MaskEvidence::default();
        e.add_leaf(&leaf(&[0b1], true));
        let c = settle(None, Some(0b1), &e);
        assert_eq!((c.outside, c.notes.len()), (0, 0));
    }

    #[test]
    fn inferred_needs_two_records_or_a_confirming_leaf() {
        let mut e = MaskEvidence::default();
        e.add_leaf(&leaf(&[0b11, 0b1, 0xf000], false));
        let c = settle(None, None, &e);
        assert_eq!((c.mask, c.source), (0b1, Source::Inferred));
        assert_eq!(c.notes.len(), 2);
        let mut e = MaskEvidence::default();
        e.add_leaf(&leaf(&[0b11, 0b1], true));
        assert_eq!(settle(None, None, &e).mask, 0b11);
    }

    #[test]
    fn widening_is_suggested_only_when_many_leaves_carry_the_bits() {
        let few = |damaged: usize, sound: usize| {
            let mut e = MaskEvidence::default();
            for _ in 0..damaged {
                e.add_leaf(&leaf(&[0b1, u64::MAX], false));
            }
            for _ in 0..sound {
                e.add_leaf(&leaf(&[0b1, 0b1], true));
            }
            settle(None, Some(0xffff), &e).notes[0].clone()
        };
        assert!(!few(2, 10).contains("--snapmask"), "{}", few(2, 10));
        let note = few(3, 9);
        assert!(
            note.contains(
                "snapshots 16-63 appear in at least 3 of the 12 leaves read: if the header really lost them, repair again with --snapmask 0xffffffffffffffff"
            ),
            "{note}"
        );
        assert!(few(16, 100).contains("--snapmask"));
        assert!(!few(15, 100).contains("--snapmask"));
    }
}
