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
    /// Chunks the tree references (blocks or records' COW chunks) that are not
    /// marked in use.
    pub unmarked: u64,
}

/// Checks the bitmap; `tree` is `None` when the tree could not be walked.
pub(super) fn check_space(
    geometry: &Geometry,
    bitmap: &ChunkBitmap,
    tree: Option<&TreeOutcome>,
    sink: &mut FindingSink,
) -> Space {
    check_reserved(geometry, bitmap, sink);
    let complete = tree.is_some_and(|t| t.complete);
    let mut scan = DataScan {
        sink,
        report_leaks: complete,
        leak_start: None,
        free: 0,
        leaked: 0,
        unmarked: 0,
    };
    let referenced = |c: u64| tree.is_some_and(|t| t.referenced.get(c));
    let mut c = geometry.data_start();
    while c < geometry.nr_chunks {
        if c.is_multiple_of(64) && c + 64 <= geometry.nr_chunks {
            let used = bitmap_word(geometry, bitmap, c);
            let refs = tree.map_or(0, |t| t.referenced.word(c / 64));
            scan.word(c, used, refs);
            c += 64;
        } else {
            scan.bit(c, bitmap.is_used(c), referenced(c));
            c += 1;
        }
    }
    scan.close(geometry.nr_chunks);
    let (free, leaked, unmarked) = (scan.free, scan.leaked, scan.unmarked);
    check_past_end(geometry, bitmap, sink);
    Space {
        used: bitmap.count_used(),
        free,
        leaked: complete.then_some(leaked),
        unmarked,
    }
}

/// The bitmap bits of chunks `c..c + 64` (`c` a multiple of 64, inside the device).
fn bitmap_word(geometry: &Geometry, bitmap: &ChunkBitmap, c: u64) -> u64 {
    let per_chunk = geometry.bits_per_bitmap();
    let at = ((c % per_chunk) / 8) as usize;
    let bytes = &bitmap.chunk((c / per_chunk) as usize)[at..at + 8];
    u64::from_le_bytes(bytes.try_into().expect("eight bytes"))
}

/// The data range, chunk by chunk or 64 at a time: free chunks, leaked runs,
/// and referenced chunks that are not marked.
struct DataScan<'s> {
    sink: &'s mut FindingSink,
    report_leaks: bool,
    leak_start: Option<u64>,
    free: u64,
    leaked: u64,
    unmarked: u64,
}

impl DataScan<'_> {
    fn bit(&mut self, c: u64, used: bool, referenced: bool) {
        if !used {
            self.free += 1;
            self.unmarked += u64::from(referenced);
        }
        if self.report_leaks && used && !referenced {
            self.leak_start.get_or_insert(c);
        } else {
            self.close(c);
        }
    }

    fn word(&mut self, c: u64, used: u64, referenced: u64) {
        self.free += u64::from((!used).count_ones());
        self.unmarked += u64::from((!used & referenced).count_ones());
        let leaks = if self.report_leaks {
            used & !referenced
        } else {
            0
        };
        match leaks {
            0 => self.close(c),
            u64::MAX => {
                self.leak_start.get_or_insert(c);
            }
            _ => {
                for bit in 0..64 {
                    if leaks & (1 << bit) != 0 {
                        self.leak_start.get_or_insert(c + bit);
                    } else {
                        self.close(c + bit);
                    }
                }
            }
        }
    }

    /// Ends the open leak run, if any, before chunk `end`.
    fn close(&mut self, end: u64) {
        if let Some(start) = self.leak_start.take() {
            self.leaked += end - start;
            report_leak(start, end, self.sink);
        }
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
                    "{role}: {} not marked in use in the bitmap; the allocator could hand {} out and overwrite {role}",
                    run(start, end),
                    if end - start == 1 { "it" } else { "them" }
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
