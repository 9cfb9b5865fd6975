//! Findings: what a checker reports about a store, one problem each.
//!
//! A finding has a severity, a stable machine code, the place it is at and one
//! sentence for people. Codes never change meaning once released; the list with
//! their meaning is in docs/cowcheck.md.

use serde::{Deserialize, Serialize};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Harmless to the kernel today, but a sign of damage or a hazard (a leak, a
    /// hole left by a crash, garbage after a terminator). Non-fatal.
    Warning,
    /// The kernel would misread the store or lose data. Fatal.
    Error,
}

/// The stable code of a finding. Serialized in kebab-case (`new-chunk-past-end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingCode {
    /// The header magic is not the store's magic.
    BadMagic,
    /// The header version is not 1.
    BadVersion,
    /// The header chunk size is zero, not a power of two, too large, or does not fit.
    BadChunkSize,
    /// The header's valid field is 0: the kernel will refuse every I/O to the snapshot.
    Invalidated,
    /// The header's valid field is neither 0 nor 1 (the kernel treats it as valid).
    ValidFlagUnusual,
    /// The device is too small for a header and the first metadata area.
    DeviceTooSmall,
    /// Bytes after the 16-byte header in chunk 0 are not zero.
    HeaderTrailingGarbage,
    /// An area the kernel must read lies past the end of the device.
    AreaPastEnd,
    /// A metadata area's records are all implausible: it was overwritten.
    AreaGarbage,
    /// Non-zero bytes after the terminator of the last area.
    GarbageAfterTerminator,
    /// A record's new_chunk lies past the end of the COW device.
    NewChunkPastEnd,
    /// A record's new_chunk is the header or a metadata area.
    NewChunkIsMetadata,
    /// Two records use the same new_chunk.
    NewChunkDuplicate,
    /// Two records map the same old_chunk.
    OldChunkDuplicate,
    /// A record's old_chunk lies past the end of the origin.
    OldChunkPastOrigin,
    /// A record's old_chunk times the chunk size does not fit 64 bits: no
    /// origin is that large.
    OldChunkOverflow,
    /// Records are not in the kernel's allocation order (ascending new_chunk).
    AllocationOutOfOrder,
    /// Data chunks below the allocation point that no record uses (a crash hole).
    AllocationHole,
    /// A chunk number does not fit the 32 bits of the pre-2.6.29 code.
    LegacyChunkTooLarge,
    /// Under a pre-2.6.29 kernel the next allocation would land on a metadata chunk.
    LegacyNextOnMetadata,
    /// The area after the last one the kernel reads holds credible records: an
    /// area before it was lost.
    RecordsPastLastArea,
    /// More findings of one code than the report keeps; the rest are counted.
    FindingsSuppressed,
    /// The header's chunk size leaves the areas empty, while another chunk
    /// size reads credible records: the chunk size field is damaged.
    ChunkSizeReadsNothing,
    /// Shared: the journal the header asks for leaves no room for the tree.
    JournalTooLarge,
    /// Shared: the header's root_tree_chunk is outside the data range.
    RootOutOfRange,
    /// Shared: the header's tree_level is 0 or impossibly large.
    BadTreeLevel,
    /// Shared: a node's count is 0 or more than a chunk holds.
    NodeBadCount,
    /// Shared: a node's keys do not strictly increase.
    NodeKeysOutOfOrder,
    /// Shared: a node key lies outside the range its parent gives the node.
    NodeKeyOutOfRange,
    /// Shared: a node points at a chunk outside the data range.
    TreeChunkOutOfRange,
    /// Shared: a tree block is reached from two places (or from itself).
    TreeChunkReused,
    /// Shared: a node or leaf is not marked in use in the bitmap.
    TreeChunkNotMarked,
    /// Shared: a leaf where a node belongs, or a node where a leaf belongs.
    TreeDepthMismatch,
    /// Shared: a chunk where a leaf belongs does not start with 0x1eaf.
    LeafBadMagic,
    /// Shared: a leaf's version is not 0.
    LeafBadVersion,
    /// Shared: a leaf's count is more than a chunk holds.
    LeafBadCount,
    /// Shared: a leaf's record offsets are outside the record area or go down.
    LeafBadOffsets,
    /// Shared: a leaf's sentinel offset is not the chunk size.
    LeafBadSentinel,
    /// Shared: a leaf's sentinel rchunk is not 0.
    LeafSentinelRchunk,
    /// Shared: a leaf's map is not sorted by strictly increasing rchunk.
    LeafMapOutOfOrder,
    /// Shared: a leaf's map entry has no record.
    LeafEmptyEntry,
    /// Shared: a leaf's origin chunk lies outside the range its parent gives it.
    LeafEntryOutOfRange,
    /// Shared: a leaf's non-zero using_mask is not the OR of its share masks.
    UsingMaskMismatch,
    /// Shared: a record's share mask is 0.
    ShareMaskEmpty,
    /// Shared: a record's share mask names a snapshot not in snapmask.
    ShareMaskOutsideSnapmask,
    /// Shared: two records of one origin chunk share a snapshot bit.
    ShareMasksOverlap,
    /// Shared: a record's COW chunk is outside the data range.
    CowChunkOutOfRange,
    /// Shared: two records use the same COW chunk.
    CowChunkDuplicate,
    /// Shared: a record's COW chunk is a node or leaf of the tree.
    CowChunkIsTree,
    /// Shared: a record's COW chunk is not marked in use in the bitmap.
    CowChunkNotMarked,
    /// Shared: chunks marked in use that nothing references.
    ChunkLeaked,
    /// Shared: a header, bitmap or journal chunk is not marked in use.
    ReservedChunkNotMarked,
    /// Shared: bitmap bits set at or past the device's last chunk.
    BitmapBitsPastEnd,
    /// Shared: the journal superblock is damaged (magic, version, crc32c, or
    /// fields that do not fit the store).
    JournalSuperblockDamaged,
    /// Shared: committed journal transactions wait for replay.
    JournalNeedsReplay,
    /// Shared: a journal transaction is invalid in a way a crash cannot leave
    /// (sizes past the log, or a whole transaction with invalid home chunks
    /// or header fields).
    JournalTransactionDamaged,
    /// Clone: a metadata block's checksum does not match its bytes.
    BlockChecksum,
    /// Clone: a metadata block names another location than where it was read.
    BlockLocation,
    /// Clone: the superblock's region size is one the kernel refuses.
    BadRegionSize,
    /// Clone: the superblock's target size is 0.
    BadTargetSize,
    /// Clone: the sizes give more regions than the kernel tracks (2^31).
    TooManyRegions,
    /// Clone: the superblock's region or target size differs from the table's.
    SizeMismatch,
    /// Clone: a reference to a block past the end of the metadata device.
    BlockPastEnd,
    /// Clone: the bitset's array holds another number of words than the regions need.
    ArrayLength,
    /// Clone: an array block's header does not fit its place in the array.
    ArrayBlockDamaged,
    /// Clone: bits past the last region are set in the bitset.
    BitsPastLastRegion,
    /// Clone: a B-tree node breaks the structure (header, keys, key range, depth).
    BtreeDamaged,
    /// Clone: a block the space map counts that nothing reaches.
    BlockLeaked,
    /// Clone: a block reached more often than the space map counts it (used twice).
    BlockUnderCounted,
    /// Clone: a reachable block the space map counts more often than it is reached.
    BlockOverCounted,
    /// Clone: the space map root's nr_allocated differs from the blocks counted.
    SpaceMapAllocated,
    /// Clone: a space map index entry's nr_free or none_free_before differs from its bitmap.
    SpaceMapIndex,
    /// Clone: a ref-count tree entry for a block whose bitmap entry is not 3.
    RefCountTreeStray,
}

