//! Migrations into, out of and between shared stores.
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
//! Modules, from the inputs to the outputs: [`source`] (the entry stream) with
//! [`shared_input`] and [`classic_input`]; [`assemble`] (output chunks and
//! their signatures); [`window`] (batched reads); [`dedup`] (grouping by
//! content); [`pipeline`] (the loop); the sinks [`count`], [`shared_out`] and
//! [`classic_out`]; [`survey`] and [`size`] (space); the jobs [`import`],
//! [`export`] and [`rechunk`]; [`plan`], [`write`] and [`report`].

mod assemble;
mod classic_input;
mod classic_out;
mod count;
mod dedup;
mod export;
mod import;
mod pipeline;
mod plan;
mod rechunk;
mod report;
mod shared_input;
mod shared_out;
mod size;
mod source;
mod survey;
mod window;
mod write;

pub use export::{plan_export, ExportOptions};
pub use import::{plan_import, ImportOptions};
pub use plan::SharedPlan;
pub use rechunk::{plan_rechunk, RechunkOptions};
pub use report::{
    InputReport, SharedJob, SharedMigrateReport, SharedShape, Side, SHARED_MIGRATE_FORMAT_VERSION,
};
pub use shared_input::{SharedInput, TreeStats};
pub use size::{max_records_per_chunk, JournalSize};
pub use write::migrate;
