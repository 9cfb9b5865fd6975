//! The rules the node keys, and the map entries and exception records of the
//! leaves, of a shared store's tree obey, as one typed set: the checker turns a violation into a finding
//! (`code()`), repair into a drop reason, the strict readers (export, merge),
//! restore and the engine into a refusal. Rules that need what was seen before
//! (a COW chunk used twice) are judged by the caller, who keeps that memory.

use super::geometry::Geometry;
use super::leaf::Exception;
use crate::finding::FindingCode;

/// One broken rule of a key of a node (entries above 0; entry 0's key is
/// never read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeViolation {
    /// The key is not strictly inside the key range the parent gives the node.
    OutsideRange,
    /// The key is not above the previous entry's.
    OutOfOrder {
        /// The previous entry's key.
        previous: u64,
    },
}

impl NodeViolation {
    /// The finding code the checker reports it under.
    pub fn code(&self) -> FindingCode {
        match self {
            NodeViolation::OutsideRange => FindingCode::NodeKeyOutOfRange,
            NodeViolation::OutOfOrder { .. } => FindingCode::NodeKeysOutOfOrder,
        }
    }
}

/// The rule a node key above entry 0 breaks, if any: strictly inside the
/// node's range `lo..hi`, and above the previous entry's key (`None` for
/// entry 1).
#[inline]
pub fn node_key(key: u64, previous: Option<u64>, range: (u64, u64)) -> Option<NodeViolation> {
    let (lo, hi) = range;
    if key <= lo || key >= hi {
        Some(NodeViolation::OutsideRange)
    } else {
        previous
            .filter(|&p| key <= p)
            .map(|previous| NodeViolation::OutOfOrder { previous })
    }
}

/// One broken rule of a map entry of a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryViolation {
    /// Its rchunk is not above the previous entry's.
    OutOfOrder {
        /// The previous entry's rchunk.
        previous: u32,
    },
    /// Its origin chunk lies outside the key range the parent gives the leaf
    /// (or overflows).
    OutsideKeyRange,
    /// Its origin chunk lies past the end of the origin.
    PastOrigin {
        /// Chunks of the origin.
        origin_chunks: u64,
    },
    /// It holds no record.
    NoRecord,
}

impl EntryViolation {
    /// The finding code the checker reports it under.
    pub fn code(&self) -> FindingCode {
        match self {
            EntryViolation::OutOfOrder { .. } => FindingCode::LeafMapOutOfOrder,
            EntryViolation::OutsideKeyRange => FindingCode::LeafEntryOutOfRange,
            EntryViolation::PastOrigin { .. } => FindingCode::OldChunkPastOrigin,
            EntryViolation::NoRecord => FindingCode::LeafEmptyEntry,
        }
    }
}

/// One broken rule of an exception record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordViolation {
    /// Its share mask is 0: no snapshot reads it.
    ShareMaskEmpty,
    /// Its share mask names snapshots that do not exist.
    ShareMaskOutsideSnapmask {
        /// The bits outside the snapmask.
        unknown: u64,
    },
    /// Its share mask overlaps an earlier record of the same origin chunk.
    ShareMasksOverlap {
        /// The snapshots in both.
        overlap: u64,
    },
    /// Its COW chunk is the header, the bitmap, the journal or past the end.
    CowChunkOutOfRange,
    /// Its COW chunk is already used by an earlier record.
    CowChunkDuplicate,
    /// Its COW chunk is a node or leaf of the tree.
    CowChunkIsTree,
}

impl RecordViolation {
    /// The finding code the checker reports it under.
    pub fn code(&self) -> FindingCode {
        match self {
            RecordViolation::ShareMaskEmpty => FindingCode::ShareMaskEmpty,
            RecordViolation::ShareMaskOutsideSnapmask { .. } => {
                FindingCode::ShareMaskOutsideSnapmask
            }
            RecordViolation::ShareMasksOverlap { .. } => FindingCode::ShareMasksOverlap,
            RecordViolation::CowChunkOutOfRange => FindingCode::CowChunkOutOfRange,
            RecordViolation::CowChunkDuplicate => FindingCode::CowChunkDuplicate,
            RecordViolation::CowChunkIsTree => FindingCode::CowChunkIsTree,
        }
    }
}

/// A map entry of a leaf as the rules see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryAt {
    /// Its rchunk.
    pub rchunk: u32,
    /// The previous entry's rchunk (`None` for the first).
    pub previous: Option<u32>,
    /// Its origin chunk (`None`: base_chunk + rchunk overflows).
    pub origin: Option<u64>,
    /// The key range the parent gives the leaf, `lo..hi`.
    pub range: (u64, u64),
    /// How many records it holds.
    pub records: usize,
}

/// The rules of one store: its layout, its snapmask and the origin size when
/// known.
#[derive(Debug, Clone, Copy)]
pub struct LeafRules {
    /// The store's layout.
    pub geometry: Geometry,
    /// The header's snapmask.
    pub snapmask: u64,
    /// Chunks of the origin, when known.
    pub origin_chunks: Option<u64>,
}

impl LeafRules {
    /// Whether `entry` breaks no rule. The cheap test of the hot loop; see
    /// [`LeafRules::entry_violations`] for which rules.
    #[inline]
    pub fn entry_ok(&self, entry: &EntryAt) -> bool {
        let limit = self.origin_chunks.unwrap_or(u64::MAX);
        let (lo, hi) = entry.range;
        entry.previous.is_none_or(|p| entry.rchunk > p)
            && entry.origin.is_some_and(|o| o >= lo && o < hi && o < limit)
            && entry.records > 0
    }