impl FindingCode {
    /// The code as it appears in JSON and text output.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingCode::BadMagic => "bad-magic",
            FindingCode::BadVersion => "bad-version",
            FindingCode::BadChunkSize => "bad-chunk-size",
            FindingCode::Invalidated => "invalidated",
            FindingCode::ValidFlagUnusual => "valid-flag-unusual",
            FindingCode::DeviceTooSmall => "device-too-small",
            FindingCode::HeaderTrailingGarbage => "header-trailing-garbage",
            FindingCode::AreaPastEnd => "area-past-end",
            FindingCode::AreaGarbage => "area-garbage",
            FindingCode::GarbageAfterTerminator => "garbage-after-terminator",
            FindingCode::NewChunkPastEnd => "new-chunk-past-end",
            FindingCode::NewChunkIsMetadata => "new-chunk-is-metadata",
            FindingCode::NewChunkDuplicate => "new-chunk-duplicate",
            FindingCode::OldChunkDuplicate => "old-chunk-duplicate",
            FindingCode::OldChunkPastOrigin => "old-chunk-past-origin",
            FindingCode::OldChunkOverflow => "old-chunk-overflow",
            FindingCode::AllocationOutOfOrder => "allocation-out-of-order",
            FindingCode::AllocationHole => "allocation-hole",
            FindingCode::LegacyChunkTooLarge => "legacy-chunk-too-large",
            FindingCode::LegacyNextOnMetadata => "legacy-next-on-metadata",
            FindingCode::RecordsPastLastArea => "records-past-last-area",
            FindingCode::FindingsSuppressed => "findings-suppressed",
            FindingCode::ChunkSizeReadsNothing => "chunk-size-reads-nothing",
            FindingCode::JournalTooLarge => "journal-too-large",
            FindingCode::RootOutOfRange => "root-out-of-range",
            FindingCode::BadTreeLevel => "bad-tree-level",
            FindingCode::NodeBadCount => "node-bad-count",
            FindingCode::NodeKeysOutOfOrder => "node-keys-out-of-order",
            FindingCode::NodeKeyOutOfRange => "node-key-out-of-range",
            FindingCode::TreeChunkOutOfRange => "tree-chunk-out-of-range",
            FindingCode::TreeChunkReused => "tree-chunk-reused",
            FindingCode::TreeChunkNotMarked => "tree-chunk-not-marked",
            FindingCode::TreeDepthMismatch => "tree-depth-mismatch",
            FindingCode::LeafBadMagic => "leaf-bad-magic",
            FindingCode::LeafBadVersion => "leaf-bad-version",
            FindingCode::LeafBadCount => "leaf-bad-count",
            FindingCode::LeafBadOffsets => "leaf-bad-offsets",
            FindingCode::LeafBadSentinel => "leaf-bad-sentinel",
            FindingCode::LeafSentinelRchunk => "leaf-sentinel-rchunk",
            FindingCode::LeafMapOutOfOrder => "leaf-map-out-of-order",
            FindingCode::LeafEmptyEntry => "leaf-empty-entry",
            FindingCode::LeafEntryOutOfRange => "leaf-entry-out-of-range",
            FindingCode::UsingMaskMismatch => "using-mask-mismatch",
            FindingCode::ShareMaskEmpty => "share-mask-empty",
            FindingCode::ShareMaskOutsideSnapmask => "share-mask-outside-snapmask",
            FindingCode::ShareMasksOverlap => "share-masks-overlap",
            FindingCode::CowChunkOutOfRange => "cow-chunk-out-of-range",
            FindingCode::CowChunkDuplicate => "cow-chunk-duplicate",
            FindingCode::CowChunkIsTree => "cow-chunk-is-tree",
            FindingCode::CowChunkNotMarked => "cow-chunk-not-marked",
            FindingCode::ChunkLeaked => "chunk-leaked",
            FindingCode::ReservedChunkNotMarked => "reserved-chunk-not-marked",
            FindingCode::BitmapBitsPastEnd => "bitmap-bits-past-end",
            FindingCode::JournalSuperblockDamaged => "journal-superblock-damaged",
            FindingCode::JournalNeedsReplay => "journal-needs-replay",
            FindingCode::JournalTransactionDamaged => "journal-transaction-damaged",
            FindingCode::BlockChecksum => "block-checksum",
            FindingCode::BlockLocation => "block-location",
            FindingCode::BadRegionSize => "bad-region-size",
            FindingCode::BadTargetSize => "bad-target-size",
            FindingCode::TooManyRegions => "too-many-regions",
            FindingCode::SizeMismatch => "size-mismatch",
            FindingCode::BlockPastEnd => "block-past-end",
            FindingCode::ArrayLength => "array-length",
            FindingCode::ArrayBlockDamaged => "array-block-damaged",
            FindingCode::BitsPastLastRegion => "bits-past-last-region",
            FindingCode::BtreeDamaged => "btree-damaged",
            FindingCode::BlockLeaked => "block-leaked",
            FindingCode::BlockUnderCounted => "block-under-counted",
            FindingCode::BlockOverCounted => "block-over-counted",
            FindingCode::SpaceMapAllocated => "space-map-allocated",
            FindingCode::SpaceMapIndex => "space-map-index",
            FindingCode::RefCountTreeStray => "ref-count-tree-stray",
        }
    }
}

