//! The shared-store repair report: where the geometry came from, what the tree
//! walk and the leaf scan found, every record kept or dropped per snapshot, and
//! the origin ranges whose records could not be read (serialized as JSON).

use serde::Serialize;

pub use crate::origin_range::OriginRange;

pub use crate::repair::report::{ReportHead, Source, LISTED_MAX, REPAIR_FORMAT_VERSION};

/// Why a record was dropped. Serialized in kebab-case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropReason {
    /// The origin chunk lies past the end of the origin.
    OriginPastEnd,
    /// The COW chunk is the header, bitmap or journal, or past the device.
    ChunkOutsideDataRange,
    /// The share mask is zero: no snapshot sees the record.
    MaskEmpty,
    /// The share mask names a snapshot that does not exist.
    MaskOutsideSnapmask,
    /// Every snapshot of the mask is named by another record of the same
    /// origin chunk too: which copy it read is uncertain, so its bit was
    /// removed from every such record, and this one had none left.
    MaskOverlap,
    /// The COW chunk is a node or leaf of the salvaged tree.
    ChunkIsTreeBlock,
    /// Another record claims the same COW chunk: which one it belongs to is
    /// uncertain, so every claimant is dropped.
    ChunkUsedTwice,
}

impl DropReason {
    /// Every reason, in the order the rules apply.
    pub const ALL: [DropReason; 7] = [
        DropReason::OriginPastEnd,
        DropReason::ChunkOutsideDataRange,
        DropReason::MaskEmpty,
        DropReason::MaskOutsideSnapmask,
        DropReason::MaskOverlap,
        DropReason::ChunkIsTreeBlock,
        DropReason::ChunkUsedTwice,
    ];

    /// The reason as it appears in JSON and text output.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::OriginPastEnd => "origin-past-end",
            DropReason::ChunkOutsideDataRange => "chunk-outside-data-range",
            DropReason::ChunkIsTreeBlock => "chunk-is-tree-block",
            DropReason::MaskEmpty => "mask-empty",
            DropReason::MaskOutsideSnapmask => "mask-outside-snapmask",
            DropReason::MaskOverlap => "mask-overlap",
            DropReason::ChunkUsedTwice => "chunk-used-twice",
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
    /// The input leaf it was read from.
    pub leaf: u64,
    /// Its origin chunk.
    pub origin: u64,
    /// Its share mask.
    pub share: u64,
    /// Its COW chunk.
    pub chunk: u64,
    /// Why it was dropped.
    pub reason: DropReason,
    /// One sentence for people, starting with the place.
    pub message: String,
}

/// How many records were dropped for one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ReasonCount {
    /// The reason.
    pub reason: DropReason,
    /// Records dropped for it.
    pub count: u64,
}

/// The key range of a tree block that could not be used: its records are not
/// known from the tree; the scan may have recovered leaves inside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LostRange {
    /// The range its parent gave it.
    pub range: OriginRange,
    /// The block's chunk (`None` when the header names no usable root).
    pub block: Option<u64>,
    /// Its level as the parent saw it (0 = leaf).
    pub level: u32,
    /// What was wrong with it.
    pub problem: String,
    /// Leaves the scan recovered inside the range.
    pub recovered_leaves: u64,
    /// Records in those leaves (before the record rules).
    pub recovered_records: u64,
    /// The parts no recovered leaf covers: any records there are lost.
    pub unresolved: Vec<OriginRange>,
}

/// Records kept and lost for one snapshot of the output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotTally {
    /// The snapshot id.
    pub id: u32,
    /// Records it sees in the output.
    pub kept: u64,
    /// Records it saw in readable leaves that were dropped (it reads the origin
    /// there now).
    pub lost: u64,
    /// Whether it may also have lost records in unreadable ranges (not counted).
    pub lost_unknown: bool,
    /// The origin ranges it lost: it reads the origin there now (at most
    /// [`LISTED_MAX`] ranges).
    pub read_through: Vec<OriginRange>,
    /// Whether `read_through` names every origin chunk where the snapshot
    /// reads the origin now: false when more were lost than are listed, and
    /// when it may have lost records in unreadable ranges (`lost_unknown`).
    pub read_through_complete: bool,
}

/// Which chunks the leaf scan read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScanMode {
    /// Chunks the bitmap marks in use that nothing reachable references.
    Used,
    /// Every chunk of the data range that nothing reachable references.
    All,
}

/// What the leaf scan found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ScanSummary {
    /// Which chunks were read.
    pub mode: ScanMode,
    /// Chunks read.
    pub chunks_scanned: u64,
    /// Chunks that decode as leaves.
    pub leaves_found: u64,
    /// Leaves used to rebuild lost ranges.
    pub leaves_used: u64,
    /// Leaves overlapping a more credible leaf (stale copies), ignored.
    pub leaves_overlapping: u64,
    /// Leaves whose records mostly point at chunks free, out of range or
    /// already used, ignored.
    pub leaves_implausible: u64,
    /// Leaves entirely outside every lost range, ignored.
    pub leaves_outside_damage: u64,
    /// Empty leaves found.
    pub leaves_empty: u64,
    /// Chunks that look like interior nodes (counted as old tree blocks).
    pub nodes_found: u64,
}

