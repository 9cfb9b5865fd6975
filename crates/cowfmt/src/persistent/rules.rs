//! The rules an exception record of a persistent (or legacy) store obeys, as
//! one typed set: the checker turns a [`RecordViolation`] into a finding
//! ([`RecordViolation::code`]), repair into a drop reason, restore and the
//! engine into a refusal. Rules that need the records seen before (a
//! `new_chunk` used twice, an `old_chunk` mapped twice, allocation order) are
//! judged by the caller, who keeps that memory; their violations are here too
//! so that every caller names them alike.

use super::layout::{Geometry, HEADER_CHUNKS};
use super::LEGACY_CHUNK_LIMIT;
use crate::finding::FindingCode;
use crate::kind::StoreKind;

/// One broken rule of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordViolation {
    /// `new_chunk` lies past the end of the device.
    NewChunkPastEnd {
        /// The record's `new_chunk`.
        new: u64,
        /// Chunks on the device.
        device_chunks: u64,
    },
    /// `new_chunk` is the header or a metadata area.
    NewChunkIsMetadata {
        /// The record's `new_chunk`.
        new: u64,
        /// The metadata area it is (`None`: the header).
        area: Option<u64>,
    },
    /// An earlier record uses the same `new_chunk`.
    NewChunkDuplicate {
        /// The record's `new_chunk`.
        new: u64,
    },
    /// `new_chunk` is not above the previous record's: the kernel commits in
    /// ascending allocation order.
    AllocationOutOfOrder {
        /// The record's `new_chunk`.
        new: u64,
        /// The highest `new_chunk` before it.
        previous: u64,
    },
    /// `old_chunk` times the chunk size does not fit 64 bits.
    OldChunkOverflow {
        /// The record's `old_chunk`.
        old: u64,
        /// The chunk size in bytes.
        chunk_bytes: u64,
    },
    /// `old_chunk` lies past the end of the origin.
    OldChunkPastOrigin {
        /// The record's `old_chunk`.
        old: u64,
        /// Chunks of the origin.
        origin_chunks: u64,
    },
    /// An earlier record maps the same `old_chunk`.
    OldChunkDuplicate {
        /// The record's `old_chunk`.
        old: u64,
    },
    /// A chunk number does not fit the 32 bits of the pre-2.6.29 code.
    LegacyChunkTooLarge {
        /// `"old_chunk"` or `"new_chunk"`.
        field: &'static str,
        /// Its value.
        value: u64,
    },
}

impl RecordViolation {
    /// The finding code the checker reports it under.
    pub fn code(&self) -> FindingCode {
        match self {
            RecordViolation::NewChunkPastEnd { .. } => FindingCode::NewChunkPastEnd,
            RecordViolation::NewChunkIsMetadata { .. } => FindingCode::NewChunkIsMetadata,
            RecordViolation::NewChunkDuplicate { .. } => FindingCode::NewChunkDuplicate,
            RecordViolation::AllocationOutOfOrder { .. } => FindingCode::AllocationOutOfOrder,
            RecordViolation::OldChunkOverflow { .. } => FindingCode::OldChunkOverflow,
            RecordViolation::OldChunkPastOrigin { .. } => FindingCode::OldChunkPastOrigin,
            RecordViolation::OldChunkDuplicate { .. } => FindingCode::OldChunkDuplicate,
            RecordViolation::LegacyChunkTooLarge { .. } => FindingCode::LegacyChunkTooLarge,
        }
    }

    /// Whether the record cannot be used at all (its copy is lost or it
    /// would overwrite something); the others are doubts or warnings.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            RecordViolation::NewChunkPastEnd { .. }
                | RecordViolation::NewChunkIsMetadata { .. }
                | RecordViolation::NewChunkDuplicate { .. }
                | RecordViolation::OldChunkOverflow { .. }
        )
    }

    /// The violation as the phrase that follows the record's place, e.g.
    /// "new_chunk 99999 is past the end of the device (2048 chunks)".
    pub fn describe(&self) -> String {
        match *self {
            RecordViolation::NewChunkPastEnd { new, device_chunks } => {
                format!("new_chunk {new} is past the end of the device ({device_chunks} chunks)")
            }
            RecordViolation::NewChunkIsMetadata { new, area } => {
                let what = match area {
                    None => "the header".to_string(),
                    Some(area) => format!("metadata area {area}"),
                };
                format!("new_chunk {new} is {what}, not a data chunk")
            }
            RecordViolation::NewChunkDuplicate { new } => format!(
                "new_chunk {new} is already used by an earlier record; two origin chunks would share one copy"
            ),
            RecordViolation::AllocationOutOfOrder { new, previous } => format!(
                "new_chunk {new} follows new_chunk {previous}; the kernel commits records in ascending allocation order"
            ),
            RecordViolation::OldChunkOverflow { old, chunk_bytes } => format!(
                "old_chunk {old} times the chunk size ({chunk_bytes} bytes) does not fit 64 bits; no origin is that large"
            ),
            RecordViolation::OldChunkPastOrigin { old, origin_chunks } => {
                format!("old_chunk {old} is past the end of the origin ({origin_chunks} chunks)")
            }
            RecordViolation::OldChunkDuplicate { old } => format!(
                "old_chunk {old} is already mapped by an earlier record; the snapshot would see two versions of it"
            ),
            RecordViolation::LegacyChunkTooLarge { field, value } => {
                format!("{field} {value} does not fit the 32 bits of the pre-2.6.29 code")
            }
        }
    }
}

