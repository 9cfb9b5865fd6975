//! What a shared-store repair is asked to do.

/// Overrides and choices for [`analyze`](super::analyze). Every field left at
/// its default means "take it from the header, or infer it from the device".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairOptions {
    /// Chunk size in sectors, overriding the header's.
    pub chunk_size: Option<u32>,
    /// Journal chunks, overriding the header's.
    pub journal_chunks: Option<u64>,
    /// The snapshots that exist (bit s = snapshot s), overriding the header's.
    pub snapmask: Option<u64>,
    /// The origin's size in bytes, when known: records past its end are dropped.
    pub origin_bytes: Option<u64>,
    /// Mark the output valid even when the input was invalidated.
    pub mark_valid: bool,
    /// When the tree is damaged, also look for leaves in chunks the bitmap
    /// marks free (stale leaves the engine freed look like this too).
    pub full_scan: bool,
}
