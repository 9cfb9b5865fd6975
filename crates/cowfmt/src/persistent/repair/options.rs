//! What a repair is asked to do.

use crate::kind::StoreKind;

/// What to salvage and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairOptions {
    /// `Persistent`, or `Legacy` to also hold the output to the pre-2.6.29 limits.
    pub kind: StoreKind,
    /// The chunk size in sectors, overriding the header's.
    pub chunk_size: Option<u32>,
    /// The origin's size in bytes, when known: records past it are dropped.
    pub origin_bytes: Option<u64>,
    /// Mark the output valid even when the input was invalidated.
    pub mark_valid: bool,
    /// Only the areas the kernel reads; records beyond them are ignored.
    pub kernel_areas_only: bool,
    /// Mark the output invalid when records were lost.
    pub invalidate_on_loss: bool,
}

impl Default for RepairOptions {
    fn default() -> Self {
        RepairOptions {
            kind: StoreKind::Persistent,
            chunk_size: None,
            origin_bytes: None,
            mark_valid: false,
            kernel_areas_only: false,
            invalidate_on_loss: false,
        }
    }
}
