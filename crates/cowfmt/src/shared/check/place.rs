//! How findings name places: tree blocks with their level and key range, the
//! entry that points at them, and what a chunk outside the data range is.

use crate::finding::Location;
use crate::shared::leaf::Exception;
use crate::shared::walk::BlockAt;

/// "leaf at chunk 1234 (level 0, origin chunks 5000..6000)".
pub(super) fn block(at: &BlockAt) -> String {
    let what = if at.level == 0 { "leaf" } else { "node" };
    format!(
        "{what} at chunk {} (level {}, {})",
        at.chunk,
        at.level,
        at.range_text()
    )
}

/// Who points at the block: "entry 3 of node 20", or the header.
pub(super) fn referrer(at: &BlockAt) -> String {
    match at.parent {
        Some((node, entry)) => format!("entry {entry} of node {node}"),
        None => "the header's root_tree_chunk".to_string(),
    }
}

/// The location of a block: its chunk, level, key range and referrer.
pub(super) fn block_location(at: &BlockAt) -> Location {
    Location {
        chunk: Some(at.chunk),
        level: Some(at.level),
        key_lo: Some(at.lo),
        key_hi: (at.hi != u64::MAX).then_some(at.hi),
        parent: at.parent.map(|(node, _)| node),
        entry: at.parent.map(|(_, entry)| entry as u64),
        ..Location::default()
    }
}

/// The location of entry `entry` inside the block at `at` (a node's child or a
/// leaf's map entry); the referrer is left out, the block is the place.
pub(super) fn entry_location(at: &BlockAt, entry: usize) -> Location {
    Location {
        chunk: Some(at.chunk),
        level: Some(at.level),
        key_lo: Some(at.lo),
        key_hi: (at.hi != u64::MAX).then_some(at.hi),
        entry: Some(entry as u64),
        ..Location::default()
    }
}

/// "chunk 7 is" or "chunks 7..10 (3 chunks) are" for a run `[start, end)`;
/// ranges are half-open, as key ranges are.
pub(super) fn run(start: u64, end: u64) -> String {
    if end - start == 1 {
        format!("chunk {start} is")
    } else {
        format!("chunks {start}..{end} ({} chunks) are", end - start)
    }
}

/// "leaf at chunk 7 (...): entry 1 (origin chunk 150) record 2".
pub(super) fn record_place(
    at: &BlockAt,
    entry: usize,
    index: usize,
    origin: Option<u64>,
) -> String {
    let origin = origin.map_or_else(|| "overflows".to_string(), |o| o.to_string());
    format!(
        "{}: entry {entry} (origin chunk {origin}) record {index}",
        block(at)
    )
}

/// The location of record `index` (of entry `entry`) in the leaf at `at`.
pub(super) fn record_location(
    at: &BlockAt,
    entry: usize,
    index: usize,
    origin: Option<u64>,
    record: Exception,
) -> Location {
    Location {
        record: Some(index as u64),
        old_chunk: origin,
        new_chunk: Some(record.chunk),
        mask: Some(record.share),
        ..entry_location(at, entry)
    }
}
