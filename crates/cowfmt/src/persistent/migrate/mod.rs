//! Migration of persistent and legacy stores.
//!
//! A migration re-chunks a store (each record split into `k` records for a
//! smaller chunk size; records grouped by `old_chunk / k`, with the unchanged
//! pieces read from the origin, for a larger one) or converts between the
//! `persistent` and `legacy` kinds (same bytes; a legacy store is held to 32-bit
//! chunk numbers and made safe against the pre-2.6.29 reload hazard). In every
//! case the snapshot reads back byte-identical (see [`super::view`]).
//!
//! Like [`super::repair`], it works in two steps: [`plan`] reads and checks the
//! input and works out the size the output needs; [`migrate`] writes it.
//!
//! The pieces shared with repair for writing a new store live in
//! [`super::rebuild`] and are re-exported here.

mod copy;
mod plan;
mod report;
mod write;

pub use super::rebuild::{
    bytes_needed, chunks_needed, default_output_bytes, fix_legacy_reload_hazard, open_output,
    zero_stale_areas, OutputRequest, PreparedOutput, RebuildWriter, Relocation,
};
pub use plan::{plan, MigrateMode, MigrateOptions, MigratePlan};
pub use report::{MigrateReport, StoreShape, MIGRATE_FORMAT_VERSION};
pub use write::migrate;
