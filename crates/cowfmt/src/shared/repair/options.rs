//! What a shared-store repair is asked to do.

use crate::error::Error;

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
    /// Mark the output invalid when records were lost.
    pub invalidate_on_loss: bool,
}

impl RepairOptions {
    /// Refuses options that cannot describe any store: a snapmask of 0 names
    /// no snapshot, and would drop every record as naming none that exists.
    /// ([`analyze`](super::analyze) checks this first; the chunk size and
    /// journal are checked against the device there.)
    pub fn validate(&self) -> Result<(), Error> {
        if self.snapmask == Some(0) {
            return Err(Error::Invalid(
                "a snapmask of 0 names no snapshot, so every record would be dropped; give the snapshots that exist with --snapshots or --snapmask (a store with no snapshot holds nothing to salvage: format a new one instead)"
                    .to_string(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapmask_of_zero_is_refused() {
        let zero = RepairOptions {
            snapmask: Some(0),
            ..RepairOptions::default()
        };
        let e = zero.validate().unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e}");
        assert!(e.to_string().contains("snapmask of 0"), "{e}");
        assert!(RepairOptions::default().validate().is_ok());
        let one = RepairOptions {
            snapmask: Some(1),
            ..RepairOptions::default()
        };
        assert!(one.validate().is_ok());
    }
}
