//! The repair report: what was kept, what was dropped and why (serialized as
//! JSON).

use serde::Serialize;

use crate::origin_range::{ranges_of, OriginRange};
use crate::persistent::chunk_evidence::ChunkSizeEvidence;
use crate::persistent::rebuild::Relocation;
use crate::persistent::state::Usage;
use crate::persistent::store::PlacedRecord;

pub use crate::repair::report::{ReportHead, LISTED_MAX, REPAIR_FORMAT_VERSION};

/// Where the chunk size used came from: the header, the caller (`option`),
/// or inferred from the records of the first areas.
pub type ChunkSizeSource = crate::repair::report::Source;

/// Origin chunks of dropped records remembered to name the lost ranges; past
/// this many the list of ranges is marked incomplete.
const LOST_CHUNKS_REMEMBERED: usize = 1 << 20;

/// Why a record was dropped. Serialized in kebab-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropReason {
    /// `new_chunk` lies past the end of the device.
    NewChunkPastEnd,
    /// `new_chunk` is the header or a metadata area.
    NewChunkIsMetadata,
    /// `new_chunk` lies before (or on) the record's own area.
    NewChunkBeforeArea,
    /// An earlier kept record uses the same `new_chunk`.
    NewChunkDuplicate,
    /// An earlier kept record maps the same `old_chunk`.
    OldChunkDuplicate,
    /// `old_chunk` lies past the end of the origin.
    OldChunkPastOrigin,
    /// `old_chunk` times the chunk size does not fit 64 bits: no origin is
    /// that large.
    OldChunkOverflow,
    /// A chunk number does not fit the 32 bits of a legacy store.
    LegacyChunkTooLarge,
    /// The data chunk could not be read.
    DataUnreadable,
}

impl DropReason {
    /// The reason as it appears in JSON and text output.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NewChunkPastEnd => "new-chunk-past-end",
            DropReason::NewChunkIsMetadata => "new-chunk-is-metadata",
            DropReason::NewChunkBeforeArea => "new-chunk-before-area",
            DropReason::NewChunkDuplicate => "new-chunk-duplicate",
            DropReason::OldChunkDuplicate => "old-chunk-duplicate",
            DropReason::OldChunkPastOrigin => "old-chunk-past-origin",
            DropReason::OldChunkOverflow => "old-chunk-overflow",
            DropReason::LegacyChunkTooLarge => "legacy-chunk-too-large",
            DropReason::DataUnreadable => "data-unreadable",
        }
    }

    /// Whether a record dropped for this reason still names the origin chunk
    /// it mapped. Only a record sound on its own does: one that lost a
    /// collision with an earlier record, or whose data chunk cannot be read.
    /// A record with a fault of its own (a chunk number past an end, on
    /// metadata, before its area, too large) may be garbage in every field,
    /// so its `old_chunk` is no evidence of what was lost.
    pub fn old_chunk_is_credible(self) -> bool {
        match self {
            DropReason::NewChunkDuplicate
            | DropReason::OldChunkDuplicate
            | DropReason::DataUnreadable => true,
            DropReason::NewChunkPastEnd
            | DropReason::NewChunkIsMetadata
            | DropReason::NewChunkBeforeArea
            | DropReason::OldChunkPastOrigin
            | DropReason::OldChunkOverflow
            | DropReason::LegacyChunkTooLarge => false,
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One record that was not carried over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DroppedRecord {
    /// The area it was read from.
    pub area: u64,
    /// Its index in that area.
    pub index: u64,
    /// Its origin chunk.
    pub old_chunk: u64,
    /// Its COW chunk.
    pub new_chunk: u64,
    /// Why it was dropped.
    pub reason: DropReason,
    /// One sentence for people, starting with the place.
    pub message: String,
}

/// An area the kernel reads whose records are nearly all implausible: it was
/// overwritten. Its records are dropped together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedArea {
    /// The area index.
    pub area: u64,
    /// The chunk holding it.
    pub chunk: u64,
    /// Non-empty record slots in it (all dropped).
    pub records: u64,
    /// How many of them looked plausible on their own.
    pub plausible: u64,
    /// One sentence for people.
    pub message: String,
}

/// What a repair found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    /// Version, kind, input, output and chunk size ([`ReportHead`]).
    #[serde(flatten)]
    pub head: ReportHead,
    /// The chunk size inferred from the areas, when it was inferred.
    pub inferred_chunk_size: Option<u32>,
    /// When the chunk size was inferred: what the first areas read under each
    /// plausible chunk size.
    pub chunk_size_evidence: Vec<ChunkSizeEvidence>,
    /// Whether the header needed repair (the output's header is always fresh).
    pub header_repaired: bool,
    /// What was wrong with the header.
    pub header_problems: Vec<String>,
    /// The input's valid flag, when its header could be trusted.
    pub input_valid: Option<bool>,
    /// Whether the output is marked valid.
    pub output_valid: bool,
    /// Whole chunks on the input device.
    pub device_chunks: u64,
    /// Area locations read.
    pub areas_scanned: u64,
    /// Records the kernel would read from the input.
    pub kernel_records: u64,
    /// Records carried over.
    pub kept: u64,
    /// Of those, records found outside the areas the kernel reads.
    pub recovered_beyond_kernel: u64,
    /// Records dropped, listed or not (damaged areas included).
    pub dropped_total: u64,
    /// The dropped records, in on-disk order (at most [`LISTED_MAX`]).
    pub dropped: Vec<DroppedRecord>,
    /// Dropped records not listed.
    pub dropped_unlisted: u64,
    /// Overwritten areas the kernel reads, dropped whole.
    pub damaged_areas: Vec<DamagedArea>,
    /// Area locations outside the kernel's view skipped as unused space
    /// (stale or junk bytes).
    pub skipped_areas: u64,
    /// Area locations that could not be read.
    pub unreadable_areas: Vec<u64>,
    /// The data chunk moved for the pre-2.6.29 reload hazard (legacy output).
    pub relocation: Option<Relocation>,
    /// Stale area locations zeroed on a reused output device.
    pub stale_areas_zeroed: u64,
    /// The output's usage, as `dmsetup status` would print it.
    pub usage_after: Option<Usage>,
    /// The output's status text.
    pub status_after: Option<String>,
    /// Empty record slots in areas before the last area holding kept records:
    /// the kernel fills every area before its last, so records were lost there
    /// (a zeroed area, a premature terminator).
    pub missing_records: u64,
    /// Whether records were lost: dropped, missing from an area that should
    /// be full, or in areas that could not be read.
    pub records_lost: bool,
    /// The origin ranges the snapshot now reads from the origin because their
    /// records were dropped (at most [`LISTED_MAX`] ranges).
    pub read_through: Vec<OriginRange>,
    /// Whether `read_through` names every origin chunk of a dropped record.
    pub read_through_complete: bool,
    /// Whether records were lost whose origin chunks cannot be told (areas
    /// overwritten, zeroed or unreadable, records dropped as garbage): the
    /// snapshot reads the origin there too.
    pub read_through_unknown: bool,
    /// Dropped records whose `old_chunk` is no evidence (see
    /// [`DropReason::old_chunk_is_credible`]): left out of `read_through`.
    pub dropped_origin_unknown: u64,
    /// Things worth saying that are not drops.
    pub notes: Vec<String>,
    /// Origin chunks of dropped records that no kept record maps.
    #[serde(skip)]
    pub(super) lost_old_chunks: Vec<u64>,
    /// Whether more origin chunks were lost than `lost_old_chunks` holds.
    #[serde(skip)]
    pub(super) lost_old_chunks_overflow: bool,
}

