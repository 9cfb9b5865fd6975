//! Salvage of a damaged shared store into a new, consistent one, saying
//! exactly what was lost.
//!
//! [`read_through_journal`] first replays the input's committed journal
//! transactions through an overlay (never writing the input), so that the
//! salvage starts from the store's last commit.
//!
//! [`analyze`] reads the damaged store and never writes to it:
//! 1. the geometry: chunk size, journal and snapmask from the caller, else the
//!    header when it is sound, else inferred from the device (`chunk_size`:
//!    the leaves' own geometry; `journal`: where the lowest tree block lies;
//!    `snapmask`: the masks found, and an error when they name none);
//! 2. the walk from the root (`reachable`): every node and leaf that decodes
//!    and fits its parent's key range is kept; every other block is a lost
//!    range;
//! 3. when the walk found damage, or the bitmap marks chunks in use that
//!    nothing reachable references, the leaf scan (`scan`) reads the chunks
//!    nothing reachable accounts for (those the bitmap marks in use, or every
//!    one when the tree is damaged and the bitmap is not credible or a full
//!    scan is asked for), and `select` picks the credible leaves that rebuild
//!    the lost ranges, never a stale copy overlapping a better leaf;
//! 4. every record of the salvaged leaves goes through the rules of
//!    `filter`, counted per snapshot and per reason by `tally`: a snapshot
//!    bit two records of one origin chunk carry, or a data chunk two records
//!    claim, is uncertain, and no record keeps it.
//!
//! [`Salvage::write`] then writes the output: the kept data chunks stay at
//! their numbers and are copied in large batches, the bitmap is rebuilt from
//! what is referenced (leaks are freed), the tree is bulk-loaded by
//! [`build`](crate::shared::build), and the header is written last. The
//! [`RepairReport`] lists the lost ranges, every dropped record with its
//! reason, and the records kept and lost per snapshot.

mod analyze;
mod batch;
mod chunk_size;
mod filter;
mod header;
mod job;
mod journal;
mod lost;
mod options;
mod reachable;
mod replay;
mod report;
mod reread;
mod salvage;
mod scan;
mod select;
mod shape;
mod snapmask;
mod space;
mod tally;
mod write;

pub use crate::job::JobError;
pub use analyze::analyze;
pub use chunk_size::probe_wiped_header;
pub use job::{run, JobResult};
pub use options::RepairOptions;
pub use replay::{read_through_journal, JournalRepair};
pub use report::{
    ChunkAccounting, DropReason, DroppedRecord, LostRange, OriginRange, ReasonCount, RepairReport,
    ScanMode, ScanSummary, SnapshotTally, Source, LISTED_MAX, REPAIR_FORMAT_VERSION,
};
pub use salvage::Salvage;
pub use write::WriteOptions;