impl std::fmt::Display for FindingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a finding is. Every field is optional; those that are set are
/// serialized next to the finding's code and message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// The COW chunk the problem is in (a metadata area, the header, a node...).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub chunk: Option<u64>,
    /// The metadata area index (persistent stores).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub area: Option<u64>,
    /// The record index inside its area or leaf.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub record: Option<u64>,
    /// The record's origin chunk.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub old_chunk: Option<u64>,
    /// The record's COW chunk.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub new_chunk: Option<u64>,
    /// The byte offset on the device, where one is meaningful.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub offset: Option<u64>,
    /// The tree level of the block (0 = leaf; shared stores).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub level: Option<u32>,
    /// Lowest origin chunk of the key range the damage affects (shared stores).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub key_lo: Option<u64>,
    /// One past the highest origin chunk of that range; absent when unbounded.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub key_hi: Option<u64>,
    /// The node that points at the block (shared stores).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub parent: Option<u64>,
    /// The entry index inside a node or a leaf's map (shared stores).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub entry: Option<u64>,
    /// The record's share mask (shared stores).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub mask: Option<u64>,
    /// The number of chunks of a run starting at `chunk`; for
    /// `findings-suppressed`, the findings not listed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub count: Option<u64>,
}

