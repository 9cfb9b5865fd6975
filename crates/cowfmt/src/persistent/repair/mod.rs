//! Salvage of a damaged persistent (or legacy) store into a new, consistent one.
//!
//! Two steps. [`analyze`] reads the damaged store and never writes to it: it
//! settles the chunk size (from the caller, from a sound header whose chunk
//! size reads records, or inferred when exactly one chunk size reads credible
//! records: see [`chunk_evidence`](crate::persistent::chunk_evidence)), scans
//! every area location on the device and keeps each record that is still
//! credible. [`Salvage::write`] copies the kept
//! records' data chunks into a fresh store in order, compacting holes, and
//! rebuilds the areas. The [`RepairReport`] says what was kept, what was
//! dropped and why, and which origin ranges now read through to the origin.
//!
//! A record is credible when its `new_chunk` lies on the device, is neither the
//! header nor a metadata area, lies after its own area (the kernel allocates an
//! area's data after the area), and is not used by an earlier kept record; its
//! `old_chunk` is not mapped by an earlier kept record and lies inside the
//! origin when the origin's size is known; and its data chunk can be read.
//! Beyond the kernel's view, an area whose records are nearly all implausible is
//! unused space (stale or junk bytes), not damage, and is skipped whole.

mod analyze;
mod chunk_size;
mod credibility;
mod header;
mod job;
mod options;
mod report;
mod salvage;

pub use super::rebuild::JobError;
pub use analyze::analyze;
pub use job::{run, JobResult};
pub use options::RepairOptions;
pub use report::{
    ChunkSizeSource, DamagedArea, DropReason, DroppedRecord, RepairReport, LISTED_MAX,
    REPAIR_FORMAT_VERSION,
};
pub use salvage::Salvage;
