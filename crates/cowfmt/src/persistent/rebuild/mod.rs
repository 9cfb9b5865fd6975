//! The pieces repair and migration share to write a new store: opening the
//! output (the guard's [`open_output`], re-exported), sizing it ([`chunks_needed`],
//! [`bytes_needed`], [`default_output_bytes`]),
//! writing it in allocation order ([`RebuildWriter`]), settling it afterwards
//! ([`zero_stale_areas`], [`fix_legacy_reload_hazard`]), the input check of a
//! migration, and the error both jobs stop with ([`JobError`]).

mod settle;
mod size;
mod sound;
mod writer;

pub use crate::job::JobError;
pub use crate::output::{open_output, OutputRequest, PreparedOutput};
pub use settle::{fix_legacy_reload_hazard, zero_stale_areas, Relocation};
pub(crate) use settle::{settle_output, Settled};
pub(crate) use size::check_output;
pub use size::{bytes_needed, chunks_needed, default_output_bytes};
pub(crate) use sound::refuse_damaged;
pub use writer::RebuildWriter;
