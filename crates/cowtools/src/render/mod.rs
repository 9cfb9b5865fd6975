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