    /// Every rule `entry` breaks, in the order the checker reports them:
    /// order, then key range or origin end, then no record.
    pub fn entry_violations(&self, entry: &EntryAt) -> Vec<EntryViolation> {
        let EntryAt {
            rchunk,
            previous,
            origin,
            range,
            records,
        } = *entry;
        let mut found = Vec::new();
        if let Some(previous) = previous.filter(|&p| rchunk <= p) {
            found.push(EntryViolation::OutOfOrder { previous });
        }
        match origin {
            Some(o) if o >= range.0 && o < range.1 => {
                if let Some(origin_chunks) = self.origin_chunks.filter(|&limit| o >= limit) {
                    found.push(EntryViolation::PastOrigin { origin_chunks });
                }
            }
            _ => found.push(EntryViolation::OutsideKeyRange),
        }
        if records == 0 {
            found.push(EntryViolation::NoRecord);
        }
        found
    }

    /// Whether a share mask breaks no rule, given the masks `seen` before it
    /// in its entry.
    #[inline]
    pub fn share_ok(&self, share: u64, seen: u64) -> bool {
        share != 0 && share & !self.snapmask == 0 && share & seen == 0
    }

    /// Every rule a share mask breaks: empty or outside the snapmask, then
    /// overlapping the masks `seen` before it in its entry.
    pub fn share_violations(&self, share: u64, seen: u64) -> Vec<RecordViolation> {
        let mut found = Vec::new();
        if share == 0 {
            found.push(RecordViolation::ShareMaskEmpty);
        } else if share & !self.snapmask != 0 {
            found.push(RecordViolation::ShareMaskOutsideSnapmask {
                unknown: share & !self.snapmask,
            });
        }
        if share & seen != 0 {
            found.push(RecordViolation::ShareMasksOverlap {
                overlap: share & seen,
            });
        }
        found
    }
}

/// Whether `chunk` may be a record's COW chunk (or a tree block): it must lie
/// in the data range, not on the header, the bitmap, the journal or past the
/// end. The engine refuses a leaf or node breaking it when it reads one.
#[inline]
pub fn cow_chunk(geometry: &Geometry, chunk: u64) -> Option<RecordViolation> {
    (!geometry.in_data_range(chunk)).then_some(RecordViolation::CowChunkOutOfRange)
}

/// Why a record cannot be used at all, by any reader: no snapshot reads it, or
/// its COW chunk is not a data chunk. The strict readers refuse a tree with
/// such a record.
pub fn record_unusable(geometry: &Geometry, record: &Exception) -> Option<RecordViolation> {
    if record.share == 0 {
        Some(RecordViolation::ShareMaskEmpty)
    } else {
        cow_chunk(geometry, record.chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> LeafRules {
        LeafRules {
            geometry: Geometry::new(1 << 20, 8, 1),
            snapmask: 0b101,
            origin_chunks: Some(1000),
        }
    }

    #[test]
    fn share_masks() {
        let rules = rules();
        assert!(rules.share_ok(0b001, 0));
        assert!(!rules.share_ok(0b001, 0b001));
        assert_eq!(
            rules.share_violations(0, 0),
            vec![RecordViolation::ShareMaskEmpty]
        );
        assert_eq!(
            rules.share_violations(0b011, 0b001),
            vec![
                RecordViolation::ShareMaskOutsideSnapmask { unknown: 0b010 },
                RecordViolation::ShareMasksOverlap { overlap: 0b001 }
            ]
        );
        assert_eq!(
            RecordViolation::ShareMasksOverlap { overlap: 1 }.code(),
            FindingCode::ShareMasksOverlap
        );
    }

    #[test]
    fn entries() {
        let rules = rules();
        let entry = |rchunk, previous, origin, range, records| EntryAt {
            rchunk,
            previous,
            origin: Some(origin),
            range,
            records,
        };
        assert!(rules.entry_ok(&entry(5, Some(4), 105, (100, 200), 1)));
        assert!(!rules.entry_ok(&entry(5, Some(4), 1005, (1000, 2000), 1)));
        assert_eq!(
            rules.entry_violations(&entry(4, Some(4), 250, (100, 200), 0)),
            vec![
                EntryViolation::OutOfOrder { previous: 4 },
                EntryViolation::OutsideKeyRange,
                EntryViolation::NoRecord
            ]
        );
        assert_eq!(
            rules.entry_violations(&entry(5, None, 1005, (1000, 2000), 1)),
            vec![EntryViolation::PastOrigin {
                origin_chunks: 1000
            }]
        );
    }

    #[test]
    fn node_keys() {
        assert_eq!(node_key(150, Some(120), (100, 200)), None);
        assert_eq!(
            node_key(100, None, (100, 200)),
            Some(NodeViolation::OutsideRange)
        );
        assert_eq!(
            node_key(200, Some(150), (100, 200)),
            Some(NodeViolation::OutsideRange)
        );
        let order = node_key(130, Some(150), (100, 200)).unwrap();
        assert_eq!(order, NodeViolation::OutOfOrder { previous: 150 });
        assert_eq!(order.code(), FindingCode::NodeKeysOutOfOrder);
    }

    #[test]
    fn unusable_records() {
        let geometry = rules().geometry;
        let data = geometry.data_start();
        let record = |share, chunk| Exception { share, chunk };
        assert_eq!(record_unusable(&geometry, &record(1, data)), None);
        assert_eq!(
            record_unusable(&geometry, &record(0, data)),
            Some(RecordViolation::ShareMaskEmpty)
        );
        assert_eq!(
            record_unusable(&geometry, &record(1, 0)),
            Some(RecordViolation::CowChunkOutOfRange)
        );
        assert_eq!(
            cow_chunk(&geometry, geometry.nr_chunks),
            Some(RecordViolation::CowChunkOutOfRange)
        );
        assert_eq!(cow_chunk(&geometry, data), None);
    }
}
