//! The input bitmap: whether it agrees with the tree well enough to guide the
//! scan, and where the chunks it marks in use went.

use crate::bitset::DenseBitmap;
use crate::shared::bitmap::ChunkBitmap;
use crate::shared::geometry::Geometry;

use super::reachable::Reached;
use super::report::ChunkAccounting;

/// At most one chunk in this many that the walk reached may be marked free
/// for the bitmap to stay credible.
const FREE_BUT_REFERENCED_PER: u64 = 100;

/// Whether the bitmap is credible: the reserved chunks up to `reserved_end`
/// are all marked in use, and nearly every chunk the walk reached (tree blocks
/// and record chunks) is too. Returns the verdict and, when not credible, why.
pub(super) fn bitmap_credible(
    bitmap: &ChunkBitmap,
    geometry: &Geometry,
    reserved_end: u64,
    reached: &Reached,
) -> (bool, Option<String>) {
    if let Some(c) = (0..reserved_end.min(geometry.nr_chunks)).find(|&c| !bitmap.is_used(c)) {
        return (
            false,
            Some(format!(
                "the bitmap marks reserved chunk {c} free, so it cannot tell live chunks from free ones"
            )),
        );
    }
    let (mut referenced, mut free) = (0u64, 0u64);
    for set in [&reached.tree_blocks, &reached.record_chunks] {
        for (a, b) in set.set_runs(geometry.data_start(), geometry.nr_chunks) {
            referenced += b - a;
            free += (a..b).filter(|&c| !bitmap.is_used(c)).count() as u64;
        }
    }
    if free * FREE_BUT_REFERENCED_PER > referenced {
        return (
            false,
            Some(format!(
                "the bitmap marks {free} of the {referenced} chunks the tree references free"
            )),
        );
    }
    (true, None)
}

/// Where the input's chunks in use went: kept data, old tree blocks, chunks of
/// dropped records, and leaks (referenced by nothing found).
pub(super) fn account(
    bitmap: &ChunkBitmap,
    geometry: &Geometry,
    kept: &DenseBitmap,
    old_tree: &DenseBitmap,
    dropped: &DenseBitmap,
) -> ChunkAccounting {
    let mut a = ChunkAccounting::default();
    for c in geometry.data_start()..geometry.nr_chunks {
        let used = bitmap.is_used(c);
        if kept.get(c) {
            a.data_kept += 1;
            a.kept_but_marked_free += u64::from(!used);
        }
        if !used {
            continue;
        }
        a.used_before += 1;
        if kept.get(c) {
            continue;
        }
        if old_tree.get(c) {
            a.old_tree_blocks += 1;
        } else if dropped.get(c) {
            a.dropped_record_chunks += 1;
        } else {
            a.leaked_freed += 1;
        }
    }
    a
}