impl Location {
    /// A location in a metadata area of a persistent store.
    pub fn area(area: u64, chunk: u64) -> Self {
        Location {
            area: Some(area),
            chunk: Some(chunk),
            ..Location::default()
        }
    }

    /// A location at one record of a metadata area.
    pub fn record(area: u64, chunk: u64, record: u64, old_chunk: u64, new_chunk: u64) -> Self {
        Location {
            area: Some(area),
            chunk: Some(chunk),
            record: Some(record),
            old_chunk: Some(old_chunk),
            new_chunk: Some(new_chunk),
            ..Location::default()
        }
    }

    /// A location at a chunk.
    pub fn chunk(chunk: u64) -> Self {
        Location {
            chunk: Some(chunk),
            ..Location::default()
        }
    }

    /// A location at byte `offset` of the header in chunk 0.
    pub fn header_field(offset: u64) -> Self {
        Location {
            chunk: Some(0),
            offset: Some(offset),
            ..Location::default()
        }
    }

    /// A location at a run of `count` chunks starting at `start`.
    pub fn run(start: u64, count: u64) -> Self {
        Location {
            chunk: Some(start),
            count: Some(count),
            ..Location::default()
        }
    }
}

/// One problem found in a store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Fatal or not.
    pub severity: Severity,
    /// The stable code.
    pub code: FindingCode,
    /// One sentence for people, starting with the place, e.g. "area 3 (chunk 772)
    /// record 17: new_chunk 99999 is past the end of the device (2048 chunks)".
    pub message: String,
    /// Where the problem is.
    #[serde(flatten)]
    pub location: Location,
}

impl Finding {
    /// A fatal finding.
    pub fn error(code: FindingCode, location: Location, message: String) -> Self {
        Finding {
            severity: Severity::Error,
            code,
            message,
            location,
        }
    }

    /// A non-fatal finding.
    pub fn warning(code: FindingCode, location: Location, message: String) -> Self {
        Finding {
            severity: Severity::Warning,
            code,
            message,
            location,
        }
    }
}

/// Collects findings, keeping at most `limit` of each code and counting the rest,
/// so a badly damaged store cannot make a report grow with the device.
#[derive(Debug)]
pub struct FindingSink {
    findings: Vec<Finding>,
    per_code: std::collections::BTreeMap<FindingCode, (u64, Severity)>,
    limit: u64,
    code_limits: std::collections::BTreeMap<FindingCode, (u64, &'static str)>,
}

/// Findings of one code a store check keeps in its report before the rest
/// are only counted.
pub const FINDINGS_PER_CODE: u64 = 1000;

impl FindingSink {
    /// A sink keeping up to `limit` findings per code.
    pub fn new(limit: u64) -> Self {
        FindingSink {
            findings: Vec::new(),
            per_code: Default::default(),
            limit,
            code_limits: Default::default(),
        }
    }

    /// A sink for a store check: up to `limit` findings per code, and records
    /// past the end of the origin called out once (one listed, the rest
    /// counted with a question about `--origin`), since they almost always
    /// mean the origin given is not this store's.
    pub fn for_store_check(limit: u64) -> Self {
        let mut sink = FindingSink::new(limit);
        sink.limit_code(
            FindingCode::OldChunkPastOrigin,
            1,
            "; is --origin (or --origin-size) the device this store snapshots?",
        );
        sink
    }