/// The rules of one store: its geometry, the origin size when known, and
/// whether it is held to the legacy limits.
#[derive(Debug, Clone, Copy)]
pub struct RecordRules {
    geometry: Geometry,
    origin_chunks: Option<u64>,
    legacy: bool,
}

impl RecordRules {
    /// The rules for a store of `kind` laid out as `geometry`, with an origin
    /// of `origin_chunks` chunks when known.
    pub fn new(geometry: Geometry, origin_chunks: Option<u64>, kind: StoreKind) -> Self {
        RecordRules {
            geometry,
            origin_chunks,
            legacy: kind == StoreKind::Legacy,
        }
    }

    /// Where `new` may not lie: past the end of the device, or on the header or
    /// a metadata area.
    #[inline]
    pub fn new_chunk(&self, new: u64) -> Option<RecordViolation> {
        let device_chunks = self.geometry.device_chunks();
        if new >= device_chunks {
            Some(RecordViolation::NewChunkPastEnd { new, device_chunks })
        } else if self.geometry.is_metadata_chunk(new) {
            let area = (new >= HEADER_CHUNKS).then(|| self.geometry.area_of_chunk(new));
            Some(RecordViolation::NewChunkIsMetadata {
                new,
                area: area.flatten(),
            })
        } else {
            None
        }
    }

    /// What `old` may not be: so large that its byte offset overflows, or past
    /// the end of the origin when its size is known.
    #[inline]
    pub fn old_chunk(&self, old: u64) -> Option<RecordViolation> {
        let chunk_bytes = self.geometry.chunk_bytes() as u64;
        if old
            .checked_add(1)
            .and_then(|end| end.checked_mul(chunk_bytes))
            .is_none()
        {
            return Some(RecordViolation::OldChunkOverflow { old, chunk_bytes });
        }
        match self.origin_chunks {
            Some(origin_chunks) if old >= origin_chunks => {
                Some(RecordViolation::OldChunkPastOrigin { old, origin_chunks })
            }
            _ => None,
        }
    }

    /// For a legacy store: a chunk number beyond 32 bits (`old_chunk` first).
    #[inline]
    pub fn legacy_limit(&self, old: u64, new: u64) -> Option<RecordViolation> {
        if !self.legacy {
            None
        } else if old >= LEGACY_CHUNK_LIMIT {
            Some(RecordViolation::LegacyChunkTooLarge {
                field: "old_chunk",
                value: old,
            })
        } else if new >= LEGACY_CHUNK_LIMIT {
            Some(RecordViolation::LegacyChunkTooLarge {
                field: "new_chunk",
                value: new,
            })
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(origin_chunks: Option<u64>, kind: StoreKind) -> RecordRules {
        // 8-sector chunks: 256 records per area, stride 257; 2000 chunks.
        let geometry = Geometry::new(8, 2000 * 4096).unwrap();
        RecordRules::new(geometry, origin_chunks, kind)
    }

    #[test]
    fn new_chunk_must_be_a_data_chunk_on_the_device() {
        let rules = rules(None, StoreKind::Persistent);
        assert_eq!(rules.new_chunk(2), None);
        assert_eq!(
            rules.new_chunk(0),
            Some(RecordViolation::NewChunkIsMetadata { new: 0, area: None })
        );
        let area_1 = rules.new_chunk(1 + 257).unwrap();
        assert_eq!(
            area_1,
            RecordViolation::NewChunkIsMetadata {
                new: 258,
                area: Some(1)
            }
        );
        assert_eq!(area_1.code(), FindingCode::NewChunkIsMetadata);
        assert_eq!(
            area_1.describe(),
            "new_chunk 258 is metadata area 1, not a data chunk"
        );
        let past = rules.new_chunk(2000).unwrap();
        assert_eq!(past.code(), FindingCode::NewChunkPastEnd);
        assert!(past.is_fatal());
        assert_eq!(
            past.describe(),
            "new_chunk 2000 is past the end of the device (2000 chunks)"
        );
    }

    #[test]
    fn old_chunk_overflow_and_origin_end() {
        let rules = rules(Some(100), StoreKind::Persistent);
        assert_eq!(rules.old_chunk(99), None);
        let past = rules.old_chunk(100).unwrap();
        assert_eq!(past.code(), FindingCode::OldChunkPastOrigin);
        assert!(!past.is_fatal());
        assert_eq!(
            rules.old_chunk(u64::MAX / 4096).map(|v| v.code()),
            Some(FindingCode::OldChunkOverflow)
        );
    }

    #[test]
    fn legacy_limits_only_for_legacy_stores() {
        let big = LEGACY_CHUNK_LIMIT;
        assert_eq!(
            rules(None, StoreKind::Persistent).legacy_limit(big, 5),
            None
        );
        let legacy = rules(None, StoreKind::Legacy);
        assert_eq!(
            legacy.legacy_limit(3, big),
            Some(RecordViolation::LegacyChunkTooLarge {
                field: "new_chunk",
                value: big
            })
        );
        assert_eq!(
            legacy.legacy_limit(big, big).unwrap().describe(),
            format!("old_chunk {big} does not fit the 32 bits of the pre-2.6.29 code")
        );
    }
}
