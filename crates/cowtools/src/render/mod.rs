//! Rendering of job reports (text, tables, JSON, YAML), one file per job; the
//! binaries call these after the one library call that did the job.
//!
//! - [`check`]: cowcheck's report of any kind;
//! - [`migrate`]: cowmigrate's report;
//! - [`repair`]: cowrepair's report of any kind, its notices and progress.

pub mod check;
pub mod migrate;
pub mod repair;
