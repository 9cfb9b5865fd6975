//! Inferring the journal size when the header cannot say it. The journal lies
//! between the bitmap and the first chunk the allocator hands out, so it ends
//! at or before the lowest chunk the salvaged tree uses (its leaves and their
//! records). mkcow's default size is taken when it fits below that chunk;
//! otherwise the journal ends right there. Any size up to that bound keeps
//! every salvaged record, so a wrong guess costs journal space, not data.

use crate::shared::geometry::{default_journal_chunks, Geometry};

/// The journal size for a store whose lowest used chunk (leaf or record
/// chunk, at or after the journal's start) is `lowest_used`.
pub(super) fn infer(device_bytes: u64, geometry: &Geometry, lowest_used: Option<u64>) -> u64 {
    let default = default_journal_chunks(device_bytes, geometry.chunk_bytes);
    let start = geometry.journal_start();
    let limit = geometry.nr_chunks.saturating_sub(start + 2);
    let bound = lowest_used
        .map_or(limit, |c| c.saturating_sub(start))
        .min(limit);
    default.min(bound).min(u64::from(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_when_it_fits_else_up_to_the_first_used_chunk() {
        let g = Geometry::new(64 << 20, 8, 0);
        assert_eq!(g.journal_start(), 2);
        assert_eq!(infer(64 << 20, &g, Some(5000)), 2048);
        assert_eq!(infer(64 << 20, &g, Some(6)), 4);
        assert_eq!(infer(64 << 20, &g, None), 2048);
        assert_eq!(infer(64 << 20, &g, Some(1)), 0);
    }
}
