//! Checks every invariant of a shared store and returns typed findings: the
//! header, the B-tree walked once in key order with every record of every leaf,
//! then the allocation bitmap against what the tree references. Memory is a few
//! bits per COW chunk, whatever the number of records.
//!
//! - [`header`](self::header): chunk 0 and the geometry it implies;
//! - [`journal`](self::journal): the journal superblock and transactions, and
//!   whether committed ones wait for replay;
//! - [`tree`](self::tree): nodes, leaves and records;
//! - [`space`](self::space): the bitmap (reserved chunks, leaks, bits past the end);
//! - [`unmarked`](self::unmarked): tree blocks and records whose chunk the
//!   bitmap does not mark.

mod header;
mod journal;
mod misread;
mod place;
mod space;
mod tree;
mod unmarked;

use serde::{Deserialize, Serialize};

use super::bitmap::ChunkBitmap;
use super::header::SharedHeader;
use crate::device::Device;
use crate::error::Result;
use crate::finding::FINDINGS_PER_CODE;
use crate::finding::{Finding, FindingSink, Severity};
use crate::kind::StoreKind;
use crate::progress::{self, Progress};

pub use crate::shared::journal::JournalState;
pub use header::MAX_TREE_LEVEL;
pub use journal::JournalSummary;

/// What to check and how.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Whether the caller insisted on the shared kind (`--kind shared`): then a
    /// wrong magic is reported as damage instead of "not a store".
    pub kind_forced: bool,
    /// The origin size in bytes, when known: origin chunks past its end are findings.
    pub origin_bytes: Option<u64>,
    /// Only the header (chunk 0).
    pub header_only: bool,
    /// Chunk size (sectors) to read with when the header's is unusable.
    pub chunk_size_fallback: Option<u32>,
}

/// Figures gathered while checking, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSummary {
    /// The chunk size used to read the store, in sectors.
    pub chunk_size: Option<u32>,
    /// Whole chunks on the device.
    pub device_chunks: Option<u64>,
    /// Chunks of allocation bitmap.
    pub bitmap_chunks: Option<u64>,
    /// Chunks of journal.
    pub journal_chunks: Option<u64>,
    /// Snapshots in the header's snapmask.
    pub snapshots: u32,
    /// Node levels above the leaves, as the header says.
    pub tree_level: u32,
    /// Nodes read.
    pub nodes: u64,
    /// Leaves read.
    pub leaves: u64,
    /// Exception records read.
    pub records: u64,
    /// Distinct origin chunks with records (map entries).
    pub origin_chunks: u64,
    /// COW chunks holding copied data, each counted once.
    pub data_chunks: u64,
    /// Chunks marked in use in the bitmap (header, bitmap and journal included).
    pub used_chunks: Option<u64>,
    /// Chunks of the data range not marked in use.
    pub free_chunks: Option<u64>,
    /// Chunks marked in use that nothing references; absent when part of the
    /// tree could not be read (its chunks would all look leaked).
    pub leaked_chunks: Option<u64>,
    /// The journal's state; absent when it was not read.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub journal: Option<JournalSummary>,
}

/// The result of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Always `Shared`.
    pub kind: StoreKind,
    /// The header as stored.
    pub header: SharedHeader,
    /// Every finding, in the order found: header, journal, tree in key
    /// order, bitmap.
    pub findings: Vec<Finding>,
    /// Information that is not a finding (a torn last journal transaction).
    #[serde(default)]
    pub notes: Vec<String>,
    /// Figures.
    pub summary: CheckSummary,
}

impl CheckReport {
    /// True when nothing at all was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// True when some finding is an error (fatal).
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}

/// Checks the shared store on `device`. Returns `Err` only when the check cannot
/// run (I/O errors, or no shared store at all when the kind was not insisted on).
pub fn check(device: &Device, options: &CheckOptions) -> Result<CheckReport> {
    check_with_progress(device, options, &mut progress::silent)
}

/// [`check`], telling `progress` (tree blocks read, 0) as the walk of the
/// tree goes: how many blocks the tree has is known only at its end.
pub fn check_with_progress(
    device: &Device,
    options: &CheckOptions,
    progress: &mut Progress,
) -> Result<CheckReport> {
    let mut sink = FindingSink::for_store_check(FINDINGS_PER_CODE);
    let header = header::read(device)?;
    let mut summary = CheckSummary {
        snapshots: header.snapmask.count_ones(),
        tree_level: header.tree_level,
        ..CheckSummary::default()
    };
    let mut notes = Vec::new();
    let report = |sink: FindingSink, summary: CheckSummary, notes: Vec<String>| CheckReport {
        kind: StoreKind::Shared,
        header,
        findings: sink.finish(),
        notes,
        summary,
    };
    let Some(layout) = header::check(device, &header, options, &mut sink)? else {
        return Ok(report(sink, summary, notes));
    };
    let geometry = layout.geometry;
    summary.chunk_size = Some((geometry.chunk_bytes / crate::SECTOR_BYTES) as u32);
    summary.device_chunks = Some(geometry.nr_chunks);
    summary.bitmap_chunks = Some(geometry.nr_bitmap_chunks);
    summary.journal_chunks = Some(geometry.nr_journal_chunks);
    header::check_tail(device, &geometry, &mut sink)?;
    if options.header_only {
        return Ok(report(sink, summary, notes));
    }
    let (journal, journal_notes) = journal::check_journal(device, &geometry, &mut sink)?;
    summary.journal = Some(journal);
    notes.extend(journal_notes);
    notes.extend(crate::shared::journal::in_place_note(&geometry));
    let bitmap = ChunkBitmap::load(device, &geometry)?;
    let origin_chunks = options
        .origin_bytes
        .map(|bytes| bytes.div_ceil(geometry.chunk_bytes));
    let context = tree::Context {
        device,
        geometry,
        bitmap: &bitmap,
        snapmask: header.snapmask,
        origin_chunks,
    };
    let tree = if layout.tree_readable {
        let outcome = tree::check_tree(&context, &header, &mut sink, progress)?;
        summary.nodes = outcome.nodes;
        summary.leaves = outcome.leaves;
        summary.records = outcome.records;
        summary.origin_chunks = outcome.origin_chunks;
        summary.data_chunks = outcome.data_chunks;
        Some(outcome)
    } else {
        None
    };
    let space = space::check_space(&geometry, &bitmap, tree.as_ref(), &mut sink);
    summary.used_chunks = Some(space.used);
    summary.free_chunks = Some(space.free);
    summary.leaked_chunks = space.leaked;
    if space.unmarked > 0 {
        drop(tree);
        unmarked::report_unmarked(&context, &header, &mut sink)?;
    }
    Ok(report(sink, summary, notes))
}