    /// Keeps at most `limit` findings of `code` (fewer than the sink's
    /// limit), and ends the count of the rest with `hint`: for findings that
    /// share one cause, called out once (`old-chunk-past-origin`: a wrong
    /// `--origin`).
    pub fn limit_code(&mut self, code: FindingCode, limit: u64, hint: &'static str) {
        self.code_limits.insert(code, (limit, hint));
    }

    fn limit_of(&self, code: FindingCode) -> u64 {
        self.code_limits
            .get(&code)
            .map_or(self.limit, |&(limit, _)| limit.min(self.limit))
    }

    /// Records a finding (or only counts it, past the limit for its code).
    pub fn push(&mut self, finding: Finding) {
        let limit = self.limit_of(finding.code);
        let entry = self
            .per_code
            .entry(finding.code)
            .or_insert((0, finding.severity));
        entry.0 += 1;
        entry.1 = entry.1.max(finding.severity);
        if entry.0 <= limit {
            self.findings.push(finding);
        }
    }

    /// Whether any finding of `code` was pushed.
    pub fn has(&self, code: FindingCode) -> bool {
        self.per_code.contains_key(&code)
    }

    /// The findings kept, followed by one `findings-suppressed` finding per code
    /// that went past its limit: "... and N more CODE findings (M in all)",
    /// with N as its `count`.
    pub fn finish(mut self) -> Vec<Finding> {
        for (&code, &(count, severity)) in &self.per_code {
            let limit = self.limit_of(code);
            if count > limit {
                let hidden = count - limit;
                let hint = self.code_limits.get(&code).map_or("", |&(_, hint)| hint);
                self.findings.push(Finding {
                    severity,
                    code: FindingCode::FindingsSuppressed,
                    message: format!(
                        "... and {hidden} more {code} findings ({count} in all){hint}"
                    ),
                    location: Location {
                        count: Some(hidden),
                        ..Location::default()
                    },
                });
            }
        }
        self.findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_documented() {
        for code in [
            FindingCode::BadMagic,
            FindingCode::NewChunkPastEnd,
            FindingCode::LegacyNextOnMetadata,
            FindingCode::AreaGarbage,
            FindingCode::FindingsSuppressed,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn location_is_flattened_and_sparse() {
        let finding = Finding::error(
            FindingCode::NewChunkPastEnd,
            Location::record(3, 772, 17, 5, 99999),
            "x".into(),
        );
        let json = serde_json::to_value(&finding).unwrap();
        assert_eq!(json["severity"], "error");
        assert_eq!(json["code"], "new-chunk-past-end");
        assert_eq!(json["area"], 3);
        assert_eq!(json["record"], 17);
        assert!(json.get("offset").is_none());
    }

    #[test]
    fn sink_limits_per_code() {
        let mut sink = FindingSink::new(2);
        for i in 0..5 {
            sink.push(Finding::error(
                FindingCode::NewChunkPastEnd,
                Location::chunk(i),
                format!("f{i}"),
            ));
        }
        sink.push(Finding::warning(
            FindingCode::AllocationHole,
            Location::chunk(9),
            "hole".into(),
        ));
        let findings = sink.finish();
        assert_eq!(findings.len(), 4);
        let last = findings.last().unwrap();
        assert_eq!(last.code, FindingCode::FindingsSuppressed);
        assert!(last
            .message
            .starts_with("... and 3 more new-chunk-past-end findings"));
        assert_eq!(last.location.count, Some(3));
        assert_eq!(last.severity, Severity::Error);
    }

    #[test]
    fn a_code_limit_calls_one_cause_out_once() {
        let mut sink = FindingSink::new(1000);
        sink.limit_code(FindingCode::OldChunkPastOrigin, 1, "; a wrong origin?");
        for i in 0..1000 {
            sink.push(Finding::error(
                FindingCode::OldChunkPastOrigin,
                Location::chunk(i),
                format!("f{i}"),
            ));
        }
        let findings = sink.finish();
        assert_eq!(findings.len(), 2);
        assert_eq!(findings[0].message, "f0");
        assert_eq!(
            findings[1].message,
            "... and 999 more old-chunk-past-origin findings (1000 in all); a wrong origin?"
        );
    }
}