/// Where the input's chunks in use went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct ChunkAccounting {
    /// Data-range chunks the input bitmap marks in use.
    pub used_before: u64,
    /// Data chunks of kept records (the output keeps their numbers).
    pub data_kept: u64,
    /// Of those, chunks the input bitmap marked free.
    pub kept_but_marked_free: u64,
    /// Old nodes and leaves (the output has a new tree).
    pub old_tree_blocks: u64,
    /// Chunks of dropped records that no kept record uses.
    pub dropped_record_chunks: u64,
    /// Chunks marked in use that nothing found references: freed.
    pub leaked_freed: u64,
}

/// What a shared-store repair found and did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairReport {
    /// Version, kind, input, output and chunk size ([`ReportHead`]).
    #[serde(flatten)]
    pub head: ReportHead,
    /// Journal chunks of the output.
    pub journal_chunks: u64,
    /// Where that came from.
    pub journal_source: Source,
    /// The output's snapmask.
    pub snapmask: u64,
    /// Where that came from.
    pub snapmask_source: Source,
    /// The output's snapshot ids.
    pub snapshots: Vec<u32>,
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
    /// First chunk of the data range.
    pub data_start: u64,
    /// Whether the input bitmap agreed with the tree well enough to guide the scan.
    pub bitmap_credible: bool,
    /// Interior nodes read from the root.
    pub nodes_reached: u64,
    /// Leaves reached from the root and kept.
    pub leaves_reached: u64,
    /// Tree blocks that could not be used, with their ranges.
    pub lost_ranges: Vec<LostRange>,
    /// Lost ranges not listed.
    pub lost_ranges_unlisted: u64,
    /// The leaf scan, when the tree was damaged.
    pub scan: Option<ScanSummary>,
    /// Records carried over.
    pub kept: u64,
    /// Distinct origin chunks carried over.
    pub kept_origin_chunks: u64,
    /// Kept records whose mask lost bits that another record of the same
    /// origin chunk carried too (those snapshots read the origin there now,
    /// and the loss is counted in `per_snapshot`).
    pub masks_trimmed: u64,
    /// Records read and dropped.
    pub dropped_total: u64,
    /// Dropped records per reason (reasons with none left out).
    pub dropped_by_reason: Vec<ReasonCount>,
    /// The dropped records, in origin order (at most [`LISTED_MAX`]).
    pub dropped: Vec<DroppedRecord>,
    /// Dropped records not listed.
    pub dropped_unlisted: u64,
    /// Whether records in unreadable ranges were lost (their number is unknown).
    pub records_unknown: bool,
    /// An upper bound on those records, when the bitmap is credible: the chunks
    /// marked in use that no kept record or tree block accounts for.
    pub unknown_records_at_most: Option<u64>,
    /// Kept and lost records per snapshot of the output.
    pub per_snapshot: Vec<SnapshotTally>,
    /// Snapshot bits records carry outside an intact header's snapmask (their
    /// records are dropped; the snapmask is not widened).
    pub bits_outside_snapmask: u64,
    /// Whether records were lost: dropped, trimmed of a snapshot's bit, or in
    /// unreadable ranges.
    pub records_lost: bool,
    /// The unresolved parts of the lost ranges: any snapshot may read the
    /// origin there now (at most [`LISTED_MAX`] ranges).
    pub read_through_unknown: Vec<OriginRange>,
    /// Where the input's chunks went.
    pub chunks: ChunkAccounting,
    /// Leaves of the output tree, once written.
    pub leaves_after: Option<u64>,
    /// Node levels of the output tree, once written.
    pub tree_level_after: Option<u32>,
    /// Data chunks copied into the output (holes of sparse images skipped).
    pub data_chunks_copied: Option<u64>,
    /// What happened to the input's journal (replayed transactions, a
    /// damaged superblock); absent when it was not read.
    pub journal: Option<super::replay::JournalRepair>,
    /// Things worth saying that are not drops.
    pub notes: Vec<String>,
}

crate::repair::report::deref_to_head!(RepairReport);

impl RepairReport {
    /// True when nothing could be salvaged from a store that held something.
    pub fn nothing_salvaged(&self) -> bool {
        self.kept == 0 && (self.dropped_total > 0 || self.records_unknown)
    }

    /// True when records were dropped, a snapshot lost a record, or records
    /// may be lost in unreadable ranges.
    pub fn loses_records(&self) -> bool {
        self.dropped_total > 0
            || self.records_unknown
            || self.per_snapshot.iter().any(|t| t.lost > 0)
    }

    /// Records dropped for `reason`.
    pub fn dropped_for(&self, reason: DropReason) -> u64 {
        self.dropped_by_reason
            .iter()
            .find(|r| r.reason == reason)
            .map_or(0, |r| r.count)
    }
}