crate::repair::report::deref_to_head!(RepairReport);

impl RepairReport {
    /// True when records were lost and none could be kept.
    pub fn nothing_salvaged(&self) -> bool {
        self.kept == 0 && self.dropped_total > 0
    }

    /// True when records were dropped, are missing, or could not be read:
    /// the snapshot reads the origin where they were.
    pub fn loses_records(&self) -> bool {
        self.dropped_total > 0 || self.missing_records > 0 || !self.unreadable_areas.is_empty()
    }

    /// Turns what was lost into `records_lost` and the read-through ranges.
    pub(super) fn settle_losses(&mut self) {
        let (ranges, all) = ranges_of(&mut self.lost_old_chunks, LISTED_MAX);
        self.read_through = ranges;
        self.read_through_complete =
            all && !self.lost_old_chunks_overflow && self.dropped_origin_unknown == 0;
        self.read_through_unknown = self.dropped_origin_unknown > 0
            || !self.damaged_areas.is_empty()
            || !self.unreadable_areas.is_empty()
            || self.missing_records > 0;
        self.records_lost = self.loses_records();
    }

    pub(super) fn drop_record(
        &mut self,
        placed: PlacedRecord,
        reason: DropReason,
        message: String,
    ) {
        self.dropped_total += 1;
        if !reason.old_chunk_is_credible() {
            self.dropped_origin_unknown += 1;
        } else if self.lost_old_chunks.len() < LOST_CHUNKS_REMEMBERED {
            self.lost_old_chunks.push(placed.record.old_chunk);
        } else {
            self.lost_old_chunks_overflow = true;
        }
        if self.dropped.len() < LISTED_MAX {
            self.dropped.push(DroppedRecord {
                area: placed.area,
                index: placed.index,
                old_chunk: placed.record.old_chunk,
                new_chunk: placed.record.new_chunk,
                reason,
                message,
            });
        } else {
            self.dropped_unlisted += 1;
        }
    }
}
