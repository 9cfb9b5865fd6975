//! The allocation bitmap against the layout and the tree: reserved chunks are
//! marked, nothing in the data range is marked without a reference, and no bit
//! past the last chunk is set. Findings come as runs, one per run.

use super::place::run;
use super::tree::TreeOutcome;
use crate::finding::{Finding, FindingCode, FindingSink, Location};
use crate::shared::bitmap::ChunkBitmap;
use crate::shared::geometry::Geometry;

/// Figures about the space on the device.
pub(super) struct Space {
    /// Chunks marked in use (inside the device).
    pub used: u64,
    /// Data-range chunks not marked.
    pub free: u64,
    /// Marked data-range chunks nothing references; `None` when the tree was
    /// not read whole.
    pub leaked: Option<u64>,
}

/// Checks the bitmap; `tree` is `None` when the tree could not be walked.
pub(super) fn check_space(
    geometry: &Geometry,
    bitmap: &ChunkBitmap,
    tree: Option<&TreeOutcome>,
    sink: &mut FindingSink,
) -> Space {
    check_reserved(geometry, bitmap, sink);
    let complete = tree.filter(|t| t.complete);
    let mut free = 0;
    let mut leaked = 0;
    let mut leak_start = None;
    for c in geometry.data_start()..geometry.nr_chunks {
        let is_leak = if !bitmap.is_used(c) {
            free += 1;
            false
        } else {
            complete.is_some_and(|t| !t.referenced.get(c))
        };
        match (is_leak, leak_start) {
            (true, None) => leak_start = Some(c),
            (false, Some(start)) => {
                leak_start = None;
                leaked += c - start;
                report_leak(start, c, sink);
            }
            _ => {}
        }
    }
    if let Some(start) = leak_start {
        leaked += geometry.nr_chunks - start;
        report_leak(start, geometry.nr_chunks, sink);
    }
    check_past_end(geometry, bitmap, sink);
    Space {
        used: bitmap.count_used(),
        free,
        leaked: complete.map(|_| leaked),
    }
}

fn report_leak(start: u64, end: u64, sink: &mut FindingSink) {
    sink.push(Finding::warning(
        FindingCode::ChunkLeaked,
        Location::run(start, end - start),
        format!(
            "{} marked in use but referenced by no node, leaf or record: leaked; the space is lost until the store is repaired",
            run(start, end)
        ),
    ));
}

/// Header, bitmap and journal chunks must all be marked in use.
fn check_reserved(geometry: &Geometry, bitmap: &ChunkBitmap, sink: &mut FindingSink) {
    let parts = [
        ("the header", 0, 1),
        ("the allocation bitmap", 1, geometry.journal_start()),
        (
            "the journal",
            geometry.journal_start(),
            geometry.data_start(),
        ),
    ];
    for (role, from, to) in parts {
        for_runs(
            from,
            to,
            |c| !bitmap.is_used(c),
            |start, end| {
                sink.push(Finding::error(
                FindingCode::ReservedChunkNotMarked,
                Location::run(start, end - start),
                format!(
                    "{} ({role}) not marked in use in the bitmap; the allocator could hand out {role} and overwrite it",
                    run(start, end)
                ),
            ));
            },
        );
    }
}

/// Bits at or past `nr_chunks` describe no chunk and must stay clear.
fn check_past_end(geometry: &Geometry, bitmap: &ChunkBitmap, sink: &mut FindingSink) {
    let bits = geometry.nr_bitmap_chunks * geometry.bits_per_bitmap();
    for_runs(
        geometry.nr_chunks,
        bits,
        |c| bitmap.is_used(c),
        |start, end| {
            sink.push(Finding::warning(
            FindingCode::BitmapBitsPastEnd,
            Location::run(start, end - start),
            format!(
                "bitmap: {} marked in use but past the end of the device ({} chunks); those bits must stay 0",
                run(start, end),
                geometry.nr_chunks
            ),
        ));
        },
    );
}

/// Calls `each(start, end)` for every maximal run in `from..to` where `test` holds.
fn for_runs(from: u64, to: u64, test: impl Fn(u64) -> bool, mut each: impl FnMut(u64, u64)) {
    let mut c = from;
    while c < to {
        if !test(c) {
            c += 1;
            continue;
        }
        let start = c;
        while c < to && test(c) {
            c += 1;
        }
        each(start, c);
    }
}
