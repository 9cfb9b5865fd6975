//! Rendering of the tools' reports and listings for people (text, tables,
//! JSON), one file per job; the binaries call these after the one library
//! call that did the job.
//!
//! - [`check`]: cowcheck's report of any kind;
//! - [`dump`]: cowdump's tables and listings;
//! - [`migrate`]: cowmigrate's report;
//! - [`repair`]: cowrepair's report of any kind, its notices and progress.

pub mod check;
pub mod dump;
pub mod migrate;
pub mod mkcow;
pub mod repair;

use cowfmt::store::reports::persistent::Relocation;

/// The sentence saying which data chunk was moved off the chunk a pre-2.6.29
/// kernel would allocate next (cowmigrate and cowrepair of a legacy store).
fn relocation_note(relocation: &Relocation) -> String {
    format!(
        "moved data chunk {} to {} (area {} record {}), so that a pre-2.6.29 kernel's next allocation does not land on metadata chunk {}",
        relocation.from_chunk,
        relocation.to_chunk,
        relocation.area,
        relocation.index,
        relocation.metadata_chunk
    )
}
