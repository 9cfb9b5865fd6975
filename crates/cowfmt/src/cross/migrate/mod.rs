//! Migrations into, out of and between shared stores (classic <-> shared,
//! shared -> shared).
//!
//! - **Import** ([`plan_import`]): classic (persistent or legacy) stores of one
//!   origin become the snapshots of one new shared store. The copies of each
//!   origin chunk are grouped by their bytes; each group becomes one record
//!   whose share mask holds the group's snapshots, so n snapshots of a chunk
//!   that never changed between them cost one data chunk.
//! - **Export** ([`plan_export`]): one snapshot of a shared store becomes a
//!   classic store the kernel can activate.
//! - **Re-chunk and compact** ([`plan_rechunk`]): a shared store becomes a new
//!   one with another chunk size (or the same: compaction), a fresh tree and
//!   contiguous data. A larger chunk size fills each snapshot's new chunk from
//!   the origin where it had no copy, and snapshots whose new chunks are equal
//!   share one record.
//!
//! In every case each snapshot reads back byte-identical. A job is planned
//! first (inputs checked, metadata surveyed, the space needed bounded), may be
//! counted exactly ([`SharedPlan::count`], which reads the contents once), and
//! is then written by [`migrate`]. Contents are read in large sorted batches
//! and grouped one output chunk at a time, so memory grows with the number of
//! records, never with the data.
//!
//! The pipeline itself is kind-neutral ([`crate::job`]); the kinds bring
//! their adapters ([`crate::shared::stream`]: the shared input, writer and
//! sizes; [`crate::persistent::stream`]: the classic writer). Here: the
//! classic inputs ([`classic_input`]), the jobs [`import`], [`export`] and
//! [`rechunk`]; [`plan`], [`write`] and [`report`].

mod classic_input;
mod export;
mod import;
mod plan;
mod rechunk;
mod report;
mod write;

pub use crate::shared::stream::{max_records_per_chunk, JournalSize, SharedInput, TreeStats};
pub use export::{plan_export, ExportOptions};
pub use import::{plan_import, ImportOptions};
pub use plan::SharedPlan;
pub use rechunk::{plan_rechunk, RechunkOptions};
pub use report::{
    InputReport, SharedJob, SharedMigrateReport, SharedShape, Side, SHARED_MIGRATE_FORMAT_VERSION,
};
pub use write::migrate;
